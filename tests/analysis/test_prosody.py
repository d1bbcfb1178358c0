"""Prosody per turn: real audio of known pitch, espeak speech, recorded emulator and cascade conversations."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pytest

from nova_nb import analysis, s2s
from nova_nb.analysis.prosody import (
    RATE_SYLLABLES,
    RATE_WORDS,
    ProsodyReport,
    conversation_prosody,
    turn_prosody,
)
from nova_nb.emulator.engine.testaudio import make_utterance
from nova_nb.errors import AudioFormatError, ConfigError

RATE = 16000


def harmonic(f0_hz: np.ndarray, rate: int = RATE, level: float = 0.25) -> np.ndarray:
    """A voice-like tone: five harmonics of an f0 that may change sample by sample."""
    phase = 2 * np.pi * np.cumsum(f0_hz) / rate
    y = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (level * 32767 * y / np.max(np.abs(y))).astype(np.int16)


def test_a_steady_tone_gives_its_pitch() -> None:
    pcm = harmonic(np.full(2 * RATE, 150.0))
    p = turn_prosody(pcm, RATE)
    assert abs(p.median_f0_hz - 150.0) / 150.0 < 0.03
    assert p.f0_range_semitones < 0.5
    assert p.voiced_fraction > 0.9
    assert p.rate_unit == RATE_SYLLABLES
    assert p.duration_s == pytest.approx(2.0)
    assert p.f0_hz.shape == p.f0_times_s.shape
    assert -20 < p.mean_energy_dbfs < -5  # 0.25 of full scale peak, five harmonics


def test_the_same_tone_at_24_khz_is_resampled() -> None:
    p = turn_prosody(harmonic(np.full(24000, 200.0), rate=24000), 24000)
    assert abs(p.median_f0_hz - 200.0) / 200.0 < 0.03
    assert p.duration_s == pytest.approx(1.0)


def test_an_octave_is_twelve_semitones() -> None:
    # 120 Hz held, an exponential glide to 240 Hz, 240 Hz held: p10 is 120 Hz and p90 240 Hz.
    glide = 120.0 * 2.0 ** np.linspace(0, 1, RATE)
    p = turn_prosody(harmonic(np.concatenate([np.full(RATE, 120.0), glide, np.full(RATE, 240.0)])), RATE)
    assert p.f0_range_semitones == pytest.approx(12.0, abs=0.6)
    # A glide alone spends equal time on each semitone, so its 10th–90th percentile span is 80 % of it.
    q = turn_prosody(harmonic(120.0 * 2.0 ** np.linspace(0, 1, 2 * RATE)), RATE)
    assert q.f0_range_semitones == pytest.approx(0.8 * 12.0, abs=0.6)
    assert 160 < q.median_f0_hz < 180  # the middle of the glide: 120·√2 ≈ 170 Hz


def test_silence_is_unvoiced_without_a_crash() -> None:
    p = turn_prosody(np.zeros(RATE, dtype=np.int16), RATE)
    assert p.voiced_fraction == 0.0
    assert np.isnan(p.f0_hz).all() and p.f0_hz.size > 50
    assert math.isnan(p.median_f0_hz) and math.isnan(p.f0_range_semitones)
    assert math.isnan(p.mean_energy_dbfs) and math.isnan(p.speaking_rate)
    tiny = turn_prosody(np.zeros(10, dtype=np.int16), RATE, "hello")
    assert tiny.f0_hz.size == 0 and tiny.rate_unit == RATE_WORDS


def test_bad_input_says_what_is_valid() -> None:
    with pytest.raises(AudioFormatError, match="int16"):
        turn_prosody(np.zeros(100, dtype=np.float32), RATE)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="text must be a string"):
        turn_prosody(np.zeros(100, dtype=np.int16), RATE, 3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"analysis\.Recording"):
        conversation_prosody("recordings/rec-001")  # type: ignore[arg-type]


def test_espeak_speech_has_a_plausible_rate_and_pitch() -> None:
    text = "The weather tomorrow will be sunny with a light breeze from the west."
    pcm = make_utterance(text, voice_id="matthew", tail_silence_s=0.5)
    turn_prosody(pcm[:RATE], RATE)  # numba compiles pyin's kernels on the first call of a process
    start = time.process_time()
    p = turn_prosody(pcm, RATE, text)
    cpu = time.process_time() - start
    assert p.rate_unit == RATE_WORDS and p.words == 13
    assert 1.0 < p.speaking_rate < 5.0
    assert 65 < p.median_f0_hz < 200  # espeak-ng's male voice
    assert 0.2 < p.voiced_fraction < 0.9
    syllables = turn_prosody(pcm, RATE)
    assert syllables.rate_unit == RATE_SYLLABLES
    assert 2.0 < syllables.speaking_rate < 8.0  # 18 syllables in about 3.5 s
    # The brief: a 3 s turn well under a second of CPU (this one is ~4 s; generous for a loaded machine).
    assert cpu < 2.0, f"{cpu:.2f} s of CPU for {p.duration_s:.1f} s of audio"


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> analysis.Recording:
    provider = s2s.new_provider("local", engine="scripted", latency_target="low")
    questions = [
        make_utterance("What will the weather be like tomorrow?", tail_silence_s=0.5),
        make_utterance("Thank you, that is all.", tail_silence_s=0.5),
    ]
    folder: Path = tmp_path_factory.mktemp("prosody") / "rec"
    return asyncio.run(analysis.run_conversation(provider, questions, folder, pace=False, voice_id="tiffany"))


def test_a_recorded_conversation_has_both_sides_per_turn(conversation: analysis.Recording) -> None:
    report = conversation_prosody(conversation)
    assert isinstance(report, ProsodyReport)
    turns = analysis.turns(conversation.events)
    assert len(report.turns) == len(turns) == 2
    for t in report.turns:
        assert t.user is not None and t.assistant is not None
        # The user's cut holds the spoken question (with 0.1 s around), not the silence after it.
        assert t.user.voiced_fraction > 0.2 and t.user.duration_s < 3.0
        assert t.assistant.duration_s == pytest.approx(2.4, abs=0.1)  # the scripted reply's length
        assert t.assistant.voiced_fraction > 0.5
        assert t.user_span_s is not None and t.assistant_span_s is not None
    rows = report.rows()
    assert [(r["turn"], r["side"]) for r in rows] == [
        (0, "user"),
        (0, "assistant"),
        (1, "user"),
        (1, "assistant"),
    ]
    assert report.synthetic_assistant and report.provider == "local"
    assert report.model_id is not None and report.model_id in report.caption  # the model it emulates
    page = report._repr_html_()
    assert "formant synthesizer" in page and "say nothing about Nova Sonic" in page
    assert page.count("<tr>") == 1 + 4
    no_words = conversation_prosody(conversation, use_transcripts=False)
    assert {r["rate_unit"] for r in no_words.rows()} == {RATE_SYLLABLES}
    real = conversation_prosody(conversation, synthetic_assistant=False)
    assert "formant" not in real._repr_html_()


def test_the_plot_draws_both_contours(conversation: analysis.Recording) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = conversation_prosody(conversation)
    fig = report.plot()
    try:
        assert len(fig.axes) == 2
        labels = [line.get_label() for line in fig.axes[0].lines]
        assert "user" in labels and any(label.startswith("assistant") for label in labels)
        assert "synthetic" in fig._suptitle.get_text()
    finally:
        plt.close(fig)


@pytest.mark.slow
def test_a_cascade_recording_is_not_captioned_as_a_nova_model(tmp_path: Path) -> None:
    # The cascade's config carries a Nova model id (meta.json keeps it) that the cascade never uses:
    # the caption must name the cascade, not that model.
    provider = s2s.new_provider("cascade", latency_target="low")
    question = make_utterance("Thank you.", tail_silence_s=0.3)
    recording = asyncio.run(analysis.run_conversation(provider, [question], tmp_path / "rec", pace=False))
    assert recording.meta["session"]["model_id"] == provider.config.model_id  # what the config says
    report = conversation_prosody(recording)
    assert report.provider == "cascade" and report.model_id is None
    assert len(report.turns) == 1 and report.turns[0].assistant is not None
    assert provider.config.model_id not in report.caption
    assert "not a Nova model" in report.caption and "not a Nova model" in report._repr_html_()
    assert report.synthetic_assistant  # espeak-ng speaks for the cascade too
