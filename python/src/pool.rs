//! Worker pools from Python: `WorkQueue`, `Worker`, `Claim` and the
//! writable view of a claim's rows (`ClaimRows`).
//!
//! Python workers claim and complete chunks of the same queue file as Rust
//! workers. A claim's rows of an output array are handed out as a numpy view
//! in their own revocable window (see `lease.rs`): the view is revoked when
//! the rows are released or the claim completed/given back, before another
//! worker can own those rows.

use std::any::Any;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use numpy::PyArrayDescr;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyRange, PySlice, PyTuple};
use sharray::pool::{ChunkState, DEFAULT_MAX_WORKERS};
use sharray::{ErrorKind, QueueProgress};

use crate::errors::{self, IntoPy};
use crate::handle::{Inner, SharedArray, location};
use crate::lease::{self, HasViewSlot, ViewSlot, ViewSource};
use crate::window::{Region, ShadowPool};

fn progress_dict<'py>(py: Python<'py>, p: &QueueProgress) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("chunks", p.chunks)?;
    d.set_item("done", p.done)?;
    d.set_item("in_flight", p.in_flight)?;
    d.set_item("pending", p.pending)?;
    d.set_item("requeued", p.requeued)?;
    d.set_item("workers", p.workers)?;
    d.set_item("tasks", p.tasks)?;
    d.set_item("rows", p.rows)?;
    d.set_item("chunk_rows", p.chunk_rows)?;
    d.set_item("complete", p.is_complete())?;
    d.set_item("barrier_parties", p.barrier_parties)?;
    d.set_item("barrier_generation", p.barrier_generation)?;
    d.set_item("barrier_arrived", p.barrier_arrived)?;
    d.set_item("barrier_broken", p.barrier_broken)?;
    Ok(d)
}

fn forked_error(py: Python<'_>, path: &str) -> PyErr {
    errors::new(
        py,
        ErrorKind::Unsupported,
        "this worker was inherited through fork(), so its registration belongs to the parent process; open the queue again in this process and join it",
        Some(path),
    )
}

/// A chunk queue file: splits axis 0 of an array into chunks of rows (or
/// declares a number of tasks) for worker processes, Rust or Python.
///
/// `WorkQueue.create(...)` / `WorkQueue.open(path)`; workers `join()`, the
/// parent reads `progress()` and `wait_all()`. Pickles as its path.
#[pyclass(module = "sharray", name = "WorkQueue", frozen)]
pub(crate) struct WorkQueue {
    q: sharray::WorkQueue,
    path: String,
    readonly: bool,
}

impl WorkQueue {
    fn wrap(q: sharray::WorkQueue, readonly: bool) -> WorkQueue {
        WorkQueue {
            path: q.path().to_string_lossy().into_owned(),
            q,
            readonly,
        }
    }

    fn check_chunk(&self, i: usize) -> PyResult<()> {
        if i < self.q.chunks() {
            return Ok(());
        }
        Err(pyo3::exceptions::PyIndexError::new_err(format!(
            "chunk {i} out of range: the queue has {} chunks",
            self.q.chunks()
        )))
    }
}

#[pymethods]
impl WorkQueue {
    /// Create a queue file (never overwrites): either `rows` with
    /// `chunk_rows` (split axis 0 of an array of `rows` rows), or `tasks`.
    /// `barrier=n` adds a barrier of `n` parties.
    #[staticmethod]
    #[pyo3(signature = (path, rows=None, chunk_rows=None, tasks=None, max_workers=DEFAULT_MAX_WORKERS, barrier=0, mode=0o600))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        rows: Option<usize>,
        chunk_rows: Option<usize>,
        tasks: Option<usize>,
        max_workers: u32,
        barrier: u32,
        mode: u32,
    ) -> PyResult<WorkQueue> {
        let path = location(py, path)?;
        let mut b = sharray::WorkQueue::builder()
            .max_workers(max_workers)
            .barrier(barrier)
            .mode(mode);
        if let Some(r) = rows {
            b = b.rows(r);
        }
        if let Some(c) = chunk_rows {
            b = b.chunk_rows(c);
        }
        if let Some(t) = tasks {
            b = b.tasks(t);
        }
        let q = py.detach(|| b.create(&path)).py_err(py)?;
        Ok(WorkQueue::wrap(q, false))
    }

    /// Open a queue file (`readonly=True`: progress and chunk states only).
    #[staticmethod]
    #[pyo3(signature = (path, readonly=false))]
    fn open(py: Python<'_>, path: &Bound<'_, PyAny>, readonly: bool) -> PyResult<WorkQueue> {
        let path = location(py, path)?;
        let q = py
            .detach(|| {
                if readonly {
                    sharray::WorkQueue::open_read_only(&path)
                } else {
                    sharray::WorkQueue::open(&path)
                }
            })
            .py_err(py)?;
        Ok(WorkQueue::wrap(q, readonly))
    }

    /// The queue file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Number of chunks (or tasks).
    #[getter]
    fn chunks(&self) -> usize {
        self.q.chunks()
    }

    /// Rows along axis 0 (= chunks for a task queue).
    #[getter]
    fn rows(&self) -> usize {
        self.q.rows()
    }

    /// Rows per chunk (1 for a task queue).
    #[getter]
    fn chunk_rows(&self) -> usize {
        self.q.chunk_rows()
    }

    /// Is this a task queue (rather than rows of an array)?
    #[getter]
    fn tasks(&self) -> bool {
        self.q.is_tasks()
    }

    /// Size of the worker table.
    #[getter]
    fn max_workers(&self) -> u32 {
        self.q.max_workers()
    }

    /// Barrier party count (0: no barrier).
    #[getter]
    fn barrier_parties(&self) -> u32 {
        self.q.barrier_parties()
    }

    /// Was the queue opened read-only?
    #[getter]
    fn readonly(&self) -> bool {
        self.readonly
    }

    /// Is every chunk done?
    #[getter]
    fn done(&self) -> bool {
        self.q.is_done()
    }

    /// Register this process (or thread) as a worker.
    fn join(&self, py: Python<'_>) -> PyResult<Worker> {
        let q = self.q.clone();
        let w = py.detach(move || q.join()).py_err(py)?;
        Ok(Worker {
            inner: Mutex::new(Some(Arc::new(w))),
            path: self.path.clone(),
            pid: std::process::id(),
        })
    }

    /// A snapshot of the progress: a dict with chunks, done, in_flight,
    /// pending, requeued, workers (live), tasks, rows, chunk_rows,
    /// complete, and the barrier's state.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let q = &self.q;
        let p = py.detach(|| q.progress());
        progress_dict(py, &p)
    }

    /// Wait until every chunk is done, at most `timeout` seconds (None: as
    /// long as it takes), re-queueing the chunks of dead workers meanwhile;
    /// returns the final progress. Raises `sharray.Timeout` with the
    /// progress in the message.
    #[pyo3(signature = (timeout=None))]
    fn wait_all<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let q = &self.q;
        match lease::sliced(py, timeout, ErrorKind::Timeout, |slice| q.wait_all(slice))? {
            Ok(p) => progress_dict(py, &p),
            Err(e) if e.kind() == ErrorKind::Timeout => {
                let p = q.progress();
                Err(errors::new(
                    py,
                    ErrorKind::Timeout,
                    &format!(
                        "queue not finished after {} s: {} of {} chunks done, {} in flight, {} pending, {} live workers; raise the timeout or start workers",
                        timeout.unwrap_or_default(),
                        p.done,
                        p.chunks,
                        p.in_flight,
                        p.pending,
                        p.workers
                    ),
                    Some(&self.path),
                ))
            }
            Err(e) => Err(errors::to_py(py, &e)),
        }
    }

    /// Re-queue the chunks of dead workers now; returns how many.
    fn reap(&self, py: Python<'_>) -> PyResult<u64> {
        let q = &self.q;
        py.detach(|| q.reap()).py_err(py)
    }

    /// Clear a broken barrier and start a new generation (only while nobody
    /// waits on it).
    fn reset_barrier(&self, py: Python<'_>) -> PyResult<()> {
        self.q.reset_barrier().py_err(py)
    }

    /// The rows of chunk `i` (a `range`).
    fn chunk_range<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyRange>> {
        self.check_chunk(i)?;
        let r = self.q.chunk_range(i);
        PyRange::new(py, r.start as isize, r.end as isize)
    }

    /// The record of chunk `i`: a dict with state (`"pending"`,
    /// `"claimed"`, `"done"` or `"unknown"`), owner (worker id or None),
    /// claims and requeues.
    fn chunk<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyDict>> {
        self.check_chunk(i)?;
        let c = self.q.chunk(i);
        let (state, owner) = match c.state {
            ChunkState::Pending => ("pending", None),
            ChunkState::Claimed(w) => ("claimed", Some(w)),
            ChunkState::Done(w) => ("done", Some(w)),
            _ => ("unknown", None),
        };
        let d = PyDict::new(py);
        d.set_item("state", state)?;
        d.set_item("owner", owner)?;
        d.set_item("claims", c.claims)?;
        d.set_item("requeues", c.requeues)?;
        Ok(d)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String, bool))> {
        Ok((
            py.import("sharray._sharray")?.getattr("_queue_open")?,
            (self.path.clone(), self.readonly),
        ))
    }

    fn __repr__(&self) -> String {
        if self.q.is_tasks() {
            format!(
                "<sharray.WorkQueue {:?} tasks={}>",
                self.path,
                self.q.chunks()
            )
        } else {
            format!(
                "<sharray.WorkQueue {:?} rows={} chunk_rows={} chunks={}>",
                self.path,
                self.q.rows(),
                self.q.chunk_rows(),
                self.q.chunks()
            )
        }
    }
}

/// `WorkQueue.open` as a module function (what pickled queues call).
#[pyfunction]
#[pyo3(signature = (path, readonly=false))]
pub(crate) fn _queue_open(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    readonly: bool,
) -> PyResult<WorkQueue> {
    WorkQueue::open(py, path, readonly)
}

/// A registered worker of a queue: claims chunks with `claim()` (or
/// `for claim in worker:`). It holds a kernel lock that dies with its
/// process, so a crashed worker's chunks are re-queued. `close()` (or
/// leaving a `with` block) deregisters it once its claims have ended.
#[pyclass(module = "sharray", name = "Worker", frozen)]
pub(crate) struct Worker {
    inner: Mutex<Option<Arc<sharray::Worker>>>,
    path: String,
    pid: u32,
}

impl Worker {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<sharray::Worker>> {
        if self.pid != std::process::id() {
            return Err(forked_error(py, &self.path));
        }
        self.inner.lock().clone().ok_or_else(|| {
            errors::new(
                py,
                ErrorKind::InvalidInput,
                "this worker is closed; join the queue again with queue.join()",
                Some(&self.path),
            )
        })
    }

    fn claim_inner(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Claim>> {
        let w = self.get(py)?;
        let got = lease::sliced(py, timeout, ErrorKind::Timeout, |slice| {
            w.claim_timeout(slice)
        })?
        .py_err(py)?;
        Ok(got.map(|c| Claim::wrap(c, &self.path)))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // Forked child: deregistering would release the parent's lock.
            std::mem::forget(self.inner.get_mut().take());
        }
    }
}

#[pymethods]
impl Worker {
    /// Claim the next chunk, waiting while every remaining chunk is in
    /// flight (at most `timeout` seconds; None: as long as it takes).
    /// Returns None once every chunk is done. Raises `sharray.Timeout`.
    #[pyo3(signature = (timeout=None))]
    fn claim(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Claim>> {
        self.claim_inner(py, timeout)
    }

    /// Claim a chunk if one is claimable now, else None.
    fn try_claim(&self, py: Python<'_>) -> PyResult<Option<Claim>> {
        let w = self.get(py)?;
        Ok(w.try_claim()
            .py_err(py)?
            .map(|c| Claim::wrap(c, &self.path)))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next claim (as `claim()`); ends when every chunk is done. Each
    /// claim must be completed (`claim.complete()` or `with claim:`); one
    /// dropped unfinished goes back to the queue.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Claim>> {
        self.claim_inner(py, None)
    }

    /// Wait at the queue's barrier until all parties have arrived (at most
    /// `timeout` seconds; None: as long as it takes). Returns
    /// `(generation, is_leader)`; exactly one participant per generation is
    /// the leader. Raises `sharray.Disconnected` if a participant died,
    /// `sharray.Timeout` (the arrival is withdrawn).
    #[pyo3(signature = (timeout=None))]
    fn barrier_wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(u32, bool)> {
        let w = self.get(py)?;
        let r = lease::sliced(py, timeout, ErrorKind::Timeout, |slice| {
            w.barrier_wait(Some(slice))
        })?
        .py_err(py)?;
        Ok((r.generation, r.is_leader))
    }

    /// This worker's unique id (the owner recorded in its chunks).
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.id())
    }

    /// Index of this worker's entry in the worker table.
    #[getter]
    fn slot(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.slot())
    }

    /// Has `close()` been called?
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }

    /// Deregister (idempotent); claims still open keep the registration
    /// until they end.
    fn close(&self, py: Python<'_>) {
        let w = self.inner.lock().take();
        if let Some(w) = w {
            lease::detach_unless_forked(py, self.pid, w);
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<sharray.Worker of {:?}{state}>", self.path)
    }
}

/// Where the views of one claim's rows of one array come from.
struct RowsSource {
    inner: Arc<Inner>,
    shape: Vec<usize>,
}

impl ViewSource for RowsSource {
    fn fd(&self) -> BorrowedFd<'_> {
        self.inner.array.as_fd()
    }
    fn descr(&self) -> &Py<PyArrayDescr> {
        &self.inner.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn itemsize(&self) -> usize {
        self.inner.array.dtype().itemsize()
    }
    fn label(&self) -> &str {
        &self.inner.path
    }
    fn owner(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self.inner.clone()
    }
}

struct RowsHeld {
    /// Held for its `Drop` (releases the rows in the in-process range
    /// table, bumps the generation); it holds the claim, so the claim
    /// cannot finish while the rows are out.
    #[allow(dead_code)]
    rows: sharray::OwnedUntypedRowsMut,
    view: ViewSlot,
}

impl HasViewSlot for RowsHeld {
    fn slot(&mut self) -> &mut ViewSlot {
        &mut self.view
    }
}

type RowsSlot = Mutex<Option<RowsHeld>>;

/// Revoke the view, then release the rows (idempotent).
fn end_rows(slot: &RowsSlot, forked: bool) {
    let held = slot.lock().take();
    if let Some(mut h) = held {
        let view = h.view.revoke();
        if forked {
            std::mem::forget(h);
        } else {
            drop(h);
        }
        drop(view);
    }
}

struct ClaimHeld {
    // Shared with the rows views (`OwnedUntypedRowsMut` holds a clone); it
    // is unwrapped to finish the claim once they have ended.
    claim: Arc<sharray::Claim>,
    rows: Vec<Arc<RowsSlot>>,
}

/// An exclusive claim on one chunk of a queue: its rows of the output are
/// this worker's until the claim ends.
///
/// `claim.rows` (a `range`) / `claim.slice` (for `x[claim.slice]`) say
/// which rows; `with claim.rows_mut(out) as y:` gives a writable numpy view
/// of them. Finish with `complete()`; `abandon()` (or dropping the claim
/// unfinished) gives the chunk back. `with claim:` completes on a normal
/// exit and gives the chunk back on an exception.
#[pyclass(module = "sharray", name = "Claim", frozen)]
pub(crate) struct Claim {
    state: Mutex<Option<ClaimHeld>>,
    index: usize,
    rows: Range<usize>,
    path: String,
    pid: u32,
    completed: Mutex<bool>,
}

impl Claim {
    fn wrap(c: sharray::Claim, path: &str) -> Claim {
        Claim {
            index: c.index(),
            rows: c.rows(),
            state: Mutex::new(Some(ClaimHeld {
                claim: Arc::new(c),
                rows: Vec::new(),
            })),
            path: path.to_string(),
            pid: std::process::id(),
            completed: Mutex::new(false),
        }
    }

    fn forked(&self) -> bool {
        self.pid != std::process::id()
    }

    fn ended_error(&self, py: Python<'_>) -> PyErr {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            &format!(
                "the claim on chunk {} has ended (completed or given back); claim another with worker.claim()",
                self.index
            ),
            Some(&self.path),
        )
    }

    /// End the claim's row views, then hand the claim out (None if ended).
    fn take(&self) -> Option<Arc<sharray::Claim>> {
        let held = self.state.lock().take()?;
        for r in &held.rows {
            end_rows(r, self.forked());
        }
        Some(held.claim)
    }

    fn finish(&self, py: Python<'_>, complete: bool) -> PyResult<()> {
        if self.forked() {
            return Err(forked_error(py, &self.path));
        }
        let Some(claim) = self.take() else {
            return Err(self.ended_error(py));
        };
        // `take` ended every rows view, so no other reference is left.
        let claim = Arc::try_unwrap(claim).map_err(|_| {
            errors::new(
                py,
                ErrorKind::InvalidInput,
                "a rows view of this claim is still held; release it first",
                Some(&self.path),
            )
        })?;
        if complete {
            claim.complete().py_err(py)?;
            *self.completed.lock() = true;
            Ok(())
        } else {
            claim.abandon().py_err(py)
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Dropping an unfinished claim gives the chunk back, except in a
        // forked child (the claim belongs to the parent's worker).
        if let Some(c) = self.take()
            && self.forked()
        {
            std::mem::forget(c);
        }
    }
}

#[pymethods]
impl Claim {
    /// The chunk (or task) index.
    #[getter]
    fn index(&self) -> usize {
        self.index
    }

    /// The rows of axis 0 this chunk covers, as a `range`.
    #[getter]
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyRange>> {
        PyRange::new(py, self.rows.start as isize, self.rows.end as isize)
    }

    /// `slice(start, stop)` of the rows: `x[claim.slice]` is a view.
    #[getter]
    fn slice<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // `slice(start, stop)` (step None), as Python code would write it.
        py.get_type::<PySlice>()
            .call1((self.rows.start, self.rows.end))
    }

    /// First row.
    #[getter]
    fn start(&self) -> usize {
        self.rows.start
    }

    /// One past the last row.
    #[getter]
    fn stop(&self) -> usize {
        self.rows.end
    }

    /// Is the claim still held (not completed or given back)?
    #[getter]
    fn active(&self) -> bool {
        self.state.lock().is_some()
    }

    /// Was the claim completed?
    #[getter]
    fn completed(&self) -> bool {
        *self.completed.lock()
    }

    /// A writable view of this chunk's rows of `out` (a `sharray` array
    /// opened read-write whose axis 0 has the queue's row count, C order):
    /// `with claim.rows_mut(out) as y: y[:] = ...`. The view ends (is
    /// revoked) when the `with` block ends, `release()` is called, or the
    /// claim ends. Raises `sharray.LockTimeout` if another guard or rows
    /// view of this process overlaps these rows.
    fn rows_mut(slf: &Bound<'_, Self>, out: &Bound<'_, SharedArray>) -> PyResult<ClaimRows> {
        let py = slf.py();
        let this = slf.get();
        if this.forked() {
            return Err(forked_error(py, &this.path));
        }
        let inner = out.get().get(py)?;
        let mut state = this.state.lock();
        let Some(held) = state.as_mut() else {
            drop(state);
            return Err(this.ended_error(py));
        };
        let mut rows = match held.claim.rows_mut_owned(&inner.array) {
            Ok(r) => r,
            Err(e) => {
                drop(state);
                return Err(errors::to_py(py, &e));
            }
        };
        // The view is writable: count the rows as changed (the array's
        // generation is bumped when they are released).
        let _ = rows.bytes_mut();
        let mut shape = inner.array.shape().to_vec();
        shape[0] = this.rows.len();
        let region = Region::new(
            inner.array.data_offset() + rows.byte_offset() as u64,
            rows.bytes().len(),
            true,
        );
        let source = Arc::new(RowsSource {
            inner: inner.clone(),
            shape,
        });
        let slot = Arc::new(Mutex::new(Some(RowsHeld {
            rows,
            view: ViewSlot::new(Arc::new(ShadowPool::for_leases(region, 0)), source, true),
        })));
        held.rows.retain(|r| r.lock().is_some());
        held.rows.push(slot.clone());
        drop(state);
        Ok(ClaimRows {
            slot,
            claim: slf.clone().unbind(),
            rows: this.rows.clone(),
            path: this.path.clone(),
        })
    }

    /// Mark the chunk done (row views are revoked first). Raises
    /// `sharray.Disconnected` if the chunk was taken away meanwhile (this
    /// worker was taken for dead).
    fn complete(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, true)
    }

    /// Give the chunk back unprocessed (row views are revoked first).
    fn abandon(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, false)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Complete on a normal exit (if still active), give the chunk back on
    /// an exception. Never suppresses exceptions.
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if !self.active() {
            return Ok(false);
        }
        let failed = exc_type.is_some_and(|t| !t.is_none());
        self.finish(py, !failed)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.active() {
            "held"
        } else if self.completed() {
            "completed"
        } else {
            "given back"
        };
        format!(
            "<sharray.Claim chunk={} rows={}..{} {state}>",
            self.index, self.rows.start, self.rows.end
        )
    }
}

/// A claim's rows of an output array, as a writable numpy view: a context
/// manager (`with claim.rows_mut(out) as y:`). When it ends (`__exit__`,
/// `release()`, the claim ending, garbage collection) the view becomes
/// read-only and it and every view derived from it are cut off from the
/// file.
#[pyclass(module = "sharray", name = "ClaimRows", frozen)]
pub(crate) struct ClaimRows {
    slot: Arc<RowsSlot>,
    claim: Py<Claim>,
    rows: Range<usize>,
    path: String,
}

impl ClaimRows {
    fn view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        lease::view_of(py, &self.slot, |py| {
            errors::new(
                py,
                ErrorKind::InvalidInput,
                "these rows were released (or their claim ended); take them again with claim.rows_mut(out)",
                Some(&self.path),
            )
        })
    }

    fn end(&self) {
        end_rows(&self.slot, self.claim.get().forked());
    }
}

impl Drop for ClaimRows {
    fn drop(&mut self) {
        self.end();
    }
}

#[pymethods]
impl ClaimRows {
    /// The writable numpy view of the rows.
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view(py)
    }

    /// Release the rows (the view is revoked first). Never suppresses
    /// exceptions.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.end();
        false
    }

    /// The writable numpy view (made on first use, then the same object).
    #[getter(view)]
    fn view_getter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view(py)
    }

    /// Release the rows now (idempotent); the view is revoked first.
    fn release(&self) {
        self.end();
    }

    /// Are the rows still held?
    #[getter]
    fn active(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// The rows covered, as a `range`.
    #[getter]
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyRange>> {
        PyRange::new(py, self.rows.start as isize, self.rows.end as isize)
    }

    /// Debug: `(address, length)` of the mapping the view lives in.
    #[getter]
    fn _window(&self) -> Option<(usize, usize)> {
        self.slot
            .lock()
            .as_ref()
            .and_then(|h| h.view.window.as_ref())
            .map(|w| w.range())
    }

    fn __repr__(&self) -> String {
        format!(
            "<sharray.ClaimRows {}..{}{} of {:?}>",
            self.rows.start,
            self.rows.end,
            if self.active() { "" } else { " released" },
            self.path
        )
    }
}
