//! Row-region locks: shared or exclusive locks on ranges of rows of a
//! [`SharedArray`], for workers whose writes may overlap.
//!
//! Across processes a region lock is an OFD byte-range lock on the data bytes
//! of those rows (`F_OFD_SETLK`, released by the kernel when the holder
//! dies), so a C or Python peer can take the very same lock with `fcntl`.
//! Within a process, where all handles share one open file description and
//! the kernel cannot tell threads apart, the array's in-process range table
//! excludes threads (and keeps region locks, claim views and whole-array
//! guards of this process from aliasing each other).
//!
//! Several regions are taken in one call, all or nothing: in-process
//! conflicts are waited for on a condition variable; cross-process conflicts
//! release everything taken and retry after a jittered, growing sleep
//! (50 us to 5 ms). Nobody ever waits while holding part of a request, so two
//! callers asking for the same regions in opposite orders cannot deadlock.
//!
//! Region locks and whole-array locks (`flock`) are independent across
//! processes: do not mix them on one array while other processes write it.

#![allow(unsafe_code)]

use std::ops::Range;
use std::os::fd::AsFd;
use std::time::Duration;

use super::queue::row_bytes;
use crate::array::{SharedArray, UntypedArray};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::file::Wait;
use crate::ranges::Span;

/// Shared (many readers) or exclusive (one writer) access to rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowMode {
    /// Read access; other shared holders may hold overlapping rows.
    Shared,
    /// Write access; nobody else holds any overlapping row.
    Exclusive,
}

struct Region {
    rows: Range<usize>,
    mode: RowMode,
    off: usize,
    len: usize,
}

/// Held row-region locks on a [`SharedArray`]. Access the `k`-th region of
/// the request with [`RowsGuard::get`] / [`RowsGuard::get_mut`]. Dropping the
/// guard releases every region (and bumps the array's generation if any
/// region was borrowed mutably).
#[must_use = "dropping the guard releases the row locks at once"]
pub struct RowsGuard<'a, T: Element> {
    array: &'a SharedArray<T>,
    regions: Vec<Region>,
    ids: Vec<u64>,
    dirty: bool,
}

impl<T: Element> SharedArray<T> {
    /// Lock `rows` (of axis 0) in `mode`, waiting as long as it takes.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{RowMode, SharedArray};
    /// let a = SharedArray::<u32>::create(dir.path().join("a.npy"), &[10, 4])?;
    /// let mut g = a.lock_rows(2..5, RowMode::Exclusive)?;
    /// g.get_mut(0).unwrap().fill(7);                  // rows 2, 3, 4
    /// assert!(a.try_lock_rows(4..6, RowMode::Shared)?.is_none());   // overlaps
    /// assert!(a.try_lock_rows(5..6, RowMode::Exclusive)?.is_some()); // disjoint
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SharedArray::lock_rows_many`].
    pub fn lock_rows(&self, rows: Range<usize>, mode: RowMode) -> Result<RowsGuard<'_, T>> {
        self.lock_regions(&[(rows, mode)], Wait::Forever)
    }

    /// Lock `rows` in `mode` if that is possible right now; `Ok(None)` if
    /// another process or thread holds a conflicting lock.
    ///
    /// # Errors
    ///
    /// As [`SharedArray::lock_rows_many`], except that a conflict is `Ok(None)`.
    pub fn try_lock_rows(
        &self,
        rows: Range<usize>,
        mode: RowMode,
    ) -> Result<Option<RowsGuard<'_, T>>> {
        match self.lock_regions(&[(rows, mode)], Wait::No) {
            Ok(g) => Ok(Some(g)),
            Err(e) if e.kind() == ErrorKind::LockTimeout => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lock `rows` in `mode`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`SharedArray::lock_rows_many`].
    pub fn lock_rows_timeout(
        &self,
        rows: Range<usize>,
        mode: RowMode,
        timeout: Duration,
    ) -> Result<RowsGuard<'_, T>> {
        self.lock_regions(&[(rows, mode)], Wait::timeout(timeout))
    }

    /// Lock several disjoint row ranges at once, all or nothing, without
    /// deadlock whatever order other callers list them in. `timeout: None`
    /// waits as long as it takes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::LockTimeout`] when the wait expires;
    /// [`ErrorKind::InvalidInput`] for rows outside the array or regions that
    /// overlap each other; [`ErrorKind::PermissionDenied`] for an exclusive
    /// region on a read-only handle; [`ErrorKind::Unsupported`] for a
    /// Fortran-order array of more than one dimension; OS errors from
    /// `fcntl`.
    pub fn lock_rows_many(
        &self,
        regions: &[(Range<usize>, RowMode)],
        timeout: Option<Duration>,
    ) -> Result<RowsGuard<'_, T>> {
        self.lock_regions(regions, timeout.map_or(Wait::Forever, Wait::timeout))
    }

    fn lock_regions(
        &self,
        req: &[(Range<usize>, RowMode)],
        wait: Wait,
    ) -> Result<RowsGuard<'_, T>> {
        let n = self.shape().first().copied().unwrap_or(0) as u64;
        let mut regions = Vec::with_capacity(req.len());
        for (rows, mode) in req {
            let (off, len) = row_bytes(self, n, rows.clone())?;
            regions.push(Region {
                rows: rows.clone(),
                mode: *mode,
                off,
                len,
            });
        }
        let mut sorted: Vec<&Region> = regions.iter().filter(|r| r.len > 0).collect();
        sorted.sort_by_key(|r| r.off);
        if let Some(w) = sorted.windows(2).find(|w| w[0].off + w[0].len > w[1].off) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "regions {:?} and {:?} overlap; merge them into one region",
                    w[0].rows, w[1].rows
                ),
            )
            .at(self.path()));
        }
        let untyped = self.untyped();
        if !untyped.is_writable() && regions.iter().any(|r| r.mode == RowMode::Exclusive) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this handle was opened read-only; open it read-write to lock rows exclusively",
            )
            .at(self.path()));
        }
        let map = untyped.mapping();
        let base = map.data_offset() as u64;
        let spans: Vec<Span> = regions
            .iter()
            .map(|r| Span {
                start: base + r.off as u64,
                end: base + (r.off + r.len) as u64,
                exclusive: r.mode == RowMode::Exclusive,
            })
            .collect();
        let ids = acquire_spans(untyped, &spans, wait)?;
        Ok(RowsGuard {
            array: self,
            regions,
            ids,
            dirty: false,
        })
    }
}

impl<T: Element> std::fmt::Debug for RowsGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let regions: Vec<_> = self.regions.iter().map(|r| (&r.rows, r.mode)).collect();
        f.debug_struct("RowsGuard")
            .field("path", &self.array.path())
            .field("regions", &regions)
            .finish()
    }
}

impl<T: Element> RowsGuard<'_, T> {
    /// Number of regions held.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Is the request empty?
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Rows of region `k`.
    ///
    /// # Panics
    ///
    /// If `k >= self.len()`.
    pub fn rows(&self, k: usize) -> Range<usize> {
        self.regions[k].rows.clone()
    }

    /// The elements of region `k` (rows in C order).
    ///
    /// # Panics
    ///
    /// If `k >= self.len()`.
    pub fn get(&self, k: usize) -> &[T] {
        let r = &self.regions[k];
        // SAFETY: we hold a shared or exclusive lock on these rows against
        // cooperating processes and threads of this process.
        bytemuck::cast_slice(unsafe { self.array.untyped().mapping().data_bytes(r.off, r.len) })
    }

    /// The elements of region `k`, mutably; `None` if that region is shared
    /// or `k` is out of range.
    pub fn get_mut(&mut self, k: usize) -> Option<&mut [T]> {
        let r = self.regions.get(k)?;
        if r.mode != RowMode::Exclusive {
            return None;
        }
        self.dirty = true;
        // SAFETY: we hold an exclusive lock on these rows (the handle is
        // writable, checked when locking); `&mut self` keeps it the only
        // slice of this guard.
        let b = unsafe { self.array.untyped().mapping().data_bytes_mut(r.off, r.len) };
        Some(bytemuck::cast_slice_mut(b))
    }
}

impl<T: Element> Drop for RowsGuard<'_, T> {
    fn drop(&mut self) {
        if self.dirty {
            self.array.untyped().bump_generation();
        }
        let file = self.array.untyped().mapping().shared_file();
        file.ranges().release(&self.ids, Some(file.file().as_fd()));
    }
}

/// Take the row-region locks `spans` (file offsets) of `array`: OFD locks
/// across processes and the range table across this process's threads.
/// Returns the ids to release.
pub(super) fn acquire_spans(array: &UntypedArray, spans: &[Span], wait: Wait) -> Result<Vec<u64>> {
    let file = array.mapping().shared_file();
    file.ranges()
        .acquire(spans, Some(file.file().as_fd()), wait)
        .map_err(|e| Error::io("cannot lock rows", e).at(array.path()))?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::LockTimeout,
                "timed out waiting for a row lock; another process or thread holds overlapping rows, retry or raise the timeout",
            )
            .at(array.path())
        })
}
