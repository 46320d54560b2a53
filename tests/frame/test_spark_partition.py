"""``rerank_spark(..., by="partition")`` (issue 16): no shuffle for candidates already clustered
by user. The same rows as ``rerank`` whatever the Arrow batch cuts; both halves of the contract
(one partition per user, contiguous rows) are checked and fail with a message naming a user."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_spark import SPARK_MARKS, K, assert_same_rows, make_data

from rerank import CalibratedReranker
from rerank.errors import InputError

pytestmark = SPARK_MARKS


def grouped(candidates: pd.DataFrame) -> pd.DataFrame:
    """Each user's rows together (a stable sort keeps their order), with their position."""
    out = candidates.sort_values("user_id", kind="stable").reset_index(drop=True)
    return out.assign(pos=np.arange(len(out)))


@pytest.mark.parametrize("string_ids", [False, True])
def test_partition_mode_equals_rerank_across_batch_cuts(spark, string_ids, monkeypatch):
    import rerank.spark_partition

    monkeypatch.setattr(rerank.spark_partition, "CHUNK_ROWS", 10)  # chunks of ≥ 10 rows: users cut across them
    history, item_categories, candidates = make_data(11, string_ids=string_ids)
    frame = grouped(candidates)
    reranker = CalibratedReranker(k=K, lam=0.6).fit(history, item_categories)
    expected = reranker.rerank(frame.drop(columns="pos"))
    sdf = spark.createDataFrame(frame).repartition(3, "user_id").sortWithinPartitions("user_id", "pos")
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "7")  # batches of 7 rows: most users span two batches
    try:
        out, report = reranker.rerank_spark(sdf, by="partition", position_col="pos", report=True)
        assert_same_rows(out, expected)
        assert sorted(map(str, report.short.toPandas()["user_id"])) == sorted(map(str, reranker.report_.short_users))
        report.unpersist()
    finally:
        spark.conf.set(key, before)


def test_a_user_in_two_partitions_is_named_before_the_job(spark):
    history, item_categories, candidates = make_data(12, string_ids=False, n_users=40)
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    split = spark.createDataFrame(grouped(candidates)).repartition(4)  # round robin: users cut apart
    with pytest.raises(InputError, match=r"candidates: user \d+ has rows in [2-4] partitions; by='partition' needs"):
        reranker.rerank_spark(split, by="partition")


def test_rows_of_a_user_split_within_a_partition_fail_the_job_naming_the_user(spark):
    history, item_categories, _ = make_data(13, string_ids=False, n_users=10)
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    rows = pd.DataFrame({"user_id": [1, 1, 2, 2, 1], "item_id": [3, 4, 5, 6, 7], "score": [0.5, 0.4, 0.3, 0.2, 0.1]})
    sdf = spark.createDataFrame(rows).coalesce(1)
    from pyspark.errors import PythonException

    with pytest.raises(PythonException, match="user 1's rows are not together in their partition") as caught:
        reranker.rerank_spark(sdf, by="partition").collect()
    assert "InputError" in str(caught.value)
    with pytest.raises(InputError, match="shown= is co-grouped"):
        reranker.rerank_spark(sdf, by="partition", shown=sdf.select("user_id", "item_id"))
