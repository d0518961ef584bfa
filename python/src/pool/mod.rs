//! Worker pools from Python: `WorkQueue`, `Worker`, `Claim` and the
//! writable view of a claim's rows (`ClaimRows`).
//!
//! Python workers claim and complete chunks of the same queue file as Rust
//! workers. A claim's rows of an output array are handed out as a numpy view
//! in their own revocable window (see `lease.rs`): the view is revoked when
//! the rows are released or the claim completed/given back, before another
//! worker can own those rows.
//!
//! Laid out like the core's `pool`: the queue here, `worker.rs` (`Worker`),
//! `claim.rs` (`Claim`, `ClaimRows`).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyRange};
use sharray::pool::{ChunkState, DEFAULT_MAX_WORKERS};
use sharray::{ErrorKind, QueueProgress};

use crate::errors::{self, IntoPy};
use crate::handle::location;
use crate::lease;

mod claim;
mod worker;

pub(crate) use claim::{Claim, ClaimRows};
pub(crate) use worker::Worker;

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
        Ok(Worker::new(w, &self.path))
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
