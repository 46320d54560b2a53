"""Category distributions (docs/design.md §3): item categories, user targets, list distributions.

* Item categories ``A`` (items × G, CSR): row ``i`` is ``p(g|i)``; without weights an item's
  categories share its mass equally; each nonempty row sums to 1; an item without a category
  has an empty row (it adds no category mass to a list).
* Target of user ``u`` (Steck eq. 1): ``p(g|u) = Σ_{i∈H_u} w_ui p(g|i) / Σ_{i∈H_u} w_ui``.
  Items of the history without a category carry no mass, so the sum is renormalised over the
  mass that is there (``Σ_g p(g|u) = 1``). Optional ``w_ui``: a ``weight`` column (e.g. the
  rating) times a recency factor ``0.5 ** ((t_max(u) - t_ui) / half_life)``.
* List distribution (Steck eq. 2): ``q(g|L) = Σ_{r} w_r p(g|L_r) / Σ_r w_r`` with rank
  weights ``w_r``: ``"uniform"`` (1), ``"dcg"`` (``1 / log2(r + 1)``) or an array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rerank.engine.options import check_rank_weights, rank_weight_array
from rerank.schemas import history_times, validate_history, validate_item_categories


@dataclass(frozen=True)
class ItemCategories:
    """Item ids, category names and the row-normalised item × category CSR ``matrix``.

    With an ``attribute`` column (several attributes, docs/design.md §3) ``categories`` is a
    MultiIndex ``(attribute, category)`` sorted by attribute, ``attributes`` the attribute names
    and ``attribute_codes`` (G) the attribute of each column; each item's row sums to 1 *within*
    each attribute it has. Without one, ``attributes`` and ``attribute_codes`` are ``None``.
    """

    items: pd.Index
    categories: pd.Index
    matrix: sp.csr_matrix
    attributes: pd.Index | None = None
    attribute_codes: np.ndarray | None = None

    def rows_for(self, item_ids) -> np.ndarray:
        """Row of each item id; ``-1`` for items this table does not know."""
        return self.items.get_indexer(item_ids)

    @property
    def n_attributes(self) -> int:
        return 1 if self.attributes is None else len(self.attributes)

    def attribute_table(self, name) -> ItemCategories:
        """The one-attribute table of attribute ``name`` (its columns of ``matrix``)."""
        if self.attributes is None:
            raise KeyError(f"this item table has no attribute column (asked for {name!r})")
        code = self.attributes.get_loc(name)
        columns = np.flatnonzero(self.attribute_codes == code)
        return ItemCategories(
            self.items, pd.Index(self.categories.get_level_values(1)[columns]), self.matrix[:, columns].tocsr(),
        )


def item_categories_from_frame(frame, *, items=None) -> ItemCategories:
    """Build the row-normalised CSR ``A`` from a long frame ``item_id, category[, weight]``
    (or the :class:`rerank.schemas.CheckedItemCategories` it was validated into).

    ``p(g|i) = w_ig / Σ_g' w_ig'`` (``w = 1`` without a ``weight`` column). Repeated
    (item, category) rows add up. ``items``, if given, are placed first in the item index
    (items without categories get empty rows).
    """
    checked = validate_item_categories(frame)  # a checked frame passes through unchecked
    frame, weights = checked.frame, checked.weights
    item_index = pd.Index(pd.unique(frame["item_id"]))
    if items is not None:
        item_index = pd.Index(pd.unique(pd.Index(items).append(item_index)))
    rows = item_index.get_indexer(frame["item_id"])
    if "attribute" not in frame.columns:
        cat_codes, cat_index = pd.factorize(frame["category"], sort=True)
        matrix = sp.csr_matrix(
            (weights, (rows, cat_codes)), shape=(len(item_index), len(cat_index)), dtype=np.float64
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return ItemCategories(item_index, pd.Index(cat_index), normalize_rows(matrix))
    # several attributes: one column per (attribute, category), sorted by attribute then category
    attr_codes, attributes = pd.factorize(frame["attribute"], sort=True)
    within_codes, within = pd.factorize(frame["category"], sort=True)
    pair = attr_codes.astype(np.int64) * max(len(within), 1) + within_codes
    pair_codes, pairs = pd.factorize(pair, sort=True)
    pairs = np.asarray(pairs, dtype=np.int64)
    pair_attr = pairs // max(len(within), 1)
    categories = pd.MultiIndex.from_arrays(
        [attributes[pair_attr], within[pairs % max(len(within), 1)]], names=["attribute", "category"]
    )
    matrix = sp.csr_matrix(
        (weights, (rows, pair_codes)), shape=(len(item_index), len(categories)), dtype=np.float64
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return ItemCategories(
        item_index, categories, normalize_blocks(matrix, pair_attr), pd.Index(attributes, name="attribute"),
        pair_attr,
    )


def normalize_blocks(matrix: sp.spmatrix, codes: np.ndarray | None) -> sp.csr_matrix:
    """Scale each row to sum 1 within each attribute block (columns with the same ``codes``);
    empty blocks stay empty. ``codes=None``: one block (:func:`normalize_rows`)."""
    if codes is None:
        return normalize_rows(matrix)
    coo = sp.coo_matrix(matrix, dtype=np.float64)
    n_attr = int(codes.max(initial=-1)) + 1
    block = codes[coo.col]
    sums = np.zeros((matrix.shape[0], max(n_attr, 1)))
    np.add.at(sums, (coo.row, block), coo.data)
    denom = sums[coo.row, block]
    data = np.divide(coo.data, denom, out=np.zeros_like(coo.data), where=denom > 0)
    out = sp.csr_matrix((data, (coo.row, coo.col)), shape=matrix.shape)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def normalize_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Scale each nonempty row to sum 1; empty (or all-zero) rows stay empty."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    matrix = sp.csr_matrix(sp.diags(scale) @ matrix)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def history_weights(history, half_life: float | None = None) -> np.ndarray:
    """``w_ui``: the ``weight`` column (1 if absent) times the recency factor, for a history
    frame or the :class:`rerank.schemas.CheckedHistory` it was validated into.

    Recency: ``0.5 ** ((t_max(u) - t_ui) / half_life)`` where ``t_max(u)`` is the user's latest
    timestamp; the per-user reference cancels in the normalisation of ``p(g|u)``
    (``half_life`` is checked by the caller: ``CalibratedReranker.build_options``).
    """
    checked = validate_history(history)  # a checked frame passes through unchecked
    history, weights = checked.frame, checked.weights
    if half_life is not None:
        t = history_times(history)
        latest = pd.Series(t).groupby(history["user_id"].to_numpy()).transform("max").to_numpy()
        weights = weights * np.power(0.5, (latest - t) / float(half_life))
    return weights


def _interactions(user_codes, item_rows, weights, n_users: int, n_items: int) -> sp.csr_matrix:
    """``W[u, i] = Σ w_ui`` as a sparse users × items matrix; items with row ``-1`` are left out."""
    known = item_rows >= 0
    return sp.csr_matrix((weights[known], (user_codes[known], item_rows[known])), shape=(n_users, n_items))


def _normalized_mass(
    interactions: sp.csr_matrix, categories: sp.csr_matrix, attribute_codes: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``normalize_rows(W @ A)`` as CSR (each user's nonzero categories only) and the mask of
    rows with mass; a row's total is the sum of its entries in category order. With several
    attributes (``attribute_codes``, the attribute of each column) each attribute's block of a
    row is normalised on its own, ``p(g|u) = m_ug / Σ_{g' in a(g)} m_ug'``; a block without
    mass stays empty and the mask is "mass in some attribute"."""
    n_users = interactions.shape[0]
    mass = sp.csr_matrix(interactions @ categories)
    mass.eliminate_zeros()
    mass.sort_indices()
    lengths = np.diff(mass.indptr)
    if attribute_codes is None:  # (no temporary kept across the division: the fit's peak memory)
        totals = np.bincount(np.repeat(np.arange(n_users), lengths), weights=mass.data, minlength=n_users)
        has_mass = totals > 0
        mass.data /= np.repeat(np.where(has_mass, totals, 1.0), lengths)
        return mass, has_mass
    n_attr = max(int(attribute_codes.max(initial=-1)) + 1, 1)
    cell = np.repeat(np.arange(n_users), lengths) * n_attr + attribute_codes[mass.indices]
    totals = np.bincount(cell, weights=mass.data, minlength=n_users * n_attr)
    denom = totals[cell]
    mass.data = np.divide(mass.data, denom, out=np.zeros_like(mass.data), where=denom > 0)
    mass.eliminate_zeros()
    return mass, (totals.reshape(n_users, n_attr) > 0).any(axis=1)


def sparse_targets(
    user_codes: np.ndarray, item_rows: np.ndarray, weights: np.ndarray, n_users: int,
    categories: sp.csr_matrix, attribute_codes: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``p(g|u)`` as a CSR matrix (n_users × G, float64, each user's nonzero categories only)
    and a mask of users with category mass; never a dense users × G array.

    ``p = normalize_rows(W @ A)`` where ``W[u, i] = Σ w_ui`` (a sparse users × items matrix).
    Items with row ``-1`` (unknown) carry no mass. Users without mass get an empty row and
    ``False`` in the mask. A user's row depends on that user's history rows only (so a fit
    batch by batch gives the same targets as one fit on everything). ``attribute_codes``: each
    attribute's block normalised on its own (:func:`_normalized_mass`).
    """
    interactions = _interactions(user_codes, item_rows, weights, n_users, categories.shape[0])
    return _normalized_mass(interactions, categories, attribute_codes)


def target_blocks(
    user_codes: np.ndarray, item_rows: np.ndarray, weights: np.ndarray, n_users: int,
    categories: sp.csr_matrix, block_bytes: int = 32 << 20, min_rows: int = 1024,
    attribute_codes: np.ndarray | None = None,
):
    """:func:`sparse_targets` a block of users at a time (issue 17, finding 18: a fit peaked at
    4.5× the dense users × G table): yields ``(warm, targets)`` per block, ``warm`` the codes
    of the block's users with mass (ascending) and ``targets`` their CSR rows — the same
    numbers, bit for bit, as one :func:`sparse_targets` call (a row depends on its user only).

    A block holds at most ``block_bytes`` of dense float64 rows and an eighth of the users
    (but at least ``min_rows`` users), so the product ``W @ A`` of one block is all that is
    held besides the stored targets.
    """
    interactions = _interactions(user_codes, item_rows, weights, n_users, categories.shape[0])
    row_bytes = 8 * max(categories.shape[1], 1)
    block_rows = max(1, min_rows, min(block_bytes // row_bytes, n_users // 8))
    for start in range(0, n_users, block_rows):
        stop = min(start + block_rows, n_users)
        mass, has_mass = _normalized_mass(interactions[start:stop], categories, attribute_codes)
        if has_mass.all():
            yield np.arange(start, stop), mass
        else:
            warm = np.flatnonzero(has_mass)
            yield warm + start, mass[warm]


def target_distributions(
    user_codes: np.ndarray, item_rows: np.ndarray, weights: np.ndarray, n_users: int,
    categories: sp.csr_matrix, attribute_codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``p(g|u)`` (n_users × G) and a mask of users with category mass: the dense form
    of :func:`sparse_targets` (for small problems; the reranker stores targets compactly,
    :mod:`rerank.targets`). With several attributes a block without mass stays zero here
    (the fitted table fills it from the population when read: :meth:`rerank.targets.TargetTable.dense`)."""
    targets, has_mass = sparse_targets(user_codes, item_rows, weights, n_users, categories, attribute_codes)
    return targets.toarray(), has_mass


def population_distribution(targets: np.ndarray, has_mass: np.ndarray) -> np.ndarray:
    """Fallback target for cold users: the mean of the warm users' ``p(g|u)`` (dense targets, one
    attribute; the fitted reranker's table computes it per attribute, :mod:`rerank.targets`).

    Uniform over categories when no user has mass.
    """
    n_cat = targets.shape[1]
    if not has_mass.any():
        return np.full(n_cat, 1.0 / max(n_cat, 1))
    warm = targets if has_mass.all() else targets[has_mass]  # no copy when every row is warm
    mean = warm.mean(axis=0)
    return mean / mean.sum()


def rank_weights(spec, k: int) -> np.ndarray:
    """Rank weights ``w_1..w_k``: ``"uniform"`` (all 1), ``"dcg"`` (``1/log2(r+1)``), or an
    array of at least ``k`` positive finite values (the first ``k`` are used)."""
    return rank_weight_array(check_rank_weights(spec, k), k)


def list_distributions(
    indptr: np.ndarray, item_rows: np.ndarray, categories: sp.csr_matrix, weights: np.ndarray,
) -> np.ndarray:
    """Dense ``q(g|L_u)`` for lists in CSR form (position r of a list gets ``weights[r]``).

    ``q = D⁻¹ (R @ A)`` with ``R[u, i] = w_{r(i)}`` and ``D_u = Σ_r w_r`` over the list's
    positions. Unknown items (row ``-1``) and items without categories add no mass but still
    count in ``D_u``. Empty lists give a zero row.
    """
    n_lists = len(indptr) - 1
    lengths = np.diff(indptr)
    positions = np.arange(len(item_rows)) - np.repeat(indptr[:-1], lengths)
    if lengths.size and lengths.max(initial=0) > len(weights):
        raise ValueError(f"a list has {lengths.max()} items but only {len(weights)} rank weights")
    w = weights[positions]
    owners = np.repeat(np.arange(n_lists), lengths)
    known = item_rows >= 0
    placed = sp.csr_matrix(
        (w[known], (owners[known], item_rows[known])), shape=(n_lists, categories.shape[0])
    )
    mass = (placed @ categories).toarray()
    denom = np.bincount(owners, weights=w, minlength=n_lists)
    return np.divide(mass, denom[:, None], out=np.zeros_like(mass), where=denom[:, None] > 0)
