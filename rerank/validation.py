"""The one validation layer: parameter and frame checks made at the boundary of every entry point.

The frame API (:class:`rerank.CalibratedReranker`), the array API (:func:`rerank.rerank_arrays`),
``rerank apply``, Spark and the simulator all call these functions, so the same bad input gives
the same error everywhere. Every failure is an :class:`InputError` (a ``ValueError``) or an
:class:`InputTypeError` (a ``TypeError`` *and* an ``InputError``) whose message names the
parameter, column, user or item at fault. The CLI reports these in one line with exit code 2;
any other exception is a bug and keeps its traceback.

Frame contracts (DESIGN §5; fallbacks are documented in ``docs/inputs.md``):

* ids (``user_id``, ``item_id``, ``category``) are non-null integers or strings, one kind per
  column; float columns whose values are all whole numbers count as integers. The same id
  must have the same kind in every frame (else no id could ever match).
* candidates ``user_id, item_id, score``: ``score`` real and finite; no duplicate
  ``(user_id, item_id)``. With ``on_invalid="skip"`` a user with an invalid row is skipped
  (and reported) instead of failing the call; rows without a ``user_id`` are dropped and counted.
* history ``user_id, item_id`` (+ ``weight`` finite ≥ 0, ``timestamp`` numeric or datetime):
  repeated rows add up.
* item categories ``item_id, category`` (+ ``weight`` finite ≥ 0): repeated rows add up.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rerank.engine.divergences import DIVERGENCE_CODES
from rerank.engine.kernel import NORMALIZE_CODES
from rerank.errors import InputError, InputTypeError
from rerank.grouping import duplicated_pairs

ORDERS = ("greedy", "score")
RANK_WEIGHT_NAMES = ("uniform", "dcg")
ON_INVALID = ("raise", "skip")

# Reasons a user is skipped with on_invalid="skip" (first matching reason is reported).
REASON_NULL_ITEM = "null item_id"
REASON_BAD_SCORE = "score missing or not a finite number"
REASON_DUPLICATE = "duplicate item_id"
SKIP_REASONS = (REASON_NULL_ITEM, REASON_BAD_SCORE, REASON_DUPLICATE)
SKIPPED_COLUMNS = ["user_id", "reason", "n_rows"]

__all__ = [
    "CANDIDATE_COLUMNS", "InputError", "InputTypeError", "check_k", "check_unit_interval", "validate_candidates",
    "validate_history", "validate_item_categories",
]




def show(value, width: int = 60) -> str:
    """``repr`` of a value for an error message: numpy scalars as plain Python values, long
    reprs cut to ``width`` characters."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------- parameters
def _is_bool(value) -> bool:
    return isinstance(value, bool | np.bool_)


def check_whole(name: str, value, minimum: int = 1) -> int:
    """A whole number ≥ ``minimum`` (booleans and floats refused)."""
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be a whole number >= {minimum}, got {show(value)}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_k(k) -> int:
    """``k`` is a whole number ≥ 1."""
    return check_whole("k", k)


def check_real(name: str, value) -> float:
    """A real number (not a bool, not a string)."""
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a number, got {show(value)}")
    return float(value)


def check_unit_interval(name: str, value, *, open_interval: bool = False) -> float:
    """A real number in [0, 1] (or (0, 1) when ``open_interval``)."""
    value = check_real(name, value)
    if open_interval:
        if not 0.0 < value < 1.0:
            raise InputError(f"{name} must lie in (0, 1), got {value}")
    elif not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_positive(name: str, value, *, allow_none: bool = True) -> float | None:
    """``None`` (when allowed) or a real number > 0 (``inf`` allowed)."""
    if value is None and allow_none:
        return None
    value = check_real(name, value)
    if not value > 0.0:
        raise InputError(f"{name} must be > 0, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """A real boolean (``"no"`` or ``0`` are refused rather than silently truthy/falsy)."""
    if not _is_bool(value):
        raise InputTypeError(f"{name} must be True or False, got {show(value)}")
    return bool(value)


def check_n_threads(n_threads) -> int | None:
    """``None`` or a whole number in [1, NUMBA_NUM_THREADS]."""
    if n_threads is None:
        return None
    import numba

    if _is_bool(n_threads) or not isinstance(n_threads, numbers.Integral):
        raise InputTypeError(f"n_threads must be a whole number or None, got {show(n_threads)}")
    if not 1 <= n_threads <= numba.config.NUMBA_NUM_THREADS:
        raise InputError(
            f"n_threads must be between 1 and NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, got {n_threads}"
        )
    return int(n_threads)


def check_lam_array(lam, n_users: int, users=None) -> np.ndarray:
    """Per-user λ: a scalar in [0, 1] broadcast to all users, or one value in [0, 1] per user.

    ``users`` (ids of the rows), if given, lets the message name the user at fault.
    """
    if np.ndim(lam) == 0:
        return np.full(n_users, check_unit_interval("lam", lam), dtype=np.float64)
    arr = np.asarray(lam)
    if arr.dtype.kind not in "fiu":
        raise InputTypeError(f"lam must hold numbers, got dtype {arr.dtype}")
    arr = _writable(np.ascontiguousarray(arr, dtype=np.float64))
    if arr.shape != (n_users,):
        raise InputError(f"lam must be a scalar or have one value per user ({n_users}), got shape {arr.shape}")
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))
    if bad.size:
        who = f"user {show(users[bad[0]])}" if users is not None else f"user row {bad[0]}"
        raise InputError(f"lam must lie in [0, 1]; {who} has lam={arr[bad[0]]}")
    return arr


def lam_from_mapping(mapping, users: pd.Index) -> np.ndarray:
    """Per-user λ from a mapping / Series ``user_id -> λ``; every user needs a value."""
    try:
        series = pd.Series(mapping)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"lam mapping cannot be read as user_id -> number: {exc}") from None
    if not series.index.is_unique:
        raise InputError(f"lam mapping has several values for user {show(series.index[series.index.duplicated()][0])}")
    if len(series) and not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
        raise InputTypeError(f"lam mapping values must be numbers, got dtype {series.dtype}")
    values = series.reindex(users).to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.flatnonzero(~users.isin(series.index)) if len(users) else np.array([], dtype=np.int64)
    if missing.size:
        raise InputError(f"lam has no value for user {show(users[missing[0]])}")
    return check_lam_array(values, len(users), users)


def check_choice(name: str, value, choices) -> object:
    """``value`` is one of ``choices``."""
    if not isinstance(value, Hashable) or value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise InputError(f"{name} must be one of {shown}; got {show(value)}")
    return value


def divergence_code(divergence: str) -> int:
    return DIVERGENCE_CODES[check_choice("divergence", divergence, tuple(DIVERGENCE_CODES))]


def normalize_code(normalize) -> int:
    return NORMALIZE_CODES[check_choice("normalize", normalize, tuple(NORMALIZE_CODES))]


def check_order(order: str) -> bool:
    """Returns True when the output is re-sorted by score."""
    return check_choice("order", order, ORDERS) == "score"


def check_on_invalid(on_invalid: str) -> str:
    """``"raise"`` (any invalid row fails the call) or ``"skip"`` (skip and report its user)."""
    return check_choice("on_invalid", on_invalid, ON_INVALID)


def check_rank_weights(spec, k: int) -> np.ndarray | None:
    """``"uniform"`` / ``"dcg"`` (returns ``None``: nothing allocated, whatever ``k``) or an
    array of at least ``k`` positive finite numbers (returns its first ``k`` as float64)."""
    if isinstance(spec, str):
        check_choice("rank_weights", spec, RANK_WEIGHT_NAMES)
        return None
    arr = np.asarray(spec)
    if arr.dtype.kind not in "fiu" or arr.ndim != 1:
        raise InputTypeError(
            f"rank_weights must be 'uniform', 'dcg' or a 1-d array of numbers; got {show(spec)}"
        )
    if arr.size < k:
        raise InputError(f"rank_weights has {arr.size} values but k={k} positions need weights")
    arr = arr[:k].astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
    if bad.size:
        raise InputError(f"rank_weights must be positive and finite; position {bad[0] + 1} is {show(arr[bad[0]])}")
    return arr


def int_array(name: str, values) -> np.ndarray:
    """A 1-d array of whole numbers as contiguous int64 (floats only when all are whole);
    strings, booleans, NaN or 2-d input raise, where a plain cast would truncate or crash."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be a 1-d array of whole numbers: {exc}") from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-d, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~(np.isfinite(arr) & (arr == np.round(arr))))
        if bad.size:
            raise InputError(f"{name} must hold whole numbers; position {bad[0]} is {show(arr[bad[0]])}")
    elif arr.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must hold whole numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise InputError(f"{name} holds values beyond int64")
    return _writable(np.ascontiguousarray(arr, dtype=np.int64))


def _writable(arr: np.ndarray) -> np.ndarray:
    """A read-only array (e.g. a pandas copy-on-write view) is copied: numba types read-only
    arrays separately, so passing one would compile a second kernel signature."""
    return arr if arr.flags.writeable else arr.copy()


def float_array(name: str, values, ndim: int = 1) -> np.ndarray:
    """A real-valued array of ``ndim`` dimensions as contiguous float64 (not finite-checked)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be an array of numbers: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise InputTypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-d, got shape {arr.shape}")
    return _writable(np.ascontiguousarray(arr, dtype=np.float64))


def check_finite(name: str, values: np.ndarray) -> None:
    """No NaN or inf; the message names the first offending row."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise InputError(f"{name} must be finite; row {bad[0]} is {show(values[bad[0]])} ({bad.size} such rows)")


# --------------------------------------------------------------------------- columns
def require_columns(frame, columns, what: str) -> None:
    """``frame`` is a DataFrame with every column in ``columns`` (and no duplicated names)."""
    if not isinstance(frame, pd.DataFrame):
        raise InputTypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        in_index = [c for c in missing if c in frame.index.names]
        hint = f" ({show(in_index[0])} is in the index: use .reset_index())" if in_index else ""
        raise InputError(f"{what} is missing column(s) {missing}; it has {list(frame.columns)}{hint}")
    if isinstance(frame.columns, pd.MultiIndex):
        raise InputError(f"{what} has multi-level columns; flatten them to {list(columns)}")
    duplicated = [c for c in columns if np.count_nonzero(frame.columns == c) > 1]
    if duplicated:
        raise InputError(f"{what} has several columns named {show(duplicated[0])}")


def _at(index, label) -> str:
    """``row <label>``, or ``<index name> <label>`` when the index is named (``rerank apply``
    names it ``line`` for CSV files, so messages give the file line)."""
    name = index.name if isinstance(index.name, str) and index.name else "row"
    return f"{name} {show(label)}"


def _row_label(frame, position: int) -> str:
    return _at(frame.index, frame.index[position])


def _user_item(frame, position: int) -> str:
    row = frame.iloc[position]
    return f"user {show(row['user_id'])}, item {show(row['item_id'])}"


def require_no_null_ids(frame, columns, what: str) -> None:
    """Id columns hold no nulls; the message names the column and the first row."""
    for column in columns:
        nulls = frame[column].isna().to_numpy()
        if nulls.any():
            pos = int(np.flatnonzero(nulls)[0])
            owner = ""
            if column != "user_id" and "user_id" in frame.columns:
                owner = f" (user {show(frame['user_id'].iloc[pos])})"
            raise InputError(
                f"{what} column '{column}' has a null id at {_row_label(frame, pos)}{owner}"
                f" ({int(nulls.sum())} such rows)"
            )


def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _numeric_values(series, what: str) -> np.ndarray:
    """float64 values of a numeric column (NaN for nulls); anything else is a ``InputTypeError``
    naming the first non-number."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise InputTypeError(f"{what} column '{series.name}' must be numeric, got booleans (dtype {dtype})")
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_object_dtype(dtype):
        values = series.to_numpy()
        ok = np.fromiter((v is None or _is_real_number(v) for v in values), dtype=bool, count=len(values))
        if ok.all():
            return pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
        pos = int(np.flatnonzero(~ok)[0])
        raise InputTypeError(
            f"{what} column '{series.name}' must be numeric; {_at(series.index, series.index[pos])} holds "
            f"{show(values[pos])} ({type(values[pos]).__name__})"
        )
    if len(series) == 0:  # e.g. an empty CSV: no value is wrong
        return np.zeros(0, dtype=np.float64)
    example = series.dropna()
    if len(example) and pd.api.types.is_string_dtype(dtype):  # show the first text that is not a number
        unparsed = pd.to_numeric(example, errors="coerce").isna().to_numpy()
        if unparsed.any():
            example = example[unparsed]
    shown = f"; e.g. {show(example.iloc[0])} at {_at(series.index, example.index[0])}" if len(example) else ""
    raise InputTypeError(f"{what} column '{series.name}' must be numeric, got dtype {dtype}{shown}")


def require_numeric(series, what: str) -> np.ndarray:
    """A numeric column as float64 (nulls as NaN); strings, booleans or other types raise
    ``InputTypeError`` naming the column and the first non-number."""
    if len(series) == 0:
        return np.zeros(0, dtype=np.float64)
    return _numeric_values(series, what)


def require_nonnegative_weights(series, what: str) -> np.ndarray:
    """A finite, nonnegative numeric weight column as float64."""
    values = require_numeric(series, what)
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    if bad.size:
        row = series.index[bad[0]]
        raise InputError(
            f"{what} column '{series.name}' must be finite and >= 0; {_at(series.index, row)} is {show(values[bad[0]])}"
            f" ({bad.size} such rows)"
        )
    return values


# --------------------------------------------------------------------------- id kinds
ID_INTEGER = "integer"
ID_STRING = "string"
ID_EMPTY = "empty"


def id_kind(series, what: str) -> str:
    """The kind of a non-null id column: ``"integer"``, ``"string"`` or ``"empty"``.

    Mixed columns (integers and strings), floats that are not whole numbers, booleans, bytes,
    dates and other objects raise ``InputTypeError`` naming the column and the first odd row.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return id_kind(pd.Series(dtype.categories, name=series.name), what) if len(series) else ID_EMPTY
    if len(series) == 0:
        return ID_EMPTY
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "integer":
        return ID_INTEGER
    if inferred == "string":
        return ID_STRING
    if inferred == "empty":  # all null (caught by the null check) or no rows
        return ID_EMPTY
    if inferred == "floating":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        if np.all(np.isfinite(values) & (values == np.round(values))):
            return ID_INTEGER
        bad = series.dropna()
        as_float = bad.to_numpy(dtype=np.float64)
        bad = bad[~(np.isfinite(as_float) & (as_float == np.round(as_float)))]
        raise InputTypeError(
            f"{what} column '{series.name}' must hold integer or string ids; {_at(series.index, bad.index[0])} holds "
            f"{show(bad.iloc[0])}"
        )
    values = series.dropna()
    first_type = type(values.iloc[0])
    shown = f"{show(values.iloc[0])} ({first_type.__name__})"
    if inferred.startswith("mixed"):
        odd = np.fromiter((type(v) is not first_type for v in values.to_numpy()), dtype=bool, count=len(values))
        if odd.any():
            pos = int(np.flatnonzero(odd)[0])
            other = values.iloc[pos]
            raise InputTypeError(
                f"{what} column '{series.name}' mixes id types: {_at(series.index, values.index[0])} holds {shown} but "
                f"{_at(series.index, values.index[pos])} holds {show(other)} ({type(other).__name__}); use one type"
            )
    raise InputTypeError(
        f"{what} column '{series.name}' must hold integer or string ids; "
        f"{_at(series.index, values.index[0])} holds {shown}"
    )


def check_same_id_kind(kind_a: str, what_a: str, kind_b: str, what_b: str) -> None:
    """Ids that must match across frames have the same kind (else none could ever match)."""
    if ID_EMPTY in (kind_a, kind_b) or kind_a == kind_b:
        return
    raise InputTypeError(
        f"{what_a} holds {kind_a} ids but {what_b} holds {kind_b} ids: no id could match; "
        "convert one of them (e.g. .astype(str))"
    )


# --------------------------------------------------------------------------- frames
CANDIDATE_COLUMNS = ["user_id", "item_id", "score"]


@dataclass(frozen=True)
class CheckedCandidates:
    """A validated candidate frame.

    ``scores`` float64 for every input row; ``keep`` the rows to rerank (all of them unless
    ``on_invalid="skip"`` dropped some); ``skipped`` one row per skipped user
    (``user_id, reason, n_rows``); ``n_rows_without_user`` rows dropped for a null ``user_id``;
    ``user_kind`` / ``item_kind`` the id kinds.
    """

    scores: np.ndarray
    keep: np.ndarray
    skipped: pd.DataFrame
    n_rows_without_user: int
    user_kind: str
    item_kind: str

    @property
    def n_rows_skipped(self) -> int:
        return int(self.skipped["n_rows"].sum())


def empty_skipped(user_dtype=object) -> pd.DataFrame:
    """An empty skipped-users frame ``user_id, reason, n_rows``."""
    return pd.DataFrame(
        {
            "user_id": pd.Series([], dtype=user_dtype),
            "reason": pd.Series([], dtype=object),
            "n_rows": pd.Series([], dtype=np.int64),
        }
    )


def validate_candidates(frame, *, on_invalid: str = "raise", check_duplicates: bool = True) -> CheckedCandidates:
    """Check a candidate frame ``user_id, item_id, score`` (module docstring).

    Column-level faults (not a DataFrame, missing columns, a non-numeric ``score`` column,
    mixed id types) always raise. Row-level faults (null ids, NaN/inf scores, duplicate
    ``(user_id, item_id)``) raise with ``on_invalid="raise"``; with ``"skip"`` the users holding
    them are skipped and reported, and rows without a ``user_id`` are dropped and counted.
    """
    check_on_invalid(on_invalid)
    require_columns(frame, CANDIDATE_COLUMNS, "candidates")
    n = len(frame)
    skip = on_invalid == "skip"
    users = frame["user_id"]
    user_null = users.isna().to_numpy()
    if user_null.any() and not skip:
        require_no_null_ids(frame, ["user_id"], "candidates")
    item_null = frame["item_id"].isna().to_numpy()
    if item_null.any() and not skip:
        require_no_null_ids(frame, ["item_id"], "candidates")
    user_kind = id_kind(users[~user_null] if user_null.any() else users, "candidates")
    item_kind = id_kind(frame["item_id"][~item_null] if item_null.any() else frame["item_id"], "candidates")
    scores = require_numeric(frame["score"], "candidates")
    bad_score = ~np.isfinite(scores)
    if bad_score.any() and not skip:
        pos = int(np.flatnonzero(bad_score)[0])
        raise InputError(
            f"candidates column 'score' must be finite: {_user_item(frame, pos)} has {show(scores[pos])} "
            f"({_row_label(frame, pos)}; {int(bad_score.sum())} such rows)"
        )
    duplicate = np.zeros(n, dtype=bool)
    if check_duplicates and n:
        duplicate = duplicated_pairs(users, frame["item_id"]) & ~item_null & ~user_null  # = frame.duplicated
        if duplicate.any() and not skip:
            pos = int(np.flatnonzero(duplicate)[0])
            raise InputError(
                f"candidates has duplicate (user_id, item_id) rows: {_user_item(frame, pos)} "
                f"({_row_label(frame, pos)}; {int(duplicate.sum())} such rows)"
            )
    keep = ~user_null
    skipped = empty_skipped(users.dtype)
    invalid = (item_null | bad_score | duplicate) & ~user_null
    if invalid.any():
        reason = np.where(item_null, 0, np.where(bad_score, 1, 2))[invalid]
        bad = pd.DataFrame({"user_id": users.to_numpy()[invalid], "code": reason})
        first = bad.groupby("user_id", sort=False)["code"].min()
        bad_users = pd.Index(first.index)
        in_bad = users.isin(bad_users).to_numpy() & ~user_null
        counts = users[in_bad].value_counts(sort=False).reindex(bad_users).to_numpy(dtype=np.int64)
        skipped = pd.DataFrame(
            {
                "user_id": pd.Series(bad_users, dtype=users.dtype),
                "reason": np.asarray(SKIP_REASONS, dtype=object)[first.to_numpy()],
                "n_rows": counts,
            }
        )
        keep &= ~in_bad
    return CheckedCandidates(
        scores=scores,
        keep=keep,
        skipped=skipped,
        n_rows_without_user=int(user_null.sum()),
        user_kind=user_kind,
        item_kind=item_kind,
    )


@dataclass(frozen=True)
class CheckedHistory:
    """A validated history: ``weights`` (``w_ui`` before recency) and the id kinds."""

    weights: np.ndarray
    user_kind: str
    item_kind: str


def validate_history(frame) -> CheckedHistory:
    """Check a history frame ``user_id, item_id`` (+ ``weight``); empty is allowed."""
    weights, (user_kind, item_kind) = _ids_and_weights(frame, ["user_id", "item_id"], "history")
    return CheckedHistory(weights, user_kind, item_kind)


def _ids_and_weights(frame, id_columns: list[str], what: str) -> tuple[np.ndarray, list[str]]:
    """Shared checks of a long frame of ids (+ optional ``weight``): the weights (1 without
    a ``weight`` column) and the id kind of each id column."""
    require_columns(frame, id_columns, what)
    require_no_null_ids(frame, id_columns, what)
    kinds = [id_kind(frame[column], what) for column in id_columns]
    if "weight" in frame.columns:
        weights = require_nonnegative_weights(frame["weight"], what)
    else:
        weights = np.ones(len(frame), dtype=np.float64)
    return weights, kinds


def history_times(frame) -> np.ndarray:
    """The history's ``timestamp`` column as float64 seconds (datetimes) or numbers; no nulls."""
    require_columns(frame, ["timestamp"], "history (needed by half_life)")
    ts = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        nulls = ts.isna().to_numpy()
        t = np.zeros(len(ts)) if not len(ts) else (ts - ts.min()).dt.total_seconds().to_numpy(dtype=np.float64)
    else:
        t = require_numeric(ts, "history")
        nulls = ~np.isfinite(t)
    if nulls.any():
        pos = int(np.flatnonzero(nulls)[0])
        raise InputError(
            f"history column 'timestamp' must be set and finite; {_row_label(frame, pos)} "
            f"(user {show(frame['user_id'].iloc[pos])}) has {show(ts.iloc[pos])} ({int(nulls.sum())} such rows)"
        )
    return t


@dataclass(frozen=True)
class CheckedItemCategories:
    """A validated item-category frame: ``weights`` and the id kinds."""

    weights: np.ndarray
    item_kind: str
    category_kind: str


def validate_item_categories(frame) -> CheckedItemCategories:
    """Check ``item_id, category`` (+ ``weight``); empty is allowed (no item has a category)."""
    weights, (item_kind, category_kind) = _ids_and_weights(frame, ["item_id", "category"], "item_categories")
    return CheckedItemCategories(weights, item_kind, category_kind)
