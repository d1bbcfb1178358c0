"""nova_nb.audio.load: the one loader (WAV, PyAV containers, bytes, arrays) to int16 mono."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nova_nb.audio import load_audio, write_wav
from nova_nb.errors import AudioFormatError, ConfigError


def sine(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_wav_file_resampled_to_the_target_rate(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, np.stack([sine(48000)] * 2, axis=1), 48000)  # stereo 48 kHz
    out = load_audio(path, target_rate=16000)
    assert out.dtype == np.int16 and out.shape == (8000,)
    assert load_audio(str(path), target_rate=16000).shape == (8000,)
    # WAV bytes need no PyAV either.
    assert load_audio(path.read_bytes(), target_rate=16000).shape == (8000,)


def test_arrays_and_raw_pcm_need_their_rate() -> None:
    assert load_audio(sine(24000), sample_rate=24000, target_rate=16000).shape == (8000,)
    assert load_audio(sine(16000).tobytes(), sample_rate=16000).shape == (8000,)
    with pytest.raises(ConfigError, match="numpy array needs sample_rate"):
        load_audio(sine(16000))


def test_webm_through_pyav() -> None:
    pytest.importorskip("av")
    from nova_nb.widgets import encode_webm_opus

    out = load_audio(encode_webm_opus(sine(16000, 1.0), 16000), target_rate=16000)
    assert out.dtype == np.int16 and abs(out.size - 16000) < 1000


def test_errors_name_what_was_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(ConfigError, match="got int"):
        load_audio(3)  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match=r"cannot decode audio|PyAV"):
        load_audio(b"not audio at all")
