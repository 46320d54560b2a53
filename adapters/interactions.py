"""Long interaction frames -> the users × items CSR matrix recommenders train on.

``interaction_matrix(frame)`` factorises the user and item ids (first-appearance order, or
the order given by ``users`` / ``items``) and sums repeated (user, item) rows. The returned id
indexes are the external-id mappings every adapter takes (``user_ids``, ``item_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank.errors import InputError
from rerank.params import show
from rerank.schemas import require_columns, require_no_null_ids, require_nonnegative_weights


@dataclass(frozen=True)
class Interactions:
    """``matrix`` (users × items ``csr_matrix``); ``user_ids`` / ``item_ids``: the external id
    of each row / column."""

    matrix: sp.csr_matrix
    user_ids: pd.Index
    item_ids: pd.Index


def interaction_matrix(
    frame: pd.DataFrame,
    *,
    weight: str | None = None,
    users=None,
    items=None,
    dtype=np.float32,
) -> Interactions:
    """``M[u, i] = Σ weight`` over the rows of (u, i) (1 per row without ``weight``).

    ``users`` / ``items`` fix the row / column order (and may hold ids without interactions);
    an id of ``frame`` missing from them raises ``ValueError``.
    """
    require_columns(frame, ["user_id", "item_id"] + ([weight] if weight else []), "interactions")
    require_no_null_ids(frame, ["user_id", "item_id"], "interactions")
    values = (
        require_nonnegative_weights(frame[weight], "interactions")
        if weight
        else np.ones(len(frame), dtype=np.float64)
    )
    user_index = pd.Index(pd.unique(frame["user_id"])) if users is None else pd.Index(users)
    item_index = pd.Index(pd.unique(frame["item_id"])) if items is None else pd.Index(items)
    rows = user_index.get_indexer(frame["user_id"])
    cols = item_index.get_indexer(frame["item_id"])
    for what, pos, column in (("user", rows, "user_id"), ("item", cols, "item_id")):
        if (pos < 0).any():
            bad = frame[column].iloc[np.flatnonzero(pos < 0)[0]]
            raise InputError(f"interactions {what} {show(bad)} is not in the given {what}s")
    matrix = sp.csr_matrix(
        (values.astype(dtype), (rows, cols)), shape=(len(user_index), len(item_index)), dtype=dtype
    )
    matrix.sum_duplicates()
    return Interactions(matrix, user_index, item_index)
