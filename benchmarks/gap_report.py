"""How far are the greedy and the refined list from the optimum? (issues 3, 13; docs/design.md §4.4, §4.6)

    .venv/bin/python -m benchmarks.gap_report                       # MovieLens, 200 sampled test users
    .venv/bin/python -m benchmarks.gap_report --users 0 --out gap.md  # every test user
    .venv/bin/python -m benchmarks.gap_report --synthetic --users 100  # the synthetic grid

Synthetic grid (``--synthetic``): the kernel benchmark's workload (:func:`rerank.bench.make_workload`:
items with 1-3 categories sharing their mass equally, Dirichlet(1) targets, scores uniform in
[0, 1) used as given) for every n in ``--grid-n`` (20, 50, 100) and G in ``--grid-g`` (5, 20),
``--users`` users per cell, seed ``--seed``.

Pipeline: ratings ≥ 4 are positives, a seeded random 80/20 split, a real ``implicit`` ALS
model (64 factors, 15 iterations) trained on the training positives, the top-``n`` unseen
items of each test user as candidates (n = 50 and 100), ``CalibratedReranker`` targets from
the training history (genres), scores min-max normalised per user, KL with α = 0.01, k = 10,
uniform rank weights.

For each (n, λ) and each user it computes the objective ``F = (1-λ) Σ s - λ C_KL(p, q)`` of
Steck's greedy (``safeguard=False``), of the safeguarded greedy (the default) and of the
certified exact solver (:mod:`rerank.exact`; its incumbent is the safeguarded list), and
reports the optimality gap ``F* - F`` (absolute, and relative to ``|F*|``) as mean, p99 and
max over users, the share of users where the greedy is already optimal (gap ≤ 1e-9), the
same for the refined list (``refine="swap"``, default cap) with the share of the greedy's mean
gap it closes and its swaps per user, the exact solver's time per user (mean, p99, max) and
how many users were certified within the relative gap 1e-6 (the rest hit the time limit:
their gap is then a lower bound).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from benchmarks import report_table

DATA = "/work/shared/data/ml-latest-small"


def run(args) -> pd.DataFrame:
    from rerank.adapters.evaluate import positives, split, train_adapter

    from rerank.datasets import movielens
    from rerank.gap import gap_table

    ratings, item_categories = movielens("latest-small", args.data, download=False)
    train, test = split(positives(ratings, 4.0), "random", 0.2, args.seed)
    t0 = time.perf_counter()
    adapter = train_adapter("als", train, seed=args.seed)
    print(f"ALS trained in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    users = pd.unique(test["user_id"])
    users = users[adapter.user_ids.get_indexer(users) >= 0]
    if args.users and args.users < len(users):
        users = np.random.default_rng(args.seed).choice(users, args.users, replace=False)
    history = train[["user_id", "item_id"]]
    tables = []
    for n in args.n:
        candidates = adapter.candidates(users, n=n, exclude_seen=True)
        table = gap_table(
            candidates, history, item_categories, k=args.k, lams=args.lam, normalize="minmax", divergence="kl",
            time_limit=args.time_limit,
            progress=lambda lam, s, n=n: print(f"n={n} λ={lam}: {s:.1f}s in the exact solver", file=sys.stderr),
        )
        table.insert(0, "n", n)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def run_synthetic(args) -> pd.DataFrame:
    from rerank.bench import make_workload
    from rerank.engine.layout import CandidateLists
    from rerank.engine.options import RerankOptions
    from rerank.gap import gap_rows

    options = RerankOptions(k=args.k, normalize=None, divergence="kl", time_limit=args.time_limit)
    tables = []
    for n in args.grid_n:
        for G in args.grid_g:
            wl = make_workload(args.users or 100, n, G, seed=args.seed)
            table = gap_rows(
                CandidateLists(wl.indptr, wl.items, wl.scores), wl.categories, wl.targets, np.arange(wl.n_users),
                options, lams=args.lam,
                progress=lambda lam, s, n=n, G=G: print(f"n={n} G={G} λ={lam}: {s:.1f}s in the exact solver",
                                                        file=sys.stderr),
            )
            table.insert(0, "G", G)
            table.insert(0, "n", n)
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("RERANK_MOVIELENS_DIR", DATA))
    parser.add_argument("--users", type=int, default=200, help="sample of test users (0: all)")
    parser.add_argument("-n", type=int, nargs="+", default=[50, 100])
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--lam", type=float, nargs="+", default=[0.5, 0.8, 0.9, 0.99])
    parser.add_argument("--time-limit", type=float, default=10.0, help="exact solver seconds per user")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--csv", help="also write the raw table here")
    parser.add_argument("--synthetic", action="store_true", help="the synthetic grid instead of MovieLens")
    parser.add_argument("--grid-n", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--grid-g", type=int, nargs="+", default=[5, 20])
    args = parser.parse_args(argv)
    from rerank.gap import format_markdown

    start, load = time.perf_counter(), os.getloadavg()[0]
    table = run_synthetic(args) if args.synthetic else run(args)
    report_table(table, format_markdown(table), out=args.out, csv=args.csv, started=start, load=load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
