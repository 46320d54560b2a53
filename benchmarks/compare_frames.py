"""Frame API overhead of two installs side by side, interleaved in one run (e.g. a branch and main).

    python -m benchmarks.compare_frames --python /path/to/other/.venv/bin/python [--users 1000000] [--rounds 3]

Each round runs, in a fresh process of each interpreter in turn, the issue-16 frame cell: 1M
users × 100 candidates (n=100, k=10, G=20, λ=0.5, KL), and times (best of ``--reps``)

* the kernel alone: ``rerank_arrays`` on the CSR arrays, item and target rows resolved before;
* ``CalibratedReranker.rerank`` on the frame grouped by user (as a recommender writes it);
* ``CalibratedReranker.rerank`` on the same rows *interleaved* (shuffled, fresh RangeIndex, as
  read from a file in random order).

Wall-clock seconds and process CPU seconds of each, the ratios to the kernel, and the 1-minute
load before each process are printed; then the median per install. The machine is shared, so
only ratios measured in the same process (frame / kernel) are compared across installs. Both
installs must give identical lists (checked). The other install needs ``CalibratedReranker``,
``rerank_arrays`` and ``rerank.bench.make_workload`` (any version).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np, pandas as pd
from rerank import CalibratedReranker, rerank_arrays
from rerank.bench import make_workload

n_users, reps = int(sys.argv[1]), int(sys.argv[2])
wl = make_workload(n_users, 100, 20, seed=0)
A = wl.categories
item_categories = pd.DataFrame({"item_id": np.repeat(np.arange(A.shape[0]), np.diff(A.indptr)), "category": A.indices})
rng = np.random.default_rng(1)
history = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 5),
                        "item_id": rng.integers(0, A.shape[0], 5 * n_users)})
grouped = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 100), "item_id": wl.items, "score": wl.scores})
interleaved = grouped.iloc[np.random.default_rng(2).permutation(len(grouped))].reset_index(drop=True)
reranker = CalibratedReranker(k=10, lam=0.5).fit(history, item_categories)
del history
reranker.rerank(grouped.head(1000)); reranker.rerank(interleaved.head(100_000))  # compile / load the cache
item_rows = reranker.item_rows(pd.Index(wl.items))
target_rows, _ = reranker.target_rows(pd.Index(np.arange(n_users)))
targets = reranker.targets_

def timed(call):
    wall = cpu = np.inf
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = call()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu, out

res = {}
res["kernel_wall"], res["kernel_cpu"], out = timed(lambda: rerank_arrays(
    wl.indptr, item_rows, wl.scores, reranker.category_matrix_, targets, 10, 0.5, target_rows=target_rows))
kernel_items = np.asarray(out[1] if isinstance(out, tuple) else out.items)
res["grouped_wall"], res["grouped_cpu"], g = timed(lambda: reranker.rerank(grouped))
res["interleaved_wall"], res["interleaved_cpu"], i = timed(lambda: reranker.rerank(interleaved))
res["same"] = bool(np.array_equal(g["item_id"].to_numpy(), kernel_items)
                   and g.equals(i.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)))
res["checksum"] = int(kernel_items.sum() % 1000003)
print(json.dumps(res))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the other install's interpreter")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", help="write every timing here")
    args = parser.parse_args(argv)
    installs = {"this": sys.executable, "other": args.python}
    runs: dict = {name: [] for name in installs}
    for rnd in range(args.rounds):
        for name, python in installs.items():
            load = os.getloadavg()[0]
            done = subprocess.run([python, "-c", CHILD, str(args.users), str(args.reps)], cwd="/",
                                  capture_output=True, text=True, check=True)
            res = json.loads(done.stdout.strip().splitlines()[-1])
            res["load_1min"] = load
            runs[name].append(res)
            print(f"round {rnd} {name:5s} load {load:5.2f}: kernel {res['kernel_wall']:6.2f} s "
                  f"({res['kernel_cpu']:6.2f} CPU-s); grouped {res['grouped_wall']:6.2f} s "
                  f"({res['grouped_cpu']:6.2f}) x{res['grouped_wall'] / res['kernel_wall']:.2f}; interleaved "
                  f"{res['interleaved_wall']:6.2f} s ({res['interleaved_cpu']:6.2f}) "
                  f"x{res['interleaved_wall'] / res['kernel_wall']:.2f}; same lists {res['same']}", flush=True)
    print(f"\n{args.users:,} users x 100 candidates, k=10, G=20; medians over {args.rounds} rounds")
    for name in installs:
        med = {key: statistics.median(r[key] for r in runs[name]) for key in runs[name][0] if key != "same"}
        ratio_g = statistics.median(r["grouped_wall"] / r["kernel_wall"] for r in runs[name])
        ratio_i = statistics.median(r["interleaved_wall"] / r["kernel_wall"] for r in runs[name])
        print(f"  {name:5s}: kernel {med['kernel_wall']:.2f} s, grouped {med['grouped_wall']:.2f} s (x{ratio_g:.2f}), "
              f"interleaved {med['interleaved_wall']:.2f} s (x{ratio_i:.2f}); CPU-s kernel {med['kernel_cpu']:.1f} "
              f"grouped {med['grouped_cpu']:.1f} interleaved {med['interleaved_cpu']:.1f}; load "
              f"{min(r['load_1min'] for r in runs[name]):.1f}-{max(r['load_1min'] for r in runs[name]):.1f}")
    same = {r["checksum"] for n in installs for r in runs[n]}
    print(f"  identical lists across installs: {len(same) == 1}; within each run: "
          f"{all(r['same'] for n in installs for r in runs[n])}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"users": args.users, "runs": runs}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
