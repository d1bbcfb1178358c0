"""The session contract serves any provider: a second, in-test provider gets the whole pipeline.

``EchoSession`` is a real :class:`~nova_nb.s2s.S2SSession` subclass, not a mock: its transport hook
records the frames it is given, and the tests play the service by feeding the output side the way a
provider's reader does. Everything checked here is implemented once, in the contract.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.s2s import events as ev
from nova_nb.s2s.config import Config
from nova_nb.s2s.session import S2SSession
from nova_nb.s2s.types import AudioOutputChunk

RATE_IN, RATE_OUT, FRAME_MS = 16000, 24000, 32
FRAME = RATE_IN * FRAME_MS // 1000  # samples per input frame


class EchoSession(S2SSession):
    """A provider's session in ~20 lines: the transport only records what it would send."""

    def __init__(self, config: Config | None = None, *, enable_streaming: bool = True) -> None:
        super().__init__(config or Config(), voice_id="echo", enable_streaming=enable_streaming)
        self.sent: list[tuple[float, bytes]] = []
        self.texts: list[str] = []

    async def _send_frame_to_service(self, frame: bytes) -> None:
        self.sent.append((time.monotonic(), frame))

    async def send_text(self, text: str) -> None:
        self._check_usable()
        self.texts.append(text)

    async def send_tool_result(self, tool_use_id: str, result: Any) -> None:
        self._check_usable()
        self._publish(ev.ToolResultSent(timestamp=time.monotonic(), tool_use_id=tool_use_id, result=result))

    async def close(self) -> None:
        self._closing = True
        for frame in self._stop_input():
            self.sent.append((time.monotonic(), frame))
        self._finish("closed")

    # The service's side, as a provider's reader would feed it.
    def speak(self, content_id: str, pcm: bytes) -> None:
        self._output_audio(
            ev.AudioOutput(timestamp=time.monotonic(), audio=pcm, content_id=content_id, sample_rate=RATE_OUT)
        )

    def end_turn(self, content_id: str) -> None:
        self._end_turn_audio(content_id, time.monotonic())

    def barge_in(self, content_id: str) -> None:
        self._interrupt(ev.Interruption(timestamp=time.monotonic(), content_id=content_id, signal="marker"))

    @property
    def frames(self) -> list[bytes]:
        return [f for _, f in self.sent]


async def take_pending(session: S2SSession) -> list[AudioOutputChunk]:
    """What receive_audio() holds now, without waiting (the session stays open)."""
    got: list[AudioOutputChunk] = []
    iterator = aiter(session.receive_audio())
    while session._audio.items:
        got.append(await anext(iterator))
    return got


def test_the_contract_is_what_a_provider_implements() -> None:
    abstract = S2SSession.__abstractmethods__
    assert abstract == {"_send_frame_to_service", "send_text", "send_tool_result", "close"}
    assert issubclass(EchoSession, s2s.S2SSession)


# -- input ---------------------------------------------------------------------------------------


async def test_48k_float_stereo_is_resampled_and_reframed() -> None:
    session = EchoSession()
    t = np.arange(48000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    await session.send_audio(np.stack([tone, tone], axis=1), sample_rate=48000)  # 1 s, stereo, 48 kHz
    assert all(len(f) == 2 * FRAME for f in session.frames)
    assert session._reframer.pending + len(session.frames) * FRAME == 16000  # 1 s at 16 kHz, none lost
    samples = np.frombuffer(b"".join(session.frames), dtype="<i2").astype(np.float64) / 32768
    # Still a 440 Hz tone of amplitude 0.5 (the resampler is linear phase, so no level change).
    spectrum = np.abs(np.fft.rfft(samples[1000:-1000]))
    peak_hz = np.argmax(spectrum) * RATE_IN / (samples.size - 2000)
    assert abs(peak_hz - 440) < 5
    assert 0.45 < np.max(np.abs(samples[1000:-1000])) < 0.55
    assert session.audio_samples_sent == len(session.frames) * FRAME
    assert session.audio_events_sent == len(session.frames)


async def test_odd_chunks_of_bytes_are_reframed_without_loss() -> None:
    session = EchoSession()
    heard: list[tuple[bytes, float, int]] = []
    session.add_input_listener(lambda frame, at, rate: heard.append((frame, at, rate)))
    pcm = np.arange(10_000, dtype="<i2").tobytes()
    sizes, at = [2, 640, 1022, 1024, 6, 4000, 2048, 3000], 0
    for size in sizes:  # browser-sized 20 ms chunks, odd sizes, exact frames, several frames at once
        await session.send_audio(pcm[at : at + size])
        at += size
    await session.send_audio(pcm[at:])
    await session.flush_audio()
    assert all(len(f) == 2 * FRAME for f in session.frames)
    joined = b"".join(session.frames)
    assert joined[: len(pcm)] == pcm and set(joined[len(pcm) :]) <= {0}  # only the padding is added
    assert [h[0] for h in heard] == session.frames and {h[2] for h in heard} == {RATE_IN}
    # Bytes and arrays share the re-framer: order is kept across a switch of input type.
    session2 = EchoSession()
    await session2.send_audio(pcm[:100])
    await session2.send_audio(np.frombuffer(pcm[100:2000], dtype="<i2"))
    await session2.send_audio(pcm[2000:4096])
    assert b"".join(session2.frames) == pcm[:4096]


async def test_a_frame_of_exactly_frame_ms_is_sent_as_given() -> None:
    session = EchoSession()
    frame = np.ones(FRAME, dtype="<i2").tobytes()
    await session.send_audio(frame)
    assert session.frames[0] is frame  # no copy on the hot path


async def test_bad_input_raises_a_clear_error_and_the_session_goes_on() -> None:
    session = EchoSession()
    with pytest.raises(s2s.AudioFormatError, match="even"):
        await session.send_audio(b"\x00" * 641)
    with pytest.raises(s2s.AudioFormatError, match="8000 to 192000"):
        await session.send_audio(np.zeros(100, dtype=np.int16), sample_rate=100)
    await session.send_audio(bytes(2 * FRAME))
    assert len(session.frames) == 1


async def test_pace_sends_no_faster_than_real_time() -> None:
    session = EchoSession()
    t0 = time.monotonic()
    await session.send_audio(np.zeros(16000 // 2, dtype=np.int16), pace=True)  # 0.5 s of audio
    elapsed = time.monotonic() - t0
    n = len(session.frames)  # 15 frames; the first goes at once, the last is due at 14 * 32 ms
    assert n == 8000 // FRAME
    assert 0.9 * (n - 1) * FRAME / RATE_IN <= elapsed < 2.0
    unpaced = EchoSession()
    t0 = time.monotonic()
    await unpaced.send_audio(np.zeros(16000 * 5, dtype=np.int16))  # 5 s of audio, unpaced
    assert time.monotonic() - t0 < 1.0


async def test_pause_sends_silence_in_real_time_and_discards_the_microphone() -> None:
    session = EchoSession()
    session.pause()
    assert session.paused
    loud = np.full(1600, 10_000, dtype=np.int16)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.5:
        await session.send_audio(loud)
        await session.send_audio(loud.astype("<i2").tobytes())  # the bytes path is muted too
        await asyncio.sleep(0.05)
    session.resume()
    assert not session.paused
    muted = session.muted_samples
    assert muted >= 2 * 1600 * 5
    assert session.frames and set(b"".join(session.frames)) == {0}  # silence only, nothing of the mic
    sent = len(session.frames) * FRAME / RATE_IN
    assert 0.25 <= sent <= 1.0  # about real time: the keep-alive paces its silence
    await asyncio.sleep(0.1)
    n = len(session.frames)
    await asyncio.sleep(0.1)
    assert len(session.frames) == n  # resume() stopped the keep-alive
    await session.send_audio(loud[:FRAME])
    assert session.frames[-1] == loud[:FRAME].astype("<i2").tobytes()
    assert session.muted_samples == muted


async def test_closed_session_refuses_input() -> None:
    session = EchoSession()
    await session.send_audio(bytes(100))  # a partial frame, held back
    await session.close()
    assert session.closed and len(session.frames) == 1 and len(session.frames[0]) == 2 * FRAME
    with pytest.raises(s2s.SessionClosedError):
        await session.send_audio(bytes(2 * FRAME))
    with pytest.raises(s2s.SessionClosedError):
        session.pause()


# -- output ----------------------------------------------------------------------------------------


async def test_chunks_as_they_come_then_a_final_mark() -> None:
    session = EchoSession()
    session.speak("c1", b"\x01\x00" * 240)
    session.speak("c1", b"\x02\x00" * 240)
    session.end_turn("c1")
    chunks = await take_pending(session)
    assert [c.audio[:1] for c in chunks] == [b"\x01", b"\x02"]
    assert [c.is_final for c in chunks] == [False, True] and {c.content_id for c in chunks} == {"c1"}
    assert chunks[0].sample_rate == RATE_OUT
    session.end_turn("c2")  # a turn whose chunks were all read already: an empty final chunk
    (empty,) = await take_pending(session)
    assert empty.audio == b"" and empty.is_final and empty.content_id == "c2"


async def test_whole_turn_mode_gives_one_chunk_per_turn() -> None:
    session = EchoSession(enable_streaming=False)
    for _ in range(3):
        session.speak("c1", b"\x01\x00" * 100)
    assert not session._audio.items
    session.end_turn("c1")
    (chunk,) = await take_pending(session)
    assert chunk.is_final and len(chunk.audio) == 600 and chunk.content_id == "c1"


async def test_output_buffer_is_bounded_and_drops_are_reported() -> None:
    session = EchoSession(Config(output_buffer_s=1.0))
    reports: list[ev.AudioDropped] = []
    session.add_listener(lambda e: reports.append(e) if isinstance(e, ev.AudioDropped) else None)
    second = b"\x00\x00" * RATE_OUT
    for _ in range(5):  # 5 s of speech, nobody reading
        session.speak("c1", second)
    assert session._audio_buffered <= 2 * RATE_OUT  # at most output_buffer_s
    assert session.dropped_output_bytes == 4 * len(second)
    assert sum(r.dropped_bytes for r in reports) == 4 * len(second)
    assert reports[-1].buffered_s == pytest.approx(1.0)
    assert len(await take_pending(session)) == 1


async def test_interruption_flushes_and_marks_the_final_chunk_interrupted() -> None:
    session = EchoSession()
    got: list[ev.Event] = []
    session.add_listener(got.append)
    session.speak("c1", b"\x01\x00" * 480)
    session.speak("c1", b"\x01\x00" * 480)
    session.barge_in("c1")
    session.speak("c1", b"\x01\x00" * 480)  # late audio of the interrupted reply: never handed out
    session.end_turn("c1")  # its end: the interruption already ended the turn
    (final,) = await take_pending(session)
    assert final.audio == b"" and final.is_final and final.interrupted and final.content_id == "c1"
    (interruption,) = [e for e in got if isinstance(e, ev.Interruption)]
    assert interruption.dropped_bytes == 2 * 960
    assert session.dropped_output_bytes == 3 * 960
    # The next reply plays normally.
    session.speak("c2", b"\x02\x00" * 10)
    session.end_turn("c2")
    (chunk,) = await take_pending(session)
    assert chunk.is_final and not chunk.interrupted and chunk.content_id == "c2"


async def test_playback_accounting() -> None:
    session = EchoSession()
    got: list[ev.Event] = []
    session.add_listener(got.append)
    session.report_playback("c1", 0.25)
    session.report_playback("c1", 0.5, final=True, at=123.0)
    assert session.played_s == {"c1": 0.5}
    reports = [e for e in got if isinstance(e, ev.PlaybackReported)]
    assert [(r.played_s, r.final) for r in reports] == [(0.25, False), (0.5, True)]
    assert reports[-1].timestamp == 123.0
    with pytest.raises(s2s.ConfigError, match="played_s"):
        session.report_playback("c1", -1.0)
    with pytest.raises(s2s.ConfigError, match="content_id"):
        session.report_playback("", 1.0)


async def test_events_buffer_and_the_end() -> None:
    session = EchoSession()
    session.speak("c1", b"\x00\x00" * 10)  # audio events are kept only while events() is iterated
    await session.send_tool_result("t1", {"ok": True})
    session._publish(ev.UnknownEvent(timestamp=time.monotonic(), name="x", payload={}))
    removed: list[ev.Event] = []
    remove = session.add_listener(removed.append)
    remove()
    await session.close()
    kinds = [type(e) async for e in session.events()]
    assert kinds == [ev.ToolResultSent, ev.UnknownEvent, ev.SessionClosed]
    assert [c async for c in session.receive_audio()][-1].content_id == "c1"  # ends after the last chunk
    assert removed == []
    await session.close()  # idempotent
