"""Steck's greedy for one user, with the per-step caching that makes it fast (docs/design.md §3, §6).

At step ``t`` (filling position ``t+1`` with rank weight ``w_{t+1}``) the greedy adds the
candidate maximising

    (1-λ) · s_j  -  λ · C(p, q(L ∪ {j}))

where ``q_g(L ∪ {j}) = (M_g + w_{t+1} A[i_j, g]) / W_{t+1}``, ``M_g = Σ_{l∈L} w_{r(l)} A[l, g]``
and ``W_{t+1} = Σ_{r ≤ t+1} w_r`` (the list normalised over the positions filled so far).
(The constant ``(1-λ) Σ_{l∈L} s_l`` is dropped from the comparison.)

Every divergence is a sum of per-category terms, ``C = finish(Σ_g term(p_g, q_g))``
(:mod:`rerank.engine.divergences`). At a step all candidates share ``W_{t+1}``, so with
``B_g = c_g term(p_g, M_g / W_{t+1})`` and ``S = Σ_g B_g`` precomputed in O(G), a candidate
costs one term per category it carries: ``D_j = S + Σ_{g ∈ cats(j)} (c_g term(p_g, q_g(L ∪ {j})) - B_g)``.
A user costs O(k · (G + n · ḡ)) term evaluations. ``c_g = w_{a(g)}`` is the weight of the
category's attribute (several attributes in one objective, ``Σ_a w_a C(p_a, q_a)``, is one sum
of weighted terms over the concatenated categories; with one attribute ``c_g = 1`` exactly).

The work buffers of a block of users travel as one :class:`Buffers` named tuple; the numbered
``(category, share)`` pairs of the category matrix as :class:`SharePairs`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rerank._numba import compiled
from rerank.engine.divergences import divergence_finish, divergence_term
from rerank.engine.ties import is_better

__all__ = ["Buffers", "SharePairs", "greedy_one_user", "new_buffers", "share_pairs"]

PAIRS_PER_CATEGORY = 8  # distinct (category, share) pairs numbered per category, see share_pairs


class SharePairs(NamedTuple):
    """``pair_of_entry`` (one per category-CSR entry: its pair, or -1), and each numbered
    pair's category ``cat`` and share ``share``."""

    pair_of_entry: np.ndarray
    cat: np.ndarray
    share: np.ndarray


class Buffers(NamedTuple):
    """Work buffers of one block of users, allocated once per block (:func:`new_buffers`).

    ``s`` normalised scores, ``taken``, ``ent_count`` (≥ n); ``mass``, ``base``, ``touched`` (G);
    ``chosen``, ``top`` (≥ k); ``ent_slot`` (capacity ≥ n·width); ``slot_cat``, ``slot_share``,
    ``slot_val``, ``used`` (n_shared + 1 + capacity), the numbered pairs in ``1..n_shared``;
    ``stamp`` (n_shared + 1) which user last used a numbered pair (see :func:`gather_user`).
    """

    s: np.ndarray
    taken: np.ndarray
    mass: np.ndarray
    base: np.ndarray
    chosen: np.ndarray
    top: np.ndarray
    touched: np.ndarray
    ent_count: np.ndarray
    ent_slot: np.ndarray
    slot_cat: np.ndarray
    slot_share: np.ndarray
    slot_val: np.ndarray
    used: np.ndarray
    stamp: np.ndarray


@compiled()
def share_pairs(cats, n_cat):
    """Number the distinct ``(category, share)`` pairs of the category matrix: the arrays of
    :class:`SharePairs`.

    Only the first ``PAIRS_PER_CATEGORY`` distinct shares of a category are numbered (items
    sharing their mass equally have at most a few); entries with other shares get -1 and a
    slot of their own per user, which gives the same values (numbering only saves work).
    """
    nnz = cats.indices.shape[0]
    pair_of_entry = np.empty(nnz, dtype=np.int64)
    known = np.zeros(n_cat, dtype=np.int64)
    table = np.empty(n_cat * PAIRS_PER_CATEGORY, dtype=np.int64)
    pair_cat = np.empty(n_cat * PAIRS_PER_CATEGORY, dtype=np.int64)
    pair_share = np.empty(n_cat * PAIRS_PER_CATEGORY, dtype=np.float64)
    n_pairs = 0
    for e in range(nnz):
        g = cats.indices[e]
        a = cats.data[e]
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
def put_pairs(buf, pairs):
    """The numbered pairs into slots ``1..n_shared``. An element loop, not a slice assignment:
    numba compiles a slice assignment with its shape-mismatch error message, which costs
    seconds of the first call's compile."""
    for i in range(pairs.cat.shape[0]):
        buf.slot_cat[i + 1] = pairs.cat[i]
        buf.slot_share[i + 1] = pairs.share[i]


@compiled()
def new_buffers(max_n, k, n_cat, pairs, capacity):
    """Buffers for users of at most ``max_n`` candidates, ``k`` positions, ``capacity`` slots."""
    n_shared = pairs.cat.shape[0]
    buf = Buffers(
        np.empty(max_n, dtype=np.float64), np.empty(max_n, dtype=np.bool_), np.empty(n_cat, dtype=np.float64),
        np.empty(n_cat, dtype=np.float64), np.empty(max(k, 1), dtype=np.int64), np.empty(max(k, 1), dtype=np.int64),
        np.empty(n_cat, dtype=np.int64), np.empty(max_n, dtype=np.int64), np.empty(capacity, dtype=np.int64),
        np.empty(n_shared + 1 + capacity, dtype=np.int64), np.empty(n_shared + 1 + capacity, dtype=np.float64),
        np.empty(n_shared + 1 + capacity, dtype=np.float64), np.empty(n_shared + 1 + capacity, dtype=np.int64),
        np.full(n_shared + 1, -1, dtype=np.int64),
    )
    put_pairs(buf, pairs)
    return buf


@compiled()
def grow_slots(buf, pairs, capacity):
    """The same buffers with room for ``capacity`` category entries (rare: many categories)."""
    n_shared = pairs.cat.shape[0]
    out = Buffers(
        buf.s, buf.taken, buf.mass, buf.base, buf.chosen, buf.top, buf.touched, buf.ent_count,
        np.empty(capacity, dtype=np.int64), np.empty(n_shared + 1 + capacity, dtype=np.int64),
        np.empty(n_shared + 1 + capacity, dtype=np.float64), np.empty(n_shared + 1 + capacity, dtype=np.float64),
        np.empty(n_shared + 1 + capacity, dtype=np.int64), buf.stamp,
    )
    put_pairs(out, pairs)
    return out


@compiled()
def gather_user(n, width, items, cats, pairs, user, buf):
    """Lay one user's candidate categories out contiguously, as *slots*.

    Candidate ``j`` owns the row ``ent_slot[j*width : (j+1)*width]``: its ``ent_count[j]``
    categories (in the item's CSR order), then padding with slot 0. A slot is a distinct pair
    ``(g, a) = (slot_cat, slot_share)``: at a step every candidate carrying ``(g, a)`` extends
    the list to the same ``q_g = (M_g + w a) / W``, so the term is computed once per slot, not
    once per candidate (items with 1-3 equally shared categories: at most 3G slots, whatever
    n). Slots ``1..n_shared`` are the numbered pairs of :func:`share_pairs`; other entries get
    fresh slots after them. Slot 0 is the padding: its value stays 0.0, so every row is summed
    with the same trip count (no mispredicted loop exits). ``used[:n_used]`` lists the slots this
    user needs (``stamp`` marks them with ``user``); returns ``n_used``.
    """
    pair_of_entry = pairs.pair_of_entry
    stamp, used, ent_slot = buf.stamp, buf.used, buf.ent_slot
    n_used = 0
    fresh = pairs.cat.shape[0] + 1
    for j in range(n):
        item = items[j]
        row = j * width
        c = 0
        for e in range(cats.indptr[item], cats.indptr[item + 1]):
            pid = pair_of_entry[e]
            if pid >= 0:
                slot = pid + 1
                used[n_used] = slot
                n_used += stamp[slot] != user
                stamp[slot] = user
            else:
                slot = fresh
                fresh += 1
                buf.slot_cat[slot] = cats.indices[e]
                buf.slot_share[slot] = cats.data[e]
                used[n_used] = slot
                n_used += 1
            ent_slot[row + c] = slot
            c += 1
        buf.ent_count[j] = c
        while c < width:
            ent_slot[row + c] = 0
            c += 1
    return n_used


@compiled()
def greedy_one_user(n, kk, s, items, cats, p, lam, alpha, divergence, rank_w, start_mass, start_w, width, pairs,
                    user, buf):
    """Steck's greedy for one user; writes local positions into ``buf.chosen[:kk]``, returns the
    number of slots gathered (:func:`gather_user`; 0 for λ = 0, which gathers none).

    A shown prefix (docs/design.md §9.3) enters as ``start_mass`` (G: ``Σ_r w_r A[shown_r, g]``)
    and ``start_w`` (``Σ_r w_r`` over the shown positions); ``rank_w`` then starts at the first
    position after the prefix. Without one both are zero and every value is the same as before.

    ``width`` ≥ the most categories of a candidate (``buf.ent_slot`` holds ``n · width``).
    Per step ``t`` the cost is: the terms ``B_g`` of the categories already in the list (a
    category with ``M_g = 0`` has ``q_g = 0`` whatever ``W``, so its term is computed once per
    user), one term per slot (see :func:`gather_user`), then a sum of ``width`` cached slot
    values per candidate. Every value is computed with the same operations in the same order as
    the direct formula ``D_j = S + Σ_{g∈cats(j)} (c_g term(p_g, (M_g + w a)/W) - B_g)`` (the padding
    adds exact zeros), so the lists are those of the direct formula.
    """
    n_cat = p.shape[0]
    cat_w = cats.weight
    taken, chosen, mass, base, touched = buf.taken, buf.chosen, buf.mass, buf.base, buf.touched
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
    n_used = gather_user(n, width, items, cats, pairs, user, buf)
    ent_count, ent_slot, used = buf.ent_count, buf.ent_slot, buf.used
    slot_cat, slot_share, slot_val = buf.slot_cat, buf.slot_share, buf.slot_val
    slot_val[0] = 0.0
    total_w = rank_w[0]
    n_touched = 0
    for g in range(n_cat):
        mass[g] = start_mass[g]
        base[g] = divergence_term(p[g], 0.0 / total_w, alpha, divergence) * cat_w[g]
        if mass[g] != 0.0:  # shown before: its term changes with W at every step
            touched[n_touched] = g
            n_touched += 1
    total_w = start_w
    for t in range(kk):
        w = rank_w[t]
        total_w += w
        for i in range(n_touched):
            g = touched[i]
            base[g] = divergence_term(p[g], mass[g] / total_w, alpha, divergence) * cat_w[g]
        shared = 0.0
        for g in range(n_cat):
            shared += base[g]
        for i in range(n_used):
            slot = used[i]
            g = slot_cat[slot]
            q = (mass[g] + w * slot_share[slot]) / total_w
            slot_val[slot] = divergence_term(p[g], q, alpha, divergence) * cat_w[g] - base[g]
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
