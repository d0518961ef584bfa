//! The producer side from Python: `Producer` and its `WriteLoan`.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use sharray::ErrorKind;

use crate::errors::{self, IntoPy};
use crate::lease::{self, HasViewSlot, ViewSlot};

use super::{RingShared, closed_error};

/// A registered producer of a ring. Loan slots with `loan()`, or copy an
/// array in with `send()`. `close()` ends the stream (consumers drain it,
/// then their iteration ends) and detaches; `detach()` only detaches, and
/// consumers keep waiting for the next producer. Leaving a `with` block
/// normally closes; leaving it with an exception only detaches.
#[pyclass(module = "sharray", name = "Producer", frozen)]
pub(crate) struct Producer {
    shared: Arc<RingShared>,
    inner: Mutex<Option<Arc<sharray::Producer>>>,
}

impl Producer {
    pub(super) fn new(shared: &Arc<RingShared>, p: sharray::Producer) -> Producer {
        Producer {
            shared: shared.clone(),
            inner: Mutex::new(Some(Arc::new(p))),
        }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Arc<sharray::Producer>> {
        self.shared.check_pid(py)?;
        self.inner
            .lock()
            .clone()
            .ok_or_else(|| closed_error(py, "producer", &self.shared.path))
    }

    fn loan_inner(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<WriteLoan> {
        let loan = self.take_slot(py, timeout)?;
        WriteLoan::wrap(py, &self.shared, loan, tag, valid_len)
    }

    /// A free slot, waiting at most `timeout` seconds. A slot free now is
    /// taken with the GIL held (no wait, so no need to release it).
    fn take_slot(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<sharray::WriteLoan> {
        let p = self.get(py)?;
        match p.try_loan() {
            Ok(loan) => Ok(loan),
            Err(sharray::TryLoanError::Error(e)) => Err(errors::to_py(py, &e)),
            Err(sharray::TryLoanError::Full) => {
                lease::sliced(py, timeout, ErrorKind::Timeout, |slice| {
                    p.loan_timeout(slice)
                })?
                .py_err(py)
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.shared.origin.is_forked() {
            // Forked child: detaching would release the parent's lock.
            std::mem::forget(self.inner.get_mut().take());
        }
    }
}

#[pymethods]
impl Producer {
    /// Loan a free slot, waiting at most `timeout` seconds (None: as long
    /// as it takes; raises `sharray.Timeout`). `tag` and `valid_len` (bytes)
    /// are delivered with the frame; both can also be set on the loan.
    #[pyo3(signature = (timeout=None, tag=0, valid_len=None))]
    fn loan(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<WriteLoan> {
        self.loan_inner(py, timeout, tag, valid_len)
    }

    /// Await a free slot without blocking the event loop (asyncio);
    /// arguments and errors as `loan()`. Cancelling the task unregisters it.
    #[pyo3(signature = (timeout=None, tag=0, valid_len=None))]
    fn loan_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::module(slf.py())?.call_method1("loan_async", (slf, timeout, tag, valid_len))
    }

    fn _waiter(&self, py: Python<'_>) -> PyResult<crate::aio::AsyncWaiter> {
        let p = self.get(py)?;
        crate::aio::AsyncWaiter::new(
            py,
            p.waiter(),
            "timed out waiting for a free ring slot; consumers are not keeping up, retry or raise the timeout",
            &self.shared.path,
        )
    }

    /// Loan a free slot if one is free now; `None` if every slot is busy.
    #[pyo3(signature = (tag=0, valid_len=None))]
    fn try_loan(
        &self,
        py: Python<'_>,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<Option<WriteLoan>> {
        let p = self.get(py)?;
        match p.try_loan() {
            Ok(loan) => Ok(Some(WriteLoan::wrap(
                py,
                &self.shared,
                loan,
                tag,
                valid_len,
            )?)),
            Err(sharray::TryLoanError::Full) => Ok(None),
            Err(sharray::TryLoanError::Error(e)) => Err(errors::to_py(py, &e)),
        }
    }

    /// Copy `data` (anything numpy can broadcast to the frame shape) into a
    /// loaned slot and commit it; returns the sequence number. A
    /// C-contiguous array of the frame's dtype and shape is copied straight
    /// into the slot, with no view made: the cheapest way to send frames up
    /// to about 16 KiB; above, fill `loan.view` as a temporary (BENCHMARKS.md,
    /// "Idioms per frame size").
    #[pyo3(signature = (data, timeout=None, tag=0))]
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        tag: u64,
    ) -> PyResult<u64> {
        if self.shared.frame_buffer(py, data, false).is_ok() {
            let mut loan = self.take_slot(py, timeout)?;
            // Waiting for the slot released the GIL: look at `data` again.
            if let Ok(src) = self.shared.frame_buffer(py, data, false) {
                src.copy_to(loan.bytes_mut());
                loan.set_tag(tag);
                return loan.commit().py_err(py);
            }
            // Another thread changed it meanwhile: the general path below.
            drop(loan);
        }
        let loan = self.loan_inner(py, timeout, tag, None)?;
        let view = loan.view(py)?;
        if let Err(e) = py
            .import("numpy")?
            .call_method1("copyto", (view.bind(py), data))
        {
            loan.end(py);
            return Err(e);
        }
        loan.commit(py)
    }

    /// This producer's index in the ring's participant table.
    #[getter]
    fn index(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.index())
    }

    /// Has `close()` or `detach()` been called?
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }

    /// End the stream, then detach: consumers receive the frames already
    /// committed, then `recv()` raises `sharray.Disconnected` and iteration
    /// ends. No producer can send on the ring until one attaches with
    /// `ring.producer(reopen=True)`. Idempotent (once detached, does
    /// nothing).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let p = self.inner.lock().clone();
        // A forked child holds no registration of its own: it only detaches.
        if let Some(p) = p.filter(|_| !self.shared.origin.is_forked()) {
            py.detach(|| p.close()).py_err(py)?;
        }
        self.detach(py);
        Ok(())
    }

    /// Detach without ending the stream (idempotent): consumers keep
    /// waiting for the next producer. Loans still open keep the
    /// registration until they end.
    fn detach(&self, py: Python<'_>) {
        let p = self.inner.lock().take();
        if let Some(p) = p {
            self.shared.origin.detach_drop_or_leak(py, p);
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Close the stream if the block ended normally; only detach if it
    /// ended with an exception (a crash does not end a stream).
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if exc_type.is_some_and(|t| !t.is_none()) {
            self.detach(py);
        } else {
            self.close(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<sharray.Producer of {:?}{state}>", self.shared.path)
    }
}

struct LoanHeld {
    loan: sharray::WriteLoan,
    view: ViewSlot,
    tag: u64,
    valid_len: usize,
}

impl HasViewSlot for LoanHeld {
    fn slot(&mut self) -> &mut ViewSlot {
        &mut self.view
    }
}

/// A loaned ring slot: fill the frame in place, then commit it.
///
/// `with producer.loan() as frame:` gives the writable numpy view of the
/// slot; leaving the block normally commits the frame, leaving it with an
/// exception gives the slot back (nothing is delivered). `commit()` and
/// `abandon()` do the same explicitly. Either way the view is revoked first:
/// it becomes read-only and, with every view derived from it, is cut off
/// from the slot (reads zeros; writes through derived views go to private
/// memory).
#[pyclass(module = "sharray", name = "WriteLoan", frozen)]
pub(crate) struct WriteLoan {
    state: Mutex<Option<LoanHeld>>,
    shared: Arc<RingShared>,
    slot: usize,
    dropped_oldest: bool,
    seq: Mutex<Option<u64>>,
}

impl WriteLoan {
    fn wrap(
        py: Python<'_>,
        shared: &Arc<RingShared>,
        loan: sharray::WriteLoan,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<WriteLoan> {
        let slot = loan.slot();
        let len = loan.len();
        let valid_len = match valid_len {
            Some(v) if v > len => {
                return Err(errors::new(
                    py,
                    ErrorKind::InvalidInput,
                    &format!("valid_len {v} is larger than the frame ({len} bytes)"),
                    Some(&shared.path),
                ));
            }
            Some(v) => v,
            None => len,
        };
        Ok(WriteLoan {
            slot,
            dropped_oldest: loan.dropped_oldest(),
            state: Mutex::new(Some(LoanHeld {
                view: shared.view_slot(slot, true),
                loan,
                tag,
                valid_len,
            })),
            shared: shared.clone(),
            seq: Mutex::new(None),
        })
    }

    fn ended_error(&self, py: Python<'_>) -> PyErr {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            "this loan has ended (committed or given back); take a new one with producer.loan()",
            Some(&self.shared.path),
        )
    }

    fn view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        lease::view_of(py, &self.state, |py| self.ended_error(py))
    }

    /// Take the loan out of its state with its view revoked.
    fn take(&self) -> Option<(sharray::WriteLoan, u64, usize, Option<Py<PyAny>>)> {
        let mut held = self.state.lock().take()?;
        let view = held.view.revoke();
        Some((held.loan, held.tag, held.valid_len, view))
    }

    /// Give the slot back (idempotent).
    fn end(&self, _py: Python<'_>) {
        if let Some((loan, _, _, view)) = self.take() {
            self.shared.origin.drop_or_leak(loan);
            drop(view);
        }
    }

    fn commit(&self, py: Python<'_>) -> PyResult<u64> {
        self.shared.check_pid(py)?;
        let Some((mut loan, tag, valid_len, view)) = self.take() else {
            return Err(self.ended_error(py));
        };
        drop(view);
        loan.set_tag(tag);
        loan.set_valid_len(valid_len).py_err(py)?;
        let seq = loan.commit().py_err(py)?;
        *self.seq.lock() = Some(seq);
        Ok(seq)
    }
}

impl Drop for WriteLoan {
    fn drop(&mut self) {
        if let Some(mut held) = self.state.get_mut().take() {
            let view = held.view.revoke();
            self.shared.origin.drop_or_leak(held.loan);
            drop(view);
        }
    }
}

#[pymethods]
impl WriteLoan {
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

    /// The writable numpy view of the slot (the frame shape and dtype).
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view(py)
    }

    /// Commit on a normal exit, give the slot back on an exception. Never
    /// suppresses exceptions.
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let failed = exc_type.is_some_and(|t| !t.is_none());
        if failed || !self.active() {
            self.end(py);
        } else {
            self.commit(py)?;
        }
        Ok(false)
    }

    /// The writable numpy view of the slot (made on first use, then the
    /// same object).
    #[getter(view)]
    fn view_getter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view(py)
    }

    /// Publish the frame; returns its sequence number. The view is revoked
    /// first.
    #[pyo3(name = "commit")]
    fn commit_py(&self, py: Python<'_>) -> PyResult<u64> {
        self.commit(py)
    }

    /// Give the slot back without publishing (idempotent; nothing is
    /// delivered). The view is revoked first.
    fn abandon(&self, py: Python<'_>) {
        self.end(py);
    }

    /// The user tag delivered with the frame (default 0).
    #[getter]
    fn tag(&self, py: Python<'_>) -> PyResult<u64> {
        match self.state.lock().as_ref() {
            Some(h) => Ok(h.tag),
            None => Err(self.ended_error(py)),
        }
    }

    #[setter]
    fn set_tag(&self, py: Python<'_>, tag: u64) -> PyResult<()> {
        match self.state.lock().as_mut() {
            Some(h) => {
                h.tag = tag;
                Ok(())
            }
            None => Err(self.ended_error(py)),
        }
    }

    /// Bytes of the frame delivered as valid (default: all of it).
    #[getter]
    fn valid_len(&self, py: Python<'_>) -> PyResult<usize> {
        match self.state.lock().as_ref() {
            Some(h) => Ok(h.valid_len),
            None => Err(self.ended_error(py)),
        }
    }

    #[setter]
    fn set_valid_len(&self, py: Python<'_>, len: usize) -> PyResult<()> {
        let max = self.shared.ring.slot_bytes();
        if len > max {
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                &format!("valid_len {len} is larger than the frame ({max} bytes)"),
                Some(&self.shared.path),
            ));
        }
        match self.state.lock().as_mut() {
            Some(h) => {
                h.valid_len = len;
                Ok(())
            }
            None => Err(self.ended_error(py)),
        }
    }

    /// Index of the slot (row of `np.load(ring.path, mmap_mode="r")`).
    #[getter]
    fn slot(&self) -> usize {
        self.slot
    }

    /// Did taking this slot drop the oldest unread frame (overwrite mode)?
    #[getter]
    fn dropped_oldest(&self) -> bool {
        self.dropped_oldest
    }

    /// The sequence number once committed, else None.
    #[getter]
    fn seq(&self) -> Option<u64> {
        *self.seq.lock()
    }

    /// Is the slot still loaned (not committed or given back)?
    #[getter]
    fn active(&self) -> bool {
        self.state.lock().is_some()
    }

    /// Debug: `(address, length)` of the mapping the view lives in.
    #[getter]
    fn _window(&self) -> Option<(usize, usize)> {
        self.state
            .lock()
            .as_ref()
            .and_then(|h| h.view.window.as_ref())
            .map(|w| w.range())
    }

    fn __repr__(&self) -> String {
        let state = match (self.active(), *self.seq.lock()) {
            (true, _) => "loaned".to_string(),
            (false, Some(s)) => format!("committed seq={s}"),
            (false, None) => "given back".to_string(),
        };
        format!(
            "<sharray.WriteLoan slot={} {state} of {:?}>",
            self.slot, self.shared.path
        )
    }
}
