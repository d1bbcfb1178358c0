"""Offline speech recognition for the emulator, with Moonshine (MIT).

The ``moonshine-voice`` wheel ships its C++ runtime (with ONNX Runtime) and, up to version 0.1.0, the
Moonshine *tiny* English model (``assets/tiny-en``, about 44 MB). Later versions stopped shipping the
weights and download them from a CDN on first use, which this project must never do (its machines reach
package registries only), so ``pyproject.toml`` pins ``moonshine-voice==0.1.0`` and
:class:`MoonshineRecognizer` loads the model from the package directory and nowhere else. That release
has wheels for Linux (x86-64 and aarch64) only; on other systems the package is not installed and the
recognizer raises :class:`~nova_nb.emulator.engine.errors.SpeechEngineError` when first used.

The model is English only. For other languages the emulator still gets a transcript, but a poor one;
that is a limit of the offline emulator, not of Nova Sonic.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from nova_nb.audio import pcm16_to_float32, to_pcm16_mono
from nova_nb.emulator.engine.errors import SpeechEngineError

__all__ = ["MoonshineRecognizer", "SpeechRecognizer"]

#: The rate Moonshine models take; audio at other rates is resampled first.
MODEL_RATE: Final = 16000
_MODEL_FILES: Final = ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin")


@runtime_checkable
class SpeechRecognizer(Protocol):
    """What the emulator needs from a speech recognizer: one finished utterance in, its text out."""

    def transcribe(self, pcm16: npt.NDArray[np.int16], sample_rate: int) -> str:
        """Return the words spoken in ``pcm16`` (an empty string for silence)."""
        ...


class MoonshineRecognizer:
    """Speech-to-text with the Moonshine tiny English model bundled in ``moonshine-voice``.

    Parameters
    ----------
    model_dir : str or pathlib.Path, optional
        A directory with ``encoder_model.ort``, ``decoder_model_merged.ort`` and ``tokenizer.bin``.
        Defaults to the ``tiny-en`` model inside the installed ``moonshine-voice`` package.

    Notes
    -----
    The model loads on first use (about 0.3 s), or ahead of time with :meth:`warm_up`. Loading and
    transcribing are guarded by a lock: one instance may be shared by threads, which then take turns
    (about 0.04 s of computing per second of speech). For parallel recognition use one instance per
    thread.

    Examples
    --------
    >>> asr = MoonshineRecognizer()
    >>> asr.transcribe(np.zeros(16000, dtype=np.int16), 16000)
    ''
    """

    def __init__(self, model_dir: str | Path | None = None) -> None:
        self._model_dir = None if model_dir is None else Path(model_dir)
        self._lock = threading.Lock()
        self._transcriber: Any = None
        self.load_seconds: float | None = None

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        where = str(self._model_dir) if self._model_dir else "tiny-en"
        return f"MoonshineRecognizer(model_dir={where!r}, {state})"

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._transcriber is not None

    @property
    def model_dir(self) -> Path:
        """The model directory that is (or will be) loaded."""
        if self._model_dir is not None:
            return self._model_dir
        moonshine = _import_moonshine()
        return Path(moonshine.get_model_path("tiny-en"))

    def _ensure_loaded(self) -> Any:
        # Called with self._lock held.
        if self._transcriber is None:
            moonshine = _import_moonshine()
            model_dir = self.model_dir
            missing = [name for name in _MODEL_FILES if not (model_dir / name).is_file()]
            if missing:
                raise SpeechEngineError(
                    f"the Moonshine model in {model_dir} lacks {', '.join(missing)}. moonshine-voice "
                    f"{getattr(moonshine, '__version__', '?')} does not ship its weights (versions after "
                    "0.1.0 download them at run time, which nova_nb never does); "
                    "install moonshine-voice==0.1.0"
                )
            started = time.perf_counter()
            try:
                self._transcriber = moonshine.Transcriber(
                    model_path=str(model_dir), model_arch=moonshine.ModelArch.TINY
                )
            except Exception as exc:  # the binding raises its own MoonshineError
                raise SpeechEngineError(f"Moonshine could not load the model in {model_dir}: {exc}") from exc
            self.load_seconds = time.perf_counter() - started
        return self._transcriber

    def warm_up(self) -> float:
        """Load the model and run it once on a second of silence.

        Returns
        -------
        float
            Seconds taken, the cost a first :meth:`transcribe` would otherwise pay.
        """
        started = time.perf_counter()
        self.transcribe(np.zeros(MODEL_RATE, dtype=np.int16), MODEL_RATE)
        return time.perf_counter() - started

    def transcribe(self, pcm16: npt.NDArray[np.int16], sample_rate: int) -> str:
        """Transcribe one utterance.

        Parameters
        ----------
        pcm16 : numpy.ndarray
            int16 speech (mono, or multichannel as accepted by :func:`nova_nb.audio.to_pcm16_mono`).
            A few seconds to a few tens of seconds is what the model is made for.
        sample_rate : int
            Its rate in Hz; resampled to 16 kHz when different.

        Returns
        -------
        str
            The text, stripped; an empty string when no speech was found.
        """
        pcm = to_pcm16_mono(pcm16, sample_rate=sample_rate, target_rate=MODEL_RATE)
        if pcm.size == 0:
            return ""
        samples = pcm16_to_float32(pcm)
        with self._lock:
            transcriber = self._ensure_loaded()
            # A fresh stream per utterance: moonshine-voice 0.1.0's transcribe_without_streaming keeps
            # state between calls (audio of one call leaks into the next as a stray "You" line, and
            # identical audio gives different text); a new stream does not. (Under heavy CPU load a
            # borderline word can still differ between runs: ONNX Runtime's threaded float math.)
            try:
                stream = transcriber.create_stream()
                try:
                    stream.start()
                    stream.add_audio(samples, MODEL_RATE)
                    stream.stop()
                    transcript = stream.update_transcription()
                finally:
                    stream.close()
            except Exception as exc:
                raise SpeechEngineError(f"Moonshine failed to transcribe {pcm.size} samples: {exc}") from exc
        return " ".join(line.text.strip() for line in transcript.lines if line.text.strip())

    def close(self) -> None:
        """Free the model (it loads again on the next call)."""
        with self._lock:
            if self._transcriber is not None:
                self._transcriber.close()
                self._transcriber = None


def _import_moonshine() -> Any:
    try:
        import moonshine_voice
    except ImportError as exc:
        if sys.platform != "linux":
            raise SpeechEngineError(
                f"offline speech recognition is not available on {sys.platform}: the 'moonshine-voice' "
                "wheels that ship their model (version 0.1.0) exist for Linux only"
            ) from exc
        raise SpeechEngineError(
            "speech recognition needs the 'moonshine-voice' package: pip install moonshine-voice==0.1.0 "
            "(the last version that ships the tiny English model inside the wheel)"
        ) from exc
    return moonshine_voice
