"""``rerank gap``: how far is the greedy from the certified optimum? (docs/design.md §4.4)

For each λ and each user of a candidate set, it scores Steck's greedy (``safeguard=False``),
the safeguarded greedy (the default), the refined list (``refine="swap"`` with the options'
swap cap, :mod:`rerank.engine.refine`) and the certified exact solver
(:mod:`rerank.engine.exact`, whose incumbent is the refined list) on the objective
``F = (1-λ) Σ s - λ C(p, q)`` with uniform rank weights, and summarises over users: the gap
``F* - F`` (mean, p99, max), the gap relative to ``|F*|``, the share of users whose list is
already optimal (gap ≤ 1e-9), the share of the greedy's mean gap the refinement closes
``1 - mean(F* - F_refined) / mean(F* - F_greedy)``, the swaps per user, the exact solver's
time per user and how many users were certified within relative gap 1e-6 (the others hit
``time_limit``; their gap is then a lower bound).

    rerank gap --candidates c.parquet --history h.csv --item-categories ic.csv --lam 0.5 0.9

The same table on MovieLens with ALS candidates: ``benchmarks/gap_report.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rerank.engine.arrays import Problem, solve
from rerank.engine.exact import GAP_TOL, ROUTE_MILP
from rerank.engine.layout import CandidateLists, category_matrix
from rerank.engine.options import RerankOptions
from rerank.errors import InputError
from rerank.frames import candidates_to_csr
from rerank.reranker import CalibratedReranker

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


def gap_table(
    candidates: pd.DataFrame,
    history: pd.DataFrame,
    item_categories: pd.DataFrame,
    options: RerankOptions | None = None,
    *,
    lams=(0.5, 0.9),
    progress=None,
    **keywords,
) -> pd.DataFrame:
    """One row per λ: the optimality gap of Steck's greedy, the safeguarded greedy and the
    refined list, and the exact solver's time per user (module docstring). ``progress(λ,
    seconds)`` is called per λ.

    ``options`` (or keywords for :class:`rerank.RerankOptions`; default ``normalize="minmax"``)
    set k, α, the divergence, the normalisation, ``time_limit`` and ``max_enumerate``; their
    ``lam`` is replaced by each value of ``lams``. Uniform rank weights only (the exact solver's).
    """
    if options is None:
        options = RerankOptions(**{"normalize": "minmax", **keywords})
    elif keywords:
        raise TypeError("gap_table takes options=RerankOptions(...) or keyword options, not both")
    reranker = CalibratedReranker.from_options(options).fit(history, item_categories)
    if reranker.attributes_ is not None and reranker.attributes_.n_attributes > 1:
        raise InputError("rerank gap (the exact solver) solves one attribute; item_categories has several")
    csr = candidates_to_csr(candidates)
    targets, _ = reranker.targets_for(csr.users)  # only these users' rows (compact targets: rerank.targets)
    target_rows = np.arange(len(csr.users), dtype=np.int64)
    lists = csr.lists(reranker.item_rows(csr.item_ids))
    return gap_rows(lists, reranker.category_matrix_, targets, target_rows, options, lams=lams, progress=progress)


def gap_rows(
    lists: CandidateLists, categories, targets, target_rows, options: RerankOptions, *, lams=(0.5, 0.9), progress=None,
) -> pd.DataFrame:
    """:func:`gap_table` on candidate lists and targets (the :func:`rerank.rerank_lists` inputs)."""
    matrix = category_matrix(categories)
    rows = []
    n_users = lists.n_users
    for lam in lams:
        at = options.replace(lam=lam, solver="greedy", order="greedy", refine=None)
        problem = Problem(lists, matrix, targets, target_rows, np.full(n_users, float(at.lam)))
        plain = solve(problem, at.replace(safeguard=False))
        guarded = solve(problem, at.replace(safeguard=True))
        refined = solve(problem, at.replace(refine="swap"))
        # the exact solver starts from the refined list, in pick order (its incumbent)
        exact = solve(problem, at.replace(refine="swap", solver="exact"))
        optimum, gap, route, seconds = exact.objective, exact.gap, exact.exact_route, exact.exact_seconds
        greedy_gap = np.maximum(optimum - plain.objective, 0.0)
        refined_gap = np.maximum(optimum - refined.objective, 0.0)
        row = {"lambda": float(lam), "users": n_users}
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
