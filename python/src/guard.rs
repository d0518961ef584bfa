//! Read and write guards: a held whole-array lock plus, on demand, one numpy
//! view of the data in a revocable window (see `window.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::prelude::*;
use sharray::{ErrorKind, OwnedUntypedReadGuard, OwnedUntypedWriteGuard};

use crate::errors;
use crate::fork::Origin;
use crate::handle::Inner;
use crate::view::{self, ViewSpec};
use crate::window::Window;

/// Longest single blocking call with the GIL released: between slices the
/// binding runs Python's signal handlers, so Ctrl-C interrupts any wait
/// within about this long.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// The deadline for `timeout` seconds (`None`: wait forever).
pub(crate) fn deadline(py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => {
            Ok(Instant::now().checked_add(Duration::from_secs_f64(t.min(1e9))))
        }
        Some(t) => Err(errors::new(
            py,
            ErrorKind::InvalidInput,
            &format!("invalid timeout {t}: give seconds >= 0, or None to wait forever"),
            None,
        )),
    }
}

/// How long the next slice of a wait may block.
pub(crate) fn next_slice(deadline: Option<Instant>) -> Duration {
    match deadline {
        None => SLICE,
        Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
    }
}

enum Lock {
    Read(#[allow(dead_code)] OwnedUntypedReadGuard),
    Write(OwnedUntypedWriteGuard),
}

/// A lock guard together with the handle it was taken through.
struct HeldLock {
    lock: Lock,
    owner: Arc<Inner>,
}

/// Take the lock, waiting at most `wait`.
fn try_acquire(inner: &Arc<Inner>, write: bool, wait: Duration) -> sharray::Result<HeldLock> {
    let array = &inner.array;
    let lock = if write {
        Lock::Write(array.write_timeout(wait)?.into_owned())
    } else {
        Lock::Read(array.read_timeout(wait)?.into_owned())
    };
    Ok(HeldLock {
        lock,
        owner: Arc::clone(inner),
    })
}

/// Take the lock with the GIL released, in slices of at most [`SLICE`],
/// running signal handlers in between (so KeyboardInterrupt works).
fn acquire(
    py: Python<'_>,
    inner: &Arc<Inner>,
    write: bool,
    timeout: Option<f64>,
) -> PyResult<HeldLock> {
    let deadline = deadline(py, timeout)?;
    loop {
        let slice = next_slice(deadline);
        let i = Arc::clone(inner);
        match py.detach(move || try_acquire(&i, write, slice)) {
            Ok(h) => return Ok(h),
            Err(e) if e.kind() == ErrorKind::LockTimeout => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(errors::to_py(py, &e));
                }
                py.check_signals()?;
            }
            Err(e) => return Err(errors::to_py(py, &e)),
        }
    }
}

struct Held {
    lock: HeldLock,
    window: Option<Arc<Window>>,
    view: Option<Py<PyAny>>,
    /// `Some(bytes)` when the view is a private copy (small arrays, see
    /// `view::copies`): written back when a write guard ends.
    copied: Option<usize>,
    origin: Origin,
}

/// A held read or write lock on a shared array.
///
/// Use it as a context manager: `with a.read() as view:` gives a numpy array
/// that shares memory with the file (read-only for read guards). The lock is
/// taken when `read()`/`write()` returns and released by `__exit__`,
/// `release()`, or when the guard object is garbage collected.
///
/// When the guard ends, every view of it is revoked: the view and all views
/// derived from it (slices, transposes, memoryviews) stay valid Python
/// objects but are cut off from the file: they read zeros, writes through
/// them go to private memory that only other stale views of this guard see,
/// and the view itself becomes read-only. Nothing crashes and nothing
/// reaches the shared data.
#[pyclass(module = "sharray", name = "Guard", frozen)]
pub(crate) struct Guard {
    write: bool,
    path: String,
    state: Mutex<Option<Held>>,
}

impl Guard {
    pub(crate) fn take(
        py: Python<'_>,
        inner: &Arc<Inner>,
        write: bool,
        timeout: Option<f64>,
    ) -> PyResult<Guard> {
        inner.check_pid(py)?;
        if write && !inner.array.is_writable() {
            // Fail before waiting for a lock we could never use.
            return Err(errors::new(
                py,
                ErrorKind::PermissionDenied,
                "this handle was opened read-only; open it with readonly=False to take a write guard",
                Some(&inner.path),
            ));
        }
        let lock = acquire(py, inner, write, timeout)?;
        Ok(Guard {
            write,
            path: inner.path.clone(),
            state: Mutex::new(Some(Held {
                lock,
                window: None,
                view: None,
                copied: None,
                origin: Origin::here(),
            })),
        })
    }

    fn released_error(&self, py: Python<'_>) -> PyErr {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            "this guard was released; take a new one with .read() or .write()",
            Some(&self.path),
        )
    }

    pub(crate) fn view_or_make(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let inner = {
            let state = self.state.lock();
            let Some(held) = state.as_ref() else {
                return Err(self.released_error(py));
            };
            if let Some(v) = &held.view {
                return Ok(v.clone_ref(py));
            }
            Arc::clone(&held.lock.owner)
        };
        // Made without holding `state`: this runs Python code (allocations
        // may run the garbage collector and finalizers, which may touch this
        // guard).
        let window = if let Some(w) = &inner.private_window {
            Some(Arc::clone(w))
        } else {
            use std::os::fd::AsFd;
            inner.pool.window(inner.array.as_fd()).map_err(|e| {
                errors::new(
                    py,
                    ErrorKind::Io,
                    &format!("cannot map the data for a view ({e}); free address space or memory"),
                    Some(&inner.path),
                )
            })?
        };
        let spec = ViewSpec {
            descr: &inner.dtype,
            shape: inner.array.shape(),
            itemsize: inner.array.dtype().itemsize(),
            fortran: inner.fortran,
        };
        // Small arrays' read views are private copies (never revoked),
        // except through a copy-on-write handle's persistent window.
        let bytes = view::view_bytes(&spec);
        // Write guards always map the file: what they write must be there
        // at once (a holder that dies mid-guard leaves its writes, as with
        // any shared memory).
        let copied = window.as_ref().filter(|_| {
            !self.write
                && inner.private_window.is_none()
                && inner.pool.views_escape()
                && view::copies(bytes)
        });
        let view = match copied {
            Some(w) => view::make_copy(py, &spec, w, self.write, true)?,
            None => {
                let owner: Arc<dyn std::any::Any + Send + Sync> = inner.clone();
                view::make_view(py, &spec, window.as_ref(), self.write, owner, &inner.path)?
            }
        };
        let copied = copied.map(|_| bytes);
        let mut state = self.state.lock();
        match state.as_mut() {
            Some(held) if held.view.is_none() => {
                if let Lock::Write(g) = &mut held.lock.lock {
                    // The view may be written: count the guard as a change
                    // (the generation is bumped when the lock is released).
                    let _ = g.bytes_mut();
                }
                held.window = window;
                held.copied = copied;
                held.view = Some(view.clone_ref(py));
                Ok(view)
            }
            // Another thread made the view meanwhile: use that one (ours was
            // never seen and is unmapped when dropped).
            Some(held) => Ok(held
                .view
                .as_ref()
                .map(|v| v.clone_ref(py))
                .expect("checked")),
            None => {
                drop(state);
                Err(self.released_error(py))
            }
        }
    }

    pub(crate) fn release_now(&self, py: Python<'_>) {
        let held = self.state.lock().take();
        if let Some(h) = held {
            release(py, h);
        }
    }
}

/// End a guard: revoke its views, then release the lock.
fn release(py: Python<'_>, held: Held) {
    let Held {
        lock,
        window,
        view,
        copied,
        origin,
    } = held;
    // A view nothing else holds cannot be reached after the guard: keep its
    // window mapped for the next guard (no system call). One that escaped
    // is revoked, with every view derived from it.
    if let Some(v) = &view {
        lock.owner.pool.note_escape(view::escaped(py, v));
    }
    if let Some(bytes) = copied {
        // A copy: nothing to revoke; a write guard writes it back.
        if let (Lock::Write(_), Some(v), Some(w)) = (&lock.lock, &view, &window) {
            view::copy_back(py, v, bytes, w);
        }
        if let Some(v) = &view {
            view::make_read_only(v);
        }
        if let Some(w) = window {
            lock.owner.pool.keep(w);
        }
    } else if view::must_revoke(py, view.as_ref()) {
        if let Some(v) = &view {
            view::make_read_only(v);
        }
        if let Some(w) = &window {
            w.revoke(&lock.owner.pool);
        }
    } else if let Some(w) = window {
        lock.owner.pool.keep(w);
    }
    // In a child made by fork() the lock belongs to the open file
    // description the parent still uses; unlocking it here would release
    // the parent's lock: leave it alone.
    origin.drop_or_leak(lock);
    drop(view);
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(h) = self.state.get_mut().take() {
            Python::attach(|py| release(py, h));
        }
    }
}

#[pymethods]
impl Guard {
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
        let view = self.view_or_make(py)?;
        crate::dlpack::export(py, view, self.write, stream, max_version, dl_device, copy)
    }

    /// `(1, 0)`: kDLCPU, device 0.
    fn __dlpack_device__(&self) -> (i32, i32) {
        crate::dlpack::device()
    }

    /// The numpy view of the whole array (created on first use, then the
    /// same object every time).
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view_or_make(py)
    }

    /// Release the lock (and revoke the views). Never suppresses exceptions.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release_now(py);
        false
    }

    /// The numpy view of the whole array; see the class docs for what
    /// happens to it when the guard ends.
    #[getter]
    fn view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view_or_make(py)
    }

    /// Release the lock now (idempotent); views are revoked first.
    fn release(&self, py: Python<'_>) {
        self.release_now(py);
    }

    /// Is the lock still held?
    #[getter]
    fn active(&self) -> bool {
        self.state.lock().is_some()
    }

    /// `"read"` or `"write"`.
    #[getter]
    fn mode(&self) -> &'static str {
        if self.write { "write" } else { "read" }
    }

    /// Debug: `(address, length)` of the mapping the view lives in, or
    /// `None` before the first view (or for an array without data).
    #[getter]
    fn _window(&self) -> Option<(usize, usize)> {
        self.state
            .lock()
            .as_ref()
            .and_then(|h| h.window.as_ref())
            .map(|w| w.range())
    }

    fn __repr__(&self) -> String {
        let state = if self.active() { "held" } else { "released" };
        format!("<sharray.Guard {} {state} on {:?}>", self.mode(), self.path)
    }
}
