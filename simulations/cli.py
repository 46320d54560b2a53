"""``rerank simulate``: run the feedback-loop simulator and write its results.

    rerank simulate --users 2000 --items 1500 --rounds 40 --seed 0 --eta 1 \\
        --policy topk --policy calibrated [--train naive|ips] \\
        [--model als|position-tower|popularity|oracle] --out DIR [--quiet]

writes ``DIR/metrics.csv`` (``round, policy, group`` + the metrics), ``DIR/details.csv``
(slot vs exposure shares), ``DIR/summary.json`` (equilibria, settings, seed, versions) and
one PNG per metric, and prints the final comparison table.
"""

from __future__ import annotations

import sys

from rerank.simulations.config import CLICK_MODELS, MODELS, PRESETS, TRAIN_MODES, preset
from rerank.simulations.policies import POLICIES

DEFAULT_POLICIES = ("topk", "calibrated", "calibrated-debiased", "epsilon")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="feedback-loop simulator: degenerate equilibria with and without calibration",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="named configuration ('51-49': minority group of 49%%)")
    p.add_argument("--users", type=int, help="number of users (default 2000)")
    p.add_argument("--items", type=int, help="initial catalogue size (default 1500)")
    p.add_argument("--rounds", type=int, help="rounds of the loop (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eta", type=float, help="position bias: examination (1/rank)^eta (default 1)")
    p.add_argument("--policy", action="append", choices=POLICIES,
                   help=f"repeat for several (default: {' '.join(DEFAULT_POLICIES)})")
    p.add_argument("--train", choices=TRAIN_MODES, help="naive clicks or clipped IPS weights")
    p.add_argument("--model", choices=MODELS, help="model retrained in the loop (default als)")
    p.add_argument("--click-model", choices=CLICK_MODELS, help="default position")
    p.add_argument("--lam", type=float, help="λ of the calibrated policies (default 0.5)")
    p.add_argument("--epsilon", type=float, help="exploration rate of 'epsilon' (default 0.1)")
    p.add_argument("--drift", type=float, help="interest drift rate toward clicks (default 0: off)")
    p.add_argument("--minority-share", type=float, help="share of users in the minority group")
    p.add_argument("--slots", type=int, help="slate size k (default 10)")
    p.add_argument("--candidates", type=int, help="candidates per user from the model (default 100)")
    p.add_argument("--retrain-every", type=int, help="retrain the model every R rounds (default 2)")
    p.add_argument("--new-items", type=int, help="items arriving per round (default 15)")
    p.add_argument("--threads", type=int, help="threads for the kernel and ALS")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.set_defaults(func=run)


OPTION_FIELDS = {
    "users": "n_users", "items": "n_items", "rounds": "n_rounds", "eta": "eta",
    "train": "train", "model": "model", "click_model": "click_model", "lam": "lam",
    "epsilon": "epsilon", "drift": "drift_rate", "minority_share": "minority_share",
    "slots": "slate_size", "candidates": "n_candidates", "retrain_every": "retrain_every",
    "new_items": "new_items_per_round", "threads": "n_threads",
}


def config_from_args(args):
    changes = {field: getattr(args, opt) for opt, field in OPTION_FIELDS.items()
               if getattr(args, opt, None) is not None}
    return preset(args.preset, seed=args.seed, **changes)


def run(args) -> int:
    from rerank.simulations.output import comparison_table, write_outputs
    from rerank.simulations.plots import plot_metrics
    from rerank.simulations.run import simulate
    from tqdm import tqdm

    config = config_from_args(args)
    policies = tuple(args.policy) if args.policy else DEFAULT_POLICIES
    with tqdm(total=len(policies) * config.n_rounds, disable=args.quiet, file=sys.stderr,
              desc="simulate", unit="round") as bar:
        result = simulate(config, policies, on_round=lambda: bar.update(1))
    info = write_outputs(result, args.out)
    if not args.no_plots:
        title = f"(model={config.model}, train={config.train}, drift={config.drift_rate})"
        plot_metrics(result.metrics, args.out, title)
    if not args.quiet:
        print(comparison_table(info))
        print(f"wrote {args.out}/metrics.csv, details.csv, summary.json"
              + ("" if args.no_plots else " and plots"))
    return 0
