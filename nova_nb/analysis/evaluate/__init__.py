"""Evaluation at scale: many utterances × a grid of settings, resumable, with one report.

>>> from nova_nb.analysis import evaluate
>>> grid = {"latency_target": ["low", "high"]}
>>> report = await evaluate.evaluate("prompts/", grid, "runs/r1")   # doctest: +SKIP
>>> report.save()                                    # doctest: +SKIP  (summary.md, latency.png, wer.png)

* :func:`evaluate` (``await`` it in a notebook) / :func:`evaluate_sync` (scripts) run the jobs: at
  most ``concurrency`` sessions at once, in this event loop or in any ``concurrent.futures`` executor
  (threads, processes, Dask's ``Client.get_executor()``); each finished job is one fsync'd line of
  ``results.jsonl``, and a rerun skips what is there.
* :func:`load_items` reads a folder, a CSV or a JSONL file of items; :func:`expand_grid` the settings.
* :class:`EvalReport` (``EvalReport.load(folder)``) computes latency distributions, WER (jiwer), barge-in,
  tokens and — with a :class:`PriceTable` only — cost.
* ``budget=`` (:class:`Budget`, ``--max-cost``) caps the cost: jobs that could pass it are skipped,
  not run, and a rerun with a higher cap runs them.

Definitions, file formats and how to run it on a cluster: ``docs/EVALUATE.md``.
"""

from .budget import Budget, BudgetGate
from .grid import Setting, expand_grid, parse_grid_values
from .items import Item, ItemError, item_audio, load_items
from .metrics import corpus_wer, session_usage, turn_usage, user_transcript, word_error
from .prices import TOKEN_KINDS, Cost, PriceTable, load_prices
from .report import EvalReport
from .runner import (
    DEFAULT_CONCURRENCY,
    RESULTS_FILE,
    SKIPPED,
    STREAM_QUOTA,
    Job,
    ResultsLog,
    evaluate,
    evaluate_sync,
    run_job,
    run_job_async,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "RESULTS_FILE",
    "SKIPPED",
    "STREAM_QUOTA",
    "TOKEN_KINDS",
    "Budget",
    "BudgetGate",
    "Cost",
    "EvalReport",
    "Item",
    "ItemError",
    "Job",
    "PriceTable",
    "ResultsLog",
    "Setting",
    "corpus_wer",
    "evaluate",
    "evaluate_sync",
    "expand_grid",
    "item_audio",
    "load_items",
    "load_prices",
    "parse_grid_values",
    "run_job",
    "run_job_async",
    "session_usage",
    "turn_usage",
    "user_transcript",
    "word_error",
]
