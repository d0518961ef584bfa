//! sharray errors as Python exceptions. The classes live in
//! `sharray/_errors.py` (so they can also subclass `FileNotFoundError`,
//! `TimeoutError`, ...); this module picks the class for an [`ErrorKind`] and
//! keeps the one-line message.

use pyo3::prelude::*;
use pyo3::types::PyString;
use sharray::ErrorKind;

/// The exception class name in `sharray._errors` for a kind.
pub(crate) fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFound",
        ErrorKind::AlreadyExists => "AlreadyExists",
        ErrorKind::PermissionDenied => "PermissionDenied",
        ErrorKind::InvalidInput => "InvalidInput",
        ErrorKind::DtypeMismatch => "DtypeMismatch",
        ErrorKind::ShapeMismatch => "ShapeMismatch",
        ErrorKind::Corrupt => "CorruptFile",
        ErrorKind::Unsupported => "Unsupported",
        ErrorKind::NotARegularFile => "NotARegularFile",
        ErrorKind::LockTimeout => "LockTimeout",
        ErrorKind::Timeout => "Timeout",
        ErrorKind::NoSpace => "NoSpace",
        ErrorKind::Disconnected => "Disconnected",
        ErrorKind::Full => "Full",
        ErrorKind::Replaced => "Replaced",
        ErrorKind::Io => "IOFailure",
        _ => "SharrayError",
    }
}

/// Build `sharray.<class>(message)` with `.kind` and `.path` set (and
/// `.errno` for `OSError` subclasses: `os_errno`, else the class's `ERRNO`).
pub(crate) fn make(
    py: Python<'_>,
    class: &str,
    message: &str,
    path: Option<&str>,
    os_errno: Option<i32>,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = py.import("sharray._errors")?;
        let cls = module
            .getattr(class)
            .or_else(|_| module.getattr("SharrayError"))?;
        let exc = cls.call1((message,))?;
        exc.setattr("kind", cls.getattr("KIND")?)?;
        // OSError subclasses carry an errno like the builtin ones: the OS
        // error behind it if there was one, else the class's usual errno.
        // (Only `errno` is set: `strerror`/`filename` would change str().)
        if exc.is_instance_of::<pyo3::exceptions::PyOSError>() {
            let errno = match os_errno {
                Some(n) => n.into_pyobject(py)?.into_any(),
                None => cls.getattr("ERRNO")?,
            };
            exc.setattr("errno", errno)?;
        }
        exc.setattr("path", path.map(|p| PyString::new(py, p)))?;
        Ok(PyErr::from_value(exc))
    };
    // If even the exception module is broken, fall back to a RuntimeError
    // that still carries the message.
    build().unwrap_or_else(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!(
            "{message} (and sharray._errors failed: {e})"
        ))
    })
}

/// Convert a sharray error, keeping its one-line message.
pub(crate) fn to_py(py: Python<'_>, e: &sharray::Error) -> PyErr {
    let path = e.path().map(|p| p.to_string_lossy().into_owned());
    make(
        py,
        class_name(e.kind()),
        &e.to_string(),
        path.as_deref(),
        os_errno(e),
    )
}

/// The OS error number behind a sharray error, if the chain holds one.
fn os_errno(e: &sharray::Error) -> Option<i32> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(n) = s
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(n);
        }
        source = s.source();
    }
    None
}

/// An error of `kind` raised by the binding itself (not by the crate).
pub(crate) fn new(py: Python<'_>, kind: ErrorKind, message: &str, path: Option<&str>) -> PyErr {
    let full = match path {
        Some(p) => format!("{p}: {message}"),
        None => message.to_string(),
    };
    make(py, class_name(kind), &full, path, None)
}

/// `?`-friendly conversion for sharray results.
pub(crate) trait IntoPy<T> {
    /// Map the error to its Python exception.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for sharray::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}
