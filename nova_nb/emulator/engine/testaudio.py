"""Spoken test utterances, made offline, for tests, benchmarks and notebooks.

:func:`make_utterance` speaks a sentence with the emulator's synthesizer and frames it the way a user
turn sounds to Nova Sonic: a little silence before, the words, and enough silence after for the
service's end-of-turn detection (1.5–2 s, NOVA_PROTOCOL §6), optionally with background noise.
:func:`word_overlap` scores a transcript against what was said.

Examples
--------
>>> q = make_utterance("What time is it?", sample_rate=16000, tail_silence_s=1.0)
>>> q.dtype, 1.5 < len(q) / 16000 < 3.5
(dtype('int16'), True)
"""

from __future__ import annotations

import math
import numbers
import re
import threading
from collections import Counter, OrderedDict

import numpy as np
import numpy.typing as npt

from nova_nb.audio import check_rate, silence
from nova_nb.emulator.engine.tts import EspeakSynthesizer, SpeechSynthesizer
from nova_nb.errors import ConfigError

__all__ = ["make_utterance", "normalize_words", "word_overlap"]

_default_synthesizer: SpeechSynthesizer | None = None
_default_lock = threading.Lock()

# espeak-ng never says the same thing twice bit for bit (see nova_nb.emulator.engine.tts), so speech from
# the default synthesizer is cached: within a process the same arguments give the same samples, which
# keeps tests that compare runs (or replay one question against several settings) exact.
_CACHE_SIZE = 128
_speech_cache: OrderedDict[tuple[str, str, str, int, float], npt.NDArray[np.int16]] = OrderedDict()


def _synthesizer() -> SpeechSynthesizer:
    global _default_synthesizer
    with _default_lock:
        if _default_synthesizer is None:
            _default_synthesizer = EspeakSynthesizer()
        return _default_synthesizer


def _cached_speech(text: str, voice_id: str, language: str, rate: int, speed: float) -> npt.NDArray[np.int16]:
    key = (text, str(voice_id).lower(), str(language), rate, float(speed))
    with _default_lock:
        cached = _speech_cache.get(key)
        if cached is not None:
            _speech_cache.move_to_end(key)
            return cached
    speech = _synthesizer().synthesize(
        text, voice_id=voice_id, language=language, sample_rate=rate, speed=speed
    )
    speech.setflags(write=False)  # shared between callers: make accidental in-place edits fail loudly
    with _default_lock:
        speech = _speech_cache.setdefault(key, speech)
        while len(_speech_cache) > _CACHE_SIZE:
            _speech_cache.popitem(last=False)
    return speech


def _seconds(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(f"{name} must be a finite number of seconds >= 0; got {value!r}")
    return float(value)


def make_utterance(
    text: str,
    voice_id: str = "matthew",
    language: str = "en-US",
    sample_rate: int = 16000,
    lead_silence_s: float = 0.3,
    tail_silence_s: float = 2.0,
    noise_dbfs: float | None = None,
    speed: float = 1.0,
    seed: int = 0,
    *,
    synthesizer: SpeechSynthesizer | None = None,
) -> npt.NDArray[np.int16]:
    """Speak ``text`` as a user turn: silence, speech, silence, and optional noise.

    Parameters
    ----------
    text : str
        What to say.
    voice_id : str
        A Nova voice id (see :data:`~nova_nb.emulator.engine.tts.NOVA_VOICES`).
    language : str
        A Nova locale such as ``"en-US"``.
    sample_rate : int
        Output rate in Hz (16000 is what Nova Sonic takes as input).
    lead_silence_s : float
        Silence before the speech, in seconds.
    tail_silence_s : float
        Silence after the speech, in seconds. The default 2.0 s outlasts Nova 2's longest end-of-turn
        pause (about 2.0 s at ``LOW`` sensitivity) only just; use 2.5 s to be safe at ``LOW``.
    noise_dbfs : float, optional
        RMS level in dBFS of white Gaussian noise added over the whole utterance (silences included),
        e.g. -50 for a quiet room, -30 for a noisy one. ``None`` adds none (digital silence).
    speed : float
        Speaking-rate factor, 0.5 to 2.5.
    seed : int
        Seed of the noise generator.
    synthesizer : SpeechSynthesizer, optional
        The engine to speak with; defaults to a shared :class:`EspeakSynthesizer` whose speech is
        cached (128 utterances), so that within a process the same arguments give the same samples.
        Across processes the words, pitch, pace and level are the same, the samples nearly so.

    Returns
    -------
    numpy.ndarray
        Mono int16 PCM at ``sample_rate``.
    """
    rate = check_rate(sample_rate, "sample_rate")
    lead = _seconds("lead_silence_s", lead_silence_s)
    tail = _seconds("tail_silence_s", tail_silence_s)
    if synthesizer is not None:
        speech = synthesizer.synthesize(
            text, voice_id=voice_id, language=language, sample_rate=rate, speed=speed
        )
    else:
        speech = _cached_speech(text, voice_id, language, rate, speed)
    pcm = np.concatenate([silence(lead, rate), speech, silence(tail, rate)])
    if noise_dbfs is None:
        return pcm
    if (
        isinstance(noise_dbfs, bool)
        or not isinstance(noise_dbfs, numbers.Real)
        or not math.isfinite(noise_dbfs)
    ):
        raise ConfigError(f"noise_dbfs must be a level in dBFS (e.g. -50) or None; got {noise_dbfs!r}")
    if noise_dbfs > 0:
        raise ConfigError(f"noise_dbfs must be <= 0 dBFS; got {noise_dbfs}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(pcm.size) * (32768.0 * 10.0 ** (noise_dbfs / 20.0))
    mixed = np.rint(pcm.astype(np.float64) + noise)
    return np.clip(mixed, -32768, 32767).astype(np.int16)


_NON_WORD = re.compile(r"[^\w']+")


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation; hyphenated words are joined ("to-day" -> "today").

    Examples
    --------
    >>> normalize_words("Hello, World! It's to-day.")
    ['hello', 'world', "it's", 'today']
    """
    return [w.strip("'") for w in _NON_WORD.split(text.lower().replace("-", "")) if w.strip("'")]


def word_overlap(expected: str, heard: str) -> float:
    """Fraction of the expected words found in what was heard (each heard word counts once).

    Case, punctuation and word order are ignored, so this is a lenient recall, not a word error rate.

    Parameters
    ----------
    expected : str
        The reference text.
    heard : str
        A transcript.

    Returns
    -------
    float
        From 0.0 to 1.0; 1.0 when ``expected`` has no words.

    Examples
    --------
    >>> word_overlap("What is the weather like?", "what is the whether like")
    0.8
    """
    reference = normalize_words(expected)
    if not reference:
        return 1.0
    available = Counter(normalize_words(heard))
    matched = 0
    for word in reference:
        if available[word] > 0:
            available[word] -= 1
            matched += 1
    return matched / len(reference)
