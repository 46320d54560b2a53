"""Kernel throughput of two installs side by side, interleaved in one run (e.g. a branch and main).

    python -m benchmarks.compare_kernel --python /path/to/other/.venv/bin/python [--users 200000] [--rounds 5]

Each round times, for 1 and 2 threads, the issue-6 cell (n=100, k=10, G=20, λ=0.5, KL, min-max
normalised scores, named explicitly since the default changed in issue 17) in a
fresh process of each interpreter in turn, best of 3 calls: wall-clock users/s and users per
CPU-second (steadier on a shared machine). Prints every timing with the 1-minute load, then the
best and the median per install, and whether both gave identical lists. The other install needs
``rerank.bench.make_workload`` and ``rerank_arrays`` (any version: a tuple or a result is read).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, sys, time
import numpy as np
from rerank import rerank_arrays
from rerank.bench import make_workload

n_users, threads = int(sys.argv[1]), int(sys.argv[2])
wl = make_workload(n_users, 100, 20, seed=1)
small = wl.head(200)
kw = {"normalize": "minmax"}  # explicit: the default changed in issue 17 (None before)
rerank_arrays(small.indptr, small.items, small.scores, small.categories, small.targets, 10, 0.5, n_threads=threads,
              **kw)
wall = cpu = np.inf
for _ in range(3):
    t0, c0 = time.perf_counter(), time.process_time()
    out = rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, 10, 0.5, n_threads=threads, **kw)
    wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
items = out[1] if isinstance(out, tuple) else out.items
print(json.dumps({"wall": n_users / wall, "cpu": n_users / cpu, "checksum": int(np.asarray(items).sum() % 1000003)}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the other install's interpreter")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    installs = {"this": sys.executable, "other": args.python}
    runs: dict = {name: {1: [], 2: []} for name in installs}
    loads = []
    for rnd in range(args.rounds):
        for threads in (1, 2):
            for name, python in installs.items():
                loads.append(os.getloadavg()[0])
                done = subprocess.run([python, "-c", CHILD, str(args.users), str(threads)], cwd="/",
                                      capture_output=True, text=True, check=True)
                res = json.loads(done.stdout.strip().splitlines()[-1])
                runs[name][threads].append(res)
                print(f"round {rnd} threads {threads} {name:5s} {res['wall']:>9,.0f} users/s wall "
                      f"{res['cpu']:>9,.0f} users per CPU-s  load {loads[-1]:.2f}", flush=True)
    print(f"\nn=100 k=10 G=20, {args.users:,} users; load (1 min) {min(loads):.2f}-{max(loads):.2f}")
    for threads in (1, 2):
        for stat in ("wall", "cpu"):
            best = {n: max(r[stat] for r in runs[n][threads]) for n in installs}
            med = {n: statistics.median(r[stat] for r in runs[n][threads]) for n in installs}
            print(f"  {threads} thread(s), {stat:4s}: best this {best['this']:,.0f} other {best['other']:,.0f} "
                  f"({best['this'] / best['other']:.3f}); median this {med['this']:,.0f} other "
                  f"{med['other']:,.0f} ({med['this'] / med['other']:.3f})")
        same = {r["checksum"] for r in runs["this"][threads]} == {r["checksum"] for r in runs["other"][threads]}
        print(f"  {threads} thread(s): identical lists: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
