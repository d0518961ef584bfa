"""Open paths of the Python binding on mutated files: a corrupt file opened
from Python raises a sharray exception, never crashes the interpreter.

Valid files of each kind (array, ring, broadcast ring, queue, plain .npy) are
built with the package itself, then mutated with a fixed seed: byte flips
and extreme words in the .npy header, the control block and the kind
section, truncation, extension. Every open path runs on every mutated file in
a SUBPROCESS (so a crash shows as a signal, not a dead pytest), many inputs
per subprocess; a batch that crashed is re-run input by input to name the
culprit.

Environment: SHARRAY_PY_FUZZ sets the number of inputs (default 300),
SHARRAY_PY_FUZZ_SEED the seed (default 20261202).
"""

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import sharray

INPUTS = int(os.environ.get("SHARRAY_PY_FUZZ", "300"))
SEED = int(os.environ.get("SHARRAY_PY_FUZZ_SEED", "20261202"))
BATCH = 50
# Only stops hangs (the machine is shared); never a runtime assertion.
WATCHDOG = 300.0

# Runs in the child: every open path on every file named on the command
# line. Prints one line per finding: "BAD <file> <op> <exception>" for an
# exception that is not a SharrayError. A crash kills the child instead.
RUNNER = textwrap.dedent(
    r"""
    import os, sys
    import numpy as np
    import sharray

    T = 0.05  # every blocking call has a short timeout

    def info_ops(p, out_dir):
        sharray.info(p)

    def array_ops(p, out_dir):
        a = sharray.open(p, readonly=True)
        a.info(); a.generation; a.shape; a.dtype; a.kind
        with a.read(timeout=T) as v:
            np.asarray(v).tobytes()
        a.close()
        a = sharray.open(p)
        with a.write(timeout=T) as v:
            if v.size:
                v.reshape(-1)[:1] = v.reshape(-1)[-1:]
        try:
            a.wait_changed(a.generation, timeout=0.001)
        except sharray.SharrayError:
            pass
        a.flush()
        a.close()

    def copy_ops(p, out_dir):
        dst = os.path.join(out_dir, "export.npy")
        try:
            sharray.export_npy(p, dst)
        finally:
            if os.path.exists(dst):
                os.unlink(dst)
        dst = os.path.join(out_dir, "import.npy")
        try:
            sharray.import_npy(p, dst).close()
        finally:
            if os.path.exists(dst):
                os.unlink(dst)

    def ring_ops(p, out_dir):
        r = sharray.Ring.open(p)
        r.stats(); r.slots; r.frame_shape; r.frame_nbytes; r.broadcast
        r.reclaim()
        c = r.consumer()
        lease = c.try_recv()
        if lease is not None:
            with lease as v:
                np.asarray(v).tobytes()
        pr = r.producer()
        loan = pr.try_loan(tag=5)
        if loan is not None:
            with loan as v:
                v[...] = 0
        lease = c.try_recv()
        if lease is not None:
            lease.release()
        try:
            c.recv(timeout=T)
        except sharray.SharrayError:
            pass
        pr.close(); c.close()
        r.stats()

    def queue_ops(p, out_dir):
        q = sharray.WorkQueue.open(p)
        q.progress(); q.done; q.chunks; q.rows; q.chunk_rows
        for i in range(min(q.chunks, 64)):
            q.chunk(i); q.chunk_range(i)
        q.reap()
        w = q.join()
        cl = w.try_claim()
        if cl is not None:
            cl.index; cl.rows
            cl.complete()
        cl = w.try_claim()
        if cl is not None:
            cl.abandon()
        w.close()
        try:
            q.wait_all(timeout=T)
        except sharray.SharrayError:
            pass
        q.progress()
        sharray.WorkQueue.open(p, readonly=True).progress()

    OPS = [("info", info_ops), ("array", array_ops), ("copy", copy_ops), ("ring", ring_ops), ("queue", queue_ops)]
    # The paths each valid base must pass (by the kind in its file name).
    PASSES = {"array": "info array copy", "plain": "info array copy", "ring": "info ring",
              "bcast": "info ring", "queue": "info queue"}

    out_dir = sys.argv[1]
    strict = os.environ.get("FUZZ_STRICT") == "1"  # the valid bases: nothing may fail
    ok = refused = 0
    for p in sys.argv[2:]:
        kind = os.path.basename(p).split("_")[-1].split(".")[0]
        for name, op in OPS:
            if strict and name not in PASSES[kind].split():
                continue
            try:
                op(p, out_dir)
                ok += 1
            except sharray.SharrayError as e:
                refused += 1
                if strict:
                    print("BAD", os.path.basename(p), name, type(e).__name__, str(e)[:200], flush=True)
            except BaseException as e:  # PanicException derives from BaseException
                print("BAD", os.path.basename(p), name, type(e).__name__, str(e)[:200], flush=True)
    print("DONE", ok, refused, flush=True)
    """
)


def build_bases(d: Path) -> dict:
    """Valid files of every kind, written by the package itself."""
    bases = {}
    a = sharray.create(d / "base_array.npy", (17, 5), np.float32, fill=1.5)
    a.close()
    bases["array"] = d / "base_array.npy"
    ring = sharray.Ring.create(d / "base_ring.npy", (4,), np.uint64, slots=4)
    p = ring.producer()
    for t in range(3):
        p.send(np.arange(4, dtype=np.uint64) + t, tag=t)
    lease = ring.consumer().recv(timeout=1.0)
    lease.release()
    p.detach()  # leaves the stream open: the ring ops attach a producer
    bases["ring"] = d / "base_ring.npy"
    sharray.Ring.create(d / "base_bcast.npy", (3, 2), np.int16, slots=4, broadcast=True)
    bases["bcast"] = d / "base_bcast.npy"
    q = sharray.WorkQueue.create(d / "base_queue.npy", rows=64, chunk_rows=8, barrier=2)
    w = q.join()
    w.claim(timeout=1.0).complete()
    w.close()
    bases["queue"] = d / "base_queue.npy"
    np.save(d / "base_plain.npy", np.arange(30, dtype=np.int32).reshape(6, 5))
    bases["plain"] = d / "base_plain.npy"
    return bases


def mutate(rng: random.Random, data: bytes, info: dict) -> bytes:
    """One random mutation, aimed at a region of the file."""
    b = bytearray(data)
    n = len(b)
    start = info["data_offset"]
    end = start + info["nbytes"]
    regions = [(0, min(start, n))]  # .npy header (magic, length, dict, padding)
    if end < n:
        regions.append((end, min(end + 128, n)))  # control block header
        regions.append((min(end + 128, n), n))  # kind section (ring / queue state)
    kind = rng.choice(["flip", "flip", "word", "word", "truncate", "extend", "header_text"])
    if kind in ("flip", "word"):
        for _ in range(rng.randint(1, 6)):
            lo, hi = rng.choice(regions)
            if hi <= lo:
                continue
            if kind == "flip":
                i = rng.randrange(lo, hi)
                b[i] ^= 1 << rng.randrange(8)
            else:
                i = (rng.randrange(lo, hi) // 4) * 4
                v = rng.choice([0, 1, 2, 3, 0xFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63, 2**64 - 1, rng.getrandbits(64)])
                w = v.to_bytes(8, "little")
                b[i : i + 8] = w[: max(0, min(8, n - i))]
    elif kind == "truncate":
        cut = rng.choice([rng.randrange(0, n), start, end, max(0, n - rng.randrange(1, 4096)), n - 1])
        del b[cut:]
    elif kind == "extend":
        b += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 70000)))
    else:
        # Edit the header dict text: shape, dtype, order.
        text = bytes(b[:start])
        swaps = [
            (b"'shape': (", b"'shape': (99999999999, "),
            (b"'shape': (", b"'shape': (0, "),
            (b"'shape': (", b"'shape': (-1, "),
            (b"'descr': '", b"'descr': '|O"),
            (b"'descr': '", b"'descr': '>"),
            (b"False", b"True "),
            (b"'fortran_order'", b"'fortran_ordex'"),
            (b"}", b"{"),
        ]
        old, new = rng.choice(swaps)
        text = text.replace(old, new, 1)
        b[:start] = text[:start]
    return bytes(b)


def run_batch(out_dir: Path, files: list, runner: str, strict: bool) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", runner, str(out_dir), *map(str, files)],
        env={**os.environ, "FUZZ_STRICT": "1" if strict else "0"},
        capture_output=True,
        text=True,
        timeout=WATCHDOG,
    )


def findings(out_dir: Path, files: list, runner: str = RUNNER, strict: bool = False, seen: list = None) -> list:
    """Problems of one batch; a crashed batch is re-run input by input.
    `seen` collects (successful, refused) operation counts."""
    r = run_batch(out_dir, files, runner, strict)
    done = [l.split() for l in r.stdout.splitlines() if l.startswith("DONE")]
    if seen is not None and done and len(done[0]) == 3:
        seen.append((int(done[0][1]), int(done[0][2])))
    bad = [l for l in r.stdout.splitlines() if l.startswith("BAD")]
    if r.returncode == 0 and "DONE" in r.stdout:
        return bad
    if len(files) == 1:
        return bad + [f"CRASH {files[0].name}: exit {r.returncode}; {r.stderr[-600:]}"]
    out = []
    for f in files:
        out += findings(out_dir, [f], runner, strict)
    return out or [f"CRASH batch of {len(files)} (not reproduced one by one): exit {r.returncode}; {r.stderr[-600:]}"]


def test_mutated_files_raise_and_never_crash(tmp_path):
    base_dir = tmp_path / "bases"
    base_dir.mkdir()
    bases = build_bases(base_dir)
    infos = {k: sharray.info(p) for k, p in bases.items()}
    raw = {k: p.read_bytes() for k, p in bases.items()}
    rng = random.Random(SEED)
    fuzz_dir = tmp_path / "fuzz"
    fuzz_dir.mkdir()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    files = []
    for i in range(INPUTS):
        kind = rng.choice(sorted(bases))
        f = fuzz_dir / f"{i:05d}_{kind}.npy"
        f.write_bytes(mutate(rng, raw[kind], infos[kind]))
        os.chmod(f, 0o600)
        files.append(f)
    # The untouched bases pass every path of their kind (the fuzz starts
    # from files that work).
    problems = findings(out_dir, list(bases.values()), strict=True)
    seen = []
    for k in range(0, len(files), BATCH):
        problems += findings(out_dir, files[k : k + BATCH], seen=seen)
    ok, refused = sum(s[0] for s in seen), sum(s[1] for s in seen)
    print(f"fuzz: {INPUTS} inputs, {ok} operations succeeded, {refused} refused with a SharrayError")
    assert not problems, "\n".join(problems[:40])
    # Both outcomes happen: the mutations are neither all harmless nor all fatal.
    assert ok > 0 and refused > 0


def test_a_crashing_input_is_named(tmp_path):
    """The harness itself: an input that kills the runner with a signal is
    found by re-running its batch one by one, and named."""
    runner = textwrap.dedent(
        """
        import os, signal, sys
        for p in sys.argv[2:]:
            if p.endswith("boom.npy"):
                os.kill(os.getpid(), signal.SIGSEGV)
        print("DONE", flush=True)
        """
    )
    files = [tmp_path / f"{n}.npy" for n in ("a", "b", "boom", "c")]
    problems = findings(tmp_path, files, runner)
    assert len(problems) == 1 and problems[0].startswith("CRASH boom.npy: exit -11"), problems
    assert findings(tmp_path, files[:2], runner) == []
