"""Fitted user ids -> rows, in 12 bytes per user and without a hash table.

A pandas ``Index`` answers ``get_indexer`` through a hash table it builds on first use: about
34 bytes per id for 10M integer ids (338 MB) and more than 100 for strings. A fitted reranker
keeps its users for its whole life, so :class:`UserIndex` keeps them sorted instead:

* integer ids (any integer dtype, nullable or Arrow-backed, with no nulls and no value
  beyond int64): the sorted ids themselves (``keys``, int64) and each one's fitted row
  (``rows``, int32 below 2**31 users) — 12 bytes per user; the ids in fitted order are
  rebuilt from them when asked for (``ids``). A lookup is a binary search: exact, no
  hashing. Whole-number floats match the integers they equal (as the frame API treats
  them, docs/inputs.md); other floats match nothing.
* every other kind of id (strings): 64-bit hashes (``pandas.util.hash_array`` of the values
  as objects) sorted the same way, and the ids themselves to confirm every hit, so a hash
  collision can never map one user onto another. Two fitted ids with the same hash (odds
  about ``n² / 2⁶⁵``) switch the index to pandas' own lookup.

Lookups return ``-1`` for ids that were not fitted. :meth:`UserIndex.first_repeat` finds an id
fitted twice (the streaming fit's check that every user's history came in one batch).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["UserIndex", "exact_int64"]

_INT64_MAX = np.iinfo(np.int64).max
_FLOAT_EXACT = 2.0**53  # beyond this a float64 no longer tells neighbouring integers apart


def exact_int64(values) -> tuple[np.ndarray, np.ndarray] | None:
    """``values`` (a Series, Index or array) as int64 when every value is an integer, each kept
    exactly: ``(ints, valid)`` where ``valid`` marks the values that are such integers (floats
    that are not whole, or beyond 2**53, are invalid and match nothing); ``None`` when the
    dtype is not numeric (strings, objects) or an integer lies beyond int64, or there are nulls."""
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        values = np.asarray(values)
        dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return None
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        return None
    if isinstance(values, pd.Series | pd.Index) and values.hasnans:
        return None
    if pd.api.types.is_integer_dtype(dtype):
        arr = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else np.asarray(values)
        if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64_MAX:
            return None
        if arr.dtype.kind not in "iu":  # an extension dtype that still holds objects
            return None
        return arr.astype(np.int64, copy=False), np.ones(arr.shape[0], dtype=np.bool_)
    arr = values.to_numpy(dtype=np.float64) if isinstance(values, pd.Series | pd.Index) else np.asarray(
        values, dtype=np.float64
    )
    if np.isnan(arr).any():
        return None
    valid = (arr == np.round(arr)) & (np.abs(arr) <= _FLOAT_EXACT)
    return np.where(valid, arr, 0.0).astype(np.int64), valid


def _hashes(values) -> np.ndarray:
    """64-bit hashes of ids compared as Python objects (``"7"`` and ``np.str_("7")`` hash alike)."""
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


class UserIndex:
    """The fitted users, in fitted order (row ``r`` is the ``r``-th user); see the module
    docstring for how they are stored and looked up."""

    def __init__(self, ids) -> None:
        ids = pd.Index(ids)
        self._dtype = ids.dtype
        self._fallback: pd.Index | None = None
        exact = exact_int64(ids)
        if exact is not None:
            self._ids = None  # rebuilt from keys and rows
            keys = exact[0]
        else:
            self._ids = ids
            keys = _hashes(ids)
        self._exact = exact is not None
        del exact
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        del keys
        self.rows = order.astype(np.int32 if len(order) < 2**31 else np.int64)
        del order
        if not self._exact and self.first_repeat() is None and len(self.keys) > 1:
            same = self.keys[1:] == self.keys[:-1]
            if same.any():  # distinct ids with one hash: use pandas' exact lookup instead
                self._fallback = ids

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        """Bytes held (the hashed kind also keeps its ids, counted by pandas' ``memory_usage``)."""
        held = self.keys.nbytes + self.rows.nbytes
        if self._ids is not None:
            held += int(self._ids.memory_usage(deep=True))
        return held

    @property
    def ids(self) -> pd.Index:
        """The fitted ids in fitted order."""
        if self._ids is not None:
            return self._ids
        ids = np.empty(len(self.keys), dtype=np.int64)
        ids[self.rows] = self.keys
        return pd.Index(ids).astype(self._dtype, copy=False)

    def first_repeat(self) -> int | None:
        """Fitted row of the first id (in fitted order) that occurred before, or ``None``."""
        if len(self.keys) < 2:
            return None
        same = self.keys[1:] == self.keys[:-1]
        if not same.any():
            return None
        if self._exact:  # equal keys are equal ids; rows ascend within a run (stable sort)
            return int(self.rows[1:][same].min())
        run = np.flatnonzero(np.r_[False, same] | np.r_[same, False])  # every row in a run of equal hashes
        ids = self._ids.take(self.rows[run].astype(np.int64))
        again = pd.DataFrame({"key": self.keys[run], "id": ids.to_numpy(dtype=object)}).duplicated()
        return int(self.rows[run][again.to_numpy()].min()) if again.any() else None

    def rows_for(self, user_ids) -> np.ndarray:
        """Fitted row of each id (int64), ``-1`` where the id was not fitted."""
        if self._fallback is not None:
            return self._fallback.get_indexer(user_ids).astype(np.int64, copy=False)
        if self._exact:
            query = exact_int64(user_ids)
            if query is None:  # strings, objects or nulls cannot equal integer ids ...
                values = pd.Index(user_ids)
                if values.dtype == object or values.hasnans:  # ... unless they hold integers
                    return self.ids.get_indexer(values).astype(np.int64, copy=False)
                return np.full(len(values), -1, dtype=np.int64)
            keys, valid = query
        else:
            values = np.asarray(user_ids, dtype=object)
            keys, valid = _hashes(values), np.ones(len(values), dtype=np.bool_)
        found = self._search(keys) if len(self.keys) else np.full(len(keys), -1, dtype=np.int64)
        found[~valid] = -1
        if not self._exact:
            hit = np.flatnonzero(found >= 0)
            same = self._ids.take(found[hit]).to_numpy(dtype=object) == values[hit]
            found[hit[~same]] = -1
        return found

    def _search(self, keys: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.keys, keys)
        inside = at < len(self.keys)
        at_in = np.minimum(at, len(self.keys) - 1)
        hit = inside & (self.keys[at_in] == keys)
        return np.where(hit, self.rows[at_in], -1).astype(np.int64, copy=False)
