"""``rerank simulate``: run the feedback-loop simulator, print its verdicts, write its results.

    rerank simulate [--preset default|51-49|headline] [--seeds N] [--seed S] \\
        [--policy P ...] [--drift RATE] [--users U] [--rounds T] ... [--out DIR] [--jobs J]

Prints the round-0 → end levels and the verdict table (loop effect against ``organic`` with
its 95% CI over seeds). With ``--out DIR`` it also writes ``DIR/metrics.csv`` (``seed, round,
policy, group`` + the metrics), ``DIR/details.csv``, ``DIR/summary.json`` (settings, seeds,
``verdicts[policy][group]``, consumption, versions) and the plots. Without ``--out`` nothing
is written. ``--preset headline`` is the experiment of docs/simulation.md: 5 seeds × 100
rounds of ``organic``, ``oracle``, ``topk``, ``topk-frozen`` and the calibrated variants.
"""

from __future__ import annotations

import sys

from rerank.simulations.config import (
    CLICK_MODELS,
    MODELS,
    PRESETS,
    RUN_PRESETS,
    TRAIN_MODES,
    preset,
)
from rerank.simulations.policies import POLICIES

from rerank.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="feedback-loop simulator: loop effects against organic, with and without calibration",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="named experiment: 'headline' = 5 seeds x 100 rounds (docs/simulation.md); "
                        "'51-49' = niche group of 49%%")
    p.add_argument("--seeds", type=int,
                   help="number of seeds, from --seed on (default: 1; headline preset: 5)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--policy", action="append", choices=POLICIES,
                   help="repeat for several (default: organic, topk, calibrated, "
                        "calibrated-anchored; headline preset: also oracle, topk-frozen, "
                        "calibrated-blend)")
    p.add_argument("--users", type=int, help="number of users (default 1000)")
    p.add_argument("--items", type=int, help="initial catalogue size (default 1500)")
    p.add_argument("--rounds", type=int, help="rounds of the loop (default 100)")
    p.add_argument("--new-items", type=int, help="items arriving per round (default 15)")
    p.add_argument("--eta", type=float, help="position bias: examination (1/rank)^eta (default 0.8)")
    p.add_argument("--click-model", choices=CLICK_MODELS, help="default position")
    p.add_argument("--drift", type=float,
                   help="taste drift toward each attitude click (default 0.02; 0 = off)")
    p.add_argument("--exposure-drift", type=float,
                   help="taste drift toward each round's exposure (default 0: off)")
    p.add_argument("--niche-share", type=float, help="share of users in the niche group (0.25)")
    p.add_argument("--no-reconsume", action="store_true",
                   help="consumed items cannot be consumed again (depletion possible)")
    p.add_argument("--fresh-slots", type=int,
                   help="bottom slots showing fresh arrivals (default 1; 0 = none)")
    p.add_argument("--no-impression-negatives", action="store_true",
                   help="train the model on clicks only, not on examined non-clicks")
    p.add_argument("--train", choices=TRAIN_MODES, help="naive clicks or clipped IPS weights")
    p.add_argument("--model", choices=MODELS, help="model retrained in the loop (default als)")
    p.add_argument("--retrain-every", type=int, help="retrain the model every R rounds (default 2)")
    p.add_argument("--lam", type=float, help="λ of the calibrated policies (default 0.5)")
    p.add_argument("--epsilon", type=float, help="exploration rate of 'epsilon' (default 0.1)")
    p.add_argument("--slots", type=int, help="slate size k (default 10)")
    p.add_argument("--candidates", type=int, help="candidates per user from the model (default 100)")
    p.add_argument("--threads", type=int,
                   help="threads for the kernel and ALS in each process (default 1)")
    p.add_argument("--jobs", type=int, default=0,
                   help="worker processes for the (seed, policy) runs (default 0 = one per CPU; "
                        "1 = in this process); the results do not depend on it")
    p.add_argument("--out", help="output folder (default: print the tables, write nothing)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no tables")
    p.set_defaults(func=run)


OPTION_FIELDS = {
    "users": "n_users", "items": "n_items", "rounds": "n_rounds", "eta": "eta",
    "train": "train", "model": "model", "click_model": "click_model", "lam": "lam",
    "epsilon": "epsilon", "drift": "drift_rate", "exposure_drift": "exposure_drift_rate",
    "niche_share": "niche_share", "slots": "slate_size", "candidates": "n_candidates",
    "retrain_every": "retrain_every", "new_items": "new_items_per_round",
    "threads": "n_threads", "fresh_slots": "fresh_slots",
}


def config_from_args(args):
    changes = {field: getattr(args, opt) for opt, field in OPTION_FIELDS.items()
               if getattr(args, opt, None) is not None}
    if args.no_reconsume:
        changes["reconsume"] = False
    if args.no_impression_negatives:
        changes["impression_negatives"] = False
    return preset(args.preset, seed=args.seed, **changes)


def show_progress(quiet: bool, stream=None) -> bool:
    """A progress bar only when asked for and the terminal is interactive (not piped)."""
    stream = sys.stderr if stream is None else stream
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())


def run(args) -> int:
    from rerank.simulations.output import (
        comparison_table,
        levels_table,
        summary,
        verdict_table,
        write_outputs,
    )
    from rerank.simulations.plots import plot_metrics
    from rerank.simulations.run import default_jobs, seed_list, simulate
    from tqdm import tqdm

    config = config_from_args(args)
    run_preset = RUN_PRESETS[args.preset]
    n_seeds = run_preset["n_seeds"] if args.seeds is None else args.seeds
    if n_seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {n_seeds}")
    if args.jobs < 0:
        raise InputError(f"--jobs must be >= 0, got {args.jobs}")
    seeds = seed_list(args.seed, n_seeds)
    policies = tuple(args.policy) if args.policy else run_preset["policies"]
    n_tasks = len(seeds) * len(policies)
    jobs = default_jobs(n_tasks) if args.jobs == 0 else min(args.jobs, n_tasks)
    parallel = jobs > 1
    total = n_tasks if parallel else n_tasks * config.n_rounds
    with tqdm(total=total, disable=not show_progress(args.quiet), file=sys.stderr,
              desc="simulate", unit="run" if parallel else "round") as bar:
        tick = lambda: bar.update(1)  # noqa: E731
        result = simulate(config, policies, seeds, on_round=None if parallel else tick,
                          jobs=jobs, on_task=tick if parallel else None)
    info = summary(result)
    if args.out:
        write_outputs(result, args.out, info)
        if not args.no_plots:
            title = (f"(model={config.model}, train={config.train}, drift={config.drift_rate}, "
                     f"seeds {seeds[0]}..{seeds[-1]})")
            plot_metrics(result.metrics, args.out, title, config.verdict_metric)
    if not args.quiet:
        print(levels_table(result))
        print()
        print(verdict_table(info))
        versus = comparison_table(info)
        if versus:
            print()
            print(versus)
        if args.out:
            print(f"\nwrote {args.out}/metrics.csv, details.csv, summary.json"
                  + ("" if args.no_plots else " and plots"))
        else:
            print("\n(no --out given: nothing written)")
    return 0
