#!/usr/bin/env bash
# Run every test of sharray, Rust and Python, on a fresh machine.
#
# Needs: a Rust toolchain (cargo, rustfmt, clippy), python3 >= 3.8 with the
# venv module and pip, a C and C++ compiler (cc, c++; the C ABI's tests build
# C programs, under AddressSanitizer when the compiler has it, else valgrind
# if installed) and make, and network access to crates.io and PyPI. numpy,
# pytest and maturin are installed into a virtual environment of this
# script's own, `.venv` in the repository (created if missing), never into
# the system Python; `rm -rf .venv` starts it afresh.
#
# Environment knobs (all optional):
#   SHARRAY_SOAK_ROUNDS / SHARRAY_SOAK_PROCS  bigger multi-process soak (tests/processes.rs)
#   SHARRAY_SKIP_PYTHON=1                     skip the numpy interop tests
#   SHARRAY_STORM_ITERS, SHARRAY_SOAK_FRAMES   bigger ring SIGKILL storms / soaks
#   SHARRAY_PY_STORM                          lock rounds per process in the Python suite
#   SHARRAY_STORM_KILLS, SHARRAY_CRASH_N       the cross-kind storm, ring crash points per N
#   SHARRAY_ATOMIC_BYTES / SHARRAY_ATOMIC_KILLS atomic-creation kills (size, count)
#   SHARRAY_PY_FUZZ                           mutated files in the Python open-path fuzz
#   SHARRAY_GROW_ROUNDS                       rounds of killed appenders (tests/growable.rs)
#   SHARRAY_C_CHECKER=valgrind|plain           run the C ABI's test programs under valgrind, or
#                                             without a checker, instead of AddressSanitizer
# Lints run first (fast failure); pytest runs last.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="$PWD/.venv"
echo "== Python test dependencies (numpy, pytest, maturin, dask, distributed) in $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    # Some distributions ship python3 without ensurepip (Debian: python3-venv);
    # then make the venv without pip and let the system pip install pip into it.
    python3 -m venv "$VENV" || { rm -rf "$VENV"; python3 -m venv --without-pip "$VENV"; }
fi
if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    python3 -m pip --python "$VENV/bin/python" install --quiet --disable-pip-version-check pip
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy pytest maturin
# sharray.dask's tests (python/tests/test_dask.py) run a LocalCluster.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "dask[array]" distributed
# From here on `python3` is the venv's: the Rust tests that run
# `python3 -c 'import numpy'` and the pytest suite find what was installed.
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"

echo "== C toolchain for the C ABI's tests (cc, c++, make, pkg-config)"
missing=""
for tool in cc c++ make pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "installing build-essential pkg-config (missing:$missing)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config >/dev/null
    else
        echo "missing:$missing; install a C/C++ compiler, make and pkg-config (Debian: apt-get install build-essential pkg-config)" >&2
        exit 1
    fi
fi

echo "== lint: rustfmt and clippy"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== fuzz targets compile (running them needs nightly: cargo +nightly fuzz run <target>)"
(cd fuzz && cargo check --quiet)

echo "== the library crate packages and builds on its own (cargo package)"
cargo package -p sharray --allow-dirty --quiet

echo "== Rust: unit, integration and doc tests (real child processes)"
cargo test --workspace --all-targets
cargo test --doc

echo "== Python: build the extension (maturin), install it into the venv, run pytest"
rm -f target/wheels/sharray-*.whl
(cd python && "$VENV/bin/maturin" build --release --quiet -o ../target/wheels)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps target/wheels/sharray-*.whl
echo "== the wheel installs and imports in a fresh venv, with no Rust toolchain on PATH"
FRESH="$(mktemp -d)"
trap 'rm -rf "$FRESH"' EXIT
python3 -m venv "$FRESH/venv" || { rm -rf "$FRESH/venv"; python3 -m venv --without-pip "$FRESH/venv"; }
if ! "$FRESH/venv/bin/python" -m pip --version >/dev/null 2>&1; then
    python3 -m pip --python "$FRESH/venv/bin/python" install --quiet --disable-pip-version-check pip
fi
PATH="$FRESH/venv/bin:/usr/bin:/bin" "$FRESH/venv/bin/python" -m pip install --quiet \
    --disable-pip-version-check numpy target/wheels/sharray-*.whl
(cd "$FRESH" && PATH="$FRESH/venv/bin:/usr/bin:/bin" "$FRESH/venv/bin/python" -c '
import numpy as np, sharray
a = sharray.create("fresh.npy", (3, 4), "float32", fill=1.5)
assert float(np.load("fresh.npy", mmap_mode="r").sum()) == 18.0
print("fresh venv: sharray", sharray.__name__, "imports and works")
')
# The suite runs the Rust peer examples and the `sharray` binary (of the
# sharray-cli crate, still target/debug/sharray); build them first, with the
# workspace's features so nothing is rebuilt.
cargo build --quiet --workspace --example lock_counter --example ring_peer --example worker_pool --bin sharray
# The C examples (python/tests/test_c_peer.py runs them next to Python), as
# the README builds them: against the release library.
cargo build --quiet --release -p sharray-ffi
make -s -C examples/c LIBDIR="${CARGO_TARGET_DIR:-$PWD/target}/release"
# Exit code 5 ("no tests collected") must fail CI too, and it does: any
# non-zero status stops this script.
"$VENV/bin/python" -m pytest -q python/tests
