"""Spark reports and the workers' Python (issue 16 item 4), on a real local Spark session:
``rerank_spark(..., report=True)`` returns the skipped and short users ``rerank`` reports; a
worker Python that cannot import ``rerank`` fails fast in one line naming ``PYSPARK_PYTHON``;
with ``PYSPARK_PYTHON`` unset on a local master the workers run the driver's interpreter and
the output equals the in-process output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv

import numpy as np
import pandas as pd
import pytest
from test_spark import SPARK_MARKS, K, assert_same_rows, make_data

from rerank import CalibratedReranker
from rerank.spark_env import SparkWorkerError

pytestmark = SPARK_MARKS


def ids(index) -> list:
    return sorted(str(u) for u in index)


@pytest.mark.parametrize("string_ids", [False, True])
def test_report_returns_the_skipped_and_short_users(spark, string_ids):
    history, item_categories, candidates = make_data(5, string_ids=string_ids)
    bad_users = candidates["user_id"].unique()[:4]
    bad = candidates.copy()
    bad.loc[bad.index[bad["user_id"] == bad_users[0]][:1], "score"] = np.nan
    bad.loc[bad.index[bad["user_id"] == bad_users[1]][:1], "item_id"] = None
    dup = bad[bad["user_id"] == bad_users[2]].iloc[:1]
    bad = pd.concat([bad, dup], ignore_index=True)
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    local = reranker.rerank(bad, on_invalid="skip")
    expected = reranker.report_
    out, report = reranker.rerank_spark(spark.createDataFrame(bad), on_invalid="skip", report=True, n_buckets=3)
    try:
        assert_same_rows(out, local)
        skipped = report.skipped.toPandas()
        assert ids(skipped["user_id"]) == ids(expected.skipped["user_id"]) and len(skipped) == 3
        merged = skipped.astype({"user_id": str}).merge(expected.skipped.astype({"user_id": str}), on="user_id")
        assert (merged["reason_x"] == merged["reason_y"]).all() and (merged["n_rows_x"] == merged["n_rows_y"]).all()
        short = report.short.toPandas()
        assert ids(short["user_id"]) == ids(expected.short_users) and len(short) > 0
        counts = local.groupby(local["user_id"].astype(str)).size()
        assert (short["n_candidates"].to_numpy() == counts.loc[short["user_id"].astype(str)].to_numpy()).all()
        assert report.summary() == {"skipped_users": 3, "short_users": len(expected.short_users)}
    finally:
        report.unpersist()
    with pytest.raises(TypeError, match="report must be True or False"):
        reranker.rerank_spark(spark.createDataFrame(bad), report="yes")


def bare_python(folder) -> str:
    """An interpreter of the same version with nothing installed (no rerank, no pandas)."""
    venv.EnvBuilder(with_pip=False).create(folder)
    return os.path.join(folder, "bin", "python")


def test_a_worker_without_rerank_fails_fast_naming_pyspark_python(spark, tmp_path):
    history, item_categories, candidates = make_data(6, string_ids=False, n_users=20)
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    context = spark.sparkContext
    before = context.pythonExec
    context.pythonExec = bare_python(tmp_path / "bare")
    try:
        with pytest.raises(SparkWorkerError) as caught:
            reranker.rerank_spark(spark.createDataFrame(candidates))
        context.pythonExec = str(tmp_path / "missing" / "python")
        with pytest.raises(SparkWorkerError) as missing:
            reranker.rerank_spark(spark.createDataFrame(candidates))
    finally:
        context.pythonExec = before
    message = str(caught.value)
    assert "\n" not in message and "PYSPARK_PYTHON" in message and "cannot import rerank" in message
    assert "No module named" in message and str(tmp_path / "bare") in message
    assert "\n" not in str(missing.value) and "failed to start" in str(missing.value)
    assert_same_rows(reranker.rerank_spark(spark.createDataFrame(candidates)), reranker.rerank(candidates))


CHILD = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, pandas as pd
    from pyspark.sql import SparkSession
    from rerank import CalibratedReranker
    assert "PYSPARK_PYTHON" not in os.environ
    rng = np.random.default_rng(0)
    candidates = pd.DataFrame({"user_id": np.repeat(np.arange(60), 9), "item_id": np.tile(np.arange(9), 60),
                               "score": rng.random(540).round(1)}).sample(frac=1.0, random_state=1)
    history = pd.DataFrame({"user_id": np.arange(50), "item_id": rng.integers(0, 9, 50)})
    categories = pd.DataFrame({"item_id": np.arange(9), "category": np.arange(9) % 4})
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.sql.shuffle.partitions", "3").getOrCreate())
    reranker = CalibratedReranker(k=4, lam=0.6).fit(history, categories)
    got = reranker.rerank_spark(spark.createDataFrame(candidates)).toPandas()
    local = reranker.rerank(candidates)
    key = ["user_id", "rank"]
    same = got.sort_values(key).reset_index(drop=True).equals(local.sort_values(key).reset_index(drop=True))
    grouped = candidates.sort_values("user_id", kind="stable").reset_index(drop=True)
    grouped.to_parquet("cands.parquet", index=False, row_group_size=90)  # 10 users of 9 rows per row group
    reranker.rerank_parquet_spark(spark, "cands.parquet", "out")
    files_same = pd.read_parquet("out").equals(reranker.rerank(grouped))
    print(json.dumps({"same": bool(same), "files_same": bool(files_same), "python": spark.sparkContext.pythonExec,
                      "rows": len(got)}))
    spark.stop()
    """
)


@pytest.mark.slow
def test_with_pyspark_python_unset_a_local_master_uses_the_driver_python(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env.get('PATH', '')}"  # a 'python3' on the PATH without rerank
    os.symlink(bare_python(tmp_path / "bare"), tmp_path / "python3")
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"same": True, "files_same": True, "python": sys.executable, "rows": 240}


def test_report_with_explain_and_shown(spark):
    """report=True beside explain=True (whose 'reason' column the report must not take) and a
    shown prefix: the output has the explanation columns of rerank(), the report its users."""
    history, item_categories, candidates = make_data(7, string_ids=True)
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    bad_user = candidates["user_id"].unique()[0]
    bad = candidates.copy()
    bad.loc[bad.index[bad["user_id"] == bad_user][:1], "score"] = np.nan
    shown = candidates.groupby("user_id", sort=False).tail(1)[["user_id", "item_id"]]
    local = reranker.rerank(bad, on_invalid="skip", shown=shown, explain=True)
    expected = reranker.report_
    out, report = reranker.rerank_spark(spark.createDataFrame(bad), on_invalid="skip", report=True, n_buckets=3,
                                        shown=spark.createDataFrame(shown), explain=True)
    try:
        got = out.toPandas()
        assert list(got.columns) == list(local.columns)
        got = got.sort_values(["user_id", "rank"]).reset_index(drop=True)
        want = local.sort_values(["user_id", "rank"]).reset_index(drop=True)
        for column in ("user_id", "item_id", "rank", "input_rank", "reason"):
            assert got[column].astype(str).tolist() == want[column].astype(str).tolist(), column
        skipped = report.skipped.toPandas()
        assert ids(skipped["user_id"]) == ids(expected.skipped["user_id"]) == [str(bad_user)]
        assert skipped["reason"].tolist() == expected.skipped["reason"].tolist()
        assert ids(report.short.toPandas()["user_id"]) == ids(expected.short_users)
    finally:
        report.unpersist()
