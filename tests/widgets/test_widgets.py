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
from nova_nb.errors import AudioFormatError, StateError
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
        self.report_times: list[float | None] = []
        self.threads: set[str] = set()
        self.listeners: list[Any] = []
        self.closed = False
        self.paused = False
        self.pauses = 0
        self.chunks: asyncio.Queue[AudioOutputChunk | None] = asyncio.Queue()

    def pause(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume(self) -> None:
        self.paused = False

    async def send_audio(self, frame: bytes, **_: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.frames.append(frame)

    def report_playback(
        self, content_id: str, played_s: float, *, final: bool = False, at: float | None = None
    ) -> None:
        self.threads.add(threading.current_thread().name)
        self.reports.append((content_id, played_s, final))
        self.report_times.append(at)

    def add_listener(self, cb: Any) -> Any:
        self.listeners.append(cb)
        return lambda: self.listeners.remove(cb)

    async def receive_audio(self) -> Any:
        while (chunk := await self.chunks.get()) is not None:
            yield chunk


class Sent(list):
    """What the widget sent to the page, without the periodic counters ("kstats")."""

    def __call__(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        if content.get("type") == "kstats":
            self.kstats.append(content)
        else:
            self.append((content, buffers))

    def __init__(self) -> None:
        super().__init__()
        self.kstats: list[dict[str, Any]] = []


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
    heard_at = time.time() * 1000 - 40  # the page's playback clock: that sample was heard 40 ms ago
    live._handle(live, {"type": "played", "id": "c2", "played_s": 0.1, "at": heard_at}, None)
    runner.run(asyncio.sleep(0.05), 5)
    assert session.reports == [("c1", 0.5, False), ("c1", 0.75, True), ("c2", 0.1, False)]
    # The page's clock, moved to the monotonic clock of the session's events.
    at = session.report_times[-1]
    assert at is not None and 0.02 < time.monotonic() - at < 1.0
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
        # The reply goes to the page's player (the same LiveAudio), and the transcript is shown.
        _until(lambda: ptt.live.chunks_sent > 0, 20, "the reply to be sent to the player")
        assert 'data-role="USER"' in ptt.transcript.value
        assert ptt.live.stats()["frames_sent"] >= 25 and ptt.live.frames_unrouted == 0
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


# -- no frame lost without a trace; a live session never starves ------------------------------------


def _page_frame(live: LiveAudio, seq: int, epoch: int = 1, value: int = 100, age_ms: float = 5.0) -> None:
    """A frame as the page sends it: stamped at capture, numbered within the microphone's opening."""
    now = time.time() * 1000
    live._handle(
        live,
        {"type": "frame", "seq": seq, "epoch": epoch, "captured": now - age_ms, "sent": now - 1, "rms": 0.1},
        [memoryview(_frame(value))],
    )


def test_a_standalone_widget_counts_frames_it_cannot_send(monkeypatch: pytest.MonkeyPatch) -> None:
    live = LiveAudio()
    sent = Sent()
    monkeypatch.setattr(live, "send", sent)
    for i in range(5):
        _page_frame(live, i)
    stats = live.stats()
    assert stats["route"] == "none" and stats["frames_unrouted"] == 5 and stats["frames_received"] == 5
    # The page is told (what it shows beside the meter): no session, 5 frames counted.
    assert sent.kstats and sent.kstats[0]["route"] == "none" and sent.kstats[0]["frames_unrouted"] >= 1
    got: list[bytes] = []
    live.on_frame(lambda frame, t: got.append(frame))
    _page_frame(live, 5)
    assert live.stats()["route"] == "callbacks" and len(got) == 1 and live.frames_unrouted == 5


def test_frames_are_timed_from_capture_and_gaps_are_counted() -> None:
    live = LiveAudio()
    for seq in (0, 1, 2, 5, 6):  # 3 and 4 never arrived
        _page_frame(live, seq, age_ms=30.0)
    _page_frame(live, 0, epoch=2)  # the microphone was reopened: numbering starts again, no gap
    stats = live.stats()
    assert stats["gaps"] == 2
    assert stats["frame_latency_ms"]["p50"] >= 29  # from the capture stamp, not from the post
    assert stats["frame_transport_ms"]["p50"] < 29
    assert stats["frames_per_second"] == pytest.approx(6 / 2.0)


def test_held_frames_go_first_when_the_session_attaches(runner: LoopThread) -> None:
    live = LiveAudio(mode="panel")
    live.hold(True)
    for i in range(3):
        _page_frame(live, i, value=i + 1)
    assert live.stats()["frames_held"] == 3 and live.frames_unrouted == 0
    session = _attach(live, runner)
    _page_frame(live, 3, value=4)
    deadline = time.monotonic() + 5
    while len(session.frames) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [np.frombuffer(f, "<i2")[0] for f in session.frames] == [1, 2, 3, 4]
    assert live.stats()["frames_sent"] == 4 and live.stats()["route"] == "session"


def test_an_attached_session_gets_silence_when_no_frames_come(runner: LoopThread) -> None:
    from nova_nb.widgets._live import STARVE_S

    live = LiveAudio()
    session = _attach(live, runner)
    _page_frame(live, 0)
    deadline = time.monotonic() + STARVE_S + 3
    while not session.paused and time.monotonic() < deadline:
        time.sleep(0.02)
    assert session.paused and live.stats()["filling"]  # the session streams silence meanwhile
    _page_frame(live, 1)
    deadline = time.monotonic() + 3
    while session.paused and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not session.paused and len(session.frames) == 2 and live.silence_fills >= 1


def test_bad_mode_is_refused() -> None:
    from nova_nb.errors import ConfigError

    with pytest.raises(ConfigError, match="standalone, panel, ptt"):
        LiveAudio(mode="speaker")


# -- the panel's one control, driven as the page drives it -------------------------------------------


def _control(panel: SessionPanel, action: str, **extra: Any) -> None:
    panel.live._handle(panel.live, {"type": "control", "action": action, **extra}, None)


def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class _Page:
    """The page's microphone as the kernel sees it: the running/status traits and numbered frames."""

    def __init__(self, live: LiveAudio) -> None:
        self.live, self.seq, self.epoch = live, 0, 0

    def open(self) -> None:
        self.epoch += 1
        self.seq = 0
        self.live.status, self.live.running = "listening", True

    def frames(self, n: int, value: int = 0) -> None:
        for _ in range(n):
            _page_frame(self.live, self.seq, epoch=self.epoch, value=value)
            self.seq += 1

    def close(self, error: str = "") -> None:
        if error:
            self.live.error = error
        self.live.running = False
        self.live.status = "error" if error else "stopped"


def test_panel_start_mute_stop_from_the_page_controls(question: np.ndarray) -> None:
    panel = SessionPanel("local", provider_options={"engine": "scripted"})
    page = _Page(panel.live)
    try:
        with pytest.raises(StateError):
            panel.mute(True)  # nothing to mute: the page's button is disabled too
        _control(panel, "start")
        assert panel.state == "starting" and panel.live.capture  # the microphone is asked for at once
        assert panel.live.control_state == "starting" and panel.provider_picker.disabled
        page.open()
        page.frames(10)  # captured before the session is open: held for it, not lost
        _until(lambda: panel.state == "live", 30, "the panel to go live")
        page.frames(40)
        _control(panel, "mute", value=True)
        assert panel.muted and "muted" in panel.live.control_detail
        page.frames(20, value=3000)  # loud, but muted: the session gets silence
        _control(panel, "mute", value=False)
        page.frames(10)
        _control(panel, "stop")  # the page sends "stop", then closes its microphone
        page.close()
        _until(lambda: panel.state == "stopped", 20, "the panel to stop")
        snap = panel.snapshot()
        assert not panel.live.capture and not panel.muted
        live = snap["live"]
        assert live["frames_received"] == 80 and live["frames_sent"] == 80, live
        assert live["frames_unrouted"] == live["frames_dropped"] == live["gaps"] == 0
        # Kept after Stop: everything the session got (80 frames of 20 ms, re-framed).
        assert snap["audio_samples_sent"] >= 80 * 320 - 512 and snap["sessions"] == 1
        assert not panel.provider_picker.disabled
        # Start again: a new session, numbering of the page's frames starts again.
        _control(panel, "start")
        page.open()
        _until(lambda: panel.state == "live", 30, "the panel to go live again")
        assert panel.snapshot()["sessions"] == 2
    finally:
        panel.close()
    assert panel.state == "stopped"


def test_panel_stops_the_session_when_the_microphone_fails() -> None:
    panel = SessionPanel("local", provider_options={"engine": "scripted"})
    page = _Page(panel.live)
    try:
        panel.start(wait=True)
        page.open()
        _until(lambda: panel.state == "live", 30, "live")
        page.frames(5)
        page.close(error="The microphone was disconnected.")
        _until(lambda: panel.state == "error", 20, "the error state")
        assert "microphone" in panel.errors[-1] and "disconnected" in panel.errors[-1]
        assert panel.session is None and not panel.live.capture
        with pytest.raises(StateError, match="disconnected"):
            panel.wait_for_turn(timeout=5)
    finally:
        panel.close()


def test_panel_wait_for_turn_on_turn_and_snapshot_from_threads(question: np.ndarray) -> None:
    panel = SessionPanel("local", provider_options={"engine": "scripted"})
    seen: list[Any] = []
    remove = panel.on_turn(seen.append)
    snapshots: list[dict[str, Any]] = []
    stop = threading.Event()

    def poll() -> None:  # a tester's thread reading the panel while the session fills it
        while not stop.is_set():
            snapshots.append(panel.snapshot())
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with pytest.raises(TimeoutError, match="no reply ended"):
            panel.wait_for_turn(timeout=0.2)
        turn = panel.run_file(question, timeout=30)
        waited = panel.wait_for_turn(timeout=10)
        assert turn is not None and waited is turn and seen == [turn]
        assert panel.wait_for_turn(timeout=1, index=0) is turn
        panel.stop()
    finally:
        stop.set()
        poller.join(10)
        remove()
        panel.close()
    after = panel.snapshot()
    assert after["state"] == "stopped" and after["turns_finished"] == 1
    assert after["audio_samples_sent"] > question.size  # kept after Stop
    assert len(snapshots) > 10 and all(
        s["state"] in ("ready", "starting", "live", "stopping", "stopped") for s in snapshots
    )


def test_server_extension_is_enabled_by_the_installed_config() -> None:
    import json

    from nova_nb.widgets import server

    root = Path(__file__).resolve().parents[2]
    shipped = json.loads((root / "jupyter-config/jupyter_server_config.d/nova_nb.json").read_text())
    assert shipped == {"ServerApp": {"jpserver_extensions": {server.EXTENSION: True}}}
    assert server.extension_enabled() in (True, False)  # jupyter_server is installed here
