"""``rerank_spark(..., by="partition")``: rerank candidates that are already clustered by user,
without a shuffle (issue 16: on ``local[2]`` Spark's own shuffle, sort and Arrow transfer cost
more than the whole in-process rerank, docs/spark.md).

Contract: every user's candidate rows lie in **one partition** of the DataFrame and are
**contiguous** there, in input order — what ``repartition("user_id").sortWithinPartitions(
"user_id", ...)`` upstream gives, or a candidate generator that writes each user's list
together (Parquet row groups holding whole users; the ALS adapter's output). Each partition is
reranked by ``mapInPandas``: its Arrow batches are gathered into chunks of about
``CHUNK_ROWS`` rows (a call per 10,000-row batch made the per-call cost dominate) and cut at
user boundaries — the trailing user of a chunk is carried into the next — so a user is
reranked once, whole.

Both halves of the contract are checked, never assumed:

* a user whose rows reappear after another user's in the same partition fails the job with an
  :class:`~rerank.errors.InputError` naming the user (checked as the rows stream by);
* a user whose rows lie in two partitions is found before the job by
  :func:`check_one_partition_per_user` — one job over the distinct ``(partition, user)`` pairs
  (a partial aggregation per partition, so only about one row per user is shuffled) — unless
  ``check_partitions=False``. That check and the job see the same partitions only if the
  DataFrame is deterministic (a file scan, or a cached DataFrame); otherwise cache it first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from rerank.errors import InputError
from rerank.ids import show_id

__all__ = ["check_one_partition_per_user", "rerank_by_partition"]

CHUNK_ROWS = 1_000_000  # rows reranked per Python call (one call per Arrow batch cost more than the shuffle saved)
CONTRACT = ("by='partition' needs each user's rows together in one partition (e.g. "
            "candidates.repartition('user_id').sortWithinPartitions('user_id')), or use by='bucket'")


def check_one_partition_per_user(rows) -> None:
    """Raise :class:`InputError` naming a user whose rows lie in more than one partition."""
    from pyspark.sql import functions as F

    pairs = rows.select(F.spark_partition_id().alias("__rerank_partition"), "user_id").distinct()
    split = pairs.groupBy("user_id").count().filter(F.col("count") > 1).limit(1).collect()
    if split:
        raise InputError(f"candidates: user {show_id(split[0]['user_id'])} has rows in "
                         f"{split[0]['count']} partitions; {CONTRACT}")


def _user_codes(frame: pd.DataFrame) -> tuple[np.ndarray, pd.Index]:
    codes, users = pd.factorize(frame["user_id"], use_na_sentinel=True)
    return codes, pd.Index(users)


def _ready_rows(codes: np.ndarray) -> int:
    """Rows before the trailing user's run (those rows are complete; the run may go on in the
    next batch). A trailing row without user id ends nothing: everything is ready."""
    if codes[-1] < 0:
        return codes.shape[0]
    others = np.flatnonzero(codes != codes[-1])
    return int(others[-1]) + 1 if others.size else 0


def _check_contiguous(codes: np.ndarray, users: pd.Index, finished: set) -> None:
    """Each user of a chunk (``codes`` into ``users``, one per row) in one run of rows, and none
    finished in an earlier chunk of the partition (``finished`` gets this chunk's users)."""
    codes = codes[codes >= 0]  # rows without a user id are rerank's to report
    heads = codes[np.r_[True, np.diff(codes) != 0]] if codes.size else codes
    seen_here: set = set()
    for code in heads.tolist():
        user = users[code]
        if code in seen_here or user in finished:
            raise InputError(f"candidates: user {show_id(user)}'s rows are not together in their partition "
                             f"(another user's rows come between them); {CONTRACT}")
        seen_here.add(code)
    finished.update(users[code] for code in seen_here)


def rerank_by_partition(rows, rerank_rows: Callable[[pd.DataFrame, None], pd.DataFrame], schema):
    """``rows.mapInPandas``: each partition's Arrow batches cut at user boundaries and reranked
    by ``rerank_rows(frame, None)`` (module docstring)."""

    chunk_rows = CHUNK_ROWS  # read on the driver, shipped in the closure

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        finished: set = set()
        pending: list[pd.DataFrame] = []  # Arrow batches (10,000 rows by default) gathered into chunks
        n_pending = 0
        for batch in batches:
            pending.append(batch)
            n_pending += len(batch)
            if n_pending < chunk_rows:
                continue
            frame = pd.concat(pending, ignore_index=True)
            codes, users = _user_codes(frame)  # once per chunk: the cut and the check share them
            cut = _ready_rows(codes)
            if cut:
                _check_contiguous(codes[:cut], users, finished)
                yield rerank_rows(frame.iloc[:cut], None)
            pending, n_pending = [frame.iloc[cut:]], len(frame) - cut
        if n_pending:
            frame = pd.concat(pending, ignore_index=True)
            _check_contiguous(*_user_codes(frame), finished)
            yield rerank_rows(frame, None)

    return rows.mapInPandas(run, schema)
