"""A built-in synthetic data set for the demo and tests (no download).

Users have one dominant interest and one or two minority interests; a recommender that
over-weights dominant interests produces the candidate lists (the miscalibration of §1).

Generative model (all drawn from one seeded ``numpy.random.Generator``):

* ``G`` categories; each item carries 1 or 2 categories and has a popularity ``pop_i``
  (log-normal).
* User ``u``: dominant category ``d_u`` and ``m_u ∈ {1, 2}`` minority categories; true taste
  ``θ_u`` puts ``dominant_share`` on ``d_u`` and splits the rest evenly over the minority ones.
* True affinity ``a_ui = Σ_g θ_ug p(g|i)``; history and held-out items are sampled with
  probability ``∝ a_ui · pop_i`` (history first, held-out among the rest).
* The recommender's score is biased toward the dominant interest:
  ``s_ui = Σ_g θ_ug^γ p(g|i) / Σ_g θ_ug^γ + β log pop_i + ε``, ``γ > 1`` sharpening the taste,
  ``ε ~ N(0, σ²)``; each user's ``n_candidates`` best unseen items are the candidates.

Scores are computed in blocks of users, so memory stays O(block × items).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SyntheticData:
    history: pd.DataFrame  # user_id, item_id
    held_out: pd.DataFrame  # user_id, item_id
    item_categories: pd.DataFrame  # item_id, category
    candidates: pd.DataFrame  # user_id, item_id, score
    true_taste: pd.DataFrame  # index user_id, columns categories


def make_synthetic(
    n_users: int = 2000,
    n_items: int = 3000,
    n_categories: int = 8,
    n_history: int = 40,
    n_held_out: int = 10,
    n_candidates: int = 100,
    dominant_share: float = 0.7,
    sharpen: float = 2.0,
    popularity_weight: float = 0.3,
    noise: float = 0.15,
    seed: int = 0,
    block: int = 512,
) -> SyntheticData:
    """Generate the data set described in the module docstring."""
    if n_history + n_held_out + n_candidates > n_items:
        raise ValueError("n_items must exceed n_history + n_held_out + n_candidates")
    rng = np.random.default_rng(seed)
    names = [f"genre_{g}" for g in range(n_categories)]

    n_cats = rng.integers(1, 3, n_items)
    item_cat = np.zeros((n_items, n_categories))
    for width in (1, 2):
        rows = np.flatnonzero(n_cats == width)
        picks = np.argsort(rng.random((rows.size, n_categories)), axis=1)[:, :width]
        item_cat[np.repeat(rows, width), picks.ravel()] = 1.0 / width
    popularity = rng.lognormal(0.0, 1.0, n_items)

    dominant = rng.integers(0, n_categories, n_users)
    n_minor = rng.integers(1, 3, n_users)
    order = np.argsort(rng.random((n_users, n_categories)), axis=1)
    taste = np.zeros((n_users, n_categories))
    taste[np.arange(n_users), dominant] = dominant_share
    for u in range(n_users):  # small: n_users × n_categories bookkeeping, not the hot path
        others = [g for g in order[u] if g != dominant[u]][: n_minor[u]]
        taste[u, others] = (1.0 - dominant_share) / len(others)

    hist_rows, held_rows, cand_rows = [], [], []
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        affinity = taste[start:stop] @ item_cat.T
        weights = affinity * popularity
        # Gumbel-top-k: sampling without replacement proportional to the weights.
        keys = np.log(np.maximum(weights, 1e-300)) + rng.gumbel(size=weights.shape)
        ranked = np.argsort(-keys, axis=1)
        history = ranked[:, :n_history]
        held = ranked[:, n_history : n_history + n_held_out]
        sharp = taste[start:stop] ** sharpen
        sharp /= sharp.sum(axis=1, keepdims=True)
        scores = sharp @ item_cat.T + popularity_weight * np.log(popularity) + rng.normal(0, noise, weights.shape)
        np.put_along_axis(scores, history, -np.inf, axis=1)
        cands = np.argsort(-scores, axis=1)[:, :n_candidates]
        users = np.arange(start, stop)
        hist_rows.append((np.repeat(users, n_history), history.ravel()))
        held_rows.append((np.repeat(users, n_held_out), held.ravel()))
        cand_rows.append((np.repeat(users, n_candidates), cands.ravel(), np.take_along_axis(scores, cands, 1).ravel()))

    def frame(parts, with_score=False):
        cols = {"user_id": np.concatenate([p[0] for p in parts]), "item_id": np.concatenate([p[1] for p in parts])}
        if with_score:
            cols["score"] = np.concatenate([p[2] for p in parts])
        return pd.DataFrame(cols)

    item_ids, cat_ids = np.nonzero(item_cat)
    return SyntheticData(
        history=frame(hist_rows),
        held_out=frame(held_rows),
        item_categories=pd.DataFrame({"item_id": item_ids, "category": np.array(names)[cat_ids]}),
        candidates=frame(cand_rows, with_score=True),
        true_taste=pd.DataFrame(taste, index=pd.Index(np.arange(n_users), name="user_id"), columns=names),
    )
