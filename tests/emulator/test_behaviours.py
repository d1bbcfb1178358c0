"""Every ServiceBehaviour preset, driven through the conversation engine with a fake stream: what it
sends passes the output-order machine (the engine raises otherwise), the provider's client reads it
without a ProtocolViolation, and the structure is the one the preset documents (docs/PROTOCOL.md §5,
§12, §13)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from nova_nb.emulator.conversation import BEHAVIOURS, Conversation, ConversationOptions, Faults
from nova_nb.emulator.server import RequestInfo
from nova_nb.protocol import catalog, wire
from nova_nb.s2s import events as ev
from nova_nb.s2s.providers.amazon_nova.client import NovaClientProtocol

RATE = 16000
FRAME = 1024  # 64 ms


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


class DrivenStream:
    """A ServerStream stand-in: input is fed by the test while it watches what was sent."""

    def __init__(self) -> None:
        self.info = RequestInfo(catalog.NOVA_2_SONIC, "us-east-1", "AKIDEXAMPLE", {})
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.exceptions: list[tuple[str, str]] = []
        self.response_opened = False

    def open_response(self) -> None:
        self.response_opened = True

    async def receive(self) -> bytes | None:
        return await self.inbox.get()

    async def send_event(self, event: dict[str, Any]) -> None:
        self.sent.append(json.loads(json.dumps(event)))
        await asyncio.sleep(0)

    async def send_exception(self, exception_type: str, message: str) -> None:
        self.exceptions.append((exception_type, message))

    def names(self) -> list[str]:
        return [wire.split_event(e)[0] for e in self.sent]


def client() -> NovaClientProtocol:
    return NovaClientProtocol(
        model_id=catalog.NOVA_2_SONIC, voice_id="matthew", input_sample_rate=RATE, output_sample_rate=24000,
        max_tokens=1024, top_p=0.9, temperature=0.7, endpointing_sensitivity="HIGH",
    )  # fmt: skip


async def drive(behaviour: str, *, barge_in: bool) -> tuple[DrivenStream, list[ev.Event]]:
    c = client()
    stream = DrivenStream()
    for raw in c.setup_payloads("You are a test."):
        stream.inbox.put_nowait(raw)
    options = ConversationOptions(behaviour=BEHAVIOURS[behaviour], faults=Faults(input_timeout_s=5))
    task = asyncio.ensure_future(Conversation(options).run(stream))  # type: ignore[arg-type]

    async def feed(pcm: np.ndarray) -> None:
        for i in range(0, pcm.size, FRAME):
            stream.inbox.put_nowait(c.audio_event(pcm[i : i + FRAME].tobytes()))
            await asyncio.sleep(0.004)  # 16× real time

    async def feed_until(predicate: Any, limit_s: float = 60.0) -> None:
        for _ in range(int(limit_s * RATE / FRAME)):
            if predicate():
                return
            await feed(np.zeros(FRAME, np.int16))

    await feed(np.concatenate([np.zeros(3200, np.int16), tone(1.0)]))
    await feed_until(lambda: wire.AUDIO_OUTPUT in stream.names())
    if barge_in:
        await feed(tone(0.6))
    # Until the reply's last FINAL text (or the barge-in's) went out, then the next turn's audio end.
    await feed_until(lambda: stream.names().count(wire.AUDIO_OUTPUT) and _reply_done(stream, barge_in))
    for raw in c.closing_payloads():
        stream.inbox.put_nowait(raw)
    stream.inbox.put_nowait(None)
    await asyncio.wait_for(task, 15)
    events: list[ev.Event] = []
    for event in stream.sent:
        events += c.receive(json.dumps(event), 0.0)
    return stream, events


def _reply_done(stream: DrivenStream, barge_in: bool) -> bool:
    ends = [wire.split_event(e)[1] for e in stream.sent if wire.split_event(e)[0] == wire.CONTENT_END]
    if barge_in:
        return any(b.get("stopReason") == "INTERRUPTED" for b in ends) or any(
            wire.is_interrupted_marker(str(wire.split_event(e)[1].get("content", "")))
            for e in stream.sent
            if wire.split_event(e)[0] == wire.TEXT_OUTPUT
        )
    texts = [e for e in stream.sent if wire.split_event(e)[0] == wire.CONTENT_START]
    finals = [e for e in texts if wire.generation_stage(wire.split_event(e)[1]) == "FINAL"]
    return len(finals) >= 3  # USER + the reply's two sentences


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
@pytest.mark.parametrize("barge_in", [False, True], ids=["played", "barge-in"])
async def test_every_preset_is_in_order_and_read_by_the_client(behaviour: str, barge_in: bool) -> None:
    stream, events = await drive(behaviour, barge_in=barge_in)
    assert not stream.exceptions, stream.exceptions
    violations = [e.message for e in events if isinstance(e, ev.ProtocolViolation)]
    assert not violations, violations
    names = stream.names()
    assert names[-1] == wire.COMPLETION_END and names.count(wire.COMPLETION_START) == 1
    b = BEHAVIOURS[behaviour]
    interruptions = [e for e in events if isinstance(e, ev.Interruption)]
    assert bool(interruptions) == barge_in, interruptions
    if b.speech_events:
        first = [n for n in names if n != wire.USAGE_EVENT][:3]
        assert first == [wire.USER_SPEECH_START, wire.COMPLETION_START, wire.USER_SPEECH_END]
        start = wire.split_event(stream.sent[names.index(wire.USER_SPEECH_START)])[1]
        assert set(start) == {"inputAudioOffsetMs", "promptName", "sessionId"}
        assert 150 <= start["inputAudioOffsetMs"] <= 300  # the tone began 200 ms in
    else:
        assert wire.USER_SPEECH_START not in names
    if b.usage_throughout:
        assert names[0] == wire.USAGE_EVENT
        completion = wire.split_event(stream.sent[names.index(wire.COMPLETION_START)])[1]["completionId"]
        assert wire.split_event(stream.sent[0])[1]["completionId"] == completion
    audio_starts = [
        wire.split_event(e)[1]
        for e in stream.sent
        if wire.split_event(e)[0] == wire.CONTENT_START and wire.split_event(e)[1]["type"] == "AUDIO"
    ]
    assert ("voiceId" in audio_starts[0]["audioOutputConfiguration"]) == b.voice_id_in_audio_start
    stops = [
        (wire.split_event(e)[1]["type"], wire.split_event(e)[1]["stopReason"])
        for e in stream.sent
        if wire.split_event(e)[0] == wire.CONTENT_END
    ]
    if b.sentence_blocks and not barge_in:
        # Two sentences: TEXT, AUDIO pairs ending PARTIAL_TURN; only the last AUDIO block END_TURN.
        assert [s for t, s in stops if t == "AUDIO"] == ["PARTIAL_TURN", "END_TURN"]
        assert all(s == "PARTIAL_TURN" for t, s in stops if t == "TEXT")
    if barge_in and b.barge_in == "marker-only":
        assert all(s != "INTERRUPTED" for _, s in stops)
        assert {i.signal for i in interruptions} == {"marker"}
    if barge_in and b.barge_in in ("audio-end-turn", "late-interrupted"):
        assert ("AUDIO", "INTERRUPTED") not in stops[:-1]
        assert all(i.signal == "stopReason" for i in interruptions)


async def test_a_rejected_input_event_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    c = client()
    stream = DrivenStream()
    for raw in c.setup_payloads("You are a test."):
        stream.inbox.put_nowait(raw)
    stream.inbox.put_nowait(wire.encode(wire.text_input(prompt_name="other", content_name="x", content="hi")))
    rejected: list[tuple[str, str, str]] = []
    options = ConversationOptions(on_rejected=lambda *args: rejected.append(args))
    with caplog.at_level("INFO", logger="nova_nb.emulator.rejected"):
        await asyncio.wait_for(Conversation(options).run(stream), 5)  # type: ignore[arg-type]
    assert len(rejected) == 1 and rejected[0][0] == wire.TEXT_INPUT
    assert stream.exceptions == [rejected[0][1:]]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "nova_nb.emulator.rejected"]
    assert line.startswith("rejected textInput: validationException: ")
