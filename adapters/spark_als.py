"""``SparkALSAdapter``: top-n candidates from a fitted ``pyspark.ml.recommendation.ALSModel``,
computed on the cluster, with the user's seen items removed and the product's tie rule.

Why not ``model.recommendForAllUsers(n)``:

* it does **not** exclude the items a user has already seen, so after removing them by hand a
  user is left with fewer than ``n`` candidates (often none worth keeping);
* its ties are not the product's: each item block keeps ``n`` items by score alone (Guava's
  ``greatestOf``; which of several equal scores survives is unspecified) and the final
  ``collect_top_k(struct(rating, item))`` puts the *higher* item id first among equal scores;
* it scores in float32 (``sgemv``), so the order of near-equal scores depends on the BLAS;
* users without factors are silently absent from ``recommendForUserSubset``.

What this adapter computes instead, for every requested user ``u`` with factors ``x_u`` and
every item ``i`` with factors ``y_i`` (``k`` = the model's rank):

    score(u, i) = Σ_{f=0}^{k-1} x_uf · y_if      (float64, f in increasing order)

— the product ``transform`` predicts, accumulated in float64 in a fixed order (every product
of two float32 values is exact in float64), so a score never depends on the block it was
computed in, the thread count, or the BLAS, and items with equal factors tie exactly. Within
each user the candidates are the ``n`` best unseen items by **higher score, then lower item
id** (the rule of every adapter: ``rerank.adapters.base``), with ``rank`` = 1..n in that order.

How (DataFrame operations and ``mapInPandas``; nothing but counts reaches the driver):

1. *Over-fetch count.* ``fetch_u = n + s_u`` with ``s_u`` = the number of distinct items of
   user ``u`` in ``interactions`` (a ``groupBy`` on the cluster, joined to the user factors).
   It is exact: an unseen item among ``u``'s best ``n`` unseen items of the catalogue is beaten
   inside any block of items only by the other ``n - 1`` of them and by at most ``s_u`` seen
   items, so it is among the block's best ``n + s_u``.
2. *Blocks.* User factors (with ``fetch_u``) and item factors are packed per partition into
   blocks of ``user_block_size`` users / ``item_block_size`` items (item blocks sorted by id);
   the two are cross-joined, as ``recommendForAll`` does (Spark broadcasts the item blocks when
   they are small).
3. *Per block pair* (``mapInPandas``, one compiled Numba loop, one thread per Spark task):
   each user's scores against the item block (one row at a time) and its best ``fetch_u``
   items of the block by the tie rule (a bounded heap: about one comparison per item).
4. *Seen items out by a join:* ``left_anti`` join with ``interactions`` on (user, item) — the
   history never leaves the cluster.
5. *Trim:* ``row_number()`` over (user; score desc, item asc) ≤ ``n``; that is ``rank``.

**Users who have seen nearly everything.** A user with fewer than ``n`` unseen items gets all
of them (fewer than ``n`` rows; never a seen item, never padding); a user who has seen every
item gets no row. The over-fetch of such a user is at most the block's items, so the work per
user is bounded by the catalogue whatever ``s_u``.

**Cold users** (requested, but without factors: not in the training data) get no rows and are
*reported*: ``adapter.report_.n_cold`` (one count on the cluster) and
``adapter.report_.cold_users`` (a DataFrame of their ids, e.g. to give them a popularity
fallback). ``on_cold="raise"`` fails instead, naming one. ``coldStartStrategy`` only affects
``transform`` and has no effect here.

pyspark is imported inside the functions; ``import rerank.adapters`` never needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rerank._numba import compiled
from rerank.errors import InputError, InputTypeError
from rerank.params import check_choice, check_whole

#: Items per item block (the cross join's right side). Large blocks mean less over-fetch
#: (each block returns up to ``n + s_u`` rows per user); a block of 65536 items × rank 100
#: is 26 MB of float32 factors.
ITEM_BLOCK_SIZE = 65_536
#: Item factors up to this size (float32 bytes) are broadcast to every task.
BROADCAST_BYTES = 256 * 2**20
CANDIDATE_SCHEMA = "user_id int, item_id int, score double"
ON_COLD = ("report", "raise")


@dataclass(frozen=True)
class SparkCandidateReport:
    """What the last ``candidates`` call did besides plain top-n.

    ``n_cold``: requested users without factors (no rows for them); ``cold_users``: a Spark
    DataFrame of their ids (column: the model's ``userCol``), ``None`` when every user was
    requested (``users=None``: only users with factors are requested, so none is cold).
    """

    n_cold: int
    cold_users: object | None


# ---------------------------------------------------------------------------- workers
@compiled(inline="always")
def _worse(v_a, c_a, v_b, c_b):
    """Entry a ranks below entry b: lower score, or equal score and higher item column."""
    return v_a < v_b or (v_a == v_b and c_a > c_b)


@compiled(inline="always")
def _sift_down(heap_v, heap_c, size, pos):
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and _worse(heap_v[child + 1], heap_c[child + 1], heap_v[child], heap_c[child]):
            child += 1
        if not _worse(heap_v[child], heap_c[child], heap_v[pos], heap_c[pos]):
            return
        heap_v[pos], heap_v[child] = heap_v[child], heap_v[pos]
        heap_c[pos], heap_c[child] = heap_c[child], heap_c[pos]
        pos = child


@compiled()
def score_and_select(user_factors, item_factors_t, want, starts, out_cols, out_vals, bad):
    """For each user ``u``: ``score[i] = Σ_f user_factors[u, f] · item_factors_t[f, i]``
    (float64, f increasing: no BLAS, no fused multiply-add, so a score never depends on the
    block it is computed in, and equal factors give exactly equal scores), then its best
    ``want[u]`` columns by (higher score, lower column), sorted, written from ``starts[u]``.

    Selection keeps a heap of the best ``want[u]`` whose root is the worst kept entry: one
    comparison per item for most items. A non-finite score stops the call with ``bad`` =
    ``(user row, item column)``."""
    n_users, rank = user_factors.shape
    n_items = item_factors_t.shape[1]
    row = np.empty(n_items, dtype=np.float64)
    heap_v = np.empty(n_items, dtype=np.float64)
    heap_c = np.empty(n_items, dtype=np.int64)
    for u in range(n_users):
        for i in range(n_items):
            row[i] = 0.0
        for f in range(rank):
            x = user_factors[u, f]
            y = item_factors_t[f]
            for i in range(n_items):
                row[i] += x * y[i]
        m = want[u]
        size = 0
        for i in range(n_items):
            v = row[i]
            if not (abs(v) < np.inf):
                bad[0] = u
                bad[1] = i
                return
            if size < m:  # fill: append and sift up
                pos = size
                heap_v[pos] = v
                heap_c[pos] = i
                size += 1
                while pos > 0:
                    parent = (pos - 1) // 2
                    if not _worse(heap_v[pos], heap_c[pos], heap_v[parent], heap_c[parent]):
                        break
                    heap_v[pos], heap_v[parent] = heap_v[parent], heap_v[pos]
                    heap_c[pos], heap_c[parent] = heap_c[parent], heap_c[pos]
                    pos = parent
            elif _worse(heap_v[0], heap_c[0], v, i):  # better than the worst kept: replace it
                heap_v[0] = v
                heap_c[0] = i
                _sift_down(heap_v, heap_c, size, 0)
        # Pop the worst entry to the back until the heap is empty: best first.
        base = starts[u]
        while size > 0:
            size -= 1
            out_vals[base + size] = heap_v[0]
            out_cols[base + size] = heap_c[0]
            heap_v[0] = heap_v[size]
            heap_c[0] = heap_c[size]
            _sift_down(heap_v, heap_c, size, 0)


def top_fetch(user_ids, user_factors, fetch, item_ids, item_factors):
    """Per user ``u`` of a block, its best ``fetch[u]`` items of an item block by (higher
    score, lower item id); ``item_ids`` must be sorted ascending. Returns three flat arrays
    ``(user, item, score)``, each user's rows best first."""
    n_items = item_ids.size
    want = np.minimum(np.asarray(fetch, dtype=np.int64), n_items)
    starts = np.zeros(want.size + 1, dtype=np.int64)
    np.cumsum(want, out=starts[1:])
    out_cols = np.empty(starts[-1], dtype=np.int64)
    out_vals = np.empty(starts[-1], dtype=np.float64)
    bad = np.full(2, -1, dtype=np.int64)
    score_and_select(
        np.ascontiguousarray(user_factors, dtype=np.float64),
        np.ascontiguousarray(item_factors.T, dtype=np.float64),
        want, starts, out_cols, out_vals, bad,
    )
    if bad[0] >= 0:
        raise InputError(
            f"the ALS model has a non-finite score for user {int(user_ids[bad[0]])}, item "
            f"{int(item_ids[bad[1]])} (NaN or infinite factors)"
        )
    return np.repeat(np.asarray(user_ids), want), np.asarray(item_ids)[out_cols], out_vals


def _stack(features: pd.Series, rank: int) -> np.ndarray:
    if len(features) == 0:
        return np.empty((0, rank), dtype=np.float32)
    return np.stack([np.asarray(f, dtype=np.float32) for f in features.to_numpy()])


def pack_blocks(frames: Iterator[pd.DataFrame], block_size: int, rank: int, sort: bool) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` body: rows ``id, features[, fetch]`` of one partition -> one row per
    block of ``block_size`` rows, ``ids`` (int32 bytes), ``factors`` (float32 bytes, row-major)
    and ``fetch`` (int64 bytes; empty without a fetch column)."""
    ids, factors, fetch = [], [], []
    held = 0

    def flush():
        block_ids = np.concatenate(ids).astype(np.int32)
        block_factors = np.concatenate(factors)
        block_fetch = np.concatenate(fetch).astype(np.int64) if fetch else np.empty(0, np.int64)
        if sort:
            order = np.argsort(block_ids, kind="stable")
            block_ids, block_factors = block_ids[order], block_factors[order]
            block_fetch = block_fetch[order] if block_fetch.size else block_fetch
        return pd.DataFrame(
            {"ids": [block_ids.tobytes()], "factors": [block_factors.tobytes()], "fetch": [block_fetch.tobytes()]}
        )

    for frame in frames:
        start = 0
        while start < len(frame):
            take = min(block_size - held, len(frame) - start)
            part = frame.iloc[start : start + take]
            ids.append(part["id"].to_numpy())
            factors.append(_stack(part["features"], rank))
            if "fetch" in part:
                fetch.append(part["fetch"].to_numpy())
            held += take
            start += take
            if held == block_size:
                yield flush()
                ids, factors, fetch, held = [], [], [], 0
    if held:
        yield flush()


def score_pairs(frames: Iterator[pd.DataFrame], rank: int) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` body: (user block, item block) pairs -> ``user_id, item_id, score``."""
    for frame in frames:
        for row in frame.itertuples(index=False):
            user_ids = np.frombuffer(row.ids, dtype=np.int32)
            item_ids = np.frombuffer(row.item_ids, dtype=np.int32)
            user_factors = np.frombuffer(row.factors, dtype=np.float32).reshape(user_ids.size, rank)
            item_factors = np.frombuffer(row.item_factors, dtype=np.float32).reshape(item_ids.size, rank)
            fetch = np.frombuffer(row.fetch, dtype=np.int64)
            users, items, scores = top_fetch(user_ids, user_factors, fetch, item_ids, item_factors)
            yield pd.DataFrame({"user_id": users, "item_id": items, "score": scores})


# ---------------------------------------------------------------------------- driver side
def _columns(frame, what: str) -> dict:
    from pyspark.sql import DataFrame

    if not isinstance(frame, DataFrame):
        raise InputTypeError(f"{what} must be a pyspark.sql.DataFrame, got {type(frame).__name__}")
    return {field.name: field.dataType for field in frame.schema.fields}


def _require_integer_ids(frame, columns, what: str) -> None:
    from pyspark.sql.types import IntegralType

    types = _columns(frame, what)
    for column in columns:
        if column not in types:
            raise InputError(f"{what} is missing column '{column}' (the model's id column); it has {list(types)}")
        if not isinstance(types[column], IntegralType):
            raise InputTypeError(
                f"{what} column '{column}' must hold integer ids, as ALS does; got {types[column].simpleString()}"
            )


class SparkALSAdapter:
    """Candidates from a fitted ``pyspark.ml.recommendation.ALSModel``, on the cluster.

    Parameters
    ----------
    model : a fitted ``ALSModel`` (its ``userCol`` / ``itemCol`` name the id columns of
        ``users`` and ``interactions``).
    user_block_size : users per block (default: the model's ``blockSize``, 4096).
    item_block_size : items per block (default 65536; a smaller block means more over-fetched
        rows, see the module docstring).
    """

    def __init__(self, model, *, user_block_size: int | None = None, item_block_size: int | None = None):
        from pyspark.ml.recommendation import ALSModel

        if not isinstance(model, ALSModel):
            raise InputTypeError(
                f"SparkALSAdapter needs a fitted pyspark.ml.recommendation.ALSModel, got {type(model).__name__}"
            )
        self.model = model
        self.user_col = model.getUserCol()
        self.item_col = model.getItemCol()
        self.rank = int(model.rank)
        if user_block_size is None:
            user_block_size = model.getBlockSize()
        self.user_block_size = check_whole("user_block_size", user_block_size)
        if item_block_size is None:
            item_block_size = ITEM_BLOCK_SIZE
        self.item_block_size = check_whole("item_block_size", item_block_size)

    # ------------------------------------------------------------------ users
    def _users_frame(self, users):
        """Requested users as a one-column DataFrame (the model's ``userCol``)."""
        from pyspark.sql import DataFrame

        if isinstance(users, DataFrame):
            _require_integer_ids(users, [self.user_col], "users")
            return users.select(self.user_col)
        try:
            values = pd.array(pd.unique(pd.Index(users)), dtype="Int64")
        except (TypeError, ValueError) as exc:
            raise InputTypeError(f"users must be integer ids, as ALS's are: {exc}") from exc
        spark = self.model.userFactors.sparkSession
        return spark.createDataFrame(pd.DataFrame({self.user_col: values}))

    def cold_users(self, users):
        """The requested users without factors (a DataFrame of distinct ids, column ``userCol``)."""
        requested = self._users_frame(users).distinct()
        known = self.model.userFactors.select("id")
        return requested.join(known, requested[self.user_col] == known["id"], "left_anti")

    # ------------------------------------------------------------------ candidates
    def candidates(self, users=None, n: int = 100, exclude_seen: bool = True, interactions=None,
                   on_cold: str = "report"):
        """Top-``n`` unseen candidates per user: a Spark DataFrame ``user_id, item_id, score,
        rank`` (``int, int, double, int``; ids are the model's ids, ``rank`` 1..n by higher
        score then lower item id).

        ``users``: a DataFrame with the model's ``userCol``, or a sequence of ids (default:
        every user with factors). ``interactions``: the DataFrame the model was trained on (or
        any with ``userCol``, ``itemCol``), needed for ``exclude_seen``. ``on_cold``:
        ``"report"`` (cold users get no rows; see ``report_``) or ``"raise"``.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        n = check_whole("n", n)
        check_choice("on_cold", on_cold, ON_COLD)
        if exclude_seen:
            if interactions is None:
                raise InputError("exclude_seen=True needs interactions (the DataFrame the model was trained on)")
            _require_integer_ids(interactions, [self.user_col, self.item_col], "interactions")

        user_factors = self.model.userFactors.select("id", "features")
        report = SparkCandidateReport(0, None)
        if users is not None:
            requested = self._users_frame(users)
            cold = self.cold_users(requested)
            n_cold = cold.count()
            if n_cold and on_cold == "raise":
                example = cold.first()[self.user_col]
                raise InputError(f"user {example!r} has no ALS factors (cold: {n_cold} requested users have none)")
            report = SparkCandidateReport(int(n_cold), cold)
            user_factors = user_factors.join(
                requested, user_factors["id"] == requested[self.user_col], "left_semi"
            )
        self.report_ = report

        if exclude_seen:
            seen = interactions.select(
                F.col(self.user_col).cast("int").alias("user_id"), F.col(self.item_col).cast("int").alias("item_id")
            )
            n_seen = seen.groupBy("user_id").agg(F.countDistinct("item_id").alias("n_seen"))
            user_factors = user_factors.join(n_seen, user_factors["id"] == n_seen["user_id"], "left").select(
                "id", "features", (F.lit(n) + F.coalesce(F.col("n_seen"), F.lit(0))).cast("long").alias("fetch")
            )
        else:
            user_factors = user_factors.withColumn("fetch", F.lit(n).cast("long"))

        rank = self.rank
        block_schema = "ids binary, factors binary, fetch binary"
        user_blocks = user_factors.mapInPandas(
            lambda frames, size=self.user_block_size: pack_blocks(frames, size, rank, sort=False), block_schema
        )
        # One partition per item block; broadcast the blocks when they are small (then the
        # cross join runs one task per user partition, not users × items partitions).
        n_items = self.model.itemFactors.count()
        item_blocks = (
            self.model.itemFactors.select("id", "features")
            .coalesce(max(1, -(-n_items // self.item_block_size)))
            .mapInPandas(lambda frames, size=self.item_block_size: pack_blocks(frames, size, rank, sort=True),
                         block_schema)
            .select(F.col("ids").alias("item_ids"), F.col("factors").alias("item_factors"))
        )
        if n_items * rank * 4 <= BROADCAST_BYTES:
            item_blocks = F.broadcast(item_blocks)
        fetched = user_blocks.crossJoin(item_blocks).mapInPandas(
            lambda frames: score_pairs(frames, rank), CANDIDATE_SCHEMA
        )
        if exclude_seen:
            fetched = fetched.join(seen, on=["user_id", "item_id"], how="left_anti")
        order = Window.partitionBy("user_id").orderBy(F.col("score").desc(), F.col("item_id").asc())
        return (
            fetched.withColumn("rank", F.row_number().over(order))
            .filter(F.col("rank") <= n)
            .select("user_id", "item_id", "score", F.col("rank").cast("int").alias("rank"))
        )

