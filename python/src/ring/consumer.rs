//! The consumer side from Python: `Consumer` and its `ReadLease`.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use sharray::ErrorKind;

use crate::errors::{self, IntoPy};
use crate::lease::{self, HasViewSlot, ViewSlot};

use super::{RingShared, closed_error};

/// A registered consumer of a ring (a subscriber in broadcast mode).
///
/// `with consumer.recv() as frame:` reads one frame in place;
/// `for lease in consumer:` yields `ReadLease`s until a producer closes the
/// stream and the ring is drained (each lease is released when the loop asks
/// for the next one). `close()` (or leaving a `with` block) detaches.
#[pyclass(module = "sharray", name = "Consumer", frozen)]
pub(crate) struct Consumer {
    shared: Arc<RingShared>,
    inner: Mutex<Option<Arc<sharray::Consumer>>>,
    /// The lease last yielded by iteration (released by the next step).
    current: Mutex<Option<Py<ReadLease>>>,
}

impl Consumer {
    pub(super) fn new(shared: &Arc<RingShared>, c: sharray::Consumer) -> Consumer {
        Consumer {
            shared: shared.clone(),
            inner: Mutex::new(Some(Arc::new(c))),
            current: Mutex::new(None),
        }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Arc<sharray::Consumer>> {
        self.shared.check_pid(py)?;
        self.inner
            .lock()
            .clone()
            .ok_or_else(|| closed_error(py, "consumer", &self.shared.path))
    }

    fn recv_inner(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<sharray::Result<sharray::ReadLease>> {
        let c = self.get(py)?;
        // A frame ready now: no wait, so no need to release the GIL. (Empty
        // and Disconnected take the blocking path, which waits or says why
        // the stream ended.)
        match c.try_recv() {
            Ok(l) => return Ok(Ok(l)),
            Err(sharray::TryRecvError::Error(e)) => return Ok(Err(e)),
            Err(sharray::TryRecvError::Empty | sharray::TryRecvError::Disconnected) => {}
        }
        lease::sliced(py, timeout, ErrorKind::Timeout, |slice| {
            c.recv_timeout(slice)
        })
    }

    fn end_current(&self, py: Python<'_>) {
        let current = self.current.lock().take();
        if let Some(l) = current {
            l.get().end();
            drop(l);
        }
        let _ = py;
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.shared.origin.is_forked() {
            std::mem::forget(self.inner.get_mut().take());
        }
    }
}

#[pymethods]
impl Consumer {
    /// Receive the next frame, waiting at most `timeout` seconds (None: as
    /// long as it takes). Raises `sharray.Timeout` (a `TimeoutError`), or
    /// `sharray.Disconnected` (a `BrokenPipeError`) once a producer has
    /// closed the stream and its frames are drained. Producers that exit or
    /// die without closing do not end it.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<ReadLease> {
        let lease = self.recv_inner(py, timeout)?.py_err(py)?;
        Ok(ReadLease::wrap(&self.shared, lease))
    }

    /// Receive the next frame into `out` (a writeable, C-contiguous numpy
    /// array of the ring's dtype and frame shape) and release it at once;
    /// returns `(seq, tag, nbytes)` (`nbytes`: the frame's valid bytes,
    /// copied to the start of `out`). No view is made, so nothing is ever
    /// stale: the cheapest way to receive frames up to about 4 KiB. Waits
    /// and raises as `recv()` does.
    #[pyo3(signature = (out, timeout=None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        out: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, u64, usize)> {
        let refused = |(kind, msg): (ErrorKind, String)| {
            errors::new(
                py,
                kind,
                &format!("recv_into: {msg}"),
                Some(&self.shared.path),
            )
        };
        // Checked before receiving (a refusal takes no frame), and again
        // once the frame is here: waiting releases the GIL, and another
        // thread may have changed `out` meanwhile.
        self.shared.frame_buffer(py, out, true).map_err(refused)?;
        let lease = self.recv_inner(py, timeout)?.py_err(py)?;
        let dst = match self.shared.frame_buffer(py, out, true) {
            Ok(d) => d,
            Err(e) => {
                // Not consumed: back to the head of the queue if it can go.
                let _ = lease.give_back();
                return Err(refused(e));
            }
        };
        let bytes = lease.bytes();
        dst.fill_from(bytes);
        Ok((lease.seq(), lease.tag(), bytes.len()))
    }

    /// Receive a frame if one is ready now; `None` if not. Raises
    /// `sharray.Disconnected` as `recv()` does.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<ReadLease>> {
        let c = self.get(py)?;
        match c.try_recv() {
            Ok(l) => Ok(Some(ReadLease::wrap(&self.shared, l))),
            Err(sharray::TryRecvError::Empty) => Ok(None),
            Err(sharray::TryRecvError::Disconnected) => Err(errors::new(
                py,
                ErrorKind::Disconnected,
                "the ring's stream was closed by a producer and its frames are drained; stop consuming, or reopen it with ring.producer(reopen=True)",
                Some(&self.shared.path),
            )),
            Err(sharray::TryRecvError::Error(e)) => Err(errors::to_py(py, &e)),
        }
    }

    /// Await the next frame without blocking the event loop (asyncio);
    /// `timeout` and errors as `recv()`. Cancelling the task unregisters it.
    #[pyo3(signature = (timeout=None))]
    fn recv_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::module(slf.py())?.call_method1("recv_async", (slf, timeout))
    }

    fn _waiter(&self, py: Python<'_>) -> PyResult<crate::aio::AsyncWaiter> {
        let c = self.get(py)?;
        crate::aio::AsyncWaiter::new(
            py,
            c.waiter(),
            "timed out waiting for a frame; is a producer running?",
            &self.shared.path,
        )
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// `async for lease in consumer:` releases the lease yielded last, then
    /// awaits the next frame; ends when the stream is closed and drained.
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.get().end_current(slf.py());
        crate::aio::module(slf.py())?.call_method1("next_lease", (slf,))
    }

    fn _set_current(&self, lease: Py<ReadLease>) {
        *self.current.lock() = Some(lease);
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Release the lease yielded last, then wait for the next frame. Ends
    /// (StopIteration) when a producer has closed the stream and its frames
    /// are drained; keeps waiting while producers come and go.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<ReadLease>>> {
        self.end_current(py);
        match self.recv_inner(py, None)? {
            Ok(l) => {
                let lease = Py::new(py, ReadLease::wrap(&self.shared, l))?;
                *self.current.lock() = Some(lease.clone_ref(py));
                Ok(Some(lease))
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => Ok(None),
            Err(e) => Err(errors::to_py(py, &e)),
        }
    }

    /// This consumer's index in the ring's participant table.
    #[getter]
    fn index(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.index())
    }

    /// Has `close()` been called?
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }

    /// Release the lease yielded by iteration (if any) and detach
    /// (idempotent). Leases from `recv()` still open keep the registration
    /// until they end.
    fn close(&self, py: Python<'_>) {
        self.end_current(py);
        let c = self.inner.lock().take();
        if let Some(c) = c {
            self.shared.origin.detach_drop_or_leak(py, c);
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
        format!("<sharray.Consumer of {:?}{state}>", self.shared.path)
    }
}

struct LeaseHeld {
    lease: sharray::ReadLease,
    view: ViewSlot,
}

impl HasViewSlot for LeaseHeld {
    fn slot(&mut self) -> &mut ViewSlot {
        &mut self.view
    }
}

/// A received frame: read it in place, then release it.
///
/// `with consumer.recv() as frame:` gives the read-only numpy view of the
/// frame (the frame shape and dtype); leaving the block releases the slot.
/// The metadata stay readable after release: `seq`, `timestamp_ns`, `tag`,
/// `valid_len` (bytes), `lost`, `slot`. When the lease ends (`release()`,
/// `__exit__`, the next iteration step, garbage collection) the view and
/// every view derived from it are revoked first: they read zeros.
#[pyclass(module = "sharray", name = "ReadLease", frozen)]
pub(crate) struct ReadLease {
    state: Mutex<Option<LeaseHeld>>,
    shared: Arc<RingShared>,
    /// The frame's sequence number (commit order, from 0).
    #[pyo3(get)]
    seq: u64,
    /// `CLOCK_MONOTONIC` nanoseconds at commit (`time.monotonic_ns()`
    /// clock, comparable across processes).
    #[pyo3(get)]
    timestamp_ns: u64,
    /// The producer's tag.
    #[pyo3(get)]
    tag: u64,
    /// Valid bytes of the frame (the whole frame unless the producer said
    /// less); the view always covers the whole frame.
    #[pyo3(get)]
    valid_len: usize,
    /// Frames lost since this consumer's previous receive (overwrite mode).
    #[pyo3(get)]
    lost: u64,
    /// Index of the slot.
    #[pyo3(get)]
    slot: usize,
}

impl ReadLease {
    fn wrap(shared: &Arc<RingShared>, lease: sharray::ReadLease) -> ReadLease {
        ReadLease {
            seq: lease.seq(),
            timestamp_ns: lease.timestamp_ns(),
            tag: lease.tag(),
            valid_len: lease.valid_len(),
            lost: lease.lost(),
            slot: lease.slot(),
            state: Mutex::new(Some(LeaseHeld {
                view: shared.view_slot(lease.slot(), false),
                lease,
            })),
            shared: shared.clone(),
        }
    }

    fn ended_error(&self, py: Python<'_>) -> PyErr {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            "this lease was released; receive a new frame with consumer.recv()",
            Some(&self.shared.path),
        )
    }

    /// Revoke the view, then release the slot (idempotent).
    fn end(&self) {
        let held = self.state.lock().take();
        if let Some(mut h) = held {
            let view = h.view.revoke();
            self.shared.origin.drop_or_leak(h.lease);
            drop(view);
        }
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        self.end();
    }
}

#[pymethods]
impl ReadLease {
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
        let view = lease::view_of(py, &self.state, |py| self.ended_error(py))?;
        crate::dlpack::export(py, view, false, stream, max_version, dl_device, copy)
    }

    /// `(1, 0)`: kDLCPU, device 0.
    fn __dlpack_device__(&self) -> (i32, i32) {
        crate::dlpack::device()
    }

    /// The read-only numpy view of the frame.
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        lease::view_of(py, &self.state, |py| self.ended_error(py))
    }

    /// Release the slot (the view is revoked first). Never suppresses
    /// exceptions.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.end();
        false
    }

    /// The read-only numpy view of the frame (made on first use, then the
    /// same object).
    #[getter]
    fn view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        lease::view_of(py, &self.state, |py| self.ended_error(py))
    }

    /// Release the slot now (idempotent); the view is revoked first.
    fn release(&self) {
        self.end();
    }

    /// Is the slot still leased?
    #[getter]
    fn active(&self) -> bool {
        self.state.lock().is_some()
    }

    /// The frame's sequence number (commit order, from 0).
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// `CLOCK_MONOTONIC` nanoseconds at commit (`time.monotonic_ns()`
    /// clock, comparable across processes).
    #[getter]
    fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// The producer's tag.
    #[getter]
    fn tag(&self) -> u64 {
        self.tag
    }

    /// Valid bytes of the frame (the whole frame unless the producer said
    /// less); the view always covers the whole frame.
    #[getter]
    fn valid_len(&self) -> usize {
        self.valid_len
    }

    /// Frames lost since this consumer's previous receive (overwrite mode).
    #[getter]
    fn lost(&self) -> u64 {
        self.lost
    }

    /// Index of the slot.
    #[getter]
    fn slot(&self) -> usize {
        self.slot
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
        format!(
            "<sharray.ReadLease seq={} tag={} slot={}{} of {:?}>",
            self.seq,
            self.tag,
            self.slot,
            if self.active() { "" } else { " released" },
            self.shared.path
        )
    }
}
