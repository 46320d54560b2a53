"""Ids are an identity, never a number (docs/inputs.md, "Ids"): exact keys, lookups and display.

Id columns arrive as numpy integers, pandas nullable integers (``Int64``, ``UInt64``), pyarrow
integers (``int64[pyarrow]``), whole-number floats, strings or categoricals. Nothing here goes
through float64, so ids above 2**53 stay distinct and a null never changes a column's type:

* :func:`id_array` — the non-null ids of a column as a numpy array the hashing and grouping code
  can trust: integers as int64 (uint64 only for values above 2**63 - 1), exactly;
* :func:`exact_keys` — equality keys for a column that may hold nulls (codes, where a nullable
  integer column would otherwise become float64);
* :func:`restore` — ids back in the dtype the input had (the output keeps the candidates' dtype);
* :func:`lookup` — the row of each id in a fitted index, exactly across int64 / uint64;
* :func:`text_keys` — integer ids as their decimal text, for ``id_match="text"`` (``7`` ≡ ``"7"``,
  never ``"007"``);
* :func:`show_id` — an id for an error message (``286``, never ``286.0``);
* :func:`decode_dictionaries` — pyarrow dictionary-encoded id columns as their plain value type
  (the output gets the dictionary type back through :func:`restore`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rerank.params import show
from rerank.scan import null_mask

INT64_MAX = np.iinfo(np.int64).max

__all__ = ["decode_dictionaries", "exact_keys", "id_array", "is_integer_ids", "lookup", "restore", "show_id",
           "text_keys"]


def _integer_numpy_dtype(dtype) -> np.dtype | None:
    """The numpy integer dtype behind a numpy, nullable or pyarrow integer dtype (else ``None``)."""
    if isinstance(dtype, np.dtype):
        return dtype if dtype.kind in "iu" else None
    if isinstance(dtype, pd.CategoricalDtype):
        return None
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if numpy_dtype is not None and np.dtype(numpy_dtype).kind in "iu" and getattr(dtype, "kind", "") in "iu":
        return np.dtype(numpy_dtype)
    return None


def is_integer_ids(values) -> bool:
    """Integer ids of any integer dtype (numpy, nullable or pyarrow)."""
    return _integer_numpy_dtype(getattr(values, "dtype", None)) is not None


def id_array(values) -> np.ndarray:
    """Non-null ids as a numpy array, exactly: integer dtypes as int64 (uint64 when a value
    exceeds 2**63 - 1); floats, strings and objects as they are (categoricals as their values).

    ``values`` must hold no nulls (the callers drop or refuse them first).
    """
    dtype = getattr(values, "dtype", None)
    integer = _integer_numpy_dtype(dtype)
    if integer is None:
        if isinstance(values, pd.Series | pd.Index):
            return values.to_numpy()
        return np.asarray(values)
    if isinstance(values, pd.Series | pd.Index):
        arr = values.to_numpy(dtype=integer)
    else:
        arr = np.asarray(values, dtype=integer)
    if integer.kind == "u" and integer.itemsize == 8:
        if arr.size and arr.max() > INT64_MAX:
            return arr
    return arr.astype(np.int64, copy=False)


def exact_keys(series: pd.Series) -> np.ndarray:
    """Equality keys of an id column that may hold nulls: equal ids get equal keys, a null gets
    the key of no id. A nullable integer column with nulls gives factorize codes (``-1`` for a
    null) instead of the float64 pandas would give; anything else gives its values."""
    if null_mask(series) is None:
        return id_array(series)
    if is_integer_ids(series):
        codes, _ = pd.factorize(series, use_na_sentinel=True)
        return codes.astype(np.int64, copy=False)
    return series.to_numpy()


def _dictionary_values(dtype):
    """The plain pandas dtype behind a pyarrow dictionary dtype (``None`` for any other dtype)."""
    import pyarrow as pa

    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_dictionary(dtype.pyarrow_dtype):
        return pd.ArrowDtype(dtype.pyarrow_dtype.value_type)
    return None


def decode_dictionaries(frame, columns) -> pd.DataFrame:
    """``frame`` with each of ``columns`` that is a pyarrow dictionary column (``dictionary<values=
    string>`` as pandas holds a dictionary-encoded Parquet column) as its value type, exactly;
    ``frame`` itself when there is none (or when it is not a frame: the caller's checks name that)."""
    if not isinstance(frame, pd.DataFrame):
        return frame
    plain = {c: _dictionary_values(frame[c].dtype) for c in columns if c in frame.columns}
    plain = {c: dtype for c, dtype in plain.items() if dtype is not None}
    if not plain:
        return frame
    return frame.assign(**{c: frame[c].astype(dtype) for c, dtype in plain.items()})


def restore(values: pd.Index, dtype) -> pd.Index:
    """``values`` (from :func:`id_array`) in the input's ``dtype`` again: the conversion back
    is exact (same integers), so the output holds the very ids of the input."""
    if dtype is None or values.dtype == dtype:
        return values
    plain = _dictionary_values(dtype)
    if plain is not None:  # dictionary-encoded: the value type first, then encoded again
        return restore(values, plain).astype(dtype)
    return pd.Index(pd.array(values.to_numpy(), dtype=dtype), name=values.name)


def lookup(fitted: pd.Index, ids) -> np.ndarray:
    """Row of each id of ``ids`` in ``fitted`` (``-1`` where absent), exactly.

    pandas compares an int64 index with uint64 ids through float64 (or fails); here integers of
    the two kinds are compared as Python integers instead.
    """
    ids = ids if isinstance(ids, pd.Index) else pd.Index(ids)
    kinds = {fitted.dtype.kind, ids.dtype.kind}
    if kinds == {"i", "u"}:
        return pd.Index(fitted.to_numpy().astype(object)).get_indexer(ids.to_numpy().astype(object))
    return fitted.get_indexer(ids)


def text_keys(values) -> np.ndarray:
    """Integer ids (or whole-number floats) as their decimal text; strings unchanged.

    Exact for any integer: ``2**63 - 1`` gives ``"9223372036854775807"``; ``1.0`` gives ``"1"``.
    """
    arr = id_array(values)
    if arr.dtype.kind in "iu":
        return arr.astype(str).astype(object)
    if arr.dtype.kind == "f":
        return np.array([str(int(v)) for v in arr], dtype=object)
    return np.array([v if isinstance(v, str) else str(int(v)) for v in arr], dtype=object)


def show_id(value) -> str:
    """An id for a message: whole-number floats as integers (``286``, not ``286.0``)."""
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return show(value)


def _loose(values) -> pd.Index:
    """Ids as they would read with leading zeros, case, spaces and a trailing ``.0`` ignored."""
    text = pd.Series(text_keys(values), dtype=object).str.strip().str.lower()
    text = text.str.replace(r"\.0+$", "", regex=True).str.lstrip("0").replace("", "0")
    return pd.Index(text)


FITTED_SAMPLE = 200_000  # fitted ids a near-miss hint looks among, at most


class LooseMatcher:
    """:func:`near_miss` against one fitted index. The loose forms of the fitted ids are text
    work per id (≈ 2 s and ≈ 100 MB per million ids), so they are built on the first call and
    reused by every later one, and over at most ``FITTED_SAMPLE`` fitted ids, evenly spaced
    (deterministic): a systematic format mismatch — what the hint is for — shows up whatever the
    sample (with 1,000 unmatched ids and a 2% sample it is missed with probability
    ``0.98¹⁰⁰⁰ ≈ 2·10⁻⁹``), while a one-off near miss beyond the sample goes unnamed."""

    def __init__(self, fitted: pd.Index):
        if len(fitted) > FITTED_SAMPLE:
            fitted = fitted[np.unique(np.linspace(0, len(fitted) - 1, FITTED_SAMPLE).astype(np.int64))]
        self.fitted = fitted
        self._table = None

    def near_miss(self, unmatched, sample: int = 1000) -> tuple[object, object] | None:
        unmatched = id_array(unmatched)[:sample]
        if not len(unmatched) or not len(self.fitted):
            return None
        if self._table is None:
            loose = _loose(self.fitted)
            first = np.flatnonzero(~loose.duplicated())  # the first fitted id of each loose form
            self._table = (loose[first], first)
        table, first = self._table
        rows = table.get_indexer(_loose(unmatched))
        hits = np.flatnonzero(rows >= 0)
        if not hits.size:
            return None
        return unmatched[hits[0]], self.fitted[first[rows[hits[0]]]]


def near_miss(unmatched, fitted: pd.Index, sample: int = 1000) -> tuple[object, object] | None:
    """An id of ``unmatched`` that matches no id of ``fitted`` exactly but would after ignoring
    leading zeros, case, spaces or a trailing ``.0`` (``'0001'`` ~ ``'1'``), with the id it would
    match; ``None`` if there is none among the first ``sample`` unmatched ids."""
    return LooseMatcher(fitted).near_miss(unmatched, sample)


def cached_near_miss(owner, key: str, source, unmatched, fitted_ids) -> tuple[object, object] | None:
    """:func:`near_miss` with the fitted side built once per fitted state: the
    :class:`LooseMatcher` is kept in ``owner.__dict__["_near_miss"][key]`` beside ``source``
    (the fitted object the ids come from) and rebuilt when ``source`` is another object (a new
    fit). ``fitted_ids()`` gives the fitted ids when a matcher is built."""
    cache = owner.__dict__.setdefault("_near_miss", {})
    held = cache.get(key)
    if held is None or held[0] is not source:
        held = cache[key] = (source, LooseMatcher(fitted_ids()))
    return held[1].near_miss(unmatched)
