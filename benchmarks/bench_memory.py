"""Bounded memory: ``rerank.streaming.rerank_batches`` over 10M users × 100 candidates.

    python -m benchmarks.bench_memory [--users 10000000] [--batch-users 100000]

Runs the stream in a subprocess and reports its peak RSS (``getrusage``: the whole process —
interpreter, numba, the fitted reranker, one batch) and ``tracemalloc``'s peak of the Python
heap (NumPy and pandas buffers included). Candidates are generated batch by batch (never all
at once) and each output frame is dropped after counting its rows, as a writer would.

The fitted state is part of the peak: ``targets_`` is dense (users seen in ``fit`` × G × 8
bytes). The reranker is fitted on the histories of ``--fit-users`` users (1M by default:
160 MB at G=20); the other streamed users are cold and get the population target. Fitting all
10M users at G=20 would add 1.6 GB of targets on its own.
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
import json, resource, sys, time, tracemalloc
import numpy as np, pandas as pd
from rerank import CalibratedReranker
from rerank.bench import make_workload
from rerank.streaming import rerank_batches

n_users, batch_users, fit_users, n_cand, trace = (int(x) for x in sys.argv[1:6])
G, n_items = 20, 20011
base = make_workload(1, n_cand, G)  # the item categories only
A = base.categories
item_categories = pd.DataFrame({"item_id": np.repeat(np.arange(n_items), np.diff(A.indptr)), "category": A.indices})
rng = np.random.default_rng(1)
history = pd.DataFrame({"user_id": np.repeat(np.arange(fit_users, dtype=np.int64), 5),
                        "item_id": rng.integers(0, n_items, 5 * fit_users)})
reranker = CalibratedReranker(k=10, lam=0.5).fit(history, item_categories)
del history
reranker.rerank(pd.DataFrame({"user_id": [0] * n_cand, "item_id": np.arange(n_cand), "score": np.ones(n_cand)}))
rss_fitted = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def batches():
    rng = np.random.default_rng(2)
    for first in range(0, n_users, batch_users):
        b = min(batch_users, n_users - first)
        start = rng.integers(0, n_items, b)
        stride = rng.integers(1, n_items, b)
        items = (start[:, None] + stride[:, None] * np.arange(n_cand)) % n_items
        yield pd.DataFrame({"user_id": np.repeat(np.arange(first, first + b, dtype=np.int64), n_cand),
                            "item_id": items.ravel(), "score": rng.random(b * n_cand)})

if trace:
    tracemalloc.start()
t0 = time.perf_counter()
rows = 0
stream = rerank_batches(reranker, batches())
for out in stream:
    rows += len(out)
    del out
elapsed = time.perf_counter() - t0
print(json.dumps({
    "users": n_users, "batch_users": batch_users, "fit_users": fit_users, "candidates": n_cand,
    "output_rows": rows, "seconds": elapsed, "users_per_s": n_users / elapsed,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_after_fit_mb": rss_fitted,
    "targets_mb": reranker.targets_.nbytes / 2**20,
    "tracemalloc_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if trace else None,
    "report": stream.report.summary(),
}))
"""


def measure(n_users: int, batch_users: int, fit_users: int, n_candidates: int = 100, trace: bool = False) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(n_users), str(batch_users), str(fit_users), str(n_candidates),
         str(int(trace))],
        capture_output=True, text=True, check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000_000)
    parser.add_argument("--batch-users", type=int, default=100_000)
    parser.add_argument("--fit-users", type=int, default=1_000_000)
    parser.add_argument("--trace", action="store_true", help="also tracemalloc (slower)")
    args = parser.parse_args(argv)
    from rerank.bench import machine

    out = measure(args.users, args.batch_users, min(args.fit_users, args.users), trace=args.trace)
    out["machine"] = machine()
    out["load_1min_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"memory_{args.users}.json").write_text(json.dumps(out, indent=2))
    print(f"streaming {out['users']:,} users × {out['candidates']} candidates in batches of {out['batch_users']:,}: "
          f"peak RSS {out['peak_rss_mb']:,.0f} MB (after fit {out['rss_after_fit_mb']:,.0f} MB, targets "
          f"{out['targets_mb']:.0f} MB), {out['seconds']:.0f} s, {out['users_per_s']:,.0f} users/s; "
          f"{out['report']}; {out['machine']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
