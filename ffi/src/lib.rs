//! The C ABI of sharray: `libsharray.so` / `libsharray.a` and the header
//! `include/sharray.h` (generated from this crate by cbindgen; the test
//! `header_is_up_to_date` fails when the checked-in header differs).
//!
//! # Conventions (copied into the header)
//!
//! - Every function returns a [`sharray_status`]; `SHARRAY_OK` (0) is
//!   success. On failure `sharray_last_error()` gives a one-line message
//!   (what is wrong and what to do) for the calling thread.
//! - Results come back through out-parameters, which are set to NULL / 0 on
//!   failure.
//! - Handles are opaque pointers. Each has exactly one function that ends
//!   it (`*_free`, `*_release`, `sharray_loan_commit`/`_abandon`,
//!   `sharray_claim_complete`/`_abandon`); after it the pointer is dangling.
//!   NULL is refused with `SHARRAY_INVALID_ARGUMENT` everywhere; a freed or
//!   foreign pointer cannot be detected (it is undefined behaviour, as with
//!   `free()`; AddressSanitizer reports it).
//! - No Rust panic crosses the boundary: a panic becomes `SHARRAY_PANIC`.
//! - Timeouts are `int64_t` milliseconds: `SHARRAY_FOREVER` (-1) blocks,
//!   `SHARRAY_TRY` (0) never waits (`SHARRAY_WOULD_BLOCK` if nothing is
//!   available right now), a positive value waits at most that long
//!   (`SHARRAY_TIMEOUT` / `SHARRAY_LOCK_TIMEOUT` after that).
//!
//! # Safety
//!
//! Every function is `unsafe extern "C"`: the caller promises that each
//! handle argument is NULL or a live handle of the named type returned by
//! this library, that each string is NUL-terminated, that each array
//! argument holds the stated number of elements, and that each
//! out-parameter is NULL or points to writable memory of its type. Under
//! those promises no call causes undefined behaviour, whatever the files
//! contain. The helpers below are the only places that turn the raw
//! pointers into references.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The C names are the ABI: `sharray_array`, `SHARRAY_OK`.
#![allow(non_camel_case_types)]

mod array;
mod consumer;
mod pool;
mod ring;

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use sharray_core::{Error, ErrorKind};

pub use array::*;
pub use consumer::*;
pub use pool::*;
pub use ring::*;

/// The result of every call. `SHARRAY_OK` is 0; the values mirror the
/// library's error kinds, plus the codes of the C layer itself.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sharray_status {
    /// Success.
    SHARRAY_OK = 0,
    /// The file does not exist.
    SHARRAY_NOT_FOUND = 1,
    /// The destination already exists; sharray never overwrites.
    SHARRAY_ALREADY_EXISTS = 2,
    /// Permission denied by the OS, the file belongs to another user, or
    /// the handle is read-only.
    SHARRAY_PERMISSION_DENIED = 3,
    /// An argument is invalid (shape, dtype string, option value).
    SHARRAY_INVALID_INPUT = 4,
    /// The dtype does not match what was expected.
    SHARRAY_DTYPE_MISMATCH = 5,
    /// A shape does not match what was expected.
    SHARRAY_SHAPE_MISMATCH = 6,
    /// The file is not a valid sharray/.npy file.
    SHARRAY_CORRUPT = 7,
    /// A newer format, or an operation this kind of file does not support
    /// (a ring opened as a queue, a plain .npy asked to wait for changes).
    SHARRAY_UNSUPPORTED = 8,
    /// The path is a symlink, directory, device or other non-regular file.
    SHARRAY_NOT_A_REGULAR_FILE = 9,
    /// Waiting for a lock took longer than the timeout.
    SHARRAY_LOCK_TIMEOUT = 10,
    /// Waiting for an event (a change, a frame, a free slot, a chunk, the
    /// end of a job) took longer than the timeout.
    SHARRAY_TIMEOUT = 11,
    /// The filesystem is full.
    SHARRAY_NO_SPACE = 12,
    /// The other side is gone: the ring's stream was closed and drained, a
    /// closed ring refused a plain producer, or a claim was taken away.
    SHARRAY_DISCONNECTED = 13,
    /// A fixed-size table (participants, workers) is full.
    SHARRAY_FULL = 14,
    /// The file on disk was replaced while it was held.
    SHARRAY_REPLACED = 15,
    /// Any other I/O error.
    SHARRAY_IO = 16,
    /// A `SHARRAY_TRY` call found nothing available right now (lock held,
    /// no free slot, no frame, no claimable chunk). Not an error: retry.
    SHARRAY_WOULD_BLOCK = 100,
    /// A worker's claim found every chunk of the queue done. Not an error:
    /// the end of the work loop.
    SHARRAY_DONE = 101,
    /// An argument of the C call is invalid: a NULL handle or pointer, a
    /// string that is not UTF-8, a value out of range, a handle still in
    /// use.
    SHARRAY_INVALID_ARGUMENT = 200,
    /// An internal error (a bug in sharray): a Rust panic was caught at the
    /// boundary. The handles involved may be left in any state; free them.
    SHARRAY_PANIC = 201,
    /// An error kind this header does not know (a newer library).
    SHARRAY_OTHER = 202,
}

use sharray_status::*;

/// Block until the operation can proceed.
pub const SHARRAY_FOREVER: i64 = -1;
/// Never wait: `SHARRAY_WOULD_BLOCK` if the operation cannot proceed now.
pub const SHARRAY_TRY: i64 = 0;

/// A failed call: the status and the message stored for `sharray_last_error`.
pub(crate) struct Fail {
    status: sharray_status,
    message: String,
}

impl Fail {
    pub(crate) fn arg(message: impl Into<String>) -> Fail {
        Fail {
            status: SHARRAY_INVALID_ARGUMENT,
            message: message.into(),
        }
    }

    pub(crate) fn would_block(what: &str) -> Fail {
        Fail {
            status: SHARRAY_WOULD_BLOCK,
            message: format!("{what}: not available right now (SHARRAY_TRY); retry or wait"),
        }
    }

    pub(crate) fn done(message: impl Into<String>) -> Fail {
        Fail {
            status: SHARRAY_DONE,
            message: message.into(),
        }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail {
            status: status_of(e.kind()),
            message: e.to_string(),
        }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Fail>;

fn status_of(kind: ErrorKind) -> sharray_status {
    match kind {
        ErrorKind::NotFound => SHARRAY_NOT_FOUND,
        ErrorKind::AlreadyExists => SHARRAY_ALREADY_EXISTS,
        ErrorKind::PermissionDenied => SHARRAY_PERMISSION_DENIED,
        ErrorKind::InvalidInput => SHARRAY_INVALID_INPUT,
        ErrorKind::DtypeMismatch => SHARRAY_DTYPE_MISMATCH,
        ErrorKind::ShapeMismatch => SHARRAY_SHAPE_MISMATCH,
        ErrorKind::Corrupt => SHARRAY_CORRUPT,
        ErrorKind::Unsupported => SHARRAY_UNSUPPORTED,
        ErrorKind::NotARegularFile => SHARRAY_NOT_A_REGULAR_FILE,
        ErrorKind::LockTimeout => SHARRAY_LOCK_TIMEOUT,
        ErrorKind::Timeout => SHARRAY_TIMEOUT,
        ErrorKind::NoSpace => SHARRAY_NO_SPACE,
        ErrorKind::Disconnected => SHARRAY_DISCONNECTED,
        ErrorKind::Full => SHARRAY_FULL,
        ErrorKind::Replaced => SHARRAY_REPLACED,
        ErrorKind::Io => SHARRAY_IO,
        _ => SHARRAY_OTHER,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds a NUL in practice; if one does, cut it there.
    let cut = message.split('\0').next().unwrap_or("");
    let c = CString::new(cut).unwrap_or_default();
    // `try_with`: during thread teardown the slot may be gone; then the
    // message is dropped rather than panicking across the boundary.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut m) = slot.try_borrow_mut() {
            *m = c;
        }
    });
}

/// Run the body of an exported function: turn its error into a status and
/// the thread's last-error message, and a panic into `SHARRAY_PANIC`.
pub(crate) fn run(f: impl FnOnce() -> FfiResult) -> sharray_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SHARRAY_OK,
        Ok(Err(fail)) => {
            set_last_error(&fail.message);
            fail.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!(
                "internal error in sharray (a bug, please report it): {what}"
            ));
            SHARRAY_PANIC
        }
    }
}

/// A shared reference to the handle behind `p`.
///
/// # Safety
///
/// `p` is NULL or a live handle of type `T` (the module contract).
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller promises `p` is NULL or a live `T`.
    unsafe { p.as_ref() }.ok_or_else(|| Fail::arg(format!("{what} is NULL; pass a live handle")))
}

/// An exclusive reference to the handle behind `p`.
///
/// # Safety
///
/// `p` is NULL or a live handle of type `T` not used by another thread now.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller promises `p` is NULL or a live `T`, used by this
    // thread only during the call.
    unsafe { p.as_mut() }.ok_or_else(|| Fail::arg(format!("{what} is NULL; pass a live handle")))
}

/// Take back ownership of a handle (its end-of-life call).
///
/// # Safety
///
/// `p` is NULL or a live handle of type `T` created by `Box::into_raw`.
pub(crate) unsafe fn take<T>(p: *mut T, what: &str) -> FfiResult<Box<T>> {
    if p.is_null() {
        return Err(Fail::arg(format!("{what} is NULL; pass a live handle")));
    }
    // SAFETY: non-NULL, and the caller promises a live handle made by
    // `Box::into_raw` that nobody uses after this call.
    Ok(unsafe { Box::from_raw(p) })
}

/// Store `value` through an out-parameter.
///
/// # Safety
///
/// `out` is NULL or valid for writing a `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, what: &str) -> FfiResult {
    if out.is_null() {
        return Err(Fail::arg(format!(
            "{what} is NULL; pass where to store the result"
        )));
    }
    // SAFETY: non-NULL and writable by the caller's promise; `write` does
    // not drop the (possibly uninitialised) old value.
    unsafe { out.write(value) };
    Ok(())
}

/// Clear an out-parameter (to NULL / 0) before the call can fail, so a
/// caller that ignores the status never sees a stale value.
///
/// # Safety
///
/// As [`put`].
pub(crate) unsafe fn clear<T: Default>(out: *mut T) {
    if !out.is_null() {
        // SAFETY: as `put`.
        unsafe { out.write(T::default()) };
    }
}

/// Clear a handle out-parameter to NULL.
///
/// # Safety
///
/// As [`put`].
pub(crate) unsafe fn clear_handle<T>(out: *mut *mut T) {
    if !out.is_null() {
        // SAFETY: as `put`.
        unsafe { out.write(std::ptr::null_mut()) };
    }
}

/// Hand a new handle to C.
///
/// # Safety
///
/// As [`put`].
pub(crate) unsafe fn give<T>(out: *mut *mut T, value: T, what: &str) -> FfiResult {
    if out.is_null() {
        return Err(Fail::arg(format!(
            "{what} is NULL; pass where to store the handle"
        )));
    }
    // SAFETY: as `put`.
    unsafe { out.write(Box::into_raw(Box::new(value))) };
    Ok(())
}

/// A C string argument as UTF-8.
///
/// # Safety
///
/// `s` is NULL or a NUL-terminated string.
pub(crate) unsafe fn text<'a>(s: *const c_char, what: &str) -> FfiResult<&'a str> {
    if s.is_null() {
        return Err(Fail::arg(format!(
            "{what} is NULL; pass a NUL-terminated string"
        )));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str()
        .map_err(|_| Fail::arg(format!("{what} is not valid UTF-8")))
}

/// A path argument: a file path, or `shm:NAME` for `/dev/shm/NAME`.
///
/// # Safety
///
/// As [`text`].
pub(crate) unsafe fn location(path: *const c_char) -> FfiResult<PathBuf> {
    // SAFETY: forwarded contract.
    let s = unsafe { text(path, "path") }?;
    Ok(sharray_core::resolve_location(s)?)
}

/// A shape argument: `ndim` sizes at `shape` (`shape` may be NULL when
/// `ndim` is 0).
///
/// # Safety
///
/// `shape` is NULL or points to `ndim` readable `size_t`s.
pub(crate) unsafe fn shape_arg(shape: *const usize, ndim: usize) -> FfiResult<Vec<usize>> {
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if shape.is_null() {
        return Err(Fail::arg(format!(
            "shape is NULL but ndim is {ndim}; pass an array of ndim sizes"
        )));
    }
    if ndim > 64 {
        return Err(Fail::arg(format!(
            "ndim {ndim} is too large (at most 64 dimensions)"
        )));
    }
    // SAFETY: non-NULL, `ndim` elements by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(shape, ndim) }.to_vec())
}

/// A dtype argument as numpy spells it ("float32", "<f4", "uint8", ...).
pub(crate) fn dtype_arg(s: &str) -> FfiResult<sharray_core::Dtype> {
    sharray_core::Dtype::parse_user(s).map_err(|e| Fail {
        status: SHARRAY_INVALID_INPUT,
        message: format!("dtype {s:?}: {}", e.message()),
    })
}

/// How a call with a timeout waits.
pub(crate) enum Wait {
    Forever,
    Try,
    For(Duration),
}

pub(crate) fn wait_of(timeout_ms: i64) -> FfiResult<Wait> {
    match timeout_ms {
        SHARRAY_FOREVER => Ok(Wait::Forever),
        SHARRAY_TRY => Ok(Wait::Try),
        // Capped: a deadline past what an `Instant` holds is not "forever"
        // everywhere in the library.
        ms if ms > 0 => Ok(Wait::For(Duration::from_millis(ms as u64).min(LONGEST))),
        ms => Err(Fail::arg(format!(
            "timeout_ms {ms} is invalid; pass SHARRAY_FOREVER (-1), SHARRAY_TRY (0) or a positive number of milliseconds"
        ))),
    }
}

/// The longest wait: a hundred years, a bound the library's deadline
/// arithmetic handles (a duration too large for an `Instant` would not mean
/// "forever" everywhere there).
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A timeout for calls that take only a duration (`SHARRAY_FOREVER` becomes
/// [`LONGEST`]).
pub(crate) fn duration_of(timeout_ms: i64) -> FfiResult<Duration> {
    Ok(match wait_of(timeout_ms)? {
        Wait::Forever => LONGEST,
        Wait::Try => Duration::ZERO,
        Wait::For(d) => d,
    })
}

/// The message of the last failed call on the calling thread ("" if none
/// failed yet).
///
/// The pointer stays valid until the next failing sharray call on this
/// thread; copy the text to keep it. Thread-safe (each thread has its own
/// message). Successful calls leave it unchanged.
#[unsafe(no_mangle)]
pub extern "C" fn sharray_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.try_borrow().map(|m| m.as_ptr()).ok())
        .ok()
        .flatten()
        .unwrap_or(c"".as_ptr())
}

/// The name of a status code ("SHARRAY_OK", "SHARRAY_TIMEOUT", ...), a
/// static string; "SHARRAY_UNKNOWN_STATUS" for a value that is none of them.
#[unsafe(no_mangle)]
pub extern "C" fn sharray_status_name(status: c_int) -> *const c_char {
    let name: &'static CStr = match status {
        0 => c"SHARRAY_OK",
        1 => c"SHARRAY_NOT_FOUND",
        2 => c"SHARRAY_ALREADY_EXISTS",
        3 => c"SHARRAY_PERMISSION_DENIED",
        4 => c"SHARRAY_INVALID_INPUT",
        5 => c"SHARRAY_DTYPE_MISMATCH",
        6 => c"SHARRAY_SHAPE_MISMATCH",
        7 => c"SHARRAY_CORRUPT",
        8 => c"SHARRAY_UNSUPPORTED",
        9 => c"SHARRAY_NOT_A_REGULAR_FILE",
        10 => c"SHARRAY_LOCK_TIMEOUT",
        11 => c"SHARRAY_TIMEOUT",
        12 => c"SHARRAY_NO_SPACE",
        13 => c"SHARRAY_DISCONNECTED",
        14 => c"SHARRAY_FULL",
        15 => c"SHARRAY_REPLACED",
        16 => c"SHARRAY_IO",
        100 => c"SHARRAY_WOULD_BLOCK",
        101 => c"SHARRAY_DONE",
        200 => c"SHARRAY_INVALID_ARGUMENT",
        201 => c"SHARRAY_PANIC",
        202 => c"SHARRAY_OTHER",
        _ => c"SHARRAY_UNKNOWN_STATUS",
    };
    name.as_ptr()
}

/// The library version ("0.1.0"), a static string.
#[unsafe(no_mangle)]
pub extern "C" fn sharray_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_a_status_and_a_message() {
        let st = run(|| panic!("boom"));
        assert_eq!(st, SHARRAY_PANIC);
        // SAFETY: the pointer is a NUL-terminated thread-local string.
        let msg = unsafe { CStr::from_ptr(sharray_last_error()) };
        assert!(msg.to_str().unwrap().contains("boom"));
    }
}
