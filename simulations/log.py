"""The interaction log: every impression (clicked or not) with its slot and propensity.

Rows come in two kinds:

* **organic** (``position == 0``): the history users built before the loop, with no ranking
  and no position bias; every organic row is a consumption (``clicked``), propensity 1;
* **impressions** (``position`` 1..k): one row per slate entry, ``clicked`` or not, with the
  propensity (examination probability) of its slot.

Chunks are appended per round and concatenated lazily (and cached) when read.

:meth:`InteractionLog.feedback_matrix` turns the log into the signed matrix a model learns
from: clicks as positives, examined-but-unclicked impressions as negatives.
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
        # The unclicked impressions again (user, item, propensity): the negatives.
        self._pass_chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._organic: tuple[np.ndarray, np.ndarray] | None = None

    def _append(self, **cols) -> None:
        n = len(cols["user"])
        for name in COLUMNS:
            self._chunks[name].append(np.broadcast_to(
                np.asarray(cols[name], dtype=_DTYPES[name]), (n,)).copy())
        self._cache = None
        mask = self._chunks["clicked"][-1]
        user, item, prop = (self._chunks[c][-1] for c in ("user", "item", "propensity"))
        self._click_chunks.append((user[mask].astype(np.int64), item[mask].astype(np.int64),
                                   prop[mask]))
        if (~mask).any():
            self._pass_chunks.append((user[~mask].astype(np.int64),
                                      item[~mask].astype(np.int64), prop[~mask]))

    def add_organic(self, users: np.ndarray, items: np.ndarray) -> None:
        """Organic consumptions (position 0, propensity 1, clicked)."""
        self._append(user=users, item=items, round=-1, position=0, propensity=1.0, clicked=True)
        if self._organic is None:
            self._organic = (np.asarray(users, np.int64), np.asarray(items, np.int64))
        else:
            self._organic = tuple(np.concatenate([a, np.asarray(b, np.int64)]) for a, b in
                                  zip(self._organic, (users, items), strict=True))

    def organic(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users, items)`` of the organic history (the pre-loop consumptions)."""
        if self._organic is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return self._organic

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
        keep = items < n_items
        matrix = sp.csr_matrix((weights[keep], (users[keep], items[keep])),
                               shape=(n_users, n_items))
        matrix.sum_duplicates()
        return matrix

    def feedback_matrix(self, n_users: int, n_items: int, mode: str = "naive",
                        clip: float = 10.0, negative_weight: float = 1.0) -> sp.csr_matrix:
        """Signed users × items feedback ``r_ui`` for a model in the loop.

        * ``r_ui = Σ w`` over the clicks (and organic consumptions) of ``(u, i)``, weights as
          in :meth:`clicks` (``naive`` 1, ``ips`` clipped ``1/propensity``), when ``u`` ever
          clicked or consumed ``i``;
        * ``r_ui = -negative_weight · Σ e`` over the unclicked impressions of ``(u, i)``, ``e``
          the examination probability of their slot, when ``u`` never clicked ``i``: the
          expected number of times ``u`` looked at ``i`` and passed;
        * no entry otherwise (never shown, or ``negative_weight = 0``).
        """
        positive = self.click_matrix(n_users, n_items, mode, clip)
        if negative_weight <= 0 or not self._pass_chunks:
            return positive
        users, items, propensity = _merged(self._pass_chunks)
        keep = items < n_items
        passed = sp.csr_matrix((propensity[keep], (users[keep], items[keep])),
                               shape=(n_users, n_items))
        passed.sum_duplicates()
        clicked = positive.copy()
        clicked.data[:] = 1.0
        only_passed = passed - passed.multiply(clicked)
        only_passed.eliminate_zeros()
        out = (positive - negative_weight * only_passed).tocsr()
        out.sort_indices()
        return out

    def _clicked_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._click_chunks:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return _merged(self._click_chunks)

    def consumed(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """Users × items 0/1 matrix of everything a user clicked or consumed organically."""
        users, items, _ = self._clicked_rows()
        keep = items < n_items
        users, items = users[keep], items[keep]
        matrix = sp.csr_matrix((np.ones(users.size), (users, items)), shape=(n_users, n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix


def _merged(chunks: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate a list of ``(users, items, values)`` chunks in place into one (cached)."""
    if len(chunks) > 1:
        chunks[:] = [tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))]
    return chunks[0]
