"""``rerank evaluate``: the splits, the pipeline on small real fits, the CLI end to end, and
Steck's finding on MovieLens latest-small judged by metric code written here (not
``rerank.metrics``)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rerank.adapters import evaluate as ev

from rerank import CalibratedReranker
from rerank.cli import main

LATEST_SMALL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ml-latest-small"
needs_latest_small = pytest.mark.skipif(
    not (LATEST_SMALL / "ratings.csv").is_file(),
    reason=f"MovieLens latest-small not found at {LATEST_SMALL} (shared/ beside the repository)",
)


def toy_ratings(n_users=40, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        (u, i, float(rng.integers(1, 6)), int(rng.integers(0, 10_000)))
        for u in range(n_users) for i in range(n_items) if rng.random() < 0.4
    ]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    cats = pd.DataFrame(
        [(i, g) for i in range(n_items) for g in ({f"g{i % 4}", f"h{i % 3}"} if i % 7 else set())],
        columns=["item_id", "category"],
    )
    return ratings, cats


# ------------------------------------------------------------------ splits
def test_random_split_is_a_seeded_partition():
    ratings, _ = toy_ratings()
    train, test = ev.split(ratings, "random", 0.25, seed=3)
    assert len(test) == round(0.25 * len(ratings))
    both = pd.concat([train, test]).sort_values(["user_id", "item_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, ratings.sort_values(["user_id", "item_id"]).reset_index(drop=True))
    again, _ = ev.split(ratings, "random", 0.25, seed=3)
    pd.testing.assert_frame_equal(train, again)
    other, _ = ev.split(ratings, "random", 0.25, seed=4)
    assert not train.equals(other)


def test_time_split_holds_out_each_users_latest():
    ratings, _ = toy_ratings()
    ratings = pd.concat([ratings, pd.DataFrame([[99, 1, 5.0, 7]], columns=ratings.columns)])
    train, test = ev.split(ratings, "time", 0.3)
    for user, rows in ratings.groupby("user_id"):
        tr, te = train[train["user_id"] == user], test[test["user_id"] == user]
        assert len(tr) + len(te) == len(rows) and len(tr) >= 1
        assert len(te) == min(round(0.3 * len(rows)), len(rows) - 1)
        if len(te):
            assert te["timestamp"].min() >= tr["timestamp"].max()
    with pytest.raises(ValueError, match="test_fraction"):
        ev.split(ratings, "time", 1.0)
    with pytest.raises(ValueError, match="split must be one of"):
        ev.split(ratings, "user")


def test_positives_threshold():
    ratings, _ = toy_ratings()
    assert (ev.positives(ratings, 4.0)["rating"] >= 4.0).all()
    assert len(ev.positives(ratings, None)) == len(ratings)


# ------------------------------------------------------------------ pipeline
@pytest.mark.parametrize("model", ["als", "bpr", "lightfm"])
def test_pipeline_on_each_model(model):
    ratings, cats = toy_ratings()
    result = ev.evaluate(
        ratings, cats, model=model, min_rating=3.0, n=15, k=5, lambdas=[0.0, 0.5, 1.0],
        factors=8, iterations=5,
    )
    table = result.table
    assert list(table.index) == [0.0, 0.5, 1.0]
    assert {"precision@5", "recall@5", "ndcg@5", "C_KL", "Hellinger", "minority_share",
            "category_coverage", "catalogue_coverage"} <= set(table.columns)
    assert table["C_KL"].loc[1.0] <= table["C_KL"].loc[0.0] + 1e-12
    assert ((table["precision@5"] >= 0) & (table["precision@5"] <= 1)).all()


def test_lambda_zero_row_is_plain_top_k():
    ratings, cats = toy_ratings()
    data = ev.positives(ratings, 3.0)
    train, test = ev.split(data, "random", 0.2, 0)
    adapter = ev.train_adapter("als", train, factors=8, iterations=5)
    users = pd.unique(test["user_id"])
    users = users[adapter.user_ids.get_indexer(users) >= 0]
    top = adapter.candidates(users, n=5)
    hits = defaultdict(int)
    held = set(zip(test["user_id"], test["item_id"], strict=True))
    for u, i in zip(top["user_id"], top["item_id"], strict=True):
        hits[u] += (u, i) in held
    precision = np.mean([hits[u] / 5 for u in users])
    result = ev.evaluate(ratings, cats, min_rating=3.0, n=15, k=5, lambdas=[0.0], factors=8, iterations=5)
    assert result.table.loc[0.0, "precision@5"] == pytest.approx(precision)


def write_toy_movielens(tmp_path):
    ratings, cats = toy_ratings()
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    ratings.rename(columns={"user_id": "userId", "item_id": "movieId"}).to_csv(folder / "ratings.csv", index=False)
    genres = cats.groupby("item_id")["category"].agg(lambda g: "|".join(sorted(g)))
    movies = pd.DataFrame({"movieId": range(30), "title": "x"})
    movies["genres"] = movies["movieId"].map(genres).fillna("(no genres listed)")
    movies.to_csv(folder / "movies.csv", index=False)
    return folder


def test_cli_writes_table_and_plot(tmp_path):
    folder = write_toy_movielens(tmp_path)
    out = tmp_path / "out"
    code = main(["evaluate", "--data", str(folder), "--lambdas", "0,0.5,0.9", "--factors", "8",
                 "--iterations", "3", "-k", "5", "-n", "12", "--min-rating", "3", "--out", str(out), "--quiet"])
    assert code == 0
    table = pd.read_csv(out / "evaluation.csv", index_col=0)
    assert list(table.index) == [0.0, 0.5, 0.9]
    assert (out / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "evaluation.md").read_text().startswith("| λ | precision@5")


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    folder = write_toy_movielens(tmp_path)
    assert main(["evaluate", "--data", str(folder), "--test-fraction", "1.5", "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rerank evaluate: error: test_fraction must lie in (0, 1), got 1.5"]


def test_cli_without_data_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RERANK_MOVIELENS_DIR", raising=False)
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    assert main(["evaluate", "--variant", "1m", "--no-download", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "ml-1m.zip" in err and "RERANK_MOVIELENS_DIR" in err


# ------------------------------------------------------------------ Steck's finding
def _independent_metrics(recs, history, test, cats, k, alpha=0.01):
    """Mean C_KL and precision@k with plain Python: p(g|u) from the history, q(g|L) from the
    list, each item's genres sharing its mass equally (docs/design.md §3)."""
    genres = defaultdict(list)
    for i, g in zip(cats["item_id"], cats["category"], strict=True):
        genres[i].append(g)

    def mix(items):
        mass = defaultdict(float)
        for i in items:
            for g in genres.get(i, []):
                mass[g] += 1.0 / len(genres[i])
        return mass

    hist = defaultdict(list)
    for u, i in zip(history["user_id"], history["item_id"], strict=True):
        hist[u].append(i)
    held = defaultdict(set)
    for u, i in zip(test["user_id"], test["item_id"], strict=True):
        held[u].add(i)
    lists = defaultdict(list)
    for u, i in zip(recs["user_id"], recs["item_id"], strict=True):
        lists[u].append(i)
    ckl, precision = [], []
    for u, items in lists.items():
        p_mass = mix(hist[u])
        total = sum(p_mass.values())
        q_mass = mix(items)
        ckl.append(sum(
            (pm / total) * math.log((pm / total) / ((1 - alpha) * q_mass.get(g, 0.0) / len(items) + alpha * pm / total))
            for g, pm in p_mass.items() if pm > 0
        ))
        precision.append(sum(i in held[u] for i in items[:k]) / k)
    return float(np.mean(ckl)), float(np.mean(precision))


@pytest.mark.movielens
@needs_latest_small
def test_steck_finding_on_latest_small():
    from rerank.datasets import movielens

    ratings, cats = movielens("latest-small", LATEST_SMALL)
    train, test = ev.split(ev.positives(ratings, 4.0), "random", 0.2, seed=0)
    adapter = ev.train_adapter("als", train, factors=32, iterations=10)
    users = pd.unique(test["user_id"])
    users = users[adapter.user_ids.get_indexer(users) >= 0]
    candidates = adapter.candidates(users, n=100)
    history = train[["user_id", "item_id"]]
    measured = {}
    for lam in (0.0, 0.5, 0.9):
        recs = CalibratedReranker(k=10, lam=lam, normalize="minmax").fit(history, cats).rerank(candidates)
        measured[lam] = _independent_metrics(recs, history, test, cats, 10)
    (kl0, p0), (kl5, p5), (kl9, _) = measured[0.0], measured[0.5], measured[0.9]
    assert kl9 <= 0.5 * kl0, measured
    assert p5 >= 0.85 * p0, measured
    assert kl5 < kl0, measured


def test_missing_model_package_is_a_one_line_input_error():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['lightfm'] = None\n"
        "import pandas as pd\n"
        "from rerank.adapters.evaluate import train_adapter\n"
        "from rerank.errors import InputError\n"
        "try:\n"
        "    train_adapter('lightfm', pd.DataFrame({'user_id': [1], 'item_id': [2]}))\n"
        "except InputError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "calibrated-rerank[lightfm]" in out.stdout
