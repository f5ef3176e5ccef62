#!/usr/bin/python3
"""Where DDL's fixed cost goes on the numpy workload, side by side.

    scripts/numpy-phases.py [--runs N] [--fifo] VARIANT...

VARIANT is `plain`, or `NAME=LIBDDL[:SAMPLING]` (a libddl.so to compare, with
the numpy config of scripts/bench.sh, benches/numpy_config.py; SAMPLING 0
mirrors nothing, `off` loads libddl with `mode: off`). Every round runs each
variant once, in a new random order. benches/peers/exit-probe.c, preloaded
first, splits each run into start (exec to the probe's constructor: ld.so,
libddl's load and boot), body and exit (libddl's drain, _dl_fini, the
teardown); the main thread's CPU time is printed too. Medians, and the
difference to the first variant. `--fifo` runs the workload under
`chrt -f 10` (root): fewer preemptions, a steadier median.

Example (the libddl of two trees):
    scripts/numpy-phases.py --runs 30 plain new=target/release/libddl.so old=/tmp/libddl-old.so
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_BLAS_DIR = "/usr/lib/x86_64-linux-gnu/blas"
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"
# Debian's python3, whose numpy links libblas.so.3 (as in scripts/bench.sh).
WORKLOAD = ["/usr/bin/python3", os.path.join(ROOT, "cxx-fixtures/numpy/blas_workload.py")]
PHASES = ["wall", "start", "body", "exit", "main cpu"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--fifo", action="store_true")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ddl-numpy-phases-")
    probe = os.path.join(work, "exit-probe.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", probe,
                    os.path.join(ROOT, "benches/peers/exit-probe.c")], check=True)
    envs = {}
    for v in args.variants:
        env = dict(os.environ, LD_LIBRARY_PATH=REF_BLAS_DIR, OPENBLAS_NUM_THREADS="1",
                   PYTHONDONTWRITEBYTECODE="1", LD_PRELOAD=probe)
        env.pop("DDL_CONFIG", None)
        if v != "plain":
            name, _, spec = v.partition("=")
            lib, _, sampling = spec.partition(":")
            if not name or not os.path.isfile(lib):
                sys.exit(f"numpy-phases: {v}: expected NAME=LIBDDL[:SAMPLING], with LIBDDL a file")
            cfg = json.loads(subprocess.run(
                [sys.executable, os.path.join(ROOT, "benches/numpy_config.py"), OPENBLAS,
                 os.path.join(work, f"report-{len(envs)}.%p.jsonl")]
                + ([sampling] if sampling not in ("", "off") else []),
                check=True, capture_output=True, text=True).stdout)
            if sampling == "off":
                cfg["mode"] = "off"
            path = os.path.join(work, f"config-{len(envs)}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            env["LD_PRELOAD"] = f"{probe} {os.path.abspath(lib)}"
            env["DDL_CONFIG"] = path
        envs[v] = env
    cmd = (["chrt", "-f", "10"] if args.fifo else []) + WORKLOAD
    runs = {v: [] for v in args.variants}
    for _ in range(args.runs):
        order = list(args.variants)
        random.shuffle(order)
        for v in order:
            t0 = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e3
            p = subprocess.run(cmd, env=envs[v], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            t3 = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e3
            line = [l for l in p.stderr.decode(errors="replace").splitlines() if l.startswith("PROBE ")]
            if p.returncode != 0 or not line:
                sys.exit(f"numpy-phases: {v}: exit {p.returncode}\n{p.stderr.decode(errors='replace')[-2000:]}")
            t1, t2, cpu = map(float, line[-1].split()[1:4])
            runs[v].append((t3 - t0, t1 - t0, t2 - t1, t3 - t2, cpu))
        for f in os.listdir(work):
            if f.startswith("report-"):
                os.unlink(os.path.join(work, f))
    shutil.rmtree(work, ignore_errors=True)
    med = {v: [statistics.median(r[i] for r in rs) for i in range(len(PHASES))] for v, rs in runs.items()}
    base = med[args.variants[0]]
    print(f"{args.runs} rounds, medians in ms (difference to {args.variants[0]})")
    for v, m in med.items():
        print(f"{v.partition('=')[0]:>12}  " + "  ".join(f"{n} {m[i]:6.1f} ({m[i] - base[i]:+5.1f})" for i, n in enumerate(PHASES)))


if __name__ == "__main__":
    main()
