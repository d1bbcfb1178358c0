"""Experiments that drive recorded sessions: a conversation runner, barge-in sweeps, settings comparisons.

:func:`run_conversation` plays user audio into a new session like a live microphone (the question,
then silence for as long as the model may still answer), records it with a
:class:`~nova_nb.analysis.recording.SessionRecorder` and returns the loaded
:class:`~nova_nb.analysis.recording.Recording`. On it are built:

* :func:`interruption_sweep` — barge in at chosen offsets into a reply and measure onset →
  interruption signal → flush, and how much of the reply was heard against the FINAL text;
* :func:`compare_settings` — the same user audio against several providers, voices, latency targets
  or frame sizes, with one latency report each.

Trials run concurrently (each is its own session), so a sweep takes about as long as one trial.
Everything here measures on the recording clock; see ``docs/RECORDING.md``.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ..protocol import catalog
from ..s2s import AudioOutputChunk, ConversationContext, StreamingS2SProvider
from ..s2s import events as ev
from ..s2s.talk import say
from .latency import BargeIn, LatencyReport, barge_ins, html_table, latency_report, turns
from .recording import Recording, SessionRecorder

__all__ = [
    "BargeInTrial",
    "Variant",
    "VariantResult",
    "compare_settings",
    "comparison_table",
    "input_onset_reaction_s",
    "interruption_sweep",
    "run_conversation",
    "sweep_table",
]

#: Pause assumed when the provider's settings do not name one (Nova 1, other providers).
DEFAULT_PAUSE_S = 2.0


def endpointing_pause_s(provider: StreamingS2SProvider) -> float:
    """The silence that ends a user turn for this provider's settings (seconds)."""
    sensitivity = getattr(provider.config, "endpointing_sensitivity", None)
    return float(catalog.ENDPOINTING_PAUSE_S.get(sensitivity or "", DEFAULT_PAUSE_S))


class _Watch:
    """Follows replies through the session's events: which started, which ended, when it was last busy.

    With ``real_time`` it also plays the replies in its head as a real-time player would (each chunk
    from when it arrives or the previous one ends, whichever is later): the service sends audio several
    times faster than real time (docs/PROTOCOL.md §12), so "the last block has ended" comes long before
    the user has heard the reply, and a barge-in or the next utterance must wait for playback instead.
    """

    def __init__(self, *, real_time: bool = True, decision_grace_s: float = 5.0) -> None:
        self.real_time = real_time
        self.first_audio: dict[str, float] = {}
        self.ended: set[str] = set()
        self.decisions = 0
        self.last_event = time.monotonic()
        self.closed = False
        self.playing_until = -math.inf
        # The service said the user's speech ended (userSpeechEnd) and no turn decision followed yet:
        # a reply is probably on its way (a slow recogniser on a loaded machine decides late), so the
        # conversation is not over, for at most ``decision_grace_s`` (a service may end speech and
        # then decide it was not a turn).
        self.decision_grace_s = decision_grace_s
        self.speech_ended_at: float | None = None
        # An AUDIO block ended PARTIAL_TURN: the reply goes on with its next sentence (docs/PROTOCOL.md
        # §13.4), which may take the service a while to start (longer than any settle time on a loaded
        # machine). Busy until the next block starts or the turn ends, for at most decision_grace_s.
        self.partial_at: float | None = None
        # The service said the user started speaking and has not said the speech ended: a turn is in
        # progress on its side. Sent faster than real time, the audio can be far ahead of the service
        # (a loaded emulator hears it late), so the silence this client has sent proves nothing yet.
        # Bounded by the run's timeout.
        self.speech_open = False

    def __call__(self, e: ev.Event) -> None:
        self.last_event = e.timestamp
        if isinstance(e, ev.AudioOutput):
            self.first_audio.setdefault(e.content_id, e.timestamp)
            self.playing_until = max(self.playing_until, e.timestamp) + e.duration_s
            self.partial_at = None
        elif isinstance(e, ev.ContentEnded) and e.type == "AUDIO" and e.role == "ASSISTANT":
            self.ended.add(e.content_id)
            self.partial_at = e.timestamp if e.stop_reason == "PARTIAL_TURN" else None
        elif isinstance(e, ev.Interruption):
            self.playing_until = e.timestamp  # the player flushes
            self.partial_at = None
        elif isinstance(e, ev.Transcript) and e.role == "USER" and e.stage == "FINAL":
            self.decisions += 1
            self.speech_ended_at = None
        elif isinstance(e, ev.ServiceSpeechEnded):
            self.speech_ended_at = e.timestamp
            self.speech_open = False
        elif isinstance(e, ev.ServiceSpeechStarted):
            self.speech_ended_at = None
            self.speech_open = True
        elif isinstance(e, ev.SessionClosed | ev.StreamErrorEvent):
            self.closed = True

    def busy(self) -> bool:
        """A reply is due (the service hears speech; speech ended, no decision yet; turn decided, no audio
        yet; a sentence ended, the turn did not) or still playing."""
        if self.speech_open or self.decisions > len(self.first_audio) or set(self.first_audio) - self.ended:
            return True
        now = time.monotonic()
        for since in (self.speech_ended_at, self.partial_at):
            if since is not None and now - since < self.decision_grace_s:
                return True
        return self.real_time and now < self.playing_until


async def run_conversation(
    provider: StreamingS2SProvider,
    user_audio: npt.NDArray[np.int16] | Sequence[npt.NDArray[np.int16]],
    folder: str | os.PathLike[str],
    *,
    voice_id: str | None = None,
    context: ConversationContext | None = None,
    barge_in: tuple[float, npt.NDArray[np.int16]] | None = None,
    pace: bool = True,
    frame_s: float = 0.02,
    settle_s: float = 0.4,
    timeout_s: float = 60.0,
    metadata: dict[str, Any] | None = None,
) -> Recording:
    """Speak ``user_audio`` into a new session like a live microphone, recording everything.

    After the audio, silence is streamed (the microphone stays on) until no reply is due or playing
    and the endpointing pause plus ``settle_s`` has passed, or ``timeout_s`` runs out. Given several
    utterances, each one is spoken once the conversation has gone quiet in this way (a scripted user
    who waits for the answer).

    Parameters
    ----------
    provider : StreamingS2SProvider
    user_audio : numpy.ndarray or sequence of numpy.ndarray
        int16 PCM at the provider's input rate: one stretch of microphone audio, or utterances to
        speak one after another, each after the previous reply.
    folder : str or os.PathLike
        Where the recording goes.
    voice_id : str, optional
    context : ConversationContext, optional
    barge_in : (float, numpy.ndarray), optional
        ``(offset_s, pcm)``: once the first reply to the last utterance has been arriving for
        ``offset_s`` seconds, speak ``pcm`` over it (at most once).
    pace : bool
        Send no faster than real time. Without pacing the local emulator still decides turns the same
        way (it counts audio time) but wall-clock latencies and the ``output.wav`` layout lose meaning.
    frame_s : float
        Audio handed to ``send_audio`` per call (the session re-frames to its ``frame_ms``).
    settle_s : float
        Extra quiet after the pause before the conversation counts as over.
    timeout_s : float
        Bound on the whole run; the recording is kept either way (``meta.json`` ``user.timed_out``).
    metadata : dict, optional
        Stored in ``meta.json`` under ``"user"``.

    Returns
    -------
    Recording
    """
    rate = provider.config.input_sample_rate
    utterances = (
        [np.asarray(user_audio, dtype=np.int16)]
        if isinstance(user_audio, np.ndarray)
        else [np.asarray(u, dtype=np.int16) for u in user_audio]
    )
    if not utterances:
        raise ConfigError("user_audio must hold at least one utterance (an int16 array, or a list of them)")
    pause = endpointing_pause_s(provider)
    info = dict(metadata or {})
    info.update(pace=pace, frame_s=frame_s, user_audio_s=sum(u.size for u in utterances) / rate)
    if barge_in is not None:
        info["barge_in_offset_s"] = barge_in[0]
    session = await provider.start_streaming(context, voice_id=voice_id)
    recorder = SessionRecorder(folder, session, metadata=info)
    # Wait for a late turn decision up to the pause plus a generous margin for a slow recogniser.
    watch = _Watch(real_time=pace, decision_grace_s=pause + 3.0)
    session.add_listener(watch)

    async def drain() -> None:
        # The client side of playback: take chunks as a player would; note when a flush reaches it.
        chunk: AudioOutputChunk
        async for chunk in session.receive_audio():
            if chunk.interrupted and chunk.content_id:
                recorder.mark(
                    "ClientFlushed", content_id=chunk.content_id, played_s=recorder.played_s(chunk.content_id)
                )

    drainer = asyncio.create_task(drain())
    timed_out = False
    settle_wall = settle_s if pace else settle_s / 4  # quiet on the stream, in wall time
    deadline = time.monotonic() + timeout_s
    # A barge-in is pending until it is spoken, or until the reply it was meant for is over.
    barge = {"pending": barge_in is not None, "replies_before": 0}

    def idle() -> bool:
        return not watch.busy() and time.monotonic() - watch.last_event >= settle_wall

    def finished(quiet_s: float) -> bool:
        # No reply due or playing, and the endpointing pause plus settle_s of silence sent.
        return watch.closed or (idle() and quiet_s >= pause + settle_s)

    def barge_due() -> bool:
        if not barge["pending"] or barge_in is None:
            return False
        later = sorted(watch.first_audio.values())[barge["replies_before"] :]
        return bool(later) and time.monotonic() >= later[0] + barge_in[0]

    def finished_or_barge(quiet_s: float) -> bool:
        if barge_due():
            return True
        if barge["pending"] and idle() and len(watch.first_audio) > barge["replies_before"]:
            barge["pending"] = False  # the reply ended before the barge-in time: nothing to interrupt
        return not barge["pending"] and finished(quiet_s)

    async def speak(pcm: npt.NDArray[np.int16], last: bool) -> str:
        return await say(
            session,
            pcm,
            sample_rate=rate,
            until=finished_or_barge if last else finished,
            pace=pace,
            frame_s=frame_s,
            timeout_s=max(0.0, deadline - time.monotonic()),
            stop_speaking=barge_due if last else None,
        )

    try:
        outcome = "done"
        for i, utterance in enumerate(utterances):
            barge["replies_before"] = len(watch.first_audio)
            outcome = await speak(utterance, last=i == len(utterances) - 1)
            if outcome != "done" and outcome != "stopped":
                break
        if outcome in ("done", "stopped") and barge_due() and barge_in is not None:
            # Speak over the reply; whatever was left of the utterance is given up.
            barge["pending"] = False
            outcome = await speak(np.asarray(barge_in[1], dtype=np.int16), last=False)
        timed_out = outcome == "timeout"
    finally:
        await session.close()
        await asyncio.wait({drainer}, timeout=5)
        recorder.user_metadata["timed_out"] = timed_out
        recorder.stop()
    return Recording.load(folder)


# -- interruption sweeps ------------------------------------------------------------------------


@dataclass(frozen=True)
class BargeInTrial:
    """One barge-in trial: the offset asked for, what happened, and where it was recorded."""

    offset_s: float
    folder: Path
    barge_in: BargeIn | None
    reply_started_t: float | None
    turns: int

    @property
    def interrupted(self) -> bool:
        return self.barge_in is not None


async def interruption_sweep(
    provider: StreamingS2SProvider,
    offsets_s: Sequence[float],
    question: npt.NDArray[np.int16],
    interjection: npt.NDArray[np.int16],
    folder: str | os.PathLike[str],
    *,
    voice_id: str | None = None,
    concurrent: bool = True,
    timeout_s: float = 60.0,
    max_concurrent: int | None = None,
) -> list[BargeInTrial]:
    """Ask ``question``, then speak ``interjection`` ``offset_s`` into the reply; once per offset.

    Parameters
    ----------
    provider : StreamingS2SProvider
    offsets_s : sequence of float
        Seconds after the first reply audio arrives at which the interjection starts.
    question, interjection : numpy.ndarray
        int16 PCM at the input rate (e.g. from ``make_utterance(..., tail_silence_s=0)``).
    folder : str or os.PathLike
        Each trial records to ``folder/offset_<ms>ms``.
    voice_id : str, optional
    concurrent : bool
        Run all trials at once (each is its own session).
    timeout_s : float
        Bound on each trial.
    max_concurrent : int, optional
        With ``concurrent``, at most this many trials at a time (None: all at once). A local emulator
        runs its speech models in this process: on a small machine many speech sessions at once fall
        behind real time, and the lag would show up as reaction time.

    Returns
    -------
    list of BargeInTrial
        In the order of ``offsets_s``; ``barge_in`` is None when the reply had ended before the
        interjection (nothing to interrupt).
    """
    if max_concurrent is not None and (
        isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
    ):
        raise ConfigError(
            f"max_concurrent must be a whole number >= 1 or None (all at once); got {max_concurrent!r}"
        )
    root = Path(folder)
    # Without a limit every trial starts at once; a semaphore caps how many sessions are open.
    limit = asyncio.Semaphore(max_concurrent if max_concurrent is not None else max(1, len(offsets_s)))

    async def trial(offset: float) -> BargeInTrial:
        async with limit:
            rec = await run_conversation(
                provider,
                question,
                root / f"offset_{round(offset * 1000):05d}ms",
                voice_id=voice_id,
                barge_in=(offset, interjection),
                timeout_s=timeout_s,
                metadata={"experiment": "interruption_sweep", "offset_s": offset},
            )
        found = barge_ins(rec.events)
        starts = [e["t"] for e in rec.of("AudioOutput")]
        n_turns = len(turns(rec.events))  # replies, not AUDIO blocks (one per sentence, §12)
        return BargeInTrial(
            offset, rec.folder, found[0] if found else None, min(starts, default=None), n_turns
        )

    if concurrent:
        return list(await asyncio.gather(*(trial(o) for o in offsets_s)))
    return [await trial(o) for o in offsets_s]


def input_onset_reaction_s(recording: Recording, barge: BargeIn) -> float | None:
    """Seconds from when the interjection's sound began to the interruption signal.

    The onset here is the recorder's energy detector on the audio as sent (the last
    ``UserSpeechStarted`` line at or before ``barge.signal_t``), not the service's ``userSpeechStart``
    that :attr:`BargeIn.reaction_s` prefers: a service may report speech start at the very moment it
    decides to interrupt (the local emulator does), which makes ``reaction_s`` about zero and says
    nothing about how much speech it waited for. None when no onset was recorded before the signal.

    Parameters
    ----------
    recording : Recording
        The trial's recording (e.g. ``Recording.load(trial.folder)``).
    barge : BargeIn
        One of :func:`~nova_nb.analysis.latency.barge_ins` of that recording.

    Returns
    -------
    float or None
    """
    starts = [e["t"] for e in recording.of("UserSpeechStarted") if e["t"] <= barge.signal_t]
    return barge.signal_t - max(starts) if starts else None


SWEEP_COLUMNS = (
    "offset_s",
    "reaction_s",
    "flush_s",
    "heard_s",
    "final_words",
    "planned_words",
    "heard_text_fraction",
)


def _sweep_row(t: BargeInTrial) -> list[Any]:
    b = t.barge_in
    if b is None:
        return [t.offset_s, None, None, None, None, None, None]
    return [
        t.offset_s,
        b.reaction_s,
        b.flush_s,
        b.heard_s,
        b.final_words,
        b.planned_words,
        b.heard_text_fraction,
    ]


def sweep_table(trials: Sequence[BargeInTrial]) -> str:
    """The sweep as an HTML table (one row per offset; empty cells: the reply had already ended)."""
    return html_table(SWEEP_COLUMNS, [_sweep_row(t) for t in trials])


# -- comparing settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One setting to try: a label, the provider (carrying latency target, frame size, ...), a voice."""

    label: str
    provider: StreamingS2SProvider
    voice_id: str | None = None


@dataclass(frozen=True)
class VariantResult:
    """A variant's recording and its latency report."""

    variant: Variant
    recording: Recording
    report: LatencyReport = field(repr=False)

    @property
    def label(self) -> str:
        return self.variant.label

    @property
    def turns(self) -> int:
        return len(self.report.turns)


async def compare_settings(
    variants: Sequence[Variant],
    user_audio: npt.NDArray[np.int16],
    folder: str | os.PathLike[str],
    *,
    concurrent: bool = True,
    pace: bool = True,
    timeout_s: float = 90.0,
    settle_s: float = 0.4,
) -> list[VariantResult]:
    """Play the same user audio to each variant and report latency for each.

    Parameters
    ----------
    variants : sequence of Variant
    user_audio : numpy.ndarray
        int16 PCM at the input rate, e.g. ``Recording.user_audio()`` of an earlier session (a replay).
    folder : str or os.PathLike
        Each variant records to ``folder/<n>_<label>``.
    concurrent : bool
        Run the variants at once (independent sessions).
    pace : bool
        Real-time sending (needed for wall-clock latencies).
    timeout_s : float
    settle_s : float
        Passed to :func:`run_conversation`: quiet after the endpointing pause before a conversation
        counts as over. Raise it when the turn decision may come late (a speech engine on a busy
        machine), or the session may close before the reply arrives.

    Returns
    -------
    list of VariantResult, in the order of ``variants``.
    """
    root = Path(folder)

    async def one(i: int, v: Variant) -> VariantResult:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in v.label)
        rec = await run_conversation(
            v.provider,
            user_audio,
            root / f"{i:02d}_{safe}",
            voice_id=v.voice_id,
            pace=pace,
            settle_s=settle_s,
            timeout_s=timeout_s,
            metadata={"experiment": "compare_settings", "variant": v.label},
        )
        return VariantResult(v, rec, latency_report(rec.events))

    if concurrent:
        return list(await asyncio.gather(*(one(i, v) for i, v in enumerate(variants))))
    return [await one(i, v) for i, v in enumerate(variants)]


def _settings_of(r: VariantResult) -> str:
    s = r.recording.meta.get("session", {})
    parts = (s.get("provider"), s.get("latency_target"), f"{s.get('frame_ms')} ms", s.get("voice_id"))
    return ", ".join(str(p) for p in parts)


def comparison_table(results: Sequence[VariantResult]) -> str:
    """One row per variant: settings, turns, and the median and p90 of each latency (HTML)."""
    header = [
        "variant",
        "provider, latency target, frame, voice",
        "turns",
        "response p50",
        "response p90",
        "decision→audio p50",
        "decision→audio p90",
    ]
    rows = []
    for r in results:
        resp = r.report.summary.get("response_s", {})
        dec = r.report.summary.get("decision_to_audio_s", {})
        rows.append(
            [
                r.label,
                _settings_of(r),
                r.turns,
                resp.get("p50"),
                resp.get("p90"),
                dec.get("p50"),
                dec.get("p90"),
            ]
        )
    return html_table(header, rows)
