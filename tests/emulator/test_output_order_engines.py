"""The emulator engines send through the output-order machine: checked here with a fake stream.

A bench burst stopped by the client mid-block still closes its block before completionEnd, and every
event either engine sends passes ``nova_nb.protocol.order`` (which the engines apply, and raise on).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nova_nb.emulator.benchburst import BenchBurst, BenchPlan
from nova_nb.emulator.server import RequestInfo
from nova_nb.protocol import catalog, order, wire
from nova_nb.protocol.order import OutputOrder
from nova_nb.s2s.providers.amazon_nova.client import NovaClientProtocol

from ..clients import make_client


class FakeStream:
    """Just enough of ServerStream: an inbox of input events, a list of what was sent."""

    def __init__(self, inputs: list[bytes]) -> None:
        self.info = RequestInfo(catalog.NOVA_2_SONIC, "us-east-1", "AKIDEXAMPLE", {})
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        for raw in inputs:
            self.inbox.put_nowait(raw)
        self.sent: list[dict[str, Any]] = []
        self.exceptions: list[tuple[str, str]] = []

    async def receive(self) -> bytes | None:
        return await self.inbox.get()

    async def send_event(self, event: dict[str, Any]) -> None:
        self.sent.append(event)
        await asyncio.sleep(0)

    async def send_exception(self, exception_type: str, message: str) -> None:
        self.exceptions.append((exception_type, message))


def client() -> NovaClientProtocol:
    return make_client()


async def test_a_burst_stopped_mid_block_still_ends_in_order() -> None:
    c = client()
    plan = BenchPlan(count=100_000, chunk_ms=20, interval_ms=1.0)
    setup = [wire.encode(e) for e in c.setup_events(plan.to_prompt())]
    stream = FakeStream(setup)
    engine = BenchBurst()
    task = asyncio.ensure_future(engine.run(stream))  # type: ignore[arg-type]
    for _ in range(500):
        if engine.audio_events_out >= 3:
            break
        await asyncio.sleep(0.005)
    for event in c.closing_events():
        stream.inbox.put_nowait(wire.encode(event))
    await asyncio.wait_for(task, 10)

    assert stream.exceptions == []
    names = [next(iter(e["event"])) for e in stream.sent]
    assert names[:2] == [wire.COMPLETION_START, wire.CONTENT_START]
    assert names[-2:] == [wire.CONTENT_END, wire.COMPLETION_END]  # the cut block is closed first
    machine = OutputOrder(allow_unknown=False)
    for event in stream.sent:
        machine.require_event(event)
    assert machine.state == order.COMPLETION_ENDED and not machine.open_blocks
    # The client, fed the same events, flags nothing.
    received = [x for e in stream.sent for x in c.receive(wire.encode(e), now=0.0)]
    assert not [x for x in received if type(x).__name__ == "ProtocolViolation"]
