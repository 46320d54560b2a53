"""The loop's models: their adapters pass the adapter contract, every model's candidates are
the pure-Python top-n of its own scores (consumed items left out) as ``CandidateLists``, the ALS
candidates equal rerank.adapters.ImplicitAdapter's (same model), and the training data."""

import numpy as np
import pytest
import scipy.sparse as sp
from contract import AdapterContract, Subject
from rerank.adapters import ImplicitAdapter
from rerank.simulations.config import SimConfig
from rerank.simulations.log import InteractionLog
from rerank.simulations.models import BlockScorerAdapter, FactorAdapter, make_model
from rerank.simulations.world import RoundRelevance, make_world, sample_organic
from threadpoolctl import threadpool_limits

from rerank import CandidateLists
from rerank.testing import reference as ref

# ---------------------------------------------------------------- the adapter contract
RNG = np.random.default_rng(15)
USER_F = RNG.integers(-2, 3, (7, 3)).astype(np.float64)  # integer factors: exact products, many ties
ITEM_F = RNG.integers(-2, 3, (13, 3)).astype(np.float64)
SEEN = sp.csr_matrix((RNG.random((7, 13)) < 0.3).astype(np.float32))


class TestFactorAdapter(AdapterContract):
    def make(self):
        def build(batch=None):
            return FactorAdapter(USER_F, ITEM_F, SEEN, batch_size=batch)

        return Subject(build(), lambda u, i: float(USER_F[u] @ ITEM_F[i]), SEEN, build)


class TestBlockScorerAdapter(AdapterContract):
    def make(self):
        scores = USER_F @ ITEM_F.T

        def build(batch=None):
            return BlockScorerAdapter(lambda rows: scores[rows], 7, 13, SEEN, batch_size=batch)

        return Subject(build(), lambda u, i: scores[u, i], SEEN, build)


# ---------------------------------------------------------------- the models' candidates
CFG = SimConfig(n_users=30, n_items=60, n_candidates=12, organic_per_user=4, new_items_per_round=5,
                fresh_pool=10, als_factors=4, als_iterations=3, tower_factors=4, tower_epochs=1)


def _scores(model, name, world, n_avail):
    """The model's own score of every user × available item, as the reference sees it."""
    if name == "popularity":
        return np.broadcast_to(model.counts[:n_avail], (world.n_users, n_avail))
    if name == "oracle":
        return model.relevance.rows(np.arange(world.n_users))
    return model.tower.serving_scores(np.arange(world.n_users), n_avail)


@pytest.mark.parametrize("name", ["popularity", "oracle", "position-tower"])
@pytest.mark.parametrize("reconsume", [True, False])
def test_model_candidates_are_the_reference_top_n_of_its_scores(name, reconsume):
    world = make_world(CFG.with_(model=name))
    n_avail = world.n_available(2)  # arrivals since the organic history
    log = InteractionLog()
    log.add_organic(*sample_organic(world, world.theta0, CFG.organic_per_user, world.n_available(0)))
    model = make_model(world, world.config)
    if name == "oracle":
        model.relevance = RoundRelevance(world, world.theta0, n_avail)
    model.fit(log, n_avail, 0)
    consumed = None if reconsume else log.consumed(world.n_users, n_avail)
    lists = model.candidates(consumed, n_avail, CFG.n_candidates)
    assert isinstance(lists, CandidateLists) and lists.n_users == world.n_users
    scores = _scores(model, name, world, n_avail)
    seen = None if consumed is None else ref.seen_sets(consumed)
    want = ref.top_n(lambda u, i: scores[u, i], range(world.n_users), n_avail, CFG.n_candidates, seen=seen)
    for u in range(world.n_users):
        got = lists.items[lists.indptr[u] : lists.indptr[u + 1]].tolist()
        assert got == [i for i, _ in want[u]], f"user {u}"
        np.testing.assert_array_equal(lists.scores[lists.indptr[u] : lists.indptr[u + 1]], [s for _, s in want[u]])


def test_als_candidates_leave_out_items_it_was_not_trained_on():
    """Cold start: items that arrived after the last retrain have no factors, so they are not
    candidates until the next retrain; consumed items never are."""
    world = make_world(CFG)
    log = InteractionLog()
    log.add_organic(*sample_organic(world, world.theta0, CFG.organic_per_user, world.n_available(0)))
    model = make_model(world, CFG)
    model.fit(log, world.n_available(0), 0)
    n_avail = world.n_available(3)
    consumed = log.consumed(world.n_users, n_avail)
    lists = model.candidates(consumed, n_avail, CFG.n_candidates)
    assert isinstance(lists, CandidateLists)
    assert np.all(lists.lengths() == CFG.n_candidates)
    assert lists.items.max() < world.n_available(0)
    owners = lists.owners()
    assert not np.asarray(consumed[owners, lists.items]).ravel().any()


def test_factor_adapter_gives_the_implicit_adapter_candidates():
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(0)
    users, items = 120, 300
    matrix = sp.random(users, items, density=0.05, format="csr", random_state=1, dtype=np.float32)
    matrix.data[:] = 1.0
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=8, iterations=5, random_state=int(rng.integers(1000)))
        model.fit(matrix, show_progress=False)
    ours = FactorAdapter(model.user_factors, model.item_factors, matrix).candidates(None, n=25)
    theirs = ImplicitAdapter(model, matrix).candidates(None, n=25)
    assert len(ours) == len(theirs) == users * 25
    np.testing.assert_array_equal(ours["user_id"].to_numpy(), theirs["user_id"].to_numpy())
    np.testing.assert_allclose(ours["score"].to_numpy(), theirs["score"].to_numpy(), rtol=1e-4, atol=1e-5)
    same = (ours["item_id"].to_numpy() == theirs["item_id"].to_numpy()).mean()
    assert same > 0.99  # only float32 near-ties may swap places
    seen = matrix.tocoo()
    seen_pairs = set(zip(seen.row.tolist(), seen.col.tolist(), strict=True))
    assert not any((u, i) in seen_pairs for u, i in zip(ours["user_id"], ours["item_id"], strict=True))


def test_epsilon_exploration_replaces_about_epsilon_of_slots_with_fresh_unconsumed_items():
    from rerank.simulations.policies import explore

    rng = np.random.default_rng(3)
    n_users, k, n_items = 2000, 10, 60
    slates = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    consumed = sp.random(n_users, n_items, density=0.3, format="csr", random_state=4)
    consumed.data[:] = 1.0
    out = explore(slates, 0.2, consumed, n_items, np.random.default_rng(5))
    changed = out != slates
    # binomial tolerance: 5 s.d. of the replaced share
    assert abs(changed.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / changed.size)
    assert all(len(set(row)) == k for row in out)  # no duplicates within a slate
    u, r = np.nonzero(changed)
    assert not np.asarray(consumed[u, out[u, r]]).ravel().any()


# ---------------------------------------------------------------- impression negatives
def _log_with_impressions():
    from rerank.simulations.log import InteractionLog

    log = InteractionLog()
    log.add_organic(np.array([0, 1]), np.array([5, 6]))
    prop = np.array([[1.0, 0.5, 0.25]] * 2)
    # round 0: user 0 clicks item 1 (slot 1), passes items 2 and 3; user 1 passes 4, 5, 6
    log.add_round(0, np.array([[1, 2, 3], [4, 5, 6]]),
                  np.array([[True, False, False], [False, False, False]]), prop)
    # round 1: user 0 passes item 1 (clicked before) and item 2 again (slot 3)
    log.add_round(1, np.array([[1, 0, 2], [4, 7, 3]]),
                  np.array([[False, False, False], [False, True, False]]), prop)
    return log


def test_feedback_matrix_signs_clicks_and_examined_passes():
    log = _log_with_impressions()
    r = log.feedback_matrix(2, 8, "naive", negative_weight=2.0).toarray()
    expected = np.zeros((2, 8))
    expected[0, 5] = 1.0  # organic
    expected[0, 1] = 1.0  # clicked once; its later pass does not count
    expected[0, 2] = -2.0 * (0.5 + 0.25)  # passed at slot 2 then slot 3
    expected[0, 3] = -2.0 * 0.25
    expected[0, 0] = -2.0 * 0.5
    expected[1, 6] = 1.0  # organic, then passed: a consumed item stays a positive
    expected[1, 5] = -2.0 * 0.5
    expected[1, 4] = -2.0 * (1.0 + 1.0)
    expected[1, 7] = 1.0
    expected[1, 3] = -2.0 * 0.25
    np.testing.assert_allclose(r, expected)
    # no negatives: the click matrix
    np.testing.assert_array_equal(log.feedback_matrix(2, 8, negative_weight=0.0).toarray(),
                                  log.click_matrix(2, 8).toarray())


def test_als_confidence_is_one_plus_alpha_times_the_magnitude_with_its_sign():
    from rerank.simulations.models import als_confidence

    feedback = sp.csr_matrix(np.array([[2.0, -1.5, 0.0], [0.0, 1.0, -0.2]]))
    out = als_confidence(feedback, alpha=5.0).toarray()
    np.testing.assert_allclose(out, [[11.0, -8.5, 0.0], [0.0, 6.0, -2.0]])
    assert out.dtype == np.float32


def test_the_loop_model_trains_on_impression_negatives_only_when_asked():
    from rerank.simulations.config import SimConfig
    from rerank.simulations.models import ALSModel
    from rerank.simulations.world import make_world

    cfg = SimConfig(n_users=2, n_items=200, n_candidates=20, organic_per_user=2)
    world = make_world(cfg)
    log = _log_with_impressions()
    with_neg = ALSModel(world, cfg).training_matrix(log, 8).toarray()
    without = ALSModel(world, cfg.with_(impression_negatives=False)).training_matrix(log, 8).toarray()
    assert with_neg[0, 2] == pytest.approx(-(1 + 5.0 * 0.75))
    assert (without >= 0).all() and without[0, 1] == pytest.approx(6.0)


def test_implicit_reads_negative_entries_as_known_negatives():
    """Two taste clusters. Item 0 belongs to cluster A (30 A users clicked it); the other 70 A
    users were shown it and passed. With those passes as negative entries ALS scores item 0
    for them well below what it scores with the cells left unobserved."""
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(2)
    n_users, n_items = 200, 40
    cluster_a = np.arange(n_users) < 100
    dense = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        pool = np.arange(1, 20) if cluster_a[u] else np.arange(20, 40)
        dense[u, rng.choice(pool, 6, replace=False)] = 6.0
    clicked_it = np.arange(n_users) < 30
    passed_it = cluster_a & ~clicked_it
    dense[clicked_it, 0] = 6.0
    scores = {}
    for name, value in (("unobserved", 0.0), ("negative", -6.0)):
        matrix = dense.copy()
        matrix[passed_it, 0] = value
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=4, regularization=0.05, alpha=1.0,
                                            iterations=15, random_state=0, num_threads=1)
            model.fit(sp.csr_matrix(matrix), show_progress=False)
        s = model.user_factors[passed_it] @ model.item_factors.T
        scores[name] = (s[:, 0].mean(), s[:, 1:20].mean())
    # unobserved, item 0 scores like its cluster mates; passed, at most half of that
    assert scores["unobserved"][0] > 0.8 * scores["unobserved"][1]
    assert scores["negative"][0] < 0.5 * scores["unobserved"][0]
