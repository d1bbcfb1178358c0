"""The emulator's HTTPS/HTTP/2 endpoint for ``InvokeModelWithBidirectionalStream``.

It speaks the wire protocol the real SDK expects (docs/PROTOCOL.md §1, §8, §10): TLS with ALPN
``h2``, ``POST /model/{modelId}/invoke-with-bidirectional-stream``, SigV4 on the request and on every
input event, event-stream framed ``chunk`` events both ways, modeled exceptions as exception frames,
and HTTP-level errors in the restJson1 form the SDK turns into its modeled exceptions
(``x-amzn-errortype`` header, JSON body with ``message``).

What a conversation *means* is not decided here: each stream is handed to a ``StreamHandler`` as a
:class:`ServerStream`, which receives the client's event JSON and sends the handler's events.

Latency (§10): the CRT client does not set TCP_NODELAY, so with delayed ACKs on both sides a small
event can wait ~40 ms. The server sets TCP_NODELAY and re-arms TCP_QUICKACK after every read (Linux
clears it again on its own). Python's ``ssl`` transport would hide those reads during the TLS
handshake and afterwards, so TLS runs here over an ``ssl.MemoryBIO`` pair inside a plain
``asyncio.Protocol`` that sees every read.

Only 127.0.0.1 is served: the emulator accepts fake credentials and is a test fixture, not a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from nova_nb.emulator.eventstream import (
    EventStreamError,
    MessageDecoder,
    decode_message,
    encode_chunk_event,
    encode_exception,
    unwrap_chunk,
)
from nova_nb.emulator.sigv4 import (
    BEDROCK_SERVICE,
    EmulatorCredentials,
    EventChainVerifier,
    SignatureError,
    verify_request,
)
from nova_nb.emulator.tls import TlsFiles, generate_tls_files
from nova_nb.errors import ConfigError, NovaNbError, one_of
from nova_nb.protocol import catalog

logger = logging.getLogger(__name__)

#: The only address served (module docstring).
LOOPBACK: Final = "127.0.0.1"
ALPN_H2: Final = "h2"
#: ``POST /model/{modelId}/invoke-with-bidirectional-stream`` (§1); the id arrives percent-encoded.
ROUTE: Final = re.compile(r"/model/(?P<model>[^/]+)/invoke-with-bidirectional-stream")
EVENT_STREAM_CONTENT_TYPE: Final = "application/vnd.amazon.eventstream"
JSON_CONTENT_TYPE: Final = "application/json"

#: A client that connects but does not finish the TLS handshake within this time is dropped.
HANDSHAKE_TIMEOUT_S: Final = 10.0
#: Bytes asked of the TLS layer per read; a TLS record carries at most 16 KiB of plaintext.
TLS_READ_SIZE: Final = 64 * 1024
#: Receive window per stream and for the connection. HTTP/2's default (65,535 bytes) holds about
#: 30 audio events of 32 ms; 1 MiB lets a client run ahead by several seconds of audio while the
#: handler is busy, and still bounds what one stream can make the server buffer.
RECEIVE_WINDOW: Final = 1024 * 1024
HTTP2_DEFAULT_WINDOW: Final = 65_535
MAX_CONCURRENT_STREAMS: Final = 100
#: Transport write buffer marks: above HIGH, senders wait until it drains below LOW.
WRITE_BUFFER_HIGH: Final = 1024 * 1024
WRITE_BUFFER_LOW: Final = 256 * 1024

# Answers the service gives; the ValidationException text is the service's for a bad model id.
INVALID_MODEL_MESSAGE: Final = "The provided model identifier is invalid."
INTERNAL_ERROR_MESSAGE: Final = "The server encountered an internal error while processing the request."
# Assumption: the service's answer to input that is not valid event-stream framing or not a
# ``chunk`` event is not documented; a validationException is the closest modeled in-stream error.
MALFORMED_INPUT_EXCEPTION: Final = "validationException"


@dataclass(frozen=True)
class RequestInfo:
    """What a handler or admission hook learns about a call.

    ``headers`` are the request's headers (names in lower case, repeated values joined with ``,``),
    without HTTP/2 pseudo-headers; a session token is replaced by ``<redacted>``.
    """

    model_id: str
    region: str
    access_key_id: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class HttpError:
    """An HTTP-level error answer: status, ``x-amzn-errortype`` and the JSON ``message``."""

    status: int
    error_type: str
    message: str


class StreamClosedError(NovaNbError, ConnectionError):
    """Sending on a stream whose response has ended, was reset, or whose connection is gone."""


class EmulatorStateError(NovaNbError, RuntimeError):
    """An emulator used in the wrong state (not started yet, or stopped). Also a ``RuntimeError``."""


StreamHandler = Callable[["ServerStream"], Awaitable[None]]
Admission = Callable[[RequestInfo], HttpError | None]

_END: Final = None  # the inbox sentinel for "input ended"


class ServerStream:
    """One ``InvokeModelWithBidirectionalStream`` call, as the handler sees it."""

    def __init__(
        self, connection: _Connection, stream_id: int, info: RequestInfo, verifier: EventChainVerifier
    ) -> None:
        self.info = info
        self.stream_id = stream_id
        self.received_events = 0
        self.sent_events = 0
        self._connection = connection
        self._verifier = verifier
        self._decoder = MessageDecoder()
        # (event JSON or the end sentinel, flow-controlled bytes to acknowledge once consumed)
        self._inbox: deque[tuple[bytes | None, int]] = deque()
        self._inbox_ready = asyncio.Event()
        self._input_open = True
        self._signed_end = False
        self._send_lock = asyncio.Lock()
        # Set when bad input condemns the stream: its exception frame must be the last message,
        # so the handler's own sends are refused from that instant (the frame is sent by a task).
        self._failing = False
        #: "open", then "ended" (END_STREAM sent), "reset" (either side) or "lost" (connection gone).
        self.response_state = "open"
        #: The 200 response headers, while a handler that holds the response has not opened it.
        self._held_headers: list[tuple[str, str]] | None = None
        #: The x-amzn-requestid of the response, which in-stream error messages also carry.
        self.request_id = str(uuid.uuid4())

    @property
    def response_opened(self) -> bool:
        """Whether the response headers have been sent."""
        return self._held_headers is None

    def open_response(self) -> None:
        """Send the held response headers now (nothing if they were sent already).

        The real service answers the HTTP request only once the setup events have arrived: a client
        that awaits the response before sending them waits ~20 s (docs/PROTOCOL.md §12). Handlers
        marked ``holds_response`` get their headers held until they call this, or until they first
        send anything.
        """
        headers, self._held_headers = self._held_headers, None
        if headers is not None and self.response_state == "open":
            self._connection.send_response_headers(self.stream_id, headers)

    def __repr__(self) -> str:
        return (
            f"ServerStream(id={self.stream_id}, model={self.info.model_id!r}, "
            f"received={self.received_events}, sent={self.sent_events}, response={self.response_state})"
        )

    @property
    def input_open(self) -> bool:
        return self._input_open

    # --- input -------------------------------------------------------------------------------

    async def receive(self) -> bytes | None:
        """The next input event's JSON bytes; ``None`` once the input has ended (for good)."""
        while not self._inbox:
            self._inbox_ready.clear()
            await self._inbox_ready.wait()
        event, ack = self._inbox[0]
        if event is None:
            return None  # the sentinel stays, so every later call also returns None
        self._inbox.popleft()
        if ack:
            # Opening the window only as events are consumed is what makes a slow handler slow
            # the client down instead of growing our buffers.
            self._connection.acknowledge(self.stream_id, ack)
        self.received_events += 1
        return event

    def _deliver(self, event: bytes | None, ack: int) -> None:
        self._inbox.append((event, ack))
        self._inbox_ready.set()

    def _close_input(self) -> int:
        """Drop unread input (reset, lost connection, broken signature chain, handler done).

        Returns the flow-controlled bytes of the dropped events, which the caller acknowledges.
        """
        unread = sum(ack for _, ack in self._inbox)
        self._inbox.clear()
        self._input_open = False
        self._deliver(_END, 0)
        return unread

    def _on_data(self, data: bytes, flow_controlled: int) -> int:
        """Take one DATA frame; return the bytes to acknowledge now (the rest when consumed)."""
        if not self._input_open:
            return flow_controlled  # nobody will read it: keep the client's window open
        try:
            messages = self._decoder.feed(data)
            delivered = 0
            for message in messages:
                payload = self._verifier.verify(message)
                if not payload:
                    self._signed_end = True  # the signed empty message: END_STREAM follows (§10)
                    continue
                self._deliver(unwrap_chunk(decode_message(payload)), 0)
                delivered += 1
        except SignatureError as exc:
            logger.info("stream %d: %s", self.stream_id, exc)
            return flow_controlled + self._fail(exc.error_type, exc.service_message)
        except EventStreamError as exc:
            logger.info("stream %d: malformed input: %s", self.stream_id, exc)
            return flow_controlled + self._fail(
                MALFORMED_INPUT_EXCEPTION, f"Invalid input event stream: {exc}"
            )
        if not delivered:
            # Part of a message, or only the end marker: nothing waits to be consumed, and holding
            # the window back for a message bigger than it would deadlock.
            return flow_controlled
        last_event, _ = self._inbox[-1]
        self._inbox[-1] = (last_event, flow_controlled)
        return 0

    def _on_input_end(self) -> None:
        """END_STREAM from the client: events not yet read stay readable, then ``None``."""
        if not self._input_open:
            return
        if not self._signed_end:
            logger.info("stream %d: input ended without the signed empty end message", self.stream_id)
        if self._decoder.buffered:
            logger.info("stream %d: input ended inside a message", self.stream_id)
        self._input_open = False
        self._deliver(_END, 0)

    def _fail(self, exception_type: str, message: str) -> int:
        """Answer bad input with an exception frame and end the stream; return bytes to acknowledge."""
        self._failing = True

        async def send_failure() -> None:
            with contextlib.suppress(StreamClosedError):
                await self._send(encode_exception(exception_type, message), end_stream=True, failure=True)

        self._connection.spawn(send_failure())
        return self._close_input()

    # --- output ------------------------------------------------------------------------------

    async def _send(self, data: bytes, *, end_stream: bool = False, failure: bool = False) -> None:
        if self._failing and not failure:
            raise StreamClosedError(f"stream {self.stream_id}: failed on invalid input")
        async with self._send_lock:
            if self.response_state != "open":
                raise StreamClosedError(f"stream {self.stream_id}: the response is {self.response_state}")
            self.open_response()
            await self._connection.send_data(self, data, end_stream=end_stream)
            if end_stream and self.response_state == "open":
                self.response_state = "ended"

    async def send_event(self, event: bytes | Mapping[str, Any]) -> None:
        """Send one event (JSON bytes, or a mapping to JSON-encode) as a ``chunk``; waits for flow control."""
        raw = event if isinstance(event, bytes) else json.dumps(event).encode()
        await self._send(encode_chunk_event(raw))
        self.sent_events += 1

    async def send_exception(self, exception_type: str, message: str) -> None:
        """Send a modeled exception frame (e.g. ``validationException``), then end the response.

        Only the in-stream exception types of the operation's model are accepted (§8): the SDK
        cannot deserialize any other and would fail with an unrelated error.
        """
        exceptions = catalog.STREAM_EXCEPTIONS
        if exception_type not in exceptions:
            raise ConfigError(
                f"unknown in-stream exception type {exception_type!r}; valid: {one_of(exceptions)}"
            )
        if not message.startswith("RequestId="):
            # The service's in-stream error messages read "RequestId=<uuid> : <message>" (§12).
            message = f"RequestId={self.request_id} : {message}"
        await self._send(encode_exception(exception_type, message), end_stream=True)

    async def end(self) -> None:
        """END_STREAM on the response. Does nothing when the response is no longer open."""
        with contextlib.suppress(StreamClosedError):
            await self._send(b"", end_stream=True)

    async def reset(self) -> None:
        """RST_STREAM with NO_ERROR, as the service does at times (§8); the client sees a clean end (§10)."""
        self._connection.reset_stream(self)

    async def drop_connection(self) -> None:
        """Abort the TCP connection under this stream (and any other stream on it)."""
        self._connection.abort()

    def _mark(self, state: str) -> int:
        if self.response_state == "open":
            self.response_state = state
        return self._close_input()


class _Connection(asyncio.Protocol):
    """One client connection: TLS over memory BIOs, then HTTP/2 with h2 (sans-I/O)."""

    def __init__(self, server: EmulatorServer, tls_context: ssl.SSLContext) -> None:
        self._server = server
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = tls_context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._handshaken = False
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self._transport: asyncio.Transport | None = None
        self._socket: Any = None
        self._streams: dict[int, ServerStream] = {}
        # One waiter per stream while a send of it waits for flow-control window (sends of one
        # stream are serialised, so there is at most one).
        self._window_open: dict[int, asyncio.Event] = {}
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        # While a read is being processed, writes are batched into one flush at its end.
        self._reading = False
        self._handshake_timer: asyncio.TimerHandle | None = None

    # --- transport callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)
        self._socket = transport.get_extra_info("socket")
        if self._socket is not None:
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rearm_quickack()
        self._handshake_timer = asyncio.get_running_loop().call_later(
            HANDSHAKE_TIMEOUT_S, self._handshake_timed_out
        )
        self._server._connections.add(self)

    def data_received(self, data: bytes) -> None:
        # Every read, handshake included: Linux drops out of quick-ACK mode by itself (§10).
        self._rearm_quickack()
        self._incoming.write(data)
        if not self._handshaken and not self._handshake():
            return
        self._read_tls()

    def eof_received(self) -> bool | None:
        self._incoming.write_eof()
        return False  # close the transport

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writable.set()
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        for stream in self._streams.values():
            stream._mark("lost")
        for event in self._window_open.values():
            event.set()
        self._server._connections.discard(self)

    # --- TLS -----------------------------------------------------------------------------------

    def _rearm_quickack(self) -> None:
        quickack = getattr(socket, "TCP_QUICKACK", None)  # Linux only
        if quickack is not None and self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    def _handshake(self) -> bool:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return False
        except ssl.SSLError as exc:
            logger.info("TLS handshake failed: %s", exc)
            self._flush_tls()
            self.abort()
            return False
        self._handshaken = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._tls.selected_alpn_protocol() != ALPN_H2:
            # The CRT client falls back to HTTP/1.1 without ALPN, and then cannot stream (§10).
            logger.info("client did not negotiate HTTP/2 (ALPN h2); closing")
            self._flush_tls()
            self.abort()
            return False
        self._h2.initiate_connection()
        self._h2.update_settings(
            {
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            }
        )
        self._h2.increment_flow_control_window(RECEIVE_WINDOW - HTTP2_DEFAULT_WINDOW)
        self._flush()
        return True

    def _handshake_timed_out(self) -> None:
        if not self._handshaken:
            logger.info("TLS handshake did not finish within %.0f s; closing", HANDSHAKE_TIMEOUT_S)
            self.abort()

    def _read_tls(self) -> None:
        self._reading = True
        try:
            self._read_tls_records()
        finally:
            self._reading = False
        self._flush()

    def _read_tls_records(self) -> None:
        while not self._closed:
            try:
                data = self._tls.read(TLS_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self.close()
                return
            except ssl.SSLError as exc:
                logger.info("TLS error: %s", exc)
                self.abort()
                return
            if not data:
                self.close()
                return
            try:
                events = self._h2.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                logger.info("HTTP/2 protocol error from client: %s", exc)
                self._flush()  # h2 has queued a GOAWAY
                self.close()
                return
            for event in events:
                self._handle(event)

    def _flush_tls(self) -> None:
        out = self._outgoing.read()
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(out)

    def _flush(self) -> None:
        if self._reading:
            return
        data = self._h2.data_to_send()
        if data and not self._closed:
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:
                logger.info("TLS write failed: %s", exc)
                self.abort()
                return
        self._flush_tls()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._tls.unwrap()  # close_notify; raises SSLWantReadError awaiting the peer's
            self._flush_tls()
            self._transport.close()

    def abort(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.abort()
        # connection_lost follows on the next loop iteration; streams learn it now.
        for stream in self._streams.values():
            stream._mark("lost")
        for event in self._window_open.values():
            event.set()

    def goodbye(self) -> None:
        """GOAWAY then close, for server shutdown."""
        if not self._closed and self._handshaken:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.close_connection()
            self._flush()
        self.close()

    # --- HTTP/2 --------------------------------------------------------------------------------

    def spawn(self, coro: Awaitable[None]) -> None:
        self._server._spawn(coro)

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            try:
                self._on_request(event)
            except Exception:
                # A failing admission hook (or a bug) must cost one call, not the connection.
                logger.exception("could not open stream %d", event.stream_id)
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self._respond_error(
                        event.stream_id, HttpError(500, "InternalServerException", INTERNAL_ERROR_MESSAGE)
                    )
        elif isinstance(event, h2.events.DataReceived):
            stream_id = event.stream_id
            stream = self._streams.get(stream_id)
            length = event.flow_controlled_length
            ack = stream._on_data(event.data, length) if stream is not None else length
            self.acknowledge(stream_id, ack)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream._on_input_end()
        elif isinstance(event, h2.events.StreamReset):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                logger.debug("stream %d reset by client (code %s)", event.stream_id, event.error_code)
                stream._mark("reset")
            self._wake(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            # A connection-level update (stream 0) or a new initial window may unblock any sender.
            stream_id = getattr(event, "stream_id", 0)
            if stream_id:
                self._wake(stream_id)
            else:
                for waiter in self._window_open.values():
                    waiter.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in event.headers or ()]
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        method, target = pseudo.get(":method", ""), pseudo.get(":path", "")
        raw_path = target.partition("?")[0]
        route = ROUTE.fullmatch(raw_path)
        if method != "POST" or route is None:
            self._respond_error(
                stream_id,
                HttpError(404, "UnknownOperationException", f"No operation matches {method} {raw_path}"),
            )
            return
        server = self._server
        try:
            verified = verify_request(
                method=method,
                path=target,
                headers=headers,
                credentials=server.accepted_credentials,
                region=server.region,
                service=BEDROCK_SERVICE,
            )
        except SignatureError as exc:
            logger.info("refused stream %d: %s", stream_id, exc)
            self._respond_error(stream_id, HttpError(exc.http_status, exc.error_type, exc.service_message))
            return
        fields: dict[str, str] = {}
        for name, value in headers:
            if not name.startswith(":"):
                fields[name] = f"{fields[name]},{value}" if name in fields else value
        if "x-amz-security-token" in fields:
            fields["x-amz-security-token"] = "<redacted>"
        info = RequestInfo(
            model_id=unquote(route["model"]),
            region=server.region,
            access_key_id=verified.access_key_id,
            headers=MappingProxyType(fields),
        )
        if info.model_id not in server.model_ids:
            self._respond_error(stream_id, HttpError(400, "ValidationException", INVALID_MODEL_MESSAGE))
            return
        if server.admission is not None:
            refusal = server.admission(info)
            if refusal is not None:
                self._respond_error(stream_id, refusal)
                return
        stream = ServerStream(self, stream_id, info, verified.event_verifier())
        self._streams[stream_id] = stream
        headers = [
            (":status", "200"),
            ("content-type", EVENT_STREAM_CONTENT_TYPE),
            ("x-amzn-requestid", stream.request_id),
        ]
        if getattr(server.handler, "holds_response", False):
            stream._held_headers = headers  # sent by stream.open_response() (see there)
        else:
            self.send_response_headers(stream_id, headers)
        if event.stream_ended:
            stream._on_input_end()
        server._start_handler(stream)

    def send_response_headers(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.send_headers(stream_id, headers)
            self._flush()

    def _respond_error(self, stream_id: int, error: HttpError) -> None:
        """Answer in the restJson1 error form: the SDK reads ``x-amzn-errortype`` and ``message``.

        The request side is left open and whatever the client still sends is acknowledged and
        dropped. RFC 9113 §8.1 would allow an RST_STREAM(NO_ERROR) here, but whether the service
        sends one is not known, and after a reset the SDK's ``input_stream.close()`` hangs (§10),
        while clients are told to close their input after an error (§2).
        """
        body = json.dumps({"message": error.message}).encode()
        self._h2.send_headers(
            stream_id,
            [
                (":status", str(error.status)),
                ("content-type", JSON_CONTENT_TYPE),
                ("content-length", str(len(body))),
                ("x-amzn-requestid", str(uuid.uuid4())),
                ("x-amzn-errortype", error.error_type),
            ],
        )
        if self._h2.local_flow_control_window(stream_id) >= len(body):
            self._h2.send_data(stream_id, body, end_stream=True)
        else:  # a connection window exhausted by other streams: an unusual but legal state
            self.spawn(self._send_error_body(stream_id, body))
        self._flush()

    async def _send_error_body(self, stream_id: int, body: bytes) -> None:
        with contextlib.suppress(StreamClosedError, h2.exceptions.ProtocolError):
            await self._send_frames(stream_id, body, end_stream=True)

    def acknowledge(self, stream_id: int, size: int) -> None:
        if size <= 0 or self._closed:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.acknowledge_received_data(size, stream_id)
            self._flush()

    def _wake(self, stream_id: int) -> None:
        waiter = self._window_open.get(stream_id)
        if waiter is not None:
            waiter.set()

    async def send_data(self, stream: ServerStream, data: bytes, *, end_stream: bool) -> None:
        try:
            await self._send_frames(stream.stream_id, data, end_stream=end_stream, stream=stream)
        except h2.exceptions.ProtocolError as exc:  # includes h2's StreamClosedError
            stream._mark("reset")
            raise StreamClosedError(f"stream {stream.stream_id} is closed: {exc}") from exc

    async def _send_frames(
        self, stream_id: int, data: bytes, *, end_stream: bool, stream: ServerStream | None = None
    ) -> None:
        """Send ``data`` in frames that fit the peer's flow-control windows and frame size."""
        view = memoryview(data)
        offset = 0
        waiter = self._window_open[stream_id] = asyncio.Event()
        try:
            while True:
                if self._closed or (stream is not None and stream.response_state != "open"):
                    state = stream.response_state if stream is not None else "lost"
                    raise StreamClosedError(f"stream {stream_id}: the response is {state}")
                if not self._writable.is_set():
                    await self._writable.wait()
                    continue
                remaining = len(view) - offset
                window = self._h2.local_flow_control_window(stream_id)
                size = min(remaining, window, self._h2.max_outbound_frame_size)
                if remaining and size <= 0:
                    waiter.clear()
                    await waiter.wait()
                    continue
                last = offset + size == len(view)
                chunk = view[offset : offset + size].tobytes()
                self._h2.send_data(stream_id, chunk, end_stream=end_stream and last)
                offset += size
                self._flush()
                if last:
                    return
        finally:
            if self._window_open.get(stream_id) is waiter:
                del self._window_open[stream_id]

    def reset_stream(self, stream: ServerStream) -> None:
        if stream.response_state in ("reset", "lost") or self._closed:
            stream._mark("reset")
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream.stream_id, ErrorCodes.NO_ERROR)
        self._flush()
        stream.response_state = "reset"
        stream._close_input()
        self._wake(stream.stream_id)

    def forget(self, stream: ServerStream) -> None:
        self._streams.pop(stream.stream_id, None)


class EmulatorServer:
    """An HTTPS/HTTP/2 server on 127.0.0.1 that answers ``InvokeModelWithBidirectionalStream``.

    ``handler`` is called once per accepted stream; when it returns, the server ends the stream if
    the handler did not. ``admission`` may refuse a call at open with any HTTP-level error.
    ``model_ids`` defaults to the models of the catalog (§1). ``refuse_retired=True`` also refuses
    the models the catalog says are retired today (Nova Sonic v1 since 2026-09-14, §12), the way the
    service refuses an unknown id. Off by default: whether the service refuses a model past its end of
    life on every account is not observed (some may still reach it), and the emulator is where Nova 1
    behaviour can still be tested.
    """

    def __init__(
        self,
        *,
        handler: StreamHandler,
        credentials: EmulatorCredentials | None = None,
        region: str = "us-east-1",
        host: str = LOOPBACK,
        port: int = 0,
        tls_dir: str | Path | None = None,
        admission: Admission | None = None,
        model_ids: Collection[str] | None = None,
        refuse_retired: bool = False,
    ) -> None:
        if host != LOOPBACK:
            raise ConfigError(
                f"the emulator binds to {LOOPBACK} only (it accepts fake credentials); got host={host!r}"
            )
        if not 0 <= port <= 65535:
            raise ConfigError(f"port must be 0 (any free port) to 65535, got {port}")
        self.handler = handler
        self.credentials = credentials or EmulatorCredentials.generate()
        self._accepted: tuple[EmulatorCredentials, ...] = (self.credentials,)
        self.region = region
        self.host = host
        self.port = port
        self.admission = admission
        self.model_ids: frozenset[str] = (
            frozenset(model_ids) if model_ids is not None else frozenset(catalog.MODELS)
        )
        self.refuse_retired = refuse_retired
        if refuse_retired:
            self.model_ids -= frozenset(catalog.models_with_status("retired"))
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._temp_dir: Path | None = None
        self._tls_files: TlsFiles | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._active: set[ServerStream] = set()
        self._stopped = False

    def __repr__(self) -> str:
        return (
            f"EmulatorServer(endpoint={self.endpoint_uri!r}, region={self.region!r}, "
            f"active_streams={self.active_streams})"
        )

    @property
    def accepted_credentials(self) -> tuple[EmulatorCredentials, ...]:
        """The credentials new calls may sign with (streams already open keep their own)."""
        return self._accepted

    def rotate_credentials(self, *, keep_old: bool = False) -> EmulatorCredentials:
        """Issue new temporary credentials (with a session token), as STS would at a refresh.

        With ``keep_old=False`` the previous ones expire now: calls signed with them are refused
        (ExpiredTokenException-like 403), while streams already open go on.
        """
        new = EmulatorCredentials.generate()
        token = secrets.token_urlsafe(32)
        new = EmulatorCredentials(new.access_key_id, new.secret_access_key, session_token=token)
        self._accepted = (*self._accepted, new) if keep_old else (new,)
        self.credentials = new
        return new

    @property
    def endpoint_uri(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        if self._tls_files is None:
            raise EmulatorStateError(
                "the emulator has not been started, so its CA does not exist yet; call start() first"
            )
        return self._tls_files.ca_file

    @property
    def active_streams(self) -> int:
        return len(self._active)

    async def start(self) -> None:
        if self._server is not None:
            return
        if self._stopped:
            raise EmulatorStateError("an EmulatorServer cannot be restarted once stopped; create a new one")
        if self._tls_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="nova-nb-emulator-"))
        folder = self._tls_dir or self._temp_dir
        assert folder is not None
        self._tls_files = generate_tls_files(folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._tls_files.cert_file, self._tls_files.key_file)
        context.set_alpn_protocols([ALPN_H2])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, context), host=self.host, port=self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("Nova Sonic emulator listening on %s", self.endpoint_uri)

    # The interface takes a timeout (not asyncio.timeout around the call) so that stop() can spend
    # it on the handlers and still close sockets and remove files when they overrun it.
    async def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every connection, cancel handlers; bounded by ``timeout``."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.goodbye()
        pending = {t for t in self._handlers | self._tasks if not t.done()}
        for task in pending:
            task.cancel()
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            if still:
                logger.warning("%d emulator task(s) did not finish within %.1f s", len(still), timeout)
        for connection in list(self._connections):
            connection.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_handler(self, stream: ServerStream) -> None:
        self._active.add(stream)
        task = asyncio.get_running_loop().create_task(
            self._run_handler(stream), name=f"nova-nb-emulator-stream-{stream.stream_id}"
        )
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _run_handler(self, stream: ServerStream) -> None:
        try:
            await self.handler(stream)
        except StreamClosedError as exc:
            logger.debug("handler of stream %d stopped: %s", stream.stream_id, exc)
        except Exception:
            logger.exception("handler of stream %d failed", stream.stream_id)
            with contextlib.suppress(StreamClosedError):
                await stream.send_exception("internalServerException", INTERNAL_ERROR_MESSAGE)
        finally:
            self._active.discard(stream)
            if stream.response_state == "open":
                with contextlib.suppress(Exception):
                    await stream.end()
            # Input the handler left unread is acknowledged now and, once the stream is
            # forgotten, as it arrives (the connection acknowledges data of unknown streams).
            stream._connection.acknowledge(stream.stream_id, stream._close_input())
            stream._connection.forget(stream)
