//! Copy whole rows of an untyped array in or out under a row-region lock
//! (FORMAT.md 8.6): the primitive of front ends that write blocks from many
//! processes at once (Python's `sharray.dask.store`).

#![allow(unsafe_code)]

use std::ops::Range;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::array::UntypedArray;
use crate::error::{Error, ErrorKind, Result};
use crate::file::Wait;
use crate::ranges::Span;

use super::queue::row_bytes_untyped;

impl UntypedArray {
    /// Copy `bytes` (whole rows, C order) into the rows starting at `start`,
    /// holding an exclusive row-region lock on exactly those rows while
    /// copying, then bump the generation. `timeout: None` waits as long as
    /// it takes for the lock.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, UntypedArray};
    /// let a = UntypedArray::builder(Dtype::parse_user("uint16")?).shape(&[4, 2])
    ///     .create(dir.path().join("a.npy"))?;
    /// a.write_rows_bytes(1, &[1, 0, 2, 0], None)?;   // row 1 = [1, 2]
    /// let mut row = [0u8; 4];
    /// a.read_rows_bytes(1..2, &mut row, None)?;
    /// assert_eq!(row, [1, 0, 2, 0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `bytes` is not a whole number of rows
    /// or runs past the last row; [`ErrorKind::PermissionDenied`] on a
    /// read-only handle; [`ErrorKind::Unsupported`] for a Fortran-order
    /// array of more than one dimension; [`ErrorKind::LockTimeout`].
    pub fn write_rows_bytes(
        &self,
        start: usize,
        bytes: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        if !self.is_writable() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this handle was opened read-only; open it read-write to write rows",
            )
            .at(self.path()));
        }
        let rows = self.rows_for(start, bytes.len())?;
        let (off, len) = self.row_span(rows)?;
        let ids = self.lock_span(off, len, true, timeout)?;
        // SAFETY: the exclusive row-region lock (OFD across processes, the
        // range table across our threads) makes these bytes ours among
        // cooperating peers until released below; the range was checked
        // against the array's size by `row_bytes_untyped`, and the handle is
        // writable (checked above).
        unsafe { self.mapping().data_bytes_mut(off, len) }.copy_from_slice(bytes);
        self.bump_generation();
        self.unlock_span(&ids);
        Ok(())
    }

    /// Copy rows `rows` out into `out` (exactly their size) under a shared
    /// row-region lock on those rows.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `out` is not the size of the rows or
    /// they run past the last row; as [`UntypedArray::write_rows_bytes`].
    pub fn read_rows_bytes(
        &self,
        rows: Range<usize>,
        out: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        let (off, len) = self.row_span(rows)?;
        if out.len() != len {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the buffer holds {} bytes but the rows hold {len}; pass a buffer of the rows' size", out.len()),
            )
            .at(self.path()));
        }
        let ids = self.lock_span(off, len, false, timeout)?;
        // SAFETY: the shared row-region lock keeps cooperating writers out
        // of these bytes until released below; the range was checked.
        out.copy_from_slice(unsafe { self.mapping().data_bytes(off, len) });
        self.unlock_span(&ids);
        Ok(())
    }

    /// The rows `bytes` bytes starting at row `start` cover, if whole.
    fn rows_for(&self, start: usize, bytes: usize) -> Result<Range<usize>> {
        let n = self.shape().first().copied().unwrap_or(0);
        let (_, all) = self.row_span(0..n)?;
        let row = all.checked_div(n).unwrap_or(0);
        if row == 0 || !bytes.is_multiple_of(row) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{bytes} bytes are not a whole number of {row}-byte rows; pass whole rows"),
            )
            .at(self.path()));
        }
        let end = start.checked_add(bytes / row).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "row index overflows; pass rows inside the array",
            )
            .at(self.path())
        })?;
        Ok(start..end)
    }

    fn row_span(&self, rows: Range<usize>) -> Result<(usize, usize)> {
        let n = self.shape().first().copied().unwrap_or(0) as u64;
        row_bytes_untyped(self, n, rows)
    }

    fn lock_span(
        &self,
        off: usize,
        len: usize,
        exclusive: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<u64>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let map = self.mapping();
        let base = map.data_offset() as u64;
        let span = Span {
            start: base + off as u64,
            end: base + (off + len) as u64,
            exclusive,
        };
        super::region::acquire_spans(self, &[span], timeout.map_or(Wait::Forever, Wait::timeout))
    }

    fn unlock_span(&self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        let file = self.mapping().shared_file();
        file.ranges().release(ids, Some(file.file().as_fd()));
    }
}
