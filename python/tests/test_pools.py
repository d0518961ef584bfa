"""Worker pools from Python: Python and Rust workers (examples/worker_pool
--worker) sharing one chunk queue, a Python worker killed mid-chunk, claims
as leases of rows (views revoked when the claim ends), barriers, Ctrl-C in
blocked calls. Every child runs under a watchdog (conftest.run_child).
"""

import gc
import itertools
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import sharray
from conftest import WATCHDOG, run_child, spawn_python

COLS = 1024  # what examples/worker_pool.rs expects: f32 rows of 4 KiB


def make_job(tmp_path, rows=4096, chunk_rows=128):
    """Input (rows x 1024 f32), zeroed output, and a queue over the rows."""
    inp = sharray.create(str(tmp_path / "in.npy"), (rows, COLS), np.float32)
    with inp.write() as x:
        x[:] = (np.arange(rows * COLS, dtype=np.float32) % 1000 - 500).reshape(rows, COLS)
    out = sharray.create(str(tmp_path / "out.npy"), (rows, COLS), np.float32)
    q = sharray.WorkQueue.create(str(tmp_path / "q.npy"), rows=rows, chunk_rows=chunk_rows)
    return inp, out, q


def expected(inp):
    with inp.read() as x:
        return 2 * x + 1


# A Python worker doing what worker_pool --worker does: out = 2 * in + 1.
# It completes one chunk, says so, and waits for "go" on stdin (so the test
# can make sure both kinds of workers get chunks), then works to the end.
PY_WORKER = """
import sys, sharray
q = sharray.WorkQueue.open(sys.argv[1])
inp = sharray.open(sys.argv[2], readonly=True)
out = sharray.open(sys.argv[3])
stall = sys.argv[4] if len(sys.argv) > 4 else ""
with inp.read() as x, q.join() as w:
    done = 0
    for claim in w:
        with claim:
            with claim.rows_mut(out) as y:
                if stall == "mid":
                    y[:] = float("nan")
                    y[: len(y) // 2] = 2 * x[claim.slice][: len(y) // 2] + 1
                    print("MID", claim.index, flush=True)
                    sys.stdin.readline()  # killed while waiting here
                y[:] = 2 * x[claim.slice] + 1
        done += 1
        if done == 1 and stall == "pause":
            print("started", w.id, flush=True)
            sys.stdin.readline()
    print("DONE", w.id, done, flush=True)
"""


def test_python_and_rust_workers_share_one_queue(tmp_path, worker_pool):
    inp, out, q = make_job(tmp_path)
    py = [spawn_python(PY_WORKER, q.path, inp.path, out.path, "pause", stdin=subprocess.PIPE) for _ in range(2)]
    rust = []
    try:
        for p in py:
            line = p.stdout.readline().split()
            assert line[:1] == ["started"], (line, p.stderr.read() if not line else "")
        rust = [
            subprocess.Popen(
                [str(worker_pool), "--worker", q.path, inp.path, out.path],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        # Let the Rust workers complete a chunk before the Python ones go on.
        deadline = time.monotonic() + WATCHDOG
        while q.progress()["done"] < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        for p in py:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [run_child(p) for p in py + rust]
    finally:
        for p in py + rust:
            if p.poll() is None:
                p.kill()
                p.wait()
    owners = {}
    for code, out_text, err in results:
        assert code == 0, err
        tag, wid, n = out_text.split()[-3:]
        assert tag == "DONE"
        owners[int(wid)] = int(n)
    final = q.wait_all(timeout=WATCHDOG)
    assert final["done"] == final["chunks"] == 32 and final["requeued"] == 0
    # Every chunk completed exactly once, by the worker that says it did it.
    by_owner = {}
    for i in range(q.chunks):
        c = q.chunk(i)
        assert c["state"] == "done" and c["claims"] == 1 and c["requeues"] == 0, (i, c)
        by_owner[c["owner"]] = by_owner.get(c["owner"], 0) + 1
    assert by_owner == {w: n for w, n in owners.items() if n}
    py_ids = [int(r[1].split()[-2]) for r in results[:2]]
    rust_ids = [int(r[1].split()[-2]) for r in results[2:]]
    assert all(by_owner.get(w, 0) >= 1 for w in py_ids)
    assert sum(by_owner.get(w, 0) for w in rust_ids) >= 1
    with out.read() as y:
        assert np.array_equal(y, expected(inp))
    assert out.generation >= 1  # rows written through claims count as changes


def test_python_worker_killed_mid_chunk_is_redone(tmp_path, worker_pool):
    inp, out, q = make_job(tmp_path, rows=1024, chunk_rows=128)
    victim = spawn_python(PY_WORKER, q.path, inp.path, out.path, "mid", stdin=subprocess.PIPE)
    try:
        line = victim.stdout.readline().split()
        assert line[:1] == ["MID"], (line, victim.stderr.read() if not line else "")
        stalled = int(line[1])
        assert q.progress()["in_flight"] == 1
    finally:
        victim.kill()
        run_child(victim)
    # A Python and a Rust worker finish the job; the dead worker's chunk is
    # re-queued (by a claimer finding nothing else, or by wait_all).
    helpers = [
        spawn_python(PY_WORKER, q.path, inp.path, out.path),
        subprocess.Popen([str(worker_pool), "--worker", q.path, inp.path, out.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]
    final = q.wait_all(timeout=WATCHDOG)
    for h in helpers:
        code, _, err = run_child(h)
        assert code == 0, err
    assert final["done"] == final["chunks"] == 8 and final["requeued"] == 1
    c = q.chunk(stalled)
    assert c["state"] == "done" and c["claims"] == 2 and c["requeues"] == 1
    with out.read() as y:
        assert np.array_equal(y, expected(inp))  # no NaN left from the half-written chunk


@pytest.mark.usefixtures("windows")
def test_claim_rows_view_lifetime(tmp_path):
    out = sharray.create(str(tmp_path / "o.npy"), (10, 3), np.int32)
    q = sharray.WorkQueue.create(str(tmp_path / "q.npy"), rows=10, chunk_rows=4)
    w = q.join()
    c = w.claim(timeout=5)
    assert (c.index, c.rows, c.slice, c.start, c.stop) == (0, range(0, 4), slice(0, 4), 0, 4)
    rows = c.rows_mut(out)
    with pytest.raises(sharray.LockTimeout):
        c.rows_mut(out)  # the same rows, twice in this process
    with pytest.raises(sharray.LockTimeout):
        out.write(timeout=0)  # a whole-array guard would alias them too
    with rows as y:
        assert y.shape == (4, 3) and y.flags.writeable
        addr, length = rows._window
        ptr = y.__array_interface__["data"][0]
        assert addr <= ptr and ptr + y.nbytes <= addr + length
        y[:] = 5
        part = y[1:]
    assert not rows.active and not y.flags.writeable and not y.any() and not part.any()
    part[:] = 9  # private memory now
    again = c.rows_mut(out)  # released: may be taken again
    y2 = again.view
    y2[0] = 6
    c.complete()  # ends the rows view first
    assert not again.active and not y2.any() and not c.active and c.completed
    with pytest.raises(sharray.InvalidInput):
        c.complete()
    with pytest.raises(sharray.InvalidInput):
        c.rows_mut(out)
    data = np.load(out.path)
    assert (data[0] == 6).all() and (data[1:4] == 5).all() and not data[4:].any()
    with out.write(timeout=0) as v:  # rows released: the guard is free
        assert v.shape == (10, 3)


def test_claim_exception_gives_the_chunk_back(tmp_path):
    out = sharray.create(str(tmp_path / "o.npy"), (8, 2), np.float64)
    q = sharray.WorkQueue.create(str(tmp_path / "q.npy"), rows=8, chunk_rows=8)
    w = q.join()
    claim = w.claim(timeout=5)
    with pytest.raises(RuntimeError):
        with claim:
            with claim.rows_mut(out) as y:
                y[:] = 1
                raise RuntimeError("worker bug")
    assert not claim.active and not claim.completed
    p = q.progress()
    assert (p["pending"], p["done"], p["requeued"]) == (1, 0, 1)
    again = w.claim(timeout=5)
    assert again.index == 0
    with again:
        pass  # completes
    assert q.wait_all(timeout=5)["complete"]
    assert w.claim(timeout=5) is None
    assert list(w) == []


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_drop_order_is_safe_for_claims(tmp_path, order):
    out = sharray.create(str(tmp_path / "o.npy"), (16, 4), np.uint8)
    q = sharray.WorkQueue.create(str(tmp_path / f"q{''.join(map(str, order))}.npy"), rows=16, chunk_rows=16)
    worker = q.join()
    claim = worker.claim(timeout=5)
    rows = claim.rows_mut(out)
    view = rows.view[1:]
    view[:] = 2
    objs = {"worker": worker, "claim": claim, "rows": rows, "view": view}
    names = list(objs)
    del worker, claim, rows, view
    for i in order:
        obj = objs.pop(names[i])
        for left in objs.values():
            if isinstance(left, np.ndarray):
                left[:1] = 3
                int(left.sum())
        left = None
        del obj
        gc.collect()
    # Dropped unfinished: the chunk went back; the rows are free again.
    p = q.progress()
    assert (p["pending"], p["in_flight"], p["workers"]) == (1, 0, 0), p
    with out.write(timeout=0):
        pass


def test_barrier_between_python_workers(tmp_path):
    q = sharray.WorkQueue.create(str(tmp_path / "b.npy"), tasks=0, barrier=3, max_workers=3)
    workers = [q.join() for _ in range(3)]
    results = []

    def run(w):
        for _ in range(3):
            results.append(w.barrier_wait(timeout=30))

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(g for g, _ in results) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sum(leader for _, leader in results) == 3
    with pytest.raises(sharray.Timeout):
        workers[0].barrier_wait(timeout=0.1)  # alone: times out, arrival withdrawn
    assert q.progress()["barrier_arrived"] == 0


def test_queue_attributes_progress_and_errors(tmp_path):
    import pickle

    q = sharray.WorkQueue.create(str(tmp_path / "q.npy"), rows=100, chunk_rows=30)
    assert (q.chunks, q.rows, q.chunk_rows, q.tasks, q.done) == (4, 100, 30, False, False)
    assert q.chunk_range(3) == range(90, 100) and q.chunk(0)["state"] == "pending"
    with pytest.raises(IndexError):
        q.chunk(4)
    t = sharray.WorkQueue.create(str(tmp_path / "t.npy"), tasks=3)
    assert (t.tasks, t.chunks, t.chunk_range(2)) == (True, 3, range(2, 3))
    with pytest.raises(sharray.InvalidInput):
        sharray.WorkQueue.create(str(tmp_path / "bad.npy"), rows=10)  # no chunk_rows
    with pytest.raises(sharray.AlreadyExists):
        sharray.WorkQueue.create(q.path, tasks=1)
    assert pickle.loads(pickle.dumps(q)).path == q.path
    ro = sharray.WorkQueue.open(q.path, readonly=True)
    assert ro.readonly and ro.progress()["pending"] == 4
    with pytest.raises(sharray.PermissionDenied):
        ro.join()
    w = q.join()
    held = w.claim()
    with pytest.raises(sharray.Timeout) as e:
        q.wait_all(timeout=0.2)
    assert isinstance(e.value, TimeoutError) and "0 of 4 chunks done" in str(e.value)
    held.complete()
    while (c := w.try_claim()) is not None:
        c.complete()
    assert q.wait_all(timeout=5)["done"] == 4 and q.done
    w.close()
    with pytest.raises(sharray.InvalidInput):
        w.claim()


def test_task_queue_across_threads(tmp_path):
    q = sharray.WorkQueue.create(str(tmp_path / "tasks.npy"), tasks=200)
    seen = []

    def run():
        with q.join() as w:
            for claim in w:
                seen.append(claim.index)
                claim.complete()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(seen) == list(range(200))


BLOCKED = """
import sys, sharray
q = sharray.WorkQueue.open(sys.argv[1])
op = sys.argv[2]
w = q.join()
call = {"claim": lambda: w.claim(), "wait_all": lambda: q.wait_all(), "barrier_wait": lambda: w.barrier_wait()}[op]
print("blocking", flush=True)
try:
    call()
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


@pytest.mark.parametrize("op", ["claim", "wait_all", "barrier_wait"])
def test_ctrl_c_interrupts_a_blocked_pool_call(tmp_path, op):
    q = sharray.WorkQueue.create(str(tmp_path / "q.npy"), tasks=1, barrier=2)
    held = q.join().claim()  # the only task stays in flight
    child = spawn_python(BLOCKED, q.path, op)
    assert child.stdout.readline().strip() == "blocking"
    time.sleep(0.3)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    code, out, err = run_child(child)
    took = time.monotonic() - sent
    assert out.strip() == "interrupted", (out, err)
    assert code == 0
    print(f"{op}: KeyboardInterrupt {took * 1000:.0f} ms after SIGINT (incl. process exit)")
    held.complete()


def test_rows_mut_checks_the_output_array(tmp_path):
    q = sharray.WorkQueue.create(str(tmp_path / "q.npy"), rows=10, chunk_rows=5)
    wrong = sharray.create(str(tmp_path / "wrong.npy"), (9, 2), np.float32)
    fortran = sharray.create(str(tmp_path / "f.npy"), (10, 2), np.float32, order="F")
    good = sharray.create(str(tmp_path / "good.npy"), (10, 2), np.float32)
    ro = sharray.open(good.path, readonly=True)
    claim = q.join().claim(timeout=5)
    with pytest.raises(sharray.ShapeMismatch):
        claim.rows_mut(wrong)
    with pytest.raises(sharray.Unsupported):
        claim.rows_mut(fortran)
    with pytest.raises(sharray.PermissionDenied):
        claim.rows_mut(ro)
    with pytest.raises(TypeError):
        claim.rows_mut(np.zeros((10, 2)))
    with claim.rows_mut(good) as y:
        y[:] = 1
    claim.complete()


def _spawned_worker(q, inp, out):
    # Handles arrive pickled as their paths and are opened again here.
    with inp.read() as x, q.join() as w:
        for claim in w:
            with claim, claim.rows_mut(out) as y:
                y[:] = 2 * x[claim.slice] + 1


def test_handles_pickle_into_multiprocessing_workers(tmp_path):
    import multiprocessing

    inp, out, q = make_job(tmp_path, rows=512, chunk_rows=32)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_spawned_worker, args=(q, sharray.open(inp.path, readonly=True), out)) for _ in range(2)]
    for p in procs:
        p.start()
    try:
        final = q.wait_all(timeout=WATCHDOG)
    finally:
        for p in procs:
            p.join(WATCHDOG)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    assert final["done"] == 16
    with out.read() as y:
        assert np.array_equal(y, expected(inp))
