"""SparkALSAdapter on a real ALS fit (``local[2]``): candidates equal a top-n recomputed here
from the model's own ``userFactors`` / ``itemFactors`` (ties and seen items included), cold
users are reported, and the pipeline candidates -> fit_spark -> rerank_spark equals the same
steps in process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rerank import CalibratedReranker
from rerank.testing import reference as ref

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
from pyspark.ml.recommendation import ALS, ALSModel  # noqa: E402
from rerank.adapters.spark_als import SparkALSAdapter  # noqa: E402

pytestmark = [  # the shared `spark` fixture (conftest.py) skips without Java
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

N_USERS, N_ITEMS, N = 120, 50, 8


def user_id(u: int) -> int:
    return 1000 + u


def item_id(i: int) -> int:  # not the position: "lower item id" must be the id's order
    return 7 * ((i * 13) % N_ITEMS) + 3


#: Item pairs whose factors are made equal after training: exact score ties for every user.
TWINS = {item_id(11): item_id(10), item_id(12): item_id(10), item_id(30): item_id(31)}


def interactions_frame() -> pd.DataFrame:
    """Implicit feedback with: user 0 has seen all but 3 items, user 1 everything, user 2
    nothing (so it has no factors: cold)."""
    rng = np.random.default_rng(7)
    rows = []
    for u in range(N_USERS):
        if u == 0:
            seen = [i for i in range(N_ITEMS) if i not in (5, 17, 40)]
        elif u == 1:
            seen = list(range(N_ITEMS))
        elif u == 2:
            seen = []
        else:
            seen = rng.choice(N_ITEMS, size=int(rng.integers(2, 15)), replace=False).tolist()
        rows += [(user_id(u), item_id(i), float(rng.integers(1, 5))) for i in seen]
    return pd.DataFrame(rows, columns=["user", "item", "clicks"]).astype({"user": "int32", "item": "int32"})


@pytest.fixture(scope="module")
def data(spark):
    return spark.createDataFrame(interactions_frame())


@pytest.fixture(scope="module")
def model(spark, data, tmp_path_factory):
    """A real implicit ALS fit, saved, its item factors edited so that TWINS tie, loaded back."""
    fitted = ALS(
        rank=4, maxIter=3, regParam=0.1, implicitPrefs=True, ratingCol="clicks", userCol="user", itemCol="item",
        numUserBlocks=1, numItemBlocks=1, seed=0,
    ).fit(data)
    path = str(tmp_path_factory.mktemp("als") / "model")
    fitted.write().overwrite().save(path)
    items = fitted.itemFactors.toPandas()
    by_id = dict(zip(items["id"], items["features"], strict=True))
    items["features"] = [list(by_id[TWINS.get(i, i)]) for i in items["id"]]
    spark.createDataFrame(items, fitted.itemFactors.schema).write.mode("overwrite").parquet(path + "/itemFactors")
    return ALSModel.load(path)


@pytest.fixture(scope="module")
def factors(model):
    users = {r.id: [float(x) for x in r.features] for r in model.userFactors.collect()}
    items = {r.id: [float(x) for x in r.features] for r in model.itemFactors.collect()}
    return users, items


def reference(factors, users, n, exclude_seen=True):
    """The n best items per user by a plain-Python dot product (float64, factor order), seen
    items skipped, ties by lower item id."""
    user_f, item_f = factors

    def score_of(u, i):
        if i not in item_f:
            return None
        total = 0.0
        for x, y in zip(user_f[u], item_f[i], strict=True):
            total += x * y
        return total

    frame = interactions_frame()
    seen = {u: set(frame.loc[frame["user"] == u, "item"]) for u in users} if exclude_seen else None
    return ref.top_n(score_of, users, max(item_f) + 1, n, seen=seen, items=sorted(item_f))


def sorted_lists(sdf, users):
    frame = sdf.toPandas().sort_values(["user_id", "rank"], kind="stable")
    for u, group in frame.groupby("user_id"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1)), f"user {u}"
    return ref.frame_lists(frame, users)


@pytest.fixture(scope="module")
def default_candidates(model, data):
    return SparkALSAdapter(model).candidates(n=N, interactions=data).cache()


@pytest.mark.parametrize(
    ("blocks", "exclude_seen"),
    [(None, True), ((7, 9), True), ((7, 9), False)],
    ids=["one-block", "many-blocks", "keep-seen"],
)
def test_candidates_equal_top_n_from_factors(model, data, factors, default_candidates, blocks, exclude_seen):
    users = sorted(factors[0])
    if blocks is None:
        out = default_candidates
    else:
        adapter = SparkALSAdapter(model, user_block_size=blocks[0], item_block_size=blocks[1])
        out = adapter.candidates(n=N, exclude_seen=exclude_seen, interactions=data if exclude_seen else None)
    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
        ("user_id", "int"), ("item_id", "int"), ("score", "double"), ("rank", "int"),
    ]
    got = sorted_lists(out, users)
    want = reference(factors, users, N, exclude_seen)
    assert got == want  # same items, same order, bitwise the same scores
    # The twins really tie, and some list holds a tie at equal score: the tie rule was exercised.
    assert any(len({s for _, s in lst}) < len(lst) for lst in got.values())


def test_users_who_have_seen_nearly_everything(default_candidates):
    frame = default_candidates.toPandas()
    assert sorted(frame.loc[frame["user_id"] == user_id(0), "item_id"]) == sorted(item_id(i) for i in (5, 17, 40))
    assert not (frame["user_id"] == user_id(1)).any()  # has seen every item: no rows, no padding
    seen = set(map(tuple, interactions_frame()[["user", "item"]].to_numpy()))
    assert not seen & set(map(tuple, frame[["user_id", "item_id"]].to_numpy()))
    counts = frame.groupby("user_id").size()
    assert (counts.drop([user_id(0)]) == N).all()  # n counted after exclusion


def test_cold_users_are_reported_not_dropped(spark, model, data, factors):
    adapter = SparkALSAdapter(model)
    asked = [user_id(5), 99_999, user_id(2), user_id(9), user_id(5)]
    out = adapter.candidates(asked, n=N, interactions=data)
    assert adapter.report_.n_cold == 2
    assert sorted(r["user"] for r in adapter.report_.cold_users.collect()) == [user_id(2), 99_999]
    known = [user_id(5), user_id(9)]
    assert sorted_lists(out, known) == reference(factors, known, N)
    as_frame = spark.createDataFrame(pd.DataFrame({"user": asked}))
    with pytest.raises(ValueError, match=r"has no ALS factors \(cold: 2 requested users"):
        adapter.candidates(as_frame, n=N, interactions=data, on_cold="raise")


def test_spark_own_top_n_keeps_seen_items_and_puts_higher_ids_first(model, data):
    """The pitfalls the adapter exists for: Spark's own top-n returns items the user has seen,
    and among equal scores it puts the higher item id first (the product: the lower)."""
    users = data.filter(data.user.isin([user_id(0), user_id(3)])).select("user").distinct()
    recs = {r["user"]: [x["item"] for x in r["recommendations"]]
            for r in model.recommendForUserSubset(users, N_ITEMS).collect()}
    seen = set(interactions_frame().query(f"user == {user_id(0)}")["item"])
    assert len(set(recs[user_id(0)][:N]) & seen) >= N - 3
    twins = [i for i in recs[user_id(3)] if i in {item_id(10), item_id(11), item_id(12)}]
    assert twins == sorted(twins, reverse=True)


def test_pipeline_rerank_on_spark_equals_in_process(spark, data, default_candidates):
    """candidates -> fit_spark -> rerank_spark, all on the cluster, equals fit + rerank in process."""
    from rerank.spark import fit_spark, rerank_spark

    genres = pd.DataFrame(
        [(item_id(i), f"g{g}") for i in range(N_ITEMS) for g in {i % 3, i % 5}], columns=["item_id", "category"]
    )
    history = data.selectExpr("user AS user_id", "item AS item_id", "clicks AS weight")
    on_spark = fit_spark(CalibratedReranker(k=4, lam=0.6), history, spark.createDataFrame(genres))
    top = rerank_spark(on_spark, default_candidates, position_col="rank")
    candidates = default_candidates.toPandas().sort_values(["user_id", "rank"], kind="stable")
    local = CalibratedReranker(k=4, lam=0.6).fit(
        interactions_frame().rename(columns={"user": "user_id", "item": "item_id", "clicks": "weight"}), genres
    )
    want = local.rerank(candidates[["user_id", "item_id", "score"]].reset_index(drop=True))
    got = top.toPandas().sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
    assert len(want) > 0
    for column in ("user_id", "item_id", "rank"):
        assert got[column].astype(np.int64).tolist() == want[column].astype(np.int64).tolist()
    assert got["score"].tolist() == want["score"].tolist()


def test_bad_input_is_named(model, data, spark):
    with pytest.raises(TypeError, match="needs a fitted pyspark.ml.recommendation.ALSModel"):
        SparkALSAdapter(object())
    adapter = SparkALSAdapter(model)
    with pytest.raises(ValueError, match="exclude_seen=True needs interactions"):
        adapter.candidates(n=5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        adapter.candidates(n=0, exclude_seen=False)
    with pytest.raises(ValueError, match="interactions is missing column 'item'"):
        adapter.candidates(n=5, interactions=data.select("user"))
    strings = data.selectExpr("CAST(user AS string) AS user", "item")
    with pytest.raises(TypeError, match="interactions column 'user' must hold integer ids"):
        adapter.candidates(n=5, interactions=strings)
    with pytest.raises(TypeError, match="users must be integer ids"):
        adapter.candidates(["ann"], n=5, exclude_seen=False)
    with pytest.raises(ValueError, match="on_cold"):
        adapter.candidates(n=5, exclude_seen=False, on_cold="ignore")
