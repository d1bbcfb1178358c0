"""The emulator's side of one stream: validate input, detect turns in audio time, answer in sequence.

:class:`Conversation` is the stream handler the wire server calls for every
``InvokeModelWithBidirectionalStream``. It validates each input event with the protocol's
:class:`~nova_nb.protocol.rules.InputValidator` (the service's exception
types and messages), tracks audio time (samples received, so a client streaming faster than real time
gets the same decisions), ends a user turn after the endpointing pause, and answers with the
structure of the real service (docs/PROTOCOL.md §4, §12, §13; public captures of Nova 2 sessions in
the repository redstarh/OhMyEnglish, ``tests/harness/runs``, 2026)::

    usageEvent (the system prompt) … userSpeechStart → completionStart (first turn only)
    → userSpeechEnd → USER TEXT FINAL (PARTIAL_TURN) → per sentence: ASSISTANT TEXT SPECULATIVE
    (PARTIAL_TURN) → ASSISTANT AUDIO (PARTIAL_TURN; the last one END_TURN), sent ~5× faster than real
    time → ASSISTANT TEXT FINAL per sentence, each when its playback would end … usageEvents throughout
    … completionEnd (after the client's promptEnd)

:class:`ServiceBehaviour` (``ConversationOptions.behaviour``) selects what the service is known to do
at barge-in and in odd cases; :data:`BEHAVIOURS` names the presets, ``"gentle"`` being the simpler
structure this emulator had first (one block per reply, END_TURN everywhere, no speech events).

What the "model" hears and says comes from a :class:`Brain`: :class:`ScriptedBrain` (no speech
models: it reports how long the user spoke and answers with a synthetic voice-like signal) or the
speech engine. Barge-in: user speech while the reply would still be playing (in audio time: the
reply's samples are laid out from the moment it started) stops generation, sends the interruption
signals the behaviour says (§5, §13.7), and the FINAL text covers only what was spoken.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import numpy as np

from ..audio import EnergySpeechDetector
from ..protocol import catalog, wire
from ..protocol.order import OutputOrder
from ..protocol.rules import InputValidator, PromptSettings, ServiceException
from .server import HttpError, RequestInfo, ServerStream

log = logging.getLogger("nova_nb.emulator")
#: One INFO line per input event the service rejects (``nova-nb emulator serve`` shows them on stderr).
rejections = logging.getLogger("nova_nb.emulator.rejected")

#: Nova 1 has no endpointing setting; the emulator uses the documented default (MEDIUM) for it.
NOVA1_PAUSE_S = catalog.ENDPOINTING_PAUSE_S["MEDIUM"]
#: Speech shorter than this is a click or a cough, not a turn.
MIN_SPEECH_S = 0.15
#: Audio kept from before the detected onset, and after the last speech frame, for recognition.
PREROLL_S = 0.3
POSTROLL_S = 0.25
#: Silence after which the service says the user stopped speaking (userSpeechEnd): 280–600 ms after
#: the end of speech in captures at MEDIUM sensitivity (docs/PROTOCOL.md §12); the middle of that
#: range. The turn itself is still decided after the documented endpointing pause.
SPEECH_END_DETECTION_S = 0.4
#: A client that sent no audio for this long has stopped streaming: from then on a reply's playback
#: is timed by the wall clock instead of by the audio received (which no longer advances). Shorter
#: pauses (a client busy elsewhere, a loaded machine) keep audio time, so results stay deterministic.
STOPPED_STREAMING_S = 2.0
#: Output audio is sent in chunks of about this length: the real service's average is ~2.6 KB, ~80 ms
#: at 16 kHz, sizes varying, the last one possibly tiny (docs/PROTOCOL.md §13.5; captures).
OUTPUT_CHUNK_S = 0.08
#: The message the service ends a stream at its limit with (docs/PROTOCOL.md §13.9, observed).
MODEL_TIMEOUT_MESSAGE: Final = "Model has timed out in processing the request. Try your request again."

BargeIn = Literal["both", "audio-end-turn", "marker-only", "late-interrupted"]
BARGE_IN_FORMS: Final[tuple[BargeIn, ...]] = ("both", "audio-end-turn", "marker-only", "late-interrupted")


@dataclass(frozen=True)
class ServiceBehaviour:
    """What the emulated service does, where the real one is known to vary or to differ from its docs.

    The default is the real service's structure as captured in 2026 (docs/PROTOCOL.md §12, §13 items
    1–6). ``barge_in`` picks one of the forms seen at barge-in (§5, §13.7):

    ``"both"``
        the AUDIO block still being generated ends ``INTERRUPTED``; the FINAL text of the sentence cut
        short carries the words heard and the marker ``{ "interrupted" : true }`` and ends
        ``INTERRUPTED`` [doc: AWS sonic-output-events; peer: aws-samples]. When generation had already
        finished (the usual case, at ~5× real time), the client sees the AUDIO block end ``END_TURN``
        and later the TEXT block ``INTERRUPTED``, as Pipecat's ``llm.py`` notes.
    ``"audio-end-turn"``
        no marker; an AUDIO block still open ends ``END_TURN``, then the TEXT block ``INTERRUPTED``
        (peer: Pipecat ``llm.py``, May 2026).
    ``"marker-only"``
        the marker is the only signal: no block ends ``INTERRUPTED`` (docs/PROTOCOL.md §5, §12; peer:
        BerriAI/litellm issue 38253).
    ``"late-interrupted"``
        the reply ends as if it had been played (``END_TURN``), then a ``contentEnd`` ``INTERRUPTED``
        comes for its last AUDIO block, already closed (peer: Strands ``bedrock.py``, 2026).
    """

    #: userSpeechStart/userSpeechEnd at the emulator's VAD decisions (§12, §13.1).
    speech_events: bool = True
    #: usageEvents from the setup on, cumulative, the first before completionStart (§13.2); False:
    #: one usageEvent at the end of each reply.
    usage_throughout: bool = True
    #: True: per sentence a SPECULATIVE TEXT → AUDIO pair ending PARTIAL_TURN (the last AUDIO block
    #: END_TURN), FINAL texts paced to playback and dropped if the prompt closes first, completionEnd
    #: at promptEnd (§13.3, §13.4). False: one pair per reply, the AUDIO block open until playback
    #: would end, then one FINAL text; completionEnd at sessionEnd.
    sentence_blocks: bool = True
    #: How USER text blocks end: PARTIAL_TURN on the service (§13.4; peer: Strands ``bedrock.py``).
    user_text_stop: str = "PARTIAL_TURN"
    #: Output audio pace, × real time (§13.5: ~5); 0 sends as fast as flow control allows.
    audio_speed: float = 5.0
    #: Chunks of varying size around :data:`OUTPUT_CHUNK_S` (§13.5); False: all of that size.
    varied_chunks: bool = True
    #: AUDIO contentStart's audioOutputConfiguration names the voice; the service's does not (§13.5).
    voice_id_in_audio_start: bool = False
    barge_in: BargeIn = "both"


#: The named presets (``nova-nb emulator serve --behaviour NAME``); each passes the output-order
#: machine (the emulator raises otherwise) and the provider's client handles each.
BEHAVIOURS: Final[dict[str, ServiceBehaviour]] = {
    "service": ServiceBehaviour(),
    "audio-end-turn": ServiceBehaviour(barge_in="audio-end-turn"),
    "marker-only": ServiceBehaviour(barge_in="marker-only"),
    "late-interrupted": ServiceBehaviour(barge_in="late-interrupted"),
    "no-speech-events": ServiceBehaviour(speech_events=False),
    # The structure of the documentation's reading, which this emulator sent first.
    "gentle": ServiceBehaviour(
        speech_events=False,
        usage_throughout=False,
        sentence_blocks=False,
        user_text_stop="END_TURN",
        audio_speed=0.0,
        varied_chunks=False,
        voice_id_in_audio_start=True,
    ),
}


class TurnDetector(Protocol):
    """Decides speech vs silence per frame of 16-bit mono PCM."""

    def is_speech(self, frame: np.ndarray, sample_rate: int) -> bool: ...


class Brain(Protocol):
    """What the emulated model hears and says."""

    def transcribe(self, pcm: np.ndarray, sample_rate: int, settings: PromptSettings) -> str: ...

    def reply(self, user_text: str, settings: PromptSettings) -> str: ...

    def speak(self, text: str, settings: PromptSettings) -> Iterator[np.ndarray]:
        """Yield 16-bit PCM at ``settings.output_sample_rate``, in chunks, faster than real time."""
        ...


class ScriptedBrain:
    """A brain without speech models: deterministic, instant, and honest about it.

    It transcribes a turn as the duration of speech it heard, answers with a sentence saying so, and
    "speaks" with a voice-like signal (a harmonic tone per syllable) whose length follows the text.
    """

    def __init__(self, responder: Callable[..., str] | None = None) -> None:
        self.responder = responder
        self.turn = 0

    def transcribe(self, pcm: np.ndarray, sample_rate: int, settings: PromptSettings) -> str:
        return f"({pcm.size / sample_rate:.1f} seconds of speech)"

    def reply(self, user_text: str, settings: PromptSettings) -> str:
        self.turn += 1
        if self.responder is not None:
            from .responder import ReplyContext, call_responder

            context = ReplyContext(
                settings.system_prompt, tuple(settings.history), self.turn, settings.voice_id
            )
            return call_responder(self.responder, user_text, context)
        return f"I heard you. This is the emulator answering {user_text}."

    def speak(self, text: str, settings: PromptSettings) -> Iterator[np.ndarray]:
        rate = settings.output_sample_rate
        syllable = int(0.18 * rate)
        t = np.arange(syllable) / rate
        envelope = np.sin(np.pi * np.arange(syllable) / syllable) ** 2
        voice = catalog.ALL_VOICES.get(settings.voice_id)
        base = 110.0 if voice is not None and voice.gender == "masculine" else 200.0
        for i, word in enumerate(text.split()):
            f0 = base * (1.0 + 0.08 * ((i * 7) % 5))
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
            yield (0.25 * 32767 * envelope * tone / 1.8).astype(np.int16)
            if word.endswith((".", ",", "?", "!")):
                yield np.zeros(int(0.12 * rate), dtype=np.int16)


@dataclass
class Faults:
    """Failures to inject, for tests and experiments. All off by default."""

    #: Close the stream with modelTimeoutException after this many seconds (the service: 8 minutes).
    session_limit_s: float = catalog.STREAM_MAX_SECONDS
    #: Answer with this in-stream exception right after the Nth input event (1-based).
    exception_at_event: tuple[int, str, str] | None = None
    #: RST_STREAM after the Nth input event.
    reset_at_event: int | None = None
    #: Drop the TCP connection after the Nth input event.
    drop_at_event: int | None = None
    #: Wait this long before the first audio of each reply.
    first_audio_delay_s: float = 0.0
    #: Wait this long before each later sentence of a reply (its SPECULATIVE text and AUDIO block): a
    #: model, or a loaded machine, that is slow between sentences while the turn is not over.
    sentence_gap_s: float = 0.0
    #: End the stream if no input event arrives for this long. The service does this too ("Timed out
    #: waiting for input events", docs/PROTOCOL.md §8); its exact limit is not documented, so the
    #: default here is an assumption, and the exception type (validationException) is too.
    input_timeout_s: float = 60.0
    #: Refuse the call at the HTTP level (e.g. HttpError(429, "ThrottlingException", "...")).
    http_error_at_open: HttpError | None = None
    #: Apply the in-stream faults above (exception, reset, drop, session limit) to the first N
    #: streams only (None: to every stream), so a client's recovery can be seen succeeding.
    faulty_streams: int | None = None
    #: Streams started so far with these faults (shared by the conversations that use them).
    streams_started: int = 0

    def applies_to(self, stream_number: int) -> bool:
        return self.faulty_streams is None or stream_number < self.faulty_streams


@dataclass
class ConversationOptions:
    brain_factory: Callable[[], Brain] = ScriptedBrain
    #: The scripted engine hears with the one energy detector (frame RMS above its threshold); the
    #: speech engine uses Silero.
    detector_factory: Callable[[], TurnDetector] = EnergySpeechDetector
    faults: Faults = field(default_factory=Faults)
    #: Phrases that make the model call a tool: {"weather like": "getWeather"}. Besides these, a
    #: turn that contains all the words of a configured tool's name calls it.
    tool_phrases: dict[str, str] = field(default_factory=dict)
    #: How long the model waits for the client's toolResult before answering without it.
    tool_result_timeout_s: float = 30.0
    #: Called when a stream ends with its figures: samples received, events, history, turns.
    on_stream_end: Callable[[dict[str, Any]], None] | None = None
    #: Called with each finished conversation's transcript, for tests and the CLI.
    on_turn: Callable[[dict[str, Any]], None] | None = None
    #: What the service does where it varies (see :class:`ServiceBehaviour`, :data:`BEHAVIOURS`).
    behaviour: ServiceBehaviour = field(default_factory=ServiceBehaviour)
    #: Called with (input event name, exception type, message) for each input the service rejects.
    on_rejected: Callable[[str, str, str], None] | None = None


@dataclass
class _Reply:
    """One reply and where it is in time. Audio time is counted in input samples."""

    content_id: str
    start_sample: int  # input-audio time at which the reply (notionally) starts playing
    start_wall: float
    text: str = ""
    total_out_samples: int | None = None  # known once synthesis finished
    sent_out_samples: int = 0
    first_audio_wall: float | None = None  # when the first audioOutput went out (for pacing)
    heard_out_samples: int | None = None  # set on barge-in: how much of the reply the user heard
    interrupted: bool = False
    closed: bool = False  # the client ended the prompt: nothing more of this reply is sent
    tick: asyncio.Event = field(default_factory=asyncio.Event)  # input audio arrived (audio time moved)
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # playback over or interrupted
    task: asyncio.Task[None] | None = None


class OutputSide:
    """What every emulator engine needs to answer on a stream: the service's ids, one completion,
    and sends that never interleave (each engine may send from several tasks)."""

    def __init__(self) -> None:
        self.session_id = str(uuid.uuid4())
        # The id exists before completionStart: usageEvents sent earlier already carry it (§13.2).
        self.completion_id = str(uuid.uuid4())
        self.completion_started = False
        self.completion_ended = False
        self.validator: InputValidator | None = None
        self.stream: ServerStream | None = None
        self._send_lock = asyncio.Lock()
        # Every event sent passes the output-order machine the client checks with
        # (docs/PROTOCOL.md §4): an emulator that sends out of order is a bug, so this raises.
        self.order = OutputOrder(allow_unknown=False)

    def _ids(self) -> dict[str, Any]:
        assert self.validator is not None
        return {
            "session_id": self.session_id,
            "prompt_name": self.validator.settings.prompt_name,
            "completion_id": self.completion_id,
        }

    async def _send(self, event: dict[str, Any]) -> None:
        assert self.stream is not None
        async with self._send_lock:
            self.order.require_event(event)
            await self.stream.send_event(event)

    def _completion_start(self) -> dict[str, Any] | None:
        """The prompt's one completionStart, the first time it is asked for (§13.3)."""
        if self.completion_started:
            return None
        self.completion_started = True
        return wire.completion_start(**self._ids())

    async def _ensure_completion(self) -> None:
        event = self._completion_start()
        if event is not None:
            await self._send(event)

    async def _end_completion(self) -> None:
        """completionEnd (END_TURN) at the end of the session, if a completion started.

        A reply stopped mid-block (the client left) would leave its block open, and the order wants
        every block closed before completionEnd (docs/PROTOCOL.md §4): close it first, with END_TURN,
        as the service ends an AUDIO block that was cut short (Pipecat's client code notes this).
        """
        if not self.completion_started or self.completion_ended:
            return
        self.completion_ended = True
        ids = self._ids()
        for cid, block in list(self.order.open_blocks.items()):
            end = wire.output_content_end(**ids, content_id=cid, type=block.type, stop_reason="END_TURN")
            await self._send(end)
        await self._send(wire.completion_end(**ids, stop_reason="END_TURN"))


class Conversation(OutputSide):
    """Handles one stream. ``await Conversation(options).run(stream)``."""

    def __init__(self, options: ConversationOptions | None = None) -> None:
        super().__init__()
        self.options = options or ConversationOptions()
        self.brain = self.options.brain_factory()
        self.detector = self.options.detector_factory()
        self.faults = self.options.faults
        # Audio time.
        self.samples_received = 0
        self._last_input_wall = time.monotonic()  # when the last audio frame arrived
        self._speech_samples = 0
        self._silence_samples = 0
        self._turn_audio: list[np.ndarray] = []
        self._preroll: deque[np.ndarray] = deque()
        self._in_speech = False
        self._speech_end_sent = False  # userSpeechEnd already sent for the current stretch of speech
        self.reply: _Reply | None = None
        self.turns: list[dict[str, Any]] = []
        self._usage_in = {"speechTokens": 0, "textTokens": 0}
        self._usage_out = {"speechTokens": 0, "textTokens": 0}
        self._events_in = 0
        self._pending_text: dict[str, list[str]] = {}
        # Speculative recognition: started when silence begins, used if the turn ends there.
        self._early_asr: tuple[int, asyncio.Future[str]] | None = None
        self._tool_results: dict[str, asyncio.Future[str]] = {}
        self._open_tool_blocks: dict[str, str] = {}
        self.behaviour = self.options.behaviour
        # Events decided while handling input (speech boundaries), sent before anything else.
        self._outbox: list[dict[str, Any]] = []
        self._setup_counted = False
        # Chunk sizes vary as the service's do (§13.5), the same way on every run.
        self._chunk_rng = random.Random(0)

    # -- output helpers ------------------------------------------------------------------------

    async def _text_block(self, role: str, stage: str, text: str, stop: str = "END_TURN") -> None:
        cid = str(uuid.uuid4())
        await self._send(
            wire.output_content_start(
                **self._ids(), content_id=cid, type="TEXT", role=role, generation_stage=stage
            )
        )
        await self._send(wire.text_output(**self._ids(), content_id=cid, role=role, content=text))
        await self._send(
            wire.output_content_end(**self._ids(), content_id=cid, type="TEXT", stop_reason=stop)
        )

    # -- the stream ----------------------------------------------------------------------------

    async def run(self, stream: ServerStream) -> None:
        self.stream = stream
        self.validator = InputValidator(stream.info.model_id)
        self.stream_number = self.faults.streams_started
        self.faults.streams_started += 1
        self.faulty = self.faults.applies_to(self.stream_number)
        try:
            await self._run(stream)
        finally:
            if self.options.on_stream_end is not None:
                self.options.on_stream_end(
                    {
                        "stream_number": self.stream_number,
                        "samples_received": self.samples_received,
                        "events_received": self._events_in,
                        "history": list(self.validator.settings.history),
                        "turns": list(self.turns),
                    }
                )

    async def _run(self, stream: ServerStream) -> None:
        assert self.validator is not None
        limit = self.faults.session_limit_s if self.faulty else catalog.STREAM_MAX_SECONDS
        deadline = time.monotonic() + limit
        try:
            while True:
                remaining = deadline - time.monotonic()
                receive = asyncio.ensure_future(stream.receive())
                wait_s = min(max(remaining, 0), self.faults.input_timeout_s)
                done, _ = await asyncio.wait({receive}, timeout=wait_s)
                if not done:
                    receive.cancel()
                    await self._stop_reply()
                    if time.monotonic() >= deadline:
                        # The service ends a stream at its limit with modelTimeoutException (§1).
                        await stream.send_exception("modelTimeoutException", MODEL_TIMEOUT_MESSAGE)
                    else:
                        await stream.send_exception(
                            "validationException", "Timed out waiting for input events"
                        )
                    return
                raw = receive.result()
                if raw is None:
                    break
                self._events_in += 1
                if await self._inject_fault():
                    return
                try:
                    event = self.validator.receive(raw)
                except ServiceException as exc:
                    log_rejection(raw, exc)
                    if self.options.on_rejected is not None:
                        self.options.on_rejected(_event_name(raw), exc.exception_type, exc.message)
                    await self._stop_reply()
                    await stream.send_exception(exc.exception_type, exc.message)
                    return
                await self._handle(event.name, event.body, event)
                if not stream.response_opened and self.validator.stage not in ("start", "session"):
                    # sessionStart and promptStart are in: the service opens its response now (§12).
                    stream.open_response()
                if self.validator.stage == "ended":
                    break
            await self._finish()
        finally:
            await self._stop_reply()

    async def _inject_fault(self) -> bool:
        f, n, stream = self.faults, self._events_in, self.stream
        assert stream is not None
        if not self.faulty:
            return False
        if f.exception_at_event and f.exception_at_event[0] == n:
            await stream.send_exception(f.exception_at_event[1], f.exception_at_event[2])
            return True
        if f.reset_at_event == n:
            await stream.reset()
            return True
        if f.drop_at_event == n:
            await stream.drop_connection()
            return True
        return False

    async def _close_prompt(self) -> None:
        """promptEnd: what the reply has not sent yet is never sent (its FINAL texts, §13.4); the
        completion ends now, after the client's promptEnd, not before (§13.3)."""
        reply = self.reply
        if reply is not None and reply.task is not None and not reply.task.done():
            reply.closed = True
            reply.finished.set()
            reply.tick.set()
            await asyncio.wait({reply.task}, timeout=10)
        await self._end_completion()

    async def _finish(self) -> None:
        """Client sent sessionEnd (or ended input): finish the reply, close the completion, end."""
        if self.reply is not None and self.reply.task is not None:
            # The client is leaving: nobody is listening to the rest of the reply.
            self.reply.finished.set()
            await asyncio.wait({self.reply.task}, timeout=10)
        await self._end_completion()

    async def _handle(self, name: str, body: dict[str, Any], event: Any) -> None:
        if name == wire.AUDIO_INPUT:
            self._on_audio(np.frombuffer(wire.decode_audio(body), dtype="<i2"))
            # Speech boundaries decided on this frame go out now, before the reply it may have
            # started sends anything: the send lock is taken in this order (§12 order).
            while self._outbox:
                await self._send(self._outbox.pop(0))
        elif name == wire.CONTENT_START and event.content_type == "AUDIO" and not self._setup_counted:
            # The setup is in: the service's first usageEvent counts the system prompt and history,
            # before any completionStart (§13.2).
            self._setup_counted = True
            if self.behaviour.usage_throughout:
                settings = self.validator.settings if self.validator is not None else None
                texts = [settings.system_prompt, *(t for _, t in settings.history)] if settings else []
                await self._usage({"textTokens": sum(_text_tokens(t) for t in texts)}, {})
        elif name == wire.PROMPT_END and self.behaviour.sentence_blocks:
            await self._close_prompt()
        elif name == wire.TEXT_INPUT and event.interactive and event.role == "USER":
            self._pending_text.setdefault(body["contentName"], []).append(body["content"])
        elif name == wire.CONTENT_END and body.get("contentName") in self._pending_text:
            text = "".join(self._pending_text.pop(body["contentName"]))
            self._interrupt(self.samples_received)  # typed input barges in like speech
            self._start_reply(text, typed=True)
        elif name == wire.CONTENT_START and event.content_type == "TOOL":
            self._open_tool_blocks[body["contentName"]] = body["toolResultInputConfiguration"]["toolUseId"]
        elif name == wire.TOOL_RESULT:
            tool_use_id = self._open_tool_blocks.get(body["contentName"], "")
            future = self._tool_results.get(tool_use_id)
            if future is not None and not future.done():
                future.set_result(body["content"])

    # -- turn taking in audio time -------------------------------------------------------------

    def _pause_s(self) -> float:
        assert self.validator is not None
        sensitivity = self.validator.settings.endpointing_sensitivity
        return catalog.ENDPOINTING_PAUSE_S[sensitivity] if sensitivity else NOVA1_PAUSE_S

    def _on_audio(self, frame: np.ndarray) -> None:
        assert self.validator is not None
        rate = self.validator.settings.input_sample_rate
        speech = self.detector.is_speech(frame, rate)
        self.samples_received += frame.size
        self._last_input_wall = time.monotonic()
        in_turn = self._in_speech or self._speech_samples > 0
        if speech:
            if not in_turn:
                # Onset: a detector flags speech a window or two late, so the turn starts with the
                # audio just before it (otherwise first consonants are lost to the recogniser).
                self._turn_audio = list(self._preroll)
                self._preroll.clear()
            if self._speech_end_sent and self.behaviour.speech_events:
                # The user spoke again before the turn was decided: the service reports a new start.
                self._speech_end_sent = False
                self._outbox.append(
                    wire.user_speech_start(
                        session_id=self.session_id,
                        prompt_name=self.validator.settings.prompt_name,
                        input_audio_offset_ms=_ms(self.samples_received - frame.size, rate),
                    )
                )
            self._silence_samples = 0
            self._speech_samples += frame.size
            if not self._in_speech and self._speech_samples >= MIN_SPEECH_S * rate:
                self._in_speech = True
                onset = self.samples_received - self._speech_samples
                if self.behaviour.speech_events:
                    # userSpeechStart at the VAD's decision, with where the speech began; the prompt's
                    # one completionStart follows the first one (§12, §13.1, §13.3).
                    self._outbox.append(
                        wire.user_speech_start(
                            session_id=self.session_id,
                            prompt_name=self.validator.settings.prompt_name,
                            input_audio_offset_ms=_ms(onset, rate),
                        )
                    )
                    start = self._completion_start()
                    if start is not None:
                        self._outbox.append(start)
                # Barge-in onset: where the speech began, in audio time.
                self._interrupt(onset)
        elif in_turn:
            self._silence_samples += frame.size
        if speech or in_turn:
            self._turn_audio.append(frame)
        else:
            self._preroll.append(frame)
            while sum(f.size for f in self._preroll) - self._preroll[0].size >= PREROLL_S * rate:
                self._preroll.popleft()
        self._check_playback_end()
        if self.reply is not None:
            self.reply.tick.set()
        if not speech and self._speech_samples and not self._in_speech and self._silence_samples > 0.3 * rate:
            # A blip too short to be speech: forget it.
            self._reset_turn()
            return
        if not self._in_speech:
            return
        if (
            not speech
            and not self._speech_end_sent
            and self._silence_samples >= SPEECH_END_DETECTION_S * rate
        ):
            self._send_speech_end(rate)
        postroll = int(POSTROLL_S * rate)
        if not speech and self._silence_samples - frame.size < postroll <= self._silence_samples:
            self._start_early_asr(rate, self._turn_length(postroll))
        if self._silence_samples >= self._pause_s() * rate:
            length = self._turn_length(postroll)
            pcm = np.concatenate(self._turn_audio)[:length]
            early = self._early_asr
            if not self._speech_end_sent:
                self._send_speech_end(rate)
            self._reset_turn()
            transcript = early[1] if early is not None and early[0] == length else None
            self._start_reply(pcm, typed=False, transcript=transcript)

    def _turn_length(self, postroll: int) -> int:
        """Samples of the turn to recognise: up to the last speech plus the post-roll."""
        total = sum(f.size for f in self._turn_audio)
        return total - self._silence_samples + min(self._silence_samples, postroll)

    def _send_speech_end(self, rate: int) -> None:
        """userSpeechEnd: where the speech ended, and where it was detected (§12, §13.1)."""
        assert self.validator is not None
        self._speech_end_sent = True
        if self.behaviour.speech_events:
            self._outbox.append(
                wire.user_speech_end(
                    session_id=self.session_id,
                    prompt_name=self.validator.settings.prompt_name,
                    input_audio_offset_ms=_ms(self.samples_received - self._silence_samples, rate),
                    input_audio_detection_offset_ms=_ms(self.samples_received, rate),
                )
            )

    def _reset_turn(self) -> None:
        self._speech_end_sent = False
        self._turn_audio.clear()
        self._speech_samples = self._silence_samples = 0
        self._in_speech = False
        self._early_asr = None

    def _start_early_asr(self, rate: int, length: int) -> None:
        """Silence has begun: start recognising the turn so far, in case the turn ends here.

        The endpointing pause (1.5–2 s) is much longer than recognition (~0.2 s for a sentence), so
        by the time the turn is decided its transcript is usually ready. If the user speaks again,
        the result is not used (the audio it covered is no longer the whole turn).
        """
        assert self.validator is not None
        pcm = np.concatenate(self._turn_audio)[:length] if self._turn_audio else np.zeros(0, np.int16)
        settings = self.validator.settings
        future = asyncio.ensure_future(asyncio.to_thread(self.brain.transcribe, pcm, rate, settings))
        self._early_asr = (length, future)

    def _out_to_in(self, out_samples: float) -> float:
        assert self.validator is not None
        st = self.validator.settings
        return out_samples * st.input_sample_rate / st.output_sample_rate

    def _check_playback_end(self) -> None:
        """The reply has finished playing once audio time passes its last sample."""
        r = self.reply
        if r is None or r.finished.is_set() or r.total_out_samples is None:
            return
        if self.samples_received >= r.start_sample + self._out_to_in(r.total_out_samples):
            r.finished.set()

    def _interrupt(self, onset_sample: int) -> bool:
        """Barge-in at ``onset_sample`` (audio time) if a reply is still playing then."""
        r = self.reply
        if r is None or r.finished.is_set():
            return False
        assert self.validator is not None
        st = self.validator.settings
        heard = (onset_sample - r.start_sample) * st.output_sample_rate / st.input_sample_rate
        r.heard_out_samples = int(min(max(heard, 0), r.sent_out_samples))
        r.interrupted = True
        r.finished.set()
        return True

    def _start_reply(
        self, heard: np.ndarray | str, *, typed: bool, transcript: asyncio.Future[str] | None = None
    ) -> None:
        previous = self.reply
        reply = _Reply(
            content_id=str(uuid.uuid4()), start_sample=self.samples_received, start_wall=time.monotonic()
        )
        self.reply = reply
        reply.task = asyncio.ensure_future(self._respond(reply, heard, typed, previous, transcript))

    async def _stop_reply(self) -> None:
        if self.reply is not None and self.reply.task is not None and not self.reply.task.done():
            self.reply.task.cancel()
            await asyncio.wait({self.reply.task}, timeout=2)

    # -- one reply -----------------------------------------------------------------------------

    async def _respond(
        self,
        reply: _Reply,
        heard: np.ndarray | str,
        typed: bool,
        previous: _Reply | None,
        transcript: asyncio.Future[str] | None = None,
    ) -> None:
        assert self.validator is not None
        settings = self.validator.settings
        b = self.behaviour
        try:
            if previous is not None and previous.task is not None:
                # The previous reply must finish its event sequence before this one starts.
                await asyncio.wait({previous.task}, timeout=10)
            if reply.closed:
                return
            await self._ensure_completion()
            decided_at = reply.start_wall
            if typed:
                user_text = str(heard)
            else:
                assert isinstance(heard, np.ndarray)
                if transcript is not None:
                    user_text = await transcript
                else:
                    user_text = await asyncio.to_thread(
                        self.brain.transcribe, heard, settings.input_sample_rate, settings
                    )
                await self._text_block("USER", "FINAL", user_text, stop=b.user_text_stop)
                if b.usage_throughout:
                    in_rate = settings.input_sample_rate
                    speech = int(25 * heard.size / in_rate)
                    await self._usage({"speechTokens": speech, "textTokens": _text_tokens(user_text)}, {})
            tool_answer = await self._maybe_call_tool(user_text)
            if tool_answer is not None:
                text = tool_answer
            else:
                text = await asyncio.to_thread(self.brain.reply, user_text, settings)
            reply.text = text
            if b.sentence_blocks:
                final_text, first_audio_at = await self._speak_sentences(reply, text)
            else:
                final_text, first_audio_at = await self._speak_whole(reply, text)
                spoken = reply.heard_out_samples if reply.interrupted else reply.total_out_samples
                await self._send_usage(user_text, final_text, heard, spoken or 0)
            record = {
                "user_text": user_text,
                "reply_text": text,
                "spoken_text": final_text,
                "interrupted": reply.interrupted,
                "decided_at": decided_at,
                "first_audio_at": first_audio_at,
            }
            self.turns.append(record)
            if self.options.on_turn is not None:
                self.options.on_turn(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("emulator reply failed")
            if self.stream is not None:
                await self.stream.send_exception(
                    "internalServerException", "The emulator failed to produce a reply."
                )

    def _chunk_sizes(self, rate: int) -> Iterator[int]:
        """Samples per audioOutput: ~80 ms, varying between ~40 and ~120 ms when the behaviour says
        so (§13.5), always the same sequence (a seeded generator)."""
        base = int(OUTPUT_CHUNK_S * rate)
        while True:
            yield int(base * self._chunk_rng.uniform(0.5, 1.5)) if self.behaviour.varied_chunks else base

    async def _stream_audio(self, reply: _Reply, cid: str, text: str) -> tuple[int, float | None]:
        """Synthesize ``text`` into the open AUDIO block ``cid``, paced at ``audio_speed`` × real time.

        Returns the samples produced and when the first chunk went out. Stops at a barge-in or when
        the prompt closes.
        """
        assert self.validator is not None
        settings = self.validator.settings
        rate = settings.output_sample_rate
        speed = self.behaviour.audio_speed
        ids = self._ids()
        sizes = self._chunk_sizes(rate)
        first: float | None = None
        produced = 0
        pending = np.zeros(0, np.int16)
        async for piece in _in_thread(self.brain.speak(text, settings)):
            produced += piece.size
            pending = np.concatenate([pending, piece]) if pending.size else piece
            while pending.size and not (reply.interrupted or reply.closed):
                size = next(sizes)
                if pending.size < size:
                    break  # wait for more synthesis, unless this is the end (below)
                await self._send_chunk(reply, cid, ids, pending[:size], speed, rate)
                first = first or time.monotonic()
                pending = pending[size:]
            if reply.interrupted or reply.closed:
                break
        if pending.size and not (reply.interrupted or reply.closed):
            # The rest: the service's last chunk of a block can be tiny (§13.5).
            await self._send_chunk(reply, cid, ids, pending, speed, rate)
            first = first or time.monotonic()
        return produced, first

    async def _send_chunk(
        self, reply: _Reply, cid: str, ids: dict[str, Any], chunk: np.ndarray, speed: float, rate: int
    ) -> None:
        if speed > 0:
            if reply.first_audio_wall is None:
                reply.first_audio_wall = time.monotonic()
            due = reply.first_audio_wall + reply.sent_out_samples / rate / speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await self._send(wire.audio_output(**ids, content_id=cid, pcm=chunk.astype("<i2").tobytes()))
        reply.sent_out_samples += chunk.size
        await asyncio.sleep(0)  # let input (and barge-in) through between chunks

    def _audio_start(self, cid: str) -> dict[str, Any]:
        assert self.validator is not None
        settings = self.validator.settings
        voice = settings.voice_id if self.behaviour.voice_id_in_audio_start else None
        return wire.output_content_start(
            **self._ids(), content_id=cid, type="AUDIO", role="ASSISTANT",
            sample_rate=settings.output_sample_rate, voice_id=voice,
        )  # fmt: skip

    async def _played(self, reply: _Reply, out_samples: int) -> None:
        """Wait until ``out_samples`` of the reply would have been played: in audio time (input
        samples since the reply started), or in wall time for a client that stopped streaming; or
        until the reply is interrupted or its prompt closed."""
        assert self.validator is not None
        rate = self.validator.settings.output_sample_rate
        while not reply.finished.is_set():
            if self.samples_received >= reply.start_sample + self._out_to_in(out_samples):
                return
            remaining = reply.start_wall + out_samples / rate - time.monotonic()
            if remaining <= 0 and self._stopped_streaming():
                return
            reply.tick.clear()
            waiter = asyncio.ensure_future(reply.tick.wait())
            try:
                await asyncio.wait({waiter}, timeout=max(remaining, 0) + 0.25)
            finally:
                waiter.cancel()

    def _stopped_streaming(self) -> bool:
        return time.monotonic() - self._last_input_wall >= STOPPED_STREAMING_S

    async def _speak_sentences(self, reply: _Reply, text: str) -> tuple[str, float | None]:
        """The service's structure (§13.4): per sentence SPECULATIVE TEXT → AUDIO, every block ending
        PARTIAL_TURN but the last AUDIO block (END_TURN); then the FINAL texts, each when its
        sentence's playback would end. Returns the text spoken and when the first audio went out."""
        ids = self._ids()
        sentences = _sentences(text)
        ends: list[int] = []  # reply samples at the end of each sentence's audio
        first_audio_at: float | None = None
        open_audio: str | None = None
        last_audio: str | None = None
        for i, sentence in enumerate(sentences):
            if i and self.faults.sentence_gap_s:
                await asyncio.sleep(self.faults.sentence_gap_s)
            if reply.interrupted or reply.closed:
                break
            await self._text_block("ASSISTANT", "SPECULATIVE", sentence, stop="PARTIAL_TURN")
            if self.behaviour.usage_throughout:
                await self._usage({}, {"textTokens": _text_tokens(sentence)})
            cid = open_audio = last_audio = reply.content_id = str(uuid.uuid4())
            await self._send(self._audio_start(cid))
            if i == 0 and self.faults.first_audio_delay_s:
                await asyncio.sleep(self.faults.first_audio_delay_s)
            before = reply.sent_out_samples
            _, first = await self._stream_audio(reply, cid, sentence)
            first_audio_at = first_audio_at or first
            ends.append(reply.sent_out_samples)
            if reply.interrupted or reply.closed:
                break
            stop = "END_TURN" if i == len(sentences) - 1 else "PARTIAL_TURN"
            await self._send(wire.output_content_end(**ids, content_id=cid, type="AUDIO", stop_reason=stop))
            open_audio = None
            if self.behaviour.usage_throughout:
                out_rate = self.validator.settings.output_sample_rate if self.validator else 24000
                await self._usage(
                    {}, {"speechTokens": int(25 * (reply.sent_out_samples - before) / out_rate)}
                )
        reply.total_out_samples = reply.sent_out_samples
        self._check_playback_end()
        # FINAL texts, paced to playback (captures: 0.9–16 s after the audio, §13.4).
        spoken: list[str] = []
        for i, sentence in enumerate(sentences[: len(ends)]):
            await self._played(reply, ends[i])
            if reply.closed:
                break  # never sent once the prompt is closed (§13.4)
            heard = reply.heard_out_samples if reply.interrupted else None
            if heard is not None and heard < ends[i]:
                start = ends[i - 1] if i else 0
                words = _spoken_prefix(sentence, (heard - start) / max(ends[i] - start, 1))
                if words:
                    spoken.append(words)
                await self._barge_in(ids, open_audio, last_audio, words)
                open_audio = None
                break
            await self._text_block("ASSISTANT", "FINAL", sentence, stop="PARTIAL_TURN")
            spoken.append(sentence)
        if open_audio is not None:
            # The prompt closed mid-generation: the block ends as the service ends a cut block.
            await self._send(
                wire.output_content_end(**ids, content_id=open_audio, type="AUDIO", stop_reason="END_TURN")
            )
        reply.finished.set()
        return " ".join(spoken), first_audio_at

    async def _barge_in(
        self, ids: dict[str, Any], open_audio: str | None, last_audio: str | None, words: str
    ) -> None:
        """The signals of a barge-in, in the behaviour's form (see :class:`ServiceBehaviour`)."""
        form = self.behaviour.barge_in
        if open_audio is not None:
            stop = "INTERRUPTED" if form == "both" else "END_TURN"
            await self._send(
                wire.output_content_end(**ids, content_id=open_audio, type="AUDIO", stop_reason=stop)
            )
        tid = str(uuid.uuid4())
        await self._send(
            wire.output_content_start(
                **ids, content_id=tid, type="TEXT", role="ASSISTANT", generation_stage="FINAL"
            )
        )
        if words:
            await self._send(wire.text_output(**ids, content_id=tid, role="ASSISTANT", content=words))
        if form in ("both", "marker-only"):
            marker = wire.INTERRUPTED_MARKER_TEXT
            await self._send(wire.text_output(**ids, content_id=tid, role="ASSISTANT", content=marker))
        text_stop = {"both": "INTERRUPTED", "audio-end-turn": "INTERRUPTED"}.get(form, "PARTIAL_TURN")
        await self._send(wire.output_content_end(**ids, content_id=tid, type="TEXT", stop_reason=text_stop))
        if form == "late-interrupted" and last_audio is not None:
            # After the response ended, an INTERRUPTED for its last AUDIO block, already closed.
            await self._send(
                wire.output_content_end(**ids, content_id=last_audio, type="AUDIO", stop_reason="INTERRUPTED")
            )

    async def _speak_whole(self, reply: _Reply, text: str) -> tuple[str, float | None]:
        """The gentle structure: one SPECULATIVE text, one AUDIO block open until playback would end,
        one FINAL text."""
        assert self.validator is not None
        settings = self.validator.settings
        await self._text_block("ASSISTANT", "SPECULATIVE", text, stop="PARTIAL_TURN")
        ids = self._ids()
        cid = reply.content_id
        await self._send(self._audio_start(cid))
        if self.faults.first_audio_delay_s:
            await asyncio.sleep(self.faults.first_audio_delay_s)
        produced, first_audio_at = await self._stream_audio(reply, cid, text)
        reply.total_out_samples = produced if not reply.interrupted else max(produced, reply.sent_out_samples)
        # Generation ran ahead of playback; the turn ends when playback would end, in audio time
        # (or in wall time, for a client that stopped streaming), unless the user barges in.
        self._check_playback_end()
        out_rate = settings.output_sample_rate
        while not reply.finished.is_set():
            remaining_wall = reply.start_wall + (reply.total_out_samples or 0) / out_rate - time.monotonic()
            if remaining_wall <= 0 and self._stopped_streaming():
                break
            waiter = asyncio.ensure_future(reply.finished.wait())
            try:
                await asyncio.wait({waiter}, timeout=max(remaining_wall, 0) + 0.25)
            finally:
                waiter.cancel()  # also when this reply is cancelled meanwhile
        reply.finished.set()
        if reply.interrupted:
            # The FINAL text says what was actually heard; the signals follow the behaviour (§5).
            heard_fraction = (reply.heard_out_samples or 0) / max(reply.total_out_samples or 0, 1)
            final_text = _spoken_prefix(text, heard_fraction)
            await self._barge_in(ids, cid, cid, final_text)
            return final_text, first_audio_at
        await self._send(wire.output_content_end(**ids, content_id=cid, type="AUDIO", stop_reason="END_TURN"))
        await self._text_block("ASSISTANT", "FINAL", text)
        return text, first_audio_at

    async def _maybe_call_tool(self, user_text: str) -> str | None:
        """If the turn asks for a configured tool: TOOL block, wait for the toolResult, answer from it.

        The output sequence (§4): TOOL contentStart → toolUse (arguments as a JSON string) → contentEnd
        with stopReason TOOL_USE; then the model waits for the client's TOOL content block.
        """
        assert self.validator is not None
        from .responder import find_tool

        tool = find_tool(user_text, self.validator.settings.tools, self.options.tool_phrases)
        if tool is None:
            return None
        ids = self._ids()
        cid, tool_use_id = str(uuid.uuid4()), str(uuid.uuid4())
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tool_results[tool_use_id] = future
        await self._send(wire.output_content_start(**ids, content_id=cid, type="TOOL", role="TOOL"))
        await self._send(
            wire.tool_use(
                **ids, content_id=cid, tool_name=tool, tool_use_id=tool_use_id, arguments={"query": user_text}
            )
        )
        await self._send(wire.output_content_end(**ids, content_id=cid, type="TOOL", stop_reason="TOOL_USE"))
        done, _ = await asyncio.wait({future}, timeout=self.options.tool_result_timeout_s)
        self._tool_results.pop(tool_use_id, None)
        if not done:
            return f"I asked {tool} but it did not answer in time."
        result = json.loads(future.result())
        return f"{tool} says: {_describe(result)}."

    async def _send_usage(self, user_text: str, spoken: str, heard: Any, out_samples: int) -> None:
        """The gentle structure's one usageEvent per reply."""
        assert self.validator is not None
        # Token estimates: ~4 characters per text token; ~25 speech tokens per second of audio.
        in_rate = self.validator.settings.input_sample_rate
        out_rate = self.validator.settings.output_sample_rate
        d_in = {
            "speechTokens": int(25 * heard.size / in_rate) if isinstance(heard, np.ndarray) else 0,
            "textTokens": _text_tokens(user_text),
        }
        d_out = {"speechTokens": int(25 * out_samples / out_rate), "textTokens": _text_tokens(spoken)}
        await self._usage(d_in, d_out)

    async def _usage(self, d_in: dict[str, int], d_out: dict[str, int]) -> None:
        """A usageEvent: this delta and the running totals (cumulative, §12, §13.2)."""
        delta_in = {k: d_in.get(k, 0) for k in self._usage_in}
        delta_out = {k: d_out.get(k, 0) for k in self._usage_out}
        for total, delta in ((self._usage_in, delta_in), (self._usage_out, delta_out)):
            for k in total:
                total[k] += delta[k]
        await self._send(
            wire.usage_event(
                **self._ids(),
                delta_input=delta_in,
                delta_output=delta_out,
                total_input=self._usage_in,
                total_output=self._usage_out,
            )
        )


_DONE = object()


async def _in_thread(iterator: Iterator[np.ndarray]) -> AsyncIterator[np.ndarray]:
    """Iterate a blocking generator in a worker thread, yielding each item as soon as it exists.

    Synthesis is faster than real time but not free; this sends the first sentence while later ones
    are still being made. Stopping early (barge-in) closes the generator, which stops synthesis.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=8)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                if stop.is_set():
                    break
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
        except BaseException as exc:  # hand the failure to the consumer
            asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            asyncio.run_coroutine_threadsafe(queue.put(_DONE), loop).result()

    worker = loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not worker.done():  # unblock a producer waiting on a full queue
            while not queue.empty():
                queue.get_nowait()
            await asyncio.sleep(0.001)


def _text_tokens(text: str) -> int:
    """Text tokens, estimated at ~4 characters each."""
    return math.ceil(len(text) / 4)


def _ms(samples: int, rate: int) -> int:
    return int(samples * 1000 / rate)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> list[str]:
    """``text`` cut after each sentence's final punctuation: the service speaks a reply as about one
    SPECULATIVE TEXT → AUDIO pair per sentence (§13.4)."""
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p]
    return parts or [text]


def log_rejection(raw: bytes, exc: ServiceException) -> None:
    """Log an input event the service rejects: its name, the exception type, the message."""
    rejections.info("rejected %s: %s: %s", _event_name(raw), exc.exception_type, exc.message)


def _event_name(raw: bytes) -> str:
    """The name of an input event, for logs; ``?`` when it does not parse."""
    try:
        return wire.split_event(raw)[0]
    except Exception:
        return "?"


def _spoken_prefix(text: str, fraction: float) -> str:
    """The words of ``text`` spoken in the first ``fraction`` of its audio (by word count)."""
    words = text.split()
    n = int(len(words) * min(max(fraction, 0.0), 1.0))
    return " ".join(words[:n])


def _describe(result: Any) -> str:
    """A tool result, read out: ``{"temp": 21, "sky": "clear"}`` → ``temp 21, sky clear``."""
    if isinstance(result, dict):
        if set(result) == {"result"}:
            return _describe(result["result"])
        return ", ".join(f"{k} {_describe(v)}" for k, v in result.items())
    if isinstance(result, list):
        return ", ".join(_describe(v) for v in result)
    return str(result)


def admission_for(options: ConversationOptions) -> Callable[[RequestInfo], HttpError | None] | None:
    """The emulator's admission hook for ``options.faults.http_error_at_open`` (None if unset)."""
    error = options.faults.http_error_at_open
    if error is None:
        return None
    return lambda info: error


def conversation_handler(options: ConversationOptions | None = None) -> Callable[[ServerStream], Any]:
    """A stream handler for :class:`~nova_nb.emulator.server.EmulatorServer`."""

    async def handle(stream: ServerStream) -> None:
        await Conversation(options).run(stream)

    # Like the service, answer the HTTP request only once the setup has arrived (see run()).
    handle.holds_response = True  # type: ignore[attr-defined]
    return handle
