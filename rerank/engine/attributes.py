"""Several attributes in one objective (docs/design.md §9.1): which category column belongs to
which attribute, the attribute weights ``w_a`` (summing to 1), and what several attributes
refuse. The kernel reads them as one factor per category, ``w_{a(g)}``
(:attr:`rerank.engine.layout.CategoryCSR.weight`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rerank.engine.options import RerankOptions
from rerank.errors import InputError
from rerank.params import check_finite, float_array, int_array

__all__ = ["Attributes", "check_attributes", "refuse_attributes"]


class Attributes(NamedTuple):
    """Several attributes in one objective (docs/design.md §3): ``codes`` int64 (G) the attribute
    of each column of the category matrix, ``weights`` float64 (one per attribute, summing to 1).
    The divergence is ``Σ_a w_a C(p_a, q_a)``, each ``p_a`` / ``q_a`` over the attribute's columns."""

    codes: np.ndarray
    weights: np.ndarray

    @property
    def n_attributes(self) -> int:
        return int(self.weights.size)

    def category_weights(self) -> np.ndarray:
        """``w_{a(g)}`` per category: the factor of each category's divergence term."""
        return self.weights[self.codes]


def check_attributes(category_attribute, attribute_weights, n_cat: int) -> Attributes | None:
    """``category_attribute`` (G integers from 0: the attribute of each category) and
    ``attribute_weights`` (one nonnegative weight per attribute, normalised here to sum to 1;
    equal by default) → :class:`Attributes`; ``None`` when neither is given (one attribute)."""
    if category_attribute is None:
        if attribute_weights is not None:
            raise InputError("attribute_weights needs category_attribute (the attribute of each category)")
        return None
    codes = int_array("category_attribute", category_attribute)
    if codes.shape != (n_cat,):
        raise InputError(f"category_attribute must have one entry per category ({n_cat}), got shape {codes.shape}")
    if codes.size and codes.min() < 0:
        raise InputError("category_attribute must hold attribute numbers from 0")
    n_attr = int(codes.max(initial=-1)) + 1
    if attribute_weights is None:
        weights = np.ones(max(n_attr, 1), dtype=np.float64)
    else:
        weights = float_array("attribute_weights", attribute_weights)
        check_finite("attribute_weights", weights)
        if weights.size < n_attr:
            raise InputError(f"attribute_weights has {weights.size} values for {n_attr} attributes")
        if weights.size and weights.min() < 0:
            raise InputError("attribute_weights must be nonnegative")
    if not weights.sum() > 0:
        raise InputError("attribute_weights must not all be 0")
    return Attributes(codes, weights / weights.sum())


def refuse_attributes(attributes: Attributes | None, options: RerankOptions) -> None:
    """What several attributes do not support, refused with one clear message."""
    if attributes is None or attributes.n_attributes <= 1:
        return
    if options.divergence == "hellinger":
        raise InputError(
            "several attributes need a divergence that is a sum of per-category terms ('kl' or 'chi2'); "
            "Hellinger takes a square root per attribute"
        )
    if options.method == "pm2":
        raise InputError("method='pm2' calibrates one attribute; use method='greedy' with several attributes")
    if options.solver == "exact":
        raise InputError("solver='exact' (and rerank gap) solve one attribute; use solver='greedy' with several")
    if options.refine is not None:
        raise InputError("refine='swap' scores swaps on one attribute; use refine=None with several attributes")
