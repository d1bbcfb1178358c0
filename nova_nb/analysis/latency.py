"""Latency per turn and barge-in reaction, computed from recorded events alone.

Pure functions over the event dicts of ``events.jsonl`` (as :meth:`Recording.load` or
:func:`~nova_nb.analysis.recording.read_events` returns them: dicts with ``kind`` and ``t``).
The definitions below are the ones ``docs/RECORDING.md`` gives, so anyone can recompute the
figures from the JSON Lines.

Turns are the one turn model of :mod:`nova_nb.s2s.turns` (its docstring gives the definitions of
``decision_t``, ``speech_end_t``, ``heard_t``, ``response_s``, ``decision_to_audio_s`` and
``audio_to_heard_s``); :func:`turns` is the adapter that feeds it the recorded lines: ``AudioOutput``,
``Transcript``, ``PlaybackReported``, ``Interruption`` and ``ContentEnded`` as the typed events they
record, ``UserSpeechEnded`` (the recorder's energy detector on the input frames as sent) as the
speech-end marks of source ``"input_energy"``, and ``ServiceSpeechEnded`` (the service's ``userSpeechEnd``,
docs/PROTOCOL.md §12) as ``service_speech_end_t``, whose ``service_response_s`` the report shows beside
``response_s`` when a recording has it.

A **barge-in** is the first ``Interruption`` line of a ``content_id`` (``signal_t``):
``onset_t`` is the last ``ServiceSpeechStarted`` (the service's ``userSpeechStart``) in
``[first_audio_t of that turn, signal_t]`` if there is one (``onset_source`` ``"service"``), else the
last ``UserSpeechStarted`` of the recorder's energy detector there (``onset_source`` ``"input_energy"``);
``flush_t`` is, for that content and at or after ``signal_t``, the first ``PlaybackReported`` with
``final: true`` (a player said it stopped), else the first ``ClientFlushed`` (the interrupted end chunk
reached the client's ``receive_audio()`` loop), else the recorder's ``PlayerFlushed`` line.
``reaction_s = signal_t - onset_t``, ``flush_s = flush_t - signal_t``. ``heard_s`` is that
report's ``played_s`` (or ``PlayerFlushed.played_s``), counted over all the reply's blocks (one per
sentence, §13.4), ``planned_words`` the word count of every ASSISTANT SPECULATIVE sentence of
the turn (what the model announced), and ``final_words`` that of the turn's ASSISTANT FINAL texts (what
it confirmed as spoken).
"""

from __future__ import annotations

import bisect
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..s2s.turns import INPUT_ENERGY, TurnBuilder, TurnRecord

__all__ = [
    "LATENCY_METRICS",
    "OPTIONAL_COLUMNS",
    "PERCENTILES",
    "BargeIn",
    "LatencyReport",
    "Turn",
    "barge_ins",
    "html_table",
    "latency_report",
    "summarize",
    "turns",
]

#: The per-turn latencies a report summarises, in seconds. ``service_response_s`` has values only in
#: recordings with the service's speech events (Nova 2 and later); a summary leaves out empty metrics.
LATENCY_METRICS = ("response_s", "decision_to_audio_s", "service_response_s", "audio_to_heard_s")
#: Columns of the per-turn table that only some recordings fill: shown only when a turn has a value.
OPTIONAL_COLUMNS = frozenset({"service_speech_end_t", "service_response_s"})
#: Percentiles of the summary.
PERCENTILES = (50, 90, 95, 99)

Event = Mapping[str, Any]


#: One assistant reply and its timing: the one turn model (seconds on the recording clock ``t``).
Turn = TurnRecord


@dataclass(frozen=True)
class BargeIn:
    """One interruption of a reply (seconds on the recording clock ``t``)."""

    turn_index: int
    content_id: str | None
    onset_t: float | None
    signal_t: float
    flush_t: float | None
    reaction_s: float | None
    flush_s: float | None
    heard_s: float | None
    planned_words: int | None
    final_words: int | None
    signal: str | None
    #: Where ``onset_t`` came from: "service" (ServiceSpeechStarted), "input_energy" (the recorder's
    #: UserSpeechStarted) or None (no onset found).
    onset_source: str | None = None

    @property
    def heard_text_fraction(self) -> float | None:
        """Words of the FINAL text over words planned (SPECULATIVE), the model's idea of what was heard."""
        if not self.planned_words or self.final_words is None:
            return None
        return self.final_words / self.planned_words


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _last_before(times: list[float], lo: float, hi: float) -> int | None:
    """Index of the last time in ``(lo, hi]`` (times sorted), or None."""
    i = bisect.bisect_right(times, hi) - 1
    return i if i >= 0 and times[i] > lo else None


#: ``source`` values of recorded ``UserSpeechEnded`` lines that are the input-energy detector's.
_INPUT_ENERGY_SOURCES = (None, "recorder", INPUT_ENERGY)


def turns(events: Sequence[Event]) -> list[Turn]:
    """Split recorded events into turns and time each (definitions: :mod:`nova_nb.s2s.turns`).

    The one adapter from ``events.jsonl`` lines to the turn model: each line is handed to the same
    :class:`~nova_nb.s2s.turns.TurnBuilder` a live session feeds with typed events.

    Parameters
    ----------
    events : sequence of dict
        Event lines with ``kind`` and ``t``, sorted by ``t`` (``Recording.events``).

    Returns
    -------
    list of Turn
        One per assistant reply, in order.

    Examples
    --------
    >>> ev = [{"kind": "UserSpeechEnded", "t": 1.0},
    ...       {"kind": "Transcript", "t": 2.5, "role": "USER", "stage": "FINAL", "text": "hi"},
    ...       {"kind": "AudioOutput", "t": 2.6, "content_id": "a", "duration_s": 0.08}]
    >>> t = turns(ev)[0]
    >>> round(t.response_s, 3), round(t.decision_to_audio_s, 3), t.speech_end_source
    (1.6, 0.1, 'input_energy')
    """
    return _builder(events).turns


def _builder(events: Sequence[Event]) -> TurnBuilder:
    """The turn builder fed with every recorded line (:func:`turns`)."""
    builder = TurnBuilder(keep_audio=False)
    for e in events:
        kind, t = e["kind"], e["t"]
        if kind == "AudioOutput":
            rate = e.get("sample_rate", 24000)
            builder.audio(t, e["content_id"], e.get("duration_s", e.get("n_samples", 0) / rate), rate)
        elif kind == "Transcript":
            builder.transcript(t, e.get("role", ""), e.get("stage"), e.get("text") or "")
        elif kind == "UserSpeechEnded":
            source = e.get("source")
            builder.speech_ended(t, INPUT_ENERGY if source in _INPUT_ENERGY_SOURCES else str(source))
        elif kind == "ServiceSpeechEnded":
            builder.service_speech_ended(t)
        elif kind == "PlaybackReported":
            builder.playback(t, e["content_id"], e.get("played_s", 0.0))
        elif kind == "Interruption" and e.get("content_id"):
            builder.interruption(e["content_id"])
        elif kind == "ContentEnded" and e.get("type") == "AUDIO" and e.get("role") == "ASSISTANT":
            builder.audio_ended(t, e["content_id"], e.get("stop_reason"))
    return builder


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def barge_ins(events: Sequence[Event]) -> list[BargeIn]:
    """Every barge-in: onset → interruption signal → flush, and how much was heard.

    Parameters
    ----------
    events : sequence of dict
        Event lines sorted by ``t``.

    Returns
    -------
    list of BargeIn
        One per interrupted reply, in order (definitions: module docstring).
    """
    # Turns (not AUDIO blocks: a reply may come as several, §12) give the index and first audio.
    built = _builder(events)
    firsts = [t.first_audio_t if t.first_audio_t is not None else math.inf for t in built.turns]
    # The service's own speech start is the better onset (it is what the service reacts to); the
    # recorder's energy detector stands in when the service sent none (§12).
    onset_sources = {
        "service": sorted(e["t"] for e in events if e["kind"] == "ServiceSpeechStarted"),
        INPUT_ENERGY: sorted(e["t"] for e in events if e["kind"] == "UserSpeechStarted"),
    }
    block_s: dict[str, float] = {}  # seconds of audio per AUDIO block, in arrival order
    for e in events:
        if e["kind"] == "AudioOutput" and e.get("content_id"):
            block_s[e["content_id"]] = block_s.get(e["content_id"], 0.0) + float(e.get("duration_s") or 0.0)
    block_order = list(block_s)
    out: list[BargeIn] = []
    seen: set[str | None] = set()
    for e in events:
        if e["kind"] != "Interruption" or e.get("content_id") in seen:
            continue
        cid = e.get("content_id")
        seen.add(cid)
        signal_t = e["t"]
        turn = built.by_content_id.get(cid) if cid else None
        ti = turn.index if turn is not None else -1
        fa = firsts[ti] if turn is not None else -math.inf
        onset = onset_source = None
        for source, onsets in onset_sources.items():
            o = _last_before(onsets, fa - 1e-9, signal_t)
            if o is not None:
                onset, onset_source = onsets[o], source
                break
        flush_t, heard_s = _flush_of(events, cid, signal_t)
        before = block_order[: block_order.index(cid)] if cid in block_order else block_order
        earlier = [c for c in before if built.by_content_id.get(c) is turn]  # this reply's blocks so far
        if turn is not None and earlier and flush_t is not None:
            # A reply may come as several AUDIO blocks (one per sentence, §12); the signal names the
            # block being generated. If the player had reached it, the earlier blocks were heard in
            # full; if not (audio arrives several times faster than real time, so generation runs
            # ahead of playback), playback was still in an earlier block: count from when the player
            # started the reply (its own report, else the first chunk's arrival) to the flush.
            if heard_s:
                heard_s += sum(block_s[c] for c in earlier)
            elif turn.first_audio_t is not None:
                started = turn.heard_t if turn.heard_t is not None else turn.first_audio_t
                heard_s = min(max(flush_t - started, 0.0), turn.reply_audio_s)
        planned = final_words = None
        if turn is not None:
            # Planned: every sentence the model announced (SPECULATIVE) for this reply; said: the FINAL
            # texts it confirmed, which stop at what was heard (§5, §12).
            planned = _words(turn.speculative_text) if turn.speculative_texts else None
            final_words = _words(turn.reply_text)
        out.append(
            BargeIn(
                turn_index=ti,
                content_id=cid,
                onset_t=onset,
                signal_t=signal_t,
                flush_t=flush_t,
                reaction_s=_diff(signal_t, onset),
                flush_s=_diff(flush_t, signal_t),
                heard_s=heard_s,
                planned_words=planned,
                final_words=final_words,
                signal=e.get("signal"),
                onset_source=onset_source,
            )
        )
    return out


def _flush_of(events: Sequence[Event], cid: str | None, signal_t: float) -> tuple[float | None, float | None]:
    """When the reply stopped playing, and how much of it had played: the best source available.

    A player's own report (``PlaybackReported`` with ``final``) first, then a client's
    ``ClientFlushed`` mark (the interrupted end chunk reached ``receive_audio()``), then the
    recorder's simulated player (``PlayerFlushed``).
    """
    best: dict[str, tuple[float, float | None]] = {}
    for e in events:
        kind = e["kind"]
        if e.get("content_id") != cid or e["t"] < signal_t - 1e-9 or kind in best:
            continue
        if (kind == "PlaybackReported" and e.get("final")) or kind in ("ClientFlushed", "PlayerFlushed"):
            best[kind] = (e["t"], e.get("played_s"))
    for kind in ("PlaybackReported", "ClientFlushed", "PlayerFlushed"):
        if kind in best:
            return best[kind]
    return None, None


def summarize(
    rows: Sequence[Any], metrics: Sequence[str] = LATENCY_METRICS, percentiles: Sequence[int] = PERCENTILES
) -> dict[str, dict[str, float]]:
    """Count, mean, min, percentiles and max of each metric over the rows that have it.

    Parameters
    ----------
    rows : sequence of Turn or BargeIn (or anything with those attributes)
    metrics : sequence of str
        Attribute names; ``None`` values are left out.
    percentiles : sequence of int

    Returns
    -------
    dict
        ``{metric: {"n": ..., "mean": ..., "min": ..., "p50": ..., ..., "max": ...}}``; metrics
        without any value are left out.
    """
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        values = np.array([v for r in rows if (v := getattr(r, m)) is not None], dtype=float)
        if values.size == 0:
            continue
        stats: dict[str, float] = {
            "n": float(values.size),
            "mean": float(values.mean()),
            "min": float(values.min()),
        }
        for p, v in zip(percentiles, np.percentile(values, percentiles), strict=False):
            stats[f"p{p}"] = float(v)
        stats["max"] = float(values.max())
        out[m] = stats
    return out


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small HTML table; cells are escaped, floats shown with 3 decimals, None as an empty cell."""

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3f}"
        return html.escape(str(v))

    head = "".join(f"<th style='text-align:right'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:right'>{cell(v)}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class LatencyReport:
    """Per-turn latencies and their summary; shows as two tables in a notebook."""

    turns: list[Turn]
    summary: dict[str, dict[str, float]]

    TURN_COLUMNS = (
        "index",
        "user_text",
        "speech_end_t",
        "speech_end_source",
        "service_speech_end_t",
        "decision_t",
        "first_audio_t",
        "response_s",
        "decision_to_audio_s",
        "service_response_s",
        "audio_to_heard_s",
        "reply_audio_s",
        "stop_reason",
    )

    def rows(self) -> list[dict[str, Any]]:
        """The turns as plain dicts (e.g. for ``pandas.DataFrame`` or ``csv.DictWriter``), without audio."""
        names = [f.name for f in fields(TurnRecord) if f.name != "audio"]
        return [{**{n: getattr(t, n) for n in names}, **{m: getattr(t, m) for m in LATENCY_METRICS}}
                for t in self.turns]  # fmt: skip

    def columns(self) -> tuple[str, ...]:
        """The per-turn columns to show: :attr:`TURN_COLUMNS` without optional ones no turn fills."""
        return tuple(
            c
            for c in self.TURN_COLUMNS
            if c not in OPTIONAL_COLUMNS or any(getattr(t, c) is not None for t in self.turns)
        )

    def summary_rows(self) -> list[list[Any]]:
        stats = ("n", "mean", "min", *(f"p{p}" for p in PERCENTILES), "max")
        return [[m, *(int(s[k]) if k == "n" else s[k] for k in stats)] for m, s in self.summary.items()]

    def _repr_html_(self) -> str:
        stats = ["metric", "n", "mean", "min", *(f"p{p}" for p in PERCENTILES), "max"]
        columns = self.columns()
        turn_rows = [[getattr(t, c) for c in columns] for t in self.turns]
        return (
            "<b>Per turn</b> (seconds)"
            + html_table(list(columns), turn_rows)
            + "<b>Summary</b> (seconds)"
            + html_table(stats, self.summary_rows())
        )

    def plot(self, ax: Any = None) -> Any:
        """Draw the turns with :func:`nova_nb.analysis.display.plot_latency`; returns its axes."""
        from .display import plot_latency

        return plot_latency(self.turns, ax=ax)


def latency_report(events: Sequence[Event]) -> LatencyReport:
    """Turns and summary percentiles from recorded events.

    Examples
    --------
    >>> report = latency_report(recording.events)             # doctest: +SKIP
    >>> report.summary["response_s"]["p50"]                   # doctest: +SKIP
    """
    t = turns(events)
    return LatencyReport(t, summarize(t))
