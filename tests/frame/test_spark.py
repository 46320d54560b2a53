"""Spark scale-out (issue 7) on a real local Spark session: ``rerank_spark`` returns exactly the
rows of ``CalibratedReranker.rerank`` and ``fit_spark`` the targets of ``fit``."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import CalibratedReranker
from rerank.spark import worker_reranker
from rerank.testing.strategies import rerank_inputs

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")

JAVA = shutil.which("java") or (
    os.environ.get("JAVA_HOME") and os.path.join(os.environ["JAVA_HOME"], "bin", "java")
)

SPARK_MARKS = [  # every Spark test module's marks (test_spark_env, test_spark_partition import them)
    pytest.mark.spark,
    pytest.mark.skipif(not JAVA, reason="Spark needs Java (none on PATH or JAVA_HOME)"),
    # pyspark 4.x warns that it does not fully support pandas 3; these tests are the check.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
pytestmark = SPARK_MARKS

K = 5


def make_data(seed: int, *, string_ids: bool, n_users: int = 150, n_items: int = 120, n_categories: int = 5):
    """History (with weight, timestamp), item categories and candidates with score ties.

    Some users have no history (cold), some items have no category row, some candidate items
    are unknown to the table, some users have fewer than K candidates, and scores are rounded
    to one decimal so that ties (broken by input position) are common.
    """
    rng = np.random.default_rng(seed)
    item_cats = []
    for i in range(n_items - 10):  # the last 10 items have no category
        for g in rng.choice(n_categories, size=rng.integers(1, 3), replace=False):
            item_cats.append((i, f"g{g}", float(rng.integers(1, 4))))
    item_categories = pd.DataFrame(item_cats, columns=["item_id", "category", "weight"])
    history_rows, cand_rows = [], []
    for u in range(n_users):
        if u % 7 != 3:  # every 7th user is cold
            for i in rng.choice(n_items, size=rng.integers(1, 12), replace=False):
                history_rows.append((u, i, float(rng.integers(1, 6)), float(rng.integers(0, 1000))))
        n_cand = int(rng.integers(1, 25))
        for i in rng.choice(n_items + 20, size=n_cand, replace=False):  # ids >= n_items: unknown
            cand_rows.append((u, i, round(float(rng.random()), 1)))
    history = pd.DataFrame(history_rows, columns=["user_id", "item_id", "weight", "timestamp"])
    candidates = pd.DataFrame(cand_rows, columns=["user_id", "item_id", "score"])
    candidates = candidates.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # users interleaved
    if string_ids:
        for frame in (history, candidates, item_categories):
            frame["item_id"] = "item-" + frame["item_id"].astype(str)
        for frame in (history, candidates):
            frame["user_id"] = "user-" + frame["user_id"].astype(str)
    return history, item_categories, candidates


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[["user_id", "item_id", "score", "rank"]].copy()
    frame["user_id"] = frame["user_id"].astype(object)
    frame["item_id"] = frame["item_id"].astype(object)
    frame["rank"] = frame["rank"].astype(np.int64)
    return frame.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)


def assert_same_rows(spark_out, local_out):
    got = sorted_rows(spark_out.toPandas())
    expected = sorted_rows(local_out)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_dtype=True, check_exact=True)


@pytest.fixture(scope="module")
def int_data():
    return make_data(1, string_ids=False)


@pytest.fixture(scope="module")
def str_data():
    return make_data(2, string_ids=True)


# ---------------------------------------------------------------------------- rerank_spark
@pytest.mark.parametrize(
    ("ids", "by", "options"),
    [
        ("int", "bucket", {"lam": 0.5}),
        ("str", "bucket", {"lam": 0.8, "normalize": "minmax", "rank_weights": "dcg"}),
        ("int", "user", {"lam": 0.7, "divergence": "hellinger", "order": "score"}),
        ("str", "user", {"lam": 0.3, "safeguard": False, "normalize": "rank"}),
        ("int", "bucket", {"lam": 0.0}),
    ],
)
def test_rerank_spark_equals_rerank(spark, int_data, str_data, ids, by, options):
    history, item_categories, candidates = int_data if ids == "int" else str_data
    reranker = CalibratedReranker(k=K, half_life=300.0, **options).fit(history, item_categories)
    sdf = spark.createDataFrame(candidates)
    out = reranker.rerank_spark(sdf, by=by, n_buckets=4)
    assert [f.name for f in out.schema.fields] == ["user_id", "item_id", "score", "rank"]
    assert out.schema["user_id"].dataType == sdf.schema["user_id"].dataType
    assert out.schema["item_id"].dataType == sdf.schema["item_id"].dataType
    assert_same_rows(out, reranker.rerank(candidates))


def spark_type(series: pd.Series):
    """The Spark type of an integer or string id column."""
    from pyspark.sql.types import LongType, StringType

    return LongType() if pd.api.types.is_integer_dtype(series) else StringType()


#: A few users with up to 12 candidates each, many score ties, integer or string ids (Spark has
#: no unsigned integers), items with up to 3 categories or none, some users cold.
SMALL_INPUTS = rerank_inputs(max_users=6, max_candidates=12, id_kinds=("int", "str"), ties=True,
                             extreme_scores=False)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=SMALL_INPUTS, k=st.integers(1, 5), lam=st.sampled_from([0.0, 0.3, 0.9]),
       by=st.sampled_from(["bucket", "user"]))
def test_rerank_spark_equals_rerank_property(spark, data, k, lam, by):
    from pyspark.sql.types import StructField, StructType

    history, item_categories, candidates = data
    reranker = CalibratedReranker(k=k, lam=lam).fit(history, item_categories)
    expected = sorted_rows(reranker.rerank(candidates))
    got = sorted_rows(reranker.rerank_spark(spark.createDataFrame(candidates), by=by, n_buckets=2).toPandas())
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # fit_spark on the same (possibly empty) history and item table gives the same targets
    h_schema = StructType([StructField(c, spark_type(history[c])) for c in ("user_id", "item_id")])
    c_schema = StructType([StructField(c, spark_type(item_categories[c])) for c in ("item_id", "category")])
    distributed = CalibratedReranker(k=k, lam=lam).fit_spark(
        spark.createDataFrame(history, schema=h_schema), spark.createDataFrame(item_categories, schema=c_schema)
    )
    users = pd.Index(candidates["user_id"].unique())
    assert set(distributed.users_) == set(reranker.users_)
    np.testing.assert_allclose(
        distributed.target_distributions(users).to_numpy(), reranker.target_distributions(users).to_numpy(),
        rtol=1e-12, atol=1e-15,
    )


def test_output_keeps_integer_id_types(spark, int_data):
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, LongType

    history, item_categories, candidates = int_data
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    sdf = spark.createDataFrame(candidates).withColumn("item_id", F.col("item_id").cast("int"))
    out = reranker.rerank_spark(sdf)
    assert out.schema["item_id"].dataType == IntegerType()
    assert out.schema["user_id"].dataType == LongType()
    assert_same_rows(out, reranker.rerank(candidates))


def test_per_user_lambda_column(spark, str_data):
    history, item_categories, candidates = str_data
    users = candidates["user_id"].unique()
    lam = pd.Series(np.linspace(0.0, 1.0, len(users)), index=users)
    with_lam = candidates.assign(lam_u=candidates["user_id"].map(lam).astype(float))
    reranker = CalibratedReranker(k=K, lam="lam_u").fit(history, item_categories)
    expected = reranker.rerank(with_lam)
    assert_same_rows(reranker.rerank_spark(spark.createDataFrame(with_lam)), expected)
    # per-user λ matters here: a single global λ gives other lists
    assert not sorted_rows(expected).equals(sorted_rows(CalibratedReranker(k=K, lam=0.5).fit(
        history, item_categories).rerank(candidates)))


def test_per_user_lambda_mapping(spark, int_data):
    history, item_categories, candidates = int_data
    lam = {u: (u % 5) / 4 for u in candidates["user_id"].unique()}
    reranker = CalibratedReranker(k=K, lam=lam).fit(history, item_categories)
    assert_same_rows(reranker.rerank_spark(spark.createDataFrame(candidates), by="bucket", n_buckets=3),
                     reranker.rerank(candidates))
    # the broadcast copy runs one kernel thread per Spark task; the caller's reranker is untouched
    assert worker_reranker(reranker).n_threads == 1
    assert reranker.n_threads is None and isinstance(reranker.lam, dict)


@pytest.mark.parametrize(
    ("ids", "options"),
    [
        ("str", {"lam": 0.2, "min_share": True}),
        ("int", {"lam": 0.0, "min_share": 0.5, "min_share_threshold": 0.1}),
        ("int", {"lam": 0.6, "method": "pm2"}),
    ],
)
def test_quota_mode_and_pm2(spark, int_data, str_data, ids, options):
    history, item_categories, candidates = int_data if ids == "int" else str_data
    reranker = CalibratedReranker(k=K, **options).fit(history, item_categories)
    expected = reranker.rerank(candidates)
    plain = CalibratedReranker(k=K, lam=options["lam"]).fit(history, item_categories).rerank(candidates)
    assert not sorted_rows(expected).equals(sorted_rows(plain))  # the mode changes some lists
    assert_same_rows(reranker.rerank_spark(spark.createDataFrame(candidates)), expected)


def test_ties_follow_input_order_across_partitions(spark):
    """All scores equal and λ=0: the output is each user's first K candidates in input order,
    although the shuffle mixes rows of several input partitions."""
    history = pd.DataFrame({"user_id": [0], "item_id": [0]})
    item_categories = pd.DataFrame({"item_id": list(range(40)), "category": ["a", "b"] * 20})
    pairs = pd.DataFrame([(u, i) for u in range(6) for i in range(30)], columns=["user_id", "item_id"])
    candidates = pairs.sample(frac=1.0, random_state=5).reset_index(drop=True).assign(score=1.0)
    reranker = CalibratedReranker(k=K, lam=0.0).fit(history, item_categories)
    local = reranker.rerank(candidates)
    first_k = candidates.groupby("user_id")["item_id"].apply(lambda s: list(s[:K])).to_dict()
    assert local.groupby("user_id")["item_id"].apply(list).to_dict() == first_k
    sdf = spark.createDataFrame(candidates).repartition(4)  # rows of a user now in other partitions
    # position_col: the DataFrame's rows are in another order than the positions they carry.
    with_pos = candidates.assign(pos=np.arange(len(candidates))).sample(frac=1.0, random_state=6)
    assert_same_rows(reranker.rerank_spark(spark.createDataFrame(with_pos), position_col="pos"), local)
    # Without position_col the row order of the (repartitioned) DataFrame itself is the input order.
    shuffled = sdf.toPandas()
    assert_same_rows(reranker.rerank_spark(spark.createDataFrame(shuffled)), reranker.rerank(shuffled))


def test_on_invalid_skip(spark, int_data):
    history, item_categories, candidates = int_data
    bad_users = candidates["user_id"].unique()[:3]
    bad = candidates.copy()
    bad.loc[bad.index[bad["user_id"].isin(bad_users)], "score"] = np.inf
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    expected = reranker.rerank(bad, on_invalid="skip")
    assert not expected["user_id"].isin(bad_users).any()
    assert_same_rows(reranker.rerank_spark(spark.createDataFrame(bad), on_invalid="skip"), expected)
    from pyspark.errors import PythonException

    # the worker's one-line InputError comes back to the driver inside Spark's PythonException
    with pytest.raises(PythonException, match=r"InputError: .*'score'"):
        reranker.rerank_spark(spark.createDataFrame(bad)).collect()


def test_rerank_spark_rejects_bad_input(spark, int_data):
    history, item_categories, candidates = int_data
    reranker = CalibratedReranker(k=K).fit(history, item_categories)
    with pytest.raises(ValueError, match="missing column.*score"):
        reranker.rerank_spark(spark.createDataFrame(candidates.drop(columns="score")))
    with pytest.raises(TypeError, match="'score' must be numeric"):
        reranker.rerank_spark(spark.createDataFrame(candidates.assign(score="x")))
    with pytest.raises(TypeError, match="pyspark.sql.DataFrame"):
        reranker.rerank_spark(candidates)
    with pytest.raises(ValueError, match="n_buckets must be >= 1"):
        reranker.rerank_spark(spark.createDataFrame(candidates), n_buckets=0)
    with pytest.raises(ValueError, match="by must be"):
        reranker.rerank_spark(spark.createDataFrame(candidates), by="item")
    with pytest.raises(TypeError, match="'user_id' holds string ids"):  # raised before any job runs
        reranker.rerank_spark(spark.createDataFrame(candidates.assign(user_id=candidates["user_id"].astype(str))))
    with pytest.raises(RuntimeError, match="not fitted"):
        CalibratedReranker().rerank_spark(spark.createDataFrame(candidates))
    # duplicate (user, item) rows are found inside the workers, by the same check as rerank
    dup = pd.concat([candidates, candidates.iloc[:1]])
    from pyspark.errors import PythonException

    with pytest.raises(PythonException, match=r"InputError: .*duplicate"):
        reranker.rerank_spark(spark.createDataFrame(dup)).collect()


# ---------------------------------------------------------------------------- fit_spark
def reference_targets(history: pd.DataFrame, item_categories: pd.DataFrame, half_life):
    """Steck eq. 1 by hand: p(g|u) ∝ Σ_i w_ui p(g|i), w_ui = weight · 0.5^((t_max - t)/h)."""
    item_total = item_categories.groupby("item_id")["weight"].sum().to_dict()
    p_item = defaultdict(dict)
    for item, cat, w in item_categories[["item_id", "category", "weight"]].itertuples(index=False):
        p_item[item][cat] = p_item[item].get(cat, 0.0) + w / item_total[item]
    latest = history.groupby("user_id")["timestamp"].max().to_dict()
    mass = defaultdict(lambda: defaultdict(float))
    for user, item, w, t in history[["user_id", "item_id", "weight", "timestamp"]].itertuples(index=False):
        decay = 1.0 if half_life is None else math.pow(0.5, (latest[user] - t) / half_life)
        for cat, p in p_item.get(item, {}).items():
            mass[user][cat] += w * decay * p
    return {u: {g: m / sum(ms.values()) for g, m in ms.items()} for u, ms in mass.items() if sum(ms.values()) > 0}


@pytest.mark.parametrize(("ids", "half_life", "weighted"), [("int", 250.0, True), ("str", None, False)])
def test_fit_spark_equals_fit(spark, int_data, str_data, ids, half_life, weighted):
    history, item_categories, candidates = int_data if ids == "int" else str_data
    if not weighted:
        history = history.drop(columns="weight")
    local = CalibratedReranker(k=K, lam=0.6, half_life=half_life).fit(history, item_categories)
    distributed = CalibratedReranker(k=K, lam=0.6, half_life=half_life).fit_spark(
        spark.createDataFrame(history), spark.createDataFrame(item_categories)
    )
    assert set(distributed.users_) == set(local.users_)
    assert list(distributed.categories_) == list(local.categories_)
    users = pd.Index(candidates["user_id"].unique())
    np.testing.assert_allclose(
        distributed.target_distributions(users).to_numpy(),
        local.target_distributions(users).to_numpy(),
        rtol=1e-12, atol=1e-15,
    )
    np.testing.assert_allclose(distributed.population_target_, local.population_target_, rtol=1e-12)
    # and against the hand-written eq. 1
    ref_history = history if weighted else history.assign(weight=1.0)
    expected = reference_targets(ref_history, item_categories, half_life)
    got = distributed.target_distributions(pd.Index(list(expected)))
    for user, dist in expected.items():
        for cat in distributed.categories_:
            assert got.loc[user, cat] == pytest.approx(dist.get(cat, 0.0), rel=1e-12, abs=1e-15)
    pd.testing.assert_frame_equal(
        sorted_rows(distributed.rerank(candidates)), sorted_rows(local.rerank(candidates)), check_exact=True
    )


@pytest.mark.parametrize("spark_type", ["timestamp", "timestamp_ntz"])
def test_fit_spark_datetime_timestamps(spark, int_data, spark_type):
    from pyspark.sql import functions as F

    history, item_categories, _ = int_data
    history = history.assign(timestamp=pd.Timestamp("2024-03-01") + pd.to_timedelta(history["timestamp"], unit="h"))
    local = CalibratedReranker(half_life=48 * 3600.0).fit(history, item_categories)
    sdf = spark.createDataFrame(history).withColumn("timestamp", F.col("timestamp").cast(spark_type))
    assert sdf.schema["timestamp"].dataType.simpleString() == spark_type
    distributed = CalibratedReranker(half_life=48 * 3600.0).fit_spark(sdf, spark.createDataFrame(item_categories))
    users = local.users_
    np.testing.assert_allclose(
        distributed.target_distributions(users).to_numpy(), local.target_distributions(users).to_numpy(), rtol=1e-12
    )


def test_fit_spark_rejects_bad_history(spark, int_data):
    history, item_categories, _ = int_data
    ic = spark.createDataFrame(item_categories)
    bad = history.assign(weight=history["weight"].where(history.index != 4, -1.0))
    with pytest.raises(ValueError, match="'weight' must be finite and >= 0.*1 such rows"):
        CalibratedReranker().fit_spark(spark.createDataFrame(bad), ic)
    with pytest.raises(ValueError, match="missing column.*item_id"):
        CalibratedReranker().fit_spark(spark.createDataFrame(history.drop(columns="item_id")), ic)
    with pytest.raises(ValueError, match="half_life needs a 'timestamp'"):
        CalibratedReranker(half_life=3.0).fit_spark(spark.createDataFrame(history.drop(columns="timestamp")), ic)
    with pytest.raises(TypeError, match="holds string ids.*holds integer ids"):
        string_items = history.assign(item_id=history["item_id"].astype(str))
        CalibratedReranker().fit_spark(spark.createDataFrame(string_items), ic)
    nulls = spark.createDataFrame(history.astype({"user_id": "float64"}).assign(
        user_id=lambda f: f["user_id"].where(f.index != 7)))
    with pytest.raises(ValueError, match="'user_id' has a null id.*1 such rows"):
        CalibratedReranker().fit_spark(nulls.withColumn("user_id", nulls["user_id"].cast("long")), ic)


def test_import_rerank_does_not_import_pyspark():
    code = "import sys, rerank; import rerank.spark; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- issue 14
@pytest.mark.parametrize(("ids", "by"), [("int", "bucket"), ("str", "user")])
def test_two_attributes_and_a_shown_prefix_on_spark(spark, int_data, str_data, ids, by):
    """fit_spark with an 'attribute' column gives fit's targets; rerank_spark(shown=) the rows
    of rerank(shown=) (shown items co-grouped by user / bucket, in their rank order)."""
    from rerank import popularity_categories

    history, item_categories, candidates = int_data if ids == "int" else str_data
    cats = pd.concat([item_categories.assign(attribute="genre"),
                      popularity_categories(history).assign(weight=1.0)], ignore_index=True)
    weights = {"genre": 2.0, "popularity": 1.0}
    local = CalibratedReranker(k=K, lam=0.7, attribute_weights=weights).fit(history, cats)
    distributed = CalibratedReranker(k=K, lam=0.7, attribute_weights=weights).fit_spark(
        spark.createDataFrame(history), spark.createDataFrame(cats)
    )
    users = pd.Index(candidates["user_id"].unique())
    np.testing.assert_allclose(distributed.target_distributions(users).to_numpy(),
                               local.target_distributions(users).to_numpy(), rtol=1e-12, atol=1e-15)
    shown = candidates.groupby("user_id", sort=False).tail(2)[["user_id", "item_id"]].copy()
    shown["rank"] = np.arange(len(shown), 0, -1)
    out = local.rerank_spark(spark.createDataFrame(candidates), by=by, n_buckets=4,
                             shown=spark.createDataFrame(shown), explain=True)
    expected = local.rerank(candidates, shown=shown, explain=True)
    assert_same_rows(out, expected)
    got = out.toPandas().astype({"user_id": object, "item_id": object}).sort_values(["user_id", "rank"])
    expected = expected.astype({"user_id": object, "item_id": object}).sort_values(["user_id", "rank"])
    for column in ("input_rank", "score_gain", "calibration_gain", "reason"):
        assert got[column].tolist() == expected[column].tolist(), column
    auto = CalibratedReranker(k=K, lam="auto", max_miscalibration=0.3).fit(history, cats)
    out = auto.rerank_spark(spark.createDataFrame(candidates), by=by, n_buckets=4).toPandas()
    expected = auto.rerank(candidates)
    assert_same_rows(spark.createDataFrame(out[["user_id", "item_id", "score", "rank"]]), expected)
    assert out.groupby("user_id")["lam"].first().sort_index().tolist() == auto.report_.lam.sort_index().tolist()
