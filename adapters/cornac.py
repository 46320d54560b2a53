"""``CornacAdapter``: candidates from a fitted `Cornac <https://cornac.preferred.ai>`_ model that
scores users (BPR, MF, PMF, WMF, MostPop, ... any ``Recommender`` whose ``score(user_idx)``
returns one score per item), in external ids.

Cornac keeps its own id maps and its own notion of who and what the model knows:

* ``model.uid_map`` / ``model.iid_map`` (the training set's maps) send *external* ids to
  internal indices. With an evaluation method (``RatioSplit``, ``BaseMethod.from_splits``)
  they are the *global* maps: they also hold users and items that occur only in the
  validation or test data, with indices ``>= model.num_users`` / ``>= model.num_items``.
* Such **users are cold**: the model was not trained on them (``model.knows_user(idx)`` is
  False; BPR then fails with an ``IndexError``, PMF with a ``ScoreException``, MF returns its
  biases). The adapter gives them no rows and **reports** them
  (``adapter.report_.cold_users``), or raises with ``on_cold="raise"``; an id in neither map
  is unknown and raises, as in every adapter.
* Such **items are not candidates**: the model never trained on them (BPR sizes its item
  table by the global map and returns scores from untrained factors for them; Cornac's own
  ``recommend`` ranks them). Candidates are the items with ``model.knows_item(idx)``.

Scores are the model's own: ``score(u, ·) = model.score(u)[:model.num_items]`` (float64),
one call per user (Cornac scores one user per call; the stacked block of scores then goes
through the batched selection of :class:`rerank.adapters.base.CandidateAdapter`). Seen items
are the stored entries of ``train_set.csr_matrix`` (row ``u``, internal indices) — what
``model.recommend(..., remove_seen=True, train_set=...)`` removes. Ties: higher score, then
lower internal item index (Cornac's ``rank`` reverses an ``argsort`` instead, which puts the
*higher* index first among equal scores).

``cornac`` is imported only when the adapter is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from rerank.adapters.base import CandidateAdapter, ids_from_mapping

from rerank.errors import InputError, InputTypeError
from rerank.params import check_choice, show

ON_COLD = ("report", "raise")


@dataclass(frozen=True)
class CornacCandidateReport:
    """``cold_users``: the requested users in Cornac's id map that the model was not trained
    on (no rows for them); ``n_users``: users the candidates were computed for."""

    n_users: int
    cold_users: pd.Index


def _cornac():
    try:
        import cornac.models
    except ImportError as exc:
        raise ImportError("CornacAdapter needs the 'cornac' package: pip install 'calibrated-rerank[cornac]'") from exc
    return cornac


def _split_map(mapping, n_known: int) -> tuple[pd.Index, pd.Index]:
    """``(known, unknown)`` external ids of a Cornac id map: ``known`` ordered by internal
    index ``0..n_known-1``, ``unknown`` the ids with an index ``>= n_known``."""
    known = {ext: idx for ext, idx in mapping.items() if idx < n_known}
    if len(known) != n_known:
        raise InputError(f"the Cornac id map has {len(known)} ids below index {n_known}, expected {n_known}")
    unknown = [ext for ext, idx in mapping.items() if idx >= n_known]
    return ids_from_mapping(known), pd.Index(unknown, dtype=object)


class CornacAdapter(CandidateAdapter):
    """Candidates from a fitted Cornac ``Recommender``.

    Parameters
    ----------
    model : a fitted Cornac model with ``score(user_idx)``.
    train_set : the ``cornac.data.Dataset`` it was fitted on, for ``exclude_seen`` (default:
        ``model.train_set``, which ``fit`` keeps; a model loaded from disk may not have it).
    batch_size : users per block (default: about 4M scores per block).
    """

    def __init__(self, model, train_set=None, *, batch_size=None):
        cornac = _cornac()
        if not isinstance(model, cornac.models.Recommender):
            raise InputTypeError(f"CornacAdapter needs a cornac.models.Recommender, got {type(model).__name__}")
        if getattr(model, "uid_map", None) is None or not getattr(model, "is_fitted", True):
            raise InputError(f"the Cornac model {model.name!r} is not fitted (no id maps)")
        self.model = model
        user_ids, self.cold_user_ids = _split_map(model.uid_map, int(model.num_users))
        item_ids, self.unknown_item_ids = _split_map(model.iid_map, int(model.num_items))
        if train_set is None:
            train_set = getattr(model, "train_set", None)
        user_items = None if train_set is None else train_set.csr_matrix
        self._init_common(len(user_ids), len(item_ids), user_items, user_ids, item_ids, batch_size)

    def candidates(self, users=None, n: int = 100, exclude_seen: bool = True, items=None, *,
                   on_cold: str = "report") -> pd.DataFrame:
        """:meth:`CandidateAdapter.candidates`, plus cold users: requested users that are in
        Cornac's id map but were not trained on get no rows and are listed in
        ``report_.cold_users`` (``on_cold="report"``), or raise (``on_cold="raise"``)."""
        check_choice("on_cold", on_cold, ON_COLD)
        cold = pd.Index([], dtype=object)
        if users is not None:
            asked = pd.Index(pd.unique(pd.Index(users)))
            is_cold = self.cold_user_ids.get_indexer(asked) >= 0
            cold = asked[is_cold]
            if len(cold) and on_cold == "raise":
                raise InputError(
                    f"user {show(cold[0])} is in Cornac's id map but the model was not trained on it "
                    f"(cold: {len(cold)} requested users)"
                )
            users = asked[~is_cold]
        frame = super().candidates(users, n=n, exclude_seen=exclude_seen, items=items)
        n_users = self.n_users if users is None else len(users)
        self.report_ = CornacCandidateReport(n_users=n_users, cold_users=cold)
        return frame

    def _score_block(self, rows, cols):
        block = np.empty((rows.size, self.n_items), dtype=np.float64)
        for r, u in enumerate(rows.tolist()):
            try:
                scores = np.asarray(self.model.score(u), dtype=np.float64).ravel()
            except Exception as exc:  # ScoreException, or an IndexError of a model's own
                raise InputError(
                    f"Cornac {self.model.name} cannot score user {show(self.user_ids[u])}: {exc}"
                ) from exc
            if scores.size < self.n_items:
                raise InputError(
                    f"Cornac {self.model.name}.score returned {scores.size} scores for user "
                    f"{show(self.user_ids[u])}, but the model knows {self.n_items} items"
                )
            block[r] = scores[: self.n_items]
        return block if cols is None else block[:, cols]
