"""Encoding audio as the browser's WebM/Opus with PyAV (for tests and for saving recordings).

Decoding lives with the one audio loader, :func:`nova_nb.audio.decode_audio` (re-exported here).
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

from ..audio import decode_audio

__all__ = ["decode_audio", "encode_webm_opus"]


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
