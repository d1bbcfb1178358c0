"""Recording a session, saving it, loading it back, and the audio/event layout on the clock."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from nova_nb.analysis import Recording, RecordingError, SessionRecorder, latency_report
from nova_nb.analysis.recording import EVENTS_JSONL, META_JSON
from nova_nb.audio import read_wav
from nova_nb.s2s import events as ev

from .conftest import RATE, LiveTurn


def test_files_and_meta(one_turn: LiveTurn) -> None:
    rec = one_turn.recording
    assert {p.name for p in rec.folder.iterdir()} >= {"meta.json", "input.wav", "output.wav", "events.jsonl"}
    meta = rec.meta
    assert meta["format"] == "nova_nb.recording" and meta["complete"] is True
    assert meta["session"]["latency_target"] == "low" and meta["session"]["frame_ms"] == 32
    assert rec.input_rate == 16000 and rec.output_rate == 24000
    assert meta["input"]["samples"] == rec.input.size and meta["output"]["samples"] == rec.output.size
    # Every line is one JSON object with kind, t and t_monotonic, t measured from t0.
    for line in (rec.folder / EVENTS_JSONL).read_text().splitlines():
        obj = json.loads(line)
        assert isinstance(obj["kind"], str)
        assert obj["t"] == pytest.approx(obj["t_monotonic"] - meta["t0_monotonic"], abs=2e-6)


def test_every_session_event_is_recorded_on_the_session_clock(one_turn: LiveTurn) -> None:
    rec, t0 = one_turn.recording, one_turn.recording.meta["t0_monotonic"]
    seen = [e for e in one_turn.events if not isinstance(e, ev.SessionStarted)]  # published before attach
    recorded = [e for e in rec.events if e["kind"] in {type(x).__name__ for x in seen}]
    assert [e["kind"] for e in recorded] == [e.kind for e in seen]
    for live, saved in zip(seen, recorded, strict=True):
        assert saved["t_monotonic"] == live.timestamp
        assert saved["t"] == pytest.approx(live.timestamp - t0, abs=2e-6)
    audio = [e for e in seen if isinstance(e, ev.AudioOutput)]
    assert sum(e["n_samples"] for e in rec.of("AudioOutput")) == sum(len(a.audio) // 2 for a in audio)


def test_input_wav_holds_what_was_sent(one_turn: LiveTurn) -> None:
    rec = one_turn.recording
    sent = rec.user_audio()
    assert np.array_equal(sent[: one_turn.question.size], one_turn.question)
    # Sent in real time: frames land contiguously, close to their send times.
    f = rec.input_frames
    assert np.all(np.diff(f["sample"]) == f["n_samples"][:-1])
    assert np.max(np.abs(f["sample"] / RATE - f["t"])) < 0.5


def test_output_wav_is_the_reply_as_played(one_turn: LiveTurn) -> None:
    rec = one_turn.recording
    chunks = rec.of("AudioOutput")
    reply = np.concatenate(
        [np.asarray(rec.output[c["sample"] : c["sample"] + c["n_samples"]]) for c in chunks]
    )
    live = b"".join(e.audio for e in one_turn.events if isinstance(e, ev.AudioOutput))
    assert reply.tobytes() == live  # every chunk is in output.wav where its line says
    # It starts playing when the first chunk arrives and plays without gaps.
    assert chunks[0]["sample"] == round(chunks[0]["t"] * rec.output_rate)
    assert all(b["sample"] == a["sample"] + a["n_samples"] for a, b in itertools.pairwise(chunks))
    first_loud = np.flatnonzero(np.abs(np.asarray(rec.output)) > 300)[0] / rec.output_rate
    assert first_loud == pytest.approx(chunks[0]["t"], abs=0.05)


def test_speech_markers_match_the_audio(one_turn: LiveTurn) -> None:
    rec = one_turn.recording
    loud = np.flatnonzero(np.abs(np.asarray(rec.input)) > 1000)
    start, end = rec.of("UserSpeechStarted")[0]["t"], rec.of("UserSpeechEnded")[0]["t"]
    assert start == pytest.approx(loud[0] / RATE, abs=0.05)
    assert end == pytest.approx(loud[-1] / RATE, abs=0.05)


def test_latency_matches_what_the_session_saw(one_turn: LiveTurn) -> None:
    rec, t0 = one_turn.recording, one_turn.recording.meta["t0_monotonic"]
    report = latency_report(rec.events)
    assert len(report.turns) == 1
    turn = report.turns[0]
    first_audio = next(e for e in one_turn.events if isinstance(e, ev.AudioOutput))
    decision = next(e for e in one_turn.events if isinstance(e, ev.Transcript) and e.role == "USER")
    assert turn.first_audio_t + t0 == pytest.approx(first_audio.timestamp, abs=2e-6)
    assert turn.decision_t is not None and turn.decision_t + t0 == pytest.approx(decision.timestamp, abs=2e-6)
    assert turn.decision_to_audio_s == pytest.approx(first_audio.timestamp - decision.timestamp, abs=4e-6)
    # The emulator answers after the 1.5 s pause of latency_target="low" (audio time = wall time here).
    assert turn.response_s is not None and 1.3 < turn.response_s < 2.0
    assert turn.stop_reason == "END_TURN" and not turn.interrupted
    assert report.summary["response_s"]["n"] == 1
    assert "<table>" in report._repr_html_()


class FakeSession:
    """Just the two listener hooks, to drive a recorder with exact timestamps."""

    def __init__(self) -> None:
        self.listeners: list = []
        self.inputs: list = []

    def add_listener(self, cb):  # type: ignore[no-untyped-def]
        self.listeners.append(cb)
        return lambda: self.listeners.remove(cb)

    def add_input_listener(self, cb):  # type: ignore[no-untyped-def]
        self.inputs.append(cb)
        return lambda: self.inputs.remove(cb)


def test_player_layout_gaps_and_flush(tmp_path: Path) -> None:
    fake = FakeSession()
    rec = SessionRecorder(tmp_path / "r", fake, input_rate=16000, output_rate=24000, gap_tolerance_s=0.1)
    t0 = rec.t0
    tone = np.full(2400, 1000, dtype=np.int16)  # 0.1 s at 24 kHz

    def out(t: float, cid: str = "a") -> None:
        fake.listeners[0](
            ev.AudioOutput(timestamp=t0 + t, audio=tone.tobytes(), content_id=cid, sample_rate=24000)
        )

    # Input: frames at 1.0 s, then 1.02 s (jitter-free), then after a 2 s gap.
    frame = np.full(320, 2000, dtype=np.int16).tobytes()
    for t in (1.0, 1.02, 3.5):
        fake.inputs[0](frame, t0 + t, 16000)
    # Output: a burst of five chunks at 2.0 s (faster than real time), interruption at 2.25 s.
    for k in range(5):
        out(2.0 + 0.001 * k)
    fake.listeners[0](ev.Interruption(timestamp=t0 + 2.25, content_id="a", signal="stopReason"))
    out(4.0, "b")
    mid = Recording.load(tmp_path / "r")  # readable while recording
    assert mid.meta["complete"] is False
    rec.stop()
    r = Recording.load(tmp_path / "r")
    assert list(r.input_frames["sample"]) == [16000, 16320, 56000]
    inp = np.asarray(r.input)
    assert inp[:16000].max() == 0 and inp[16000:16640].min() == 2000 and inp[16640:56000].max() == 0
    starts = [e["sample"] for e in r.of("AudioOutput")]
    assert starts == [48000, 50400, 52800, 55200, 57600, 96000]
    flush = r.of("PlayerFlushed")[0]
    assert flush["played_s"] == pytest.approx(0.25) and flush["dropped_s"] == pytest.approx(0.25)
    o = np.asarray(r.output)
    assert o[:48000].max() == 0 and o[48000:54000].min() == 1000 and o[54000:96000].max() == 0
    assert o[96000:98400].min() == 1000 and o.size == 98400  # the last reply is played out at stop


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"no meta\.json"):
        Recording.load(tmp_path)
    (tmp_path / META_JSON).write_text('{"format": "other"}')
    with pytest.raises(RecordingError, match=r"not a nova_nb\.recording"):
        Recording.load(tmp_path)


def test_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path / "r", FakeSession())
    rec.mark("Note", text="hello")
    rec.stop()
    with open(tmp_path / "r" / EVENTS_JSONL, "a") as f:
        f.write('{"kind": "Transcr')
    r = Recording.load(tmp_path / "r")
    assert [e["kind"] for e in r.events] == [
        "RecordingStarted",
        "RecorderAttached",
        "Note",
        "RecordingStopped",
    ]
    assert read_wav(tmp_path / "r" / "input.wav")[0].size == 0


def test_recorder_refuses_after_stop(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path / "r")
    rec.stop()
    with pytest.raises(RecordingError):
        rec.attach(FakeSession())
    rec.stop()  # idempotent
