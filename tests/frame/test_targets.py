"""Compact fitted targets (rerank/targets.py, rerank/userindex.py) and the streamed fit
(rerank/history.py): lookups equal Python's own equality, every layout and dtype gives back the
targets it stored, a fit batch by batch (frames or a Parquet dataset) equals the fit on the
whole frame, a fit never builds a dense users × categories array, and float32 targets stay
within their documented tolerance of the exact lists (docs/performance.md)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import CalibratedReranker, rerank_arrays
from rerank.errors import InputError
from rerank.history import parquet_history
from rerank.targets import DenseBlock, SparseBlock, TargetBuilder
from rerank.testing import reference as ref
from rerank.testing.strategies import instances
from rerank.userindex import UserIndex

# ---------------------------------------------------------------------------- the user index
INT_DTYPES = ["int64", "int32", "uint32", "float64", "Int64", "int64[pyarrow]"]


@settings(max_examples=examples(80), deadline=None)
@given(
    ids=st.lists(st.integers(-(2**62), 2**62) | st.integers(0, 30), unique=True, max_size=40),
    extra=st.lists(st.integers(-40, 40) | st.floats(-40, 40, allow_nan=False), max_size=20),
    dtype=st.sampled_from(INT_DTYPES),
    query_dtype=st.sampled_from(["same", "float64", "object"]),
)
def test_integer_lookups_are_python_equality(ids, extra, dtype, query_dtype):
    if dtype in ("int32", "uint32", "float64"):
        ids = [i for i in ids if 0 <= i < 2**31]
    index = UserIndex(pd.Index(pd.array(ids, dtype=dtype)))
    query = ids[::2] + extra
    if query_dtype == "float64":
        query = [float(q) for q in query if abs(q) <= 2**53]
        values = np.asarray(query, dtype=np.float64)
    elif query_dtype == "object":
        values = np.asarray(query, dtype=object)
    else:
        query = [q for q in query if float(q).is_integer() and (dtype not in ("uint32",) or q >= 0)]
        query = [q for q in query if dtype not in ("int32", "uint32", "float64") or abs(q) < 2**31]
        values = pd.array(query, dtype=dtype)
    expected = [next((r for r, i in enumerate(ids) if i == q), -1) for q in query]
    assert index.rows_for(values).tolist() == expected
    assert index.ids.tolist() == ids
    assert index.first_repeat() is None


@settings(max_examples=examples(60), deadline=None)
@given(
    ids=st.lists(st.text(max_size=4), unique=True, max_size=30),
    extra=st.lists(st.text(max_size=4) | st.integers(0, 5), max_size=10),
    arrow=st.booleans(),
)
def test_string_lookups_are_python_equality(ids, extra, arrow):
    index = UserIndex(pd.Index(ids, dtype="string[pyarrow]" if arrow else object))
    query = ids[1::2] + extra
    expected = [next((r for r, i in enumerate(ids) if i == q), -1) for q in query]
    assert index.rows_for(np.asarray(query, dtype=object)).tolist() == expected
    assert list(index.ids) == ids


def test_hash_collisions_fall_back_to_an_exact_lookup(monkeypatch):
    import rerank.userindex as module

    monkeypatch.setattr(module, "_hashes", lambda values: np.zeros(len(values), dtype=np.uint64))
    index = UserIndex(pd.Index(["a", "b", "c"]))
    assert index.rows_for(["c", "a", "zz"]).tolist() == [2, 0, -1]
    assert index.first_repeat() is None
    assert UserIndex(pd.Index(["a", "b", "a"], dtype=object)).first_repeat() == 2


def test_repeated_ids_are_found():
    assert UserIndex(pd.Index([5, 3, 9, 3])).first_repeat() == 3
    assert UserIndex(pd.Index(["x", "y", "x"])).first_repeat() == 2
    assert UserIndex(pd.Index([], dtype=np.int64)).rows_for([1, 2]).tolist() == [-1, -1]


# ---------------------------------------------------------------------------- the table
@st.composite
def target_batches(draw):
    n_cat = draw(st.integers(1, 12))
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, 6))
        dense = np.zeros((n, n_cat))
        for u in range(n):
            cats = draw(st.lists(st.integers(0, n_cat - 1), min_size=1, max_size=n_cat, unique=True))
            dense[u, cats] = draw(st.lists(st.floats(0.01, 1.0), min_size=len(cats), max_size=len(cats)))
            dense[u] /= dense[u].sum()
        batches.append(dense)
    return n_cat, batches


@settings(max_examples=examples(60), deadline=None)
@given(data=target_batches(), dtype=st.sampled_from(["float64", "float32"]), pick=st.randoms(use_true_random=False))
def test_table_gives_back_what_it_stored(data, dtype, pick):
    n_cat, batches = data
    builder = TargetBuilder(n_cat, dtype)
    first = 0
    for dense in batches:
        builder.add(np.arange(first, first + len(dense)) * 3, sp.csr_matrix(dense))
        first += len(dense)
    table = builder.finish()
    stored = np.vstack([np.zeros((0, n_cat))] + batches).astype(dtype).astype(np.float64)
    rows = [pick.randrange(-1, len(stored)) for _ in range(10)] if len(stored) else [-1, -1]
    got = table.dense(np.asarray(rows))
    for r, row in zip(rows, got, strict=True):
        expected = table.population if r < 0 else stored[r]
        np.testing.assert_array_equal(row, expected)
    assert table.rows_for(np.arange(len(stored)) * 3).tolist() == list(range(len(stored)))
    if len(stored):  # population: the mean of the stored targets, renormalised
        mean = stored.mean(axis=0)
        np.testing.assert_allclose(table.population, mean / mean.sum(), rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(table.population, np.full(n_cat, 1 / n_cat))


def test_layout_is_the_smaller_one():
    few = np.zeros((4, 1000))
    few[:, :3] = 1 / 3
    many = np.full((4, 8), 1 / 8)
    builder = TargetBuilder(1000)
    builder.add([1, 2, 3, 4], sp.csr_matrix(few))
    table = builder.finish()
    assert isinstance(table.blocks[0], SparseBlock) and table.blocks[0].indices.dtype == np.int16
    builder = TargetBuilder(8, "float32")
    builder.add([1, 2, 3, 4], sp.csr_matrix(many))
    block = builder.finish().blocks[0]
    assert isinstance(block, DenseBlock) and block.values.dtype == np.float32


# ---------------------------------------------------------------------------- streamed fit
CATS = pd.DataFrame({"item_id": [0, 0, 1, 2, 3, 3, 4, 5], "category": list("abbcacdd")})


@st.composite
def histories(draw):
    n_users = draw(st.integers(1, 12))
    rows = []
    for u in range(n_users):
        for _ in range(draw(st.integers(1, 5))):
            rows.append((u * 7 + 1, draw(st.integers(0, 7)), draw(st.floats(0.0, 3.0)), draw(st.integers(0, 50))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "timestamp"])
    if draw(st.booleans()):
        frame["user_id"] = "u" + frame["user_id"].astype(str)
    return frame


def user_batches(frame: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    """Cut a frame grouped by user into batches of whole users, after the given user ranks."""
    users = pd.unique(frame["user_id"])
    bounds = sorted({c % (len(users) + 1) for c in cuts} | {0, len(users)})
    return [frame[frame["user_id"].isin(users[a:b])] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), cuts=st.lists(st.integers(0, 20), max_size=4), half_life=st.sampled_from([None, 10.0]),
       dtype=st.sampled_from(["float64", "float32"]))
def test_fit_batch_by_batch_equals_fit(history, cuts, half_life, dtype):
    whole = CalibratedReranker(half_life=half_life, target_dtype=dtype).fit(history, CATS)
    batches = user_batches(history, cuts)
    streamed = CalibratedReranker(half_life=half_life, target_dtype=dtype).fit(iter(batches), CATS)
    assert list(streamed.users_) == list(whole.users_)
    users = list(pd.unique(history["user_id"])) + ["nobody" if history["user_id"].dtype == object else -5]
    np.testing.assert_array_equal(streamed.targets_for(users)[0], whole.targets_for(users)[0])
    np.testing.assert_array_equal(streamed.population_target_, whole.population_target_)


def test_fit_from_a_parquet_dataset_equals_fit(tmp_path):
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(40, dtype=np.int64), rng.integers(1, 6, 40))
    history = pd.DataFrame({"user_id": users, "item_id": rng.integers(0, 6, users.size),
                            "weight": rng.random(users.size)})
    folder = tmp_path / "history"
    folder.mkdir()
    for part, cut in enumerate(np.array_split(np.arange(len(history)), 3)):  # users cut across files
        pq.write_table(pa.Table.from_pandas(history.iloc[cut], preserve_index=False), folder / f"part-{part}.parquet")
    whole = CalibratedReranker().fit(history, CATS)
    for source in (folder, str(folder), parquet_history(folder, batch_rows=7)):
        fitted = CalibratedReranker().fit(source, CATS)
        assert fitted.users_.tolist() == whole.users_.tolist()
        np.testing.assert_array_equal(fitted.targets_, whole.targets_)


def test_a_user_split_across_batches_is_an_error_naming_it(tmp_path):
    history = pd.DataFrame({"user_id": [1, 2, 1], "item_id": [0, 1, 2]})
    with pytest.raises(InputError, match="user 1 appears in two batches"):
        CalibratedReranker().fit([history.iloc[:2], history.iloc[2:]], CATS)
    path = tmp_path / "h.parquet"
    history.to_parquet(path)
    with pytest.raises(InputError, match="user 1 appears in two batches"):
        CalibratedReranker().fit(parquet_history(path, batch_rows=1), CATS)
    with pytest.raises(InputError, match="cannot be read as a Parquet"):
        CalibratedReranker().fit(tmp_path / "missing", CATS)
    with pytest.raises(InputError, match="missing column"):
        CalibratedReranker().fit(parquet_history(_drop_item(path)), CATS)


def _drop_item(path):
    out = path.with_name("no_item.parquet")
    pd.read_parquet(path).drop(columns="item_id").to_parquet(out)
    return out


def test_fit_never_builds_a_dense_users_by_categories_array():
    """Issue 17 finding 18: fit peaked at ~4.5× the dense users × categories matrix."""
    rng = np.random.default_rng(0)
    n_users, n_items, n_cat = 3000, 4000, 5000
    cats = pd.DataFrame({"item_id": np.repeat(np.arange(n_items), 2), "category": rng.integers(0, n_cat, 2 * n_items)})
    history = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 10),
                            "item_id": rng.integers(0, n_items, 10 * n_users)})
    tracemalloc.start()
    reranker = CalibratedReranker().fit(history, cats)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dense = n_users * reranker.category_matrix_.shape[1] * 8
    assert peak < dense / 10, (peak, dense)
    assert reranker.target_table_.layouts == {"dense": 0, "sparse": n_users}


# ---------------------------------------------------------------------------- float32 targets
EPS32 = 2.0**-24  # float32 keeps every value within this relative distance


def kl_bound(n_cat: int, alpha: float) -> float:
    """|C_KL(p, q) - C_KL(p̂, q)| for any q when |p̂_g - p_g| ≤ ε p_g (docs/performance.md)."""
    return 1.01 * EPS32 * (math.log(1 / alpha) + 2 + n_cat / math.e)


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances(max_users=3, max_n=7, max_cat=5))
def test_float32_targets_stay_within_the_tolerance(inst):
    """Every pick of a list reranked on float32 targets is, under the exact targets, within
    ``2 λ δ`` (+ the tie tolerance) of the best pick after the same prefix, and the safeguard's
    comparison is off by at most ``2 λ δ``: δ bounds the change of the divergence (KL)."""
    k, alpha = 4, 0.01
    indptr, items, scores = inst.csr()
    exact = np.array(inst.targets, dtype=np.float64)
    rounded = exact.astype(np.float32).astype(np.float64)
    out = rerank_arrays(indptr, items, scores, inst.matrix, rounded, k, np.array(inst.lam), safeguard=False,
                        normalize=None)  # the reference takes the scores as given
    delta = kl_bound(inst.n_cat, alpha)
    for u in range(len(inst.users)):
        cats, s, p, lam = inst.local_cats(u), inst.scores[u], inst.targets[u], inst.lam[u]
        chosen = (out.positions[out.indptr[u]:out.indptr[u + 1]] - indptr[u]).tolist()
        weights = ref.rank_weight_list("uniform", k)
        for t, pick in enumerate(chosen):
            prefix = chosen[:t]
            values = {j: ref.objective(prefix + [j], s, cats, p, lam, alpha, "kl", weights)
                      for j in range(len(s)) if j not in prefix}
            best = max(values.values())
            slack = 2 * lam * delta + 2 * ref.TIE_RTOL * (1 + abs(best))
            assert values[pick] >= best - slack


def test_float32_reranker_is_the_greedy_on_the_rounded_targets():
    rng = np.random.default_rng(5)
    history = pd.DataFrame({"user_id": np.repeat(np.arange(30), 4), "item_id": rng.integers(0, 6, 120)})
    candidates = pd.DataFrame({"user_id": np.repeat(np.arange(32), 6), "item_id": np.tile(np.arange(6), 32),
                               "score": rng.random(192)})
    r32 = CalibratedReranker(k=3, target_dtype="float32", normalize=None).fit(history, CATS)  # raw scores, as ref
    r64 = CalibratedReranker(k=3, normalize=None).fit(history, CATS)
    t32, _ = r32.targets_for(np.arange(32))
    t64, _ = r64.targets_for(np.arange(32))
    np.testing.assert_array_equal(t32[:30], t64[:30].astype(np.float32).astype(np.float64))
    assert np.all(np.abs(t32[:30] - t64[:30]) <= EPS32 * t64[:30])
    out = r32.rerank(candidates)
    table = r32.item_categories_
    for user, group in candidates.groupby("user_id", sort=False):
        rows = table.rows_for(group["item_id"])
        cats = [dict(zip(table.matrix[i].indices.tolist(), table.matrix[i].data.tolist(), strict=True))
                for i in rows]
        p = t32[user].tolist()
        expected = group["item_id"].iloc[ref.greedy(group["score"].tolist(), cats, p, 3, 0.5)].tolist()
        assert out.loc[out["user_id"] == user, "item_id"].tolist() == expected
    with pytest.raises(InputError, match="target_dtype"):
        CalibratedReranker(target_dtype="float16").fit(history, CATS)


# ---------------------------------------------------------------------------- several attributes
ATTRIBUTE_CATS = pd.DataFrame({
    "item_id": [0, 0, 1, 2, 3, 3, 4, 5, 0, 1, 2, 6, 7],
    "category": ["x", "y", "x", "y", "z", "x", "z", "y", "head", "head", "tail", "tail", "head"],
    "attribute": ["genre"] * 8 + ["pop"] * 5,
})


def attribute_targets_by_hand(history: pd.DataFrame, columns: list) -> tuple[dict, list]:
    """Steck eq. 1 per attribute, in plain Python: an item's categories share its mass equally
    within each attribute; a user's block is normalised on its own; the population block of an
    attribute is the mean over the users with mass in it (renormalised); a warm user without
    mass in an attribute gets the population's block."""
    share = {}
    for (item, attribute), group in ATTRIBUTE_CATS.groupby(["item_id", "attribute"]):
        for category in group["category"]:
            share[(item, (attribute, category))] = 1.0 / len(group)
    blocks = {}
    for user, rows in history.groupby("user_id", sort=False):
        mass = dict.fromkeys(columns, 0.0)
        for item, weight in zip(rows["item_id"], rows["weight"], strict=True):
            for column in columns:
                mass[column] += weight * share.get((item, column), 0.0)
        per_attribute = {}
        for attribute in {a for a, _ in columns}:
            total = sum(mass[c] for c in columns if c[0] == attribute)
            names = [c for c in columns if c[0] == attribute]
            per_attribute[attribute] = None if total <= 0 else {c: mass[c] / total for c in names}
        if any(block is not None for block in per_attribute.values()):
            blocks[user] = per_attribute
    population = {}
    for attribute in {a for a, _ in columns}:
        mine = [b[attribute] for b in blocks.values() if b[attribute] is not None]
        names = [c for c in columns if c[0] == attribute]
        if mine:
            mean = {c: sum(b[c] for b in mine) / len(mine) for c in names}
            population.update({c: mean[c] / sum(mean.values()) for c in names})
        else:
            population.update({c: 1.0 / len(names) for c in names})
    targets = {
        user: [population[c] if per[c[0]] is None else per[c[0]][c] for c in columns] for user, per in blocks.items()
    }
    return targets, [population[c] for c in columns]


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), cuts=st.lists(st.integers(0, 20), max_size=4),
       dtype=st.sampled_from(["float64", "float32"]))
def test_several_attributes_stored_compactly_equal_the_definition(history, cuts, dtype):
    """Per-attribute targets through the compact table (dense or sparse blocks, float64 or
    float32, one frame or batches of whole users) are the per-attribute eq. 1, with empty
    blocks and cold users filled from the per-attribute population target."""
    whole = CalibratedReranker(target_dtype=dtype).fit(history, ATTRIBUTE_CATS)
    streamed = CalibratedReranker(target_dtype=dtype).fit(iter(user_batches(history, cuts)), ATTRIBUTE_CATS)
    columns = list(whole.categories_)
    expected, population = attribute_targets_by_hand(history, columns)
    cold = "nobody" if history["user_id"].dtype == object else -5
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-15}
    for fitted in (whole, streamed):
        assert sorted(map(str, fitted.users_)) == sorted(map(str, expected))
        got = fitted.target_distributions(list(expected) + [cold])
        for user, row in expected.items():
            np.testing.assert_allclose(got.loc[user].to_numpy(), row, **tol)
        np.testing.assert_allclose(got.loc[cold].to_numpy(), population, **tol)  # a mean of the stored values
        np.testing.assert_allclose(fitted.population_target_, population, **tol)
