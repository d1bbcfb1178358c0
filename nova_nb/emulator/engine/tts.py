"""Offline speech synthesis for the emulator, with espeak-ng.

The emulator answers in a voice per Nova Sonic voice id, so a session that asks for ``tiffany`` hears a
female voice and one that asks for ``matthew`` a male one, each with its own pitch and pace. The voices are
robotic -- espeak-ng is a formant synthesizer -- but they are intelligible (the Moonshine recognizer gets
most words back) and several hundred times faster than real time.

espeak-ng's output is not bit-for-bit repeatable: its glottal source keeps running between utterances
(the pitch "flutter" oscillator and phase are C globals that nothing resets, not even
``espeak_Terminate``), so speaking the same text twice gives the same words at the same pitch and pace,
but samples that differ slightly and lengths that differ by a few samples (about 0.05 %). Code that
needs identical audio twice should keep the first result; ``make_utterance`` in
:mod:`nova_nb.emulator.engine.testaudio` caches for this reason.

Licence
-------
espeak-ng is licensed under the **GNU General Public License, version 3 or later**. It is not linked into
nova_nb: the ``espeakng-loader`` package ships ``libespeak-ng`` and its data, and :class:`EspeakSynthesizer`
loads that shared library with :mod:`ctypes` at run time, only when speech is first synthesized. Everything
else in nova_nb talks to the :class:`SpeechSynthesizer` protocol, so espeak-ng can be replaced by any other
engine without touching the emulator.

Thread safety
-------------
espeak-ng keeps its state (current voice, parameters, the synthesis callback) in C globals, one set per
process. Every call into the library is made while holding the module lock ``_ESPEAK_LOCK``, so any
number of threads and :class:`EspeakSynthesizer` instances may synthesize at once; the calls simply take
turns, a few milliseconds per sentence. The lock is never held while a :meth:`EspeakSynthesizer.stream`
generator is suspended at a ``yield``, so a slow consumer never blocks other sessions.

Voices
------
:data:`NOVA_VOICES` maps each Nova Sonic voice id to a :class:`VoiceProfile` (espeak-ng variant, pitch,
pitch range and speaking rate, with the Nova voice's gender). Ids, genders and locales come from
:mod:`nova_nb.protocol.catalog`; this module adds only the espeak-ng rendering of each voice.
:data:`ESPEAK_LANGUAGES` maps each Nova locale to an espeak-ng language voice. espeak-ng has no Australian
or Indian English, so en-AU and en-IN use its British English; the Nova voice's own pitch and pace still
tell the voices apart.
"""

from __future__ import annotations

import ctypes
import math
import numbers
import re
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from nova_nb.audio import StreamResampler, check_rate
from nova_nb.emulator.engine.errors import SpeechEngineError
from nova_nb.errors import ConfigError, one_of
from nova_nb.protocol import catalog

__all__ = [
    "ESPEAK_LANGUAGES",
    "NOVA_VOICES",
    "EspeakSynthesizer",
    "SpeechSynthesizer",
    "VoiceProfile",
    "split_sentences",
]

#: Lowest and highest ``speed`` factor accepted by :meth:`EspeakSynthesizer.synthesize`.
SPEED_MIN: Final = 0.5
SPEED_MAX: Final = 2.5


@runtime_checkable
class SpeechSynthesizer(Protocol):
    """What the emulator needs from a text-to-speech engine.

    Implementations return mono int16 PCM at the requested rate. ``stream`` yields chunks as they are
    produced so that the first audio can go out before the whole reply is synthesized; concatenated,
    the chunks are the same speech that ``synthesize`` returns for the same arguments.
    """

    def synthesize(
        self, text: str, *, voice_id: str, language: str, sample_rate: int, speed: float = 1.0
    ) -> npt.NDArray[np.int16]:
        """Speak ``text`` and return all of it."""
        ...

    def stream(
        self,
        text: str,
        *,
        voice_id: str,
        language: str,
        sample_rate: int,
        chunk_ms: int = 100,
        speed: float = 1.0,
    ) -> Iterator[npt.NDArray[np.int16]]:
        """Speak ``text``, yielding chunks of ``chunk_ms`` (the last one may be shorter)."""
        ...


@dataclass(frozen=True, slots=True)
class VoiceProfile:
    """How one Nova Sonic voice is rendered by espeak-ng.

    Attributes
    ----------
    voice_id : str
        The Nova Sonic ``voiceId``.
    gender : {"female", "male"}
        The gender of the Nova voice, matched by the espeak-ng variant.
    locales : tuple of str
        The locales Nova documents for the voice (matthew and tiffany are polyglot: all locales).
    variant : str
        espeak-ng voice variant (a file in ``espeak-ng-data/voices/!v``): sets the formants and base pitch.
    pitch : int
        espeak-ng pitch parameter, 0–100 (50 is the variant's own base pitch).
    pitch_range : int
        espeak-ng intonation range, 0–100 (0 is monotone).
    rate_wpm : int
        Speaking rate in words per minute at ``speed=1.0``.
    """

    voice_id: str
    gender: Literal["female", "male"]
    locales: tuple[str, ...]
    variant: str
    pitch: int
    pitch_range: int
    rate_wpm: int


#: Nova locale -> espeak-ng language voice (the names ``espeak_SetVoiceByName`` accepts).
ESPEAK_LANGUAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "en-US": "en-us",
        "en-GB": "en",  # espeak-ng's "en" is British English
        "en-AU": "en",  # no Australian English in espeak-ng: British is the closest
        "en-IN": "en",  # no Indian English in espeak-ng either
        "fr-FR": "fr",
        "it-IT": "it",
        "de-DE": "de",
        "es-US": "es-419",  # Latin American Spanish, as spoken in the US
        "pt-BR": "pt-br",
        "hi-IN": "hi",
    }
)

_ALL_LOCALES: Final = tuple(ESPEAK_LANGUAGES)


@dataclass(frozen=True, slots=True)
class _Rendering:
    """espeak-ng parameters of one voice: variant, pitch, intonation range, pace (see VoiceProfile)."""

    variant: str
    pitch: int
    pitch_range: int
    rate_wpm: int


_GENDERS: Final[Mapping[catalog.Gender, Literal["female", "male"]]] = MappingProxyType(
    {"feminine": "female", "masculine": "male"}
)

# How each Nova voice is rendered, keyed by what espeak-ng can render of it -- the voice's gender and its
# first native locale, both from the catalog -- with one rendering per catalog voice of that kind, in
# catalog order (only German feminine has two: Nova 2's, then Nova Sonic v1's). Voice ids, genders and
# locales live in nova_nb.protocol.catalog alone. Every voice has its own (variant, pitch) pair, so two
# voices never sound the same: seven male variants for the seven male voices; the ten female voices share
# five female variants at different pitches. The two polyglot en-US voices, which most tests use, got the
# variants Moonshine transcribes best.
_RENDERINGS: Final[Mapping[tuple[catalog.Gender, str], tuple[_Rendering, ...]]] = MappingProxyType(
    {
        ("masculine", "en-US"): (_Rendering("m4", 45, 50, 170),),
        ("feminine", "en-US"): (_Rendering("f2", 55, 60, 175),),
        ("feminine", "en-GB"): (_Rendering("f1", 52, 55, 170),),
        ("feminine", "en-AU"): (_Rendering("f4", 48, 65, 175),),
        ("feminine", "es-US"): (_Rendering("f5", 44, 60, 170),),
        ("masculine", "es-US"): (_Rendering("m1", 40, 55, 170),),
        ("feminine", "fr-FR"): (_Rendering("f3", 50, 60, 165),),
        ("masculine", "fr-FR"): (_Rendering("m2", 50, 50, 170),),
        ("masculine", "de-DE"): (_Rendering("m3", 45, 45, 165),),
        ("feminine", "it-IT"): (_Rendering("f1", 66, 65, 170),),
        ("masculine", "it-IT"): (_Rendering("m7", 38, 60, 170),),
        ("feminine", "de-DE"): (_Rendering("f4", 63, 50, 170), _Rendering("f3", 64, 50, 165)),
        ("feminine", "pt-BR"): (_Rendering("f2", 38, 60, 175),),
        ("masculine", "pt-BR"): (_Rendering("m5", 55, 55, 175),),
        ("feminine", "en-IN"): (_Rendering("f5", 60, 55, 175),),
        ("masculine", "en-IN"): (_Rendering("m6", 50, 50, 175),),
    }
)


def _profiles() -> dict[str, VoiceProfile]:
    """A :class:`VoiceProfile` for every catalog voice that has a rendering (a test checks: all)."""
    profiles: dict[str, VoiceProfile] = {}
    used: dict[tuple[catalog.Gender, str], int] = {}
    for voice in catalog.ALL_VOICES.values():
        key = (voice.gender, voice.locales[0])
        index = used.get(key, 0)
        used[key] = index + 1
        renderings = _RENDERINGS.get(key, ())
        if index >= len(renderings):
            continue
        r = renderings[index]
        # A polyglot voice speaks every supported language (AWS: sonic-language-support).
        locales = _ALL_LOCALES if voice.polyglot else voice.locales
        profiles[voice.id] = VoiceProfile(
            voice.id, _GENDERS[voice.gender], locales, r.variant, r.pitch, r.pitch_range, r.rate_wpm
        )
    return profiles


#: Nova Sonic voice id -> :class:`VoiceProfile`: every voice of :data:`nova_nb.protocol.catalog.ALL_VOICES`.
NOVA_VOICES: Final[Mapping[str, VoiceProfile]] = MappingProxyType(_profiles())

# espeak_lib.h (espeak-ng 1.52), the parts used here.
_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_INITIALIZE_DONT_EXIT: Final = 0x8000  # report data errors instead of calling exit()
_POS_CHARACTER: Final = 1
_CHARS_UTF8: Final = 1
_ENDPAUSE: Final = 0x1000  # a sentence-final pause after each sentence
_PARAM_RATE: Final = 1
_PARAM_VOLUME: Final = 2
_PARAM_PITCH: Final = 3
_PARAM_RANGE: Final = 4
_EE_OK: Final = 0
_RATE_MIN_WPM: Final = 80  # espeak-ng's speaking-rate range, in words per minute
_RATE_MAX_WPM: Final = 450
_BUFFER_MS: Final = 60  # how much audio espeak hands the callback at a time

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_ESPEAK_LOCK = threading.Lock()


class _Espeak:
    """The process-wide espeak-ng library. Use only while holding ``_ESPEAK_LOCK``."""

    _instance: _Espeak | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise SpeechEngineError(
                "espeak-ng is not available: install the 'espeakng-loader' package "
                "(pip install espeakng-loader), which ships libespeak-ng and its data (GPL-3.0-or-later)"
            ) from exc
        self.data_path = Path(espeakng_loader.get_data_path())
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as exc:
            raise SpeechEngineError(f"cannot load libespeak-ng from espeakng-loader: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        # Synchronous mode: espeak_Synth returns when the text is done, handing audio to the callback as
        # it goes -- no audio device, no espeak thread.
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(self.data_path).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise SpeechEngineError(f"espeak-ng failed to initialise with data at {self.data_path}")
        self.lib = lib
        self.native_rate: int = rate
        self.version: str = (lib.espeak_Info(None) or b"?").decode()
        self._sink: list[npt.NDArray[np.int16]] = []
        # Keep the ctypes callback object alive for the life of the process: espeak holds a raw pointer.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Espeak:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
        if wav and n > 0:
            self._sink.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue

    def synthesize(
        self, text: str, voice: str, profile: VoiceProfile, rate_wpm: int
    ) -> npt.NDArray[np.int16]:
        """Speak one piece of text at the native rate."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SpeechEngineError(f"espeak-ng has no voice {voice!r} in {self.data_path}")
        # Set every time: the parameters are process-wide and the previous call may have used another voice.
        for param, value in (
            (_PARAM_RATE, rate_wpm),
            (_PARAM_PITCH, profile.pitch),
            (_PARAM_RANGE, profile.pitch_range),
            (_PARAM_VOLUME, 100),
        ):
            self.lib.espeak_SetParameter(param, value, 0)
        # espeak reads a NUL-terminated string: an embedded NUL would silently cut the text short.
        data = text.replace("\x00", " ").encode("utf-8") + b"\x00"
        self._sink = []
        status = self.lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
        )
        chunks, self._sink = self._sink, []
        if status != _EE_OK:
            raise SpeechEngineError(f"espeak-ng failed to synthesize (espeak_Synth returned {status})")
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


# Sentence ends: ., !, ? or an ellipsis, possibly followed by closing quotes or brackets, then space.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)")
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|e\.g|i\.e|No|Fig|approx)|\b[A-Z])\.[\"'”’)\]]*$",
    re.IGNORECASE,
)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping common abbreviations and initials together.

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    list of str
        Non-empty, stripped sentences in order.

    Examples
    --------
    >>> split_sentences("Hi Dr. Smith! It is 3 p.m. now. Bye?")
    ['Hi Dr. Smith!', 'It is 3 p.m. now.', 'Bye?']
    """
    pieces: list[str] = []
    for paragraph in text.splitlines():
        parts, start = [], 0
        for match in _SENTENCE_END.finditer(paragraph):
            parts.append(paragraph[start : match.end()])
            start = match.end()
        parts.append(paragraph[start:])
        for part in parts:
            part = part.strip()
            if not part:
                continue
            if pieces and _ABBREVIATION.search(pieces[-1]) and not pieces[-1].endswith(("!", "?")):
                pieces[-1] = f"{pieces[-1]} {part}"
            else:
                pieces.append(part)
    return pieces


class EspeakSynthesizer:
    """Text-to-speech with espeak-ng (GPL-3.0-or-later, loaded at run time; see the module notes).

    Parameters
    ----------
    voices : Mapping[str, VoiceProfile], optional
        Voice table; defaults to :data:`NOVA_VOICES`.

    Notes
    -----
    Text is synthesized one sentence at a time, so :meth:`stream` yields the first chunk after the first
    sentence is done (a few milliseconds) while later sentences wait until they are asked for. One
    :class:`~nova_nb.audio.StreamResampler` carries on across sentences, so sentence joins are seamless.

    Examples
    --------
    >>> tts = EspeakSynthesizer()
    >>> pcm = tts.synthesize("Hello.", voice_id="matthew", language="en-US", sample_rate=16000)
    >>> pcm.dtype, 0.3 < len(pcm) / 16000 < 1.5
    (dtype('int16'), True)
    """

    def __init__(self, voices: Mapping[str, VoiceProfile] | None = None) -> None:
        self.voices: Mapping[str, VoiceProfile] = NOVA_VOICES if voices is None else voices

    def __repr__(self) -> str:
        return f"EspeakSynthesizer(voices={len(self.voices)})"

    @property
    def native_rate(self) -> int:
        """espeak-ng's own output rate in Hz (22050); loads the library."""
        with _ESPEAK_LOCK:
            return _Espeak.get().native_rate

    @property
    def engine_version(self) -> str:
        """The espeak-ng library version; loads the library."""
        with _ESPEAK_LOCK:
            return _Espeak.get().version

    def warm_up(self) -> None:
        """Load the library and synthesize one word, so the first reply pays no start-up cost."""
        self.synthesize("ready", voice_id="matthew", language="en-US", sample_rate=16000)

    def _resolve(self, voice_id: str, language: str) -> tuple[VoiceProfile, str]:
        if not isinstance(voice_id, str) or voice_id.lower() not in self.voices:
            raise ConfigError(f"unknown voice_id {voice_id!r}; valid voice ids: {one_of(self.voices)}")
        if not isinstance(language, str):
            raise ConfigError(
                f"language must be a locale string such as 'en-US'; got {type(language).__name__}"
            )
        canonical = {k.lower(): k for k in ESPEAK_LANGUAGES}.get(language.replace("_", "-").lower())
        if canonical is None:
            raise ConfigError(f"unknown language {language!r}; valid languages: {one_of(ESPEAK_LANGUAGES)}")
        profile = self.voices[voice_id.lower()]
        return profile, f"{ESPEAK_LANGUAGES[canonical]}+{profile.variant}"

    @staticmethod
    def _rate_wpm(profile: VoiceProfile, speed: float) -> int:
        if isinstance(speed, bool) or not isinstance(speed, numbers.Real) or not math.isfinite(speed):
            raise ConfigError(f"speed must be a number from {SPEED_MIN} to {SPEED_MAX}; got {speed!r}")
        if not SPEED_MIN <= speed <= SPEED_MAX:
            raise ConfigError(f"speed must be from {SPEED_MIN} to {SPEED_MAX}; got {speed}")
        return min(_RATE_MAX_WPM, max(_RATE_MIN_WPM, round(profile.rate_wpm * float(speed))))

    def synthesize(
        self, text: str, *, voice_id: str, language: str, sample_rate: int, speed: float = 1.0
    ) -> npt.NDArray[np.int16]:
        """Speak ``text`` and return the whole utterance.

        Parameters
        ----------
        text : str
            Plain text (not SSML). Empty or blank text gives an empty array.
        voice_id : str
            A key of :data:`NOVA_VOICES` (case-insensitive), e.g. ``"matthew"``.
        language : str
            A key of :data:`ESPEAK_LANGUAGES`, e.g. ``"en-US"``. Any voice may speak any language here;
            which combinations Nova accepts is checked by the emulator, not by the synthesizer.
        sample_rate : int
            Output rate in Hz (8000, 16000 and 24000 are Nova's; any rate from 8000 to 192000 works).
        speed : float
            Speaking-rate factor from 0.5 to 2.5.

        Returns
        -------
        numpy.ndarray
            Mono int16 PCM at ``sample_rate``.
        """
        chunks = list(
            self.stream(
                text,
                voice_id=voice_id,
                language=language,
                sample_rate=sample_rate,
                chunk_ms=1000,
                speed=speed,
            )
        )
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def stream(
        self,
        text: str,
        *,
        voice_id: str,
        language: str,
        sample_rate: int,
        chunk_ms: int = 100,
        speed: float = 1.0,
    ) -> Generator[npt.NDArray[np.int16], None, None]:
        """Speak ``text``, yielding audio chunks as sentences are synthesized.

        Parameters
        ----------
        text, voice_id, language, sample_rate, speed
            As for :meth:`synthesize`. They are checked when this method is called, not at the first
            ``next()``.
        chunk_ms : int
            Chunk duration in milliseconds, 10 to 10000. Every chunk but the last has exactly
            ``round(sample_rate * chunk_ms / 1000)`` samples.

        Returns
        -------
        Generator of numpy.ndarray
            Mono int16 chunks at ``sample_rate``. Stopping early (an interruption: stop iterating, or
            call ``close()``) is fine: later sentences are then never synthesized.
        """
        if not isinstance(text, str):
            raise ConfigError(f"text must be a str; got {type(text).__name__}")
        profile, espeak_voice = self._resolve(voice_id, language)
        rate_wpm = self._rate_wpm(profile, speed)
        rate = check_rate(sample_rate, "sample_rate")
        if (
            isinstance(chunk_ms, bool)
            or not isinstance(chunk_ms, numbers.Real)
            or not 10 <= chunk_ms <= 10_000
        ):
            raise ConfigError(f"chunk_ms must be a number from 10 to 10000; got {chunk_ms!r}")
        chunk = max(1, round(rate * float(chunk_ms) / 1000))
        # Validation happens above, eagerly; the generator below does the work lazily.
        return self._generate(split_sentences(text), espeak_voice, profile, rate_wpm, rate, chunk)

    def _generate(
        self,
        sentences: list[str],
        espeak_voice: str,
        profile: VoiceProfile,
        rate_wpm: int,
        rate: int,
        chunk: int,
    ) -> Generator[npt.NDArray[np.int16], None, None]:
        if not sentences:
            return
        resampler: StreamResampler | None = None
        pending = np.zeros(0, dtype=np.int16)
        for index, sentence in enumerate(sentences):
            with _ESPEAK_LOCK:  # released before any yield
                engine = _Espeak.get()
                native = engine.synthesize(sentence, espeak_voice, profile, rate_wpm)
            if resampler is None:
                resampler = StreamResampler(engine.native_rate, rate)
            last = index == len(sentences) - 1
            pending = np.concatenate([pending, resampler.process(native, last=last)])
            while len(pending) >= chunk:
                yield pending[:chunk].copy()
                pending = pending[chunk:]
        if len(pending):
            yield pending.copy()
