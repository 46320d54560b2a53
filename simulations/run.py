"""The feedback loop (docs/design.md §7): one independent run per policy on the same world.

Before the loop every user has an organic history (``organic_per_user`` items drawn
∝ ``rel``, :func:`rerank.simulations.world.sample_organic`). Then, each round ``t``:

1. every ``retrain_every`` rounds the model is retrained on the whole log;
2. the model returns the top ``n_candidates`` available, unconsumed items per user;
3. the policy builds each user's slate through the reranking kernel;
4. users click (click model, noise) — only shown items can be clicked;
5. metrics are measured against the *current* true interests;
6. the slates, clicks, non-clicks, positions and propensities are logged;
7. with ``drift_rate = δ > 0``, users who clicked move their taste toward what they clicked:
   ``θ_u ← (1-δ) θ_u + δ · c_u`` with ``c_u`` the category distribution of this round's
   clicks (Jiang et al. 2019), and ``π_u`` is recomputed;
8. ``new_items_per_round`` items arrive (and enter ``π_u``).

Random numbers come from streams keyed by (seed, purpose, round), shared by all policies:
same seed, same world, same click noise, whatever policies run together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rerank.simulations.clicks import examination_curve, simulate_clicks
from rerank.simulations.config import SimConfig
from rerank.simulations.log import InteractionLog
from rerank.simulations.metrics import (
    DETAIL_COLUMNS,
    GROUPS,
    METRIC_COLUMNS,
    RoundInputs,
    group_masks,
    round_metrics,
    sample_pairs,
)
from rerank.simulations.models import OracleModel, make_model
from rerank.simulations.policies import check_policy, history_targets, make_slates, target_mode
from rerank.simulations.rng import stream
from rerank.simulations.world import World, make_world, sample_organic, true_share


@dataclass
class PolicyRun:
    """Per-round rows of one policy and its end-of-run consumption per category."""

    policy: str
    metrics: list[dict]
    details: list[dict]
    consumption: dict


def _drift(theta: np.ndarray, slates: np.ndarray, clicked: np.ndarray, world: World,
           rate: float) -> np.ndarray:
    """``θ ← (1-δ) θ + δ c_u`` for users who clicked; ``c_u`` their clicks' category mix."""
    mass = np.zeros_like(theta)
    users, slots = np.nonzero(clicked)
    np.add.at(mass, users, world.item_categories[slates[users, slots]])
    totals = mass.sum(axis=1)
    moved = totals > 0
    theta = theta.copy()
    theta[moved] = (1.0 - rate) * theta[moved] + rate * mass[moved] / totals[moved, None]
    return theta


def consumption_report(log: InteractionLog, world: World, theta: np.ndarray,
                       n_available: int, top: int = 50) -> dict:
    """How much of the catalogue users used up by the end (docs/design.md §7.1, depletion).

    Per group, means over users of: ``dominant_consumed``, consumed mass of the user's
    dominant category / its supply (``Σ_i p(g|i)`` over available items);
    ``minority_consumed``, the same over the user's minority interests; ``top_consumed``, the
    share of the user's ``top`` most relevant available items (under the final interests)
    already consumed — near 1 would mean the loop ran out of what the user likes best.
    """
    consumed = log.consumed(world.n_users, n_available)
    cats = world.item_categories[:n_available]
    mass = consumed @ cats
    supply = cats.sum(axis=0)
    share = mass / np.where(supply > 0, supply, 1.0)[None, :]
    rows = np.arange(world.n_users)
    dominant = share[rows, world.dominant]
    minority = np.divide(
        np.where(world.minority_mask, mass, 0.0).sum(axis=1),
        np.where(world.minority_mask, supply[None, :], 0.0).sum(axis=1),
        out=np.zeros(world.n_users), where=world.minority_mask.any(axis=1),
    )
    top_share = np.zeros(world.n_users)
    step = 1024
    for start in range(0, world.n_users, step):
        block = slice(start, min(start + step, world.n_users))
        rel = world.relevance_block(theta[block], n_available)
        best = np.argpartition(-rel, top - 1, axis=1)[:, :top]
        hits = np.take_along_axis(consumed[block].toarray(), best, axis=1)
        top_share[block] = hits.sum(axis=1) / top
    out = {}
    for name, mask in group_masks(world.group).items():
        if mask.any():
            out[name] = {
                "dominant_consumed": round(float(dominant[mask].mean()), 6),
                "minority_consumed": round(float(minority[mask].mean()), 6),
                f"top{top}_consumed": round(float(top_share[mask].mean()), 6),
            }
    return out


def run_policy(world: World, policy: str, organic: tuple[np.ndarray, np.ndarray],
               pairs: dict, on_round: Callable[[], None] | None = None) -> PolicyRun:
    """Simulate ``n_rounds`` rounds of one policy."""
    cfg = world.config
    check_policy(policy)
    k = cfg.slate_size
    exam = examination_curve(cfg.eta, k)
    log = InteractionLog()
    log.add_organic(*organic)
    model = make_model(world, cfg)
    theta = world.theta0.copy()
    n_avail = world.n_available(0)
    mass = world.organic_mass(theta, 0, n_avail)
    users = np.arange(world.n_users)
    mode = target_mode(policy)
    metric_rows, detail_rows = [], []
    for t in range(cfg.n_rounds):
        n_avail = world.n_available(t)
        if isinstance(model, OracleModel):
            model.theta = theta
        if t % cfg.retrain_every == 0:
            model.fit(log, n_avail, t)
        consumed = log.consumed(world.n_users, n_avail)
        cand = model.candidates(consumed, n_avail, cfg.n_candidates)
        targets = history_targets(log, world.n_users, world.item_csr, mode, cfg.ips_clip)
        slates = make_slates(policy, cand, world.item_csr, targets, exam, cfg, consumed, n_avail,
                             stream(cfg.seed, "explore", t))
        rel = world.relevance_pairs(theta, users[:, None], slates)
        clicked, propensity = simulate_clicks(
            rel, cfg.click_model, cfg.eta, stream(cfg.seed, "clicks", t), cfg.noise_share,
            cfg.noise_click_prob,
        )
        metrics, details = round_metrics(RoundInputs(
            slates=slates, clicked=clicked, rel=rel, pi=true_share(mass), estimate=targets,
            theta=theta, theta0=world.theta0, minority_mask=world.minority_mask,
            dominant=world.dominant, group=world.group, categories=world.item_csr, exam=exam,
            n_available=n_avail, pairs=pairs, collapse_threshold=cfg.collapse_threshold,
        ))
        for group in GROUPS:
            metric_rows.append({"round": t, "policy": policy, "group": group, **metrics[group]})
            detail_rows.append({"round": t, "policy": policy, "group": group, **details[group]})
        log.add_round(t, slates, clicked, propensity)
        n_next = world.n_available(t + 1)
        if cfg.drift_rate > 0:
            theta = _drift(theta, slates, clicked, world, cfg.drift_rate)
            mass = world.organic_mass(theta, 0, n_next)
        else:
            mass = mass + world.organic_mass(theta, n_avail, n_next)
        if on_round is not None:
            on_round()
    return PolicyRun(policy, metric_rows, detail_rows,
                     consumption_report(log, world, theta, world.n_available(cfg.n_rounds - 1)))


@dataclass
class SimulationResult:
    config: SimConfig
    policies: tuple[str, ...]
    metrics: pd.DataFrame
    details: pd.DataFrame
    consumption: dict
    world: World


def simulate(config: SimConfig, policies=("topk", "calibrated"),
             on_round: Callable[[], None] | None = None) -> SimulationResult:
    """Run every policy on the same world; rows sorted by (policy, round, group)."""
    policies = tuple(dict.fromkeys(policies))
    if not policies:
        raise ValueError("give at least one policy")
    for policy in policies:
        check_policy(policy)
    world = make_world(config)
    organic = sample_organic(world, world.theta0, config.organic_per_user, world.n_available(0))
    rng = stream(config.seed, "pairs")
    pairs = {name: sample_pairs(mask, config.homogenization_pairs, rng)
             for name, mask in group_masks(world.group).items()}
    runs = [run_policy(world, p, organic, pairs, on_round) for p in policies]
    metrics = _frame([r for run in runs for r in run.metrics], METRIC_COLUMNS, policies)
    details = _frame([r for run in runs for r in run.details], DETAIL_COLUMNS, policies)
    return SimulationResult(config, policies, metrics, details,
                            {run.policy: run.consumption for run in runs}, world)


def _frame(rows: list[dict], columns, policies) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["round", "policy", "group", *columns])
    frame["policy"] = pd.Categorical(frame["policy"], categories=list(policies), ordered=True)
    frame["group"] = pd.Categorical(frame["group"], categories=list(GROUPS), ordered=True)
    frame = frame.sort_values(["policy", "round", "group"], kind="mergesort").reset_index(drop=True)
    frame["policy"] = frame["policy"].astype(str)
    frame["group"] = frame["group"].astype(str)
    return frame
