"""The real SDK, through the amazon_nova provider, against the emulator over HTTPS/HTTP2."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.emulator import BackgroundEmulator, HttpError
from nova_nb.emulator.conversation import conversation_handler
from nova_nb.protocol import catalog
from nova_nb.s2s import events as ev
from nova_nb.s2s.turns import TurnBuilder

from .conftest import Collected, collect, faulty_provider, silence, speak_and_wait, tone


async def test_one_turn_follows_the_documented_sequence(session: s2s.S2SSession) -> None:
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    chunks = await speak_and_wait(session, 1.2)
    await session.close()
    await asyncio.wait({collector}, timeout=5)

    # The real service's structure (docs/PROTOCOL.md §12): a usage event for the system prompt first,
    # the service's speech start, the one completionStart of the prompt, its speech end, the USER text
    # (PARTIAL_TURN), then one SPECULATIVE text + AUDIO pair per sentence, the last AUDIO block END_TURN,
    # the FINAL texts paced to playback, and completionEnd only after the client's promptEnd.
    kinds = [type(e).__name__ for e in got.events if not isinstance(e, ev.AudioOutput | ev.Usage)]
    assert kinds[:4] == ["SessionStarted", "ServiceSpeechStarted", "CompletionStarted", "ServiceSpeechEnded"]
    assert type(got.events[1]).__name__ == "Usage"
    transcripts = [(t.role, t.stage) for t in got.of(ev.Transcript)]
    assert transcripts[0] == ("USER", "FINAL")
    spoken = transcripts[1:]
    sentences = spoken.count(("ASSISTANT", "SPECULATIVE"))
    assert sentences >= 1 and spoken.count(("ASSISTANT", "FINAL")) == sentences
    # The scripted engine reports the length of the turn it recognised: the 1.2 s of speech plus up
    # to 0.3 s of audio before the onset and 0.25 s after the last speech (its pre- and post-roll).
    heard_s = float(got.of(ev.Transcript)[0].text.strip("(").split()[0])
    assert 1.2 <= heard_s <= 1.2 + 0.3 + 0.25 + 0.05
    ends = [(e.type, e.stop_reason) for e in got.of(ev.ContentEnded) if e.role == "ASSISTANT"]
    assert [r for t, r in ends if t == "AUDIO"] == ["PARTIAL_TURN"] * (sentences - 1) + ["END_TURN"]
    # Each sentence's SPECULATIVE text comes before its audio; the FINAL texts after the last audio.
    order = [type(e).__name__ for e in got.events]
    first_audio = order.index("AudioOutput")
    last_audio = max(i for i, e in enumerate(got.events) if isinstance(e, ev.AudioOutput))
    first_final = next(
        i
        for i, e in enumerate(got.events)
        if isinstance(e, ev.Transcript) and e.role == "ASSISTANT" and e.stage == "FINAL"
    )
    assert order.index("Transcript", 0) < first_audio and last_audio < first_final
    assert kinds[-2:] == ["CompletionEnded", "SessionClosed"]
    # Chunks: PCM at the output rate, arrival timestamps in order, is_final only on the last one.
    assert all(c.sample_rate == 24000 and len(c.audio) % 2 == 0 for c in chunks)
    assert [c.is_final for c in chunks].count(True) == 1 and chunks[-1].is_final
    assert [c.timestamp for c in chunks] == sorted(c.timestamp for c in chunks)
    assert sum(len(c.audio) for c in chunks) == sum(len(e.audio) for e in got.of(ev.AudioOutput)) > 24000
    assert not chunks[-1].interrupted and chunks[-1].error is None
    usage = got.of(ev.Usage)[0]
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens > 0


async def test_two_turns_and_text_input(session: s2s.S2SSession) -> None:
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    await speak_and_wait(session, 0.8)
    await session.send_text("What time is it?")
    # A typed question is answered like speech: stream silence until its reply ends.
    chunks: list[s2s.AudioOutputChunk] = []

    async def read() -> None:
        async for c in session.receive_audio():
            chunks.append(c)
            if c.is_final:
                return

    reader = asyncio.create_task(read())
    for _ in range(400):
        if reader.done():
            break
        await session.send_audio(silence(0.064))
        await asyncio.sleep(0.002)
    assert reader.done() and chunks[-1].is_final
    await session.close()
    await asyncio.wait({collector}, timeout=5)
    # Two replies, each told in FINAL text sentence by sentence; the second answers the typed text.
    turns = TurnBuilder().feed_all(got.events)
    assert len(turns) == 2 and all(t.reply_text for t in turns)
    assert "What time is it?" in turns[1].reply_text and "What time is it?" not in turns[0].reply_text


async def test_barge_in_drops_unplayed_audio_and_ends_the_turn(session: s2s.S2SSession) -> None:
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    await session.send_audio(tone(1.0))
    await session.send_audio(silence(1.6))  # the 1.5 s pause of latency_target="low" ends the turn
    agen = session.receive_audio()
    first = await asyncio.wait_for(agen.__anext__(), 10)
    assert first.audio and not first.is_final
    # A real-time player holds the first chunk; the user talks over the reply right away, and the
    # player reads on only when it next needs audio (after the interruption has arrived).
    await session.send_audio(tone(0.5, freq=300))
    for _ in range(200):
        if got.of(ev.Interruption):
            break
        await asyncio.sleep(0.01)
    chunks = [first]
    async for chunk in agen:
        chunks.append(chunk)
        if chunk.is_final:
            break
    await session.send_audio(silence(0.5))
    await asyncio.sleep(0.2)
    await session.close()
    await asyncio.wait({collector}, timeout=5)

    (interruption,) = got.of(ev.Interruption)
    assert chunks[-1].is_final and chunks[-1].interrupted and chunks[-1].audio == b""
    # The reply was several seconds long; almost none of it reached the player.
    handed_out = sum(len(c.audio) for c in chunks)
    assert handed_out + interruption.dropped_bytes <= sum(len(e.audio) for e in got.of(ev.AudioOutput))
    assert handed_out < 24000 * 2  # less than a second of it
    speculative = next(t.text for t in got.of(ev.Transcript) if t.stage == "SPECULATIVE")
    final = [t.text for t in got.of(ev.Transcript) if t.role == "ASSISTANT" and t.stage == "FINAL"]
    assert all("interrupted" not in t.text for t in got.of(ev.Transcript))
    assert all(len(f) < len(speculative) for f in final)  # only what was heard


async def test_enable_streaming_false_gives_one_chunk_per_turn(
    local_provider: s2s.StreamingS2SProvider,
) -> None:
    async with await local_provider.start_streaming(enable_streaming=False) as session:
        chunks = await speak_and_wait(session, 0.8)
    assert len(chunks) == 1 and chunks[0].is_final and len(chunks[0].audio) > 24000


async def test_nova1_model_and_other_voice(local_provider: s2s.StreamingS2SProvider) -> None:
    provider = s2s.new_provider(
        "local", engine="scripted", model_id=catalog.NOVA_SONIC_V1, output_sample_rate=16000
    )
    async with await provider.start_streaming(voice_id="tiffany") as session:  # type: ignore[attr-defined]
        chunks = await speak_and_wait(session, 0.8)  # Nova 1: the fixed default pause
    assert chunks[-1].is_final and all(c.sample_rate == 16000 for c in chunks)


async def test_two_concurrent_sessions_on_one_provider(local_provider: s2s.StreamingS2SProvider) -> None:
    a = await local_provider.start_streaming()
    b = await local_provider.start_streaming()
    try:
        ra, rb = await asyncio.gather(speak_and_wait(a, 0.6), speak_and_wait(b, 1.1))
        assert ra[-1].is_final and rb[-1].is_final
        assert a.prompt_name != b.prompt_name  # type: ignore[attr-defined]
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_close_is_fast_and_idempotent(local_provider: s2s.StreamingS2SProvider) -> None:
    session = await local_provider.start_streaming()
    await session.send_audio(silence(0.5))
    t0 = time.monotonic()
    await session.close()
    assert time.monotonic() - t0 < 1.0
    await session.close()
    assert session.closed
    with pytest.raises(s2s.SessionClosedError):
        await session.send_audio(silence(0.1))


# -- bad input: clear errors, and the session keeps working ---------------------------------------


@pytest.mark.parametrize(
    ("audio", "kwargs", "fragment"),
    [
        (b"\x00" * 641, {}, "even"),
        (np.zeros(100, dtype=np.int32), {}, "int32"),
        (np.zeros(100, dtype=np.uint8), {}, "uint8"),
        (np.array([0.0, np.nan], dtype=np.float32), {}, "NaN"),
        (np.zeros((10, 10, 2), dtype=np.int16), {}, "3-D"),
        ([0, 1, 2], {}, "numpy"),
        (np.zeros(100, dtype=np.int16), {"sample_rate": 100}, "8000 to 192000"),
        ("hello", {}, "str"),
    ],
)
async def test_bad_audio_raises_clear_error_and_session_survives(
    session: s2s.S2SSession, audio: object, kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(s2s.AudioFormatError) as info:
        await session.send_audio(audio, **kwargs)  # type: ignore[arg-type]
    assert fragment.lower() in str(info.value).lower()
    assert isinstance(info.value, ValueError)
    assert not session.closed
    chunks = await speak_and_wait(session, 0.6)
    assert chunks[-1].is_final


async def test_any_input_format_is_resampled_and_reframed(session: s2s.S2SSession) -> None:
    stereo_44k = np.stack([np.sin(np.arange(44100) / 20.0)] * 2, axis=1).astype(np.float32) * 0.3
    await session.send_audio(stereo_44k, sample_rate=44100)  # 1 s float32 stereo at 44.1 kHz
    await session.send_audio(b"\x00\x00" * 100)  # an odd-sized chunk of bytes
    await session.flush_audio()
    frame = session.config.input_frame_samples  # type: ignore[attr-defined]
    assert session.audio_samples_sent % frame == 0  # type: ignore[attr-defined]
    assert session.audio_samples_sent >= 16000 + 100  # type: ignore[attr-defined]


async def test_bad_start_streaming_arguments(local_provider: s2s.StreamingS2SProvider) -> None:
    with pytest.raises(s2s.ConfigError, match="Polly"):
        await local_provider.start_streaming(voice_id="Brian")
    with pytest.raises(s2s.ConfigError, match="ConversationContext"):
        await local_provider.start_streaming({"system_prompt": "x"})  # type: ignore[arg-type]
    with pytest.raises(s2s.ConfigError, match="first history message"):
        await local_provider.start_streaming(s2s.ConversationContext(history=[("ASSISTANT", "hi")]))
    with pytest.raises(s2s.ConfigError, match="enable_streaming must be True or False"):
        await local_provider.start_streaming(enable_streaming="yes")  # type: ignore[arg-type]


# -- failures: from the stream, from the HTTP response, from the connection -------------------------


async def test_exception_from_the_stream_surfaces_once() -> None:
    provider = faulty_provider(
        exception_at_event=(12, "throttlingException", "Too many requests, please wait."),
        options={"reconnect": False},
    )
    session = await provider.start_streaming()  # type: ignore[attr-defined]
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    chunks = []
    with pytest.raises(s2s.SessionClosedError, match="throttlingException"):
        for _ in range(100):
            await session.send_audio(silence(0.032))
            await asyncio.sleep(0.01)
    async for chunk in session.receive_audio():
        chunks.append(chunk)
    await asyncio.wait({collector}, timeout=5)
    (error,) = got.of(ev.StreamErrorEvent)
    assert error.code == "throttlingException" and error.recoverable
    assert "Too many requests" in error.message
    assert chunks[-1].error is not None and chunks[-1].is_final
    assert isinstance(session.error, s2s.StreamError)
    t0 = time.monotonic()
    await session.close()
    assert time.monotonic() - t0 < 1.0
    await asyncio.sleep(0.05)
    # Closing a failed session still stops its tasks: none is left pending.
    left = [
        t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(("nova-sender", "nova-reader"))
    ]
    assert left == []


@pytest.mark.parametrize(
    ("status", "error_type", "recoverable"),
    [(403, "AccessDeniedException", False), (429, "ThrottlingException", True)],
)
async def test_http_error_at_open(status: int, error_type: str, recoverable: bool) -> None:
    message = "You don't have access to the model with the specified model ID."
    emulator = BackgroundEmulator(
        handler=conversation_handler(), admission=lambda info: HttpError(status, error_type, message)
    ).start()
    try:
        # No retries: this checks how the refusal is reported (retries: tests/e2e/test_open_retry.py).
        provider = s2s.new_provider("local", emulator=emulator, reconnect_attempts=0)
        with pytest.raises(s2s.StreamError) as info:
            await provider.start_streaming()  # type: ignore[attr-defined]
        assert info.value.code.lower() == error_type.lower()
        assert info.value.recoverable is recoverable
        assert message in str(info.value)
    finally:
        emulator.stop()


async def test_wrong_secret_is_refused_without_echoing_it() -> None:
    emulator = BackgroundEmulator(handler=conversation_handler()).start()
    wrong = "x" * 40
    try:
        provider = s2s.new_provider(
            "amazon_nova",
            endpoint_uri=emulator.endpoint_uri,
            ca_file=str(emulator.ca_file),
            region=emulator.region,
            aws_access_key_id=emulator.credentials.access_key_id,
            aws_secret_access_key=wrong,
        )
        with pytest.raises(s2s.StreamError) as info:
            await provider.start_streaming()  # type: ignore[attr-defined]
        assert info.value.code == "InvalidSignatureException"
        assert "aws_secret_access_key" in str(info.value)
        assert not info.value.recoverable
        assert wrong not in str(info.value) and emulator.credentials.secret_access_key not in str(info.value)
    finally:
        emulator.stop()


async def test_untrusted_certificate_fails_fast() -> None:
    a = BackgroundEmulator(handler=conversation_handler()).start()
    b = BackgroundEmulator(handler=conversation_handler()).start()
    try:
        provider = s2s.new_provider(
            "amazon_nova",
            endpoint_uri=a.endpoint_uri,
            ca_file=str(b.ca_file),  # the other emulator's CA
            region=a.region,
            aws_access_key_id=a.credentials.access_key_id,
            aws_secret_access_key=a.credentials.secret_access_key,
        )
        t0 = time.monotonic()
        with pytest.raises(ConnectionError, match="not trusted"):
            await provider.start_streaming()  # type: ignore[attr-defined]
        assert time.monotonic() - t0 < 5
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("fault", ["reset_at_event", "drop_at_event"])
async def test_reset_or_drop_is_an_error_and_close_stays_bounded(fault: str) -> None:
    provider = faulty_provider(options={"reconnect": False}, **{fault: 20})
    session = await provider.start_streaming()  # type: ignore[attr-defined]
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    with pytest.raises(s2s.SessionClosedError):
        for _ in range(200):
            await session.send_audio(silence(0.032))
            await asyncio.sleep(0.005)
    await asyncio.wait({collector}, timeout=5)
    (error,) = got.of(ev.StreamErrorEvent)
    assert error.recoverable
    assert error.code in ("StreamReset", "ConnectionError")
    t0 = time.monotonic()
    await session.close()
    assert time.monotonic() - t0 <= session.config.close_timeout_s + 0.5  # type: ignore[attr-defined]


async def test_session_time_limit_ends_with_model_timeout() -> None:
    provider = faulty_provider(session_limit_s=1.0, options={"reconnect": False, "continuation": False})
    session = await provider.start_streaming()  # type: ignore[attr-defined]
    chunks = []
    async for chunk in session.receive_audio():
        chunks.append(chunk)
    assert isinstance(session.error, s2s.StreamError)
    assert session.error.code == "modelTimeoutException" and session.error.recoverable
    await session.close()


async def test_missing_credentials_fail_fast_and_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    emulator = BackgroundEmulator(handler=conversation_handler()).start()
    try:
        provider = s2s.new_provider(
            "amazon_nova", endpoint_uri=emulator.endpoint_uri, ca_file=str(emulator.ca_file)
        )
        t0 = time.monotonic()
        with pytest.raises(s2s.ConfigError, match="no AWS credentials found"):
            await provider.start_streaming()  # type: ignore[attr-defined]
        assert time.monotonic() - t0 < 5
        missing_profile = s2s.new_provider(
            "amazon_nova",
            profile="does-not-exist",
            endpoint_uri=emulator.endpoint_uri,
            ca_file=str(emulator.ca_file),
        )
        with pytest.raises(s2s.ConfigError, match="'does-not-exist' was not found"):
            await missing_profile.start_streaming()  # type: ignore[attr-defined]
    finally:
        emulator.stop()


async def test_bad_history_opens_no_stream(local_provider: s2s.StreamingS2SProvider) -> None:
    before = {t.get_name() for t in asyncio.all_tasks()}
    with pytest.raises(s2s.ConfigError):
        await local_provider.start_streaming(s2s.ConversationContext(history=[("ASSISTANT", "hi")]))
    with pytest.raises(s2s.ConfigError, match="enable_streaming must be True or False"):
        await local_provider.start_streaming(enable_streaming="yes")  # type: ignore[arg-type]
    after = {t.get_name() for t in asyncio.all_tasks()}
    assert "nova-sender" not in after - before and "nova-reader" not in after - before


async def test_input_listener_and_playback_reports_share_the_event_clock(session: s2s.S2SSession) -> None:
    frames: list[tuple[bytes, float, int]] = []
    events: list[ev.Event] = []
    session.add_input_listener(lambda f, t, r: frames.append((f, t, r)))  # type: ignore[attr-defined]
    session.add_listener(events.append)  # type: ignore[attr-defined]
    chunks = await speak_and_wait(session, 0.6)
    assert sum(len(f) for f, _, _ in frames) == 2 * session.audio_samples_sent  # type: ignore[attr-defined]
    assert all(r == 16000 for _, _, r in frames)
    first_audio = next(e for e in events if isinstance(e, ev.AudioOutput))
    assert frames[0][1] < first_audio.timestamp  # one monotonic clock for both directions
    session.report_playback(chunks[0].content_id, 0.5)  # type: ignore[attr-defined]
    assert session.played_s[chunks[0].content_id] == 0.5  # type: ignore[attr-defined]
    assert isinstance(events[-1], ev.PlaybackReported) and events[-1].played_s == 0.5
    with pytest.raises(s2s.ConfigError, match="played_s"):
        session.report_playback(chunks[0].content_id, -1)  # type: ignore[attr-defined]


async def test_service_speech_end_comes_before_the_turn_decision(session: s2s.S2SSession) -> None:
    """As captured from the service (docs/PROTOCOL.md §12): userSpeechEnd comes ~0.3–0.6 s after the
    speech stopped, while the turn is decided only after the endpointing pause (1.5 s at "low")."""
    got = Collected()
    collector = asyncio.create_task(collect(session, got))
    await speak_and_wait(session, 1.0)
    await session.close()
    await asyncio.wait({collector}, timeout=5)
    (end,) = got.of(ev.ServiceSpeechEnded)
    assert end.input_audio_offset_ms is not None and end.detection_offset_ms is not None
    assert 380 <= end.detection_offset_ms - end.input_audio_offset_ms <= 500  # the emulator's 0.4 s
    order = [type(e).__name__ for e in got.events]
    decision = next(i for i, e in enumerate(got.events) if isinstance(e, ev.Transcript) and e.role == "USER")
    assert order.index("ServiceSpeechEnded") < decision
    # So the service's end of speech → first audio includes most of the pause, unlike the decision's.
    (turn,) = TurnBuilder().feed_all(got.events)
    assert turn.service_response_s is not None and turn.decision_to_audio_s is not None
    assert turn.service_response_s > turn.decision_to_audio_s
