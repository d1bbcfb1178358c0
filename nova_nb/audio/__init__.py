"""Audio helpers: 16-bit PCM conversion, resampling, framing, levels, speech by level, loading, WAV files.

Small functions over numpy arrays, in the spirit of librosa. PCM is ``numpy.int16``, mono and native
byte order; float audio has full scale ±1.0; bad input raises :class:`nova_nb.errors.AudioFormatError`
(also a ``ValueError``) saying what was wrong and what would be valid.

Examples
--------
>>> import numpy as np
>>> from nova_nb import audio
>>> stereo_48k = np.zeros((4800, 2), dtype=np.float32)            # 100 ms from a sound card
>>> pcm = audio.to_pcm16_mono(stereo_48k, sample_rate=48000, target_rate=16000)
>>> frames = audio.Reframer(audio.frame_samples(16000, 20)).push(pcm)
>>> len(frames), len(frames[0])                                  # five 20 ms frames of 640 bytes
(5, 640)
"""

from nova_nb.audio.levels import DBFS_FLOOR, is_silent, peak_dbfs, rms_dbfs
from nova_nb.audio.load import decode_audio, load_audio
from nova_nb.audio.pcm import (
    FRAME_MS_MAX,
    FRAME_MS_MIN,
    MAX_CHANNELS,
    MAX_RATE,
    MIN_RATE,
    Reframer,
    StreamResampler,
    bytes_to_pcm16,
    check_pcm16,
    check_rate,
    duration_s,
    float32_to_pcm16,
    frame_samples,
    pcm16_to_bytes,
    pcm16_to_float32,
    silence,
    to_pcm16_mono,
)
from nova_nb.audio.speech import DEFAULT_SPEECH_DBFS, EnergySpeechDetector
from nova_nb.audio.wav import WavWriter, read_wav, write_wav

__all__ = [
    "DBFS_FLOOR",
    "DEFAULT_SPEECH_DBFS",
    "FRAME_MS_MAX",
    "FRAME_MS_MIN",
    "MAX_CHANNELS",
    "MAX_RATE",
    "MIN_RATE",
    "EnergySpeechDetector",
    "Reframer",
    "StreamResampler",
    "WavWriter",
    "bytes_to_pcm16",
    "check_pcm16",
    "check_rate",
    "decode_audio",
    "duration_s",
    "float32_to_pcm16",
    "frame_samples",
    "is_silent",
    "load_audio",
    "pcm16_to_bytes",
    "pcm16_to_float32",
    "peak_dbfs",
    "read_wav",
    "rms_dbfs",
    "silence",
    "to_pcm16_mono",
    "write_wav",
]
