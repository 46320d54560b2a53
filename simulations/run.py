"""The feedback loop (docs/design.md §7, issue 11): one independent run per policy and seed.

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
from rerank.simulations.world import (
    RoundRelevance,
    World,
    make_world,
    sample_organic,
    true_share,
)

KEY_COLUMNS = ("seed", "round", "policy", "group")


@dataclass
class PolicyRun:
    """Per-round rows of one policy and seed, and its end-of-run consumption per group."""

    policy: str
    metrics: list[dict]
    details: list[dict]
    consumption: dict


def top_unconsumable(relevance: RoundRelevance, consumed: sp.csr_matrix | None,
                     top: int) -> np.ndarray:
    """Per user: share of the ``top`` most relevant available items that the user can no
    longer consume (``consumed``; ``None`` = re-consumption on: all zero)."""
    out = np.zeros(relevance.world.n_users)
    if consumed is None or consumed.nnz == 0:
        return out
    top = min(top, relevance.n_items)
    for rows, rel in relevance.blocks():
        best = np.argpartition(-rel, top - 1, axis=1)[:, :top]
        hits = np.take_along_axis(consumed[rows].toarray(), best, axis=1)
        out[rows] = hits.sum(axis=1) / top
    return out


def consumption_report(log: InteractionLog, world: World, theta: np.ndarray,
                       n_available: int, top: int, reconsume: bool) -> dict:
    """How much of the catalogue users used (docs/design.md §7.1, depletion), per group, means over
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
    ever = top_unconsumable(RoundRelevance(world, theta, n_available), consumed, top)
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


def organic_share(relevance: RoundRelevance, consumed: sp.csr_matrix | None) -> np.ndarray:
    """``π_u ∝ Σ_{i consumable} rel(u,i) p(·|i)``: every available item, less the consumed
    ones when re-consumption is off (``consumed`` given)."""
    mass = relevance.organic_mass()
    if consumed is not None and consumed.nnz:
        mass = np.maximum(mass - relevance.world.consumed_mass(relevance.theta, consumed), 0.0)
    return true_share(mass)


def _fit_round(spec: PolicySpec, config: SimConfig, t: int) -> bool:
    return t == 0 or (spec.retrain and t % config.retrain_every == 0)


def run_policy(world: World, policy: str, organic: tuple[np.ndarray, np.ndarray],
               pairs: dict, on_round: Callable[[], None] | None = None) -> PolicyRun:
    """Simulate ``n_rounds`` rounds of one policy on ``world`` (one seed).

    BLAS runs single-threaded inside the loop: its products are small (users × G or × the
    factors), and its idle threads would compete with implicit's and the kernel's.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        return _run_policy(world, policy, organic, pairs, on_round)


def _run_policy(world: World, policy: str, organic: tuple[np.ndarray, np.ndarray],
                pairs: dict, on_round: Callable[[], None] | None) -> PolicyRun:
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
    theta = world.theta0.copy()
    users = np.arange(world.n_users)
    metric_rows, detail_rows = [], []
    pi0 = None
    for t in range(cfg.n_rounds):
        n_avail = world.n_available(t)
        consumed = None if cfg.reconsume else log.consumed(world.n_users, n_avail)
        relevance = RoundRelevance(world, theta, n_avail)
        pi = organic_share(relevance, consumed)
        if pi0 is None:
            pi0 = pi
        estimate = policy_targets(spec, log, world.n_users, world.item_csr, cfg, anchored)
        if model is None:
            slates = organic_slates(relevance, k, consumed, stream(cfg.seed, "organic-slates", t))
        else:
            if isinstance(model, OracleModel):
                model.relevance = relevance
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
            top_consumed=top_unconsumable(relevance, consumed, cfg.top_relevant),
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


@dataclass
class Seeded:
    """A seed's world, organic history and homogenisation pairs (shared by its policies)."""

    world: World
    organic: tuple[np.ndarray, np.ndarray]
    pairs: dict

    @classmethod
    def make(cls, config: SimConfig, seed: int) -> Seeded:
        cfg = config.with_(seed=seed)
        world = make_world(cfg)
        organic = sample_organic(world, world.theta0, cfg.organic_per_user, world.n_available(0))
        rng = stream(seed, "pairs")
        pairs = {name: sample_pairs(mask, cfg.homogenization_pairs, rng)
                 for name, mask in group_masks(world.group).items()}
        return cls(world, organic, pairs)


def run_task(config: SimConfig, seed: int, policy: str) -> tuple[PolicyRun, World]:
    """One (seed, policy) pair from scratch: what a worker process runs."""
    seeded = Seeded.make(config, seed)
    return run_policy(seeded.world, policy, seeded.organic, seeded.pairs), seeded.world


def default_jobs(n_tasks: int) -> int:
    """``min(CPUs, tasks)``: the worker processes ``jobs=0`` (auto) starts."""
    import os

    return max(1, min(os.cpu_count() or 1, n_tasks))


def simulate(config: SimConfig, policies: Sequence[str] = ("organic", "topk", "calibrated"),
             seeds: Sequence[int] | None = None, on_round: Callable[[], None] | None = None,
             jobs: int = 1, on_task: Callable[[], None] | None = None) -> SimulationResult:
    """Run every policy on the same world, for each seed (default: ``config.seed`` only).

    The (seed, policy) runs are independent: ``jobs > 1`` runs them in that many worker
    processes (``spawn``), ``jobs = 0`` in :func:`default_jobs` processes; each uses
    ``config.n_threads`` threads (default 1) for the kernel and ALS. The result is the same
    row for row whatever ``jobs`` and the thread count. ``on_round`` is
    called after every round (one job only), ``on_task`` after every finished (seed, policy).
    """
    policies = tuple(dict.fromkeys(policies))
    if not policies:
        raise ValueError("give at least one policy")
    for policy in policies:
        check_policy(policy)
    seeds = (config.seed,) if seeds is None else tuple(dict.fromkeys(int(s) for s in seeds))
    tasks = [(seed, policy) for seed in seeds for policy in policies]
    jobs = default_jobs(len(tasks)) if jobs == 0 else min(jobs, len(tasks))
    runs, worlds = {}, {}
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {task: pool.submit(run_task, config, *task) for task in tasks}
            for task, future in futures.items():
                runs[task], worlds[task[0]] = future.result()
                if on_task is not None:
                    on_task()
    else:
        for seed in seeds:
            seeded = Seeded.make(config, seed)
            worlds[seed] = seeded.world
            for policy in policies:
                runs[seed, policy] = run_policy(seeded.world, policy, seeded.organic,
                                                seeded.pairs, on_round)
                if on_task is not None:
                    on_task()
    ordered = [runs[task] for task in tasks]
    metrics = _frame([r for run in ordered for r in run.metrics], METRIC_COLUMNS, policies)
    details = _frame([r for run in ordered for r in run.details], DETAIL_COLUMNS, policies)
    consumption = {seed: {p: runs[seed, p].consumption for p in policies} for seed in seeds}
    return SimulationResult(config, policies, seeds, metrics, details, consumption,
                            {seed: worlds[seed] for seed in seeds})


def _frame(rows: list[dict], columns, policies) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*KEY_COLUMNS, *columns])
    frame["policy"] = pd.Categorical(frame["policy"], categories=list(policies), ordered=True)
    frame["group"] = pd.Categorical(frame["group"], categories=list(GROUPS), ordered=True)
    frame = frame.sort_values(["seed", "policy", "round", "group"], kind="mergesort")
    frame = frame.reset_index(drop=True)
    frame["policy"] = frame["policy"].astype(str)
    frame["group"] = frame["group"].astype(str)
    return frame

