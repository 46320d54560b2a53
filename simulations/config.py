"""One configuration object for the feedback-loop simulator (docs/design.md §7).

Every size, share and rate of a run lives in :class:`SimConfig`; the defaults are the
"default run" of the issue (about 2,000 users, 1,500 items, 40 rounds, 10 slots) and were
chosen *before* looking at any result. :func:`preset` returns named variants (``"default"``,
``"51-49"``: a population split 51/49 instead of 75/25).

The world the defaults describe (formulas in :mod:`rerank.simulations.world`):

* ``n_categories`` categories; the last ``n_niche_categories`` are *niche*: each has
  ``niche_supply`` times the item supply of a mainstream category and its items a quality
  shifted by ``niche_quality_shift`` (docs/design.md §7.1 "niche supply").
* A ``minority_share`` of users (the *minority group*) has a niche dominant interest; the
  others (the *majority group*) a mainstream one. Each user puts ``dominant_weight`` of taste
  on the dominant interest and splits the rest over ``n_minority_interests`` other
  categories (Dirichlet(``minority_concentration``)).
* True relevance ``rel(u,i) = σ(rel_bias + rel_pref · θ_u·p(·|i) + quality_i)``.
* Click models: position-based ``(1/rank)^η`` or cascade, with a ``noise_share`` of
  non-attitude behaviour (docs/design.md §7).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from rerank.errors import InputError

CLICK_MODELS = ("position", "cascade")
MODELS = ("als", "position-tower", "popularity", "oracle")
TRAIN_MODES = ("naive", "ips")


@dataclass(frozen=True)
class SimConfig:
    """All parameters of one simulation run (defaults: the issue's default run)."""

    # --- sizes
    n_users: int = 2000
    n_items: int = 1500
    n_rounds: int = 40
    slate_size: int = 10
    n_candidates: int = 100
    seed: int = 0
    # --- population
    n_categories: int = 10
    n_niche_categories: int = 3
    minority_share: float = 0.25
    dominant_weight: float = 0.5
    n_minority_interests: int = 2
    minority_concentration: float = 3.0
    # --- catalogue
    niche_supply: float = 0.5
    categories_per_item: tuple[float, ...] = (0.6, 0.3, 0.1)  # P(1), P(2), P(3) categories
    quality_sd: float = 0.5
    niche_quality_shift: float = -0.25
    new_items_per_round: int = 15
    # --- true relevance: σ(rel_bias + rel_pref · θ_u·p(·|i) + quality_i)
    rel_bias: float = -3.5
    rel_pref: float = 6.0
    # --- organic history before the loop (sampled ∝ rel, no ranking, no position bias)
    organic_per_user: int = 10
    # --- clicks
    click_model: str = "position"
    eta: float = 1.0
    noise_share: float = 0.05
    noise_click_prob: float = 0.3
    # --- model in the loop
    model: str = "als"
    train: str = "naive"
    retrain_every: int = 2
    ips_clip: float = 10.0
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
    # --- interest drift toward clicked categories (Jiang et al. 2019); 0 = off
    drift_rate: float = 0.0
    # --- metrics
    collapse_threshold: float = 0.25
    homogenization_pairs: int = 2000
    # --- equilibrium detection
    equilibrium_window: int = 8
    equilibrium_rel_tol: float = 0.05
    equilibrium_abs_tol: float = 0.01
    degenerate_collapse_rate: float = 0.5
    degenerate_exposure_ratio: float = 0.5
    # --- execution
    n_threads: int | None = None

    def __post_init__(self) -> None:
        _positive_int(self, "n_users", "n_items", "n_rounds", "slate_size", "n_candidates",
                      "n_categories", "retrain_every", "als_factors", "als_iterations",
                      "tower_factors", "tower_epochs", "equilibrium_window")
        _nonnegative_int(self, "n_minority_interests", "new_items_per_round",
                         "organic_per_user", "homogenization_pairs", "seed")
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
        if self.n_items < self.n_candidates + self.organic_per_user + self.n_rounds:
            raise InputError(
                f"n_items={self.n_items} is too small for n_candidates={self.n_candidates} "
                "plus the items each user consumes over the run"
            )
        for name in ("minority_share", "dominant_weight", "noise_share", "noise_click_prob",
                     "lam", "epsilon", "drift_rate", "collapse_threshold",
                     "degenerate_collapse_rate", "degenerate_exposure_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must lie in [0, 1], got {value}")
        for name in ("niche_supply", "minority_concentration", "ips_clip", "als_alpha",
                     "tower_learning_rate"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
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

    @property
    def n_mainstream_categories(self) -> int:
        return self.n_categories - self.n_niche_categories

    @property
    def n_items_total(self) -> int:
        """Initial catalogue plus every item that arrives during the run."""
        return self.n_items + self.n_rounds * self.new_items_per_round

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


PRESETS = {
    "default": {},
    "51-49": {"minority_share": 0.49},
}


def preset(name: str = "default", **changes) -> SimConfig:
    """A named configuration (``"default"`` or ``"51-49"``) with optional overrides."""
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
