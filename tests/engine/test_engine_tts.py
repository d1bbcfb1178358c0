"""nova_nb.emulator.engine.tts: the espeak-ng synthesizer and its Nova voice table."""

from __future__ import annotations

import doctest
import threading
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest

import nova_nb.emulator.engine.testaudio
import nova_nb.emulator.engine.tts
from nova_nb.audio import rms_dbfs
from nova_nb.emulator.engine import (
    ESPEAK_LANGUAGES,
    NOVA_VOICES,
    EspeakSynthesizer,
    SpeechSynthesizer,
    make_utterance,
    split_sentences,
)
from nova_nb.errors import ConfigError
from nova_nb.protocol import catalog

SENTENCE = "What is the weather like in Seattle today?"
NOVA2_VOICES = {
    "matthew", "tiffany", "amy", "olivia", "lupe", "carlos", "ambre", "florian",
    "lennart", "beatrice", "lorenzo", "tina", "carolina", "leo", "kiara", "arjun",
}  # fmt: skip
NOVA_LOCALES = {"en-US", "en-GB", "en-AU", "en-IN", "fr-FR", "it-IT", "de-DE", "es-US", "pt-BR", "hi-IN"}
FEMALE = {"tiffany", "amy", "olivia", "lupe", "ambre", "beatrice", "tina", "greta", "carolina", "kiara"}


@pytest.fixture(scope="module")
def tts() -> EspeakSynthesizer:
    return EspeakSynthesizer()


def fundamental_hz(pcm: np.ndarray, rate: int) -> float:
    """Median F0 of the voiced 40 ms frames, by autocorrelation (60-400 Hz)."""
    x = pcm.astype(np.float64) / 32768
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = int(rate / 400), int(rate / 60)
    estimates = []
    for start in range(0, len(x) - frame, hop):
        f = x[start : start + frame]
        if np.sqrt(np.mean(f**2)) < 0.02:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[frame - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            estimates.append(rate / lag)
    assert len(estimates) > 20, "too few voiced frames to estimate a pitch"
    return float(np.median(estimates))


def test_docstring_examples_run() -> None:
    for module in (nova_nb.emulator.engine.tts, nova_nb.emulator.engine.testaudio):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0


def test_voice_table_covers_nova_and_is_distinct(tts: EspeakSynthesizer) -> None:
    assert NOVA2_VOICES <= set(NOVA_VOICES)
    assert set(ESPEAK_LANGUAGES) == NOVA_LOCALES
    variants_dir = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    seen = set()
    for voice_id, profile in NOVA_VOICES.items():
        assert profile.voice_id == voice_id
        assert profile.gender == ("female" if voice_id in FEMALE else "male")
        assert profile.variant.startswith(profile.gender[0]), "variant gender must match the Nova voice"
        assert (variants_dir / profile.variant).is_file()
        assert set(profile.locales) <= NOVA_LOCALES
        assert 0 <= profile.pitch <= 100 and 0 <= profile.pitch_range <= 100
        assert 80 <= profile.rate_wpm <= 450
        seen.add((profile.variant, profile.pitch))
    assert len(seen) == len(NOVA_VOICES), "two voices would sound the same"
    assert set(NOVA_VOICES["matthew"].locales) == NOVA_LOCALES  # polyglot
    assert NOVA_VOICES["kiara"].locales == ("en-IN", "hi-IN")


def test_every_catalog_voice_has_a_rendering_and_the_catalog_facts() -> None:
    """Ids, genders and locales come from the catalog; tts adds only how espeak-ng renders each voice."""
    assert set(NOVA_VOICES) == set(catalog.ALL_VOICES), "a catalog voice has no espeak-ng rendering"
    for voice_id, voice in catalog.ALL_VOICES.items():
        profile = NOVA_VOICES[voice_id]
        assert profile.gender == {"feminine": "female", "masculine": "male"}[voice.gender]
        if voice.polyglot:
            assert set(profile.locales) == set(ESPEAK_LANGUAGES)
        else:
            assert profile.locales == voice.locales
    for model in catalog.MODELS.values():
        assert set(model.voices) <= set(NOVA_VOICES), model.id


def test_synthesizer_satisfies_protocol(tts: EspeakSynthesizer) -> None:
    assert isinstance(tts, SpeechSynthesizer)
    assert tts.native_rate == 22050
    assert tts.engine_version.startswith("1.")


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_synthesize_rates(tts: EspeakSynthesizer, rate: int) -> None:
    pcm = tts.synthesize(SENTENCE, voice_id="matthew", language="en-US", sample_rate=rate)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert 1.5 < len(pcm) / rate < 5.0
    assert -30 < rms_dbfs(pcm) < -10  # a sensible speech level, not clipped, not whisper-quiet
    assert np.abs(pcm).max() < 32767


@pytest.mark.parametrize("language", sorted(NOVA_LOCALES))
def test_every_language_speaks(tts: EspeakSynthesizer, language: str) -> None:
    pcm = tts.synthesize("Hello, one two three.", voice_id="tiffany", language=language, sample_rate=16000)
    assert len(pcm) / 16000 > 0.8
    assert rms_dbfs(pcm) > -35


def test_every_voice_speaks_its_own_language(tts: EspeakSynthesizer) -> None:
    for voice_id, profile in NOVA_VOICES.items():
        pcm = tts.synthesize(
            "Good morning.", voice_id=voice_id, language=profile.locales[0], sample_rate=16000
        )
        assert len(pcm) > 8000, voice_id


def test_two_voices_have_different_pitch(tts: EspeakSynthesizer) -> None:
    matthew = tts.synthesize(SENTENCE, voice_id="matthew", language="en-US", sample_rate=16000)
    tiffany = tts.synthesize(SENTENCE, voice_id="tiffany", language="en-US", sample_rate=16000)
    f_m, f_t = fundamental_hz(matthew, 16000), fundamental_hz(tiffany, 16000)
    print(f"\nF0 matthew {f_m:.0f} Hz, tiffany {f_t:.0f} Hz")
    assert 70 < f_m < 150
    assert 150 < f_t < 300
    assert f_t / f_m > 1.5
    # The spectra differ too, not only the fundamental: compare long-term average spectra.
    spec_m = np.abs(np.fft.rfft(matthew[:16000].astype(np.float64)))
    spec_t = np.abs(np.fft.rfft(tiffany[:16000].astype(np.float64)))
    assert np.corrcoef(spec_m, spec_t)[0, 1] < 0.8


def test_same_gender_voices_still_differ(tts: EspeakSynthesizer) -> None:
    amy = fundamental_hz(tts.synthesize(SENTENCE, voice_id="amy", language="en-US", sample_rate=16000), 16000)
    beatrice = fundamental_hz(
        tts.synthesize(SENTENCE, voice_id="beatrice", language="en-US", sample_rate=16000), 16000
    )
    assert abs(amy - beatrice) / amy > 0.08


def test_stream_chunks(tts: EspeakSynthesizer) -> None:
    text = "Hello there. " + SENTENCE + " Mr. Smith will call you back!"
    chunks = list(tts.stream(text, voice_id="tiffany", language="en-US", sample_rate=24000, chunk_ms=40))
    assert len(chunks) > 50
    assert all(len(c) == 960 for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= 960
    whole = tts.synthesize(text, voice_id="tiffany", language="en-US", sample_rate=24000)
    streamed = np.concatenate(chunks)
    # Same speech; espeak-ng's samples vary by a few per call (see the tts module docstring).
    assert abs(len(streamed) - len(whole)) < 0.005 * len(whole)
    assert rms_dbfs(streamed) == pytest.approx(rms_dbfs(whole), abs=0.5)


def test_stream_is_lazy_and_can_stop_early(tts: EspeakSynthesizer) -> None:
    sentences = " ".join(f"This is sentence number {i}." for i in range(50))
    stream = tts.stream(sentences, voice_id="matthew", language="en-US", sample_rate=16000, chunk_ms=100)
    first = next(iter(stream))
    assert len(first) == 1600
    stream.close()  # an interruption: the remaining 49 sentences are never synthesized
    # The lock was released: another call goes through at once.
    assert len(tts.synthesize("Next.", voice_id="amy", language="en-GB", sample_rate=16000)) > 0


def test_speed_changes_duration(tts: EspeakSynthesizer) -> None:
    normal = tts.synthesize(SENTENCE, voice_id="matthew", language="en-US", sample_rate=16000)
    fast = tts.synthesize(SENTENCE, voice_id="matthew", language="en-US", sample_rate=16000, speed=1.5)
    slow = tts.synthesize(SENTENCE, voice_id="matthew", language="en-US", sample_rate=16000, speed=0.75)
    assert len(fast) < 0.85 * len(normal) < 0.85 * len(slow)


def test_empty_text(tts: EspeakSynthesizer) -> None:
    assert tts.synthesize("", voice_id="matthew", language="en-US", sample_rate=16000).size == 0
    assert list(tts.stream("  \n ", voice_id="matthew", language="en-US", sample_rate=16000)) == []


def test_voice_and_language_are_case_insensitive(tts: EspeakSynthesizer) -> None:
    assert tts.synthesize("Hi.", voice_id="Matthew", language="en_us", sample_rate=16000).size > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"voice_id": "Brian"}, r"unknown voice_id 'Brian'; valid voice ids: 'tiffany', 'matthew'"),
        ({"voice_id": None}, r"unknown voice_id None"),
        ({"language": "en-ZA"}, r"unknown language 'en-ZA'; valid languages: 'en-US', 'en-GB'"),
        ({"language": 5}, r"locale string such as 'en-US'; got int"),
        ({"sample_rate": 4000}, r"sample_rate must be from 8000 to 192000 Hz; got 4000"),
        ({"speed": 3.0}, r"speed must be from 0\.5 to 2\.5; got 3\.0"),
        ({"speed": float("nan")}, r"speed must be a number from 0\.5 to 2\.5"),
        ({"chunk_ms": 5}, r"chunk_ms must be a number from 10 to 10000; got 5"),
        ({"text": b"bytes"}, r"text must be a str; got bytes"),
    ],
)
def test_bad_arguments_are_rejected_at_call_time(tts: EspeakSynthesizer, kwargs: dict, message: str) -> None:
    args = {"text": "Hello.", "voice_id": "matthew", "language": "en-US", "sample_rate": 16000, **kwargs}
    text = args.pop("text")
    with pytest.raises((ConfigError, ValueError), match=message):
        tts.stream(text, **args)  # raises before the first next()


def test_concurrent_synthesis_is_safe(tts: EspeakSynthesizer) -> None:
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    voices = ["matthew", "tiffany", "carlos", "amy"]

    def work(i: int) -> None:
        try:
            text = f"Thread {i} says hello."
            results[i] = tts.synthesize(text, voice_id=voices[i % 4], language="en-US", sample_rate=16000)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(results) == 8
    # Each thread got its own voice, not audio meant for another thread.
    f_m = fundamental_hz(np.concatenate([results[0], results[4]]), 16000)
    f_t = fundamental_hz(np.concatenate([results[1], results[5]]), 16000)
    assert f_t > 1.4 * f_m


def test_split_sentences() -> None:
    assert split_sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]
    assert split_sentences("Dr. No met Mrs. Robinson at 5 p.m. today. Then left.") == [
        "Dr. No met Mrs. Robinson at 5 p.m. today.",
        "Then left.",
    ]
    assert split_sentences('He said "stop." Then ran.') == ['He said "stop."', "Then ran."]
    assert split_sentences("Line one\nline two") == ["Line one", "line two"]
    assert split_sentences("   ") == []


def test_make_utterance_layout_noise_and_cache() -> None:
    rate = 16000
    u = make_utterance(SENTENCE, lead_silence_s=0.5, tail_silence_s=2.0, sample_rate=rate)
    assert not u[: int(0.5 * rate)].any()
    assert not u[-2 * rate :].any()
    assert u[int(0.5 * rate) : -2 * rate].any()
    again = make_utterance(SENTENCE, lead_silence_s=0.5, tail_silence_s=2.0, sample_rate=rate)
    np.testing.assert_array_equal(u, again)  # cached: identical within a process
    again[0] = 1  # callers get their own writable array
    noisy = make_utterance(SENTENCE, lead_silence_s=0.5, noise_dbfs=-50, seed=3, sample_rate=rate)
    assert rms_dbfs(noisy[: int(0.4 * rate)]) == pytest.approx(-50, abs=1.0)
    np.testing.assert_array_equal(noisy, make_utterance(SENTENCE, lead_silence_s=0.5, noise_dbfs=-50, seed=3))
    assert not np.array_equal(noisy, make_utterance(SENTENCE, lead_silence_s=0.5, noise_dbfs=-50, seed=4))
    slow = make_utterance(SENTENCE, speed=0.7, tail_silence_s=0)
    fast = make_utterance(SENTENCE, speed=1.4, tail_silence_s=0)
    assert len(fast) < len(slow)
    assert make_utterance(SENTENCE, sample_rate=24000, tail_silence_s=0).size > 24000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lead_silence_s": -1}, r"lead_silence_s must be a finite number of seconds >= 0; got -1"),
        ({"tail_silence_s": float("inf")}, r"tail_silence_s must be a finite"),
        ({"noise_dbfs": 6}, r"noise_dbfs must be <= 0 dBFS; got 6"),
        ({"noise_dbfs": "loud"}, r"noise_dbfs must be a level in dBFS"),
        ({"voice_id": "ruth"}, r"unknown voice_id 'ruth'"),
    ],
)
def test_make_utterance_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_utterance("Hi.", **kwargs)
