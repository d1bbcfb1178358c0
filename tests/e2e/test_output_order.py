"""End to end: the emulator's output over several turns, with barge-in and typed input, keeps the order.

The emulator passes every event it sends through ``nova_nb.protocol.order`` and raises on a violation
(which the stream would show as an internalServerException); the client checks the same order on
receipt and would yield ``ProtocolViolation``. Neither may happen.
"""

from __future__ import annotations

import asyncio

from nova_nb import s2s
from nova_nb.s2s import events as ev

from .conftest import Collected, collect, send_and_wait, silence, speak_and_wait, tone


async def test_emulator_output_over_turns_with_barge_in_is_in_order(session: s2s.S2SSession) -> None:
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    await speak_and_wait(session, 0.8)  # turn 1, played to the end
    # Turn 2: talk over the reply as soon as its first audio arrives.
    await session.send_audio(tone(1.0))
    await session.send_audio(silence(1.6))
    agen = session.receive_audio()
    await asyncio.wait_for(agen.__anext__(), 10)
    await session.send_audio(tone(0.6, freq=300))
    async for chunk in agen:
        if chunk.is_final:
            break
    # The barge-in speech is itself a turn (3); then a typed one (4).
    await send_and_wait(session, silence(0.2))
    await session.send_text("And the weather?")
    await send_and_wait(session, silence(0.1))
    await session.close()
    await asyncio.wait({collector}, timeout=5)

    assert got.of(ev.Interruption), "the barge-in did not interrupt"
    assert not got.of(ev.ProtocolViolation), [v.message for v in got.of(ev.ProtocolViolation)]
    assert not got.of(ev.StreamErrorEvent), [(e.code, e.message) for e in got.of(ev.StreamErrorEvent)]
    users = [t for t in got.of(ev.Transcript) if t.role == "USER"]
    assert len(users) >= 3
    assert [type(e).__name__ for e in got.events][-2:] == ["CompletionEnded", "SessionClosed"]
