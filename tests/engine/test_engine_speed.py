"""How fast the offline engines are. Prints comparable figures; asserts only generous bounds."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from nova_nb.emulator.engine import EspeakSynthesizer, MoonshineRecognizer, SileroVad, make_utterance

PARAGRAPH = (
    "Sure, I can help with that. The weather in Seattle today is cloudy with a chance of rain. "
    "Temperatures will stay around twelve degrees, so bring a light jacket."
)


def test_tts_real_time_factor(capsys: pytest.CaptureFixture[str]) -> None:
    tts = EspeakSynthesizer()
    tts.warm_up()
    rtfs, firsts = [], []
    for _ in range(5):
        started = time.perf_counter()
        stream = tts.stream(PARAGRAPH, voice_id="tiffany", language="en-US", sample_rate=24000, chunk_ms=100)
        first = next(stream)
        firsts.append(time.perf_counter() - started)
        rest = [first, *stream]
        elapsed = time.perf_counter() - started
        audio_s = sum(len(c) for c in rest) / 24000
        rtfs.append(elapsed / audio_s)
    rtf, first_ms = statistics.median(rtfs), 1000 * statistics.median(firsts)
    with capsys.disabled():
        print(
            f"\n[speed] TTS espeak-ng: real-time factor {rtf:.4f} ({1 / rtf:.0f}x faster than real time) "
            f"for {audio_s:.1f} s at 24 kHz; first 100 ms chunk after {first_ms:.1f} ms"
        )
    assert rtf < 0.1
    assert first_ms < 200


def test_asr_seconds_per_second_of_audio(capsys: pytest.CaptureFixture[str]) -> None:
    asr = MoonshineRecognizer()
    warm = asr.warm_up()
    pcm = make_utterance("Please tell me a short story about a friendly robot.", tail_silence_s=0.3)
    audio_s = len(pcm) / 16000
    times = []
    for _ in range(3):
        started = time.perf_counter()
        asr.transcribe(pcm, 16000)
        times.append(time.perf_counter() - started)
    per_sentence = statistics.median(times)
    with capsys.disabled():
        print(
            f"\n[speed] ASR Moonshine tiny-en: load {asr.load_seconds:.2f} s (warm-up {warm:.2f} s); "
            f"{per_sentence:.3f} s for a {audio_s:.1f} s sentence "
            f"= {per_sentence / audio_s:.3f} s per s of audio"
        )
    assert per_sentence / audio_s < 0.5


def test_vad_ms_per_frame(capsys: pytest.CaptureFixture[str]) -> None:
    vad = SileroVad()
    pcm = np.concatenate([make_utterance("One two three four five six.", tail_silence_s=1.0)] * 3)
    vad.process(pcm[:5120])  # warm up
    vad.reset()
    started = time.perf_counter()
    probs = vad.process(pcm)
    per_frame_ms = 1000 * (time.perf_counter() - started) / len(probs)
    with capsys.disabled():
        print(
            f"\n[speed] VAD Silero: {per_frame_ms:.2f} ms per 32 ms frame "
            f"({per_frame_ms / 32:.1%} of real time) over {len(probs)} frames"
        )
    assert per_frame_ms < 10
