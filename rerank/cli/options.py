"""The reranking flags shared by the commands, and the one :func:`options_from_args`.

``rerank apply`` takes every option the Python API has (``add_rerank_arguments``);
``rerank gap`` takes the objective's (``builders=False``: the exact solver needs Steck's greedy
with uniform rank weights). Both turn their flags into a :class:`rerank.RerankOptions` with
:func:`options_from_args`, before reading any file, so a bad flag is reported first.
"""

from __future__ import annotations

import argparse

from rerank.engine.options import MAX_ENUMERATE, METHODS, ORDERS, RANK_WEIGHT_NAMES, SOLVERS, RerankOptions
from rerank.engine.refine import DEFAULT_MAX_SWAPS
from rerank.errors import InputError

DIVERGENCES = ("kl", "hellinger", "chi2")
NORMALIZATIONS = ("none", "minmax", "rank")


def add_input_files(parser, *, candidates_help: str = "user_id, item_id, score"):
    """The three input files every reranking command reads; returns their argument group."""
    group = parser.add_argument_group("files (CSV or Parquet by suffix)")
    group.add_argument("--candidates", required=True, help=candidates_help)
    group.add_argument("--history", required=True, help="user_id, item_id [, weight, timestamp]")
    group.add_argument("--item-categories", required=True, help="item_id, category [, weight, attribute]")
    return group


def add_rerank_arguments(
    group, *, lam_values: bool = False, normalize: str = "minmax", divergences=DIVERGENCES, builders: bool = True,
) -> None:
    """Add the reranking flags to an argparse ``group``.

    ``lam_values``: ``--lam`` takes several values (a sweep) and there is no ``--lam-column``;
    ``normalize``: the default of ``--normalize``; ``builders``: also the list-builder flags
    (rank weights, order, safeguard, method, quotas, solver).
    """
    group.add_argument("--k", type=int, default=10, help="list length (default 10)")
    if lam_values:
        group.add_argument("--lam", type=float, nargs="+", default=[0.5, 0.9], help="λ values (default 0.5 0.9)")
    else:
        lam = group.add_mutually_exclusive_group()
        lam.add_argument("--lam", type=_lam_or_auto, default=0.5,
                         help="trade-off λ in [0, 1] (default 0.5), or 'auto' with --max-miscalibration")
        lam.add_argument("--lam-column", help="candidates column holding a per-user λ (constant within a user)")
        group.add_argument("--max-miscalibration", type=float, metavar="TAU",
                           help="with --lam auto: per user the smallest λ on the documented grid whose list has "
                                "C <= TAU (else λ = 1); the output gets a 'lam' column")
    group.add_argument("--alpha", type=float, default=0.01, help="KL smoothing α in (0, 1) (default 0.01)")
    group.add_argument("--divergence", choices=list(divergences), default="kl")
    group.add_argument("--normalize", choices=list(NORMALIZATIONS), default=normalize,
                       help=f"per-user score normalisation before reranking (default {normalize})")
    if builders:
        group.add_argument("--order", choices=list(ORDERS), default="greedy",
                           help="output order: greedy pick order or chosen set by score")
        group.add_argument("--rank-weights", default="uniform", help="uniform, dcg or comma-separated weights")
        group.add_argument("--no-safeguard", action="store_true", help="exactly Steck's greedy (no top-k safeguard)")
        group.add_argument("--method", choices=list(METHODS), default="greedy",
                           help="list builder: Steck's greedy (default) or PM-2 (docs/design.md §4.5)")
        group.add_argument("--pm2-theta", type=float, default=0.5, help="PM-2's aspect weight θ (default 0.5)")
        group.add_argument("--min-share", type=float,
                           help="hard quotas (docs/design.md §4.3): each category g gets at least floor(ρ·k·p_g) "
                                "items carrying it when the candidates allow; ρ in (0, 1], 1 = full share")
        group.add_argument("--min-share-threshold", type=float,
                           help="with --min-share: protect only categories with p_g >= this share (default 0)")
        group.add_argument("--solver", choices=list(SOLVERS), default="greedy",
                           help="greedy (default) or the certified exact solver (uniform rank weights)")
        group.add_argument("--refine", choices=["none", "swap"], default="none",
                           help="swap: improve each list by single swaps until none improves the objective "
                                "(starts from the better of the list and top-k; docs/guarantees.md); default none")
        group.add_argument("--max-swaps", type=_max_swaps, default=DEFAULT_MAX_SWAPS,
                           help=f"with --refine swap: cap on the swaps per user (default {DEFAULT_MAX_SWAPS}; "
                                "none: no cap)")
    group.add_argument("--time-limit", type=float, default=10.0, help="exact solver seconds per user (default 10)")


def _lam_or_auto(text: str):
    """``--lam``: a number, or ``auto`` (λ from the budget ``--max-miscalibration``)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1] or 'auto', got {text!r}") from None


def _rank_weights(text: str):
    if text in RANK_WEIGHT_NAMES:
        return text
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--rank-weights must be 'uniform', 'dcg' or comma-separated numbers, got {text!r}") from None


def attribute_weights(text: str | None) -> dict | None:
    """``--attribute-weights genre=3,popularity=1`` → ``{"genre": 3.0, "popularity": 1.0}``
    (the reranker checks the names against the item-categories file's ``attribute`` column)."""
    if text is None:
        return None
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InputError(f"--attribute-weights must read name=weight,name=weight; got {text!r}")
    return out


def _max_swaps(text: str):
    """``--max-swaps``: a whole number, or ``none`` for no cap (the range is checked by the options)."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 or 'none', got {text!r}") from None


def options_from_args(args: argparse.Namespace, **overrides) -> RerankOptions:
    """The :class:`rerank.RerankOptions` of the flags (``overrides`` win); ``lam`` is ``None``
    with ``--lam-column`` and left at its default for a λ sweep (``--lam`` with several values)."""
    fields = {
        "k": args.k,
        "alpha": args.alpha,
        "divergence": args.divergence,
        "normalize": None if args.normalize == "none" else args.normalize,
        "time_limit": args.time_limit,
        "max_enumerate": getattr(args, "max_enumerate", MAX_ENUMERATE),
    }
    if getattr(args, "lam_column", None):
        fields["lam"] = None
    elif not isinstance(args.lam, list):
        fields["lam"] = args.lam
    if getattr(args, "max_miscalibration", None) is not None:
        fields["max_miscalibration"] = args.max_miscalibration
    if hasattr(args, "order"):
        fields.update(
            order=args.order, rank_weights=_rank_weights(args.rank_weights), safeguard=not args.no_safeguard,
            method=args.method, pm2_theta=args.pm2_theta, solver=args.solver,
            refine=None if args.refine == "none" else args.refine, max_swaps=args.max_swaps,
        )
        if args.min_share is not None:
            fields["min_share"] = args.min_share
            if args.min_share_threshold is not None:
                fields["min_share_threshold"] = args.min_share_threshold
        elif args.min_share_threshold is not None:
            raise InputError("--min-share-threshold needs --min-share")
    fields.update(overrides)
    return RerankOptions(**fields)
