"""Fuzzing the boundary (issue 17): ids of every integer and string dtype — numpy, pandas
nullable, pyarrow — with nulls, near 2**53, 2**63 and 2**64, through the frame API and through
``rerank apply`` (CSV and Parquet written by pyarrow); ragged CSV rows and repeated headers.

Every case either gives the exact right output — the input's very ids, in its dtype, every user
in the output or skipped for the right reason, the row counts reconciling — or the documented
one-line error. Each property counts the examples that reach the output checks (``reach.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from budget import examples
from hostile import csv_with_faults, exact_id_inputs, expected_skips, write_arrow_parquet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reach import Reach

from rerank import CalibratedReranker
from rerank.cli import main
from rerank.errors import InputError

FAST = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=examples(50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
K = 2

# The documented reasons a candidate frame with these faults is refused in raise mode.
RAISE_REASON = re.compile(
    r"^candidates (column '(user_id|item_id)' has a null id at row \d+|column 'score' must be finite: "
    r"|has duplicate \(user_id, item_id\) rows: )"
)


def values(column) -> list:
    """Exact Python values of an id column (None for a null)."""
    return [None if pd.isna(v) else v for v in column.astype(object)]


def check_exact_output(out: pd.DataFrame, candidates: pd.DataFrame, skipped_users, k: int = K) -> None:
    """The output holds the input's very ids: per reranked user min(k, n_u) distinct items of
    their own rows, every non-null user either there or skipped, nothing else."""
    rows: dict = {}
    for user, item in zip(values(candidates["user_id"]), values(candidates["item_id"]), strict=True):
        if user is not None:
            rows.setdefault(user, []).append(item)
    out_users = values(out["user_id"])
    out_items = values(out["item_id"])
    assert set(out_users).isdisjoint(skipped_users)
    assert set(out_users) | set(skipped_users) == set(rows)
    for user in set(out_users):
        chosen = [i for u, i in zip(out_users, out_items, strict=True) if u == user]
        assert len(chosen) == len(set(chosen)) == min(k, len(rows[user]))
        assert set(chosen) <= set(rows[user])


def test_exact_ids_through_the_frame_api():
    reach = Reach()

    @FAST
    @given(drawn=exact_id_inputs(), skip=st.booleans())
    def prop(drawn, skip):
        candidates, history, categories, dtype = drawn
        reach.tried += 1
        reranker = CalibratedReranker(k=K).fit(history, categories)
        reasons, without_user = expected_skips(candidates)
        try:
            out, report = reranker.rerank(candidates, on_invalid="skip" if skip else "raise", return_report=True)
        except InputError as exc:
            assert not skip and (reasons or without_user), f"valid frame refused: {exc}"
            assert RAISE_REASON.match(str(exc)) and "\n" not in str(exc), str(exc)
            return
        reach.reached += 1
        assert skip or not (reasons or without_user)
        assert out["user_id"].dtype == candidates["user_id"].dtype, (out["user_id"].dtype, dtype)
        assert out["item_id"].dtype == candidates["item_id"].dtype, (out["item_id"].dtype, dtype)
        skipped = dict(zip(values(report.skipped["user_id"]), report.skipped["reason"], strict=True))
        assert skipped == reasons
        assert report.n_rows_without_user == without_user and report.reconciles
        check_exact_output(out, candidates, skipped)

    prop()
    reach.check(min_share=0.10)


def _read_output(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        return pq.read_table(path).to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if "int" in str(t) else None)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def test_exact_ids_through_rerank_apply():
    """CSV and Parquet (written by pyarrow, no pandas metadata) candidates, CSV history and
    categories: the same rows as the frame API, the ids exact (Parquet: the same type; CSV:
    the same text), the skipped users and the counts of the JSON report reconciling."""
    reach = Reach()

    @SLOW
    @given(drawn=exact_id_inputs(), fmt=st.sampled_from(["csv", "parquet"]),
           out_fmt=st.sampled_from(["csv", "parquet"]), batch_rows=st.integers(1, 5))
    def prop(drawn, fmt, out_fmt, batch_rows):
        candidates, history, categories, dtype = drawn
        reach.tried += 1
        expected, report = CalibratedReranker(k=K).fit(history, categories).rerank(
            candidates, on_invalid="skip", return_report=True)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            history.to_csv(tmp / "h.csv", index=False)
            categories.to_csv(tmp / "g.csv", index=False)
            cands = tmp / f"c.{fmt}"
            if fmt == "parquet":
                write_arrow_parquet(candidates, cands)
            else:
                candidates.to_csv(cands, index=False)
            out = tmp / f"out.{out_fmt}"
            code = main(["apply", "--candidates", str(cands), "--history", str(tmp / "h.csv"), "--item-categories",
                         str(tmp / "g.csv"), "--output", str(out), "--quiet", "--k", str(K), "--on-invalid", "skip",
                         "--batch-rows", str(batch_rows), "--skipped", str(tmp / "s.csv"),
                         "--report", str(tmp / "r.json")])
            assert code == 0
            reach.reached += 1
            got = _read_output(out, out_fmt)
            counts = json.loads((tmp / "r.json").read_text())["counts"]
            skipped = pd.read_csv(tmp / "s.csv", dtype=str, keep_default_na=False, na_values=[""])
            if fmt == "parquet" and out_fmt == "parquet":
                source = pq.read_schema(cands)
                assert pq.read_schema(out).field("user_id").type == source.field("user_id").type
                assert pq.read_schema(out).field("item_id").type == source.field("item_id").type
            as_text = fmt == "csv" or out_fmt == "csv"
            for column in ("user_id", "item_id"):
                want = values(expected[column])
                have = values(got[column])
                if as_text:
                    want = [str(v) for v in want]
                    have = [str(v) for v in have]
                assert have == want, (column, have, want)
        assert list(got["rank"].astype(int)) == list(expected["rank"])
        assert sorted(skipped["user_id"]) == sorted(str(u) for u in values(report.skipped["user_id"]))
        assert counts["reconciles"] and counts["users_in"] == report.n_users_in
        assert counts["rows_without_user_id"] == report.n_rows_without_user
        assert counts["candidate_rows_in"] == len(candidates) and counts["output_rows"] == len(expected)

    prop()
    reach.check(min_share=0.9)  # skip mode: every case gives an output


def test_ragged_rows_and_repeated_headers_through_rerank_apply():
    """A row with one field more or less than the header, or a repeated header name, in any of
    the three CSV inputs: the documented one-line error naming the file and the line (or the
    column), no output; a valid file gives an output."""
    reach = Reach()

    roles = {"candidates": ("user_id", "item_id", "score"), "history": ("user_id", "item_id", "weight"),
             "item_categories": ("item_id", "category", "weight")}

    @SLOW
    @given(data=st.data(), role=st.sampled_from(list(roles)))
    def prop(data, role):
        text, fault = data.draw(csv_with_faults(roles[role]))
        reach.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            paths = {"candidates": tmp / "c.csv", "history": tmp / "h.csv", "item_categories": tmp / "g.csv"}
            frames = {"candidates": {"user_id": ["u0"], "item_id": ["i0"], "score": [1.0]},
                      "history": {"user_id": ["u0"], "item_id": ["i1"]},
                      "item_categories": {"item_id": ["i0", "i1"], "category": ["a", "b"]}}
            for name, columns in frames.items():
                pd.DataFrame(columns).to_csv(paths[name], index=False)
            bad = tmp / "bad.csv"
            bad.write_text(text)
            paths[role] = bad
            out = tmp / "out.csv"
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(["apply", "--candidates", str(paths["candidates"]), "--history", str(paths["history"]),
                             "--item-categories", str(paths["item_categories"]), "--output", str(out), "--quiet",
                             "--batch-rows", "2"])
            message = err.getvalue()
            if fault is None:
                assert code == 0, message
                reach.reached += 1
                return
            assert code == 2 and message.count("\n") == 1 and f"{role} file '{bad}'" in message, message
            if fault[0] == "ragged":
                _, line, fields, header = fault
                assert f"line {line} has {fields} fields but the header has {header}" in message, message
            else:
                assert f"header names column '{fault[1]}' 2 times" in message, message
            assert not out.exists() and not list(tmp.glob("*.part"))

    prop()
    reach.check(min_share=0.10)
