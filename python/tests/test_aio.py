"""asyncio waits: ``recv_async``, ``loan_async``, ``wait_changed_async`` and
``async for`` against real peer processes, without blocking the event loop
(a ticker task keeps running while they wait) and without a thread per
waiter (the process's thread count stays put with 60 waiters); cancellation
and timeouts unregister cleanly.
"""

import asyncio
import os

import numpy as np
import pytest

import sharray
from conftest import FRAMES, WATCHDOG, run_child, spawn_python

PRODUCE = """
import sys, time, numpy as np, sharray
p = sharray.Ring.open(sys.argv[1]).producer()
time.sleep(0.2)
for i in range(int(sys.argv[2])):
    p.send(np.full(16, i, np.uint64), timeout=60)
p.close()
print("sent")
"""

SLOW_CONSUME = """
import sys, time, sharray
c = sharray.Ring.open(sys.argv[1]).consumer()
print("attached", flush=True)
total = 0
for lease in c:
    with lease as f:
        total += int(f[0])
    time.sleep(0.002)
print("sum", total)
"""

WRITE = """
import sys, time, sharray
a = sharray.open(sys.argv[1])
time.sleep(0.2)
with a.write() as v:
    v[0] = 7
print("wrote")
"""


def threads():
    return len(os.listdir("/proc/self/task"))


async def ticker(stop, counter):
    while not stop.is_set():
        counter[0] += 1
        await asyncio.sleep(0.005)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WATCHDOG))


def test_async_for_gets_every_frame_from_another_process(tmp_path):
    ring = sharray.Ring.create(str(tmp_path / "r.npy"), (16,), np.uint64, slots=4)
    consumer = ring.consumer()
    prod = spawn_python(PRODUCE, ring.path, str(FRAMES))

    async def main():
        stop, ticks = asyncio.Event(), [0]
        t = asyncio.ensure_future(ticker(stop, ticks))
        seen = []
        async for lease in consumer:
            with lease as f:
                assert np.all(f == f[0])
                seen.append(int(f[0]))
        stop.set()
        await t
        return seen, ticks[0]

    seen, ticks = run(main())
    code, out, err = run_child(prod)
    assert code == 0, err
    assert seen == list(range(FRAMES))
    assert ticks > 5, "the event loop kept running while waiting"


def test_loan_async_waits_for_a_slow_consumer_process(tmp_path):
    ring = sharray.Ring.create(str(tmp_path / "r.npy"), (4,), np.uint64, slots=2)
    producer = ring.producer()
    cons = spawn_python(SLOW_CONSUME, ring.path)
    assert cons.stdout.readline().strip() == "attached"
    n = 100

    async def main():
        for i in range(n):
            with await producer.loan_async(timeout=60) as frame:
                frame[:] = i

    run(main())
    producer.close()
    code, out, err = run_child(cons)
    assert code == 0, err
    assert out.split() == ["sum", str(n * (n - 1) // 2)]


def test_wait_changed_async_sees_another_process_write(tmp_path):
    a = sharray.create(str(tmp_path / "a.npy"), (4,), np.uint8)
    g = a.generation
    w = spawn_python(WRITE, a.path)
    now = run(a.wait_changed_async(g, timeout=60))
    assert now > g
    with a.read() as v:
        assert v[0] == 7
    code, _, err = run_child(w)
    assert code == 0, err


def test_timeouts_raise_and_cancellation_leaves_the_frame(tmp_path):
    ring = sharray.Ring.create(str(tmp_path / "r.npy"), (4,), np.uint64, slots=2)
    consumer = ring.consumer()
    producer = ring.producer()
    a = sharray.create(str(tmp_path / "a.npy"), (4,), np.uint8)

    async def main():
        with pytest.raises(sharray.Timeout):
            await consumer.recv_async(timeout=0.05)
        with pytest.raises(TimeoutError):
            await a.wait_changed_async(a.generation, timeout=0.05)
        task = asyncio.ensure_future(consumer.recv_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        producer.send(np.arange(4, dtype=np.uint64))
        # The cancelled wait took nothing: the frame is still there.
        lease = await consumer.recv_async(timeout=5)
        with lease as f:
            assert list(f) == [0, 1, 2, 3]
        # ...and the next wait on the same consumer works.
        producer.send(np.ones(4, np.uint64))
        lease = await consumer.recv_async(timeout=5)
        lease.release()

    run(main())
    with pytest.raises(sharray.Unsupported):
        np.save(str(tmp_path / "plain.npy"), np.zeros(3))
        run(sharray.open(str(tmp_path / "plain.npy")).wait_changed_async(0))


def test_many_waiters_share_one_helper_thread(tmp_path):
    ring = sharray.Ring.create(str(tmp_path / "r.npy"), (4,), np.uint64, slots=4, broadcast=True)
    consumers = [ring.consumer() for _ in range(60)]
    producer = ring.producer()

    async def main():
        # Start the helper thread first, then count threads while 60 wait.
        await asyncio.gather(*(c.recv_async(timeout=0.01) for c in consumers[:1]), return_exceptions=True)
        before = threads()
        tasks = [asyncio.ensure_future(c.recv_async(timeout=30)) for c in consumers]
        await asyncio.sleep(0.1)
        during = threads()
        producer.send(np.full(4, 5, np.uint64))
        leases = await asyncio.gather(*tasks)
        for lease in leases:
            with lease as f:
                assert list(f) == [5, 5, 5, 5]
        return before, during

    before, during = run(main())
    assert during == before, f"{during - before} threads were added for 60 waiters"


def _forked_wait(path, since, q):
    a = sharray.open(path)
    try:
        q.put(asyncio.run(a.wait_changed_async(since, timeout=30)))
    except BaseException as e:  # report, never hang the parent
        q.put(repr(e))


def test_a_forked_child_starts_its_own_helper_thread(tmp_path):
    import multiprocessing

    a = sharray.create(str(tmp_path / "a.npy"), (4,), np.uint8)
    g = a.generation
    # Start the parent's helper thread, with a wait in progress at the fork.
    async def parent_then_fork():
        task = asyncio.ensure_future(a.wait_changed_async(g, timeout=30))
        await asyncio.sleep(0.05)
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        child = ctx.Process(target=_forked_wait, args=(a.path, g, q))
        child.start()
        await asyncio.sleep(0.2)
        with a.write() as v:
            v[0] = 1
        got = await task
        child.join(WATCHDOG)
        if child.is_alive():
            child.kill()
            pytest.fail("the forked child's async wait hung")
        return got, q.get(timeout=5), child.exitcode

    got, child_got, code = run(parent_then_fork())
    assert got == g + 1
    assert child_got == g + 1, child_got
    assert code == 0
