#!/usr/bin/env bash
# Run every test of sharray, Rust and Python, on a fresh machine.
# Installs what the tests need (numpy, pytest, maturin) from the registries.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing Python test dependencies (numpy, pytest, maturin)"
python3 -m pip install --quiet --disable-pip-version-check numpy pytest maturin

echo "== Rust: unit, integration and doc tests (real child processes)"
cargo test --all-targets
cargo test --doc
