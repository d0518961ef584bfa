"""sharray: share large numpy arrays between processes with zero copies.

Several processes map the same file; locks and a small control block in the
file coordinate them, and the file is also a valid ``.npy``::

    import numpy as np, sharray

    a = sharray.create("shm:frames", (480, 640), np.float32)   # /dev/shm/frames
    with a.write() as view:         # exclusive across processes and threads
        view[:] = 1.5               # view is a numpy array over the file: no copy
    g = a.generation

    b = sharray.open("shm:frames")  # in another process
    b.wait_changed(g - 1, timeout=1.0)
    with b.read() as view:          # shared lock; view is read-only
        print(view.mean())

Plain numpy sees the data too: ``np.load("/dev/shm/frames", mmap_mode="r")``.

Rings pass frames between processes (Rust or Python) without copies::

    ring = sharray.Ring.create("shm:cam", (480, 640, 3), np.uint8, slots=8)
    producer = ring.producer()
    with producer.loan() as frame:   # a free slot, written in place
        frame[:] = 128               # committed when the block ends

    for lease in sharray.Ring.open("shm:cam").consumer():   # another process
        with lease as frame:         # read-only view of the slot
            print(lease.seq, lease.tag, frame.mean())

Worker pools: ``WorkQueue`` splits the rows of an array into chunks that
Python and Rust workers claim (``for claim in q.join():``) and write in place
(``with claim.rows_mut(out) as y:``), with crashed workers' chunks re-queued.

Views are valid only inside their guard (or lease, or claim): when it ends, the view and
every view derived from it are cut off from the file (they read zeros;
writes through them go to private memory, never to the file). Blocking
calls release the GIL and can be interrupted with Ctrl-C. Errors are
:class:`SharrayError` subclasses that also derive from the matching builtin
(``FileNotFoundError``, ``TimeoutError``, ...).
"""

from . import _errors
from ._errors import *  # noqa: F401,F403  (the exception classes; listed in _errors.__all__)
from ._sharray import (
    Claim,
    ClaimRows,
    Consumer,
    Guard,
    Producer,
    ReadLease,
    Ring,
    SharedArray,
    WorkQueue,
    Worker,
    WriteLoan,
    GrowableArray,
    __version__,
    export_npy,
    import_npy,
    import_raw,
    open_raw,
    set_view_policy,
)
from ._grow import create, info, open  # growable arrays, then the native functions

__all__ = [
    "create",
    "open",
    "info",
    "import_npy",
    "export_npy",
    "open_raw",
    "import_raw",
    "set_view_policy",
    "SharedArray",
    "Guard",
    "Ring",
    "Producer",
    "WriteLoan",
    "Consumer",
    "ReadLease",
    "WorkQueue",
    "Worker",
    "Claim",
    "ClaimRows",
    "GrowableArray",
    "__version__",
    *_errors.__all__,
]
