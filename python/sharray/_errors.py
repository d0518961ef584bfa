"""Exceptions raised by sharray.

Every error is a :class:`SharrayError` carrying the same one-line message as
the Rust crate and the CLI (what is wrong and what to do), plus ``.kind`` (a
short name such as ``"lock_timeout"``) and ``.path`` (the file concerned, or
``None``). Each subclass also derives from the builtin exception a Python
programmer would expect, so ``except FileNotFoundError`` or
``except TimeoutError`` work as usual.
"""

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
    kind: str = "error"
    path: Optional[str] = None


class NotFound(SharrayError, FileNotFoundError):
    """The file does not exist."""

    KIND = "not_found"


class AlreadyExists(SharrayError, FileExistsError):
    """The destination exists; sharray never overwrites."""

    KIND = "already_exists"


class PermissionDenied(SharrayError, PermissionError):
    """The OS refused, the file belongs to another user, or the handle is read-only."""

    KIND = "permission_denied"


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


class LockTimeout(SharrayError, TimeoutError):
    """A lock was not granted within the timeout."""

    KIND = "lock_timeout"


class Timeout(SharrayError, TimeoutError):
    """An awaited event (a change, a frame, a free slot) did not come in time."""

    KIND = "timeout"


class NoSpace(SharrayError, OSError):
    """The filesystem is full (nothing was left behind)."""

    KIND = "no_space"


class Disconnected(SharrayError, BrokenPipeError):
    """The other side is gone: a ring's stream was closed by a producer and is
    drained, or a barrier participant died."""

    KIND = "disconnected"


class Full(SharrayError):
    """A fixed-size table in the file is full (too many participants)."""

    KIND = "full"


class Replaced(SharrayError, OSError):
    """The file was deleted or replaced while open; reopen the path."""

    KIND = "replaced"


class IOFailure(SharrayError, OSError):
    """Any other I/O error."""

    KIND = "io"
