"""asyncio forms of sharray's waits.

``await consumer.recv_async()``, ``await producer.loan_async()``,
``await array.wait_changed_async(since)`` and ``async for lease in consumer``
never block the event loop and use no thread per waiter: one helper thread
per process (in the native module) waits on every registered futex word at
once with ``futex_waitv`` and makes a per-wait eventfd readable, which the
loop watches with ``add_reader``. Each attempt takes the ring lock briefly
(microseconds), as the ``try_*`` methods do. Cancelling the task (or a
timeout from ``asyncio.wait_for``) unregisters the wait.
"""

import asyncio
import time

from ._errors import Disconnected

__all__ = ["recv_async", "loan_async", "wait_changed_async", "next_lease"]


async def _wait(waiter, attempt, timeout):
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else time.monotonic() + timeout
    fd = waiter.fileno()
    try:
        while True:
            waiter.prepare()
            got = attempt()
            if got is not None:
                return got
            left = None if deadline is None else deadline - time.monotonic()
            if not waiter.park(left):  # raises sharray.Timeout when left <= 0
                continue
            if waiter.fired():
                continue
            ready = loop.create_future()
            loop.add_reader(fd, _set_done, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
    finally:
        waiter.close()


def _set_done(fut):
    if not fut.done():
        fut.set_result(None)


async def recv_async(consumer, timeout=None):
    """Await the next frame of ``consumer`` (see ``Consumer.recv``)."""
    return await _wait(consumer._waiter(), consumer.try_recv, timeout)


async def loan_async(producer, timeout=None, tag=0, valid_len=None):
    """Await a free slot of ``producer`` (see ``Producer.loan``)."""
    return await _wait(
        producer._waiter(),
        lambda: producer.try_loan(tag=tag, valid_len=valid_len),
        timeout,
    )


async def wait_changed_async(array, since, timeout=None):
    """Await a generation of ``array`` other than ``since`` and return it."""

    def attempt():
        g = array.generation
        return g if g != since else None

    return await _wait(array._waiter(), attempt, timeout)


async def next_lease(consumer):
    """One step of ``async for lease in consumer``."""
    try:
        lease = await recv_async(consumer)
    except Disconnected:
        raise StopAsyncIteration from None
    consumer._set_current(lease)
    return lease
