"""Shared fixtures for the sharray Python suite.

Child processes are real (subprocess running `python3 -c ...` or the Rust
examples `lock_counter`, `ring_peer`, `worker_pool`), each under a watchdog: `run_child` kills a child that
outlives its limit and fails the test. No test asserts a maximum runtime.

Environment:
- SHARRAY_PY_STORM: rounds per process in the cross-process locking tests
  (default 200; raise it for a soak run).
- SHARRAY_PY_FRAMES: frames per cross-process ring test (default 200).
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STORM = int(os.environ.get("SHARRAY_PY_STORM", "200"))
FRAMES = int(os.environ.get("SHARRAY_PY_FRAMES", "200"))
# Generous: the machine is shared with other builds; this only stops hangs.
WATCHDOG = 120.0


def cargo_artifact(kind: str, name: str) -> Path:
    """Path of a cargo-built binary (debug profile), building it if needed."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / ("examples" if kind == "example" else "") / name
    if not path.exists():
        flag = "--example" if kind == "example" else "--bin"
        subprocess.run(["cargo", "build", "--quiet", flag, name], cwd=REPO, check=True, timeout=1800)
    return path


@pytest.fixture(scope="session")
def lock_counter() -> Path:
    return cargo_artifact("example", "lock_counter")


@pytest.fixture(scope="session")
def ring_peer() -> Path:
    """examples/ring_peer.rs: a Rust producer/consumer of uint64 frames."""
    return cargo_artifact("example", "ring_peer")


@pytest.fixture(scope="session")
def worker_pool() -> Path:
    """examples/worker_pool.rs: its `--worker QUEUE IN OUT` role is a Rust worker."""
    return cargo_artifact("example", "worker_pool")


@pytest.fixture(scope="session")
def cli() -> Path:
    return cargo_artifact("bin", "sharray")


@pytest.fixture
def shm_name():
    """A unique name in /dev/shm, removed afterwards."""
    name = f"sharray-pytest-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


def spawn_python(code: str, *args: str, **kw) -> subprocess.Popen:
    """Start `python3 -c code args...` with pipes for stdout/stderr."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def run_child(proc: subprocess.Popen, limit: float = WATCHDOG):
    """Wait for a child under a watchdog; returns (returncode, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"child {proc.args!r} hung for more than {limit} s; killed by the watchdog\n{out}\n{err}")
    return proc.returncode, out, err


@pytest.fixture
def windows():
    """Small views map the file too (no private copies) during the test: for
    tests of revocable windows with small arrays and frames."""
    import sharray

    old = sharray.set_view_policy("auto", copy_below=0)
    try:
        yield
    finally:
        sharray.set_view_policy(*old)
