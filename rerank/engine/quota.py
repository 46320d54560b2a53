"""Quota mode (``min_share``): hard proportional shares, docs/design.md §4.3.

**Quotas.** For a user with target ``p`` and list size ``k``, category ``g`` is *protected*
when ``p_g ≥ threshold`` (and ``p_g > 0``); its quota is ``r_g = ⌊ρ · k · p_g⌋`` (``ρ = 1`` for
``min_share=True``, ``ρ = min_share`` for a float in (0, 1]); a tiny ``1e-9`` is added before
the floor so that e.g. ``10 · 0.3`` counts as 3. Unprotected categories have ``r_g = 0``.
``Σ_g r_g ≤ ρ k ≤ k``.

**Membership.** An item *carries* ``g`` when ``A[i, g] > 0``; an item carrying several
protected categories counts toward each of them. A list ``L`` meets
``met(L) = Σ_g min(r_g, c_g(L))`` quota units, ``c_g(L) = #{i ∈ L : A[i, g] > 0}``; the
shortfall is ``Σ_g r_g - met(L)``.

**Guarantee.** Let ``M* = max_{|L| = min(k, n)} met(L)`` over all subsets of the candidates
(computed exactly by :mod:`rerank.engine.feasibility`). The quota greedy returns a list with
``met(L) = M*``: every quota is met whenever some k-subset meets them all (``M* = Σ r_g``),
otherwise as many quota units as any k-subset can meet, and the shortfall ``Σ r_g - M*``
is reported per user.

**Algorithm (one user).** Steck's greedy restricted to *admissible* candidates: at step ``t``
(``b = k' - t - 1`` slots left after it) a candidate ``j`` is admissible when the list
``L ∪ {j}`` can still be completed to ``M*`` units, i.e. when
``can_meet(d - gain(j), b, supply - j, M* - met(L) - gain(j))`` holds, where ``d`` is the
remaining deficit per protected category. The invariant "the current list can be completed to
M*" holds at the start and is kept at every step (the next item of any completion is
admissible), so the greedy never gets stuck and ends at ``M*``. Among admissible candidates it
maximises the usual objective ``(1-λ) s_j - λ C(p, q(L ∪ {j}))``, with the kernel's tie rule;
once all reachable quotas are met every candidate is admissible and the steps are exactly
Steck's.

``can_meet`` is an exact branch-and-bound over candidate *types* (the set of protected
categories an item carries; candidates of the same type are interchangeable for the quotas).
It branches on the open category ``g`` with the fewest carriers: either the completion
contains an item carrying ``g`` — one branch per type ``T ∋ g``, where branch ``i`` forbids
the types of branches ``< i`` so no multiset is visited twice — or it contains none, and ``g``
is given up (``d_g = 0``). It prunes with the bound
``min(Σ_g min(d_g, supply_g), b · max_T |T ∩ open|) < need``. The number of open categories
is at most ``Σ r_g ≤ k``, so the search is small for list-sized k.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from rerank._numba import compiled
from rerank.engine.divergences import divergence_finish, divergence_term
from rerank.engine.ties import is_better

__all__ = ["QUOTA_EPS", "can_meet", "max_met", "met_units", "quota_one_user"]

QUOTA_EPS = 1e-9


@compiled(inline="always")
def take_type(t, d, cnt, pat, dec):
    """Place one item of type ``t``: each quota it carries that is still open (``d_h > 0``)
    drops by one, the decremented quotas go to ``dec``; returns their number (the units met)."""
    gain = 0
    for h in range(d.shape[0]):
        if pat[t, h] and d[h] > 0:
            d[h] -= 1
            dec[gain] = h
            gain += 1
    cnt[t] -= 1
    return gain


@compiled(inline="always")
def untake_type(d, dec, gain):
    """Reopen the quotas :func:`take_type` decremented (the caller restores ``cnt``)."""
    for r in range(gain):
        d[dec[r]] += 1


@compiled()
def can_meet(d, b, cnt, pat, need):
    """Can at most ``b`` more items, drawn from ``cnt[t]`` items of each type ``t`` (carrying the
    protected categories ``pat[t, :]``), add ``need`` quota units to deficits ``d``?

    Exact (see the module docstring). ``d`` and ``cnt`` are modified during the search and
    restored before returning.
    """
    if need <= 0:
        return True
    if b <= 0:
        return False
    m = d.shape[0]
    n_types = cnt.shape[0]
    bound = 0
    branch_g = -1
    branch_supply = 0
    for g in range(m):
        if d[g] <= 0:
            continue
        supply = 0
        for t in range(n_types):
            if pat[t, g]:
                supply += cnt[t]
        bound += min(d[g], supply)
        if supply > 0 and (branch_g < 0 or supply < branch_supply):
            branch_g = g
            branch_supply = supply
    if bound < need:
        return False
    best_gain = 0
    for t in range(n_types):
        if cnt[t] > 0:
            gain = 0
            for g in range(m):
                if pat[t, g] and d[g] > 0:
                    gain += 1
            best_gain = max(best_gain, gain)
    if b * best_gain < need:
        return False
    g = branch_g
    dec = np.empty(m, dtype=np.int64)
    saved = np.empty(n_types, dtype=np.int64)
    for t in range(n_types):
        saved[t] = cnt[t]
    found = False
    for t in range(n_types):
        if cnt[t] <= 0 or not pat[t, g]:
            continue
        gain = take_type(t, d, cnt, pat, dec)
        found = can_meet(d, b - 1, cnt, pat, need - gain)
        untake_type(d, dec, gain)
        if found:
            break
        cnt[t] = 0  # later branches contain no item of type t (those completions were searched)
    if not found:
        # completions with no item carrying g: every type carrying g is forbidden; give g up
        for t in range(n_types):
            if pat[t, g]:
                cnt[t] = 0
        d_g = d[g]
        d[g] = 0
        found = can_meet(d, b, cnt, pat, need)
        d[g] = d_g
    for t in range(n_types):
        cnt[t] = saved[t]
    return found


@compiled()
def max_met(d, b, cnt, pat):
    """``max`` quota units that at most ``b`` items can add to deficits ``d`` (exact)."""
    total = 0
    for g in range(d.shape[0]):
        total += max(d[g], 0)
    need = min(total, b * d.shape[0])
    while need > 0 and not can_meet(d, b, cnt, pat, need):
        need -= 1
    return need


@compiled()
def candidate_types(n, items, cats, qrow, type_of):
    """Protected categories of one user and the type of each candidate.

    Returns ``(prot, pat, cnt)``: ``prot[m]`` the categories with ``qrow > 0``; ``pat[T, m]``
    the distinct membership patterns (``A[i, prot[h]] > 0``) among the candidates; ``cnt[T]``
    how many candidates have each; ``type_of[j]`` (written) the type of candidate ``j``.
    """
    n_cat = qrow.shape[0]
    slot = np.full(n_cat, -1, dtype=np.int64)
    m = 0
    for g in range(n_cat):
        if qrow[g] > 0:
            slot[g] = m
            m += 1
    prot = np.empty(m, dtype=np.int64)
    for g in range(n_cat):
        if slot[g] >= 0:
            prot[slot[g]] = g
    pat = np.zeros((max(n, 1), m), dtype=np.bool_)
    cnt = np.zeros(max(n, 1), dtype=np.int64)
    row = np.zeros(m, dtype=np.bool_)
    n_types = 0
    for j in range(n):
        row[:] = False
        item = items[j]
        for e in range(cats.indptr[item], cats.indptr[item + 1]):
            h = slot[cats.indices[e]]
            if h >= 0 and cats.data[e] > 0.0:
                row[h] = True
        found = -1
        for t in range(n_types):
            same = True
            for h in range(m):
                if pat[t, h] != row[h]:
                    same = False
                    break
            if same:
                found = t
                break
        if found < 0:
            found = n_types
            pat[found, :] = row
            n_types += 1
        cnt[found] += 1
        type_of[j] = found
    return prot, pat[:n_types], cnt[:n_types]


@compiled()
def met_units(chosen, length, items, cats, qrow):
    """``Σ_g min(r_g, c_g(L))`` for the list ``chosen[:length]`` (membership ``A[i, g] > 0``)."""
    n_cat = qrow.shape[0]
    count = np.zeros(n_cat, dtype=np.int64)
    for r in range(length):
        item = items[chosen[r]]
        for e in range(cats.indptr[item], cats.indptr[item + 1]):
            if cats.data[e] > 0.0:
                count[cats.indices[e]] += 1
    met = 0
    for g in range(n_cat):
        met += min(qrow[g], count[g])
    return met


@compiled()
def user_max_met(n, kk, items, cats, qrow):
    """``M* = max_{|L| = kk} met(L)`` over the user's ``n`` candidates (exact)."""
    type_of = np.empty(max(n, 1), dtype=np.int64)
    prot, pat, cnt = candidate_types(n, items, cats, qrow, type_of)
    d = np.empty(prot.shape[0], dtype=np.int64)
    for h in range(prot.shape[0]):
        d[h] = qrow[prot[h]]
    return max_met(d, kk, cnt, pat)


@compiled(parallel=True)
def max_met_users(users, indptr, cand_items, cats, quotas, target_rows, k, out):
    """``out[r] = M*`` of user ``users[r]`` (parallel over users)."""
    for r in prange(users.shape[0]):
        u = users[r]
        lo = indptr[u]
        n = indptr[u + 1] - lo
        out[r] = user_max_met(n, min(k, n), cand_items[lo : lo + n], cats, quotas[target_rows[u]])


@compiled()
def quota_one_user(n, kk, s, items, cats, p, lam, alpha, divergence, rank_w, start_mass, start_w, qrow, target, buf):
    """The quota greedy for one user (module docstring); writes ``buf.chosen[:kk]`` (work
    buffers ``buf.mass``, ``buf.base``, ``buf.taken``).

    ``target`` is ``M*`` (from :func:`rerank.engine.feasibility.max_quota_met`); the list returned
    meets exactly that many quota units.
    """
    n_cat = p.shape[0]
    mass, base, taken, chosen = buf.mass, buf.base, buf.taken, buf.chosen
    type_of = np.empty(max(n, 1), dtype=np.int64)
    prot, pat, cnt = candidate_types(n, items, cats, qrow, type_of)
    m = prot.shape[0]
    n_types = cnt.shape[0]
    d = np.empty(m, dtype=np.int64)
    for h in range(m):
        d[h] = qrow[prot[h]]
    admissible = np.empty(max(n_types, 1), dtype=np.bool_)
    dec = np.empty(max(m, 1), dtype=np.int64)
    need = target
    for g in range(n_cat):  # a shown prefix's mass (zero without one); quotas count the new items only
        mass[g] = start_mass[g]
    taken[:n] = False
    total_w = start_w
    for t in range(kk):
        w = rank_w[t]
        total_w += w
        left = kk - t - 1
        for tt in range(n_types):
            admissible[tt] = True
            if need <= 0 or cnt[tt] == 0:
                continue
            gain = take_type(tt, d, cnt, pat, dec)
            admissible[tt] = can_meet(d, left, cnt, pat, need - gain)
            cnt[tt] += 1
            untake_type(d, dec, gain)
        shared = 0.0
        if lam != 0.0:
            for g in range(n_cat):
                base[g] = divergence_term(p[g], mass[g] / total_w, alpha, divergence) * cats.weight[g]
                shared += base[g]
        best = -1
        best_obj = 0.0
        for sweep in range(2):  # the second sweep only runs if `target` was unreachable
            if best >= 0:
                break
            for j in range(n):
                if taken[j] or (sweep == 0 and not admissible[type_of[j]]):
                    continue
                if lam == 0.0:
                    obj = s[j]
                else:
                    total = shared
                    item = items[j]
                    for e in range(cats.indptr[item], cats.indptr[item + 1]):
                        g = cats.indices[e]
                        q = (mass[g] + w * cats.data[e]) / total_w
                        total += divergence_term(p[g], q, alpha, divergence) * cats.weight[g] - base[g]
                    obj = (1.0 - lam) * s[j] - lam * divergence_finish(total, divergence)
                if best < 0 or is_better(obj, s[j], j, best_obj, s[best], best):
                    best = j
                    best_obj = obj
        taken[best] = True
        chosen[t] = best
        tt = type_of[best]
        cnt[tt] -= 1
        for h in range(m):
            if pat[tt, h] and d[h] > 0:
                d[h] -= 1
                need -= 1
        item = items[best]
        for e in range(cats.indptr[item], cats.indptr[item + 1]):
            mass[cats.indices[e]] += w * cats.data[e]
