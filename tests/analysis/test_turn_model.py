"""nova_nb.s2s.turns: typed events and speech marks in, per-turn records out (live and recorded alike)."""

from __future__ import annotations

import numpy as np
import pytest

from nova_nb.analysis import turns
from nova_nb.s2s import events as ev
from nova_nb.s2s.turns import INPUT_ENERGY, TurnBuilder


def _audio(t: float, cid: str, n: int = 2400) -> ev.AudioOutput:
    return ev.AudioOutput(timestamp=t, audio=bytes(2 * n), content_id=cid, sample_rate=24000)


def _conversation() -> list[ev.Event]:
    return [
        ev.Transcript(timestamp=2.5, role="USER", text="hello", stage="FINAL", content_id="u1"),
        ev.Transcript(
            timestamp=2.55, role="ASSISTANT", text="Hi there.", stage="SPECULATIVE", content_id="s1"
        ),
        _audio(2.6, "a1"),
        _audio(2.61, "a1"),
        ev.Transcript(timestamp=2.9, role="ASSISTANT", text="Hi there.", stage="FINAL", content_id="f1"),
        ev.PlaybackReported(timestamp=2.75, content_id="a1", played_s=0.1),
        ev.ContentEnded(
            timestamp=2.95, content_id="a1", type="AUDIO", role="ASSISTANT", stop_reason="END_TURN"
        ),
        ev.Transcript(timestamp=6.0, role="USER", text="tell me more", stage="FINAL", content_id="u2"),
        _audio(6.1, "a2"),
        ev.Interruption(timestamp=6.5, content_id="a2", signal="stopReason"),
        ev.ContentEnded(
            timestamp=6.5, content_id="a2", type="AUDIO", role="ASSISTANT", stop_reason="INTERRUPTED"
        ),
    ]


def test_typed_events_in_records_out() -> None:
    b = TurnBuilder()
    b.speech_ended(1.0)
    b.speech_ended(4.0, source="service")  # another source: never mixed in
    for e in _conversation()[:7]:
        b.feed(e)
    b.speech_ended(4.5)
    for e in _conversation()[7:]:
        b.feed(e)
    first, second = b.turns
    assert (first.index, first.content_id, first.user_text, first.reply_text) == (
        0,
        "a1",
        "hello",
        "Hi there.",
    )
    assert first.speculative_text == "Hi there."
    assert first.speech_end_t == 1.0 and first.speech_end_source == INPUT_ENERGY
    assert first.response_s == pytest.approx(1.6) and first.decision_to_audio_s == pytest.approx(0.1)
    assert first.heard_t == pytest.approx(2.65) and first.audio_to_heard_s == pytest.approx(0.05)
    assert first.last_audio_t == 2.61 and first.end_t == 2.95 and first.stop_reason == "END_TURN"
    assert first.duration_s == pytest.approx(0.2) and first.reply_audio.size == 4800
    assert not first.interrupted
    # talk()'s names for the same figures
    assert first.end_of_speech_to_first_audio_s == first.response_s
    assert first.decision_to_first_audio_s == first.decision_to_audio_s
    assert second.speech_end_t == 4.5 and second.interrupted and second.stop_reason == "INTERRUPTED"


def test_input_frames_give_the_speech_end() -> None:
    b = TurnBuilder()
    loud, quiet = np.full(320, 3000, np.int16), np.zeros(320, np.int16)
    for i in range(100):
        b.input_audio(loud if 10 <= i < 50 else quiet, i * 0.02, 16000)
    b.feed(ev.Transcript(timestamp=2.5, role="USER", text="hi", stage="FINAL", content_id="u"))
    b.feed(_audio(2.6, "a"))
    assert b.turns[0].speech_end_t == pytest.approx(1.0)


def test_recorded_lines_give_the_same_records_as_typed_events() -> None:
    typed = TurnBuilder(keep_audio=False)
    typed.speech_ended(1.0)
    typed.feed_all(_conversation())
    lines: list[dict] = [{"kind": "UserSpeechEnded", "t": 1.0, "source": "recorder"}]
    for e in _conversation():
        line = {"kind": e.kind, "t": e.timestamp, **{k: v for k, v in vars(e).items() if k != "audio"}}
        if isinstance(e, ev.AudioOutput):
            line["duration_s"] = e.duration_s
        lines.append(line)
    lines.sort(key=lambda x: x["t"])
    assert turns(lines) == typed.turns


def test_a_reply_without_a_user_turn() -> None:
    b = TurnBuilder()
    b.feed(_audio(1.0, "a"))
    (t,) = b.turns
    assert t.decision_t is None and t.speech_end_t is None and t.response_s is None and t.user_text is None
