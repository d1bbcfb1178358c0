"""Latency and barge-in figures from event lines, recomputed here independently of the package."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from nova_nb.analysis import barge_ins, latency, latency_report, summarize, turns

from .conftest import LiveTurn


def _independent(lines: list[dict]) -> list[tuple[float | None, float | None]]:
    """docs/RECORDING.md's definitions, written out plainly: (response_s, decision_to_audio_s) per turn."""
    lines = sorted(lines, key=lambda e: e["t"])
    # A reply's first audio: a new AUDIO block, unless the last one ended PARTIAL_TURN with no USER
    # FINAL transcript since (then the reply goes on in the new block).
    firsts: list[float] = []
    seen: set[str] = set()
    continues = False
    for e in lines:
        if e["kind"] == "ContentEnded" and e.get("type") == "AUDIO" and e.get("role") == "ASSISTANT":
            continues = e.get("stop_reason") == "PARTIAL_TURN"
        elif e["kind"] == "Transcript" and e.get("role") == "USER" and e.get("stage") == "FINAL":
            continues = False
        elif e["kind"] == "AudioOutput" and e["content_id"] not in seen:
            seen.add(e["content_id"])
            if not continues:
                firsts.append(e["t"])
            continues = False
    out = []
    prev = -math.inf
    for fa in firsts:
        dec = [
            e["t"]
            for e in lines
            if e["kind"] == "Transcript"
            and e.get("role") == "USER"
            and e.get("stage") == "FINAL"
            and prev < e["t"] <= fa
        ]
        anchor = dec[-1] if dec else fa
        ends = [e["t"] for e in lines if e["kind"] == "UserSpeechEnded" and prev < e["t"] <= anchor]
        out.append((fa - ends[-1] if ends else None, fa - dec[-1] if dec else None))
        prev = fa
    return out


def test_report_equals_independent_computation_from_jsonl(one_turn: LiveTurn) -> None:
    lines = [json.loads(x) for x in (one_turn.recording.folder / "events.jsonl").read_text().splitlines()]
    expected = _independent(lines)
    got = [(t.response_s, t.decision_to_audio_s) for t in turns(one_turn.recording.events)]
    assert len(got) == len(expected) == 1
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e)


def _synthetic(n_turns: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    lines: list[dict] = []
    t = 0.0
    for i in range(n_turns):
        t += 1.0
        lines.append({"kind": "UserSpeechEnded", "t": t})
        decision = t + 1.5 + rng.uniform(0, 0.2)
        lines.append({"kind": "Transcript", "t": decision, "role": "USER", "stage": "FINAL", "text": f"q{i}"})
        lines.append(
            {
                "kind": "Transcript",
                "t": decision + 0.001,
                "role": "ASSISTANT",
                "stage": "SPECULATIVE",
                "text": "one two three four",
            }
        )
        fa = decision + 0.05 + rng.uniform(0, 0.05)
        for k in range(10):
            lines.append(
                {
                    "kind": "AudioOutput",
                    "t": fa + 0.001 * k,
                    "content_id": f"c{i}",
                    "duration_s": 0.08,
                    "n_samples": 1920,
                    "sample_rate": 24000,
                }
            )
        lines.append(
            {
                "kind": "ContentEnded",
                "t": fa + 0.8,
                "type": "AUDIO",
                "role": "ASSISTANT",
                "content_id": f"c{i}",
                "stop_reason": "END_TURN",
            }
        )
        t = fa + 0.8
    return lines


def test_synthetic_turns_and_percentiles() -> None:
    lines = _synthetic(200)
    rows = turns(lines)
    assert len(rows) == 200
    for r, (response, to_audio) in zip(rows, _independent(lines), strict=True):
        assert (r.response_s, r.decision_to_audio_s) == pytest.approx((response, to_audio))
    summary = summarize(rows)
    values = np.array([r.response_s for r in rows])
    assert summary["response_s"]["p90"] == pytest.approx(np.percentile(values, 90))
    assert summary["response_s"]["n"] == 200 and "audio_to_heard_s" not in summary
    assert all(r.reply_audio_s == pytest.approx(0.8) for r in rows)


def test_typed_turn_and_playback_reports() -> None:
    lines = [
        {"kind": "AudioOutput", "t": 5.0, "content_id": "a", "duration_s": 0.1},
        {"kind": "PlaybackReported", "t": 5.30, "content_id": "a", "played_s": 0.2, "final": False},
        {"kind": "PlaybackReported", "t": 5.40, "content_id": "a", "played_s": 0.3, "final": True},
    ]
    (t,) = turns(lines)
    assert t.decision_t is None and t.speech_end_t is None and t.response_s is None
    assert t.heard_t == pytest.approx(5.1) and t.audio_to_heard_s == pytest.approx(0.1)


def test_barge_in_definitions() -> None:
    lines = [
        {
            "kind": "Transcript",
            "t": 1.0,
            "role": "ASSISTANT",
            "stage": "SPECULATIVE",
            "text": "a b c d e f g h",
        },
        {"kind": "AudioOutput", "t": 1.1, "content_id": "x", "duration_s": 2.0},
        {"kind": "UserSpeechStarted", "t": 0.2},
        {"kind": "UserSpeechStarted", "t": 1.6},
        {"kind": "Interruption", "t": 1.8, "content_id": "x", "signal": "stopReason"},
        {"kind": "PlayerFlushed", "t": 1.8, "content_id": "x", "played_s": 0.7},
        {"kind": "ClientFlushed", "t": 1.801, "content_id": "x", "played_s": 0.701},
        {"kind": "Interruption", "t": 1.9, "content_id": "x", "signal": "marker"},
        {"kind": "Transcript", "t": 1.95, "role": "ASSISTANT", "stage": "FINAL", "text": "a b c"},
    ]
    (b,) = barge_ins(sorted(lines, key=lambda e: e["t"]))
    assert b.onset_t == 1.6 and b.signal_t == 1.8 and b.flush_t == 1.801
    assert b.reaction_s == pytest.approx(0.2) and b.flush_s == pytest.approx(0.001)
    assert b.heard_s == 0.701 and b.planned_words == 8 and b.final_words == 3
    assert b.heard_text_fraction == pytest.approx(3 / 8)


def test_report_over_1000_turns_is_fast() -> None:
    import time

    lines = _synthetic(1000)
    start = time.perf_counter()
    report = latency_report(lines)
    assert time.perf_counter() - start < 1.0
    assert len(report.turns) == 1000


def test_docstring_examples() -> None:
    assert doctest.testmod(latency, raise_on_error=True).failed == 0
