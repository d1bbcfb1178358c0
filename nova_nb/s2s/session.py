"""The provider and session contract (the seed's interfaces, as abstract classes).

A provider opens sessions; a *streaming* provider opens bidirectional ones. As in the seed, not every
provider can stream, so code checks ``isinstance(provider, StreamingS2SProvider)`` where the Go
version used a type assertion.

:class:`S2SSession` is more than a list of methods: everything that does not depend on the service
lives here, so a provider implements only its transport. The **input pipeline** takes user audio in
any reasonable form, resamples it to ``config.input_sample_rate``, re-frames it to ``config.frame_ms``,
paces it to real time on request, replaces it with silence while paused (and keeps the service fed with
silence meanwhile), tells input listeners, and hands each frame to :meth:`S2SSession._send_frame_to_service`.
The **output pipeline** takes what the provider decoded (:meth:`S2SSession._output_audio`,
:meth:`S2SSession._interrupt`, :meth:`S2SSession._end_turn_audio`, :meth:`S2SSession._publish`) and
serves ``receive_audio()``, ``events()`` and listeners: bounded buffering, barge-in flush, final-chunk
marking, whole-turn mode and playback accounting.

A provider subclass implements ``_send_frame_to_service``, ``send_text``, ``send_tool_result`` and
``close``, feeds the output side, and ends the session with :meth:`S2SSession._finish` (or
:meth:`S2SSession._fail`).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

import numpy as np

from .. import audio as pcm
from ..errors import ConfigError, SessionClosedError, StreamError
from . import events as ev
from ._pipeline import EVENT_BUFFER_MAX, Channel
from .config import Config, validate_voice
from .types import AudioOutputChunk, ConversationContext

log = logging.getLogger("nova_nb.session")


class S2SProvider(abc.ABC):
    """A speech-to-speech provider built by :func:`nova_nb.s2s.new_provider`."""

    name: str
    config: Config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.config!r}>"


class S2SSession(abc.ABC):
    """One live conversation. Use as ``async with await provider.start_streaming(ctx) as session``.

    Subclasses call ``super().__init__(config, voice_id=..., enable_streaming=...)`` and implement the
    abstract methods below; the rest of the public API is implemented here, once for every provider.
    """

    #: The settings the session runs with (rates, frame size, buffering, ...).
    config: Config
    #: The voice the model speaks with.
    voice_id: str
    #: False: ``receive_audio()`` yields one chunk per turn (the whole reply), not chunks as they come.
    enable_streaming: bool

    def __init__(self, config: Config, *, voice_id: str, enable_streaming: bool = True) -> None:
        self.config = config
        self.voice_id = voice_id
        self.enable_streaming = enable_streaming
        self._closing = False
        self._closed = asyncio.Event()
        self._failure: StreamError | None = None
        # Input side.
        self._reframer = pcm.Reframer(config.input_frame_samples)
        self._pace_origin: float | None = None
        self._paused = False
        self._keepalive: asyncio.Task[None] | None = None
        self._input_listeners: list[Callable[[bytes, float, int], None]] = []
        # Output side.
        self._audio: Channel[AudioOutputChunk] = Channel()
        self._audio_buffered = 0  # bytes of output audio in the channel
        self._events: Channel[ev.Event] = Channel(maxlen=EVENT_BUFFER_MAX)
        self._event_readers = 0
        self._listeners: list[Callable[[ev.Event], None]] = []
        self._interrupted_content: set[str] = set()
        self._turn_audio: dict[str, list[bytes]] = {}  # enable_streaming=False: audio kept per turn
        #: Seconds of each reply (by content id) that a player reported as heard.
        self.played_s: dict[str, float] = {}
        # Counters, for tests, benchmarks and the notebooks.
        self.audio_events_sent = 0
        self.audio_samples_sent = 0  # unique user samples (a provider's replays are not counted again)
        self.muted_samples = 0
        self.dropped_output_bytes = 0
        self.last_audio_sent_at: float | None = None

    # -- what a provider implements ------------------------------------------------------------------

    @abc.abstractmethod
    async def _send_frame_to_service(self, frame: bytes) -> None:
        """Send one input frame: ``config.frame_ms`` of 16-bit LE mono PCM at the input rate.

        Called in order, already paced, only while the session is usable. Wait (bounded) for
        backpressure here; raise SessionClosedError if the session failed meanwhile.
        """

    @abc.abstractmethod
    async def send_text(self, text: str) -> None:
        """Cross-modal text input: typed text the model answers as if spoken (Nova 2)."""

    @abc.abstractmethod
    async def send_tool_result(self, tool_use_id: str, result: Any) -> None:
        """Answer a ``toolUse`` event with a JSON-serialisable result."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Send the closing sequence and release the stream. Bounded in time; idempotent.

        Implementations set ``_closing``, call :meth:`_stop_input` (and send what it returns), and end
        with :meth:`_finish`.
        """

    # -- state ---------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set() or self._closing

    @property
    def error(self) -> StreamError | None:
        """The failure that ended the session, if any."""
        return self._failure

    @property
    def paused(self) -> bool:
        return self._paused

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise SessionClosedError(f"the session failed and can no longer send: {self._failure}")
        if self._closing or self._closed.is_set():
            raise SessionClosedError("the session is closed")

    # -- input pipeline ------------------------------------------------------------------------------

    async def send_audio(
        self,
        audio: bytes | bytearray | memoryview | np.ndarray,
        *,
        sample_rate: int | None = None,
        pace: bool = False,
    ) -> None:
        """Send user audio. Bytes: 16-bit LE mono PCM at the input rate (or ``sample_rate``).
        Arrays: int16 or float32, mono ``(n,)`` or multichannel ``(n, channels)``, at ``sample_rate``
        (default: the input rate). Resampled and re-framed to ``frame_ms`` frames; a partial frame
        waits for more audio (or :meth:`flush_audio`). ``pace=True`` sends no faster than real time.
        While :meth:`pause` is in effect the audio is replaced by silence (the microphone is muted).

        Raises AudioFormatError (a ValueError) for unusable input; the session keeps running.
        """
        self._check_usable()
        rate = self.config.input_sample_rate
        if (
            isinstance(audio, bytes | bytearray | memoryview)
            and (sample_rate is None or (type(sample_rate) is int and sample_rate == rate))
            and not self._paused
        ):
            # The hot path of a microphone: PCM at the input rate, in chunks of any size (the browser
            # widget sends 20 ms while frame_ms is 32). Cut as bytes; never through a numpy array.
            for frame in self._reframer.push(audio):
                await self._send_frame(frame, pace)
            return
        samples = pcm.to_pcm16_mono(audio, sample_rate=sample_rate, target_rate=rate, input_rate_default=rate)
        if self._paused:
            self.muted_samples += samples.size
            return  # the keep-alive task is sending silence in its place
        for frame in self._reframer.push(samples):
            await self._send_frame(frame, pace)

    async def flush_audio(self) -> None:
        """Send the partial frame held back by re-framing, padded with silence."""
        self._check_usable()
        for frame in self._reframer.flush(pad=True):
            await self._send_frame(frame, False)

    async def _send_frame(self, frame: bytes, pace: bool) -> None:
        rate = self.config.input_sample_rate
        if pace:
            now = time.monotonic()
            if self._pace_origin is None or self._pace_origin + self.audio_samples_sent / rate < now - 0.5:
                # (Re)start the audio clock; after a long pause, do not burst to catch up.
                self._pace_origin = now - self.audio_samples_sent / rate
            due = self._pace_origin + self.audio_samples_sent / rate
            if due > now:
                await asyncio.sleep(due - now)
        self._check_usable()
        await self._send_frame_to_service(frame)
        now = time.monotonic()
        for listener in tuple(self._input_listeners):
            try:
                listener(frame, now, rate)
            except Exception:
                log.exception("input listener failed")
        self.audio_events_sent += 1
        self.audio_samples_sent += len(frame) // 2
        self.last_audio_sent_at = now

    def pause(self) -> None:
        """Mute: send silence instead of the microphone, at real-time pace, so the service's input
        timeout does not end the session. Audio given to send_audio() meanwhile is discarded."""
        self._check_usable()
        if self._paused:
            return
        self._paused = True
        self._keepalive = asyncio.create_task(self._keep_alive(), name="s2s-keepalive")

    def resume(self) -> None:
        """Unmute: send_audio() reaches the model again."""
        self._paused = False
        if self._keepalive is not None:
            # It only sleeps or hands a frame to the provider, whose send waits are cancellable (a
            # provider must never let this cancel a task inside its SDK's send()).
            self._keepalive.cancel()
            self._keepalive = None

    async def _keep_alive(self) -> None:
        silence = bytes(self.config.input_frame_samples * 2)
        frame_s = self.config.frame_ms / 1000
        while self._paused and not self.closed:
            await self._send_frame(silence, pace=True)
            await asyncio.sleep(frame_s / 4)

    def _stop_input(self) -> list[bytes]:
        """For close(): stop the keep-alive and return the held-back partial frame, padded (or [])."""
        self._paused = False
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        return self._reframer.flush(pad=True)

    def add_input_listener(self, callback: Callable[[bytes, float, int], None]) -> Callable[[], None]:
        """Call ``callback(frame, timestamp, sample_rate)`` for every input frame as it is queued.

        ``frame`` is the 16-bit mono PCM actually sent (after resampling and re-framing) and
        ``timestamp`` the ``time.monotonic()`` at which it was queued: with ``add_listener`` this puts
        both audio streams and every event on one clock (what session recordings need).
        """
        self._input_listeners.append(callback)
        return lambda: self._input_listeners.remove(callback) if callback in self._input_listeners else None

    # -- output pipeline -----------------------------------------------------------------------------

    async def receive_audio(self) -> AsyncIterator[AudioOutputChunk]:
        """The model's speech: chunks as they arrive; ends when the session ends."""
        while (chunk := await self._audio.get()) is not None:
            self._audio_buffered = max(self._audio_buffered - len(chunk.audio), 0)
            yield chunk

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every typed event since the session opened; ends with SessionClosed.

        AudioOutput events are included from the moment an iteration is running (their audio is also
        in receive_audio()); every other event is kept from the start.
        """
        self._event_readers += 1
        try:
            while (event := await self._events.get()) is not None:
                yield event
        finally:
            self._event_readers -= 1

    def add_listener(self, callback: Callable[[ev.Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, on the session's loop; returns a remover.

        For recorders and widgets that must see everything without competing for ``events()``.
        Keep callbacks cheap: they run inside the reader.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def report_playback(
        self, content_id: str, played_s: float, *, final: bool = False, at: float | None = None
    ) -> None:
        """Tell the session how much of reply ``content_id`` a player has played (seconds).

        Players (the browser widget, a local speaker) call this as they go; the session keeps the
        latest figure per reply in ``played_s`` and emits a PlaybackReported event.
        """
        if not isinstance(content_id, str) or not content_id:
            raise ConfigError("content_id must be the content_id of an AudioOutputChunk")
        if not isinstance(played_s, int | float) or played_s < 0 or played_s != played_s:
            raise ConfigError(f"played_s must be a number of seconds >= 0, got {played_s!r}")
        self.played_s[content_id] = float(played_s)
        self._publish(
            ev.PlaybackReported(
                timestamp=time.monotonic() if at is None else at,
                content_id=content_id,
                played_s=float(played_s),
                final=final,
            )
        )

    def _publish(self, event: ev.Event) -> None:
        """Hand an event to events() and the listeners."""
        # Audio events carry PCM: buffer them for events() only while someone iterates it (the audio
        # itself is in receive_audio()); otherwise an unread events() would hold up to
        # EVENT_BUFFER_MAX chunks of audio. Listeners always get them.
        if self._event_readers or not isinstance(event, ev.AudioOutput):
            self._events.put(event)
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the session
                log.exception("session event listener failed")

    def _output_audio(self, event: ev.AudioOutput) -> bool:
        """Hand out a piece of the model's speech (event and audio). False if its reply was already
        interrupted: such audio is counted as dropped and never handed out."""
        if event.content_id in self._interrupted_content:
            self.dropped_output_bytes += len(event.audio)
            return False
        self._publish(event)
        if self.enable_streaming:
            self._put_audio(
                AudioOutputChunk(
                    audio=event.audio,
                    timestamp=event.timestamp,
                    sample_rate=event.sample_rate,
                    content_id=event.content_id,
                )
            )
        else:
            self._turn_audio.setdefault(event.content_id, []).append(event.audio)
        return True

    def _put_audio(self, chunk: AudioOutputChunk) -> None:
        """Queue output audio for receive_audio(), keeping at most ``output_buffer_s`` of it."""
        self._audio.put(chunk)
        self._audio_buffered += len(chunk.audio)
        limit = int(self.config.output_buffer_s * self.config.output_sample_rate * 2)
        if self._audio_buffered <= limit:
            return
        dropped = 0
        items = self._audio.items
        while self._audio_buffered > limit and len(items) > 1:
            oldest = items.popleft()
            self._audio_buffered -= len(oldest.audio)
            dropped += len(oldest.audio)
        self.dropped_output_bytes += dropped
        self._publish(
            ev.AudioDropped(
                timestamp=time.monotonic(),
                dropped_bytes=dropped,
                buffered_s=self._audio_buffered / 2 / self.config.output_sample_rate,
            )
        )

    def _end_turn_audio(self, content_id: str, now: float) -> None:
        """A reply ended: mark its last chunk ``is_final``, or add an empty final chunk if it is gone.

        With ``enable_streaming=False`` the whole reply goes out now, as one final chunk. A reply that
        was interrupted already had its final chunk (:meth:`_interrupt`)."""
        if content_id in self._interrupted_content:
            return
        rate = self.config.output_sample_rate
        if not self.enable_streaming:
            # A reply may come as several AUDIO blocks, one per sentence, ending PARTIAL_TURN but the
            # last (docs/PROTOCOL.md §13.4): the turn's audio is every block kept so far, in order.
            audio = b"".join(b"".join(self._turn_audio.pop(cid)) for cid in list(self._turn_audio))
            self._put_audio(AudioOutputChunk(audio, now, True, None, rate, content_id))
            return
        items = self._audio.items
        if items and items[-1].content_id == content_id and not items[-1].is_final:
            items[-1] = dataclasses.replace(items[-1], is_final=True)
        else:
            self._audio.put(AudioOutputChunk(b"", now, True, None, rate, content_id))

    def _interrupt(self, event: ev.Interruption) -> None:
        """Barge-in: flush what was not handed out, end the turn, and publish the event with the
        number of bytes dropped."""
        self._publish(dataclasses.replace(event, dropped_bytes=self._drop_pending_audio(event)))

    def _drop_pending_audio(self, event: ev.Interruption) -> int:
        """Drop every chunk not yet handed out, then end the turn with an empty final chunk."""
        dropped = sum(len(c.audio) for c in self._audio.items)
        self._audio.items.clear()
        self._audio_buffered = 0
        if event.content_id:
            self._interrupted_content.add(event.content_id)
            dropped += sum(len(a) for a in self._turn_audio.pop(event.content_id, []))
        self.dropped_output_bytes += dropped
        self._audio.put(
            AudioOutputChunk(
                b"",
                event.timestamp,
                True,
                None,
                self.config.output_sample_rate,
                event.content_id,
                interrupted=True,
            )
        )
        return dropped

    def _abandon_turn(self, content_id: str, now: float) -> None:
        """A reply that will never finish (its stream is gone): end its turn for the player as an
        interruption, keeping the audio already queued."""
        if content_id in self._interrupted_content:
            return
        self._interrupted_content.add(content_id)
        self._audio.put(
            AudioOutputChunk(
                b"", now, True, None, self.config.output_sample_rate, content_id, interrupted=True
            )
        )

    # -- the end -------------------------------------------------------------------------------------

    def _fail(self, error: StreamError) -> None:
        """End the session with a failure: an error event, a final chunk carrying the error, the end."""
        if self._failure is not None or self._closed.is_set():
            return
        self._failure = error
        now = time.monotonic()
        log.info("session failed: %s", error)
        self._publish(
            ev.StreamErrorEvent(
                timestamp=now, code=error.code, message=str(error.args[0]), recoverable=error.recoverable
            )
        )
        self._audio.put(AudioOutputChunk(b"", now, True, error, self.config.output_sample_rate))
        self._finish("error")

    def _finish(self, reason: str) -> None:
        """Publish SessionClosed and end receive_audio() and events(). Idempotent."""
        if self._closed.is_set():
            return
        self._publish(ev.SessionClosed(timestamp=time.monotonic(), reason=reason))
        self._audio.end()
        self._events.end()
        self._closed.set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class StreamingS2SProvider(S2SProvider):
    """A provider that opens bidirectional streaming sessions."""

    @abc.abstractmethod
    async def start_streaming(
        self,
        context: ConversationContext | None = None,
        *,
        voice_id: str | None = None,
        enable_streaming: bool = True,
    ) -> S2SSession:
        """Open a session. ``voice_id`` overrides the config's voice. With ``enable_streaming=False``
        ``receive_audio()`` yields one chunk per turn (the whole reply) instead of chunks as they arrive."""

    def _start_arguments(
        self,
        config: Config,
        context: ConversationContext | None,
        voice_id: str | None,
        enable_streaming: bool,
    ) -> tuple[ConversationContext, str]:
        """Check :meth:`start_streaming`'s arguments the same way for every provider: the context
        (an empty one when None), the voice (the config's unless given) and the streaming flag."""
        if context is None:
            context = ConversationContext()
        if not isinstance(context, ConversationContext):
            raise ConfigError(f"context must be an s2s.ConversationContext, got {type(context).__name__}")
        if not isinstance(enable_streaming, bool):
            raise ConfigError("enable_streaming must be True or False")
        voice = (
            validate_voice(config.model_id, config.language, voice_id)
            if voice_id is not None
            else config.resolved_voice_id
        )
        return context, voice
