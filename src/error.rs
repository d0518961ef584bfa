//! The crate's error type: an opaque [`Error`] with a [`ErrorKind`], the path
//! it concerns, a one-line message that says what to do, and the OS error
//! underneath (if any).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, in categories a program can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// The destination already exists; sharray never overwrites.
    AlreadyExists,
    /// Permission denied by the OS, or the file belongs to another user.
    PermissionDenied,
    /// An argument is invalid (shape, dtype, option).
    InvalidInput,
    /// The element type asked for does not match the file's dtype.
    DtypeMismatch,
    /// A shape does not match what was expected.
    ShapeMismatch,
    /// The file is not a valid sharray/.npy file (bad magic, truncated, corrupt
    /// control block, sizes that do not add up).
    Corrupt,
    /// The file was made by a newer, incompatible sharray format version, or
    /// the operation is not possible on this kind of file.
    Unsupported,
    /// The path is a symlink, a directory, a device or another non-regular file.
    NotARegularFile,
    /// Waiting for a lock took longer than the timeout given.
    LockTimeout,
    /// Waiting for an event (a change, a frame, a free slot, a barrier) took
    /// longer than the timeout given.
    Timeout,
    /// The filesystem is full.
    NoSpace,
    /// The other side is gone (a ring's stream was closed by a producer and
    /// is drained, a closed ring refused a producer, or a barrier
    /// participant died).
    Disconnected,
    /// A fixed-size table in the control block is full (too many participants).
    Full,
    /// The file on disk was replaced (unlinked and recreated) while we held it.
    Replaced,
    /// Any other I/O error.
    Io,
}

/// The error type of sharray.
///
/// `Display` prints one line: what went wrong, with the path, and what to do.
/// Use [`Error::kind`] to branch on the category.
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    source: Option<io::Error>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a one-line human message that says what is
    /// wrong and what to do. For front ends (the CLI, the Python package)
    /// that report their own errors in the same shape as the library's.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            path: None,
            source: None,
        }
    }

    /// Attach the path the error concerns (kept if one is already set).
    pub fn at(mut self, path: &Path) -> Error {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// An error from an OS call, categorised from its `io::ErrorKind`.
    pub(crate) fn io(context: impl Into<String>, err: io::Error) -> Error {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ if err.raw_os_error() == Some(libc::ENOSPC)
                || err.raw_os_error() == Some(libc::EDQUOT) =>
            {
                ErrorKind::NoSpace
            }
            _ if err.raw_os_error() == Some(libc::ELOOP) => ErrorKind::NotARegularFile,
            _ => ErrorKind::Io,
        };
        let mut message = context.into();
        match kind {
            ErrorKind::NoSpace => message.push_str(": the filesystem is full; free space or choose a smaller array"),
            ErrorKind::NotARegularFile => message.push_str(": the path is a symlink; sharray refuses symlinks, pass the real path"),
            ErrorKind::NotFound => message.push_str(": no such file"),
            ErrorKind::PermissionDenied => message.push_str(": permission denied"),
            ErrorKind::AlreadyExists => message.push_str(": a file already exists there; sharray never overwrites, remove it first or pick another path"),
            _ => {}
        }
        Error {
            kind,
            message,
            path: None,
            source: Some(err),
        }
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The path this error concerns, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        f.write_str(&self.message)?;
        if let Some(src) = &self.source {
            // Only add the OS text when the message does not already carry it.
            let s = src.to_string();
            if !self.message.contains(&s)
                && !matches!(self.kind, ErrorKind::NotFound | ErrorKind::AlreadyExists)
            {
                write!(f, " ({s})")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("path", &self.path)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An `io::Error` that keeps the sharray error as its source.
///
/// The result's [`io::Error::kind`] is the OS error's kind when an OS error
/// caused this one (so `ENOSPC` stays `StorageFull`, `EACCES` stays
/// `PermissionDenied`), and otherwise the io kind closest to [`Error::kind`].
/// The sharray [`Error`] is the io error's payload: `get_ref()`,
/// `into_inner()` and `downcast::<Error>()` return it, and its `Display` is
/// the io error's. (`io::Error::source` forwards to the payload's source, so
/// an error-chain printer shows the sharray message, then the OS error.)
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e.source {
            Some(src) => src.kind(),
            None => match e.kind {
                ErrorKind::NotFound => io::ErrorKind::NotFound,
                ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
                ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
                ErrorKind::InvalidInput | ErrorKind::DtypeMismatch | ErrorKind::ShapeMismatch => {
                    io::ErrorKind::InvalidInput
                }
                ErrorKind::Corrupt => io::ErrorKind::InvalidData,
                ErrorKind::Unsupported => io::ErrorKind::Unsupported,
                ErrorKind::LockTimeout | ErrorKind::Timeout => io::ErrorKind::TimedOut,
                ErrorKind::NoSpace => io::ErrorKind::StorageFull,
                ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
                ErrorKind::NotARegularFile => io::ErrorKind::InvalidInput,
                ErrorKind::Full => io::ErrorKind::QuotaExceeded,
                ErrorKind::Replaced => io::ErrorKind::StaleNetworkFileHandle,
                ErrorKind::Io => io::ErrorKind::Other,
            },
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_path() {
        let e = Error::new(ErrorKind::Corrupt, "file is truncated").at(Path::new("/tmp/x.npy"));
        let s = e.to_string();
        assert_eq!(s, "/tmp/x.npy: file is truncated");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn io_errors_are_categorised() {
        let e = Error::io("cannot create", io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        assert!(e.to_string().contains("full"));
        let back: io::Error = e.into();
        assert_eq!(back.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn into_io_error_keeps_the_os_kind_and_the_sharray_error() {
        use std::error::Error as _;
        // With an OS error underneath, its kind wins (EACCES stays
        // PermissionDenied, EDQUOT stays QuotaExceeded although sharray
        // calls both "no space"), and the sharray error stays reachable.
        let e = Error::io("cannot create", io::Error::from_raw_os_error(libc::EDQUOT))
            .at(Path::new("/tmp/x.npy"));
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        let text = e.to_string();
        let back: io::Error = e.into();
        assert_eq!(back.kind(), io::ErrorKind::QuotaExceeded);
        assert_eq!(back.to_string(), text);
        let inner = back
            .get_ref()
            .and_then(|s| s.downcast_ref::<Error>())
            .unwrap();
        assert_eq!(inner.kind(), ErrorKind::NoSpace);
        assert_eq!(inner.path(), Some(Path::new("/tmp/x.npy")));
        // ... and the OS error is the next link of the chain.
        let os = inner
            .source()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .unwrap();
        assert_eq!(os.raw_os_error(), Some(libc::EDQUOT));
        // io::Error::source forwards to the payload's source: the same OS error.
        let os = back.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(os.and_then(io::Error::raw_os_error), Some(libc::EDQUOT));

        let e = Error::io("cannot lock", io::Error::from_raw_os_error(libc::EACCES));
        let back: io::Error = e.into();
        assert_eq!(back.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            back.downcast::<Error>().unwrap().kind(),
            ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn into_io_error_maps_kinds_without_an_os_error() {
        let cases = [
            (ErrorKind::NotFound, io::ErrorKind::NotFound),
            (ErrorKind::AlreadyExists, io::ErrorKind::AlreadyExists),
            (ErrorKind::PermissionDenied, io::ErrorKind::PermissionDenied),
            (ErrorKind::InvalidInput, io::ErrorKind::InvalidInput),
            (ErrorKind::DtypeMismatch, io::ErrorKind::InvalidInput),
            (ErrorKind::ShapeMismatch, io::ErrorKind::InvalidInput),
            (ErrorKind::Corrupt, io::ErrorKind::InvalidData),
            (ErrorKind::Unsupported, io::ErrorKind::Unsupported),
            (ErrorKind::NotARegularFile, io::ErrorKind::InvalidInput),
            (ErrorKind::LockTimeout, io::ErrorKind::TimedOut),
            (ErrorKind::Timeout, io::ErrorKind::TimedOut),
            (ErrorKind::NoSpace, io::ErrorKind::StorageFull),
            (ErrorKind::Disconnected, io::ErrorKind::BrokenPipe),
            (ErrorKind::Full, io::ErrorKind::QuotaExceeded),
            (ErrorKind::Replaced, io::ErrorKind::StaleNetworkFileHandle),
            (ErrorKind::Io, io::ErrorKind::Other),
        ];
        for (kind, want) in cases {
            let back: io::Error = Error::new(kind, "x").into();
            assert_eq!(back.kind(), want, "{kind:?}");
            let inner = back.into_inner().unwrap().downcast::<Error>().unwrap();
            assert_eq!(inner.kind(), kind);
        }
    }
}
