"""Slate policies and the two controls. Every recommender policy ends in the one reranking
kernel, :func:`rerank.rerank_lists` (the model's :class:`rerank.CandidateLists` in).

A slate has ``k`` slots: the policy fills the first ``k - f`` from the model's candidates and
the last ``f = fresh_slots`` show fresh arrivals (below). Policies (:data:`POLICY_SPECS`):

* ``organic`` (control): no recommender. Each slate is ``k`` distinct items drawn in
  proportion to true relevance ``rel(u,i)`` over the items the user can consume, slot order
  = draw order (successive sampling without replacement).
  The world without a recommender; every loop effect is measured against it.
* ``oracle`` (control): top-k by true relevance under the users' current tastes.
* ``topk``: the model's top ``k - f`` (the kernel with ``λ = 0``, exactly top-k by score).
* ``topk-frozen`` (control): the same, with the model trained once on the organic history
  and never retrained: what the loop adds by retraining on its own logs.
* ``calibrated``: Steck's calibrated reranking with trade-off ``λ``, target ``p̂(g|u)`` from
  the *logged* history (organic + every click, Steck eq. 1,
  :func:`rerank.distributions.target_distributions`), scores min-max normalised per user,
  rank weights = the examination curve ``w_r = (1/r)^η`` (it calibrates *exposure*).
* ``calibrated-anchored``: the same with the target from the pre-loop (organic) history only.
* ``calibrated-blend``: target ``b · anchored + (1-b) · logged`` (``blend_weight = b``).
* ``calibrated-debiased``: target from the IPS-weighted logged history.
* ``quota``: ``calibrated`` plus hard quotas (``RerankOptions(min_share=True)``,
  docs/design.md §4.3).
* ``epsilon``: top-k, then each model slot with probability ε is replaced by a uniformly drawn
  available item not on the slate (and not consumed when re-consumption is off).

**Fresh slots.** The last ``fresh_slots`` slots of every recommender slate (all policies but
``organic``, whose draws reach new items anyway) show items drawn uniformly from the
``fresh_pool`` newest available items, not on the slate (and not consumed when re-consumption
is off): arrivals reach users even before the model has learned them (Chaney et al. 2018
interleave new items into recommendations; T-RECS' ``random_items_per_iter``). The slot is
fixed, not random, so that the calibrated policies' exposure weights stay exact.

Each recommender policy's reranking is one :class:`rerank.RerankOptions`
(:func:`policy_options`), passed to the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from rerank.simulations.config import SimConfig
from rerank.simulations.log import InteractionLog
from rerank.simulations.world import RoundRelevance, successive_sample

from rerank import CandidateLists, RerankOptions, rerank_lists
from rerank.distributions import population_distribution, target_distributions
from rerank.errors import InputError

TARGETS = ("naive", "ips", "anchored", "blend")


@dataclass(frozen=True)
class PolicySpec:
    """What a policy is made of.

    ``model``: ``None`` (no model: organic), ``"oracle"``, or ``"loop"`` (``config.model``);
    ``retrain``: retrained every ``retrain_every`` rounds, or trained once at round 0;
    ``calibrated``: λ = ``config.lam`` (else λ = 0, top-k); ``target``: which history the
    calibration target (and the system's interest estimate) comes from; ``min_share``: hard
    quotas; ``explore``: ε-exploration.
    """

    model: str | None = "loop"
    retrain: bool = True
    calibrated: bool = False
    target: str = "naive"
    min_share: bool = False
    explore: bool = False


POLICY_SPECS = {
    "organic": PolicySpec(model=None),
    "oracle": PolicySpec(model="oracle"),
    "topk": PolicySpec(),
    "topk-frozen": PolicySpec(retrain=False),
    "calibrated": PolicySpec(calibrated=True),
    "calibrated-anchored": PolicySpec(calibrated=True, target="anchored"),
    "calibrated-blend": PolicySpec(calibrated=True, target="blend"),
    "calibrated-debiased": PolicySpec(calibrated=True, target="ips"),
    "quota": PolicySpec(calibrated=True, min_share=True),
    "epsilon": PolicySpec(explore=True),
}
POLICIES = tuple(POLICY_SPECS)


def check_policy(name: str) -> PolicySpec:
    if name not in POLICY_SPECS:
        raise InputError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    return POLICY_SPECS[name]


def policy_options(spec: PolicySpec, config: SimConfig, exam: np.ndarray) -> RerankOptions:
    """The reranking of a recommender policy: the model slots, λ = ``config.lam`` when
    calibrated (else 0: top-k), scores min-max normalised, rank weights = the examination
    curve of those slots, hard quotas for ``quota``."""
    k = config.model_slots
    return RerankOptions(k=k, lam=config.lam if spec.calibrated else 0.0, rank_weights=exam[:k],
                         normalize="minmax", min_share=spec.min_share)


def _targets_from(users, items, weights, n_users, categories) -> np.ndarray:
    """``p̂(g|u) = Σ w p(g|i) / Σ w``; users without mass get the population mean (as
    :class:`rerank.CalibratedReranker`)."""
    targets, has_mass = target_distributions(users, items, weights, n_users, categories)
    targets[~has_mass] = population_distribution(targets, has_mass)
    return targets


def history_targets(log: InteractionLog, n_users: int, categories: sp.csr_matrix, mode: str,
                    clip: float) -> np.ndarray:
    """Target from the logged history: organic + every click (naive ``w = 1`` or clipped
    IPS ``w = min(1/propensity, clip)``)."""
    users, items, weights = log.clicks(mode, clip)
    return _targets_from(users, items, weights, n_users, categories)


def anchored_targets(log: InteractionLog, n_users: int, categories: sp.csr_matrix) -> np.ndarray:
    """Target from the pre-loop (organic) history only."""
    users, items = log.organic()
    return _targets_from(users, items, np.ones(users.size), n_users, categories)


def policy_targets(spec: PolicySpec, log: InteractionLog, n_users: int,
                   categories: sp.csr_matrix, config: SimConfig,
                   anchored: np.ndarray) -> np.ndarray:
    """The calibration target of ``spec`` this round (``anchored``: the organic target)."""
    if spec.target == "anchored":
        return anchored
    if spec.target == "ips":
        return history_targets(log, n_users, categories, "ips", config.ips_clip)
    logged = history_targets(log, n_users, categories, "naive", config.ips_clip)
    if spec.target == "blend":
        b = config.blend_weight
        return b * anchored + (1.0 - b) * logged
    return logged


def _rerank(cand: CandidateLists, categories, targets, options: RerankOptions, n_threads) -> np.ndarray:
    """Each user's ``options.k`` items, reranked by the one kernel (a full list per user)."""
    k = options.k
    lengths = cand.lengths()
    if lengths.min(initial=k) < k:
        user = int(np.argmax(lengths < k))
        raise InputError(
            f"user {user} has only {lengths[user]} candidates for {k} slots: the catalogue is "
            "too small for this run (raise n_items or new_items_per_round)"
        )
    result = rerank_lists(cand, categories, targets, options, n_threads=n_threads)
    return result.items.reshape(-1, k)


def fill_uniform(slates: np.ndarray, users: np.ndarray, slots: np.ndarray, lo: int, hi: int,
                 exclude: sp.csr_matrix | None, rng: np.random.Generator,
                 max_tries: int = 50) -> np.ndarray:
    """Put in each position ``(users[j], slots[j])`` an item drawn uniformly from rows
    ``lo .. hi-1``, not on that user's slate (nor drawn for another of its positions) and not
    in ``exclude``; rejection sampling, vectorised over positions. A position whose draws all
    fail keeps its item (``-1`` marks an empty position, which then stays empty)."""
    slates = slates.copy()
    pending = np.arange(users.size)
    for _ in range(max_tries):
        if pending.size == 0:
            break
        draws = rng.integers(lo, hi, pending.size)
        u = users[pending]
        bad = (slates[u] == draws[:, None]).any(axis=1)
        if exclude is not None:
            bad |= np.asarray(exclude[u, draws]).ravel() > 0
        # two positions of one user drawing the same item: keep the first only
        key = u.astype(np.int64) * hi + draws
        _, first = np.unique(key, return_index=True)
        dup = np.ones(pending.size, dtype=bool)
        dup[first] = False
        ok = ~bad & ~dup
        slates[u[ok], slots[pending[ok]]] = draws[ok]
        pending = pending[~ok]
    return slates


def explore(slates: np.ndarray, epsilon: float, exclude: sp.csr_matrix | None, n_available: int,
            rng: np.random.Generator) -> np.ndarray:
    """Replace each slot with probability ε by a uniform available item (:func:`fill_uniform`)."""
    users, slots = np.nonzero(rng.random(slates.shape) < epsilon)
    return fill_uniform(slates, users, slots, 0, n_available, exclude, rng)


def add_fresh(slates: np.ndarray, n_fresh: int, pool: int, exclude: sp.csr_matrix | None,
              n_available: int, rng: np.random.Generator) -> np.ndarray:
    """Append ``n_fresh`` slots holding items drawn uniformly from the ``pool`` newest
    available items (rows ``n_available - pool .. n_available - 1``)."""
    if n_fresh == 0:
        return slates
    n_users, k = slates.shape
    out = np.concatenate([slates, np.full((n_users, n_fresh), -1, dtype=slates.dtype)], axis=1)
    users = np.repeat(np.arange(n_users), n_fresh)
    slots = np.tile(np.arange(k, k + n_fresh), n_users)
    out = fill_uniform(out, users, slots, max(0, n_available - pool), n_available, exclude, rng)
    if (out < 0).any():
        user = int(np.argmax((out < 0).any(axis=1)))
        raise InputError(f"no fresh item left for user {user}: raise fresh_pool")
    return out


def organic_slates(relevance: RoundRelevance, k: int, exclude: sp.csr_matrix | None,
                   rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct items per user drawn ∝ ``rel(u,i)`` without replacement, in draw order
    (:func:`rerank.simulations.world.successive_sample`), excluded cells left out."""
    out = np.empty((relevance.world.n_users, k), dtype=np.int64)
    for rows, rel in relevance.blocks():
        if exclude is not None:
            rel = rel.copy()
            seen = exclude[rows].tocoo()
            rel[seen.row, seen.col] = 0.0
        out[rows] = successive_sample(rel, k, rng)
    return out


def make_slates(spec: PolicySpec, cand: CandidateLists, categories: sp.csr_matrix,
                targets: np.ndarray, exam: np.ndarray, config: SimConfig,
                exclude: sp.csr_matrix | None, n_available: int,
                rng: np.random.Generator) -> np.ndarray:
    """Slates (users × k item rows, slot order) for one round of a recommender policy."""
    slates = _rerank(cand, categories, targets, policy_options(spec, config, exam),
                     config.n_threads)
    if spec.explore:
        slates = explore(slates, config.epsilon, exclude, n_available, rng)
    return add_fresh(slates, config.fresh_slots, config.fresh_pool, exclude, n_available, rng)
