"""nova_nb.audio.levels: dBFS measurements."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nova_nb.audio import DBFS_FLOOR, is_silent, pcm16_to_bytes, peak_dbfs, rms_dbfs
from nova_nb.errors import AudioFormatError


def test_full_scale_sine_rms_is_minus_3_dbfs() -> None:
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 1000 * t)
    assert rms_dbfs(x) == pytest.approx(-3.0103, abs=0.01)
    pcm = np.round(x * 32767).astype(np.int16)
    assert rms_dbfs(pcm) == pytest.approx(-3.0103, abs=0.01)
    assert rms_dbfs(pcm16_to_bytes(pcm)) == pytest.approx(rms_dbfs(pcm))
    assert peak_dbfs(pcm) == pytest.approx(20 * math.log10(32767 / 32768))


def test_silence_hits_the_floor_not_minus_inf() -> None:
    for quiet in (np.zeros(100, np.int16), np.zeros(0, np.int16), b"", np.zeros(10, np.float32)):
        assert rms_dbfs(quiet) == DBFS_FLOOR
        assert peak_dbfs(quiet) == DBFS_FLOOR
        assert is_silent(quiet)
    assert rms_dbfs(np.full(10, 1e-9)) == DBFS_FLOOR


def test_int16_minimum_does_not_overflow() -> None:
    assert peak_dbfs(np.array([-32768], np.int16)) == 0.0
    assert rms_dbfs(np.array([-32768], np.int16)) == 0.0


def test_is_silent_threshold() -> None:
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(16000) * 10).astype(np.int16)  # about -70 dBFS
    assert is_silent(hiss)
    assert not is_silent(hiss, threshold_dbfs=-80)
    speechlike = (rng.standard_normal(16000) * 2000).astype(np.int16)  # about -24 dBFS
    assert not is_silent(speechlike)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rms_dbfs([1, 2]), r"got a list \(use numpy\.asarray"),
        (lambda: rms_dbfs(np.zeros(3, np.int32)), r"int16, float32 or float64; got int32"),
        (lambda: rms_dbfs(np.array([np.nan])), r"finite"),
        (lambda: peak_dbfs(b"\x00"), r"even length"),
        (lambda: peak_dbfs("x"), r"numpy int16/float32/float64 array or PCM bytes; got str"),
        (lambda: is_silent(np.zeros(3, np.int16), threshold_dbfs=3), r"<= 0 dBFS; got 3"),
        (lambda: is_silent(np.zeros(3, np.int16), threshold_dbfs="-50"), r"number of dBFS; got str"),
    ],
)
def test_levels_reject_with_helpful_message(call: object, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        call()  # type: ignore[operator]
