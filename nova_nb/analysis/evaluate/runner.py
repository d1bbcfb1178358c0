"""Run items × settings: bounded concurrency, resumable results on disk, any concurrent.futures executor.

Each (item, setting) is a :class:`Job`: plain values (an :class:`~.items.Item`, a
:class:`~.grid.Setting`, paths), so it pickles. :func:`run_job` runs one anywhere — a thread, a
process, a Dask or Ray worker — by building its own provider from the setting and running
``asyncio.run`` there; with no executor, :func:`evaluate` runs the jobs as tasks of the current event
loop, at most ``concurrency`` at a time.

Only the driver writes ``results.jsonl``: one line per finished job, flushed and ``fsync``'d before
the next is taken, so a crash or Ctrl-C loses no finished job. A rerun skips every (item id, setting
key) already there (a torn last line, from a crash mid-write, is cut off first).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as _dt
import json
import os
import random
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, NovaNbWarning, StreamError, UsageError
from .budget import WAIT, Budget, BudgetGate, budget_from
from .grid import Setting, expand_grid
from .items import Item, ItemError, Synthesize, _safe, item_audio, load_items

__all__ = [
    "DEFAULT_CONCURRENCY",
    "RESULTS_FILE",
    "SKIPPED",
    "STREAM_QUOTA",
    "Job",
    "ResultsLog",
    "evaluate",
    "evaluate_sync",
    "run_job",
    "run_job_async",
]

#: Amazon Bedrock's default quota of concurrent bidirectional streams per account and region (the
#: real bound of a sweep, not CPU: docs/EVALUATE.md). The default concurrency stays well below it, so
#: a sweep leaves room for anything else the account runs.
STREAM_QUOTA = 20
DEFAULT_CONCURRENCY = 8
RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
#: ``status`` of a job the run did not start (the budget stopped it): not an error, and not done — a
#: rerun in the same folder runs it.
SKIPPED = "skipped"
#: A session retries a throttled open itself (``reconnect_attempts``, within 60 s); when it still
#: fails, the job waits and tries again, doubling from the base up to the cap, at most this many times.
THROTTLE_RETRIES = 3
THROTTLE_BASE_S = 2.0
THROTTLE_MAX_S = 30.0
#: How long a cancelled run waits for its sessions to close (each closes within close_timeout_s).
CANCEL_WAIT_S = 10.0


class EvaluationWarning(NovaNbWarning):
    """Something in an evaluation's files was wrong but could be used (e.g. a torn last line)."""


@dataclass(frozen=True)
class Job:
    """One item under one setting, and where its recording goes. Plain values: it pickles."""

    item: Item
    setting: Setting
    out: str
    pace: bool = True
    timeout_s: float = 90.0
    synthesize: Synthesize | None = None
    throttle_retries: int = THROTTLE_RETRIES

    @property
    def key(self) -> tuple[str, str]:
        return (self.item.id, self.setting.key)

    @property
    def recording(self) -> str:
        """The recording folder, relative to ``out``."""
        return f"recordings/{self.setting.slug}/{_safe(self.item.id)}"


def _throttled(exc: StreamError) -> bool:
    """A refusal that means "busy, try later" (the account's stream quota, a busy service)."""
    from ...s2s.providers.amazon_nova.session import OPEN_RETRY_CODES

    return exc.code.lower() in OPEN_RETRY_CODES


def run_job(job: Job) -> dict[str, Any]:
    """Run one job in a new event loop (for executors: threads, processes, Dask, Ray). Never raises
    for a problem of the job itself: it becomes the result's ``error``."""
    return asyncio.run(run_job_async(job))


async def run_job_async(job: Job) -> dict[str, Any]:
    """Run one job in the current event loop; returns its results line (a dict)."""
    from ... import s2s

    started = time.monotonic()
    result: dict[str, Any] = {
        "item": job.item.id,
        "setting": job.setting.key,
        "settings": job.setting.described,
        "label": job.setting.label,
        "status": "ok",
        "error": None,
        "error_kind": None,
        "recording": None,
        "attempts": 0,
        "expected": job.item.reference,
        "asked_barge_in_offset_s": job.item.barge_in_offset_s,
        "started_at_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }
    try:
        job.item.check()
        try:
            provider = s2s.new_provider(job.setting.provider, **job.setting.provider_options())
            if not isinstance(provider, s2s.StreamingS2SProvider):
                raise ConfigError(f"provider {job.setting.provider!r} cannot stream")
            context = (
                s2s.ConversationContext(system_prompt=job.setting.system_prompt)
                if job.setting.system_prompt is not None
                else None
            )
        except ConfigError as exc:
            raise ItemError(f"setting {job.setting.label} rejected: {exc}", "config") from None
        rate = provider.config.input_sample_rate
        question, interjection, note = await asyncio.to_thread(
            item_audio, job.item, rate, synthesize=job.synthesize, cache_dir=Path(job.out) / "inputs"
        )
        result["audio_note"] = note
        result["user_audio_s"] = round(question.size / rate, 6)
        barge = (job.item.barge_in_offset_s, interjection) if interjection is not None else None
        assert barge is None or barge[0] is not None
        folder = Path(job.out) / job.recording
        recording = await _converse(job, provider, question, context, barge, folder, result)
        result["recording"] = job.recording
        from .metrics import analyse

        try:
            result.update(
                analyse(recording.events, recording.meta, job.item.reference, job.item.barge_in_offset_s)
            )
        except ValueError as exc:  # an expected text with no words
            raise ItemError(f"item {job.item.id!r}: {exc}") from None
        if result.get("stream_error"):
            result.update(
                status="error", error_kind="stream", error=f"the stream failed: {result['stream_error']}"
            )
        elif result.get("timed_out") and result.get("reconnects"):
            result.update(
                status="error",
                error_kind="stream",
                error=f"the service failed ({result['reconnect_error']}); the session reconnected "
                f"{result['reconnects']} time(s) and no reply came within timeout_s={job.timeout_s:g} s",
            )
        elif result.get("timed_out"):
            result.update(
                status="error",
                error_kind="timeout",
                error=f"the conversation had not ended after timeout_s={job.timeout_s:g} s (recording kept)",
            )
    except ItemError as exc:
        result.update(status="error", error=str(exc), error_kind=exc.kind)
    except Exception as exc:  # a bug or an unforeseen failure: this job's error, never the run's
        result.update(status="error", error=f"{type(exc).__name__}: {exc}", error_kind="crash")
    result["wall_s"] = round(time.monotonic() - started, 6)
    return result


async def _converse(
    job: Job,
    provider: Any,
    question: Any,
    context: Any,
    barge: Any,
    folder: Path,
    result: dict[str, Any],
) -> Any:
    """run_conversation, retried with bounded exponential backoff while the service is throttling."""
    from ..experiments import run_conversation

    for attempt in range(job.throttle_retries + 1):
        result["attempts"] = attempt + 1
        try:
            return await run_conversation(
                provider,
                question,
                folder,
                context=context,
                barge_in=barge,
                pace=job.pace,
                timeout_s=job.timeout_s,
                metadata={"experiment": "evaluate", "item": job.item.id, "setting": job.setting.described},
            )
        except ConfigError as exc:  # e.g. a voice the service side rejects at open
            raise ItemError(f"setting {job.setting.label} rejected: {exc}", "config") from None
        except StreamError as exc:
            if not _throttled(exc) or attempt >= job.throttle_retries:
                what = "still throttled after retries" if _throttled(exc) else "the stream failed"
                raise ItemError(f"{what}: {exc}", "stream") from None
            delay = min(THROTTLE_BASE_S * 2**attempt, THROTTLE_MAX_S)
            await asyncio.sleep(random.uniform(delay / 2, delay))
    raise AssertionError("unreachable")  # the loop returns or raises


# -- the results file -----------------------------------------------------------------------------


class ResultsLog:
    """``results.jsonl``: one JSON object per finished job, appended and fsync'd one by one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """Every complete line. A torn last line (a crash while it was written) is left out with an
        :class:`EvaluationWarning`; so is any other line that does not parse, naming its number."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" unless the last line is torn
        out = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "item" not in record or "setting" not in record:
                    raise ValueError("not a results object")
            except ValueError as exc:
                warnings.warn(
                    f"{self.path}, line {n}, is not a result ({exc}); skipped",
                    EvaluationWarning,
                    stacklevel=2,
                )
                continue
            out.append(record)
        if tail.strip():
            warnings.warn(
                f"{self.path}: the last line is torn (a crash while it was written); its job runs again",
                EvaluationWarning,
                stacklevel=2,
            )
        return out

    def repair(self) -> None:
        """Cut a torn last line off, so that the next line appended starts on a line of its own."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
                warnings.warn(
                    f"{self.path}: the last line was torn (a crash while it was written) and is cut off; "
                    "its job runs again",
                    EvaluationWarning,
                    stacklevel=3,
                )

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def latest(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The last line of each (item, setting): a rerun's line replaces an earlier one."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        out[(r["item"], r["setting"])] = dict(r)
    return out


# -- the driver -----------------------------------------------------------------------------------


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc="nova-nb eval", unit="job", disable=not enabled, leave=True
    )


async def evaluate(
    items: str | os.PathLike[str] | Sequence[Item | Mapping[str, Any]],
    grid: Mapping[str, Any] | Sequence[Setting] | None,
    out: str | os.PathLike[str],
    *,
    provider: str = "local",
    options: Mapping[str, Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    executor: concurrent.futures.Executor | None = None,
    pace: bool = True,
    timeout_s: float = 90.0,
    synthesize: Synthesize | None = None,
    retry_errors: bool = False,
    progress: bool = True,
    prices: Any = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    throttle_retries: int = THROTTLE_RETRIES,
    budget: Budget | float | None = None,
) -> Any:
    """Run every item under every setting of the grid, recording each; return the report.

    Parameters
    ----------
    items : path or sequence
        A folder of audio files, a .csv or .jsonl file, or items (:func:`~.items.load_items`).
    grid : mapping or sequence of Setting
        ``{"voice": [...], "latency_target": [...], "system_prompt": [...], "frame_ms": [...]}`` and
        any other ``s2s.new_provider`` option (:func:`~.grid.expand_grid`).
    out : path
        The run's folder: ``results.jsonl``, ``run.json``, ``recordings/``, ``inputs/`` (synthesised
        speech). Reusing it resumes the run.
    provider : str
        Provider name when the grid names none (``"local"``: the emulator; ``"amazon_nova"``: billed).
    options : mapping, optional
        Options every setting gets (e.g. ``{"engine": "scripted"}`` for the emulator).
    concurrency : int
        Jobs at once (sessions open at once). Default 8, below the account's 20-stream quota.
    executor : concurrent.futures.Executor, optional
        Run jobs there (a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor`` with the "spawn" or
        "forkserver" context, Dask's ``Client.get_executor()``); each job builds its provider and runs
        its own event loop. None: tasks of the current loop.
    pace : bool
        Send audio in real time (latencies are only meaningful so). False: as fast as the session
        takes it (the emulator counts audio time, so turns are the same, sooner).
    timeout_s : float
        Bound on each conversation.
    synthesize : callable, optional
        ``synthesize(text, voice) -> int16 at 16 kHz`` for items given as text.
    retry_errors : bool
        Run again the jobs whose last line is an error (by default a rerun skips every finished job).
    progress : bool
        Show a progress bar (tqdm: a widget in a notebook, text in a terminal).
    prices : PriceTable, optional
        Rates for the report's cost; without one the cost is unknown, never 0.
    on_result : callable, optional
        Called with each results line once it is on disk (an exception there stops the run: the
        finished lines stay).
    throttle_retries : int
        Extra tries of a job whose stream stays throttled after the session's own retries.
    budget : Budget or float, optional
        A cap on the folder's cost (a number: in the price table's currency); needs ``prices``.
        Before each launch, the cost so far plus the estimate of the jobs running and the next must
        stay within it; otherwise nothing more starts, the running jobs finish, and the rest are
        written ``status: "skipped"`` (not errors; a rerun with a higher cap runs them).
        See :mod:`~.budget`.

    Returns
    -------
    EvalReport
    """
    from .report import EvalReport

    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number ≥ 1, got {concurrency!r}")
    if concurrency > STREAM_QUOTA:
        warnings.warn(
            f"concurrency {concurrency} is above Bedrock's default quota of {STREAM_QUOTA} concurrent "
            "streams: opens beyond it are throttled and retried",
            EvaluationWarning,
            stacklevel=2,
        )
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ConfigError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise ConfigError("executor must have submit(fn, *args) like concurrent.futures.Executor")
    cap = budget_from(budget, prices)
    item_list = load_items(items)
    settings = expand_grid(grid, provider=provider, fixed=options)
    root = Path(out)
    log, done = _prepare(root, retry_errors)
    # What the folder's finished jobs cost counts against the cap (a rerun resumes the same budget).
    gate = None if cap is None else BudgetGate(cap, prices, latest(log.read()).values())
    jobs = [
        Job(item, s, str(root), pace, float(timeout_s), synthesize, throttle_retries)
        for item in item_list
        for s in settings
        if (item.id, s.key) not in done
    ]
    total = len(item_list) * len(settings)
    _write_run(
        root,
        items,
        settings,
        pace=pace,
        concurrency=concurrency,
        executor=executor,
        timeout_s=timeout_s,
        budget=None if cap is None else cap.describe(),
        prices=None if prices is None or not hasattr(prices, "to_json") else prices.to_json(),
    )
    bar = _progress(total, total - len(jobs), progress)
    errors = 0
    skipped = 0

    def record(line: dict[str, Any]) -> None:
        nonlocal errors, skipped
        log.append(line)
        errors += line["status"] not in ("ok", SKIPPED)
        skipped += line["status"] == SKIPPED
        if gate is not None and line["status"] != SKIPPED:
            gate.add(line)
        bar.update(1)
        bar.set_postfix(errors=errors, skipped=skipped, refresh=False)
        if on_result is not None:
            on_result(line)

    check = None if gate is None else gate.check
    try:
        if executor is None:
            await _drive(
                jobs, concurrency, lambda job: asyncio.ensure_future(run_job_async(job)), record, check
            )
        else:
            await _drive(jobs, concurrency, lambda job: _submit(executor, job), record, check)
    finally:
        bar.close()
    return EvalReport.load(root, prices=prices)


def _prepare(root: Path, retry_errors: bool) -> tuple[ResultsLog, set[tuple[str, str]]]:
    """The run's folder and results file, repaired; the (item, setting) keys a rerun skips."""
    root.mkdir(parents=True, exist_ok=True)
    log = ResultsLog(root / RESULTS_FILE)
    log.repair()
    previous = latest(log.read())
    # A skipped job (the budget) never ran: it is not done. An error is, unless retry_errors.
    return log, {
        k
        for k, r in previous.items()
        if r.get("status") != SKIPPED and not (retry_errors and r.get("status") != "ok")
    }


def _submit(executor: Any, job: Job) -> asyncio.Future[Any]:
    future = executor.submit(run_job, job)
    if isinstance(future, concurrent.futures.Future | asyncio.Future):
        return asyncio.wrap_future(future)
    # An executor whose futures are not concurrent.futures ones: wait on .result() in a thread.
    return asyncio.ensure_future(asyncio.to_thread(future.result))


async def _drive(
    jobs: Sequence[Job],
    concurrency: int,
    start: Callable[[Job], Awaitable[Any]],
    record: Callable[[dict[str, Any]], None],
    check: Callable[[int], str | None] | None = None,
) -> None:
    """Keep at most ``concurrency`` jobs running; record each result as it arrives.

    ``check(running)`` (the budget) is asked before each launch: None launches, :data:`WAIT` waits
    for a running job to end, any other string stops launching and, once the running jobs have
    ended, records the rest as skipped with that reason.
    """
    pending = list(jobs)
    nxt = 0
    running: set[asyncio.Future[Any]] = set()
    stop: str | None = None

    def fill() -> None:
        nonlocal nxt, stop
        while len(running) < concurrency and nxt < len(pending) and stop is None:
            verdict = None if check is None else check(len(running))
            if verdict == WAIT:
                return
            if verdict is not None:
                stop = verdict
                return
            running.add(asyncio.ensure_future(start(pending[nxt])))
            nxt += 1

    try:
        fill()
        while running:
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for f in finished:
                running.discard(f)
                record(f.result())
            fill()
        if stop is not None:
            for job in pending[nxt:]:
                record(_skipped(job, stop))
    finally:
        # Ctrl-C, a crash or an on_result that raised: stop the rest. A task's finally closes its
        # session and its recording; what was recorded before stays on disk.
        for f in running:
            f.cancel()
        if running:
            await asyncio.wait(running, timeout=CANCEL_WAIT_S)


def _skipped(job: Job, reason: str) -> dict[str, Any]:
    """The results line of a job the run did not start."""
    return {
        "item": job.item.id,
        "setting": job.setting.key,
        "settings": job.setting.described,
        "label": job.setting.label,
        "status": SKIPPED,
        "skip_reason": reason,
        "error": None,
        "error_kind": None,
        "recording": None,
        "expected": job.item.reference,
        "pace": job.pace,
        "skipped_at_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _write_run(root: Path, items: Any, settings: Sequence[Setting], **info: Any) -> None:
    """``run.json``: what this run was asked to do (rewritten by each rerun; the results keep history)."""
    from ... import __version__

    executor = info.pop("executor")
    body = {
        "nova_nb": __version__,
        "items": str(items)
        if isinstance(items, str | os.PathLike)
        else f"{len(items)} items given in Python",
        "settings": [s.described for s in settings],
        "executor": None if executor is None else type(executor).__name__,
        "written_at_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **info,
    }
    tmp = root / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(root / RUN_FILE)


def evaluate_sync(*args: Any, **kwargs: Any) -> Any:
    """:func:`evaluate` from synchronous code (a script, the CLI): runs its own event loop.

    In a notebook cell use ``await evaluate(...)``: the cell already runs in a loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(evaluate(*args, **kwargs))
    raise UsageError("an event loop is running in this thread (a notebook cell?): use `await evaluate(...)`")
