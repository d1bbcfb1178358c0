"""Recorded sessions against the local emulator (scripted engine), made once per test run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.analysis import Recording, SessionRecorder
from nova_nb.emulator.engine.testaudio import make_utterance

RATE = 16000


@dataclass
class LiveTurn:
    """A recorded one-turn session and what the session itself reported while it ran."""

    recording: Recording
    events: list[s2s.events.Event]
    question: np.ndarray
    sent_at: list[float]  # monotonic time of every send_audio call, in order


def provider() -> s2s.StreamingS2SProvider:
    p = s2s.new_provider("local", engine="scripted", latency_target="low")
    assert isinstance(p, s2s.StreamingS2SProvider)
    return p


async def _one_turn(folder: Path) -> LiveTurn:
    question = make_utterance(
        "What will the weather be like tomorrow?", lead_silence_s=0.3, tail_silence_s=0.0
    )
    events: list[s2s.events.Event] = []
    sent_at: list[float] = []
    session = await provider().start_streaming()
    recorder = SessionRecorder(folder, session)  # type: ignore[arg-type]

    async def watch() -> None:
        async for e in session.events():
            events.append(e)

    watcher = asyncio.create_task(watch())
    loop = asyncio.get_running_loop()
    try:
        frame = 320
        for i in range(0, question.size, frame):
            sent_at.append(loop.time())
            await session.send_audio(question[i : i + frame], pace=True)
        quiet = np.zeros(frame, dtype=np.int16)
        deadline = loop.time() + 15
        while loop.time() < deadline:
            await session.send_audio(quiet, pace=True)
            if any(
                isinstance(e, s2s.events.Transcript) and e.stage == "FINAL" and e.role == "ASSISTANT"
                for e in events
            ):
                break
        for _ in range(10):  # a little more microphone after the reply
            await session.send_audio(quiet, pace=True)
    finally:
        await session.close()
        await asyncio.wait({watcher}, timeout=5)
        recorder.stop()
    return LiveTurn(Recording.load(folder), events, question, sent_at)


@pytest.fixture(scope="session")
def one_turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTurn]:
    """A real-time (paced) session: a spoken question, the reply, and a bit of silence."""
    yield asyncio.run(_one_turn(tmp_path_factory.mktemp("rec") / "one_turn"))
