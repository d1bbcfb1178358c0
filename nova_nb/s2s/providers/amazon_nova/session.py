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
import inspect
import logging
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ....errors import ConfigError, ProtocolError, SessionClosedError, StreamError
from ... import events as ev
from ...config import Config
from ...session import S2SSession
from ...types import ConversationContext, HistoryMessage, Tool
from .client import NovaClientProtocol, shape_history, tool_specs
from .transport import pin_credentials, resolve_identity, stream_error_from

if TYPE_CHECKING:
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient

log = logging.getLogger("nova_nb.session")

#: Input events waiting for the sender before send_audio() waits (backpressure). At 32 ms frames this
#: is ~4 s of audio: enough to ride out a slow moment, small enough that a dead stream is noticed.
SEND_QUEUE_HIGH_WATER = 128
#: How long a tool handler may run before the session answers the model with an error result.
TOOL_TIMEOUT_S = 60.0
#: Backoff before reconnect attempt n (seconds); the last value repeats.
RECONNECT_BACKOFF_S = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: Refusals of the first open that mean "busy: wait and retry" (§8, §12: the account's ceiling of
#: concurrent streams), as ``stream_error_from`` codes them (wire names for the in-stream types, the
#: HTTP type otherwise), compared without case. Access denied, validation and auth errors fail at once.
OPEN_RETRY_CODES = frozenset(
    {"throttlingexception", "servicequotaexceededexception", "serviceunavailableexception"}
)
#: Backoff before retry n of a refused first open: doubling from the base up to the cap, each drawn
#: from [d/2, d] so that many sessions refused together do not come back together.
OPEN_BACKOFF_BASE_S = 0.5
OPEN_BACKOFF_MAX_S = 8.0
#: No retry starts later than this after the first try (each try is bounded by ``open_timeout_s``).
OPEN_RETRY_BUDGET_S = 60.0
#: A stream that stayed up this long resets the count of failures in a row.
RECONNECT_HEALTHY_S = 10.0
#: User audio held while no stream can take it (during a reconnect), at most.
HOLD_MAX_S = 30.0
#: After a continuation, the old stream finishes the reply it is speaking, for at most this long.
RETIRE_MAX_S = 30.0
#: Conversation text kept for replaying as history: the service takes 40 KB (§2.4).
HISTORY_KEEP_BYTES = 40 * 1024

_CLOSE = object()  # sentinel that stops a sender


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
        # A reply is one or more AUDIO blocks (PARTIAL_TURN between sentences, §12): the turn is open
        # from its first audio until a block ends it (END_TURN, INTERRUPTED). Between two sentences
        # ``speaking`` is empty while the turn is not over; a retiring stream must wait for the turn.
        self.turn_content: str | None = None
        # ASSISTANT SPECULATIVE texts whose FINAL has not come yet: FINAL texts arrive paced to when
        # playback would end (§12), after the audio, and they are what goes into the history.
        self.finals_due = 0
        # Every ASSISTANT AUDIO block this stream sent, with when its first chunk arrived, in order:
        # after a continuation two streams may speak at once, and only this says which spoke what.
        self.audio_blocks: dict[str, float] = {}

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
            for payload in self.protocol.closing_payloads():
                self.outbox.put_nowait(payload)
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
    """A session of the ``amazon_nova`` provider. Made by ``provider.start_streaming``.

    The input and output pipelines are :class:`~nova_nb.s2s.session.S2SSession`'s; this class adds the
    streams: it sends each frame on the current stream (or holds it during a reconnect), renews
    streams, keeps the history, runs tool handlers and turns Nova's events into the pipeline's calls.
    """

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
        super().__init__(config, voice_id=voice_id, enable_streaming=enable_streaming)
        self.context = context
        self._client = client
        self._credentials = credentials
        self._tools: dict[str, Tool] = {t.name: t for t in context.tools}
        self._tool_specs = tool_specs(context.tools)
        self.protocol = self._new_protocol()
        self._stream: _Stream | None = None
        self.streams: list[_Stream] = []
        self._renewal: asyncio.Task[None] | None = None
        self._failures_in_a_row = 0
        self._background: set[asyncio.Task[Any]] = set()
        # What a new stream needs to carry the conversation on.
        self.history: list[HistoryMessage] = list(context.history_messages())
        self._history_bytes = sum(len(m.text.encode()) for m in self.history)
        frame_s = config.frame_ms / 1000
        self._recent: deque[bytes] = deque(maxlen=max(int(config.replay_s / frame_s), 0) or 1)
        self._held: deque[bytes] = deque(maxlen=int(HOLD_MAX_S / frame_s))
        # Counters of the streams, beside the pipeline's (S2SSession).
        self.replayed_samples = 0
        self.events_sent = 0
        self.renewals = 0

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
        """Open the first stream. Errors here are raised to the caller of start_streaming().

        A throttled or busy service (:data:`OPEN_RETRY_CODES`) is retried with backoff, at most
        ``config.reconnect_attempts`` times and within :data:`OPEN_RETRY_BUDGET_S`; each retry is logged
        and published as ``Reconnecting`` (seen in ``events()`` once the caller has the session).
        """
        started = time.monotonic()
        retries = 0
        while True:
            # Build (and so validate) the setup events before opening anything: a bad history must not
            # leave an open stream behind. A retry starts from a fresh protocol state.
            setup = self.protocol.setup_payloads(self.context.system_prompt, self.history)
            stream = _Stream(self, self.protocol, 0)
            try:
                await stream.open(
                    self._client, self.config.model_id, setup, self.config.open_timeout_s, self._credentials
                )
                break
            except StreamError as exc:
                if exc.code.lower() not in OPEN_RETRY_CODES:
                    raise
                elapsed = time.monotonic() - started
                delay = min(OPEN_BACKOFF_BASE_S * 2**retries, OPEN_BACKOFF_MAX_S)
                delay = random.uniform(delay / 2, delay)
                if retries >= self.config.reconnect_attempts or elapsed + delay > OPEN_RETRY_BUDGET_S:
                    if retries == 0:
                        raise
                    raise StreamError(
                        f"{exc.args[0]} (still refused after {retries} retries over {elapsed:.1f} s; "
                        "reconnect_attempts bounds the retries)",
                        code=exc.code,
                        recoverable=exc.recoverable,
                    ) from exc
                retries += 1
                log.warning(
                    "opening the stream was refused (%s); retry %d of %d in %.2f s",
                    exc,
                    retries,
                    self.config.reconnect_attempts,
                    delay,
                )
                self._publish(
                    ev.Reconnecting(
                        timestamp=time.monotonic(),
                        code=exc.code,
                        message=str(exc.args[0]),
                        attempt=retries,
                        delay_s=delay,
                    )
                )
                await asyncio.sleep(delay)
                self.protocol = self._new_protocol()
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
            # History holds the decided turns; the replayed audio (self._recent) only what came after
            # the last decision, so nothing is given twice.
            history = shape_history(self.history)
            setup = protocol.setup_payloads(self.context.system_prompt, history)
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
            if reason == "continuation":
                # A planned hand-over that worked: whatever failed before is behind us.
                self._failures_in_a_row = 0
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
            while (old.turn_content is not None or old.finals_due > 0) and (  # noqa: ASYNC110
                not old.ended.is_set() and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)
            await old.close(self.config.close_timeout_s)

        self._spawn(retire(), "nova-retire")

    def _on_stream_end(self, stream: _Stream, error: StreamError | None) -> None:
        now = time.monotonic()
        unfinished = set(stream.speaking)
        if stream.turn_content is not None:
            unfinished.add(stream.turn_content)  # ended between two sentences of its reply
        stream.speaking.clear()
        stream.turn_content = None
        for content_id in unfinished:
            # A reply this stream was still speaking will never finish: end its turn for the player,
            # as an interruption (a new stream does not continue a reply; the user asks again).
            self._abandon_turn(content_id, now)
        if stream is not self._stream or self._closing:
            return  # a retired stream, or the session is closing anyway
        if error is None:
            self._finish("ended")
            return
        if stream.age_s >= RECONNECT_HEALTHY_S or (
            error.code == "modelTimeoutException" and stream.age_s >= 1
        ):
            # A stream that lived a while, or one that simply reached the service's time limit (§1: 8
            # minutes; shorter in tests), is not a failure in a row: only streams that keep dying young
            # should make the session give up.
            self._failures_in_a_row = 0
        if error.recoverable and self.config.reconnect and self.config.reconnect_attempts > 0:
            self._start_renewal("reconnect", error)
        else:
            self._fail(error)

    # -- output ------------------------------------------------------------------------------------

    def _dispatch(self, stream: _Stream, event: ev.Event) -> None:
        """Route one event from a stream's reader into the output pipeline (S2SSession)."""
        if isinstance(event, ev.AudioOutput):
            stream.audio_blocks.setdefault(event.content_id, event.timestamp)
            stream.turn_content = event.content_id
            if self._output_audio(event) and event.content_id not in stream.speaking:
                stream.speaking.add(event.content_id)
                # §9: continue on a new stream when the assistant next starts speaking.
                if (
                    stream is self._stream
                    and self.config.continuation
                    and stream.age_s >= self.config.continuation_after_s
                ):
                    self._start_renewal("continuation")
            return
        if isinstance(event, ev.Interruption):
            # The reply is over; of its sentences only the one being heard may still get a FINAL.
            stream.turn_content = None
            stream.finals_due = min(stream.finals_due, 1)
            self._interrupt(event)
            return
        if isinstance(event, ev.StreamErrorEvent) and self._stream is not None and stream is not self._stream:
            return
        if isinstance(event, ev.Transcript) and event.role == "ASSISTANT":
            if event.stage == "SPECULATIVE":
                stream.finals_due += 1
            elif stream.finals_due > 0:
                stream.finals_due -= 1
        if isinstance(event, ev.Transcript) and event.role == "USER" and event.stage != "SPECULATIVE":
            # The turn is decided and its words go into the history: the audio before this moment
            # must not be replayed to a new stream as well, or the model would answer it twice.
            # What is kept from here on is what no stream has turned into a turn yet.
            self._recent.clear()
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
            if event.stop_reason != "PARTIAL_TURN":  # a PARTIAL_TURN block is followed by more of the turn
                if stream.turn_content == event.content_id or not stream.speaking:
                    stream.turn_content = None
                self._end_turn_audio(event.content_id, event.timestamp)
        elif isinstance(event, ev.ToolUse):
            self._handle_tool_use(event)

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

    # -- failure -----------------------------------------------------------------------------------

    def _fail(self, error: StreamError) -> None:
        super()._fail(error)
        for stream in self.streams:
            stream.drained.set()  # wake a send waiting on backpressure: it sees the failure

    # -- input ---------------------------------------------------------------------------------------

    @property
    def prompt_name(self) -> str:
        return self.protocol.prompt_name

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

    async def _send_frame_to_service(self, frame: bytes) -> None:
        self._recent.append(frame)
        stream = self._stream
        if stream is None or stream.ended.is_set():
            # Between streams (a reconnect is under way): hold the audio for the next stream.
            self._held.append(frame)
        else:
            await self._enqueue(stream.protocol.audio_event(frame))
            stream.audio_samples += len(frame) // 2

    async def send_text(self, text: str) -> None:
        """Cross-modal text (Nova 2): typed input the model answers as if it had been spoken."""
        self._check_usable()
        for payload in self.protocol.text_payloads(text):
            await self._enqueue(payload)

    async def send_tool_result(self, tool_use_id: str, result: Any) -> None:
        """Answer a ``toolUse``: ``result`` is sent as a JSON object (see wire.tool_result_content)."""
        self._check_usable()
        if not isinstance(tool_use_id, str) or not tool_use_id:
            raise ConfigError("tool_use_id must be the non-empty toolUseId of a ToolUse event")
        for payload in self.protocol.tool_result_payloads(tool_use_id, result):
            await self._enqueue(payload)
        self._publish(ev.ToolResultSent(timestamp=time.monotonic(), tool_use_id=tool_use_id, result=result))

    # -- the end -------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Send the closing sequence and end the stream(s), within ``config.close_timeout_s``."""
        if self._closing:
            await _wait(self._closed.wait(), self.config.close_timeout_s, cancel_on_timeout=True)
            return
        # Also after a failure (the session is already "closed" then): the streams' tasks must still
        # be stopped, or the sender and the SDK's request-body task are left pending for ever.
        self._closing = True
        pending = self._stop_input()
        deadline = time.monotonic() + self.config.close_timeout_s
        if self._renewal is not None and not self._renewal.done():
            self._renewal.cancel()
        flush: list[bytes] = []
        if self._stream is not None and self._failure is None:
            flush = [self._stream.protocol.audio_event(f) for f in pending]
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
