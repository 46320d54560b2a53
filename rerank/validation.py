"""Parameter checks made once, at the boundary of every public entry point.

Every failure is a ``ValueError`` or ``TypeError`` whose message names the parameter,
column, user or item at fault.
"""

from __future__ import annotations

import numbers

import numpy as np

from rerank.divergences import DIVERGENCE_CODES
from rerank.kernel import NORMALIZE_CODES

ORDERS = ("greedy", "score")


def check_k(k) -> int:
    """``k`` is a whole number ≥ 1."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be a whole number >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def check_unit_interval(name: str, value, *, open_interval: bool = False) -> float:
    """A real number in [0, 1] (or (0, 1) when ``open_interval``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if open_interval:
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    elif not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_lam_array(lam, n_users: int) -> np.ndarray:
    """Per-user λ: a scalar in [0, 1] broadcast to all users, or one finite value per user."""
    if np.ndim(lam) == 0:
        return np.full(n_users, check_unit_interval("lam", lam), dtype=np.float64)
    arr = np.asarray(lam)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"lam must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.shape != (n_users,):
        raise ValueError(f"lam must be a scalar or have one value per user ({n_users}), got shape {arr.shape}")
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))
    if bad.size:
        raise ValueError(f"lam must lie in [0, 1]; user row {bad[0]} has lam={arr[bad[0]]}")
    return arr


def check_choice(name: str, value, choices) -> object:
    """``value`` is one of ``choices``."""
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {shown}; got {value!r}")
    return value


def divergence_code(divergence: str) -> int:
    return DIVERGENCE_CODES[check_choice("divergence", divergence, tuple(DIVERGENCE_CODES))]


def normalize_code(normalize) -> int:
    return NORMALIZE_CODES[check_choice("normalize", normalize, tuple(NORMALIZE_CODES))]


def check_order(order: str) -> bool:
    """Returns True when the output is re-sorted by score."""
    return check_choice("order", order, ORDERS) == "score"


def check_finite(name: str, values: np.ndarray) -> None:
    """No NaN or inf; the message names the first offending row."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{name} must be finite; row {bad[0]} is {values[bad[0]]!r} ({bad.size} such rows)")


def require_columns(frame, columns, what: str) -> None:
    """``frame`` is a DataFrame with every column in ``columns``."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} is missing column(s) {missing}; it has {list(frame.columns)}"
        )


def require_no_null_ids(frame, columns, what: str) -> None:
    """Id columns hold no nulls; the message names the column and the first row."""
    for column in columns:
        nulls = frame[column].isna().to_numpy()
        if nulls.any():
            row = frame.index[np.flatnonzero(nulls)[0]]
            raise ValueError(f"{what} column '{column}' has a null id at row {row!r}")


def require_numeric(series, what: str) -> np.ndarray:
    """A numeric column as float64; strings or other types raise ``TypeError``."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        raise TypeError(
            f"{what} column '{series.name}' must be numeric, got dtype {series.dtype}"
        )
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def require_nonnegative_weights(series, what: str) -> np.ndarray:
    """A finite, nonnegative numeric weight column as float64."""
    values = require_numeric(series, what)
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    if bad.size:
        row = series.index[bad[0]]
        raise ValueError(
            f"{what} column '{series.name}' must be finite and >= 0; row {row!r} is {values[bad[0]]!r}"
        )
    return values
