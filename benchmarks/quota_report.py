"""What does the hard quota guarantee cost? (issue 3, docs/design.md §4.3) on MovieLens latest-small.

    .venv/bin/python -m benchmarks.quota_report

Same pipeline as :mod:`benchmarks.gap_report` (ALS candidates, n = 100, k = 10, min-max
scores, KL) on every test user. For each λ it compares the plain calibrated reranker with
quota mode (``min_share=True`` and ``0.5``): the share of users whose list misses a quota that
some k-subset could meet, the share whose quotas are infeasible (shortfall > 0), the mean
objective and ``C_KL`` (via :mod:`rerank.metrics`), precision@10 against the held-out
positives, and the wall-clock time of the reranking call (feasibility included).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from benchmarks.gap_report import DATA


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--lam", type=float, nargs="+", default=[0.0, 0.5, 0.9])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from rerank.adapters.evaluate import positives, split, train_adapter

    from rerank import CalibratedReranker, metrics
    from rerank.datasets import movielens
    from rerank.engine.feasibility import max_quota_met, quota_matrix
    from rerank.frames import candidates_to_csr

    ratings, item_categories = movielens("latest-small", args.data, download=False)
    train, test = split(positives(ratings, 4.0), "random", 0.2, args.seed)
    adapter = train_adapter("als", train, seed=args.seed)
    users = pd.unique(test["user_id"])
    users = users[adapter.user_ids.get_indexer(users) >= 0]
    test = test[test["user_id"].isin(users)]
    candidates = adapter.candidates(users, n=args.n, exclude_seen=True)
    history = train[["user_id", "item_id"]]
    rows = []
    for lam in args.lam:
        for share in (False, True, 0.5):
            reranker = CalibratedReranker(k=args.k, lam=lam, normalize="minmax", min_share=share)
            reranker.fit(history, item_categories)
            reranker.rerank(candidates.head(50))  # compile outside the timing
            start = time.perf_counter()
            recs = reranker.rerank(candidates)
            seconds = time.perf_counter() - start
            # quota bookkeeping with ρ = 1 for every variant: which lists miss a feasible quota?
            csr = candidates_to_csr(candidates)
            target_rows, _ = reranker.target_rows(csr.users)
            quotas = quota_matrix(reranker.targets_, args.k, 1.0)
            feas = max_quota_met(csr.indptr, reranker.item_rows(csr.item_ids), reranker.category_matrix_, quotas,
                                 target_rows, args.k)
            codes, out_users = pd.factorize(recs["user_id"])
            member = (reranker.category_matrix_[reranker.item_rows(recs["item_id"])] > 0).tocoo()
            counts = np.zeros((len(out_users), quotas.shape[1]))
            np.add.at(counts, (codes[member.row], member.col), 1)
            out_rows, _ = reranker.target_rows(out_users)
            met = np.minimum(counts, quotas[out_rows]).sum(axis=1)
            best = pd.Series(feas.met, index=csr.users).reindex(out_users).to_numpy()
            targets = reranker.target_distributions(pd.Index(out_users))
            rows.append({
                "lambda": lam,
                "min_share": share,
                "users": len(out_users),
                "misses_feasible_quota": float(np.mean(met < best)),
                "quotas_infeasible": float(np.mean(feas.shortfall > 0)),
                "C_KL": float(metrics.miscalibration(recs, targets, reranker.item_categories_, "kl").mean()),
                f"precision@{args.k}": float(metrics.precision_recall_ndcg(recs, test, args.k)["precision"].mean()),
                "seconds": seconds,
            })
            print(rows[-1], file=sys.stderr)
    table = pd.DataFrame(rows)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---:|" * len(table.columns)]
    for row in table.itertuples(index=False):
        cells = [f"{v:.4f}" if isinstance(v, float) and not isinstance(v, bool) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
