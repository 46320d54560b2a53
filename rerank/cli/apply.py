"""``rerank apply``: files in, reranked file out (docs/design.md §5), streaming by user.

    rerank apply --candidates cands.parquet --history history.csv \\
                 --item-categories genres.csv --output reranked.parquet --k 10 --lam 0.5

* Formats by suffix: ``.csv`` (optionally ``.gz``, ``.bz2``, ``.xz``, ``.zst``) or ``.parquet``
  / ``.pq``. CSV ids are read as text (kept verbatim, e.g. leading zeros); if one file holds
  integer ids and another text ids for the same column, the integers are compared as text.
* History and item categories are read whole (they define the targets); candidates are read in
  chunks of ``--batch-rows`` rows and reranked by whole users, so the candidate file can be
  larger than memory. **Each user's candidate rows must be contiguous** (grouped by
  ``user_id``, in any order of users): a user whose rows reappear after another user's is
  reported as an error naming the user and the line.
* The output is written to a temporary file next to ``--output`` and renamed only on success;
  on any error (or SIGTERM) no output (or ``--skipped`` / ``--report``) file is created. An
  input changed while it was read (size, mtime or inode) is an error.
* User errors print one line naming the file, column, user, item or line, exit code 2.
* Nothing lost: the last line says where every user and row went (reranked, skipped with a
  reason under ``--on-invalid skip``, rows without a user id) and that the counts reconcile.

Details, formats and fallbacks: ``docs/inputs.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from rerank import io, outputs, schemas
from rerank.cli.options import add_input_files, add_rerank_arguments, attribute_weights, options_from_args
from rerank.errors import InputError
from rerank.ids import show_id
from rerank.params import check_whole
from rerank.report import RerankWarning
from rerank.reranker import CalibratedReranker
from rerank.streaming import StreamReport, rerank_batches

DEFAULT_BATCH_ROWS = 200_000


def run(args) -> int:
    options = options_from_args(args)  # parameter errors first, before reading anything
    # id_match="text": a CSV file holds ids as text, a Parquet file may hold integers; integers
    # then match text by their decimal form, and the output keeps the candidates' ids as they are
    reranker = CalibratedReranker.from_options(
        options, lam=args.lam_column, half_life=args.half_life, n_threads=args.threads, id_match="text",
        attribute_weights=attribute_weights(args.attribute_weights),
    )
    reranker.build_options()
    batch_rows = check_whole("--batch-rows", args.batch_rows)
    paths = {
        "candidates": io.input_path(args.candidates, "candidates"),
        "history": io.input_path(args.history, "history"),
        "item_categories": io.input_path(args.item_categories, "item_categories"),
    }
    if args.shown:
        paths["shown"] = io.input_path(args.shown, "shown")
    inputs = list(paths.values())
    output = outputs.output_path(args.output, "output", inputs)
    skipped_path = outputs.output_path(args.skipped, "--skipped", inputs + [output]) if args.skipped else None
    report_path = None
    if args.report:
        others = inputs + [output] + ([skipped_path] if skipped_path else [])
        report_path = outputs.output_path(args.report, "--report", others, any_format=True)
    skip = args.on_invalid == "skip"
    stamps = outputs.InputStamps.take(paths)  # an input changed while it is read is an error

    history = io.read_whole(paths["history"], "history", ["user_id", "item_id"])
    categories = io.read_whole(paths["item_categories"], "item_categories", ["item_id", "category"],
                               optional_ids=["attribute"])
    source = io.CandidateSource(paths["candidates"], batch_rows, [args.lam_column], skip)
    shown = io.read_whole(paths["shown"], "shown", ["user_id", "item_id"], numeric=["rank"]) if args.shown else None
    if shown is not None:
        with io.reading(paths["shown"], "shown"):
            shown = schemas.validate_shown(shown)
    # validated once, file by file (errors name the file); fit takes the checked frames as they are
    with io.reading(paths["history"], "history"):
        if reranker.half_life is not None:
            io.parse_timestamps(history)
        history = schemas.validate_history(history)
    with io.reading(paths["item_categories"], "item_categories"):
        categories = schemas.validate_item_categories(categories)
    try:
        with warnings.catch_warnings():  # printed below, one line each
            warnings.simplefilter("ignore", RerankWarning)
            reranker.fit(history, categories)
    except InputError as exc:
        raise type(exc)(
            f"history file '{paths['history']}' / item_categories file '{paths['item_categories']}': {exc}"
        ) from None
    del history, categories
    for message in reranker.fit_warnings_:
        print(f"rerank apply: warning: item_categories file '{paths['item_categories']}': {message}", file=sys.stderr)

    from tqdm import tqdm

    # the explain / lam columns are not in the candidates' Parquet schema: the output's comes from its first frame
    extra_columns = args.explain or options.lam == "auto"
    with outputs.AtomicFiles() as files:
        sink = outputs.Sink(files.temp_for(output), output, "output",
                            schema=None if extra_columns else _parquet_schema(source, output))
        stream = rerank_batches(reranker, source.batches(), on_invalid="skip" if skip else "raise", warn=False,
                                shown=shown, explain=args.explain)
        # no bar with --quiet, nor when stderr is not a terminal (logs stay clean)
        bar = tqdm(total=source.n_rows, unit=" rows", unit_scale=True, desc="rerank apply",
                   disable=True if args.quiet else None, file=sys.stderr, leave=False)
        try:
            with bar:
                for out in _prefixed(stream, paths["candidates"]):
                    sink.write(out)
                    bar.update(stream.report.n_candidates - bar.n)
        finally:
            sink.close()
        report = stream.report
        if not report.reconciles:  # a bug, not bad input: keep the traceback
            raise RuntimeError(f"row counts do not reconcile: {report.as_dict()}")
        if skipped_path is not None:
            outputs.write_frame(report.skipped, files.temp_for(skipped_path), skipped_path, "--skipped")
        if report_path is not None:
            tmp = files.temp_for(report_path)
            with outputs.naming(report_path, "--report", tmp):
                tmp.write_text(json.dumps(_report_json(report, args, paths, output), indent=2) + "\n")
        stamps.check()
        files.commit()
    for message in report.warnings:
        print(f"rerank apply: warning: {message}", file=sys.stderr)
    print(f"rerank apply: wrote {output}: {report.summary()}{_skipped_hint(report, skipped_path)}", file=sys.stderr)
    return 0


def _parquet_schema(source: io.CandidateSource, output: Path):
    """A Parquet output from Parquet candidates keeps their id types (no float cast, ever)."""
    return source.output_schema if io.file_format(output, "output") == "parquet" else None


def _prefixed(stream, path: Path):
    """Iterate the stream, naming the candidate file in any input error."""
    iterator = iter(stream)
    while True:
        try:
            out = next(iterator)
        except StopIteration:
            return
        except InputError as exc:
            message = str(exc)
            if not message.startswith("candidates file"):
                message = f"candidates file '{path}': {message}"
            raise type(exc)(message) from None
        yield out


def _skipped_hint(report: StreamReport, skipped_path) -> str:
    skipped = report.skipped
    if not len(skipped) or skipped_path is not None:
        return ""
    shown = ", ".join(
        f"{show_id(u)} ({r})" for u, r in zip(skipped["user_id"][:3], skipped["reason"][:3], strict=True)
    )
    more = ", ..." if len(skipped) > 3 else ""
    return f"; skipped users: {shown}{more} (list them all with --skipped FILE)"


def _report_json(report: StreamReport, args, paths, output) -> dict:
    return {
        "output": str(output),
        "inputs": {role: str(p) for role, p in paths.items()},
        "parameters": {
            "k": args.k, "lam": args.lam_column or args.lam, "alpha": args.alpha,
            "divergence": args.divergence, "normalize": args.normalize, "order": args.order,
            "rank_weights": args.rank_weights, "half_life": args.half_life,
            "safeguard": not args.no_safeguard, "on_invalid": args.on_invalid,
            "min_share": args.min_share, "min_share_threshold": args.min_share_threshold,
            "method": args.method, "pm2_theta": args.pm2_theta, "solver": args.solver, "time_limit": args.time_limit,
            "refine": args.refine, "max_swaps": args.max_swaps,
        },
        "counts": report.as_dict(),
        "summary": report.summary(),
    }


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors of ``rerank apply`` in one line (no usage block), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="rerank a candidate file (CSV/Parquet) into an output file",
        description="Rerank a candidate file into an output file (CSV or Parquet by suffix), streaming by "
        "user: each user's candidate rows must be contiguous. Bad input: one line naming the file, "
        "column, line, user or item, exit code 2, no output file. See docs/inputs.md.",
    )
    parser.__class__ = _OneLineParser
    files = add_input_files(parser, candidates_help="user_id, item_id, score; each user's rows contiguous")
    files.add_argument("--output", required=True, help="user_id, item_id, score, rank (written atomically)")
    files.add_argument("--skipped", help="write the skipped users (user_id, reason, n_rows) here")
    files.add_argument("--report", help="write a JSON report (counts, reconciliation, parameters) here")
    files.add_argument("--shown", help="user_id, item_id [, rank]: items already shown (earlier pages); they fill "
                                       "the first positions of q and are not picked again")
    opts = parser.add_argument_group("reranking")
    add_rerank_arguments(opts)
    opts.add_argument("--half-life", type=float, help="recency half-life on the history's timestamp")
    opts.add_argument("--explain", action="store_true",
                      help="add input_rank, score_gain, calibration_gain and reason (why each item is there)")
    opts.add_argument("--attribute-weights", metavar="NAME=W,...",
                      help="several attributes (an 'attribute' column in --item-categories): their weights w_a "
                           "in Σ_a w_a C(p_a, q_a), normalised to sum 1 (default: equal)")
    run_opts = parser.add_argument_group("running")
    run_opts.add_argument("--on-invalid", choices=["error", "skip"], default="error",
                          help="invalid candidate rows: fail (default) or skip their users and report them")
    run_opts.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS,
                          help=f"candidate rows read per chunk (default {DEFAULT_BATCH_ROWS})")
    run_opts.add_argument("--threads", type=int, help="numba threads (default: all cores)")
    run_opts.add_argument("--quiet", action="store_true",
                          help="no progress bar (it is shown only when stderr is a terminal anyway)")
    parser.set_defaults(func=run)

