"""nova_nb.emulator.engine.vad: Silero on synthesized speech, silence and noise."""

from __future__ import annotations

import numpy as np
import pytest

from nova_nb.audio import pcm16_to_bytes
from nova_nb.emulator.engine import SileroVad, VoiceActivityDetector, make_utterance
from nova_nb.errors import AudioFormatError

LEAD_S, TAIL_S = 0.5, 1.5


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    return make_utterance(
        "What is the weather like in Seattle today?", lead_silence_s=LEAD_S, tail_silence_s=TAIL_S
    )


def speech_windows(probs: list[float], threshold: float = 0.5) -> np.ndarray:
    return np.flatnonzero(np.asarray(probs) >= threshold)


@pytest.mark.parametrize("vad_type", [SileroVad])
def test_finds_speech_where_it_is(vad_type: type, utterance: np.ndarray) -> None:
    vad = vad_type()
    assert isinstance(vad, VoiceActivityDetector)
    assert (vad.sample_rate, vad.window_samples) == (16000, 512)
    probs = vad.process(utterance)
    assert len(probs) == len(utterance) // 512
    assert vad.pending == len(utterance) % 512
    assert all(0.0 <= p <= 1.0 for p in probs)
    active = speech_windows(probs)
    assert active.size > 0
    window_s = 512 / 16000
    # Where the sound really is (espeak ends each sentence with a short pause of its own).
    audible = np.flatnonzero(np.abs(utterance.astype(np.int32)) > 300)
    speech_start_s, speech_end_s = audible[0] / 16000, audible[-1] / 16000
    assert speech_start_s == pytest.approx(LEAD_S, abs=0.05)
    # Detected speech starts and ends within 0.2 s of where the sound starts and ends.
    assert abs(active[0] * window_s - speech_start_s) < 0.2
    assert abs((active[-1] + 1) * window_s - speech_end_s) < 0.2
    # Most of the speech region counts as speech.
    first, last = int(speech_start_s / window_s) + 2, int(speech_end_s / window_s) - 2
    assert np.mean(np.asarray(probs[first:last]) >= 0.5) > 0.8


@pytest.mark.parametrize("vad_type", [SileroVad])
def test_silence_is_not_speech(vad_type: type) -> None:
    vad = vad_type()
    assert max(vad.process(np.zeros(3 * 16000, np.int16))) < 0.1
    hiss = (np.random.default_rng(0).standard_normal(3 * 16000) * 32768 * 10 ** (-65 / 20)).astype(np.int16)
    assert max(vad.process(hiss)) < 0.1


@pytest.mark.parametrize("noise_dbfs", [-40, -30, -20])
def test_silero_ignores_noise(noise_dbfs: float) -> None:
    rng = np.random.default_rng(1)
    noise = np.clip(rng.standard_normal(3 * 16000) * 32768 * 10 ** (noise_dbfs / 20), -32768, 32767)
    probs = SileroVad().process(noise.astype(np.int16))
    assert np.mean(np.asarray(probs) >= 0.5) < 0.05, max(probs)


def test_silero_finds_speech_in_noise() -> None:
    noisy = make_utterance("Please tell me a short story.", noise_dbfs=-40, seed=2, tail_silence_s=1.0)
    probs = SileroVad().process(noisy)
    assert len(speech_windows(probs)) > 20


@pytest.mark.parametrize("vad_type", [SileroVad])
def test_streaming_in_odd_chunks_equals_one_call(vad_type: type, utterance: np.ndarray) -> None:
    whole = vad_type().process(utterance)
    vad = vad_type()
    probs: list[float] = []
    rng = np.random.default_rng(3)
    pos = 0
    while pos < len(utterance):
        n = int(rng.integers(0, 900))
        chunk = utterance[pos : pos + n]
        probs += vad.process(pcm16_to_bytes(chunk) if n % 2 else chunk)  # bytes work too
        pos += n
    assert probs == pytest.approx(whole, abs=1e-6)


def test_reset_restores_a_fresh_state(utterance: np.ndarray) -> None:
    vad = SileroVad()
    first = vad.process(utterance[:20000])
    vad.process(np.ones(100, np.int16))
    vad.reset()
    assert vad.pending == 0
    assert vad.process(utterance[:20000]) == pytest.approx(first, abs=1e-6)


def test_bad_input_is_rejected() -> None:
    vad = SileroVad()
    with pytest.raises(AudioFormatError, match="dtype int16"):
        vad.process(np.zeros(512, np.float32))  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="even length"):
        vad.process(b"\x00" * 3)
