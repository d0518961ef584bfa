//! The numpy view of a lease (a ring loan or lease, a claim's rows): made on
//! first use in its own revocable [`Window`], revoked when the lease ends and
//! before what it leases is given back. Shared by `ring/` and `pool/`;
//! array guards (`guard.rs`) follow the same steps.

use std::any::Any;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use numpy::PyArrayDescr;
use parking_lot::Mutex;
use pyo3::prelude::*;
use sharray::ErrorKind;

use crate::errors;
use crate::guard;
use crate::view::{self, ViewSpec};
use crate::window::{ShadowPool, Window};

/// What the views of one kind of lease look like and where their bytes are.
pub(crate) trait ViewSource: Send + Sync {
    /// The file to map.
    fn fd(&self) -> BorrowedFd<'_>;
    /// The numpy dtype of the elements.
    fn descr(&self) -> &Py<PyArrayDescr>;
    /// Shape of the view.
    fn shape(&self) -> &[usize];
    /// Bytes per element.
    fn itemsize(&self) -> usize;
    /// Path, for messages and the view base's repr.
    fn label(&self) -> &str;
    /// What the view base keeps alive (the handle the file belongs to).
    fn owner(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// May a small view be a private copy? Not for claims' rows: like
    /// write guards, they write into an array others read, at once.
    fn copy_ok(&self) -> bool {
        true
    }
}

/// The view part of a lease's state: where to map, and the view once made.
pub(crate) struct ViewSlot {
    pub pool: Arc<ShadowPool>,
    pub source: Arc<dyn ViewSource>,
    pub write: bool,
    pub window: Option<Arc<Window>>,
    pub view: Option<Py<PyAny>>,
    /// `Some(bytes)` when the view is a private copy of the window's data
    /// (small views, `view::copies`): written back at the end of a write
    /// lease; the window itself is never shown to Python.
    pub copied: Option<usize>,
}

impl ViewSlot {
    pub(crate) fn new(pool: Arc<ShadowPool>, source: Arc<dyn ViewSource>, write: bool) -> ViewSlot {
        ViewSlot {
            pool,
            source,
            write,
            window: None,
            view: None,
            copied: None,
        }
    }

    /// End the view's access to the leased bytes. Call it before giving the
    /// leased bytes back. If the view escaped the lease (anything besides
    /// this slot holds a reference to it: a variable, a derived view, a
    /// memoryview, a DLPack capsule), the view and every view derived from
    /// it are cut off from the file (revoked). If it did not, nothing can
    /// reach the window any more, so it is kept, still mapped, for the next
    /// lease of this slot (no system call). Returns the view reference, to
    /// be dropped once no lock of ours is held.
    pub(crate) fn revoke(&mut self) -> Option<Py<PyAny>> {
        Python::attach(|py| {
            if let Some(v) = &self.view {
                self.pool.note_escape(view::escaped(py, v));
            }
            if let Some(bytes) = self.copied {
                // A copy: nothing to revoke (a stale copy only ever holds
                // this lease's bytes); write it back, keep the window.
                if let (true, Some(v), Some(w)) = (self.write, &self.view, &self.window) {
                    view::copy_back(py, v, bytes, w);
                }
                if let Some(v) = &self.view {
                    view::make_read_only(v);
                }
                if let Some(w) = self.window.take() {
                    self.pool.keep(w);
                }
            } else if view::must_revoke(py, self.view.as_ref()) {
                if let Some(v) = &self.view {
                    view::make_read_only(v);
                }
                if let Some(w) = &self.window {
                    w.revoke(&self.pool);
                }
            } else if let Some(w) = self.window.take() {
                self.pool.keep(w);
            }
            self.view.take()
        })
    }
}

/// A lease's state: `None` once it has ended.
pub(crate) trait HasViewSlot: Send {
    fn slot(&mut self) -> &mut ViewSlot;
}

/// The lease's view: the existing one, or a new one in a fresh window.
///
/// The window and view are made without holding `state` (making them runs
/// Python code: allocations may run the garbage collector and finalizers,
/// which may touch this lease). `ended` builds the error for an ended lease.
pub(crate) fn view_of<H: HasViewSlot>(
    py: Python<'_>,
    state: &Mutex<Option<H>>,
    ended: impl Fn(Python<'_>) -> PyErr,
) -> PyResult<Py<PyAny>> {
    let (pool, source, write) = {
        let mut guard = state.lock();
        let Some(held) = guard.as_mut() else {
            return Err(ended(py));
        };
        let slot = held.slot();
        if let Some(v) = &slot.view {
            return Ok(v.clone_ref(py));
        }
        (slot.pool.clone(), slot.source.clone(), slot.write)
    };
    let window = pool.window(source.fd()).map_err(|e| {
        errors::new(
            py,
            ErrorKind::Io,
            &format!("cannot map the data for a view ({e}); free address space or memory"),
            Some(source.label()),
        )
    })?;
    let spec = ViewSpec {
        descr: source.descr(),
        shape: source.shape(),
        itemsize: source.itemsize(),
        fortran: false,
    };
    let bytes = view::view_bytes(&spec);
    let copied = window
        .as_ref()
        .filter(|_| source.copy_ok() && pool.views_escape() && view::copies(bytes));
    let view = match copied {
        // A write lease that copies is a ring loan (claims' rows never
        // copy): its contents are unspecified until written, so the slot's
        // old frame is not copied in.
        Some(w) => view::make_copy(py, &spec, w, write, !write)?,
        None => view::make_view(
            py,
            &spec,
            window.as_ref(),
            write,
            source.clone().owner(),
            source.label(),
        )?,
    };
    let copied = copied.map(|_| bytes);
    let mut guard = state.lock();
    match guard.as_mut() {
        Some(held) => {
            let slot = held.slot();
            if let Some(v) = &slot.view {
                // Another thread made one meanwhile: use that one (ours was
                // never seen and is unmapped when dropped).
                return Ok(v.clone_ref(py));
            }
            slot.window = window;
            slot.copied = copied;
            slot.view = Some(view.clone_ref(py));
            Ok(view)
        }
        None => {
            drop(guard);
            Err(ended(py))
        }
    }
}

/// Run a blocking operation with the GIL released, in slices of at most
/// [`guard::SLICE`] (`attempt` gets the slice's length), running Python's
/// signal handlers between slices so Ctrl-C interrupts it. A slice ending in
/// an error of kind `retry` is retried until `timeout` seconds (`None`:
/// forever) have passed; then that error is returned as it is, like any
/// other error.
pub(crate) fn sliced<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    retry: ErrorKind,
    attempt: impl Fn(std::time::Duration) -> sharray::Result<T> + Sync,
) -> PyResult<sharray::Result<T>> {
    let deadline = guard::deadline(py, timeout)?;
    loop {
        let slice = guard::next_slice(deadline);
        match py.detach(|| attempt(slice)) {
            Err(e) if e.kind() == retry => {
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Ok(Err(e));
                }
                py.check_signals()?;
            }
            other => return Ok(other),
        }
    }
}
