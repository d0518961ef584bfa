"""np.memmap's modes, raw files and access hints from Python: open modes
r / r+ / c (copy-on-write against a writer in another process), raw
headerless files shared live with numpy.memmap, import_raw, and advise /
prefault / evict / ranged flush.

Every child runs under a watchdog (conftest.run_child).
"""

import numpy as np
import pytest

import sharray
from conftest import run_child, spawn_python

PAGE = 4096

# Another process: fill the whole array with argv[2] under the write lock.
FILL = """
import sys, sharray
a = sharray.open(sys.argv[1])
with a.write() as v:
    v[...] = int(sys.argv[2])
print("filled", flush=True)
"""

# Another process: print the first byte of every page, under the read lock.
FIRSTS = """
import sys, sharray
a = sharray.open(sys.argv[1], mode="r")
with a.read() as v:
    print(",".join(str(int(x)) for x in v[::4096]), flush=True)
"""


def child(code, *args):
    rc, out, err = run_child(spawn_python(code, *args))
    assert rc == 0, err
    return out.strip()


def test_modes_r_and_r_plus(tmp_path):
    path = str(tmp_path / "a.npy")
    sharray.create(path, (4,), np.int32, fill=3)
    r = sharray.open(path, mode="r")
    assert (r.mode, r.readonly) == ("r", True)
    with pytest.raises(sharray.PermissionDenied):
        r.write()
    rw = sharray.open(path, mode="r+")
    assert rw.mode == "r+"
    with rw.write() as v:
        v[0] = 9
    assert r[0] == 9
    with pytest.raises(sharray.InvalidInput, match="sharray.create"):
        sharray.open(path, mode="w+")
    with pytest.raises(sharray.InvalidInput, match="invalid mode"):
        sharray.open(path, mode="x")
    with pytest.raises(sharray.InvalidInput, match="contradicts"):
        sharray.open(path, readonly=True, mode="c")


def test_copy_on_write_is_private_and_sees_other_processes_on_untouched_pages(tmp_path):
    path = str(tmp_path / "cow.npy")
    sharray.create(path, (3 * PAGE,), np.uint8)
    c = sharray.open(path, mode="c")
    assert (c.mode, c.readonly) == ("c", False)
    with c.write() as v:
        v[0] = 9
    with c.write() as v:  # the next guard sees the earlier private write
        assert v[0] == 9
        v[1] = 8
    assert c.generation == 0
    c.flush()  # nothing reaches the file
    assert child(FIRSTS, path) == "0,0,0"
    assert child(FILL, path, "1") == "filled"
    with c.read() as v:
        assert (v[0], v[1], v[2]) == (9, 8, 0)  # page 0 is our copy
        assert (v[PAGE:] == 1).all()  # untouched pages follow the file
    assert c.generation == 1
    assert child(FIRSTS, path) == "1,1,1"
    assert np.load(path, mmap_mode="r")[0] == 1


def test_raw_file_shared_live_with_numpy_memmap(tmp_path):
    path = str(tmp_path / "data.dat")
    m = np.memmap(path, dtype="<f4", mode="w+", shape=(100, 30), order="F", offset=0)
    m[...] = np.arange(3000, dtype="<f4").reshape(100, 30)
    m.flush()
    a = sharray.open_raw(path, "float32", (100, 30), order="F")
    assert (a.kind, a.shape, a.order, a.generation) == ("raw", (100, 30), "F", 0)
    with a.read() as v:
        assert (v == m).all()
    # A numpy.memmap in another process writes under the lock; we see it.
    rc, out, err = run_child(
        spawn_python(
            """
import fcntl, sys, numpy as np
m = np.memmap(sys.argv[1], dtype="<f4", mode="r+", shape=(100, 30), order="F")
with open(sys.argv[1], "rb") as f:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    m[5, 7] = -1.5
    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
print("ok")
""",
            path,
        )
    )
    assert rc == 0, err
    assert a[5, 7] == -1.5
    with a.write() as v:
        v[0, 0] = 42
    assert m[0, 0] == 42  # our write is in the file numpy maps
    with pytest.raises(sharray.ShapeMismatch, match=r"e\.g\. shape \(100, 30\)") as e:
        sharray.open_raw(path, "float32", (100, 31), order="F")
    assert isinstance(e.value, ValueError)
    out = str(tmp_path / "data.npy")
    b = sharray.import_raw(path, out, "<f4", (100, 30), order="F")
    assert b.kind == "array"
    loaded = np.load(out)
    assert loaded.flags.f_contiguous and (loaded == np.asarray(m)).all()


def test_raw_copy_on_write_never_changes_the_file(tmp_path):
    path = str(tmp_path / "raw.dat")
    with open(path, "wb") as f:
        f.write(b"\x07" * 16 + bytes(range(64)))
    c = sharray.open_raw(path, np.uint8, (8, 8), mode="c", offset=16)
    with c.write() as v:
        v[...] = 0
    assert c[3, 3] == 0
    assert open(path, "rb").read()[16:] == bytes(range(64))


def test_hints(tmp_path):
    path = str(tmp_path / "h.npy")
    a = sharray.create(path, (64 * PAGE,), np.uint8, fill=5)
    for adv in ["normal", "sequential", "random", "willneed", "dontneed", "Will-Need"]:
        assert a.advise(adv) == "applied", adv
    assert a.advise("sequential", 0, PAGE) == "applied"
    huge = a.advise("hugepage")
    assert huge == "applied" or "pages" in huge
    with pytest.raises(sharray.InvalidInput, match="unknown advice"):
        a.advise("fast")
    with pytest.raises(sharray.InvalidInput, match="outside the array"):
        a.advise("random", 0, 64 * PAGE + 1)
    a.prefault_read()
    a.prefault_write(PAGE, 2 * PAGE)
    with a.write() as v:
        v[:PAGE] = 6
    a.flush(0, PAGE, wait=False)
    a.flush(0, PAGE)
    a.flush()
    a.evict()
    assert a[0] == 6 and a[PAGE] == 5
    r = sharray.open(path, mode="r")
    with pytest.raises(sharray.PermissionDenied):
        r.prefault_write()
    r.prefault_read(0, 10)


def vm_flags(addr):
    """The VmFlags of the mapping that holds `addr` (from /proc/self/smaps)."""
    span = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                span = [int(x, 16) for x in head.split("-")]
            elif line.startswith("VmFlags:") and span and span[0] <= addr < span[1]:
                return line.split()[1:]
    return None


def test_advice_reaches_the_views_mappings(tmp_path):
    a = sharray.create(str(tmp_path / "v.npy"), (16 * PAGE,), np.uint8)
    g = a.read()
    g.view
    assert "rr" not in vm_flags(g._window[0])
    g.release()
    assert a.advise("random") == "applied"
    g = a.read()
    g.view
    assert "rr" in vm_flags(g._window[0]), vm_flags(g._window[0])
    g.release()
    assert a.advise("sequential") == "applied"
    g = a.read()
    g.view
    flags = vm_flags(g._window[0])
    assert "sr" in flags and "rr" not in flags, flags
    g.release()


def test_pickles_keep_mode_and_raw_layout(tmp_path):
    import pickle

    path = str(tmp_path / "p.npy")
    sharray.create(path, (3,), np.int16)
    for mode in ["r", "r+", "c"]:
        b = pickle.loads(pickle.dumps(sharray.open(path, mode=mode)))
        assert b.mode == mode
    raw = str(tmp_path / "p.dat")
    with open(raw, "wb") as f:
        f.write(bytes(8 + 24))
    r = sharray.open_raw(raw, ">u2", (3, 4), mode="r", offset=8, order="F")
    b = pickle.loads(pickle.dumps(r))
    assert (b.kind, b.mode, b.shape, b.order, b.dtype) == ("raw", "r", (3, 4), "F", np.dtype(">u2"))
    assert "copy-on-write" in repr(sharray.open(path, mode="c"))


@pytest.mark.usefixtures("windows")
def test_ring_advice_reaches_lease_views(tmp_path):
    ring = sharray.Ring.create(str(tmp_path / "r.npy"), (4 * PAGE,), np.uint8, slots=2)
    assert ring.advise("willneed") == "applied"
    assert ring.advise("random") == "applied"
    hp = ring.advise("hugepage")
    assert hp == "applied" or "pages" in hp
    with pytest.raises(sharray.InvalidInput):
        ring.advise("soon")
    p = ring.producer()
    with p.loan() as frame:
        frame[:] = 1
        flags = vm_flags(frame.__array_interface__["data"][0])
        assert flags is not None and "rr" in flags, flags
