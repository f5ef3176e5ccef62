#!/usr/bin/env bash
# Builds everything and runs DDL's main job on a bundled example: the calc
# fixture app, linked against libcalc v1 (old), mirrored into libcalc v2
# (new), which has deliberate differences. `ddl demo` (src/demo.rs) builds
# the fixtures, checks the app's output is byte-identical with and without
# DDL, and prints the report's table, its mismatch groups and one record.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh --build
cargo build --release
exec "${CARGO_TARGET_DIR:-target}/release/ddl" demo --source "$PWD" "$@"
