//! Workers and their claims: the owned handles a worker process (or a
//! Python binding) holds while it processes chunks.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::WorkQueue;
use super::shared::{QueueShared, SLICE};
use crate::array::{Order, SharedArray, UntypedArray};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::file::Wait;
use crate::ranges::Span;

pub(crate) struct WorkerInner {
    q: Arc<QueueShared>,
    slot: u32,
    id: u32,
    dead: AtomicBool,
}

impl Drop for WorkerInner {
    fn drop(&mut self) {
        if !self.dead.load(Ordering::Relaxed) {
            self.q.deregister(self.slot);
        }
    }
}

/// A registered worker of a [`WorkQueue`]: it holds a kernel lock that dies
/// with its process, so when it dies its claimed chunks are re-queued.
///
/// Owned and cheap to move; `Send + Sync` (threads may share one worker; each
/// claim is still exclusive). Dropping the worker deregisters it once its
/// last [`Claim`] is gone.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use sharray::{SharedArray, WorkQueue};
/// let out = SharedArray::<f32>::create(dir.path().join("out.npy"), &[100, 8])?;
/// let q = WorkQueue::builder().rows(100).chunk_rows(16).create(dir.path().join("q.npy"))?;
/// let w = q.join()?;
/// while let Some(claim) = w.claim()? {
///     let first = claim.rows().start as f32;
///     let mut rows = claim.rows_mut(&out)?;   // exclusive among cooperating workers
///     rows.fill(first);
///     drop(rows);
///     claim.complete()?;
/// }
/// assert!(q.progress().is_complete());
/// assert_eq!(out.read()?[99 * 8], 96.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Worker {
    inner: Arc<WorkerInner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("path", &self.inner.q.path())
            .field("slot", &self.inner.slot)
            .field("id", &self.inner.id)
            .finish()
    }
}

impl Worker {
    pub(crate) fn register(q: Arc<QueueShared>) -> Result<Worker> {
        let (slot, id, _token) = q.register()?;
        Ok(Worker {
            inner: Arc::new(WorkerInner {
                q,
                slot,
                id,
                dead: AtomicBool::new(false),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &QueueShared {
        &self.inner.q
    }

    /// This worker's unique id (the `owner` field of the chunks it claims).
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    /// Index of this worker's entry in the queue's worker table.
    pub fn slot(&self) -> u32 {
        self.inner.slot
    }

    /// The queue this worker belongs to.
    pub fn queue(&self) -> WorkQueue {
        WorkQueue {
            shared: self.inner.q.clone(),
        }
    }

    fn claim_of(&self, index: u64) -> Claim {
        let r = self.inner.q.hdr.chunk_range(index);
        Claim {
            worker: self.inner.clone(),
            index: index as usize,
            rows: r.start as usize..r.end as usize,
            finished: false,
        }
    }

    /// Claim the next chunk without waiting: `Ok(None)` if none is claimable
    /// right now (all are done, or the rest are in flight). Does not look for
    /// dead workers; [`Worker::claim`] does.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for I/O errors of later formats.
    pub fn try_claim(&self) -> Result<Option<Claim>> {
        let q = &self.inner.q;
        Ok(q.try_claim(self.inner.id, self.inner.slot)
            .map(|i| self.claim_of(i)))
    }

    /// Claim the next chunk, waiting while every remaining chunk is in
    /// flight. Returns `Ok(None)` once every chunk is done. While waiting it
    /// re-queues the chunks of dead workers (checking every 50 ms), so a
    /// crashed worker's chunk comes back here.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::WorkQueue;
    /// let q = WorkQueue::builder().rows(10).chunk_rows(4).create(dir.path().join("q.npy"))?;
    /// let w = q.join()?;
    /// let first = w.claim()?.expect("chunks are pending");
    /// assert_eq!((first.index(), first.rows()), (0, 0..4));
    /// drop(first);                     // not completed: the chunk goes back
    /// let mut seen = Vec::new();
    /// while let Some(c) = w.claim()? {
    ///     seen.push(c.rows());
    ///     c.complete()?;
    /// }
    /// seen.sort_by_key(|r| r.start);   // the given-back chunk may come last
    /// assert_eq!(seen, [0..4, 4..8, 8..10]);
    /// assert!(w.claim()?.is_none());   // every chunk is done
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// I/O errors from the liveness locks (not expected on a local file).
    pub fn claim(&self) -> Result<Option<Claim>> {
        self.claim_with(Wait::Forever)
    }

    /// As [`Worker::claim`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if no chunk became claimable in time (other
    /// workers still hold the rest).
    pub fn claim_timeout(&self, timeout: Duration) -> Result<Option<Claim>> {
        self.claim_with(Wait::timeout(timeout))
    }

    fn claim_with(&self, wait: Wait) -> Result<Option<Claim>> {
        let q = &self.inner.q;
        loop {
            // Read the event word before looking, so a re-queue that happens
            // after our scan wakes the wait below at once.
            let seen = q.event().load(Ordering::SeqCst);
            if let Some(i) = q.try_claim(self.inner.id, self.inner.slot) {
                return Ok(Some(self.claim_of(i)));
            }
            if q.done() >= q.hdr.chunks {
                return Ok(None);
            }
            if q.reap()? > 0 {
                continue;
            }
            let left = wait.remaining();
            if left.is_some_and(|d| d.is_zero()) {
                let p = q.progress();
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no chunk became claimable in time: {} of {} done, {} in flight with live workers",
                        p.done, p.chunks, p.in_flight
                    ),
                )
                .at(q.path()));
            }
            q.wait_event(seen, left.map_or(SLICE, |d| d.min(SLICE)));
        }
    }

    /// Test hook: behave exactly as if this worker's process had been killed
    /// (its liveness lock is released; its entry and claims stay behind for a
    /// reaper). Claims of this worker must be dropped (they do nothing then).
    #[doc(hidden)]
    pub fn simulate_death(self) {
        self.inner.dead.store(true, Ordering::Relaxed);
        self.inner.q.simulate_death(self.inner.slot);
    }
}

/// An exclusive claim on one chunk of a [`WorkQueue`]: the lease that makes
/// the chunk's rows of the output array exclusive among cooperating workers.
///
/// Owned (`'static`, `Send + Sync`), so it can be stored in a struct or handed
/// to another thread. Finish it with [`Claim::complete`]; dropping it
/// otherwise gives the chunk back to the queue ([`Claim::abandon`]).
#[must_use = "dropping the claim gives the chunk back to the queue without completing it"]
pub struct Claim {
    worker: Arc<WorkerInner>,
    index: usize,
    rows: Range<usize>,
    finished: bool,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("index", &self.index)
            .field("rows", &self.rows)
            .field("worker", &self.worker.id)
            .finish()
    }
}

impl Claim {
    /// The chunk (or task) index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The rows of axis 0 this chunk covers (`index..index + 1` for a task
    /// queue).
    pub fn rows(&self) -> Range<usize> {
        self.rows.clone()
    }

    /// Mutable access to this chunk's rows of `out`, whose axis 0 must have
    /// the queue's row count. The claim is the lease: no other claim of this
    /// queue covers these rows. In this process the rows are also registered
    /// with the array's in-process range table, so no other view of this
    /// claim, guard or region lock of another thread can alias them.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ShapeMismatch`] if `out`'s axis 0 is not the queue's row
    /// count; [`ErrorKind::Unsupported`] for a Fortran-order array of more
    /// than one dimension (its rows are not contiguous);
    /// [`ErrorKind::PermissionDenied`] if `out` is read-only;
    /// [`ErrorKind::LockTimeout`] if a view of this claim is still alive, or
    /// another thread of this process holds a guard or region lock
    /// overlapping these rows.
    pub fn rows_mut<'a, T: Element>(&'a self, out: &'a SharedArray<T>) -> Result<RowsMut<'a, T>> {
        Ok(RowsMut {
            inner: self.rows_mut_untyped(out.untyped())?,
            _t: PhantomData,
        })
    }

    /// [`Claim::rows_mut`] for an array whose element type is known only at
    /// run time (front ends such as the Python package): the rows as bytes.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, UntypedArray, WorkQueue};
    /// let out = UntypedArray::builder(Dtype::parse_user("uint16")?)
    ///     .shape(&[10, 3])
    ///     .create(dir.path().join("out.npy"))?;
    /// let q = WorkQueue::builder().rows(10).chunk_rows(4).create(dir.path().join("q.npy"))?;
    /// let w = q.join()?;
    /// let c = w.claim()?.expect("a chunk");
    /// let mut rows = c.rows_mut_untyped(&out)?;
    /// assert_eq!((rows.byte_offset(), rows.bytes_mut().len()), (0, 4 * 3 * 2));
    /// drop(rows);
    /// c.complete()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Claim::rows_mut`].
    pub fn rows_mut_untyped<'a>(&'a self, out: &'a UntypedArray) -> Result<UntypedRowsMut<'a>> {
        Ok(UntypedRowsMut {
            lock: self.lock_rows_of(out)?,
            _claim: PhantomData,
        })
    }

    /// [`Claim::rows_mut_untyped`] for a claim shared through an `Arc`: the
    /// view borrows neither the claim nor `out` (it holds a reference to
    /// each), so it can be stored next to them, as front ends that hand
    /// views to a garbage-collected language do. The claim cannot be
    /// completed or given back while such a view exists: both need the
    /// `Claim` itself ([`Arc::try_unwrap`] succeeds once every view is gone).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use std::sync::Arc;
    /// use sharray::{Dtype, UntypedArray, WorkQueue};
    /// let out = UntypedArray::builder(Dtype::parse_user("uint8")?)
    ///     .shape(&[10, 3])
    ///     .create(dir.path().join("out.npy"))?;
    /// let q = WorkQueue::builder().rows(10).chunk_rows(4).create(dir.path().join("q.npy"))?;
    /// let w = q.join()?;
    /// let claim = Arc::new(w.claim()?.expect("a chunk"));
    /// let mut rows = claim.rows_mut_owned(&out)?;
    /// rows.bytes_mut().fill(7);
    /// assert!(Arc::try_unwrap(claim.clone()).is_err()); // the view holds it
    /// drop(rows);
    /// Arc::try_unwrap(claim).expect("no view left").complete()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Claim::rows_mut`].
    pub fn rows_mut_owned(self: &Arc<Self>, out: &UntypedArray) -> Result<OwnedUntypedRowsMut> {
        Ok(OwnedUntypedRowsMut {
            lock: self.lock_rows_of(out)?,
            _claim: Arc::clone(self),
        })
    }

    /// Check `out` and register this claim's rows of it in the in-process
    /// range table.
    fn lock_rows_of(&self, out: &UntypedArray) -> Result<RowsLock> {
        let q = &self.worker.q;
        let (off, len) = row_bytes_untyped(out, q.hdr.rows, self.rows.clone())?;
        if !out.is_writable() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "the output array was opened read-only; open it read-write to write rows",
            )
            .at(out.path()));
        }
        let map = out.mapping();
        let base = map.data_offset() as u64;
        let span = Span {
            start: base + off as u64,
            end: base + (off + len) as u64,
            exclusive: true,
        };
        let table = map.shared_file().ranges().clone();
        let ids = table
            .acquire(&[span], None, Wait::No)
            .map_err(|e| Error::io("cannot lock rows", e).at(out.path()))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::LockTimeout,
                    format!(
                        "rows {:?} are held by another guard or row lock of this process; drop it before writing through the claim",
                        self.rows
                    ),
                )
                .at(out.path())
            })?;
        Ok(RowsLock {
            array: out.share(),
            off,
            len,
            rows: self.rows.clone(),
            ids,
            dirty: false,
        })
    }

    /// Mark the chunk done.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the chunk no longer belongs to this
    /// worker (it was re-queued because the worker was taken for dead: only
    /// possible if its process lost its liveness lock, e.g. after a `fork`);
    /// discard the result then.
    pub fn complete(mut self) -> Result<()> {
        self.finished = true;
        let w = &self.worker;
        w.q.complete(self.index as u64, w.id, w.slot)
    }

    /// Give the chunk back to the queue unprocessed (another worker will
    /// claim it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the chunk had already been taken away.
    pub fn abandon(mut self) -> Result<()> {
        self.finished = true;
        if self
            .worker
            .q
            .abandon(self.index as u64, self.worker.id, self.worker.slot)
        {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Disconnected,
                format!("chunk {} no longer belonged to this worker", self.index),
            )
            .at(self.worker.q.path()))
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.finished && !self.worker.dead.load(Ordering::Relaxed) {
            self.worker
                .q
                .abandon(self.index as u64, self.worker.id, self.worker.slot);
        }
    }
}

/// Byte offset and length of `rows` of `a`, checking that axis 0 has
/// `expect_rows` rows (if given) and that rows are contiguous.
pub(crate) fn row_bytes<T: Element>(
    a: &SharedArray<T>,
    expect_rows: u64,
    rows: Range<usize>,
) -> Result<(usize, usize)> {
    row_bytes_untyped(a.untyped(), expect_rows, rows)
}

/// [`row_bytes`] for an untyped array (the element size is the dtype's).
pub(crate) fn row_bytes_untyped(
    a: &UntypedArray,
    expect_rows: u64,
    rows: Range<usize>,
) -> Result<(usize, usize)> {
    let shape = a.shape();
    let Some((&n, rest)) = shape.split_first() else {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            "a 0-d array has no rows; use an array with at least one axis",
        )
        .at(a.path()));
    };
    if n as u64 != expect_rows {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!("the array has {n} rows along axis 0 but the queue splits {expect_rows}; use an array of the queue's row count"),
        )
        .at(a.path()));
    }
    if a.order() == Order::F && rest.iter().any(|&d| d > 1) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "rows of a Fortran-order array are not contiguous; use a C-order array",
        )
        .at(a.path()));
    }
    let row = rest
        .iter()
        .try_fold(a.dtype().itemsize(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the array's row size overflows").at(a.path())
        })?;
    if rows.start > rows.end || rows.end > n {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("rows {rows:?} are outside the array's {n} rows"),
        )
        .at(a.path()));
    }
    // No overflow: rows.end <= n and n * row == nbytes, validated at open.
    Ok((rows.start * row, (rows.end - rows.start) * row))
}

/// A claim's rows of one array, registered in the array's in-process range
/// table: what the borrowed and owned row views share. Releases the rows
/// (and bumps the generation if they were borrowed mutably) on drop.
struct RowsLock {
    /// A handle on the array's mapping (kept alive while the rows are held).
    array: UntypedArray,
    /// Byte offset of the rows from the start of the data.
    off: usize,
    /// Byte length of the rows.
    len: usize,
    rows: Range<usize>,
    /// Range-table entries to release.
    ids: Vec<u64>,
    dirty: bool,
}

impl RowsLock {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the claim (borrowed or held by the view) makes these rows
        // exclusive among cooperating workers, and the in-process range
        // table excludes every other guard or view of this process.
        unsafe { self.array.mapping().data_bytes(self.off, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.dirty = true;
        // SAFETY: as `bytes`; `&mut self` makes this the only slice, and the
        // mapping is writable (checked in `Claim::lock_rows_of`).
        unsafe { self.array.mapping().data_bytes_mut(self.off, self.len) }
    }
}

impl Drop for RowsLock {
    fn drop(&mut self) {
        if self.dirty {
            self.array.bump_generation();
        }
        self.array
            .mapping()
            .shared_file()
            .ranges()
            .release(&self.ids, None);
    }
}

/// Mutable view of a claim's rows of an output array (`Deref<Target = [T]>`,
/// rows in C order): [`UntypedRowsMut`] with an element type. Borrowing
/// mutably marks the array changed: its generation is bumped when the view
/// is dropped.
#[must_use = "dropping the view releases the claim's rows at once"]
pub struct RowsMut<'a, T: Element> {
    inner: UntypedRowsMut<'a>,
    _t: PhantomData<&'a mut [T]>,
}

impl<T: Element> std::fmt::Debug for RowsMut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowsMut")
            .field("path", &self.inner.lock.array.path())
            .field("rows", &self.inner.lock.rows)
            .finish()
    }
}

impl<T: Element> RowsMut<'_, T> {
    /// The rows this view covers.
    pub fn rows(&self) -> Range<usize> {
        self.inner.rows()
    }
}

impl<T: Element> std::ops::Deref for RowsMut<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // Aligned: the typed handle checked the data offset, and rows start
        // at a multiple of the row size.
        bytemuck::cast_slice(self.inner.bytes())
    }
}

impl<T: Element> std::ops::DerefMut for RowsMut<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        bytemuck::cast_slice_mut(self.inner.bytes_mut())
    }
}

/// A claim's rows of an output array as bytes (see
/// [`Claim::rows_mut_untyped`]): the untyped counterpart of [`RowsMut`].
/// Borrowing mutably marks the array changed: its generation is bumped when
/// the view is dropped.
#[must_use = "dropping the view releases the claim's rows at once"]
pub struct UntypedRowsMut<'a> {
    lock: RowsLock,
    _claim: PhantomData<&'a Claim>,
}

impl std::fmt::Debug for UntypedRowsMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UntypedRowsMut")
            .field("path", &self.lock.array.path())
            .field("rows", &self.lock.rows)
            .finish()
    }
}

impl UntypedRowsMut<'_> {
    /// The rows this view covers.
    pub fn rows(&self) -> Range<usize> {
        self.lock.rows.clone()
    }

    /// Offset of the first byte of these rows from the start of the array's
    /// data (add [`UntypedArray::data_offset`] for the file offset).
    pub fn byte_offset(&self) -> usize {
        self.lock.off
    }

    /// The rows' bytes.
    pub fn bytes(&self) -> &[u8] {
        self.lock.bytes()
    }

    /// The rows' bytes, to write in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.lock.bytes_mut()
    }
}

/// A claim's rows of an output array that borrow nothing
/// ([`Claim::rows_mut_owned`]): [`UntypedRowsMut`] holding a reference to
/// its claim and to the array's mapping. `Send + Sync`. Borrowing mutably
/// marks the array changed: its generation is bumped when it is dropped.
#[must_use = "dropping the view releases the claim's rows at once"]
pub struct OwnedUntypedRowsMut {
    // Field order is drop order: the rows are released before the claim
    // reference (the last one gives the chunk back if it was not finished).
    lock: RowsLock,
    _claim: Arc<Claim>,
}

impl std::fmt::Debug for OwnedUntypedRowsMut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedUntypedRowsMut")
            .field("path", &self.lock.array.path())
            .field("rows", &self.lock.rows)
            .finish()
    }
}

impl OwnedUntypedRowsMut {
    /// The rows this view covers.
    pub fn rows(&self) -> Range<usize> {
        self.lock.rows.clone()
    }

    /// Offset of the first byte of these rows from the start of the array's
    /// data (add [`UntypedArray::data_offset`] for the file offset).
    pub fn byte_offset(&self) -> usize {
        self.lock.off
    }

    /// The rows' bytes.
    pub fn bytes(&self) -> &[u8] {
        self.lock.bytes()
    }

    /// The rows' bytes, to write in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.lock.bytes_mut()
    }
}

#[cfg(feature = "ndarray")]
mod views {
    use super::*;
    use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};

    fn shape<T: Element>(v: &RowsMut<'_, T>) -> Vec<usize> {
        let mut s = v.inner.lock.array.shape().to_vec();
        s[0] = v.inner.lock.rows.len();
        s
    }

    impl<T: Element> RowsMut<'_, T> {
        /// The rows as an n-d view (shape `(rows, *array.shape[1:])`).
        pub fn view(&self) -> ArrayViewD<'_, T> {
            ArrayViewD::from_shape(IxDyn(&shape(self)), &self[..])
                .expect("row shape matches the slice length")
        }

        /// The rows as a mutable n-d view.
        pub fn view_mut(&mut self) -> ArrayViewMutD<'_, T> {
            let s = shape(self);
            ArrayViewMutD::from_shape(IxDyn(&s), &mut self[..])
                .expect("row shape matches the slice length")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dtype;

    #[test]
    fn owned_rows_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<OwnedUntypedRowsMut>();
    }

    #[test]
    fn owned_rows_exclude_and_hold_the_claim() {
        let dir = tempfile::tempdir().unwrap();
        let out = UntypedArray::builder(Dtype::parse_user("uint8").unwrap())
            .shape(&[8, 2])
            .create(dir.path().join("out.npy"))
            .unwrap();
        let q = WorkQueue::builder()
            .rows(8)
            .chunk_rows(4)
            .create(dir.path().join("q.npy"))
            .unwrap();
        let w = q.join().unwrap();
        let claim = Arc::new(w.claim().unwrap().expect("a chunk"));
        let mut rows = claim.rows_mut_owned(&out).unwrap();
        assert_eq!((rows.rows(), rows.byte_offset()), (0..4, 0));
        rows.bytes_mut().fill(5);
        // The rows exclude other views of them and whole-array guards.
        let e = claim.rows_mut_untyped(&out).map(drop).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LockTimeout);
        assert!(out.try_read().unwrap().is_none());
        // The view holds the claim: it cannot be finished meanwhile.
        let claim = Arc::try_unwrap(claim).expect_err("the view holds a reference");
        drop(rows);
        assert_eq!(out.generation(), 1);
        assert_eq!(
            &out.read().unwrap().bytes()[..9],
            &[5, 5, 5, 5, 5, 5, 5, 5, 0]
        );
        Arc::try_unwrap(claim)
            .expect("no view left")
            .complete()
            .unwrap();
        assert_eq!(q.progress().done, 1);
    }

    #[test]
    fn a_claim_dropped_under_owned_rows_is_given_back_when_they_end() {
        let dir = tempfile::tempdir().unwrap();
        let out = UntypedArray::builder(Dtype::parse_user("uint8").unwrap())
            .shape(&[4])
            .create(dir.path().join("out.npy"))
            .unwrap();
        let q = WorkQueue::builder()
            .rows(4)
            .chunk_rows(4)
            .create(dir.path().join("q.npy"))
            .unwrap();
        let w = q.join().unwrap();
        let claim = Arc::new(w.claim().unwrap().expect("a chunk"));
        let rows = claim.rows_mut_owned(&out).unwrap();
        drop(claim);
        assert_eq!(q.progress().in_flight, 1, "the rows keep the claim");
        drop(rows);
        let p = q.progress();
        assert_eq!((p.in_flight, p.done), (0, 0), "given back");
        assert!(w.try_claim().unwrap().is_some());
    }
}
