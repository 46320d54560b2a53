"""The simulated world: users with true interests, items with categories, true relevance.

* **Categories.** ``G`` categories; the last ``n_niche`` are niche (scarcer supply, lower
  quality), the others mainstream.
* **Users.** Exactly ``round(U · niche_share)`` users form the *niche group* (dominant
  interest uniform over the niche categories), the rest the *mainstream group* (dominant
  interest uniform over the mainstream ones). Taste ``θ_u = d · e_dom + (1-d) · Dir(c·1)`` spread over
  ``n_minority_interests`` categories drawn uniformly among the others: the user's *minority
  interests* ``M_u``.
* **Items.** Item ``i`` carries ``m_i ∈ {1,2,3}`` distinct categories drawn without replacement
  with probability ∝ supply (1 mainstream, ``niche_supply`` niche); ``p(g|i) = 1/m_i``.
  Quality ``q_i ~ N(0, quality_sd) + niche_quality_shift · (niche share of p(·|i))``.
  ``n_items`` are there at the start; ``new_items_per_round`` arrive before each later round
  (Chaney et al. 2018). Items are ordered by arrival, so the items available at round t are
  rows ``0 .. n_available(t)-1`` and the newest are the last rows.
* **True relevance** ``rel(u,i) = σ(b + β · θ_u·p(·|i) + q_i)``, ``b = rel_bias``,
  ``β = rel_pref``.
* **Organic true share** (docs/design.md §7.1): what the user would consume with no ranking and no
  position bias, over the items the user can still consume at round t (every available
  item when re-consumption is on; the available items the user has not consumed when off):
  ``π_u ∝ Σ_{i consumable} rel(u,i) · p(·|i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from rerank.simulations.config import SimConfig
from rerank.simulations.rng import stream
from scipy.special import expit

MAINSTREAM = 0
NICHE = 1
BLOCK_USERS = 1024
#: A round's users × items relevance is kept in memory up to this many cells (160 MB).
CACHE_CELLS = 20_000_000


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + e^{-x})`` (``scipy.special.expit``, stable for any x)."""
    return expit(x)


def sigmoid_inplace(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^{-x})`` computed in place (float32 blocks; ``e^{-x} = inf`` gives 0)."""
    with np.errstate(over="ignore"):
        np.negative(x, out=x)
        np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


@dataclass
class World:
    """Users, items and the true relevance model. Arrays are indexed by user / item row."""

    config: SimConfig
    niche: np.ndarray  # (G,) bool
    group: np.ndarray  # (U,) int8: MAINSTREAM / NICHE
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
        """Dense ``rel(u,i)`` for the given taste rows × the first ``n_items`` items, in
        float32 (relative error ~1e-7; :meth:`relevance_pairs` is float64)."""
        cfg = self.config
        cats = self.item_categories[:n_items].T.astype(np.float32)
        logits = theta_rows.astype(np.float32) @ cats
        logits *= np.float32(cfg.rel_pref)
        logits += (cfg.rel_bias + self.quality[None, :n_items]).astype(np.float32)
        return sigmoid_inplace(logits)

    def consumed_mass(self, theta: np.ndarray, consumed: sp.csr_matrix) -> np.ndarray:
        """``Σ_{i consumed by u} rel(u,i) p(·|i)`` per user (``consumed``: users × items 0/1)."""
        coo = consumed.tocoo()
        out = np.zeros((theta.shape[0], self.n_categories))
        if coo.nnz:
            rel = self.relevance_pairs(theta, coo.row, coo.col)
            np.add.at(out, coo.row, rel[:, None] * self.item_categories[coo.col])
        return out


class RoundRelevance:
    """``rel(u,i)`` of every user × the first ``n_items`` items under tastes ``theta``: one
    round's truth, computed once and shared by the organic share, the organic slates and the
    oracle (kept whole when it has at most :data:`CACHE_CELLS` cells, else recomputed per
    block of users)."""

    def __init__(self, world: World, theta: np.ndarray, n_items: int):
        self.world = world
        self.theta = theta
        self.n_items = n_items
        cells = world.n_users * n_items
        self._full = world.relevance_block(theta, n_items) if cells <= CACHE_CELLS else None

    def rows(self, rows) -> np.ndarray:
        """``rel`` of the given user rows (an index array or a slice) × the items."""
        if self._full is not None:
            return self._full[rows]
        return self.world.relevance_block(self.theta[rows], self.n_items)

    def blocks(self):
        """``(slice of user rows, rel block)`` over all users, ``BLOCK_USERS`` at a time."""
        for start in range(0, self.world.n_users, BLOCK_USERS):
            rows = slice(start, min(start + BLOCK_USERS, self.world.n_users))
            yield rows, self.rows(rows)

    def organic_mass(self) -> np.ndarray:
        """``Σ_i rel(u,i) p(·|i)`` over the items, for every user."""
        cats = self.world.item_categories[: self.n_items].astype(np.float32)
        out = np.empty((self.world.n_users, self.world.n_categories))
        for rows, rel in self.blocks():
            out[rows] = rel @ cats
        return out


def _first_distinct(draws: np.ndarray, k: int, n_cols: int) -> np.ndarray:
    """Each row's first ``k`` distinct values in order (``-1`` where a row has fewer)."""
    n, m = draws.shape
    key = (np.arange(n, dtype=np.int64)[:, None] * n_cols + draws).ravel()
    _, first = np.unique(key, return_index=True)
    first.sort()
    row = first // m
    rank = np.arange(first.size) - np.searchsorted(row, row, side="left")
    keep = rank < k
    out = np.full((n, k), -1, dtype=np.int64)
    out[row[keep], rank[keep]] = draws.ravel()[first[keep]]
    return out


def _inverse_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per row, the column ``j`` with ``cdf[j-1] <= u < cdf[j]`` (rows of ``cdf`` end at 1)."""
    out = np.empty(u.shape, dtype=np.int64)
    for j in range(u.shape[0]):
        out[j] = np.searchsorted(cdf[j], u[j], side="right")
    return np.minimum(out, cdf.shape[1] - 1, out=out)


def successive_sample(weights: np.ndarray, k: int, rng: np.random.Generator,
                      oversample: int = 4) -> np.ndarray:
    """``k`` distinct columns per row drawn with probability ∝ ``weights`` without
    replacement, in draw order (successive sampling); rows × k.

    Draws a sequence with replacement (inverse CDF, ``oversample · k`` draws at a time,
    extended for the rows still short) and keeps each row's first ``k`` distinct draws: the
    same law as drawing one column ∝ ``weights``, removing it and drawing again from the rest.
    Every row needs at least ``k`` positive weights.
    """
    n_rows, n_cols = weights.shape
    if ((weights > 0).sum(axis=1) < k).any():
        raise ValueError(f"a row has fewer than {k} positive weights")
    cdf = np.cumsum(weights, axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    m = oversample * k
    out = np.empty((n_rows, k), dtype=np.int64)
    rows = np.arange(n_rows)
    draws = _inverse_cdf(cdf, rng.random((n_rows, m)))
    while rows.size:
        picked = _first_distinct(draws, k, n_cols)
        done = picked[:, -1] >= 0
        out[rows[done]] = picked[done]
        rows, draws = rows[~done], draws[~done]
        if rows.size:
            more = _inverse_cdf(cdf[rows], rng.random((rows.size, m)))
            draws = np.concatenate([draws, more], axis=1)
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
    n_niche = int(round(cfg.n_users * cfg.niche_share))
    if cfg.n_niche_categories == 0:
        n_niche = 0
    group = np.zeros(cfg.n_users, dtype=np.int8)
    group[rng.permutation(cfg.n_users)[:n_niche]] = NICHE
    mainstream_ids = np.flatnonzero(~niche)
    niche_ids = np.flatnonzero(niche)
    dominant = np.where(
        group == NICHE,
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
    """Each user's organic history: ``n_per_user`` distinct items drawn ∝ ``rel(u,i)``
    without replacement (:func:`successive_sample`). Returns ``(users, items)`` arrays,
    users in order, each user's items sorted."""
    rng = stream(world.config.seed, "organic")
    relevance = RoundRelevance(world, theta, n_items)
    users_out, items_out = [], []
    for rows, rel in relevance.blocks():
        top = successive_sample(rel, n_per_user, rng)
        top.sort(axis=1)
        users_out.append(np.repeat(np.arange(rows.start, rows.stop), n_per_user))
        items_out.append(top.ravel())
    return np.concatenate(users_out), np.concatenate(items_out)
