"""Evaluation metrics, per user (a Series/DataFrame indexed by ``user_id``) and averaged.

Inputs: ``recs`` a frame ``user_id, item_id, rank`` (rank from 1); ``targets`` a DataFrame of
``p(g|u)`` (index ``user_id``, one column per category, e.g.
``CalibratedReranker.target_distributions(users)``); ``item_categories`` an
:class:`~rerank.distributions.ItemCategories` or the long frame ``item_id, category[, weight]``.
Everything is vectorised over users (sparse products, ``bincount``); nothing builds a dense
users × items matrix.

Conventions for undefined cases (documented, never a silent NaN in an average):
per-user values that are undefined are NaN in the per-user output and skipped by
:func:`summarize`, which also reports how many users were skipped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank.distributions import ItemCategories, item_categories_from_frame, list_distributions
from rerank.distributions import rank_weights as make_rank_weights
from rerank.engine.divergences import divergence as divergence_rows
from rerank.schemas import require_columns


def _as_table(item_categories) -> ItemCategories:
    if isinstance(item_categories, ItemCategories):
        return item_categories
    return item_categories_from_frame(item_categories)


def _lists(recs: pd.DataFrame) -> tuple[pd.Index, np.ndarray, pd.Index]:
    """Lists in rank order: user ids, CSR ``indptr`` and the item ids."""
    require_columns(recs, ["user_id", "item_id", "rank"], "recommendations")
    codes, users = pd.factorize(recs["user_id"], sort=False)
    order = np.lexsort((recs["rank"].to_numpy(), codes))
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes, minlength=len(users)), out=indptr[1:])
    return pd.Index(users, name="user_id"), indptr, pd.Index(recs["item_id"].to_numpy()[order])


def _aligned_targets(targets: pd.DataFrame, users: pd.Index, table: ItemCategories) -> np.ndarray:
    missing = users.difference(targets.index)
    if len(missing):
        raise ValueError(f"targets has no row for user {missing[0]!r}")
    return targets.reindex(index=users, columns=table.categories, fill_value=0.0).to_numpy(dtype=np.float64)


def list_and_target(recs, targets, item_categories, rank_weights="uniform"):
    """``(users, p, q)``: target and list distributions (users × G), aligned on categories."""
    table = _as_table(item_categories)
    users, indptr, items = _lists(recs)
    longest = int(np.diff(indptr).max(initial=0))
    weights = make_rank_weights(rank_weights, max(longest, 1))
    q = list_distributions(indptr, table.rows_for(items), table.matrix, weights)
    return users, _aligned_targets(targets, users, table), q


def miscalibration(recs, targets, item_categories, divergence="kl", alpha=0.01, rank_weights="uniform") -> pd.Series:
    """``C(p(·|u), q(·|L_u))`` per user (KL, Hellinger or χ²; docs/design.md §3)."""
    users, p, q = list_and_target(recs, targets, item_categories, rank_weights)
    return pd.Series(divergence_rows(p, q, divergence, alpha), index=users, name=f"miscalibration_{divergence}")


def category_coverage(recs, targets, item_categories) -> pd.Series:
    """Share of the user's target categories (``p_g > 0``) that the list carries (``q_g > 0``).

    NaN for a user whose target is empty.
    """
    users, p, q = list_and_target(recs, targets, item_categories)
    wanted = p > 0
    n_wanted = wanted.sum(axis=1)
    covered = (wanted & (q > 0)).sum(axis=1)
    values = np.divide(covered, n_wanted, out=np.full(len(users), np.nan), where=n_wanted > 0)
    return pd.Series(values, index=users, name="category_coverage")


def minority_share(recs, targets, item_categories, rank_weights="uniform") -> pd.Series:
    """Mass the list gives the user's minority interests over the mass the target gives them.

    Minority categories ``M_u = {g : p_g > 0, g ≠ argmax p}``;
    ``share_u = Σ_{g∈M_u} q_g / Σ_{g∈M_u} p_g`` (1 = proportional, 0 = crowded out).
    NaN for users with a single interest (no minority to serve).
    """
    users, p, q = list_and_target(recs, targets, item_categories, rank_weights)
    minority = p > 0
    if len(users):
        minority[np.arange(len(users)), p.argmax(axis=1)] = False
    p_minor = np.where(minority, p, 0.0).sum(axis=1)
    q_minor = np.where(minority, q, 0.0).sum(axis=1)
    values = np.divide(q_minor, p_minor, out=np.full(len(users), np.nan), where=p_minor > 0)
    return pd.Series(values, index=users, name="minority_share")


def precision_recall_ndcg(recs: pd.DataFrame, held_out: pd.DataFrame, k: int) -> pd.DataFrame:
    """Accuracy at k against held-out items (binary relevance), per user of ``recs``.

    ``precision = hits@k / k``, ``recall = hits@k / |H_u|``,
    ``ndcg = Σ_{r≤k, L_r∈H_u} 1/log2(r+1) / Σ_{r≤min(k,|H_u|)} 1/log2(r+1)``.
    Users without held-out items get NaN (they cannot be judged).
    """
    require_columns(held_out, ["user_id", "item_id"], "held_out")
    users, indptr, items = _lists(recs)
    lengths = np.diff(indptr)
    ranks = np.arange(len(items)) - np.repeat(indptr[:-1], lengths) + 1
    owners = np.repeat(np.arange(len(users)), lengths)
    keep = ranks <= k
    held = held_out[["user_id", "item_id"]].drop_duplicates()
    held_codes = users.get_indexer(held["user_id"])
    held = held[held_codes >= 0]
    n_held = np.bincount(held_codes[held_codes >= 0], minlength=len(users)).astype(np.float64)
    pairs = pd.MultiIndex.from_arrays([held["user_id"], held["item_id"]])
    hit = pairs.get_indexer(pd.MultiIndex.from_arrays([users.take(owners), items])) >= 0
    hit &= keep
    gains = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
    hits = np.bincount(owners, weights=hit.astype(np.float64), minlength=len(users))
    dcg = np.bincount(owners, weights=gains, minlength=len(users))
    discount = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = discount[np.minimum(n_held, k).astype(np.int64)]
    judged = n_held > 0
    nan = np.full(len(users), np.nan)
    return pd.DataFrame(
        {
            "precision": np.where(judged, hits / k, np.nan),
            "recall": np.divide(hits, n_held, out=nan.copy(), where=judged),
            "ndcg": np.divide(dcg, idcg, out=nan.copy(), where=judged),
        },
        index=users,
    )


def intra_list_diversity(recs, item_categories) -> pd.Series:
    """Mean pairwise category distance ``1 - cos(A_a, A_b)`` over the pairs of a list.

    With unit rows ``â``: ``Σ_{a≠b} cos = ||Σ_a â||² - m`` (``m`` items with a category), so
    ``ILD = 1 - (||Σ_a â||² - m) / (n (n-1))``. Items without a category count as dissimilar
    to everything (cos 0). NaN for lists shorter than 2.
    """
    table = _as_table(item_categories)
    users, indptr, items = _lists(recs)
    rows = table.rows_for(items)
    lengths = np.diff(indptr)
    owners = np.repeat(np.arange(len(users)), lengths)
    norms = np.sqrt(np.asarray(table.matrix.multiply(table.matrix).sum(axis=1)).ravel())
    unit = table.matrix.multiply(1.0 / np.where(norms > 0, norms, 1.0)[:, None]).tocsr()
    known = rows >= 0
    member = sp.csr_matrix(
        (np.ones(known.sum()), (owners[known], rows[known])), shape=(len(users), table.matrix.shape[0])
    )
    summed = (member @ unit).toarray()
    m = np.bincount(owners[known], weights=(norms[rows[known]] > 0).astype(float), minlength=len(users))
    pairs = lengths * (lengths - 1.0)
    sim = (summed**2).sum(axis=1) - m
    values = np.divide(sim, pairs, out=np.full(len(users), np.nan), where=pairs > 0)
    return pd.Series(1.0 - values, index=users, name="intra_list_diversity")


def catalogue_coverage(recs: pd.DataFrame, n_items: int) -> float:
    """Distinct recommended items over the catalogue size."""
    if n_items <= 0:
        raise ValueError(f"n_items must be > 0, got {n_items}")
    return recs["item_id"].nunique() / n_items


def gini(values) -> float:
    """Gini coefficient of nonnegative values: ``Σ_i (2i - n - 1) x_(i) / (n Σ x)`` (sorted)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def exposure_gini(recs: pd.DataFrame, catalogue=None, rank_weights="uniform") -> float:
    """Gini of item exposure; an item's exposure is the sum of its rank weights over all lists.

    ``catalogue`` (item ids) adds zero-exposure items that were never recommended.
    """
    require_columns(recs, ["item_id", "rank"], "recommendations")
    ranks = recs["rank"].to_numpy(dtype=np.int64)
    weights = make_rank_weights(rank_weights, int(ranks.max(initial=1)))
    exposure = pd.Series(weights[ranks - 1]).groupby(recs["item_id"].to_numpy()).sum()
    if catalogue is not None:
        exposure = exposure.reindex(pd.Index(pd.unique(pd.Index(catalogue).append(exposure.index))), fill_value=0.0)
    return gini(exposure.to_numpy())


def summarize(recs, targets, item_categories, held_out=None, k: int | None = None, n_items: int | None = None) -> dict:
    """Averages over users of every metric (NaN per-user values skipped and counted)."""
    table = _as_table(item_categories)
    out: dict[str, float] = {}
    for name in ("kl", "hellinger", "chi2"):
        out[f"miscalibration_{name}"] = float(miscalibration(recs, targets, table, name).mean())
    share = minority_share(recs, targets, table)
    out["minority_share"] = float(share.mean())
    out["users_without_minority"] = int(share.isna().sum())
    out["category_coverage"] = float(category_coverage(recs, targets, table).mean())
    out["intra_list_diversity"] = float(intra_list_diversity(recs, table).mean())
    if held_out is not None:
        if k is None:
            raise ValueError("k is needed with held_out")
        acc = precision_recall_ndcg(recs, held_out, k)
        out.update({name: float(acc[name].mean()) for name in acc.columns})
        out["users_without_held_out"] = int(acc["precision"].isna().sum())
    if n_items is not None:
        out["catalogue_coverage"] = catalogue_coverage(recs, n_items)
    out["exposure_gini"] = exposure_gini(recs, catalogue=table.items if n_items is None else None)
    return out
