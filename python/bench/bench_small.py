"""Per-frame cost of Python rings at every frame size (issue 13 part 1):
sharray with the Python consumer and producer against the hand-written
`multiprocessing.shared_memory` ring with two semaphores, and against the
Rust consumer, all in one run. Prints numbers and ratios; asserts nothing.

    python3 python/bench/bench_small.py                     # 64 B .. 8 MiB, 1 s per case, 3 rounds
    python3 python/bench/bench_small.py --sizes 64,65536 --seconds 2 --rounds 5
    python3 python/bench/bench_small.py --cases "python -> python (temp),shm ring" --no-fixed

Cases per frame size (producer pinned to CPU 0, consumer to CPU 1; every
consumer reads every byte and checks a sum, see bench_ring.py):

- rust -> rust:              the Rust consumer baseline
- rust -> python:            sharray consumer, default view policy ("auto":
                             small frames are copied, windows kept when the
                             view does not escape)
- rust -> python (always):   the same with set_view_policy("always"): every
                             view a revocable window, revoked at release
                             (the behaviour before this change: the "old"
                             column, measured in the same run)
- python -> rust:            sharray producer (loan filled with numpy), Rust consumer
- python -> rust (always):   the same, old policy in the producer
- python -> python:          both sides Python, default policy
- python -> python (always): both sides Python, old policy
- python -> rust (temp):     the producer fills `loan.view` as a temporary
                             (`np.add(..., out=loan.view)`; `loan.commit()`):
                             nothing keeps the view, so its window is kept
                             for the next loan, never revoked, never copied
- python -> python (temp):   that producer, the default Python consumer
- python -> rust (copy):     the producer fills one reused array and calls
                             send(arr) (no view), Rust consumer
- python -> python (copy):   both sides Python, no views: the producer
                             fills one reused array and calls send(arr), the
                             consumer calls recv_into(out) on one reused array
- rust -> python (copy):     Rust producer, the recv_into consumer
- shm ring:                  hand-written multiprocessing.shared_memory ring

Medians over rounds; the ratios are medians of per-round ratios (this VM
is shared and noisy: compare within a round). A last table gives the fixed
cost of one loan + lease (+ views) and one read guard in one process, per
policy and size, which is where the crossover for copying comes from.
"""

import argparse
import functools
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ring as br  # noqa: E402

import sharray  # noqa: E402

SIZES = [64, 4096, 65536, 1 << 20, 8 << 20]


def label(size):
    if size >= 1 << 20:
        return f"{size >> 20} MiB"
    if size >= 1024:
        return f"{size >> 10} KiB"
    return f"{size} B"


def with_policy(policy, fn, *args):
    old = sharray.set_view_policy(policy)
    try:
        return fn(*args)
    finally:
        sharray.set_view_policy(*old)


def _producer(policy, path, seconds, ready):
    sharray.set_view_policy(policy)
    br._py_producer(path, seconds, ready)


def _temp_step(producer, base, buf, n):
    """The loan's view as a temporary (`out=loan.view`, nothing keeps it):
    its window is kept for the next loan, not revoked."""
    loan = producer.loan(tag=n)
    np.add(base, np.uint64(n), out=loan.view)
    loan.commit()


def _send_step(producer, base, buf, n):
    """No view: fill one reused array, copy it in with send()."""
    np.add(base, np.uint64(n), out=buf)
    producer.send(buf, tag=n)


_producer_temp = functools.partial(br._py_producer, step=_temp_step)
_producer_send = functools.partial(br._py_producer, step=_send_step)


def consume_into(consumer, words, size):
    """Like bench_ring.consume_python, with recv_into into one reused array."""
    out = np.empty(words, dtype=np.uint64)
    n = bad = 0
    t0 = None
    while True:
        try:
            _, tag, _ = consumer.recv_into(out)
        except sharray.Disconnected:
            break
        if t0 is None:
            t0 = time.perf_counter()
        if int(out.sum()) != br.expected_sum(tag, words):
            bad += 1
        n += 1
    return br.result(n, bad, size, time.perf_counter() - t0 if t0 else 0.0)


def case_python_python(policy, size, seconds, slots, producer=None, consume=None):
    """Python producer process (`producer(path, seconds, ready)`, default a
    loan per frame under `policy`), Python consumer here (`consume`, default
    bench_ring.consume_python under `policy`)."""
    producer = producer or functools.partial(_producer, policy)
    consume = consume or functools.partial(with_policy, policy, br.consume_python)
    words = size // 8
    path = br.shm_path()
    try:
        ring = sharray.Ring.create(path, (words,), np.uint64, slots=slots)
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        with ring.consumer() as consumer:
            p = ctx.Process(target=producer, args=(path, seconds, ready))
            p.start()
            br.pin(1)
            ready.set()
            try:
                r = consume(consumer, words, size)
            finally:
                br.unpin()
            p.join(60)
        return r
    finally:
        os.unlink(path)


def case_python_rust(policy, size, seconds, slots, producer=None):
    producer = producer or functools.partial(_producer, policy)
    path = br.shm_path()
    try:
        sharray.Ring.create(path, (size // 8,), np.uint64, slots=slots)
        cons = subprocess.Popen(
            [str(br.ring_peer()), "consume", path], stdout=subprocess.PIPE, text=True, preexec_fn=lambda: br.pin(1)
        )
        assert cons.stdout.readline().strip() == "ready"
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        p = ctx.Process(target=producer, args=(path, seconds, ready))
        p.start()
        ready.set()
        p.join(seconds + 60)
        r = json.loads(cons.stdout.readline())
        cons.wait(timeout=60)
        return br.result(r["frames"], r["bad"], size, r["seconds"])
    finally:
        os.unlink(path)


def cases():
    return {
        "rust -> rust": br.case_rust_rust,
        "rust -> python": lambda *a: with_policy("auto", br.case_rust_python, *a),
        "rust -> python (always)": lambda *a: with_policy("always", br.case_rust_python, *a),
        "python -> rust": lambda *a: case_python_rust("auto", *a),
        "python -> rust (always)": lambda *a: case_python_rust("always", *a),
        "python -> python": lambda *a: case_python_python("auto", *a),
        "python -> python (always)": lambda *a: case_python_python("always", *a),
        "python -> rust (temp)": lambda *a: case_python_rust("auto", *a, producer=_producer_temp),
        "python -> rust (copy)": lambda *a: case_python_rust("auto", *a, producer=_producer_send),
        "python -> python (temp)": lambda *a: case_python_python("auto", *a, producer=_producer_temp),
        "python -> python (copy)": lambda *a: case_python_python(
            "auto", *a, producer=_producer_send, consume=consume_into
        ),
        "rust -> python (copy)": lambda *a: br.case_rust_python(*a, consume=consume_into),
        "shm ring": br.case_shared_memory,
    }


def fixed_costs(size, reps=3000):
    """Microseconds per loan+commit+recv+release with both views taken and
    summed, and per read guard with its view summed, in one process."""
    path = br.shm_path()
    out = {}
    try:
        ring = sharray.Ring.create(path, (size // 8,), np.uint64, slots=4)
        a = sharray.create(path + ".a", (size // 8,), np.uint64)
        prod, cons = ring.producer(), ring.consumer()

        def frame():
            with prod.loan() as f:
                f[0] = 1
            with cons.recv() as v:
                v.sum()

        def guard():
            with a.read() as v:
                v.sum()

        def best(fn):
            b = 1e9
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(reps):
                    fn()
                b = min(b, (time.perf_counter() - t) / reps * 1e6)
            return b

        for pol in ("always", "auto"):
            old = sharray.set_view_policy(pol)
            try:
                out[pol] = (best(frame), best(guard))
            finally:
                sharray.set_view_policy(*old)
        prod.close()
        cons.close()
        return out
    finally:
        os.unlink(path)
        os.unlink(path + ".a")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="frame bytes, comma-separated (multiples of 8)")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per case and round (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, interleaved (default 3)")
    ap.add_argument("--slots", type=int, default=4, help="ring slots (default 4)")
    ap.add_argument("--cases", default="", help="only these cases (comma-separated names; default all)")
    ap.add_argument("--no-fixed", action="store_true", help="skip the last table (fixed cost in one process)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    chosen = {c.strip() for c in a.cases.split(",") if c.strip()}
    unknown = chosen - set(cases())
    if unknown:
        ap.error(f"unknown case(s) {sorted(unknown)}; choose from {list(cases())}")
    br.ring_peer()
    print(
        f"{a.slots} slots, {a.seconds:g} s per case, {a.rounds} rounds, copy_below "
        f"{sharray.set_view_policy()[1]} B (numpy {np.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    names = [n for n in cases() if not chosen or n in chosen]
    runs = {(n, s): [] for n in names for s in sizes}
    for rnd in range(a.rounds):
        for size in sizes:
            for name in names:
                fn = cases()[name]
                r = fn(size, a.seconds, a.slots)
                runs[(name, size)].append(r)
                print(
                    f"  round {rnd + 1} {label(size):>7} {name:26} {r['gb_per_s']:8.3f} GB/s "
                    f"{r['frames_per_s']:10.0f} frames/s bad={r['bad']}",
                    flush=True,
                )

    def med(name, size):
        return statistics.median(r["gb_per_s"] for r in runs[(name, size)])

    def paired(x, y, size):
        return statistics.median(
            rx["frames_per_s"] / max(ry["frames_per_s"], 1e-9) for rx, ry in zip(runs[(x, size)], runs[(y, size)])
        )

    print()
    print("GB/s (medians)".ljust(28) + "".join(f"{label(s):>10}" for s in sizes))
    for name in names:
        print(name.ljust(28) + "".join(f"{med(name, s):10.3f}" for s in sizes))
    print()
    print("ratios (median of per-round ratios)".ljust(40) + "".join(f"{label(s):>10}" for s in sizes))
    for x, y in [
        ("python -> python (temp)", "shm ring"),
        ("python -> rust (temp)", "shm ring"),
        ("python -> rust (copy)", "shm ring"),
        ("rust -> python", "shm ring"),
        ("rust -> python (always)", "shm ring"),
        ("python -> python", "shm ring"),
        ("python -> python (always)", "shm ring"),
        ("python -> python (copy)", "shm ring"),
        ("rust -> python (copy)", "shm ring"),
        ("python -> python (copy)", "python -> python"),
        ("rust -> python", "rust -> rust"),
        ("python -> rust", "rust -> rust"),
        ("python -> rust (temp)", "rust -> rust"),
        ("rust -> python", "rust -> python (always)"),
    ]:
        if (x, sizes[0]) not in runs or (y, sizes[0]) not in runs:
            continue
        print(f"{x} / {y}".ljust(40) + "".join(f"{paired(x, y, s):9.2f}x" for s in sizes))
    if a.no_fixed:
        return
    print()
    print("fixed cost in one process, us (loan+lease with views | read guard with view)")
    print("size".ljust(10) + f"{'always':>22}{'auto':>22}")
    for size in sorted(set(sizes) | {16384, 131072, 262144}):
        c = fixed_costs(size)
        print(
            label(size).ljust(10)
            + f"{c['always'][0]:11.1f} |{c['always'][1]:8.1f}"
            + f"{c['auto'][0]:13.1f} |{c['auto'][1]:8.1f}"
        )


if __name__ == "__main__":
    main()
