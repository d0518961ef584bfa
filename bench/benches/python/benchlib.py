"""Shared pieces of the Python baselines of `cargo bench -p sharray-bench --bench compare`.

Payload discipline (the same as the Rust cases): the producer writes every
byte of every frame, the consumer reads every byte and checks a checksum.
numpy frames of uint64: the producer fills a frame with its sequence number
(`frame.fill(seq)`, one write pass); the consumer checks `frame[0] == seq`
and `frame.sum() == seq * n` (one read pass; a frame mixing two sequence
numbers fails).

A script gets a plan (JSON) from the harness and prints one JSON line per
measurement:

    {"metric": "throughput", "size": B, "slots": K, "frames": N, "gbps": [run, ...]}
    {"metric": "latency", "size": B, "min": ns, "p50": ns, "p99": ns, "n": samples}

Throughput: the consumer times frames 2..=N (clock starts once the first
frame has been read). Latency: ping-pong / 2, each side writing and reading
the whole frame.
"""

import argparse
import json
import os
import time

import numpy as np

STOP = 2**64 - 1
MASK = 2**64 - 1


def parse_plan():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--plan", required=True, help="JSON plan from the harness")
    return json.loads(ap.parse_args().plan)


def pin(cpu):
    """Run on `cpu` only, when the machine has it."""
    try:
        if cpu < os.cpu_count():
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def fill(frame, seq):
    frame.fill(seq)


def check(frame):
    """Sequence number of a received frame, and whether every word agrees."""
    seq = int(frame[0])
    return seq, int(frame.sum(dtype=np.uint64)) == (seq * frame.size) & MASK


def percentile(sorted_v, p):
    """Nearest rank, as the Rust harness computes it."""
    if not sorted_v:
        return 0
    return sorted_v[int(round((len(sorted_v) - 1) * p / 100.0))]


def latency_line(size, samples):
    v = sorted(samples)
    return {
        "metric": "latency",
        "size": size,
        "min": percentile(v, 0),
        "p50": percentile(v, 50),
        "p99": percentile(v, 99),
        "n": len(v),
    }


def ping_pong(send, recv, warmup, samples, time_cap):
    """Parent side of a ping-pong: one-way samples in ns; stops after
    `time_cap` seconds once it has 20 samples."""
    out = []
    until = time.monotonic() + time_cap
    for i in range(warmup + samples):
        if time.monotonic() > until and len(out) >= 20:
            break
        t0 = time.perf_counter_ns()
        send(i)
        seq, ok = recv()
        rt = time.perf_counter_ns() - t0
        if not ok or seq != i:
            raise SystemExit(f"bad echo: got {seq}, want {i}")
        if i >= warmup:
            out.append(rt // 2)
    send(STOP)
    return out


def echo(send, recv):
    """Child side of a ping-pong: answer every frame until the stop frame."""
    while True:
        seq, ok = recv()
        if not ok:
            raise SystemExit("bad frame in the echo child")
        if seq == STOP:
            return
        send(seq)


def sink(recv, n):
    """Consumer side of a throughput run: (nanoseconds for frames 2..=n, bad)."""
    t0 = None
    bad = 0
    for seq in range(n):
        got, ok = recv()
        if not ok or got != seq:
            bad += 1
        if t0 is None:
            t0 = time.perf_counter_ns()
    return time.perf_counter_ns() - t0, bad


def gbps(nanos, n, size):
    return (n - 1) * size / max(nanos, 1)


def emit(obj):
    print(json.dumps(obj), flush=True)


def main(throughput_run, latency_run):
    """Run a plan: every throughput case `runs` times, then every latency
    case once. `throughput_run(ctx, case, cpu)` returns GB/s of one run with
    the consumer on `cpu`; `latency_run(ctx, case, cpu, time_cap)` returns
    one-way samples (ns) with the echoing child on `cpu`."""
    import multiprocessing as mp

    plan = parse_plan()
    ctx = mp.get_context("fork")
    cpu0, cpu1 = plan["cpus"]
    pin(cpu0)
    for case in plan["cases"]:
        runs = [throughput_run(ctx, case, cpu1) for _ in range(plan["runs"])]
        emit(
            {
                "metric": "throughput",
                "size": case["size"],
                "slots": case["slots"],
                "frames": case["frames"],
                "gbps": runs,
            }
        )
    for case in plan["cases"]:
        emit(latency_line(case["size"], latency_run(ctx, case, cpu1, plan["lat_time"])))
