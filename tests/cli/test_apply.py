"""``rerank apply``: files in, file out; same lists as the frame API whatever the chunking; bad
input gives one line naming the file and the culprit, exit code 2 and no output file (issue 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hostile import assert_valid_output

from rerank import CalibratedReranker
from rerank.cli import main


def make_data(n_users: int = 30, n_items: int = 25, per_user: int = 12, seed: int = 0):
    """String ids throughout (as a CSV round trip gives them)."""
    rng = np.random.default_rng(seed)
    cat_rows = []
    for i in range(n_items):
        for g in rng.choice(["drama", "doc", "comedy", "kids"], size=rng.integers(0, 3), replace=False):
            cat_rows.append((f"m{i}", g))
    cats = pd.DataFrame(cat_rows, columns=["item_id", "category"])
    hist = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in rng.integers(0, n_users - 3, 300)],  # the last 3 users are cold
            "item_id": [f"m{i}" for i in rng.integers(0, n_items, 300)],
        }
    )
    rows = []
    for u in range(n_users):
        n = int(rng.integers(1, per_user + 1))
        for i in rng.choice(n_items, n, replace=False):
            rows.append((f"u{u}", f"m{i}", float(np.round(rng.normal(), 6))))
    cands = pd.DataFrame(rows, columns=["user_id", "item_id", "score"])
    return hist, cats, cands


@pytest.fixture(scope="module")
def data():
    return make_data()


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"user_id": str, "item_id": str}, keep_default_na=False, na_values=[""])


def files(tmp_path: Path, data, fmt: str = "csv"):
    hist, cats, cands = data
    return (
        write(cands, tmp_path / f"cands.{fmt}"),
        write(hist, tmp_path / f"hist.{fmt}"),
        write(cats, tmp_path / f"cats.{fmt}"),
    )


def run_main(argv) -> int:
    """``rerank.cli.main`` in process; argparse's own errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def apply(tmp_path, cands, hist, cats, out_name="out.csv", *extra):
    out = tmp_path / out_name
    code = run_main(
        ["apply", "--candidates", str(cands), "--history", str(hist), "--item-categories", str(cats),
         "--output", str(out), "--quiet", *extra]
    )
    return code, out


def no_leftovers(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".part")]


# ----------------------------------------------------------------------------- good input
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("batch_rows", [1, 7, 100_000])
def test_output_equals_the_frame_api_whatever_the_chunking(tmp_path, data, fmt, batch_rows, capsys):
    hist, cats, cands = data
    code, out = apply(tmp_path, *files(tmp_path, data, fmt), f"out.{fmt}", "--k", "4", "--lam", "0.7",
                      "--batch-rows", str(batch_rows))
    assert code == 0
    expected = CalibratedReranker(k=4, lam=0.7).fit(hist, cats).rerank(cands)
    got = read(out)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("nothing lost")
    assert f"{cands['user_id'].nunique()} users in" in line
    assert no_leftovers(tmp_path)


def test_options_reach_the_reranker(tmp_path, data):
    hist, cats, cands = data
    options = {"k": 3, "lam": 0.9, "alpha": 0.05, "divergence": "chi2", "normalize": "minmax", "order": "score",
               "rank_weights": "dcg", "safeguard": False}
    code, out = apply(tmp_path, *files(tmp_path, data), "out.csv", "--k", "3", "--lam", "0.9", "--alpha", "0.05",
                      "--divergence", "chi2", "--normalize", "minmax", "--order", "score", "--rank-weights", "dcg",
                      "--no-safeguard", "--batch-rows", "5")
    assert code == 0
    expected = CalibratedReranker(**options).fit(hist, cats).rerank(cands)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)


@pytest.mark.parametrize(
    ("flags", "options"),
    [
        (["--method", "pm2", "--pm2-theta", "0.3"], {"method": "pm2", "pm2_theta": 0.3}),
        (["--solver", "exact", "--time-limit", "5"], {"solver": "exact", "time_limit": 5.0}),
        (["--min-share", "0.5", "--min-share-threshold", "0.2"], {"min_share": 0.5, "min_share_threshold": 0.2}),
    ],
)
def test_every_python_option_has_its_flag(tmp_path, data, flags, options):
    """rerank apply takes the options the Python API has: the same lists as the frame API."""
    hist, cats, cands = data
    code, out = apply(tmp_path, *files(tmp_path, data), "out.csv", "--k", "3", "--lam", "0.8", *flags)
    assert code == 0
    expected = CalibratedReranker(k=3, lam=0.8, **options).fit(hist, cats).rerank(cands)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)


def test_flags_become_one_rerank_options():
    from rerank import RerankOptions
    from rerank.cli import build_parser
    from rerank.cli.options import options_from_args

    argv = ["apply", "--candidates", "c", "--history", "h", "--item-categories", "g", "--output", "o.csv",
            "--k", "4", "--lam-column", "my_lam", "--rank-weights", "3,2,1,1", "--normalize", "none",
            "--no-safeguard", "--min-share", "0.5", "--solver", "greedy"]
    options = options_from_args(build_parser().parse_args(argv))
    assert options == RerankOptions(k=4, lam=None, rank_weights=(3.0, 2.0, 1.0, 1.0), safeguard=False,
                                    min_share=0.5, normalize=None)
    gap = build_parser().parse_args(["gap", "--candidates", "c", "--history", "h", "--item-categories", "g",
                                     "--lam", "0.2", "0.4", "--k", "3"])
    assert options_from_args(gap, lam=0.4) == RerankOptions(k=3, lam=0.4, normalize="minmax")


def test_min_share_and_per_user_lambda_columns(tmp_path, data, capsys):
    hist, cats, cands = data
    cands = cands.assign(my_lam=cands["user_id"].str[1:].astype(int).mod(3) / 2.0)
    paths = (write(cands, tmp_path / "c.csv"), write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.csv"))
    code, out = apply(tmp_path, *paths, "out.parquet", "--k", "5", "--lam-column", "my_lam", "--min-share", "1.0")
    assert code == 0
    reranker = CalibratedReranker(k=5, lam="my_lam", min_share=1.0).fit(hist, cats)
    expected = reranker.rerank(cands)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)
    short = int((reranker.report_.quota_shortfall > 0).sum())
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"; {short} users short of their quotas" in line and line.endswith("nothing lost")


def test_history_weights_and_iso_timestamps_with_half_life(tmp_path, data):
    hist, cats, cands = data
    rng = np.random.default_rng(1)
    seconds = pd.to_timedelta(rng.integers(0, 10**6, len(hist)), "s")
    hist = hist.assign(weight=rng.integers(1, 6, len(hist)).astype(float),
                       timestamp=pd.Timestamp("2024-01-01", tz="UTC") + seconds)
    paths = (write(cands, tmp_path / "c.csv"), write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.csv"))
    code, out = apply(tmp_path, *paths, "out.csv", "--half-life", "86400")
    assert code == 0
    expected = CalibratedReranker(half_life=86400.0).fit(hist, cats).rerank(cands)
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)


def test_ids_are_text_in_csv_and_match_integer_ids_in_parquet(tmp_path):
    cats = pd.DataFrame({"item_id": [1, 2, 3], "category": ["a", "b", "a"]})
    hist = pd.DataFrame({"user_id": ["007", "007"], "item_id": [1, 2]})
    cands = pd.DataFrame({"user_id": ["007", "007", "7", "7"], "item_id": [1, 3, 2, 3], "score": [1.0, 0.5, 0.2, 0.1]})
    paths = (write(cands, tmp_path / "c.csv"), write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.parquet"))
    code, out = apply(tmp_path, *paths, "out.csv", "--k", "2")
    assert code == 0
    got = read(out)
    assert list(pd.unique(got["user_id"])) == ["007", "7"]  # leading zeros kept; "7" is another user
    report_line = CalibratedReranker(k=2).fit(hist.astype(str), cats.astype(str))
    report_line.rerank(cands.astype({"item_id": str}))
    assert list(report_line.report_.cold_users) == ["7"]


def test_empty_candidates_give_an_empty_output_with_the_columns(tmp_path, data):
    hist, cats, cands = data
    for fmt in ("csv", "parquet"):
        empty = write(cands.iloc[:0], tmp_path / f"empty.{fmt}")
        code, out = apply(tmp_path, empty, write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.csv"),
                          f"out.{fmt}")
        assert code == 0
        got = read(out)
        assert list(got.columns) == ["user_id", "item_id", "score", "rank"] and len(got) == 0


def test_empty_history_means_every_user_is_cold(tmp_path, data, capsys):
    hist, cats, cands = data
    paths = (write(cands, tmp_path / "c.csv"), write(hist.iloc[:0], tmp_path / "h.csv"),
             write(cats, tmp_path / "g.csv"))
    code, out = apply(tmp_path, *paths)
    assert code == 0
    assert_valid_output(read(out), cands, 10)
    assert f"{cands['user_id'].nunique()} cold users" in capsys.readouterr().err


def test_compressed_csv_in_and_out(tmp_path, data):
    hist, cats, cands = data
    cands.to_csv(tmp_path / "c.csv.gz", index=False)
    code, out = apply(tmp_path, tmp_path / "c.csv.gz", write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.csv"),
                      "out.csv.gz", "--batch-rows", "9")
    assert code == 0
    got = pd.read_csv(out, dtype={"user_id": str, "item_id": str})
    pd.testing.assert_frame_equal(got, CalibratedReranker().fit(hist, cats).rerank(cands), check_dtype=False)


def test_skip_mode_writes_the_skipped_users_and_a_reconciled_report(tmp_path, data, capsys):
    hist, cats, cands = data
    dirty = cands.copy()
    dirty.loc[3, "score"] = np.nan
    bad_user = dirty.loc[3, "user_id"]
    dirty.loc[len(dirty)] = [None, "m1", 1.0]  # a row without a user, at the end
    paths = (write(dirty, tmp_path / "c.csv"), write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.csv"))
    code, out = apply(tmp_path, *paths, "out.csv", "--on-invalid", "skip", "--skipped", str(tmp_path / "skipped.csv"),
                      "--report", str(tmp_path / "report.json"), "--batch-rows", "4")
    assert code == 0
    skipped = pd.read_csv(tmp_path / "skipped.csv", dtype={"user_id": str})
    assert list(skipped["user_id"]) == [bad_user]
    assert list(skipped["reason"]) == ["score missing or not a finite number"]
    assert skipped["n_rows"].iloc[0] == (cands["user_id"] == bad_user).sum()
    counts = json.loads((tmp_path / "report.json").read_text())["counts"]
    assert counts["reconciles"] and counts["users_skipped"] == 1 and counts["rows_without_user_id"] == 1
    assert counts["rows_reranked"] + counts["rows_of_skipped_users"] + 1 == len(dirty)
    assert_valid_output(read(out), cands, 10, skipped_users=[bad_user])
    assert "nothing lost" in capsys.readouterr().err


def test_progress_bar_unless_quiet(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the bar shows on terminals only
    cands, hist, cats = files(tmp_path, data)
    out = tmp_path / "o.csv"
    argv = ["apply", "--candidates", str(cands), "--history", str(hist), "--item-categories", str(cats),
            "--output", str(out), "--batch-rows", "50"]
    assert main(argv) == 0
    noisy = capsys.readouterr().err
    assert "rows" in noisy.split("rerank apply: wrote")[0]  # the tqdm bar came first
    assert main([*argv, "--quiet"]) == 0
    quiet = capsys.readouterr().err
    assert quiet.count("\n") == 1 and quiet.startswith("rerank apply: wrote")


# ----------------------------------------------------------------------------- bad input
def case_files(tmp_path: Path, data, *, cands=None, hist=None, cats=None, raw=None):
    h, c, k = data
    paths = {
        "cands": write(k if cands is None else cands, tmp_path / "cands.csv"),
        "hist": write(h if hist is None else hist, tmp_path / "hist.csv"),
        "cats": write(c if cats is None else cats, tmp_path / "cats.csv"),
    }
    for role, text in (raw or {}).items():
        paths[role] = tmp_path / text[0]
        paths[role].write_bytes(text[1])
    return paths


_, _, CANDS = make_data()
BAD_CASES = {
    "nan score": (dict(cands=CANDS.assign(score=CANDS["score"].where(CANDS.index != 5))),
                  ["cands.csv", "score", "line 7", f"user '{CANDS.loc[5, 'user_id']}'",
                   f"item '{CANDS.loc[5, 'item_id']}'"]),
    "text score": (dict(cands=CANDS.assign(score=CANDS["score"].astype(object).where(CANDS.index != 2, "high"))),
                   ["cands.csv", "score", "line 4", "'high'"]),
    "inf score": (dict(cands=CANDS.assign(score=CANDS["score"].where(CANDS.index != 0, np.inf))),
                  ["cands.csv", "score", "line 2"]),
    "missing column": (dict(cands=CANDS.drop(columns="score")), ["cands.csv", "missing", "score"]),
    "null user": (dict(cands=CANDS.assign(user_id=CANDS["user_id"].where(CANDS.index != 3))),
                  ["cands.csv", "user_id", "null", "line 5"]),
    "null item": (dict(cands=CANDS.assign(item_id=CANDS["item_id"].where(CANDS.index != 3))),
                  ["cands.csv", "item_id", "null", "line 5"]),
    "duplicate": (dict(cands=pd.concat([CANDS.iloc[:1], CANDS]).reset_index(drop=True)),
                  ["cands.csv", "duplicate", f"user '{CANDS.loc[0, 'user_id']}'", "line 3"]),
    "user not contiguous": (dict(cands=pd.concat([CANDS, CANDS.iloc[:1]]).reset_index(drop=True)),
                            ["cands.csv", f"user '{CANDS.loc[0, 'user_id']}'", "contiguous"]),
    "negative history weight": (dict(hist=make_data()[0].assign(weight=-1.0)), ["hist.csv", "weight", "line 2"]),
    "text category weight": (dict(cats=make_data()[1].assign(weight="heavy")), ["cats.csv", "weight", "'heavy'"]),
    "history without item_id": (dict(hist=make_data()[0].drop(columns="item_id")), ["hist.csv", "item_id"]),
    "null category": (dict(cats=make_data()[1].assign(category=None)), ["cats.csv", "category", "null"]),
    "empty file": (dict(raw={"cands": ("c.csv", b"")}), ["c.csv", "cannot be read"]),
    "not a parquet file": (dict(raw={"cands": ("c.parquet", b"PAR1 nonsense")}), ["c.parquet", "cannot be read"]),
    "binary garbage csv": (dict(raw={"hist": ("h.csv", b"user_id,item_id\n\xff\xfe\x00x,1\n")}), ["h.csv"]),
    "ragged csv": (dict(raw={"cats": ("g.csv", b"item_id,category\nm1,drama,extra,fields\n")}), ["g.csv"]),
    "unknown suffix": (dict(raw={"cands": ("c.json", b"{}")}), ["c.json", "format"]),
}


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, data, capsys, name):
    setup, parts = BAD_CASES[name]
    paths = case_files(tmp_path, data, **setup)
    previous = tmp_path / "previous.csv"
    code, out = apply(tmp_path, paths["cands"], paths["hist"], paths["cats"], "out.csv", "--batch-rows", "3")
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rerank apply: error: ")
    for part in parts:
        assert part in err, (part, err)
    assert not out.exists() and not previous.exists()
    assert no_leftovers(tmp_path)


@pytest.mark.parametrize(
    ("flags", "part"),
    [
        (["--k", "0"], "k must be >= 1"),
        (["--k", "2.5"], "--k"),
        (["--lam", "1.5"], "lam"),
        (["--lam", "x"], "--lam"),
        (["--alpha", "1"], "alpha"),
        (["--divergence", "js"], "--divergence"),
        (["--rank-weights", "1,x"], "--rank-weights"),
        (["--rank-weights", "1,2"], "rank_weights"),
        (["--half-life", "0"], "half_life"),
        (["--threads", "0"], "n_threads"),
        (["--batch-rows", "0"], "--batch-rows"),
        (["--min-share", "0"], "min_share"),
        (["--min-share", "1", "--min-share-threshold", "2"], "min_share_threshold"),
        (["--lam", "0.2", "--lam-column", "x"], "not allowed with"),
        (["--lam-column", "nope"], "nope"),
    ],
)
def test_bad_flags_are_one_line_exit_2(tmp_path, data, capsys, flags, part):
    code, out = apply(tmp_path, *files(tmp_path, data), "out.csv", *flags)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and part in err, err
    assert not out.exists()


def test_missing_files_and_bad_output_paths(tmp_path, data, capsys):
    cands, hist, cats = files(tmp_path, data)
    assert apply(tmp_path, tmp_path / "nope.csv", hist, cats)[0] == 2
    assert "nope.csv' does not exist" in capsys.readouterr().err
    assert apply(tmp_path, cands, hist, cats, "missing_dir/out.csv")[0] == 2
    assert "does not exist" in capsys.readouterr().err
    assert apply(tmp_path, cands, hist, cats, "cands.csv")[0] == 2
    assert "also an input" in capsys.readouterr().err
    assert apply(tmp_path, cands, hist, cats, "out.xlsx")[0] == 2
    assert "unknown format" in capsys.readouterr().err


def test_failure_leaves_an_existing_output_untouched(tmp_path, data):
    cands, hist, cats = files(tmp_path, data)
    out = tmp_path / "out.csv"
    out.write_text("previous run\n")
    bad = write(data[2].assign(score="x"), tmp_path / "bad.csv")
    assert apply(tmp_path, bad, hist, cats)[0] == 2
    assert out.read_text() == "previous run\n"
    assert no_leftovers(tmp_path)


def test_a_bug_is_not_disguised_as_a_user_error(tmp_path, data, monkeypatch):
    """Only InputError/OSError are user errors; anything else keeps its traceback, and the
    temporary output is still removed."""
    import rerank.cli.apply as apply_module

    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(apply_module, "rerank_batches", broken)
    with pytest.raises(KeyError):
        apply(tmp_path, *files(tmp_path, data))
    assert not (tmp_path / "out.csv").exists() and no_leftovers(tmp_path)


def test_real_subprocess_run(tmp_path, data):
    """One end-to-end run of the installed ``rerank`` script (good, then bad input)."""
    script = Path(sys.executable).parent / "rerank"
    cands, hist, cats = files(tmp_path, data, "parquet")
    out = tmp_path / "out.parquet"
    argv = [str(script), "apply", "--candidates", str(cands), "--history", str(hist),
            "--item-categories", str(cats), "--output", str(out), "--k", "3", "--batch-rows", "11"]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("nothing lost")
    hist_f, cats_f, cands_f = data
    pd.testing.assert_frame_equal(read(out), CalibratedReranker(k=3).fit(hist_f, cats_f).rerank(cands_f),
                                  check_dtype=False)
    bad = write(cands_f.assign(score=np.where(cands_f.index == 4, np.nan, cands_f["score"])), tmp_path / "bad.csv")
    argv[argv.index(str(cands))] = str(bad)
    argv[argv.index(str(out))] = str(tmp_path / "out2.csv")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "bad.csv" in done.stderr and "line 6" in done.stderr
    assert not (tmp_path / "out2.csv").exists()


@pytest.mark.parametrize(
    ("user_ids", "parts"),
    [([1.0, 1.0, 2.5], ["user_id", "row 2", "2.5"]), ([1.0, 1.0, np.nan], ["user_id", "null", "row 2"])],
)
def test_float_ids_in_parquet_are_not_truncated_when_compared_as_text(tmp_path, capsys, user_ids, parts):
    cands = pd.DataFrame({"user_id": user_ids, "item_id": ["a", "b", "a"], "score": [1.0, 0.5, 0.2]})
    hist = pd.DataFrame({"user_id": ["1"], "item_id": ["a"]})
    cats = pd.DataFrame({"item_id": ["a", "b"], "category": ["x", "y"]})
    paths = (write(cands, tmp_path / "c.parquet"), write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.csv"))
    code, out = apply(tmp_path, *paths)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    for part in parts:
        assert part in err, err
    assert not out.exists()


def test_whole_float_ids_in_parquet_match_text_ids(tmp_path):
    cands = pd.DataFrame({"user_id": [1.0, 1.0, 2.0], "item_id": ["a", "b", "a"], "score": [1.0, 0.5, 0.2]})
    hist = pd.DataFrame({"user_id": ["1"], "item_id": ["a"]})
    cats = pd.DataFrame({"item_id": ["a", "b"], "category": ["x", "y"]})
    paths = (write(cands, tmp_path / "c.parquet"), write(hist, tmp_path / "h.csv"), write(cats, tmp_path / "g.csv"))
    code, out = apply(tmp_path, *paths, "out.csv", "--report", str(tmp_path / "r.json"))
    assert code == 0
    assert list(read(out)["user_id"].unique()) == ["1", "2"]
    assert json.loads((tmp_path / "r.json").read_text())["counts"]["cold_users"] == 1  # "2" only


@pytest.mark.movielens
def test_movielens_files_end_to_end(tmp_path, movielens_dir):
    """Real MovieLens files: ratings >= 4 as the weighted, timestamped history, the pipe-separated
    genres exploded into an item-category file, popularity candidates (top 50 unseen per user,
    rows grouped by user). The CLI on the files equals the frame API on the frames."""
    ratings = pd.read_csv(movielens_dir / "ratings.csv")
    movies = pd.read_csv(movielens_dir / "movies.csv")
    history = ratings[ratings["rating"] >= 4].rename(
        columns={"userId": "user_id", "movieId": "item_id", "rating": "weight"}
    )
    cats = movies.assign(category=movies["genres"].str.split("|")).explode("category")
    cats = cats[cats["category"] != "(no genres listed)"].rename(columns={"movieId": "item_id"})
    cats = cats[["item_id", "category"]]
    popularity = ratings["movieId"].value_counts()
    top = popularity.index[:300].to_numpy()
    seen = set(zip(ratings["userId"], ratings["movieId"], strict=True))
    rows = [(u, int(i), float(np.log1p(popularity[i])))
            for u in sorted(ratings["userId"].unique()) for i in top if (u, i) not in seen]
    cands = pd.DataFrame(rows, columns=["user_id", "item_id", "score"]).groupby("user_id").head(50)
    paths = (write(cands, tmp_path / "c.csv"), write(history, tmp_path / "h.parquet"), write(cats, tmp_path / "g.csv"))
    code, out = apply(tmp_path, *paths, "out.parquet", "--k", "10", "--lam", "0.9", "--normalize", "minmax",
                      "--half-life", str(365 * 86400), "--batch-rows", "4000", "--report", str(tmp_path / "r.json"))
    assert code == 0
    expected = CalibratedReranker(k=10, lam=0.9, normalize="minmax", half_life=365 * 86400).fit(
        history.astype({"user_id": str, "item_id": str}), cats.astype({"item_id": str})
    ).rerank(cands.astype({"user_id": str, "item_id": str}))
    pd.testing.assert_frame_equal(read(out), expected, check_dtype=False)
    counts = json.loads((tmp_path / "r.json").read_text())["counts"]
    assert counts["reconciles"] and counts["users_in"] == ratings["userId"].nunique()
    assert counts["output_rows"] == 10 * counts["users_reranked"]
