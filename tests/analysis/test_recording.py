"""Recording a session, saving it, loading it back, and the audio/event layout on the clock."""

from __future__ import annotations

import itertools
import json
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from nova_nb.analysis import Recording, RecordingError, SessionRecorder, latency_report
from nova_nb.analysis.recording import EVENTS_JSONL, INPUT_WAV, META_JSON, OUTPUT_WAV, RecordingWarning
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
    with pytest.warns(RecordingWarning, match=r"last line \(5\) is torn"):
        r = Recording.load(tmp_path / "r")
    assert r.torn_lines == 1
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


def test_a_damaged_line_before_the_last_is_an_error(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path / "r", FakeSession())
    rec.mark("Note", text="hello")
    rec.stop()
    path = tmp_path / "r" / EVENTS_JSONL
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:15] + "\n"  # line 3 of 5 cut short: damage, not a crash while writing
    path.write_text("".join(lines))
    with pytest.raises(RecordingError, match=r"line 3, is not a recording line"):
        Recording.load(tmp_path / "r")
    lines[2] = "[1, 2]\n"  # valid JSON, not a line of a recording
    path.write_text("".join(lines))
    with pytest.raises(RecordingError, match=r"line 3"):
        Recording.load(tmp_path / "r")


def _rewrite_wav(path: Path, *, rate: int, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * 4000)


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (INPUT_WAV, {"rate": 8000}, r"input\.wav is at 8000 Hz but meta\.json says 16000 Hz"),
        (OUTPUT_WAV, {"rate": 16000}, r"output\.wav is at 16000 Hz but meta\.json says 24000 Hz"),
        (INPUT_WAV, {"rate": 16000, "channels": 2}, r"input\.wav has 2 channels; .* mono"),
        (OUTPUT_WAV, {"rate": 24000, "width": 1}, r"output\.wav holds 8-bit samples .* 16-bit"),
    ],
)
def test_a_wav_that_disagrees_with_meta_is_an_error(
    tmp_path: Path, mmap: bool, name: str, kwargs: dict, message: str
) -> None:
    SessionRecorder(tmp_path / "r", FakeSession()).stop()
    assert Recording.load(tmp_path / "r", mmap=mmap).input.size == 0
    _rewrite_wav(tmp_path / "r" / name, **kwargs)
    with pytest.raises(RecordingError, match=message):
        Recording.load(tmp_path / "r", mmap=mmap)


def test_idle_recorder_has_its_lines_and_audio_on_disk(tmp_path: Path) -> None:
    """What was written reaches the files within 0.5 s even when nothing more arrives."""
    fake = FakeSession()
    rec = SessionRecorder(tmp_path / "r", fake)
    flushers = [t for t in threading.enumerate() if t.name.startswith("nova-nb-recorder-flush")]
    assert len(flushers) == 1 and flushers[0].daemon
    frame = np.full(512, 3000, dtype=np.int16)
    now = time.monotonic()
    for k in range(31):
        fake.inputs[0](frame.tobytes(), now + k * 0.001, 16000)  # a burst, then silence
    time.sleep(0.6)  # idle: no line arrives to trigger a flush
    # Read the files as a crash would leave them: from disk, the recorder still open.
    lines = (tmp_path / "r" / EVENTS_JSONL).read_text().splitlines()
    assert sum(json.loads(line)["kind"] == "InputAudio" for line in lines) == 31
    pcm, rate = read_wav(tmp_path / "r" / "input.wav")  # its header was rewritten too
    assert rate == 16000 and pcm.size >= 31 * 512 and np.all(pcm[-31 * 512 :] == 3000)
    rec.stop()
    flushers[0].join(timeout=1)
    assert not flushers[0].is_alive()  # stopped with the recorder


def test_audio_placement_recomputed_from_the_files_by_the_documented_rules(tmp_path: Path) -> None:
    """docs/RECORDING.md §3, applied to events.jsonl and meta.json alone, gives the WAV files."""
    fake = FakeSession()
    rec = SessionRecorder(tmp_path / "r", fake, gap_tolerance_s=0.5)
    t0 = rec.t0
    rng = np.random.default_rng(1)
    quiet = np.zeros(512, dtype=np.int16)
    loud = np.full(512, 4000, dtype=np.int16)
    # The first frame 0.137 s in (within the gap tolerance: it used to land at sample 0), jitter,
    # a gap of 1.2 s, and frames a little faster than real time.
    t = 0.137
    for k in range(60):
        if k == 30:
            t += 1.2
        frame = loud if 10 <= k < 20 or 40 <= k < 45 else quiet
        fake.inputs[0](frame.tobytes(), t0 + t + rng.uniform(0, 0.004), 16000)
        t += 0.032
    tone = np.full(2400, 1000, dtype=np.int16)
    for k, at in enumerate((0.5, 0.5001, 0.5002, 0.9, 2.0)):
        fake.listeners[0](
            ev.AudioOutput(
                timestamp=t0 + at, audio=tone.tobytes(), content_id=f"c{k // 4}", sample_rate=24000
            )
        )
    rec.stop()

    meta = json.loads((tmp_path / "r" / META_JSON).read_text())
    lines = [json.loads(x) for x in (tmp_path / "r" / EVENTS_JSONL).read_text().splitlines()]
    # Input: w, the first frame at max(0, round(t × rate)), later ones at round(t × rate) after a gap.
    rate, tol = meta["input"]["sample_rate"], meta["input"]["gap_tolerance_s"]
    w, first = 0, True
    for line in (x for x in lines if x["kind"] == "InputAudio"):
        a = round(line["t"] * rate)
        at = max(0, a) if first else (a if a - w > tol * rate else w)
        assert line["sample"] == at
        w, first = at + line["n_samples"], False
    # Output: each chunk at max(round(t × rate), end).
    out_rate, end = meta["output"]["sample_rate"], 0
    for line in (x for x in lines if x["kind"] == "AudioOutput"):
        start = max(round(line["t"] * out_rate), end)
        assert line["sample"] == start
        end = start + line["n_samples"]
    # A figure, recomputed: where user speech starts, from input.wav with sample i at i / rate, is the
    # recorder's UserSpeechStarted (the first loud frame's t), to within the frame's jitter.
    pcm, _ = read_wav(tmp_path / "r" / "input.wav")
    first_loud_s = np.flatnonzero(pcm > 1000)[0] / rate
    started = next(x["t"] for x in lines if x["kind"] == "UserSpeechStarted")
    assert first_loud_s == pytest.approx(started, abs=0.005)
    assert first_loud_s == pytest.approx(0.137 + 10 * 0.032, abs=0.005)
    out, _ = read_wav(tmp_path / "r" / "output.wav")
    assert np.flatnonzero(out)[0] / out_rate == pytest.approx(0.5, abs=1 / out_rate)


def test_live_recording_follows_the_documented_input_rule(one_turn: LiveTurn) -> None:
    """The same recomputation on a real session: real timestamps, rounding included."""
    rec = one_turn.recording
    tol, w, first = rec.meta["input"]["gap_tolerance_s"], 0, True
    f = rec.input_frames
    for t, sample, n in zip(f["t"], f["sample"], f["n_samples"], strict=True):
        a = round(float(t) * rec.input_rate)
        at = max(0, a) if first else (a if a - w > tol * rec.input_rate else w)
        assert sample == at
        w, first = at + int(n), False
    assert rec.input_frames["sample"][0] == round(rec.input_frames["t"][0] * rec.input_rate)
