"""``rerank evaluate``: the real-data λ sweep on MovieLens (see :mod:`rerank.adapters.evaluate`).

Registered through the ``rerank.commands`` entry-point group, so the core CLI never imports
the adapters. Writes to ``--out``: ``evaluation.csv`` (one row per user group and λ, column
``user_group``), ``evaluation.md`` (one table per group, then the bootstrap contrasts),
``contrasts.csv``, ``users.csv`` (per test user: ``KL(p_u ‖ p̄)``, group, training and held-out
positives, activity bin), ``tradeoff.png`` (all users) and ``groups.png`` (minority attainment
against precision per group).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rerank.adapters.evaluate import DEFAULT_BOOTSTRAP, DEFAULT_LAMBDAS, MODELS, SPLITS


def _lambdas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--lambdas must be comma-separated numbers, got {text!r}") from exc
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"--lambdas must be numbers in [0, 1], got {text!r}")
    return values


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="λ sweep of calibrated reranking on MovieLens with a real model",
        description=(
            "Train a model on MovieLens positives through an adapter, rerank its top-n candidates "
            "over a λ sweep and print accuracy and calibration metrics (Steck 2018, §5)."
        ),
    )
    parser.add_argument("--variant", default=None,
                        choices=["latest-small", "100k", "1m", "20m", "25m", "32m"],
                        help="MovieLens variant (default: detected from --data's files, u.data = 100k; "
                             "latest-small without --data)")
    parser.add_argument("--data", default=None,
                        help="MovieLens folder or zip (default: $RERANK_MOVIELENS_DIR, then the cache)")
    parser.add_argument("--no-download", action="store_true", help="never download from GroupLens")
    parser.add_argument("--model", default="als", choices=MODELS)
    parser.add_argument("--split", default="random", choices=SPLITS)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--min-rating", type=float, default=4.0,
                        help="ratings >= this are positives (default 4; 0 keeps all)")
    parser.add_argument("-n", "--candidates", type=int, default=100, help="candidates per user")
    parser.add_argument("-k", type=int, default=10, help="list length")
    parser.add_argument("--lambdas", type=_lambdas, default=list(DEFAULT_LAMBDAS),
                        help="comma-separated λ values (default: %(default)s)")
    parser.add_argument("--normalize", default="minmax", choices=["minmax", "rank", "none"],
                        help="per-user score normalisation before reranking (default minmax)")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations / epochs (default: als 15, bpr 100, lightfm 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="ALS threads (0: all cores)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP,
                        help="bootstrap draws over users for the niche/mainstream contrasts (0: none; "
                             "default %(default)s)")
    parser.add_argument("--attributes", type=lambda text: [a.strip() for a in text.split(",")], default=["genre"],
                        help="what to calibrate, comma-separated: genre (default), popularity (head/mid/tail of "
                             "the training positives) or genre,popularity (one objective, equal weights)")
    parser.add_argument("--refine", choices=["none", "swap"], default="none",
                        help="local-search refinement of each list (refine='swap'; default none)")
    parser.add_argument("--out", default="out/evaluate", help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rerank.adapters.evaluate import (
        evaluate,
        format_contrasts,
        format_groups,
        plot_groups,
        plot_tradeoff,
    )

    from rerank.datasets import detect_variant, movielens
    from rerank.errors import InputError

    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    variant = args.variant or (detect_variant(args.data) if args.data is not None else "latest-small")
    ratings, item_categories = movielens(variant, args.data, download=not args.no_download)
    result = evaluate(
        ratings,
        item_categories,
        model=args.model,
        split_by=args.split,
        test_fraction=args.test_fraction,
        min_rating=args.min_rating if args.min_rating > 0 else None,
        n=args.candidates,
        k=args.k,
        lambdas=args.lambdas,
        normalize=None if args.normalize == "none" else args.normalize,
        factors=args.factors,
        iterations=args.iterations,
        seed=args.seed,
        threads=args.threads,
        n_boot=args.bootstrap,
        progress=not args.quiet,
        attributes=args.attributes,
        refine=None if args.refine == "none" else args.refine,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.groups.reset_index().to_csv(out / "evaluation.csv", index=False)
    result.users.to_csv(out / "users.csv")
    markdown = format_groups(result)
    if result.contrasts is not None:
        result.contrasts.to_csv(out / "contrasts.csv", index=False)
        markdown += (
            f"\n\n**who gains**: gap = niche mean − mainstream mean; activity-matched = mainstream "
            f"reweighted to the niche users' quartiles of training positives; change = since the first λ, "
            f"same users. 95% percentile bootstrap over users ({args.bootstrap} draws, seed {args.seed})\n\n"
            + format_contrasts(result.contrasts)
        )
    (out / "evaluation.md").write_text(markdown + "\n")
    plot_tradeoff(result, out / "tradeoff.png")
    plot_groups(result, out / "groups.png")
    first = result.per_user.xs(result.table.index[0], level="lambda")
    without_minority = int(first["minority_attainment"].isna().sum())
    print(
        f"MovieLens {variant}: model {args.model}, {args.split} split, seed {args.seed}, {result.n_users} test "
        f"users ({without_minority} without a minority interest), {result.n_items} items, {result.n_train} "
        f"train / {result.n_test} test positives, n={args.candidates} candidates, k={args.k}, scores "
        f"normalised: {args.normalize}, refine: {args.refine}, calibrated attributes: {','.join(args.attributes)}"
    )
    print(markdown)
    acc = result.acceptance()
    print(
        f"C_KL(λ=0.9) / C_KL(λ=0) = {acc['ckl_ratio_09']:.3f}; "
        f"precision@{args.k}(λ=0.5) / precision@{args.k}(λ=0) = {acc['precision_ratio_05']:.3f}"
    )
    timing = ", ".join(f"{name} {sec:.1f}s" for name, sec in result.seconds.items())
    print(f"time: {timing}")
    written = ["evaluation.csv", "users.csv", "evaluation.md"]
    written += ["contrasts.csv"] if result.contrasts is not None else []
    written += ["tradeoff.png", "groups.png"]
    print("wrote " + ", ".join(str(out / name) for name in written))
    return 0
