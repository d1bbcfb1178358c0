"""What one cascaded turn cost, stage by stage: the :class:`CascadeStages` event and its figures.

The cascade publishes one :class:`CascadeStages` per turn, after the turn's reply ended (or was
interrupted, or failed), beside the usual session events. Every time is ``time.monotonic()``, the clock
of all session events, so it lines up with ``AudioOutput`` and ``Transcript`` timestamps; a
``SessionRecorder`` writes the event to ``events.jsonl`` like any other (kind ``"CascadeStages"``; the
times stay on the monotonic clock there, as ``t_monotonic`` is).

The stages of a spoken turn, one after the other (none overlaps the next)::

    speech_end_t ─ endpointing wait ─ decision_t ─ queue ─ asr_start_t ─ ASR ─ asr_end_t ─ reply_start_t
    ─ responder ─ reply_end_t ─ TTS to first audio ─ tts_first_audio_t ─ hand-over ─ first_audio_out_t

``speech_end_t``
    the first input frame the VAD (Silero) judged silent after the user's last speech frame arrived:
    the earliest moment the cascade could know the speech had ended.
``decision_t``
    the input frame that completed the endpointing pause arrived: the turn is decided.
``asr_start_t`` / ``asr_end_t``
    recognition (Moonshine) of the turn's audio, in the worker thread.
``reply_start_t`` / ``reply_end_t``
    the responder call (any ``callable(text[, context]) -> str``).
``tts_first_audio_t``
    the synthesizer (espeak-ng) produced the reply's first chunk.
``first_audio_out_t``
    that chunk was handed to the session's output (the ``AudioOutput`` event's timestamp).

A typed turn (``send_text``) has no speech, pause or recognition: those fields are None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from ..s2s import events as ev

#: The stage durations of a turn, in order: (column name, start field, end field, what it is).
STAGES: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("endpointing_wait_s", "speech_end_t", "decision_t", "VAD: the pause that ends a turn"),
    ("queue_s", "decision_t", "asr_start_t", "handing the turn to the worker thread"),
    ("asr_s", "asr_start_t", "asr_end_t", "speech recognition (Moonshine tiny)"),
    ("handoff_s", "asr_end_t", "reply_start_t", "transcript to the responder"),
    ("reply_s", "reply_start_t", "reply_end_t", "the responder"),
    ("tts_first_audio_s", "reply_end_t", "tts_first_audio_t", "TTS (espeak-ng) to its first chunk"),
    ("audio_out_s", "tts_first_audio_t", "first_audio_out_t", "first chunk handed to the session"),
)


def _diff(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


@dataclass(frozen=True, kw_only=True)
class CascadeStages(ev.Event):
    """The stage timestamps of one cascaded turn (definitions: this module's docstring).

    ``outcome`` is ``"spoken"`` (the whole reply was synthesized and handed out; a barge-in during
    its playback is the ``Interruption`` event's to tell), ``"interrupted"`` (barge-in while the reply
    was still being made),
    ``"failed"`` (a stage raised; ``error`` says which and why) or ``"cancelled"`` (the session closed,
    or the user spoke again before any audio). ``typed`` marks a turn from ``send_text``.
    """

    content_id: str
    user_text: str | None = None
    reply_text: str | None = None
    typed: bool = False
    outcome: str = "spoken"
    error: str | None = None
    speech_end_t: float | None = None
    decision_t: float | None = None
    asr_start_t: float | None = None
    asr_end_t: float | None = None
    reply_start_t: float | None = None
    reply_end_t: float | None = None
    tts_first_audio_t: float | None = None
    first_audio_out_t: float | None = None
    #: The endpointing pause the VAD waited for (seconds, from the latency target).
    pause_s: float | None = None

    # -- the figures ---------------------------------------------------------------------------

    @property
    def endpointing_wait_s(self) -> float | None:
        return _diff(self.decision_t, self.speech_end_t)

    @property
    def asr_s(self) -> float | None:
        return _diff(self.asr_end_t, self.asr_start_t)

    @property
    def reply_s(self) -> float | None:
        return _diff(self.reply_end_t, self.reply_start_t)

    @property
    def tts_first_audio_s(self) -> float | None:
        return _diff(self.tts_first_audio_t, self.reply_end_t)

    @property
    def speech_end_to_first_audio_s(self) -> float | None:
        """End of speech (the cascade's VAD) → first audio out: what a user waits for."""
        return _diff(self.first_audio_out_t, self.speech_end_t)

    @property
    def decision_to_first_audio_s(self) -> float | None:
        """Turn decided (endpointing) → first audio out: the cascade's processing after the pause."""
        return _diff(self.first_audio_out_t, self.decision_t)

    def durations(self) -> dict[str, float | None]:
        """Each stage's seconds (:data:`STAGES`, in order); None where the turn did not get that far."""
        return {name: _diff(getattr(self, end), getattr(self, start)) for name, start, end, _ in STAGES}


_FIELDS = tuple(f.name for f in fields(CascadeStages) if f.name != "timestamp")


def stages_of(events: Iterable[ev.Event | Mapping[str, Any]]) -> list[CascadeStages]:
    """The :class:`CascadeStages` among session events, or among a recording's ``events.jsonl`` lines
    (dicts with ``kind == "CascadeStages"``, e.g. ``Recording.events``), in order."""
    out: list[CascadeStages] = []
    for item in events:
        if isinstance(item, CascadeStages):
            out.append(item)
        elif isinstance(item, Mapping) and item.get("kind") == "CascadeStages":
            timestamp = item.get("t_monotonic", item.get("t"))
            out.append(
                CascadeStages(
                    timestamp=float(timestamp) if timestamp is not None else 0.0,
                    **{k: item[k] for k in _FIELDS if k in item},
                )
            )
    return out


def stage_rows(events: Iterable[ev.Event | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per turn: index, outcome, the texts, every stage's seconds and the two totals."""
    rows = []
    for i, stages in enumerate(stages_of(events)):
        row: dict[str, Any] = {
            "turn": i,
            "outcome": stages.outcome,
            "user_text": stages.user_text,
            "reply_text": stages.reply_text,
        }
        row.update(stages.durations())
        row["speech_end_to_first_audio_s"] = stages.speech_end_to_first_audio_s
        row["decision_to_first_audio_s"] = stages.decision_to_first_audio_s
        row["pause_s"] = stages.pause_s
        row["error"] = stages.error
        rows.append(row)
    return rows


@dataclass(frozen=True, kw_only=True)
class CascadeTurnError(ev.Event):
    """A stage of one turn raised (``stage``: ``"asr"``, ``"responder"`` or ``"tts"``).

    The turn ends without a reply (or with the part already spoken); the session goes on and the next
    turn is answered as usual. Not a ``StreamErrorEvent``: nothing is wrong with the stream.
    """

    content_id: str
    stage: str
    error_type: str
    message: str
