"""``rerank gap``: the greedy's optimality gap on your own files (:mod:`rerank.gap`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rerank.cli.options import add_input_files, add_rerank_arguments, options_from_args
from rerank.gap import format_markdown, gap_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gap",
        help="optimality gap of the greedy and the refined list against the certified exact solver",
        description="For each λ, the gap between the greedy (plain and safeguarded), the refined list "
        "(refine='swap') and the certified "
        "optimum of the calibrated objective (uniform rank weights), and the exact solver's time per user. "
        "See docs/guarantees.md.",
    )
    add_input_files(parser).add_argument("--out", help="also write the markdown table here")
    opts = parser.add_argument_group("objective")
    add_rerank_arguments(opts, lam_values=True, divergences=("kl", "chi2"), builders=False)
    opts.add_argument("--users", type=int, default=0, help="random sample of users (default 0: all)")
    opts.add_argument("--seed", type=int, default=0, help="seed of the user sample")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rerank.errors import InputError
    from rerank.io import NUMERIC_COLUMNS, read_whole

    options = options_from_args(args)  # parameter errors first, before reading anything
    frames = {}
    for role, ids in (("candidates", ["user_id", "item_id", "score"]), ("history", ["user_id", "item_id"]),
                      ("item_categories", ["item_id", "category"])):
        path = Path(getattr(args, role))
        if not path.is_file():
            raise InputError(f"{role} file '{path}' does not exist")
        numeric = ("score",) if role == "candidates" else NUMERIC_COLUMNS
        frames[role] = read_whole(path, role, [c for c in ids if c != "score"], numeric=numeric)
    candidates = frames["candidates"]
    if "score" not in candidates.columns:
        raise InputError(f"candidates file '{args.candidates}' has no 'score' column")
    if args.users:
        users = pd.unique(candidates["user_id"])
        if args.users < len(users):
            keep = np.random.default_rng(args.seed).choice(users, args.users, replace=False)
            candidates = candidates[candidates["user_id"].isin(keep)]
    table = gap_table(
        candidates, frames["history"], frames["item_categories"], options, lams=args.lam,
        progress=lambda lam, s: print(f"rerank gap: λ={lam:g} done ({s:.1f}s in the exact solver)", file=sys.stderr),
    )
    text = format_markdown(table)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
