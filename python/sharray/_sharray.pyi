"""Type stubs for the native part of sharray (sharray._sharray)."""

import os
from types import TracebackType
from typing import Any, Dict, List, Optional, Tuple, Type, Union, final

import numpy as np
import numpy.typing as npt

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_Shape = Union[int, Tuple[int, ...], List[int]]

__all__ = ["SharedArray", "Guard", "_ViewBase", "create", "open", "info", "import_npy", "export_npy", "__version__"]

__version__: str

@final
class _ViewBase:
    """The ``.base`` of every view: keeps its mapping alive."""

    @property
    def revoked(self) -> bool:
        """Has the guard that made the view ended?"""

@final
class Guard:
    """A held read or write lock on a shared array; a context manager whose
    ``__enter__`` returns the numpy view of the data (no copy).

    When the guard ends (``__exit__``, ``release()`` or garbage collection),
    the view becomes read-only, and it and every view derived from it are cut
    off from the file: they read zeros, and writes through derived views go
    to private memory that only other stale views of this guard see."""

    def __enter__(self) -> npt.NDArray[Any]: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @property
    def view(self) -> npt.NDArray[Any]:
        """The numpy view (created once, then the same object)."""
    def release(self) -> None:
        """Revoke the views and release the lock (idempotent)."""
    @property
    def active(self) -> bool:
        """Is the lock still held?"""
    @property
    def mode(self) -> str:
        """``"read"`` or ``"write"``."""
    @property
    def _window(self) -> Optional[Tuple[int, int]]:
        """Debug: (address, length) of the mapping the view lives in."""

@final
class SharedArray:
    """A handle to a shared array file (see ``sharray.create``/``sharray.open``)."""

    @property
    def path(self) -> str: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def ndim(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def order(self) -> str:
        """``"C"`` or ``"F"``."""
    @property
    def kind(self) -> str:
        """``"array"`` (sharray file) or ``"npy"`` (plain .npy)."""
    @property
    def readonly(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def generation(self) -> int:
        """Bumped by every write guard whose view was taken; 0 for a plain .npy."""
    def wait_changed(self, since: int, timeout: Optional[float] = None) -> int:
        """Wait until the generation differs from ``since``; returns it.
        Raises ``Timeout`` (a ``TimeoutError``); Ctrl-C interrupts."""
    def flush(self) -> None:
        """``msync`` the data to disk; raises on I/O errors."""
    def read(self, timeout: Optional[float] = None) -> Guard:
        """Shared lock (``LockTimeout`` after ``timeout`` s; None waits forever)."""
    def write(self, timeout: Optional[float] = None) -> Guard:
        """Exclusive lock (``LockTimeout`` after ``timeout`` s; None waits forever)."""
    def info(self) -> Dict[str, Any]:
        """Layout and generation, as ``sharray.info`` returns them."""
    def close(self) -> None:
        """Drop this handle; live guards and views keep working until they end."""
    def __enter__(self) -> "SharedArray": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def __reduce__(self) -> Tuple[Any, Tuple[str, bool]]: ...

def create(
    path: _Path,
    shape: _Shape,
    dtype: npt.DTypeLike,
    fill: Any = None,
    order: str = "C",
    mode: int = 0o600,
) -> SharedArray:
    """Create a new array file (``shm:NAME`` = ``/dev/shm/NAME``); never overwrites."""

def open(
    path: _Path,
    readonly: bool = False,
    dtype: Optional[npt.DTypeLike] = None,
    shape: Optional[_Shape] = None,
    allow_other_owner: bool = False,
) -> SharedArray:
    """Open a sharray file or plain .npy; optionally check dtype and shape."""

def info(path: _Path) -> Dict[str, Any]:
    """Layout of any sharray/.npy file: path, kind, dtype, shape, order,
    data_offset, nbytes, file_len, format_version, generation."""

def import_npy(src: _Path, dst: _Path, mode: int = 0o600) -> SharedArray:
    """Copy a .npy into a new sharray file, byte-exact."""

def export_npy(src: _Path, dst: _Path, mode: int = 0o600) -> None:
    """Write an array to a new plain .npy, byte-exact, under a read lock."""
