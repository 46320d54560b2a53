"""The references the kernel is benchmarked against, all on the same inputs.

* :func:`rerank.reference.python_greedy` — pure-Python dict loop, the way public notebooks
  write Steck's greedy (re-exported here);
* :func:`rerank.reference.numpy_greedy` — NumPy incremental greedy (re-exported here);
* :func:`plain_numba_lists` — a *plain* Numba greedy: the same ``prange`` over users, but each
  candidate's divergence is recomputed over all G categories, ``O(k · n · G)`` per user, with
  no per-step caching and no gathering of the candidates' categories (dense item rows). It
  shows what the kernel's layout and caching buy over simply compiling the textbook loop.

The two slow references live in the installed package (``rerank.reference``) so that
``rerank bench`` works from a wheel; this folder is only in a source checkout.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from rerank.reference import TIE_RTOL, numpy_greedy, python_greedy

__all__ = ["numpy_greedy", "plain_numba_lists", "python_greedy"]


@numba.njit(cache=True, inline="always")
def _better(obj, score, pos, best_obj, best_score, best_pos):
    tol = TIE_RTOL * (1.0 + max(abs(obj), abs(best_obj)))
    if obj > best_obj + tol:
        return True
    if obj < best_obj - tol:
        return False
    if score != best_score:
        return score > best_score
    return pos < best_pos


@numba.njit(cache=True)
def _kl(p, mass, extra_row, w, total_w, alpha):
    total = 0.0
    for g in range(p.shape[0]):
        if p[g] > 0.0:
            q = (mass[g] + w * extra_row[g]) / total_w
            total += p[g] * math.log(p[g] / ((1.0 - alpha) * q + alpha * p[g]))
    return total


@numba.njit(cache=True, parallel=True)
def _plain_kernel(indptr, items, scores, dense, targets, k, lam, alpha, safeguard, out):
    n_users = indptr.shape[0] - 1
    n_cat = dense.shape[1]
    for u in numba.prange(n_users):
        lo = indptr[u]
        n = indptr[u + 1] - lo
        kk = min(k, n)
        p = targets[u]
        mass = np.zeros(n_cat)
        zero = np.zeros(n_cat)
        taken = np.zeros(n, dtype=np.bool_)
        chosen = np.empty(kk, dtype=np.int64)
        total_w = 0.0
        for t in range(kk):
            total_w += 1.0
            best = -1
            best_obj = 0.0
            for j in range(n):
                if taken[j]:
                    continue
                obj = (1.0 - lam) * scores[lo + j] - lam * _kl(p, mass, dense[items[lo + j]], 1.0, total_w, alpha)
                if best < 0 or _better(obj, scores[lo + j], j, best_obj, scores[lo + best], best):
                    best = j
                    best_obj = obj
            taken[best] = True
            chosen[t] = best
            mass += dense[items[lo + best]]
        if safeguard and lam != 0.0:
            top = np.argsort(-scores[lo : lo + n], kind="mergesort")[:kk]
            objs = np.empty(2)
            for which in range(2):
                lst = chosen if which == 0 else top
                m = np.zeros(n_cat)
                s = 0.0
                for r in range(kk):
                    m += dense[items[lo + lst[r]]]
                    s += scores[lo + lst[r]]
                objs[which] = (1.0 - lam) * s - lam * _kl(p, m, zero, 0.0, float(kk), alpha)
            if objs[1] > objs[0] + TIE_RTOL * (1.0 + max(abs(objs[0]), abs(objs[1]))):
                chosen[:] = top
        for r in range(kk):
            out[u * k + r] = chosen[r]


def plain_numba_lists(wl, k: int, lam: float = 0.5, alpha: float = 0.01, safeguard: bool = True,
                      dense: np.ndarray | None = None) -> list[list[int]]:
    """Local positions chosen by the plain Numba greedy (KL, uniform rank weights, every user
    with at least ``k`` candidates)."""
    dense = wl.categories.toarray() if dense is None else dense
    out = np.empty(wl.n_users * k, dtype=np.int64)
    _plain_kernel(wl.indptr, wl.items, wl.scores, dense, wl.targets, k, lam, alpha, safeguard, out)
    return out.reshape(wl.n_users, k)
