"""``rerank apply`` with the issue-14 flags: several attributes (``--attribute-weights``)."""

from __future__ import annotations

import pandas as pd
import pytest
from test_apply import apply, files, make_data, read

from rerank import CalibratedReranker, popularity_categories


@pytest.fixture(scope="module")
def data_two_attributes():
    hist, cats, cands = make_data(seed=3)
    cats = pd.concat([cats.assign(attribute="genre"), popularity_categories(hist)], ignore_index=True)
    return hist, cats, cands


def test_attribute_weights_flag_equals_the_frame_api(tmp_path, data_two_attributes):
    hist, cats, cands = data_two_attributes
    code, out = apply(tmp_path, *files(tmp_path, data_two_attributes), "out.csv", "--k", "4", "--lam", "0.8",
                      "--attribute-weights", "genre=3,popularity=1", "--batch-rows", "9")
    assert code == 0
    expected = CalibratedReranker(k=4, lam=0.8, attribute_weights={"genre": 3, "popularity": 1}).fit(
        hist, cats).rerank(cands)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)


@pytest.mark.parametrize(("text", "message"), [("genre", "name=weight"), ("genre=1,bogus=2", "'bogus'")])
def test_bad_attribute_weights_flag(tmp_path, data_two_attributes, text, message, capsys):
    code, out = apply(tmp_path, *files(tmp_path, data_two_attributes), "out.csv", "--attribute-weights", text)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_shown_flag_equals_the_frame_api(tmp_path, data_two_attributes):
    hist, cats, cands = data_two_attributes
    shown = cands.groupby("user_id", sort=False).head(2)[["user_id", "item_id"]]
    shown_path = tmp_path / "shown.csv"
    shown.to_csv(shown_path, index=False)
    code, out = apply(tmp_path, *files(tmp_path, data_two_attributes), "out.csv", "--k", "3", "--lam", "0.8",
                      "--shown", str(shown_path), "--batch-rows", "7")
    assert code == 0
    expected = CalibratedReranker(k=3, lam=0.8).fit(hist, cats).rerank(cands, shown=shown)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)


def test_bad_shown_file_names_the_file(tmp_path, data_two_attributes, capsys):
    shown_path = tmp_path / "shown.csv"
    pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["m1", "m1"]}).to_csv(shown_path, index=False)
    code, out = apply(tmp_path, *files(tmp_path, data_two_attributes), "out.csv", "--shown", str(shown_path))
    assert code == 2
    err = capsys.readouterr().err
    assert "shown.csv" in err and "twice" in err
    assert not out.exists()


def test_explain_flag_equals_the_frame_api(tmp_path, data_two_attributes, capsys):
    hist, cats, cands = data_two_attributes
    code, out = apply(tmp_path, *files(tmp_path, data_two_attributes), "out.csv", "--k", "3", "--lam", "0.8",
                      "--explain", "--batch-rows", "11")
    assert code == 0
    reranker = CalibratedReranker(k=3, lam=0.8).fit(hist, cats)
    expected = reranker.rerank(cands, explain=True)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    counts = reranker.report_.reasons
    assert f"why each item is there: {counts['score']} score, {counts['calibration']} calibration" in line


def test_lam_auto_flags_equal_the_frame_api(tmp_path, data_two_attributes, capsys):
    hist, cats, cands = data_two_attributes
    code, out = apply(tmp_path, *files(tmp_path, data_two_attributes), "out.csv", "--k", "3", "--lam", "auto",
                      "--max-miscalibration", "0.4", "--batch-rows", "13")
    assert code == 0
    expected = CalibratedReranker(k=3, lam="auto", max_miscalibration=0.4).fit(hist, cats).rerank(cands)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)
    assert "λ from the budget C ≤ 0.4" in capsys.readouterr().err


def test_max_miscalibration_without_auto_is_refused(tmp_path, data_two_attributes, capsys):
    code, out = apply(tmp_path, *files(tmp_path, data_two_attributes), "out.csv", "--max-miscalibration", "0.4")
    assert code == 2
    assert "lam='auto'" in capsys.readouterr().err
