"""Handles that feel like numpy (len, shape, indexing, np.asarray),
create(exist_ok=True), errno on the OSError subclasses, and the documented
multiprocessing patterns (pass the path with fork; spawn/forkserver pickle
the handle)."""

import errno
import multiprocessing
import os
import stat
import threading

import numpy as np
import pytest

import sharray


@pytest.fixture
def arr(tmp_path):
    a = sharray.create(str(tmp_path / "a.npy"), (5, 3), np.int32)
    with a.write() as v:
        v[:] = np.arange(15, dtype=np.int32).reshape(5, 3)
    return a


def test_len_shape_ndim_size(tmp_path, arr):
    assert len(arr) == 5
    assert arr.shape == (5, 3) and arr.ndim == 2 and arr.size == 15
    z = sharray.create(str(tmp_path / "z.npy"), (), np.float64)
    assert z.shape == () and z.ndim == 0 and z.size == 1
    with pytest.raises(TypeError):
        len(z)
    e = sharray.create(str(tmp_path / "e.npy"), (0, 4), np.float64)
    assert len(e) == 0 and e.size == 0


def test_getitem_is_a_copy_taken_under_a_read_guard(arr):
    want = np.arange(15, dtype=np.int32).reshape(5, 3)
    part = arr[1:3]
    assert isinstance(part, np.ndarray) and part.dtype == np.int32
    assert np.array_equal(part, want[1:3])
    assert part.flags.writeable and part.flags.owndata
    part[:] = -1  # a copy: the file is untouched
    assert np.array_equal(arr[:], want)
    assert arr[2, 1] == 7 and isinstance(arr[2, 1], np.int32)
    assert np.array_equal(arr[:, 0], want[:, 0])
    assert np.array_equal(arr[arr[:, 0] > 5], want[want[:, 0] > 5])
    # The guard is released once the copy is made: a write lock is free.
    arr.write(timeout=0).release()
    # ... and taken for real: indexing waits while another handle writes.
    other = sharray.open(arr.path)
    got = []
    with other.write() as v:
        t = threading.Thread(target=lambda: got.append(arr[0, 0]))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not got, "indexing did not wait for the writer"
        v[0, 0] = 42
    t.join(30)
    assert got == [42]
    with pytest.raises(IndexError):
        arr[7]


def test_structured_record_is_a_copy(tmp_path):
    dt = np.dtype([("x", "<i4"), ("y", "<f8", (2,))])
    s = sharray.create(str(tmp_path / "s.npy"), 3, dt)
    s[0] = (5, (2.5, 3.5))
    rec = s[0]
    assert isinstance(rec, np.void) and rec["x"] == 5
    s[0] = (1, (0, 0))
    # np.array(record) would still share memory with the (revoked) view.
    assert rec["x"] == 5 and list(rec["y"]) == [2.5, 3.5]
    assert np.array_equal(s["x"], [1, 0, 0])


def test_setitem_writes_under_a_write_guard(arr):
    g = arr.generation
    arr[1:3] = 100
    arr[4, 2] = -5
    assert arr.generation > g
    with arr.read() as v:
        assert (v[1:3] == 100).all() and v[4, 2] == -5 and v[0, 0] == 0
    with pytest.raises(ValueError):
        arr[0] = [1, 2]  # numpy's broadcasting error, guard released
    arr.write(timeout=0).release()
    ro = sharray.open(arr.path, readonly=True)
    with pytest.raises(sharray.PermissionDenied):
        ro[0] = 1


def test_setitem_waits_while_another_handle_reads(arr):
    other = sharray.open(arr.path)
    with other.read() as v:
        t = threading.Thread(target=arr.__setitem__, args=((0, 0), 9))
        t.start()
        t.join(0.3)
        assert t.is_alive() and v[0, 0] == 0, "assignment did not wait for the reader"
    t.join(30)
    assert not t.is_alive() and other[0, 0] == 9


def test_asarray_is_a_copy(arr):
    want = np.arange(15, dtype=np.int32).reshape(5, 3)
    x = np.asarray(arr)
    assert isinstance(x, np.ndarray) and x.dtype == np.int32 and x.shape == (5, 3)
    assert np.array_equal(x, want)
    x[:] = 0
    assert np.array_equal(arr[:], want)
    y = np.array(arr, dtype=np.float64)
    assert y.dtype == np.float64 and np.array_equal(y, want)
    assert np.array_equal(np.asarray(arr, dtype=np.int64), want)
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        with pytest.raises(ValueError, match="copy"):
            np.asarray(arr, copy=False)
        assert np.array_equal(np.asarray(arr, copy=True), want)
    assert float(np.sum(arr)) == want.sum()
    arr.write(timeout=0).release()


def test_fortran_order_indexing(tmp_path):
    f = sharray.create(str(tmp_path / "f.npy"), (2, 3), np.float32, order="F")
    f[:] = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(np.asarray(f), np.arange(6).reshape(2, 3))
    assert np.array_equal(np.load(f.path), np.arange(6).reshape(2, 3))


def test_closed_handle_indexing_refused(arr):
    arr.close()
    with pytest.raises(sharray.InvalidInput):
        arr[0]
    with pytest.raises(sharray.InvalidInput):
        np.asarray(arr)


def test_create_exist_ok(tmp_path):
    path = str(tmp_path / "x.npy")
    a = sharray.create(path, (4, 2), np.float32, fill=3)
    a[0] = 1
    # Re-running the script: the same file is opened, its data kept.
    b = sharray.create(path, (4, 2), np.float32, fill=9, exist_ok=True)
    assert b.shape == (4, 2) and b.dtype == np.float32 and not b.readonly
    assert np.array_equal(b[:], [[1, 1], [3, 3], [3, 3], [3, 3]])
    c = sharray.create(path, [4, 2], "<f4", exist_ok=True)
    assert c[1, 1] == 3
    with pytest.raises(sharray.AlreadyExists):
        sharray.create(path, (4, 2), np.float32)
    with pytest.raises(sharray.ShapeMismatch, match="shape"):
        sharray.create(path, (2, 4), np.float32, exist_ok=True)
    with pytest.raises(sharray.DtypeMismatch, match="dtype"):
        sharray.create(path, (4, 2), np.float64, exist_ok=True)
    with pytest.raises(sharray.ShapeMismatch, match="order"):
        sharray.create(path, (4, 2), np.float32, order="F", exist_ok=True)
    # A file that is not there is created as usual.
    new = str(tmp_path / "new.npy")
    d = sharray.create(new, 3, np.int8, fill=2, exist_ok=True)
    assert np.array_equal(d[:], [2, 2, 2])
    # Something that is not an array file is still refused.
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an npy")
    with pytest.raises(sharray.CorruptFile):
        sharray.create(str(bad), 3, np.int8, exist_ok=True)


def test_errno_of_oserrors(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        sharray.open(str(tmp_path / "missing.npy"))
    assert e.value.errno == errno.ENOENT and isinstance(e.value, sharray.NotFound)
    assert "missing.npy" in str(e.value) and not str(e.value).startswith("[Errno")
    path = str(tmp_path / "a.npy")
    sharray.create(path, 2, np.int8)
    with pytest.raises(FileExistsError) as e:
        sharray.create(path, 2, np.int8)
    assert e.value.errno == errno.EEXIST
    a = sharray.open(path)
    with a.write():
        with pytest.raises(sharray.LockTimeout) as e:
            sharray.open(path).read(timeout=0)
    assert e.value.errno == errno.ETIMEDOUT
    ro = sharray.open(path, readonly=True)
    with pytest.raises(PermissionError) as e:
        ro.write()
    assert e.value.errno == errno.EACCES
    if os.geteuid() != 0:
        locked = tmp_path / "locked.npy"
        sharray.create(str(locked), 2, np.int8)
        os.chmod(locked, stat.S_IWUSR)
        with pytest.raises(PermissionError) as e:
            sharray.open(str(locked))
        assert e.value.errno == errno.EACCES
    # Not OSErrors: no errno attribute is invented.
    with pytest.raises(sharray.InvalidInput) as e:
        sharray.create(str(tmp_path / "b.npy"), -1, np.int8)
    assert not isinstance(e.value, OSError)
    for cls in (sharray.NotFound, sharray.AlreadyExists, sharray.NoSpace, sharray.IOFailure):
        assert isinstance(cls.ERRNO, int)


def _work_on_path(path):
    a = sharray.open(path)
    with a.write(timeout=30) as v:
        v += 1


def _work_on_handle(a):
    with a.write(timeout=30) as v:
        v += 10


def _run(ctx, target, arg):
    p = ctx.Process(target=target, args=(arg,))
    p.start()
    p.join(120)
    if p.is_alive():
        p.kill()
        pytest.fail("worker hung")
    return p.exitcode


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_documented_multiprocessing_patterns(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    ctx = multiprocessing.get_context(method)
    a = sharray.create(str(tmp_path / "mp.npy"), 4, np.int64)
    # Pass the path: works with every start method.
    assert _run(ctx, _work_on_path, a.path) == 0
    assert np.array_equal(a[:], [1, 1, 1, 1])
    if method == "fork":
        # fork does not pickle: the worker gets the inherited handle, which
        # refuses (the README says so); nothing is written.
        assert _run(ctx, _work_on_handle, a) != 0
        assert np.array_equal(a[:], [1, 1, 1, 1])
    else:
        # spawn/forkserver pickle the handle as its path: the worker opens it.
        assert _run(ctx, _work_on_handle, a) == 0
        assert np.array_equal(a[:], [11, 11, 11, 11])


@pytest.mark.parametrize(
    "dt",
    [
        np.dtype([("c", ("<f8", (5,)), (2,))]),  # numpy's record_arrays
        np.dtype({"names": ["a", "", "b"], "formats": ["i4"] * 3}),  # '' is a field
        np.dtype([("\xe9t\xe9", "<i4"), ("\xff", ">f8")]),  # Latin-1 names (1.0)
    ],
)
def test_numpy_test_format_dtypes(tmp_path, dt):
    path = str(tmp_path / "d.npy")
    a = sharray.create(path, 3, dt)
    assert a.dtype == dt
    raw = np.arange(3 * dt.itemsize, dtype=np.uint8) % 251
    a[:] = raw.view(dt)
    assert np.load(path).tobytes() == raw.tobytes() and np.load(path).dtype == dt
    src = str(tmp_path / "np.npy")
    np.save(src, raw.view(dt))
    b = sharray.import_npy(src, str(tmp_path / "imp.npy"))
    assert b.dtype == dt and np.asarray(b).tobytes() == raw.tobytes()
    sharray.export_npy(b.path, str(tmp_path / "exp.npy"))
    with open(src, "rb") as f1, open(tmp_path / "exp.npy", "rb") as f2:
        assert f1.read() == f2.read()
