//! Objects inherited through `fork()`.
//!
//! A forked child inherits every Python object of its parent, and with them
//! handles whose kernel locks (`flock`, OFD byte-range locks) belong to open
//! file descriptions the parent still uses. Acting through such a handle in
//! the child would act on the parent's locks, and dropping it would release
//! them or give back the parent's slots, chunks and registrations. So every
//! such object records the process that made it ([`Origin`]): in any other
//! process it refuses to act, and it is leaked instead of dropped.

#![allow(unsafe_code)]

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use pyo3::prelude::*;
use sharray::ErrorKind;

use crate::errors;

/// What to do instead, for an array handle or guard inherited by a child.
pub(crate) const HANDLE: &str = "this handle was inherited through fork(), so its locks would be shared with the parent process; open the path again in this process with sharray.open()";

/// What to do instead, for a ring object inherited by a child.
pub(crate) const RING: &str = "this ring object was inherited through fork(), so its registration belongs to the parent process; open the ring again in this process with sharray.Ring.open()";

/// What to do instead, for a worker or claim inherited by a child.
pub(crate) const WORKER: &str = "this worker was inherited through fork(), so its registration belongs to the parent process; open the queue again in this process and join it";

/// This process's id, cached: `getpid()` is a system call (glibc stopped
/// caching it), and ring objects check it on every loan, commit and lease.
/// 0: not known yet; a forked child resets it in the `pthread_atfork`
/// handler registered before the first id is cached.
static PID: AtomicU32 = AtomicU32::new(0);
static AT_FORK: Once = Once::new();

extern "C" fn forget_pid_in_child() {
    // Async-signal-safe: a plain atomic store.
    PID.store(0, Ordering::Relaxed);
}

fn current_pid() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only stores an atomic; if
        // registration fails (ENOMEM) nothing is cached (see below).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) };
        if rc != 0 {
            NO_CACHE.store(true, Ordering::Relaxed);
        }
    });
    let pid = std::process::id();
    if !NO_CACHE.load(Ordering::Relaxed) {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}
static NO_CACHE: AtomicBool = AtomicBool::new(false);

/// The process an object was made in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin(u32);

impl Origin {
    /// This process.
    pub(crate) fn here() -> Origin {
        Origin(current_pid())
    }

    /// Are we a forked child of the process the object was made in?
    pub(crate) fn is_forked(self) -> bool {
        self.0 != current_pid()
    }

    /// The `sharray.Unsupported` error (with `message`, one of this
    /// module's constants) for an object used in a forked child.
    pub(crate) fn error(py: Python<'_>, message: &str, path: &str) -> PyErr {
        errors::new(py, ErrorKind::Unsupported, message, Some(path))
    }

    /// Refuse to act through the object in a forked child.
    pub(crate) fn check(self, py: Python<'_>, message: &str, path: &str) -> PyResult<()> {
        if self.is_forked() {
            Err(Origin::error(py, message, path))
        } else {
            Ok(())
        }
    }

    /// Drop `value` (a lock, loan, lease, claim or registration) in the
    /// process that made it; in a forked child, leak it instead.
    pub(crate) fn drop_or_leak<T>(self, value: T) {
        if self.is_forked() {
            std::mem::forget(value);
        } else {
            drop(value);
        }
    }

    /// [`Origin::drop_or_leak`] with the GIL released (dropping may wait
    /// for the ring or queue lock).
    pub(crate) fn detach_drop_or_leak<T: Send>(self, py: Python<'_>, value: T) {
        if self.is_forked() {
            std::mem::forget(value);
        } else {
            py.detach(move || drop(value));
        }
    }
}
