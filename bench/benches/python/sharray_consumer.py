#!/usr/bin/env python3
"""The "Rust producer -> Python sharray consumer" row of `cargo bench -p sharray-bench --bench compare`.

    python3 bench/benches/python/sharray_consumer.py RING_PATH FRAMES

Follows the harness contract in bench/benches/python/README.md: attach to the
existing uint64 ring as a consumer, print `ready`, receive exactly FRAMES
frames (frame `seq` holds `seq + i` in word `i`), read every word
(`view.sum()`, checked against the closed form and `view[0] == seq`), then
print `NANOS BAD` (from the first frame read to the last one) and exit 0.

For the standalone side-by-side comparison of issue 5 (Rust vs Python
consumer vs multiprocessing.Queue vs shared_memory), run
`python3 python/bench/bench_ring.py` instead.
"""

import sys
import time

import numpy as np

import sharray


def main() -> int:
    path, frames = sys.argv[1], int(sys.argv[2])
    consumer = sharray.Ring.open(path).consumer()
    print("ready", flush=True)
    bad = 0
    t0 = None
    for seq in range(frames):
        lease = consumer.recv(timeout=60.0)
        with lease as frame:
            words = frame.reshape(-1)
            n = words.size
            total = int(words.sum(dtype=np.uint64))
            if int(words[0]) != seq or total != (seq * n + n * (n - 1) // 2) % 2**64:
                bad += 1
        if t0 is None:
            t0 = time.perf_counter_ns()
    t1 = time.perf_counter_ns()
    print(f"{t1 - (t0 or t1)} {bad}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
