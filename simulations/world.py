"""The simulated world: users with true interests, items with categories, true relevance.

* **Categories.** ``G`` categories; the last ``n_niche`` are niche (scarcer supply, lower
  quality), the others mainstream.
* **Users.** Exactly ``round(U · minority_share)`` users form the minority group (dominant
  interest uniform over the niche categories), the rest the majority group (dominant interest
  uniform over the mainstream ones). Taste ``θ_u = d · e_dom + (1-d) · Dir(c·1)`` spread over
  ``n_minority_interests`` categories drawn uniformly among the others: the user's *minority
  interests* ``M_u``.
* **Items.** Item ``i`` carries ``m_i ∈ {1,2,3}`` distinct categories drawn without replacement
  with probability ∝ supply (1 mainstream, ``niche_supply`` niche); ``p(g|i) = 1/m_i``.
  Quality ``q_i ~ N(0, quality_sd) + niche_quality_shift · (niche share of p(·|i))``.
  ``n_items`` are there at the start; ``new_items_per_round`` arrive before each later round
  (Chaney et al. 2018), so the catalogue does not run dry (docs/design.md §7.1).
* **True relevance** ``rel(u,i) = σ(b + β · θ_u·p(·|i) + q_i)``, ``b = rel_bias``,
  ``β = rel_pref``.
* **Organic true share** (docs/design.md §7.1): what the user would consume with no ranking and no
  position bias, over the items available at round t:
  ``π_u ∝ Σ_{i available} rel(u,i) · p(·|i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from rerank.simulations.config import SimConfig
from rerank.simulations.rng import stream
from scipy.special import expit

MAJORITY = 0
MINORITY = 1
BLOCK_USERS = 1024


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + e^{-x})`` (``scipy.special.expit``, stable for any x)."""
    return expit(x)


@dataclass
class World:
    """Users, items and the true relevance model. Arrays are indexed by user / item row."""

    config: SimConfig
    niche: np.ndarray  # (G,) bool
    group: np.ndarray  # (U,) int8: MAJORITY / MINORITY
    dominant: np.ndarray  # (U,) int64
    theta0: np.ndarray  # (U, G) initial taste, rows sum to 1
    minority_mask: np.ndarray  # (U, G) bool: the user's minority interests M_u
    item_categories: np.ndarray  # (I_total, G) dense p(g|i) (G is small)
    item_csr: sp.csr_matrix  # the same as CSR, for the reranking kernel
    quality: np.ndarray  # (I_total,)
    arrival: np.ndarray  # (I_total,) round at which the item becomes available

    @property
    def n_users(self) -> int:
        return self.group.shape[0]

    @property
    def n_categories(self) -> int:
        return self.niche.shape[0]

    def n_available(self, round_: int) -> int:
        """Items are ordered by arrival: rows ``0 .. n_available(t)-1`` exist at round t."""
        cfg = self.config
        return cfg.n_items + round_ * cfg.new_items_per_round

    def relevance_pairs(self, theta: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``rel(u,i)`` for aligned arrays ``users``, ``items`` of any (same) shape."""
        cfg = self.config
        affinity = np.einsum("...g,...g->...", theta[users], self.item_categories[items])
        return sigmoid(cfg.rel_bias + cfg.rel_pref * affinity + self.quality[items])

    def relevance_block(self, theta_rows: np.ndarray, n_items: int) -> np.ndarray:
        """Dense ``rel(u,i)`` for the given taste rows × the first ``n_items`` items."""
        cfg = self.config
        logits = theta_rows @ self.item_categories[:n_items].T
        logits *= cfg.rel_pref
        logits += cfg.rel_bias + self.quality[None, :n_items]
        return sigmoid(logits)

    def organic_mass(self, theta: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """``Σ_{lo ≤ i < hi} rel(u,i) p(·|i)`` for every user (blocked over users)."""
        out = np.zeros((theta.shape[0], self.n_categories))
        if hi <= lo:
            return out
        cfg = self.config
        cats = self.item_categories[lo:hi]
        for start in range(0, theta.shape[0], BLOCK_USERS):
            block = theta[start : start + BLOCK_USERS]
            logits = block @ cats.T
            logits *= cfg.rel_pref
            logits += cfg.rel_bias + self.quality[None, lo:hi]
            out[start : start + BLOCK_USERS] = sigmoid(logits) @ cats
        return out


def true_share(mass: np.ndarray) -> np.ndarray:
    """Normalise organic mass rows into the organic true share ``π_u``."""
    return mass / mass.sum(axis=1, keepdims=True)


def make_world(config: SimConfig) -> World:
    """Draw users and the whole item stream (initial catalogue + arrivals) from the seed."""
    cfg = config
    n_cat = cfg.n_categories
    niche = np.zeros(n_cat, dtype=bool)
    niche[cfg.n_mainstream_categories :] = True

    rng = stream(cfg.seed, "users")
    n_minority = int(round(cfg.n_users * cfg.minority_share))
    if cfg.n_niche_categories == 0:
        n_minority = 0
    group = np.zeros(cfg.n_users, dtype=np.int8)
    group[rng.permutation(cfg.n_users)[:n_minority]] = MINORITY
    mainstream_ids = np.flatnonzero(~niche)
    niche_ids = np.flatnonzero(niche)
    dominant = np.where(
        group == MINORITY,
        niche_ids[rng.integers(0, max(len(niche_ids), 1), cfg.n_users)] if len(niche_ids) else 0,
        mainstream_ids[rng.integers(0, len(mainstream_ids), cfg.n_users)],
    ).astype(np.int64)
    theta0 = np.zeros((cfg.n_users, n_cat))
    rows = np.arange(cfg.n_users)
    theta0[rows, dominant] = cfg.dominant_weight
    minority_mask = np.zeros((cfg.n_users, n_cat), dtype=bool)
    m = cfg.n_minority_interests
    if m:
        # m distinct non-dominant categories per user: random keys, dominant pushed last.
        keys = rng.random((cfg.n_users, n_cat))
        keys[rows, dominant] = 2.0
        chosen = np.argsort(keys, axis=1, kind="stable")[:, :m]
        split = rng.dirichlet(np.full(m, cfg.minority_concentration), size=cfg.n_users)
        theta0[rows[:, None], chosen] = (1.0 - cfg.dominant_weight) * split
        minority_mask[rows[:, None], chosen] = True
    else:
        theta0[rows, dominant] = 1.0
    theta0 /= theta0.sum(axis=1, keepdims=True)

    rng = stream(cfg.seed, "items")
    n_total = cfg.n_items_total
    supply = np.where(niche, cfg.niche_supply, 1.0)
    counts = rng.choice(
        np.arange(1, len(cfg.categories_per_item) + 1), size=n_total, p=cfg.categories_per_item
    )
    # Weighted sampling without replacement (Gumbel top-m): keys log(w) + Gumbel.
    keys = np.log(supply)[None, :] + rng.gumbel(size=(n_total, n_cat))
    order = np.argsort(-keys, axis=1, kind="stable")
    take = np.arange(n_cat)[None, :] < counts[:, None]
    item_rows = np.repeat(np.arange(n_total), counts)
    item_cols = order[take]
    item_categories = np.zeros((n_total, n_cat))
    item_categories[item_rows, item_cols] = 1.0 / np.repeat(counts, counts)
    niche_share = item_categories @ niche.astype(np.float64)
    quality = rng.normal(0.0, cfg.quality_sd, n_total) + cfg.niche_quality_shift * niche_share
    arrival = np.zeros(n_total, dtype=np.int64)
    if cfg.new_items_per_round:
        arrival[cfg.n_items :] = 1 + (np.arange(n_total - cfg.n_items) // cfg.new_items_per_round)
    return World(
        config=cfg,
        niche=niche,
        group=group,
        dominant=dominant,
        theta0=theta0,
        minority_mask=minority_mask,
        item_categories=item_categories,
        item_csr=sp.csr_matrix(item_categories),
        quality=quality,
        arrival=arrival,
    )


def sample_organic(world: World, theta: np.ndarray, n_per_user: int, n_items: int):
    """Each user's organic history: ``n_per_user`` distinct items drawn ∝ ``rel(u,i)``.

    Weighted sampling without replacement by Gumbel top-n over ``log rel``. Returns
    ``(users, items)`` arrays, users in order.
    """
    cfg = world.config
    rng = stream(cfg.seed, "organic")
    users_out, items_out = [], []
    for start in range(0, theta.shape[0], BLOCK_USERS):
        rel = world.relevance_block(theta[start : start + BLOCK_USERS], n_items)
        keys = np.log(rel) + rng.gumbel(size=rel.shape)
        top = np.argpartition(-keys, n_per_user - 1, axis=1)[:, :n_per_user]
        top.sort(axis=1)
        users_out.append(np.repeat(np.arange(start, start + rel.shape[0]), n_per_user))
        items_out.append(top.ravel())
    return np.concatenate(users_out), np.concatenate(items_out)
