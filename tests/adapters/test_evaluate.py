"""``rerank evaluate``: the splits, the pipeline on small real fits, the CLI end to end, and
Steck's finding on MovieLens latest-small judged by metric code written here (not
``rerank.metrics``)."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rerank.adapters import evaluate as ev

from rerank import CalibratedReranker
from rerank.cli import main
from rerank.errors import InputError

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
def _genres(cats):
    genres = defaultdict(list)
    for i, g in zip(cats["item_id"], cats["category"], strict=True):
        genres[i].append(g)
    return genres


def _mix(items, genres, weights=None):
    """Genre mass of a list of items, each item's genres sharing its mass equally."""
    mass = defaultdict(float)
    for r, i in enumerate(items):
        for g in genres.get(i, []):
            mass[g] += (1.0 if weights is None else weights[r]) / len(genres[i])
    return mass


def _targets(history, cats):
    """p(g|u) of every user with category mass: the genre mix of their history (docs/design.md §3)."""
    genres = _genres(cats)
    categories = sorted({g for gs in genres.values() for g in gs})
    hist = defaultdict(list)
    for u, i in zip(history["user_id"], history["item_id"], strict=True):
        hist[u].append(i)
    out = {}
    for u, items in hist.items():
        mass = _mix(items, genres)
        total = sum(mass.values())
        if total > 0:
            out[u] = {g: mass.get(g, 0.0) / total for g in categories}
    return out


def _independent_user_metrics(recs, history, test, cats, k, alpha=0.01):
    """Per user of ``recs``, plain Python: C_KL, precision@k, minority attainment and missing."""
    genres = _genres(cats)
    targets = _targets(history, cats)
    held, lists = defaultdict(set), defaultdict(list)
    for u, i in zip(test["user_id"], test["item_id"], strict=True):
        held[u].add(i)
    for u, i in zip(recs["user_id"], recs["item_id"], strict=True):
        lists[u].append(i)
    out = {}
    for u, items in lists.items():
        p = targets[u]
        categories = list(p)  # sorted names: the tie order
        q = {g: v / len(items) for g, v in _mix(items, genres).items()}
        ckl = sum(pg * math.log(pg / ((1 - alpha) * q.get(g, 0.0) + alpha * pg)) for g, pg in p.items() if pg > 0)
        top = max((g for g in categories if p[g] > 0), key=lambda g: (p[g], -categories.index(g)))
        minority = [g for g in categories if p[g] > 0 and g != top]
        attained = missing = math.nan
        if minority:
            attained = sum(min(q.get(g, 0.0), p[g]) for g in minority) / sum(p[g] for g in minority)
            missing = sum(q.get(g, 0.0) == 0 for g in minority) / len(minority)
        out[u] = {"C_KL": ckl, "precision": sum(i in held[u] for i in items[:k]) / k,
                  "minority_attainment": attained, "minority_missing": missing}
    return out


def _independent_groups(targets, users):
    """KL(p_u ‖ p̄) with p̄ the mean target over every user of ``targets`` (plain Python), and
    niche / mainstream for ``users``: niche at or above the 0.75 quantile of their KL by the
    "higher" rule (the observed value at rank ceil(0.75 (n - 1)))."""
    categories = list(next(iter(targets.values())))
    p_bar = {g: sum(t[g] for t in targets.values()) / len(targets) for g in categories}
    kl = {u: sum(pg * math.log(pg / p_bar[g]) for g, pg in targets[u].items() if pg > 0) for u in users}
    ordered = sorted(kl.values())
    threshold = ordered[math.ceil(0.75 * (len(ordered) - 1))]
    return {u: "niche" if kl[u] >= threshold else "mainstream" for u in users}, kl


def _mean(values):
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values)


@pytest.mark.parametrize("model", ["als", "bpr", "lightfm"])
def test_pipeline_on_each_model(model):
    """Every group's row at every λ equals a recomputation in plain Python from the lists
    rebuilt here; the groups partition the users; λ = 0 is the model's top-k; calibration
    lowers C_KL and raises minority attainment."""
    ratings, cats = toy_ratings()
    options = {"factors": 8, "iterations": 5, "seed": 0}
    lambdas = [0.0, 0.5, 1.0]
    result = ev.evaluate(ratings, cats, model=model, min_rating=3.0, n=15, k=5, lambdas=lambdas, n_boot=0, **options)
    # The same pipeline by hand (training is seeded and single-threaded or thread-independent).
    train, test = ev.split(ev.positives(ratings, 3.0), "random", 0.2, 0)
    adapter = ev.train_adapter(model, train, **options)
    users = [u for u in pd.unique(test["user_id"]) if adapter.user_ids.get_indexer([u])[0] >= 0]
    test = test[test["user_id"].isin(users)]
    candidates = adapter.candidates(users, n=15)
    history = train[["user_id", "item_id"]]
    groups, kl = _independent_groups(_targets(history, cats), users)
    assert result.users["kl_from_population"].to_dict() == pytest.approx(kl, rel=1e-9, abs=1e-12)
    assert result.users["user_group"].to_dict() == groups
    table = result.groups
    assert list(table.index.get_level_values("user_group").unique()) == ["all", "niche", "mainstream"]
    for lam in lambdas:
        counts = {g: table.loc[(g, lam), "users"] for g in ("all", "niche", "mainstream")}
        assert counts["niche"] + counts["mainstream"] == counts["all"] == len(users)
        assert counts["niche"] == sum(g == "niche" for g in groups.values()) >= 1
        recs = CalibratedReranker(k=5, lam=lam, normalize="minmax").fit(history, cats).rerank(candidates)
        if lam == 0.0:  # plain top-k of the model's scores
            top = candidates.groupby("user_id", sort=False).head(5)
            assert list(zip(recs["user_id"], recs["item_id"], strict=True)) == list(
                zip(top["user_id"], top["item_id"], strict=True))
            assert (table.xs(0.0, level="lambda")["topk_kept"] == 0).all()
        independent = _independent_user_metrics(recs, history, test, cats, 5)
        for group in ("all", "niche", "mainstream"):
            members = [u for u in users if group == "all" or groups[u] == group]
            for column, key in [("precision@5", "precision"), ("C_KL", "C_KL"),
                                ("minority_attainment", "minority_attainment"),
                                ("minority_missing", "minority_missing")]:
                want = _mean([independent[u][key] for u in members])
                assert table.loc[(group, lam), column] == pytest.approx(want, rel=1e-9, abs=1e-12), (group, lam, column)
    for group in ("all", "niche", "mainstream"):
        assert table.loc[(group, 1.0), "C_KL"] < table.loc[(group, 0.0), "C_KL"], group
    assert table.loc[("all", 1.0), "minority_attainment"] > table.loc[("all", 0.0), "minority_attainment"]
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


def test_cli_writes_table_and_plot(tmp_path, capsys):
    folder = write_toy_movielens(tmp_path)
    out = tmp_path / "out"
    code = main(["evaluate", "--data", str(folder), "--lambdas", "0,0.5,0.9", "--factors", "8",
                 "--iterations", "3", "-k", "5", "-n", "12", "--min-rating", "3", "--out", str(out), "--quiet",
                 "--bootstrap", "50"])
    assert code == 0
    assert capsys.readouterr().out.startswith("MovieLens latest-small: model als")
    table = pd.read_csv(out / "evaluation.csv")
    assert list(table.columns[:3]) == ["user_group", "lambda", "users"]
    assert {"minority_attainment", "minority_missing", "minority_share", "topk_kept"} <= set(table.columns)
    assert list(zip(table["user_group"], table["lambda"], strict=True)) == [
        (g, lam) for g in ("all", "niche", "mainstream") for lam in (0.0, 0.5, 0.9)]
    users = table.set_index(["user_group", "lambda"])["users"]
    for lam in (0.0, 0.5, 0.9):
        assert users["niche", lam] + users["mainstream", lam] == users["all", lam]
        assert 0 < users["niche", lam] < users["mainstream", lam]
    assert ((table["topk_kept"] >= 0) & (table["topk_kept"] <= 1)).all()
    assert (table.loc[table["lambda"] == 0.0, "topk_kept"] == 0).all()
    for name in ("tradeoff.png", "groups.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "evaluation.md").read_text()
    assert markdown.startswith("**all test users**")
    assert markdown.count("| λ | precision@5") == 3 and "**niche" in markdown and "**mainstream" in markdown
    users_csv = pd.read_csv(out / "users.csv", index_col="user_id")
    assert (users_csv["user_group"] == "niche").sum() == users["niche", 0.0]
    assert users_csv.loc[users_csv["user_group"] == "niche", "kl_from_population"].min() >= users_csv.loc[
        users_csv["user_group"] == "mainstream", "kl_from_population"].max()
    contrasts = pd.read_csv(out / "contrasts.csv")
    assert {"attainment gap", "precision gap (activity-matched)", "precision change niche"} <= set(
        contrasts["quantity"])
    assert (contrasts["ci_low"] <= contrasts["ci_high"]).all()


# ------------------------------------------------------------------ MovieLens 100K format
GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western"]


def write_toy_100k(folder):
    """The toy ratings in GroupLens's 100K layout: ``u.data`` (tab-separated), ``u.item`` (``|``,
    Latin-1, 19 genre flags), ``u.genre``; ids start at 1, toy categories mapped to genre names."""
    ratings, cats = toy_ratings()
    folder.mkdir(parents=True)
    lines = [f"{u + 1}\t{i + 1}\t{int(r)}\t{t}\n" for u, i, r, t in ratings.itertuples(index=False)]
    (folder / "u.data").write_text("".join(lines))
    (folder / "u.genre").write_text("".join(f"{g}|{j}\n" for j, g in enumerate(GENRES_100K)) + "\n")
    name = {f"g{j}": GENRES_100K[1 + j] for j in range(4)} | {f"h{j}": GENRES_100K[8 + j] for j in range(3)}
    rows = []
    for item in range(30):
        flags = ["0"] * 19
        genres = [name[g] for g in cats.loc[cats["item_id"] == item, "category"]]
        for g in genres:
            flags[GENRES_100K.index(g)] = "1"
        if not genres:
            flags[0] = "1"  # "unknown" only: no category
        rows.append(f"{item + 1}|Caf\xe9 {item} (1995)|01-Jan-1995||http://x/{item}|" + "|".join(flags) + "\n")
    (folder / "u.item").write_bytes("".join(rows).encode("latin-1"))
    ratings = ratings.assign(user_id=ratings["user_id"] + 1, item_id=ratings["item_id"] + 1)
    cats = cats.assign(item_id=cats["item_id"] + 1, category=cats["category"].map(name))
    return ratings, cats


def test_cli_detects_100k_files_and_runs_the_full_evaluation(tmp_path, capsys):
    ratings, cats = write_toy_100k(tmp_path / "downloaded")
    out = tmp_path / "out"
    options = ["--lambdas", "0,0.5,0.9", "--factors", "8", "--iterations", "3", "-k", "5", "-n", "12",
               "--min-rating", "3", "--quiet", "--bootstrap", "20"]
    assert main(["evaluate", "--data", str(tmp_path / "downloaded"), "--out", str(out), *options]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("MovieLens 100k: model als")
    n_positives = int((ratings["rating"] >= 3).sum())
    counts = re.search(r"(\d+) train / (\d+) test positives", printed)
    assert int(counts.group(1)) + int(counts.group(2)) <= n_positives
    # The table equals the same evaluation run on the frames the files were written from.
    direct = ev.evaluate(ratings, cats, min_rating=3.0, n=12, k=5, lambdas=[0.0, 0.5, 0.9], factors=8,
                         iterations=3, n_boot=0)
    table = pd.read_csv(out / "evaluation.csv").set_index(["user_group", "lambda"])
    pd.testing.assert_frame_equal(table, direct.groups, check_dtype=False, check_exact=False, rtol=1e-9)
    # An explicit --variant that does not match the files is refused in one line.
    assert main(["evaluate", "--variant", "1m", "--data", str(tmp_path / "downloaded"), "--out", str(out),
                 *options]) == 2
    assert "holds no MovieLens 1m files" in capsys.readouterr().err


# ------------------------------------------------------------------ groups and contrasts
def test_population_divergence_and_groups_by_hand():
    targets = pd.DataFrame({"a": [0.5, 1.0, 0.25, 0.5], "b": [0.5, 0.0, 0.75, 0.5]},
                           index=pd.Index(["even", "all_a", "mostly_b", "even2"], name="user_id"))
    kl = ev.population_divergence(targets, [0.5, 0.5])
    assert kl["even"] == 0.0
    assert kl["all_a"] == pytest.approx(math.log(2))
    assert kl["mostly_b"] == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    # Quantile 0.75 by the "higher" rule over 4 users: the value at rank ceil(0.75 * 3) = 3 of 0..3.
    assert ev.user_groups(kl).to_dict() == {"even": "mainstream", "all_a": "niche", "mostly_b": "mainstream",
                                            "even2": "mainstream"}
    assert ev.population_divergence(targets.iloc[:1], [1.0, 0.0])["even"] == math.inf


def _per_user(values, groups):
    """``per_user`` frame from ``{column: {λ: [values of users a..e]}}``."""
    users = list("abcde")
    frames = {}
    for lam in (0.0, 1.0):
        frame = pd.DataFrame({name: by_lam[lam] for name, by_lam in values.items()}, index=users)
        frame["user_group"] = groups
        frames[lam] = frame
    return pd.concat(frames, names=["lambda", "user_id"])


def test_bootstrap_contrasts_by_hand():
    groups = ["niche", "niche", "mainstream", "mainstream", "mainstream"]
    per_user = _per_user({
        "precision@10": {0.0: [0.2, 0.4, 0.6, 0.6, 0.3], 1.0: [0.2, 0.2, 0.5, 0.6, 0.1]},
        "minority_attainment": {0.0: [0.5, np.nan, 0.8, 0.6, 0.7], 1.0: [0.9, np.nan, 0.9, 0.8, 0.7]},
        "C_KL": {0.0: [1.0, 1.0, 0.5, 0.5, 0.5], 1.0: [0.1, 0.1, 0.1, 0.1, 0.1]},
    }, groups)
    strata = pd.Series([0, 1, 0, 1, 1], index=list("abcde"))
    got = ev.bootstrap_contrasts(per_user, 10, strata, n_boot=200, seed=1).set_index(["quantity", "lambda"])
    est = got["estimate"]
    assert est["precision gap", 0.0] == pytest.approx(0.3 - 0.5)
    assert est["attainment gap", 0.0] == pytest.approx(0.5 - 0.7)  # b's NaN skipped
    assert est["C_KL gap", 1.0] == pytest.approx(0.0)
    assert est["precision change niche", 1.0] == pytest.approx((0.0 - 0.2) / 2)
    assert est["precision change mainstream", 1.0] == pytest.approx((-0.1 + 0.0 - 0.2) / 3)
    assert est["attainment change niche", 1.0] == pytest.approx(0.4)
    # activity-matched: niche weights 1/2 per stratum; b0: a - c, b1: b - mean(d, e)
    assert est["precision gap (activity-matched)", 0.0] == pytest.approx(0.5 * (0.2 - 0.6) + 0.5 * (0.4 - 0.45))
    # b has no attainment, so stratum 1 drops out of the matched attainment gap: a - c
    assert est["attainment gap (activity-matched)", 0.0] == pytest.approx(0.5 - 0.8)
    assert (got["ci_low"] <= got["estimate"] + 1e-12).all() and (got["estimate"] <= got["ci_high"] + 1e-12).all()
    # C_KL at λ = 1 is the same for everyone: no spread at all
    assert got.loc[("C_KL gap", 1.0), ["ci_low", "ci_high"]].tolist() == pytest.approx([0.0, 0.0])
    again = ev.bootstrap_contrasts(per_user, 10, strata, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(again.set_index(["quantity", "lambda"]), got)
    other = ev.bootstrap_contrasts(per_user, 10, strata, n_boot=200, seed=2).set_index(["quantity", "lambda"])
    assert not other["ci_low"].equals(got["ci_low"])
    with pytest.raises(ValueError, match="n_boot"):
        ev.bootstrap_contrasts(per_user, 10, n_boot=0)


def test_bootstrap_interval_covers_the_spread_of_a_known_gap():
    """Two groups of 400 with values 0/1 at rates 0.3 and 0.5: the 95% interval of the gap
    should be about ±1.96 · sqrt(0.3·0.7/400 + 0.5·0.5/400) = ±0.066 around -0.2."""
    rng = np.random.default_rng(0)
    n = 400
    niche = (np.arange(n) < 0.3 * n).astype(float)
    mainstream = (np.arange(n) < 0.5 * n).astype(float)
    values = np.concatenate([niche, mainstream])
    users = [f"u{j}" for j in range(2 * n)]
    frame = pd.DataFrame({"precision@10": values, "minority_attainment": rng.random(2 * n), "C_KL": 0.0,
                          "user_group": ["niche"] * n + ["mainstream"] * n}, index=users)
    per_user = pd.concat({0.0: frame}, names=["lambda", "user_id"])
    got = ev.bootstrap_contrasts(per_user, 10, n_boot=2000, seed=0).set_index("quantity")
    low, high = got.loc["precision gap", ["ci_low", "ci_high"]]
    half = 1.96 * math.sqrt(0.3 * 0.7 / n + 0.5 * 0.5 / n)
    assert got.loc["precision gap", "estimate"] == pytest.approx(-0.2)
    assert low == pytest.approx(-0.2 - half, abs=0.012) and high == pytest.approx(-0.2 + half, abs=0.012)


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
def _independent_metrics(recs, history, test, cats, k):
    """Mean C_KL and precision@k over users, from :func:`_independent_user_metrics`."""
    per_user = _independent_user_metrics(recs, history, test, cats, k).values()
    return _mean([m["C_KL"] for m in per_user]), _mean([m["precision"] for m in per_user])


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
    measured, per_user = {}, {}
    for lam in (0.0, 0.5, 0.9):
        recs = CalibratedReranker(k=10, lam=lam, normalize="minmax").fit(history, cats).rerank(candidates)
        measured[lam] = _independent_metrics(recs, history, test, cats, 10)
        per_user[lam] = _independent_user_metrics(recs, history, test, cats, 10)
    (kl0, p0), (kl5, p5), (kl9, _) = measured[0.0], measured[0.5], measured[0.9]
    assert kl9 <= 0.5 * kl0, measured
    assert p5 >= 0.85 * p0, measured
    assert kl5 < kl0, measured
    # Issue 12 on real data: the per-group table, with both groups, agrees with the plain-Python
    # recomputation, and minority attainment moves clearly with λ in every group.
    result = ev.evaluate(ratings, cats, lambdas=[0.0, 0.5, 0.9], factors=32, iterations=10, n_boot=0)
    groups = result.users["user_group"]
    assert 0.2 < (groups == "niche").mean() < 0.3
    for group in ("all", "niche", "mainstream"):
        members = [u for u in users if group == "all" or groups[u] == group]
        for lam in (0.0, 0.5, 0.9):
            row = result.groups.loc[(group, lam)]
            assert row["users"] == len(members)
            for column in ("minority_attainment", "minority_missing", "C_KL"):
                want = _mean([per_user[lam][u][column] for u in members])
                assert row[column] == pytest.approx(want, rel=1e-9), (group, lam, column)
        gain = result.groups.loc[(group, 0.9), "minority_attainment"] - result.groups.loc[(group, 0.0),
                                                                                           "minority_attainment"]
        assert gain > 0.1, (group, gain)
        assert result.groups.loc[(group, 0.9), "minority_missing"] < result.groups.loc[(group, 0.0), "minority_missing"]


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


def test_two_attributes_genre_and_popularity():
    """``attributes=("genre", "popularity")``: popularity labels from the training positives
    only (the reference's head/mid/tail), per-attribute C_KL recomputed by hand from the lists,
    the unsuffixed C_KL their mean, and calibrating both lowers both at λ = 1."""
    from rerank.testing import reference_beyond as ref

    ratings, cats = toy_ratings()
    options = {"factors": 8, "iterations": 5, "seed": 0}
    result = ev.evaluate(ratings, cats, model="als", min_rating=3.0, n=15, k=5, lambdas=[0.0, 1.0], n_boot=0,
                         attributes=("genre", "popularity"), **options)
    train, test = ev.split(ev.positives(ratings, 3.0), "random", 0.2, 0)
    labels = ref.popularity_labels(train["item_id"].tolist())
    pop = pd.DataFrame({"item_id": list(labels), "category": list(labels.values())})
    per_user = result.per_user
    history = train[["user_id", "item_id"]]
    adapter = ev.train_adapter("als", train, **options)
    users = [u for u in pd.unique(test["user_id"]) if adapter.user_ids.get_indexer([u])[0] >= 0]
    candidates = adapter.candidates(users, n=15)
    table = ev.attribute_table(cats, train, ("genre", "popularity"))
    for lam in (0.0, 1.0):
        recs = CalibratedReranker(k=5, lam=lam, normalize="minmax").fit(history, table).rerank(candidates)
        for attribute, frame in (("genre", cats), ("popularity", pop)):
            independent = _independent_user_metrics(recs, history, test, frame, 5)
            got = per_user.xs(lam, level="lambda")[f"C_KL[{attribute}]"]
            want = pd.Series({u: v["C_KL"] for u, v in independent.items()})
            assert got.to_dict() == pytest.approx(want.reindex(got.index).to_dict(), rel=1e-9, abs=1e-12)
    at = per_user.xs(0.0, level="lambda")
    assert at["C_KL"].to_numpy() == pytest.approx(((at["C_KL[genre]"] + at["C_KL[popularity]"]) / 2).to_numpy())
    groups = result.table
    for attribute in ("genre", "popularity"):
        assert groups.loc[1.0, f"C_KL[{attribute}]"] < groups.loc[0.0, f"C_KL[{attribute}]"]


def test_attributes_must_be_known():
    ratings, cats = toy_ratings()
    with pytest.raises(InputError, match="attributes"):
        ev.attribute_table(cats, ratings, ("genre", "year"))
