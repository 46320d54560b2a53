"""End to end: ``rerank simulate`` through the real CLI, seeded, byte-identical twice."""

import json

import pandas as pd
import pytest

from rerank.cli import main

ISSUE_COLUMNS = [
    "round", "policy", "group", "minority_exposure_ratio", "minority_collapse_rate",
    "miscalibration_true", "true_utility", "ctr", "coverage", "exposure_gini",
    "homogenization", "estimate_error", "interest_drift",
]
SMALL = ["--users", "150", "--items", "300", "--rounds", "6", "--candidates", "50",
         "--seed", "11", "--eta", "1"]


def _run(out, *extra):
    argv = ["simulate", *SMALL, "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    a = tmp_path_factory.mktemp("a")
    b = tmp_path_factory.mktemp("b")
    policies = ["--policy", "topk", "--policy", "calibrated", "--policy", "calibrated-debiased",
                "--policy", "epsilon"]
    _run(a, *policies)
    _run(b, *policies, "--no-plots")
    return a, b


def test_same_seed_gives_byte_identical_files(twice):
    a, b = twice
    for name in ("metrics.csv", "details.csv", "summary.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_metrics_csv_has_the_issue_columns_rows_and_plots(twice):
    a, _ = twice
    frame = pd.read_csv(a / "metrics.csv")
    assert list(frame.columns) == ISSUE_COLUMNS
    assert len(frame) == 4 * 6 * 3
    assert set(frame["group"]) == {"all", "majority", "minority"}
    assert frame[ISSUE_COLUMNS[3:]].notna().all().all()
    assert (frame["interest_drift"] == 0).all()  # drift is off by default
    for metric in ISSUE_COLUMNS[3:]:
        assert (a / f"{metric}.png").stat().st_size > 1000
    assert (a / "overview.png").exists()


def test_summary_reports_equilibria_settings_and_versions(twice):
    a, _ = twice
    info = json.loads((a / "summary.json").read_text())
    assert info["seed"] == 11
    assert info["settings"]["n_users"] == 150
    assert info["versions"]["numpy"]
    assert set(info["equilibria"]) == {"topk", "calibrated", "calibrated-debiased", "epsilon"}
    for eq in info["equilibria"].values():
        assert isinstance(eq["degenerate"], bool)
        assert set(eq["metrics"]) == {"all", "majority", "minority"}
        assert eq["metrics"]["all"]["minority_exposure_ratio"]["level"] is not None


def test_different_seed_gives_different_metrics(twice, tmp_path):
    a, _ = twice
    _run(tmp_path, "--policy", "topk", "--seed", "12", "--no-plots")
    other = pd.read_csv(tmp_path / "metrics.csv")
    first = pd.read_csv(a / "metrics.csv")
    first = first[first["policy"] == "topk"].reset_index(drop=True)
    assert not first.equals(other)


def test_a_policy_run_does_not_depend_on_the_others_run_with_it(twice, tmp_path):
    a, _ = twice
    _run(tmp_path, "--policy", "calibrated", "--no-plots")
    alone = pd.read_csv(tmp_path / "metrics.csv")
    together = pd.read_csv(a / "metrics.csv")
    together = together[together["policy"] == "calibrated"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, together)


@pytest.mark.parametrize("model,train", [("position-tower", "naive"), ("popularity", "ips"),
                                         ("oracle", "naive"), ("als", "ips")])
def test_every_model_and_training_mode_runs(tmp_path, model, train):
    _run(tmp_path, "--model", model, "--train", train, "--rounds", "3", "--policy", "topk",
         "--policy", "calibrated", "--no-plots", "--drift", "0.1", "--click-model", "cascade")
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert len(frame) == 2 * 3 * 3
    assert (frame.loc[frame["round"] > 0, "interest_drift"] > 0).all()


def test_quota_policy_meets_the_floor_of_k_times_the_target(tmp_path):
    _run(tmp_path, "--policy", "quota", "--policy", "topk", "--rounds", "2", "--no-plots")
    frame = pd.read_csv(tmp_path / "metrics.csv")
    last = frame[(frame["round"] == 1) & (frame["group"] == "all")].set_index("policy")
    # hard quotas put the users' minority interests on the slate far more often than top-k
    assert last.loc["quota", "minority_collapse_rate"] < last.loc["topk", "minority_collapse_rate"]


def test_bad_option_is_a_clean_error(tmp_path, capsys):
    assert main(["simulate", *SMALL, "--minority-share", "2", "--out", str(tmp_path), "--quiet"]) == 2
    assert "minority_share" in capsys.readouterr().err


def test_thread_count_does_not_change_the_results(tmp_path):
    for threads in ("1", "2"):
        _run(tmp_path / threads, "--policy", "topk", "--policy", "calibrated", "--rounds", "4",
             "--threads", threads, "--no-plots")
    assert (tmp_path / "1" / "metrics.csv").read_bytes() == (tmp_path / "2" / "metrics.csv").read_bytes()
