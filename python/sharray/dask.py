"""Dask arrays over sharray files: many processes (or hosts) read and write
one file in parallel.

``from_sharray(path, chunks=...)`` makes a ``dask.array`` whose tasks open
the file in the worker process (one handle per worker process and path,
cached) and copy their block's rows out under a *shared row-region lock* on
exactly those rows (FORMAT.md 8.6), so a block is never read half-written
by a cooperating writer. ``store(x, path)`` writes a dask array into an
existing sharray file, each task copying its block in under an *exclusive*
row-region lock on its rows; blocks of different rows are written at the
same time by different workers.

Copies, honestly: a view of the file is valid only while its lock is held
(sharray revokes it afterwards), and a dask task's result outlives the task,
so each locked read returns a copy of its block (one ``memcpy`` of the
rows, done with the GIL released). For a zero-copy read without locks pass
``lock=False``: blocks are then slices of ``np.load(path, mmap_mode="r")``,
which see whatever is in the file when they are used (right for data that
no longer changes).

Chunk along the first axis for speed: locks and copies are by whole rows,
so a block narrower than a row copies its whole rows and then slices them;
``store`` rechunks ``x`` to whole rows first. Fortran-order arrays of more
than one dimension have no contiguous rows: ``from_sharray`` reads them
under the whole-array read lock, ``store`` refuses them.

The file must be on storage every worker can map: a local disk or
``/dev/shm`` for a ``LocalCluster``, or the same path on each host (read-only
on shared storage with ``lock=False``). Requires ``pip install sharray[dask]``.
"""

import os
import threading

import numpy as np

from . import _grow

__all__ = ["from_sharray", "store"]

_handles = {}
_handles_lock = threading.Lock()


def _handle(path, writable):
    """One handle per (process, path, mode): opened on first use in a worker."""
    key = (os.getpid(), path, writable)
    with _handles_lock:
        h = _handles.get(key)
        if h is None:
            h = _grow.open(path, mode="r+" if writable else "r")
            _handles[key] = h
        return h


def _import_dask():
    try:
        import dask.array as da
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("sharray.dask needs dask: pip install 'sharray[dask]'") from e
    return da


def _read_block(path, region, lock):
    if not lock:
        return np.load(path, mmap_mode="r")[region]
    a = _handle(path, False)
    rows = region[0] if region else slice(None)
    rest = region[1:]
    if a.ndim >= 1 and (a.order == "C" or a.ndim == 1):
        start, stop, _ = rows.indices(a.shape[0])
        flat = a._read_rows(start, stop)
        block = flat.view(a.dtype).reshape((stop - start,) + tuple(a.shape[1:]))
        return block[(slice(None),) + tuple(rest)] if rest else block
    with a.read() as v:
        return np.array(v[region])


def from_sharray(path, chunks="auto", lock=True, name=None):
    """A ``dask.array`` of the sharray (or plain ``.npy``) file at ``path``.

    ``chunks`` as for ``dask.array.from_array`` (prefer splitting only the
    first axis). ``lock=True`` copies each block out under a shared lock on
    its rows; ``lock=False`` gives zero-copy memmap slices without locks.
    """
    da = _import_dask()
    from dask.array.core import normalize_chunks
    from dask.base import tokenize

    path = str(path)
    a = _grow.open(path, mode="r")
    shape, dtype = tuple(a.shape), a.dtype
    gen = a.generation
    a.close()
    chunks = normalize_chunks(chunks, shape, dtype=dtype)
    name = name or "from-sharray-" + tokenize(path, os.stat(path).st_mtime_ns, gen, chunks, lock)
    starts = [np.cumsum((0,) + c) for c in chunks]
    dsk = {}
    for idx in np.ndindex(*[len(c) for c in chunks]):
        region = tuple(slice(int(starts[d][i]), int(starts[d][i + 1])) for d, i in enumerate(idx))
        dsk[(name,) + tuple(int(i) for i in idx)] = (_read_block, path, region, lock)
    return da.Array(dsk, name, chunks, dtype=dtype)


class _RowsTarget:
    """A ``da.store`` target: ``target[region] = block`` writes whole rows."""

    def __init__(self, path, shape, dtype, timeout):
        self.path, self.shape, self.dtype, self.timeout = path, shape, dtype, timeout

    def __setitem__(self, region, block):
        if not isinstance(region, tuple):
            region = (region,)
        start = region[0].indices(self.shape[0])[0] if region else 0
        data = np.ascontiguousarray(block, dtype=self.dtype)
        _handle(self.path, True)._write_rows(start, data.reshape(-1).view(np.uint8), self.timeout)


def store(x, path, compute=True, timeout=None):
    """Write the dask array ``x`` into the existing sharray file at ``path``
    (same shape; values cast to the file's dtype), in parallel: each block
    is copied in under an exclusive row-region lock on its rows (waiting at
    most ``timeout`` seconds for it; None: as long as it takes). Returns what
    ``dask.array.store`` returns (a delayed object when ``compute=False``).
    """
    da = _import_dask()
    path = str(path)
    a = _grow.open(path, mode="r")
    shape, dtype, order = tuple(a.shape), a.dtype, a.order
    a.close()
    if tuple(x.shape) != shape:
        raise ValueError(f"{path}: the dask array has shape {tuple(x.shape)} but the file has {shape}; create the file with the array's shape")
    if len(shape) == 0:
        raise ValueError(f"{path}: a 0-d array has no rows; use an array with at least one axis")
    if order == "F" and sum(d > 1 for d in shape[1:]) > 0:
        raise ValueError(f"{path}: rows of a Fortran-order array are not contiguous; store into a C-order file")
    if len(shape) > 1:
        x = x.rechunk({i: -1 for i in range(1, len(shape))})
    return da.store(x, _RowsTarget(path, shape, dtype, timeout), lock=False, compute=compute)
