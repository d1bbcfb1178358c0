"""nova_nb.audio.pcm: conversions, resampling, re-framing and the errors bad input gets."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import nova_nb.audio
import nova_nb.audio.levels
import nova_nb.audio.pcm
import nova_nb.audio.wav
from nova_nb.audio import (
    Reframer,
    StreamResampler,
    bytes_to_pcm16,
    duration_s,
    float32_to_pcm16,
    frame_samples,
    pcm16_to_bytes,
    pcm16_to_float32,
    silence,
    to_pcm16_mono,
)
from nova_nb.errors import AudioFormatError


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(pcm: np.ndarray, rate: int) -> float:
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize(
    "module", [nova_nb.audio, nova_nb.audio.pcm, nova_nb.audio.levels, nova_nb.audio.wav]
)
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


# ---------------------------------------------------------------- conversions


def test_int16_float_round_trip_is_exact() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    back = float32_to_pcm16(pcm16_to_float32(pcm))
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, pcm)


def test_float_to_pcm16_clips_and_rounds() -> None:
    out = float32_to_pcm16(np.array([2.0, -2.0, 1.0, 0.25, 1 / 65536], dtype=np.float64))
    np.testing.assert_array_equal(out, [32767, -32768, 32767, 8192, 0])


def test_bytes_round_trip_little_endian() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    data = pcm16_to_bytes(pcm)
    assert data == b"\x00\x00\x01\x00\xff\xff\xff\x7f\x00\x80"
    np.testing.assert_array_equal(bytes_to_pcm16(data), pcm)
    np.testing.assert_array_equal(bytes_to_pcm16(bytearray(data)), pcm)
    np.testing.assert_array_equal(bytes_to_pcm16(memoryview(data)), pcm)


def test_big_endian_int16_is_accepted() -> None:
    pcm = np.array([1, -2, 300], dtype=">i2")
    np.testing.assert_array_equal(to_pcm16_mono(pcm, target_rate=16000), [1, -2, 300])
    assert pcm16_to_bytes(pcm) == b"\x01\x00\xfe\xff\x2c\x01"


def test_bytes_to_pcm16_copies() -> None:
    data = bytearray(b"\x01\x00\x02\x00")
    pcm = bytes_to_pcm16(data)
    data[0] = 9
    assert pcm[0] == 1
    pcm[1] = 5  # writable


def test_silence_and_duration() -> None:
    assert silence(0.5, 24000).shape == (12000,)
    assert silence(0, 16000).size == 0
    assert not silence(0.1, 8000).any()
    assert duration_s(8000, 16000) == 0.5
    assert duration_s(b"\x00" * 32000, 16000) == 1.0
    assert duration_s(np.zeros((480, 2), dtype=np.int16), 48000) == 0.01


@pytest.mark.parametrize(
    ("rate", "ms", "expected"),
    [
        (16000, 20, 320),
        (16000, 32, 512),
        (24000, 20, 480),
        (8000, 10, 80),
        (44100, 10, 441),
        (16000, 100, 1600),
    ],
)
def test_frame_samples(rate: int, ms: float, expected: int) -> None:
    assert frame_samples(rate, ms) == expected


# ---------------------------------------------------------------- to_pcm16_mono


def test_to_pcm16_mono_passes_through_int16_at_target_rate() -> None:
    pcm = np.array([5, -5, 7], dtype=np.int16)
    out = to_pcm16_mono(pcm, target_rate=16000)
    np.testing.assert_array_equal(out, pcm)
    out[0] = 0
    assert pcm[0] == 5  # a copy, never a view of the caller's data


def test_to_pcm16_mono_bytes_use_input_rate_default() -> None:
    data = pcm16_to_bytes(float32_to_pcm16(sine(440, 48000, 0.5)))
    out = to_pcm16_mono(data, target_rate=16000, input_rate_default=48000)
    assert len(out) == 8000
    out2 = to_pcm16_mono(memoryview(data), sample_rate=48000, target_rate=16000, input_rate_default=8000)
    np.testing.assert_array_equal(out, out2)


def test_to_pcm16_mono_downmixes_both_layouts() -> None:
    left = sine(300, 16000, 0.25, 0.4)
    stereo_n_ch = np.stack([left, -left], axis=1)  # cancels out
    assert not to_pcm16_mono(stereo_n_ch, target_rate=16000).any()
    stereo_same = np.stack([left, left], axis=1)
    np.testing.assert_array_equal(
        to_pcm16_mono(stereo_same, target_rate=16000), to_pcm16_mono(left, target_rate=16000)
    )
    # librosa layout (channels, samples) gives the same result.
    np.testing.assert_array_equal(
        to_pcm16_mono(stereo_same.T, target_rate=16000), to_pcm16_mono(left, target_rate=16000)
    )


def test_to_pcm16_mono_int16_stereo_mean_is_exact() -> None:
    pcm = np.array([[32767, 32767], [-32768, -32768], [100, 200]], dtype=np.int16)
    np.testing.assert_array_equal(to_pcm16_mono(pcm, target_rate=16000), [32767, -32768, 150])


def test_to_pcm16_mono_ambiguous_small_shape_is_samples_by_channels() -> None:
    pcm = np.arange(8, dtype=np.int16).reshape(4, 2) * 100
    assert to_pcm16_mono(pcm, target_rate=16000).shape == (4,)


def test_to_pcm16_mono_empty() -> None:
    for empty in (b"", np.zeros(0, np.int16), np.zeros((0, 2), np.float32), np.zeros(0, np.float64)):
        out = to_pcm16_mono(empty, sample_rate=48000, target_rate=16000)
        assert out.dtype == np.int16
        assert out.shape == (0,)


def test_float_input_is_clipped() -> None:
    out = to_pcm16_mono(np.array([3.0, -3.0], dtype=np.float32), target_rate=16000)
    np.testing.assert_array_equal(out, [32767, -32768])


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (16000, 24000), (22050, 8000), (44100, 16000)])
def test_resampling_preserves_sine_frequency(src: int, dst: int) -> None:
    freq = 1000.0
    out = to_pcm16_mono(sine(freq, src, 1.0), sample_rate=src, target_rate=dst)
    assert abs(len(out) - dst) <= 1
    assert abs(peak_frequency(out, dst) - freq) <= 2.0
    # Level is kept: 0.5 amplitude sine has RMS 0.354 of full scale.
    rms = np.sqrt(np.mean((out[dst // 10 : -dst // 10].astype(np.float64) / 32768) ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_downsampling_removes_content_above_nyquist() -> None:
    # 7 kHz cannot exist at 8 kHz; a good filter removes it instead of aliasing it to 1 kHz.
    out = to_pcm16_mono(sine(7000, 48000, 1.0, 0.9), sample_rate=48000, target_rate=8000)
    assert np.abs(out[800:-800]).max() < 100


# ---------------------------------------------------------------- StreamResampler


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (16000, 24000), (22050, 16000), (44100, 16000)])
def test_stream_resampler_matches_one_shot(src: int, dst: int) -> None:
    x = float32_to_pcm16(sine(440, src, 1.0) + sine(2500, src, 1.0, 0.2))
    one_shot = to_pcm16_mono(x, sample_rate=src, target_rate=dst)
    rs = StreamResampler(src, dst)
    rng = np.random.default_rng(1)
    pieces = []
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 1500))
        pieces.append(rs.process(x[pos : pos + n]))
        pos += n
    pieces.append(rs.process(np.zeros(0, np.int16), last=True))
    chunked = np.concatenate(pieces)
    assert abs(len(chunked) - len(one_shot)) <= 1
    n = min(len(chunked), len(one_shot))
    diff = np.abs(chunked[:n].astype(np.int32) - one_shot[:n].astype(np.int32))
    assert diff.max() <= 2, diff.max()


def test_stream_resampler_has_no_clicks_at_boundaries() -> None:
    # Chunk-by-chunk one-shot resampling leaves edge transients; the stream must not.
    x = float32_to_pcm16(sine(440, 48000, 0.5))
    rs = StreamResampler(48000, 16000)
    out = np.concatenate([rs.process(x[i : i + 960]) for i in range(0, len(x), 960)])
    steps = np.abs(np.diff(out[200:].astype(np.int32)))
    # The largest step between samples of a 440 Hz sine at half scale and 16 kHz: 2 pi 440 / 16000 * 16384.
    assert steps.max() < 2 * np.pi * 440 / 16000 * 16384 * 1.1


def test_stream_resampler_same_rate_passthrough_and_reset() -> None:
    rs = StreamResampler(16000, 16000)
    x = np.arange(10, dtype=np.int16)
    np.testing.assert_array_equal(rs.process(x), x)
    rs2 = StreamResampler(16000, 8000)
    rs2.process(np.ones(1000, np.int16) * 1000)
    rs2.reset()
    assert rs2.process(np.zeros(1000, np.int16), last=True).max() == 0
    assert "16000" in repr(rs2)


def test_stream_resampler_rejects_bad_chunks() -> None:
    rs = StreamResampler(48000, 16000)
    with pytest.raises(AudioFormatError, match="dtype int16"):
        rs.process(np.zeros(10, np.float32))  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="1-D"):
        rs.process(np.zeros((10, 2), np.int16))
    with pytest.raises(AudioFormatError, match=r"numpy\.asarray"):
        rs.process([1, 2, 3])  # type: ignore[arg-type]


# ---------------------------------------------------------------- Reframer


def test_reframer_keeps_every_sample_across_odd_chunk_sizes() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-32768, 32767, 10_000, dtype=np.int16)
    rf = Reframer(320)
    frames: list[bytes] = []
    pos = 0
    for n in [0, 1, 319, 320, 321, 639, 640, 641, 7]:
        frames += rf.push(x[pos : pos + n])
        pos += n
    frames += rf.push(pcm16_to_bytes(x[pos:]))  # bytes work too
    assert all(len(f) == 640 for f in frames)
    assert rf.pending == len(x) - 320 * len(frames)
    assert 0 < rf.pending < 320
    tail = rf.flush(pad=False)
    assert len(tail) == 1 and len(tail[0]) == 2 * (len(x) % 320)
    np.testing.assert_array_equal(bytes_to_pcm16(b"".join(frames + tail)), x)
    assert rf.pending == 0
    assert rf.flush() == []


def test_reframer_exact_boundaries_and_padding() -> None:
    rf = Reframer(4)
    assert rf.push(np.arange(4, dtype=np.int16)) == [pcm16_to_bytes(np.arange(4, dtype=np.int16))]
    assert rf.pending == 0
    assert rf.push(np.array([9], dtype=np.int16)) == []
    (padded,) = rf.flush()
    np.testing.assert_array_equal(bytes_to_pcm16(padded), [9, 0, 0, 0])
    rf.push(np.array([1, 2], dtype=np.int16))
    rf.clear()
    assert rf.pending == 0


def test_reframer_rejects_bad_input() -> None:
    with pytest.raises(AudioFormatError, match="frame_samples must be an int >= 1; got 0"):
        Reframer(0)
    rf = Reframer(320)
    with pytest.raises(AudioFormatError, match="even length"):
        rf.push(b"\x00\x00\x00")
    with pytest.raises(AudioFormatError, match="dtype int16"):
        rf.push(np.zeros(3, dtype=np.int32))  # type: ignore[arg-type]


# ---------------------------------------------------------------- errors say what was wrong and what is valid


BAD_INPUTS = [
    (b"\x00" * 641, {}, r"even length \(16-bit samples\); got 641 bytes"),
    (bytearray(3), {}, r"even length.*got 3 bytes"),
    ([0.0, 0.1], {}, r"got a list \(use numpy\.asarray"),
    ((1, 2), {}, r"got a tuple \(use numpy\.asarray"),
    ("abc", {}, r"bytes, bytearray, memoryview or a numpy int16/float32/float64 array; got str"),
    (None, {}, r"got NoneType"),
    (np.zeros(4, np.int32), {}, r"dtype int16, float32 or float64; got int32"),
    (np.zeros(4, np.uint8), {}, r"got uint8"),
    (np.zeros(4, np.float16), {}, r"got float16"),
    (np.zeros(4, np.complex64), {}, r"got complex64"),
    (np.zeros(4, object), {}, r"got object"),
    (np.zeros(4, bool), {}, r"got bool"),
    (np.array([0.0, np.nan], np.float32), {}, r"finite.*1 NaN or infinite value\(s\) among 2 samples"),
    (np.array([np.inf, 0.0, -np.inf]), {}, r"2 NaN or infinite"),
    (np.zeros((2, 2, 2), np.int16), {}, r"1-D \(mono\) or 2-D.*got 3-D shape \(2, 2, 2\)"),
    (np.int16(3), {}, r"array of samples; got a single numpy int16 scalar \(0-D\)"),
    (np.array(3, np.int16), {}, r"got 0-D shape \(\)"),
    (np.zeros((100, 20), np.float32), {}, r"at most 8 channels; got shape \(100, 20\)"),
    (np.zeros(4, np.int16), {"sample_rate": 4000}, r"sample_rate must be from 8000 to 192000 Hz; got 4000"),
    (np.zeros(4, np.int16), {"sample_rate": 200_000}, r"got 200000"),
    (np.zeros(4, np.int16), {"sample_rate": 16000.0}, r"must be an int .* got float 16000\.0 \(use int"),
    (np.zeros(4, np.int16), {"sample_rate": "16000"}, r"must be an int from 8000 to 192000 Hz; got str"),
    (np.zeros(4, np.int16), {"sample_rate": True}, r"must be an int .*got bool"),
    (np.zeros(4, np.int16), {"target_rate": 7999}, r"target_rate must be from 8000 to 192000 Hz; got 7999"),
    (np.zeros(4, np.int16), {"input_rate_default": 1}, r"input_rate_default must be from 8000"),
]


@pytest.mark.parametrize(("audio", "kwargs", "message"), BAD_INPUTS)
def test_to_pcm16_mono_rejects_with_helpful_message(audio: object, kwargs: dict, message: str) -> None:
    options = {"target_rate": 16000, **kwargs}
    with pytest.raises(AudioFormatError, match=message) as info:
        to_pcm16_mono(audio, **options)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_numpy_integer_rates_are_accepted() -> None:
    out = to_pcm16_mono(np.zeros(480, np.int16), sample_rate=np.int64(48000), target_rate=np.int32(16000))
    assert out.shape == (160,)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: frame_samples(16000, 5), r"frame_ms must be from 10 to 100 ms; got 5"),
        (lambda: frame_samples(16000, 101), r"from 10 to 100 ms; got 101"),
        (lambda: frame_samples(16000, float("nan")), r"from 10 to 100 ms; got nan"),
        (
            lambda: frame_samples(22050, 15),
            r"330\.75 samples; it must give a whole number \(e\.g\. 20 ms -> 441",
        ),
        (lambda: frame_samples(16000, 20.03), r"320\.48 samples"),
        (lambda: frame_samples(16000, "20"), r"frame_ms must be a number from 10 to 100; got str"),
        (lambda: frame_samples(1000, 20), r"rate must be from 8000 to 192000 Hz; got 1000"),
        (lambda: silence(-1, 16000), r"duration_s must be a finite number of seconds >= 0; got -1"),
        (lambda: silence(float("inf"), 16000), r"finite"),
        (lambda: silence("1", 16000), r"number of seconds >= 0; got str"),
        (lambda: duration_s(b"\x00", 16000), r"even length"),
        (lambda: duration_s(-3, 16000), r"sample count must be >= 0; got -3"),
        (lambda: duration_s(1.5, 16000), r"sample count \(int\), PCM bytes or a numpy array; got float"),
        (lambda: bytes_to_pcm16("ab"), r"bytes, bytearray or memoryview; got str"),
        (lambda: bytes_to_pcm16(b"\x00\x00\x00"), r"even length \(16-bit samples\); got 3 bytes"),
        (lambda: pcm16_to_float32(np.zeros(3, np.float32)), r"int16 array; got float32"),
        (lambda: float32_to_pcm16(np.zeros(3, np.int16)), r"float32 or float64 array; got int16"),
        (lambda: float32_to_pcm16(np.array([np.nan])), r"NaN or infinite"),
        (lambda: pcm16_to_bytes(np.zeros((3, 2), np.int16)), r"1-D \(mono samples\); got shape \(3, 2\)"),
        (lambda: StreamResampler(16000, 100), r"to_rate must be from 8000 to 192000 Hz; got 100"),
    ],
)
def test_helpers_reject_with_helpful_message(call: object, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        call()  # type: ignore[operator]
