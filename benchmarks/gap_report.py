"""How far is the greedy from the optimum? (issue 3, DESIGN §4.4) on MovieLens latest-small.

    .venv/bin/python -m benchmarks.gap_report                       # 200 sampled test users
    .venv/bin/python -m benchmarks.gap_report --users 0 --out gap.md  # every test user

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
exact solver's time per user (mean, p99, max) and how many users were certified within the
relative gap 1e-6 (the rest hit the time limit: their gap is then a lower bound).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

DATA = "/work/shared/data/ml-latest-small"


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def _summary(gap: np.ndarray, optimum: np.ndarray) -> dict:
    rel = gap / np.maximum(np.abs(optimum), 1e-12)
    return {
        "mean": float(gap.mean()), "p99": _percentile(gap, 99), "max": float(gap.max()),
        "rel_mean": float(rel.mean()), "rel_p99": _percentile(rel, 99), "rel_max": float(rel.max()),
        "optimal": float(np.mean(gap <= 1e-9)),
    }


def run(args) -> pd.DataFrame:
    from rerank.adapters.evaluate import positives, split, train_adapter

    from rerank import CalibratedReranker, rerank_arrays
    from rerank.datasets import movielens
    from rerank.divergences import DIVERGENCE_CODES
    from rerank.exact import run_exact
    from rerank.frames import candidates_to_csr
    from rerank.kernel import NORMALIZE_CODES

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
    rows = []
    for n in args.n:
        candidates = adapter.candidates(users, n=n, exclude_seen=True)
        for lam in args.lam:
            reranker = CalibratedReranker(k=args.k, lam=lam, normalize="minmax").fit(history, item_categories)
            csr = candidates_to_csr(candidates)
            items = reranker.item_rows(csr.item_ids)
            target_rows, _ = reranker.target_rows(csr.users)
            common = (csr.indptr, items, csr.scores, reranker.category_matrix_, reranker.targets_, args.k, lam)
            options = {"normalize": "minmax", "target_rows": target_rows, "return_result": True}
            plain = rerank_arrays(*common, safeguard=False, **options)
            guarded = rerank_arrays(*common, safeguard=True, **options)
            lam_arr = np.full(len(csr.users), lam)
            _, optimum, gap, route, seconds = run_exact(
                csr.indptr, items, csr.scores, reranker.category_matrix_, reranker.targets_, target_rows,
                lam_arr, args.k, 0.01, DIVERGENCE_CODES["kl"], NORMALIZE_CODES["minmax"], guarded.indptr,
                guarded.positions, order_by_score=True, divergence="kl", time_limit=args.time_limit,
                gap_tol=1e-6, max_enumerate=200_000,
            )
            greedy_gap = np.maximum(optimum - plain.objective, 0.0)
            guarded_gap = np.maximum(optimum - guarded.objective, 0.0)
            g, sg = _summary(greedy_gap, optimum), _summary(guarded_gap, optimum)
            rows.append({
                "n": n, "lambda": lam, "users": len(csr.users),
                "greedy_gap_mean": g["mean"], "greedy_gap_p99": g["p99"], "greedy_gap_max": g["max"],
                "greedy_rel_mean": g["rel_mean"], "greedy_rel_p99": g["rel_p99"], "greedy_rel_max": g["rel_max"],
                "greedy_optimal": g["optimal"],
                "safeguarded_gap_mean": sg["mean"], "safeguarded_gap_p99": sg["p99"],
                "safeguarded_gap_max": sg["max"], "safeguarded_rel_max": sg["rel_max"],
                "safeguarded_optimal": sg["optimal"],
                "exact_s_mean": float(seconds.mean()), "exact_s_p99": _percentile(seconds, 99),
                "exact_s_max": float(seconds.max()), "certified": int(np.sum(gap <= 1e-6)),
                "milp_users": int(np.sum(route == 2)),
            })
            print(f"n={n} λ={lam}: done in {seconds.sum():.1f}s exact time", file=sys.stderr)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    header = (
        "| n | λ | users | greedy gap mean / p99 / max | greedy rel. gap mean / p99 / max | greedy optimal "
        "| safeguarded gap mean / p99 / max | safeguarded optimal | exact s/user mean / p99 / max | certified ≤1e-6 |"
    )
    lines = [header, "|" + "---:|" * 10]
    for r in table.itertuples():
        lines.append(
            f"| {r.n} | {r._2:g} | {r.users} "
            f"| {r.greedy_gap_mean:.2e} / {r.greedy_gap_p99:.2e} / {r.greedy_gap_max:.2e} "
            f"| {r.greedy_rel_mean:.2e} / {r.greedy_rel_p99:.2e} / {r.greedy_rel_max:.2e} "
            f"| {100 * r.greedy_optimal:.1f}% "
            f"| {r.safeguarded_gap_mean:.2e} / {r.safeguarded_gap_p99:.2e} / {r.safeguarded_gap_max:.2e} "
            f"| {100 * r.safeguarded_optimal:.1f}% "
            f"| {r.exact_s_mean:.3f} / {r.exact_s_p99:.3f} / {r.exact_s_max:.3f} "
            f"| {r.certified}/{r.users} |"
        )
    return "\n".join(lines)


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
    args = parser.parse_args(argv)
    table = run(args)
    text = to_markdown(table)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
