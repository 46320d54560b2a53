"""``rerank apply --refine`` (issue 13): the same lists as the frame API, swaps in the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_apply import apply, files, make_data, read

from rerank import CalibratedReranker


def test_rerank_apply_refines_like_the_frame_api_and_reports_the_swaps(tmp_path, capsys):
    data = make_data()
    hist, cats, cands = data
    report = tmp_path / "report.json"
    code, out = apply(tmp_path, *files(tmp_path, data), "out.csv", "--k", "4", "--lam", "0.9", "--refine", "swap",
                      "--max-swaps", "none", "--batch-rows", "7", "--report", str(report))
    assert code == 0
    reranker = CalibratedReranker(k=4, lam=0.9, refine="swap", max_swaps=None).fit(hist, cats)
    pd.testing.assert_frame_equal(read(out), reranker.rerank(cands), check_dtype=False)
    swaps = int(reranker.report_.swaps.sum())
    assert swaps > 0  # the case exercises the refinement
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"; {swaps} improving swaps, swap cap hit for 0 users;" in line and line.endswith("nothing lost")
    written = json.loads(report.read_text())
    assert written["counts"]["swaps"] == swaps and written["parameters"]["refine"] == "swap"


@pytest.mark.parametrize(("flags", "part"), [(["--refine", "2opt"], "--refine"), (["--max-swaps", "x"], "--max-swaps"),
                                             (["--refine", "swap", "--max-swaps", "-1"], "max_swaps")])
def test_rerank_apply_refuses_bad_refine_flags_in_one_line(tmp_path, capsys, flags, part):
    code, out = apply(tmp_path, *files(tmp_path, make_data()), "out.csv", *flags)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and part in err, err
    assert not out.exists()
