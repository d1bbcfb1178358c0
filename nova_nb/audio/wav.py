"""WAV files: read, write, and write incrementally for long session recordings.

:func:`read_wav` reads integer PCM WAV (8, 16, 24 or 32-bit, including WAVE_FORMAT_EXTENSIBLE) through
the standard library's :mod:`wave`, and 32/64-bit IEEE float WAV through a small chunk reader of its own
(:mod:`wave` rejects float files). Everything comes back as int16, the format of this project; bits
beyond 16 are rounded away.

:class:`WavWriter` appends frames to disk as they come and rewrites the two size fields of the header on
every flush, so an hour-long recording never sits in memory and a crash leaves a valid file holding
everything up to the last flush.
"""

from __future__ import annotations

import os
import struct
import wave
from types import TracebackType
from typing import Final, Self

import numpy as np
import numpy.typing as npt

from nova_nb.audio.pcm import check_rate, float32_to_pcm16
from nova_nb.errors import AudioFormatError, StateError

__all__ = ["WavWriter", "read_wav", "write_wav"]

_WAVE_FORMAT_PCM: Final = 0x0001
_WAVE_FORMAT_IEEE_FLOAT: Final = 0x0003
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE
# The last 14 bytes of the KSDATAFORMAT_SUBTYPE GUIDs are shared; the first two bytes are the format tag.
_GUID_TAIL: Final = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_HEADER_BYTES: Final = 44
# RIFF sizes are unsigned 32-bit: the RIFF size field counts everything after its own 8 bytes.
_MAX_DATA_BYTES: Final = 0xFFFFFFFF - (_HEADER_BYTES - 8)

PathLike = str | os.PathLike[str]


def read_wav(path: PathLike) -> tuple[npt.NDArray[np.int16], int]:
    """Read a WAV file as int16.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    pcm : numpy.ndarray
        int16 samples: shape ``(n,)`` for mono, ``(n, channels)`` otherwise.
    rate : int
        The file's sample rate in Hz (not checked against any range: resample with
        :func:`~nova_nb.audio.to_pcm16_mono`).

    Raises
    ------
    AudioFormatError
        If the file is not a RIFF/WAVE file or uses an encoding other than integer PCM (8/16/24/32-bit)
        or IEEE float (32/64-bit), e.g. A-law, mu-law or ADPCM.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> write_wav(p, np.array([1, 2, 3], dtype=np.int16), 16000)
    >>> read_wav(p)
    (array([1, 2, 3], dtype=int16), 16000)
    """
    try:
        with wave.open(os.fspath(path), "rb") as wf:
            channels, width, rate, n_frames = (
                wf.getnchannels(),
                wf.getsampwidth(),
                wf.getframerate(),
                wf.getnframes(),
            )
            raw = wf.readframes(n_frames)
    except wave.Error as exc:
        # The stdlib reads only integer PCM; float files (tag 3, or EXTENSIBLE with the float GUID) get
        # our own reader, and anything else a message that says what would work.
        if "unknown format: 3" in str(exc) or "unknown extended format" in str(exc):
            return _read_float_wav(path)
        raise AudioFormatError(
            f"{os.fspath(path)!r} is not a WAV file this reader supports ({exc}); supported: integer PCM "
            "(8, 16, 24 or 32-bit) and IEEE float (32 or 64-bit)"
        ) from exc
    except EOFError as exc:
        raise AudioFormatError(f"{os.fspath(path)!r} is truncated before its audio data starts") from exc
    pcm = _int_pcm_to_int16(raw, width, channels)
    return (pcm if channels > 1 else pcm.reshape(-1)), rate


def _int_pcm_to_int16(raw: bytes, width: int, channels: int) -> npt.NDArray[np.int16]:
    """Decode little-endian integer PCM of ``width`` bytes to int16, shaped ``(n, channels)``."""
    usable = len(raw) - len(raw) % (width * channels)  # a crash can leave a partial last frame
    raw = raw[:usable]
    if width == 1:
        # 8-bit WAV is unsigned with its zero at 128.
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value & 0x800000, value - (1 << 24), value)
        samples = _round_shift(value, 8)
    elif width == 4:
        samples = _round_shift(np.frombuffer(raw, dtype="<i4").astype(np.int64), 16)
    else:
        raise AudioFormatError(f"WAV sample width must be 1, 2, 3 or 4 bytes; got {width}")
    return samples.reshape(-1, channels)


def _round_shift(values: npt.NDArray[np.signedinteger], bits: int) -> npt.NDArray[np.int16]:
    """Drop the low ``bits`` with rounding (plain truncation would bias every sample downwards)."""
    shifted = (values.astype(np.int64) + (1 << (bits - 1))) >> bits
    return np.clip(shifted, -32768, 32767).astype(np.int16)


def _read_float_wav(path: PathLike) -> tuple[npt.NDArray[np.int16], int]:
    """Read an IEEE-float WAV by walking its RIFF chunks."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError(f"{os.fspath(path)!r} is not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioFormatError(f"{os.fspath(path)!r} has a fmt chunk of {len(body)} bytes; need 16")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 40:
                sub = body[24:40]
                if sub[2:] == _GUID_TAIL:
                    tag = struct.unpack_from("<H", sub)[0]
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError(f"{os.fspath(path)!r} has its data chunk before its fmt chunk")
            tag, channels, rate, bits = fmt
            if tag != _WAVE_FORMAT_IEEE_FLOAT or bits not in (32, 64) or channels < 1:
                raise AudioFormatError(
                    f"{os.fspath(path)!r} uses format tag {tag} with {bits}-bit samples; supported: integer "
                    "PCM (8, 16, 24 or 32-bit) and IEEE float (32 or 64-bit)"
                )
            dtype = np.dtype("<f4") if bits == 32 else np.dtype("<f8")
            frame = dtype.itemsize * channels
            body = body[: len(body) - len(body) % frame]
            values = np.frombuffer(body, dtype=dtype).astype(np.float64)
            # Float WAVs from some tools carry NaN in silent gaps; treat them as silence, not an error.
            values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0)
            pcm = float32_to_pcm16(values).reshape(-1, channels)
            return (pcm if channels > 1 else pcm.reshape(-1)), rate
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    raise AudioFormatError(f"{os.fspath(path)!r} has no data chunk")


def write_wav(path: PathLike, pcm16: npt.NDArray[np.int16], rate: int) -> None:
    """Write int16 PCM to a 16-bit WAV file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; overwritten if it exists.
    pcm16 : numpy.ndarray
        int16 samples, ``(n,)`` for mono or ``(n, channels)`` with at most 8 channels.
    rate : int
        Sample rate in Hz (8000–192000).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> write_wav(pathlib.Path(tempfile.mkdtemp()) / "s.wav", np.zeros((10, 2), dtype=np.int16), 48000)
    """
    channels = _channels_of(pcm16)
    with WavWriter(path, rate, channels=channels, autoflush_s=None) as writer:
        writer.write(pcm16)


def _channels_of(pcm16: object) -> int:
    if not isinstance(pcm16, np.ndarray):
        extra = " (use numpy.asarray(..., dtype=numpy.int16))" if isinstance(pcm16, list | tuple) else ""
        raise AudioFormatError(f"pcm16 must be a numpy int16 array; got {type(pcm16).__name__}{extra}")
    if pcm16.ndim == 1:
        return 1
    if pcm16.ndim == 2 and 1 <= pcm16.shape[1] <= 8:
        return int(pcm16.shape[1])
    raise AudioFormatError(
        f"pcm16 must be (n,) for mono or (n, channels) with 1 to 8 channels; got shape {pcm16.shape}"
    )


class WavWriter:
    """Write a 16-bit PCM WAV file incrementally.

    Frames go to disk as they are written (through the file's buffer); the header's RIFF and data sizes
    are rewritten on every :meth:`flush`, on :meth:`close` and automatically every ``autoflush_s``
    seconds of audio. After any flush the file on disk is a complete, valid WAV holding all audio
    written so far; a crash loses at most what came after the last flush.

    Parameters
    ----------
    path : str or os.PathLike
        The file; created or truncated.
    rate : int
        Sample rate in Hz (8000–192000).
    channels : int
        Interleaved channels, 1 to 8.
    autoflush_s : float or None
        Flush after this many seconds of audio; ``None`` only flushes when asked and on close.

    Notes
    -----
    WAV sizes are 32-bit: one file holds at most 4 GiB of audio (about 37 hours of 16 kHz mono).
    Writing past that raises :class:`~nova_nb.errors.AudioFormatError`; start a new file. Not
    thread-safe: call it from one thread (or guard it with a lock).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "rec.wav"
    >>> with WavWriter(p, 16000) as w:
    ...     for _ in range(50):
    ...         w.write(np.zeros(320, dtype=np.int16))
    ...     w.duration_s
    1.0
    >>> read_wav(p)[0].shape
    (16000,)
    """

    def __init__(
        self, path: PathLike, rate: int, channels: int = 1, *, autoflush_s: float | None = 1.0
    ) -> None:
        self.rate = check_rate(rate, "rate")
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 8:
            raise AudioFormatError(f"channels must be an int from 1 to 8; got {channels!r}")
        if autoflush_s is not None and not autoflush_s > 0:
            raise AudioFormatError(
                f"autoflush_s must be a positive number of seconds or None; got {autoflush_s!r}"
            )
        self.channels = channels
        self.path = os.fspath(path)
        self._block = 2 * channels
        self._autoflush_bytes = (
            None if autoflush_s is None else max(1, round(autoflush_s * self.rate)) * self._block
        )
        self._data_bytes = 0
        self._unflushed = 0
        self._file = open(self.path, "wb")  # closed by close(); the class is the context manager
        self._file.write(self._header(0))
        self._file.flush()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.duration_s:.2f} s written"
        return f"WavWriter({self.path!r}, rate={self.rate}, channels={self.channels}, {state})"

    def _header(self, data_bytes: int) -> bytes:
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            _HEADER_BYTES - 8 + data_bytes,
            b"WAVE",
            b"fmt ",
            16,
            _WAVE_FORMAT_PCM,
            self.channels,
            self.rate,
            self.rate * self._block,
            self._block,
            16,
            b"data",
            data_bytes,
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._file.closed

    @property
    def frames_written(self) -> int:
        """Frames (samples per channel) written so far."""
        return self._data_bytes // self._block

    @property
    def duration_s(self) -> float:
        """Seconds of audio written so far."""
        return self.frames_written / self.rate

    def write(self, pcm16: npt.NDArray[np.int16] | bytes | bytearray | memoryview) -> None:
        """Append audio.

        Parameters
        ----------
        pcm16 : numpy.ndarray or bytes-like
            int16 samples -- ``(n,)`` for a mono writer, ``(n, channels)`` otherwise -- or interleaved
            16-bit little-endian bytes whose length is a multiple of ``2 * channels``.
        """
        if self.closed:
            raise StateError(f"cannot write to {self.path!r}: the WavWriter is closed; open a new one")
        if isinstance(pcm16, bytes | bytearray | memoryview):
            data = memoryview(pcm16).tobytes()
            if len(data) % self._block:
                raise AudioFormatError(
                    f"audio bytes must be a multiple of {self._block} bytes ({self.channels} channel(s) of "
                    f"16-bit samples); got {len(data)} bytes"
                )
        else:
            data = self._array_bytes(pcm16)
        if self._data_bytes + len(data) > _MAX_DATA_BYTES:
            raise AudioFormatError(
                f"a WAV file holds at most {_MAX_DATA_BYTES} bytes of audio; {self.path!r} has "
                f"{self._data_bytes} and this write adds {len(data)}: start a new file"
            )
        self._file.write(data)
        self._data_bytes += len(data)
        self._unflushed += len(data)
        if self._autoflush_bytes is not None and self._unflushed >= self._autoflush_bytes:
            self.flush()

    def _array_bytes(self, pcm16: object) -> bytes:
        if not isinstance(pcm16, np.ndarray) or pcm16.dtype.kind != "i" or pcm16.dtype.itemsize != 2:
            got = pcm16.dtype if isinstance(pcm16, np.ndarray) else type(pcm16).__name__
            raise AudioFormatError(
                f"pcm16 must be a numpy int16 array or PCM bytes; got {got} "
                "(convert floats in [-1, 1] with float32_to_pcm16)"
            )
        expected = "(n,)" if self.channels == 1 else f"(n, {self.channels})"
        ok = (pcm16.ndim == 1 and self.channels == 1) or (pcm16.ndim == 2 and pcm16.shape[1] == self.channels)
        if not ok:
            raise AudioFormatError(
                f"this WavWriter has {self.channels} channel(s), so pcm16 must have shape {expected}; "
                f"got {pcm16.shape}"
            )
        return np.ascontiguousarray(pcm16, dtype="<i2").tobytes()

    def flush(self, *, fsync: bool = False) -> None:
        """Push written audio to the OS and rewrite the header sizes to match it.

        Parameters
        ----------
        fsync : bool
            Also ask the OS to put the file on the storage device (survives a power cut, costs a few
            milliseconds).
        """
        if self.closed:
            return
        # Data first, then the header: the header must never claim bytes that are not yet in the file.
        self._file.flush()
        end = _HEADER_BYTES + self._data_bytes
        self._file.seek(4)
        self._file.write(struct.pack("<I", _HEADER_BYTES - 8 + self._data_bytes))
        self._file.seek(40)
        self._file.write(struct.pack("<I", self._data_bytes))
        self._file.seek(end)
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())
        self._unflushed = 0

    def close(self) -> None:
        """Flush and close the file. Calling it again does nothing."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A forgotten writer still leaves a valid file behind; errors at interpreter exit are moot.
        try:
            if not self._file.closed:
                self.close()
        except Exception:
            pass
