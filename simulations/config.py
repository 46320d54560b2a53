"""One configuration object for the feedback-loop simulator (docs/design.md §7, issue 11).

Every size, share and rate of a run lives in :class:`SimConfig`. The defaults describe the
world of docs/simulation.md ("The world's defaults"), each chosen from the literature and
fixed, with the verdict rule, *before* the headline run (see the git history of that page).
:func:`preset` returns named variants; :data:`RUN_PRESETS` adds the seeds and policies of a
named experiment (``"headline"``).

The world (formulas in :mod:`rerank.simulations.world`, :mod:`~rerank.simulations.clicks`,
:mod:`~rerank.simulations.dynamics`):

* ``n_categories`` categories; the last ``n_niche_categories`` are *niche*: each has
  ``niche_supply`` times the item supply of a mainstream category and its items a quality
  shifted by ``niche_quality_shift`` (docs/design.md §7.1 "niche supply").
* Two user groups: a ``niche_share`` of users (the **niche group**) has a niche dominant
  interest, the others (the **mainstream group**) a mainstream one. Each user puts
  ``dominant_weight`` of taste on the dominant interest and splits the rest over
  ``n_minority_interests`` other categories, the user's *minority interests*.
* True relevance ``rel(u,i) = σ(rel_bias + rel_pref · θ_u·p(·|i) + quality_i)``.
* Supply never runs out: ``reconsume`` lets a user consume an item again; ``fresh_slots``
  slots at the bottom of every recommended slate show an item drawn from the
  ``fresh_pool`` newest arrivals.
* Clicks: position-based ``(1/rank)^η`` or cascade, with a ``noise_share`` of non-attitude
  clicks. Tastes drift toward attitude clicks (``drift_rate`` per click) and, optionally,
  toward what was shown (``exposure_drift_rate`` per round).
* The model learns from clicks and from examined-but-unclicked impressions
  (``impression_negatives``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from rerank.errors import InputError

CLICK_MODELS = ("position", "cascade")
MODELS = ("als", "position-tower", "popularity", "oracle")
TRAIN_MODES = ("naive", "ips")
#: Metrics a verdict can judge, with the sign that makes "worse" positive: +1 when a higher
#: value is worse, -1 when a lower value is worse (docs/simulation.md, "Loop effect and verdict").
VERDICT_METRICS = {
    "ref_miscalibration": 1.0,
    "ref_minority_ratio": -1.0,
    "distinct_interest_ratio": -1.0,
    "taste_entropy": -1.0,
    "true_utility": -1.0,
}


@dataclass(frozen=True)
class SimConfig:
    """All parameters of one simulation run (defaults: docs/simulation.md, "The world")."""

    # --- sizes
    n_users: int = 1000
    n_items: int = 1500
    n_rounds: int = 100
    slate_size: int = 10
    n_candidates: int = 100
    seed: int = 0
    # --- population
    n_categories: int = 10
    n_niche_categories: int = 3
    niche_share: float = 0.25
    dominant_weight: float = 0.5
    n_minority_interests: int = 2
    minority_concentration: float = 3.0
    # --- catalogue and supply
    niche_supply: float = 0.5
    categories_per_item: tuple[float, ...] = (0.6, 0.3, 0.1)  # P(1), P(2), P(3) categories
    quality_sd: float = 0.5
    niche_quality_shift: float = -0.25
    new_items_per_round: int = 15
    reconsume: bool = True
    fresh_slots: int = 1
    fresh_pool: int = 150
    # --- true relevance: σ(rel_bias + rel_pref · θ_u·p(·|i) + quality_i)
    rel_bias: float = -3.5
    rel_pref: float = 6.0
    # --- organic history before the loop (sampled ∝ rel, no ranking, no position bias)
    organic_per_user: int = 20
    # --- clicks
    click_model: str = "position"
    eta: float = 0.8
    noise_share: float = 0.05
    noise_click_prob: float = 0.3
    # --- user dynamics (Jiang et al. 2019; Kalimeris et al. 2021); 0 = off
    drift_rate: float = 0.02
    exposure_drift_rate: float = 0.0
    # --- model in the loop
    model: str = "als"
    train: str = "naive"
    retrain_every: int = 2
    ips_clip: float = 10.0
    impression_negatives: bool = True
    impression_negative_weight: float = 1.0
    als_factors: int = 32
    als_regularization: float = 0.05
    als_alpha: float = 5.0
    als_iterations: int = 10
    tower_factors: int = 16
    tower_epochs: int = 2
    tower_learning_rate: float = 0.05
    tower_regularization: float = 1e-4
    # --- policies
    lam: float = 0.5
    epsilon: float = 0.1
    blend_weight: float = 0.5
    # --- metrics
    collapse_threshold: float = 0.25
    homogenization_pairs: int = 2000
    top_relevant: int = 50
    # --- verdict (docs/simulation.md, "Loop effect and verdict"), fixed before the headline
    verdict_metric: str = "ref_miscalibration"
    verdict_window: int = 20
    verdict_margin: float = 0.10
    verdict_margin_floor: float = 0.01
    verdict_trend_share: float = 0.25
    depletion_threshold: float = 0.10
    # --- execution
    n_threads: int | None = 1

    def __post_init__(self) -> None:
        _positive_int(self, "n_users", "n_items", "n_rounds", "slate_size", "n_candidates",
                      "n_categories", "retrain_every", "als_factors", "als_iterations",
                      "tower_factors", "tower_epochs", "verdict_window", "top_relevant")
        _nonnegative_int(self, "n_minority_interests", "new_items_per_round",
                         "organic_per_user", "homogenization_pairs", "seed", "fresh_slots",
                         "fresh_pool")
        if not 0 <= self.n_niche_categories < self.n_categories:
            raise InputError(
                f"n_niche_categories must be in [0, n_categories), got {self.n_niche_categories}"
            )
        if self.n_minority_interests > self.n_categories - 1:
            raise InputError("n_minority_interests must be at most n_categories - 1")
        if self.n_candidates < self.slate_size:
            raise InputError(
                f"n_candidates ({self.n_candidates}) must be >= slate_size ({self.slate_size})"
            )
        if self.fresh_slots >= self.slate_size:
            raise InputError(
                f"fresh_slots ({self.fresh_slots}) must be smaller than slate_size "
                f"({self.slate_size})"
            )
        if self.fresh_slots and self.fresh_pool < self.fresh_slots:
            raise InputError(f"fresh_pool ({self.fresh_pool}) must be >= fresh_slots")
        needed = self.n_candidates + self.organic_per_user
        if not self.reconsume:
            needed += self.n_rounds * self.slate_size
        if self.n_items < needed:
            what = "n_candidates plus the organic history"
            if not self.reconsume:
                what += " plus every item consumed over the run (reconsume is off)"
            raise InputError(f"n_items={self.n_items} is too small: it must hold {what} ({needed})")
        for name in ("niche_share", "dominant_weight", "noise_share", "noise_click_prob",
                     "lam", "epsilon", "drift_rate", "exposure_drift_rate", "collapse_threshold",
                     "blend_weight", "verdict_margin", "verdict_trend_share",
                     "depletion_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must lie in [0, 1], got {value}")
        for name in ("niche_supply", "minority_concentration", "ips_clip", "als_alpha",
                     "tower_learning_rate", "verdict_margin_floor"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.impression_negative_weight < 0:
            raise InputError(
                f"impression_negative_weight must be >= 0, got {self.impression_negative_weight}"
            )
        if self.ips_clip < 1.0:
            raise InputError(f"ips_clip must be >= 1 (a maximum weight), got {self.ips_clip}")
        if self.eta < 0:
            raise InputError(f"eta must be >= 0, got {self.eta}")
        probs = self.categories_per_item
        if (not probs or len(probs) > self.n_categories or any(p < 0 for p in probs)
                or abs(sum(probs) - 1.0) > 1e-9):
            raise InputError(
                "categories_per_item must be probabilities of 1..m categories summing to 1, "
                f"got {probs}"
            )
        if self.click_model not in CLICK_MODELS:
            raise InputError(f"click_model must be one of {CLICK_MODELS}, got {self.click_model!r}")
        if self.model not in MODELS:
            raise InputError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.train not in TRAIN_MODES:
            raise InputError(f"train must be one of {TRAIN_MODES}, got {self.train!r}")
        if self.model == "position-tower" and self.train == "ips":
            raise InputError(
                "model 'position-tower' de-biases through its learned position term; "
                "use train='naive' with it (IPS weights would correct position bias twice)"
            )
        if self.verdict_metric not in VERDICT_METRICS:
            raise InputError(
                f"verdict_metric must be one of {sorted(VERDICT_METRICS)}, got {self.verdict_metric!r}"
            )

    @property
    def n_mainstream_categories(self) -> int:
        return self.n_categories - self.n_niche_categories

    @property
    def n_items_total(self) -> int:
        """Initial catalogue plus every item that arrives during the run."""
        return self.n_items + self.n_rounds * self.new_items_per_round

    @property
    def model_slots(self) -> int:
        """Slots the policy fills; the remaining ``fresh_slots`` show fresh arrivals."""
        return self.slate_size - self.fresh_slots

    def to_dict(self) -> dict:
        out = asdict(self)
        out["categories_per_item"] = list(self.categories_per_item)
        return out

    def with_(self, **changes) -> SimConfig:
        """A copy with some fields changed (validated again)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown simulation parameter {unknown[0]!r}")
        return replace(self, **changes)


#: The policies of the headline experiment (docs/simulation.md), also the CLI default.
HEADLINE_POLICIES = ("organic", "oracle", "topk", "topk-frozen", "calibrated",
                     "calibrated-anchored", "calibrated-blend")

PRESETS = {
    "default": {},
    "51-49": {"niche_share": 0.49},
    "headline": {},
}

#: Run-level settings of the named experiments: how many seeds, which policies.
#: The policies of a run without ``--policy`` (a quick single-seed look; under 60 s).
DEFAULT_POLICIES = ("organic", "topk", "calibrated", "calibrated-anchored")

RUN_PRESETS = {
    "default": {"n_seeds": 1, "policies": DEFAULT_POLICIES},
    "51-49": {"n_seeds": 1, "policies": DEFAULT_POLICIES},
    "headline": {"n_seeds": 5, "policies": HEADLINE_POLICIES},
}


def preset(name: str = "default", **changes) -> SimConfig:
    """A named configuration (``"default"``, ``"51-49"``, ``"headline"``) with overrides."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SimConfig().with_(**{**PRESETS[name], **changes})


def _positive_int(config: SimConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a whole number >= 1, got {value!r}")


def _nonnegative_int(config: SimConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{name} must be a whole number >= 0, got {value!r}")
