"""Growable arrays from Python: create(growable=True), append from several
Python processes at once (one SIGKILLed), a reader following with
wait_changed, numpy seeing exactly the published rows, and the refusals.

Every child runs under a watchdog (conftest.run_child).
"""

import os
import signal
import time

import numpy as np
import pytest

import sharray
from conftest import run_child, spawn_python

# Appends `batches` batches of `per` rows (id, k, id * 10**6 + k) and prints
# the index append returned for each.
APPENDER = """
import sys, numpy as np, sharray
path, ident, batches, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
a = sharray.open(path)
print("ready", flush=True)
for b in range(batches):
    k = np.arange(b * per, (b + 1) * per, dtype=np.int64)
    rows = np.stack([np.full(per, ident), k, ident * 10**6 + k], axis=1)
    at = a.append(rows)
    print("appended", ident, b * per, per, at, flush=True)
print("done", flush=True)
"""

# Follows the array until it holds `target` rows, checking every row each
# time it changes.
READER = """
import sys, numpy as np, sharray
path, target = sys.argv[1], int(sys.argv[2])
a = sharray.open(path, readonly=True)
g = a.generation
checks = 0
while True:
    v = a.view()
    assert (v[:, 2] == v[:, 0] * 10**6 + v[:, 1]).all(), "torn or unwritten row"
    checks += 1
    if len(v) >= target:
        break
    try:
        g = a.wait_changed(g, 0.2)
    except TimeoutError:
        pass
print("reader ok", checks, flush=True)
"""


def make(path, capacity=100_000, dtype=np.int64):
    return sharray.create(path, (0, 3), dtype, growable=True, capacity=capacity)


def test_create_append_view_and_numpy(tmp_path):
    path = str(tmp_path / "g.npy")
    a = make(path, capacity=10)
    assert isinstance(a, sharray.GrowableArray)
    assert (len(a), a.capacity, a.row_shape, a.shape) == (0, 10, [3], [0, 3])
    assert a.view().shape == (0, 3)
    assert a.append([[1, 2, 3], [4, 5, 6]]) == 0
    assert a.append(np.array([7, 8, 9], dtype=np.int32)) == 2  # one row, converted
    assert len(a) == 3
    np.testing.assert_array_equal(a.to_numpy(), [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    m = np.load(path, mmap_mode="r")
    assert m.shape == (3, 3) and m.dtype == np.int64
    np.testing.assert_array_equal(m, a.view())
    b = sharray.open(path)
    assert isinstance(b, sharray.GrowableArray) and len(b) == 3
    i = sharray.info(path)
    assert (i["kind"], i["rows"], i["capacity"], i["reserved"]) == ("growable", 3, 10, 3)
    assert (i["shape"], i["nbytes"], i["format_version"]) == ([3, 3], 72, 2)
    with pytest.raises(sharray.ShapeMismatch):
        a.append(np.zeros((2, 4)))
    with pytest.raises(sharray.Full, match="capacity 10 rows"):
        a.append(np.zeros((8, 3), dtype=np.int64))
    assert len(a) == 3
    # Conversions that would lose data are refused, not truncated.
    with pytest.raises(sharray.DtypeMismatch, match="float64"):
        a.append([[1.5, 2, 3]])
    with pytest.raises(sharray.DtypeMismatch):
        a.append(np.ones((1, 3), dtype=np.complex64))
    u = make(str(tmp_path / "u.npy"), capacity=4, dtype=np.uint8)
    assert u.append([[1, 2, 255]]) == 0  # Python ints that fit
    with pytest.raises(sharray.InvalidInput, match="range"):
        u.append([[1, 2, 256]])
    with pytest.raises(sharray.InvalidInput, match="range"):
        u.append([[-1, 0, 0]])
    assert len(u) == 1 and len(a) == 3
    ro = sharray.open(path, readonly=True)
    with pytest.raises(sharray.PermissionDenied):
        ro.append([1, 2, 3])
    with pytest.raises(sharray.InvalidInput):
        sharray.create(str(tmp_path / "x.npy"), (0, 3), np.float32, growable=True, order="F")
    with pytest.raises(sharray.InvalidInput):
        sharray.create(str(tmp_path / "y.npy"), (3,), np.float32, capacity=5)
    # Pickles as its path (multiprocessing with spawn).
    import pickle

    c = pickle.loads(pickle.dumps(a))
    assert isinstance(c, sharray.GrowableArray) and len(c) == 3
    assert c.append([[0, 0, 0]]) == 3
    # Plain arrays are unaffected by the dispatch.
    p = sharray.create(str(tmp_path / "p.npy"), (2, 3), np.float32)
    assert not isinstance(p, sharray.GrowableArray)


def test_four_appender_processes_one_killed_and_a_reader(tmp_path):
    path = str(tmp_path / "g.npy")
    make(path)
    procs = [spawn_python(APPENDER, path, str(i), "60", str(i)) for i in (1, 2, 3)]
    victim = spawn_python(APPENDER, path, "4", "100000", "7")
    reader = spawn_python(READER, path, str(60 * (1 + 2 + 3)))
    assert victim.stdout.readline().strip() == "ready"
    line = victim.stdout.readline()
    assert line.startswith("appended"), line
    time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim_out, _ = victim.communicate(timeout=60)
    reported = []
    for p in procs:
        code, out, err = run_child(p)
        assert code == 0, err
        reported += [tuple(map(int, l.split()[1:])) for l in out.splitlines() if l.startswith("appended")]
    code, out, err = run_child(reader)
    assert code == 0 and "reader ok" in out, err
    assert len(reported) == 180
    # One more append rolls back whatever the killed appender had reserved.
    # (It can land after len(): a publication whose process died
    # mid-transaction takes effect when the next appender replays it.)
    a = sharray.open(path)
    n = len(a)
    at = a.append([[9, 0, 9 * 10**6]])
    assert at >= n and len(a) == at + 1
    assert a.info()["reserved"] == at + 1
    v = a.view()
    assert (v[:, 2] == v[:, 0] * 10**6 + v[:, 1]).all()
    keys = set(map(tuple, v[:, :2].tolist()))
    assert len(keys) == len(v), "a row appears twice"
    for ident, start, per, at in reported:
        np.testing.assert_array_equal(v[at : at + per, 0], ident)
        np.testing.assert_array_equal(v[at : at + per, 1], np.arange(start, start + per))
    # The killed appender's rows that made it are whole batches of 7.
    killed = v[v[:, 0] == 4]
    assert len(killed) % 7 == 0
    np.testing.assert_array_equal(killed[:, 1], np.arange(len(killed)))
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), v)


def test_fork_child_must_open_again(tmp_path):
    path = str(tmp_path / "g.npy")
    a = make(path)
    a.append([[1, 0, 10**6]])
    pid = os.fork()
    if pid == 0:  # child: the inherited handle refuses; a new one appends
        code = 1
        try:
            try:
                a.append([[2, 0, 2 * 10**6]])
            except sharray.Unsupported:
                b = sharray.open(path)
                b.append([[2, 0, 2 * 10**6]])
                code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "forked child hung"
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert a.append([[1, 1, 10**6 + 1]]) == 2  # the parent's handle still works
    np.testing.assert_array_equal(a.view()[:, 0], [1, 2, 1])
