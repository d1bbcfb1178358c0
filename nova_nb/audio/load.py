"""The one audio loader: a file, encoded bytes or an array in; int16 mono at the rate you ask for out.

WAV files are read with the standard library. Other containers and codecs (WebM/Opus from a browser,
Ogg, MP3, FLAC, ...) are decoded with PyAV, whose wheels ship FFmpeg, when it is installed.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nova_nb.audio.pcm import bytes_to_pcm16, to_pcm16_mono
from nova_nb.audio.wav import read_wav
from nova_nb.errors import AudioFormatError, ConfigError

__all__ = ["decode_audio", "load_audio"]

AudioSource = str | os.PathLike[str] | bytes | bytearray | memoryview | npt.NDArray[np.generic]


def load_audio(
    source: AudioSource, *, sample_rate: int | None = None, target_rate: int = 16000
) -> npt.NDArray[np.int16]:
    """Load audio as int16 mono samples at ``target_rate``.

    Parameters
    ----------
    source : path, bytes or numpy.ndarray
        A WAV file; any other audio file (decoded with PyAV); encoded bytes (WAV, WebM, Ogg, ...); raw
        16-bit little-endian PCM bytes when ``sample_rate`` is given; or samples (int16 or float in
        [-1, 1], shape ``(n,)`` or ``(n, channels)``).
    sample_rate : int, optional
        Rate of an array or of raw PCM bytes (required for an array; files carry their own rate).
    target_rate : int
        Rate of the result in Hz.

    Returns
    -------
    numpy.ndarray
        int16, shape ``(n,)``.

    Raises
    ------
    ConfigError
        A path that does not exist, an array without ``sample_rate``, or a source of another type.
    AudioFormatError
        Data that holds no decodable audio, or a non-WAV file without PyAV installed.

    Examples
    --------
    >>> load_audio(np.zeros((480, 2), dtype=np.float32), sample_rate=48000).shape
    (160,)
    """
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise ConfigError("a numpy array needs sample_rate=... (the rate its samples were taken at)")
        return to_pcm16_mono(source, sample_rate=sample_rate, target_rate=target_rate)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if sample_rate is not None:
            return to_pcm16_mono(bytes_to_pcm16(data), sample_rate=sample_rate, target_rate=target_rate)
        if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
            # read_wav takes a path (its errors name it); WAV bytes are small enough to spool.
            with tempfile.TemporaryDirectory() as folder:
                spooled = Path(folder) / "audio.wav"
                spooled.write_bytes(data)
                samples, rate = read_wav(spooled)
            return to_pcm16_mono(samples, sample_rate=rate, target_rate=target_rate)
        return decode_audio(data, target_rate=target_rate)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"audio file {str(path)!r} does not exist")
        if path.suffix.lower() in (".wav", ".wave"):
            samples, rate = read_wav(path)
            return to_pcm16_mono(samples, sample_rate=rate, target_rate=target_rate)
        return decode_audio(path, target_rate=target_rate)
    raise ConfigError(
        f"audio must be a file path, encoded or raw PCM bytes, or a numpy array; got {type(source).__name__}"
    )


def decode_audio(
    source: str | os.PathLike[str] | bytes, *, target_rate: int = 16000
) -> npt.NDArray[np.int16]:
    """Decode the first audio stream of a file or of encoded bytes with PyAV, to int16 mono.

    Parameters
    ----------
    source : path or bytes
        A file, or the encoded bytes themselves (e.g. what ipywebrtc's AudioRecorder delivers).
    target_rate : int
        Output rate in Hz; FFmpeg's resampler converts (with its anti-aliasing filter).

    Raises
    ------
    AudioFormatError
        When PyAV is not installed, or the data holds no decodable audio.
    """
    try:
        import av
    except ImportError:
        raise AudioFormatError(
            "decoding audio other than WAV needs PyAV (pip install av); WAV files and arrays need nothing"
        ) from None

    if isinstance(source, bytes | bytearray) and not source:
        raise AudioFormatError("no audio: the data is empty")
    handle: str | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source)
    try:
        container = av.open(handle, mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise AudioFormatError(f"cannot decode audio ({exc}); expected WAV, WebM, Ogg, MP3, ...") from None
    chunks: list[npt.NDArray[np.int16]] = []
    try:
        if not container.streams.audio:
            raise AudioFormatError("the data holds no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=target_rate)
        for frame in container.decode(container.streams.audio[0]):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))
    except av.FFmpegError as exc:
        raise AudioFormatError(f"cannot decode audio ({exc})") from None
    finally:
        container.close()
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(chunks)
