"""A stream handler for benchmarks: measured bursts of ``audioOutput``, or a counted sink for input.

Not a conversation. ``bench/`` uses it (``nova-nb emulator serve --engine bench-burst``) to make the
emulator produce exactly the load it measures, with as little emulator work as possible in the way:

``burst``
    Once the setup is in (the USER AUDIO ``contentStart``, §2.5), or with ``trigger="audio"`` once the
    first ``audioInput`` arrives (so a client can start its clock first), answer with ``completionStart`` →
    ASSISTANT AUDIO ``contentStart`` → ``count`` ``audioOutput`` events of ``chunk_ms`` of audio each →
    ``contentEnd`` (END_TURN). ``interval_ms=0`` sends as fast as flow control allows (throughput);
    a positive interval paces them on an absolute schedule (latency, not queueing).
``sink``
    Read and validate every input event; when the ``count``-th ``audioInput`` has arrived, answer with
    one ASSISTANT TEXT block whose ``textOutput`` says so (the client's "all sent" receipt).

Every ``audioOutput`` carries its send time: the first 8 bytes of its PCM are ``time.monotonic()``
(little-endian double, :data:`STAMP`) taken just before the event is encoded and written. On Linux
``CLOCK_MONOTONIC`` is system-wide, so a client in another process subtracts it from its own
``time.monotonic()`` to get the delivery latency (:func:`read_stamp`).

The client chooses the plan with its system prompt (``BenchPlan(...).to_prompt()``), so one emulator
process serves every measurement and the same setup events go through every client under test. A
stream whose system prompt is not a plan gets the handler's default plan.

Input is validated as strictly as by the conversation engine (the shared
:class:`~nova_nb.protocol.rules.InputValidator`), and the stream ends with
``modelTimeoutException`` at the session limit (§1), so a benchmark client meets the same protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np

from ..errors import ConfigError
from ..protocol import catalog, wire
from ..protocol.rules import InputValidator, ServiceException
from .conversation import MODEL_TIMEOUT_MESSAGE, OutputSide, log_rejection
from .server import ServerStream, StreamClosedError

log = logging.getLogger("nova_nb.emulator.benchburst")

#: A system prompt that starts with this carries a :class:`BenchPlan` as JSON.
PLAN_PREFIX: Final = "nova-nb-bench "
#: The send-time stamp at the start of each audioOutput's PCM: ``time.monotonic()`` as a LE double.
STAMP: Final = struct.Struct("<d")
#: Audio per event: the service sends chunks of tens of milliseconds (§4); the benchmarks use 20-80.
CHUNK_MS_RANGE: Final = (20, 80)
MAX_COUNT: Final = 1_000_000
#: How long the end of a stream waits for a burst to stop between two events.
STOP_WAIT_S: Final = 2.0

Mode = Literal["burst", "sink"]
Trigger = Literal["setup", "audio"]


@dataclass(frozen=True)
class BenchPlan:
    """What the handler does with one stream. See the module docstring."""

    mode: Mode = "burst"
    #: audioOutput events to send (burst), or audioInput events to wait for (sink).
    count: int = 500
    #: Milliseconds of audio per audioOutput event.
    chunk_ms: int = 40
    #: 0: as fast as flow control allows; > 0: one event per interval, on an absolute schedule.
    interval_ms: float = 0.0
    #: When a burst starts: after the setup, or at the first audioInput.
    trigger: Trigger = "setup"

    def __post_init__(self) -> None:
        if self.mode not in ("burst", "sink"):
            raise ConfigError(f"bench plan mode must be 'burst' or 'sink', got {self.mode!r}")
        if self.trigger not in ("setup", "audio"):
            raise ConfigError(f"bench plan trigger must be 'setup' or 'audio', got {self.trigger!r}")
        if not isinstance(self.count, int) or not 1 <= self.count <= MAX_COUNT:
            raise ConfigError(
                f"bench plan count must be an integer from 1 to {MAX_COUNT}, got {self.count!r}"
            )
        low, high = CHUNK_MS_RANGE
        if not isinstance(self.chunk_ms, int) or not low <= self.chunk_ms <= high:
            raise ConfigError(
                f"bench plan chunk_ms must be an integer from {low} to {high}, got {self.chunk_ms!r}"
            )
        if not isinstance(self.interval_ms, int | float) or not 0 <= self.interval_ms < 10_000:
            raise ConfigError(f"bench plan interval_ms must be from 0 to 10000, got {self.interval_ms!r}")

    def to_prompt(self) -> str:
        """The system prompt that asks the handler for this plan."""
        return PLAN_PREFIX + json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_prompt(cls, text: str) -> BenchPlan | None:
        """The plan in a system prompt; ``None`` if it holds none. Raises ConfigError if malformed."""
        if not text.startswith(PLAN_PREFIX):
            return None
        try:
            fields = json.loads(text[len(PLAN_PREFIX) :])
        except ValueError as exc:
            raise ConfigError(f"bench plan is not valid JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise ConfigError("bench plan must be a JSON object")
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ConfigError(f"bench plan has unknown fields: {exc}") from None


def read_stamp(pcm: bytes) -> float:
    """The emulator's ``time.monotonic()`` when it sent the audioOutput whose PCM this is."""
    value: float = STAMP.unpack_from(pcm)[0]
    return value


def sink_receipt_text(count: int) -> str:
    """The textOutput a sink sends once ``count`` audioInput events have arrived."""
    return f"received {count} audioInput events"


def _tone(samples: int, rate: int) -> bytes:
    """A quiet 440 Hz tone: something audible if anyone plays a burst, cheap to send many times."""
    t = np.arange(samples) / rate
    return (0.05 * 32767 * np.sin(2 * math.pi * 440.0 * t)).astype("<i2").tobytes()


class BenchBurst(OutputSide):
    """Handles one stream. ``await BenchBurst(default_plan).run(stream)``."""

    def __init__(
        self, default_plan: BenchPlan | None = None, *, session_limit_s: float | None = None
    ) -> None:
        super().__init__()
        self.default_plan = default_plan or BenchPlan()
        self.session_limit_s = session_limit_s or float(catalog.STREAM_MAX_SECONDS)
        self.plan: BenchPlan | None = None
        self.audio_events_in = 0
        self.audio_events_out = 0
        self._stop = asyncio.Event()
        self._burst: asyncio.Task[None] | None = None

    # -- output helpers ------------------------------------------------------------------------

    # -- the stream ----------------------------------------------------------------------------

    async def run(self, stream: ServerStream) -> None:
        self.stream = stream
        self.validator = InputValidator(stream.info.model_id)
        deadline = time.monotonic() + self.session_limit_s
        try:
            while True:
                receive = asyncio.ensure_future(stream.receive())
                done, _ = await asyncio.wait({receive}, timeout=max(deadline - time.monotonic(), 0))
                if not done:
                    receive.cancel()
                    await self._stop_burst()
                    await stream.send_exception("modelTimeoutException", MODEL_TIMEOUT_MESSAGE)
                    return
                raw = receive.result()
                if raw is None:
                    break
                try:
                    event = self.validator.receive(raw)
                except ServiceException as exc:
                    log_rejection(raw, exc)
                    await self._stop_burst()
                    await stream.send_exception(exc.exception_type, exc.message)
                    return
                if event.name == wire.CONTENT_START and event.content_type == "AUDIO":
                    if not await self._choose_plan(stream):
                        return
                    if self.plan is not None and self.plan.trigger == "setup":
                        self._start_burst()
                elif event.name == wire.AUDIO_INPUT:
                    self.audio_events_in += 1
                    plan = self.plan
                    if plan is not None and plan.mode == "sink" and self.audio_events_in == plan.count:
                        await self._receipt()
                    elif self.audio_events_in == 1 and plan is not None and plan.trigger == "audio":
                        self._start_burst()
                if self.validator.stage == "ended":
                    break
            # The client is leaving (sessionEnd or end of input): stop, close the completion.
            await self._stop_burst()
            await self._end_completion()
        finally:
            await self._stop_burst()

    async def _choose_plan(self, stream: ServerStream) -> bool:
        """Setup complete: read the plan from the system prompt. False (and answered) if malformed."""
        assert self.validator is not None
        try:
            self.plan = BenchPlan.from_prompt(self.validator.settings.system_prompt) or self.default_plan
        except ConfigError as exc:
            await stream.send_exception("validationException", f"Invalid input: {exc}")
            return False
        return True

    def _start_burst(self) -> None:
        if self.plan is not None and self.plan.mode == "burst" and self._burst is None:
            self._burst = asyncio.ensure_future(self._send_burst(self.plan))

    async def _receipt(self) -> None:
        await self._ensure_completion()
        cid = str(uuid.uuid4())
        ids = self._ids()
        await self._send(
            wire.output_content_start(
                **ids, content_id=cid, type="TEXT", role="ASSISTANT", generation_stage="FINAL"
            )
        )
        await self._send(
            wire.text_output(
                **ids, content_id=cid, role="ASSISTANT", content=sink_receipt_text(self.audio_events_in)
            )
        )
        await self._send(wire.output_content_end(**ids, content_id=cid, type="TEXT", stop_reason="END_TURN"))

    async def _send_burst(self, plan: BenchPlan) -> None:
        assert self.validator is not None
        settings = self.validator.settings
        rate = settings.output_sample_rate
        tail = _tone(plan.chunk_ms * rate // 1000, rate)[STAMP.size :]
        try:
            await self._ensure_completion()
            ids = self._ids()
            cid = str(uuid.uuid4())
            await self._send(
                wire.output_content_start(
                    **ids,
                    content_id=cid,
                    type="AUDIO",
                    role="ASSISTANT",
                    sample_rate=rate,
                    voice_id=settings.voice_id,
                )
            )
            interval = plan.interval_ms / 1000
            start = time.monotonic()
            for i in range(plan.count):
                if self._stop.is_set():
                    return
                if interval:
                    delay = start + i * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                # Stamped as late as possible: the figure is "emulator send → client hands it out".
                pcm = STAMP.pack(time.monotonic()) + tail
                await self._send(wire.audio_output(**ids, content_id=cid, pcm=pcm))
                self.audio_events_out += 1
            await self._send(
                wire.output_content_end(**ids, content_id=cid, type="AUDIO", stop_reason="END_TURN")
            )
        except StreamClosedError:
            log.debug("bench burst stopped: the stream closed")

    async def _stop_burst(self) -> None:
        """Stop a running burst between two events (never inside one: that would cut a frame)."""
        task = self._burst
        if task is None or task.done():
            return
        self._stop.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if not done:  # stuck on flow control with a client that stopped reading
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_WAIT_S)


def bench_handler(
    default_plan: BenchPlan | None = None, *, session_limit_s: float | None = None
) -> Callable[[ServerStream], Any]:
    """A stream handler for :class:`~nova_nb.emulator.server.EmulatorServer` (see module docstring)."""

    async def handle(stream: ServerStream) -> None:
        await BenchBurst(default_plan, session_limit_s=session_limit_s).run(stream)

    return handle
