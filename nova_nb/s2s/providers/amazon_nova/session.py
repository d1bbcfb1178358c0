"""A live Nova Sonic session over the SDK's bidirectional stream.

The rules that shape this module come from running the SDK (docs/PROTOCOL.md §10):

* One **sender task** fed by a queue writes every event. Cancelling a task inside ``send()`` drops an
  event that was already signed and breaks the signature chain, so nothing else ever calls ``send()``
  and the sender is stopped by a sentinel, not by cancellation.
* One long-lived **reader task** calls ``receive()``. Cancelling a pending ``receive()`` kills the
  output stream for good, so no read is ever wrapped in ``wait_for``.
* Every other wait is bounded with ``asyncio.wait({task}, timeout=...)``. After a reset, ``send()``
  can block for ever and ``close()`` can hang even under ``wait_for``: such tasks are abandoned.
* A reset or a dropped connection looks like a clean end (``receive()`` returns ``None``); a stream
  that ends before the client asked to close is reported as an error.

The protocol itself (what to send, what the output means) lives in the sans-I/O
:class:`~.client.NovaClientProtocol`; this module only moves bytes and hands out results.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .... import audio as pcm
from ....errors import ConfigError, ProtocolError, SessionClosedError, StreamError
from ... import events as ev
from ...config import Config
from ...session import S2SSession
from ...types import AudioOutputChunk, ConversationContext, Tool
from . import wire
from .client import NovaClientProtocol
from .transport import stream_error_from

if TYPE_CHECKING:
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient

log = logging.getLogger("nova_nb.session")

#: Input events waiting for the sender before send_audio() waits (backpressure). At 32 ms frames this
#: is ~4 s of audio: enough to ride out a slow moment, small enough that a dead stream is noticed.
SEND_QUEUE_HIGH_WATER = 128
#: Events kept for a consumer of events() that reads slowly; older ones are dropped and counted.
EVENT_BUFFER_MAX = 20_000
#: How long a tool handler may run before the session answers the model with an error result.
TOOL_TIMEOUT_S = 60.0

_CLOSE = object()  # sentinel that stops the sender


class _Channel[T]:
    """A single-consumer queue for one event loop, that can be ended and inspected."""

    def __init__(self, maxlen: int | None = None) -> None:
        self.items: deque[T] = deque(maxlen=maxlen)
        self._wakeup = asyncio.Event()
        self.ended = False
        self.dropped = 0

    def put(self, item: T) -> None:
        if self.ended:
            return
        if self.items.maxlen is not None and len(self.items) == self.items.maxlen:
            self.dropped += 1
        self.items.append(item)
        self._wakeup.set()

    def end(self) -> None:
        self.ended = True
        self._wakeup.set()

    async def get(self) -> T | None:
        """Next item, or None once ended and drained."""
        while not self.items:
            if self.ended:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.items.popleft()


class NovaSession(S2SSession):
    """A session of the ``amazon_nova`` provider. Made by ``provider.start_streaming``."""

    def __init__(
        self,
        *,
        client: AsyncBedrockRuntimeClient,
        config: Config,
        context: ConversationContext,
        voice_id: str,
        enable_streaming: bool = True,
    ) -> None:
        self.config = config
        self.context = context
        self.voice_id = voice_id
        self.enable_streaming = enable_streaming
        self._client = client
        self._tools: dict[str, Tool] = {t.name: t for t in context.tools}
        self.protocol = NovaClientProtocol(
            model_id=config.model_id,
            voice_id=voice_id,
            input_sample_rate=config.input_sample_rate,
            output_sample_rate=config.output_sample_rate,
            max_tokens=config.max_tokens,
            top_p=config.top_p,
            temperature=config.temperature,
            endpointing_sensitivity=config.endpointing_sensitivity,
            tools=[wire.ToolSpec(t.name, t.description, t.input_schema) for t in context.tools],
        )
        self._stream: Any = None
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._drained = asyncio.Event()
        self._drained.set()
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._audio: _Channel[AudioOutputChunk] = _Channel()
        self._events: _Channel[ev.Event] = _Channel(maxlen=EVENT_BUFFER_MAX)
        self._listeners: list[Callable[[ev.Event], None]] = []
        self._input_listeners: list[Callable[[bytes, float, int], None]] = []
        #: Seconds of each reply (by content id) that a player reported as heard.
        self.played_s: dict[str, float] = {}
        self._reframer = pcm.Reframer(config.input_frame_samples)
        self._interrupted_content: set[str] = set()
        self._turn_audio: dict[str, list[bytes]] = {}  # enable_streaming=False: audio kept per turn
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._closed = asyncio.Event()
        self._failure: StreamError | None = None
        self._pace_origin: float | None = None
        # Counters, for tests, benchmarks and the notebooks.
        self.audio_events_sent = 0
        self.audio_samples_sent = 0
        self.events_sent = 0
        self.dropped_output_bytes = 0
        self.last_audio_sent_at: float | None = None

    # -- opening ---------------------------------------------------------------------------------

    async def _open(self) -> None:
        """Open the stream, queue the setup events, and wait (bounded) until the response opens."""
        from aws_sdk_bedrock_runtime.models import InvokeModelWithBidirectionalStreamOperationInput

        timeout = self.config.open_timeout_s
        # Build (and so validate) the setup events before opening anything: a bad history must not
        # leave an open stream behind.
        setup = [
            wire.encode(event)
            for event in self.protocol.setup_events(
                self.context.system_prompt, self.context.history_messages()
            )
        ]
        invoke = asyncio.ensure_future(
            self._client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id=self.config.model_id)
            )
        )
        done, _ = await asyncio.wait({invoke}, timeout=timeout)
        if not done:
            invoke.cancel()
            raise StreamError(
                f"opening the stream took more than {timeout:g} s", code="Timeout", recoverable=True
            )
        try:
            self._stream = invoke.result()
        except Exception as exc:
            raise stream_error_from(exc) from exc
        self._sender = asyncio.create_task(self._send_loop(), name="nova-sender")
        for item in setup:
            self._outbox.put_nowait(item)
        self._reader = asyncio.create_task(self._read_loop(), name="nova-reader")
        # Queue first, then wait: whether the service answers the request before or after it has
        # read the first events, the response headers (and any HTTP error) arrive within the bound.
        done, _ = await asyncio.wait({self._opened}, timeout=timeout)
        if not done:
            await self._abort()
            raise StreamError(
                f"no response from {self.config.endpoint_uri or 'Bedrock'} within {timeout:g} s",
                code="Timeout",
                recoverable=True,
            )
        if (open_error := self._opened.exception()) is not None:
            await self._abort()
            raise open_error
        self._publish(
            ev.SessionStarted(
                timestamp=time.monotonic(),
                prompt_name=self.protocol.prompt_name,
                model_id=self.config.model_id,
                voice_id=self.voice_id,
            )
        )

    # -- the two long-lived tasks ----------------------------------------------------------------

    async def _send_loop(self) -> None:
        from aws_sdk_bedrock_runtime.models import (
            BidirectionalInputPayloadPart,
            InvokeModelWithBidirectionalStreamInputChunk,
        )

        send = self._stream.input_stream.send
        queue = self._outbox
        try:
            while True:
                item = await queue.get()
                if item is _CLOSE:
                    break
                await send(
                    InvokeModelWithBidirectionalStreamInputChunk(
                        value=BidirectionalInputPayloadPart(bytes_=item)
                    )
                )
                self.events_sent += 1
                if queue.qsize() < SEND_QUEUE_HIGH_WATER // 2:
                    self._drained.set()
        except Exception as exc:
            self._fail(stream_error_from(exc))

    async def _read_loop(self) -> None:
        try:
            _, receiver = await self._stream.await_output()
        except Exception as exc:
            error = stream_error_from(exc)
            if not self._opened.done():
                self._opened.set_exception(error)
            self._fail(error)
            return
        if not self._opened.done():
            self._opened.set_result(None)
        receive = receiver.receive
        protocol_receive = self.protocol.receive
        try:
            while True:
                chunk = await receive()
                if chunk is None:
                    break
                now = time.monotonic()
                payload = getattr(getattr(chunk, "value", None), "bytes_", None)
                if payload is None:
                    # An output union member this SDK version does not know: pass it on.
                    self._publish(ev.UnknownEvent(timestamp=now, name=type(chunk).__name__, payload={}))
                    continue
                try:
                    events = protocol_receive(payload, now)
                except ProtocolError as exc:
                    log.warning("unparsable output event dropped: %s", exc)
                    self._publish(
                        ev.StreamErrorEvent(
                            timestamp=now, code="ProtocolError", message=str(exc), recoverable=False
                        )
                    )
                    continue
                for event in events:
                    self._dispatch(event)
        except Exception as exc:
            self._fail(stream_error_from(exc))
            return
        if not self._closing:
            # §10: a reset or a dropped connection looks like a clean end. Only an end the client
            # asked for is clean.
            self._fail(
                StreamError(
                    "the stream ended without the closing handshake (reset or dropped connection)",
                    code="StreamReset",
                    recoverable=True,
                )
            )
        else:
            self._finish("closed")

    # -- output ------------------------------------------------------------------------------------

    def _publish(self, event: ev.Event) -> None:
        self._events.put(event)
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the session
                log.exception("session event listener failed")

    def _dispatch(self, event: ev.Event) -> None:
        if isinstance(event, ev.AudioOutput):
            if event.content_id in self._interrupted_content:
                self.dropped_output_bytes += len(event.audio)
                return  # audio of a response already interrupted: never hand it out
            self._publish(event)
            if self.enable_streaming:
                self._audio.put(
                    AudioOutputChunk(
                        audio=event.audio,
                        timestamp=event.timestamp,
                        sample_rate=event.sample_rate,
                        content_id=event.content_id,
                    )
                )
            else:
                self._turn_audio.setdefault(event.content_id, []).append(event.audio)
            return
        if isinstance(event, ev.Interruption):
            event = dataclasses.replace(event, dropped_bytes=self._drop_pending_audio(event))
            self._publish(event)
            return
        self._publish(event)
        if isinstance(event, ev.ContentEnded) and event.type == "AUDIO" and event.role == "ASSISTANT":
            if event.stop_reason != "PARTIAL_TURN" and event.content_id not in self._interrupted_content:
                self._end_turn_audio(event.content_id, event.timestamp)
        elif isinstance(event, ev.ToolUse):
            self._handle_tool_use(event)

    def _end_turn_audio(self, content_id: str, now: float) -> None:
        """Mark the last chunk of a turn ``is_final``, or add an empty final chunk if it is gone."""
        rate = self.config.output_sample_rate
        if not self.enable_streaming:
            audio = b"".join(self._turn_audio.pop(content_id, []))
            self._audio.put(AudioOutputChunk(audio, now, True, None, rate, content_id))
            return
        items = self._audio.items
        if items and items[-1].content_id == content_id and not items[-1].is_final:
            items[-1] = dataclasses.replace(items[-1], is_final=True)
        else:
            self._audio.put(AudioOutputChunk(b"", now, True, None, rate, content_id))

    def _drop_pending_audio(self, event: ev.Interruption) -> int:
        """Barge-in: drop every chunk not yet handed out, then end the turn with an empty final chunk."""
        dropped = sum(len(c.audio) for c in self._audio.items)
        self._audio.items.clear()
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

    def _handle_tool_use(self, event: ev.ToolUse) -> None:
        tool = self._tools.get(event.tool_name)
        if tool is None or tool.handler is None:
            return  # the application answers through send_tool_result()
        task = asyncio.create_task(self._run_tool(tool, event), name=f"tool-{event.tool_name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run_tool(self, tool: Tool, event: ev.ToolUse) -> None:
        assert tool.handler is not None

        async def call() -> Any:
            result = tool.handler(event.arguments)  # type: ignore[misc]
            if inspect.isawaitable(result):
                result = await result
            return result

        task = asyncio.ensure_future(call())
        done, _ = await asyncio.wait({task}, timeout=TOOL_TIMEOUT_S)
        if not done:
            task.cancel()
            result: Any = {"error": f"tool {tool.name!r} did not answer within {TOOL_TIMEOUT_S:g} s"}
        elif task.exception() is not None:
            result = {"error": f"tool {tool.name!r} failed: {task.exception()}"}
        else:
            result = task.result()
        if not self._closing and self._failure is None:
            await self.send_tool_result(event.tool_use_id, result)

    # -- failure and end -------------------------------------------------------------------------

    def _fail(self, error: StreamError) -> None:
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
        self._drained.set()  # wake a send_audio() waiting on backpressure so it sees the failure
        self._finish("error")

    def _finish(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._publish(ev.SessionClosed(timestamp=time.monotonic(), reason=reason))
        self._audio.end()
        self._events.end()
        self._closed.set()

    # -- public API --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set() or self._closing

    @property
    def error(self) -> StreamError | None:
        """The failure that ended the session, if any."""
        return self._failure

    @property
    def prompt_name(self) -> str:
        return self.protocol.prompt_name

    def add_listener(self, callback: Callable[[ev.Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, on the session's loop; returns a remover.

        For recorders and widgets that must see everything without competing for ``events()``.
        Keep callbacks cheap: they run inside the reader.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def add_input_listener(self, callback: Callable[[bytes, float, int], None]) -> Callable[[], None]:
        """Call ``callback(frame, timestamp, sample_rate)`` for every input frame as it is queued.

        ``frame`` is the 16-bit mono PCM actually sent (after resampling and re-framing) and
        ``timestamp`` the ``time.monotonic()`` at which it was queued: with ``add_listener`` this puts
        both audio streams and every event on one clock (what session recordings need).
        """
        self._input_listeners.append(callback)
        return lambda: self._input_listeners.remove(callback) if callback in self._input_listeners else None

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

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise SessionClosedError(f"the session failed and can no longer send: {self._failure}")
        if self._closing or self._closed.is_set():
            raise SessionClosedError("the session is closed")

    async def _enqueue(self, item: bytes) -> None:
        self._outbox.put_nowait(item)
        if self._outbox.qsize() >= SEND_QUEUE_HIGH_WATER:
            self._drained.clear()
            done, _ = await asyncio.wait(
                {asyncio.ensure_future(self._drained.wait())}, timeout=self.config.open_timeout_s
            )
            if not done:
                self._fail(
                    StreamError(
                        f"the stream accepted no input for {self.config.open_timeout_s:g} s",
                        code="Timeout",
                        recoverable=True,
                    )
                )
            if self._failure is not None:
                raise SessionClosedError(f"the session failed: {self._failure}")

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

        Raises AudioFormatError (a ValueError) for unusable input; the session keeps running.
        """
        self._check_usable()
        samples = pcm.to_pcm16_mono(
            audio,
            sample_rate=sample_rate,
            target_rate=self.config.input_sample_rate,
            input_rate_default=self.config.input_sample_rate,
        )
        for frame in self._reframer.push(samples):
            await self._send_frame(frame, pace)

    async def flush_audio(self) -> None:
        """Send the partial frame held back by re-framing, padded with silence."""
        self._check_usable()
        for frame in self._reframer.flush(pad=True):
            await self._send_frame(frame, False)

    async def _send_frame(self, frame: bytes, pace: bool) -> None:
        if pace:
            now = time.monotonic()
            if (
                self._pace_origin is None
                or self._pace_origin + self.audio_samples_sent / self.config.input_sample_rate < now - 0.5
            ):
                # (Re)start the audio clock; after a long pause, do not burst to catch up.
                self._pace_origin = now - self.audio_samples_sent / self.config.input_sample_rate
            due = self._pace_origin + self.audio_samples_sent / self.config.input_sample_rate
            if due > now:
                await asyncio.sleep(due - now)
        await self._enqueue(self.protocol.audio_event(frame))
        if self._input_listeners:
            now = time.monotonic()
            for listener in tuple(self._input_listeners):
                try:
                    listener(frame, now, self.config.input_sample_rate)
                except Exception:
                    log.exception("input listener failed")
        self.audio_events_sent += 1
        self.audio_samples_sent += len(frame) // 2
        self.last_audio_sent_at = time.monotonic()

    async def send_text(self, text: str) -> None:
        """Cross-modal text (Nova 2): typed input the model answers as if it had been spoken."""
        self._check_usable()
        for event in self.protocol.text_events(text):
            await self._enqueue(wire.encode(event))

    async def send_tool_result(self, tool_use_id: str, result: Any) -> None:
        """Answer a ``toolUse``: ``result`` is sent as a JSON object (see wire.tool_result_content)."""
        self._check_usable()
        if not isinstance(tool_use_id, str) or not tool_use_id:
            raise ConfigError("tool_use_id must be the non-empty toolUseId of a ToolUse event")
        for event in self.protocol.tool_result_events(tool_use_id, result):
            await self._enqueue(wire.encode(event))
        self._publish(ev.ToolResultSent(timestamp=time.monotonic(), tool_use_id=tool_use_id, result=result))

    async def receive_audio(self) -> AsyncIterator[AudioOutputChunk]:
        """The model's speech: chunks as they arrive; ends when the session ends."""
        while (chunk := await self._audio.get()) is not None:
            yield chunk

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every typed event since the session opened; ends with SessionClosed."""
        while (event := await self._events.get()) is not None:
            yield event

    async def close(self) -> None:
        """Send the closing sequence and end the stream, within ``config.close_timeout_s``."""
        if self._closing or self._closed.is_set():
            await self._wait(self._closed.wait(), self.config.close_timeout_s)
            return
        self._closing = True
        deadline = time.monotonic() + self.config.close_timeout_s
        if self._failure is None and self._sender is not None:
            # Closing events go out even after an error in the model, to free its resources (§2.6).
            for frame in self._reframer.flush(pad=True):
                self._outbox.put_nowait(self.protocol.audio_event(frame))
            for event in self.protocol.closing_events():
                self._outbox.put_nowait(wire.encode(event))
        self._outbox.put_nowait(_CLOSE)
        if self._sender is not None:
            await self._wait(self._sender, deadline - time.monotonic())
        if self._stream is not None and self._failure is None:
            await self._wait(self._stream.input_stream.close(), deadline - time.monotonic())
        if self._reader is not None:
            await self._wait(self._reader, deadline - time.monotonic())
        await self._abort()
        self._finish("closed")

    async def _abort(self) -> None:
        """Abandon whatever is still running. Tasks stuck in the SDK are cancelled, not awaited."""
        for task in (self._sender, self._reader, *self._background):
            if task is not None and not task.done():
                task.cancel()
        self._closing = True

    @staticmethod
    async def _wait(awaitable: Any, timeout: float) -> bool:
        """Wait at most ``timeout`` s without cancelling ``awaitable`` on time-out (§10)."""
        task = asyncio.ensure_future(awaitable)
        if task.done():
            return True
        done, _ = await asyncio.wait({task}, timeout=max(timeout, 0.0))
        if done and not task.cancelled() and task.exception() is not None:
            log.debug("ignored during close: %r", task.exception())
        return bool(done)

    def __repr__(self) -> str:
        state = "failed" if self._failure else "closed" if self.closed else "open"
        return f"<NovaSession {state} prompt={self.protocol.prompt_name} voice={self.voice_id}>"
