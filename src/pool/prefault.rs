//! Mapping a whole array into a worker process up front.
//!
//! Every process maps the files itself, so a worker process pays a page fault
//! the first time it touches each page (about 1.5 to 3 us per 4 KiB page on
//! the VMs we measured), which threads sharing one mapping do not. A
//! persistent worker that will process many jobs over the same arrays can
//! pay that once, in bulk and more cheaply, before the first job.

use crate::array::SharedArray;
use crate::element::Element;

impl<T: Element> SharedArray<T> {
    /// Map every page of the data into this process now, for reading
    /// (`MADV_POPULATE_READ`). A hint: errors are ignored. Contents are never
    /// changed.
    pub fn prefault_read(&self) {
        // The ranged form reports errors; this one is a hint.
        let _ = self.untyped().prefault_read(..);
    }

    /// Map every page of the data into this process now, for writing
    /// (`MADV_POPULATE_WRITE`), so later writes do not fault. A hint: errors
    /// are ignored, and read-only and copy-on-write handles do nothing. Contents are never
    /// changed, but on a disk-backed file the pages count as dirty; use it
    /// for arrays this process will write.
    pub fn prefault_write(&self) {
        // Refused on read-only and copy-on-write handles: nothing to do there.
        let _ = self.untyped().prefault_write(..);
    }
}
