//! A registered worker from Python: `Worker`.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use sharray::ErrorKind;

use crate::errors::{self, IntoPy};
use crate::fork::{self, Origin};
use crate::lease;

use super::claim::Claim;

/// A registered worker of a queue: claims chunks with `claim()` (or
/// `for claim in worker:`). It holds a kernel lock that dies with its
/// process, so a crashed worker's chunks are re-queued. `close()` (or
/// leaving a `with` block) deregisters it once its claims have ended.
#[pyclass(module = "sharray", name = "Worker", frozen)]
pub(crate) struct Worker {
    inner: Mutex<Option<Arc<sharray::Worker>>>,
    path: String,
    origin: Origin,
}

impl Worker {
    pub(super) fn new(w: sharray::Worker, path: &str) -> Worker {
        Worker {
            inner: Mutex::new(Some(Arc::new(w))),
            path: path.to_string(),
            origin: Origin::here(),
        }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Arc<sharray::Worker>> {
        self.origin.check(py, fork::WORKER, &self.path)?;
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
        if self.origin.is_forked() {
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
            self.origin.detach_drop_or_leak(py, w);
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
