"""Real-data evaluation of calibrated reranking (Steck 2018, §5) through an adapter.

Pipeline (every step vectorised; the reranking is the one kernel via ``CalibratedReranker``):

1. **Positives**: ratings ``>= min_rating`` (default 4, as in Steck's MovieLens experiment);
   ``min_rating=None`` keeps every rating.
2. **Split** the positives: ``"random"`` (a seeded random ``test_fraction`` of all
   positives) or ``"time"`` (each user's most recent ``test_fraction`` of positives, by
   timestamp; users with one positive stay in training).
3. **Train** a model on the training positives (binary user × item matrix) and wrap it in an
   adapter: ``"als"``, ``"bpr"`` (implicit) or ``"lightfm"`` (WARP loss).
4. **Candidates**: top-``n`` unseen items for every test user known to the model.
5. **Rerank** with ``CalibratedReranker(k, λ, normalize=...)`` fitted on the training
   positives (the user's target ``p(g|u)`` is the genre mix of their training history) for
   each λ of the sweep.
6. **Measure** with :mod:`rerank.metrics` against the held-out positives: precision, recall
   and NDCG at k, mean ``C_KL`` (α = 0.01) and Hellinger miscalibration, minority-interest
   share, category coverage (per user) and catalogue coverage (distinct items recommended /
   items the model knows).

Scores are min-max normalised per user by default (``normalize="minmax"``): a model's score
scale is arbitrary (ALS dot products, WARP logits), and λ only means the same thing across
models and data sets when the scores live in [0, 1] (docs/design.md §3, §7.1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rerank.adapters.base import CandidateAdapter
from rerank.adapters.interactions import interaction_matrix

from rerank import CalibratedReranker, metrics
from rerank.errors import InputError

DEFAULT_LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
MODELS = ("als", "bpr", "lightfm")
SPLITS = ("random", "time")
#: Default training iterations (epochs for LightFM) per model.
DEFAULT_ITERATIONS = {"als": 15, "bpr": 100, "lightfm": 30}


@dataclass
class Evaluation:
    """The λ sweep: ``table`` (one row per λ) and what it was measured on."""

    table: pd.DataFrame
    k: int
    model: str
    n_users: int
    n_items: int
    n_train: int
    n_test: int
    seconds: dict = field(default_factory=dict)

    def acceptance(self) -> dict:
        """Steck's finding in two numbers (NaN when λ = 0 / 0.5 / 0.9 are not in the sweep):
        ``ckl_ratio_09`` = C_KL(λ=0.9) / C_KL(λ=0) and ``precision_ratio_05`` =
        precision@k(λ=0.5) / precision@k(λ=0)."""

        def at(lam, column):
            match = self.table.index[np.isclose(self.table.index.to_numpy(dtype=float), lam)]
            return float(self.table.loc[match[0], column]) if len(match) else math.nan

        p = f"precision@{self.k}"
        return {
            "ckl_ratio_09": at(0.9, "C_KL") / at(0.0, "C_KL"),
            "precision_ratio_05": at(0.5, p) / at(0.0, p),
        }


def positives(ratings: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Ratings kept as positive feedback (``rating >= min_rating``)."""
    if min_rating is None:
        return ratings.reset_index(drop=True)
    if "rating" not in ratings.columns:
        raise InputError("ratings has no 'rating' column; pass min_rating=None to keep all rows")
    return ratings[ratings["rating"] >= min_rating].reset_index(drop=True)


def split(
    frame: pd.DataFrame, how: str = "random", test_fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)``: a seeded random fraction of the rows, or per user the most recent
    ``round(test_fraction · n_u)`` rows by ``timestamp`` (at least one row stays in train)."""
    if how not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {how!r}")
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    frame = frame.reset_index(drop=True)
    if how == "random":
        order = np.random.default_rng(seed).permutation(len(frame))
        is_test = np.zeros(len(frame), dtype=bool)
        is_test[order[: int(round(test_fraction * len(frame)))]] = True
    else:
        if "timestamp" not in frame.columns:
            raise InputError("split='time' needs a 'timestamp' column")
        ordered = frame.sort_values(["user_id", "timestamp"], kind="stable")
        size = ordered.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
        from_end = size - 1 - ordered.groupby("user_id", sort=False).cumcount().to_numpy()
        n_test = np.minimum(np.round(test_fraction * size), size - 1)
        is_test = np.zeros(len(frame), dtype=bool)
        is_test[frame.index.get_indexer(ordered.index)] = from_end < n_test
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def train_adapter(
    model: str,
    train: pd.DataFrame,
    *,
    factors: int = 64,
    iterations: int | None = None,
    seed: int = 0,
    threads: int = 0,
) -> CandidateAdapter:
    """Fit ``model`` on the binary training matrix and return its adapter.

    ALS uses ``threads`` (its per-user solves do not depend on the thread count); BPR and
    LightFM train with one thread so a seed gives one result (their SGD is hogwild).
    """
    if model not in MODELS:
        raise InputError(f"model must be one of {MODELS}, got {model!r}")
    iterations = DEFAULT_ITERATIONS[model] if iterations is None else int(iterations)
    extra = "lightfm" if model == "lightfm" else "implicit"
    try:
        __import__(extra)
    except ImportError as exc:
        raise InputError(
            f"model {model!r} needs the {extra!r} package: pip install 'calibrated-rerank[{extra}]'"
        ) from exc
    if model == "lightfm":
        return _train_lightfm(train, factors, iterations, seed)
    import threadpoolctl
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from rerank.adapters.implicit import ImplicitAdapter

    data = interaction_matrix(train)
    matrix = data.matrix.copy()
    matrix.data[:] = 1.0
    # implicit wants single-threaded BLAS (it warns otherwise, at construction).
    with threadpoolctl.threadpool_limits(1, "blas"):
        if model == "als":
            fitted = AlternatingLeastSquares(
                factors=factors, regularization=0.05, iterations=iterations, random_state=seed,
                num_threads=threads, use_gpu=False,
            )
        else:
            fitted = BayesianPersonalizedRanking(
                factors=factors, iterations=iterations, random_state=seed, num_threads=1,
                use_gpu=False,
            )
        fitted.fit(matrix, show_progress=False)
    return ImplicitAdapter(fitted, matrix, user_ids=data.user_ids, item_ids=data.item_ids)


def _train_lightfm(train: pd.DataFrame, factors: int, epochs: int, seed: int) -> CandidateAdapter:
    from lightfm import LightFM
    from lightfm.data import Dataset
    from rerank.adapters.lightfm import LightFMAdapter

    dataset = Dataset()
    dataset.fit(pd.unique(train["user_id"]), pd.unique(train["item_id"]))
    interactions, _ = dataset.build_interactions(zip(train["user_id"], train["item_id"], strict=True))
    model = LightFM(no_components=factors, loss="warp", random_state=seed)
    model.fit(interactions, epochs=epochs, num_threads=1)
    return LightFMAdapter(model, dataset, user_items=interactions)


def measure(
    recs: pd.DataFrame, test: pd.DataFrame, reranker: CalibratedReranker, k: int, n_items: int
) -> dict:
    """The table row of one reranked list set (averages over users)."""
    users = pd.Index(pd.unique(recs["user_id"]))
    targets = reranker.target_distributions(users)
    table = reranker.item_categories_
    acc = metrics.precision_recall_ndcg(recs, test, k).mean()
    return {
        f"precision@{k}": acc["precision"],
        f"recall@{k}": acc["recall"],
        f"ndcg@{k}": acc["ndcg"],
        "C_KL": metrics.miscalibration(recs, targets, table, "kl").mean(),
        "Hellinger": metrics.miscalibration(recs, targets, table, "hellinger").mean(),
        "minority_share": metrics.minority_share(recs, targets, table).mean(),
        "category_coverage": metrics.category_coverage(recs, targets, table).mean(),
        "catalogue_coverage": metrics.catalogue_coverage(recs, n_items),
    }


def evaluate(
    ratings: pd.DataFrame,
    item_categories: pd.DataFrame,
    *,
    model: str = "als",
    split_by: str = "random",
    test_fraction: float = 0.2,
    min_rating: float | None = 4.0,
    n: int = 100,
    k: int = 10,
    lambdas=DEFAULT_LAMBDAS,
    normalize: str | None = "minmax",
    factors: int = 64,
    iterations: int | None = None,
    seed: int = 0,
    threads: int = 0,
    progress: bool = False,
) -> Evaluation:
    """Run the pipeline of the module docstring; returns the λ sweep table."""
    lambdas = [float(lam) for lam in lambdas]
    if not lambdas:
        raise InputError("lambdas is empty")
    clock = {}
    start = time.perf_counter()
    data = positives(ratings, min_rating)
    train, test = split(data, split_by, test_fraction, seed)
    adapter = train_adapter(model, train, factors=factors, iterations=iterations, seed=seed, threads=threads)
    clock["train"] = time.perf_counter() - start
    users = pd.unique(test["user_id"])
    users = users[adapter.user_ids.get_indexer(users) >= 0]
    if len(users) == 0:
        raise InputError("no test user appears in the training data")
    test = test[test["user_id"].isin(users)]
    start = time.perf_counter()
    candidates = adapter.candidates(users, n=n, exclude_seen=True)
    clock["candidates"] = time.perf_counter() - start
    rows = {}
    start = time.perf_counter()
    history = train[["user_id", "item_id"]]
    iterator = lambdas
    if progress:
        from tqdm import tqdm

        iterator = tqdm(lambdas, desc="λ sweep", unit="λ")
    for lam in iterator:
        reranker = CalibratedReranker(k=k, lam=lam, normalize=normalize).fit(history, item_categories)
        recs = reranker.rerank(candidates)
        rows[lam] = measure(recs, test, reranker, k, adapter.n_items)
    clock["rerank_and_measure"] = time.perf_counter() - start
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "lambda"
    return Evaluation(table, k, model, len(users), adapter.n_items, len(train), len(test), clock)


def format_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-markdown table of the sweep."""
    header = ["λ", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    for lam, row in table.iterrows():
        cells = [f"{lam:g}"] + [f"{value:.{digits}f}" for value in row.to_numpy()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_tradeoff(evaluation: Evaluation, path) -> None:
    """PNG: precision@k and C_KL against λ, and the precision / C_KL trade-off curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = evaluation.table
    p = f"precision@{evaluation.k}"
    lam = table.index.to_numpy(dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(lam, table[p], "o-", color="tab:blue", label=p)
    left.set_xlabel("λ")
    left.set_ylabel(p, color="tab:blue")
    left.set_ylim(0, table[p].max() * 1.15)
    twin = left.twinx()
    twin.plot(lam, table["C_KL"], "s--", color="tab:red", label="C_KL")
    twin.set_ylabel("mean C_KL (miscalibration)", color="tab:red")
    twin.set_ylim(0, table["C_KL"].max() * 1.15)
    left.set_title("Accuracy and miscalibration over λ")
    right.plot(table["C_KL"], table[p], "o-", color="tab:purple")
    for x, y, value in zip(table["C_KL"], table[p], lam, strict=True):
        right.annotate(f"{value:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.set_xlabel("mean C_KL (lower: better calibrated)")
    right.set_ylabel(p)
    right.set_title(f"Trade-off ({evaluation.model}, {evaluation.n_users} users)")
    right.invert_xaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
