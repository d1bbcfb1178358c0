"""Signal levels in dBFS: RMS, peak and a silence test.

Full scale is 32768 for int16 and 1.0 for float arrays, so a full-scale square wave is 0 dBFS and a
full-scale sine has an RMS of about -3.01 dBFS (this is the plain RMS convention, not AES17's, which
adds 3 dB so that a sine reads 0). Digital silence has no finite level in decibels; these functions
return :data:`DBFS_FLOOR` instead of ``-inf`` so results can be averaged, plotted and compared.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from nova_nb.audio.pcm import bytes_to_pcm16
from nova_nb.errors import AudioFormatError

__all__ = ["DBFS_FLOOR", "is_silent", "peak_dbfs", "rms_dbfs"]

#: The level reported for silence and for anything quieter (int16's quantisation floor is about -101 dBFS).
DBFS_FLOOR: Final = -120.0


def _as_unit_float(pcm: object) -> npt.NDArray[np.float64]:
    """Return samples as float64 with full scale 1.0, whatever the accepted input type."""
    if isinstance(pcm, bytes | bytearray | memoryview):
        pcm = bytes_to_pcm16(pcm)
    if isinstance(pcm, list | tuple):
        raise AudioFormatError(
            f"pcm must be a numpy array or PCM bytes; got a {type(pcm).__name__} (use numpy.asarray(...))"
        )
    if not isinstance(pcm, np.ndarray):
        raise AudioFormatError(
            f"pcm must be a numpy int16/float32/float64 array or PCM bytes; got {type(pcm).__name__}"
        )
    if pcm.dtype.kind == "i" and pcm.dtype.itemsize == 2:
        # float64 holds -32768 exactly; taking abs() in int16 would overflow.
        return pcm.astype(np.float64) / 32768.0
    if pcm.dtype in (np.float32, np.float64):
        values = pcm.astype(np.float64)
        if not np.isfinite(values).all():
            raise AudioFormatError("float audio must be finite (full scale is -1.0 to 1.0); got NaN or inf")
        return values
    raise AudioFormatError(f"pcm must have dtype int16, float32 or float64; got {pcm.dtype}")


def _to_db(amplitude: float) -> float:
    if amplitude <= 0.0:
        return DBFS_FLOOR
    return max(DBFS_FLOOR, 20.0 * math.log10(amplitude))


def rms_dbfs(pcm: npt.NDArray[np.generic] | bytes | bytearray | memoryview) -> float:
    """Root-mean-square level in dBFS.

    Parameters
    ----------
    pcm : numpy.ndarray or bytes-like
        int16 samples (full scale 32768), float samples (full scale 1.0), or 16-bit LE PCM bytes. All
        channels of a multichannel array count alike.

    Returns
    -------
    float
        Level in dBFS, never below :data:`DBFS_FLOOR` (-120); empty or all-zero input gives the floor.

    Examples
    --------
    >>> round(rms_dbfs(np.full(100, 16384, dtype=np.int16)), 2)
    -6.02
    >>> rms_dbfs(np.zeros(100, dtype=np.int16))
    -120.0
    """
    values = _as_unit_float(pcm)
    if values.size == 0:
        return DBFS_FLOOR
    return _to_db(float(np.sqrt(np.mean(np.square(values)))))


def peak_dbfs(pcm: npt.NDArray[np.generic] | bytes | bytearray | memoryview) -> float:
    """Peak (largest absolute sample) level in dBFS.

    Parameters
    ----------
    pcm : numpy.ndarray or bytes-like
        As for :func:`rms_dbfs`.

    Returns
    -------
    float
        Level in dBFS, never below :data:`DBFS_FLOOR`. ``-32768`` in int16 is exactly 0 dBFS.

    Examples
    --------
    >>> peak_dbfs(np.array([0, -32768], dtype=np.int16))
    0.0
    """
    values = _as_unit_float(pcm)
    if values.size == 0:
        return DBFS_FLOOR
    return _to_db(float(np.max(np.abs(values))))


def is_silent(
    pcm: npt.NDArray[np.generic] | bytes | bytearray | memoryview, threshold_dbfs: float = -50.0
) -> bool:
    """Whether the RMS level is below a threshold.

    Parameters
    ----------
    pcm : numpy.ndarray or bytes-like
        As for :func:`rms_dbfs`.
    threshold_dbfs : float
        Level in dBFS under which audio counts as silent. -50 dBFS is below quiet speech picked up by a
        laptop microphone and above the hiss of most of them.

    Returns
    -------
    bool
        ``True`` when ``rms_dbfs(pcm) < threshold_dbfs``; empty audio is silent.

    Examples
    --------
    >>> is_silent(np.zeros(320, dtype=np.int16))
    True
    >>> is_silent(np.full(320, 1000, dtype=np.int16))
    False
    """
    if isinstance(threshold_dbfs, bool) or not isinstance(threshold_dbfs, int | float):
        raise AudioFormatError(
            f"threshold_dbfs must be a number of dBFS; got {type(threshold_dbfs).__name__}"
        )
    if not math.isfinite(threshold_dbfs) or threshold_dbfs > 0:
        raise AudioFormatError(f"threshold_dbfs must be a finite level <= 0 dBFS; got {threshold_dbfs!r}")
    return rms_dbfs(pcm) < threshold_dbfs
