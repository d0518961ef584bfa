"""Type stubs for the native part of sharray (sharray._sharray)."""

import os
from types import TracebackType
from typing import Any, AsyncIterator, Awaitable, Dict, Iterator, List, Optional, Tuple, Type, Union, final

import numpy as np
import numpy.typing as npt

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_Shape = Union[int, Tuple[int, ...], List[int]]

__all__ = [
    "SharedArray",
    "Guard",
    "_ViewBase",
    "Ring",
    "Producer",
    "WriteLoan",
    "Consumer",
    "ReadLease",
    "WorkQueue",
    "Worker",
    "Claim",
    "ClaimRows",
    "create",
    "open",
    "info",
    "import_npy",
    "export_npy",
    "__version__",
]

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

    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Optional[Tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any:
        """DLPack export of the view (no copy); revoked with the view."""
    def __dlpack_device__(self) -> Tuple[int, int]: ...
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
    def wait_changed_async(self, since: int, timeout: Optional[float] = None) -> Awaitable[int]:
        """``await`` form of ``wait_changed`` (asyncio): never blocks the event
        loop; cancelling the task unregisters the wait."""
    def flush(
        self, start: Optional[int] = None, stop: Optional[int] = None, wait: bool = True
    ) -> None:
        """``msync`` the data (elements ``start:stop``, default all) to disk;
        ``wait=False`` only starts the write-back. Raises on I/O errors."""
    @property
    def mode(self) -> str:
        """``"r"``, ``"r+"`` or ``"c"`` (copy-on-write)."""
    def advise(
        self, advice: str, start: Optional[int] = None, stop: Optional[int] = None
    ) -> str:
        """``normal``/``sequential``/``random``/``willneed``/``dontneed``/``hugepage``
        for elements ``start:stop``; returns ``"applied"`` or why not."""
    def prefault_read(self, start: Optional[int] = None, stop: Optional[int] = None) -> None:
        """Fault the range in for reading now (``MADV_POPULATE_READ``)."""
    def prefault_write(self, start: Optional[int] = None, stop: Optional[int] = None) -> None:
        """Fault the range in for writing now (``MADV_POPULATE_WRITE``)."""
    def evict(self, start: Optional[int] = None, stop: Optional[int] = None) -> None:
        """Drop the range from the page cache (``posix_fadvise(DONTNEED)``)."""
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
    def __len__(self) -> int:
        """Length of the first axis (``TypeError`` for a 0-d array)."""
    def __getitem__(self, key: Any) -> Any:
        """A copy of ``view[key]`` taken under a read guard (never a view)."""
    def __setitem__(self, key: Any, value: Any) -> None:
        """``view[key] = value`` under a write guard (bumps the generation)."""
    def __array__(
        self, dtype: Optional[npt.DTypeLike] = None, copy: Optional[bool] = None
    ) -> npt.NDArray[Any]:
        """``np.asarray(a)``: a copy under a read guard; ``copy=False`` raises ``ValueError``."""

def create(
    path: _Path,
    shape: _Shape,
    dtype: npt.DTypeLike,
    fill: Any = None,
    order: str = "C",
    mode: int = 0o600,
    exist_ok: bool = False,
) -> SharedArray:
    """Create a new array file (``shm:NAME`` = ``/dev/shm/NAME``); never overwrites.
    With ``exist_ok=True`` an existing file of the same dtype, shape and order
    is opened instead (``fill`` not applied); a different one raises
    ``DtypeMismatch``/``ShapeMismatch``."""

def open(
    path: _Path,
    readonly: bool = False,
    dtype: Optional[npt.DTypeLike] = None,
    shape: Optional[_Shape] = None,
    allow_other_owner: bool = False,
    mode: Optional[str] = None,
) -> SharedArray:
    """Open a sharray file or plain .npy (``mode`` ``"r"``, ``"r+"`` or ``"c"``
    for copy-on-write); optionally check dtype and shape."""

def open_raw(
    path: _Path,
    dtype: npt.DTypeLike,
    shape: _Shape,
    mode: str = "r+",
    offset: int = 0,
    order: str = "C",
    allow_other_owner: bool = False,
) -> SharedArray:
    """Open a headerless file as ``np.memmap`` does; the size must match exactly."""

def import_raw(
    src: _Path,
    dst: _Path,
    dtype: npt.DTypeLike,
    shape: _Shape,
    offset: int = 0,
    order: str = "C",
    mode: int = 0o600,
) -> SharedArray:
    """Copy a headerless file into a new sharray file."""

def set_view_policy(
    policy: Optional[str] = None, copy_below: Optional[int] = None
) -> Tuple[str, int]:
    """"auto" | "always" | "never" and the copy threshold; returns the previous ones."""

def info(path: _Path) -> Dict[str, Any]:
    """Layout of any sharray/.npy file: path, kind, dtype, shape, order,
    data_offset, nbytes, file_len, format_version, generation."""

def import_npy(src: _Path, dst: _Path, mode: int = 0o600) -> SharedArray:
    """Copy a .npy into a new sharray file, byte-exact."""

def export_npy(src: _Path, dst: _Path, mode: int = 0o600) -> None:
    """Write an array to a new plain .npy, byte-exact, under a read lock."""

# ------------------------------------------------------------------ rings

@final
class Ring:
    """A ring file: ``slots`` frames of one shape and dtype, for zero-copy
    producer/consumer pipelines between processes (Rust or Python).
    Pickles as its path."""

    @staticmethod
    def create(
        path: _Path,
        frame_shape: _Shape,
        dtype: npt.DTypeLike,
        slots: Optional[int] = None,
        broadcast: bool = False,
        overwrite: bool = False,
        max_participants: int = 64,
        mode: int = 0o600,
        prefault: bool = True,
    ) -> "Ring":
        """Create a ring (never overwrites). ``slots=None``: as many frames as
        fit in 16 MiB, 4 to 64. ``broadcast``: every consumer gets every frame
        (default: each frame to one consumer). ``overwrite``: drop the oldest
        unread frame instead of waiting for a free slot."""
    @staticmethod
    def open(path: _Path) -> "Ring":
        """Open a ring (``Unsupported`` if the file is not one)."""
    def advise(self, advice: str) -> str:
        """Access advice for the slots (as ``SharedArray.advise``); returns
        ``"applied"`` or why not."""
    @property
    def path(self) -> str: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def frame_shape(self) -> Tuple[int, ...]: ...
    @property
    def slots(self) -> int: ...
    @property
    def frame_nbytes(self) -> int:
        """Bytes per frame (per slot)."""
    @property
    def broadcast(self) -> bool: ...
    @property
    def overwrite(self) -> bool: ...
    @property
    def max_participants(self) -> int: ...
    def producer(self, spin: Optional[float] = None, reopen: bool = False) -> "Producer":
        """Attach a producer (``spin``: seconds a blocked loan spins before parking).
        A closed stream refuses it (``Disconnected``) unless ``reopen=True``,
        which reopens the stream."""
    def consumer(self, spin: Optional[float] = None) -> "Consumer":
        """Attach a consumer (a subscriber in broadcast mode)."""
    def stats(self) -> Dict[str, Any]:
        """Counters, slot states and participants (the keys of ``sharray info
        --json``'s ``"ring"`` object, plus ``path`` and ``timestamp_ns``)."""
    def reclaim(self) -> None:
        """Reclaim the slots and entries of dead participants now."""
    def __reduce__(self) -> Tuple[Any, Tuple[str]]: ...

@final
class Producer:
    """A registered producer. A context manager: leaving the block normally
    closes the stream (``close()``), leaving it with an exception only
    detaches (``detach()``)."""

    def loan(self, timeout: Optional[float] = None, tag: int = 0, valid_len: Optional[int] = None) -> "WriteLoan":
        """Loan a free slot (``Timeout`` after ``timeout`` s; None waits as long
        as it takes). Ctrl-C interrupts the wait."""
    def try_loan(self, tag: int = 0, valid_len: Optional[int] = None) -> Optional["WriteLoan"]:
        """A free slot now, or None."""
    def loan_async(
        self, timeout: Optional[float] = None, tag: int = 0, valid_len: Optional[int] = None
    ) -> Awaitable["WriteLoan"]:
        """``await`` form of ``loan`` (asyncio): never blocks the event loop;
        cancelling the task unregisters the wait."""
    def send(self, data: npt.ArrayLike, timeout: Optional[float] = None, tag: int = 0) -> int:
        """Copy ``data`` into a loaned slot and commit it; returns the sequence
        number. An exact frame array (C-contiguous, dtype, shape) is copied in
        directly, with no view."""
    @property
    def index(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """End the stream, then detach: consumers drain the committed frames,
        then ``recv`` raises ``Disconnected`` and iteration ends. New producers
        are refused until ``ring.producer(reopen=True)``. Idempotent."""
    def detach(self) -> None:
        """Detach without ending the stream (consumers keep waiting for the
        next producer); open loans keep the registration until they end."""
    def __enter__(self) -> "Producer": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class WriteLoan:
    """A loaned slot. ``with producer.loan() as frame:`` gives the writable
    view; a normal exit commits, an exception gives the slot back. When the
    loan ends the view is revoked (read-only; it and derived views read zeros)."""

    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Optional[Tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any:
        """DLPack export of the view (no copy); revoked with the view."""
    def __dlpack_device__(self) -> Tuple[int, int]: ...
    def __enter__(self) -> npt.NDArray[Any]: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @property
    def view(self) -> npt.NDArray[Any]:
        """The writable view of the slot (created once, then the same object)."""
    def commit(self) -> int:
        """Publish the frame; returns its sequence number."""
    def abandon(self) -> None:
        """Give the slot back without publishing (idempotent)."""
    tag: int
    """The user tag delivered with the frame (settable while loaned)."""
    valid_len: int
    """Bytes delivered as valid (settable while loaned; default the whole frame)."""
    @property
    def slot(self) -> int: ...
    @property
    def dropped_oldest(self) -> bool:
        """Did taking this slot drop the oldest unread frame (overwrite mode)?"""
    @property
    def seq(self) -> Optional[int]:
        """The sequence number once committed."""
    @property
    def active(self) -> bool: ...
    @property
    def _window(self) -> Optional[Tuple[int, int]]: ...

@final
class Consumer:
    """A registered consumer (subscriber in broadcast mode). Iterating yields
    ``ReadLease``s until a producer closes the stream and the ring is drained
    (producers that exit or die without closing do not end it); each
    is released when the loop asks for the next one. A context manager that
    detaches on exit."""

    def recv(self, timeout: Optional[float] = None) -> "ReadLease":
        """The next frame (``Timeout``; ``Disconnected`` once a producer closed
        the stream and the ring is drained). Ctrl-C interrupts the wait."""
    def try_recv(self) -> Optional["ReadLease"]:
        """A frame if one is ready now, else None (``Disconnected`` as recv)."""
    def recv_into(self, out: npt.NDArray[Any], timeout: Optional[float] = None) -> Tuple[int, int, int]:
        """Copy the next frame into ``out`` (writeable, C-contiguous, the ring's
        dtype and frame shape) and release it; returns ``(seq, tag, nbytes)``."""
    def __iter__(self) -> Iterator["ReadLease"]: ...
    def __next__(self) -> "ReadLease": ...
    def recv_async(self, timeout: Optional[float] = None) -> Awaitable["ReadLease"]:
        """``await`` form of ``recv`` (asyncio): never blocks the event loop;
        cancelling the task unregisters the wait."""
    def __aiter__(self) -> AsyncIterator["ReadLease"]: ...
    def __anext__(self) -> Awaitable["ReadLease"]: ...
    @property
    def index(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """Release the iteration's lease and detach (idempotent)."""
    def __enter__(self) -> "Consumer": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class ReadLease:
    """A received frame. ``with lease as frame:`` gives the read-only view of
    the whole frame; leaving releases the slot. Metadata stay readable after
    release; the view is revoked (reads zeros)."""

    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Optional[Tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any:
        """DLPack export of the view (no copy); revoked with the view."""
    def __dlpack_device__(self) -> Tuple[int, int]: ...
    def __enter__(self) -> npt.NDArray[Any]: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @property
    def view(self) -> npt.NDArray[Any]:
        """The read-only view of the frame (created once, then the same object)."""
    def release(self) -> None:
        """Release the slot now (idempotent)."""
    @property
    def active(self) -> bool: ...
    @property
    def seq(self) -> int:
        """Sequence number (commit order, from 0)."""
    @property
    def timestamp_ns(self) -> int:
        """``CLOCK_MONOTONIC`` ns at commit (the ``time.monotonic_ns()`` clock)."""
    @property
    def tag(self) -> int: ...
    @property
    def valid_len(self) -> int:
        """Valid bytes of the frame (the view always covers the whole frame)."""
    @property
    def lost(self) -> int:
        """Frames lost since this consumer's previous receive (overwrite mode)."""
    @property
    def slot(self) -> int: ...
    @property
    def _window(self) -> Optional[Tuple[int, int]]: ...

# ------------------------------------------------------------------ worker pools

@final
class WorkQueue:
    """A chunk queue file shared by Rust and Python workers. Pickles as its path."""

    @staticmethod
    def create(
        path: _Path,
        rows: Optional[int] = None,
        chunk_rows: Optional[int] = None,
        tasks: Optional[int] = None,
        max_workers: int = 128,
        barrier: int = 0,
        mode: int = 0o600,
    ) -> "WorkQueue":
        """Split ``rows`` into chunks of ``chunk_rows``, or declare ``tasks``;
        ``barrier=n`` adds a barrier of n parties. Never overwrites."""
    @staticmethod
    def open(path: _Path, readonly: bool = False) -> "WorkQueue": ...
    @property
    def path(self) -> str: ...
    @property
    def chunks(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def chunk_rows(self) -> int: ...
    @property
    def tasks(self) -> bool:
        """Is this a task queue (rather than rows of an array)?"""
    @property
    def max_workers(self) -> int: ...
    @property
    def barrier_parties(self) -> int: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def done(self) -> bool:
        """Is every chunk done?"""
    def join(self) -> "Worker":
        """Register this process (or thread) as a worker."""
    def progress(self) -> Dict[str, Any]:
        """chunks, done, in_flight, pending, requeued, workers, tasks, rows,
        chunk_rows, complete, barrier_parties/generation/arrived/broken."""
    def wait_all(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Wait until every chunk is done (re-queueing dead workers' chunks);
        returns the progress. ``Timeout`` says how far the job got."""
    def reap(self) -> int:
        """Re-queue the chunks of dead workers now; returns how many."""
    def reset_barrier(self) -> None: ...
    def chunk_range(self, i: int) -> range: ...
    def chunk(self, i: int) -> Dict[str, Any]:
        """state ("pending", "claimed", "done", "unknown"), owner, claims, requeues."""
    def __reduce__(self) -> Tuple[Any, Tuple[str, bool]]: ...

@final
class Worker:
    """A registered worker; iterating yields claims until every chunk is done.
    A context manager that deregisters on exit."""

    def claim(self, timeout: Optional[float] = None) -> Optional["Claim"]:
        """The next chunk, or None once every chunk is done (``Timeout`` if
        none became claimable in time). Ctrl-C interrupts the wait."""
    def try_claim(self) -> Optional["Claim"]: ...
    def __iter__(self) -> Iterator["Claim"]: ...
    def __next__(self) -> "Claim": ...
    def barrier_wait(self, timeout: Optional[float] = None) -> Tuple[int, bool]:
        """(generation, is_leader); ``Disconnected`` if a participant died."""
    @property
    def id(self) -> int: ...
    @property
    def slot(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Worker": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Claim:
    """An exclusive claim on one chunk. ``with claim:`` completes on a normal
    exit and gives the chunk back on an exception."""

    @property
    def index(self) -> int: ...
    @property
    def rows(self) -> range: ...
    @property
    def slice(self) -> slice:
        """``slice(start, stop)``: ``x[claim.slice]`` is a view of the rows."""
    @property
    def start(self) -> int: ...
    @property
    def stop(self) -> int: ...
    @property
    def active(self) -> bool: ...
    @property
    def completed(self) -> bool: ...
    def rows_mut(self, out: SharedArray) -> "ClaimRows":
        """A writable view of this chunk's rows of ``out`` (a context manager)."""
    def complete(self) -> None:
        """Mark the chunk done (row views are revoked first)."""
    def abandon(self) -> None:
        """Give the chunk back unprocessed."""
    def __enter__(self) -> "Claim": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class ClaimRows:
    """A claim's rows of an output array; ``with claim.rows_mut(out) as y:``
    gives the writable view, revoked when the block (or the claim) ends."""

    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Optional[Tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any:
        """DLPack export of the view (no copy); revoked with the view."""
    def __dlpack_device__(self) -> Tuple[int, int]: ...
    def __enter__(self) -> npt.NDArray[Any]: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @property
    def view(self) -> npt.NDArray[Any]: ...
    def release(self) -> None: ...
    @property
    def active(self) -> bool: ...
    @property
    def rows(self) -> range: ...
    @property
    def _window(self) -> Optional[Tuple[int, int]]: ...

class GrowableArray:
    """A ``.npy`` whose first axis grows as processes ``append`` rows
    (``sharray.create(path, (0, *row_shape), dtype, growable=True,
    capacity=N)``; ``sharray.open`` returns one for such a file). ``len(a)``
    is the number of published rows, exactly what ``np.load(path,
    mmap_mode="r")`` shows."""
    def append(self, rows: npt.ArrayLike) -> int:
        """Append ``(n, *row_shape)`` rows (or one row); returns the index of
        the first once they are published. ``Full`` past the capacity.
        Rows are converted only where no data is lost (numpy ``same_kind``
        casts, and integers that fit); floats into an integer array raise
        ``DtypeMismatch``, out-of-range integers ``InvalidInput``."""
    def __len__(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def row_shape(self) -> List[int]: ...
    @property
    def shape(self) -> List[int]: ...
    @property
    def path(self) -> str: ...
    @property
    def generation(self) -> int: ...
    def wait_changed(self, since: int, timeout: float) -> int:
        """Wait until rows are published after generation ``since``."""
    def view(self) -> npt.NDArray[Any]:
        """The published rows, read-only, mapping the file (they never change)."""
    def to_numpy(self) -> npt.NDArray[Any]:
        """A copy of the published rows."""
    def info(self) -> Dict[str, Any]:
        """path, kind, dtype, row_shape, rows, reserved, capacity, row_bytes,
        max_appenders, rollbacks, generation, file_len."""

def _grow_create(
    path: _Path,
    shape: _Shape,
    dtype: npt.DTypeLike,
    capacity: Optional[int] = None,
    mode: int = 0o600,
    max_appenders: int = 64,
) -> GrowableArray: ...
def _grow_open(path: _Path, readonly: bool = False) -> GrowableArray: ...
def _grow_detect(path: _Path) -> bool: ...
