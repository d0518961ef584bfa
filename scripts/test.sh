#!/usr/bin/env bash
# Run every test of sharray, Rust and Python, on a fresh machine.
# Installs what the tests need (numpy, pytest, maturin) from the registries.
#
# Environment knobs (all optional):
#   SHARRAY_SOAK_ROUNDS / SHARRAY_SOAK_PROCS  bigger multi-process soak (tests/processes.rs)
#   SHARRAY_SKIP_PYTHON=1                     skip the numpy interop tests
#   SHARRAY_STORM_ITERS, SHARRAY_SOAK_FRAMES   bigger ring SIGKILL storms / soaks
#   SHARRAY_PY_STORM                          lock rounds per process in the Python suite
# Lints run first (fast failure); pytest runs last.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing Python test dependencies (numpy, pytest, maturin)"
python3 -m pip install --quiet --disable-pip-version-check numpy pytest maturin

echo "== lint: rustfmt and clippy"
cargo fmt --check
cargo clippy --all-targets -- -D warnings

echo "== fuzz targets compile (running them needs nightly: cargo +nightly fuzz run <target>)"
(cd fuzz && cargo check --quiet)

echo "== Rust: unit, integration and doc tests (real child processes)"
cargo test --all-targets
cargo test --doc

echo "== Python: build the extension (maturin), install it, run pytest"
# `maturin build` + pip install works without a virtualenv (maturin develop
# needs one). pip's "running as root" warning is harmless here.
rm -f target/wheels/sharray-*.whl
(cd python && python3 -m maturin build --release --quiet -o ../target/wheels)
python3 -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps target/wheels/sharray-*.whl
# The suite runs the Rust peer examples and the CLI; build them first.
cargo build --quiet --example lock_counter --example ring_peer --example worker_pool --bin sharray
# Exit code 5 ("no tests collected") must fail CI too, and it does: any
# non-zero status stops this script.
python3 -m pytest -q python/tests
