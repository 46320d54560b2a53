"""The interaction log: every impression (clicked or not) with its slot and propensity.

Rows come in two kinds:

* **organic** (``position == 0``): the history users built before the loop, with no ranking
  and no position bias; every organic row is a consumption (``clicked``), propensity 1;
* **impressions** (``position`` 1..k): one row per slate entry, ``clicked`` or not, with the
  propensity (examination probability) of its slot.

Chunks are appended per round and concatenated lazily (and cached) when read.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from rerank.simulations.clicks import ips_weights

COLUMNS = ("user", "item", "round", "position", "propensity", "clicked")
_DTYPES = {
    "user": np.int32, "item": np.int32, "round": np.int16, "position": np.int16,
    "propensity": np.float64, "clicked": np.bool_,
}


class InteractionLog:
    """Append-only log of organic consumptions and slate impressions."""

    def __init__(self) -> None:
        self._chunks: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
        self._cache: dict[str, np.ndarray] | None = None
        # The clicked rows again (user, item, propensity): small, read every round.
        self._click_chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _append(self, **cols) -> None:
        n = len(cols["user"])
        for name in COLUMNS:
            self._chunks[name].append(np.broadcast_to(
                np.asarray(cols[name], dtype=_DTYPES[name]), (n,)).copy())
        self._cache = None
        mask = self._chunks["clicked"][-1]
        self._click_chunks.append((self._chunks["user"][-1][mask].astype(np.int64),
                                   self._chunks["item"][-1][mask].astype(np.int64),
                                   self._chunks["propensity"][-1][mask]))

    def add_organic(self, users: np.ndarray, items: np.ndarray) -> None:
        """Organic consumptions (position 0, propensity 1, clicked)."""
        self._append(user=users, item=items, round=-1, position=0, propensity=1.0, clicked=True)

    def add_round(self, round_: int, slates: np.ndarray, clicked: np.ndarray,
                  propensity: np.ndarray) -> None:
        """One round of slates (users × k item rows, user = row index) and their clicks."""
        n_users, k = slates.shape
        self._append(
            user=np.repeat(np.arange(n_users), k),
            item=slates.ravel(),
            round=round_,
            position=np.tile(np.arange(1, k + 1), n_users),
            propensity=propensity.ravel(),
            clicked=clicked.ravel(),
        )

    def columns(self) -> dict[str, np.ndarray]:
        """All rows as arrays (in insertion order)."""
        if self._cache is None:
            self._cache = {
                name: (np.concatenate(parts) if parts else np.zeros(0, dtype=_DTYPES[name]))
                for name, parts in self._chunks.items()
            }
            for name in COLUMNS:  # compact: one chunk from now on
                self._chunks[name] = [self._cache[name]]
        return self._cache

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks["user"])

    def clicks(self, mode: str = "naive", clip: float = 10.0):
        """``(users, items, weights)`` of the clicked rows.

        ``naive``: weight 1 per click; ``ips``: the clipped ``min(1/propensity, clip)``.
        """
        users, items, propensity = self._clicked_rows()
        if mode == "naive":
            weights = np.ones(users.size)
        elif mode == "ips":
            weights = ips_weights(propensity, clip)
        else:
            raise ValueError(f"mode must be 'naive' or 'ips', got {mode!r}")
        return users, items, weights

    def click_matrix(self, n_users: int, n_items: int, mode: str = "naive",
                     clip: float = 10.0) -> sp.csr_matrix:
        """Users × items matrix of (weighted) click counts."""
        users, items, weights = self.clicks(mode, clip)
        matrix = sp.csr_matrix((weights, (users, items)), shape=(n_users, n_items))
        matrix.sum_duplicates()
        return matrix

    def _clicked_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._click_chunks:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        if len(self._click_chunks) > 1:
            self._click_chunks = [tuple(np.concatenate(parts) for parts in zip(*self._click_chunks, strict=True))]
        return self._click_chunks[0]

    def consumed(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """Users × items 0/1 matrix of everything a user clicked or consumed organically."""
        users, items, _ = self._clicked_rows()
        matrix = sp.csr_matrix((np.ones(users.size), (users, items)), shape=(n_users, n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix
