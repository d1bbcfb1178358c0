"""The emulator's speech engine through the real client path: speech in, recognised text, a spoken reply."""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.audio import rms_dbfs
from nova_nb.emulator.conversation import ConversationOptions
from nova_nb.emulator.engine.testaudio import make_utterance, word_overlap
from nova_nb.emulator.local import speech_options
from nova_nb.s2s import events as ev

from .conftest import Collected, collect, send_and_wait, silence

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def speech_provider() -> s2s.StreamingS2SProvider:
    provider = s2s.new_provider("local", engine="speech", latency_target="low")
    assert isinstance(provider, s2s.StreamingS2SProvider)
    return provider


async def ask(
    session: s2s.S2SSession, audio: np.ndarray, *, timeout: float = 30.0
) -> list[s2s.AudioOutputChunk]:
    return await send_and_wait(session, audio, timeout=timeout)


# (text, speaker voice, speed, noise dBFS, reply voice). Moonshine tiny on espeak-ng speech is
# imperfect, espeak-ng is not sample-deterministic and ONNX Runtime's threaded math can tip a
# borderline word under load, so every case here was measured at a word overlap >= 0.67 on each of 8
# fresh syntheses with fresh noise. Cases that were not are left out: "Hello, who are you?" in
# tiffany's voice is heard as "Hello, hello." every time, tiffany at 1.15x with noise scores 0.5, and
# the British and Australian espeak voices score worst of all, so those voices speak the replies.
QUESTIONS = [
    ("What time is it right now?", "matthew", 1.0, None, "amy"),
    ("What time is it right now?", "matthew", 0.9, -40.0, "olivia"),
    ("Please repeat after me: the yellow bus is late", "tiffany", 0.9, None, "matthew"),
    ("What is the weather like today?", "matthew", 1.0, -45.0, "tiffany"),
]


@pytest.mark.parametrize(("text", "voice", "speed", "noise", "reply_voice"), QUESTIONS)
async def test_spoken_question_gets_a_spoken_answer(
    text: str,
    voice: str,
    speed: float,
    noise: float | None,
    reply_voice: str,
) -> None:
    language = {"amy": "en-GB", "olivia": "en-AU"}.get(reply_voice, "en-US")
    provider = s2s.new_provider("local", engine="speech", language=language, latency_target="low")
    session = await provider.start_streaming(voice_id=reply_voice)  # type: ignore[attr-defined]
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    try:
        audio = make_utterance(text, voice_id=voice, speed=speed, noise_dbfs=noise, tail_silence_s=0.2)
        chunks = await ask(session, audio)
    finally:
        await session.close()
        await asyncio.wait({collector}, timeout=5)
    user = [t.text for t in got.of(ev.Transcript) if t.role == "USER"]
    assert len(user) == 1 and word_overlap(text, user[0]) >= 0.6, user
    reply = np.frombuffer(b"".join(c.audio for c in chunks), dtype="<i2")
    assert reply.size / 24000 > 0.5 and rms_dbfs(reply) > -35  # an audible reply
    final = [t.text for t in got.of(ev.Transcript) if t.role == "ASSISTANT" and t.stage == "FINAL"]
    speculative = [t.text for t in got.of(ev.Transcript) if t.stage == "SPECULATIVE"]
    assert final == speculative and final[0]
    if "repeat after me" in text:
        # The reply repeats what was heard after "me": every word of it comes from the transcript.
        assert word_overlap(final[0], user[0]) == 1.0 and len(final[0].split()) >= 3


async def test_engine_answers_fast_after_its_turn_decision(speech_provider: s2s.StreamingS2SProvider) -> None:
    """From the turn decision (USER FINAL transcript) to the first audio: the engine's own time.

    Generous bound here; the benchmark measures the p95 against the 150 ms target.
    """
    session = await speech_provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    try:
        gaps = []
        for text in ("Hello there.", "What is the date today?", "Thank you very much."):
            before = len(got.events)
            await ask(session, make_utterance(text, tail_silence_s=0.2))
            turn = got.events[before:]
            decided = next(e for e in turn if isinstance(e, ev.Transcript) and e.role == "USER")
            first_audio = next(e for e in turn if isinstance(e, ev.AudioOutput))
            gaps.append(first_audio.timestamp - decided.timestamp)
    finally:
        await session.close()
        await asyncio.wait({collector}, timeout=5)
    assert all(g >= 0 for g in gaps)
    assert statistics.median(gaps) < 0.5, gaps


async def test_spoken_barge_in_cuts_the_reply_and_final_text_is_what_was_heard(
    speech_provider: s2s.StreamingS2SProvider,
) -> None:
    session = await speech_provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    try:
        await session.send_audio(
            make_utterance(
                "Please repeat after me: one two three four five six seven eight nine ten", tail_silence_s=1.6
            )
        )
        agen = session.receive_audio()
        first = await asyncio.wait_for(agen.__anext__(), 20)
        # 1 s into the reply (audio time), the user speaks over it.
        await session.send_audio(silence(1.0))
        await session.send_audio(make_utterance("stop", tail_silence_s=0.3))
        for _ in range(300):
            if got.of(ev.Interruption):
                break
            await asyncio.sleep(0.01)
        last = first
        async for chunk in agen:
            last = chunk
            if chunk.is_final:
                break
        assert last.is_final and last.interrupted
    finally:
        await session.close()
        await asyncio.wait({collector}, timeout=5)
    assert len(got.of(ev.Interruption)) == 1
    speculative = next(t.text for t in got.of(ev.Transcript) if t.stage == "SPECULATIVE")
    final = next(t.text for t in got.of(ev.Transcript) if t.role == "ASSISTANT" and t.stage == "FINAL")
    assert 0 < len(final.split()) < len(speculative.split())
    assert speculative.startswith(final)


async def test_tool_use_round_trip() -> None:
    calls: list[dict[str, Any]] = []

    def weather(arguments: dict[str, Any]) -> dict[str, Any]:
        calls.append(arguments)
        return {"temperature": "21 degrees", "sky": "clear"}

    provider = s2s.new_provider("local", engine=speech_options(), latency_target="low")
    tool = s2s.Tool("getWeather", "Current weather for a city", {"type": "object"}, handler=weather)
    session = await provider.start_streaming(s2s.ConversationContext(tools=[tool]))  # type: ignore[attr-defined]
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    try:
        # Typed (cross-modal) input takes the same path through the model as speech, without
        # depending on the tiny recogniser hearing "weather" right.
        await session.send_text("What is the weather in Paris?")
        await ask(session, silence(0.1))
    finally:
        await session.close()
        await asyncio.wait({collector}, timeout=5)
    (use,) = got.of(ev.ToolUse)
    assert use.tool_name == "getWeather" and "weather" in use.arguments["query"].lower()
    assert calls == [use.arguments]
    (sent,) = got.of(ev.ToolResultSent)
    assert sent.tool_use_id == use.tool_use_id
    final = next(t.text for t in got.of(ev.Transcript) if t.role == "ASSISTANT" and t.stage == "FINAL")
    assert "21 degrees" in final and "clear" in final


async def test_custom_responder_gets_text_and_system_prompt() -> None:
    seen: list[tuple[str, str, int]] = []

    def responder(text: str, context: Any) -> str:
        seen.append((text, context.system_prompt, context.turn))
        return "Arr, " + text.lower().rstrip(".?!") + ", matey."

    provider = s2s.new_provider("local", engine="speech", responder=responder, latency_target="low")
    session = await provider.start_streaming(s2s.ConversationContext(system_prompt="Talk like a pirate."))  # type: ignore[attr-defined]
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    try:
        await ask(session, make_utterance("What time is it right now?", tail_silence_s=0.2))
    finally:
        await session.close()
        await asyncio.wait({collector}, timeout=5)
    ((heard, system_prompt, turn),) = seen
    assert system_prompt == "Talk like a pirate." and turn == 1
    assert word_overlap("what time is it right now", heard) >= 0.6
    final = [t.text for t in got.of(ev.Transcript) if t.role == "ASSISTANT" and t.stage == "FINAL"]
    assert final == ["Arr, " + heard.lower().rstrip(".?!") + ", matey."]


def test_responder_option_errors() -> None:
    with pytest.raises(s2s.ConfigError, match="callable"):
        s2s.new_provider("local", responder="hello")
    with pytest.raises(s2s.ConfigError, match="not both"):
        s2s.new_provider("local", responder=str.upper, engine=ConversationOptions())
