//! asyncio support: `_AsyncWaiter`, a `sharray::aio::Waiter` whose waker
//! makes an eventfd readable, so an event loop can `add_reader` it. The
//! coroutines themselves (`recv_async`, `loan_async`, `wait_changed_async`,
//! `async for`) are in `sharray/_aio.py`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::prelude::*;
use sharray::ErrorKind;
use sharray::aio::Waiter;

use crate::errors;

/// `sharray._aio`, where the coroutines live.
pub(crate) fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("sharray._aio")
}

/// Makes the eventfd readable: the reactor thread calls it (no GIL needed).
struct EventWake(Arc<OwnedFd>);

impl Wake for EventWake {
    fn wake(self: Arc<Self>) {
        sharray::sys::eventfd_signal(self.0.as_fd());
    }
    fn wake_by_ref(self: &Arc<Self>) {
        sharray::sys::eventfd_signal(self.0.as_fd());
    }
}

/// One async wait in progress (internal; see `sharray._aio`).
#[pyclass(module = "sharray._sharray", name = "_AsyncWaiter", frozen)]
pub(crate) struct AsyncWaiter {
    waiter: Mutex<Option<Waiter>>,
    fd: Arc<OwnedFd>,
    waker: Waker,
    /// The timeout error's message and path.
    what: &'static str,
    path: String,
}

impl AsyncWaiter {
    pub(crate) fn new(
        py: Python<'_>,
        waiter: Waiter,
        what: &'static str,
        path: &str,
    ) -> PyResult<AsyncWaiter> {
        let fd = Arc::new(sharray::sys::eventfd().map_err(|e| {
            errors::new(
                py,
                ErrorKind::Io,
                &format!("cannot create an eventfd for an async wait: {e}; raise the open-file limit (ulimit -n)"),
                Some(path),
            )
        })?);
        let waker = Waker::from(Arc::new(EventWake(fd.clone())));
        Ok(AsyncWaiter {
            waiter: Mutex::new(Some(waiter)),
            fd,
            waker,
            what,
            path: path.to_string(),
        })
    }

    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut Waiter) -> R) -> PyResult<R> {
        let mut g = self.waiter.lock();
        match g.as_mut() {
            Some(w) => Ok(f(w)),
            None => Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                "this async wait has ended; start a new one",
                Some(&self.path),
            )),
        }
    }
}

#[pymethods]
impl AsyncWaiter {
    /// The eventfd that becomes readable when the wait may be over.
    fn fileno(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Before each attempt: unregister, drain the eventfd, remember the word.
    fn prepare(&self, py: Python<'_>) -> PyResult<()> {
        sharray::sys::eventfd_drain(self.fd.as_fd());
        self.with(py, |w| w.prepare())
    }

    /// After a failed attempt: register for a wake. `left` is the time left
    /// in seconds (None: no deadline); raises `sharray.Timeout` if none is.
    /// Returns False if the word already moved (attempt again at once).
    #[pyo3(signature = (left=None))]
    fn park(&self, py: Python<'_>, left: Option<f64>) -> PyResult<bool> {
        let deadline = match left {
            Some(l) if l.is_nan() || l <= 0.0 => {
                return Err(errors::new(
                    py,
                    ErrorKind::Timeout,
                    self.what,
                    Some(&self.path),
                ));
            }
            Some(l) => Duration::try_from_secs_f64(l)
                .ok()
                .and_then(|d| Instant::now().checked_add(d)),
            None => None,
        };
        let waker = self.waker.clone();
        self.with(py, |w| w.park(&waker, deadline))
    }

    /// Has the registration ended (then prepare and attempt again)?
    fn fired(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |w| w.fired())
    }

    /// Unregister (idempotent); a wake this wait consumed but did not act
    /// on is passed on to another waiter.
    fn close(&self) {
        let w = self.waiter.lock().take();
        drop(w);
    }
}
