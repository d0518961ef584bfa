"""Exceptions raised by sharray.

Every error is a :class:`SharrayError` carrying the same one-line message as
the Rust crate and the CLI (what is wrong and what to do), plus ``.kind`` (a
short name such as ``"lock_timeout"``) and ``.path`` (the file concerned, or
``None``). Each subclass also derives from the builtin exception a Python
programmer would expect, so ``except FileNotFoundError`` or
``except TimeoutError`` work as usual. The ``OSError`` subclasses carry
an ``errno`` too: the operating system's error when one caused it, else the
usual number for the class (``NotFound``: ``ENOENT``, ``AlreadyExists``:
``EEXIST``, ...), as the builtin exceptions do.
"""

import errno as _errno
from typing import Optional

__all__ = [
    "SharrayError",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "InvalidInput",
    "DtypeMismatch",
    "ShapeMismatch",
    "CorruptFile",
    "Unsupported",
    "NotARegularFile",
    "LockTimeout",
    "Timeout",
    "NoSpace",
    "Disconnected",
    "Full",
    "Replaced",
    "IOFailure",
]


class SharrayError(Exception):
    """Base class of every sharray error."""

    KIND = "error"
    #: The errno an ``OSError`` subclass gets when no OS error caused it.
    ERRNO: Optional[int] = None
    kind: str = "error"
    path: Optional[str] = None


class NotFound(SharrayError, FileNotFoundError):
    """The file does not exist."""

    KIND = "not_found"
    ERRNO: Optional[int] = _errno.ENOENT


class AlreadyExists(SharrayError, FileExistsError):
    """The destination exists; sharray never overwrites."""

    KIND = "already_exists"
    ERRNO: Optional[int] = _errno.EEXIST


class PermissionDenied(SharrayError, PermissionError):
    """The OS refused, the file belongs to another user, or the handle is read-only."""

    KIND = "permission_denied"
    ERRNO: Optional[int] = _errno.EACCES


class InvalidInput(SharrayError, ValueError):
    """An argument is invalid (shape, dtype, order, timeout), or the object is closed/released."""

    KIND = "invalid_input"


class DtypeMismatch(SharrayError, TypeError):
    """The file's dtype is not the one asked for."""

    KIND = "dtype_mismatch"


class ShapeMismatch(SharrayError, ValueError):
    """The file's shape is not the one asked for."""

    KIND = "shape_mismatch"


class CorruptFile(SharrayError, ValueError):
    """Not a valid sharray/.npy file (bad magic, truncated, corrupt control block)."""

    KIND = "corrupt"


class Unsupported(SharrayError):
    """Not possible on this file (newer format, plain .npy without a control block,
    a ring opened as an array) or in this process (a handle inherited through fork)."""

    KIND = "unsupported"


class NotARegularFile(SharrayError, OSError):
    """The path is a symlink, a directory, a device, a FIFO or a socket."""

    KIND = "not_a_regular_file"
    ERRNO: Optional[int] = None


class LockTimeout(SharrayError, TimeoutError):
    """A lock was not granted within the timeout."""

    KIND = "lock_timeout"
    ERRNO: Optional[int] = _errno.ETIMEDOUT


class Timeout(SharrayError, TimeoutError):
    """An awaited event (a change, a frame, a free slot) did not come in time."""

    KIND = "timeout"
    ERRNO: Optional[int] = _errno.ETIMEDOUT


class NoSpace(SharrayError, OSError):
    """The filesystem is full (nothing was left behind)."""

    KIND = "no_space"
    ERRNO: Optional[int] = _errno.ENOSPC


class Disconnected(SharrayError, BrokenPipeError):
    """The other side is gone: a ring's stream was closed by a producer and is
    drained, or a barrier participant died."""

    KIND = "disconnected"
    ERRNO: Optional[int] = _errno.EPIPE


class Full(SharrayError):
    """A fixed-size table in the file is full (too many participants)."""

    KIND = "full"


class Replaced(SharrayError, OSError):
    """The file was deleted or replaced while open; reopen the path."""

    KIND = "replaced"
    ERRNO: Optional[int] = _errno.ESTALE


class IOFailure(SharrayError, OSError):
    """Any other I/O error."""

    KIND = "io"
    ERRNO: Optional[int] = _errno.EIO
