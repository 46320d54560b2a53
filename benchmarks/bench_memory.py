"""Bounded memory: fit 10M users' histories and stream them through ``rerank_batches``.

    python -m benchmarks.bench_memory [--users 10000000] [--batch-users 100000] [--target-dtype float32]

Runs in a subprocess and reports its peak RSS (``getrusage``: the whole process — interpreter,
numba, the fitted reranker, one batch), the peak up to the end of the fit, and the fitted
targets' bytes. Nothing is ever whole in memory:

* **fit** (issue 16): ``CalibratedReranker.fit`` on an iterator of history frames of
  ``--batch-users`` whole users each, every user with 5–50 history items drawn uniformly
  (items carry 1–3 of G = 20 categories, so a user's target is nearly dense: the worst case
  for the sparse layout). ``--fit-users`` (default: all ``--users``) users are fitted; the rest
  of the streamed users are cold.
* **stream**: candidate frames of ``--batch-users`` users × 100 candidates are generated one
  at a time (``DataFrame(..., copy=False)``: the generator's arrays are the frame's columns),
  reranked by ``rerank_batches`` and dropped after counting, as a writer would.

CPU seconds of the process and the 1-minute load (start and end) are recorded beside each
phase: the machine is shared, so wall-clock seconds depend on the other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, os, resource, sys, time, tracemalloc
import numpy as np, pandas as pd
from rerank import CalibratedReranker
from rerank.bench import make_workload
from rerank.streaming import rerank_batches

n_users, batch_users, fit_users, n_cand, trace = (int(x) for x in sys.argv[1:6])
target_dtype = sys.argv[6]
G, n_items = 20, 20011
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = make_workload(1, n_cand, G)  # the item categories only
A = base.categories
item_categories = pd.DataFrame({"item_id": np.repeat(np.arange(n_items), np.diff(A.indptr)), "category": A.indices})
rss_start = peak_mb()

def histories():
    rng = np.random.default_rng(1)
    for first in range(0, fit_users, batch_users):
        b = min(batch_users, fit_users - first)
        lengths = rng.integers(5, 51, b)
        yield pd.DataFrame({"user_id": np.repeat(np.arange(first, first + b, dtype=np.int64), lengths),
                            "item_id": rng.integers(0, n_items, int(lengths.sum()))}, copy=False)

if trace:
    tracemalloc.start()
load_fit = os.getloadavg()[0]
t0, c0 = time.perf_counter(), time.process_time()
reranker = CalibratedReranker(k=10, lam=0.5, target_dtype=target_dtype).fit(histories(), item_categories)
fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
rss_fitted = peak_mb()
reranker.rerank(pd.DataFrame({"user_id": [0] * n_cand, "item_id": np.arange(n_cand), "score": np.ones(n_cand)}))

def batches():
    rng = np.random.default_rng(2)
    for first in range(0, n_users, batch_users):
        b = min(batch_users, n_users - first)
        start = rng.integers(0, n_items, b)
        stride = rng.integers(1, n_items, b)
        items = (start[:, None] + stride[:, None] * np.arange(n_cand)) % n_items
        yield pd.DataFrame({"user_id": np.repeat(np.arange(first, first + b, dtype=np.int64), n_cand),
                            "item_id": items.ravel(), "score": rng.random(b * n_cand)}, copy=False)

load_stream = os.getloadavg()[0]
t0, c0 = time.perf_counter(), time.process_time()
rows = 0
stream = rerank_batches(reranker, batches())
for out in stream:
    rows += len(out)
    del out
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
table = reranker.target_table_
print(json.dumps({
    "users": n_users, "batch_users": batch_users, "fit_users": fit_users, "candidates": n_cand,
    "target_dtype": target_dtype, "history_items_per_user": "5-50",
    "output_rows": rows, "stream_seconds": elapsed, "stream_cpu_seconds": cpu, "users_per_s": n_users / elapsed,
    "fit_seconds": fit_s, "fit_cpu_seconds": fit_cpu,
    "peak_rss_mb": peak_mb(), "rss_after_fit_mb": rss_fitted, "rss_before_fit_mb": rss_start,
    "targets_mb": table.nbytes / 2**20, "target_layouts": table.layouts,
    "bytes_per_fitted_user": table.nbytes / max(table.n_users, 1),
    "load_1min_fit_start": load_fit, "load_1min_stream_start": load_stream, "load_1min_end": os.getloadavg()[0],
    "tracemalloc_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if trace else None,
    "report": stream.report.summary(),
}))
"""


def measure(n_users: int, batch_users: int, fit_users: int, n_candidates: int = 100, trace: bool = False,
            target_dtype: str = "float32") -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(n_users), str(batch_users), str(fit_users), str(n_candidates),
         str(int(trace)), target_dtype],
        capture_output=True, text=True, check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000_000)
    parser.add_argument("--batch-users", type=int, default=100_000)
    parser.add_argument("--fit-users", type=int, default=None, help="users fitted (default: all)")
    parser.add_argument("--target-dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--trace", action="store_true", help="also tracemalloc (slower)")
    args = parser.parse_args(argv)
    from rerank.bench import machine

    fit_users = args.users if args.fit_users is None else min(args.fit_users, args.users)
    out = measure(args.users, args.batch_users, fit_users, trace=args.trace, target_dtype=args.target_dtype)
    out["machine"] = machine()
    out["load_1min_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"memory_{args.users}_{args.target_dtype}.json").write_text(json.dumps(out, indent=2))
    print(f"fit {out['fit_users']:,} users (5-50 history items, {out['target_dtype']} targets) and stream "
          f"{out['users']:,} users × {out['candidates']} candidates in batches of {out['batch_users']:,}: "
          f"peak RSS {out['peak_rss_mb']:,.0f} MB (after fit {out['rss_after_fit_mb']:,.0f} MB, before "
          f"{out['rss_before_fit_mb']:,.0f} MB; targets {out['targets_mb']:.0f} MB, "
          f"{out['bytes_per_fitted_user']:.0f} B/user, {out['target_layouts']}); fit {out['fit_seconds']:.0f} s "
          f"({out['fit_cpu_seconds']:.0f} CPU-s), stream {out['stream_seconds']:.0f} s "
          f"({out['stream_cpu_seconds']:.0f} CPU-s); load {out['load_1min_fit_start']:.1f}/"
          f"{out['load_1min_stream_start']:.1f}/"
          f"{out['load_1min_end']:.1f}; {out['report']}; {out['machine']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
