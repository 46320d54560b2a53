"""λ from a budget (docs/design.md §9.5): ``lam="auto", max_miscalibration=τ``.

Per user, the smallest λ of :data:`rerank.engine.options.AUTO_LAMBDAS` whose list has
``C(p, q(P ∪ L)) ≤ τ`` (the divergence of the list as returned, after its shown prefix ``P``;
``Σ_a w_a C(p_a, q_a)`` with several attributes), else λ = 1 (the last grid value) whether or
not it meets the budget. Vectorised across users: one kernel call per grid value on the users
still searching (never a Python loop over users); the chosen λ then runs once more for everyone
together, so the result is exactly that of a plain call with those per-user λ.
"""

from __future__ import annotations

import numpy as np

from rerank.engine.layout import CandidateLists, ShownPrefix

__all__ = ["search_lambda", "subset_users"]


def _rows(indptr: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entry indices of ``users`` (CSR by ``indptr``) in order, and the new ``indptr``."""
    lengths = np.diff(indptr)[users]
    new_indptr = np.zeros(users.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    starts = np.repeat(indptr[users] - new_indptr[:-1], lengths)
    return starts + np.arange(new_indptr[-1], dtype=np.int64), new_indptr


def subset_users(problem, users: np.ndarray):
    """The :class:`~rerank.engine.arrays.Problem` of some users only (same category matrix and
    targets; their lists, target rows, λ, prefixes and exclusions)."""
    lists = problem.lists
    rows, indptr = _rows(lists.indptr, users)
    shown = problem.shown
    if shown is not None:
        shown_rows, shown_indptr = _rows(shown.indptr, users)
        shown = ShownPrefix(shown_indptr, shown.items[shown_rows])
    return problem._replace(
        lists=CandidateLists(indptr, lists.items[rows], lists.scores[rows]),
        target_rows=problem.target_rows[users], lam=problem.lam[users], shown=shown,
        excluded=None if problem.excluded is None else problem.excluded[rows],
    )


def search_lambda(problem, budget: float, grid, divergence_of) -> np.ndarray:
    """Each user's λ: the first of ``grid`` whose list meets ``budget``, else ``grid[-1]``.

    ``divergence_of(problem)`` reranks a problem (its ``lam`` set per user) and returns the
    divergence of each user's list.
    """
    n_users = problem.lists.n_users
    chosen = np.full(n_users, float(grid[-1]))
    pending = np.arange(n_users, dtype=np.int64)
    for lam in grid[:-1]:
        if not pending.size:
            break
        sub = subset_users(problem, pending)
        sub = sub._replace(lam=np.full(pending.size, float(lam)))
        met = divergence_of(sub) <= budget
        chosen[pending[met]] = float(lam)
        pending = pending[~met]
    return chosen
