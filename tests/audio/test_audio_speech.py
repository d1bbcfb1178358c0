"""nova_nb.audio.speech: the one energy speech detector (per frame, and its hysteresis)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from nova_nb.audio import DEFAULT_SPEECH_DBFS, EnergySpeechDetector, pcm16_to_bytes, speech
from nova_nb.emulator.engine.testaudio import make_utterance
from nova_nb.errors import ConfigError

RATE = 16000
FRAME = 320


def tone(dbfs: float, n: int = FRAME) -> np.ndarray:
    # A square wave's RMS equals its amplitude.
    return np.full(n, round(32768 * 10 ** (dbfs / 20)), dtype=np.int16)


def test_per_frame_decision_at_the_threshold() -> None:
    d = EnergySpeechDetector()
    assert d.threshold_dbfs == DEFAULT_SPEECH_DBFS == -42.0
    assert d.is_speech(tone(-40), RATE) and not d.is_speech(tone(-44), RATE)
    assert d.is_speech(pcm16_to_bytes(tone(-30)))  # bytes work too
    assert not d.is_speech(np.zeros(0, dtype=np.int16))


def test_hysteresis_ignores_blips_and_pauses_between_words() -> None:
    d = EnergySpeechDetector()
    plan = [0] * 10 + [1] * 4 + [0] * 20 + [1] * 20 + [0] * 5 + [1] * 10 + [0] * 30  # 20 ms frames
    marks = []
    for i, loud in enumerate(plan):
        marks += d.push(tone(-20) if loud else tone(-80), i * 0.02, RATE)
    # The 80 ms blip is ignored; the 100 ms pause is inside the speech; it ends at the last loud frame.
    assert [(k, round(t, 3)) for k, t in marks] == [("UserSpeechStarted", 0.68), ("UserSpeechEnded", 1.38)]


def test_finds_the_words_of_an_utterance() -> None:
    pcm = make_utterance("What is the weather like in Seattle today?", lead_silence_s=0.5, tail_silence_s=1.0)
    d = EnergySpeechDetector()
    marks = [m for i in range(0, pcm.size, FRAME) for m in d.push(pcm[i : i + FRAME], i / RATE, RATE)]
    audible = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300) / RATE
    assert marks[0][0] == "UserSpeechStarted" and marks[0][1] == pytest.approx(audible[0], abs=0.1)
    assert marks[-1][0] == "UserSpeechEnded" and marks[-1][1] == pytest.approx(audible[-1], abs=0.1)


def test_bad_settings_say_what_is_valid() -> None:
    with pytest.raises(ConfigError, match=r"threshold_dbfs must be <= 0"):
        EnergySpeechDetector(threshold_dbfs=3)
    with pytest.raises(ConfigError, match=r"min_speech_s must be >= 0 seconds"):
        EnergySpeechDetector(min_speech_s=-1)
    with pytest.raises(ConfigError, match=r"end_silence_s must be a finite number"):
        EnergySpeechDetector(end_silence_s=float("nan"))


def test_docstring_examples() -> None:
    assert doctest.testmod(speech, raise_on_error=True).failed == 0
