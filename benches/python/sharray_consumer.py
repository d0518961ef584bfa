#!/usr/bin/env python3
"""Rust producer -> Python (sharray) consumer, for the cross-tool benchmark
harness: prints ONE JSON line and exits 0 (1 if a frame failed its check).

    python3 benches/python/sharray_consumer.py --size 8388608 --seconds 3 [--slots 4]

A uint64 ring of `--slots` frames of `--size` bytes is created in /dev/shm;
`examples/ring_peer produce` (built in release mode if missing) writes every
word of every frame for `--seconds`, pinned to CPU 0; this process, pinned to
CPU 1, receives every frame with `sharray.Ring` and sums all of its words
(`view.sum()`, checked against the closed form). Output keys: frames, bad,
frames_per_s, gb_per_s, faults_per_frame, size, slots, tool, producer,
consumer. Needs the `sharray` Python package installed (./scripts/test.sh
or python/README.md) and numpy.

The code lives in python/bench/bench_ring.py (`harness_main`), which also
runs the side-by-side comparison with a Rust consumer, multiprocessing.Queue
and a multiprocessing.shared_memory ring.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python" / "bench"))

from bench_ring import harness_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(harness_main())
