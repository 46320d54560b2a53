"""Popularity groups of items: ``head``, ``mid`` and ``tail`` (Abdollahpouri et al., RecSys 2020).

    labels = rerank.popularity_categories(history)          # item_id, attribute, category
    item_categories = pd.concat([genres.assign(attribute="genre"), labels])

Sort the items by their number of interactions ``c_i`` (rows of ``history``), most first, and
lay their interactions end to end: ``T = Σ_i c_i``. Item ``i`` covers the stretch
``[B_i, B_i + c_i)`` of that line, where ``B_i`` is the interactions of the items *strictly*
more popular than ``i``. Then

* ``head``: the items covering the first ``head · T`` interactions, ``B_i < head · T``;
* ``tail``: the items covering the last ``tail · T``, ``A_i < tail · T`` with ``A_i`` the
  interactions of the items strictly *less* popular than ``i``;
* ``mid``: every other item (an item that would be both is ``head``).

**Ties.** ``B_i`` and ``A_i`` count only items with a different count, so items with equal
counts always share a label: the label depends on the count alone, never on the order of the
ids or of the rows (docs/design.md §8). The group that straddles a boundary belongs to the
group it reaches into, so ``head`` holds at least ``head · T`` interactions (slightly more when a
count group straddles the line), and likewise ``tail``.

Each row of ``history`` counts one interaction (repeated rows count again); a ``weight``
column is *not* used: popularity is how often an item was interacted with. Items that are not
in ``history`` get no row (they carry no popularity category and add nothing to that
attribute's list distribution).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from rerank.errors import InputError
from rerank.params import is_bool
from rerank.schemas import validate_history

__all__ = ["POPULARITY_ATTRIBUTE", "POPULARITY_GROUPS", "popularity_categories"]

POPULARITY_ATTRIBUTE = "popularity"
POPULARITY_GROUPS = ("head", "mid", "tail")


def _check_share(name: str, value) -> float:
    if is_bool(value) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{name} must be a share in [0, 1], got {value!r}")
    return float(value)


def popularity_categories(history, head: float = 0.2, tail: float = 0.2) -> pd.DataFrame:
    """Label every item of ``history`` ``head``, ``mid`` or ``tail`` (module docstring).

    Returns ``item_id, attribute, category`` (``attribute`` is ``"popularity"``), one row per
    distinct item, in order of first appearance in ``history``; ready to concatenate with other
    attributes as a reranker's ``item_categories``.
    """
    head = _check_share("head", head)
    tail = _check_share("tail", tail)
    if head + tail > 1.0:
        raise InputError(f"head + tail must be at most 1, got head={head} and tail={tail}")
    frame = validate_history(history).frame
    codes, items = pd.factorize(frame["item_id"], sort=False)
    counts = np.bincount(codes, minlength=len(items)).astype(np.int64)
    total = int(counts.sum())
    # interactions of the items with a strictly larger (B) / strictly smaller (A) count
    levels, level_of = np.unique(counts, return_inverse=True)
    level_mass = np.bincount(level_of, weights=counts, minlength=len(levels)).astype(np.int64)
    below = np.concatenate([[0], np.cumsum(level_mass)[:-1]])  # Σ over smaller levels
    above = total - below - level_mass  # Σ over larger levels
    more_popular = above[level_of]
    less_popular = below[level_of]
    labels = np.full(len(items), "mid", dtype=object)
    labels[less_popular < tail * total] = "tail"
    labels[more_popular < head * total] = "head"
    return pd.DataFrame({
        "item_id": items, "attribute": POPULARITY_ATTRIBUTE, "category": pd.array(labels, dtype="str"),
    })
