"""The one compiled kernel behind every entry point (docs/design.md §3, §4, §6).

:func:`rerank_kernel` reranks every user row of the candidate lists. Users are independent: the
users are split into blocks of ``USERS_PER_BLOCK`` users, run on several threads without the
GIL, each block allocating its work buffers once (:func:`rerank.engine.greedy.new_buffers`), so
the output does not depend on the thread count. Per user it

0. adds up the mass of the items already shown to the user (a shown prefix, docs/design.md
   §9.3): the new list's ``q`` starts from it and its rank weights start after it;
1. normalises the scores (:func:`rerank.engine.scoring.normalize_scores`);
2. builds the list with one of the list builders — Steck's greedy
   (:mod:`rerank.engine.greedy`), the quota greedy (:mod:`rerank.engine.quota`), PM-2
   (:mod:`rerank.engine.pm2`), or plain top-k by the input scores when ``λ = 0``;
3. applies the safeguard (greedy and quota): the plain top-k list is scored too and returned
   when its objective is strictly higher (ties within ``TIE_RTOL``; in quota mode only if it
   meets the quota units too), docs/design.md §4.2;
4. with ``refine="swap"`` (greedy and quota), starts from the better of the list and top-k
   (the safeguard's comparison, whatever ``safeguard``) and makes improving single swaps
   (:mod:`rerank.engine.refine`);
5. re-sorts the list by score with ``order="score"`` and writes global positions.

Ties (objective equal up to ``TIE_RTOL`` relative) go to the higher score, then to the earlier
input position (:mod:`rerank.engine.ties`).

**Compiled only what a call uses.** The list builder and the refinement are chosen by the
*types* of three kernel arguments, not by runtime codes: ``quota`` is a
:class:`~rerank.engine.layout.QuotaPlan` in quota mode and ``None`` otherwise, ``pm2`` the PM-2
θ (a float) with ``method="pm2"`` and ``None`` otherwise, ``swap`` the refinement code with
``refine="swap"`` and ``None`` otherwise. Numba prunes the branches ``if quota is not None``
(and the others) before typing when the argument is ``None`` (its dead-branch pruning on
``None`` arguments), so the default call (greedy) never types or compiles the quota greedy, its
feasibility search, PM-2 or the swap refinement: each is compiled — and cached — the first
time a call asks for it, as a separate specialisation of the same block function. The same
holds for ``prefix`` (a :class:`~rerank.engine.layout.ShownPrefix`, or ``None`` when no user
has a shown item).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rerank._numba import compiled
from rerank.engine.greedy import SharePairs, greedy_one_user, grow_slots, new_buffers, share_pairs
from rerank.engine.pm2 import pm2_one_user
from rerank.engine.quota import met_units, quota_one_user
from rerank.engine.refine import refine_buffers, refine_user
from rerank.engine.scoring import list_objective, normalize_scores, sort_by_score, top_k_positions
from rerank.engine.ties import TIE_RTOL

__all__ = ["METHOD_GREEDY", "METHOD_PM2", "METHOD_QUOTA", "rerank_kernel"]

# per-user list builders; the safeguard applies to greedy and quota
METHOD_GREEDY = 0
METHOD_QUOTA = 1
METHOD_PM2 = 2

USERS_PER_BLOCK = 1024  # users per call of rerank_block


@compiled()
def widest_item(n, items, cats):
    """The most categories a candidate of this user carries."""
    width = 0
    for j in range(n):
        width = max(width, cats.indptr[items[j] + 1] - cats.indptr[items[j]])
    return width


@compiled()
def safeguard_user(n, kk, raw, s, items, cats, p, lam, params, rank_w, start_mass, start_w, quota, row, user, objective,
                   buf):
    """Score plain top-k (by the input scores ``raw``) and keep it in ``buf.chosen`` when its
    objective beats ``objective`` (quota mode, ``quota`` not ``None``: only if it meets the
    user's ``quota.met[user]`` units of the quotas ``quota.quotas[row]`` too). Returns the
    objective of the list kept and whether it is top-k."""
    top = buf.top
    top_k_positions(raw, n, kk, top)
    top_objective = list_objective(
        top, kk, s, items, cats, p, lam, params.alpha, params.divergence, rank_w, buf.mass, start_mass, start_w,
    )
    tol = TIE_RTOL * (1.0 + max(abs(objective), abs(top_objective)))
    if top_objective > objective + tol and (
        quota is None or met_units(top, kk, items, cats, quota.quotas[row]) >= quota.met[user]
    ):
        for r in range(kk):
            buf.chosen[r] = top[r]
        return top_objective, True
    return objective, False


@compiled()
def prefix_mass(u, prefix, cats, rank_w, start_mass):
    """A shown prefix (docs/design.md §9.3): ``start_mass[g] = Σ_{r<m} w_r A[shown_r, g]`` over
    user ``u``'s ``m`` shown items, in shown order; returns ``(m, Σ_{r<m} w_r)``."""
    for g in range(start_mass.shape[0]):
        start_mass[g] = 0.0
    start_w = 0.0
    first = prefix.indptr[u]
    m = prefix.indptr[u + 1] - first
    for r in range(m):
        w = rank_w[r]
        start_w += w
        item = prefix.items[first + r]
        for e in range(cats.indptr[item], cats.indptr[item + 1]):
            start_mass[cats.indices[e]] += w * cats.data[e]
    return m, start_w


@compiled(nogil=True)
def rerank_block(first, last, lists, cats, targets, target_rows, lam, rank_w_all, params, quota, pm2, swap, out, pairs,
                 prefix):
    """Rerank users ``first..last-1`` (one block: the work buffers are allocated once), without
    the GIL: :func:`rerank_kernel` runs several blocks at once.
    ``quota`` / ``pm2`` / ``swap``: ``None`` unless that list builder or ``refine="swap"`` is
    asked for (module docstring); ``prefix`` the users' shown items, ``None`` when nobody has any."""
    indptr, cand_items, scores = lists.indptr, lists.items, lists.scores
    n_cat = targets.shape[1]
    k = params.k
    buf = new_buffers(params.max_n, k, n_cat, pairs, 4 * params.max_n)
    start_mass = np.zeros(n_cat, dtype=np.float64)
    if swap is not None:
        work = refine_buffers(n_cat, buf, params)
        no_quota = np.zeros(1, dtype=np.int64)  # the quota row refine_user reads outside quota mode
    for u in range(first, last):
        m = 0
        start_w = 0.0
        if prefix is not None:  # pruned when no user has a prefix (module docstring)
            m, start_w = prefix_mass(u, prefix, cats, rank_w_all, start_mass)
        rank_w = rank_w_all[m:]  # the new items' positions come after the shown ones
        lo = indptr[u]
        n = indptr[u + 1] - lo
        kk = min(k, n)
        out.swaps[u] = 0
        out.cap_hit[u] = False
        if kk == 0:
            out.objective[u] = 0.0
            out.used_topk[u] = False
            continue
        items = cand_items[lo : lo + n]
        raw = scores[lo : lo + n]
        s = buf.s
        normalize_scores(raw, s, n, params.normalize)
        p = targets[target_rows[u]]
        lam_u = lam[u]
        width = 0
        # refine: λ = 0 lists are plain top-k, already optimal; quota lists may still gain score
        refine = False
        if swap is not None:
            refine = kk < n and pm2 is None and (lam_u != 0.0 or quota is not None)
        if lam_u != 0.0 or refine:
            width = widest_item(n, items, cats)
            if n * width > buf.ent_slot.shape[0]:  # rare: items with many categories; grow
                buf = grow_slots(buf, pairs, 2 * n * width)
                if swap is not None:
                    work = refine_buffers(n_cat, buf, params)
        n_used = -1  # slots not gathered yet
        if quota is not None:
            if lam_u == 0.0:  # λ = 0 ranks by the input scores (normalising may merge near-ties)
                for j in range(n):
                    s[j] = raw[j]
            quota_one_user(
                n, kk, s, items, cats, p, lam_u, params.alpha, params.divergence, rank_w, start_mass, start_w,
                quota.quotas[target_rows[u]], quota.met[u], buf,
            )
            if lam_u == 0.0:
                normalize_scores(raw, s, n, params.normalize)
        elif pm2 is not None:
            pm2_one_user(n, kk, s, items, cats, p, lam_u, pm2, rank_w, start_mass, buf.taken, buf.chosen)
        elif lam_u == 0.0:  # plain top-k by the input scores (normalising may merge near-ties)
            top_k_positions(raw, n, kk, buf.chosen)
        else:
            n_used = greedy_one_user(
                n, kk, s, items, cats, p, lam_u, params.alpha, params.divergence, rank_w, start_mass, start_w, width,
                pairs, u, buf,
            )
        objective = list_objective(
            buf.chosen, kk, s, items, cats, p, lam_u, params.alpha, params.divergence, rank_w, buf.mass, start_mass,
            start_w,
        )
        used_topk = False
        if (params.safeguard or refine) and lam_u != 0.0 and pm2 is None:
            objective, used_topk = safeguard_user(
                n, kk, raw, s, items, cats, p, lam_u, params, rank_w, start_mass, start_w, quota, target_rows[u], u,
                objective, buf,
            )
        if swap is not None:
            if refine:
                if quota is not None:
                    qrow, quota_target = quota.quotas[target_rows[u]], quota.met[u]
                else:
                    qrow, quota_target = no_quota, 0
                objective, used_topk, out.swaps[u], out.cap_hit[u] = refine_user(
                    n, kk, s, items, cats, p, lam_u, params, rank_w, start_mass, start_w, qrow, quota_target,
                    quota is not None, width, n_used, pairs, u, objective, used_topk, buf, work,
                )
        out.objective[u] = objective
        out.used_topk[u] = used_topk
        chosen = buf.chosen
        if params.order_by_score:
            sort_by_score(chosen, kk, raw)
        start = out.indptr[u]
        for r in range(kk):
            out.positions[start + r] = lo + chosen[r]


def rerank_kernel(lists, cats, targets, target_rows, lam, rank_w, params, quota, pm2, swap, out, prefix,
                  n_threads: int = 1):
    """Rerank every user row of ``lists`` (a :class:`~rerank.engine.layout.CandidateLists`)
    on ``n_threads`` threads, in blocks of ``USERS_PER_BLOCK`` users.

    Inputs (dtypes fixed at the boundary): ``cats`` the :class:`~rerank.engine.layout.CategoryCSR`,
    ``targets`` float64 (T × G), ``target_rows`` int64 (U) the row of ``targets`` for each user,
    ``lam`` float64 (U), ``rank_w`` float64 (≥ k), ``params`` the
    :class:`~rerank.engine.layout.KernelParams`, ``quota`` the
    :class:`~rerank.engine.layout.QuotaPlan` in quota mode, else ``None``, ``pm2`` the PM-2 θ
    (float) with ``method="pm2"``, else ``None``, ``swap`` the refinement code with
    ``refine="swap"``, else ``None`` (module docstring), ``out`` the
    :class:`~rerank.engine.layout.KernelOutput` to fill, ``prefix`` the
    :class:`~rerank.engine.layout.ShownPrefix` (every user's shown items; ``rank_w`` then needs
    ``k`` plus the longest prefix weights), or ``None`` when no user has a shown item.

    Threads: the blocks are handed out in order to ``n_threads`` threads (this one and
    ``n_threads - 1`` others), each running :func:`rerank_block` without the GIL. A user's list
    does not depend on the block or thread that computes it (the work buffers hold nothing from
    one user to the next), so the output does not depend on the thread count. Plain threads
    rather than a numba ``prange``: the compiled code is the serial function, which compiles in
    a fraction of a parallel one's time (docs/performance.md, first-call latency) and is safe to
    call from any number of Python threads at once.
    """
    n_users = lists.indptr.shape[0] - 1
    n_blocks = (n_users + USERS_PER_BLOCK - 1) // USERS_PER_BLOCK
    pairs = SharePairs(*share_pairs(cats, targets.shape[1]))
    args = (lists, cats, targets, target_rows, lam, rank_w, params, quota, pm2, swap, out, pairs, prefix)
    n_threads = max(1, min(int(n_threads), n_blocks))
    if n_threads == 1:
        rerank_block(0, n_users, *args)
        return
    next_block = itertools.count()  # next() on it is atomic under the GIL

    def work() -> None:
        for block in iter(next_block.__next__, None):
            first = block * USERS_PER_BLOCK
            if first >= n_users:
                return
            rerank_block(first, min(first + USERS_PER_BLOCK, n_users), *args)

    with ThreadPoolExecutor(max_workers=n_threads - 1) as pool:
        helpers = [pool.submit(work) for _ in range(n_threads - 1)]
        work()
        for helper in helpers:
            helper.result()  # re-raises a helper's error
