"""C peers (examples/c, linked against libsharray) next to Python.

- A C producer (`ring_producer`) feeding a Python consumer.
- C (`array_demo turns`) and Python taking turns on one array under the
  write guards.

The C programs are built by `cargo build --release -p sharray-ffi && make -C
examples/c` (scripts/test.sh does it before pytest); without them these
tests are skipped with the reason printed. Every child runs under the
watchdog of conftest.run_child.
"""

import json
import subprocess
import threading

import numpy as np
import pytest

import sharray
from conftest import FRAMES, REPO, WATCHDOG, run_child

C_DIR = REPO / "examples" / "c"
WORDS = 8192  # 64 KiB frames


def c_program(name):
    path = C_DIR / name
    if not path.exists():
        reason = f"{path} is not built: run `cargo build --release -p sharray-ffi && make -C examples/c`"
        print(reason)
        pytest.skip(reason)
    return path


def test_c_producer_python_consumer(tmp_path):
    producer_exe = c_program("ring_producer")
    ring = sharray.Ring.create(str(tmp_path / "ring.npy"), (WORDS,), np.uint64, slots=4)
    consumer = ring.consumer()
    prod = subprocess.Popen(
        [str(producer_exe), ring.path, str(FRAMES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(WATCHDOG, prod.kill)  # ends the loop below
    watchdog.start()
    seen = []
    try:
        for lease in consumer:  # ends when the C producer closes the stream
            with lease as frame:
                assert frame.shape == (WORDS,) and frame.dtype == np.uint64
                assert np.array_equal(frame, np.arange(WORDS, dtype=np.uint64) + np.uint64(lease.tag))
            seen.append((lease.seq, lease.tag, lease.valid_len))
    finally:
        watchdog.cancel()
    code, out, err = run_child(prod)
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["role"], report["frames"], report["bytes"]) == ("produce", FRAMES, FRAMES * WORDS * 8)
    assert seen == [(n, n, WORDS * 8) for n in range(FRAMES)]
    st = ring.stats()
    assert st["closed"] and st["committed"] == st["received"] == FRAMES and st["slots_free"] == 4


def test_c_and_python_take_turns_on_one_array(tmp_path):
    demo = c_program("array_demo")
    rounds = 100
    a = sharray.create(str(tmp_path / "turns.npy"), (1024,), np.int64)
    c_side = subprocess.Popen(
        [str(demo), "turns", a.path, str(rounds), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Python takes the odd turns; C the even ones. Each side checks the
    # whole array is consistent whenever it holds the guard.
    mine = 0
    try:
        while mine < rounds:
            with a.write(timeout=WATCHDOG) as v:
                seen = a.generation  # stable under the guard
                assert (v == v[0]).all(), "torn array"
                if v[0] % 2 == 1:
                    v[:] = v[0] + 1
                    mine += 1
                    continue
            try:
                # Releasing a write guard bumps it once: wait for the C side.
                a.wait_changed(seen + 1, timeout=0.2)
            except sharray.Timeout:
                pass
            assert c_side.poll() in (None, 0), c_side.stderr.read()
    finally:
        code, out, err = run_child(c_side)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["turns"] == rounds
    with a.read() as v:
        assert (v == 2 * rounds).all()
