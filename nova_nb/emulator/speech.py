"""The emulator's speech engine: Silero VAD for turn taking, Moonshine ASR, espeak-ng TTS.

:class:`SpeechBrain` implements the :class:`~.conversation.Brain` protocol with real speech models
that ship inside their packages (nothing is downloaded). Moonshine's model is English; replies in
other languages are synthesized with the voice's language, but user speech is recognised as English.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..audio import StreamResampler
from ..protocol import catalog
from ..protocol.rules import PromptSettings
from .engine import EspeakSynthesizer, MoonshineRecognizer, SileroVad
from .engine.tts import ESPEAK_LANGUAGES
from .responder import ReplyContext, Responder, call_responder, rule_based_reply

VAD_RATE = 16000
#: Silero's speech probability above which a window counts as speech (its authors' default).
SPEECH_THRESHOLD = 0.5
#: TTS chunk length: the first chunk is ready a few ms after the decision.
TTS_CHUNK_MS = 80


class SileroTurnDetector:
    """Speech/silence per input frame with Silero VAD (16 kHz; other rates are resampled).

    Silero scores 512-sample windows, which need not line up with frames: a frame that completes no
    window keeps the previous decision.
    """

    def __init__(self, threshold: float = SPEECH_THRESHOLD) -> None:
        self.vad = SileroVad()
        self.threshold = threshold
        self._resampler: StreamResampler | None = None
        self._rate: int | None = None
        self._last = False

    def is_speech(self, frame: np.ndarray, sample_rate: int) -> bool:
        if sample_rate != VAD_RATE:
            if self._rate != sample_rate:
                self._resampler = StreamResampler(sample_rate, VAD_RATE)
                self._rate = sample_rate
            assert self._resampler is not None
            frame = self._resampler.process(frame)
        probabilities = self.vad.process(frame)
        if probabilities:
            self._last = max(probabilities) >= self.threshold
        return self._last


_shared_lock = threading.Lock()
_shared: dict[str, Any] = {}


def _shared_models() -> tuple[MoonshineRecognizer, EspeakSynthesizer]:
    """One recognizer and one synthesizer per process: loading Moonshine takes ~0.25 s."""
    with _shared_lock:
        if not _shared:
            _shared["asr"] = MoonshineRecognizer()
            _shared["tts"] = EspeakSynthesizer()
        return _shared["asr"], _shared["tts"]


def warm_up() -> None:
    """Load the models now (the emulator does it at start, so the first turn is not slow)."""
    asr, tts = _shared_models()
    asr.warm_up()
    tts.warm_up()


class SpeechBrain:
    """Hears with Moonshine, answers with a responder (rule-based by default), speaks with espeak-ng."""

    def __init__(self, responder: Responder = rule_based_reply) -> None:
        self.asr, self.tts = _shared_models()
        self.responder = responder
        self.turn = 0

    def transcribe(self, pcm: np.ndarray, sample_rate: int, settings: PromptSettings) -> str:
        if pcm.size == 0:
            return ""
        return self.asr.transcribe(pcm, sample_rate).strip()

    def reply(self, user_text: str, settings: PromptSettings) -> str:
        self.turn += 1
        context = ReplyContext(
            system_prompt=settings.system_prompt,
            history=tuple(settings.history),
            turn=self.turn,
            voice_id=settings.voice_id,
        )
        return call_responder(self.responder, user_text, context)

    def speak(self, text: str, settings: PromptSettings) -> Iterator[np.ndarray]:
        return self.tts.stream(
            text,
            voice_id=settings.voice_id,
            language=voice_language(settings.voice_id),
            sample_rate=settings.output_sample_rate,
            chunk_ms=TTS_CHUNK_MS,
        )


def voice_language(voice_id: str) -> str:
    """The language a voice speaks in the emulator: its first locale (polyglot voices: en-US)."""
    voice = catalog.MODELS[catalog.NOVA_2_SONIC].voices.get(voice_id) or catalog.MODELS[
        catalog.NOVA_SONIC_V1
    ].voices.get(voice_id)
    language = voice.locales[0] if voice else "en-US"
    return language if language in ESPEAK_LANGUAGES else "en-US"
