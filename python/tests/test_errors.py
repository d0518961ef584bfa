"""Errors are SharrayError subclasses that also derive from the matching
builtin, carry the crate's one-line message, `.kind` and `.path`."""

import os

import numpy as np
import pytest

import sharray


def test_hierarchy():
    pairs = [
        (sharray.NotFound, FileNotFoundError),
        (sharray.AlreadyExists, FileExistsError),
        (sharray.PermissionDenied, PermissionError),
        (sharray.InvalidInput, ValueError),
        (sharray.DtypeMismatch, TypeError),
        (sharray.ShapeMismatch, ValueError),
        (sharray.CorruptFile, ValueError),
        (sharray.LockTimeout, TimeoutError),
        (sharray.Timeout, TimeoutError),
        (sharray.NoSpace, OSError),
        (sharray.Disconnected, BrokenPipeError),
        (sharray.NotARegularFile, OSError),
        (sharray.IOFailure, OSError),
    ]
    for cls, builtin in pairs:
        assert issubclass(cls, sharray.SharrayError) and issubclass(cls, builtin)
    for cls in (sharray.Unsupported, sharray.Full, sharray.Replaced):
        assert issubclass(cls, sharray.SharrayError)


def one_line(e):
    s = str(e)
    assert s and "\n" not in s
    return s


def test_not_found_and_already_exists(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        sharray.open(tmp_path / "missing.npy")
    assert e.value.kind == "not_found" and e.value.path == str(tmp_path / "missing.npy")
    assert str(tmp_path / "missing.npy") in one_line(e.value)
    sharray.create(tmp_path / "x.npy", 3, np.int8)
    with pytest.raises(FileExistsError) as e:
        sharray.create(tmp_path / "x.npy", 3, np.int8)
    assert "never overwrites" in one_line(e.value)


def test_invalid_arguments(tmp_path):
    p = tmp_path / "bad.npy"
    with pytest.raises(ValueError, match="holds Python objects"):
        sharray.create(p, 3, object)
    with pytest.raises(ValueError, match="invalid shape"):
        sharray.create(p, (-1, 2), np.float32)
    with pytest.raises(ValueError, match="invalid shape"):
        sharray.create(p, "abc", np.float32)
    with pytest.raises(ValueError, match="invalid order"):
        sharray.create(p, 3, np.float32, order="K")
    with pytest.raises(ValueError, match="single value"):
        sharray.create(p, 3, np.float32, fill=[1, 2])
    with pytest.raises(TypeError):
        sharray.create(p, 3, "not-a-dtype")
    with pytest.raises(sharray.InvalidInput, match="cannot be stored"):
        sharray.create(p, 3, "S0")
    with pytest.raises(sharray.InvalidInput, match="invalid shm name"):
        sharray.create("shm:a/b", 3, np.float32)
    assert not p.exists()
    a = sharray.create(p, 3, np.float32)
    with pytest.raises(ValueError, match="invalid timeout"):
        a.read(timeout=-1)
    with pytest.raises(ValueError, match="invalid timeout"):
        a.wait_changed(0, timeout=float("nan"))


def test_mismatches(tmp_path):
    p = tmp_path / "m.npy"
    sharray.create(p, (2, 3), "<f4")
    assert sharray.open(p, dtype=np.float32, shape=(2, 3)).shape == (2, 3)
    with pytest.raises(TypeError) as e:
        sharray.open(p, dtype=np.float64)
    assert isinstance(e.value, sharray.DtypeMismatch) and "float32" in one_line(e.value)
    with pytest.raises(sharray.ShapeMismatch):
        sharray.open(p, shape=(3, 2))


def test_corrupt_and_not_regular(tmp_path):
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not an array at all")
    with pytest.raises(sharray.CorruptFile, match="magic"):
        sharray.open(junk)
    trunc = tmp_path / "trunc.npy"
    np.save(trunc, np.zeros(1000))
    with open(trunc, "r+b") as f:
        f.truncate(500)
    with pytest.raises(ValueError, match="truncated"):
        sharray.open(trunc)
    with pytest.raises(sharray.NotARegularFile):
        sharray.open(tmp_path)
    os.symlink(trunc, tmp_path / "link.npy")
    with pytest.raises(OSError, match="symlink"):
        sharray.open(tmp_path / "link.npy")


def test_replaced_file_is_detected(tmp_path):
    p = tmp_path / "r.npy"
    a = sharray.create(p, 4, np.int32)
    os.unlink(p)
    sharray.create(p, 4, np.int32)
    with pytest.raises(sharray.Replaced, match="replaced"):
        a.write(timeout=1)
