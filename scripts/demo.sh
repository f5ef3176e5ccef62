#!/usr/bin/env bash
# Builds everything and runs DDL's main job on a bundled example: the calc
# fixture app, linked against libcalc v1 (old), mirrored into libcalc v2
# (new), which has deliberate differences. Prints the app's output check,
# the report's summary and one mismatch record.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/ensure-deps.sh --build
cargo build --release
make -s -C cxx-fixtures OUT="$root/target/fixtures" -j2

demo="$root/target/demo"
rm -rf "$demo" && mkdir -p "$demo"
cd "$demo"
app="$root/target/fixtures/calc/apps/calc-app-pie-now"

echo "== the application, as it runs without DDL"
"$app" > plain.out
head -5 plain.out; echo "   ... ($(wc -l < plain.out) lines)"

echo
echo "== the same run under libddl.so (config: cxx-fixtures/calc.ddl.json)"
echo "   LD_PRELOAD=target/release/libddl.so DDL_CONFIG=cxx-fixtures/calc.ddl.json $app"
LD_PRELOAD="$root/target/release/libddl.so" DDL_CONFIG="$root/cxx-fixtures/calc.ddl.json" "$app" > ddl.out
if cmp -s plain.out ddl.out; then
  echo "   application output: byte-identical to the run without DDL"
else
  echo "   application output DIFFERS (this is a bug in DDL)"; exit 1
fi

report=$(ls ddl-report.calc.*.jsonl)
echo
echo "== report $demo/$report: summary"
python3 - "$report" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
summary = [l for l in lines if "summary" in l][-1]["summary"]
cols = ["calls", "mirrored", "match", "mismatch", "shadow_fault", "shadow_timeout", "dropped", "skipped"]
w = max(len(f) for f in summary) + 2
print(f"   {'function':<{w}}" + "".join(f"{c:>{len(c) + 2}}" for c in cols))
for fn, c in summary.items():
    print(f"   {fn:<{w}}" + "".join(f"{c.get(k, 0):>{len(k) + 2}}" for k in cols))
records = [l for l in lines if l.get("verdict") == "mismatch"]
print(f"\n== {len(records)} mismatch records; the first one:")
print(json.dumps(records[0], indent=2))
PY
