"""A live Nova Sonic session: one conversation over one or more bidirectional streams.

The rules that shape :class:`_Stream` come from running the SDK (docs/PROTOCOL.md §10):

* One **sender task** fed by a queue writes every event. Cancelling a task inside ``send()`` drops an
  event that was already signed and breaks the signature chain, so nothing else ever calls ``send()``
  and the sender is stopped by a sentinel, not by cancellation.
* One long-lived **reader task** calls ``receive()``. Cancelling a pending ``receive()`` kills the
  output stream for good, so no read is ever wrapped in ``wait_for``.
* Every other wait is bounded with ``asyncio.wait({task}, timeout=...)``. After a reset, ``send()``
  can block for ever and ``close()`` can hang even under ``wait_for``: such tasks are abandoned.
* A reset or a dropped connection looks like a clean end (``receive()`` returns ``None``); a stream
  that ends before the client asked to close is reported as an error.

:class:`NovaSession` is what the user holds. A stream lives at most 8 minutes and can fail, so the
session outlives its streams (§9): it keeps the conversation (history from the FINAL transcripts) and
the last seconds of user audio, and when a stream nears its limit (continuation) or fails in a way
that a new stream can fix (reconnect) it opens the next one, replays the history and that audio, and
switches, losing no user audio. The protocol itself (what to send, what the output means) lives in
the sans-I/O :class:`~.client.NovaClientProtocol`; this module only moves bytes and hands out results.
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
from ....protocol import wire
from ... import events as ev
from ...config import Config
from ...session import S2SSession
from ...types import AudioOutputChunk, ConversationContext, HistoryMessage, Tool
from .client import NovaClientProtocol, shape_history
from .transport import pin_credentials, resolve_identity, stream_error_from

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
#: Backoff before reconnect attempt n (seconds); the last value repeats.
RECONNECT_BACKOFF_S = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: A stream that stayed up this long resets the count of failures in a row.
RECONNECT_HEALTHY_S = 10.0
#: User audio held while no stream can take it (during a reconnect), at most.
HOLD_MAX_S = 30.0
#: After a continuation, the old stream finishes the reply it is speaking, for at most this long.
RETIRE_MAX_S = 30.0
#: Conversation text kept for replaying as history: the service takes 40 KB (§2.4).
HISTORY_KEEP_BYTES = 40 * 1024

_CLOSE = object()  # sentinel that stops a sender


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


async def _wait(awaitable: Any, timeout: float, *, cancel_on_timeout: bool = False) -> bool:
    """Wait at most ``timeout`` s. SDK calls are not cancelled on time-out (§10: that can break the
    stream or hang); our own waits (``cancel_on_timeout=True``, e.g. on an Event) are, so they do
    not linger as pending tasks."""
    task = asyncio.ensure_future(awaitable)
    if task.done():
        return True
    try:
        done, _ = await asyncio.wait({task}, timeout=max(timeout, 0.0))
    except asyncio.CancelledError:
        if cancel_on_timeout:  # our caller was cancelled: do not leave our own waiter behind
            task.cancel()
        raise
    if not done and cancel_on_timeout:
        task.cancel()
    if done and not task.cancelled() and task.exception() is not None:
        log.debug("ignored while waiting: %r", task.exception())
    return bool(done)


class _Stream:
    """One InvokeModelWithBidirectionalStream: its protocol state, its sender and its reader."""

    def __init__(self, session: NovaSession, protocol: NovaClientProtocol, index: int) -> None:
        self.session = session
        self.protocol = protocol
        self.index = index
        self.sdk_stream: Any = None
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.drained = asyncio.Event()
        self.drained.set()
        self.sender: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.opened_at = time.monotonic()
        self.closing = False
        self.ended = asyncio.Event()
        self.error: StreamError | None = None
        self.events_sent = 0
        self.audio_samples = 0  # user audio samples queued on this stream (replays included)
        self.speaking: set[str] = set()  # ASSISTANT AUDIO blocks open on this stream

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.opened_at

    async def open(
        self,
        client: AsyncBedrockRuntimeClient,
        model_id: str,
        setup: list[bytes],
        timeout: float,
        credentials: Any,
    ) -> None:
        """Open the stream, queue the setup events, and wait (bounded) until the response opens.

        Credentials are resolved now, once, and pinned for this stream (see
        transport.PinnedCredentialsResolver): a refresh must not change keys in mid-stream.
        """
        from aws_sdk_bedrock_runtime.models import InvokeModelWithBidirectionalStreamOperationInput

        identity = await resolve_identity(credentials, timeout)
        invoke = asyncio.ensure_future(
            client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id=model_id),
                plugins=[pin_credentials(identity)],
            )
        )
        done, _ = await asyncio.wait({invoke}, timeout=timeout)
        if not done:
            invoke.cancel()
            raise StreamError(
                f"opening the stream took more than {timeout:g} s", code="Timeout", recoverable=True
            )
        try:
            self.sdk_stream = invoke.result()
        except Exception as exc:
            raise stream_error_from(exc) from exc
        self.opened_at = time.monotonic()
        self.sender = asyncio.create_task(self._send_loop(), name=f"nova-sender-{self.index}")
        for item in setup:
            self.outbox.put_nowait(item)
        self.reader = asyncio.create_task(self._read_loop(), name=f"nova-reader-{self.index}")
        # Queue first, then wait: whether the service answers the request before or after it has
        # read the first events, the response headers (and any HTTP error) arrive within the bound.
        done, _ = await asyncio.wait({self.opened}, timeout=timeout)
        if not done:
            self.abort()
            raise StreamError(
                f"no response from the endpoint within {timeout:g} s", code="Timeout", recoverable=True
            )
        if (open_error := self.opened.exception()) is not None:
            self.abort()
            raise open_error

    async def _send_loop(self) -> None:
        from aws_sdk_bedrock_runtime.models import (
            BidirectionalInputPayloadPart,
            InvokeModelWithBidirectionalStreamInputChunk,
        )

        send = self.sdk_stream.input_stream.send
        queue = self.outbox
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
                self.session.events_sent += 1
                if queue.qsize() < SEND_QUEUE_HIGH_WATER // 2:
                    self.drained.set()
        except Exception as exc:
            self._ended(stream_error_from(exc))

    async def _read_loop(self) -> None:
        try:
            _, receiver = await self.sdk_stream.await_output()
        except Exception as exc:
            error = stream_error_from(exc)
            if not self.opened.done():
                self.opened.set_exception(error)
            self._ended(error)
            return
        if not self.opened.done():
            self.opened.set_result(None)
        receive = receiver.receive
        protocol_receive = self.protocol.receive
        dispatch = self.session._dispatch
        try:
            while True:
                chunk = await receive()
                if chunk is None:
                    break
                now = time.monotonic()
                payload = getattr(getattr(chunk, "value", None), "bytes_", None)
                if payload is None:
                    # An output union member this SDK version does not know: pass it on.
                    dispatch(self, ev.UnknownEvent(timestamp=now, name=type(chunk).__name__, payload={}))
                    continue
                try:
                    events = protocol_receive(payload, now)
                except ProtocolError as exc:
                    log.warning("unparsable output event dropped: %s", exc)
                    dispatch(
                        self,
                        ev.StreamErrorEvent(
                            timestamp=now, code="ProtocolError", message=str(exc), recoverable=False
                        ),
                    )
                    continue
                for event in events:
                    dispatch(self, event)
        except Exception as exc:
            self._ended(stream_error_from(exc))
            return
        if self.closing:
            self._ended(None)
        else:
            # §10: a reset or a dropped connection looks like a clean end. Only an end the client
            # asked for is clean.
            self._ended(
                StreamError(
                    "the stream ended without the closing handshake (reset or dropped connection)",
                    code="StreamReset",
                    recoverable=True,
                )
            )

    def _ended(self, error: StreamError | None) -> None:
        if self.ended.is_set():
            return
        self.error = error
        self.ended.set()
        self.drained.set()  # wake a send_audio() waiting on backpressure so it sees the change
        self.session._on_stream_end(self, error)

    def put(self, item: bytes) -> None:
        self.outbox.put_nowait(item)
        if self.outbox.qsize() >= SEND_QUEUE_HIGH_WATER:
            self.drained.clear()

    async def close(self, timeout: float, *, flush: list[bytes] = ()) -> None:  # type: ignore[assignment]
        """Closing sequence (also after errors in the model, to free its resources, §2.6), bounded."""
        if self.closing:
            await _wait(self.ended.wait(), timeout, cancel_on_timeout=True)
            return
        self.closing = True
        deadline = time.monotonic() + timeout
        if self.error is None and self.sender is not None and not self.ended.is_set():
            for item in flush:
                self.outbox.put_nowait(item)
            for event in self.protocol.closing_events():
                self.outbox.put_nowait(wire.encode(event))
        self.outbox.put_nowait(_CLOSE)
        if self.sender is not None:
            await _wait(self.sender, deadline - time.monotonic())
        if self.sdk_stream is not None and self.error is None and not self.ended.is_set():
            await _wait(self.sdk_stream.input_stream.close(), deadline - time.monotonic())
        if self.reader is not None:
            await _wait(self.reader, deadline - time.monotonic())
        self.abort()

    def abort(self) -> None:
        """Abandon whatever is still running. Tasks stuck in the SDK are cancelled, not awaited."""
        self.closing = True
        for task in (self.sender, self.reader):
            if task is not None and not task.done():
                task.cancel()
        if not self.ended.is_set():
            self.ended.set()
        # A long session renews its stream every few minutes: keep the counters, free the rest.
        self.sdk_stream = None
        self.outbox = asyncio.Queue()


class NovaSession(S2SSession):
    """A session of the ``amazon_nova`` provider. Made by ``provider.start_streaming``."""

    def __init__(
        self,
        *,
        client: AsyncBedrockRuntimeClient,
        credentials: Any,
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
        self._credentials = credentials
        self._tools: dict[str, Tool] = {t.name: t for t in context.tools}
        self._tool_specs = [wire.ToolSpec(t.name, t.description, t.input_schema) for t in context.tools]
        self.protocol = self._new_protocol()
        self._stream: _Stream | None = None
        self.streams: list[_Stream] = []
        self._renewal: asyncio.Task[None] | None = None
        self._failures_in_a_row = 0
        self._audio: _Channel[AudioOutputChunk] = _Channel()
        self._audio_buffered = 0  # bytes of output audio in the channel
        self._events: _Channel[ev.Event] = _Channel(maxlen=EVENT_BUFFER_MAX)
        self._event_readers = 0
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
        # What a new stream needs to carry the conversation on.
        self.history: list[HistoryMessage] = list(context.history_messages())
        self._history_bytes = sum(len(m.text.encode()) for m in self.history)
        frame_s = config.frame_ms / 1000
        self._recent: deque[bytes] = deque(maxlen=max(int(config.replay_s / frame_s), 0) or 1)
        self._held: deque[bytes] = deque(maxlen=int(HOLD_MAX_S / frame_s))
        self._paused = False
        self._keepalive: asyncio.Task[None] | None = None
        # Counters, for tests, benchmarks and the notebooks.
        self.audio_events_sent = 0
        self.audio_samples_sent = 0  # unique user samples (replays not counted again)
        self.replayed_samples = 0
        self.muted_samples = 0
        self.events_sent = 0
        self.dropped_output_bytes = 0
        self.renewals = 0
        self.last_audio_sent_at: float | None = None

    def _new_protocol(self) -> NovaClientProtocol:
        c = self.config
        return NovaClientProtocol(
            model_id=c.model_id,
            voice_id=self.voice_id,
            input_sample_rate=c.input_sample_rate,
            output_sample_rate=c.output_sample_rate,
            max_tokens=c.max_tokens,
            top_p=c.top_p,
            temperature=c.temperature,
            endpointing_sensitivity=c.endpointing_sensitivity,
            tools=self._tool_specs,
        )

    # -- opening and renewing --------------------------------------------------------------------

    async def _open(self) -> None:
        """Open the first stream. Errors here are raised to the caller of start_streaming()."""
        # Build (and so validate) the setup events before opening anything: a bad history must not
        # leave an open stream behind.
        setup = [wire.encode(e) for e in self.protocol.setup_events(self.context.system_prompt, self.history)]
        stream = _Stream(self, self.protocol, 0)
        await stream.open(
            self._client, self.config.model_id, setup, self.config.open_timeout_s, self._credentials
        )
        self._stream = stream
        self.streams.append(stream)
        self._publish(
            ev.SessionStarted(
                timestamp=time.monotonic(),
                prompt_name=self.protocol.prompt_name,
                model_id=self.config.model_id,
                voice_id=self.voice_id,
            )
        )

    def _start_renewal(self, reason: str, error: StreamError | None = None) -> None:
        if self._renewal is not None and not self._renewal.done():
            return
        self._renewal = asyncio.create_task(self._renew(reason, error), name=f"nova-renew-{reason}")

    async def _renew(self, reason: str, error: StreamError | None) -> None:
        """Open the next stream with the conversation so far, replay recent audio, switch (§9)."""
        old = self._stream
        while not self._closing:
            delay = 0.0
            if reason == "reconnect":
                self._failures_in_a_row += 1
                if self._failures_in_a_row > self.config.reconnect_attempts:
                    assert error is not None
                    self._fail(
                        StreamError(
                            f"gave up after {self.config.reconnect_attempts} reconnects in a row; "
                            f"last error: {error}",
                            code=error.code,
                            recoverable=False,
                        )
                    )
                    return
                delay = RECONNECT_BACKOFF_S[min(self._failures_in_a_row - 1, len(RECONNECT_BACKOFF_S) - 1)]
                self._publish(
                    ev.Reconnecting(
                        timestamp=time.monotonic(),
                        code=error.code if error else "",
                        message=str(error.args[0]) if error else "",
                        attempt=self._failures_in_a_row,
                        delay_s=delay,
                    )
                )
                if delay:
                    await asyncio.sleep(delay)
            protocol = self._new_protocol()
            # The last USER message's audio is being replayed: do not also give it as history.
            history = shape_history(self.history, drop_last_user=bool(self._recent))
            setup = [wire.encode(e) for e in protocol.setup_events(self.context.system_prompt, history)]
            stream = _Stream(self, protocol, len(self.streams))
            try:
                await stream.open(
                    self._client, self.config.model_id, setup, self.config.open_timeout_s, self._credentials
                )
            except StreamError as exc:
                if not exc.recoverable:
                    self._fail(exc)
                    return
                reason, error = "reconnect", exc
                continue
            if self._closing:
                await stream.close(self.config.close_timeout_s)
                return
            self.streams.append(stream)
            replay = list(self._recent)
            for frame in replay:
                stream.put(protocol.audio_event(frame))
                stream.audio_samples += len(frame) // 2
            self.replayed_samples += sum(len(f) // 2 for f in replay)
            held = list(self._held)
            self._held.clear()
            for frame in held:
                stream.put(protocol.audio_event(frame))
                stream.audio_samples += len(frame) // 2
            self._stream, self.protocol = stream, protocol
            self.renewals += 1
            rate = self.config.input_sample_rate
            self._publish(
                ev.SessionRenewed(
                    timestamp=time.monotonic(),
                    reason=reason,
                    prompt_name=protocol.prompt_name,
                    previous_prompt_name=old.protocol.prompt_name if old else "",
                    history_messages=len(history),
                    replayed_s=sum(len(f) // 2 for f in replay) / rate,
                    held_s=sum(len(f) // 2 for f in held) / rate,
                )
            )
            if old is not None and old is not stream:
                self._retire(old)
            return

    def _retire(self, old: _Stream) -> None:
        """Close a replaced stream in the background: after the reply it is speaking, if any."""

        async def retire() -> None:
            deadline = time.monotonic() + RETIRE_MAX_S
            # Polling is fine here: a few checks a second, for one reply, in the background.
            while old.speaking and not old.ended.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await old.close(self.config.close_timeout_s)

        self._spawn(retire(), "nova-retire")

    def _on_stream_end(self, stream: _Stream, error: StreamError | None) -> None:
        now = time.monotonic()
        for content_id in tuple(stream.speaking):
            # A reply this stream was still speaking will never finish: end its turn for the player,
            # as an interruption (a new stream does not continue a reply; the user asks again).
            stream.speaking.discard(content_id)
            if content_id in self._interrupted_content:
                continue
            self._interrupted_content.add(content_id)
            self._audio.put(
                AudioOutputChunk(
                    b"", now, True, None, self.config.output_sample_rate, content_id, interrupted=True
                )
            )
        if stream is not self._stream or self._closing:
            return  # a retired stream, or the session is closing anyway
        if error is None:
            self._finish("ended")
            return
        if stream.age_s >= RECONNECT_HEALTHY_S:
            self._failures_in_a_row = 0
        if error.recoverable and self.config.reconnect and self.config.reconnect_attempts > 0:
            self._start_renewal("reconnect", error)
        else:
            self._fail(error)

    # -- output ------------------------------------------------------------------------------------

    def _publish(self, event: ev.Event) -> None:
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

    def _dispatch(self, stream: _Stream, event: ev.Event) -> None:
        if isinstance(event, ev.AudioOutput):
            if event.content_id in self._interrupted_content:
                self.dropped_output_bytes += len(event.audio)
                return  # audio of a response already interrupted: never hand it out
            if event.content_id not in stream.speaking:
                stream.speaking.add(event.content_id)
                # §9: continue on a new stream when the assistant next starts speaking.
                if (
                    stream is self._stream
                    and self.config.continuation
                    and stream.age_s >= self.config.continuation_after_s
                ):
                    self._start_renewal("continuation")
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
            return
        if isinstance(event, ev.Interruption):
            event = dataclasses.replace(event, dropped_bytes=self._drop_pending_audio(event))
            self._publish(event)
            return
        if isinstance(event, ev.StreamErrorEvent) and self._stream is not None and stream is not self._stream:
            return
        if isinstance(event, ev.Transcript) and event.stage != "SPECULATIVE" and event.text.strip():
            if event.role in ("USER", "ASSISTANT"):
                self.history.append(HistoryMessage(event.role, event.text))  # type: ignore[arg-type]
                # Keep what a new stream could be given (40 KB, §2.4) with room to merge; an
                # hour-long conversation must not grow this list for ever.
                self._history_bytes += len(event.text.encode())
                while self._history_bytes > 2 * HISTORY_KEEP_BYTES and len(self.history) > 1:
                    self._history_bytes -= len(self.history.pop(0).text.encode())
        self._publish(event)
        if isinstance(event, ev.ContentEnded) and event.type == "AUDIO" and event.role == "ASSISTANT":
            stream.speaking.discard(event.content_id)
            if event.stop_reason != "PARTIAL_TURN" and event.content_id not in self._interrupted_content:
                self._end_turn_audio(event.content_id, event.timestamp)
        elif isinstance(event, ev.ToolUse):
            self._handle_tool_use(event)

    def _end_turn_audio(self, content_id: str, now: float) -> None:
        """Mark the last chunk of a turn ``is_final``, or add an empty final chunk if it is gone."""
        rate = self.config.output_sample_rate
        if not self.enable_streaming:
            audio = b"".join(self._turn_audio.pop(content_id, []))
            self._put_audio(AudioOutputChunk(audio, now, True, None, rate, content_id))
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

    def _handle_tool_use(self, event: ev.ToolUse) -> None:
        tool = self._tools.get(event.tool_name)
        if tool is None or tool.handler is None:
            return  # the application answers through send_tool_result()
        self._spawn(self._run_tool(tool, event), f"tool-{event.tool_name}")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
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
        for stream in self.streams:
            stream.drained.set()
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

    @property
    def paused(self) -> bool:
        return self._paused

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
        """Queue an event on the current stream, waiting (bounded) if it is backed up."""
        stream = self._stream
        assert stream is not None
        stream.put(item)
        if stream.drained.is_set():
            return
        done = await _wait(stream.drained.wait(), self.config.open_timeout_s, cancel_on_timeout=True)
        if not done and stream is self._stream:
            stream._ended(
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
        While :meth:`pause` is in effect the audio is replaced by silence (the microphone is muted).

        Raises AudioFormatError (a ValueError) for unusable input; the session keeps running.
        """
        self._check_usable()
        rate = self.config.input_sample_rate
        if (
            type(audio) is bytes
            and len(audio) == 2 * self.config.input_frame_samples
            and sample_rate in (None, rate)
            and not self._reframer.pending
            and not self._paused
        ):
            # The hot path of a microphone: exactly one frame of PCM at the input rate.
            await self._send_frame(audio, pace)
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
        self._recent.append(frame)
        stream = self._stream
        if stream is None or stream.ended.is_set():
            # Between streams (a reconnect is under way): hold the audio for the next stream.
            self._held.append(frame)
        else:
            await self._enqueue(stream.protocol.audio_event(frame))
            stream.audio_samples += len(frame) // 2
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
        self._keepalive = asyncio.create_task(self._keep_alive(), name="nova-keepalive")

    def resume(self) -> None:
        """Unmute: send_audio() reaches the model again."""
        self._paused = False
        if self._keepalive is not None:
            self._keepalive.cancel()  # it only sleeps or queues; never inside the SDK's send()
            self._keepalive = None

    async def _keep_alive(self) -> None:
        silence = bytes(self.config.input_frame_samples * 2)
        frame_s = self.config.frame_ms / 1000
        while self._paused and not self.closed:
            await self._send_frame(silence, pace=True)
            await asyncio.sleep(frame_s / 4)

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

    async def close(self) -> None:
        """Send the closing sequence and end the stream(s), within ``config.close_timeout_s``."""
        if self._closing:
            await _wait(self._closed.wait(), self.config.close_timeout_s, cancel_on_timeout=True)
            return
        # Also after a failure (the session is already "closed" then): the streams' tasks must still
        # be stopped, or the sender and the SDK's request-body task are left pending for ever.
        self._closing = True
        self._paused = False
        if self._keepalive is not None:
            self._keepalive.cancel()
        deadline = time.monotonic() + self.config.close_timeout_s
        if self._renewal is not None and not self._renewal.done():
            self._renewal.cancel()
        flush: list[bytes] = []
        if self._stream is not None and self._failure is None:
            flush = [self._stream.protocol.audio_event(f) for f in self._reframer.flush(pad=True)]
        closers = [
            s.close(max(deadline - time.monotonic(), 0), flush=flush if s is self._stream else [])
            for s in self.streams
            if not s.closing
        ]
        if closers:
            await _wait(asyncio.gather(*closers, return_exceptions=True), deadline - time.monotonic())
        for stream in self.streams:
            stream.abort()
        for task in tuple(self._background):
            task.cancel()
        self._finish("closed")

    def __repr__(self) -> str:
        state = "failed" if self._failure else "closed" if self.closed else "open"
        prompt, streams = self.protocol.prompt_name, len(self.streams)
        return f"<NovaSession {state} prompt={prompt} voice={self.voice_id} streams={streams}>"
