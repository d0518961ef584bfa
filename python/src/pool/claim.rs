//! A claim from Python: `Claim` and the writable view of its rows,
//! `ClaimRows`.

use std::any::Any;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use numpy::PyArrayDescr;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyRange, PySlice, PyTuple};
use sharray::ErrorKind;

use crate::errors::{self, IntoPy};
use crate::fork::{self, Origin};
use crate::handle::{Inner, SharedArray};
use crate::lease::{self, HasViewSlot, ViewSlot, ViewSource};
use crate::window::{Region, ShadowPool};

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
    fn copy_ok(&self) -> bool {
        false
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
fn end_rows(slot: &RowsSlot, origin: Origin) {
    let held = slot.lock().take();
    if let Some(mut h) = held {
        let view = h.view.revoke();
        origin.drop_or_leak(h);
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
    origin: Origin,
    completed: Mutex<bool>,
}

impl Claim {
    pub(super) fn wrap(c: sharray::Claim, path: &str) -> Claim {
        Claim {
            index: c.index(),
            rows: c.rows(),
            state: Mutex::new(Some(ClaimHeld {
                claim: Arc::new(c),
                rows: Vec::new(),
            })),
            path: path.to_string(),
            origin: Origin::here(),
            completed: Mutex::new(false),
        }
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
            end_rows(r, self.origin);
        }
        Some(held.claim)
    }

    fn finish(&self, py: Python<'_>, complete: bool) -> PyResult<()> {
        if self.origin.is_forked() {
            return Err(Origin::error(py, fork::WORKER, &self.path));
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
        if let Some(c) = self.take() {
            self.origin.drop_or_leak(c);
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
        if this.origin.is_forked() {
            return Err(Origin::error(py, fork::WORKER, &this.path));
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
        end_rows(&self.slot, self.claim.get().origin);
    }
}

impl Drop for ClaimRows {
    fn drop(&mut self) {
        self.end();
    }
}

#[pymethods]
impl ClaimRows {
    /// DLPack export of the view, no copy (`np.from_dlpack(x)`,
    /// `torch.from_dlpack(x)`): a `dltensor_versioned` capsule when
    /// `max_version >= (1, 0)` (read-only flag on read views), else a legacy
    /// `dltensor` one. What the consumer holds is revoked with the view.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        stream: Option<&Bound<'_, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let view = self.view(py)?;
        crate::dlpack::export(py, view, true, stream, max_version, dl_device, copy)
    }

    /// `(1, 0)`: kDLCPU, device 0.
    fn __dlpack_device__(&self) -> (i32, i32) {
        crate::dlpack::device()
    }

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
