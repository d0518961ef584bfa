"""Rings from Python: Rust and Python producers and consumers in separate
processes (every frame checked), SIGKILL of a consumer holding a lease,
zero copy, the loan's exception path, iteration ending only when a producer
closes the stream (not when producers exit, are killed or restart),
reopening a closed stream, Ctrl-C in blocked calls, and what stale views see.

The Rust peer is examples/ring_peer.rs: frame n (tag n) holds the uint64
words n, n+1, n+2, ... Every child runs under a watchdog (conftest.run_child;
in-process loops waiting on a Rust producer kill it after WATCHDOG seconds,
which ends the loop). SHARRAY_PY_FRAMES sets the frames per cross-process
test (default 200).
"""

import gc
import itertools
import json
import multiprocessing
import resource
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import sharray
from conftest import FRAMES, WATCHDOG, run_child, spawn_python

WORDS = 8192  # 64 KiB frames


def pattern(n, words=WORDS):
    return np.arange(words, dtype=np.uint64) + np.uint64(n)


def make_ring(tmp_path, name="ring.npy", **kw):
    kw.setdefault("slots", 4)
    return sharray.Ring.create(str(tmp_path / name), (WORDS,), np.uint64, **kw)


def rust_producer(ring_peer, path, frames=FRAMES):
    """The Rust peer producing frames 0..frames (then closing the stream)."""
    return subprocess.Popen(
        [str(ring_peer), "produce", path, "--frames", str(frames)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_rust_producer_python_consumer(tmp_path, ring_peer):
    ring = make_ring(tmp_path)
    consumer = ring.consumer()
    prod = rust_producer(ring_peer, ring.path)
    watchdog = threading.Timer(WATCHDOG, prod.kill)  # ends the loop below
    watchdog.start()
    seen = []
    try:
        for lease in consumer:  # ends when the producer closes the stream
            with lease as frame:
                assert frame.shape == (WORDS,) and frame.dtype == np.uint64
                assert not frame.flags.writeable
                assert np.array_equal(frame, pattern(lease.tag))
            seen.append((lease.seq, lease.tag, lease.lost, lease.valid_len))
    finally:
        watchdog.cancel()
    code, out, err = run_child(prod)
    assert code == 0, err
    assert json.loads(out)["frames"] == FRAMES
    assert [s[0] for s in seen] == list(range(FRAMES))
    assert [s[1] for s in seen] == list(range(FRAMES))
    assert all(s[2] == 0 and s[3] == WORDS * 8 for s in seen)
    st = ring.stats()
    assert st["committed"] == st["received"] == FRAMES and st["slots_free"] == 4


def test_python_producer_rust_consumer(tmp_path, ring_peer):
    ring = make_ring(tmp_path)
    cons = subprocess.Popen(
        [str(ring_peer), "consume", ring.path, "--timeout", str(WATCHDOG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cons.stdout.readline().strip() == "ready"
        base = np.arange(WORDS, dtype=np.uint64)
        with ring.producer() as producer:
            for n in range(FRAMES):
                if n % 3 == 0:
                    assert producer.send(base + np.uint64(n), timeout=WATCHDOG, tag=n) == n
                elif n % 3 == 1:
                    with producer.loan(timeout=WATCHDOG, tag=n) as frame:
                        np.add(base, np.uint64(n), out=frame)
                else:
                    loan = producer.loan(timeout=WATCHDOG)
                    loan.tag = n
                    np.add(base, np.uint64(n), out=loan.view)
                    assert loan.commit() == n and loan.seq == n and not loan.active
        # Leaving the block closed the stream: the consumer drains and exits.
    finally:
        code, out, err = run_child(cons)
    assert code == 0, err
    r = json.loads(out)
    assert (r["frames"], r["bad"], r["lost"]) == (FRAMES, 0, 0), r


def test_rust_producer_python_recv_into(tmp_path, ring_peer):
    """recv_into copies each frame into one reused array and releases it at
    once: every frame checked, nothing left leased, the stream's end raised."""
    ring = make_ring(tmp_path)
    consumer = ring.consumer()
    prod = rust_producer(ring_peer, ring.path)
    out = np.empty(WORDS, dtype=np.uint64)
    seen = []
    try:
        while True:
            try:
                seq, tag, nbytes = consumer.recv_into(out, timeout=WATCHDOG)
            except sharray.Disconnected:
                break
            assert nbytes == WORDS * 8 and np.array_equal(out, pattern(tag))
            assert ring.stats()["slots_reading"] == 0  # released already
            seen.append((seq, tag))
    finally:
        code, _, err = run_child(prod)
    assert code == 0, err
    assert seen == [(n, n) for n in range(FRAMES)]


def test_recv_into_and_send_refuse_what_is_not_a_frame(tmp_path):
    ring = make_ring(tmp_path)
    producer, consumer = ring.producer(), ring.consumer()
    # send: anything numpy can broadcast still works (through a view); the
    # exact frame array goes straight in.
    producer.send(7, tag=1)
    producer.send(pattern(3).astype(np.uint32), tag=2)  # safe cast
    producer.send(pattern(5)[::-1].copy()[::-1], tag=3)  # non-contiguous
    producer.send(pattern(9), tag=4)
    out = np.zeros(WORDS, dtype=np.uint64)
    bad = [
        (np.zeros(WORDS, dtype=np.int64), sharray.DtypeMismatch, "dtype"),
        (np.zeros(WORDS - 1, dtype=np.uint64), sharray.ShapeMismatch, "shape"),
        (np.zeros((2, WORDS), dtype=np.uint64)[:, 0], sharray.ShapeMismatch, "shape"),
        (np.zeros(2 * WORDS, dtype=np.uint64)[::2], sharray.InvalidInput, "C-contiguous"),
        ([0] * WORDS, sharray.InvalidInput, "numpy array"),
    ]
    ro = np.zeros(WORDS, dtype=np.uint64)
    ro.flags.writeable = False
    bad.append((ro, sharray.InvalidInput, "read-only"))
    for arr, exc, words in bad:
        with pytest.raises(exc, match=words):
            consumer.recv_into(arr, timeout=1)
    assert ring.stats()["slots_ready"] == 4  # nothing was taken by a refusal
    got = [consumer.recv_into(out, timeout=1)[1:] + (out.copy(),) for _ in range(4)]
    assert [g[0] for g in got] == [1, 2, 3, 4]
    assert np.all(got[0][2] == 7)
    assert np.array_equal(got[1][2], pattern(3))
    assert np.array_equal(got[2][2], pattern(5))
    assert np.array_equal(got[3][2], pattern(9))
    with pytest.raises(sharray.Timeout):
        consumer.recv_into(out, timeout=0.05)
    producer.close()
    with pytest.raises(sharray.Disconnected):
        consumer.recv_into(out, timeout=1)


VICTIM = """
import sys, time, sharray
ring = sharray.Ring.open(sys.argv[1])
c = ring.consumer()
lease = c.recv(timeout=60)
frame = lease.view
print("holding", lease.seq, int(frame[0]), int(frame.sum() % 1000), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("next_consumer", ["python", "rust"])
def test_killed_consumer_holding_a_lease_loses_no_slot(tmp_path, ring_peer, next_consumer):
    K, more = 4, 20
    ring = make_ring(tmp_path, slots=K)
    producer = ring.producer()
    producer.send(pattern(0), tag=0)
    victim = spawn_python(VICTIM, ring.path)
    try:
        line = victim.stdout.readline().split()
        assert line[:3] == ["holding", "0", "0"], (line, victim.stderr.read() if not line else "")
        assert ring.stats()["slots_reading"] == 1
    finally:
        victim.kill()
        run_child(victim)
    # Fill every slot with nobody consuming: the K-th loan needs the dead
    # consumer's slot back (a blocked producer reclaims it within ~50 ms).
    for n in range(1, K + 1):
        producer.send(pattern(n), timeout=30, tag=n)
    if next_consumer == "rust":
        cons = subprocess.Popen(
            [str(ring_peer), "consume", ring.path, "--timeout", str(WATCHDOG)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert cons.stdout.readline().strip() == "ready"
            for n in range(K + 1, K + 1 + more):
                producer.send(pattern(n), timeout=WATCHDOG, tag=n)
            producer.close()
        finally:
            code, out, err = run_child(cons)
        assert code == 0, err
        r = json.loads(out)
        assert (r["frames"], r["bad"]) == (K + more, 0), r
    else:
        consumer = ring.consumer()
        tags = []
        for n in range(K + 1, K + 1 + more):
            lease = consumer.recv(timeout=30)
            with lease as frame:
                assert np.array_equal(frame, pattern(lease.tag))
            tags.append(lease.tag)
            producer.send(pattern(n), timeout=30, tag=n)
        producer.close()
        while True:
            try:
                lease = consumer.recv(timeout=30)
            except sharray.Disconnected:
                break
            with lease as frame:
                assert np.array_equal(frame, pattern(lease.tag))
            tags.append(lease.tag)
        assert tags == list(range(1, K + 1 + more))
        consumer.close()
    st = ring.stats()
    assert st["slots_free"] == K, st
    assert st["committed"] == 1 + K + more
    assert not any(p["alive"] and p["role"] == "consumer" for p in st["participants"])


def test_iteration_survives_killed_and_restarted_producers_until_close(tmp_path, ring_peer):
    ring = make_ring(tmp_path, slots=8)
    consumer = ring.consumer()
    got, ended = [], threading.Event()

    def consume():
        for lease in consumer:  # ends only when a producer closes the stream
            with lease as frame:
                assert np.array_equal(frame, pattern(lease.tag))
            got.append((lease.seq, lease.tag))
        ended.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    # A Python producer killed without closing.
    child = spawn_python(
        "import sys, time, numpy as np, sharray\n"
        "p = sharray.Ring.open(sys.argv[1]).producer()\n"
        "for n in range(5):\n"
        "    p.send(np.arange(8192, dtype=np.uint64) + np.uint64(n), tag=n)\n"
        "print('sent', flush=True)\n"
        "time.sleep(600)\n",
        ring.path,
    )
    try:
        assert child.stdout.readline().strip() == "sent"
    finally:
        child.send_signal(signal.SIGKILL)
        run_child(child)
    deadline = time.monotonic() + WATCHDOG
    while len(got) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [(n, n) for n in range(5)]
    # The stream did not end: the consumer waits, no producer is attached.
    time.sleep(0.3)
    assert not ended.is_set()
    st = ring.stats()
    assert not st["closed"] and st["producers_attached"] == 0, st
    with pytest.raises(sharray.Timeout):
        ring.consumer().recv(timeout=0.2)
    # Rust producer processes restart one after the other without closing;
    # the consumer keeps receiving (each run tags its frames 0, 1, 2).
    for _ in range(2):
        code, out, err = run_child(subprocess.Popen(
            [str(ring_peer), "produce", ring.path, "--frames", "3", "--no-close"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
        assert code == 0, err
    assert not ended.wait(0.3)
    # A Python producer's close() ends the iteration once it is drained.
    with ring.producer() as p:
        p.send(pattern(77), tag=77)
    reader.join(WATCHDOG)
    assert ended.is_set()
    assert [seq for seq, _ in got] == list(range(12))
    assert [tag for _, tag in got] == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 77]
    assert ring.stats()["closed"]
    with pytest.raises(sharray.Disconnected) as e:
        consumer.recv(timeout=1)
    assert isinstance(e.value, BrokenPipeError) and "closed" in str(e.value)
    with pytest.raises(sharray.Disconnected):
        consumer.try_recv()


def test_a_closed_stream_takes_producers_only_when_reopened(tmp_path, ring_peer):
    ring = make_ring(tmp_path, slots=4)
    consumer = ring.consumer()
    p = ring.producer()
    p.send(pattern(1), tag=1)
    p.close()
    assert p.closed and ring.stats()["closed"]
    assert [lease.tag for lease in consumer] == [1]
    with pytest.raises(sharray.Disconnected) as e:
        ring.producer()
    assert "reopen=True" in str(e.value)
    # A Rust producer process is refused too, unless it reopens.
    code, out, err = run_child(subprocess.Popen(
        [str(ring_peer), "produce", ring.path, "--frames", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ))
    assert code == 1 and "closed" in err, (code, err)
    code, out, err = run_child(subprocess.Popen(
        [str(ring_peer), "produce", ring.path, "--frames", "2", "--reopen", "--no-close"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ))
    assert code == 0, err
    assert not ring.stats()["closed"]
    assert [consumer.recv(timeout=5).tag for _ in range(2)] == [0, 1]
    # Leaving a `with` block by an exception only detaches: the stream stays
    # open; detach() does the same explicitly.
    with pytest.raises(RuntimeError):
        with ring.producer() as q:
            q.send(pattern(9), tag=9)
            raise RuntimeError("producer crashed")
    assert q.closed and not ring.stats()["closed"]
    q = ring.producer()
    q.detach()
    assert q.closed and not ring.stats()["closed"]
    assert consumer.recv(timeout=5).tag == 9
    with pytest.raises(sharray.Timeout):
        consumer.recv(timeout=0.2)
    with ring.producer(reopen=True):  # reopen on an open stream: a plain producer
        pass
    assert ring.stats()["closed"]
    with pytest.raises(sharray.Disconnected):
        consumer.recv(timeout=5)


@pytest.mark.usefixtures("windows")
def test_iteration_releases_each_lease_when_asking_for_the_next(tmp_path):
    ring = make_ring(tmp_path, slots=2)
    with ring.producer() as p:
        for n in range(2):
            p.send(pattern(n), tag=n)
    consumer = ring.consumer()
    it = iter(consumer)
    first = next(it)
    frame = first.view
    assert first.active and frame[0] == 0
    second = next(it)
    assert not first.active and second.active
    assert not frame.any() and not frame.flags.writeable  # revoked
    assert first.seq == 0 and first.tag == 0  # metadata outlive the lease
    with pytest.raises(StopIteration):
        next(it)
    assert not second.active


@pytest.mark.usefixtures("windows")
def test_views_are_zero_copy(tmp_path):
    ring = sharray.Ring.create(str(tmp_path / "zc.npy"), (64, 32), np.float32, slots=2)
    producer, consumer = ring.producer(), ring.consumer()
    loan = producer.loan()
    frame = loan.view
    addr, length = loan._window
    ptr = frame.__array_interface__["data"][0]
    assert addr <= ptr and ptr + frame.nbytes <= addr + length
    frame[:] = 7.0
    # Written in place: the file holds the bytes before the commit.
    assert (np.load(ring.path, mmap_mode="r")[loan.slot] == 7.0).all()
    loan.commit()
    lease = consumer.recv(timeout=5)
    with lease as a:
        b = lease.view
        c = np.asarray(memoryview(a))
        assert a is b and np.shares_memory(a, c) and np.shares_memory(a, a[3:5, ::2])
        addr, length = lease._window
        ptr = a.__array_interface__["data"][0]
        assert addr <= ptr and ptr + a.nbytes <= addr + length
        assert (a == 7.0).all()
    assert not c.any()  # derived views are revoked with the lease


def test_steady_state_leases_take_no_page_faults(tmp_path):
    words = (1 << 20) // 8  # 1 MiB frames: 256 pages each
    ring = sharray.Ring.create(str(tmp_path / "pf.npy"), (words,), np.uint64, slots=4)
    producer, consumer = ring.producer(), ring.consumer()

    def one(n):
        with producer.loan(tag=n) as f:
            f.fill(n)
        with consumer.recv(timeout=5) as v:
            return int(v[-1])

    for n in range(16):  # every slot's windows made once
        one(n)
    frames = 64
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for n in range(frames):
        assert one(n) == n
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # A fresh mapping would fault 256 pages per frame (twice: write + read).
    print(f"{faults} page faults for {frames} frames of 1 MiB (write + read)")
    assert faults < frames, f"{faults} page faults for {frames} frames"


@pytest.mark.usefixtures("windows")
def test_loan_exception_gives_the_slot_back(tmp_path):
    ring = make_ring(tmp_path, slots=2)
    producer, consumer = ring.producer(), ring.consumer()
    loan = producer.loan(tag=5)
    with pytest.raises(ValueError, match="boom"):
        with loan as frame:
            frame[:] = 1
            part = frame[10:20]
            raise ValueError("boom")
    assert not loan.active and loan.seq is None
    assert not frame.flags.writeable and not frame.any() and not part.any()
    part[:] = 9  # stale writes go to private memory, not to the slot
    assert consumer.try_recv() is None
    st = ring.stats()
    assert st["slots_free"] == 2 and st["committed"] == 0
    # The slot keeps what was written in place (it is simply not delivered);
    # the stale write after the end did not reach it.
    assert (np.load(ring.path, mmap_mode="r")[loan.slot] == 1).all()
    with pytest.raises(sharray.InvalidInput):
        loan.commit()
    loan.abandon()  # idempotent
    # Both slots are usable.
    for n in range(2):
        producer.send(pattern(n), tag=n)
    assert producer.try_loan() is None  # full now
    assert [consumer.recv(timeout=1).tag for _ in range(2)] == [0, 1]


def test_tag_valid_len_and_metadata(tmp_path):
    ring = make_ring(tmp_path)
    producer, consumer = ring.producer(), ring.consumer()
    with pytest.raises(sharray.InvalidInput):
        producer.loan(valid_len=WORDS * 8 + 1)
    loan = producer.loan(tag=3, valid_len=80)
    assert (loan.tag, loan.valid_len) == (3, 80)
    loan.tag, loan.valid_len = 11, 16
    with pytest.raises(sharray.InvalidInput):
        loan.valid_len = WORDS * 8 + 8
    t0 = time.monotonic_ns()
    loan.commit()
    lease = consumer.recv(timeout=1)
    assert (lease.seq, lease.tag, lease.valid_len, lease.lost, lease.slot) == (0, 11, 16, 0, loan.slot)
    assert t0 <= lease.timestamp_ns <= time.monotonic_ns()
    assert "seq=0" in repr(lease)
    lease.release()
    assert "released" in repr(lease)


def test_broadcast_gives_every_frame_to_every_subscriber(tmp_path):
    ring = make_ring(tmp_path, broadcast=True)
    subs = [ring.consumer(), ring.consumer()]
    with ring.producer() as p:
        for n in range(3):
            p.send(pattern(n), tag=n)
    for s in subs:
        assert [lease.tag for lease in s] == [0, 1, 2]
    assert ring.stats()["mode"] == "broadcast"


def test_overwrite_mode_reports_lost_frames(tmp_path):
    ring = make_ring(tmp_path, slots=2, overwrite=True)
    consumer = ring.consumer()
    with ring.producer() as p:
        for n in range(6):
            p.send(pattern(n), tag=n, timeout=0)  # never waits
    got = [(lease.tag, lease.lost) for lease in consumer]
    assert len(got) + sum(lost for _, lost in got) == 6
    assert got[-1][0] == 5 and sum(lost for _, lost in got) > 0


def test_python_producer_and_consumer_processes(tmp_path):
    ring = make_ring(tmp_path)
    code = """
import sys, numpy as np, sharray
ring = sharray.Ring.open(sys.argv[1])
n = int(sys.argv[2])
with ring.producer() as p:
    base = np.arange(ring.frame_shape[0], dtype=np.uint64)
    for i in range(n):
        with p.loan(timeout=60, tag=i) as f:
            np.add(base, np.uint64(i), out=f)
"""
    consumer = ring.consumer()
    child = spawn_python(code, ring.path, str(FRAMES))
    watchdog = threading.Timer(WATCHDOG, child.kill)
    watchdog.start()
    try:
        tags = []
        for lease in consumer:
            assert np.array_equal(lease.view, pattern(lease.tag))
            tags.append(lease.tag)
    finally:
        watchdog.cancel()
    code, out, err = run_child(child)
    assert code == 0, err
    assert tags == list(range(FRAMES))


def test_blocked_recv_releases_the_gil(tmp_path):
    ring = make_ring(tmp_path)
    producer, consumer = ring.producer(), ring.consumer()
    got = []
    t = threading.Thread(target=lambda: got.append(consumer.recv(timeout=30).tag))
    t.start()
    time.sleep(0.2)  # the thread is blocked in recv, without the GIL
    producer.send(pattern(9), tag=9)
    t.join(30)
    assert got == [9]


def test_timeouts(tmp_path):
    ring = make_ring(tmp_path, slots=1)
    producer, consumer = ring.producer(), ring.consumer()
    with pytest.raises(sharray.Timeout) as e:
        consumer.recv(timeout=0.1)
    assert isinstance(e.value, TimeoutError) and "frame" in str(e.value)
    assert consumer.try_recv() is None
    held = producer.loan()
    with pytest.raises(TimeoutError):
        producer.loan(timeout=0.1)
    assert producer.try_loan() is None
    held.abandon()
    with pytest.raises(sharray.InvalidInput):
        consumer.recv(timeout=-1)


BLOCKED = """
import sys, sharray
ring = sharray.Ring.open(sys.argv[1])
op = sys.argv[2]
if op == "recv":
    c = ring.consumer()
    call = lambda: c.recv()
else:
    p = ring.producer()
    p.loan().commit()  # one slot: the ring is full now
    call = lambda: p.loan(timeout=600)
print("blocking", flush=True)
try:
    call()
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


@pytest.mark.parametrize("op", ["recv", "loan"])
def test_ctrl_c_interrupts_a_blocked_ring_call(tmp_path, op):
    ring = make_ring(tmp_path, slots=1)
    producer = ring.producer()  # an attached producer, as in real use
    child = spawn_python(BLOCKED, ring.path, op)
    assert child.stdout.readline().strip() == "blocking"
    time.sleep(0.3)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    code, out, err = run_child(child)
    took = time.monotonic() - sent
    assert out.strip() == "interrupted", (out, err)
    assert code == 0
    print(f"{op}: KeyboardInterrupt {took * 1000:.0f} ms after SIGINT (incl. process exit)")
    producer.close()


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_drop_order_is_safe_for_leases(tmp_path, order):
    ring = make_ring(tmp_path, name=f"d{''.join(map(str, order))}.npy", slots=2)
    path = ring.path
    producer = ring.producer()
    producer.send(pattern(1), tag=1)
    consumer = ring.consumer()
    lease = consumer.recv(timeout=1)
    view = lease.view[100:]
    objs = {"ring": ring, "consumer": consumer, "lease": lease, "view": view}
    names = list(objs)
    del ring, consumer, lease, view
    for i in order:
        obj = objs.pop(names[i])
        for left in objs.values():
            if isinstance(left, np.ndarray):
                int(left.sum())  # never a crash, whatever is gone
        left = None
        del obj
        gc.collect()
    st = sharray.Ring.open(path).stats()
    assert st["slots_free"] == 2 and st["received"] == 1
    producer.close()


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_drop_order_is_safe_for_loans(tmp_path, order):
    ring = make_ring(tmp_path, name=f"l{''.join(map(str, order))}.npy", slots=2)
    path = ring.path
    producer = ring.producer()
    loan = producer.loan()
    view = loan.view[::2]
    view[:] = 3
    objs = {"ring": ring, "producer": producer, "loan": loan, "view": view}
    names = list(objs)
    del ring, producer, loan, view
    for i in order:
        obj = objs.pop(names[i])
        for left in objs.values():
            if isinstance(left, np.ndarray):
                left[:1] = 4
                int(left.sum())
        left = None
        del obj
        gc.collect()
    st = sharray.Ring.open(path).stats()
    assert st["slots_free"] == 2 and st["committed"] == 0  # dropped = given back


def _fork_child(ring, consumer, conn):
    try:
        consumer.recv(timeout=0)
        conn.send("received (wrong)")
    except sharray.Unsupported as e:
        conn.send("refused: " + str(e))
    fresh = sharray.Ring.open(ring.path).consumer()
    conn.send(("fresh", fresh.recv(timeout=30).tag))


def test_fork_child_refuses_inherited_participants(tmp_path):
    ring = make_ring(tmp_path)
    producer, consumer = ring.producer(), ring.consumer()
    producer.send(pattern(4), tag=4)
    ctx = multiprocessing.get_context("fork")
    parent, child_end = ctx.Pipe()
    p = ctx.Process(target=_fork_child, args=(ring, consumer, child_end))
    p.start()
    try:
        assert parent.poll(60)
        msg = parent.recv()
        assert msg.startswith("refused:") and "fork" in msg, msg
        assert parent.poll(60) and parent.recv() == ("fresh", 4)
    finally:
        p.join(60)
        if p.is_alive():
            p.kill()
            pytest.fail("forked child hung")
    # The parent's consumer is still registered and alive.
    me = [x for x in ring.stats()["participants"] if x["index"] == consumer.index]
    assert me and me[0]["alive"]
    producer.send(pattern(5), tag=5)
    assert consumer.recv(timeout=5).tag == 5


def test_ring_attributes_stats_and_pickle(tmp_path, cli):
    import pickle

    ring = sharray.Ring.create(str(tmp_path / "attrs.npy"), (3, 4), "<i2", slots=5, broadcast=True)
    assert (ring.frame_shape, ring.slots, ring.frame_nbytes, ring.broadcast, ring.overwrite) == ((3, 4), 5, 24, True, False)
    assert ring.dtype == np.dtype("<i2") and ring.max_participants == 64
    with pytest.raises(sharray.AlreadyExists):
        sharray.Ring.create(ring.path, (3, 4), "<i2")
    with pytest.raises(sharray.Unsupported):
        sharray.Ring.open(sharray.create(str(tmp_path / "plain.npy"), 4, np.int8).path)
    again = pickle.loads(pickle.dumps(ring))
    assert isinstance(again, sharray.Ring) and again.path == ring.path
    p = ring.producer()
    st = ring.stats()
    code, out, err = run_child(
        subprocess.Popen([str(cli), "info", "--json", ring.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    assert code == 0, err
    cli_ring = json.loads(out)["ring"]
    assert set(cli_ring) <= set(st)
    for key in ("slots", "slot_bytes", "mode", "committed", "slots_free"):
        assert cli_ring[key] == st[key], key
    assert [x["role"] for x in st["participants"]] == ["producer"]
    p.close()
    assert p.closed
    with pytest.raises(sharray.InvalidInput):
        p.loan()


def test_leases_in_reference_cycles_are_collected_safely(tmp_path):
    ring = make_ring(tmp_path, slots=2)
    producer, consumer = ring.producer(), ring.consumer()
    for n in range(10):
        producer.send(pattern(n), tag=n, timeout=5)
        lease = consumer.recv(timeout=5)
        loan = producer.loan(timeout=5)
        box = [lease, lease.view, lease.view[3:], loan, loan.view]
        box.append(box)  # a cycle holding leases and views
        del lease, loan, box
        # Until the cycle collector runs, the slots stay leased (like an
        # unclosed file): use `with`.
        gc.collect()
        assert ring.stats()["slots_free"] == 2
