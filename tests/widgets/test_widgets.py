"""The widgets without a browser: message handling from any thread, the headless file path, decoding."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nova_nb import audio, s2s
from nova_nb.errors import AudioFormatError
from nova_nb.s2s import events as ev
from nova_nb.s2s.types import AudioOutputChunk
from nova_nb.widgets import (
    LiveAudio,
    PushToTalk,
    SessionPanel,
    decode_audio,
    encode_webm_opus,
    frontend_attached,
    talk,
)
from nova_nb.widgets._runner import LoopThread


class FakeSession:
    """What LiveAudio uses of a session, recording calls and the thread they ran on."""

    def __init__(self) -> None:
        self.config = s2s.default_config()
        self.frames: list[bytes] = []
        self.reports: list[tuple[str, float, bool]] = []
        self.threads: set[str] = set()
        self.listeners: list[Any] = []
        self.closed = False
        self.chunks: asyncio.Queue[AudioOutputChunk | None] = asyncio.Queue()

    async def send_audio(self, frame: bytes, **_: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.frames.append(frame)

    def report_playback(self, content_id: str, played_s: float, *, final: bool = False) -> None:
        self.threads.add(threading.current_thread().name)
        self.reports.append((content_id, played_s, final))

    def add_listener(self, cb: Any) -> Any:
        self.listeners.append(cb)
        return lambda: self.listeners.remove(cb)

    async def receive_audio(self) -> Any:
        while (chunk := await self.chunks.get()) is not None:
            yield chunk


class Sent(list):
    def __call__(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.append((content, buffers))


@pytest.fixture
def runner() -> Any:
    r = LoopThread("test-session-loop")
    yield r
    r.stop()


def _attach(live: LiveAudio, runner: LoopThread, **kw: Any) -> FakeSession:
    async def make() -> FakeSession:
        session = FakeSession()
        live.attach(session, **kw)
        return session

    return runner.run(make(), 5)


def _frame(i: int) -> bytes:
    return np.full(320, i, dtype="<i2").tobytes()


def test_frames_from_many_threads_reach_the_session_loop_in_order(runner: LoopThread) -> None:
    live = LiveAudio()
    session = _attach(live, runner)

    def page(offset: int) -> None:  # a comm thread delivering the page's messages
        for i in range(100):
            live._handle(
                live,
                {"type": "frame", "seq": i, "sent": time.time() * 1000, "rms": 0.1},
                [memoryview(_frame(offset + i))],
            )

    threads = [threading.Thread(target=page, args=(k * 1000,), name=f"subshell-{k}") for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 5
    while len(session.frames) < 400 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(session.frames) == 400
    assert session.threads == {"test-session-loop"}  # send_audio ran on the session's loop only
    for k in range(4):
        values = [
            np.frombuffer(f, "<i2")[0]
            for f in session.frames
            if k * 1000 <= np.frombuffer(f, "<i2")[0] < (k + 1) * 1000
        ]
        assert values == list(range(k * 1000, k * 1000 + 100))  # each thread's frames in order
    assert {t.name for t in threads} <= live.handler_threads
    assert live.stats()["frame_latency_ms"]["n"] == 400


def test_muted_frames_keep_flowing_as_silence(runner: LoopThread) -> None:
    live = LiveAudio()
    session = _attach(live, runner)
    live.muted = True
    live._handle(live, {"type": "frame"}, [_frame(5)])
    runner.run(asyncio.sleep(0.05), 5)
    assert session.frames == [bytes(640)]


def test_playback_reports_go_to_the_session_on_its_loop(runner: LoopThread) -> None:
    live = LiveAudio()
    session = _attach(live, runner)
    live._handle(live, {"type": "played", "id": "c1", "played_s": 0.5, "final": False}, None)
    live._handle(live, {"type": "played", "id": "c1", "played_s": 0.75, "final": True}, None)
    live._handle(live, {"type": "played", "id": None, "played_s": 1.0}, None)  # ignored: no reply id
    runner.run(asyncio.sleep(0.05), 5)
    assert session.reports == [("c1", 0.5, False), ("c1", 0.75, True)]
    assert session.threads == {"test-session-loop"}


def test_play_sends_binary_pcm_at_the_output_rate_and_flush_is_measured(
    runner: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = LiveAudio()
    sent = Sent()
    monkeypatch.setattr(live, "send", sent)
    chunk = AudioOutputChunk(np.arange(480, dtype="<i2").tobytes(), 0.0, sample_rate=24000, content_id="c9")
    live.play(chunk)
    live.play(np.zeros(160, dtype=np.int16), sample_rate=8000, content_id="c9")  # resampled to 24 kHz
    token = live.flush()
    assert [c["type"] for c, _ in sent] == ["play", "play", "flush"]
    assert sent[0][0]["id"] == "c9" and sent[0][1] == [chunk.audio]
    assert len(sent[1][1][0]) == 480 * 2
    live._handle(
        live,
        {"type": "flushed", "token": token, "at": time.time() * 1000 + 5, "handled": time.time() * 1000},
        None,
    )
    assert live.stats()["flush_ms"]["n"] == 1


def test_interruption_flushes_the_page_before_the_chunk_is_read(
    runner: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = LiveAudio()
    sent = Sent()
    monkeypatch.setattr(live, "send", sent)
    session = _attach(live, runner)
    for listener in session.listeners:
        listener(ev.Interruption(timestamp=0.0, content_id="c1", signal="stopReason"))
    assert [c["type"] for c, _ in sent] == ["flush"]
    # The session's interrupted end chunk does not flush a second time.
    runner.loop.call_soon_threadsafe(
        session.chunks.put_nowait, AudioOutputChunk(b"", 0.0, True, None, 24000, "c1", True)
    )
    runner.run(asyncio.sleep(0.05), 5)
    assert [c["type"] for c, _ in sent] == ["flush"]


def test_feed_file_uses_the_microphone_path(tmp_path: Path) -> None:
    path = tmp_path / "q.wav"
    audio.write_wav(path, np.full(44100, 1000, dtype=np.int16), 44100)  # 1 s at 44.1 kHz
    live = LiveAudio()
    got: list[bytes] = []
    live.on_frame(lambda frame, t: got.append(frame))
    assert live.feed_file(path) == 50
    assert len(got) == 50 and {len(f) for f in got} == {640}


def test_webm_opus_round_trip_and_bad_data() -> None:
    t = np.arange(32000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    data = encode_webm_opus(tone, 16000)
    assert data[:4] == b"\x1aE\xdf\xa3"  # EBML: WebM
    back = decode_audio(data, target_rate=16000)
    assert abs(back.size - tone.size) < 1000 and 7000 < np.abs(back).max() < 9000
    with pytest.raises(AudioFormatError):
        decode_audio(b"not audio at all")
    with pytest.raises(AudioFormatError):
        decode_audio(b"")


def test_frontend_detection_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVA_NB_HEADLESS", "1")
    assert frontend_attached() is False
    monkeypatch.setenv("NOVA_NB_HEADLESS", "0")
    assert frontend_attached() is True
    monkeypatch.delenv("NOVA_NB_HEADLESS")
    assert frontend_attached() is False  # not in a kernel at all


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    from nova_nb.emulator.engine.testaudio import make_utterance

    return make_utterance("What time is it?", sample_rate=16000, tail_silence_s=0.5)


def test_panel_headless_turn(question: np.ndarray) -> None:
    panel = SessionPanel("local", provider_options={"engine": "scripted"})
    try:
        turn = panel.run_file(question, timeout=30)
        assert turn is not None and turn.ended_t is not None and turn.duration_s > 0.5
        assert turn.response_s is not None and turn.decision_to_audio_s is not None
        snap = panel.snapshot()
        assert snap["state"] == "live" and snap["errors"] == []
        roles = [(line["role"], line["stage"]) for line in snap["transcript"]]
        assert ("USER", "FINAL") in roles and ("ASSISTANT", "SPECULATIVE") in roles
        assert 'data-stage="SPECULATIVE"' in panel.transcript.value
        assert len(panel.players.children) == 1 and "nova-turn" in panel.latency.value
        assert turn.wav_bytes()[:4] == b"RIFF"
    finally:
        panel.close()
    assert panel.state == "stopped"


def test_an_interrupted_turn_keeps_what_was_heard() -> None:
    from nova_nb.widgets import TurnRecord

    turn = TurnRecord("c1", 1, audio=[bytes(48000)], sample_rate=24000)  # 1 s
    turn.interrupted, turn.played_s = True, 0.25
    assert len(turn.heard_audio()) == 12000 and len(b"".join(turn.audio)) == 48000
    assert len(turn.wav_bytes(heard=True)) == 44 + 12000


def test_panel_shows_errors_instead_of_raising() -> None:
    panel = SessionPanel("local", provider_options={"engine": "no-such-engine"})
    try:
        panel.start(wait=True, timeout=10)
        assert panel.state == "error" and "no-such-engine" in panel.errors[0]
        assert 'data-state="error"' in panel.status.value
        assert panel.run_file(np.zeros(1600, dtype=np.int16), timeout=1) is None
    finally:
        panel.close()


def test_talk_says_the_file_without_a_browser(question: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVA_NB_HEADLESS", "1")
    panel = talk(file=question, engine="scripted", display=False, timeout=30)
    try:
        assert len(panel.turns) == 1 and panel.errors == []
    finally:
        panel.close()


def test_push_to_talk_sends_a_recording_paced(question: np.ndarray) -> None:
    from nova_nb import s2s

    runner = LoopThread()
    try:
        provider = s2s.new_provider("local", engine="scripted")
        session: Any = runner.run(provider.start_streaming(s2s.ConversationContext()), 30)  # type: ignore[attr-defined]
        ptt = PushToTalk(session, loop=runner.loop, tail_silence_s=0.1)
        webm = encode_webm_opus(question[:8000], 16000)  # 0.5 s, as the browser would record it
        ptt._on_audio({"new": webm})
        start = time.monotonic()
        ptt.sends[-1].result(10)
        elapsed = time.monotonic() - start
        assert ptt.errors == [] and len(ptt.recordings) == 1
        assert session.audio_samples_sent >= 8000 + 1600 - 512
        assert elapsed >= 0.4  # paced: about real time, not a burst
        runner.run(session.close(), 15)
    finally:
        runner.stop()


def test_server_extension_turns_on_nodelay(monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    from nova_nb.widgets import server

    monkeypatch.setattr(KernelWebsocketHandler, "open", KernelWebsocketHandler.open)
    monkeypatch.setattr(KernelWebsocketHandler, "_nova_nb_nodelay", False, raising=False)
    logged: list[str] = []

    class App:
        class log:
            @staticmethod
            def info(msg: str) -> None:
                logged.append(msg)

    assert server._jupyter_server_extension_points() == [{"module": "nova_nb.widgets.server"}]
    server._load_jupyter_server_extension(App())
    assert KernelWebsocketHandler._nova_nb_nodelay and "TCP_NODELAY" in logged[0]  # type: ignore[attr-defined]
    calls: list[bool] = []

    class Fake:
        ws_connection = object()

        def set_nodelay(self, value: bool) -> None:
            calls.append(value)

    async def original(self: Any, kernel_id: str) -> str:
        return kernel_id

    monkeypatch.setattr(KernelWebsocketHandler, "open", original)
    monkeypatch.setattr(KernelWebsocketHandler, "_nova_nb_nodelay", False)
    server._load_jupyter_server_extension(App())
    assert asyncio.run(KernelWebsocketHandler.open(Fake(), "k1")) == "k1" and calls == [True]  # type: ignore[arg-type]
