"""Position-aware logistic factor model: the "shallow tower" of Zhao et al. (RecSys 2019).

Training (every impression, clicked or not, plus the organic history):

    P(click | u, i, slot r) = σ( b_i + x_u·y_i + β_r )

The additive position term ``β_r`` (one per slot, plus one bucket for organic rows) soaks up
the position bias during training and is *dropped at serving*: the model ranks by
``b_i + x_u·y_i``. Organic rows are positives only, so each organic positive is paired with
one uniformly sampled item of the initial catalogue as an organic negative (bucket 0).

Fitted by plain SGD on the logistic loss with L2 regularisation, one row at a time in a
seeded random order, single-threaded (so the result is deterministic); parameters are kept
between retrains (warm start).
"""

from __future__ import annotations

import math

import numpy as np
from rerank.simulations.log import InteractionLog
from rerank.simulations.rng import stream

from rerank._numba import compiled


@compiled()
def _sgd_epoch(users, items, buckets, labels, order, X, Y, b, beta, lr, reg):
    """One pass of SGD over ``order``; returns the mean log loss before each update."""
    n_factors = X.shape[1]
    loss = 0.0
    for t in range(order.shape[0]):
        j = order[t]
        u = users[j]
        i = items[j]
        p = buckets[j]
        z = b[i] + beta[p]
        for f in range(n_factors):
            z += X[u, f] * Y[i, f]
        if z >= 0.0:
            prob = 1.0 / (1.0 + math.exp(-z))
        else:
            ez = math.exp(z)
            prob = ez / (1.0 + ez)
        y = labels[j]
        loss -= math.log(max(prob if y else 1.0 - prob, 1e-12))
        g = prob - y
        b[i] -= lr * (g + reg * b[i])
        beta[p] -= lr * g
        for f in range(n_factors):
            xu = X[u, f]
            yi = Y[i, f]
            X[u, f] -= lr * (g * yi + reg * xu)
            Y[i, f] -= lr * (g * xu + reg * yi)
    return loss / max(order.shape[0], 1)


class PositionTower:
    """Logistic factor model with a position term learned jointly and dropped at serving."""

    def __init__(self, n_users: int, n_items: int, n_slots: int, factors: int = 16,
                 epochs: int = 2, learning_rate: float = 0.05, regularization: float = 1e-4,
                 seed: int = 0):
        rng = stream(seed, "tower-init")
        self.X = rng.normal(0.0, 0.1, (n_users, factors))
        self.Y = rng.normal(0.0, 0.1, (n_items, factors))
        self.b = np.zeros(n_items)
        self.beta = np.zeros(n_slots + 1)  # bucket 0: organic rows; 1..k: slots
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.seed = seed
        self.last_loss = float("nan")

    def training_rows(self, log: InteractionLog, n_initial_items: int):
        """Impressions + organic positives + one sampled organic negative per organic row."""
        cols = log.columns()
        organic = cols["position"] == 0
        rng = stream(self.seed, "tower-negatives")
        n_org = int(organic.sum())
        users = np.concatenate([cols["user"], cols["user"][organic]]).astype(np.int64)
        items = np.concatenate([cols["item"], rng.integers(0, n_initial_items, n_org)]).astype(np.int64)
        buckets = np.concatenate([cols["position"], np.zeros(n_org, np.int16)]).astype(np.int64)
        labels = np.concatenate([cols["clicked"], np.zeros(n_org, bool)]).astype(np.float64)
        return users, items, buckets, labels

    def fit(self, log: InteractionLog, n_initial_items: int, round_: int) -> None:
        users, items, buckets, labels = self.training_rows(log, n_initial_items)
        for epoch in range(self.epochs):
            order = stream(self.seed, "tower-order", round_, epoch).permutation(users.size)
            self.last_loss = float(_sgd_epoch(
                users, items, buckets, labels, order, self.X, self.Y, self.b, self.beta,
                self.learning_rate, self.regularization,
            ))

    def serving_scores(self, user_rows: np.ndarray, n_items: int) -> np.ndarray:
        """``b_i + x_u·y_i`` (no position term) for a block of users × the first items."""
        return self.X[user_rows] @ self.Y[:n_items].T + self.b[None, :n_items]

    def position_effects(self) -> np.ndarray:
        """Learned ``β_r - β_1`` for slots 1..k (log-odds relative to the top slot)."""
        return self.beta[1:] - self.beta[1]
