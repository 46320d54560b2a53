"""Histories that do not fit in memory: frames of whole users, from a Parquet dataset.

``CalibratedReranker.fit(path, item_categories)`` fits on a Parquet file or folder (a
dataset of several files, e.g. as Spark writes it) without loading it: :func:`parquet_history`
reads it in record batches of about ``batch_rows`` rows and :func:`whole_users` regroups them
so that each frame holds whole users. Only the fitted targets stay in memory
(:mod:`rerank.targets`).

The rows of a user must be contiguous in the dataset (sorted or grouped by ``user_id``, the
way a ``groupBy``/``sortWithinPartitions`` or a per-user export writes them). A user whose
rows come back later is reported by the fit (``InputError`` naming the user); nothing is
silently split.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from rerank.errors import InputError

__all__ = ["DEFAULT_BATCH_ROWS", "parquet_history", "whole_users"]

HISTORY_COLUMNS = ("user_id", "item_id", "weight", "timestamp")
DEFAULT_BATCH_ROWS = 1_000_000


def whole_users(chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Frames of whole users from consecutive chunks of a table whose rows are grouped by
    ``user_id``: the last user of each chunk is carried over to the next. Rows are numbered
    across chunks (index ``row``), so errors name the dataset row."""
    carry = None
    offset = 0
    for chunk in chunks:
        chunk.index = pd.RangeIndex(offset, offset + len(chunk), name="row")
        offset += len(chunk)
        if carry is not None and len(carry):
            chunk = pd.concat([carry, chunk])
        if not len(chunk):
            continue
        users = chunk["user_id"]
        other = np.flatnonzero((users != users.iloc[-1]).to_numpy(dtype=bool, na_value=True))
        start = int(other[-1]) + 1 if other.size else 0
        if start:
            yield chunk.iloc[:start]
        carry = chunk.iloc[start:]
    if carry is not None and len(carry):
        yield carry


def parquet_history(path: str | os.PathLike, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The history in the Parquet file or folder ``path`` (columns ``user_id, item_id`` and,
    when present, ``weight`` and ``timestamp``), as frames of whole users of about
    ``batch_rows`` rows each."""
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(os.fspath(path), format="parquet")
    except (OSError, ValueError) as exc:  # missing path, not Parquet
        raise InputError(f"history '{os.fspath(path)}' cannot be read as a Parquet file or folder: {exc}") from None
    names = dataset.schema.names
    missing = [c for c in ("user_id", "item_id") if c not in names]
    if missing:
        raise InputError(f"history '{os.fspath(path)}' is missing column(s) {missing}; it has {names}")
    columns = [c for c in HISTORY_COLUMNS if c in names]
    batches = dataset.to_batches(columns=columns, batch_size=batch_rows)
    yield from whole_users(batch.to_pandas() for batch in batches)
