"""Helpers for end-to-end tests: the real SDK, through the provider, against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.emulator.conversation import ConversationOptions, Faults

RATE = 16000


def tone(seconds: float, freq: float = 220.0, level: float = 0.3) -> np.ndarray:
    """A loud harmonic tone: speech to the scripted engine's energy detector."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


@dataclass
class Collected:
    events: list[s2s.events.Event] = field(default_factory=list)
    chunks: list[s2s.AudioOutputChunk] = field(default_factory=list)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


async def collect(session: s2s.S2SSession, into: Collected) -> None:
    async for event in session.events():
        into.events.append(event)


async def send_and_wait(
    session: s2s.S2SSession, audio: np.ndarray, *, timeout: float = 20.0
) -> list[s2s.AudioOutputChunk]:
    """Send ``audio``, then stream silence (as a live mic does) until the reply's final chunk."""
    await session.send_audio(audio)
    chunks: list[s2s.AudioOutputChunk] = []

    async def read() -> None:
        async for chunk in session.receive_audio():
            chunks.append(chunk)
            if chunk.is_final:
                return

    reader = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not reader.done() and loop.time() < deadline:
        await session.send_audio(silence(0.064))
        await asyncio.sleep(0.002)
    if not reader.done():
        reader.cancel()
        raise AssertionError(f"no final chunk within {timeout} s; got {len(chunks)} chunks")
    return chunks


async def speak_and_wait(
    session: s2s.S2SSession, speech_s: float = 1.0, *, timeout: float = 20.0
) -> list[s2s.AudioOutputChunk]:
    """Say something (a tone the scripted engine hears as speech) and wait for the reply."""
    return await send_and_wait(session, np.concatenate([silence(0.2), tone(speech_s)]), timeout=timeout)


@pytest.fixture(scope="session")
def local_provider() -> s2s.StreamingS2SProvider:
    provider = s2s.new_provider("local", engine="scripted", latency_target="low")
    assert isinstance(provider, s2s.StreamingS2SProvider)
    return provider


def faulty_provider(
    *, options: dict[str, object] | None = None, **faults: object
) -> s2s.StreamingS2SProvider:
    """A local provider whose emulator injects ``faults``; ``options`` are provider options."""
    settings: dict[str, object] = {"latency_target": "low", **(options or {})}
    provider = s2s.new_provider("local", engine=ConversationOptions(faults=Faults(**faults)), **settings)  # type: ignore[arg-type]
    assert isinstance(provider, s2s.StreamingS2SProvider)
    return provider


@pytest.fixture
async def session(local_provider: s2s.StreamingS2SProvider) -> AsyncIterator[s2s.S2SSession]:
    s = await local_provider.start_streaming(s2s.ConversationContext(system_prompt="You are a test."))
    try:
        yield s
    finally:
        await s.close()
