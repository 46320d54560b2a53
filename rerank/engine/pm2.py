"""PM-2 (Dang & Croft, SIGIR 2012) with a relevance term: ``method="pm2"``.

A second proportional reranker, for comparison with Steck's calibration. Categories are the
"aspects", the user's target ``p_g`` their votes ``v_g``, and each list position is a seat
awarded by the Sainte-Laguë method. At step ``t`` (rank weight ``w_t``, 1 for uniform):

1. quotients ``qt_g = v_g / (2 s_g + 1)`` where ``s_g`` is the seat mass ``g`` holds so far;
   the aspect to serve is ``g* = argmax_g qt_g`` (lowest ``g`` on ties);
2. the candidate ``j`` maximising

       (1-λ) s_j  +  λ [ θ · qt_{g*} · A[i_j, g*]  +  (1-θ) · Σ_{g ≠ g*} qt_g · A[i_j, g] ]

   is placed (``A[i, g] = p(g|i)`` plays the role of the paper's ``P(d|t_g)``, ``θ`` is the
   paper's λ, default 0.5; ties: higher score, then earlier position);
3. seats are updated by the item's share of each aspect, ``s_g += w_t · A[i_j, g]`` (the
   paper's ``P(d|t_g) / Σ_g' P(d|t_g')``, since rows of ``A`` sum to 1).

``λ`` is the same relevance/proportionality trade-off as the calibrated reranker's: ``λ = 0``
is plain top-k by score and ``λ = 1`` is the paper's PM-2 on category shares. The votes are
``p_g`` (fractions, so ``qt_g ≤ 1`` stays on the scale of normalised scores); the argmax is
scale-free. Items without categories take no seat.
"""

from __future__ import annotations

import numpy as np

from rerank._numba import compiled
from rerank.engine.ties import is_better

__all__ = ["pm2_one_user"]


@compiled()
def pm2_one_user(n, kk, s, items, cats, p, lam, theta, rank_w, start_mass, taken, chosen):
    """PM-2 with relevance for one user; writes local positions into ``chosen[:kk]``. A shown
    prefix's seats (``start_mass``, zeros without one) are taken before the first pick."""
    n_cat = p.shape[0]
    seats = start_mass.copy()
    quotient = np.empty(n_cat, dtype=np.float64)
    taken[:n] = False
    for t in range(kk):
        top_g = -1
        for g in range(n_cat):
            quotient[g] = p[g] / (2.0 * seats[g] + 1.0)
            if p[g] > 0.0 and (top_g < 0 or quotient[g] > quotient[top_g]):
                top_g = g
        best = -1
        best_obj = 0.0
        for j in range(n):
            if taken[j]:
                continue
            share = 0.0
            if lam != 0.0:
                item = items[j]
                for e in range(cats.indptr[item], cats.indptr[item + 1]):
                    g = cats.indices[e]
                    if g == top_g:
                        share += theta * quotient[g] * cats.data[e]
                    else:
                        share += (1.0 - theta) * quotient[g] * cats.data[e]
            obj = (1.0 - lam) * s[j] + lam * share
            if best < 0 or is_better(obj, s[j], j, best_obj, s[best], best):
                best = j
                best_obj = obj
        taken[best] = True
        chosen[t] = best
        item = items[best]
        for e in range(cats.indptr[item], cats.indptr[item + 1]):
            seats[cats.indices[e]] += rank_w[t] * cats.data[e]
