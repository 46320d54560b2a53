"""CornacAdapter on real Cornac fits of MovieLens latest-small (BPR, MF, PMF, MostPop), held-out
split: candidates equal a top-n recomputed here from the model's own ``score`` (ties, seen
items and Cornac's unknown users and items included).

``TestCornacContract`` runs the shared adapter contract (``contract.AdapterContract``);
``TestCornacOnMovieLens`` checks each model in MovieLens's own ids: the top-n against the
reference, cold users, items only in the test data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from contract import AdapterContract, Subject

from rerank import CalibratedReranker
from rerank.testing import reference as ref

pytest.importorskip("cornac", reason="cornac is not installed (pip install -e '.[cornac]')")
from cornac.data import Dataset  # noqa: E402
from cornac.eval_methods import BaseMethod  # noqa: E402
from cornac.models import BPR, MF, PMF, MostPop  # noqa: E402
from rerank.adapters import CornacAdapter, recommend_calibrated  # noqa: E402

from rerank.datasets import movielens  # noqa: E402

LATEST_SMALL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ml-latest-small"
pytestmark = [
    pytest.mark.movielens,
    pytest.mark.skipif(
        not (LATEST_SMALL / "ratings.csv").exists(),
        reason=f"MovieLens latest-small not found at {LATEST_SMALL} (shared/ beside the repository)",
    ),
]
N = 20
#: Users held out entirely (cold: in Cornac's global id map, not in the training set).
N_COLD = 8


@dataclass
class Case:
    """What the contract checks need: ``make(batch_size=None)`` builds the adapter; the
    model's scores (users × items by internal index), the training matrix and the external
    ids by internal index."""

    make: object
    scores: np.ndarray
    user_items: sp.csr_matrix
    user_ids: list
    item_ids: list

    def __post_init__(self):
        self.adapter = self.make()

    def reference(self, users, n, *, exclude_seen=True, items=None):
        """External-id lists from the pure-Python top-n over internal indices."""
        seen = ref.seen_sets(self.user_items) if exclude_seen else None
        want = ref.top_n(lambda u, i: self.scores[u, i], users, len(self.item_ids), n, seen=seen, items=items)
        return {self.user_ids[u]: [(self.item_ids[i], s) for i, s in want[u]] for u in users}


# ---------------------------------------------------------------------------- Cornac
@pytest.fixture(scope="module")
def split():
    """Held-out split: per user, the latest 20% of ratings are test data; N_COLD users are
    held out entirely (they are in Cornac's global map, not in the training set)."""
    ratings, _ = movielens("latest-small", path=LATEST_SMALL, download=False)
    ratings = ratings.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    position = ratings.groupby("user_id").cumcount()
    size = ratings.groupby("user_id")["item_id"].transform("size")
    cold = ratings["user_id"].isin(ratings["user_id"].unique()[-N_COLD:])
    test = (position >= 0.8 * size) | cold
    triples = lambda frame: list(zip(frame["user_id"], frame["item_id"], frame["rating"], strict=True))  # noqa: E731
    method = BaseMethod.from_splits(
        train_data=triples(ratings[~test]), test_data=triples(ratings[test]), exclude_unknowns=False, seed=1
    )
    return method, ratings


MODELS = {
    "bpr": lambda: BPR(k=10, max_iter=30, learning_rate=0.01, seed=1, verbose=False),
    "mf": lambda: MF(k=10, max_iter=15, seed=1, verbose=False),
    "pmf": lambda: PMF(k=10, max_iter=15, seed=1, verbose=False),
    "mostpop": lambda: MostPop(),  # integer popularity counts: ties everywhere
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request, split):
    method, _ = split
    return MODELS[request.param]().fit(method.train_set)


@pytest.fixture(scope="module")
def case(fitted):
    train = fitted.train_set
    scores = np.vstack(
        [np.asarray(fitted.score(u), dtype=np.float64)[: train.num_items] for u in range(train.num_users)]
    )
    by_index = lambda mapping, n: [e for e, i in sorted(mapping.items(), key=lambda kv: kv[1]) if i < n]  # noqa: E731
    return Case(
        lambda batch_size=None: CornacAdapter(fitted, batch_size=batch_size), scores, train.csr_matrix,
        by_index(train.uid_map, train.num_users), by_index(train.iid_map, train.num_items),
    )


class TestCornacOnMovieLens:
    sample = (0, 3, 7, 42, 99, 250, 409)

    def test_top_n_equals_reference(self, case):
        users = [u for u in self.sample if u < len(case.user_ids)]
        external = [case.user_ids[u] for u in users]
        got = ref.frame_lists(case.adapter.candidates(external, n=N), external)
        assert got == case.reference(users, N)

    def test_keep_seen_equals_reference(self, case):
        users = list(self.sample[:3])
        external = [case.user_ids[u] for u in users]
        got = ref.frame_lists(case.adapter.candidates(external, n=N, exclude_seen=False), external)
        assert got == case.reference(users, N, exclude_seen=False)

    def test_unknown_user_is_named(self, case):
        with pytest.raises(ValueError, match="unknown user 'nobody'"):
            case.adapter.candidates(["nobody"], n=3)
    def test_external_ids_are_movielens_ids(self, case, split):
        _, ratings = split
        out = case.adapter.candidates(case.user_ids[::25], n=5)
        assert set(out["user_id"]) <= set(ratings["user_id"]) and set(out["item_id"]) <= set(ratings["item_id"])
        assert out["user_id"].dtype == np.int64 and out["item_id"].dtype == np.int64

    def test_cold_users_reported_or_raised(self, case, split):
        _, ratings = split
        cold = ratings["user_id"].unique()[-N_COLD:].tolist()
        warm = case.user_ids[:2]
        out = case.adapter.candidates(warm + cold[:3], n=N)
        assert case.adapter.report_.cold_users.tolist() == cold[:3]
        assert case.adapter.report_.n_users == 2 and set(out["user_id"]) == set(warm)
        with pytest.raises(ValueError, match=rf"user {cold[0]} is in Cornac's id map but the model was not trained"):
            case.adapter.candidates([cold[0]], on_cold="raise")

    def test_items_unknown_to_the_model_are_never_candidates(self, case, fitted):
        test_only = set(case.adapter.unknown_item_ids)
        assert test_only, "the held-out split should leave some items only in the test data"
        assert not test_only & set(case.adapter.candidates(case.user_ids[::10], n=500)["item_id"])
        with pytest.raises(ValueError, match="unknown item"):
            case.adapter.candidates(case.user_ids[:1], items=[next(iter(test_only))])


def test_ties_follow_the_product_rule(split):
    """MostPop scores are popularity counts: the cut at n falls inside runs of equal scores,
    which go to the lower internal index (Cornac's own rank puts the higher index first)."""
    model = MostPop().fit(split[0].train_set)
    adapter = CornacAdapter(model)
    out = adapter.candidates(adapter.user_ids[:1].tolist(), n=N)
    scores = out["score"].to_numpy()
    assert (np.diff(scores) == 0).any()
    index = adapter.item_ids.get_indexer(out["item_id"])
    for value in np.unique(scores):
        assert np.all(np.diff(index[scores == value]) > 0)


def test_bad_models_are_refused():
    with pytest.raises(TypeError, match="needs a cornac.models.Recommender"):
        CornacAdapter(object())
    with pytest.raises(ValueError, match="not fitted"):
        CornacAdapter(BPR(k=4))


def test_one_call_helper(split):
    method, ratings = split
    adapter = CornacAdapter(MostPop().fit(method.train_set))
    genres = movielens("latest-small", path=LATEST_SMALL, download=False)[1]
    users = adapter.user_ids[:5].tolist()
    history = ratings[ratings["user_id"].isin(users)][["user_id", "item_id"]]
    top = recommend_calibrated(adapter, CalibratedReranker(k=10, lam=0.5), users, n=50,
                               history=history, item_categories=genres)
    candidates = adapter.candidates(users, n=50)
    assert len(top) == 50
    assert set(map(tuple, top[["user_id", "item_id"]].to_numpy())) <= set(
        map(tuple, candidates[["user_id", "item_id"]].to_numpy())
    )


class TestCornacContract(AdapterContract):
    """The shared adapter contract on a BPR model fitted on MovieLens latest-small, with ids
    relabelled ``0..n-1`` in order of first appearance: Cornac numbers ids in that order, so
    the external id of every user and item is its internal index, as the contract expects."""

    def make(self):
        ratings, _ = movielens("latest-small", path=LATEST_SMALL, download=False)
        ratings = ratings[ratings["user_id"] <= 120].sort_values(["user_id", "timestamp", "item_id"], kind="stable")
        users = pd.factorize(ratings["user_id"])[0]
        items = pd.factorize(ratings["item_id"])[0]
        train = Dataset.from_uir(list(zip(users.tolist(), items.tolist(), [1.0] * len(users), strict=True)), seed=1)
        model = BPR(k=8, max_iter=20, learning_rate=0.01, seed=1, verbose=False).fit(train)
        assert list(model.uid_map.items()) == [(u, u) for u in range(train.num_users)]
        assert list(model.iid_map.items()) == [(i, i) for i in range(train.num_items)]
        scores = np.vstack([np.asarray(model.score(u), dtype=np.float64) for u in range(train.num_users)])
        return Subject(CornacAdapter(model), lambda u, i: float(scores[u, i]), train.csr_matrix,
                       lambda batch: CornacAdapter(model, batch_size=batch))
