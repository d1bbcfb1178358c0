"""Spectrograms of the two audio streams on one time axis, with the session's events marked.

Functions over arrays (librosa style): :func:`spectrogram` turns samples into a dB image at a
resolution that fits a plot, :func:`event_markers` turns event dicts into marker times, and
:func:`recording_spectrograms` does both streams of a recording. Drawing them is
:mod:`nova_nb.analysis.display`'s job. Nothing here touches a live session.

Long recordings stay fast because the image never has more than ``max_columns`` columns: each column
averages the power of the short-time spectra (``n_fft`` windows, half-overlapping) inside its slice
of time, so nothing is skipped, and the work grows only with the number of windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import AudioFormatError, ConfigError

__all__ = ["Marker", "Spectrogram", "event_markers", "recording_spectrograms", "spectrogram"]

Kind = Literal["mel", "linear"]

#: Windows per block when computing spectra (bounds memory: block x n_fft float32 values).
_BLOCK_WINDOWS = 4096


@dataclass(frozen=True)
class Spectrogram:
    """A spectrogram in dB: ``db[freq, column]``; ``times`` are column centres in seconds."""

    db: npt.NDArray[np.float32]
    times: npt.NDArray[np.float64]
    freqs: npt.NDArray[np.float64]
    kind: Kind
    sample_rate: int
    n_fft: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.db.shape[0]), int(self.db.shape[1]))


def _column_power(
    y: npt.NDArray[Any], scale: float, n_fft: int, n_cols: int, col_len: float
) -> npt.NDArray[np.float32]:
    """Mean power spectrum of each column: ``(n_fft // 2 + 1, n_cols)``.

    Windows are centred every ``step`` samples (half a window, or one column if that is shorter);
    each column averages the windows whose centre falls in it.
    """
    import librosa
    import scipy.fft

    step = max(1, min(n_fft // 2, int(col_len)))
    n_win = max(1, math.ceil(y.size / step))
    half = n_fft // 2
    yp = np.concatenate([np.zeros(half, y.dtype), y, np.zeros(n_fft + step, y.dtype)])
    windows = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::step][:n_win]
    # The window carries the int16 → [-1, 1] scale, so samples are converted a block at a time.
    hann = (scale * librosa.filters.get_window("hann", n_fft, fftbins=True)).astype(np.float32)
    power = np.empty((n_win, n_fft // 2 + 1), dtype=np.float32)
    for b in range(0, n_win, _BLOCK_WINDOWS):
        spec = scipy.fft.rfft(windows[b : b + _BLOCK_WINDOWS] * hann, axis=1, workers=-1)
        power[b : b + spec.shape[0]] = spec.real**2 + spec.imag**2
    cols = np.minimum((np.arange(n_win) * step / col_len).astype(np.int64), n_cols - 1)
    bounds = np.searchsorted(cols, np.arange(n_cols))
    counts = np.diff(np.append(bounds, n_win))
    sums = np.add.reduceat(power, np.minimum(bounds, n_win - 1), axis=0)
    sums[counts == 0] = 0.0
    mean: npt.NDArray[np.float32] = (sums / np.maximum(counts, 1)[:, None]).T.astype(np.float32)
    return mean


def spectrogram(
    pcm: npt.NDArray[Any],
    sample_rate: int,
    *,
    kind: Kind = "mel",
    n_fft: int = 512,
    n_mels: int = 80,
    fmax: float | None = None,
    max_columns: int = 1200,
    hop_s: float = 0.008,
    t_offset: float = 0.0,
    top_db: float = 80.0,
) -> Spectrogram:
    """Short-time spectrum of audio in dB, at most ``max_columns`` columns wide.

    Parameters
    ----------
    pcm : numpy.ndarray
        int16 PCM (or float audio in [-1, 1]), mono.
    sample_rate : int
    kind : {"mel", "linear"}
        Mel-scaled bands (``n_mels``) or the linear FFT bins.
    n_fft : int
        Window length in samples.
    n_mels : int
    fmax : float, optional
        Highest mel frequency (default: half the sample rate).
    max_columns : int
        Widest image to make; long audio is pooled into this many columns.
    hop_s : float
        Column spacing for short audio (when it gives fewer than ``max_columns`` columns).
    t_offset : float
        Time of the first sample, added to ``times`` (to place audio on a recording's clock).
    top_db : float
        Dynamic range kept below the peak.

    Returns
    -------
    Spectrogram

    Examples
    --------
    >>> import numpy as np
    >>> y = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    >>> s = spectrogram(y, 16000, kind="linear")      # 1 s: 125 columns 8 ms apart, 257 FFT bins
    >>> s.shape, float(s.freqs[s.db.mean(axis=1).argmax()])   # the loudest bin is next to 440 Hz
    ((257, 125), 437.5)
    """
    import librosa

    y = np.asarray(pcm)
    scale = 1.0 / 32768.0 if y.dtype.kind == "i" else 1.0
    if y.dtype.kind == "f":
        y = y.astype(np.float32, copy=False)
    if y.ndim != 1:
        raise AudioFormatError(f"pcm must be mono, shape (n,); got {y.shape}")
    duration = y.size / sample_rate
    n_cols = max(1, min(int(max_columns), math.ceil(duration / hop_s)))
    col_len = max(y.size, 1) / n_cols
    power = _column_power(y, scale, n_fft, n_cols, col_len)
    if kind == "mel":
        basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
        power = basis @ power
        freqs = librosa.mel_frequencies(n_mels=n_mels, fmin=0.0, fmax=fmax or sample_rate / 2)
    elif kind == "linear":
        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    else:
        raise ConfigError(f"kind must be 'mel' or 'linear'; got {kind!r}")
    db = librosa.power_to_db(power, ref=1.0, top_db=None).astype(np.float32)
    db = np.maximum(db, max(float(db.max()) - top_db, -120.0)) if db.size else db
    times = t_offset + (np.arange(n_cols) + 0.5) * col_len / sample_rate
    return Spectrogram(db, times, np.asarray(freqs, dtype=np.float64), kind, sample_rate, n_fft)


@dataclass(frozen=True)
class Marker:
    """One moment to mark: time on the recording clock, what it is, and how to draw it."""

    t: float
    label: str
    kind: str
    content_id: str | None = None


#: kind → legend label of each marker.
_MARKER_LABELS = {
    "speech_start": "user speech starts",
    "speech_end": "end of user audio",
    "service_speech_start": "service: speech starts",
    "service_speech_end": "service: end of speech",
    "decision": "turn decision (USER FINAL)",
    "first_audio": "first audio out",
    "interruption": "interruption signal",
    "flush": "flush",
}


def event_markers(events: Iterable[Mapping[str, Any]], *, speech_start: bool = True) -> list[Marker]:
    """The moments worth marking on a plot, from recorded event dicts.

    ``speech_end`` (``UserSpeechEnded``, the recorder's energy detector), ``service_speech_end``
    (``ServiceSpeechEnded``, the service's ``userSpeechEnd`` as it arrived), ``decision`` (USER FINAL
    ``Transcript``), ``first_audio`` (the first ``AudioOutput`` of each reply), ``interruption``
    (``Interruption``), ``flush`` (``PlayerFlushed``, or ``PlaybackReported`` with ``final``) and,
    optionally, ``speech_start`` and ``service_speech_start`` (``ServiceSpeechStarted``).

    Returns
    -------
    list of Marker, sorted by time.
    """
    out: list[Marker] = []
    seen_audio: set[str] = set()
    # A reply may come as several AUDIO blocks, all but the last ending PARTIAL_TURN (§12): the next
    # block, with no turn decision between, is the same reply and gets no first-audio marker.
    continues = False
    for e in events:
        kind, t = e["kind"], e["t"]
        name: str | None = None
        cid = e.get("content_id")
        if kind == "ContentEnded" and e.get("type") == "AUDIO" and e.get("role") == "ASSISTANT":
            continues = e.get("stop_reason") == "PARTIAL_TURN"
        if kind == "UserSpeechStarted" and speech_start:
            name = "speech_start"
        elif kind == "UserSpeechEnded":
            name = "speech_end"
        elif kind == "ServiceSpeechStarted" and speech_start:
            name = "service_speech_start"
        elif kind == "ServiceSpeechEnded":
            name = "service_speech_end"
        elif kind == "Transcript" and e.get("role") == "USER" and e.get("stage") == "FINAL":
            name = "decision"
            continues = False
        elif kind == "AudioOutput" and str(cid) not in seen_audio:
            seen_audio.add(str(cid))
            name = None if continues else "first_audio"
            continues = False
        elif kind == "Interruption":
            name = "interruption"
        elif kind == "PlayerFlushed" or (kind == "PlaybackReported" and e.get("final")):
            name = "flush"
        if name is not None:
            out.append(Marker(float(t), _MARKER_LABELS[name], name, cid))
    out.sort(key=lambda m: m.t)
    return out


def recording_spectrograms(
    recording: Any,
    *,
    kind: Kind = "mel",
    t_range: tuple[float, float] | None = None,
    max_columns: int = 1200,
) -> tuple[list[tuple[str, Spectrogram]], tuple[float, float]]:
    """Spectrograms of a :class:`~nova_nb.analysis.recording.Recording`'s input and output.

    The input is taken where its samples lie in ``input.wav`` and the output as the simulated player
    played it (``output.wav``); both files are on the recording clock (docs/RECORDING.md).

    Parameters
    ----------
    recording : Recording
    kind : {"mel", "linear"}
    t_range : (float, float), optional
        Only this stretch of time (the audio is cut before the spectra are computed).
    max_columns : int
        Image width in columns for each stream.

    Returns
    -------
    streams : list of (str, Spectrogram)
        ``("user (in)", ...)`` and ``("assistant (out)", ...)``.
    t_range : (float, float)
        The stretch of time they cover.
    """
    t0, t1 = t_range if t_range is not None else (0.0, recording.duration_s)
    streams = []
    for title, pcm, rate in (
        ("user (in)", recording.input, recording.input_rate),
        ("assistant (out)", recording.output, recording.output_rate),
    ):
        a, b = max(0, int(t0 * rate)), max(0, math.ceil(t1 * rate))
        piece = np.asarray(pcm[a:b])
        if piece.size < b - a:
            piece = np.concatenate([piece, np.zeros(b - a - piece.size, dtype=piece.dtype)])
        streams.append(
            (title, spectrogram(piece, rate, kind=kind, max_columns=max_columns, t_offset=a / rate))
        )
    return streams, (t0, t1)
