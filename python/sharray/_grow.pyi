from typing import Any, Dict, Optional, Union

import numpy.typing as npt

from ._sharray import GrowableArray, SharedArray, _Path, _Shape

def create(
    path: _Path,
    shape: _Shape,
    dtype: npt.DTypeLike,
    *args: Any,
    growable: bool = False,
    capacity: Optional[int] = None,
    **kwargs: Any,
) -> Union[SharedArray, GrowableArray]:
    """``sharray.create``; with ``growable=True`` a growable array whose
    first axis (``shape[0]`` rows at first, usually 0) grows by ``append``,
    with room for ``capacity`` rows (default: 64 GiB worth)."""

def open(path: _Path, *args: Any, **kwargs: Any) -> Union[SharedArray, GrowableArray]:
    """``sharray.open``; a growable array opens as a ``GrowableArray``."""

def info(path: _Path) -> Dict[str, Any]:
    """``sharray.info``; for a growable array its rows, capacity and counters."""
