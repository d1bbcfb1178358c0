"""The cascade provider, end to end with real speech: Silero VAD, Moonshine, a responder, espeak-ng.

Every test speaks audio made by the speech engine (``make_utterance``) into a real session through
the public API (``s2s.talk``, ``analysis.run_conversation`` or ``say``), paced in real time where a
figure is checked, and reads what came back: transcripts, audio, stage timestamps, events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from nova_nb import analysis, s2s
from nova_nb.cascade import CascadeStages, CascadeTurnError, stage_rows, stages_of
from nova_nb.emulator.engine import make_utterance, word_overlap
from nova_nb.protocol import catalog
from nova_nb.s2s import events as ev
from nova_nb.s2s.talk import say, talk

pytestmark = pytest.mark.slow
RATE = 16000


@pytest.fixture(scope="module")
def provider() -> s2s.StreamingS2SProvider:
    made = s2s.new_provider("cascade", latency_target="low")
    assert isinstance(made, s2s.StreamingS2SProvider)
    return made


async def test_a_spoken_question_is_heard_answered_and_timed(provider: s2s.StreamingS2SProvider) -> None:
    result = await talk(provider, make_utterance("What is your name?", tail_silence_s=0.3), sample_rate=RATE)
    (turn,) = result.turns
    assert word_overlap("what is your name", turn.user_text or "") >= 0.75
    assert turn.reply_text == "I am the nova_nb emulator, a local stand-in for Amazon Nova Sonic."
    assert turn.reply_audio.size > 24000  # more than a second of speech at 24 kHz
    assert np.abs(turn.reply_audio).max() > 1000
    assert not turn.interrupted and turn.stop_reason == "END_TURN"
    (stages,) = stages_of(result.events)
    assert stages.outcome == "spoken" and stages.error is None and stages.content_id == turn.content_id
    times = [
        stages.speech_end_t,
        stages.decision_t,
        stages.asr_start_t,
        stages.asr_end_t,
        stages.reply_start_t,
        stages.reply_end_t,
        stages.tts_first_audio_t,
        stages.first_audio_out_t,
    ]
    assert all(t is not None for t in times)
    assert times == sorted(times), f"stage times out of order: {times}"
    # The endpointing wait is the latency target's pause (low → HIGH → 1.5 s), counted in 32 ms frames
    # handed over in real time: within a frame or two, plus scheduling on a loaded 2-core machine.
    pause = catalog.ENDPOINTING_PAUSE_S["HIGH"]
    assert stages.pause_s == pause
    assert stages.endpointing_wait_s is not None and abs(stages.endpointing_wait_s - pause) < 0.35
    # The stages add up to the whole wait, and the event's first audio is the turn model's.
    durations = stages.durations()
    assert all(d is not None and d >= 0 for d in durations.values())
    assert sum(d for d in durations.values() if d is not None) == pytest.approx(
        stages.speech_end_to_first_audio_s, abs=1e-9
    )
    assert stages.first_audio_out_t == turn.first_audio_t
    assert 0 < (stages.asr_s or 0) < 3 and 0 <= (stages.reply_s or 0) < 0.5
    # Cascade processing after the pause is at most a few seconds even on a loaded 2-core machine.
    assert stages.decision_to_first_audio_s is not None and 0 < stages.decision_to_first_audio_s < 4
    # The turn model's own figures (energy end of speech, USER FINAL transcript) agree in order.
    assert turn.decision_t is not None and stages.asr_end_t is not None
    assert stages.asr_end_t <= turn.decision_t < stages.asr_end_t + 0.5  # the transcript follows ASR
    assert turn.response_s is not None and turn.response_s > pause


async def test_stages_are_recorded_and_read_back(provider: s2s.StreamingS2SProvider, tmp_path: Path) -> None:
    questions = [
        make_utterance("Hello, how are you?", tail_silence_s=0.2),
        make_utterance("Thank you.", tail_silence_s=0.2),
    ]
    recording = await analysis.run_conversation(provider, questions, tmp_path / "rec", timeout_s=40)
    rows = stage_rows(recording.events)
    assert [r["outcome"] for r in rows] == ["spoken", "spoken"]
    assert [r["reply_text"] for r in rows] == ["Hello! How can I help you today?", "You're welcome!"]
    assert all(r["asr_s"] is not None and r["asr_s"] > 0 for r in rows)
    lines = recording.of("CascadeStages")
    assert len(lines) == 2 and lines[0]["decision_t"] < lines[0]["first_audio_out_t"]
    turns = analysis.turns(recording.events)
    assert len(turns) == 2


async def test_a_raising_responder_fails_the_turn_not_the_session() -> None:
    def responder(text: str) -> str:
        if "weather" in text.lower():
            raise RuntimeError("the weather service is down")
        return f"Echo: {text}"

    provider = s2s.new_provider("cascade", latency_target="low", responder=responder)
    session = await provider.start_streaming()
    seen: list[ev.Event] = []
    session.add_listener(seen.append)

    def kinds(kind: type) -> list[ev.Event]:
        return [e for e in seen if isinstance(e, kind)]

    try:
        outcome = await say(
            session,
            make_utterance("What is the weather like?", tail_silence_s=0.2),
            sample_rate=RATE,
            until=lambda quiet: bool(kinds(CascadeTurnError)) or quiet > 8,
        )
        assert outcome == "done"
        (error,) = kinds(CascadeTurnError)
        assert isinstance(error, CascadeTurnError)
        assert error.stage == "responder" and error.error_type == "RuntimeError"
        assert "the weather service is down" in error.message and "session goes on" in error.message
        assert not kinds(ev.AudioOutput) and not kinds(ev.StreamErrorEvent) and not session.closed
        (failed,) = stages_of(seen)
        assert failed.outcome == "failed" and failed.error is not None and "RuntimeError" in failed.error
        assert failed.reply_end_t is None and failed.asr_end_t is not None
        # The next turn is answered as usual.
        await say(
            session,
            make_utterance("Thank you.", tail_silence_s=0.2),
            sample_rate=RATE,
            until=lambda quiet: len(stages_of(seen)) >= 2 or quiet > 8,
        )
        spoken = stages_of(seen)[-1]
        assert spoken.outcome == "spoken" and spoken.reply_text is not None
        assert spoken.reply_text.startswith("Echo:") and kinds(ev.AudioOutput)
    finally:
        await session.close()
    assert session.error is None


async def test_speaking_over_the_reply_stops_it(provider: s2s.StreamingS2SProvider, tmp_path: Path) -> None:
    question = make_utterance(
        "Please repeat after me: " + "the quick brown fox jumps over the lazy dog. " * 3, tail_silence_s=0
    )
    interjection = make_utterance("Stop.", lead_silence_s=0.0, tail_silence_s=0.2)
    recording = await analysis.run_conversation(
        provider, question, tmp_path / "barge", barge_in=(1.0, interjection), timeout_s=60
    )
    (first, *_rest) = stages_of(recording.events)
    # espeak makes the reply faster than real time, so it is usually all made ("spoken") before the
    # user speaks over its playback; on a slow machine it may still be in the making ("interrupted").
    assert first.outcome in ("spoken", "interrupted")
    interruptions = recording.of("Interruption")
    assert interruptions and interruptions[0]["content_id"] == first.content_id
    # The player was flushed part-way: some of the reply was heard, the rest was never played.
    (flushed, *_) = [e for e in recording.of("PlayerFlushed") if e["content_id"] == first.content_id]
    reply_s = sum(e["duration_s"] for e in recording.of("AudioOutput") if e["content_id"] == first.content_id)
    assert flushed["played_s"] > 0.5 and flushed["dropped_s"] > 0.5
    assert flushed["played_s"] + flushed["dropped_s"] <= reply_s + 0.05
    # The interjection itself became the next turn. (Its words are not checked: speech recognised over
    # the reply's own audio is often misheard by the tiny ASR, e.g. "Stop." as "Thump.".)
    rows = stage_rows(recording.events)
    assert rows[1:] and any((r["user_text"] or "").strip() for r in rows[1:])
    (turn, *_) = analysis.turns(recording.events)
    assert turn.interrupted


async def test_typed_text_is_answered_without_speech(provider: s2s.StreamingS2SProvider) -> None:
    session = await provider.start_streaming()
    seen: list[ev.Event] = []
    session.add_listener(seen.append)
    try:
        await session.send_text("thank you")
        done = asyncio.Event()
        session.add_listener(lambda e: done.set() if isinstance(e, CascadeStages) else None)
        await asyncio.wait_for(done.wait(), timeout=10)
        (stages,) = stages_of(seen)
        assert stages.typed and stages.outcome == "spoken" and stages.reply_text == "You're welcome!"
        assert (
            stages.asr_start_t is None and stages.speech_end_t is None and stages.endpointing_wait_s is None
        )
        assert stages.first_audio_out_t is not None
        with pytest.raises(s2s.ConfigError, match="no tools"):
            await session.send_tool_result("t-1", {"ok": True})
    finally:
        await session.close()


async def test_bad_options_and_contexts_are_refused(provider: s2s.StreamingS2SProvider) -> None:
    with pytest.raises(s2s.ConfigError, match="responder") as info:
        s2s.new_provider("cascade", engine="speech")
    assert "latency_target" in str(info.value)  # the valid options are listed
    with pytest.raises(s2s.ConfigError, match="callable"):
        s2s.new_provider("cascade", responder="not callable")
    with pytest.raises(s2s.ConfigError, match="latency_target"):
        s2s.new_provider("cascade", latency_target="instant")
    tool = s2s.Tool(name="getWeather", description="the weather")
    with pytest.raises(s2s.ConfigError, match="no tools"):
        await provider.start_streaming(s2s.ConversationContext(tools=[tool]))
    assert "cascade" in s2s.providers()
    assert isinstance(provider, s2s.StreamingS2SProvider) and provider.name == "cascade"


def test_the_stages_event_is_a_session_event() -> None:
    stages = CascadeStages(
        timestamp=1.0, content_id="c", speech_end_t=1.0, decision_t=2.5, first_audio_out_t=3.0
    )
    assert isinstance(stages, ev.Event) and stages.kind == "CascadeStages"
    assert stages.endpointing_wait_s == 1.5 and stages.decision_to_first_audio_s == 0.5
    assert stages.asr_s is None  # a stage the turn never reached has no figure


async def test_bad_start_streaming_arguments(provider: s2s.StreamingS2SProvider) -> None:
    """The same checks, and the same words, as the Nova providers (one helper in s2s)."""
    with pytest.raises(s2s.ConfigError, match="Polly"):
        await provider.start_streaming(voice_id="Brian")
    with pytest.raises(s2s.ConfigError, match="ConversationContext"):
        await provider.start_streaming({"system_prompt": "x"})  # type: ignore[arg-type]
    with pytest.raises(s2s.ConfigError, match="enable_streaming must be True or False"):
        await provider.start_streaming(enable_streaming=1)  # type: ignore[arg-type]
    tool = s2s.Tool(name="clock", description="the time", input_schema={"type": "object"})
    with pytest.raises(s2s.ConfigError, match="has no tools"):
        await provider.start_streaming(s2s.ConversationContext(tools=[tool]))
