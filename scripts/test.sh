#!/usr/bin/env bash
# Runs every test of DDL from a clean checkout: installs missing Debian
# packages (as root), builds libddl.so and the fixtures, then runs the unit
# tests and the end-to-end tests (fixture apps under LD_PRELOAD).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
cargo build --release --workspace
# The benchmarks compile too (they are run by scripts/bench.sh, not here).
cargo bench --no-run --workspace
# The end-to-end tests preload target/release/libddl.so built just above.
cargo test --release --workspace
