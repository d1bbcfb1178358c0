"""Issue: long sessions, recoverable faults, bad moments — nothing hangs, no user audio is lost.

Each test drives one of the emulator's faults and checks the outcome, in bounded time, with the
user audio accounted for on both sides: what the session queued on each stream (replays included)
and what the emulator received on each stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.emulator.conversation import ConversationOptions, Faults
from nova_nb.s2s import events as ev

from .conftest import Collected, collect, silence, speak_and_wait, tone


def provider_with(faults: Faults, stats: list[dict[str, Any]], **options: Any) -> s2s.StreamingS2SProvider:
    engine = ConversationOptions(faults=faults, on_stream_end=stats.append)
    provider = s2s.new_provider("local", engine=engine, **{"latency_target": "low", **options})
    assert isinstance(provider, s2s.StreamingS2SProvider)
    return provider


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def assert_no_user_audio_lost(session: Any, stats: list[dict[str, Any]]) -> None:
    """Every frame queued on a stream that died but did not reach it was replayed to the next one."""
    queued = {s.index: s.audio_samples for s in session.streams}
    received = {st["stream_number"]: st["samples_received"] for st in stats}
    assert sum(queued.values()) == session.audio_samples_sent + session.replayed_samples
    lost = sum(max(queued[i] - received.get(i, 0), 0) for i in queued)
    assert lost <= session.replayed_samples, (queued, received, session.replayed_samples)


@pytest.mark.parametrize("fault", ["reset_at_event", "drop_at_event"])
async def test_reset_or_drop_reconnects_and_the_conversation_goes_on(fault: str) -> None:
    stats: list[dict[str, Any]] = []
    provider = provider_with(Faults(faulty_streams=1, **{fault: 40}), stats)  # type: ignore[arg-type]
    session = await provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    chunks = await speak_and_wait(session, 0.8)  # the fault hits during the first turn's audio
    assert chunks[-1].is_final
    chunks = await speak_and_wait(session, 0.6)
    assert chunks[-1].is_final
    await session.close()
    await asyncio.wait({collector}, timeout=5)
    (renewed,) = got.of(ev.SessionRenewed)
    assert renewed.reason == "reconnect" and renewed.replayed_s > 0
    assert got.of(ev.Reconnecting)[0].code in ("StreamReset", "ConnectionError")
    assert not got.of(ev.StreamErrorEvent)
    await wait_for(lambda: len(stats) == 2)
    assert_no_user_audio_lost(session, stats)


async def test_recoverable_exception_reconnects_with_history() -> None:
    stats: list[dict[str, Any]] = []
    # ~16 s of 32 ms frames: after the first turn (speech, 1.5 s pause, a ~3 s reply) has ended and
    # its FINAL texts, paced to when playback would end (docs/PROTOCOL.md §12), have arrived.
    faults = Faults(faulty_streams=1, exception_at_event=(500, "internalServerException", "boom"))
    provider = provider_with(faults, stats)
    session = await provider.start_streaming(
        s2s.ConversationContext(history=[("USER", "hi"), ("ASSISTANT", "hello")])
    )
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    await speak_and_wait(session, 0.6)  # a full turn before the fault: it becomes history
    for _ in range(900):
        if got.of(ev.SessionRenewed):
            break
        await session.send_audio(silence(0.032))
        await asyncio.sleep(0.002)
    await speak_and_wait(session, 0.6)
    await session.close()
    await asyncio.wait({collector}, timeout=5)
    (renewed,) = got.of(ev.SessionRenewed)
    assert renewed.reason == "reconnect"
    await wait_for(lambda: len(stats) == 2)
    second = next(st for st in stats if st["stream_number"] == 1)
    # The new stream got the conversation so far: the given history, then the turn's transcripts.
    roles = [role for role, _ in second["history"]]
    assert roles[:2] == ["USER", "ASSISTANT"] and len(roles) >= 3
    assert roles == [r for i, r in enumerate(roles) if i == 0 or roles[i - 1] != r]  # merged
    assert_no_user_audio_lost(session, stats)


async def test_gives_up_after_n_failures_in_a_row_with_a_clear_error() -> None:
    stats: list[dict[str, Any]] = []
    faults = Faults(exception_at_event=(8, "throttlingException", "Too many requests"))
    provider = provider_with(faults, stats, reconnect_attempts=2)
    session = await provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    with pytest.raises(s2s.SessionClosedError):
        for _ in range(500):
            await session.send_audio(silence(0.032))
            await asyncio.sleep(0.005)
    await asyncio.wait({collector}, timeout=5)
    assert [r.attempt for r in got.of(ev.Reconnecting)] == [1, 2]
    (error,) = got.of(ev.StreamErrorEvent)
    assert "gave up after 2 reconnects" in error.message and "Too many requests" in error.message
    assert not error.recoverable
    await session.close()


async def test_caller_errors_surface_once_without_retry() -> None:
    stats: list[dict[str, Any]] = []
    faults = Faults(exception_at_event=(10, "validationException", "Invalid input: something the caller did"))
    provider = provider_with(faults, stats)
    session = await provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    with pytest.raises(s2s.SessionClosedError, match="something the caller did"):
        for _ in range(200):
            await session.send_audio(silence(0.032))
            await asyncio.sleep(0.005)
    await asyncio.wait({collector}, timeout=5)
    assert not got.of(ev.Reconnecting)
    assert len(got.of(ev.StreamErrorEvent)) == 1
    await session.close()


async def test_continuation_before_the_stream_limit() -> None:
    """A short emulator limit (3 s) and continuation from 1 s: the conversation never hits the limit."""
    stats: list[dict[str, Any]] = []
    provider = provider_with(Faults(session_limit_s=3.0), stats, continuation_after_s=1.0)
    session = await provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    t0 = time.monotonic()
    turns = 0
    while time.monotonic() - t0 < 7.0:
        chunks = await speak_and_wait(session, 0.5)
        assert chunks[-1].is_final and chunks[-1].error is None
        turns += 1
    await session.close()
    await asyncio.wait({collector}, timeout=5)
    renewals = got.of(ev.SessionRenewed)
    assert renewals and all(r.reason == "continuation" for r in renewals)
    assert not got.of(ev.StreamErrorEvent) and not got.of(ev.Reconnecting)
    assert turns >= 3
    await wait_for(lambda: len(stats) == len(session.streams))  # type: ignore[attr-defined]
    assert_no_user_audio_lost(session, stats)
    # Each new stream started with the conversation so far as history.
    assert max(len(st["history"]) for st in stats) >= 2


async def test_model_timeout_without_continuation_reconnects() -> None:
    stats: list[dict[str, Any]] = []
    provider = provider_with(Faults(session_limit_s=1.5, faulty_streams=1), stats, continuation=False)
    session = await provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    for _ in range(100):
        if got.of(ev.SessionRenewed):
            break
        await session.send_audio(silence(0.032), pace=True)
    chunks = await speak_and_wait(session, 0.5)
    assert chunks[-1].is_final
    await session.close()
    await asyncio.wait({collector}, timeout=5)
    assert got.of(ev.Reconnecting)[0].code == "modelTimeoutException"
    assert got.of(ev.SessionRenewed)[0].reason == "reconnect"


async def test_pause_keeps_the_session_alive_with_silence() -> None:
    stats: list[dict[str, Any]] = []
    provider = provider_with(Faults(input_timeout_s=0.8), stats)
    session = await provider.start_streaming()
    session.pause()  # type: ignore[attr-defined]
    await session.send_audio(tone(0.5))  # muted: discarded, silence goes out instead
    await asyncio.sleep(2.0)
    assert not session.closed and session.muted_samples == 8000  # type: ignore[attr-defined]
    sent_while_paused = session.audio_samples_sent  # type: ignore[attr-defined]
    assert sent_while_paused >= 16000 * 1.5  # ~real time silence
    session.resume()  # type: ignore[attr-defined]
    chunks = await speak_and_wait(session, 0.6)
    assert chunks[-1].is_final
    await session.close()


async def test_slow_consumer_is_bounded() -> None:
    provider = s2s.new_provider("local", engine="scripted", latency_target="low", output_buffer_s=1.0)
    session = await provider.start_streaming()  # type: ignore[attr-defined]
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    for _ in range(2):  # two long replies nobody plays
        await session.send_audio(tone(1.0))
        await session.send_audio(silence(1.7))
        for _ in range(400):
            await session.send_audio(silence(0.064))
            if len([e for e in got.of(ev.ContentEnded) if e.type == "AUDIO"]) >= 1 and _ > 50:
                break
            await asyncio.sleep(0.002)
    assert got.of(ev.AudioDropped)
    assert session._audio_buffered <= 1.0 * 24000 * 2  # type: ignore[attr-defined]
    await session.close()
    await asyncio.wait({collector}, timeout=5)


async def test_twenty_concurrent_sessions() -> None:
    provider = s2s.new_provider("local", engine="scripted", latency_target="low")
    sessions = await asyncio.gather(*(provider.start_streaming() for _ in range(20)))  # type: ignore[attr-defined]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(speak_and_wait(s, 0.5, timeout=60) for s in sessions)), 90
        )
        assert all(r[-1].is_final for r in results)
    finally:
        t0 = time.monotonic()
        await asyncio.gather(*(s.close() for s in sessions))
        assert time.monotonic() - t0 < 5


async def test_close_while_sending_and_cancelled_consumer() -> None:
    provider = s2s.new_provider("local", engine="scripted", latency_target="low")
    session = await provider.start_streaming()  # type: ignore[attr-defined]

    async def sender() -> None:
        while True:
            await session.send_audio(np.zeros(512, np.int16))
            await asyncio.sleep(0)

    async def consumer() -> None:
        async for _ in session.receive_audio():
            pass

    send_task = asyncio.create_task(sender())
    consume_task = asyncio.create_task(consumer())
    await asyncio.sleep(0.3)
    consume_task.cancel()
    t0 = time.monotonic()
    await session.close()
    assert time.monotonic() - t0 < 3
    done, _ = await asyncio.wait({send_task}, timeout=3)
    assert done and isinstance(send_task.exception(), s2s.SessionClosedError)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux /proc")
async def test_long_session_memory_is_flat() -> None:
    """12 minutes of audio, faster than real time, across several stream renewals: flat memory."""
    stats: list[dict[str, Any]] = []
    provider = provider_with(
        Faults(session_limit_s=8.0), stats, continuation_after_s=2.0, output_buffer_s=30.0
    )
    session = await provider.start_streaming()
    drained = 0

    async def drain() -> None:
        nonlocal drained
        async for chunk in session.receive_audio():
            drained += len(chunk.audio)

    consumer = asyncio.create_task(drain())
    speech, quiet = tone(0.6), silence(2.5)
    rss = []
    minutes = 12
    for _minute in range(minutes):
        for _ in range(int(60 / 3.1)):
            await session.send_audio(speech)
            await session.send_audio(quiet)
            await asyncio.sleep(0.01)
        rss.append(rss_bytes())
    await session.close()
    await asyncio.wait({consumer}, timeout=5)
    assert session.audio_samples_sent >= minutes * 60 * 16000 * 0.95  # type: ignore[attr-defined]
    assert drained > 0 and session.renewals >= 3  # type: ignore[attr-defined]
    # After warm-up, memory does not grow with the session's length (RSS is noisy: generous bound).
    growth = rss[-1] - rss[3]
    assert growth < 40 * 1024 * 1024, [r // 2**20 for r in rss]


async def test_continuation_mid_reply_keeps_the_reply_whole_and_answers_once() -> None:
    """A continuation that starts as a multi-sentence reply begins must not cut that reply between
    two sentences (PARTIAL_TURN), must hand the decided turns to the new stream as history, and must
    not replay the question's audio too (the new stream would answer it a second time)."""
    from nova_nb.emulator.conversation import ScriptedBrain

    class SlowSpeaker(ScriptedBrain):
        # Synthesis takes a moment per sentence, as a real TTS does: between two sentences of a
        # reply no AUDIO block is open, which is where a stream used to be retired too early.
        def speak(self, text: str, settings: Any) -> Any:
            time.sleep(0.8)  # runs in the emulator's synthesis thread; 3 × 0.8 s > close_timeout_s
            yield from super().speak(text, settings)

    def three_sentences(_text: str) -> str:
        return "One sentence here. Then a second one. And a third to end it."

    stats: list[dict[str, Any]] = []
    engine = ConversationOptions(
        brain_factory=lambda: SlowSpeaker(three_sentences),
        faults=Faults(session_limit_s=30.0),
        on_stream_end=stats.append,
    )
    # Continue as soon as a reply starts after 1 s; replay 3 s (the default), longer than the pause
    # between the question's end and the reply: the question's tail is in the replay window.
    provider = s2s.new_provider("local", engine=engine, latency_target="low", continuation_after_s=1.0)
    assert isinstance(provider, s2s.StreamingS2SProvider)
    session = await provider.start_streaming()
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    first = await speak_and_wait(session, 0.6)
    second = await speak_and_wait(session, 0.6)  # its reply starts the continuation
    # Keep the microphone open a while: a stream that had the question replayed would answer again.
    for _ in range(60):
        await session.send_audio(silence(0.064))
        await asyncio.sleep(0.06)
    await session.close()
    await asyncio.wait({collector}, timeout=5)

    renewals = got.of(ev.SessionRenewed)
    assert renewals and all(r.reason == "continuation" for r in renewals)
    # The last hand-over came with the second reply: the first exchange and the second question.
    assert renewals[-1].history_messages >= 2, [r.history_messages for r in renewals]
    for chunks in (first, second):
        assert chunks[-1].is_final and not chunks[-1].interrupted and chunks[-1].error is None
    ended = [e for e in got.of(ev.ContentEnded) if e.type == "AUDIO" and e.role == "ASSISTANT"]
    # Each reply is three blocks, PARTIAL_TURN twice then END_TURN: nothing was abandoned.
    assert [e.stop_reason for e in ended] == ["PARTIAL_TURN", "PARTIAL_TURN", "END_TURN"] * 2
    assert not got.of(ev.Interruption)
    user_finals = [e for e in got.of(ev.Transcript) if e.role == "USER" and e.stage == "FINAL"]
    assert len(user_finals) == 2, [e.text for e in user_finals]  # no second answer from the replay
    await wait_for(lambda: len(stats) == len(session.streams))  # type: ignore[attr-defined]
    assert_no_user_audio_lost(session, stats)
