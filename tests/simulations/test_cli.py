"""End to end: ``rerank simulate`` through the real CLI, seeded, byte-identical twice, and
behaving as the simulator promises (controls, calibration, drift, verdicts, output rules)."""

import io
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from rerank.simulations.cli import show_progress
from rerank.simulations.metrics import METRIC_COLUMNS
from rerank.simulations.plots import LABELS
from rerank.simulations.verdict import VERDICTS

from rerank.cli import main

SMALL = ["--users", "150", "--items", "300", "--rounds", "8", "--candidates", "50",
         "--seed", "11", "--seeds", "2", "--jobs", "1"]
POLICIES = ["organic", "oracle", "topk", "topk-frozen", "calibrated", "calibrated-anchored"]
GROUPS = ("all", "mainstream", "niche")


def _run(out, *extra):
    argv = ["simulate", *SMALL, "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    a = tmp_path_factory.mktemp("a")
    b = tmp_path_factory.mktemp("b")
    policies = [arg for p in POLICIES for arg in ("--policy", p)]
    _run(a, *policies)
    _run(b, *policies, "--no-plots")
    return a, b


@pytest.fixture(scope="module")
def frame(twice):
    return pd.read_csv(twice[0] / "metrics.csv")


def _at(frame, round_, column):
    """policy × group table of the seeds' mean of ``column`` at ``round_``."""
    rows = frame[frame["round"] == round_]
    return rows.groupby(["policy", "group"])[column].mean()


def test_same_seed_gives_byte_identical_files(twice):
    a, b = twice
    for name in ("metrics.csv", "details.csv", "summary.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_metrics_csv_has_a_row_per_seed_round_policy_and_group(frame):
    assert list(frame.columns) == ["seed", "round", "policy", "group", *METRIC_COLUMNS]
    assert len(frame) == 2 * 8 * len(POLICIES) * 3
    assert sorted(frame["seed"].unique()) == [11, 12]
    assert list(frame["policy"].unique()) == POLICIES
    keys = frame[["seed", "round", "policy", "group"]]
    assert not keys.duplicated().any()


def test_round_zero_controls_rank_as_they_should(frame):
    utility = _at(frame, 0, "true_utility")
    for group in GROUPS:
        # the oracle serves true relevance, the model beats no recommender at all
        assert utility["oracle", group] > utility["topk", group] > utility["organic", group]
        # organic histories are long enough that top-k beats calibrated on round-0 utility
        assert utility["topk", group] > utility["calibrated", group]
    miscal = _at(frame, 0, "ref_miscalibration")
    for group in GROUPS:  # the reranker calibrates exposure toward the users' interests
        assert miscal["calibrated", group] < miscal["topk", group]
    # the world without a recommender exposes minority interests about proportionally
    assert abs(_at(frame, 0, "ref_minority_ratio")["organic", "all"] - 1.0) < 0.15


def test_frozen_model_equals_the_retrained_one_until_the_first_retrain(frame):
    def rows(policy, round_):
        r = frame[(frame["policy"] == policy) & (frame["round"] == round_)]
        return r[list(METRIC_COLUMNS)].reset_index(drop=True)

    pd.testing.assert_frame_equal(rows("topk", 0), rows("topk-frozen", 0))
    assert not rows("topk", 7).equals(rows("topk-frozen", 7))


def test_reference_metrics_start_at_their_reference_and_tastes_drift(frame):
    first, last = frame[frame["round"] == 0], frame[frame["round"] == 7]
    assert (first["taste_shift"].abs() < 1e-9).all()
    assert (last["taste_shift"] > 0).all()  # drift is on by default
    assert (frame["top50_consumed"] == 0).all()  # re-consumption: no depletion
    niche = frame["group"] == "niche"
    assert frame.loc[frame["group"] == "mainstream", "distinct_interest_ratio"].isna().all()
    assert frame.loc[niche, "distinct_interest_ratio"].notna().all()
    # π = π⁰ at round 0: miscalibration against the truth equals the reference one there
    np.testing.assert_allclose(first["miscalibration_true"], first["ref_miscalibration"],
                               atol=1e-6)


def _reference_loop_effects(frame, metric, window):
    """mean and 95% t-interval over seeds of mean(last W of D_t), from the CSV rows."""
    from scipy import stats

    value = {(r.seed, r.policy, r.group, r.round): getattr(r, metric)
             for r in frame.itertuples()}
    seeds = sorted(frame["seed"].unique())
    rounds = sorted(frame["round"].unique())
    out = {}
    for policy in POLICIES[1:]:
        for group in GROUPS:
            per_seed = []
            for s in seeds:
                d = [(value[s, policy, group, t] - value[s, policy, group, 0])
                     - (value[s, "organic", group, t] - value[s, "organic", group, 0])
                     for t in rounds][-window:]
                per_seed.append(sum(d) / len(d))
            mean = sum(per_seed) / len(per_seed)
            sd = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (len(per_seed) - 1))
            half = stats.t.ppf(0.975, len(per_seed) - 1) * sd / math.sqrt(len(per_seed))
            out[policy, group] = (mean, mean - half, mean + half)
    return out


def test_summary_verdicts_recompute_from_metrics_csv(twice, frame):
    info = json.loads((twice[0] / "summary.json").read_text())
    assert info["seeds"] == [11, 12]
    assert info["settings"]["n_users"] == 150
    assert info["versions"]["numpy"]
    verdicts = info["verdicts"]
    assert "organic" not in verdicts and set(verdicts) == set(POLICIES[1:])
    reference = _reference_loop_effects(frame, "ref_miscalibration", window=8)
    for (policy, group), (mean, lo, hi) in reference.items():
        v = verdicts[policy][group]
        assert v["verdict"] in VERDICTS and v["metric"] == "ref_miscalibration"
        # metrics.csv holds 6 decimals; the summary was computed from the full floats
        assert v["loop_effect"] == pytest.approx(mean, abs=1e-5)
        assert v["ci"][0] == pytest.approx(lo, abs=1e-4) and v["ci"][1] == pytest.approx(hi, abs=1e-4)
        assert v["depletion_dominated"] is False
    assert set(info["verdicts_by_metric"]) >= {"ref_miscalibration", "ref_minority_ratio",
                                                "distinct_interest_ratio"}


def test_plots_have_ci_bands_and_axes_that_say_what_one_means(twice):
    a, _ = twice
    for metric in METRIC_COLUMNS:
        assert (a / f"{metric}.png").stat().st_size > 1000
    assert (a / "overview.png").exists() and (a / "loop_effect.png").exists()
    for ratio in ("minority_exposure_ratio", "ref_minority_ratio", "distinct_interest_ratio"):
        assert "(1 = proportional)" in LABELS[ratio]
    assert all(metric in LABELS and not LABELS[metric].startswith(metric) for metric in METRIC_COLUMNS)


def test_without_out_nothing_is_written_and_the_tables_are_printed(tmp_path, capsys):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["simulate", *SMALL, "--rounds", "3", "--seeds", "1", "--policy", "organic",
                     "--policy", "topk"]) == 0
    finally:
        os.chdir(cwd)
    assert list(tmp_path.iterdir()) == []
    out = capsys.readouterr()
    assert "verdicts on ref_miscalibration" in out.out and "nothing written" in out.out
    assert "simulate" not in out.err  # no progress bar: stderr is not a terminal here


def test_progress_bar_only_on_an_interactive_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert show_progress(False, Tty())
    assert not show_progress(True, Tty())
    assert not show_progress(False, io.StringIO())


def test_drift_off_leaves_tastes_unchanged_and_no_reconsume_depletes(tmp_path):
    _run(tmp_path, "--policy", "organic", "--policy", "oracle", "--drift", "0", "--rounds", "5",
         "--seeds", "1", "--no-plots", "--no-reconsume")
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert (frame["taste_shift"].abs() < 1e-9).all() and (frame["interest_drift"] == 0).all()
    last = frame[(frame["round"] == 4) & (frame["policy"] == "oracle")]
    assert (last["top50_consumed"] > 0).all()  # the oracle uses up its users' favourites


def test_different_seed_gives_different_metrics(frame, tmp_path):
    _run(tmp_path, "--policy", "topk", "--seed", "13", "--seeds", "1", "--no-plots")
    other = pd.read_csv(tmp_path / "metrics.csv")
    first = frame[(frame["policy"] == "topk") & (frame["seed"] == 11)].reset_index(drop=True)
    assert not np.allclose(first["true_utility"], other["true_utility"])


def test_a_policy_run_does_not_depend_on_the_others_run_with_it(frame, tmp_path):
    _run(tmp_path, "--policy", "calibrated", "--no-plots")
    alone = pd.read_csv(tmp_path / "metrics.csv")
    together = frame[frame["policy"] == "calibrated"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, together)


def test_worker_processes_and_threads_do_not_change_the_results(tmp_path):
    args = ["--policy", "organic", "--policy", "calibrated", "--rounds", "4", "--no-plots"]
    _run(tmp_path / "one", *args, "--threads", "1")
    _run(tmp_path / "two", *args, "--threads", "2")
    _run(tmp_path / "jobs", *args, "--jobs", "2")
    first = (tmp_path / "one" / "metrics.csv").read_bytes()
    assert (tmp_path / "two" / "metrics.csv").read_bytes() == first
    assert (tmp_path / "jobs" / "metrics.csv").read_bytes() == first


@pytest.mark.parametrize("model,train", [("position-tower", "naive"), ("popularity", "ips"),
                                         ("oracle", "naive"), ("als", "ips")])
def test_every_model_and_training_mode_runs(tmp_path, model, train):
    _run(tmp_path, "--model", model, "--train", train, "--rounds", "3", "--seeds", "1",
         "--policy", "topk", "--policy", "calibrated", "--no-plots", "--click-model", "cascade")
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert len(frame) == 2 * 3 * 3
    assert (frame.loc[frame["round"] > 0, "taste_shift"] > 0).all()
    by = frame[frame["group"] == "all"].groupby("policy")["ref_miscalibration"].mean()
    assert by["calibrated"] < by["topk"]


def test_quota_policy_meets_the_floor_of_k_times_the_target(tmp_path):
    _run(tmp_path, "--policy", "quota", "--policy", "topk", "--rounds", "2", "--seeds", "1",
         "--no-plots")
    frame = pd.read_csv(tmp_path / "metrics.csv")
    last = frame[(frame["round"] == 1) & (frame["group"] == "all")].set_index("policy")
    # hard quotas put the users' minority interests on the slate far more often than top-k
    assert last.loc["quota", "minority_collapse_rate"] < last.loc["topk", "minority_collapse_rate"]


def test_bad_option_is_a_clean_error(tmp_path, capsys):
    assert main(["simulate", *SMALL, "--niche-share", "2", "--out", str(tmp_path), "--quiet"]) == 2
    assert "niche_share" in capsys.readouterr().err
    assert main(["simulate", *SMALL, "--seeds", "0", "--quiet"]) == 2
