"""LightFMAdapter on small real LightFM fits: equal to ``model.predict``, ids from
``Dataset.mapping()``, seen items excluded, and a clear error when features are missing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from contract import AdapterContract, Subject

from rerank.testing import reference as ref

pytest.importorskip("lightfm")
from lightfm import LightFM  # noqa: E402
from lightfm.data import Dataset  # noqa: E402
from rerank.adapters import LightFMAdapter  # noqa: E402

N_USERS, N_ITEMS = 30, 25


def _data():
    rng = np.random.default_rng(1)
    users = [f"user{u}" for u in range(N_USERS)]
    items = [f"item{i}" for i in range(N_ITEMS)]
    pairs = [(users[u], items[i]) for u in range(N_USERS) for i in range(N_ITEMS) if rng.random() < 0.2]
    genres = {it: ["g" + str(i % 3), "h" + str(i % 2)] for i, it in enumerate(items)}
    return users, items, pairs, genres


@pytest.fixture(scope="module")
def plain():
    users, items, pairs, _ = _data()
    # Shuffle the order ids are first seen so internal indices differ from sorted ids.
    dataset = Dataset()
    dataset.fit(users[::-1], items[::-1])
    interactions, _ = dataset.build_interactions(pairs)
    model = LightFM(no_components=8, loss="warp", random_state=0)
    model.fit(interactions, epochs=5, num_threads=1)
    return model, dataset, interactions


@pytest.fixture(scope="module")
def featured():
    users, items, pairs, genres = _data()
    dataset = Dataset()
    dataset.fit(users, items, item_features=sorted({g for gs in genres.values() for g in gs}))
    interactions, _ = dataset.build_interactions(pairs)
    item_features = dataset.build_item_features(genres.items())
    model = LightFM(no_components=8, loss="bpr", random_state=0)
    model.fit(interactions, item_features=item_features, epochs=5, num_threads=1)
    return model, dataset, interactions, item_features


class TestLightFMContract(AdapterContract):
    """The contract with ``model.predict`` as the model's score (LightFM sums in float32)."""

    exact_order, rtol = False, 1e-5

    def make(self):
        users, items, pairs, _ = _data()
        dataset = Dataset()
        dataset.fit(users, items)
        interactions, _ = dataset.build_interactions(pairs)
        model = LightFM(no_components=8, loss="warp", random_state=0)
        model.fit(interactions, epochs=5, num_threads=1)
        scores = predicted(model, N_USERS, N_ITEMS)
        user_items = sp.csr_matrix(interactions)

        def build(batch=None):  # internal positions as ids, as the contract asks
            return LightFMAdapter(model, user_items=user_items, batch_size=batch)

        return Subject(build(), lambda u, i: float(scores[u, i]), user_items, build)


def predicted(model, n_users, n_items, **features):
    u = np.repeat(np.arange(n_users, dtype=np.int32), n_items)
    i = np.tile(np.arange(n_items, dtype=np.int32), n_users)
    return model.predict(u, i, num_threads=1, **features).reshape(n_users, n_items)


def check_against_predict(adapter, scores, interactions, user_ids, item_ids, n):
    seen = ref.seen_sets(interactions.tocsr())
    users = list(range(len(user_ids)))
    want = ref.top_n(lambda u, i: scores[u, i], users, len(item_ids), n, seen=seen)
    got = ref.frame_lists(adapter.candidates([user_ids[u] for u in users], n=n), user_ids)
    for u in users:
        g = got[user_ids[u]]
        w = [(item_ids[i], s) for i, s in want[u]]
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], rtol=1e-5, atol=1e-5)
        # Item order equals predict's wherever predict's scores are not near-ties.
        gaps = np.diff([s for _, s in w])
        for pos, (gi, wi) in enumerate(zip(g, w, strict=True)):
            near_tie = (pos > 0 and gaps[pos - 1] > -1e-4) or (pos < len(gaps) and gaps[pos] > -1e-4)
            if not near_tie:
                assert gi[0] == wi[0]


def test_equals_predict_with_dataset_ids(plain):
    model, dataset, interactions = plain
    adapter = LightFMAdapter(model, dataset, user_items=interactions)
    user_map, _, item_map, _ = dataset.mapping()
    user_ids = sorted(user_map, key=user_map.get)
    item_ids = sorted(item_map, key=item_map.get)
    assert adapter.user_ids.tolist() == user_ids and adapter.item_ids.tolist() == item_ids
    scores = predicted(model, N_USERS, N_ITEMS)
    check_against_predict(adapter, scores, interactions, user_ids, item_ids, n=8)


def test_excludes_seen_and_can_keep_them(plain):
    model, dataset, interactions = plain
    adapter = LightFMAdapter(model, dataset, user_items=interactions)
    user_map, _, item_map, _ = dataset.mapping()
    out = adapter.candidates(n=N_ITEMS)
    dense = interactions.toarray()
    rows = np.array([user_map[u] for u in out["user_id"]])
    cols = np.array([item_map[i] for i in out["item_id"]])
    assert (dense[rows, cols] == 0).all()
    assert len(out) == (dense == 0).sum()
    everything = adapter.candidates(n=N_ITEMS, exclude_seen=False)
    assert len(everything) == N_USERS * N_ITEMS


def test_item_features_required_and_used(featured):
    model, dataset, interactions, item_features = featured
    with pytest.raises(ValueError, match="trained with item features"):
        LightFMAdapter(model, dataset, user_items=interactions)
    wrong = item_features[:, :-1]
    with pytest.raises(ValueError, match="item_features has .* columns"):
        LightFMAdapter(model, dataset, item_features=wrong, user_items=interactions)
    adapter = LightFMAdapter(model, dataset, item_features=item_features, user_items=interactions)
    user_map, _, item_map, _ = dataset.mapping()
    scores = predicted(model, N_USERS, N_ITEMS, item_features=item_features)
    check_against_predict(
        adapter, scores, interactions, sorted(user_map, key=user_map.get),
        sorted(item_map, key=item_map.get), n=6,
    )


def test_without_dataset_uses_given_ids_and_checks_sizes(featured, plain):
    model, _, interactions, item_features = featured
    with pytest.raises(ValueError, match="trained with item features"):
        LightFMAdapter(model, user_items=interactions)  # 25 items, more feature embeddings
    adapter = LightFMAdapter(
        model, item_features=item_features, user_items=interactions,
        user_ids=[100 + u for u in range(N_USERS)], item_ids=[-i for i in range(N_ITEMS)],
    )
    out = adapter.candidates([100, 105], n=3, items=[0, -1, -2, -3])
    assert set(out["user_id"]) == {100, 105} and set(out["item_id"]) <= {0, -1, -2, -3}
    plain_model, dataset, _ = plain
    with pytest.raises(ValueError, match="do not belong together"):
        LightFMAdapter(model, dataset)


def test_unfitted_model():
    with pytest.raises(ValueError, match="not fitted"):
        LightFMAdapter(LightFM(no_components=4))
