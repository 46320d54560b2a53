"""The frame-side pieces of issue 14 (docs/design.md §9) that ``CalibratedReranker`` uses:
attribute weights by name (§9.1), a ``shown=`` frame as the engine's prefix (§9.3) and the
explanation columns (§9.4)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd

from rerank import schemas
from rerank.engine.arrays import Attributes, RerankResult, check_attributes
from rerank.engine.explain import REASONS
from rerank.errors import InputError, InputTypeError
from rerank.frames import CandidateCSR, shown_prefix
from rerank.ids import id_array, text_keys
from rerank.report import reason_counts

__all__ = ["attributes_of", "explanation_columns", "report_fields", "shown_problem"]


def attributes_of(table, given) -> Attributes | None:
    """Several attributes: the attribute of each category and the normalised weights
    ``w_a`` (``attribute_weights`` by name; equal by default)."""
    if table.attributes is None:
        if given is not None:
            raise InputError("attribute_weights needs an 'attribute' column in item_categories")
        return None
    if given is None:
        return check_attributes(table.attribute_codes, None, len(table.categories))
    if not isinstance(given, Mapping | pd.Series):
        raise InputTypeError(f"attribute_weights must be a mapping attribute -> weight, got {type(given).__name__}")
    weights = pd.Series(given, dtype=object)
    unknown = weights.index.difference(table.attributes)
    if len(unknown):
        raise InputError(
            f"attribute_weights names attribute {unknown[0]!r}, which item_categories does not have "
            f"(attributes: {', '.join(map(str, table.attributes))})"
        )
    missing = table.attributes.difference(weights.index)
    if len(missing):
        raise InputError(f"attribute_weights has no weight for attribute {missing[0]!r}")
    values = weights.reindex(table.attributes).to_list()
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if bad:
        raise InputTypeError(f"attribute_weights values must be numbers, got {bad[0]!r}")
    return check_attributes(table.attribute_codes, np.asarray(values, dtype=np.float64), len(table.categories))


def shown_problem(shown, csr: CandidateCSR, item_rows, text: bool):
    """``(prefix, excluded)`` of a ``shown`` frame for the candidate users (``text``: ids meet
    across kinds by their decimal text, ``id_match="text"``; else the kinds must agree)."""
    checked = schemas.validate_shown(shown)
    if not text:
        schemas.check_same_id_kind(
            checked.user_kind, "shown column 'user_id'", csr.user_kind, "candidates column 'user_id'"
        )
        schemas.check_same_id_kind(
            checked.item_kind, "shown column 'item_id'", csr.item_kind, "candidates column 'item_id'"
        )
    return shown_prefix(checked, csr, item_rows, text_keys if text else id_array)


def explanation_columns(out: pd.DataFrame, result: RerankResult) -> pd.Series | None:
    """Add ``input_rank, score_gain, calibration_gain, reason`` (explain) and ``lam``
    (``lam="auto"``) to ``out`` in place; returns the reason counts (``None`` without explain)."""
    reasons = None
    if result.explanation is not None:
        why = result.explanation
        out["input_rank"] = why.input_rank
        out["score_gain"] = why.score_gain
        out["calibration_gain"] = why.calibration_gain
        out["reason"] = pd.array(np.asarray(REASONS, dtype=object)[why.reason], dtype="str")
        reasons = reason_counts(why.reason, REASONS)
    if result.lam is not None:
        out["lam"] = np.repeat(result.lam, np.diff(result.indptr))
    return reasons


def report_fields(users: pd.Index, result: RerankResult, reasons, options) -> dict:
    """The :class:`rerank.RerankReport` fields of issue 14: ``shown_removed``, ``reasons`` and,
    with ``lam="auto"``, ``lam`` / ``miscalibration`` per user and the budget."""

    def per_user(values, name):
        return None if values is None else pd.Series(values, index=pd.Index(users, name="user_id"), name=name)

    return {
        "shown_removed": per_user(result.shown_removed, "shown_removed"), "reasons": reasons,
        "lam": per_user(result.lam, "lam"), "miscalibration": per_user(result.miscalibration, "miscalibration"),
        "max_miscalibration": options.max_miscalibration,
    }
