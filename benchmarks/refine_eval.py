"""Calibration and precision with and without ``refine="swap"`` on MovieLens (issue 13).

    .venv/bin/python -m benchmarks.refine_eval                      # latest-small, ALS, seeds 0-4
    .venv/bin/python -m benchmarks.refine_eval --model lightfm --seeds 0 1 2 --out refine.md

For each seed, the ``rerank evaluate`` pipeline (:func:`rerank.adapters.evaluate.evaluate`:
ratings ≥ 4, random 80/20 split, the model's top-100 unseen items as candidates, min-max
scores, k = 10) runs twice on the same model and candidates, once with ``refine=None`` (the
default reranker) and once with ``refine="swap"``; at every λ of ``--lambdas`` it reports the
mean over test users of C_KL, precision@10, NDCG@10 and minority attainment for both, and the
paired per-user difference (refined − default) with a 95% percentile bootstrap interval over
users (1000 draws, seeded). Everything here was fixed before the first run; nothing is tuned.
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
METRICS = ("C_KL", "precision@10", "ndcg@10", "minority_attainment", "topk_kept")


def _bootstrap(diff: np.ndarray, seed: int, draws: int = 1000) -> tuple[float, float]:
    diff = diff[~np.isnan(diff)]
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, (draws, diff.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def compare(ratings, item_categories, *, model: str, seed: int, lambdas, k: int = 10) -> pd.DataFrame:
    from rerank.adapters.evaluate import evaluate

    runs = {}
    for refine in (None, "swap"):
        runs[refine] = evaluate(ratings, item_categories, model=model, seed=seed, lambdas=lambdas, k=k, n_boot=0,
                                refine=refine).per_user
    rows = []
    for lam in sorted({float(x) for x in lambdas}):
        off = runs[None].xs(lam, level="lambda")
        on = runs["swap"].xs(lam, level="lambda").reindex(off.index)
        row = {"seed": seed, "lambda": lam, "users": len(off)}
        for metric in METRICS:
            column = metric.replace("@10", f"@{k}")
            diff = (on[column] - off[column]).to_numpy(dtype=np.float64)
            low, high = _bootstrap(diff, seed)
            row.update({f"{metric} off": float(off[column].mean()), f"{metric} on": float(on[column].mean()),
                        f"{metric} diff": float(np.nanmean(diff)), f"{metric} ci": (low, high)})
        rows.append(row)
    return pd.DataFrame(rows)


def format_markdown(table: pd.DataFrame) -> str:
    header = ["seed", "λ", "users"] + [f"{m} off → on (Δ, 95% CI)" for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for _, r in table.iterrows():
        cells = [f"{int(r['seed'])}", f"{r['lambda']:g}", f"{int(r['users'])}"]
        for m in METRICS:
            low, high = r[f"{m} ci"]
            cells.append(f"{r[f'{m} off']:.4f} → {r[f'{m} on']:.4f} ({r[f'{m} diff']:+.4f}, {low:+.4f}…{high:+.4f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("RERANK_MOVIELENS_DIR", DATA))
    parser.add_argument("--model", default="als", choices=["als", "bpr", "lightfm"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--csv", help="also write the raw table here")
    args = parser.parse_args(argv)
    from rerank.datasets import movielens

    ratings, item_categories = movielens("latest-small", args.data, download=False)
    start, load = time.perf_counter(), os.getloadavg()[0]
    table = pd.concat([compare(ratings, item_categories, model=args.model, seed=seed, lambdas=args.lambdas)
                       for seed in args.seeds], ignore_index=True)
    report_table(table, format_markdown(table), out=args.out, csv=args.csv, started=start, load=load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
