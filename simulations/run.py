"""The feedback loop (DESIGN §7, issue 11): one independent run per policy and seed.

Before the loop every user has an organic history (``organic_per_user`` items drawn
∝ ``rel``, :func:`rerank.simulations.world.sample_organic`); the round-0 truth ``π⁰`` and
taste ``θ⁰`` are the fixed reference of the ``ref_*`` metrics. Then, each round ``t``:

1. the model is retrained on the whole log every ``retrain_every`` rounds (``topk-frozen``:
   only at round 0; ``oracle`` reads the current tastes; ``organic`` has no model);
2. the model returns the top ``n_candidates`` available items per user (consumed items left
   out only when re-consumption is off);
3. the policy builds each user's slate through the reranking kernel, the last
   ``fresh_slots`` slots showing fresh arrivals (:mod:`rerank.simulations.policies`);
4. users click (click model, noise) — only shown items can be clicked;
5. metrics are measured (against the current truth and the round-0 reference);
6. the slates, clicks, non-clicks, positions and propensities are logged;
7. tastes drift toward attitude clicks and, optionally, toward exposure
   (:mod:`rerank.simulations.dynamics`), and ``π`` is recomputed;
8. ``new_items_per_round`` items arrive.

Random numbers come from streams keyed by (seed, purpose, round), shared by all policies:
same seed, same world, same click noise, whatever policies run together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from rerank.simulations.clicks import examination_curve, simulate_clicks
from rerank.simulations.config import SimConfig
from rerank.simulations.dynamics import click_drift, exposure_drift
from rerank.simulations.log import InteractionLog
from rerank.simulations.metrics import (
    DETAIL_COLUMNS,
    GROUPS,
    METRIC_COLUMNS,
    RoundInputs,
    exposure_distribution,
    group_masks,
    round_metrics,
    sample_pairs,
)
from rerank.simulations.models import LoopModel, OracleModel, make_model
from rerank.simulations.policies import (
    PolicySpec,
    anchored_targets,
    check_policy,
    make_slates,
    organic_slates,
    policy_targets,
)
from rerank.simulations.rng import stream
from rerank.simulations.world import World, make_world, sample_organic, true_share

KEY_COLUMNS = ("seed", "round", "policy", "group")


@dataclass
class PolicyRun:
    """Per-round rows of one policy and seed, and its end-of-run consumption per group."""

    policy: str
    metrics: list[dict]
    details: list[dict]
    consumption: dict


def top_unconsumable(world: World, theta: np.ndarray, consumed: sp.csr_matrix | None,
                     n_available: int, top: int) -> np.ndarray:
    """Per user: share of the ``top`` most relevant available items (under ``theta``) that
    the user can no longer consume (``consumed``; ``None`` = re-consumption on: all zero)."""
    out = np.zeros(world.n_users)
    if consumed is None or consumed.nnz == 0:
        return out
    top = min(top, n_available)
    for start in range(0, world.n_users, 1024):
        block = slice(start, min(start + 1024, world.n_users))
        rel = world.relevance_block(theta[block], n_available)
        best = np.argpartition(-rel, top - 1, axis=1)[:, :top]
        hits = np.take_along_axis(consumed[block].toarray(), best, axis=1)
        out[block] = hits.sum(axis=1) / top
    return out


def consumption_report(log: InteractionLog, world: World, theta: np.ndarray,
                       n_available: int, top: int, reconsume: bool) -> dict:
    """How much of the catalogue users used (DESIGN §7.1, depletion), per group, means over
    users: ``dominant_consumed`` (distinct consumed mass of the dominant category / its
    supply), ``minority_consumed`` (the same over the minority interests),
    ``top50_ever_consumed`` (share of the ``top`` most relevant available items consumed at
    least once) and ``top50_consumed`` (share no longer consumable: the depletion measure;
    0 when re-consumption is on)."""
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
    ever = top_unconsumable(world, theta, consumed, n_available, top)
    gone = np.zeros(world.n_users) if reconsume else ever
    out = {}
    for name, mask in group_masks(world.group).items():
        if mask.any():
            out[name] = {
                "dominant_consumed": round(float(dominant[mask].mean()), 6),
                "minority_consumed": round(float(minority[mask].mean()), 6),
                "top50_ever_consumed": round(float(ever[mask].mean()), 6),
                "top50_consumed": round(float(gone[mask].mean()), 6),
            }
    return out


class Truth:
    """The organic true share ``π_u`` over the items each user can still consume."""

    def __init__(self, world: World, reconsume: bool):
        self.world = world
        self.reconsume = reconsume

    def share(self, theta: np.ndarray, n_available: int,
              consumed: sp.csr_matrix | None) -> np.ndarray:
        mass = self.world.organic_mass(theta, 0, n_available)
        if not self.reconsume and consumed is not None and consumed.nnz:
            mass = np.maximum(mass - self.world.consumed_mass(theta, consumed), 0.0)
        return true_share(mass)


def _fit_round(spec: PolicySpec, config: SimConfig, t: int) -> bool:
    return t == 0 or (spec.retrain and t % config.retrain_every == 0)


def run_policy(world: World, policy: str, organic: tuple[np.ndarray, np.ndarray],
               pairs: dict, on_round: Callable[[], None] | None = None) -> PolicyRun:
    """Simulate ``n_rounds`` rounds of one policy on ``world`` (one seed)."""
    cfg = world.config
    spec = check_policy(policy)
    k = cfg.slate_size
    exam = examination_curve(cfg.eta, k)
    log = InteractionLog()
    log.add_organic(*organic)
    model: LoopModel | None = None
    if spec.model is not None:
        model = make_model(world, cfg, "oracle" if spec.model == "oracle" else None)
    anchored = anchored_targets(log, world.n_users, world.item_csr)
    truth = Truth(world, cfg.reconsume)
    theta = world.theta0.copy()
    users = np.arange(world.n_users)
    metric_rows, detail_rows = [], []
    pi0 = None
    for t in range(cfg.n_rounds):
        n_avail = world.n_available(t)
        consumed = None if cfg.reconsume else log.consumed(world.n_users, n_avail)
        pi = truth.share(theta, n_avail, consumed)
        if pi0 is None:
            pi0 = pi
        estimate = policy_targets(spec, log, world.n_users, world.item_csr, cfg, anchored)
        if model is None:
            slates = organic_slates(world, theta, n_avail, k, consumed,
                                    stream(cfg.seed, "organic-slates", t))
        else:
            if isinstance(model, OracleModel):
                model.theta = theta
            if _fit_round(spec, cfg, t):
                model.fit(log, n_avail, t)
            cand = model.candidates(consumed, n_avail, cfg.n_candidates)
            slates = make_slates(spec, cand, world.item_csr, estimate, exam, cfg, consumed,
                                 n_avail, stream(cfg.seed, "explore", t))
        rel = world.relevance_pairs(theta, users[:, None], slates)
        clicks = simulate_clicks(rel, cfg.click_model, cfg.eta, stream(cfg.seed, "clicks", t),
                                 cfg.noise_share, cfg.noise_click_prob)
        metrics, details = round_metrics(RoundInputs(
            slates=slates, clicked=clicks.clicked, rel=rel, pi=pi, pi0=pi0, estimate=estimate,
            theta=theta, theta0=world.theta0, minority_mask=world.minority_mask,
            dominant=world.dominant, group=world.group, categories=world.item_csr, exam=exam,
            n_available=n_avail, pairs=pairs, collapse_threshold=cfg.collapse_threshold,
            top_consumed=top_unconsumable(world, theta, consumed, n_avail, cfg.top_relevant),
        ))
        for group in GROUPS:
            key = {"seed": cfg.seed, "round": t, "policy": policy, "group": group}
            metric_rows.append({**key, **metrics[group]})
            detail_rows.append({**key, **details[group]})
        log.add_round(t, slates, clicks.clicked, clicks.propensity)
        theta = click_drift(theta, slates, clicks.attitude, world.item_categories,
                            cfg.drift_rate)
        if cfg.exposure_drift_rate > 0:
            q = exposure_distribution(slates, world.item_csr, exam)
            theta = exposure_drift(theta, q, cfg.exposure_drift_rate)
        if on_round is not None:
            on_round()
    end = world.n_available(cfg.n_rounds - 1)
    return PolicyRun(policy, metric_rows, detail_rows,
                     consumption_report(log, world, theta, end, cfg.top_relevant, cfg.reconsume))


@dataclass
class SimulationResult:
    """Every policy × seed of one run. ``metrics``/``details`` rows are sorted by
    (seed, policy, round, group); ``consumption[seed][policy]`` per group; ``worlds`` by seed."""

    config: SimConfig
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    metrics: pd.DataFrame
    details: pd.DataFrame
    consumption: dict
    worlds: dict

    @property
    def world(self) -> World:
        """The world of the first seed."""
        return self.worlds[self.seeds[0]]


def seed_list(first: int, n_seeds: int) -> tuple[int, ...]:
    """``first, first+1, …, first+n_seeds-1``."""
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    return tuple(range(first, first + n_seeds))


def simulate(config: SimConfig, policies: Sequence[str] = ("organic", "topk", "calibrated"),
             seeds: Sequence[int] | None = None,
             on_round: Callable[[], None] | None = None) -> SimulationResult:
    """Run every policy on the same world, for each seed (default: ``config.seed`` only)."""
    policies = tuple(dict.fromkeys(policies))
    if not policies:
        raise ValueError("give at least one policy")
    for policy in policies:
        check_policy(policy)
    seeds = (config.seed,) if seeds is None else tuple(dict.fromkeys(int(s) for s in seeds))
    metric_rows, detail_rows, consumption, worlds = [], [], {}, {}
    for seed in seeds:
        cfg = config.with_(seed=seed)
        world = make_world(cfg)
        organic = sample_organic(world, world.theta0, cfg.organic_per_user, world.n_available(0))
        rng = stream(seed, "pairs")
        pairs = {name: sample_pairs(mask, cfg.homogenization_pairs, rng)
                 for name, mask in group_masks(world.group).items()}
        for policy in policies:
            run = run_policy(world, policy, organic, pairs, on_round)
            metric_rows.extend(run.metrics)
            detail_rows.extend(run.details)
            consumption.setdefault(seed, {})[policy] = run.consumption
        worlds[seed] = world
    metrics = _frame(metric_rows, METRIC_COLUMNS, policies)
    details = _frame(detail_rows, DETAIL_COLUMNS, policies)
    return SimulationResult(config, policies, seeds, metrics, details, consumption, worlds)


def _frame(rows: list[dict], columns, policies) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*KEY_COLUMNS, *columns])
    frame["policy"] = pd.Categorical(frame["policy"], categories=list(policies), ordered=True)
    frame["group"] = pd.Categorical(frame["group"], categories=list(GROUPS), ordered=True)
    frame = frame.sort_values(["seed", "policy", "round", "group"], kind="mergesort")
    frame = frame.reset_index(drop=True)
    frame["policy"] = frame["policy"].astype(str)
    frame["group"] = frame["group"].astype(str)
    return frame

