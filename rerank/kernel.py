"""The one compiled greedy kernel behind every entry point (DESIGN §3, §4, §6).

For user ``u`` with candidates ``j = 0..n-1`` (scores ``s_j``, items ``i_j``), target ``p``
and trade-off ``λ``, the greedy builds ``L`` one position at a time. At step ``t`` (filling
position ``t+1`` with rank weight ``w_{t+1}``) it adds the candidate maximising

    (1-λ) · s_j  -  λ · C(p, q(L ∪ {j}))

where ``q_g(L ∪ {j}) = (M_g + w_{t+1} A[i_j, g]) / W_{t+1}``, ``M_g = Σ_{l∈L} w_{r(l)} A[l, g]``
and ``W_{t+1} = Σ_{r ≤ t+1} w_r`` (the list normalised over the positions filled so far).
(The constant ``(1-λ) Σ_{l∈L} s_l`` is dropped from the comparison.)

Every divergence here is a sum of per-category terms, ``C = finish(Σ_g term(p_g, q_g))``:

* KL:        ``term = p log(p / q̃)`` with ``q̃ = (1-α) q + α p`` (0 when ``p = 0``); finish = id
* Hellinger: ``term = (√p - √q)²``; finish ``D ↦ √D / √2``
* Pearson χ²: ``term = (p - q̃)² / q̃`` (0 when ``q̃ = 0``); finish = id

At a step all candidates share ``W_{t+1}``, so with ``B_g = term(p_g, M_g / W_{t+1})`` and
``S = Σ_g B_g`` precomputed in O(G), a candidate costs one term per category it carries:
``D_j = S + Σ_{g ∈ cats(j)} (term(p_g, q_g(L ∪ {j})) - B_g)``. A user costs
O(k · (G + n · ḡ)) term evaluations (DESIGN §6).

Ties (objective equal up to ``TIE_RTOL`` relative) go to the higher score, then to the
earlier input position. With ``safeguard`` the plain top-k list is scored too and returned
when its objective is strictly higher (DESIGN §4.2). Users are independent: the outer loop
is a ``prange`` over blocks of users, each block allocating its work buffers once, so the
output does not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from rerank._numba import compiled
from rerank.divergences import DIVERGENCE_CODES, divergence_finish, divergence_term
from rerank.pm2 import pm2_one_user
from rerank.quota import met_units, quota_one_user
from rerank.refine import REFINE_NONE, refine_buffers, refine_one_user
from rerank.ties import TIE_RTOL, is_better

__all__ = ["DIVERGENCE_CODES", "NORMALIZE_CODES", "rerank_kernel"]


NORM_NONE = 0
NORM_MINMAX = 1
NORM_RANK = 2
NORMALIZE_CODES = {None: NORM_NONE, "none": NORM_NONE, "minmax": NORM_MINMAX, "rank": NORM_RANK}

# per-user list builders (rerank.quota, rerank.pm2); the safeguard applies to greedy and quota
METHOD_GREEDY = 0
METHOD_QUOTA = 1
METHOD_PM2 = 2

USERS_PER_BLOCK = 64
PAIRS_PER_CATEGORY = 8  # distinct (category, share) pairs numbered per category, see share_pairs


@compiled()
def normalize_scores(raw, out, n, mode):
    """Per-user score normalisation into ``out[:n]``.

    * none:   ``s``
    * minmax: ``(s - min) / (max - min)``, all 0 when the scores are constant (computed on
      halves so extreme finite scores cannot overflow to inf/NaN)
    * rank:   ``(n - r) / (n - 1)`` with ``r`` the 1-based rank by (score desc, position asc);
      1 for a single candidate
    """
    if mode == NORM_MINMAX:
        lo = raw[0]
        hi = raw[0]
        for j in range(1, n):
            if raw[j] < lo:
                lo = raw[j]
            if raw[j] > hi:
                hi = raw[j]
        span = 0.5 * hi - 0.5 * lo
        for j in range(n):
            out[j] = (0.5 * raw[j] - 0.5 * lo) / span if span > 0.0 else 0.0
    elif mode == NORM_RANK:
        order = np.argsort(-raw[:n], kind="mergesort")
        for r in range(n):
            out[order[r]] = (n - 1 - r) / (n - 1) if n > 1 else 1.0
    else:
        for j in range(n):
            out[j] = raw[j]


@compiled()
def top_k_positions(s, n, kk, out):
    """The ``kk`` best local positions by (score desc, position asc), in that order."""
    filled = 0
    for j in range(n):
        if filled == kk and not (s[j] > s[out[kk - 1]]):
            continue
        slot = filled if filled < kk else kk - 1
        while slot > 0 and s[j] > s[out[slot - 1]]:
            if slot < kk:
                out[slot] = out[slot - 1]
            slot -= 1
        out[slot] = j
        if filled < kk:
            filled += 1


@compiled()
def list_objective(
    chosen, length, s, items, cat_indptr, cat_indices, cat_data, p, lam, alpha, divergence,
    rank_w, mass,
):
    """``(1-λ) Σ_{l∈L} s_l - λ C(p, q(L))`` for the list ``chosen[:length]`` in that order.

    ``mass`` is a work buffer of length G.
    """
    mass[:] = 0.0
    total_w = 0.0
    score_sum = 0.0
    for r in range(length):
        j = chosen[r]
        score_sum += s[j]
        w = rank_w[r]
        total_w += w
        item = items[j]
        for e in range(cat_indptr[item], cat_indptr[item + 1]):
            mass[cat_indices[e]] += w * cat_data[e]
    if lam == 0.0:
        return score_sum
    total = 0.0
    for g in range(p.shape[0]):
        total += divergence_term(p[g], mass[g] / total_w, alpha, divergence)
    # λ = 1: no score term (0·Σs would be NaN when Σs of extreme finite scores overflows).
    score_term = (1.0 - lam) * score_sum if lam != 1.0 else 0.0
    return score_term - lam * divergence_finish(total, divergence)


@compiled()
def share_pairs(cat_indptr, cat_indices, cat_data, n_cat):
    """Number the distinct ``(category, share)`` pairs of the category matrix.

    Returns ``pair_of_entry`` (one per CSR entry: its pair, or -1), ``pair_cat`` and
    ``pair_share``. Only the first ``PAIRS_PER_CATEGORY`` distinct shares of a category are
    numbered (items sharing their mass equally have at most a few); entries with other shares get
    -1 and a slot of their own per user, which gives the same values (numbering only saves work).
    """
    nnz = cat_indices.shape[0]
    pair_of_entry = np.empty(nnz, dtype=np.int64)
    known = np.zeros(n_cat, dtype=np.int64)
    table = np.empty(n_cat * PAIRS_PER_CATEGORY, dtype=np.int64)
    pair_cat = np.empty(n_cat * PAIRS_PER_CATEGORY, dtype=np.int64)
    pair_share = np.empty(n_cat * PAIRS_PER_CATEGORY, dtype=np.float64)
    n_pairs = 0
    for e in range(nnz):
        g = cat_indices[e]
        a = cat_data[e]
        pid = -1
        for r in range(known[g]):
            if pair_share[table[g * PAIRS_PER_CATEGORY + r]] == a:
                pid = table[g * PAIRS_PER_CATEGORY + r]
                break
        if pid < 0 and known[g] < PAIRS_PER_CATEGORY:
            pid = n_pairs
            n_pairs += 1
            pair_cat[pid] = g
            pair_share[pid] = a
            table[g * PAIRS_PER_CATEGORY + known[g]] = pid
            known[g] += 1
        pair_of_entry[e] = pid
    return pair_of_entry, pair_cat[:n_pairs].copy(), pair_share[:n_pairs].copy()


@compiled()
def gather_user(
    n, width, items, cat_indptr, cat_indices, cat_data, pair_of_entry, n_shared, stamp, user,
    ent_count, ent_slot, slot_cat, slot_share, used,
):
    """Lay one user's candidate categories out contiguously, as *slots*.

    Candidate ``j`` owns the row ``ent_slot[j*width : (j+1)*width]``: its ``ent_count[j]``
    categories (in the item's CSR order), then padding with slot 0. A slot is a distinct pair
    ``(g, a) = (slot_cat, slot_share)``: at a step every candidate carrying ``(g, a)`` extends
    the list to the same ``q_g = (M_g + w a) / W``, so the term is computed once per slot, not
    once per candidate (items with 1-3 equally shared categories: at most 3G slots, whatever
    n). Slots ``1..n_shared`` are the numbered pairs of :func:`share_pairs` (``slot_cat`` /
    ``slot_share`` filled once per block); other entries get fresh slots after them. Slot 0 is
    the padding: its value stays 0.0, so every row is summed with the same trip count (no
    mispredicted loop exits). ``used[:n_used]`` lists the slots this user needs (``stamp``
    marks them with ``user``); returns ``n_used``.
    """
    n_used = 0
    fresh = n_shared + 1
    for j in range(n):
        item = items[j]
        row = j * width
        c = 0
        for e in range(cat_indptr[item], cat_indptr[item + 1]):
            pid = pair_of_entry[e]
            if pid >= 0:
                slot = pid + 1
                used[n_used] = slot
                n_used += stamp[slot] != user
                stamp[slot] = user
            else:
                slot = fresh
                fresh += 1
                slot_cat[slot] = cat_indices[e]
                slot_share[slot] = cat_data[e]
                used[n_used] = slot
                n_used += 1
            ent_slot[row + c] = slot
            c += 1
        ent_count[j] = c
        while c < width:
            ent_slot[row + c] = 0
            c += 1
    return n_used


@compiled()
def greedy_one_user(
    n, kk, s, items, cat_indptr, cat_indices, cat_data, p, lam, alpha, divergence, rank_w,
    mass, base, taken, chosen, width, pair_of_entry, n_shared, stamp, user, ent_count, ent_slot,
    slot_cat, slot_share, slot_val, used, touched,
):
    """Steck's greedy for one user; writes local positions into ``chosen[:kk]``, returns the
    number of slots gathered (:func:`gather_user`; 0 for λ = 0, which gathers none).

    Work buffers: ``mass``, ``base``, ``touched`` (G); ``taken`` and ``ent_count`` (≥ n);
    ``ent_slot`` (≥ n·width, ``width`` ≥ the most categories of a candidate); ``slot_*``,
    ``used`` and ``stamp`` (≥ n_shared + 1 + the user's category entries), ``slot_cat`` /
    ``slot_share`` holding the numbered pairs in ``1..n_shared`` (see :func:`gather_user`).

    Per step ``t`` the cost is: the terms ``B_g`` of the categories already in the list (a
    category with ``M_g = 0`` has ``q_g = 0`` whatever ``W``, so its term is computed once per
    user), one term per slot (see :func:`gather_user`), then a sum of ``width`` cached slot
    values per candidate. Every value is computed with the same operations in the same order as
    the direct formula ``D_j = S + Σ_{g∈cats(j)} (term(p_g, (M_g + w a)/W) - B_g)`` (the padding
    adds exact zeros), so the lists are those of the direct formula.
    """
    n_cat = p.shape[0]
    taken[:n] = False
    if lam == 0.0:
        for t in range(kk):
            best = -1
            for j in range(n):
                if taken[j]:
                    continue
                if best < 0 or is_better(s[j], s[j], j, s[best], s[best], best):
                    best = j
            taken[best] = True
            chosen[t] = best
        return 0
    n_used = gather_user(
        n, width, items, cat_indptr, cat_indices, cat_data, pair_of_entry, n_shared, stamp, user,
        ent_count, ent_slot, slot_cat, slot_share, used,
    )
    slot_val[0] = 0.0
    total_w = rank_w[0]
    for g in range(n_cat):
        mass[g] = 0.0
        base[g] = divergence_term(p[g], 0.0 / total_w, alpha, divergence)
    n_touched = 0
    total_w = 0.0
    for t in range(kk):
        w = rank_w[t]
        total_w += w
        for i in range(n_touched):
            g = touched[i]
            base[g] = divergence_term(p[g], mass[g] / total_w, alpha, divergence)
        shared = 0.0
        for g in range(n_cat):
            shared += base[g]
        for i in range(n_used):
            slot = used[i]
            g = slot_cat[slot]
            q = (mass[g] + w * slot_share[slot]) / total_w
            slot_val[slot] = divergence_term(p[g], q, alpha, divergence) - base[g]
        best = -1
        best_obj = 0.0
        for j in range(n):
            if taken[j]:
                continue
            total = shared
            row = j * width
            for c in range(width):
                total += slot_val[ent_slot[row + c]]
            obj = (1.0 - lam) * s[j] - lam * divergence_finish(total, divergence)
            if best < 0 or is_better(obj, s[j], j, best_obj, s[best], best):
                best = j
                best_obj = obj
        taken[best] = True
        chosen[t] = best
        row = best * width
        for c in range(ent_count[best]):
            slot = ent_slot[row + c]
            g = slot_cat[slot]
            was_empty = mass[g] == 0.0
            mass[g] += w * slot_share[slot]
            if was_empty and mass[g] != 0.0:  # mass only grows: each category enters once
                touched[n_touched] = g
                n_touched += 1
    return n_used


@compiled()
def sort_by_score(chosen, kk, s):
    """Insertion sort of ``chosen[:kk]`` by (raw score desc, position asc)."""
    for a in range(1, kk):
        j = chosen[a]
        b = a
        while b > 0 and (s[chosen[b - 1]] < s[j] or (s[chosen[b - 1]] == s[j] and chosen[b - 1] > j)):
            chosen[b] = chosen[b - 1]
            b -= 1
        chosen[b] = j


@compiled(parallel=True)
def rerank_kernel(
    indptr, cand_items, scores, cat_indptr, cat_indices, cat_data, targets, target_rows, lam,
    k, alpha, divergence, rank_w, normalize, safeguard, order_by_score, max_n,
    out_indptr, out_pos, out_objective, out_used_topk, method, quotas, quota_target, pm2_theta,
    refine, max_swaps, out_swaps, out_cap_hit,
):
    """Rerank every user row of the candidate CSR.

    Inputs (dtypes fixed at the boundary): ``indptr`` int64 (U+1), ``cand_items`` int64,
    ``scores`` float64, category CSR (int64, int64, float64), ``targets`` float64 (T × G),
    ``target_rows`` int64 (U) row of ``targets`` for each user, ``lam`` float64 (U),
    ``rank_w`` float64 (≥ k). Outputs: ``out_pos`` global candidate positions in output order
    (CSR by ``out_indptr``), the objective of each output list and whether the safeguard
    returned top-k.

    ``method``: ``METHOD_GREEDY`` (Steck), ``METHOD_QUOTA`` (quota greedy with ``quotas``
    int64 (T × G, by target row) and ``quota_target`` int64 (U) the quota units each list
    must meet, :mod:`rerank.quota`; the safeguard keeps top-k only if it meets them too) or
    ``METHOD_PM2`` (:mod:`rerank.pm2` with ``pm2_theta``; no safeguard).

    ``refine`` (:mod:`rerank.refine`; not with PM-2): start from the better of the list and
    top-k (the safeguard's comparison, whatever ``safeguard``), then improving single swaps,
    at most ``max_swaps`` (< 0: no cap); per user the swaps made (``out_swaps``) and whether
    the cap stopped the search (``out_cap_hit``). ``out_used_topk`` then says the output is
    plain top-k (started from it, no swap made).
    """
    n_users = indptr.shape[0] - 1
    n_cat = targets.shape[1]
    n_blocks = (n_users + USERS_PER_BLOCK - 1) // USERS_PER_BLOCK
    pair_of_entry, pair_cat, pair_share = share_pairs(cat_indptr, cat_indices, cat_data, n_cat)
    n_shared = pair_cat.shape[0]
    for block in prange(n_blocks):
        s = np.empty(max_n, dtype=np.float64)
        taken = np.empty(max_n, dtype=np.bool_)
        mass = np.empty(n_cat, dtype=np.float64)
        base = np.empty(n_cat, dtype=np.float64)
        chosen = np.empty(max(k, 1), dtype=np.int64)
        top = np.empty(max(k, 1), dtype=np.int64)
        touched = np.empty(n_cat, dtype=np.int64)
        ent_count = np.empty(max_n, dtype=np.int64)
        capacity = 4 * max_n
        ent_slot = np.empty(capacity, dtype=np.int64)
        slot_cat = np.empty(n_shared + 1 + capacity, dtype=np.int64)
        slot_share = np.empty(n_shared + 1 + capacity, dtype=np.float64)
        slot_val = np.empty(n_shared + 1 + capacity, dtype=np.float64)
        used = np.empty(n_shared + 1 + capacity, dtype=np.int64)
        stamp = np.full(n_shared + 1, -1, dtype=np.int64)
        slot_cat[1 : n_shared + 1] = pair_cat
        slot_share[1 : n_shared + 1] = pair_share
        refine_work = refine_buffers(n_cat, n_shared + 1 + capacity, max_n, capacity)
        first = block * USERS_PER_BLOCK
        last = min(first + USERS_PER_BLOCK, n_users)
        for u in range(first, last):
            lo = indptr[u]
            n = indptr[u + 1] - lo
            kk = min(k, n)
            out_swaps[u] = 0
            out_cap_hit[u] = False
            if kk == 0:
                out_objective[u] = 0.0
                out_used_topk[u] = False
                continue
            items = cand_items[lo : lo + n]
            normalize_scores(scores[lo : lo + n], s, n, normalize)
            p = targets[target_rows[u]]
            lam_u = lam[u]
            width = 0
            # λ = 0 lists are plain top-k, already optimal; quota lists may still gain score
            do_refine = refine != REFINE_NONE and kk < n and method != METHOD_PM2 and (
                lam_u != 0.0 or method == METHOD_QUOTA
            )
            if lam_u != 0.0 or do_refine:
                for j in range(n):
                    width = max(width, cat_indptr[items[j] + 1] - cat_indptr[items[j]])
                if n * width > capacity:  # rare: items with many categories; grow
                    capacity = 2 * n * width
                    ent_slot = np.empty(capacity, dtype=np.int64)
                    slot_cat = np.empty(n_shared + 1 + capacity, dtype=np.int64)
                    slot_share = np.empty(n_shared + 1 + capacity, dtype=np.float64)
                    slot_val = np.empty(n_shared + 1 + capacity, dtype=np.float64)
                    used = np.empty(n_shared + 1 + capacity, dtype=np.int64)
                    slot_cat[1 : n_shared + 1] = pair_cat
                    slot_share[1 : n_shared + 1] = pair_share
                    refine_work = refine_buffers(n_cat, n_shared + 1 + capacity, max_n, capacity)
            n_used = -1
            if method == METHOD_QUOTA:
                quota_one_user(
                    n, kk, s, items, cat_indptr, cat_indices, cat_data, p, lam_u, alpha, divergence,
                    rank_w, quotas[target_rows[u]], quota_target[u], mass, base, taken, chosen,
                )
            elif method == METHOD_PM2:
                pm2_one_user(
                    n, kk, s, items, cat_indptr, cat_indices, cat_data, p, lam_u, pm2_theta, rank_w,
                    taken, chosen,
                )
            elif lam_u == 0.0:  # plain top-k by the input scores (normalising may merge near-ties)
                top_k_positions(scores[lo : lo + n], n, kk, chosen)
            else:
                n_used = greedy_one_user(
                    n, kk, s, items, cat_indptr, cat_indices, cat_data, p, lam_u, alpha,
                    divergence, rank_w, mass, base, taken, chosen, width, pair_of_entry, n_shared,
                    stamp, u, ent_count, ent_slot, slot_cat, slot_share, slot_val, used, touched,
                )
            objective = list_objective(
                chosen, kk, s, items, cat_indptr, cat_indices, cat_data, p, lam_u, alpha,
                divergence, rank_w, mass,
            )
            used_topk = False
            if (safeguard or refine != REFINE_NONE) and lam_u != 0.0 and method != METHOD_PM2:
                top_k_positions(scores[lo : lo + n], n, kk, top)
                top_objective = list_objective(
                    top, kk, s, items, cat_indptr, cat_indices, cat_data, p, lam_u, alpha,
                    divergence, rank_w, mass,
                )
                tol = TIE_RTOL * (1.0 + max(abs(objective), abs(top_objective)))
                if top_objective > objective + tol and (
                    method != METHOD_QUOTA
                    or met_units(top, kk, items, cat_indptr, cat_indices, cat_data, quotas[target_rows[u]])
                    >= quota_target[u]
                ):
                    for r in range(kk):
                        chosen[r] = top[r]
                    objective = top_objective
                    used_topk = True
            if do_refine:
                if n_used < 0:
                    n_used = gather_user(
                        n, width, items, cat_indptr, cat_indices, cat_data, pair_of_entry, n_shared, stamp, u,
                        ent_count, ent_slot, slot_cat, slot_share, used,
                    )
                use_quota = method == METHOD_QUOTA
                swaps, cap_hit = refine_one_user(
                    n, kk, s, p, lam_u, alpha, divergence, rank_w, chosen, taken, max_swaps,
                    quotas[target_rows[u]] if use_quota else quotas[0], quota_target[u], use_quota, ent_count,
                    ent_slot, width, slot_cat, slot_share, used, n_used, mass, base, refine_work,
                )
                out_swaps[u] = swaps
                out_cap_hit[u] = cap_hit
                if swaps:
                    objective = list_objective(
                        chosen, kk, s, items, cat_indptr, cat_indices, cat_data, p, lam_u, alpha, divergence,
                        rank_w, mass,
                    )
                    used_topk = False
            out_objective[u] = objective
            out_used_topk[u] = used_topk
            if order_by_score:
                sort_by_score(chosen, kk, scores[lo : lo + n])
            start = out_indptr[u]
            for r in range(kk):
                out_pos[start + r] = lo + chosen[r]
