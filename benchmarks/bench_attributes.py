"""Several attributes in one objective: what the second attribute costs (issue 14).

    python -m benchmarks.bench_attributes [--users 50000] [--seconds 1]

One run, side by side, on the issue-6 workload (n candidates, k, G genre-like categories,
1-3 per item, Dirichlet targets) for each (n, k, G) row of the grid:

* ``one``: the genre attribute alone (today's objective);
* ``two``: the same plus a popularity attribute (3 categories, exactly one per item, the
  target a Dirichlet over head/mid/tail), equal weights: ``Σ_a G_a`` grows by 3 and ``ḡ`` by 1,
  so the model ``O(k · (Σ_a G_a + n · ḡ))`` predicts the ratio ``(G + 3 + n(ḡ+1)) / (G + n ḡ)``.

Users/s is the best of 3 timings of ``rerank_arrays`` (2 threads); the 1-minute load average is
recorded beside each row. Results: ``benchmarks/results/attributes.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rerank import rerank_arrays
from rerank.bench import machine, make_workload

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = ((100, 10, 5), (100, 10, 20), (100, 10, 100), (500, 20, 20), (1000, 50, 20))


def with_popularity(wl, seed: int = 0):
    """The workload's categories and targets with a 3-category popularity attribute appended."""
    rng = np.random.default_rng(seed)
    n_items, n_cat = wl.categories.shape
    group = rng.integers(0, 3, n_items)
    pop = sp.csr_matrix((np.ones(n_items), (np.arange(n_items), group)), shape=(n_items, 3))
    matrix = sp.hstack([wl.categories, pop], format="csr")
    targets = np.hstack([wl.targets, rng.dirichlet(np.ones(3), wl.targets.shape[0])])
    return matrix, targets, np.r_[np.zeros(n_cat, dtype=np.int64), np.ones(3, dtype=np.int64)]


def best_rate(call, n_users: int, repeats: int = 3) -> float:
    call()  # compile / warm
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return n_users / best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    args = parser.parse_args(argv)
    rows = []
    for n, k, g in ROWS:
        wl = make_workload(args.users, n, g, seed=1)
        matrix, targets, codes = with_popularity(wl)
        mean_cats = float(np.diff(wl.categories.indptr).mean())

        def one(wl=wl, k=k):
            return rerank_arrays(wl.indptr, wl.items, wl.scores, wl.categories, wl.targets, k, 0.5, n_threads=2)

        def two(wl=wl, k=k, matrix=matrix, targets=targets, codes=codes):
            return rerank_arrays(wl.indptr, wl.items, wl.scores, matrix, targets, k, 0.5, n_threads=2,
                                 category_attribute=codes)

        load = round(os.getloadavg()[0], 2)
        rate_one, rate_two = best_rate(one, args.users), best_rate(two, args.users)
        model = (g + 3 + n * (mean_cats + 1)) / (g + n * mean_cats)
        row = {"n": n, "k": k, "G": g, "users": args.users, "one_attr_users_s": round(rate_one),
               "two_attr_users_s": round(rate_two), "slowdown": round(rate_one / rate_two, 3),
               "model_slowdown": round(model, 3), "load_1min": load}
        rows.append(row)
        print(row, flush=True)
    info = machine()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attributes.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    header = list(rows[0])
    md = [f"machine: {info}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    md += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    (RESULTS / "attributes.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
