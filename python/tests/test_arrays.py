"""Creating, opening and viewing arrays: dtypes, orders, zero copy, info,
import/export, generation and change waits (single process)."""

import os
import pickle

import numpy as np
import pytest

import sharray

DTYPES = [
    np.bool_,
    np.int8,
    np.uint8,
    "<i2",
    ">i2",
    "<u4",
    ">i8",
    "<f2",
    np.float32,
    ">f8",
    np.complex64,
    ">c16",
    "S7",
    "<U3",
    ">U2",
    "V5",
    "<M8[ns]",
    ">m8[s]",
    np.dtype([("x", "<f4"), ("y", ">i2"), ("tag", "S3")]),
    np.dtype([("pos", "<f8", (3,)), ("id", "<u4")]),
    np.dtype([("a", "u1"), ("b", "<i4")], align=True),
    np.dtype([("outer", [("inner", ">i4"), ("f", "<f2", (2, 2))]), ("z", "?")]),
]


def sample(dtype, shape):
    """Deterministic non-trivial content of any dtype (through raw bytes)."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape)) * dt.itemsize
    raw = (np.arange(n, dtype=np.uint64) * 2654435761 % 251).astype(np.uint8)
    arr = raw.view(dt).reshape(shape)
    if dt.kind == "b":
        arr = raw.astype(bool).view(dt).reshape(shape)
    return arr


def same(x, y):
    """Equal bytes field by field (padding bytes are numpy's business)."""
    assert x.dtype == y.dtype and x.shape == y.shape
    if x.dtype.names:
        return all(same(x[n], y[n]) for n in x.dtype.names)
    return np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("order", ["C", "F"])
def test_every_dtype_round_trips_through_numpy(tmp_path, dtype, order):
    path = tmp_path / "a.npy"
    shape = (3, 4)
    a = sharray.create(path, shape, dtype, order=order)
    assert a.dtype == np.dtype(dtype)
    assert a.shape == shape and a.order == order
    want = sample(dtype, shape)
    with a.write() as v:
        assert v.dtype == np.dtype(dtype) and v.shape == shape
        assert v.flags.f_contiguous if order == "F" else v.flags.c_contiguous
        v[...] = want
    loaded = np.load(path)
    assert loaded.dtype == np.dtype(dtype)
    assert same(loaded, want)
    assert np.isfortran(loaded) == (order == "F")
    b = sharray.open(path, readonly=True)
    with b.read() as r:
        assert same(r, want)


@pytest.mark.parametrize("dtype", ["<f8", ">i4", "S4", np.dtype([("a", "<i2"), ("b", ">f4")])], ids=str)
def test_plain_npy_written_by_numpy_opens(tmp_path, dtype):
    path = tmp_path / "plain.npy"
    want = sample(dtype, (5, 2))
    np.save(path, want)
    a = sharray.open(path)
    assert a.kind == "npy" and a.generation == 0
    with a.read() as r:
        assert r.tobytes() == want.tobytes()
        assert r.dtype == want.dtype
    with a.write() as w:
        w[0] = w[1]
    assert np.load(path)[0].tobytes() == want[1].tobytes()
    with pytest.raises(sharray.Unsupported):
        a.wait_changed(0, timeout=0)


def test_view_is_zero_copy_over_the_file(tmp_path):
    path = tmp_path / "z.npy"
    a = sharray.create(path, (1000, 16), np.int64)
    with a.write() as g_view:
        pass
    g = a.write()
    v = g.view
    start, length = g._window
    addr = v.__array_interface__["data"][0]
    assert start <= addr and addr + v.nbytes <= start + length
    # The window is a mapping of the file itself (not a copy of it).
    maps = open("/proc/self/maps").read().splitlines()
    covering = [m for m in maps if int(m.split("-")[0], 16) <= addr < int(m.split()[0].split("-")[1], 16)]
    assert covering and covering[0].endswith(str(path)), covering
    # Two views of one guard share memory, and g.view is the same object.
    assert g.view is v
    assert np.shares_memory(v[10:20], v[15:30])
    v[3, 4] = 12345
    assert np.load(path, mmap_mode="r")[3, 4] == 12345
    # Another process-level writer (np.memmap here) is seen through the view.
    m = np.load(path, mmap_mode="r+")
    m[7, 7] = -1
    m.flush()
    assert v[7, 7] == -1
    del m
    g.release()
    assert g_view.shape == (1000, 16)


def test_views_of_repeated_guards_reuse_mappings_without_copies(tmp_path):
    a = sharray.create(tmp_path / "r.npy", (256, 1024), np.float32)
    for i in range(50):
        with a.write() as v:
            v[i % 256, :] = i
    with a.read() as r:
        assert r[49, 0] == 49 and r[0, 0] == 0


def test_create_options_fill_order_mode(tmp_path):
    a = sharray.create(tmp_path / "f.npy", [2, 3], ">i4", fill=-7, order="F", mode=0o640)
    assert (np.load(tmp_path / "f.npy") == -7).all()
    assert os.stat(tmp_path / "f.npy").st_mode & 0o777 == 0o640
    assert a.order == "F" and a.ndim == 2 and a.size == 6 and a.nbytes == 24
    rec = np.dtype([("x", "<f4"), ("n", "<u2")])
    b = sharray.create(tmp_path / "s.npy", 4, rec, fill=(1.5, 3))
    assert b.shape == (4,)
    got = np.load(tmp_path / "s.npy")
    assert (got["x"] == 1.5).all() and (got["n"] == 3).all()
    z = sharray.create(tmp_path / "zero.npy", (0, 5), np.float64)
    with z.write() as v:
        assert v.shape == (0, 5) and v.size == 0
    s = sharray.create(tmp_path / "scalar.npy", (), np.float64, fill=2.5)
    with s.read() as v:
        assert v.shape == () and v[()] == 2.5


def test_shm_paths_and_info(shm_name):
    a = sharray.create(f"shm:{shm_name}", (8, 8), np.uint16, fill=3)
    assert a.path == f"/dev/shm/{shm_name}"
    assert (np.load(a.path, mmap_mode="r") == 3).all()
    with a.write() as v:
        v += 1
    info = sharray.info(f"shm:{shm_name}")
    assert info == a.info()
    assert info["kind"] == "array" and info["dtype"] == "<u2" and info["shape"] == [8, 8]
    assert info["order"] == "C" and info["data_offset"] == 4096 and info["nbytes"] == 128
    assert info["format_version"] == 1 and info["generation"] == 1
    assert info["file_len"] == os.path.getsize(a.path)
    b = sharray.open(f"shm:{shm_name}", dtype=np.uint16, shape=(8, 8))
    with b.read() as r:
        assert (r == 4).all()


def test_import_and_export_are_byte_exact(tmp_path):
    want = sample(np.dtype([("a", ">i4"), ("b", "<c8")]), (6, 3))
    np.save(tmp_path / "in.npy", np.asfortranarray(want))
    a = sharray.import_npy(tmp_path / "in.npy", tmp_path / "shared.npy")
    assert a.kind == "array" and a.order == "F"
    with a.read() as r:
        assert r.tobytes(order="A") == np.asfortranarray(want).tobytes(order="A")
    sharray.export_npy(tmp_path / "shared.npy", tmp_path / "out.npy")
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == want.dtype and out.tobytes() == want.tobytes()
    with pytest.raises(FileExistsError):
        sharray.export_npy(tmp_path / "shared.npy", tmp_path / "out.npy")


def test_generation_and_wait_changed(tmp_path):
    a = sharray.create(tmp_path / "g.npy", 4, np.float64)
    g0 = a.generation
    with a.write():
        pass
    assert a.generation == g0 + 1
    w = a.write()
    w.release()  # no view taken: nothing could have changed
    assert a.generation == g0 + 1
    assert a.wait_changed(g0, timeout=0) == g0 + 1
    with pytest.raises(sharray.Timeout) as e:
        a.wait_changed(a.generation, timeout=0.05)
    assert isinstance(e.value, TimeoutError) and "no change within" in str(e.value)


def test_wait_changed_wakes_on_a_write_from_another_thread(tmp_path):
    import threading

    a = sharray.create(tmp_path / "t.npy", 4, np.float64)
    b = sharray.open(tmp_path / "t.npy")
    g = a.generation

    def writer():
        with b.write() as v:
            v[:] = 1

    t = threading.Timer(0.1, writer)
    t.start()
    assert a.wait_changed(g, timeout=30) == g + 1
    t.join()


def test_handle_attributes_close_and_pickle(tmp_path):
    path = tmp_path / "h.npy"
    with sharray.create(path, (2, 2), "<i8") as a:
        assert not a.closed and not a.readonly
        assert "shape=" in repr(a)
        b = pickle.loads(pickle.dumps(a))
        assert b.path == a.path and b.shape == (2, 2)
        g = a.read()
    assert a.closed and "closed" in repr(a)
    with pytest.raises(ValueError):
        a.read()
    with g as r:  # a guard outlives its closed handle
        assert r.shape == (2, 2)
    r_only = sharray.open(path, readonly=True)
    assert r_only.readonly
    with r_only.read() as r:
        assert not r.flags.writeable
        with pytest.raises(ValueError):
            r[0, 0] = 1
    with pytest.raises(PermissionError):
        r_only.write()
    r_only.flush()
    sharray.open(path).flush()


def _kernel_at_least(major, minor):
    import platform

    try:
        parts = platform.release().split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


@pytest.mark.skipif(not _kernel_at_least(5, 13), reason="MREMAP_DONTUNMAP on shared mappings needs Linux 5.13")
def test_successive_guards_reuse_page_tables(shm_name):
    """Each guard's window takes over the page tables of the previous one
    (window.rs), so reading the whole array again does not page-fault."""
    import resource

    a = sharray.create(f"shm:{shm_name}", (8 << 20) // 8, np.float64, fill=1.0)
    for _ in range(3):
        with a.read() as v:
            v.sum()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with a.read() as v:
        assert v.sum() == v.size
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # 2048 pages: without the reuse this takes ~130 (fault-around) or more.
    assert faults < 32, faults


def test_threads_exclude_each_other(tmp_path):
    """Write guards exclude other threads of this process too (the GIL is
    released while waiting and inside numpy, so the lock does the work)."""
    import threading

    a = sharray.create(tmp_path / "threads.npy", 1 << 16, np.int64)
    torn = []

    def worker():
        h = sharray.open(a.path)
        for _ in range(100):
            with h.write(timeout=60) as v:
                if not (v == v[0]).all():
                    torn.append(int(v[0]))
                np.add(v, 1, out=v)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not torn
    with a.read() as v:
        assert (v == 400).all()
