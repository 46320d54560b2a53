"""The adapter contract, checked the same way for every adapter (the shape of implicit's
``RecommenderBaseTestMixin``).

A test class per adapter inherits :class:`AdapterContract` and provides ``make`` returning a
:class:`Subject`: the adapter (default ids: internal position = id), the model's score of each
(internal user, item) pair as the reference sees it (``None``: not a candidate) and the
training matrix. Every check then runs against ``reference.top_n``, the pure-Python top-n:

* columns ``user_id, item_id, score`` (float64), at most ``n`` rows per user, no repeated
  item, rows by descending score, users in the order asked (repeats dropped);
* the candidates are the reference's top-n of the model's scores — exactly (ties by lower item
  index) where ``exact_order``, else the same scores up to ``rtol`` with items in the order of
  the scores (float32 scorers, libraries that break near-ties themselves);
* ``exclude_seen`` drops exactly the training items; ``items`` restricts the catalogue;
* ``candidate_lists`` is ``candidates`` without the frame; batching changes nothing;
* unknown users or items, a bad ``n`` and ``exclude_seen`` without ``user_items`` raise
  :class:`rerank.errors.InputError` naming the culprit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from rerank.errors import InputError
from rerank.testing import reference as ref

USERS = [4, 0, 2, 4, 1]  # out of order, with a repeat


@dataclass
class Subject:
    adapter: object
    score_of: Callable[[int, int], float | None]
    user_items: sp.csr_matrix
    rebuild: Callable[[int], object]  # the same adapter with another batch_size


class AdapterContract:
    """Mix into a ``Test...`` class that defines :meth:`make` (module docstring)."""

    exact_order = True
    rtol = 1e-9
    n_values = (1, 3, 50)

    def make(self) -> Subject:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def subject(cls) -> Subject:
        return cls().make()

    # ------------------------------------------------------------------ helpers
    def reference(self, subject: Subject, users, n, *, exclude_seen=True, items=None):
        seen = ref.seen_sets(subject.user_items) if exclude_seen else None
        return ref.top_n(subject.score_of, users, subject.adapter.n_items, n, seen=seen, items=items)

    def assert_matches(self, got: dict, want: dict, subject: Subject, *, exclude_seen=True, items=None):
        assert got.keys() == want.keys()
        seen = ref.seen_sets(subject.user_items)
        for u in want:
            if self.exact_order:
                assert got[u] == want[u], f"user {u}"
                continue
            got_scores = [s for _, s in got[u]]
            np.testing.assert_allclose(got_scores, [s for _, s in want[u]], rtol=self.rtol, atol=self.rtol)
            for i, s in got[u]:  # every candidate carries the model's own score of that item
                assert s == pytest.approx(subject.score_of(u, i), rel=self.rtol, abs=self.rtol)
                assert not (exclude_seen and i in seen[u])
                assert items is None or i in items

    # ------------------------------------------------------------------ the contract
    def test_frame_shape(self, subject):
        out = subject.adapter.candidates(USERS, n=3)
        assert list(out.columns) == ["user_id", "item_id", "score"]
        assert out["score"].dtype == np.float64
        present = set(out["user_id"])
        assert list(pd.unique(out["user_id"])) == [u for u in pd.unique(pd.Series(USERS)) if u in present]
        for _, rows in out.groupby("user_id", sort=False):
            assert len(rows) <= 3
            assert rows["item_id"].is_unique
            assert rows["score"].is_monotonic_decreasing

    @pytest.mark.parametrize("exclude_seen", [True, False])
    def test_equals_the_reference_top_n(self, subject, exclude_seen):
        users = list(pd.unique(pd.Series(USERS)))
        for n in self.n_values:
            out = subject.adapter.candidates(USERS, n=n, exclude_seen=exclude_seen)
            got = ref.frame_lists(out, users)
            self.assert_matches(got, self.reference(subject, users, n, exclude_seen=exclude_seen), subject,
                                exclude_seen=exclude_seen)

    def test_items_restrict_the_catalogue(self, subject):
        items = list(range(0, subject.adapter.n_items, 3))
        users = list(pd.unique(pd.Series(USERS)))
        got = ref.frame_lists(subject.adapter.candidates(USERS, n=4, items=items), users)
        self.assert_matches(got, self.reference(subject, users, 4, items=items), subject, items=items)

    def test_candidate_lists_are_the_candidates_without_the_frame(self, subject):
        out = subject.adapter.candidates(USERS, n=5)
        lists = subject.adapter.candidate_lists(USERS, n=5)
        users = list(pd.unique(pd.Series(USERS)))
        assert lists.n_users == len(users)
        np.testing.assert_array_equal(np.asarray(users)[lists.owners()], out["user_id"].to_numpy())
        np.testing.assert_array_equal(lists.items, out["item_id"].to_numpy())
        np.testing.assert_array_equal(lists.scores, out["score"].to_numpy())

    def test_batching_changes_nothing(self, subject):
        small = subject.rebuild(3).candidates(None, n=4)
        pd.testing.assert_frame_equal(small, subject.adapter.candidates(None, n=4))

    def test_errors_name_the_culprit(self, subject):
        adapter = subject.adapter
        with pytest.raises(InputError, match=f"unknown user {adapter.n_users + 7}"):
            adapter.candidates([0, adapter.n_users + 7])
        with pytest.raises(InputError, match="unknown item -1"):
            adapter.candidates([0], items=[0, -1])
        with pytest.raises(InputError, match="n must be >= 1"):
            adapter.candidates([0], n=0)
        with pytest.raises(InputError, match="n must be a whole number"):
            adapter.candidates([0], n=2.5)

    def test_no_users_no_rows(self, subject):
        out = subject.adapter.candidates([], n=3)
        assert len(out) == 0 and list(out.columns) == ["user_id", "item_id", "score"]
