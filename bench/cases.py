"""The measurements, each for the provider (nova_nb) and for the bare SDK, against one emulator process.

Every case opens its own stream; the emulator's bench engine (``nova_nb.emulator.benchburst``) reads
its plan from the system prompt, so the provider and the bare SDK send the very same setup events.
CPU is ``time.process_time()`` of this process: all its threads, the SDK's CRT threads included,
and nothing of the emulator's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from nova_nb import s2s
from nova_nb.emulator.benchburst import BenchPlan, read_stamp, sink_receipt_text
from nova_nb.protocol import wire
from nova_nb.s2s import events as ev
from nova_nb.s2s.providers.amazon_nova.client import NovaClientProtocol

from . import _bare
from ._emulator import Endpoint

#: Bound on any single wait of a case: a stuck stream fails the bench instead of hanging it.
CASE_TIMEOUT_S: Final = 60.0
#: Audio per audioOutput event in the receive and latency cases (the service sends tens of ms).
OUTPUT_CHUNK_MS: Final = 40


class BenchError(RuntimeError):
    """A case could not be measured (the stream failed, or an answer never came)."""


@dataclass
class Clients:
    """The two clients under test, built once and reused by every case (as an application would)."""

    endpoint: Endpoint
    provider: Any
    bare_client: Any
    config: s2s.Config = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.provider.config

    @property
    def frame(self) -> bytes:
        """One input frame of silence at the configured size (32 ms = 1,024 bytes by default)."""
        return bytes(2 * self.config.input_frame_samples)

    @property
    def frame_s(self) -> float:
        return self.config.frame_ms / 1000

    async def open_session(self, plan: BenchPlan) -> Any:
        return await self.provider.start_streaming(s2s.ConversationContext(system_prompt=plan.to_prompt()))

    async def open_bare(self, plan: BenchPlan, on_payload: Callable[[bytes], None]) -> BareSetup:
        """A bare stream with the provider's own setup events (built by the same protocol code)."""
        c = self.config
        protocol = NovaClientProtocol(
            model_id=c.model_id,
            voice_id=c.resolved_voice_id,
            input_sample_rate=c.input_sample_rate,
            output_sample_rate=c.output_sample_rate,
            max_tokens=c.max_tokens,
            top_p=c.top_p,
            temperature=c.temperature,
            endpointing_sensitivity=c.endpointing_sensitivity,
        )
        setup = [wire.encode(e) for e in protocol.setup_events(plan.to_prompt())]
        closing = [wire.encode(e) for e in protocol.closing_events()]
        head, tail = _bare.audio_input_parts(protocol.prompt_name, protocol.audio_content_name)
        if _bare.audio_input(head, tail, self.frame) != wire.audio_input_bytes(
            protocol.prompt_name, protocol.audio_content_name, self.frame
        ):
            raise BenchError("the bare client's audioInput differs from the provider's")
        stream = _bare.BareStream(self.bare_client, c.model_id, on_payload)
        await stream.open(setup)
        return BareSetup(stream, head, tail, closing)


@dataclass
class BareSetup:
    stream: _bare.BareStream
    head: bytes
    tail: bytes
    closing: list[bytes]

    def audio(self, pcm: bytes) -> bytes:
        return _bare.audio_input(self.head, self.tail, pcm)


async def bounded(awaitable: Awaitable[Any], what: str, timeout: float = CASE_TIMEOUT_S) -> Any:
    """Wait for our own awaitable (never an SDK read) at most ``timeout`` s."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise BenchError(f"{what} did not happen within {timeout:g} s")
    return task.result()


def _start_clock() -> float:
    gc.collect()
    return time.process_time()


# --------------------------------------------------------------------------------------------------
# 1. Send: client CPU per audioInput event
# --------------------------------------------------------------------------------------------------


async def send_cpu_provider(clients: Clients, n: int) -> float:
    """CPU seconds to send ``n`` audioInput events through ``session.send_audio`` (one frame each)."""
    receipt = asyncio.Event()
    expected = sink_receipt_text(n)
    session = await clients.open_session(BenchPlan(mode="sink", count=n))

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.Transcript) and event.text == expected:
            receipt.set()

    session.add_listener(on_event)
    frame = clients.frame
    try:
        start = _start_clock()
        for _ in range(n):
            await session.send_audio(frame)
        await bounded(receipt.wait(), f"the emulator's receipt for {n} events")
        cpu = time.process_time() - start
        if session.audio_events_sent != n:
            raise BenchError(f"the provider sent {session.audio_events_sent} audio events, not {n}")
    finally:
        await session.close()
    return cpu


async def send_cpu_bare(clients: Clients, n: int) -> float:
    """The same, through ``input_stream.send`` from one task, encoding each frame as it goes."""
    receipt = asyncio.Event()
    expected = sink_receipt_text(n).encode()

    def on_payload(raw: bytes) -> None:
        if b'"textOutput"' in raw and expected in raw:
            receipt.set()

    bare = await clients.open_bare(BenchPlan(mode="sink", count=n), on_payload)
    frame, send, head, tail = clients.frame, bare.stream.send, bare.head, bare.tail
    try:
        start = _start_clock()
        for _ in range(n):
            await send(_bare.audio_input(head, tail, frame))
        await bounded(receipt.wait(), f"the emulator's receipt for {n} events")
        cpu = time.process_time() - start
    finally:
        await bare.stream.close(bare.closing)
    return cpu


# --------------------------------------------------------------------------------------------------
# 2. Receive: client CPU per audioOutput event
# --------------------------------------------------------------------------------------------------


def _burst(n: int, interval_ms: float = 0.0) -> BenchPlan:
    # The burst starts at the first audioInput, so the clock starts before any output arrives.
    return BenchPlan(
        mode="burst", count=n, chunk_ms=OUTPUT_CHUNK_MS, interval_ms=interval_ms, trigger="audio"
    )


async def receive_cpu_provider(clients: Clients, n: int) -> float:
    """CPU seconds from the trigger to the ``n``-th chunk handed out by ``session.receive_audio()``."""
    session = await clients.open_session(_burst(n))

    async def consume() -> float:
        got = 0
        async with contextlib.aclosing(session.receive_audio()) as chunks:
            async for chunk in chunks:
                if chunk.error is not None:
                    raise BenchError(f"the stream failed: {chunk.error}")
                if chunk.audio:
                    got += 1
                    if got == n:
                        return time.process_time()
        raise BenchError(f"the session ended after {got} of {n} chunks")

    try:
        start = _start_clock()
        consumer = asyncio.ensure_future(consume())
        await session.send_audio(clients.frame)
        end: float = await bounded(consumer, f"receiving {n} audio chunks")
    finally:
        await session.close()
    return end - start


async def receive_cpu_bare(clients: Clients, n: int) -> float:
    """The same through ``rx.receive()``: ``json.loads`` and base64-decode each event, no more."""
    done = asyncio.Event()
    got = 0
    end = 0.0

    def on_payload(raw: bytes) -> None:
        nonlocal got, end
        body = json.loads(raw)["event"].get("audioOutput")
        if body is not None and base64.b64decode(body["content"]):
            got += 1
            if got == n:
                end = time.process_time()
                done.set()

    bare = await clients.open_bare(_burst(n), on_payload)
    try:
        start = _start_clock()
        await bare.stream.send(bare.audio(clients.frame))
        await bounded(done.wait(), f"receiving {n} audio events")
    finally:
        await bare.stream.close(bare.closing)
    return end - start


# --------------------------------------------------------------------------------------------------
# 3. Delivery latency: emulator send → handed to the application
# --------------------------------------------------------------------------------------------------


@dataclass
class Latencies:
    #: emulator send → the application has the PCM (provider: receive_audio() yields it).
    delivered: list[float]
    #: emulator send → the provider's reader took it from the SDK (provider only).
    arrived: list[float] = field(default_factory=list)


async def _paced_mic(send_one: Callable[[], Awaitable[None]], frame_s: float, stop: asyncio.Event) -> None:
    """Send one frame per ``frame_s`` on an absolute schedule, as a live microphone does."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while not stop.is_set():
        await send_one()
        sent += 1
        delay = start + sent * frame_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def latency_provider(clients: Clients, n: int, interval_ms: float) -> Latencies:
    result = Latencies([], [])
    session = await clients.open_session(_burst(n, interval_ms))
    stop = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(session.receive_audio()) as chunks:
            async for chunk in chunks:
                if chunk.audio:
                    now = time.monotonic()
                    sent = read_stamp(chunk.audio)
                    result.delivered.append(now - sent)
                    result.arrived.append(chunk.timestamp - sent)
                    if len(result.delivered) == n:
                        return
        raise BenchError(f"the session ended after {len(result.delivered)} of {n} chunks")

    frame = clients.frame
    consumer = asyncio.ensure_future(consume())
    mic = asyncio.ensure_future(_paced_mic(lambda: session.send_audio(frame), clients.frame_s, stop))
    try:
        await bounded(
            consumer, f"receiving {n} paced chunks", timeout=CASE_TIMEOUT_S + n * interval_ms / 1000
        )
    finally:
        stop.set()
        await asyncio.wait({mic}, timeout=5)
        await session.close()
    return result


async def latency_bare(clients: Clients, n: int, interval_ms: float) -> Latencies:
    result = Latencies([])
    done = asyncio.Event()

    def on_payload(raw: bytes) -> None:
        body = json.loads(raw)["event"].get("audioOutput")
        if body is not None:
            pcm = base64.b64decode(body["content"])
            result.delivered.append(time.monotonic() - read_stamp(pcm))
            if len(result.delivered) == n:
                done.set()

    bare = await clients.open_bare(_burst(n, interval_ms), on_payload)
    stop = asyncio.Event()
    frame = clients.frame
    # The mic task is the only task that sends, until it has stopped (§10: one sender).
    mic = asyncio.ensure_future(
        _paced_mic(lambda: bare.stream.send(bare.audio(frame)), clients.frame_s, stop)
    )
    try:
        await bounded(
            done.wait(), f"receiving {n} paced events", timeout=CASE_TIMEOUT_S + n * interval_ms / 1000
        )
    finally:
        stop.set()
        await asyncio.wait({mic}, timeout=5)
        await bare.stream.close(bare.closing)
    return result


# --------------------------------------------------------------------------------------------------
# 4. close()
# --------------------------------------------------------------------------------------------------

#: Chunks of the reply received before closing: close() runs while the model is still talking.
CLOSE_AFTER_CHUNKS: Final = 5


async def close_provider(clients: Clients) -> float:
    """Wall seconds of ``session.close()`` in mid-reply, after the microphone stopped."""
    session = await clients.open_session(_burst(100_000, 20))
    enough = asyncio.Event()
    stop = asyncio.Event()

    async def consume() -> None:
        got = 0
        async for chunk in session.receive_audio():
            got += bool(chunk.audio)
            if got >= CLOSE_AFTER_CHUNKS:
                enough.set()

    frame = clients.frame
    consumer = asyncio.ensure_future(consume())
    mic = asyncio.ensure_future(_paced_mic(lambda: session.send_audio(frame), clients.frame_s, stop))
    try:
        await bounded(enough.wait(), "the first chunks of the reply")
    finally:
        stop.set()
        await asyncio.wait({mic}, timeout=5)
        started = time.perf_counter()
        await session.close()
        took = time.perf_counter() - started
    await bounded(consumer, "the end of receive_audio() after close()", timeout=5)
    if session.error is not None:
        raise BenchError(f"the session failed while closing: {session.error}")
    return took


async def close_bare(clients: Clients) -> float:
    """The same for the bare SDK: closing events, end of input, and the end of the response."""
    enough = asyncio.Event()
    got = 0

    def on_payload(raw: bytes) -> None:
        nonlocal got
        if b'"audioOutput"' in raw:
            got += 1
            if got >= CLOSE_AFTER_CHUNKS:
                enough.set()

    bare = await clients.open_bare(_burst(100_000, 20), on_payload)
    stop = asyncio.Event()
    frame = clients.frame
    mic = asyncio.ensure_future(
        _paced_mic(lambda: bare.stream.send(bare.audio(frame)), clients.frame_s, stop)
    )
    try:
        await bounded(enough.wait(), "the first events of the reply")
    finally:
        stop.set()
        await asyncio.wait({mic}, timeout=5)
        started = time.perf_counter()
        await bare.stream.close(bare.closing)
        took = time.perf_counter() - started
    if bare.stream.reader is not None and not bare.stream.reader.done():
        raise BenchError("the bare stream's response did not end within the close bound")
    return took
