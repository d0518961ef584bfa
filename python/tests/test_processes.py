"""Python and Rust processes sharing arrays: cross-process locking (Python
with Python, Python with the Rust example `lock_counter`), change waits,
Ctrl-C while blocked, SIGKILL of a lock holder, and fork().

Every child runs under a watchdog (conftest.run_child). Set SHARRAY_PY_STORM
for more rounds per process (default 200).
"""

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

import sharray
from conftest import STORM, run_child, spawn_python

# A Python peer doing what examples/lock_counter.rs does: ROUNDS times, under
# the write lock, check the array is uniform, then add 1 everywhere.
COUNTER = """
import sys, sharray
a = sharray.open(sys.argv[1])
for r in range(int(sys.argv[2])):
    with a.write() as v:
        first = v.flat[0]
        if not (v == first).all():
            print("torn", r, flush=True); sys.exit(1)
        v += 1
print("ok", a.generation, flush=True)
"""


def test_python_processes_exclude_each_other(tmp_path):
    path = str(tmp_path / "count.npy")
    sharray.create(path, 4096, np.int64)
    procs = [spawn_python(COUNTER, path, str(STORM)) for _ in range(3)]
    for p in procs:
        code, out, err = run_child(p)
        assert code == 0 and out.startswith("ok"), (out, err)
    final = np.load(path)
    assert (final == 3 * STORM).all()
    assert sharray.open(path).generation == 3 * STORM


def test_rust_and_python_processes_exclude_each_other(tmp_path, lock_counter):
    import subprocess

    path = str(tmp_path / "mixed.npy")
    a = sharray.create(path, 4096, np.int64)
    rust = [
        subprocess.Popen([str(lock_counter), path, str(STORM)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    py = [spawn_python(COUNTER, path, str(STORM)) for _ in range(2)]
    for p in rust + py:
        code, out, err = run_child(p)
        assert code == 0 and out.startswith("ok"), (p.args, out, err)
    with a.read() as v:
        assert (v == 4 * STORM).all()
    assert a.generation == 4 * STORM


def test_python_waits_for_a_change_made_by_rust(tmp_path, lock_counter):
    import subprocess

    path = str(tmp_path / "wake.npy")
    a = sharray.create(path, 16, np.int64)
    waiter = spawn_python(
        "import sys, sharray\n"
        "a = sharray.open(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "g = a.wait_changed(0, timeout=60)\n"
        "with a.read() as v: print('changed', g, int(v[0]), flush=True)\n",
        path,
    )
    assert waiter.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    code, out, err = run_child(subprocess.Popen([str(lock_counter), path, "1"], stdout=subprocess.PIPE, text=True))
    assert code == 0, (out, err)
    code, out, err = run_child(waiter)
    assert code == 0 and out.split() == ["changed", "1", "1"], (out, err)
    assert a.generation == 1


HOLDER = """
import sys, time, sharray
a = sharray.open(sys.argv[1])
with a.write() as v:
    v[:] = 42
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


def test_lock_timeout_across_processes(tmp_path):
    path = str(tmp_path / "busy.npy")
    a = sharray.create(path, 8, np.float64)
    holder = spawn_python(HOLDER, path, "60")
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(sharray.LockTimeout) as e:
            a.write(timeout=0.2)
        assert isinstance(e.value, TimeoutError) and "write lock" in str(e.value)
        with pytest.raises(TimeoutError):
            a.read(timeout=0)
    finally:
        holder.kill()
        run_child(holder)
    # SIGKILL released the holder's lock (the kernel drops flock locks).
    with a.read(timeout=30) as v:
        assert (v == 42).all()


BLOCKED = """
import sys, time, sharray
a = sharray.open(sys.argv[1])
op = sys.argv[2]
print("blocking", flush=True)
try:
    if op == "write":
        a.write()
    elif op == "read":
        a.read(timeout=600)
    else:
        a.wait_changed(a.generation)
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


@pytest.mark.parametrize("op", ["write", "read", "wait_changed"])
def test_ctrl_c_interrupts_a_blocked_call(tmp_path, op):
    path = str(tmp_path / "intr.npy")
    a = sharray.create(path, 8, np.float64)
    with a.write():  # a lock held by this process blocks the child
        child = spawn_python(BLOCKED, path, op)
        assert child.stdout.readline().strip() == "blocking"
        time.sleep(0.3)  # let it block inside the call
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        code, out, err = run_child(child)
        took = time.monotonic() - sent
    assert out.strip() == "interrupted", (out, err)
    assert code == 0
    # Reported, not asserted (never assert a runtime): about 50 ms expected.
    print(f"{op}: KeyboardInterrupt {took * 1000:.0f} ms after SIGINT (incl. process exit)")


def _fork_child(path, inherited, conn):
    """Runs in a forked child: report what the inherited handle does, then
    take the lock through a fresh handle and hold it until told to stop."""
    try:
        inherited.write(timeout=0)
        conn.send("inherited handle locked (wrong)")
    except sharray.Unsupported as e:
        conn.send("refused: " + str(e))
    fresh = sharray.open(path)
    with fresh.write(timeout=30) as v:
        v[:] = 7
        conn.send("holding")
        conn.recv()
    conn.send("done")


def test_fork_child_gets_its_own_locks(tmp_path):
    path = str(tmp_path / "fork.npy")
    a = sharray.create(path, 8, np.float64)
    ctx = multiprocessing.get_context("fork")
    parent, child_end = ctx.Pipe()
    p = ctx.Process(target=_fork_child, args=(path, a, child_end))
    p.start()
    try:
        assert parent.poll(60)
        msg = parent.recv()
        assert msg.startswith("refused:") and "fork" in msg, msg
        assert parent.poll(60) and parent.recv() == "holding"
        # The child's fresh handle has its own open file description, so its
        # lock excludes this process (and the inherited handle did not share ours).
        with pytest.raises(sharray.LockTimeout):
            a.write(timeout=0.2)
        parent.send("stop")
        assert parent.poll(60) and parent.recv() == "done"
    finally:
        p.join(60)
        if p.is_alive():
            p.kill()
            pytest.fail("forked child hung")
    assert p.exitcode == 0
    with a.read(timeout=30) as v:
        assert (v == 7).all()


def test_cli_sees_what_python_wrote(tmp_path, cli):
    import json
    import subprocess

    path = str(tmp_path / "cli.npy")
    a = sharray.create(path, (3, 5), ">i2")
    with a.write() as v:
        v[:] = 1
    code, out, err = run_child(subprocess.Popen([str(cli), "info", "--json", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    if code != 0:
        code, out, err = run_child(subprocess.Popen([str(cli), "info", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        assert code == 0, err
        assert ">i2" in out and "3" in out and "5" in out
        return
    cli_info = json.loads(out)
    py_info = sharray.info(path)
    for key in ("kind", "dtype", "shape", "order", "nbytes", "generation"):
        assert cli_info.get(key) == py_info[key], (key, cli_info, py_info)
