"""Frame schemas: the checks a pandas frame passes once, at the boundary of the frame API.

``CalibratedReranker.fit`` / ``rerank``, ``rerank apply`` (which validates the files first and
hands the checked frames to ``fit``), Spark and the metrics call these functions, so the same
bad frame gives the same error everywhere; a frame that passed is never checked again
downstream (the ``Checked*`` results carry what the check learned). Parameter checks live in
:mod:`rerank.params`. Every failure is an :class:`~rerank.errors.InputError` naming the
column, row (or file line), user or item at fault.

Contracts (docs/design.md §5; fallbacks are documented in ``docs/inputs.md``):

* ids (``user_id``, ``item_id``, ``category``) are non-null integers or strings, one kind per
  column; float columns whose values are all whole numbers count as integers. The same id
  must have the same kind in every frame (else no id could ever match).
* candidates ``user_id, item_id, score``: ``score`` real and finite; no duplicate
  ``(user_id, item_id)``. With ``on_invalid="skip"`` a user with an invalid row is skipped
  (and reported) instead of failing the call; rows without a ``user_id`` are dropped and counted.
* history ``user_id, item_id`` (+ ``weight`` finite ≥ 0, ``timestamp`` numeric or datetime):
  repeated rows add up.
* item categories ``item_id, category`` (+ ``weight`` finite ≥ 0, + ``attribute``: several
  attributes in one objective, non-null integer or string names): repeated rows add up.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rerank.errors import InputError, InputTypeError
from rerank.grouping import duplicated_pairs
from rerank.ids import decode_dictionaries, exact_keys, show_id
from rerank.params import check_choice, is_bool, show
from rerank.scan import count_nonfinite, null_mask

ON_INVALID = ("raise", "skip")
CANDIDATE_COLUMNS = ["user_id", "item_id", "score"]

# Reasons a user is skipped with on_invalid="skip" (first matching reason is reported).
REASON_NULL_ITEM = "null item_id"
REASON_BAD_SCORE = "score missing or not a finite number"
REASON_DUPLICATE = "duplicate item_id"
SKIP_REASONS = (REASON_NULL_ITEM, REASON_BAD_SCORE, REASON_DUPLICATE)

__all__ = [
    "CANDIDATE_COLUMNS", "CheckedCandidates", "CheckedHistory", "CheckedItemCategories", "check_on_invalid",
    "validate_candidates", "validate_history", "validate_item_categories",
]


def check_on_invalid(on_invalid: str) -> str:
    """``"raise"`` (any invalid row fails the call) or ``"skip"`` (skip and report its user)."""
    return check_choice("on_invalid", on_invalid, ON_INVALID)


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


def at_row(index, label) -> str:
    """``row <label>``, or ``<index name> <label>`` when the index is named (``rerank apply``
    names it ``line`` for CSV files, so messages give the file line)."""
    name = index.name if isinstance(index.name, str) and index.name else "row"
    return f"{name} {show(label)}"


def row_label(frame, position: int) -> str:
    return at_row(frame.index, frame.index[position])


def _user_item(frame, position: int) -> str:
    return f"user {show_id(frame['user_id'].iloc[position])}, item {show_id(frame['item_id'].iloc[position])}"


def require_no_null_ids(frame, columns, what: str) -> None:
    """Id columns hold no nulls; the message names the column and the first row."""
    for column in columns:
        nulls = frame[column].isna().to_numpy()
        if nulls.any():
            pos = int(np.flatnonzero(nulls)[0])
            owner = ""
            if column != "user_id" and "user_id" in frame.columns:
                owner = f" (user {show_id(frame['user_id'].iloc[pos])})"
            raise InputError(
                f"{what} column '{column}' has a null id at {row_label(frame, pos)}{owner}"
                f" ({int(nulls.sum())} such rows)"
            )


def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not is_bool(value)


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
            f"{what} column '{series.name}' must be numeric; {at_row(series.index, series.index[pos])} holds "
            f"{show(values[pos])} ({type(values[pos]).__name__})"
        )
    if len(series) == 0:  # e.g. an empty CSV: no value is wrong
        return np.zeros(0, dtype=np.float64)
    example = series.dropna()
    if len(example) and pd.api.types.is_string_dtype(dtype):  # show the first text that is not a number
        unparsed = pd.to_numeric(example, errors="coerce").isna().to_numpy()
        if unparsed.any():
            example = example[unparsed]
    shown = f"; e.g. {show(example.iloc[0])} at {at_row(series.index, example.index[0])}" if len(example) else ""
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
            f"{what} column '{series.name}' must be finite and >= 0; {at_row(series.index, row)} is "
            f"{show(values[bad[0]])} ({bad.size} such rows)"
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
            f"{what} column '{series.name}' must hold integer or string ids; "
            f"{at_row(series.index, bad.index[0])} holds {show(bad.iloc[0])}"
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
                f"{what} column '{series.name}' mixes id types: {at_row(series.index, values.index[0])} holds {shown} "
                f"but {at_row(series.index, values.index[pos])} holds {show(other)} ({type(other).__name__}); "
                "use one type"
            )
    raise InputTypeError(
        f"{what} column '{series.name}' must hold integer or string ids; "
        f"{at_row(series.index, values.index[0])} holds {shown}"
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
@dataclass(frozen=True)
class CheckedCandidates:
    """A validated candidate frame.

    ``scores`` float64 for every input row; ``keep`` the rows to rerank (``None``: all of them,
    as always unless ``on_invalid="skip"`` dropped some); ``skipped`` one row per skipped user
    (``user_id, reason, n_rows``); ``n_rows_without_user`` rows dropped for a null ``user_id``;
    ``user_kind`` / ``item_kind`` the id kinds.
    """

    scores: np.ndarray
    keep: np.ndarray | None
    skipped: pd.DataFrame
    n_rows_without_user: int
    user_kind: str
    item_kind: str


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
    # Masks are built only when something is wrong: on a clean 10⁸-row frame each would be a
    # 100 MB temporary (rerank.scan), so "no null" and "no bad score" are None here.
    user_null = null_mask(users)
    if user_null is not None and not skip:
        require_no_null_ids(frame, ["user_id"], "candidates")
    item_null = null_mask(frame["item_id"])
    if item_null is not None and not skip:
        require_no_null_ids(frame, ["item_id"], "candidates")
    user_kind = id_kind(users if user_null is None else users[~user_null], "candidates")
    item_kind = id_kind(frame["item_id"] if item_null is None else frame["item_id"][~item_null], "candidates")
    scores = require_numeric(frame["score"], "candidates")
    n_bad, pos = count_nonfinite(scores)
    if n_bad and not skip:
        raise InputError(
            f"candidates column 'score' must be finite: {_user_item(frame, pos)} has {show(scores[pos])} "
            f"({row_label(frame, pos)}; {n_bad} such rows)"
        )
    bad_score = ~np.isfinite(scores) if n_bad else None
    duplicate = None
    if check_duplicates and n:
        # exact keys: a nullable integer column with nulls is never compared through float64
        duplicate = duplicated_pairs(exact_keys(users), exact_keys(frame["item_id"]))
        for null in (item_null, user_null):
            if null is not None:
                duplicate &= ~null
        if not duplicate.any():
            duplicate = None
        elif not skip:
            pos = int(np.flatnonzero(duplicate)[0])
            raise InputError(
                f"candidates has duplicate (user_id, item_id) rows: {_user_item(frame, pos)} "
                f"({row_label(frame, pos)}; {int(duplicate.sum())} such rows)"
            )
    keep = None if user_null is None else ~user_null
    skipped = empty_skipped(users.dtype)
    faults = [mask for mask in (item_null, bad_score, duplicate) if mask is not None]
    if faults:
        invalid = np.logical_or.reduce(faults) if len(faults) > 1 else faults[0].copy()
        if user_null is not None:
            invalid &= ~user_null
        if invalid.any():
            reason = np.full(n, 2, dtype=np.int64)  # the first reason of SKIP_REASONS that applies
            if bad_score is not None:
                reason[bad_score] = 1
            if item_null is not None:
                reason[item_null] = 0
            skipped, in_bad = _skipped_users(users, invalid, reason)
            keep = ~in_bad if keep is None else keep & ~in_bad
    return CheckedCandidates(
        scores=scores,
        keep=keep,
        skipped=skipped,
        n_rows_without_user=0 if user_null is None else int(user_null.sum()),
        user_kind=user_kind,
        item_kind=item_kind,
    )


def _skipped_users(users: pd.Series, invalid: np.ndarray, reason: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The users holding an invalid row (in order of their first invalid row, each with the
    first reason in :data:`SKIP_REASONS` that applies and its row count), and a mask of their
    rows. Users are factorized exactly (never through float64), so the ids keep their dtype."""
    codes, uniques = pd.factorize(users, use_na_sentinel=True)
    order = pd.unique(codes[invalid])  # user codes, in order of their first invalid row
    first = np.full(len(uniques), len(SKIP_REASONS), dtype=np.int64)
    np.minimum.at(first, codes[invalid], reason[invalid])
    is_bad = np.zeros(len(uniques), dtype=bool)
    is_bad[order] = True
    present = codes >= 0
    in_bad = present & is_bad[np.where(present, codes, 0)]
    counts = np.bincount(codes[present], minlength=len(uniques))
    skipped = pd.DataFrame(
        {
            "user_id": pd.Series(uniques.take(order), dtype=users.dtype),
            "reason": np.asarray(SKIP_REASONS, dtype=object)[first[order]],
            "n_rows": counts[order].astype(np.int64),
        }
    )
    return skipped, in_bad


@dataclass(frozen=True)
class CheckedHistory:
    """A validated history: the ``frame``, its ``weights`` (``w_ui`` before recency) and the id
    kinds. ``fit`` takes it in place of the frame (no second check)."""

    frame: pd.DataFrame
    weights: np.ndarray
    user_kind: str
    item_kind: str


def validate_history(frame) -> CheckedHistory:
    """Check a history frame ``user_id, item_id`` (+ ``weight``); empty is allowed. A
    :class:`CheckedHistory` is returned as it is."""
    if isinstance(frame, CheckedHistory):
        return frame
    frame = decode_dictionaries(frame, ["user_id", "item_id"])
    weights, (user_kind, item_kind) = _ids_and_weights(frame, ["user_id", "item_id"], "history")
    return CheckedHistory(frame, weights, user_kind, item_kind)


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
            f"history column 'timestamp' must be set and finite; {row_label(frame, pos)} "
            f"(user {show_id(frame['user_id'].iloc[pos])}) has {show(ts.iloc[pos])} ({int(nulls.sum())} such rows)"
        )
    return t


@dataclass(frozen=True)
class CheckedItemCategories:
    """A validated item-category frame: the ``frame``, its ``weights`` and the id kinds."""

    frame: pd.DataFrame
    weights: np.ndarray
    item_kind: str
    category_kind: str


def validate_item_categories(frame) -> CheckedItemCategories:
    """Check ``item_id, category`` (+ ``weight``); empty is allowed (no item has a category). A
    :class:`CheckedItemCategories` is returned as it is."""
    if isinstance(frame, CheckedItemCategories):
        return frame
    columns = ["item_id", "category"]
    if isinstance(frame, pd.DataFrame) and "attribute" in frame.columns:
        columns.append("attribute")  # several attributes (docs/design.md §9.1): ids like the others
    frame = decode_dictionaries(frame, columns)
    weights, (item_kind, category_kind, *_) = _ids_and_weights(frame, columns, "item_categories")
    return CheckedItemCategories(frame, weights, item_kind, category_kind)


@dataclass(frozen=True)
class CheckedShown:
    """A validated shown frame (items already shown, docs/design.md §9.3): the ``frame`` in
    shown order per user (by ``rank`` when there is one, else row order) and the id kinds."""

    frame: pd.DataFrame
    user_kind: str
    item_kind: str


def validate_shown(frame) -> CheckedShown:
    """Check ``user_id, item_id`` (+ ``rank``: the position shown, numeric, finite): non-null
    ids, no item shown twice to one user. A :class:`CheckedShown` is returned as it is."""
    if isinstance(frame, CheckedShown):
        return frame
    require_columns(frame, ["user_id", "item_id"], "shown")
    require_no_null_ids(frame, ["user_id", "item_id"], "shown")
    user_kind, item_kind = (id_kind(frame[c], "shown") for c in ("user_id", "item_id"))
    twice = duplicated_pairs(frame["user_id"], frame["item_id"])
    if twice.any():
        pos = int(np.flatnonzero(twice)[0])
        raise InputError(
            f"shown has item {show(frame['item_id'].iloc[pos])} twice for user {show(frame['user_id'].iloc[pos])} "
            f"({row_label(frame, pos)})"
        )
    if "rank" in frame.columns:
        rank = require_numeric(frame["rank"], "shown")
        bad = np.flatnonzero(~np.isfinite(rank))
        if bad.size:
            raise InputError(f"shown column 'rank' must be finite; {row_label(frame, int(bad[0]))} is not")
        frame = frame.iloc[np.argsort(rank, kind="stable")]
    return CheckedShown(frame, user_kind, item_kind)
