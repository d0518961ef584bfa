"""Growable arrays in ``create``, ``open`` and ``info``.

``sharray.create(path, (0, *row_shape), dtype, growable=True, capacity=N)``
makes a file whose first axis grows as processes ``append`` rows;
``sharray.open`` and ``sharray.info`` recognise one and return a
``GrowableArray`` / its counters. Everything else passes through to the
native functions unchanged.
"""

from . import _sharray
from ._errors import InvalidInput, Unsupported


def create(path, shape, dtype, *args, growable=False, capacity=None, **kwargs):
    if not growable:
        if capacity is not None:
            raise InvalidInput("capacity= needs growable=True")
        return _sharray.create(path, shape, dtype, *args, **kwargs)
    if args:
        raise InvalidInput("give the options of a growable array by keyword: capacity=, mode=, max_appenders=")
    order = kwargs.pop("order", "C")
    if order not in ("C", "c"):
        raise InvalidInput("a growable array is C order (rows are contiguous): drop order=")
    if kwargs.pop("fill", None) is not None:
        raise InvalidInput("fill= is not supported for a growable array (initial rows are zeros); append the rows instead")
    allowed = {"mode", "max_appenders"}
    extra = set(kwargs) - allowed
    if extra:
        raise InvalidInput(f"{sorted(extra)} not supported for a growable array (use capacity=, mode=, max_appenders=)")
    return _sharray._grow_create(path, shape, dtype, capacity=capacity, **kwargs)


def _is_growable(path):
    try:
        return _sharray._grow_detect(path)
    except Exception:
        return False  # let the native open report what is wrong


def open(path, *args, **kwargs):
    if _is_growable(path):
        readonly = bool(args[0]) if args else kwargs.pop("readonly", False)
        mode = kwargs.pop("mode", None)
        if mode not in (None, "r", "r+"):
            raise Unsupported(f"mode={mode!r} is not available for a growable array: use \"r\" or \"r+\"")
        if kwargs:
            raise InvalidInput(f"{sorted(kwargs)} not supported when opening a growable array")
        return _sharray._grow_open(path, readonly=readonly or mode == "r")
    return _sharray.open(path, *args, **kwargs)


def info(path):
    if _is_growable(path):
        return _sharray._grow_open(path, readonly=True).info()
    return _sharray.info(path)
