"""Per-round metrics, per user group (``all``, ``mainstream``, ``niche``), vectorised over users.

Notation for user ``u`` in round ``t``: slate ``L_u`` (slots r = 1..k), examination curve
``e_r = (1/r)^η``, exposure distribution ``q_u(g) = Σ_r e_r p(g|L_u,r) / Σ_r e_r``
(:func:`rerank.distributions.list_distributions` with rank weights ``e``), organic true share
``π_u`` now and ``π⁰_u`` at round 0 (:mod:`rerank.simulations.world`), minority interests
``M_u`` (the user's non-dominant taste categories at the start), dominant interest ``d_u``,
taste ``θ_u`` (``θ⁰_u`` at the start). Every column is the mean over the group's users
unless it says otherwise.

Against the current truth (the columns of the first version):

* ``minority_exposure_ratio``: ``Σ_{g∈M_u} q_u(g) / Σ_{g∈M_u} π_u(g)`` (1 = proportional).
* ``minority_collapse_rate``: share of users whose ratio is below ``collapse_threshold``.
* ``miscalibration_true``: ``KL(π_u ‖ q̃_u)``, α = 0.01 (:func:`rerank.engine.divergences.divergence`).
* ``true_utility``: ``Σ_r e_r rel(u, L_u,r)``: expected attitude clicks per slate.
* ``ctr``: clicks / impressions of the group (noise clicks included).
* ``coverage``: distinct items shown to the group / items available.
* ``exposure_gini``: Gini (:func:`rerank.metrics.gini`) of ``Σ e_r`` per available item
  over the group's slates (never-shown items count as 0).
* ``homogenization``: mean Jaccard ``|L_a ∩ L_b| / |L_a ∪ L_b|`` over a fixed random sample
  of user pairs within the group.
* ``estimate_error``: ``½ ‖p̂_u − π_u‖₁`` (total variation) between the system's estimate of
  the user's interests (the history target the policy uses; naive or IPS) and ``π_u``.
* ``interest_drift``: ``½ ‖θ_u − θ_u^0‖₁``.

Against the fixed round-0 reference (issue 11), which the loop cannot move:

* ``ref_miscalibration``: ``KL(π⁰_u ‖ (1−α) q_u + α π⁰_u)``, α = 0.01.
* ``ref_minority_ratio``: ``Σ_{g∈M_u} q_u(g) / Σ_{g∈M_u} π⁰_u(g)`` (1 = proportional to the
  round-0 share).
* ``distinct_interest_ratio``: for niche-group users only, ``q_u(d_u) / π⁰_u(d_u)``: the
  exposure of their niche dominant interest over its round-0 share (empty for the
  mainstream group).
* ``taste_shift``: ``KL(θ⁰_u ‖ (1−α) θ_u + α θ⁰_u)``, α = 0.01 (0 = unchanged tastes).
* ``taste_entropy``: ``−Σ_g θ_u(g) log θ_u(g)`` (nats).
* ``top50_consumed``: share of the user's ``top_relevant`` (50) most relevant available items
  the user can no longer consume (0 by construction when re-consumption is on).

Detail columns (``details.csv``): ``minority_slot_ratio`` (the ratio with uniform rank
weights: slot share instead of exposure share), ``minority_exposure_share`` and
``minority_true_share`` (numerator and denominator of the ratio, averaged separately),
``dominant_exposure_share``, ``dominant_true_share``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from rerank.simulations.world import MAINSTREAM, NICHE

from rerank.distributions import list_distributions
from rerank.engine.divergences import divergence
from rerank.metrics import gini

GROUPS = ("all", "mainstream", "niche")
METRIC_COLUMNS = (
    "minority_exposure_ratio", "minority_collapse_rate", "miscalibration_true", "true_utility",
    "ctr", "coverage", "exposure_gini", "homogenization", "estimate_error", "interest_drift",
    "ref_miscalibration", "ref_minority_ratio", "distinct_interest_ratio", "taste_shift",
    "taste_entropy", "top50_consumed",
)
DETAIL_COLUMNS = (
    "minority_slot_ratio", "minority_exposure_share", "minority_true_share",
    "dominant_exposure_share", "dominant_true_share",
)


def group_masks(group: np.ndarray) -> dict[str, np.ndarray]:
    return {"all": np.ones(group.shape, dtype=bool), "mainstream": group == MAINSTREAM,
            "niche": group == NICHE}


def sample_pairs(mask: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_pairs`` random pairs (a ≠ b) of users within ``mask``, shape (n, 2)."""
    members = np.flatnonzero(mask)
    if members.size < 2 or n_pairs == 0:
        return np.zeros((0, 2), dtype=np.int64)
    a = rng.integers(0, members.size, n_pairs)
    b = (a + rng.integers(1, members.size, n_pairs)) % members.size
    return np.stack([members[a], members[b]], axis=1)


def jaccard_pairs(slates: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the slates of each pair (slates have no repeated item)."""
    a = slates[pairs[:, 0]]
    b = slates[pairs[:, 1]]
    inter = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    union = a.shape[1] + b.shape[1] - inter
    return inter / union


def exposure_distribution(slates: np.ndarray, categories: sp.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """``q_u`` of each slate with rank weights ``weights`` (users × G)."""
    n_users, k = slates.shape
    indptr = np.arange(0, n_users * k + 1, k, dtype=np.int64)
    return list_distributions(indptr, slates.ravel(), categories, weights)


def minority_ratio(q: np.ndarray, pi: np.ndarray, minority_mask: np.ndarray) -> np.ndarray:
    """Per-user ``Σ_{M_u} q / Σ_{M_u} π``; NaN for users without minority interests."""
    q_min = np.where(minority_mask, q, 0.0).sum(axis=1)
    pi_min = np.where(minority_mask, pi, 0.0).sum(axis=1)
    return np.divide(q_min, pi_min, out=np.full(q.shape[0], np.nan), where=pi_min > 0)


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(axis=1)


def entropy(p: np.ndarray) -> np.ndarray:
    """Row-wise ``−Σ_g p_g log p_g`` (nats; ``0 log 0 = 0``)."""
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logs).sum(axis=1)


def dominant_ratio(q: np.ndarray, pi0: np.ndarray, dominant: np.ndarray,
                   users: np.ndarray) -> np.ndarray:
    """``q_u(d_u) / π⁰_u(d_u)`` for the flagged ``users`` (bool mask), NaN for the others."""
    rows = np.arange(q.shape[0])
    out = np.full(q.shape[0], np.nan)
    share = pi0[rows, dominant]
    ok = users & (share > 0)
    out[ok] = q[rows[ok], dominant[ok]] / share[ok]
    return out


def gini_of_exposure(slates: np.ndarray, exam: np.ndarray, n_available: int) -> float:
    exposure = np.bincount(slates.ravel(), weights=np.tile(exam, slates.shape[0]), minlength=n_available)
    return gini(exposure[:n_available])


def _mean(values: np.ndarray, mask: np.ndarray) -> float:
    sel = values[mask]
    sel = sel[~np.isnan(sel)]
    return float(sel.mean()) if sel.size else float("nan")


@dataclass
class RoundInputs:
    """Everything one round's metrics need (arrays over all users)."""

    slates: np.ndarray  # users × k item rows
    clicked: np.ndarray  # users × k bool
    rel: np.ndarray  # users × k true relevance of the slate
    pi: np.ndarray  # users × G organic true share now
    pi0: np.ndarray  # users × G organic true share at round 0
    estimate: np.ndarray  # users × G the system's interest estimate
    theta: np.ndarray
    theta0: np.ndarray
    minority_mask: np.ndarray  # users × G
    dominant: np.ndarray  # users
    group: np.ndarray
    categories: sp.csr_matrix
    exam: np.ndarray  # k examination weights
    n_available: int
    pairs: dict  # group -> (n, 2) user pairs
    collapse_threshold: float
    top_consumed: np.ndarray  # users: share of the top-relevant items no longer consumable


def round_metrics(x: RoundInputs) -> tuple[dict[str, dict], dict[str, dict]]:
    """``({group: {metric: value}}, {group: {detail: value}})`` for one round."""
    n_users, k = x.slates.shape
    q_exp = exposure_distribution(x.slates, x.categories, x.exam)
    q_slot = exposure_distribution(x.slates, x.categories, np.ones(k))
    ratio = minority_ratio(q_exp, x.pi, x.minority_mask)
    slot_ratio = minority_ratio(q_slot, x.pi, x.minority_mask)
    collapsed = np.where(np.isnan(ratio), np.nan, (ratio < x.collapse_threshold).astype(float))
    miscal = divergence(x.pi, q_exp, "kl", 0.01)
    utility = (x.rel * x.exam[None, :]).sum(axis=1)
    clicks = x.clicked.sum(axis=1).astype(np.float64)
    est_err = total_variation(x.estimate, x.pi)
    drift = total_variation(x.theta, x.theta0)
    ref_miscal = divergence(x.pi0, q_exp, "kl", 0.01)
    ref_ratio = minority_ratio(q_exp, x.pi0, x.minority_mask)
    distinct = dominant_ratio(q_exp, x.pi0, x.dominant, x.group == NICHE)
    shift = divergence(x.theta0, x.theta, "kl", 0.01)
    taste_h = entropy(x.theta)
    rows = np.arange(n_users)
    minor_exp = np.where(x.minority_mask, q_exp, 0.0).sum(axis=1)
    minor_true = np.where(x.minority_mask, x.pi, 0.0).sum(axis=1)
    metrics, details = {}, {}
    for name, mask in group_masks(x.group).items():
        if not mask.any():
            metrics[name] = dict.fromkeys(METRIC_COLUMNS, float("nan"))
            details[name] = dict.fromkeys(DETAIL_COLUMNS, float("nan"))
            continue
        shown = x.slates[mask]
        pairs = x.pairs.get(name)
        metrics[name] = {
            "minority_exposure_ratio": _mean(ratio, mask),
            "minority_collapse_rate": _mean(collapsed, mask),
            "miscalibration_true": _mean(miscal, mask),
            "true_utility": _mean(utility, mask),
            "ctr": float(clicks[mask].sum() / (mask.sum() * k)),
            "coverage": float(np.unique(shown).size / x.n_available),
            "exposure_gini": gini_of_exposure(shown, x.exam, x.n_available),
            "homogenization": (float(jaccard_pairs(x.slates, pairs).mean())
                               if pairs is not None and len(pairs) else float("nan")),
            "estimate_error": _mean(est_err, mask),
            "interest_drift": _mean(drift, mask),
            "ref_miscalibration": _mean(ref_miscal, mask),
            "ref_minority_ratio": _mean(ref_ratio, mask),
            "distinct_interest_ratio": _mean(distinct, mask),
            "taste_shift": _mean(shift, mask),
            "taste_entropy": _mean(taste_h, mask),
            "top50_consumed": _mean(x.top_consumed, mask),
        }
        details[name] = {
            "minority_slot_ratio": _mean(slot_ratio, mask),
            "minority_exposure_share": _mean(minor_exp, mask),
            "minority_true_share": _mean(minor_true, mask),
            "dominant_exposure_share": _mean(q_exp[rows, x.dominant], mask),
            "dominant_true_share": _mean(x.pi[rows, x.dominant], mask),
        }
    return metrics, details
