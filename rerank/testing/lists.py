"""The battery's reading of frames: ids, per-user candidates and per-user output lists.

* :func:`id_key` is an id's identity *whatever its kind* (``5``, ``5.0``, ``np.int64(5)`` and
  ``"5"`` give ``"5"``), so that an output id can be matched with its input id even when a
  reranker changed its kind — which ``ids-unchanged`` reports, not every other guarantee.
* :func:`exact_id` is ``(kind, value)``: the identity ``ids-unchanged`` compares.
* :class:`InputView` holds each user's candidates (item keys and input scores, input order).
* :class:`OutputView` holds each user's list: their output rows ordered by ``rank`` when the
  output has that column (ties and unreadable ranks: row order), else in row order.

Plain Python over the columns' ``tolist()`` (Python scalars for every pandas dtype).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import pandas as pd


def id_kind(value) -> str:
    """``"integer"``, ``"string"`` or the type's name (a float, a null, bytes, ...)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return "integer"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def id_key(value) -> str:
    """Identity regardless of kind: integral numbers by their integer, strings as they are."""
    kind = id_kind(value)
    if kind == "integer":
        return str(int(value))
    if kind == "string":
        return str(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
            and float(value).is_integer():
        return str(int(value))
    return repr(value)


def exact_id(value) -> tuple:
    """``(kind, value)``: equal only for the same id of the same kind."""
    kind = id_kind(value)
    return (kind, int(value) if kind == "integer" else str(value) if kind == "string" else repr(value))


def column_kind(series: pd.Series) -> str:
    """The id kind of an input column (its values' kind; ``"empty"`` without values)."""
    kinds = {id_kind(v) for v in series.tolist()}
    return kinds.pop() if len(kinds) == 1 else ("empty" if not kinds else "mixed")


def show(value) -> str:
    """An id as a message shows it: its repr (``5`` and ``'5'`` differ)."""
    return repr(value.item() if hasattr(value, "item") and not isinstance(value, str) else value)


@dataclass
class InputView:
    """A candidates frame per user: ``users`` (keys, first-appearance order), ``items[u]`` and
    ``scores[u]`` in input order, ``position[u][item]`` the local position, ``shown`` an original
    id per key (for messages)."""

    users: list = field(default_factory=list)
    items: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    position: dict = field(default_factory=dict)
    shown: dict = field(default_factory=dict)

    @classmethod
    def of(cls, candidates: pd.DataFrame) -> InputView:
        view = cls()
        for user, item, score in zip(candidates["user_id"].tolist(), candidates["item_id"].tolist(),
                                     candidates["score"].tolist(), strict=True):
            u, i = id_key(user), id_key(item)
            if u not in view.items:
                view.users.append(u)
                view.items[u], view.scores[u], view.position[u] = [], [], {}
            view.position[u][i] = len(view.items[u])
            view.items[u].append(i)
            view.scores[u].append(float(score))
            view.shown.setdefault(u, user)
            view.shown.setdefault(("item", i), item)
        return view

    def name(self, user_key) -> str:
        return show(self.shown.get(user_key, user_key))

    def item_name(self, item_key) -> str:
        return show(self.shown.get(("item", item_key), item_key))


@dataclass
class OutputView:
    """An output frame per user: ``lists[u]`` the item keys in list order, ``rows`` every row as
    ``(user key, item key, row position)``, ``shown`` an original id per key."""

    lists: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    shown: dict = field(default_factory=dict)

    @classmethod
    def of(cls, output: pd.DataFrame) -> OutputView:
        view = cls()
        users, items = output["user_id"].tolist(), output["item_id"].tolist()
        ranks = output["rank"].tolist() if "rank" in output.columns else [0] * len(users)
        grouped: dict = {}
        for row, (user, item, rank) in enumerate(zip(users, items, ranks, strict=True)):
            u, i = id_key(user), id_key(item)
            view.rows.append((u, i, row))
            view.shown.setdefault(u, user)
            view.shown.setdefault(("item", i), item)
            grouped.setdefault(u, []).append((_sortable(rank), row, i))
        for u, entries in grouped.items():
            try:
                entries.sort()
            except TypeError:  # unorderable ranks: keep the row order (``ranks`` reports them)
                entries.sort(key=lambda e: e[1])
            view.lists[u] = [i for _, _, i in entries]
        return view


def _sortable(rank):
    try:
        value = float(rank)
    except (TypeError, ValueError):
        return math.inf
    return value if not math.isnan(value) else math.inf


def well_formed(inputs: InputView, output: OutputView, user, k: int) -> bool:
    """The user's list is a shape the objective-based guarantees can judge: distinct items, all
    among the user's candidates, ``min(k, n)`` of them."""
    chosen = output.lists.get(user, [])
    known = inputs.position.get(user, {})
    return (len(set(chosen)) == len(chosen) == min(k, len(known)) and all(i in known for i in chosen))
