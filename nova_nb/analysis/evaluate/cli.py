"""``nova-nb eval``: run items × a grid of settings, resumable, and write the report.

::

    nova-nb eval ITEMS --out DIR [--grid NAME=V1,V2 ...] [--provider local] [--option NAME=VALUE ...]
                 [--concurrency 8] [--executor none|thread|process] [--fast] [--timeout 90]
                 [--prices prices.json [--max-cost 5.00]] [--retry-errors] [--format md|html]
                 [--no-progress]

``nova_nb.cli`` wires :func:`add_arguments` and :func:`run` as its ``eval`` subcommand and passes the
emulator's ``make_utterance`` as ``synthesize`` (the analysis floor never imports the emulator).
This module imports only the standard library at the top, so ``nova-nb --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ...errors import NovaNbError

__all__ = ["add_arguments", "main", "run"]

DESCRIPTION = (
    "Run every item (a folder of audio files with optional NAME.txt expected texts, a .csv or a .jsonl "
    "file) under every combination of the --grid settings, record each conversation, and write a report: "
    "latency per setting, word error rate of the USER transcript, barge-in, tokens and (with --prices) "
    "cost. Results are appended to OUT/results.jsonl as they finish: run the same command again to resume. "
    "Uses the offline emulator unless --provider amazon_nova (billed to your AWS account)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``eval`` options, on a parser (``nova_nb.cli`` adds them to its subcommand)."""
    from .runner import DEFAULT_CONCURRENCY, STREAM_QUOTA

    parser.add_argument("items", help="folder of audio files, or a .csv / .jsonl file of items")
    parser.add_argument("--out", required=True, help="the run's folder (reuse it to resume)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a setting to sweep: voice, latency_target, system_prompt, frame_ms, provider or any "
        'provider option; values split on commas, or a JSON list (system_prompt=["a, b", "c"]); repeatable',
    )
    parser.add_argument("--provider", default="local", help="local (offline emulator) or amazon_nova")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a provider option every setting gets, e.g. engine=scripted or region=us-east-1; repeatable",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"sessions at once (default {DEFAULT_CONCURRENCY}; "
        f"the account's default quota is {STREAM_QUOTA} streams)",
    )
    parser.add_argument(
        "--executor",
        choices=("none", "thread", "process"),
        default="none",
        help="where jobs run: tasks of one event loop (none, default), a thread pool, or a process pool",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="send faster than real time (the emulator decides turns in audio time; wall-clock "
        "latencies are then not meaningful)",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="bound on each conversation, seconds")
    parser.add_argument(
        "--prices",
        default=None,
        help='price table JSON: {"per_1k": {"input_speech": R, ...}, "date": "...", "source": "..."}; '
        "without it the cost is unknown (never 0)",
    )
    parser.add_argument(
        "--max-cost",
        type=float,
        default=None,
        metavar="AMOUNT",
        help="stop launching jobs before the cost (in the --prices currency) could pass AMOUNT; the rest "
        "are marked skipped, and a rerun with a higher cap runs them (needs --prices)",
    )
    parser.add_argument(
        "--first-job-cost",
        type=float,
        default=None,
        metavar="AMOUNT",
        help="with --max-cost: what a job is expected to cost before any has finished (default: run the "
        "first job alone to learn it)",
    )
    parser.add_argument(
        "--retry-errors", action="store_true", help="run again the jobs that ended in an error"
    )
    parser.add_argument("--format", choices=("md", "html"), default="md", help="summary file format")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    from ...errors import ConfigError
    from .grid import parse_grid_values

    out: dict[str, Any] = {}
    for text in pairs:
        name, values = parse_grid_values(text)
        if len(values) != 1:
            raise ConfigError(f"--option {text!r}: one value per option (sweep values with --grid)")
        out[name] = values[0]
    return out


def run(args: argparse.Namespace, *, synthesize: Any = None) -> int:
    """Run ``eval`` with parsed arguments.

    Exit status: 0 every job ok, 1 some jobs failed, 3 none failed but the budget skipped some,
    130 Ctrl-C (2: bad arguments, from :func:`main`).
    """
    import concurrent.futures
    import multiprocessing
    from pathlib import Path

    from ...errors import ConfigError
    from .budget import Budget
    from .grid import parse_grid_values
    from .prices import load_prices
    from .runner import RESULTS_FILE, evaluate_sync

    grid: dict[str, list[Any]] = {}
    for text in args.grid:
        name, values = parse_grid_values(text)
        grid.setdefault(name, []).extend(values)
    if args.max_cost is not None and not args.prices:
        raise ConfigError("a budget needs prices: pass --prices FILE.json with --max-cost")
    if args.first_job_cost is not None and args.max_cost is None:
        raise ConfigError("--first-job-cost is an estimate for a budget: give --max-cost too")
    prices = load_prices(args.prices) if args.prices else None
    budget = (
        None
        if args.max_cost is None or prices is None
        else Budget(args.max_cost, prices.currency, first_job_estimate=args.first_job_cost)
    )
    executor: concurrent.futures.Executor | None = None
    if args.executor == "thread":
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency)
    elif args.executor == "process":
        # "spawn": a forked child would inherit this process's threads (e.g. a running emulator) mid-state.
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=args.concurrency, mp_context=multiprocessing.get_context("spawn")
        )
    try:
        report = evaluate_sync(
            args.items,
            grid,
            args.out,
            provider=args.provider,
            options=_options(args.option),
            concurrency=args.concurrency,
            executor=executor,
            pace=not args.fast,
            timeout_s=args.timeout,
            synthesize=synthesize,
            retry_errors=args.retry_errors,
            progress=not args.no_progress,
            prices=prices,
            budget=budget,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: every finished job is in {Path(args.out) / RESULTS_FILE}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
    written = report.save(format=args.format)
    from .report import markdown_table

    print(markdown_table(report.SUMMARY_HEADER, report.summary_rows()))
    errors = report.errors()
    skipped = report.skipped()
    more = f", {len(skipped)} skipped (budget)" if skipped else ""
    print(
        f"\n{len(report.results)} jobs, {len(errors)} errors{more}; "
        f"report: {', '.join(str(p) for p in written)}"
    )
    if skipped:
        print(f"  skipped: {skipped[0].get('skip_reason')}")
    for r in errors[:20]:
        print(f"  error [{r.get('error_kind')}] {r['item']} / {r['label']}: {r.get('error')}")
    if len(errors) > 20:
        print(f"  … and {len(errors) - 20} more (see {written[-1]})")
    return 1 if errors else 3 if skipped else 0


def main(argv: Sequence[str] | None = None, *, synthesize: Any = None) -> int:
    """``nova-nb eval`` as a function: parse ``argv``, run, return the exit status.

    ``synthesize`` speaks items given as text (``nova_nb.cli`` passes the emulator's ``make_utterance``).
    """
    parser = argparse.ArgumentParser(prog="nova-nb eval", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args, synthesize=synthesize)
    except NovaNbError as exc:
        print(f"nova-nb eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
