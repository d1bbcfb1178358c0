"""Typed session events: what ``session.events()`` yields.

Provider-agnostic and semantic (a transcript with its role and stage, an interruption, a turn end),
built by the provider's protocol layer from the wire events. Every event carries ``timestamp``: the
``time.monotonic()`` at which it arrived, the one clock all measurements in nova_nb use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Stage = Literal["SPECULATIVE", "FINAL"]


@dataclass(frozen=True, kw_only=True)
class Event:
    timestamp: float

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class SessionStarted(Event):
    """The stream is open and the setup events (system prompt, history, audio block) were queued."""

    prompt_name: str
    model_id: str
    voice_id: str


@dataclass(frozen=True, kw_only=True)
class CompletionStarted(Event):
    session_id: str
    completion_id: str


@dataclass(frozen=True, kw_only=True)
class ServiceSpeechStarted(Event):
    """The service says the user started speaking (``userSpeechStart``, Nova 2 and 2.5; §12).

    The service's own voice activity detection, not the recorder's energy detector (whose lines are
    ``UserSpeechStarted``/``UserSpeechEnded``). ``input_audio_offset_ms`` counts input audio from the
    start of the stream, so it is on the stream's audio clock, not ``timestamp``'s. Every field but
    ``timestamp`` may be None: the event is undocumented and parsed leniently; ``raw`` keeps the body.
    """

    input_audio_offset_ms: float | None = None
    prompt_name: str | None = None
    session_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ServiceSpeechEnded(Event):
    """The service says the user stopped speaking (``userSpeechEnd``; §12).

    ``input_audio_offset_ms`` is where speech ended in the input audio, ``detection_offset_ms``
    (``inputAudioDetectionOffsetMs``) where in the input audio the service had decided so (280–600 ms
    later at MEDIUM, §12). ``timestamp`` is when the event arrived: the service's end of speech as the
    client sees it, the start of its "service end of speech → first audio" figure (``s2s.turns``).
    """

    input_audio_offset_ms: float | None = None
    detection_offset_ms: float | None = None
    prompt_name: str | None = None
    session_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Transcript(Event):
    """Text from the model: the user's speech as recognised (USER), or the reply (ASSISTANT).

    SPECULATIVE is what the model is about to say; FINAL is what was actually spoken.
    """

    role: str
    text: str
    stage: Stage | None
    content_id: str
    completion_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class AudioOutput(Event):
    """One audioOutput event (the same audio ``receive_audio()`` hands out, unless dropped)."""

    audio: bytes = field(repr=False)
    content_id: str
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / 2 / self.sample_rate


@dataclass(frozen=True, kw_only=True)
class ToolUse(Event):
    tool_name: str
    tool_use_id: str
    arguments: dict[str, Any]
    content_id: str


@dataclass(frozen=True, kw_only=True)
class ToolResultSent(Event):
    tool_use_id: str
    result: Any


@dataclass(frozen=True, kw_only=True)
class Interruption(Event):
    """The user spoke over the reply (barge-in). The session dropped audio it had not handed out.

    ``signal`` is which of the two service signals arrived first: ``"stopReason"`` (a contentEnd with
    stopReason INTERRUPTED) or ``"marker"`` (a textOutput of ``{ "interrupted" : true }``).
    """

    content_id: str | None
    signal: Literal["stopReason", "marker"]
    dropped_bytes: int = 0


@dataclass(frozen=True, kw_only=True)
class ContentEnded(Event):
    """A content block ended. For ASSISTANT AUDIO, END_TURN/INTERRUPTED marks the end of a spoken turn."""

    content_id: str
    type: str
    role: str | None
    stop_reason: str | None


@dataclass(frozen=True, kw_only=True)
class Usage(Event):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CompletionEnded(Event):
    completion_id: str
    stop_reason: str | None


@dataclass(frozen=True, kw_only=True)
class StreamErrorEvent(Event):
    """The stream failed. ``code`` is the service's exception type or a local code (e.g. StreamReset)."""

    code: str
    message: str
    recoverable: bool


@dataclass(frozen=True, kw_only=True)
class ProtocolViolation(Event):
    """The service sent an output event out of the documented order (docs/PROTOCOL.md §4).

    Informational: the session keeps running and the event itself is still handled. ``event`` is the
    event's name, ``state`` where the order machine was, ``expected`` what would have been valid.
    """

    event: str
    state: str
    expected: str
    message: str


@dataclass(frozen=True, kw_only=True)
class SessionClosed(Event):
    """The session ended: ``reason`` is "closed" (by the client), "ended" (by the service) or "error"."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class Reconnecting(Event):
    """A recoverable failure (or the stream limit): the session is opening a new stream.

    ``attempt`` counts failures in a row; ``delay_s`` is the backoff before this attempt. Also published
    for each retry of a first open the service throttled (before ``SessionStarted``).
    """

    code: str
    message: str
    attempt: int
    delay_s: float


@dataclass(frozen=True, kw_only=True)
class SessionRenewed(Event):
    """A new stream took over: ``reason`` is "continuation" (before the 8-minute limit) or "reconnect".

    The new stream got the conversation so far as history (``history_messages``) and the last
    ``replayed_s`` seconds of user audio, so nothing the user said is lost.
    """

    reason: str
    prompt_name: str
    previous_prompt_name: str
    history_messages: int
    replayed_s: float
    held_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class AudioDropped(Event):
    """Output audio was dropped because the consumer fell more than ``output_buffer_s`` behind."""

    dropped_bytes: int
    buffered_s: float


@dataclass(frozen=True, kw_only=True)
class PlaybackReported(Event):
    """A player said how much of a reply it has actually played (``session.report_playback``).

    ``played_s`` counts seconds of that reply's audio heard so far; ``timestamp`` is when it was heard.
    """

    content_id: str
    played_s: float
    final: bool = False


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An output event this version does not know. Passed through rather than dropped."""

    name: str
    payload: dict[str, Any]
