"""The emulator's side of one stream: validate input, detect turns in audio time, answer in sequence.

:class:`Conversation` is the stream handler the wire server calls for every
``InvokeModelWithBidirectionalStream``. It validates each input event with the protocol's
:class:`~nova_nb.protocol.rules.InputValidator` (the service's exception
types and messages), tracks audio time (samples received, so a client streaming faster than real time
gets the same decisions), ends a user turn after the endpointing pause, and answers with the
documented output sequence (docs/PROTOCOL.md §4)::

    completionStart (once) → USER TEXT FINAL → ASSISTANT TEXT SPECULATIVE → ASSISTANT AUDIO chunks
    → ASSISTANT TEXT FINAL → usageEvent … completionEnd (at session end)

What the "model" hears and says comes from a :class:`Brain`: :class:`ScriptedBrain` (no speech
models: it reports how long the user spoke and answers with a synthetic voice-like signal) or the
speech engine. Barge-in: user speech while the reply would still be playing (in audio time: the
reply's samples are laid out from the moment it started) stops generation, sends both interruption
signals (§5), and the FINAL text covers only what was spoken.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..audio import EnergySpeechDetector
from ..protocol import catalog, wire
from ..protocol.order import OutputOrder
from ..protocol.rules import InputValidator, PromptSettings, ServiceException
from .server import HttpError, RequestInfo, ServerStream

log = logging.getLogger("nova_nb.emulator")

#: Nova 1 has no endpointing setting; the emulator uses the documented default (MEDIUM) for it.
NOVA1_PAUSE_S = catalog.ENDPOINTING_PAUSE_S["MEDIUM"]
#: Speech shorter than this is a click or a cough, not a turn.
MIN_SPEECH_S = 0.15
#: Audio kept from before the detected onset, and after the last speech frame, for recognition.
PREROLL_S = 0.3
POSTROLL_S = 0.25
#: Output audio is sent in chunks of this length (the service sends chunks of tens of ms).
OUTPUT_CHUNK_S = 0.08


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


@dataclass
class _Reply:
    """One reply and where it is in time. Audio time is counted in input samples."""

    content_id: str
    start_sample: int  # input-audio time at which the reply (notionally) starts playing
    start_wall: float
    text: str = ""
    total_out_samples: int | None = None  # known once synthesis finished
    sent_out_samples: int = 0
    heard_out_samples: int | None = None  # set on barge-in: how much of the reply the user heard
    interrupted: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # playback over or interrupted
    task: asyncio.Task[None] | None = None


class OutputSide:
    """What every emulator engine needs to answer on a stream: the service's ids, one completion,
    and sends that never interleave (each engine may send from several tasks)."""

    def __init__(self) -> None:
        self.session_id = str(uuid.uuid4())
        self.completion_id: str | None = None
        self.validator: InputValidator | None = None
        self.stream: ServerStream | None = None
        self._send_lock = asyncio.Lock()
        # Every event sent passes the output-order machine the client checks with
        # (docs/PROTOCOL.md §4): an emulator that sends out of order is a bug, so this raises.
        self.order = OutputOrder(allow_unknown=False)

    def _ids(self) -> dict[str, Any]:
        assert self.validator is not None and self.completion_id is not None
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

    async def _ensure_completion(self) -> None:
        if self.completion_id is None:
            self.completion_id = str(uuid.uuid4())
            await self._send(wire.completion_start(**self._ids()))

    async def _end_completion(self) -> None:
        """completionEnd (END_TURN) at the end of the session, if a completion started.

        A reply stopped mid-block (the client left) would leave its block open, and the order wants
        every block closed before completionEnd (docs/PROTOCOL.md §4): close it first, with END_TURN,
        as the service ends an AUDIO block that was cut short (Pipecat's client code notes this).
        """
        if self.completion_id is None:
            return
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
        self._speech_samples = 0
        self._silence_samples = 0
        self._turn_audio: list[np.ndarray] = []
        self._preroll: deque[np.ndarray] = deque()
        self._in_speech = False
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
                        await stream.send_exception(
                            "modelTimeoutException",
                            f"Session exceeded the maximum duration of {limit:g} seconds.",
                        )
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
                    await self._stop_reply()
                    await stream.send_exception(exc.exception_type, exc.message)
                    return
                await self._handle(event.name, event.body, event)
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
        in_turn = self._in_speech or self._speech_samples > 0
        if speech:
            if not in_turn:
                # Onset: a detector flags speech a window or two late, so the turn starts with the
                # audio just before it (otherwise first consonants are lost to the recogniser).
                self._turn_audio = list(self._preroll)
                self._preroll.clear()
            self._silence_samples = 0
            self._speech_samples += frame.size
            if not self._in_speech and self._speech_samples >= MIN_SPEECH_S * rate:
                self._in_speech = True
                # Barge-in onset: where the speech began, in audio time.
                self._interrupt(self.samples_received - self._speech_samples)
        elif in_turn:
            self._silence_samples += frame.size
        if speech or in_turn:
            self._turn_audio.append(frame)
        else:
            self._preroll.append(frame)
            while sum(f.size for f in self._preroll) - self._preroll[0].size >= PREROLL_S * rate:
                self._preroll.popleft()
        self._check_playback_end()
        if not speech and self._speech_samples and not self._in_speech and self._silence_samples > 0.3 * rate:
            # A blip too short to be speech: forget it.
            self._reset_turn()
            return
        if not self._in_speech:
            return
        postroll = int(POSTROLL_S * rate)
        if not speech and self._silence_samples - frame.size < postroll <= self._silence_samples:
            self._start_early_asr(rate, self._turn_length(postroll))
        if self._silence_samples >= self._pause_s() * rate:
            length = self._turn_length(postroll)
            pcm = np.concatenate(self._turn_audio)[:length]
            early = self._early_asr
            self._reset_turn()
            transcript = early[1] if early is not None and early[0] == length else None
            self._start_reply(pcm, typed=False, transcript=transcript)

    def _turn_length(self, postroll: int) -> int:
        """Samples of the turn to recognise: up to the last speech plus the post-roll."""
        total = sum(f.size for f in self._turn_audio)
        return total - self._silence_samples + min(self._silence_samples, postroll)

    def _reset_turn(self) -> None:
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
        try:
            if previous is not None and previous.task is not None:
                # The previous reply must finish its event sequence before this one starts.
                await asyncio.wait({previous.task}, timeout=10)
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
                await self._text_block("USER", "FINAL", user_text)
            tool_answer = await self._maybe_call_tool(user_text)
            if tool_answer is not None:
                text = tool_answer
            else:
                text = await asyncio.to_thread(self.brain.reply, user_text, settings)
            reply.text = text
            await self._text_block("ASSISTANT", "SPECULATIVE", text, stop="PARTIAL_TURN")
            ids = self._ids()
            cid = reply.content_id
            await self._send(
                wire.output_content_start(
                    **ids, content_id=cid, type="AUDIO", role="ASSISTANT",
                    sample_rate=settings.output_sample_rate, voice_id=settings.voice_id,
                )
            )  # fmt: skip
            if self.faults.first_audio_delay_s:
                await asyncio.sleep(self.faults.first_audio_delay_s)
            first_audio_at: float | None = None
            chunk_samples = int(OUTPUT_CHUNK_S * settings.output_sample_rate)
            produced = 0
            async for piece in _in_thread(self.brain.speak(text, settings)):
                produced += piece.size
                for start in range(0, piece.size, chunk_samples):
                    if reply.interrupted:
                        break
                    chunk = piece[start : start + chunk_samples]
                    await self._send(
                        wire.audio_output(**ids, content_id=cid, pcm=chunk.astype("<i2").tobytes())
                    )
                    first_audio_at = first_audio_at or time.monotonic()
                    reply.sent_out_samples += chunk.size
                    await asyncio.sleep(0)  # let input (and barge-in) through between chunks
                if reply.interrupted:
                    break
            reply.total_out_samples = (
                produced if not reply.interrupted else max(produced, reply.sent_out_samples)
            )
            # Generation ran ahead of playback; the turn ends when playback would end, in audio time
            # (or in wall time, for a client that stopped streaming), unless the user barges in.
            self._check_playback_end()
            out_rate = settings.output_sample_rate
            remaining_wall = reply.start_wall + (reply.total_out_samples or 0) / out_rate - time.monotonic()
            if not reply.finished.is_set():
                waiter = asyncio.ensure_future(reply.finished.wait())
                try:
                    await asyncio.wait({waiter}, timeout=max(remaining_wall, 0) + 0.05)
                finally:
                    waiter.cancel()  # also when this reply is cancelled meanwhile
            reply.finished.set()
            if reply.interrupted:
                # Both barge-in signals (§5): the audio block ends INTERRUPTED, and the FINAL text says
                # what was actually heard, followed by the interrupted marker.
                heard_fraction = (reply.heard_out_samples or 0) / max(reply.total_out_samples or 0, 1)
                final_text = _spoken_prefix(text, heard_fraction)
                await self._send(
                    wire.output_content_end(**ids, content_id=cid, type="AUDIO", stop_reason="INTERRUPTED")
                )
                tid = str(uuid.uuid4())
                await self._send(
                    wire.output_content_start(
                        **ids, content_id=tid, type="TEXT", role="ASSISTANT", generation_stage="FINAL"
                    )
                )
                if final_text:
                    await self._send(
                        wire.text_output(**ids, content_id=tid, role="ASSISTANT", content=final_text)
                    )
                await self._send(
                    wire.text_output(
                        **ids, content_id=tid, role="ASSISTANT", content=wire.INTERRUPTED_MARKER_TEXT
                    )
                )
                await self._send(
                    wire.output_content_end(**ids, content_id=tid, type="TEXT", stop_reason="INTERRUPTED")
                )
                spoken_samples = reply.heard_out_samples or 0
            else:
                await self._send(
                    wire.output_content_end(**ids, content_id=cid, type="AUDIO", stop_reason="END_TURN")
                )
                await self._text_block("ASSISTANT", "FINAL", text)
                final_text = text
                spoken_samples = reply.total_out_samples or 0
            await self._send_usage(user_text, final_text, heard, spoken_samples)
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
        assert self.validator is not None
        # Token estimates: ~4 characters per text token; ~25 speech tokens per second of audio.
        in_rate = self.validator.settings.input_sample_rate
        out_rate = self.validator.settings.output_sample_rate
        d_in = {
            "speechTokens": int(25 * heard.size / in_rate) if isinstance(heard, np.ndarray) else 0,
            "textTokens": math.ceil(len(user_text) / 4),
        }
        d_out = {"speechTokens": int(25 * out_samples / out_rate), "textTokens": math.ceil(len(spoken) / 4)}
        for total, delta in ((self._usage_in, d_in), (self._usage_out, d_out)):
            for k in total:
                total[k] += delta[k]
        await self._send(
            wire.usage_event(
                **self._ids(),
                delta_input=d_in,
                delta_output=d_out,
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

    return handle
