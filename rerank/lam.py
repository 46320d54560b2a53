"""Per-user λ for one call (docs/design.md §9): the reranker's ``lam`` is a number (every
user), ``"auto"`` (searched per user by the engine), a mapping / Series ``user_id -> λ`` or
the name of a candidates column constant within each user."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rerank.errors import InputError, InputTypeError
from rerank.frames import CandidateCSR, per_user_values
from rerank.ids import show_id
from rerank.params import check_lam_array

__all__ = ["lam_from_mapping", "lam_per_user"]


def lam_per_user(lam, resolved, candidates: pd.DataFrame, csr: CandidateCSR) -> np.ndarray:
    """λ of each user of ``csr`` (its row order): ``lam`` as given to the reranker, ``resolved``
    the checked option (``"auto"``: zeros, the engine searches them)."""
    if resolved == "auto":
        return np.zeros(len(csr.users), dtype=np.float64)
    if isinstance(lam, str):
        values = per_user_values(candidates, lam, csr)
        return check_lam_array(values, len(csr.users), csr.users)
    if isinstance(lam, Mapping | pd.Series):
        return lam_from_mapping(lam, csr.users)
    return np.full(len(csr.users), resolved, dtype=np.float64)


def lam_from_mapping(mapping, users: pd.Index) -> np.ndarray:
    """Per-user λ from a mapping / Series ``user_id -> λ``; every user needs a value."""
    try:
        series = pd.Series(mapping)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"lam mapping cannot be read as user_id -> number: {exc}") from None
    if not series.index.is_unique:
        repeated = series.index[series.index.duplicated()][0]
        raise InputError(f"lam mapping has several values for user {show_id(repeated)}")
    if len(series) and not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
        raise InputTypeError(f"lam mapping values must be numbers, got dtype {series.dtype}")
    values = series.reindex(users).to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.flatnonzero(~users.isin(series.index)) if len(users) else np.array([], dtype=np.int64)
    if missing.size:
        raise InputError(f"lam has no value for user {show_id(users[missing[0]])}")
    return check_lam_array(values, len(users), users)
