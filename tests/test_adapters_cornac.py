"""CornacAdapter on real Cornac fits of MovieLens latest-small (BPR, MF, PMF, MostPop), held-out
split: candidates equal a top-n recomputed here from the model's own ``score`` (ties, seen
items and Cornac's unknown users and items included).

``AdapterContractChecks`` holds the checks every adapter must pass, written against
``adapter_reference`` only; a test class supplies a ``case`` fixture (adapter + the model's
score matrix + seen sets + id maps), so the checks can move into a shared adapter mixin as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import adapter_reference as ref
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from rerank import CalibratedReranker

pytest.importorskip("cornac", reason="cornac is not installed (pip install -e '.[cornac]')")
from cornac.eval_methods import BaseMethod  # noqa: E402
from cornac.models import BPR, MF, PMF, MostPop  # noqa: E402
from rerank.adapters import CornacAdapter, recommend_calibrated  # noqa: E402

from rerank.datasets import movielens  # noqa: E402

LATEST_SMALL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-latest-small"
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


class AdapterContractChecks:
    """The adapter contract (DESIGN §5), checked against ``adapter_reference``."""

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

    def test_items_restriction(self, case):
        items = list(range(0, len(case.item_ids), 37))
        users = list(self.sample[:3])
        external = [case.user_ids[u] for u in users]
        out = case.adapter.candidates(external, n=5, items=[case.item_ids[i] for i in items])
        assert ref.frame_lists(out, external) == case.reference(users, 5, items=items)

    def test_every_user_n_unseen_items_batching_irrelevant(self, case):
        out = case.adapter.candidates(n=N)
        dense_seen = case.user_items.toarray() != 0
        unseen = (~dense_seen).sum(axis=1)
        counts = out.groupby("user_id", sort=False).size().reindex(case.user_ids, fill_value=0)
        np.testing.assert_array_equal(counts.to_numpy(), np.minimum(N, unseen))
        rows = pd.Index(case.user_ids).get_indexer(out["user_id"])
        cols = pd.Index(case.item_ids).get_indexer(out["item_id"])
        assert not dense_seen[rows, cols].any()
        some = case.user_ids[::9]
        small = case.make(batch_size=17).candidates(some, n=N)
        pd.testing.assert_frame_equal(small, out[out["user_id"].isin(some)].reset_index(drop=True))

    def test_unknown_user_is_named(self, case):
        with pytest.raises(ValueError, match="unknown user 'nobody'"):
            case.adapter.candidates(["nobody"], n=3)


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


class TestCornac(AdapterContractChecks):
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
