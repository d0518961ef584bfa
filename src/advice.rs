//! Access hints and page-cache control: `madvise`/`posix_fadvise` advice,
//! prefaulting, ranged and asynchronous flushes, and evicting a range from
//! the page cache (for cold-read measurements).
//!
//! Ranges are in elements of the flat array in memory order (`..` for all);
//! the kernel works in pages, so each range is rounded out to the pages
//! covering it.

use std::ops::{Bound, Range, RangeBounds};

use crate::array::UntypedArray;
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::Mapping;
use crate::sys;

/// How this process will access a range of an array (`madvise(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Advice {
    /// Default readahead (`MADV_NORMAL`).
    Normal,
    /// Read in order: aggressive readahead, pages dropped soon after use
    /// (`MADV_SEQUENTIAL`).
    Sequential,
    /// Read in no particular order: no readahead (`MADV_RANDOM`).
    Random,
    /// Will be read soon: start reading it in now (`MADV_WILLNEED`).
    WillNeed,
    /// Not needed soon: drop this process's mapping of the pages
    /// (`MADV_DONTNEED`; the data stays in the file and the page cache; use
    /// [`UntypedArray::evict`] to drop it from the cache too). Not done on
    /// copy-on-write handles, where it would discard private changes.
    DontNeed,
    /// Back the range with transparent huge pages where the system allows
    /// (`MADV_HUGEPAGE`); the returned [`Advised`] says whether it can.
    HugePage,
}

impl Advice {
    /// Parse `normal`, `sequential`, `random`, `willneed`, `dontneed` or
    /// `hugepage` (case-insensitive; `-`/`_` ignored).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] naming the accepted words.
    pub fn parse(s: &str) -> Result<Advice> {
        let k: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        Ok(match k.as_str() {
            "normal" => Advice::Normal,
            "sequential" => Advice::Sequential,
            "random" => Advice::Random,
            "willneed" => Advice::WillNeed,
            "dontneed" => Advice::DontNeed,
            "hugepage" | "hugepages" => Advice::HugePage,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "unknown advice {s:?}: use normal, sequential, random, willneed, dontneed or hugepage"
                    ),
                ));
            }
        })
    }

    /// The lower-case name [`Advice::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Advice::Normal => "normal",
            Advice::Sequential => "sequential",
            Advice::Random => "random",
            Advice::WillNeed => "willneed",
            Advice::DontNeed => "dontneed",
            Advice::HugePage => "hugepage",
        }
    }

    fn madv(self) -> libc::c_int {
        match self {
            Advice::Normal => libc::MADV_NORMAL,
            Advice::Sequential => libc::MADV_SEQUENTIAL,
            Advice::Random => libc::MADV_RANDOM,
            Advice::WillNeed => libc::MADV_WILLNEED,
            Advice::DontNeed => libc::MADV_DONTNEED,
            Advice::HugePage => libc::MADV_HUGEPAGE,
        }
    }
}

/// What [`UntypedArray::advise`] did.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Advised {
    /// The kernel took the advice.
    Applied,
    /// Nothing changed: normal behaviour (for huge pages: normal 4 KiB
    /// pages) continues, for the reason given.
    Fallback(String),
}

impl Advised {
    /// Was the advice applied?
    pub fn is_applied(&self) -> bool {
        matches!(self, Advised::Applied)
    }
}

impl std::fmt::Display for Advised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Advised::Applied => f.write_str("applied"),
            Advised::Fallback(why) => write!(f, "not applied: {why}"),
        }
    }
}

/// Byte range of data for an element range, checked against the array.
fn byte_range(
    map: &Mapping,
    itemsize: usize,
    range: impl RangeBounds<usize>,
) -> Result<Range<usize>> {
    let len = map.nbytes().checked_div(itemsize).unwrap_or(0);
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    if start > end || end > len {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("element range {start}..{end} is outside the array's {len} elements; give a range within 0..{len}"),
        )
        .at(map.path()));
    }
    Ok(start * itemsize..end * itemsize)
}

/// [`UntypedArray::advise`] over data bytes `r` of any mapped file.
pub(crate) fn advise_map(map: &Mapping, r: Range<usize>, advice: Advice) -> Result<Advised> {
    if r.is_empty() {
        return Ok(Advised::Fallback("the range is empty".into()));
    }
    if advice == Advice::DontNeed && map.is_cow() {
        return Ok(Advised::Fallback(
            "this handle is copy-on-write: MADV_DONTNEED would discard its private changes; nothing was done".into(),
        ));
    }
    match map.madvise_data(r.start, r.len(), advice.madv()) {
        Ok(()) => {}
        Err(e) if advice == Advice::HugePage && e.raw_os_error() == Some(libc::EINVAL) => {
            return Ok(Advised::Fallback(
                "this kernel has no transparent huge pages (madvise(MADV_HUGEPAGE) gave EINVAL); normal 4 KiB pages are used".into(),
            ));
        }
        Err(e) => {
            return Err(Error::io(format!("madvise({}) failed", advice.name()), e).at(map.path()));
        }
    }
    if advice == Advice::HugePage
        && let Some(why) = huge_page_verdict(map)
    {
        return Ok(Advised::Fallback(why));
    }
    Ok(Advised::Applied)
}

impl crate::ring::Ring {
    /// Advise the kernel how this process will access the ring's slots (all
    /// of them); see [`UntypedArray::advise`]. `Sequential` suits a
    /// consumer that reads each frame once, `WillNeed` warms a ring on disk,
    /// `HugePage` a large ring in `/dev/shm` where the system allows.
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::advise`].
    pub fn advise(&self, advice: Advice) -> Result<Advised> {
        let map = self.mapping();
        advise_map(map, 0..map.nbytes(), advice)
    }
}

impl crate::pool::WorkQueue {
    /// Advise the kernel how this process will access the queue file's
    /// data; see [`UntypedArray::advise`].
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::advise`].
    pub fn advise(&self, advice: Advice) -> Result<Advised> {
        let map = self.mapping();
        advise_map(map, 0..map.nbytes(), advice)
    }
}

/// Is transparent-huge-page use possible for this file, and if not, why?
fn huge_page_verdict(map: &Mapping) -> Option<String> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let on_tmpfs = sys::fs_type(map.shared_file().file()).ok() == Some(TMPFS_MAGIC);
    let setting = |file: &str| -> Option<String> {
        let text = std::fs::read_to_string(file).ok()?;
        let chosen = text.split_whitespace().find(|w| w.starts_with('['))?;
        Some(chosen.trim_matches(|c| c == '[' || c == ']').to_string())
    };
    if on_tmpfs {
        let file = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
        match setting(file).as_deref() {
            Some("never") | Some("deny") => Some(format!(
                "the file is on tmpfs and shared-memory huge pages are off ({file} says never); normal 4 KiB pages are used (root can write 'advise' there)"
            )),
            Some(_) => None,
            None => Some(format!(
                "cannot read {file}: this kernel has no transparent huge pages for tmpfs; normal 4 KiB pages are used"
            )),
        }
    } else {
        Some(
            "the file is on a disk filesystem, where the page cache uses huge pages only if the filesystem supports large folios and never on request; normal pages are used (put the file in /dev/shm with shmem_enabled=advise for huge pages)"
                .to_string(),
        )
    }
}

impl UntypedArray {
    /// Advise the kernel how this process will access elements `range` of
    /// the flat array (`..` for all). A hint about this process's mapping:
    /// it does not change the data, and ends when the handle is dropped.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Advice, SharedArray};
    /// let a = SharedArray::<f32>::create(dir.path().join("a.npy"), &[1 << 20])?;
    /// assert!(a.advise(.., Advice::Sequential)?.is_applied());
    /// let huge = a.advise(0..4096, Advice::HugePage)?; // says why if not
    /// println!("huge pages: {huge}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a range outside the array; the OS
    /// error if `madvise` fails for another reason than the advice being
    /// unavailable (which is an [`Advised::Fallback`]).
    pub fn advise(&self, range: impl RangeBounds<usize>, advice: Advice) -> Result<Advised> {
        let map = self.mapping();
        let r = byte_range(map, self.dtype().itemsize(), range)?;
        advise_map(map, r, advice)
    }

    /// Fault elements `range` into this process for reading now
    /// (`MADV_POPULATE_READ`), so later reads do not stop at page faults;
    /// reads the pages from disk if they are not cached. Contents never
    /// change.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a range outside the array; the OS
    /// error otherwise (e.g. kernels before 5.14 lack the call: `EINVAL`).
    pub fn prefault_read(&self, range: impl RangeBounds<usize>) -> Result<()> {
        let map = self.mapping();
        let r = byte_range(map, self.dtype().itemsize(), range)?;
        map.madvise_data(r.start, r.len(), libc::MADV_POPULATE_READ)
            .map_err(|e| {
                Error::io("prefault for reading (MADV_POPULATE_READ) failed", e).at(self.path())
            })
    }

    /// Fault elements `range` into this process for writing now
    /// (`MADV_POPULATE_WRITE`), so later writes do not fault; on a full
    /// disk this fails here instead of with SIGBUS later. Contents never
    /// change, but on a disk-backed file the pages count as dirty.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`] on a read-only or copy-on-write
    /// handle (where it would copy every page); as
    /// [`UntypedArray::prefault_read`] otherwise.
    pub fn prefault_write(&self, range: impl RangeBounds<usize>) -> Result<()> {
        let map = self.mapping();
        let r = byte_range(map, self.dtype().itemsize(), range)?;
        if !map.writable() || map.is_cow() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "prefault_write needs a read-write handle (a copy-on-write one would copy every page); use prefault_read",
            )
            .at(self.path()));
        }
        map.madvise_data(r.start, r.len(), libc::MADV_POPULATE_WRITE)
            .map_err(|e| {
                Error::io("prefault for writing (MADV_POPULATE_WRITE) failed", e).at(self.path())
            })
    }

    /// Write the dirty pages covering elements `range` to disk and wait
    /// (`msync(MS_SYNC)` on that range only). A no-op for read-only and
    /// copy-on-write handles.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a range outside the array; the I/O
    /// error from `msync`.
    pub fn flush_range(&self, range: impl RangeBounds<usize>) -> Result<()> {
        let map = self.mapping();
        let r = byte_range(map, self.dtype().itemsize(), range)?;
        map.flush_data(r.start, r.len(), true)
    }

    /// Start writing the dirty pages covering elements `range` to disk and
    /// return at once (`sync_file_range(SYNC_FILE_RANGE_WRITE)`; Linux's
    /// `msync(MS_ASYNC)` would do nothing); [`UntypedArray::flush`] or
    /// [`UntypedArray::flush_range`] later waits for them.
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::flush_range`].
    pub fn flush_async(&self, range: impl RangeBounds<usize>) -> Result<()> {
        let map = self.mapping();
        let r = byte_range(map, self.dtype().itemsize(), range)?;
        map.flush_data(r.start, r.len(), false)
    }

    /// Drop elements `range` from this process's mapping and from the page
    /// cache (`madvise(MADV_DONTNEED)`, then `posix_fadvise(DONTNEED)`), so
    /// the next read comes from disk: for cold-read measurements and to give
    /// memory back after a scan. The data is unchanged. Pages that another
    /// process maps, dirty pages not yet written back (write-back starts
    /// here; [`UntypedArray::flush_range`] first to drop them too) and
    /// files in `/dev/shm` (RAM itself) stay.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a range outside the array; the OS
    /// error of `posix_fadvise`.
    pub fn evict(&self, range: impl RangeBounds<usize>) -> Result<()> {
        let map = self.mapping();
        let r = byte_range(map, self.dtype().itemsize(), range)?;
        if r.is_empty() {
            return Ok(());
        }
        if !map.is_cow() {
            map.madvise_data(r.start, r.len(), libc::MADV_DONTNEED)
                .map_err(|e| Error::io("madvise(DONTNEED) failed", e).at(self.path()))?;
        }
        sys::fadvise(
            map.shared_file().file(),
            map.file_offset(r.start),
            r.len() as u64,
            libc::POSIX_FADV_DONTNEED,
        )
        .map_err(|e| Error::io("posix_fadvise(DONTNEED) failed", e).at(self.path()))
    }
}

/// Typed forwarding: ranges are in elements of `T`.
macro_rules! forward_hints {
    ($ty:ident) => {
        impl<T: $crate::element::Element> $ty<T> {
            /// See [`UntypedArray::advise`].
            ///
            /// # Errors
            ///
            /// As [`UntypedArray::advise`].
            pub fn advise(
                &self,
                range: impl std::ops::RangeBounds<usize>,
                advice: $crate::advice::Advice,
            ) -> $crate::error::Result<$crate::advice::Advised> {
                self.untyped_ref().advise(range, advice)
            }

            /// See [`UntypedArray::evict`].
            ///
            /// # Errors
            ///
            /// As [`UntypedArray::evict`].
            pub fn evict(
                &self,
                range: impl std::ops::RangeBounds<usize>,
            ) -> $crate::error::Result<()> {
                self.untyped_ref().evict(range)
            }

            /// See [`UntypedArray::prefault_read`]; `prefault_read()`
            /// (no range) does the whole array and ignores errors.
            ///
            /// # Errors
            ///
            /// As [`UntypedArray::prefault_read`].
            pub fn prefault_read_range(
                &self,
                range: impl std::ops::RangeBounds<usize>,
            ) -> $crate::error::Result<()> {
                self.untyped_ref().prefault_read(range)
            }
        }
    };
}

use crate::array::SharedArray;
use crate::readonly::ReadOnlyArray;
forward_hints!(SharedArray);
forward_hints!(ReadOnlyArray);

impl<T: crate::element::Element> SharedArray<T> {
    fn untyped_ref(&self) -> &UntypedArray {
        self.untyped()
    }

    /// See [`UntypedArray::prefault_write`]; `prefault_write()` (no range)
    /// does the whole array and ignores errors.
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::prefault_write`].
    pub fn prefault_write_range(&self, range: impl RangeBounds<usize>) -> Result<()> {
        self.untyped().prefault_write(range)
    }

    /// See [`UntypedArray::flush_range`].
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::flush_range`].
    pub fn flush_range(&self, range: impl RangeBounds<usize>) -> Result<()> {
        self.untyped().flush_range(range)
    }

    /// See [`UntypedArray::flush_async`].
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::flush_async`].
    pub fn flush_async(&self, range: impl RangeBounds<usize>) -> Result<()> {
        self.untyped().flush_async(range)
    }
}
