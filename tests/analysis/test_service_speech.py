"""The service's view of speech (userSpeechStart/End, docs/PROTOCOL.md §12) in turns, reports and plots."""

from __future__ import annotations

import pytest

from nova_nb.analysis import barge_ins, latency_report, turns
from nova_nb.analysis.spectrograms import event_markers
from nova_nb.s2s import events as ev
from nova_nb.s2s.turns import TurnBuilder

LINES = [
    {"kind": "UserSpeechStarted", "t": 0.2, "source": "recorder"},
    {"kind": "ServiceSpeechStarted", "t": 0.5, "input_audio_offset_ms": 250},
    {"kind": "UserSpeechEnded", "t": 1.0, "source": "recorder"},
    {"kind": "ServiceSpeechEnded", "t": 1.9, "input_audio_offset_ms": 1000, "detection_offset_ms": 1400},
    {"kind": "Transcript", "t": 2.0, "role": "USER", "stage": "FINAL", "text": "hi"},
    {"kind": "AudioOutput", "t": 2.7, "content_id": "a", "duration_s": 0.5},
    {"kind": "ContentEnded", "t": 2.8, "content_id": "a", "type": "AUDIO", "role": "ASSISTANT",
     "stop_reason": "PARTIAL_TURN"},
    {"kind": "AudioOutput", "t": 2.9, "content_id": "b", "duration_s": 0.5},
    {"kind": "ServiceSpeechStarted", "t": 3.2},
    {"kind": "UserSpeechStarted", "t": 3.3, "source": "recorder"},
    {"kind": "Interruption", "t": 3.5, "content_id": "b", "signal": "stopReason"},
]  # fmt: skip


def test_service_end_of_speech_is_its_own_figure() -> None:
    (turn,) = turns(LINES)  # two AUDIO blocks, the first PARTIAL_TURN: one reply
    assert turn.speech_end_t == 1.0 and turn.speech_end_source == "input_energy"
    assert turn.response_s == pytest.approx(1.7)  # the energy figure is untouched
    assert turn.service_speech_end_t == 1.9 and turn.service_response_s == pytest.approx(0.8)
    report = latency_report(LINES)
    assert "service_response_s" in report.columns() and "service_speech_end_t" in report.columns()
    assert report.summary["service_response_s"]["n"] == 1
    assert "service_response_s" in report._repr_html_()


def test_without_service_events_the_column_is_left_out() -> None:
    lines = [e for e in LINES if not e["kind"].startswith("Service")]
    report = latency_report(lines)
    assert report.turns[0].service_response_s is None
    assert "service_response_s" not in report.columns() and "service_response_s" not in report.summary
    assert "service_response_s" not in report._repr_html_()


def test_barge_in_onset_prefers_the_service_speech_start() -> None:
    (b,) = barge_ins(LINES)
    assert (b.onset_t, b.onset_source, b.turn_index) == (3.2, "service", 0)
    assert b.reaction_s == pytest.approx(0.3)
    (b,) = barge_ins([e for e in LINES if e["kind"] != "ServiceSpeechStarted"])
    assert (b.onset_t, b.onset_source) == (3.3, "input_energy")


def test_live_builder_takes_the_typed_event() -> None:
    builder = TurnBuilder(keep_audio=False)
    builder.speech_ended(1.0)
    builder.feed(ev.ServiceSpeechEnded(timestamp=1.5, input_audio_offset_ms=1000))
    builder.feed(ev.AudioOutput(timestamp=2.0, audio=b"\0\0" * 240, content_id="a", sample_rate=24000))
    (turn,) = builder.turns
    assert turn.response_s == pytest.approx(1.0) and turn.service_response_s == pytest.approx(0.5)


def test_plots_mark_the_service_speech_end_distinctly() -> None:
    kinds = [m.kind for m in event_markers(LINES)]
    assert kinds.count("service_speech_end") == 1 and kinds.count("speech_end") == 1
    assert kinds.count("first_audio") == 1  # the second block continues the reply
    from nova_nb.analysis.display import MARKER_STYLES

    assert MARKER_STYLES["service_speech_end"] != MARKER_STYLES["speech_end"]
