"""The one turn/latency model: typed session events and input speech marks in, per-turn records out.

:class:`TurnBuilder` is pure and incremental: feed it every ``s2s.events`` event as it arrives
(:meth:`TurnBuilder.feed`) and the end of each stretch of user speech (:meth:`TurnBuilder.speech_ended`,
or :meth:`TurnBuilder.input_audio` to let the energy detector find it in the frames sent). It keeps one
:class:`TurnRecord` per assistant reply. ``talk()``, the session panel and the analysis of recordings
(``nova_nb.analysis.latency``, through one adapter over the ``events.jsonl`` lines) all use it, so the
definitions below exist once (``docs/RECORDING.md`` gives the same ones):

A **turn** is one assistant reply: the audio ``content_id`` of ``AudioOutput`` events, in the order of
their first chunk. A reply the service sends as several AUDIO blocks, each but the last ending
``PARTIAL_TURN`` (real Nova 2 and 2.5, about one per sentence; docs/PROTOCOL.md §12), is one turn: a
block that starts after a ``PARTIAL_TURN`` end, with no new turn decision between, continues it.
For a turn whose first audio arrives at ``first_audio_t``, with the previous turn's
first audio at ``prev`` (``-inf`` for the first turn):

``decision_t``
    time of the last USER ``Transcript`` with stage FINAL (or no stage) in ``(prev, first_audio_t]``:
    the model's turn decision. ``None`` for a typed turn or the model speaking first.
``speech_end_t``
    the last speech-end mark in ``(prev, anchor]``, ``anchor`` being ``decision_t`` (or
    ``first_audio_t`` without one); ``speech_end_source`` says where the marks came from.
``service_speech_end_t``
    the arrival of the last ``ServiceSpeechEnded`` (the service's ``userSpeechEnd``, docs/PROTOCOL.md
    §12) in ``(prev, anchor]``, same anchor: the service's own view of the end of speech. ``None`` when
    the service sent none (Nova Sonic v1, the emulator's older engines). A third definition beside the
    two client-side ones; it never replaces ``speech_end_t``.
``heard_t``
    ``t - played_s`` of the first ``PlaybackReported`` of the turn with ``played_s > 0``.
``response_s = first_audio_t - speech_end_t``; ``decision_to_audio_s = first_audio_t - decision_t``;
``service_response_s = first_audio_t - service_speech_end_t``; ``audio_to_heard_s = heard_t - first_audio_t``.

Times are on whatever clock the events carry: ``time.monotonic()`` live, the recording clock ``t``
for a recording.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from ..audio import EnergySpeechDetector
from ..audio.speech import SPEECH_ENDED
from . import events as ev

__all__ = ["INPUT_ENERGY", "TurnBuilder", "TurnRecord"]

#: ``speech_end_source`` of speech ends found by the energy detector (nova_nb.audio.speech) in the
#: input frames as sent: the client's view of "end of speech". A builder keeps only the marks of its own
#: source, so figures never mix sources; the service's ``userSpeechEnd`` is not a source here but its
#: own field (``service_speech_end_t``), so both figures can be read side by side.
INPUT_ENERGY: Final = "input_energy"


def _joined(text: str, more: str) -> str:
    """Sentences arrive one text event each ("I heard you." then "This is ..."): join with a space."""
    if text and more and not text[-1].isspace() and not more[0].isspace():
        return f"{text} {more}"
    return text + more


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@dataclass
class TurnRecord:
    """One assistant reply and its timing. Times are on the clock of the events that built it."""

    content_id: str
    index: int = 0
    first_audio_t: float | None = None
    last_audio_t: float | None = None
    speech_end_t: float | None = None
    speech_end_source: str | None = None
    service_speech_end_t: float | None = None
    decision_t: float | None = None
    heard_t: float | None = None
    end_t: float | None = None
    stop_reason: str | None = None
    interrupted: bool = False
    played_s: float = 0.0
    reply_audio_s: float = 0.0
    user_text: str | None = None
    speculative_text: str = ""
    reply_text: str = ""
    sample_rate: int = 24000
    audio: list[bytes] = field(default_factory=list, repr=False)
    #: How many SPECULATIVE and FINAL assistant texts arrived. The service sends one of each per
    #: sentence, the FINAL ones paced to when playback of that sentence would end (docs/PROTOCOL.md
    #: §12), so a reply's text is complete once the counts match (never, for an interrupted reply).
    speculative_texts: int = 0
    final_texts: int = 0

    @property
    def texts_complete(self) -> bool:
        """Every sentence announced SPECULATIVE has arrived FINAL."""
        return self.final_texts >= self.speculative_texts

    @property
    def playback_end_t(self) -> float | None:
        """When a player that started at the first chunk and played in real time would finish."""
        return None if self.first_audio_t is None else self.first_audio_t + self.reply_audio_s

    # -- latency ---------------------------------------------------------------------------------

    @property
    def response_s(self) -> float | None:
        """End of the user's speech → first audio of the reply (includes the endpointing pause)."""
        return _diff(self.first_audio_t, self.speech_end_t)

    @property
    def decision_to_audio_s(self) -> float | None:
        """The model's turn decision (USER FINAL transcript) → first audio."""
        return _diff(self.first_audio_t, self.decision_t)

    @property
    def service_response_s(self) -> float | None:
        """The service's end of speech (``userSpeechEnd`` received) → first audio (§12)."""
        return _diff(self.first_audio_t, self.service_speech_end_t)

    @property
    def audio_to_heard_s(self) -> float | None:
        """First audio received → it started to sound in a player."""
        return _diff(self.heard_t, self.first_audio_t)

    # -- the reply's audio -------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        """Seconds of reply audio received."""
        return max(self.reply_audio_s, sum(len(a) for a in self.audio) / 2 / self.sample_rate)

    @property
    def reply_audio(self) -> npt.NDArray[np.int16]:
        """The reply's samples (empty unless the builder kept audio)."""
        return np.frombuffer(b"".join(self.audio), dtype="<i2").astype(np.int16)

    def heard_audio(self) -> bytes:
        """The reply as the user heard it: cut where playback stopped if it was interrupted."""
        pcm = b"".join(self.audio)
        if self.interrupted and self.played_s > 0:
            pcm = pcm[: 2 * int(self.played_s * self.sample_rate)]
        return pcm

    def wav_bytes(self, heard: bool = False) -> bytes:
        """The reply as a WAV file: all of it, or (``heard=True``) what was played before a barge-in."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.sample_rate)
            out.writeframes(self.heard_audio() if heard else b"".join(self.audio))
        return buffer.getvalue()

    # -- the names talk() has always used --------------------------------------------------------

    @property
    def ended_t(self) -> float | None:
        return self.end_t

    @property
    def reply_duration_s(self) -> float:
        return self.duration_s

    @property
    def end_of_speech_to_first_audio_s(self) -> float | None:
        return self.response_s

    @property
    def decision_to_first_audio_s(self) -> float | None:
        return self.decision_to_audio_s

    @property
    def end_of_speech_at(self) -> float | None:
        return self.speech_end_t

    @property
    def decided_at(self) -> float | None:
        return self.decision_t

    @property
    def first_audio_at(self) -> float | None:
        return self.first_audio_t

    @property
    def last_audio_at(self) -> float | None:
        return self.last_audio_t


class TurnBuilder:
    """Builds :class:`TurnRecord` s incrementally (definitions: module docstring).

    Parameters
    ----------
    keep_audio : bool
        Keep each reply's audio bytes in :attr:`TurnRecord.audio` (live); a recording's lines carry none.
    speech_end_source : str
        The source of speech-end marks to use; marks from other sources are ignored.
    detector : EnergySpeechDetector, optional
        What :meth:`input_audio` uses to find speech ends (default: the standard energy detector).
    """

    def __init__(
        self,
        *,
        keep_audio: bool = True,
        speech_end_source: str = INPUT_ENERGY,
        detector: EnergySpeechDetector | None = None,
    ) -> None:
        self.keep_audio = keep_audio
        self.speech_end_source = speech_end_source
        self.detector = detector or EnergySpeechDetector()
        self.turns: list[TurnRecord] = []
        self.by_content_id: dict[str, TurnRecord] = {}
        self.last_speech_end: float | None = None
        self._prev_first_audio = -float("inf")
        self._marks: list[float] = []  # speech ends after the last turn's first audio
        self._service_marks: list[float] = []  # ServiceSpeechEnded arrivals, likewise
        self._decision: tuple[float, str] | None = None
        self._speculative = ""
        self._speculative_count = 0
        self._partial: TurnRecord | None = None  # a turn whose last AUDIO block ended PARTIAL_TURN

    @property
    def current(self) -> TurnRecord | None:
        """The latest turn, if any."""
        return self.turns[-1] if self.turns else None

    # -- input ------------------------------------------------------------------------------------

    def input_audio(self, frame: bytes | npt.NDArray[np.int16], t: float, sample_rate: int) -> None:
        """An input frame as sent, starting at ``t``: its level feeds the detector's speech ends."""
        for kind, at in self.detector.push(frame, t, sample_rate):
            if kind == SPEECH_ENDED:
                self.speech_ended(at, INPUT_ENERGY)

    def speech_ended(self, t: float, source: str = INPUT_ENERGY) -> None:
        """The user's speech ended at ``t`` (according to ``source``)."""
        if source != self.speech_end_source:
            return
        self.last_speech_end = t if self.last_speech_end is None else max(t, self.last_speech_end)
        if t > self._prev_first_audio:
            self._marks.append(t)

    def service_speech_ended(self, t: float) -> None:
        """The service said the user's speech ended (``ServiceSpeechEnded`` arrived at ``t``).

        Kept apart from :meth:`speech_ended`'s marks whatever their source: it feeds
        ``service_speech_end_t`` only.
        """
        if t > self._prev_first_audio:
            self._service_marks.append(t)

    # -- session events ---------------------------------------------------------------------------

    def feed(self, event: ev.Event) -> TurnRecord | None:
        """Apply one typed session event; returns the turn it touched, if any."""
        if isinstance(event, ev.AudioOutput):
            audio = event.audio if self.keep_audio else b""
            return self.audio(event.timestamp, event.content_id, event.duration_s, event.sample_rate, audio)
        if isinstance(event, ev.Transcript):
            return self.transcript(event.timestamp, event.role, event.stage, event.text)
        if isinstance(event, ev.PlaybackReported):
            return self.playback(event.timestamp, event.content_id, event.played_s)
        if isinstance(event, ev.Interruption):
            return self.interruption(event.content_id)
        if isinstance(event, ev.ServiceSpeechEnded):
            self.service_speech_ended(event.timestamp)
            return None
        if isinstance(event, ev.ContentEnded) and event.type == "AUDIO" and event.role == "ASSISTANT":
            return self.audio_ended(event.timestamp, event.content_id, event.stop_reason)
        return None

    def feed_all(self, events: Sequence[ev.Event]) -> list[TurnRecord]:
        for event in events:
            self.feed(event)
        return self.turns

    def audio(
        self, t: float, content_id: str, duration_s: float, sample_rate: int, audio: bytes = b""
    ) -> TurnRecord:
        """A chunk of reply audio arrived at ``t``."""
        turn = self.by_content_id.get(content_id)
        if turn is None and self._partial is not None and self._decision is None:
            turn = self.by_content_id[content_id] = self._partial  # the next block of the same reply
        if turn is None:
            turn = self._open(t, content_id, sample_rate)
        self._partial = None
        turn.last_audio_t = t
        turn.reply_audio_s += duration_s
        if audio:
            turn.audio.append(audio)
        return turn

    def _open(self, t: float, content_id: str, sample_rate: int) -> TurnRecord:
        decision = self._decision
        anchor = decision[0] if decision is not None else t
        ends = [m for m in self._marks if m <= anchor]
        service_ends = [m for m in self._service_marks if m <= anchor]
        turn = TurnRecord(
            content_id,
            len(self.turns),
            first_audio_t=t,
            speech_end_t=max(ends) if ends else None,
            speech_end_source=self.speech_end_source if ends else None,
            service_speech_end_t=max(service_ends) if service_ends else None,
            decision_t=decision[0] if decision is not None else None,
            user_text=decision[1] if decision is not None else None,
            speculative_text=self._speculative,
            speculative_texts=self._speculative_count,
            sample_rate=sample_rate,
        )
        self.turns.append(turn)
        self.by_content_id[content_id] = turn
        self._prev_first_audio = t
        self._marks = [m for m in self._marks if m > t]
        self._service_marks = [m for m in self._service_marks if m > t]
        self._decision = None
        self._speculative = ""
        self._speculative_count = 0
        return turn

    def transcript(self, t: float, role: str, stage: str | None, text: str) -> TurnRecord | None:
        """A transcript: a USER one is the turn decision; ASSISTANT ones are the reply's text."""
        if role == "USER":
            if stage in ("FINAL", None):
                self._decision = (t, text)
            return None
        if role != "ASSISTANT":
            return None
        turn = self.current
        if stage == "SPECULATIVE":
            # What the model is about to say: the next reply's, once a new turn has been decided.
            if turn is None or self._decision is not None:
                self._speculative = _joined(self._speculative, text)
                self._speculative_count += 1
                return None
            turn.speculative_text = _joined(turn.speculative_text, text)
            turn.speculative_texts += 1
        elif turn is not None:
            turn.reply_text = _joined(turn.reply_text, text)
            turn.final_texts += 1
        return turn

    def playback(self, t: float, content_id: str, played_s: float) -> TurnRecord | None:
        """A player reported ``played_s`` seconds of ``content_id`` played by ``t``."""
        turn = self.by_content_id.get(content_id)
        if turn is not None:
            turn.played_s = max(turn.played_s, played_s)
            if turn.heard_t is None and played_s > 0:
                turn.heard_t = t - played_s
        return turn

    def interruption(self, content_id: str | None) -> TurnRecord | None:
        """The user barged in on ``content_id`` (the latest reply when the signal names none)."""
        turn = self.by_content_id.get(content_id) if content_id else self.current
        if turn is not None:
            turn.interrupted = True
        return turn

    def audio_ended(self, t: float, content_id: str, stop_reason: str | None) -> TurnRecord | None:
        """The reply's audio content ended (END_TURN, or INTERRUPTED on a barge-in); PARTIAL_TURN ends
        only a block: the reply goes on in the next one."""
        turn = self.by_content_id.get(content_id)
        if stop_reason == "PARTIAL_TURN":
            self._partial = turn if turn is not None and turn.end_t is None else None
            return turn
        if turn is not None and turn.end_t is None:
            turn.end_t = t
            turn.stop_reason = stop_reason
            turn.interrupted = turn.interrupted or stop_reason == "INTERRUPTED"
        return turn
