"""Slow, obviously-correct references for the adapter tests: plain Python loops per user."""

from __future__ import annotations


def top_n(score_of, users, n_items, n, seen=None, items=None):
    """Per user, the n best (item, score) pairs by score, ties by lower item index.

    ``score_of(u, i)`` returns a score or ``None`` (not a candidate); ``seen[u]`` is a set of
    items to skip; ``items`` restricts the catalogue.
    """
    out = {}
    catalogue = range(n_items) if items is None else sorted(set(items))
    for u in users:
        pairs = []
        for i in catalogue:
            if seen is not None and i in seen[u]:
                continue
            s = score_of(u, i)
            if s is not None:
                pairs.append((-float(s), i))
        pairs.sort()
        out[u] = [(i, -s) for s, i in pairs[:n]]
    return out


def seen_sets(matrix):
    """Row -> set of stored column indices of a scipy sparse matrix."""
    coo = matrix.tocoo()
    out = {u: set() for u in range(matrix.shape[0])}
    for r, c in zip(coo.row.tolist(), coo.col.tolist(), strict=True):
        out[r].add(c)
    return out


def frame_lists(frame, user_order=None):
    """Candidate frame -> {user: [(item, score), ...]} in frame order."""
    out = {}
    for u, i, s in zip(frame["user_id"], frame["item_id"], frame["score"], strict=True):
        out.setdefault(u, []).append((i, float(s)))
    if user_order is not None:
        for u in user_order:
            out.setdefault(u, [])
    return out
