"""nova_nb.audio.wav: reading, writing, and the incremental writer's crash safety."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest

from nova_nb.audio import WavWriter, read_wav, write_wav
from nova_nb.errors import AudioFormatError, StateError


def make_wav(path: Path, tag: int, bits: int, channels: int, rate: int, payload: bytes) -> None:
    """Write a WAV with an arbitrary format tag, the way other tools do, without our writer."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 5) + b"hello" + b"\x00"  # odd-sized chunk with pad byte
    body += b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_mono_and_stereo_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mono = rng.integers(-32768, 32767, 1000, dtype=np.int16)
    write_wav(tmp_path / "m.wav", mono, 16000)
    pcm, rate = read_wav(tmp_path / "m.wav")
    assert rate == 16000 and pcm.dtype == np.int16
    np.testing.assert_array_equal(pcm, mono)

    stereo = rng.integers(-32768, 32767, (500, 2), dtype=np.int16)
    write_wav(str(tmp_path / "s.wav"), stereo, 48000)
    pcm, rate = read_wav(str(tmp_path / "s.wav"))
    assert rate == 48000 and pcm.shape == (500, 2)
    np.testing.assert_array_equal(pcm, stereo)
    with wave.open(str(tmp_path / "s.wav")) as wf:  # the stdlib agrees with the header
        assert (wf.getnchannels(), wf.getsampwidth(), wf.getframerate(), wf.getnframes()) == (
            2,
            2,
            48000,
            500,
        )


def test_empty_file_round_trip(tmp_path: Path) -> None:
    write_wav(tmp_path / "e.wav", np.zeros(0, np.int16), 24000)
    pcm, rate = read_wav(tmp_path / "e.wav")
    assert pcm.shape == (0,) and rate == 24000


def test_reads_24_and_32_bit_int(tmp_path: Path) -> None:
    values = np.array([0, 1 << 22, -(1 << 22), (1 << 23) - 1, -(1 << 23), 127, 128], dtype=np.int64)
    payload = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    make_wav(tmp_path / "24.wav", 1, 24, 1, 44100, payload)
    pcm, rate = read_wav(tmp_path / "24.wav")
    assert rate == 44100
    np.testing.assert_array_equal(pcm, [0, 16384, -16384, 32767, -32768, 0, 1])

    v32 = np.array([0, 1 << 30, -(1 << 31), (1 << 31) - 1], dtype="<i4")
    make_wav(tmp_path / "32.wav", 1, 32, 2, 16000, v32.tobytes())
    pcm, _ = read_wav(tmp_path / "32.wav")
    np.testing.assert_array_equal(pcm, [[0, 16384], [-32768, 32767]])


def test_reads_8_bit_unsigned(tmp_path: Path) -> None:
    make_wav(tmp_path / "8.wav", 1, 8, 1, 8000, bytes([128, 0, 255]))
    pcm, _ = read_wav(tmp_path / "8.wav")
    np.testing.assert_array_equal(pcm, [0, -32768, 127 << 8])


def test_reads_float32_and_float64(tmp_path: Path) -> None:
    x = np.array([0.0, 0.5, -1.0, 1.5, np.nan], dtype="<f4")
    make_wav(tmp_path / "f32.wav", 3, 32, 1, 22050, x.tobytes())
    pcm, rate = read_wav(tmp_path / "f32.wav")
    assert rate == 22050
    np.testing.assert_array_equal(pcm, [0, 16384, -32768, 32767, 0])

    x64 = np.array([[0.25, -0.25]], dtype="<f8")
    make_wav(tmp_path / "f64.wav", 3, 64, 2, 16000, x64.tobytes())
    np.testing.assert_array_equal(read_wav(tmp_path / "f64.wav")[0], [[8192, -8192]])


def test_reads_extensible_float(tmp_path: Path) -> None:
    x = np.array([0.5, -0.5], dtype="<f4")
    guid = struct.pack("<H", 3) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 16000, 64000, 4, 32, 22, 32, 4) + guid
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 8) + x.tobytes()
    )
    (tmp_path / "ext.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    np.testing.assert_array_equal(read_wav(tmp_path / "ext.wav")[0], [16384, -16384])


def test_unsupported_files_say_what_is_supported(tmp_path: Path) -> None:
    make_wav(tmp_path / "alaw.wav", 6, 8, 1, 8000, b"\x00" * 10)
    with pytest.raises(AudioFormatError, match=r"integer PCM \(8, 16, 24 or 32-bit\) and IEEE float"):
        read_wav(tmp_path / "alaw.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(AudioFormatError, match="supported"):
        read_wav(tmp_path / "junk.wav")
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="numpy int16 array; got list"):
        write_wav(tmp_path / "x.wav", [1, 2], 16000)  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="numpy int16 array or PCM bytes; got float32"):
        write_wav(tmp_path / "x.wav", np.zeros(3, np.float32), 16000)  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match=r"1 to 8 channels; got shape \(3, 9\)"):
        write_wav(tmp_path / "x.wav", np.zeros((3, 9), np.int16), 16000)
    with pytest.raises(AudioFormatError, match="rate must be from 8000"):
        write_wav(tmp_path / "x.wav", np.zeros(3, np.int16), 100)
    with (
        WavWriter(tmp_path / "y.wav", 16000, channels=2) as w,
        pytest.raises(AudioFormatError, match=r"\(n, 2\)"),
    ):
        w.write(np.zeros(4, np.int16))
    with (
        WavWriter(tmp_path / "z.wav", 16000, channels=2) as w,
        pytest.raises(AudioFormatError, match="multiple of 4"),
    ):
        w.write(b"\x00" * 6)
    with pytest.raises(AudioFormatError, match="channels must be an int from 1 to 8"):
        WavWriter(tmp_path / "c.wav", 16000, channels=0)
    w = WavWriter(tmp_path / "closed.wav", 16000)
    w.close()
    w.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        w.write(np.zeros(3, np.int16))


def _frames_on_disk(path: Path) -> tuple[int, bytes]:
    # Read a copy, as another process would while the writer still has the file open.
    copy = path.with_suffix(".copy.wav")
    shutil.copyfile(path, copy)
    with wave.open(str(copy)) as wf:
        return wf.getnframes(), wf.readframes(wf.getnframes())


def test_incremental_writer_header_is_valid_after_each_flush(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    rng = np.random.default_rng(2)
    written: list[np.ndarray] = []
    with WavWriter(path, 16000, autoflush_s=None) as w:
        assert _frames_on_disk(path)[0] == 0  # valid (empty) from the start
        for i in range(5):
            chunk = rng.integers(-1000, 1000, 320 * (i + 1), dtype=np.int16)
            w.write(chunk)
            written.append(chunk)
            w.flush(fsync=(i == 4))
            n, data = _frames_on_disk(path)
            assert n == sum(len(c) for c in written) == w.frames_written
            np.testing.assert_array_equal(np.frombuffer(data, "<i2"), np.concatenate(written))
        # Written but not flushed: the header still describes exactly the flushed audio.
        w.write(np.ones(100, np.int16))
        assert _frames_on_disk(path)[0] == sum(len(c) for c in written)
    assert read_wav(path)[0].shape == (sum(len(c) for c in written) + 100,)


def test_incremental_writer_autoflushes(tmp_path: Path) -> None:
    path = tmp_path / "auto.wav"
    w = WavWriter(path, 16000, autoflush_s=0.1)
    for _ in range(10):
        w.write(np.zeros(160, np.int16))  # 10 ms each
    assert _frames_on_disk(path)[0] == 1600
    assert w.duration_s == pytest.approx(0.1)
    w.close()
    assert "closed" in repr(w)


def test_incremental_writer_survives_a_crash(tmp_path: Path) -> None:
    # A real crash: the child flushes 1 s, writes more, and dies without closing or running finalizers.
    path = tmp_path / "crash.wav"
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from nova_nb.audio import WavWriter
        w = WavWriter({str(path)!r}, 16000, autoflush_s=None)
        w.write(np.full(16000, 7, np.int16))
        w.flush()
        w.write(np.full(8000, 9, np.int16))
        os._exit(3)
        """
    )
    repo = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run([sys.executable, "-c", script], check=False, timeout=60, env=env)
    assert result.returncode == 3
    pcm, rate = read_wav(path)
    assert rate == 16000
    assert pcm.shape == (16000,)
    assert (pcm == 7).all()


def test_incremental_writer_does_not_hold_audio_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    frame = np.zeros(16000, np.int16)  # 1 s
    tracemalloc.start()
    with WavWriter(tmp_path / "long.wav", 16000) as w:
        for _ in range(300):  # 5 minutes, 9.6 MB on disk
            w.write(frame)
        _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (tmp_path / "long.wav").stat().st_size == 44 + 300 * 32000
    assert peak < 2_000_000
