"""``rerank gap`` / :func:`rerank.gap.gap_table` against pure-Python brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rerank.cli import main
from rerank.engine.refine import DEFAULT_MAX_SWAPS
from rerank.gap import gap_table
from rerank.testing import reference as ref


def _data(seed: int = 4, n_users: int = 6, n_items: int = 14, n: int = 8):
    rng = np.random.default_rng(seed)
    genres = ["a", "b", "c", "d"]
    rows = []
    for item in range(n_items):
        for g in rng.choice(genres, rng.integers(1, 3), replace=False):
            rows.append((item, str(g)))
    item_categories = pd.DataFrame(rows, columns=["item_id", "category"])
    history = pd.DataFrame(
        [(u, int(i)) for u in range(n_users) for i in rng.choice(n_items, 5, replace=False)],
        columns=["user_id", "item_id"],
    )
    candidates = pd.DataFrame(
        [(u, int(i), float(rng.random())) for u in range(n_users) for i in rng.choice(n_items, n, replace=False)],
        columns=["user_id", "item_id", "score"],
    )
    return candidates, history, item_categories


def _reference_gaps(candidates, history, item_categories, k, lam):
    """Per user: (optimum - greedy, optimum - safeguarded greedy, optimum, optimum - refined list) with
    min-max scores."""
    share = item_categories.groupby("item_id")["category"].apply(list)
    genres = sorted(item_categories["category"].unique())
    out = []
    for user, group in candidates.groupby("user_id", sort=False):
        mass = np.zeros(len(genres))
        for item in history.loc[history["user_id"] == user, "item_id"]:
            for g in share[item]:
                mass[genres.index(g)] += 1.0 / len(share[item])
        p = list(mass / mass.sum())
        cats = [{genres.index(g): 1.0 / len(share[i]) for g in share[i]} for i in group["item_id"]]
        raw = list(group["score"])
        s = ref.normalized(raw, "minmax")
        w = [1.0] * k
        best = ref.brute_force_best(s, cats, p, k, lam)
        plain = ref.objective(ref.greedy(raw, cats, p, k, lam, normalize="minmax", safeguard=False), s, cats, p,
                              lam, 0.01, "kl", w)
        guarded = ref.objective(ref.greedy(raw, cats, p, k, lam, normalize="minmax"), s, cats, p, lam, 0.01, "kl", w)
        refined = ref.objective(
            ref.greedy(raw, cats, p, k, lam, normalize="minmax", refine="swap", max_swaps=DEFAULT_MAX_SWAPS), s, cats,
            p, lam, 0.01, "kl", w,
        )
        out.append((best - plain, best - guarded, best, best - refined))
    return np.array(out)


@pytest.mark.parametrize("max_enumerate", [200_000, 0])
def test_gap_table_matches_brute_force(max_enumerate):
    candidates, history, item_categories = _data()
    lams = [0.5, 0.95]
    table = gap_table(candidates, history, item_categories, k=3, lams=lams, max_enumerate=max_enumerate)
    assert list(table["lambda"]) == lams
    for lam, row in zip(lams, table.to_dict("records"), strict=True):
        expected = _reference_gaps(candidates, history, item_categories, 3, lam)
        gaps, guarded = np.maximum(expected[:, 0], 0), np.maximum(expected[:, 1], 0)
        assert row["users"] == len(expected)
        assert row["certified"] == len(expected)
        assert row["greedy_gap_mean"] == pytest.approx(gaps.mean(), abs=1e-6)
        assert row["greedy_gap_max"] == pytest.approx(gaps.max(), abs=1e-6)
        assert row["safeguarded_gap_max"] == pytest.approx(guarded.max(), abs=1e-6)
        assert row["greedy_optimal"] == pytest.approx(np.mean(gaps <= 1e-9))
        assert row["safeguarded_gap_mean"] <= row["greedy_gap_mean"] + 1e-12
        refined = np.maximum(expected[:, 3], 0)
        assert row["refined_gap_mean"] == pytest.approx(refined.mean(), abs=1e-6)
        assert row["refined_gap_max"] == pytest.approx(refined.max(), abs=1e-6)
        assert row["refined_optimal"] == pytest.approx(np.mean(refined <= 1e-9))
        assert row["refined_closed"] == pytest.approx(1 - refined.mean() / gaps.mean(), abs=1e-6)
        assert row["refined_gap_mean"] <= row["safeguarded_gap_mean"] + 1e-12


def test_rerank_gap_cli_end_to_end(tmp_path, capsys):
    candidates, history, item_categories = _data()
    paths = {}
    for name, frame in (("candidates", candidates), ("history", history), ("item_categories", item_categories)):
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    out = tmp_path / "gap.md"
    code = main(["gap", "--candidates", str(paths["candidates"]), "--history", str(paths["history"]),
                 "--item-categories", str(paths["item_categories"]), "--k", "3", "--lam", "0.5", "0.9",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 4 and printed[2].startswith("| 0.5 | 6 |") and printed[3].startswith("| 0.9 | 6 |")
    assert out.read_text().strip().splitlines() == printed


def test_rerank_gap_cli_names_a_missing_file(tmp_path, capsys):
    code = main(["gap", "--candidates", str(tmp_path / "nope.csv"), "--history", "h.csv", "--item-categories",
                 "c.csv"])
    assert code == 2
    assert "nope.csv" in capsys.readouterr().err
