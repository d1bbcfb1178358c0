"""16-bit PCM: conversion, resampling, re-framing and small helpers.

Nova Sonic speaks 16-bit signed little-endian mono PCM (``audio/lpcm``) at 8, 16 or 24 kHz. Everything
in this module either produces that format from what a user has at hand (bytes from a socket, float
arrays from librosa or a microphone widget, stereo WAV files at 44.1 kHz, ...) or cuts it into the frames
the protocol wants.

Conventions
-----------
* PCM arrays are ``numpy.int16``, one-dimensional (mono), native byte order.
* Float audio is ``float32`` or ``float64`` with full scale at ±1.0. Conversion to int16 scales by 32768
  and clips, so ``float32_to_pcm16(pcm16_to_float32(x))`` gives back ``x`` exactly.
* Multichannel arrays are ``(n_samples, n_channels)`` -- the layout of ``soundfile`` and of WAV files.
  The ``(n_channels, n_samples)`` layout of librosa is also accepted when it cannot be mistaken for the
  other one: see :func:`to_pcm16_mono`.
* Sample rates are ``int`` from :data:`MIN_RATE` to :data:`MAX_RATE`.

Every function raises :class:`nova_nb.errors.AudioFormatError` (also a ``ValueError``) with a message
that says what was wrong and what would be valid.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soxr

from nova_nb.errors import AudioFormatError

__all__ = [
    "FRAME_MS_MAX",
    "FRAME_MS_MIN",
    "MAX_CHANNELS",
    "MAX_RATE",
    "MIN_RATE",
    "Reframer",
    "StreamResampler",
    "bytes_to_pcm16",
    "check_pcm16",
    "check_rate",
    "duration_s",
    "float32_to_pcm16",
    "frame_samples",
    "pcm16_to_bytes",
    "pcm16_to_float32",
    "silence",
    "to_pcm16_mono",
]

#: Lowest sample rate accepted anywhere in :mod:`nova_nb.audio` (telephony).
MIN_RATE: Final = 8000
#: Highest sample rate accepted (studio interfaces go up to 192 kHz).
MAX_RATE: Final = 192000
#: Most channels a multichannel array may have (7.1 surround); more is taken to be a layout mistake.
MAX_CHANNELS: Final = 8
#: Shortest frame :func:`frame_samples` accepts, in milliseconds (WebRTC's smallest frame).
FRAME_MS_MIN: Final = 10
#: Longest frame :func:`frame_samples` accepts, in milliseconds; longer frames add latency for no gain.
FRAME_MS_MAX: Final = 100

# Resampling quality for soxr: "HQ" is soxr's default, a 20-bit-transparent linear-phase filter; it is
# far above what 16-bit speech needs and still costs only microseconds per 20 ms frame.
_SOXR_QUALITY: Final = "HQ"

# int16 full scale. Using 32768 (not 32767) makes the int16 -> float -> int16 round trip exact, because
# dividing and multiplying by a power of two loses nothing in floating point.
_FULL_SCALE: Final = 32768.0

_EMPTY_PCM: Final = np.zeros(0, dtype=np.int16)


def check_rate(rate: object, name: str = "sample_rate") -> int:
    """Validate a sample rate and return it as a plain ``int``.

    Parameters
    ----------
    rate : object
        The value to check.
    name : str
        How the value is called in the caller's API, for the error message.

    Returns
    -------
    int
        ``rate`` as an ``int``.

    Raises
    ------
    AudioFormatError
        If ``rate`` is not an integer (``bool`` and ``float`` included) or lies outside
        :data:`MIN_RATE`–:data:`MAX_RATE`.

    Examples
    --------
    >>> check_rate(16000)
    16000
    >>> check_rate(16000.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nova_nb.errors.AudioFormatError: sample_rate must be an int from 8000 to 192000 Hz; got float 16000.0 ...
    """
    # bool is an Integral too, but True Hz is never meant.
    if isinstance(rate, bool) or not isinstance(rate, numbers.Integral):
        hint = " (use int(...))" if isinstance(rate, numbers.Real) and not isinstance(rate, bool) else ""
        raise AudioFormatError(
            f"{name} must be an int from {MIN_RATE} to {MAX_RATE} Hz; "
            f"got {type(rate).__name__} {rate!r}{hint}"
        )
    value = int(rate)
    if not MIN_RATE <= value <= MAX_RATE:
        raise AudioFormatError(f"{name} must be from {MIN_RATE} to {MAX_RATE} Hz; got {value}")
    return value


def check_pcm16(pcm: object, name: str = "pcm") -> npt.NDArray[np.int16]:
    """Check that ``pcm`` is a 1-D int16 array and return it in native byte order.

    Parameters
    ----------
    pcm : object
        The value to check.
    name : str
        How the value is called in the caller's API, for the error message.

    Returns
    -------
    numpy.ndarray
        ``pcm`` itself, or a native-order copy of a byte-swapped array.

    Raises
    ------
    AudioFormatError
        For lists, other types, other dtypes and other dimensions, with a hint at the fix.

    Examples
    --------
    >>> check_pcm16(np.zeros(2, dtype=np.float32))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nova_nb.errors.AudioFormatError: pcm must have dtype int16; got float32 (convert floats in [-1, 1] ...
    """
    if isinstance(pcm, list | tuple):
        raise AudioFormatError(
            f"{name} must be a numpy int16 array; got a {type(pcm).__name__} "
            "(use numpy.asarray(..., dtype=numpy.int16))"
        )
    if not isinstance(pcm, np.ndarray):
        raise AudioFormatError(f"{name} must be a 1-D numpy int16 array; got {type(pcm).__name__}")
    if pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
        raise AudioFormatError(
            f"{name} must have dtype int16; got {pcm.dtype} "
            "(convert floats in [-1, 1] with float32_to_pcm16, or use to_pcm16_mono)"
        )
    if pcm.ndim != 1:
        raise AudioFormatError(
            f"{name} must be 1-D (mono samples); got shape {pcm.shape} (use to_pcm16_mono to downmix)"
        )
    if not pcm.dtype.isnative:
        return pcm.astype(np.int16)
    return pcm


def _bytes_like_to_pcm16(data: bytes | bytearray | memoryview, name: str = "audio") -> npt.NDArray[np.int16]:
    """Interpret a bytes-like object as 16-bit little-endian PCM; returns a fresh writable array."""
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    if view.nbytes % 2:
        raise AudioFormatError(
            f"{name} bytes must have an even length (16-bit samples); got {view.nbytes} bytes"
        )
    # "<i2" pins little-endian whatever the machine; astype makes a native, writable copy that does not
    # keep the caller's buffer alive.
    return np.frombuffer(view, dtype="<i2").astype(np.int16)


def pcm16_to_float32(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """Convert int16 PCM to float32 in [-1, 1).

    Parameters
    ----------
    pcm : numpy.ndarray
        int16 samples, any shape.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape, ``pcm / 32768``.

    Examples
    --------
    >>> pcm16_to_float32(np.array([0, 16384, -32768], dtype=np.int16))
    array([ 0. ,  0.5, -1. ], dtype=float32)
    """
    if not isinstance(pcm, np.ndarray) or pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
        got = pcm.dtype if isinstance(pcm, np.ndarray) else type(pcm).__name__
        raise AudioFormatError(f"pcm must be a numpy int16 array; got {got}")
    return (pcm.astype(np.float32) / np.float32(_FULL_SCALE)).astype(np.float32, copy=False)


def float32_to_pcm16(audio: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.int16]:
    """Convert float audio with full scale ±1.0 to int16, rounding and clipping.

    Parameters
    ----------
    audio : numpy.ndarray
        float32 or float64 samples, any shape. Values beyond ±1.0 are clipped.

    Returns
    -------
    numpy.ndarray
        int16 array of the same shape.

    Raises
    ------
    AudioFormatError
        If ``audio`` is not a float32/float64 array or holds NaN or infinite values.

    Examples
    --------
    >>> float32_to_pcm16(np.array([0.0, 0.5, -1.0, 1.5], dtype=np.float32))
    array([     0,  16384, -32768,  32767], dtype=int16)
    """
    if not isinstance(audio, np.ndarray) or audio.dtype not in (np.float32, np.float64):
        got = audio.dtype if isinstance(audio, np.ndarray) else type(audio).__name__
        raise AudioFormatError(f"audio must be a numpy float32 or float64 array; got {got}")
    _check_finite(audio)
    scaled = np.rint(audio.astype(np.float64) * _FULL_SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def _check_finite(audio: npt.NDArray[np.floating[Any]]) -> None:
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int(audio.size - np.count_nonzero(finite))
        raise AudioFormatError(
            f"float audio must be finite (full scale is -1.0 to 1.0); got {bad} NaN or infinite "
            f"value(s) among {audio.size} samples"
        )


def bytes_to_pcm16(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """Read 16-bit little-endian mono PCM bytes into a new int16 array.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        Raw PCM; its length in bytes must be even.

    Returns
    -------
    numpy.ndarray
        int16 samples (a copy: the array does not share memory with ``data``).

    Examples
    --------
    >>> bytes_to_pcm16(b"\\x01\\x00\\xff\\xff")
    array([ 1, -1], dtype=int16)
    >>> bytes_to_pcm16(b"\\x01")
    Traceback (most recent call last):
    ...
    nova_nb.errors.AudioFormatError: audio bytes must have an even length (16-bit samples); got 1 bytes
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AudioFormatError(f"data must be bytes, bytearray or memoryview; got {type(data).__name__}")
    return _bytes_like_to_pcm16(data)


def pcm16_to_bytes(pcm: npt.NDArray[np.int16]) -> bytes:
    """Serialise int16 PCM as little-endian bytes (the wire format of Nova Sonic).

    Parameters
    ----------
    pcm : numpy.ndarray
        1-D int16 samples.

    Returns
    -------
    bytes
        ``2 * len(pcm)`` bytes.

    Examples
    --------
    >>> pcm16_to_bytes(np.array([1, -1], dtype=np.int16))
    b'\\x01\\x00\\xff\\xff'
    """
    checked = check_pcm16(pcm)
    return checked.astype("<i2", copy=False).tobytes()


def silence(duration_s: float, rate: int) -> npt.NDArray[np.int16]:
    """Digital silence of the given duration.

    Parameters
    ----------
    duration_s : float
        Seconds, ``>= 0``; rounded to the nearest sample.
    rate : int
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        int16 zeros.

    Examples
    --------
    >>> silence(0.02, 16000).shape
    (320,)
    """
    rate = check_rate(rate, "rate")
    if isinstance(duration_s, bool) or not isinstance(duration_s, numbers.Real):
        raise AudioFormatError(
            f"duration_s must be a number of seconds >= 0; got {type(duration_s).__name__}"
        )
    if not math.isfinite(duration_s) or duration_s < 0:
        raise AudioFormatError(f"duration_s must be a finite number of seconds >= 0; got {duration_s!r}")
    return np.zeros(round(float(duration_s) * rate), dtype=np.int16)


def duration_s(n_samples_or_bytes: int | bytes | bytearray | memoryview | np.ndarray, rate: int) -> float:
    """Duration in seconds of mono 16-bit audio.

    Parameters
    ----------
    n_samples_or_bytes : int, bytes-like or numpy.ndarray
        A number of samples, a PCM byte buffer (2 bytes a sample) or an array (its first dimension
        counts the samples).
    rate : int
        Sample rate in Hz.

    Returns
    -------
    float
        Seconds.

    Examples
    --------
    >>> duration_s(16000, 16000)
    1.0
    >>> duration_s(b"\\x00" * 640, 16000)
    0.02
    """
    rate = check_rate(rate, "rate")
    if isinstance(n_samples_or_bytes, bytes | bytearray | memoryview):
        nbytes = memoryview(n_samples_or_bytes).nbytes
        if nbytes % 2:
            raise AudioFormatError(
                f"audio bytes must have an even length (16-bit samples); got {nbytes} bytes"
            )
        n = nbytes // 2
    elif isinstance(n_samples_or_bytes, np.ndarray):
        if n_samples_or_bytes.ndim == 0:
            raise AudioFormatError("an array passed to duration_s must be at least 1-D; got a 0-D array")
        n = int(n_samples_or_bytes.shape[0])
    elif isinstance(n_samples_or_bytes, numbers.Integral) and not isinstance(n_samples_or_bytes, bool):
        n = int(n_samples_or_bytes)
        if n < 0:
            raise AudioFormatError(f"a sample count must be >= 0; got {n}")
    else:
        raise AudioFormatError(
            "duration_s takes a sample count (int), PCM bytes or a numpy array; "
            f"got {type(n_samples_or_bytes).__name__}"
        )
    return n / rate


def frame_samples(rate: int, frame_ms: float) -> int:
    """Number of samples in one frame, checking that the frame is a whole number of samples.

    Parameters
    ----------
    rate : int
        Sample rate in Hz.
    frame_ms : float
        Frame duration in milliseconds, from :data:`FRAME_MS_MIN` (10) to :data:`FRAME_MS_MAX` (100).

    Returns
    -------
    int
        ``rate * frame_ms / 1000``.

    Raises
    ------
    AudioFormatError
        If ``frame_ms`` is outside 10–100 ms or does not give a whole number of samples.

    Examples
    --------
    >>> frame_samples(16000, 20)
    320
    >>> frame_samples(16000, 32)
    512
    >>> frame_samples(22050, 15)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nova_nb.errors.AudioFormatError: frame_ms=15 at 22050 Hz gives 330.75 samples; ... (e.g. 20 ms -> 441 ...)
    """
    rate = check_rate(rate, "rate")
    if isinstance(frame_ms, bool) or not isinstance(frame_ms, numbers.Real):
        raise AudioFormatError(
            f"frame_ms must be a number from {FRAME_MS_MIN} to {FRAME_MS_MAX}; got {type(frame_ms).__name__}"
        )
    ms = float(frame_ms)
    if not (math.isfinite(ms) and FRAME_MS_MIN <= ms <= FRAME_MS_MAX):
        raise AudioFormatError(f"frame_ms must be from {FRAME_MS_MIN} to {FRAME_MS_MAX} ms; got {frame_ms!r}")
    exact = rate * ms / 1000.0
    n = round(exact)
    if abs(exact - n) > 1e-9:
        # Suggest the nearest allowed durations that do divide evenly, so the fix is one edit away.
        suggestions = [m for m in range(FRAME_MS_MIN, FRAME_MS_MAX + 1) if (rate * m) % 1000 == 0]
        near = min(suggestions, key=lambda m: abs(m - ms)) if suggestions else None
        hint = f" (e.g. {near} ms -> {rate * near // 1000} samples)" if near is not None else ""
        raise AudioFormatError(
            f"frame_ms={frame_ms!r} at {rate} Hz gives {exact:g} samples; it must give a whole number{hint}"
        )
    return n


def _channel_layout(shape: tuple[int, ...]) -> str:
    """Decide whether a 2-D shape is ``(n, ch)`` or ``(ch, n)``; see :func:`to_pcm16_mono`."""
    rows, cols = shape
    if cols <= MAX_CHANNELS:
        return "n_ch"
    if rows <= MAX_CHANNELS:
        return "ch_n"
    raise AudioFormatError(
        f"2-D audio must be (n_samples, n_channels) or (n_channels, n_samples) with at most "
        f"{MAX_CHANNELS} channels; got shape {shape}"
    )


def to_pcm16_mono(
    audio: bytes | bytearray | memoryview | np.ndarray,
    *,
    sample_rate: int | None = None,
    target_rate: int,
    input_rate_default: int | None = None,
) -> npt.NDArray[np.int16]:
    """Turn any reasonable audio into mono int16 PCM at ``target_rate``.

    Parameters
    ----------
    audio : bytes, bytearray, memoryview or numpy.ndarray
        * bytes-like: 16-bit signed little-endian mono PCM; the length must be even.
        * ``int16`` array, or ``float32``/``float64`` array with full scale ±1.0 (clipped beyond).
        * 1-D is mono. 2-D is multichannel and is downmixed by averaging the channels. The layout is
          ``(n_samples, n_channels)`` whenever the second dimension is at most :data:`MAX_CHANNELS` (8);
          otherwise an array whose first dimension is at most 8 is read as ``(n_channels, n_samples)``
          (librosa's layout). So ``(48000, 2)`` and ``(2, 48000)`` are both stereo, while a tiny
          ``(4, 2)`` is 4 stereo samples.
    sample_rate : int, optional
        The rate of ``audio`` in Hz. ``None`` means ``input_rate_default``.
    target_rate : int
        The rate to return, in Hz.
    input_rate_default : int, optional
        The rate assumed when ``sample_rate`` is ``None``; ``None`` means ``target_rate`` (no resampling).

    Returns
    -------
    numpy.ndarray
        1-D int16 array at ``target_rate``. Empty input gives an empty array.

    Raises
    ------
    AudioFormatError
        For lists (use ``numpy.asarray``), other dtypes (int32, uint8, complex, object, ...), NaN or
        infinite floats, arrays with more than 2 dimensions or more than 8 channels, bytes of odd length,
        and rates that are not ints from 8000 to 192000 Hz.

    Notes
    -----
    Resampling uses soxr at its "HQ" setting (linear phase, more than 16-bit clean). For audio that
    arrives in pieces, use :class:`StreamResampler` so chunk boundaries stay seamless.

    Examples
    --------
    >>> stereo = np.zeros((4800, 2), dtype=np.float32)
    >>> to_pcm16_mono(stereo, sample_rate=48000, target_rate=16000).shape
    (1600,)
    >>> to_pcm16_mono(b"\\x00\\x00" * 320, target_rate=16000).shape
    (320,)
    >>> to_pcm16_mono([0.0, 0.1], target_rate=16000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nova_nb.errors.AudioFormatError: audio must be bytes or a numpy array; got a list ...numpy.asarray...
    """
    target = check_rate(target_rate, "target_rate")
    default = target if input_rate_default is None else check_rate(input_rate_default, "input_rate_default")
    rate = default if sample_rate is None else check_rate(sample_rate, "sample_rate")

    if isinstance(audio, bytes | bytearray | memoryview):
        pcm = _bytes_like_to_pcm16(audio)
        return _resample_pcm16(pcm, rate, target)
    if isinstance(audio, list | tuple):
        raise AudioFormatError(
            f"audio must be bytes or a numpy array; got a {type(audio).__name__} (use numpy.asarray(...) "
            "first, with dtype=numpy.int16 for PCM samples or float32 for values in [-1, 1])"
        )
    if isinstance(audio, np.generic):
        raise AudioFormatError(
            f"audio must be an array of samples; got a single numpy {audio.dtype} scalar (0-D)"
        )
    if not isinstance(audio, np.ndarray):
        raise AudioFormatError(
            "audio must be bytes, bytearray, memoryview or a numpy int16/float32/float64 array; "
            f"got {type(audio).__name__}"
        )

    is_int16 = audio.dtype.kind == "i" and audio.dtype.itemsize == 2
    is_float = audio.dtype in (np.float32, np.float64)
    if not (is_int16 or is_float):
        raise AudioFormatError(
            f"audio arrays must have dtype int16, float32 or float64; got {audio.dtype} "
            "(convert int32 or uint8 audio to int16 or to float in [-1, 1] first)"
        )
    if audio.ndim not in (1, 2):
        raise AudioFormatError(
            f"audio must be 1-D (mono) or 2-D (n_samples, n_channels); got {audio.ndim}-D shape {audio.shape}"
        )
    if is_float:
        _check_finite(audio)
    if audio.size == 0:
        return _EMPTY_PCM.copy()

    if audio.ndim == 2:
        if _channel_layout(audio.shape) == "ch_n":
            audio = audio.T
        # Average in float64: exact for int16 sums and no overflow; then it is float audio.
        mono = audio.astype(np.float64).mean(axis=1)
        if is_int16:
            mono /= _FULL_SCALE
        return _resample_float(mono.astype(np.float32), rate, target)
    if is_int16:
        return _resample_pcm16(audio.astype(np.int16, copy=True), rate, target)
    return _resample_float(audio.astype(np.float32), rate, target)


def _resample_pcm16(pcm: npt.NDArray[np.int16], rate: int, target: int) -> npt.NDArray[np.int16]:
    if rate == target or pcm.size == 0:
        return pcm
    return _resample_float(pcm16_to_float32(pcm), rate, target)


def _resample_float(audio: npt.NDArray[np.float32], rate: int, target: int) -> npt.NDArray[np.int16]:
    if rate != target and audio.size:
        # Resample in float: the filter can overshoot full scale slightly (Gibbs), and clipping once at
        # the end is cleaner than letting an integer resampler wrap or saturate mid-filter.
        audio = soxr.resample(audio, rate, target, quality=_SOXR_QUALITY)
    return float32_to_pcm16(audio)


class StreamResampler:
    """Resample int16 audio that arrives in chunks, keeping filter state across chunks.

    Resampling each chunk on its own restarts the filter every time, which leaves a click at every chunk
    boundary and drifts in length. This class keeps one ``soxr.ResampleStream`` so the output equals a
    one-shot resampling of the concatenated input (up to float rounding).

    Parameters
    ----------
    from_rate : int
        Input rate in Hz.
    to_rate : int
        Output rate in Hz. Equal rates pass chunks through unchanged.

    Notes
    -----
    The filter delays its output: the first chunks come back shorter than ``len(chunk) * ratio`` and the
    rest arrives with ``last=True``. A session should pass ``last=True`` on its final chunk (an empty
    chunk is fine) to drain it. Not thread-safe: use one instance per stream.

    Examples
    --------
    >>> rs = StreamResampler(48000, 16000)
    >>> chunks = [rs.process(np.zeros(480, dtype=np.int16)) for _ in range(10)]
    >>> tail = rs.process(np.zeros(0, dtype=np.int16), last=True)
    >>> sum(len(c) for c in chunks) + len(tail)
    1600
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = check_rate(from_rate, "from_rate")
        self.to_rate = check_rate(to_rate, "to_rate")
        self._stream: soxr.ResampleStream | None = None
        if self.from_rate != self.to_rate:
            self._stream = soxr.ResampleStream(
                self.from_rate, self.to_rate, 1, dtype="float32", quality=_SOXR_QUALITY
            )

    def __repr__(self) -> str:
        return f"StreamResampler(from_rate={self.from_rate}, to_rate={self.to_rate})"

    def process(self, pcm: npt.NDArray[np.int16], last: bool = False) -> npt.NDArray[np.int16]:
        """Resample one chunk.

        Parameters
        ----------
        pcm : numpy.ndarray
            1-D int16 samples at ``from_rate``; may be empty.
        last : bool
            ``True`` on the final chunk: flushes the samples the filter still holds.

        Returns
        -------
        numpy.ndarray
            1-D int16 samples at ``to_rate`` (may be empty while the filter fills).
        """
        checked = check_pcm16(pcm)
        if self._stream is None:
            return checked.copy()
        out = self._stream.resample_chunk(pcm16_to_float32(checked), last=last)
        return float32_to_pcm16(out)

    def reset(self) -> None:
        """Forget the filter state, e.g. after an interruption drops the rest of a stream."""
        if self._stream is not None:
            self._stream.clear()


class Reframer:
    """Cut a stream of int16 samples of any chunk size into frames of exactly ``frame_samples``.

    Parameters
    ----------
    frame_samples : int
        Samples per frame, ``>= 1`` (see :func:`frame_samples` to get it from a duration).

    Examples
    --------
    >>> rf = Reframer(320)
    >>> len(rf.push(np.zeros(500, dtype=np.int16)))
    1
    >>> rf.pending
    180
    >>> [len(f) for f in rf.flush()]  # padded with zeros to a full 640-byte frame
    [640]
    """

    def __init__(self, frame_samples: int) -> None:
        if isinstance(frame_samples, bool) or not isinstance(frame_samples, numbers.Integral):
            raise AudioFormatError(f"frame_samples must be an int >= 1; got {type(frame_samples).__name__}")
        if frame_samples < 1:
            raise AudioFormatError(f"frame_samples must be an int >= 1; got {frame_samples}")
        self.frame_samples: int = int(frame_samples)
        self._frame_bytes: int = 2 * self.frame_samples
        # A bytearray grows and shrinks at the front cheaply enough for frames of a few hundred samples,
        # and frames come out as bytes, the form the protocol layer base64-encodes.
        self._buffer: bytearray = bytearray()

    def __repr__(self) -> str:
        return f"Reframer(frame_samples={self.frame_samples}, pending={self.pending})"

    @property
    def pending(self) -> int:
        """Samples held back until a frame is full."""
        return len(self._buffer) // 2

    def push(self, pcm: npt.NDArray[np.int16] | bytes | bytearray | memoryview) -> list[bytes]:
        """Add samples and return every frame that is now complete.

        Parameters
        ----------
        pcm : numpy.ndarray or bytes-like
            1-D int16 samples, or 16-bit little-endian PCM bytes (even length).

        Returns
        -------
        list of bytes
            Complete frames, ``2 * frame_samples`` bytes each, oldest first; often empty.
        """
        fb = self._frame_bytes
        if isinstance(pcm, bytes | bytearray | memoryview):
            view = memoryview(pcm)
            if view.nbytes % 2:
                raise AudioFormatError(
                    f"audio bytes must have an even length (16-bit samples); got {view.nbytes} bytes"
                )
            if type(pcm) is bytes and not self._buffer:
                # Nothing pending: cut frames straight from the caller's bytes (immutable, so sharing
                # is safe). A chunk of exactly one frame comes back as the very same object.
                n = len(pcm)
                cut = n - n % fb
                if cut < n:
                    self._buffer += view[cut:]
                return [pcm] if cut == n == fb else [pcm[i : i + fb] for i in range(0, cut, fb)]
            self._buffer += view.tobytes() if not view.c_contiguous else view.cast("B")
        else:
            self._buffer += pcm16_to_bytes(pcm)
        n_full = len(self._buffer) // fb
        if n_full == 0:
            return []
        cut = n_full * fb
        block = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        # Slicing a whole bytes object returns it: a single frame is not copied again.
        return [block[i : i + fb] for i in range(0, cut, fb)]

    def flush(self, pad: bool = True) -> list[bytes]:
        """Return what is pending and empty the buffer.

        Parameters
        ----------
        pad : bool
            ``True``: pad the rest with zeros to one full frame. ``False``: return it as it is (shorter
            than a frame).

        Returns
        -------
        list of bytes
            One frame, or an empty list when nothing is pending.
        """
        if not self._buffer:
            return []
        rest = bytes(self._buffer)
        self._buffer.clear()
        if pad:
            rest += b"\x00" * (self._frame_bytes - len(rest))
        return [rest]

    def clear(self) -> None:
        """Drop pending samples without returning them."""
        self._buffer.clear()
