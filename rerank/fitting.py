"""Fitting the targets of ``CalibratedReranker.fit`` (docs/design.md §3, "Fit memory"): the
history, one frame or a stream of frames holding whole users, batch by batch into the compact
:class:`rerank.targets.TargetTable`; each batch's users a block at a time
(:func:`rerank.distributions.target_blocks`), so no dense users × categories table is held.
Item ids are compared exactly (:mod:`rerank.ids`); with ``id_match="text"`` integer item ids
meet string ones by their decimal text.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping

import pandas as pd

from rerank import schemas
from rerank.distributions import history_weights, item_categories_from_frame, target_blocks
from rerank.errors import InputTypeError
from rerank.ids import id_array, lookup, text_keys
from rerank.targets import TargetBuilder

__all__ = ["exact_items", "fit_targets", "history_batches"]


def fit_targets(history, checked_categories, half_life, target_dtype: str, id_match: str) -> tuple:
    """``(item table, TargetTable, id kinds)`` of a fit: Steck eq. 1 per user with mass
    (:func:`rerank.distributions.sparse_targets`), users in order of first appearance."""
    table = None
    builder = None
    kinds = {"user_id": schemas.ID_EMPTY, "item_id": checked_categories.item_kind}
    for batch in history_batches(history):
        checked = schemas.validate_history(batch)
        if id_match == "text":
            checked, text_categories = _items_as_text_where_kinds_differ(checked, checked_categories)
            if table is None:  # the first batch decides whether the table's items are text
                checked_categories = text_categories
                kinds["item_id"] = checked_categories.item_kind
        schemas.check_same_id_kind(
            checked.item_kind, "history column 'item_id'", checked_categories.item_kind,
            "item_categories column 'item_id'",
        )
        schemas.check_same_id_kind(
            checked.user_kind, "history column 'user_id'", kinds["user_id"], "an earlier history batch's user_id"
        )
        if table is None:
            table = exact_items(item_categories_from_frame(checked_categories))
            builder = TargetBuilder(len(table.categories), target_dtype, table.attribute_codes)
        if kinds["user_id"] == schemas.ID_EMPTY:
            kinds["user_id"] = checked.user_kind
        if kinds["item_id"] == schemas.ID_EMPTY:
            kinds["item_id"] = checked.item_kind
        weights = history_weights(checked, half_life)
        frame = checked.frame
        user_codes, users = pd.factorize(id_array(frame["user_id"]), sort=False)
        users = pd.Index(users)
        item_rows = lookup(table.items, id_array(frame["item_id"]))
        for warm, targets in target_blocks(user_codes, item_rows, weights, len(users), table.matrix,
                                           attribute_codes=table.attribute_codes):
            builder.add(users.take(warm), targets)
    if table is None:  # an iterable without batches: no history at all
        table = exact_items(item_categories_from_frame(checked_categories))
        builder = TargetBuilder(len(table.categories), target_dtype, table.attribute_codes)
    return table, builder.finish(), kinds


def history_batches(history) -> Iterable:
    """The history as an iterable of frames: one frame, the batches of a Parquet dataset, or
    the frames of an iterable (each holding whole users)."""
    if isinstance(history, pd.DataFrame | schemas.CheckedHistory):
        return [history]
    if isinstance(history, str | os.PathLike):
        from rerank.history import parquet_history

        return parquet_history(history)
    if isinstance(history, Iterable) and not isinstance(history, Mapping | bytes):
        return history
    raise InputTypeError(
        "history must be a pandas DataFrame, the path of a Parquet file or folder, or an iterable of "
        f"DataFrames holding whole users; got {type(history).__name__}"
    )


def exact_items(table):
    """``table`` with its item ids held exactly as numpy keys (:func:`rerank.ids.id_array`), so
    every lookup compares them exactly."""
    return dataclasses.replace(table, items=pd.Index(id_array(table.items)))


def _items_as_text_where_kinds_differ(history, categories):
    """``id_match="text"``: when the history and the item categories hold item ids of different
    kinds, the integer side is compared by its decimal text (the frames themselves are not
    changed; fitting works on a copy of the column)."""
    kinds = {history.item_kind, categories.item_kind}
    if kinds != {schemas.ID_INTEGER, schemas.ID_STRING}:
        return history, categories
    if history.item_kind == schemas.ID_INTEGER:
        frame = history.frame.assign(item_id=text_keys(history.frame["item_id"]))
        return dataclasses.replace(history, frame=frame, item_kind=schemas.ID_STRING), categories
    frame = categories.frame.assign(item_id=text_keys(categories.frame["item_id"]))
    return history, dataclasses.replace(categories, frame=frame, item_kind=schemas.ID_STRING)


def category_warnings(categories) -> tuple[str, ...]:
    """Pipe-joined category strings (``"Action|Comedy"``, the way MovieLens ships genres) are
    valid but almost never meant: each would be one category of its own."""
    if categories.category_kind != schemas.ID_STRING or not len(categories.frame):
        return ()
    names = pd.Series(pd.unique(categories.frame["category"]), dtype=object)
    joined = names[names.str.contains("|", regex=False).to_numpy(dtype=bool)]
    if not len(joined):
        return ()
    return (
        f"item_categories column 'category' holds {len(joined)} values joined with '|' (e.g. {joined.iloc[0]!r}); "
        "each counts as one category of its own. If they list several categories, give one row per "
        "(item, category): frame.assign(category=frame['category'].str.split('|')).explode('category')",
    )
