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


def minority_mask(p: np.ndarray) -> np.ndarray:
    """``M_u`` as a users × G boolean mask: ``p_g > 0`` and ``g`` is not the user's top category.

    The top category is ``argmax_g p_g``; ties go to the first in category order (the column
    order of ``p``: the item-categories table's, sorted names for a frame). A user whose target
    is empty or has one category gets an empty ``M_u``.
    """
    mask = np.asarray(p) > 0
    if len(mask):
        mask[np.arange(len(mask)), np.argmax(p, axis=1)] = False
    return mask


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` where the denominator is positive, NaN elsewhere."""
    return np.divide(numerator, denominator, out=np.full(len(denominator), np.nan), where=denominator > 0)


def _category_coverage(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    wanted = p > 0
    return _ratio((wanted & (q > 0)).sum(axis=1).astype(np.float64), wanted.sum(axis=1).astype(np.float64))


def _minority_share(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    minority = minority_mask(p)
    return _ratio(np.where(minority, q, 0.0).sum(axis=1), np.where(minority, p, 0.0).sum(axis=1))


def _minority_attainment(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    minority = minority_mask(p)
    return _ratio(np.where(minority, np.minimum(q, p), 0.0).sum(axis=1), np.where(minority, p, 0.0).sum(axis=1))


def _minority_missing(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    minority = minority_mask(p)
    return _ratio((minority & (q == 0)).sum(axis=1).astype(np.float64), minority.sum(axis=1).astype(np.float64))


def category_coverage(recs, targets, item_categories) -> pd.Series:
    """Share of the user's target categories (``p_g > 0``) that the list carries (``q_g > 0``).

    NaN for a user whose target is empty.
    """
    users, p, q = list_and_target(recs, targets, item_categories)
    return pd.Series(_category_coverage(p, q), index=users, name="category_coverage")


def minority_share(recs, targets, item_categories, rank_weights="uniform") -> pd.Series:
    """Mass the list gives the user's minority interests over the mass the target gives them.

    ``share_u = Σ_{g∈M_u} q_g / Σ_{g∈M_u} p_g`` with ``M_u`` of :func:`minority_mask`
    (1 = proportional, 0 = crowded out). NaN for users with no minority interest.

    A ratio of sums: an item with several categories puts mass on several minority categories
    at once, and over-serving one minority category makes up for leaving another out. On a
    multi-genre catalogue (MovieLens) it sits near 1 whatever the list; use
    :func:`minority_attainment` and :func:`minority_missing` to see the minor interests.
    """
    users, p, q = list_and_target(recs, targets, item_categories, rank_weights)
    return pd.Series(_minority_share(p, q), index=users, name="minority_share")


def minority_attainment(recs, targets, item_categories, rank_weights="uniform") -> pd.Series:
    """Share of the minority-interest target the list attains, category by category.

    ``attainment_u = Σ_{g∈M_u} min(q_g, p_g) / Σ_{g∈M_u} p_g`` with ``M_u`` of
    :func:`minority_mask` and ``q`` under ``rank_weights`` (as :func:`miscalibration`). It lies
    in [0, 1]; 1 means every minority interest got at least its share. Over-serving one category
    cannot make up for leaving another out. NaN for users with no minority interest.
    """
    users, p, q = list_and_target(recs, targets, item_categories, rank_weights)
    return pd.Series(_minority_attainment(p, q), index=users, name="minority_attainment")


def minority_missing(recs, targets, item_categories, rank_weights="uniform") -> pd.Series:
    """Share of the user's minority interests the list leaves out entirely.

    ``missing_u = |{g ∈ M_u : q_g = 0}| / |M_u|`` (``M_u`` of :func:`minority_mask`). NaN for
    users with no minority interest.
    """
    users, p, q = list_and_target(recs, targets, item_categories, rank_weights)
    return pd.Series(_minority_missing(p, q), index=users, name="minority_missing")


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


def user_metrics(
    recs, targets, item_categories, held_out=None, k: int | None = None, rank_weights="uniform", alpha: float = 0.01
) -> pd.DataFrame:
    """Every per-user metric in one frame (index ``user_id``, the users of ``recs``), from one
    computation of ``p`` and ``q``.

    Columns: ``miscalibration_kl``, ``miscalibration_hellinger``, ``miscalibration_chi2`` (α =
    ``alpha``), ``minority_attainment``, ``minority_missing``, ``minority_share``,
    ``category_coverage``; with ``held_out`` and ``k`` also ``precision``, ``recall``, ``ndcg``.
    Undefined values are NaN as in the single-metric functions.

    Several attributes (an item table with an ``attribute`` column, docs/design.md §3): every
    category metric is computed per attribute, on that attribute's own ``p_a`` and ``q_a``, in
    columns ``name[attribute]`` (e.g. ``miscalibration_kl[genre]``); no unsuffixed blend.
    """
    table = _as_table(item_categories)
    if table.n_attributes > 1:
        frame = pd.concat(
            [
                user_metrics(recs, targets[name], table.attribute_table(name), rank_weights=rank_weights, alpha=alpha)
                .add_suffix(f"[{name}]")
                for name in table.attributes
            ],
            axis=1,
        )
        if held_out is not None:
            if k is None:
                raise ValueError("k is needed with held_out")
            frame = frame.join(precision_recall_ndcg(recs, held_out, k))
        return frame
    users, p, q = list_and_target(recs, targets, table, rank_weights)
    frame = pd.DataFrame(
        {f"miscalibration_{name}": divergence_rows(p, q, name, alpha) for name in ("kl", "hellinger", "chi2")},
        index=users,
    )
    frame["minority_attainment"] = _minority_attainment(p, q)
    frame["minority_missing"] = _minority_missing(p, q)
    frame["minority_share"] = _minority_share(p, q)
    frame["category_coverage"] = _category_coverage(p, q)
    if held_out is not None:
        if k is None:
            raise ValueError("k is needed with held_out")
        frame = frame.join(precision_recall_ndcg(recs, held_out, k))
    return frame


def summarize(recs, targets, item_categories, held_out=None, k: int | None = None, n_items: int | None = None) -> dict:
    """Averages over users of every metric (NaN per-user values skipped and counted). Several
    attributes: the category metrics per attribute, keys ``name[attribute]``."""
    table = _as_table(item_categories)
    if table.n_attributes > 1:
        out = {}
        for name in table.attributes:
            part = summarize(recs, targets[name], table.attribute_table(name))
            out.update({f"{key}[{name}]": value for key, value in part.items() if key != "exposure_gini"})
        per_user = precision_recall_ndcg(recs, held_out, k) if held_out is not None else None
        return out | _list_level(recs, table, per_user, n_items)
    per_user = user_metrics(recs, targets, table, held_out, k)
    out: dict[str, float] = {}
    for name in ("kl", "hellinger", "chi2"):
        out[f"miscalibration_{name}"] = float(per_user[f"miscalibration_{name}"].mean())
    for name in ("minority_attainment", "minority_missing", "minority_share"):
        out[name] = float(per_user[name].mean())
    out["users_without_minority"] = int(per_user["minority_attainment"].isna().sum())
    out["category_coverage"] = float(per_user["category_coverage"].mean())
    out["intra_list_diversity"] = float(intra_list_diversity(recs, table).mean())
    return out | _list_level(recs, table, per_user if held_out is not None else None, n_items)


def _list_level(recs, table, accuracy, n_items) -> dict:
    """The metrics that do not depend on an attribute: mean precision / recall / nDCG over
    users with held-out items (``accuracy``: per-user columns, or ``None`` without held-out
    data), catalogue coverage (with ``n_items``) and the exposure Gini."""
    out: dict[str, float] = {}
    if accuracy is not None:
        out.update({name: float(accuracy[name].mean()) for name in ("precision", "recall", "ndcg")})
        out["users_without_held_out"] = int(accuracy["precision"].isna().sum())
    if n_items is not None:
        out["catalogue_coverage"] = catalogue_coverage(recs, n_items)
    out["exposure_gini"] = exposure_gini(recs, catalogue=table.items if n_items is None else None)
    return out
