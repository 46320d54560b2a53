"""The one validation layer (rerank.validation): each bad input gives the documented error naming
the culprit; the documented fallbacks give valid output; nothing is lost (issue 8)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from budget import examples
from hostile import MAX, TINY, assert_valid_output
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank import CalibratedReranker, rerank_arrays, schemas
from rerank.errors import InputError, InputTypeError
from rerank.streaming import SeenIds, rerank_batches
from rerank.testing.strategies import rerank_inputs

SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])

CATS = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e"], "category": ["x", "y", "x", "y", "z"]})
HIST = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": ["a", "a", "b", "c"]})
GOOD = pd.DataFrame(
    {"user_id": [1, 1, 1, 2, 2, 3], "item_id": ["a", "b", "c", "a", "d", "e"], "score": [0.3, 0.2, 0.1, 1.0, 0.5, 2.0]}
)


def fitted(**options) -> CalibratedReranker:
    return CalibratedReranker(**{"k": 2, "lam": 0.5, **options}).fit(HIST, CATS)


def test_errors_are_value_and_type_errors():
    assert issubclass(InputError, ValueError)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, InputError)


# ----------------------------------------------------------------------------- parameters
PARAMETER_CASES = [
    ({"k": 0}, InputError, "k"),
    ({"k": -3}, InputError, "k"),
    ({"k": 2.0}, InputTypeError, "k"),
    ({"k": True}, InputTypeError, "k"),
    ({"k": "10"}, InputTypeError, "k"),
    ({"lam": -0.1}, InputError, "lam"),
    ({"lam": 1.0001}, InputError, "lam"),
    ({"lam": math.nan}, InputError, "lam"),
    ({"lam": True}, InputTypeError, "lam"),
    ({"lam": np.bool_(False)}, InputTypeError, "lam"),
    ({"lam": None}, InputTypeError, "lam"),
    ({"alpha": 0.0}, InputError, "alpha"),
    ({"alpha": 1.0}, InputError, "alpha"),
    ({"alpha": -1}, InputError, "alpha"),
    ({"alpha": math.inf}, InputError, "alpha"),
    ({"alpha": "0.1"}, InputTypeError, "alpha"),
    ({"alpha": False}, InputTypeError, "alpha"),
    ({"divergence": "kld"}, InputError, "divergence"),
    ({"divergence": ["kl"]}, InputError, "divergence"),
    ({"normalize": "zscore"}, InputError, "normalize"),
    ({"order": "random"}, InputError, "order"),
    ({"rank_weights": "log"}, InputError, "rank_weights"),
    ({"rank_weights": [1.0]}, InputError, "rank_weights"),
    ({"rank_weights": [1.0, -1.0]}, InputError, "rank_weights"),
    ({"rank_weights": [1.0, math.nan]}, InputError, "rank_weights"),
    ({"rank_weights": ["a", "b"]}, InputTypeError, "rank_weights"),
    ({"half_life": 0}, InputError, "half_life"),
    ({"half_life": -2.0}, InputError, "half_life"),
    ({"half_life": math.nan}, InputError, "half_life"),
    ({"half_life": "1d"}, InputTypeError, "half_life"),
    ({"half_life": True}, InputTypeError, "half_life"),
    ({"safeguard": "no"}, InputTypeError, "safeguard"),
    ({"safeguard": 0}, InputTypeError, "safeguard"),
    ({"n_threads": 0}, InputError, "n_threads"),
    ({"n_threads": 1.5}, InputTypeError, "n_threads"),
    ({"lam": "score"}, InputError, "lam"),
    ({"lam": "0.5"}, InputTypeError, "did you mean 0.5"),
]


@pytest.mark.parametrize(("options", "error", "name"), PARAMETER_CASES)
def test_bad_parameter_names_the_parameter(options, error, name):
    """As in scikit-learn, ``__init__`` only stores; ``fit`` checks every parameter once."""
    reranker = CalibratedReranker(**options)
    assert all(getattr(reranker, key) is value for key, value in options.items())
    with pytest.raises(error) as info:
        reranker.fit(HIST, CATS)
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"k": 0}, InputError, "k"),
        ({"lam": 2.0}, InputError, "lam"),
        ({"lam": np.array([0.5, 1.5])}, InputError, "lam"),
        ({"lam": np.array(["a", "b"])}, InputTypeError, "lam"),
        ({"alpha": 1.0}, InputError, "alpha"),
        ({"rank_weights": "x"}, InputError, "rank_weights"),
    ],
)
def test_array_api_uses_the_same_parameter_checks(options, error, name):
    kwargs = {"k": 2, "lam": 0.5, **options}
    with pytest.raises(error) as info:
        rerank_arrays(
            np.array([0, 2, 3]), np.array([0, 1, 0]), np.array([1.0, 0.5, 0.2]),
            sp.csr_matrix(np.eye(2)), np.full((2, 2), 0.5), **kwargs,
        )
    assert name in str(info.value)


def test_huge_k_is_the_k_above_candidate_count_fallback():
    """k far above any list length returns every candidate, without allocating k of anything."""
    out = fitted(k=10**12).rerank(GOOD)
    assert_valid_output(out, GOOD, 10**12)
    assert len(out) == len(GOOD)


# ----------------------------------------------------------------------------- candidates
def _with(**columns) -> pd.DataFrame:
    frame = GOOD.copy()
    for name, values in columns.items():
        frame[name] = pd.Series(values, dtype=object) if isinstance(values, tuple) else values
    return frame


CANDIDATE_CASES = [
    # (frame, error, substrings the message must contain)
    (GOOD.drop(columns="score"), InputError, ["missing", "score"]),
    (GOOD.drop(columns=["user_id", "item_id"]), InputError, ["user_id", "item_id"]),
    (GOOD.rename(columns={"score": "Score"}), InputError, ["score"]),
    (GOOD.to_dict("list"), InputTypeError, ["DataFrame"]),
    (GOOD.set_index("user_id"), InputError, ["user_id", "reset_index"]),
    (pd.concat({"a": GOOD}, axis=1), InputError, ["missing"]),
    (GOOD.set_axis(pd.MultiIndex.from_tuples([("user_id", ""), ("item_id", ""), ("score", "")]), axis=1), InputError,
     ["multi-level"]),
    (_with(score=["0.3", "0.2", "0.1", "1", "0.5", "2"]), InputTypeError, ["score", "numeric"]),
    (_with(score=(0.3, 0.2, "high", 1.0, 0.5, 2.0)), InputTypeError, ["score", "'high'"]),
    (_with(score=[True, False, True, True, False, True]), InputTypeError, ["score"]),
    (_with(score=[0.3, np.nan, 0.1, 1.0, 0.5, 2.0]), InputError, ["score", "user 1", "item 'b'"]),
    (_with(score=[0.3, 0.2, 0.1, 1.0, np.inf, 2.0]), InputError, ["score", "user 2", "item 'd'"]),
    (_with(score=[0.3, 0.2, 0.1, 1.0, 0.5, -np.inf]), InputError, ["score", "user 3", "item 'e'"]),
    (_with(score=[1 + 1j] * 6), InputTypeError, ["score"]),
    (_with(user_id=[1, 1, None, 2, 2, 3]), InputError, ["user_id", "null", "row 2"]),
    (_with(item_id=["a", "b", "c", None, "d", "e"]), InputError, ["item_id", "null", "user 2"]),
    (_with(item_id=["a", "a", "c", "a", "d", "e"]), InputError, ["duplicate", "user 1", "item 'a'"]),
    (_with(user_id=(1, 1, 1, "2", "2", 3)), InputTypeError, ["user_id", "mixes", "'2'"]),
    (_with(item_id=("a", "b", 3, "a", "d", "e")), InputTypeError, ["item_id", "mixes"]),
    (_with(user_id=[1.5, 1.5, 1.5, 2.0, 2.0, 3.0]), InputTypeError, ["user_id", "1.5"]),
    (_with(user_id=[True, True, True, False, False, True]), InputTypeError, ["user_id"]),
    (_with(item_id=(b"a", b"b", b"c", b"a", b"d", b"e")), InputTypeError, ["item_id"]),
    (_with(user_id=["1", "1", "1", "2", "2", "3"]), InputTypeError, ["user_id", "history"]),
    (_with(item_id=[1, 2, 3, 1, 4, 5]), InputTypeError, ["item_id", "item_categories"]),
]


@pytest.mark.parametrize(("frame", "error", "parts"), CANDIDATE_CASES)
def test_bad_candidates_name_the_culprit(frame, error, parts):
    reranker = fitted()
    with pytest.raises(error) as info:
        reranker.rerank(frame)
    for part in parts:
        assert part in str(info.value)
    assert "\n" not in str(info.value)


def test_duplicate_column_names_are_refused():
    frame = pd.concat([GOOD, GOOD[["score"]]], axis=1)
    with pytest.raises(InputError, match="several columns named 'score'"):
        fitted().rerank(frame)


def test_per_user_lambda_errors_name_the_user():
    frame = GOOD.assign(lam=[0.1, 0.1, 0.1, 1.5, 1.5, 0.2])
    with pytest.raises(InputError, match="user 2 has lam=1.5"):
        fitted(lam="lam").rerank(frame)
    frame = GOOD.assign(lam=[0.1, 0.2, 0.1, 0.5, 0.5, 0.2])
    with pytest.raises(InputError, match="constant per user"):
        fitted(lam="lam").rerank(frame)
    with pytest.raises(InputError, match="no value for user 3"):
        fitted(lam={1: 0.5, 2: 0.1}).rerank(GOOD)
    with pytest.raises(InputTypeError, match="lam mapping"):
        fitted(lam={1: "a", 2: "b", 3: "c"}).rerank(GOOD)
    with pytest.raises(InputError, match="missing column"):
        fitted(lam="no_such_column").rerank(GOOD)


# ----------------------------------------------------------------------------- history, categories
HISTORY_CASES = [
    (HIST.drop(columns="item_id"), CATS, InputError, ["history", "item_id"]),
    (HIST.assign(user_id=[1, None, 1, 2]), CATS, InputError, ["history", "user_id", "null"]),
    (HIST.assign(weight=[1.0, -1.0, 1.0, 1.0]), CATS, InputError, ["history", "weight", "row 1"]),
    (HIST.assign(weight=[1.0, np.nan, 1.0, 1.0]), CATS, InputError, ["history", "weight"]),
    (HIST.assign(weight=["1", "2", "3", "4"]), CATS, InputTypeError, ["history", "weight"]),
    (HIST.assign(user_id=pd.Series([1, "x", 1, 2], dtype=object)), CATS, InputTypeError, ["history", "mixes"]),
    (HIST.assign(item_id=[1, 1, 2, 3]), CATS, InputTypeError, ["history", "item_id", "item_categories"]),
    (HIST, CATS.drop(columns="category"), InputError, ["item_categories", "category"]),
    (HIST, CATS.assign(category=["x", None, "x", "y", "z"]), InputError, ["item_categories", "category", "null"]),
    (HIST, CATS.assign(category=pd.Series(["x", 1, "x", "y", "z"], dtype=object)), InputTypeError, ["category"]),
    (HIST, CATS.assign(weight=[1, 1, -0.5, 1, 1]), InputError, ["item_categories", "weight", "row 2"]),
    (HIST, CATS.assign(weight=[1, 1, np.inf, 1, 1]), InputError, ["item_categories", "weight"]),
    (HIST, "genres.csv", InputTypeError, ["item_categories", "DataFrame"]),
]


@pytest.mark.parametrize(("history", "categories", "error", "parts"), HISTORY_CASES)
def test_bad_history_or_categories_name_the_culprit(history, categories, error, parts):
    with pytest.raises(error) as info:
        CalibratedReranker(k=2).fit(history, categories)
    for part in parts:
        assert part in str(info.value)


def test_bad_timestamps_with_half_life():
    with pytest.raises(InputError, match="timestamp"):
        CalibratedReranker(k=2, half_life=10.0).fit(HIST, CATS)  # no timestamp column
    hist = HIST.assign(timestamp=[1.0, np.nan, 2.0, 3.0])
    with pytest.raises(InputError, match="timestamp.*row 1.*user 1"):
        CalibratedReranker(k=2, half_life=10.0).fit(hist, CATS)
    hist = HIST.assign(timestamp=["monday", "x", "y", "z"])
    with pytest.raises(InputTypeError, match="timestamp"):
        CalibratedReranker(k=2, half_life=10.0).fit(hist, CATS)
    dates = pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"])
    with pytest.raises(InputError, match="timestamp"):
        CalibratedReranker(k=2, half_life=10.0).fit(HIST.assign(timestamp=dates), CATS)


# ----------------------------------------------------------------------------- fallbacks
def test_empty_candidates_give_empty_output_with_the_right_dtypes():
    reranker = fitted()
    out = reranker.rerank(GOOD.iloc[:0])
    assert list(out.columns) == ["user_id", "item_id", "score", "rank"]
    assert len(out) == 0
    assert out["user_id"].dtype == GOOD["user_id"].dtype
    assert out["item_id"].dtype == GOOD["item_id"].dtype
    assert out["score"].dtype == np.float64 and out["rank"].dtype == np.int64
    assert reranker.report_.reconciles and reranker.report_.n_users_in == 0
    # a header-only CSV gives object columns: no value is wrong, so it is empty output too
    out = reranker.rerank(pd.DataFrame({"user_id": [], "item_id": [], "score": []}, dtype=object))
    assert len(out) == 0 and out["score"].dtype == np.float64


def test_empty_history_makes_every_user_cold_with_a_uniform_target():
    reranker = CalibratedReranker(k=2, lam=0.5).fit(HIST.iloc[:0], CATS)
    out = reranker.rerank(GOOD)
    assert_valid_output(out, GOOD, 2)
    assert set(reranker.report_.cold_users) == {1, 2, 3}
    targets = reranker.target_distributions([1, 2, 3]).to_numpy()
    np.testing.assert_allclose(targets, 1.0 / 3.0)


def test_empty_item_categories_mean_no_category_mass_and_plain_top_k():
    empty = CATS.iloc[:0]
    reranker = CalibratedReranker(k=2, lam=0.7).fit(HIST, empty)
    out = reranker.rerank(GOOD)
    assert_valid_output(out, GOOD, 2)
    top = GOOD.sort_values(["user_id", "score"], ascending=[True, False], kind="stable").groupby("user_id").head(2)
    assert sorted(zip(out["user_id"], out["item_id"], strict=True)) == sorted(
        zip(top["user_id"], top["item_id"], strict=True)
    )


def test_items_without_categories_and_unknown_items_are_ranked():
    cand = pd.DataFrame({"user_id": [1, 1, 1], "item_id": ["a", "zzz", "unknown"], "score": [0.1, 0.9, 0.5]})
    reranker = fitted(k=3)
    out = reranker.rerank(cand)
    assert_valid_output(out, cand, 3)


def test_fewer_candidates_than_k_returns_all_and_reports_them():
    reranker = fitted(k=5)
    out = reranker.rerank(GOOD)
    assert_valid_output(out, GOOD, 5)
    assert set(reranker.report_.short_users) == {1, 2, 3}


EXTREME = st.sampled_from([MAX, -MAX, 1e308, -1e308, TINY, -TINY, 0.0, 1e-300, 1.0, -1.0])


@SETTINGS
@given(
    scores=st.lists(EXTREME, min_size=1, max_size=6),
    lam=st.sampled_from([0.0, 0.3, 1.0]),
    normalize=st.sampled_from([None, "minmax", "rank"]),
    divergence=st.sampled_from(["kl", "hellinger", "chi2"]),
    safeguard=st.booleans(),
)
def test_extreme_finite_scores_give_valid_output_and_no_nan(scores, lam, normalize, divergence, safeguard):
    items = list("abcde") + ["f"]
    cand = pd.DataFrame({"user_id": 1, "item_id": items[: len(scores)], "score": scores})
    reranker = fitted(k=3, lam=lam, normalize=normalize, divergence=divergence, safeguard=safeguard)
    out = reranker.rerank(cand)
    assert_valid_output(out, cand, 3)
    result = rerank_arrays(
        np.array([0, len(scores)]), reranker.item_rows(cand["item_id"]), np.array(scores),
        reranker.category_matrix_, reranker.targets_, 3, lam, divergence=divergence, normalize=normalize,
        safeguard=safeguard, target_rows=reranker.target_rows([1])[0],
    )
    assert not np.isnan(result.objective).any()


def test_id_kinds_float_whole_numbers_count_as_integers():
    cand = GOOD.assign(user_id=GOOD["user_id"].astype(float))
    reranker = fitted()
    out = reranker.rerank(cand)
    assert_valid_output(out, cand, 2)
    assert len(reranker.report_.cold_users) == 1  # users 1.0 and 2.0 matched their history


def test_categorical_and_unicode_ids():
    cand = pd.DataFrame(
        {"user_id": pd.Categorical(["ü", "ü", "日本"]), "item_id": ["a", "b", "c"], "score": [1.0, 2.0, 3.0]}
    )
    hist = pd.DataFrame({"user_id": ["ü"], "item_id": ["a"]})
    reranker = CalibratedReranker(k=2).fit(hist, CATS)
    assert_valid_output(reranker.rerank(cand), cand, 2)


# ----------------------------------------------------------------------------- nothing lost
def reference_skips(frame: pd.DataFrame) -> dict:
    """Pure-Python reference: user -> reason for users with an invalid row (first reason by
    priority null item > bad score > duplicate), rows in input order."""
    codes: dict = {}
    seen = set()
    for user, item, score in zip(frame["user_id"], frame["item_id"], frame["score"], strict=True):
        if pd.isna(user):
            continue
        if pd.isna(item):
            code = 0
        elif not math.isfinite(score):
            code = 1
        elif (user, item) in seen:
            code = 2
        else:
            code = None
        seen.add((user, item))
        if code is not None:
            codes[user] = min(code, codes.get(user, 9))
    return {user: schemas.SKIP_REASONS[code] for user, code in codes.items()}


@st.composite
def dirty_frames(draw):
    """Well-typed frames with row-level faults: NaN/inf scores, null ids, duplicates."""
    n = draw(st.integers(0, 16))
    users = draw(st.lists(st.sampled_from([1, 2, 3, 4, None]), min_size=n, max_size=n))
    items = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e", None]), min_size=n, max_size=n))
    values = [0.1, 0.5, 1.0, 2.0, math.nan, math.inf, -math.inf]
    scores = draw(st.lists(st.sampled_from(values), min_size=n, max_size=n))
    return pd.DataFrame({"user_id": pd.array(users, dtype="Int64"), "item_id": pd.Series(items, dtype=object),
                         "score": pd.Series(scores, dtype=np.float64)})


@SETTINGS
@given(frame=dirty_frames(), k=st.integers(1, 4))
def test_skip_mode_skips_exactly_the_invalid_users_and_loses_nothing(frame, k):
    reranker = fitted(k=k)
    out = reranker.rerank(frame, on_invalid="skip")
    report = reranker.report_
    expected = reference_skips(frame)
    assert dict(zip(report.skipped["user_id"], report.skipped["reason"], strict=True)) == expected
    assert_valid_output(out, frame, k, skipped_users=expected)
    # every user is reranked or skipped; every row is reranked, skipped or without a user
    users_in = set(frame["user_id"].dropna())
    assert set(out["user_id"]) | set(expected) == users_in
    assert report.n_users_in == len(users_in)
    rows_of_skipped = int(frame["user_id"].isin(list(expected)).sum())
    assert report.skipped["n_rows"].sum() == rows_of_skipped
    assert report.n_rows_without_user == int(frame["user_id"].isna().sum())
    assert report.n_rows_reranked + rows_of_skipped + report.n_rows_without_user == len(frame)
    assert report.reconciles and report.summary().endswith("nothing lost")
    # the kept users get exactly what strict mode gives on the clean part
    clean = frame[frame["user_id"].notna() & ~frame["user_id"].isin(list(expected))]
    strict = reranker.rerank(clean)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), strict.reset_index(drop=True))
    # strict mode raises on the same frame when anything was wrong
    if expected or frame["user_id"].isna().any():
        with pytest.raises(InputError):
            reranker.rerank(frame)


def test_report_summary_counts_everything():
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, None, 3],
            "item_id": ["a", "a", "b", "c", "d", "e"],
            "score": [1, 2, 3, np.nan, 1, 1.0],
        }
    )
    reranker = fitted(k=2)
    reranker.rerank(frame, on_invalid="skip")
    line = reranker.report_.summary()
    assert line.startswith("3 users in: 1 reranked, 2 skipped (")
    assert "1 duplicate item_id" in line and "1 score missing or not a finite number" in line
    assert "6 candidate rows in: 1 reranked, 4 of skipped users, 1 without user_id; 1 output rows" in line
    assert line.endswith("nothing lost")


# ----------------------------------------------------------------------------- streaming
@SETTINGS
@given(inputs=rerank_inputs(max_users=6), k=st.integers(1, 4), cut=st.integers(1, 4))
def test_rerank_batches_equals_one_call_and_reconciles(inputs, k, cut):
    hist, cats, frame = inputs
    reranker = CalibratedReranker(k=k, lam=0.5).fit(hist, cats)
    whole = reranker.rerank(frame)
    users = list(pd.unique(frame["user_id"]))
    groups = [users[i : i + cut] for i in range(0, len(users), cut)] or [[]]
    batches = [frame[frame["user_id"].isin(g)] for g in groups]
    stream = rerank_batches(reranker, batches)
    parts = list(stream)
    joined = pd.concat(parts, ignore_index=True) if parts else whole.iloc[:0]
    pd.testing.assert_frame_equal(joined, whole.reset_index(drop=True), check_dtype=False)
    assert stream.report.reconciles
    assert stream.report.n_users == len(users) and stream.report.n_output_rows == len(whole)


def test_rerank_batches_refuses_a_user_split_across_batches():
    reranker = fitted()
    batches = [GOOD.iloc[:2], GOOD.iloc[2:]]  # user 1 in both
    with pytest.raises(InputError, match="user 1 .*earlier batch"):
        list(rerank_batches(reranker, batches))


def test_seen_ids_finds_repeats_across_many_batches():
    seen = SeenIds()
    rng = np.random.default_rng(0)
    ids = rng.permutation(5000)
    for start in range(0, 5000, 37):
        assert seen.add_new(ids[start : start + 37]) == -1
    assert len(seen) == 5000
    assert seen.add_new(np.array([10_000, int(ids[123]), 10_001])) == 1
    strings = SeenIds()
    assert strings.add_new(pd.Index(["a", "b"])) == -1
    assert strings.add_new(pd.Index(["c", "a"])) == 1
    floats = SeenIds()
    assert floats.add_new(np.array([1.0, 2.0])) == -1
    assert floats.add_new(np.array([2])) == 0
