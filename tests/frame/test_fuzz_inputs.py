"""Fuzzing (issue 8): arbitrary, often hostile frames and parameters through the frame API and
the CLI. The only acceptable outcomes are a valid output (checked independently by
``hostile.assert_valid_output``) or the documented error, :class:`rerank.errors.InputError`
(a ``ValueError``; ``InputTypeError`` is also a ``TypeError``). Any other exception is a bug
and fails the test by propagating."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from budget import examples
from hostile import SCORES, assert_valid_output, candidate_frames, clean_inputs, id_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reach import Reach

from rerank import CalibratedReranker, rerank_arrays
from rerank.cli import main
from rerank.errors import InputError

FAST = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])

OPTIONS = st.fixed_dictionaries(
    {
        "k": st.integers(1, 5),
        "lam": st.sampled_from([0.0, 0.4, 1.0]),
        "normalize": st.sampled_from([None, "minmax", "rank"]),
        "divergence": st.sampled_from(["kl", "hellinger", "chi2"]),
        "order": st.sampled_from(["greedy", "score"]),
    }
)


def not_a_frame():
    return st.sampled_from([None, [], {"user_id": [1]}, "cands.csv", np.zeros((2, 3))])


def test_frame_api_returns_valid_output_or_the_documented_error():
    reach = Reach()

    @FAST
    @given(inputs=clean_inputs(), frame=st.one_of(candidate_frames(), not_a_frame()), options=OPTIONS,
           skip=st.booleans())
    def prop(inputs, frame, options, skip):
        reach.tried += 1
        hist, cats = inputs
        reranker = CalibratedReranker(**options).fit(hist, cats)
        try:
            out = reranker.rerank(frame, on_invalid="skip" if skip else "raise")
        except InputError as exc:
            assert str(exc) and "\n" not in str(exc)
            assert isinstance(frame, pd.DataFrame) or "DataFrame" in str(exc), str(exc)
            return
        reach.reached += 1
        report = reranker.report_
        skipped = list(report.skipped["user_id"])
        assert_valid_output(out, frame, options["k"], skipped_users=skipped)
        assert report.reconciles
        assert set(out["user_id"]).isdisjoint(skipped)
        assert report.n_users_in == frame["user_id"].dropna().nunique()
        if not skip:
            assert not skipped and report.n_rows_without_user == 0

    prop()
    reach.check(min_share=0.10)


@st.composite
def hostile_history(draw):
    """A history frame; about half are hostile (bad ids, weights, timestamps or columns)."""
    if not draw(st.booleans()):
        return draw(clean_inputs())[0]
    n = draw(st.integers(0, 8))
    frame = pd.DataFrame(
        {
            "user_id": pd.Series(draw(id_values(n, 4, allow_hostile=True)), dtype=object) if n else [],
            "item_id": pd.Series([f"i{i}" for i in draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))],
                                 dtype=object) if n else [],
        }
    )
    if n and draw(st.booleans()):
        frame["weight"] = draw(st.lists(st.one_of(SCORES, st.just(-1.0), st.just("w")), min_size=n, max_size=n))
    if n and draw(st.booleans()):
        frame["timestamp"] = draw(st.lists(st.one_of(st.integers(0, 100), st.just(np.nan), st.just("t")),
                                           min_size=n, max_size=n))
    if draw(st.integers(0, 9)) == 0:
        frame = frame.drop(columns="item_id")
    return frame


@st.composite
def hostile_categories(draw):
    """An item-categories frame; about half are hostile."""
    if not draw(st.booleans()):
        return draw(clean_inputs())[1]
    n = draw(st.integers(0, 8))
    frame = pd.DataFrame(
        {
            "item_id": pd.Series(draw(id_values(n, 8, allow_hostile=True)), dtype=object) if n else [],
            "category": pd.Series(draw(id_values(n, 3, allow_hostile=True)), dtype=object) if n else [],
        }
    )
    if n and draw(st.booleans()):
        frame["weight"] = draw(st.lists(st.one_of(SCORES, st.just(-0.5), st.just(True)), min_size=n, max_size=n))
    return frame.infer_objects() if n else frame


# The documented reasons a history or item-categories frame is refused: the message names the
# frame, then the missing columns or the column (and row) at fault.
FRAME_ERROR = re.compile(r"^(history|item_categories)( \(needed by \w+\))? (is missing column|column '[^']+' )")


def test_fit_on_hostile_history_and_categories():
    reach = Reach()

    @FAST
    @given(history=hostile_history(), categories=hostile_categories(), frame=candidate_frames(hostile=False),
           half_life=st.sampled_from([None, 10.0]))
    def prop(history, categories, frame, half_life):
        reach.tried += 1
        reranker = CalibratedReranker(k=3, lam=0.5, half_life=half_life)
        try:
            reranker.fit(history.infer_objects() if len(history) else history, categories)
        except InputError as exc:
            assert FRAME_ERROR.match(str(exc)) and "\n" not in str(exc), str(exc)
            return
        targets = reranker.targets_
        assert np.isfinite(targets).all() and (targets >= 0).all()
        np.testing.assert_allclose(targets.sum(axis=1)[targets.sum(axis=1) > 0], 1.0)
        try:
            out = reranker.rerank(frame)
        except InputError as exc:  # the candidates' id kind differs from the history's
            assert "id" in str(exc) and "\n" not in str(exc), str(exc)
            return
        reach.reached += 1
        assert_valid_output(out, frame, 3)

    prop()
    reach.check(min_share=0.10)


ANY_VALUE = st.one_of(
    st.integers(-3, 12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=3), st.just([1, 2]), st.just(np.int64(3)), st.just(np.float32(0.5)),
)


@FAST
@given(k=ANY_VALUE, lam=ANY_VALUE, alpha=ANY_VALUE, half_life=ANY_VALUE)
def test_any_parameter_value_is_accepted_only_when_in_range(k, lam, alpha, half_life):
    reranker = CalibratedReranker(k=k, lam=lam, alpha=alpha, half_life=half_life)  # only stores them
    try:
        options = reranker.build_options()  # what fit checks
    except InputError:
        return
    assert isinstance(options.k, int) and options.k >= 1 and not isinstance(k, bool)
    if not isinstance(lam, str):  # a string names a per-user λ column
        assert 0.0 <= float(lam) <= 1.0 and not isinstance(lam, bool)
    assert 0.0 < options.alpha < 1.0
    assert half_life is None or half_life > 0


# ----------------------------------------------------------------------------- CLI
def _read_as_the_cli_does(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], index_col=False)
    frame["score"] = pd.to_numeric(frame["score"].str.strip(), errors="coerce")  # skip mode: text -> NaN
    return frame


def test_cli_returns_valid_output_or_a_one_line_error():
    reach = Reach()

    @SLOW
    @given(inputs=clean_inputs(), frame=candidate_frames(), k=st.integers(1, 4),
           fmt=st.sampled_from(["csv", "parquet"]), batch_rows=st.integers(1, 5), skip=st.booleans(),
           hostile_side=st.one_of(st.none(), hostile_history(), hostile_categories()))
    def prop(inputs, frame, k, fmt, batch_rows, skip, hostile_side):
        reach.tried += 1
        hist, cats = inputs
        if hostile_side is not None:
            if "category" in hostile_side.columns or "user_id" not in hostile_side.columns:
                cats = hostile_side if "category" in hostile_side.columns else cats
            if "category" not in hostile_side.columns:
                hist = hostile_side
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            hist.to_csv(tmp / "h.csv", index=False)
            cats.to_csv(tmp / "g.csv", index=False)
            cand_path = tmp / f"c.{fmt}"
            try:
                frame.to_parquet(cand_path, index=False) if fmt == "parquet" else frame.to_csv(cand_path, index=False)
            except Exception:  # pyarrow cannot store some hostile columns (mixed objects): use CSV
                cand_path = tmp / "c.csv"
                frame.to_csv(cand_path, index=False)
            out = tmp / "out.csv"
            argv = ["apply", "--candidates", str(cand_path), "--history", str(tmp / "h.csv"),
                    "--item-categories", str(tmp / "g.csv"), "--output", str(out), "--quiet", "--k", str(k),
                    "--batch-rows", str(batch_rows), "--skipped", str(tmp / "skipped.csv")]
            if skip:
                argv += ["--on-invalid", "skip"]
            code = main(argv)
            assert code in (0, 2)
            if code == 2:
                assert not out.exists() and not (tmp / "skipped.csv").exists()
                assert not list(tmp.glob("*.part"))
                return
            reach.reached += 1
            got = pd.read_csv(out, dtype={"user_id": str, "item_id": str, "score": float}, keep_default_na=False,
                              na_values=[""])
            skipped = pd.read_csv(tmp / "skipped.csv", dtype={"user_id": str}, keep_default_na=False, na_values=[""])
            if cand_path.suffix == ".csv":
                seen = _read_as_the_cli_does(cand_path)
            else:
                seen = pd.read_parquet(cand_path)
                for column in ("user_id", "item_id"):  # ids as the text a CSV history would hold
                    seen[column] = [v if pd.isna(v) else str(int(v)) if isinstance(v, float) else str(v)
                                    for v in seen[column]]
                got = got.astype({"user_id": str})
            assert_valid_output(got, seen, k, skipped_users=list(skipped["user_id"]))
            assert all(math.isfinite(s) for s in got["score"])
            assert set(got["user_id"]) | set(skipped["user_id"]) == set(seen["user_id"].dropna())

    prop()
    reach.check(min_share=0.10)


# ----------------------------------------------------------------------------- array API
@st.composite
def hostile_arrays(draw):
    """CSR candidates, categories and targets for rerank_arrays, each part valid or broken."""
    n_users = draw(st.integers(0, 3))
    n_items, n_cat = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(0, n_items), min_size=n_users, max_size=n_users))
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    item_idx = np.concatenate([draw(st.permutations(range(n_items)))[:n] for n in lengths] or [[]]).astype(np.int64)
    scores = np.array([draw(SCORES.filter(math.isfinite)) for _ in range(len(item_idx))], dtype=np.float64)
    dense = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n_items * n_cat,
                                   max_size=n_items * n_cat))).reshape(n_items, n_cat)
    targets = np.full((n_users, n_cat), 1.0 / n_cat)
    parts = {"indptr": indptr, "item_idx": item_idx, "scores": scores, "categories": sp.csr_matrix(dense),
             "targets": targets}
    broken = draw(st.sampled_from([None, "indptr", "item_idx", "scores", "categories", "targets"]))
    if broken == "indptr":
        parts["indptr"] = draw(st.sampled_from([indptr[::-1], indptr + 1, indptr.astype(float) + 0.5, indptr[:-1],
                                                indptr.astype(str), np.array([]), indptr.reshape(1, -1)]))
    elif broken == "item_idx":
        parts["item_idx"] = draw(st.sampled_from([item_idx - 1, item_idx + n_items, item_idx.astype(float) + 0.5,
                                                  item_idx.astype(str), item_idx[:-1]]))
    elif broken == "scores":
        bad = scores.copy()
        if bad.size:
            bad[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        parts["scores"] = draw(st.sampled_from([bad, scores.astype(str), scores.reshape(1, -1), scores[:-1]]))
    elif broken == "categories":
        parts["categories"] = draw(st.sampled_from([dense, sp.csr_matrix(-dense - 1), sp.csr_matrix(dense * np.nan),
                                                    sp.csr_matrix(dense[:, :0])]))
    elif broken == "targets":
        parts["targets"] = draw(st.sampled_from([targets[:, :0], -targets - 1, targets * np.nan, targets.astype(str),
                                                 targets[:0], targets.ravel()]))
    return parts, broken


# The documented reason for each broken part: the message names that part, or names the
# consistency rule it broke (lengths of the three candidate arrays; targets against the users
# indptr defines and the categories' columns).
LENGTHS = r"indptr\[-1\]=.* and len\(scores\)=.* must agree"
REASONS = {
    "indptr": re.compile(rf"^(indptr |{LENGTHS}|targets has \d+ rows for \d+ users)"),
    "item_idx": re.compile(rf"^(item_idx|{LENGTHS})"),
    "scores": re.compile(rf"^(scores |{LENGTHS})"),
    "categories": re.compile(r"^(categories |targets must be 2-d with \d+ columns)"),
    "targets": re.compile(r"^targets "),
}


def test_array_api_returns_valid_output_or_the_documented_error():
    reach = Reach()

    @FAST
    @given(drawn=hostile_arrays(), k=st.integers(1, 4), lam=st.sampled_from([0.0, 0.5, 1.0]),
           normalize=st.sampled_from([None, "minmax", "rank"]))
    def prop(drawn, k, lam, normalize):
        parts, broken = drawn
        reach.tried += 1
        try:
            result = rerank_arrays(parts["indptr"], parts["item_idx"], parts["scores"], parts["categories"],
                                   parts["targets"], k, lam, normalize=normalize)
        except InputError as exc:
            message = str(exc)
            assert broken is not None, f"valid arrays refused: {message}"
            assert REASONS[broken].match(message), f"{broken} was broken, but the error says: {message}"
            return
        reach.reached += 1
        indptr = np.asarray(parts["indptr"])
        lengths = np.diff(indptr)
        np.testing.assert_array_equal(np.diff(result.indptr), np.minimum(lengths, k))
        for u in range(len(lengths)):
            chosen = result.positions[result.indptr[u] : result.indptr[u + 1]]
            assert len(set(chosen)) == len(chosen)
            assert all(indptr[u] <= p < indptr[u + 1] for p in chosen)
        assert not np.isnan(result.objective).any()

    prop()
    reach.check(min_share=0.10)
