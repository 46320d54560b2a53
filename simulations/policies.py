"""Slate policies: every one ends in the one reranking kernel, :func:`rerank.rerank_arrays`.

* ``topk``: the model's top k (the kernel with ``λ = 0``, which is exactly top-k by score).
* ``calibrated``: Steck's calibrated reranking with trade-off ``λ``, target ``p̂(g|u)`` from
  the *logged* click history (Steck eq. 1, :func:`rerank.distributions.target_distributions`),
  scores min-max normalised per user, and rank weights equal to the examination curve
  ``w_r = (1/r)^η`` so that the list calibrates *exposure*, not slot counts (docs/design.md §7).
* ``calibrated-debiased``: the same with the target from the IPS-weighted history
  (each click weighted ``min(1/propensity, clip)``).
* ``epsilon``: top-k, then each slot independently, with probability ε, is replaced by an
  available item drawn uniformly that is neither in the slate nor consumed.
* ``quota``: the calibrated policy plus hard quotas (``RerankOptions(min_share=True)``,
  docs/design.md §4.3): every category ``g`` of the (naive) history target gets at least
  ``⌊k p̂_g⌋`` slots carrying it whenever the candidates allow.

Each policy is one :class:`rerank.RerankOptions` (:func:`policy_options`), passed to the kernel.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from rerank.simulations.config import SimConfig
from rerank.simulations.log import InteractionLog
from rerank.simulations.models import Candidates

from rerank import RerankOptions, rerank_arrays
from rerank.distributions import population_distribution, target_distributions
from rerank.errors import InputError

POLICIES = ("topk", "calibrated", "calibrated-debiased", "quota", "epsilon")


def check_policy(name: str) -> str:
    if name not in POLICIES:
        raise InputError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    return name


def policy_options(policy: str, config: SimConfig, exam: np.ndarray) -> RerankOptions:
    """The reranking of a policy: top-k (λ = 0) for ``topk`` / ``epsilon``, else λ = ``config.lam``
    (quotas for ``quota``), scores min-max normalised, rank weights = the examination curve."""
    lam = 0.0 if policy in ("topk", "epsilon") else config.lam
    return RerankOptions(
        k=config.slate_size, lam=lam, rank_weights=exam, normalize="minmax", min_share=policy == "quota",
    )


def target_mode(policy: str) -> str:
    """Which history the policy's target (and the system's interest estimate) comes from."""
    return "ips" if policy == "calibrated-debiased" else "naive"


def history_targets(log: InteractionLog, n_users: int, categories: sp.csr_matrix, mode: str,
                    clip: float) -> np.ndarray:
    """``p̂(g|u) = Σ_{clicks} w p(g|i) / Σ w`` per user (naive ``w = 1`` or clipped IPS);
    users without clicks get the population mean (as :class:`rerank.CalibratedReranker`)."""
    users, items, weights = log.clicks(mode, clip)
    targets, has_mass = target_distributions(users, items, weights, n_users, categories)
    targets[~has_mass] = population_distribution(targets, has_mass)
    return targets


def _rerank(cand: Candidates, categories, targets, options: RerankOptions, n_threads) -> np.ndarray:
    k = options.k
    lengths = cand.lengths()
    if lengths.min(initial=k) < k:
        user = int(np.argmax(lengths < k))
        raise InputError(
            f"user {user} has only {lengths[user]} candidates for {k} slots: the catalogue is "
            "too small for this run (raise n_items or new_items_per_round)"
        )
    result = rerank_arrays(cand.indptr, cand.items, cand.scores, categories, targets, options=options,
                           n_threads=n_threads)
    return result.items.reshape(-1, k)


def explore(slates: np.ndarray, epsilon: float, consumed: sp.csr_matrix, n_available: int,
            rng: np.random.Generator, max_tries: int = 50) -> np.ndarray:
    """Replace each slot with probability ε by a uniform available item not in the slate and
    not consumed (rejection sampling, vectorised over all replaced slots)."""
    slates = slates.copy()
    users, slots = np.nonzero(rng.random(slates.shape) < epsilon)
    pending = np.arange(users.size)
    for _ in range(max_tries):
        if pending.size == 0:
            break
        draws = rng.integers(0, n_available, pending.size)
        u = users[pending]
        bad = (slates[u] == draws[:, None]).any(axis=1)
        bad |= np.asarray(consumed[u, draws]).ravel() > 0
        # two replaced slots of one user drawing the same item: keep the first only
        key = u.astype(np.int64) * n_available + draws
        _, first = np.unique(key, return_index=True)
        dup = np.ones(pending.size, dtype=bool)
        dup[first] = False
        ok = ~bad & ~dup
        slates[u[ok], slots[pending[ok]]] = draws[ok]
        pending = pending[~ok]
    return slates


def make_slates(policy: str, cand: Candidates, categories: sp.csr_matrix, targets: np.ndarray,
                exam: np.ndarray, config: SimConfig, consumed: sp.csr_matrix, n_available: int,
                rng: np.random.Generator) -> np.ndarray:
    """Slates (users × k item rows, slot order) for one round under ``policy``."""
    check_policy(policy)
    slates = _rerank(cand, categories, targets, policy_options(policy, config, exam), config.n_threads)
    if policy == "epsilon":
        slates = explore(slates, config.epsilon, consumed, n_available, rng)
    return slates
