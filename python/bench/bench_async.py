"""Wake-up latency of ``await consumer.recv_async()`` (asyncio, eventfd fed
by sharray's helper thread) against the blocking ``consumer.recv()``, side
by side: a producer process commits a small frame every ``--interval-us``
(default 1000, so every receive parks); latency is commit -> receive, from
the frame's CLOCK_MONOTONIC timestamp.

    python3 python/bench/bench_async.py [--frames 2000] [--interval-us 1000]
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time

import numpy as np

import sharray

PRODUCE = """
import sys, time, sharray
p = sharray.Ring.open(sys.argv[1]).producer()
time.sleep(0.3)
gap = int(sys.argv[3]) / 1e6
for _ in range(int(sys.argv[2])):
    time.sleep(gap)
    p.loan().commit()
p.close()
"""


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def run(path, frames, interval, use_async):
    ring = sharray.Ring.open(path)
    consumer = ring.consumer()
    child = subprocess.Popen([sys.executable, "-c", PRODUCE, path, str(frames), str(interval)])
    lat = []
    if use_async:

        async def main():
            async for lease in consumer:
                lat.append(now_ns() - lease.timestamp_ns)

        asyncio.run(main())
    else:
        for lease in consumer:
            lat.append(now_ns() - lease.timestamp_ns)
    assert child.wait(timeout=300) == 0
    consumer.close()
    ring.producer(reopen=True).detach()
    return np.percentile(np.array(lat) / 1000.0, [50, 90, 99])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--interval-us", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/lat.npy"
        sharray.Ring.create(path, (8,), np.uint64, slots=8)
        blocking = run(path, a.frames, a.interval_us, False)
        asynchronous = run(path, a.frames, a.interval_us, True)
    print(f"commit -> receive latency, us ({a.frames} frames, one every {a.interval_us} us, producer in another process)")
    print(f"{'':<30}{'p50':>9}{'p90':>9}{'p99':>9}")
    for name, v in (("blocking recv()", blocking), ("await recv_async()", asynchronous), ("added by asyncio", asynchronous - blocking)):
        print(f"{name:<30}{v[0]:>9.1f}{v[1]:>9.1f}{v[2]:>9.1f}")


if __name__ == "__main__":
    main()
