"""Trust at the boundary (issue 17), frame API and array API: each finding reproduced as frames.

Ids are an identity: nullable and pyarrow integer columns keep their exact values and dtype
through skip mode; a null id is a skipped row or an error naming it, never a cast. Reports come
with the result (thread-safe) and say what the method did. Warnings say what to do.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from rerank import CalibratedReranker, RerankOptions, rerank_arrays
from rerank.errors import InputError
from rerank.report import RerankWarning

BIG = 2**60  # far above 2**53: float64 cannot tell BIG from BIG + 1
NEAR = 2**63 - 1
INT_DTYPES = ["Int64", "int64[pyarrow]", "UInt64", "uint64[pyarrow]"]


def fitted(**params) -> CalibratedReranker:
    history = pd.DataFrame({"user_id": pd.array([1, 2], dtype="int64"), "item_id": pd.array([10, 11])})
    categories = pd.DataFrame({"item_id": [10, 11, 12], "category": ["a", "b", "a"]})
    return CalibratedReranker(k=2, **params).fit(history, categories)


def big_id_candidates(dtype: str) -> pd.DataFrame:
    """Users 1, BIG + 1 (two items each, BIG and BIG + 1), 3 (a null item) and BIG + 2."""
    return pd.DataFrame({
        "user_id": pd.array([1, 1, 3, BIG + 1, BIG + 1, BIG + 2], dtype=dtype),
        "item_id": pd.array([BIG, BIG + 1, None, BIG, BIG + 1, 10], dtype=dtype),
        "score": [0.5, 0.4, 0.3, 0.2, 0.1, 1.0],
    })


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_a_null_id_in_skip_mode_never_casts_the_ids(dtype):
    """Finding 1: the null made the column float64; BIG and BIG + 1 then collided, users 1 and
    BIG + 1 were skipped as 'duplicate item_id' and the output held 1.152921504606847e+18."""
    reranker = fitted()
    out, report = reranker.rerank(big_id_candidates(dtype), on_invalid="skip", return_report=True)
    assert str(out["user_id"].dtype) == dtype and str(out["item_id"].dtype) == dtype
    got = sorted(zip(out["user_id"].astype(object), out["item_id"].astype(object), strict=True))
    assert got == sorted([(1, BIG), (1, BIG + 1), (BIG + 1, BIG), (BIG + 1, BIG + 1), (BIG + 2, 10)])
    assert list(report.skipped["user_id"]) == [3] and list(report.skipped["reason"]) == ["null item_id"]
    assert str(report.skipped["user_id"].dtype) == dtype
    assert report.reconciles and report.n_users == 3


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_a_null_user_id_in_skip_mode_is_a_dropped_row_and_ids_stay_exact(dtype):
    frame = big_id_candidates(dtype).fillna({"item_id": 12})
    frame["user_id"] = pd.array([NEAR if "int64" in dtype.lower() else 1, None, 3, BIG + 1, BIG + 1, BIG + 2],
                                dtype=dtype)
    out, report = fitted().rerank(frame, on_invalid="skip", return_report=True)
    assert report.n_rows_without_user == 1 and report.reconciles
    assert set(out["user_id"].astype(object)) == {frame["user_id"].iloc[0], 3, BIG + 1, BIG + 2}


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_a_null_id_in_raise_mode_is_an_error_naming_it(dtype):
    with pytest.raises(InputError, match=r"candidates column 'item_id' has a null id at row 2 \(user 3\)"):
        fitted().rerank(big_id_candidates(dtype))


def test_error_messages_print_integer_ids_as_integers():
    """Finding 8: 'user 286.0, item 154.0' — the ids of a float-cast column."""
    frame = pd.DataFrame({"user_id": pd.array([286, 286, 7], dtype="Int64"),
                          "item_id": pd.array([154, 155, None], dtype="Int64"), "score": [np.nan, 1.0, 1.0]})
    with pytest.raises(InputError) as caught:
        fitted().rerank(frame.iloc[:2])
    assert "user 286, item 154" in str(caught.value)
    floats = frame.iloc[:2].astype({"user_id": float, "item_id": float})  # whole floats are integer ids
    with pytest.raises(InputError) as caught:
        fitted().rerank(floats)
    assert "user 286, item 154" in str(caught.value) and ".0" not in str(caught.value).split("has")[0]


def test_duplicates_near_2_63_are_told_apart():
    frame = pd.DataFrame({"user_id": pd.array([NEAR, NEAR, NEAR - 1], dtype="int64[pyarrow]"),
                          "item_id": pd.array([NEAR, NEAR - 1, NEAR], dtype="Int64"), "score": [1.0, 2.0, 3.0]})
    out = fitted().rerank(frame)
    assert list(out["item_id"].astype(object)) == [NEAR - 1, NEAR, NEAR]


def test_uint64_ids_beyond_int64_match_their_history():
    huge = 2**64 - 5
    history = pd.DataFrame({"user_id": pd.array([huge], dtype="UInt64"), "item_id": [10]})
    categories = pd.DataFrame({"item_id": [10, 11], "category": ["a", "b"]})
    reranker = CalibratedReranker(k=1).fit(history, categories)
    frame = pd.DataFrame({"user_id": np.array([huge, 5], dtype=np.uint64), "item_id": [10, 11], "score": [1.0, 2.0]})
    out, report = reranker.rerank(frame, return_report=True)
    assert list(report.cold_users) == [5]
    assert list(out["user_id"]) == [huge, 5] and out["user_id"].dtype == np.uint64


def _dictionary(values, value_type):
    import pyarrow as pa

    return pd.array(values, dtype=pd.ArrowDtype(value_type)).astype(
        pd.ArrowDtype(pa.dictionary(pa.int32(), value_type)))


def test_pyarrow_dictionary_ids_keep_their_values_and_type():
    """A dictionary-encoded column (how pandas holds a dictionary Parquet column read with
    ArrowDtype) was refused as 'must hold integer or string ids; row 0 holds 'a' (str)'. Now
    its values are the ids, exactly, nulls are skipped rows, and the output has its type."""
    import pyarrow as pa

    candidates = pd.DataFrame({
        "user_id": _dictionary([1, 1, 3, None, BIG + 1, BIG + 1, BIG + 2], pa.int64()),
        "item_id": _dictionary(["a", "b", None, "a", "a", "b", "c"], pa.string()),
        "score": [0.5, 0.4, 0.3, 0.9, 0.2, 0.1, 1.0],
    })
    history = pd.DataFrame({"user_id": _dictionary([1, BIG + 1], pa.int64()),
                            "item_id": _dictionary(["a", "b"], pa.string())})
    categories = pd.DataFrame({"item_id": _dictionary(["a", "b", "c"], pa.string()),
                               "category": _dictionary(["x", "y", "x"], pa.string())})
    reranker = CalibratedReranker(k=2).fit(history, categories)
    assert sorted(reranker.users_.tolist()) == [1, BIG + 1]
    out, report = reranker.rerank(candidates, on_invalid="skip", return_report=True)
    assert out["user_id"].dtype == candidates["user_id"].dtype
    assert out["item_id"].dtype == candidates["item_id"].dtype
    assert sorted(zip(out["user_id"].astype(object), out["item_id"].astype(object), strict=True)) == sorted(
        [(1, "a"), (1, "b"), (BIG + 1, "a"), (BIG + 1, "b"), (BIG + 2, "c")])
    assert list(report.skipped["user_id"]) == [3] and report.n_rows_without_user == 1 and report.reconciles
    assert list(report.cold_users) == [BIG + 2]


@pytest.mark.parametrize("dtype", ["int8", "uint16", "Int8", "UInt32", "int16[pyarrow]", "uint8[pyarrow]",
                                   "string[python]", "large_string[pyarrow]", "category"])
def test_narrow_and_other_id_dtypes_keep_their_type(dtype):
    """Every id dtype a user frame may hold comes back as it went in, with the same values."""
    history = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11]})
    categories = pd.DataFrame({"item_id": [10, 11, 12], "category": ["x", "y", "x"]})
    text = "string" in dtype
    if text:
        history, categories = history.astype(str), categories.astype(str)
    candidates = pd.DataFrame({"user_id": pd.Series([1, 1, 2, 2]), "item_id": pd.Series([10, 11, 12, 10]),
                               "score": [0.5, 0.4, 0.3, 0.2]})
    if text:
        candidates[["user_id", "item_id"]] = candidates[["user_id", "item_id"]].astype(str)
    candidates = candidates.astype({"user_id": dtype, "item_id": dtype})
    out = CalibratedReranker(k=2).fit(history, categories).rerank(candidates)
    assert out["user_id"].dtype == candidates["user_id"].dtype and out["item_id"].dtype == candidates["item_id"].dtype
    assert sorted(zip(out["user_id"].astype(str), out["item_id"].astype(str), strict=True)) == sorted(
        zip(candidates["user_id"].astype(str), candidates["item_id"].astype(str), strict=True))


# ----------------------------------------------------------------------------- id matching
def test_id_match_text_keeps_the_candidates_ids():
    """Integer candidates against string history ids: an error by default, matched by their
    decimal text with id_match="text" (what rerank apply does), the output ids untouched."""
    history = pd.DataFrame({"user_id": ["1", "007"], "item_id": ["10", "11"]})
    categories = pd.DataFrame({"item_id": [10, 11], "category": ["a", "b"]})
    frame = pd.DataFrame({"user_id": pd.array([1, 1, 7], dtype="Int64"), "item_id": [10, 11, 10],
                          "score": [1.0, 0.5, 0.2]})
    with pytest.raises(InputError, match="no id could match"):
        CalibratedReranker(k=2).fit(history, categories.astype({"item_id": str})).rerank(frame)
    reranker = CalibratedReranker(k=2, id_match="text").fit(history, categories)
    out, report = reranker.rerank(frame, return_report=True)
    assert out["user_id"].dtype == "Int64" and out["item_id"].dtype == np.int64
    assert list(report.cold_users) == [7]  # 7 is not "007"


def test_ids_that_match_nothing_give_a_warning_that_says_what_to_do():
    """Finding 7: '0001' against '1' made most users cold, silently."""
    history = pd.DataFrame({"user_id": ["1", "2", "3"], "item_id": ["a", "b", "a"]})
    categories = pd.DataFrame({"item_id": ["a", "b"], "category": ["x", "y"]})
    frame = pd.DataFrame({"user_id": ["0001", "0002", "3"], "item_id": ["a", "b", "a"], "score": [1.0, 1.0, 1.0]})
    reranker = CalibratedReranker(k=1).fit(history, categories)
    with pytest.warns(RerankWarning, match=r"2 of 3 users have no usable history.*'0001' is not '1'.*user_id match"):
        out, report = reranker.rerank(frame, return_report=True)
    assert len(report.warnings) == 1 and len(out) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reranker.rerank(frame.assign(user_id=["1", "2", "0003"]))  # one cold user of three: no warning
    items = frame.assign(user_id=["1", "2", "3"], item_id=["A", "B", "a"])
    with pytest.warns(RerankWarning, match=r"2 of 3 candidate rows hold items unknown.*'A' is not 'a'"):
        reranker.rerank(items)


def test_pipe_joined_categories_give_a_warning():
    """Finding 7: MovieLens genres as one string made 'Action|Comedy' a category of its own."""
    history = pd.DataFrame({"user_id": [1], "item_id": [1]})
    categories = pd.DataFrame({"item_id": [1, 2], "category": ["Action|Comedy", "Drama"]})
    with pytest.warns(RerankWarning, match=r"1 values joined with '\|' \(e.g. 'Action\|Comedy'\).*explode"):
        reranker = CalibratedReranker().fit(history, categories)
    assert len(reranker.fit_warnings_) == 1
    exploded = categories.assign(category=categories["category"].str.split("|")).explode("category")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CalibratedReranker().fit(history, exploded)


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("k", [2**63, 2**64, np.uint64(2**63)])
def test_k_of_2_63_or_more_is_an_input_error(k):
    """Finding 4: OverflowError (exit 1) instead of an input error."""
    with pytest.raises(InputError, match="k must be < 2\\*\\*63"):
        CalibratedReranker(k=k).build_options()
    with pytest.raises(InputError, match="k must be < 2\\*\\*63"):
        RerankOptions(k=k)


def test_k_just_below_2_63_returns_every_candidate():
    reranker = CalibratedReranker(k=2**63 - 1).fit(pd.DataFrame({"user_id": [1], "item_id": [10]}),
                                                   pd.DataFrame({"item_id": [10], "category": ["a"]}))
    frame = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11], "score": [0.0, 1.0]})
    out = reranker.rerank(frame)
    assert sorted(out["item_id"]) == [10, 11] and list(out["rank"]) == [1, 2]


def _arrays(targets):
    indptr = np.array([0, 2, 4])
    items = np.array([0, 1, 0, 1])
    scores = np.array([1.0, 0.9, 1.0, 0.9])
    categories = sp.csr_matrix(np.eye(2))
    return rerank_arrays(indptr, items, scores, categories, np.asarray(targets, dtype=float), k=1, lam=0.9)


def test_array_api_refuses_targets_that_do_not_sum_to_1():
    """Finding 9: targets (0.5, 0) and (1, 0) chose different lists, silently."""
    with pytest.raises(InputError, match=r"targets row 0 sums to 0.5, not 1 \(1 such rows\)"):
        _arrays([[0.0, 0.5], [0.0, 1.0]])
    with pytest.raises(InputError, match="targets row 1 sums to 0"):
        _arrays([[0.0, 1.0], [0.0, 0.0]])
    result = _arrays([[0.0, 1.0], [0.3, 0.7 + 1e-9]])  # rounding is fine
    assert list(result.items) == [1, 1]


# ----------------------------------------------------------------------------- reports
def test_reports_returned_with_results_cannot_see_each_other_under_threads():
    """Finding 10: 12 threads sharing a reranker, 2 read another call's report_."""
    reranker = fitted()
    frames = [pd.DataFrame({"user_id": np.repeat(np.arange(n) + 100 * n, 3), "item_id": np.tile([10, 11, 12], n),
                            "score": np.tile([0.3, 0.2, 0.1], n)}) for n in range(1, 13)]
    got: dict[int, tuple] = {}
    barrier = threading.Barrier(len(frames))

    def work(n, frame):
        barrier.wait()
        for _ in range(20):
            out, report = reranker.rerank(frame, return_report=True)
            got.setdefault(n, []).append((len(out), report.n_users, report.n_candidates))

    threads = [threading.Thread(target=work, args=(n, f)) for n, f in enumerate(frames, start=1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, seen in got.items():
        assert set(seen) == {(2 * n, n, 3 * n)}, (n, set(seen))
    assert isinstance(reranker.report_.n_users, int)  # the single-threaded habit still works


def test_return_report_is_checked():
    with pytest.raises(InputError, match="return_report must be True or False"):
        fitted().rerank(pd.DataFrame({"user_id": [1], "item_id": [10], "score": [1.0]}), return_report="yes")


CANDS = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2], "item_id": [10, 11, 12, 10, 11, 12],
                      "score": [0.9, 0.8, 0.1, 0.9, 0.2, 0.1]})


@pytest.mark.parametrize(
    ("params", "present", "absent"),
    [
        ({}, ["method: Steck's greedy + top-k safeguard", "kept plain top-k (safeguard)"], ["quota", "exact:"]),
        ({"method": "pm2"}, ["method: PM-2 (theta=0.5)"], ["kept plain top-k", "safeguard"]),
        ({"solver": "exact"}, ["method: exact solver", "exact: largest certified gap", "0 users above 1e-06"],
         ["kept plain top-k"]),
        ({"min_share": True}, ["method: quota greedy (rho=1", "users short of their quotas (",
                               "quota units in all"], ["exact:"]),
        ({"safeguard": False}, ["method: Steck's greedy, kl"], ["kept plain top-k"]),
    ],
)
def test_summary_tells_the_method_quotas_and_gaps(params, present, absent):
    """Finding 10: summary() said nothing about quotas, shortfall, gaps or the method, and
    printed 'kept plain top-k' for PM-2 and exact."""
    _, report = fitted(**params).rerank(CANDS, return_report=True)
    line = report.summary()
    for part in present:
        assert part in line, (part, line)
    for part in absent:
        assert part not in line, (part, line)
    assert line.endswith("nothing lost")


def test_summary_counts_the_quota_shortfall():
    history = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11]})
    categories = pd.DataFrame({"item_id": [10, 11, 12], "category": ["a", "b", "a"]})
    frame = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [10, 12, 13], "score": [1.0, 0.9, 0.8]})  # no 'b'
    reranker = CalibratedReranker(k=2, min_share=True).fit(history, categories)
    _, report = reranker.rerank(frame, return_report=True)
    assert report.quota_shortfall.tolist() == [1]
    assert "1 users short of their quotas (1 quota units in all" in report.summary()


def test_one_normalize_default_everywhere():
    """Finding 11: None in the API and apply, minmax in evaluate, while the README recommends minmax."""
    import inspect

    from rerank.adapters.evaluate import evaluate

    from rerank.cli import build_parser

    args = build_parser().parse_args(["apply", "--candidates", "c", "--history", "h", "--item-categories", "g",
                                      "--output", "o.csv"])
    defaults = {
        "CalibratedReranker": CalibratedReranker().normalize,
        "RerankOptions": RerankOptions().normalize,
        "rerank apply": args.normalize,
        "evaluate": inspect.signature(evaluate).parameters["normalize"].default,
    }
    assert set(defaults.values()) == {"minmax"}, defaults


def test_the_readme_shows_the_metrics_api_and_it_runs(capsys):
    """Finding 11: rerank.metrics was shown nowhere. The README's example runs as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Measuring the lists: `rerank.metrics`", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "miscalibration_kl" in printed and "'precision'" in printed and "'minority_attainment'" in printed


# ----------------------------------------------------------------------------- fit memory
def test_fit_peaks_near_one_dense_target_table():
    """Finding 18: fit peaked at about 4.5x the dense users x categories table (8k users x 10k
    categories took 2.9 GB). Now the targets are computed a block of users at a time and stored
    compactly (rerank.targets), so even when every user has every category the peak stays
    below twice the dense table."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n_users, n_categories, n_items = 4000, 500, 40  # every item in every category: dense targets
    categories = pd.DataFrame({"item_id": np.repeat(np.arange(n_items), n_categories),
                               "category": np.tile(np.arange(n_categories), n_items),
                               "weight": rng.random(n_items * n_categories) + 0.1})
    history = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 3),
                            "item_id": rng.integers(0, n_items, 3 * n_users)})
    CalibratedReranker(k=5).fit(history.head(30), categories)  # imports and compilation outside the trace
    dense = n_users * n_categories * 8
    tracemalloc.start()
    try:
        reranker = CalibratedReranker(k=5).fit(history, categories)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reranker.target_table_.n_users == n_users
    assert reranker.targets_.shape == (n_users + 1, n_categories)
    assert peak < 2.0 * dense, f"fit peaked at {peak / dense:.2f}x the dense table"


@pytest.mark.parametrize("block_bytes", [1, 64, 1 << 25])
def test_fitted_targets_follow_steck_eq_1_whatever_the_block(block_bytes):
    """The blocked fit gives p(g|u) = Σ_i w_ui p(g|i) / Σ_g' (…) per user with mass (a plain
    dict reference), users without mass left out, whatever the blocks; stored compactly
    (rerank.targets), the rows are bit for bit the one-shot computation's and the population
    target is the mean of the stored rows, added user after user."""
    from rerank.distributions import target_blocks, target_distributions
    from rerank.targets import TargetBuilder

    rng = np.random.default_rng(7)
    n_users, n_items, n_categories = 23, 9, 4
    item_cats = rng.random((n_items, n_categories)) * (rng.random((n_items, n_categories)) < 0.5)
    item_cats[0] = 0  # an item without categories: a user who only saw it has no mass
    item_cats = item_cats / np.where(item_cats.sum(1, keepdims=True) > 0, item_cats.sum(1, keepdims=True), 1)
    users = rng.integers(0, n_users, 60)
    items = rng.integers(-1, n_items, 60)  # -1: an item the table does not know
    weights = rng.random(60) + 0.01
    users = np.append(users, [n_users - 1]).astype(np.int64)  # the last user saw only item 0
    items = np.append(items, [0]).astype(np.int64)
    weights = np.append(weights, [1.0])
    builder = TargetBuilder(n_categories)
    blocks = list(target_blocks(users, items, weights, n_users, sp.csr_matrix(item_cats), block_bytes=block_bytes,
                                min_rows=1))
    for warm_codes, targets in blocks:
        builder.add(pd.Index(warm_codes), targets)
    table = builder.finish()
    if block_bytes < 1 << 20:
        assert len(blocks) > 1
    warm_codes = np.concatenate([codes for codes, _ in blocks])
    got = table.dense(np.arange(table.n_users))
    mass: dict[int, np.ndarray] = {}
    for u, i, w in zip(users.tolist(), items.tolist(), weights.tolist(), strict=True):
        if i >= 0:
            mass[u] = mass.get(u, np.zeros(n_categories)) + w * item_cats[i]
    warm = [u for u in range(n_users) if u in mass and mass[u].sum() > 0]
    assert warm_codes.tolist() == warm
    expected = np.array([mass[u] / mass[u].sum() for u in warm])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(table.population, expected.mean(axis=0) / expected.mean(axis=0).sum(), rtol=1e-12)
    # bit for bit what the one-shot dense computation (the simulator's) gives
    dense, dense_mass = target_distributions(users, items, weights, n_users, sp.csr_matrix(item_cats))
    assert dense_mass.tolist() == [u in warm for u in range(n_users)]
    assert np.array_equal(got, dense[dense_mass])
    total = np.zeros(n_categories)
    for row in dense[dense_mass]:  # the stored rows added user after user
        total = total + row
    mean = total / len(warm)
    assert np.array_equal(table.population, mean / mean.sum())
