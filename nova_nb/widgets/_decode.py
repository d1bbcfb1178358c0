"""Decoding compressed audio (the browser's WebM/Opus, Ogg, MP3, ...) with PyAV.

PyAV's wheels ship FFmpeg, so this needs no system packages; librosa cannot read WebM.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import AudioFormatError


def decode_audio(source: str | Path | bytes, *, target_rate: int = 16000) -> npt.NDArray[np.int16]:
    """Decode the first audio stream of a file or of encoded bytes to int16 mono at ``target_rate``.

    Parameters
    ----------
    source : str, Path or bytes
        A path, or the encoded bytes themselves (e.g. what ipywebrtc's AudioRecorder delivers).
    target_rate : int
        Output rate in Hz; FFmpeg's resampler converts (with its anti-aliasing filter).

    Raises
    ------
    AudioFormatError
        When the data holds no decodable audio.
    """
    import av

    container: av.container.InputContainer
    handle: str | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source)
    if isinstance(handle, io.BytesIO) and not source:
        raise AudioFormatError("no audio: the recording is empty")
    try:
        container = av.open(handle, mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise AudioFormatError(f"cannot decode audio ({exc})") from None
    chunks: list[npt.NDArray[np.int16]] = []
    try:
        if not container.streams.audio:
            raise AudioFormatError("the data holds no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=target_rate)
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
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


def encode_webm_opus(samples: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    """Encode int16 mono samples as WebM/Opus (48 kHz), as a browser's MediaRecorder does.

    For tests and for saving recordings in the format the browser produces.
    """
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = sample_rate
        for resampled in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
