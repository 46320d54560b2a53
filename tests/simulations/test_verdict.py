"""Loop effects, their CIs over seeds and the verdict rule (rerank.simulations.verdict),
on constructed series and against a slow pure-Python reference."""

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from rerank.simulations.config import SimConfig
from rerank.simulations.verdict import classify, judge, loop_effect_series, mean_ci, slope
from scipy import stats

CFG = SimConfig(verdict_window=10, verdict_margin=0.10, verdict_trend_share=0.25)
ROUNDS = 40
SEEDS = range(5)


def test_mean_ci_hand_case():
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    # sd = sqrt(2.5), t_{0.975, 4} = 2.7764451
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert mean == 3.0
    assert lo == pytest.approx(3.0 - half, abs=1e-6) and hi == pytest.approx(3.0 + half, abs=1e-6)


def test_mean_ci_edge_cases():
    assert math.isnan(mean_ci([2.0])[1]) and mean_ci([2.0])[0] == 2.0
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert mean_ci([1.0, float("nan"), 3.0])[0] == 2.0  # NaN dropped


def test_slope_hand_cases():
    assert slope([1.0, 3.0, 5.0, 7.0]) == pytest.approx(2.0)
    assert slope([4.0, 4.0, 4.0]) == 0.0
    assert slope([1.0]) == 0.0


def _frame(series_by_policy, metric="ref_miscalibration", consumed=0.0, noise=0.01):
    """metrics rows for every seed × policy × group × round; ``series_by_policy[p](t, seed)``."""
    rows = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for policy, f in series_by_policy.items():
            for t in range(ROUNDS):
                for group in ("all", "mainstream", "niche"):
                    value = f(t, seed) + (noise * rng.normal() if policy != "organic" else 0.0)
                    rows.append({"seed": seed, "round": t, "policy": policy, "group": group,
                                 metric: value, "top50_consumed": consumed})
    frame = pd.DataFrame(rows)
    for other in ("ref_minority_ratio", "distinct_interest_ratio", "taste_entropy",
                  "true_utility", "ref_miscalibration"):
        if other not in frame:
            frame[other] = 1.0
    return frame


def _verdict(frame, policy, metric="ref_miscalibration", group="niche"):
    return judge(frame, CFG, metric)[policy][group]


def test_a_flat_series_holds():
    frame = _frame({"organic": lambda t, s: 1.0, "flat": lambda t, s: 1.0})
    v = _verdict(frame, "flat")
    assert v["verdict"] == "holds"
    assert abs(v["loop_effect"]) < 0.02 and v["margin"] == pytest.approx(0.1, rel=0.05)


def test_a_worsening_series_degenerates():
    # miscalibration keeps rising: +0.02 per round, still rising over the last 10 rounds
    frame = _frame({"organic": lambda t, s: 1.0, "sliding": lambda t, s: 1.0 + 0.02 * t})
    v = _verdict(frame, "sliding")
    assert v["verdict"] == "degenerate"
    assert v["loop_effect"] == pytest.approx(0.02 * np.mean(range(30, 40)), abs=0.02)
    assert v["trend"] == pytest.approx(0.02 * 9, abs=0.02)
    assert v["ci"][0] > 0


def test_a_settled_worse_series_is_a_biased_equilibrium():
    frame = _frame({"organic": lambda t, s: 1.0,
                    "settled": lambda t, s: 1.0 + 0.5 * min(t, 15) / 15})
    assert _verdict(frame, "settled")["verdict"] == "biased-equilibrium"


def test_the_baseline_change_is_subtracted():
    # the world drifts by itself (organic rises too): the same rise under a policy holds
    frame = _frame({"organic": lambda t, s: 1.0 + 0.02 * t, "same": lambda t, s: 1.0 + 0.02 * t})
    assert _verdict(frame, "same")["verdict"] == "holds"
    assert "organic" not in judge(frame, CFG, "ref_miscalibration")


def test_an_improving_series_holds_and_direction_follows_the_metric():
    frame = _frame({"organic": lambda t, s: 1.0, "better": lambda t, s: 1.0 - 0.02 * t})
    assert _verdict(frame, "better")["verdict"] == "holds"
    # a ratio (lower is worse) falling the same way degenerates
    ratio = _frame({"organic": lambda t, s: 1.0, "falling": lambda t, s: 1.0 - 0.02 * t},
                   metric="ref_minority_ratio")
    v = _verdict(ratio, "falling", metric="ref_minority_ratio")
    assert v["verdict"] == "degenerate" and v["worse_when"] == "lower"


def test_seeds_that_disagree_are_inconclusive():
    frame = _frame({"organic": lambda t, s: 1.0,
                    "split": lambda t, s: 1.0 + (0.4 if s % 2 else -0.3) * min(t, 5) / 5})
    assert _verdict(frame, "split")["verdict"] == "inconclusive"


def test_one_seed_is_inconclusive():
    frame = _frame({"organic": lambda t, s: 1.0, "sliding": lambda t, s: 1.0 + 0.02 * t})
    one = frame[frame["seed"] == 0]
    v = judge(one, CFG, "ref_miscalibration")["sliding"]["niche"]
    assert v["verdict"] == "inconclusive" and v["seeds"] == 1


def test_depletion_flag():
    frame = _frame({"organic": lambda t, s: 1.0, "flat": lambda t, s: 1.0}, consumed=0.12)
    assert _verdict(frame, "flat")["depletion_dominated"]
    frame = _frame({"organic": lambda t, s: 1.0, "flat": lambda t, s: 1.0}, consumed=0.05)
    assert not _verdict(frame, "flat")["depletion_dominated"]


@pytest.mark.parametrize("effect,trend,expected", [
    ((0.5, 0.3, 0.7), (0.2, 0.1, 0.3), "degenerate"),
    ((0.5, 0.3, 0.7), (0.01, -0.05, 0.07), "biased-equilibrium"),
    ((0.5, 0.3, 0.7), (0.02, 0.01, 0.03), "biased-equilibrium"),  # trend below ¼ margin
    ((0.05, -0.02, 0.08), (0.0, -0.1, 0.1), "holds"),
    ((0.05, 0.01, 0.09), (0.2, 0.1, 0.3), "holds"),  # worse, rising, but within the margin
    ((0.15, -0.2, 0.5), (0.0, -0.1, 0.1), "inconclusive"),
    ((0.08, 0.02, 0.14), (0.0, -0.1, 0.1), "inconclusive"),  # CI reaches past the margin
])
def test_classify_table(effect, trend, expected):
    assert classify(effect, trend, margin=0.1, trend_share=0.25, sign=1.0) == expected
    # the same numbers on a lower-is-worse metric, signs flipped
    flipped = tuple(-v for v in effect)
    assert classify(flipped, tuple(-v for v in trend), 0.1, 0.25, -1.0) == expected


# ------------------------------------------------------------------ reference (hypothesis)
def _reference_effects(rows, metric, window):
    """Per (policy, group): list over seeds of mean(last W of D_t) — plain dict loops."""
    value = {}
    for r in rows:
        value[(r["seed"], r["policy"], r["group"], r["round"])] = r[metric]
    seeds = sorted({r["seed"] for r in rows})
    rounds = sorted({r["round"] for r in rows})
    out = {}
    for policy in sorted({r["policy"] for r in rows} - {"organic"}):
        for group in ("all", "niche"):
            per_seed = []
            for s in seeds:
                d = [(value[(s, policy, group, t)] - value[(s, policy, group, 0)])
                     - (value[(s, "organic", group, t)] - value[(s, "organic", group, 0)])
                     for t in rounds]
                tail = d[-window:]
                per_seed.append(sum(tail) / len(tail))
            out[(policy, group)] = per_seed
    return out


@settings(max_examples=examples(25), deadline=None)
@given(st.data())
def test_loop_effects_and_cis_match_the_reference(data):
    n_seeds = data.draw(st.integers(2, 4))
    n_rounds = data.draw(st.integers(3, 12))
    window = data.draw(st.integers(2, 15))
    policies = ["organic", "a", "b"][: data.draw(st.integers(2, 3))]
    values = st.floats(0, 3, allow_nan=False)
    rows = [{"seed": s, "round": t, "policy": p, "group": g, "ref_miscalibration": data.draw(values),
             "top50_consumed": 0.0}
            for s in range(n_seeds) for p in policies for t in range(n_rounds)
            for g in ("all", "niche")]
    frame = pd.DataFrame(rows)
    out = judge(frame, SimConfig(verdict_window=window), "ref_miscalibration")
    reference = _reference_effects(rows, "ref_miscalibration", min(window, n_rounds))
    for (policy, group), per_seed in reference.items():
        got = out[policy][group]
        mean = statistics.fmean(per_seed)
        sd = statistics.stdev(per_seed)
        half = stats.t.ppf(0.975, len(per_seed) - 1) * sd / math.sqrt(len(per_seed))
        assert got["loop_effect"] == pytest.approx(mean, abs=1e-9)
        assert got["ci"][0] == pytest.approx(mean - half, abs=1e-9)
        assert got["ci"][1] == pytest.approx(mean + half, abs=1e-9)
    series = loop_effect_series(frame, "ref_miscalibration")
    assert (series.loc[series["round"] == 0, "effect"] == 0).all()
