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
6. **Measure** with :func:`rerank.metrics.user_metrics` against the held-out positives, per
   user: precision, recall and NDCG at k, ``C_KL`` (α = 0.01) and Hellinger miscalibration,
   minority attainment and minority missing (issue 12), minority share, category coverage;
   ``topk_kept`` (the safeguard returned plain top-k); per group, catalogue coverage (distinct
   items recommended / items the model knows).
7. **Group** the test users: ``p̄`` is the reranker's population target, the mean of
   ``p(g|u)`` over every training user with category mass (the target cold users get); a
   user is ``niche`` when ``KL(p_u ‖ p̄)`` is at or above its 0.75 quantile over the test users,
   else ``mainstream``. Groups are fixed across λ (the targets do not depend on λ). The table
   has one row per (group, λ), groups ``all``, ``niche``, ``mainstream``: means over the group's
   users, NaN per-user values skipped.
8. **Who gains**: niche − mainstream gaps and each group's change since the smallest λ, with
   percentile bootstrap intervals over users (:func:`bootstrap_contrasts`).

Scores are min-max normalised per user by default (``normalize="minmax"``): a model's score
scale is arbitrary (ALS dot products, WARP logits), and λ only means the same thing across
models and data sets when the scores live in [0, 1] (docs/design.md §3, §7.1).
"""

from __future__ import annotations

import math
import time
import warnings
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
    """The λ sweep and what it was measured on.

    ``groups``: one row per (``user_group``, ``lambda``), groups ``all``, ``niche``,
    ``mainstream`` (see :func:`user_groups`); ``per_user``: index (``lambda``, ``user_id``), every
    per-user metric and the user's group; ``contrasts``: :func:`bootstrap_contrasts` (``None``
    with ``n_boot=0``); ``population``: ``p̄``; ``users``: per test user ``kl_from_population``
    (``KL(p_u ‖ p̄)``), ``user_group``, ``n_train`` / ``n_test`` (training / held-out positives)
    and ``activity_bin`` (:func:`activity_strata` of ``n_train``).
    """

    groups: pd.DataFrame
    per_user: pd.DataFrame
    k: int
    model: str
    n_users: int
    n_items: int
    n_train: int
    n_test: int
    population: pd.Series
    users: pd.DataFrame
    contrasts: pd.DataFrame | None = None
    seconds: dict = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The ``all`` rows, indexed by λ."""
        return self.group_table("all")

    def group_table(self, group: str) -> pd.DataFrame:
        """One group's rows (``all``, ``niche`` or ``mainstream``), indexed by λ."""
        return self.groups.xs(group, level="user_group")

    def acceptance(self) -> dict:
        """Steck's finding in two numbers (NaN when λ = 0 / 0.5 / 0.9 are not in the sweep):
        ``ckl_ratio_09`` = C_KL(λ=0.9) / C_KL(λ=0) and ``precision_ratio_05`` =
        precision@k(λ=0.5) / precision@k(λ=0)."""
        table = self.table

        def at(lam, column):
            match = table.index[np.isclose(table.index.to_numpy(dtype=float), lam)]
            return float(table.loc[match[0], column]) if len(match) else math.nan

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


#: ``rerank.metrics.user_metrics`` column -> evaluation table column (``{k}``: the list length).
TABLE_COLUMNS = {
    "precision": "precision@{k}",
    "recall": "recall@{k}",
    "ndcg": "ndcg@{k}",
    "miscalibration_kl": "C_KL",
    "miscalibration_hellinger": "Hellinger",
    "minority_attainment": "minority_attainment",
    "minority_missing": "minority_missing",
    "minority_share": "minority_share",
    "category_coverage": "category_coverage",
}
#: Attributes ``evaluate(attributes=...)`` can calibrate: the data set's genres, and
#: Abdollahpouri's head / mid / tail popularity groups of the *training* positives.
ATTRIBUTES = ("genre", "popularity")
#: Per-attribute table columns with several attributes (each ``name[attribute]``).
ATTRIBUTE_COLUMNS = {"miscalibration_kl": "C_KL", "minority_attainment": "minority_attainment",
                     "category_coverage": "category_coverage"}
GROUPS = ("all", "niche", "mainstream")
#: Test users whose ``KL(p_u ‖ p̄)`` is at or above this quantile are ``niche``.
NICHE_QUANTILE = 0.75
DEFAULT_BOOTSTRAP = 1000
#: Activity strata (quantile bins of training positives) for the activity-matched contrasts.
ACTIVITY_BINS = 4


def population_divergence(targets: pd.DataFrame, population) -> pd.Series:
    """``KL(p_u ‖ p̄) = Σ_{g: p_ug > 0} p_ug ln(p_ug / p̄_g)`` per user (natural log, no
    smoothing; ``+inf`` where ``p̄_g = 0 < p_ug``, which cannot happen for a user of the
    population ``p̄`` averages over)."""
    p = targets.to_numpy(dtype=np.float64)
    p_bar = np.broadcast_to(np.asarray(population, dtype=np.float64), p.shape)
    with np.errstate(divide="ignore"):
        ratio = np.divide(p, p_bar, out=np.ones_like(p), where=p > 0)
        terms = np.where(p > 0, p * np.log(ratio), 0.0)
    return pd.Series(terms.sum(axis=1), index=targets.index, name="kl_from_population")


def user_groups(divergence: pd.Series, quantile: float = NICHE_QUANTILE) -> pd.Series:
    """``"niche"`` for users whose divergence is at or above its ``quantile`` over these users
    (numpy's ``"higher"`` method: an observed value, so about the top quarter at 0.75),
    ``"mainstream"`` for the rest."""
    if len(divergence) == 0:
        return pd.Series([], index=divergence.index, name="user_group", dtype=object)
    threshold = np.quantile(divergence.to_numpy(dtype=np.float64), quantile, method="higher")
    labels = np.where(divergence.to_numpy() >= threshold, "niche", "mainstream")
    return pd.Series(labels, index=divergence.index, name="user_group", dtype=object)


def attribute_table(
    item_categories: pd.DataFrame, train: pd.DataFrame, attributes=("genre",)
) -> pd.DataFrame:
    """The item categories of the attributes to calibrate: ``genre`` (the data set's
    categories) and / or ``popularity`` (:func:`rerank.popularity_categories` of the training
    positives: no held-out interaction decides a label). One attribute: a plain
    ``item_id, category`` frame (exactly the one-attribute reranker); several: with an
    ``attribute`` column."""
    from rerank import popularity_categories

    attributes = list(dict.fromkeys(attributes))
    unknown = [name for name in attributes if name not in ATTRIBUTES]
    if unknown or not attributes:
        raise InputError(f"attributes must be among {ATTRIBUTES}, got {attributes}")
    parts = {"genre": lambda: item_categories.assign(attribute="genre"),
             "popularity": lambda: popularity_categories(train[["user_id", "item_id"]])}
    frame = pd.concat([parts[name]() for name in attributes], ignore_index=True)
    return frame.drop(columns="attribute") if len(attributes) == 1 else frame


def measure_users(
    recs: pd.DataFrame, test: pd.DataFrame, reranker: CalibratedReranker, k: int, groups: pd.Series
) -> pd.DataFrame:
    """Per-user metrics of one reranked list set (index ``user_id``): the table columns, the
    user's group, and ``topk_kept`` (1.0 where the safeguard returned plain top-k).

    Several attributes: ``C_KL[a]``, ``minority_attainment[a]``, ``category_coverage[a]`` per
    attribute ``a``, and the unsuffixed ``C_KL`` / ``minority_attainment`` as their means over
    the attributes (``C_KL`` is then the objective's divergence ``Σ_a w_a C_KL(p_a, q_a)`` with
    the default equal weights); the other category columns are left out."""
    users = pd.Index(pd.unique(recs["user_id"]), name="user_id")
    targets = reranker.target_distributions(users)
    frame = metrics.user_metrics(recs, targets, reranker.item_categories_, held_out=test, k=k)
    table = reranker.item_categories_
    if table.n_attributes > 1:
        out = frame[["precision", "recall", "ndcg"]].rename(columns=lambda c: TABLE_COLUMNS[c].format(k=k))
        for name, label in (("miscalibration_kl", "C_KL"), ("minority_attainment", "minority_attainment")):
            out[label] = frame[[f"{name}[{a}]" for a in table.attributes]].mean(axis=1)
        for a in table.attributes:
            for name, label in ATTRIBUTE_COLUMNS.items():
                out[f"{label}[{a}]"] = frame[f"{name}[{a}]"]
        frame = out
    else:
        frame = frame[list(TABLE_COLUMNS)].rename(columns={c: n.format(k=k) for c, n in TABLE_COLUMNS.items()})
    frame["topk_kept"] = users.isin(reranker.report_.topk_users).astype(np.float64)
    frame["user_group"] = groups.reindex(users).to_numpy()
    return frame


def group_means(per_user: pd.DataFrame, recs: pd.DataFrame, n_items: int) -> pd.DataFrame:
    """One row per group (``all``, ``niche``, ``mainstream``): user count, the mean of every
    per-user column (NaN skipped) and the group's catalogue coverage."""
    values = per_user.drop(columns="user_group")
    labelled = per_user["user_group"]
    item_group = labelled.reindex(recs["user_id"]).to_numpy()
    rows = {}
    for group in GROUPS:
        members = np.ones(len(per_user), dtype=bool) if group == "all" else (labelled == group).to_numpy()
        in_recs = np.ones(len(recs), dtype=bool) if group == "all" else item_group == group
        row = {"users": int(members.sum())}
        row.update(values[members].mean().to_dict())
        row["catalogue_coverage"] = recs.loc[in_recs, "item_id"].nunique() / n_items
        rows[group] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    order = ["users", *[c for c in values.columns if c != "topk_kept"], "catalogue_coverage", "topk_kept"]
    return frame[order]


def activity_strata(n_train: pd.Series, n_bins: int = ACTIVITY_BINS) -> pd.Series:
    """Quantile bins (0 = least active) of the users' training-positive counts, for the
    activity-matched contrasts (ties may merge bins)."""
    ranks = n_train.rank(method="first").to_numpy()
    codes = pd.qcut(ranks, min(n_bins, max(len(n_train), 1)), labels=False) if len(n_train) else []
    return pd.Series(np.asarray(codes, dtype=np.int64), index=n_train.index, name="activity_bin")


def _means(counts: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``(draws, λ)`` means of ``block``'s rows (users × λ) weighted by ``counts`` (draws × users),
    NaN values skipped; NaN where no counted user has a value."""
    known = ~np.isnan(block)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ np.where(known, block, 0.0)) / (counts @ known)


def bootstrap_contrasts(
    per_user: pd.DataFrame,
    k: int,
    strata: pd.Series | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Who gains, with percentile bootstrap intervals over users.

    ``per_user``: index ``(lambda, user_id)``, the same users at every λ, with ``user_group``.
    Per λ (``λ₀`` = the smallest λ of the sweep, normally 0), ``N`` niche and ``M`` mainstream:

    * ``<m> gap`` = ``mean_N m − mean_M m`` for ``attainment`` (minority attainment),
      ``precision`` (precision@k) and ``C_KL``;
    * ``<m> gap (activity-matched)`` (with ``strata``, e.g. :func:`activity_strata`):
      ``Σ_b w_b (mean_{N,b} m − mean_{M,b} m) / Σ_b w_b`` over the strata ``b`` where both
      means exist, ``w_b`` = the number of niche users in ``b`` (mainstream standardised to the
      niche users' activity), for attainment and precision;
    * ``<m> change <group>`` = ``mean_group (m_u(λ) − m_u(λ₀))`` (paired: the same users at
      both λ), for precision and attainment.

    Resampling: ``n_boot`` draws of users with replacement within each group (group sizes
    fixed), the same draws for every λ and quantity; NaN per-user values are skipped in each
    mean. Returns ``lambda, quantity, estimate, ci_low, ci_high`` (``level`` percentile interval).
    """
    if n_boot < 1:
        raise InputError(f"n_boot must be >= 1, got {n_boot}")
    lambdas = per_user.index.get_level_values("lambda").unique().sort_values()
    first = per_user.xs(lambdas[0], level="lambda")
    precision = f"precision@{k}"
    names = ("minority_attainment", precision, "C_KL")
    SHORT = {"minority_attainment": "attainment", precision: "precision", "C_KL": "C_KL"}  # noqa: N806
    rows_of = {group: np.flatnonzero(first["user_group"].to_numpy() == group) for group in ("niche", "mainstream")}
    blocks = {}
    for name in names:  # users × λ, users in the order of ``first``
        x = per_user[name].unstack("lambda").reindex(index=first.index, columns=lambdas).to_numpy()
        for group, rows in rows_of.items():
            blocks[group, name] = x[rows]
            blocks[group, f"{name} change"] = x[rows] - x[rows][:, :1]
    strata_masks = []
    if strata is not None:
        codes = strata.reindex(first.index).to_numpy()
        niche_codes = codes[rows_of["niche"]]
        for b in np.unique(codes[~pd.isna(codes)]):
            in_n, in_m = niche_codes == b, codes[rows_of["mainstream"]] == b
            if in_n.any() and in_m.any():
                strata_masks.append((float(in_n.sum()), in_n.astype(np.float64), in_m.astype(np.float64)))

    def quantities(c_n: np.ndarray, c_m: np.ndarray) -> dict:
        """Every quantity under count matrices for the niche and the mainstream users."""
        out = {}
        for name in names:
            out[f"{SHORT[name]} gap"] = _means(c_n, blocks["niche", name]) - _means(c_m, blocks["mainstream", name])
        if strata_masks:
            for name in ("minority_attainment", precision):
                niche, mainstream = blocks["niche", name], blocks["mainstream", name]
                gaps = np.stack([_means(c_n * in_n, niche) - _means(c_m * in_m, mainstream)
                                 for _, in_n, in_m in strata_masks])
                weights = np.array([weight for weight, _, _ in strata_masks])[:, None, None] * np.isfinite(gaps)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[f"{SHORT[name]} gap (activity-matched)"] = (
                        np.where(weights > 0, gaps, 0.0) * weights).sum(axis=0) / weights.sum(axis=0)
        for name in (precision, "minority_attainment"):
            for group, counts in (("niche", c_n), ("mainstream", c_m)):
                out[f"{SHORT[name]} change {group}"] = _means(counts, blocks[group, f"{name} change"])
        return out

    n_n, n_m = len(rows_of["niche"]), len(rows_of["mainstream"])
    estimates = quantities(np.ones((1, n_n)), np.ones((1, n_m)))  # NaN where a group is empty
    if n_n == 0 or n_m == 0:  # nothing to contrast
        draws = {name: np.full((1, len(lambdas)), np.nan) for name in estimates}
    else:
        rng = np.random.default_rng(seed)
        chunk = max(1, 4_000_000 // max(n_n, n_m))
        parts = []
        for start in range(0, n_boot, chunk):
            size = min(chunk, n_boot - start)
            c_n = rng.multinomial(n_n, np.full(n_n, 1.0 / n_n), size=size).astype(np.float64)
            c_m = rng.multinomial(n_m, np.full(n_m, 1.0 / n_m), size=size).astype(np.float64)
            parts.append(quantities(c_n, c_m))
        draws = {name: np.concatenate([part[name] for part in parts]) for name in estimates}
    tail = (1.0 - level) / 2.0
    rows = []
    for quantity, estimate in estimates.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanquantile(draws[quantity], [tail, 1.0 - tail], axis=0)
        for j, lam in enumerate(lambdas):
            rows.append({"lambda": lam, "quantity": quantity, "estimate": estimate[0, j],
                         "ci_low": low[j], "ci_high": high[j]})
    return pd.DataFrame(rows)


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
    n_boot: int = DEFAULT_BOOTSTRAP,
    progress: bool = False,
    refine: str | None = None,
    attributes=("genre",),
) -> Evaluation:
    """Run the pipeline of the module docstring; returns the λ sweep per user group.

    ``refine``: the reranker's ``refine`` option (``"swap"``: local-search refinement of each
    list, :mod:`rerank.engine.refine`).

    ``n_boot``: bootstrap draws for :func:`bootstrap_contrasts` (seeded with ``seed``; 0 skips).
    ``attributes``: what to calibrate, among ``ATTRIBUTES`` (:func:`attribute_table`); with
    several, the objective is ``Σ_a C(p_a, q_a) / A`` (equal weights), the niche users are those
    whose ``Σ_a KL(p_a ‖ p̄_a)`` is in the top quartile, and the metrics are per attribute
    (:func:`measure_users`).
    """
    lambdas = sorted({float(lam) for lam in lambdas})
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
    start = time.perf_counter()
    history = train[["user_id", "item_id"]]
    item_categories = attribute_table(item_categories, train, attributes)
    # The targets and p̄ do not depend on λ: one fit gives the user groups for the whole sweep.
    fitted = CalibratedReranker(k=k, lam=0.0, normalize=normalize).fit(history, item_categories)
    population = pd.Series(fitted.population_target_, index=fitted.categories_, name="population_target")
    divergence = population_divergence(fitted.target_distributions(users), fitted.population_target_)
    groups = user_groups(divergence)
    user_info = pd.DataFrame({"kl_from_population": divergence, "user_group": groups})
    user_info["n_train"] = train.groupby("user_id").size().reindex(user_info.index, fill_value=0)
    user_info["n_test"] = test.groupby("user_id").size().reindex(user_info.index, fill_value=0)
    user_info["activity_bin"] = activity_strata(user_info["n_train"])
    iterator = lambdas
    if progress:
        from tqdm import tqdm

        iterator = tqdm(lambdas, desc="λ sweep", unit="λ")
    per_user, tables = {}, {}
    for lam in iterator:
        reranker = CalibratedReranker(k=k, lam=lam, normalize=normalize, refine=refine).fit(history, item_categories)
        recs = reranker.rerank(candidates)
        per_user[lam] = measure_users(recs, test, reranker, k, groups)
        tables[lam] = group_means(per_user[lam], recs, adapter.n_items)
    clock["rerank_and_measure"] = time.perf_counter() - start
    per_user = pd.concat(per_user, names=["lambda", "user_id"])
    table = pd.concat({group: pd.concat({lam: t.loc[group] for lam, t in tables.items()}, axis=1).T
                       for group in GROUPS}, names=["user_group", "lambda"])
    table["users"] = table["users"].astype(np.int64)
    contrasts = None
    if n_boot:
        start = time.perf_counter()
        contrasts = bootstrap_contrasts(per_user, k, user_info["activity_bin"], n_boot=n_boot, seed=seed)
        clock["bootstrap"] = time.perf_counter() - start
    return Evaluation(
        table, per_user, k, model, len(users), adapter.n_items, len(train), len(test), population,
        user_info, contrasts, clock,
    )


def format_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-markdown table of one sweep (index λ); integer columns print as integers."""
    header = ["λ", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    integer = [pd.api.types.is_integer_dtype(dtype) for dtype in table.dtypes]
    for lam, row in table.iterrows():
        cells = [f"{lam:g}"] + [
            f"{value:d}" if is_int else f"{value:.{digits}f}"
            for value, is_int in zip(row.tolist(), integer, strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


GROUP_TITLES = {
    "all": "all test users",
    "niche": f"niche: KL(p_u ‖ p̄) in the top quartile (≥ its {NICHE_QUANTILE:g} quantile)",
    "mainstream": "mainstream: the other test users",
}


def format_groups(evaluation: Evaluation, digits: int = 4) -> str:
    """Markdown: one block per user group (``all``, ``niche``, ``mainstream``)."""
    blocks = []
    for group in GROUPS:
        table = evaluation.group_table(group)
        users = evaluation.users if group == "all" else evaluation.users[evaluation.users["user_group"] == group]
        body = format_table(table.drop(columns="users"), digits)
        blocks.append(
            f"**{GROUP_TITLES[group]}** ({len(users)} users; median {users['n_train'].median():g} training / "
            f"{users['n_test'].median():g} held-out positives)\n\n{body}"
        )
    return "\n\n".join(blocks)


def format_contrasts(contrasts: pd.DataFrame, digits: int = 3) -> str:
    """Markdown: rows λ, one column per quantity, ``estimate [ci_low, ci_high]``."""
    quantities = list(pd.unique(contrasts["quantity"]))
    header = ["λ", *quantities]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    for lam, rows in contrasts.groupby("lambda", sort=True):
        by_name = rows.set_index("quantity")
        cells = [f"{lam:g}"] + [
            f"{by_name.loc[q, 'estimate']:+.{digits}f} [{by_name.loc[q, 'ci_low']:+.{digits}f}, "
            f"{by_name.loc[q, 'ci_high']:+.{digits}f}]"
            for q in quantities
        ]
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


GROUP_STYLES = {"all": ("tab:grey", "o:"), "niche": ("tab:red", "s-"), "mainstream": ("tab:blue", "^-")}


def plot_groups(evaluation: Evaluation, path, labelled=(0.0, 0.5, 0.9, 0.99)) -> None:
    """PNG, per user group: minority attainment against precision@k (λ marked at ``labelled`` on
    the niche and mainstream curves), and C_KL against λ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = f"precision@{evaluation.k}"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    for group in GROUPS:
        table = evaluation.group_table(group)
        color, style = GROUP_STYLES[group]
        n_users = int(table["users"].iloc[0])
        left.plot(table[p], table["minority_attainment"], style, color=color, label=f"{group} ({n_users})")
        for lam, row in table.iterrows():
            if group != "all" and any(np.isclose(lam, labelled)):
                left.annotate(f"λ={lam:g}", (row[p], row["minority_attainment"]), textcoords="offset points",
                              xytext=(4, -10), fontsize=7, color=color)
        right.plot(table.index.to_numpy(dtype=float), table["C_KL"], style, color=color, label=group)
    left.set_xlabel(f"mean {p}")
    left.set_ylabel("mean minority attainment")
    left.set_title("Minority attainment vs precision, per user group")
    left.legend(fontsize=8)
    right.set_xlabel("λ")
    right.set_ylabel("mean C_KL (miscalibration)")
    right.set_title(f"Miscalibration over λ ({evaluation.model})")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
