"""``rerank gap``: how far is the greedy from the certified optimum? (DESIGN §4.4)

For each λ and each user of a candidate set, it scores Steck's greedy (``safeguard=False``),
the safeguarded greedy (the default), the refined list (``refine="swap"`` with the default
swap cap, :mod:`rerank.refine`) and the certified exact solver (:mod:`rerank.exact`, whose
incumbent is the refined list) on the objective ``F = (1-λ) Σ s - λ C(p, q)`` with uniform
rank weights, and summarises over users: the gap ``F* - F`` (mean, p99, max), the gap relative
to ``|F*|``, the share of users whose list is already optimal (gap ≤ 1e-9), the share of the
greedy's mean gap the refinement closes ``1 - mean(F* - F_refined) / mean(F* - F_greedy)``,
the swaps per user, the exact solver's time per user and how many users were certified within
relative gap 1e-6 (the others hit ``time_limit``; their gap is then a lower bound).

    rerank gap --candidates c.parquet --history h.csv --item-categories ic.csv --lam 0.5 0.9

The same table on MovieLens with ALS candidates: ``benchmarks/gap_report.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rerank.arrays import rerank_arrays
from rerank.exact import GAP_TOL, MAX_ENUMERATE, ROUTE_MILP, run_exact
from rerank.frames import candidates_to_csr
from rerank.reranker import CalibratedReranker
from rerank.validation import divergence_code, normalize_code

__all__ = ["format_markdown", "gap_rows", "gap_table"]

OPTIMAL_TOL = 1e-9


def _p99(values: np.ndarray) -> float:
    return float(np.percentile(values, 99)) if values.size else float("nan")


def _gap_stats(prefix: str, gap: np.ndarray, optimum: np.ndarray) -> dict:
    rel = gap / np.maximum(np.abs(optimum), 1e-12)
    return {
        f"{prefix}_gap_mean": float(gap.mean()), f"{prefix}_gap_p99": _p99(gap), f"{prefix}_gap_max": float(gap.max()),
        f"{prefix}_rel_mean": float(rel.mean()), f"{prefix}_rel_p99": _p99(rel), f"{prefix}_rel_max": float(rel.max()),
        f"{prefix}_optimal": float(np.mean(gap <= OPTIMAL_TOL)),
    }


def gap_rows(
    indptr, items, scores, categories, targets, target_rows, *, k: int = 10, lams=(0.5, 0.9),
    normalize: str | None = "minmax", divergence: str = "kl", alpha: float = 0.01, time_limit: float = 10.0,
    max_enumerate: int = MAX_ENUMERATE, progress=None,
) -> pd.DataFrame:
    """:func:`gap_table` on arrays (the :func:`rerank.rerank_arrays` inputs): one row per λ."""
    rows = []
    n_users = len(indptr) - 1
    for lam in lams:
        common = (indptr, items, scores, categories, targets, k, lam, alpha)
        options = {"divergence": divergence, "normalize": normalize, "target_rows": target_rows, "return_result": True}
        plain = rerank_arrays(*common, safeguard=False, **options)
        guarded = rerank_arrays(*common, safeguard=True, **options)
        refined = rerank_arrays(*common, refine="swap", **options)
        _, optimum, gap, route, seconds = run_exact(
            indptr, items, scores, categories, targets, target_rows, np.full(n_users, float(lam)), k, alpha,
            divergence_code(divergence), normalize_code(normalize), refined.indptr, refined.positions,
            order_by_score=True, divergence=divergence, time_limit=time_limit, gap_tol=GAP_TOL,
            max_enumerate=max_enumerate,
        )
        row = {"lambda": float(lam), "users": n_users}
        greedy_gap = np.maximum(optimum - plain.objective, 0.0)
        refined_gap = np.maximum(optimum - refined.objective, 0.0)
        row.update(_gap_stats("greedy", greedy_gap, optimum))
        row.update(_gap_stats("safeguarded", np.maximum(optimum - guarded.objective, 0.0), optimum))
        row.update(_gap_stats("refined", refined_gap, optimum))
        row.update({
            "refined_closed": 1.0 - refined_gap.mean() / greedy_gap.mean() if greedy_gap.mean() > 0 else float("nan"),
            "swaps_mean": float(refined.swaps.mean()) if n_users else float("nan"),
            "swaps_max": int(refined.swaps.max(initial=0)),
            "swap_cap_hits": int(refined.swap_cap_hit.sum()),
            "exact_s_mean": float(seconds.mean()) if seconds.size else float("nan"),
            "exact_s_p99": _p99(seconds),
            "exact_s_max": float(seconds.max()) if seconds.size else float("nan"),
            "certified": int(np.sum(gap <= GAP_TOL)),
            "milp_users": int(np.sum(route == ROUTE_MILP)),
        })
        rows.append(row)
        if progress is not None:
            progress(lam, float(seconds.sum()))
    return pd.DataFrame(rows)


def gap_table(
    candidates: pd.DataFrame,
    history: pd.DataFrame,
    item_categories: pd.DataFrame,
    *,
    k: int = 10,
    lams=(0.5, 0.9),
    normalize: str | None = "minmax",
    divergence: str = "kl",
    alpha: float = 0.01,
    time_limit: float = 10.0,
    max_enumerate: int = MAX_ENUMERATE,
    progress=None,
) -> pd.DataFrame:
    """One row per λ: the optimality gap of Steck's greedy, the safeguarded greedy and the
    refined list, and the exact solver's time per user (module docstring). Targets come from
    ``history`` as in :class:`CalibratedReranker`. ``progress(λ, seconds)`` is called per λ."""
    reranker = CalibratedReranker(k=k, alpha=alpha, divergence=divergence, normalize=normalize)
    reranker.fit(history, item_categories)
    csr = candidates_to_csr(candidates)
    target_rows, _ = reranker.target_rows(csr.users)
    return gap_rows(
        csr.indptr, reranker.item_rows(csr.item_ids), csr.scores, reranker.category_matrix_, reranker.targets_,
        target_rows, k=k, lams=lams, normalize=normalize, divergence=divergence, alpha=alpha, time_limit=time_limit,
        max_enumerate=max_enumerate, progress=progress,
    )


def format_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub markdown (gaps in scientific notation, times in seconds)."""
    lead = [c for c in ("n", "G", "lambda") if c in table.columns]
    header = [*lead, "users", "greedy gap mean / p99 / max", "greedy rel. gap mean / p99 / max", "greedy optimal",
              "safeguarded gap mean / p99 / max", "safeguarded optimal", "refined gap mean / p99 / max",
              "refined optimal", "gap closed", "swaps mean / max", "exact s/user mean / p99 / max",
              "certified ≤1e-6"]
    lines = ["| " + " | ".join(header).replace("lambda", "λ") + " |", "|" + "---:|" * len(header)]
    for _, r in table.iterrows():
        cells = [f"{r[c]:g}" for c in lead] + [
            f"{int(r['users'])}",
            f"{r['greedy_gap_mean']:.2e} / {r['greedy_gap_p99']:.2e} / {r['greedy_gap_max']:.2e}",
            f"{r['greedy_rel_mean']:.2e} / {r['greedy_rel_p99']:.2e} / {r['greedy_rel_max']:.2e}",
            f"{100 * r['greedy_optimal']:.1f}%",
            f"{r['safeguarded_gap_mean']:.2e} / {r['safeguarded_gap_p99']:.2e} / {r['safeguarded_gap_max']:.2e}",
            f"{100 * r['safeguarded_optimal']:.1f}%",
            f"{r['refined_gap_mean']:.2e} / {r['refined_gap_p99']:.2e} / {r['refined_gap_max']:.2e}",
            f"{100 * r['refined_optimal']:.1f}%",
            f"{100 * r['refined_closed']:.0f}%",
            f"{r['swaps_mean']:.2f} / {int(r['swaps_max'])}",
            f"{r['exact_s_mean']:.3f} / {r['exact_s_p99']:.3f} / {r['exact_s_max']:.3f}",
            f"{int(r['certified'])}/{int(r['users'])}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ CLI
def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gap",
        help="optimality gap of the greedy and the refined list against the certified exact solver",
        description="For each λ, the gap between the greedy (plain and safeguarded), the refined list "
        "(refine='swap') and the certified "
        "optimum of the calibrated objective (uniform rank weights), and the exact solver's time per user. "
        "See docs/guarantees.md.",
    )
    io = parser.add_argument_group("files (CSV or Parquet by suffix)")
    io.add_argument("--candidates", required=True, help="user_id, item_id, score")
    io.add_argument("--history", required=True, help="user_id, item_id [, weight, timestamp]")
    io.add_argument("--item-categories", required=True, help="item_id, category [, weight]")
    io.add_argument("--out", help="also write the markdown table here")
    opts = parser.add_argument_group("objective")
    opts.add_argument("--k", type=int, default=10, help="list length (default 10)")
    opts.add_argument("--lam", type=float, nargs="+", default=[0.5, 0.9], help="λ values (default 0.5 0.9)")
    opts.add_argument("--alpha", type=float, default=0.01)
    opts.add_argument("--divergence", choices=["kl", "chi2"], default="kl")
    opts.add_argument("--normalize", choices=["none", "minmax", "rank"], default="minmax",
                      help="per-user score normalisation (default minmax)")
    opts.add_argument("--time-limit", type=float, default=10.0, help="exact solver seconds per user (default 10)")
    opts.add_argument("--users", type=int, default=0, help="random sample of users (default 0: all)")
    opts.add_argument("--seed", type=int, default=0, help="seed of the user sample")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rerank.apply import read_whole
    from rerank.errors import InputError

    frames = {}
    for role, ids in (("candidates", ["user_id", "item_id", "score"]), ("history", ["user_id", "item_id"]),
                      ("item_categories", ["item_id", "category"])):
        path = Path(getattr(args, role))
        if not path.is_file():
            raise InputError(f"{role} file '{path}' does not exist")
        frames[role] = read_whole(path, role, [c for c in ids if c != "score"])
    candidates = frames["candidates"]
    if "score" not in candidates.columns:
        raise InputError(f"candidates file '{args.candidates}' has no 'score' column")
    if args.users:
        users = pd.unique(candidates["user_id"])
        if args.users < len(users):
            keep = np.random.default_rng(args.seed).choice(users, args.users, replace=False)
            candidates = candidates[candidates["user_id"].isin(keep)]
    table = gap_table(
        candidates, frames["history"], frames["item_categories"], k=args.k, lams=args.lam,
        normalize=None if args.normalize == "none" else args.normalize, divergence=args.divergence,
        alpha=args.alpha, time_limit=args.time_limit,
        progress=lambda lam, s: print(f"rerank gap: λ={lam:g} done ({s:.1f}s in the exact solver)", file=sys.stderr),
    )
    text = format_markdown(table)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
