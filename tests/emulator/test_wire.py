"""The emulator's wire layer driven by the real AWS SDK (CRT transport) over loopback.

Every SDK wait is bounded with ``asyncio.wait({task}, timeout=...)``: cancelling a pending
``receive()`` kills the SDK's output stream, and ``send()``/``close()`` can hang after a reset
(docs/PROTOCOL.md §10), so tasks that overrun are abandoned, never cancelled mid-read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import ssl
import stat
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    AccessDeniedException,
    BidirectionalInputPayloadPart,
    InternalServerException,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
    ModelTimeoutException,
    ThrottlingException,
    ValidationException,
)
from smithy_aws_core.identity import AWSCredentialsIdentity
from smithy_aws_core.identity.static import StaticCredentialsResolver
from smithy_core.exceptions import CallError, ModeledError

from nova_nb.emulator import (
    BackgroundEmulator,
    EmulatorCredentials,
    EmulatorServer,
    HttpError,
    MessageDecoder,
    RequestInfo,
    ServerStream,
)
from nova_nb.emulator.tls import KEY_FILE_NAME, generate_tls_files
from nova_nb.errors import ConfigError
from nova_nb.s2s.providers.amazon_nova._crt import (
    TlsTrustError,
    TrustingCRTHTTPClient,
    check_tls_trust,
    check_tls_trust_async,
)

from . import sdk_signing

NOVA_SONIC = "amazon.nova-sonic-v1:0"
NOVA_2_SONIC = "amazon.nova-2-sonic-v1:0"
WAIT_S = 5.0


async def bounded[T](awaitable: Awaitable[T], timeout: float = WAIT_S, what: str = "SDK call") -> T:
    """Await with a deadline, abandoning (not cancelling) the task when it overruns."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        raise AssertionError(f"{what} did not finish within {timeout} s")
    return task.result()


@pytest.fixture(autouse=True)
async def quiet_crt_body_writer() -> AsyncIterator[None]:
    """Silence one known SDK artifact, and only that one.

    When a stream ends before its input does (reset, dropped connection, client closed while a
    write was pending), the CRT task that writes the request body fails with
    AWS_ERROR_HTTP_STREAM_HAS_COMPLETED. Nothing can retrieve that exception (the task is private to
    awscrt), so asyncio logs "Task exception was never retrieved" when it is collected. Everything
    else still reaches the loop's normal handler.
    """
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        future = context.get("future")
        coro = future.get_coro() if isinstance(future, asyncio.Task) else None
        name = getattr(coro, "__qualname__", "")
        if name.endswith("_set_request_body_generator") and "HTTP_STREAM_HAS_COMPLETED" in repr(
            context.get("exception")
        ):
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    yield


class Call:
    """One SDK bidirectional call, with bounded waits and one long-lived receive task."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.rx: Any = None
        self._pending: asyncio.Future[Any] | None = None

    async def open(self) -> None:
        _, self.rx = await bounded(self.stream.await_output(), what="await_output()")

    async def send(self, event: bytes | dict[str, Any]) -> None:
        raw = event if isinstance(event, bytes) else json.dumps(event).encode()
        chunk = InvokeModelWithBidirectionalStreamInputChunk(value=BidirectionalInputPayloadPart(bytes_=raw))
        await bounded(self.stream.input_stream.send(chunk), what="send()")

    async def receive(self, timeout: float = WAIT_S) -> bytes | None:
        """The next event's bytes, ``None`` at the end; exception frames raise."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.rx.receive())
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            raise AssertionError(f"no output event within {timeout} s")  # the task stays for next time
        task, self._pending = self._pending, None
        result = task.result()
        return None if result is None else result.value.bytes_

    async def close_input(self) -> None:
        await bounded(self.stream.input_stream.close(), what="input_stream.close()")


@dataclass
class Harness:
    server: EmulatorServer
    streams: list[ServerStream] = field(default_factory=list)
    clients: list[AsyncBedrockRuntimeClient] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    async def tidy(self) -> None:
        """Close what the tests left open, best effort and bounded (after a reset, close() can hang)."""
        closing = [asyncio.ensure_future(c.stream.input_stream.close()) for c in self.calls]
        closing += [asyncio.ensure_future(client.close()) for client in self.clients]
        if closing:
            done, _ = await asyncio.wait(closing, timeout=1.0)
            for task in done:
                task.exception()  # retrieved: failures to close an already failed call are expected

    async def client(
        self,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        resolver: Any = None,
    ) -> AsyncBedrockRuntimeClient:
        creds = self.server.credentials
        identity = AWSCredentialsIdentity(
            access_key_id=access_key_id or creds.access_key_id,
            secret_access_key=secret_access_key or creds.secret_access_key,
            session_token=creds.session_token,
        )
        config = await AsyncBedrockRuntimeConfig.resolve(
            region=self.server.region,
            endpoint_uri=self.server.endpoint_uri,
            transport=TrustingCRTHTTPClient(self.server.ca_file),
            aws_credentials_identity_resolver=resolver or StaticCredentialsResolver(identity),
        )
        client = AsyncBedrockRuntimeClient(config=config)
        self.clients.append(client)
        return client

    async def call(self, model_id: str = NOVA_2_SONIC, **client_options: Any) -> Call:
        client = await self.client(**client_options)
        stream = await bounded(
            client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id=model_id)
            ),
            what="invoke_model_with_bidirectional_stream()",
        )
        call = Call(stream)
        self.calls.append(call)
        return call


Handler = Callable[[ServerStream], Awaitable[None]]


@asynccontextmanager
async def running(handler: Handler, **options: Any) -> AsyncIterator[Harness]:
    harness: Harness

    async def recording(stream: ServerStream) -> None:
        harness.streams.append(stream)
        await handler(stream)

    async with EmulatorServer(handler=recording, **options) as server:
        harness = Harness(server)
        await check_tls_trust_async(server.endpoint_uri, server.ca_file)
        try:
            yield harness
        finally:
            await harness.tidy()


async def echo(stream: ServerStream) -> None:
    while (event := await stream.receive()) is not None:
        await stream.send_event(event)


async def open_call(harness: Harness, **options: Any) -> Call:
    call = await harness.call(**options)
    await call.open()
    return call


# --- both directions -----------------------------------------------------------------------------


async def test_hundreds_of_events_both_ways_then_a_clean_end() -> None:
    async with running(echo) as h:
        call = await open_call(h)
        count = 300

        async def send_all() -> None:
            for i in range(count):
                await call.send({"event": {"n": i}})

        sender = asyncio.ensure_future(send_all())
        received = [json.loads(await call.receive() or b"null") for _ in range(count)]
        await bounded(sender)
        assert received == [{"event": {"n": i}} for i in range(count)]
        await call.close_input()
        assert await call.receive() is None
        (stream,) = h.streams
        assert (stream.received_events, stream.sent_events) == (count, count)
        assert stream.info.model_id == NOVA_2_SONIC and stream.info.region == "us-east-1"
        assert stream.info.access_key_id == h.server.credentials.access_key_id
        assert stream.info.headers["x-amz-content-sha256"] == "STREAMING-AWS4-HMAC-SHA256-EVENTS"


async def test_large_output_events_are_split_to_fit_flow_control() -> None:
    audio = [os.urandom(150_000 + i) for i in range(24)]  # ~3.6 MB base64-wrapped twice

    async def burst(stream: ServerStream) -> None:
        for i, pcm in enumerate(audio):
            await stream.send_event(
                {"event": {"audioOutput": {"i": i, "content": base64.b64encode(pcm).decode()}}}
            )

    async with running(burst) as h:
        call = await open_call(h)
        for i, pcm in enumerate(audio):
            event = json.loads(await call.receive() or b"null")["event"]["audioOutput"]
            assert event["i"] == i and base64.b64decode(event["content"]) == pcm
        assert await call.receive() is None


async def test_large_input_waits_for_a_slow_handler_instead_of_being_lost() -> None:
    blobs = [os.urandom(300_000) for _ in range(8)]  # ~4 MB on the wire, 4x the receive window
    got: list[bytes] = []

    async def slow(stream: ServerStream) -> None:
        await asyncio.sleep(0.3)  # the client fills the window meanwhile and must wait
        while (event := await stream.receive()) is not None:
            got.append(base64.b64decode(json.loads(event)["blob"]))
        await stream.send_event({"count": len(got)})

    async with running(slow) as h:
        call = await open_call(h)
        for blob in blobs:
            await call.send({"blob": base64.b64encode(blob).decode()})
        await call.close_input()
        assert json.loads(await call.receive() or b"null") == {"count": len(blobs)}
        assert got == blobs
        assert await call.receive() is None


async def test_server_ends_the_stream_when_the_handler_returns() -> None:
    async def one_reply(stream: ServerStream) -> None:
        await stream.receive()
        await stream.send_event(b'{"event": {"completionEnd": {}}}')

    async with running(one_reply) as h:
        call = await open_call(h)
        await call.send({"event": {"sessionStart": {}}})
        assert await call.receive() == b'{"event": {"completionEnd": {}}}'
        assert await call.receive() is None
        await call.close_input()  # closing input after the response ended is clean too
        assert h.server.active_streams == 0


async def test_temporary_credentials_with_a_session_token() -> None:
    base = EmulatorCredentials.generate()
    temporary = EmulatorCredentials(
        base.access_key_id, base.secret_access_key, session_token="FAKE-SESSION-TOKEN"
    )
    async with running(echo, credentials=temporary) as h:
        call = await open_call(h)
        await call.send(b'{"n": 1}')
        assert await call.receive() == b'{"n": 1}'
        assert h.streams[0].info.headers["x-amz-security-token"] == "<redacted>"
        assert "FAKE-SESSION-TOKEN" not in repr(h.server.credentials) + repr(h.streams[0].info)


# --- HTTP-level errors (restJson1 error form, docs/PROTOCOL.md §8) --------------------------------


async def test_wrong_secret_is_refused_with_invalid_signature() -> None:
    async with running(echo) as h:
        call = await h.call(secret_access_key="x" * 40)
        with pytest.raises(CallError) as info:
            await call.open()
    # InvalidSignatureException is not modeled for Bedrock runtime: the SDK keeps only its name.
    assert not isinstance(info.value, ModeledError)
    assert "status: 403" in info.value.message
    assert "InvalidSignatureException" in info.value.message
    assert h.streams == []


async def test_unknown_access_key_is_refused_as_unrecognized_client() -> None:
    async with running(echo) as h:
        call = await h.call(access_key_id=EmulatorCredentials.generate().access_key_id)
        with pytest.raises(CallError) as info:
            await call.open()
    assert not isinstance(info.value, ModeledError)
    assert "status: 403" in info.value.message
    assert "UnrecognizedClientException" in info.value.message


async def test_unknown_model_is_a_validation_exception() -> None:
    async with running(echo) as h:
        call = await h.call(model_id="amazon.nova-pro-v1:0")
        with pytest.raises(ValidationException) as info:
            await call.open()
    assert info.value.message == "The provided model identifier is invalid."


@pytest.mark.parametrize(
    ("error", "exception_type"),
    [
        (
            HttpError(429, "ThrottlingException", "Too many requests, please wait before trying again."),
            ThrottlingException,
        ),
        (
            HttpError(403, "AccessDeniedException", "You don't have access to the model."),
            AccessDeniedException,
        ),
    ],
)
async def test_admission_can_refuse_a_call(error: HttpError, exception_type: type[Exception]) -> None:
    seen: list[RequestInfo] = []

    def admission(info: RequestInfo) -> HttpError | None:
        seen.append(info)
        return error

    async with running(echo, admission=admission) as h:
        call = await h.call(model_id=NOVA_SONIC)
        with pytest.raises(exception_type) as info:
            await call.open()
    assert getattr(info.value, "message", None) == error.message
    assert [i.model_id for i in seen] == [NOVA_SONIC]
    assert h.streams == []


async def test_admission_that_returns_none_lets_the_call_through() -> None:
    async with running(echo, admission=lambda info: None) as h:
        call = await open_call(h)
        await call.send(b"{}")
        assert await call.receive() == b"{}"


# --- in-stream exceptions, resets, drops ---------------------------------------------------------


@pytest.mark.parametrize(
    ("exception_type", "sdk_type"),
    [("validationException", ValidationException), ("modelTimeoutException", ModelTimeoutException)],
)
async def test_exception_frames_are_raised_by_receive(exception_type: str, sdk_type: type[Exception]) -> None:
    message = "Chat history should be sent completely before streaming audio."

    async def complain(stream: ServerStream) -> None:
        await stream.receive()
        await stream.send_event({"event": {"completionStart": {}}})
        await stream.send_exception(exception_type, message)

    async with running(complain) as h:
        call = await open_call(h)
        await call.send({"event": {"sessionStart": {}}})
        assert await call.receive() == b'{"event": {"completionStart": {}}}'
        with pytest.raises(sdk_type) as info:
            await call.receive()
        # As the service does (§12): the message carries the request id of the response.
        got = str(getattr(info.value, "message", ""))
        assert re.fullmatch(r"RequestId=[0-9a-f-]{36} : " + re.escape(message), got), got


async def test_unknown_exception_types_are_refused_before_the_wire() -> None:
    outcome: list[BaseException] = []

    async def bad(stream: ServerStream) -> None:
        try:
            await stream.send_exception("teapotException", "no")
        except ConfigError as exc:
            outcome.append(exc)

    async with running(bad) as h:
        call = await open_call(h)
        assert await call.receive() is None
    assert "validationException" in str(outcome[0])


async def test_a_failing_handler_becomes_an_internal_server_exception() -> None:
    async def broken(stream: ServerStream) -> None:
        raise RuntimeError("boom")

    async with running(broken) as h:
        call = await open_call(h)
        with pytest.raises(InternalServerException):
            await call.receive()


async def test_rst_stream_looks_like_a_clean_end_to_the_sdk() -> None:
    async def reset_after_one(stream: ServerStream) -> None:
        await stream.send_event({"event": {"completionStart": {}}})
        await stream.reset()

    async with running(reset_after_one) as h:
        call = await open_call(h)
        assert await call.receive() == b'{"event": {"completionStart": {}}}'
        assert await call.receive() is None  # §10: not an error, just the end


async def test_a_dropped_connection_ends_receive() -> None:
    async def drop(stream: ServerStream) -> None:
        await stream.send_event({"event": {"completionStart": {}}})
        await asyncio.sleep(0.05)
        await stream.drop_connection()

    async with running(drop) as h:
        call = await open_call(h)
        assert await call.receive() == b'{"event": {"completionStart": {}}}'
        try:
            end = await call.receive()
        except OSError:
            end = None  # some CRT versions report the broken read instead
        assert end is None


class SwitchingResolver:
    """Signs the request with the right secret, then the events with a wrong one."""

    def __init__(self, creds: EmulatorCredentials) -> None:
        self.calls = 0
        self.good = AWSCredentialsIdentity(
            access_key_id=creds.access_key_id, secret_access_key=creds.secret_access_key
        )
        self.bad = AWSCredentialsIdentity(access_key_id=creds.access_key_id, secret_access_key="y" * 40)

    async def get_identity(self, *, properties: Any) -> AWSCredentialsIdentity:
        self.calls += 1
        return self.good if self.calls == 1 else self.bad


async def test_a_broken_event_signature_gets_an_exception_frame() -> None:
    async with running(echo) as h:
        call = await open_call(h, resolver=SwitchingResolver(h.server.credentials))
        await call.send({"event": {"sessionStart": {}}})
        with pytest.raises(ValidationException) as info:
            await call.receive()
        assert "signature" in (info.value.message or "")
        (stream,) = h.streams
        assert stream.received_events == 0


# --- latency (docs/PROTOCOL.md §10: QUICKACK) -----------------------------------------------------


async def test_event_round_trip_is_fast_on_loopback() -> None:
    async def answer_marked(stream: ServerStream) -> None:
        while (event := await stream.receive()) is not None:
            if json.loads(event).get("reply"):
                await stream.send_event(event)

    async with running(answer_marked) as h:
        call = await open_call(h)
        trips: list[float] = []
        for i in range(40):
            # Events the server does not answer, like audio input: without quick ACKs the client's
            # Nagle algorithm holds the next small write until a delayed ACK, about 40 ms.
            for _ in range(3):
                await call.send({"event": {"audioInput": {"content": "A" * 640}}})
                await asyncio.sleep(0.002)
            start = time.perf_counter()
            await call.send({"reply": True, "i": i})
            assert json.loads(await call.receive() or b"null")["i"] == i
            trips.append(time.perf_counter() - start)
    mean_ms = statistics.fmean(trips) * 1000
    print(f"event round trip on loopback: mean {mean_ms:.2f} ms, max {max(trips) * 1000:.2f} ms")
    assert mean_ms < 20


# --- what the SDK never sends: a bare HTTP/2 client ------------------------------------------------


class RawH2:
    """A minimal HTTP/2 client (h2 over an asyncio TLS stream) to send what the SDK would not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.flush()

    @classmethod
    async def connect(cls, server: EmulatorServer) -> RawH2:
        context = ssl.create_default_context(cafile=str(server.ca_file))
        context.set_alpn_protocols(["h2"])
        reader, writer = await bounded(asyncio.open_connection("127.0.0.1", server.port, ssl=context))
        return cls(reader, writer)

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    def request(self, headers: list[tuple[str, str]], body: bytes = b"", *, end: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=not body and end)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        return stream_id

    async def response(self, stream_id: int) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of a response, read until END_STREAM or a reset."""
        status, headers, body = 0, {}, b""
        async with asyncio.timeout(WAIT_S):
            while True:
                data = await self.reader.read(65536)
                assert data, "connection closed before the response ended"
                for event in self.conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                        headers = {str(k): str(v) for k, v in event.headers}
                        status = int(headers[":status"])
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                        body += event.data
                        self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        if event.stream_id == stream_id:
                            self.flush()
                            return status, headers, body
                self.flush()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await bounded(self.writer.wait_closed(), 2.0)


async def test_requests_the_sdk_never_sends() -> None:
    async with running(echo) as h:
        raw = await RawH2.connect(h.server)
        try:
            authority = [(":scheme", "https"), (":authority", f"127.0.0.1:{h.server.port}")]
            unsigned = raw.request([(":method", "POST"), (":path", sdk_signing.PATH + "?"), *authority])
            status, headers, body = await raw.response(unsigned)
            assert (status, headers["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")
            assert json.loads(body) == {"message": "Missing Authentication Token"}
            elsewhere = raw.request([(":method", "GET"), (":path", "/"), *authority])
            status, headers, _ = await raw.response(elsewhere)
            assert (status, headers["x-amzn-errortype"]) == (404, "UnknownOperationException")
        finally:
            await raw.close()
        assert h.streams == []


async def test_input_that_is_not_event_stream_framing_gets_an_exception_frame() -> None:
    async with running(echo) as h:
        signed = await sdk_signing.sign(h.server.credentials, port=h.server.port)
        raw = await RawH2.connect(h.server)
        try:
            stream_id = raw.request(signed.headers, b"definitely not an event-stream message", end=False)
            status, headers, body = await raw.response(stream_id)
        finally:
            await raw.close()
    assert status == 200 and headers["content-type"] == "application/vnd.amazon.eventstream"
    (message,) = MessageDecoder().feed(body)
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "validationException"
    assert "Invalid input event stream" in json.loads(message.payload)["message"]


async def test_a_failing_admission_hook_costs_the_call_not_the_server() -> None:
    def broken(info: RequestInfo) -> HttpError | None:
        raise RuntimeError("admission bug")

    async with running(echo, admission=broken) as h:
        for _ in range(2):
            call = await h.call()
            with pytest.raises(InternalServerException):
                await call.open()


# --- TLS trust, lifecycle, background thread -----------------------------------------------------


async def test_trust_check_names_endpoint_and_ca_when_it_fails(tmp_path: Path) -> None:
    other = generate_tls_files(tmp_path / "other")
    async with running(echo) as h:
        start = time.perf_counter()
        with pytest.raises(TlsTrustError) as info:
            await check_tls_trust_async(h.server.endpoint_uri, other.ca_file)
        assert time.perf_counter() - start < 3
        assert h.server.endpoint_uri in str(info.value) and str(other.ca_file) in str(info.value)
        port = h.server.port
    with pytest.raises(TlsTrustError, match="cannot connect"):
        await check_tls_trust_async(f"https://127.0.0.1:{port}", other.ca_file, timeout=1.0)


def test_tls_files_keep_the_key_private(tmp_path: Path) -> None:
    files = generate_tls_files(tmp_path)
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600
    assert files.key_file.name == KEY_FILE_NAME
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [files.ca_file.name, files.cert_file.name, files.key_file.name]
    )  # no CA key on disk
    again = generate_tls_files(tmp_path)  # a second run replaces the files, still private
    assert stat.S_IMODE(again.key_file.stat().st_mode) == 0o600


def test_only_loopback_is_served() -> None:
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1"):
        EmulatorServer(handler=echo, host="0.0.0.0")


async def test_stop_is_bounded_with_streams_open() -> None:
    async def wait_forever(stream: ServerStream) -> None:
        await asyncio.Event().wait()

    async with running(wait_forever) as h:
        call = await open_call(h)
        await call.send(b"{}")
        for _ in range(100):
            if h.server.active_streams:
                break
            await asyncio.sleep(0.01)
        assert h.server.active_streams == 1
        start = time.perf_counter()
        await h.server.stop(timeout=2.0)
        assert time.perf_counter() - start < 3
        try:
            assert await call.receive() is None
        except OSError:
            pass
        await h.server.stop()  # idempotent


async def test_background_emulator_from_inside_a_running_loop() -> None:
    asyncio.get_running_loop()  # we are on a running loop, as in Jupyter
    emulator = BackgroundEmulator(handler=echo).start(timeout=10)
    try:
        await check_tls_trust_async(emulator.endpoint_uri, emulator.ca_file)
        harness = Harness(emulator.server)
        call = await open_call(harness)
        for i in range(20):
            await call.send({"n": i})
            assert json.loads(await call.receive() or b"null") == {"n": i}
        await call.close_input()
        assert await call.receive() is None
        await harness.tidy()
    finally:
        start = time.perf_counter()
        await asyncio.to_thread(emulator.stop, 3.0)
        assert time.perf_counter() - start < 6
    emulator.stop()  # idempotent
    assert not emulator.running
    with pytest.raises(TlsTrustError):
        check_tls_trust(emulator.endpoint_uri, emulator.ca_file, timeout=1.0)
