"""The speech engines work with no network at all and load nothing from outside their packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access attempted: " + repr(args[:2]))

    # Any Python-level connection or name lookup fails loudly.
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from nova_nb.emulator.engine import MoonshineRecognizer, SileroVad, make_utterance, word_overlap

    text = "What is the weather like in Seattle today?"
    pcm = make_utterance(text, tail_silence_s=0.5)
    heard = MoonshineRecognizer().transcribe(pcm, 16000)
    probs = SileroVad().process(pcm)
    assert word_overlap(text, heard) >= 0.6, heard
    assert max(probs) > 0.9
    print("OFFLINE-OK", heard)
    """
)


def run_offline(tmp_path: Path, prefix: list[str]) -> subprocess.CompletedProcess[str]:
    # An empty home and cache: nothing downloaded earlier can be picked up from there either.
    repo = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "no_proxy": "*",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
    }
    return subprocess.run(
        [*prefix, sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_engines_run_with_python_network_blocked(tmp_path: Path) -> None:
    result = run_offline(tmp_path, [])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OFFLINE-OK" in result.stdout
    assert not any(tmp_path.iterdir()), "an engine wrote to the home or cache directory"


def _can_unshare_network() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False, timeout=10)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _can_unshare_network(), reason="needs `unshare -n` (a private, empty network namespace)"
)
def test_engines_run_in_a_namespace_without_network(tmp_path: Path) -> None:
    # Stronger than the socket patch: C code (ONNX Runtime, ggml, espeak-ng) has no network either.
    result = run_offline(tmp_path, ["unshare", "-n"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OFFLINE-OK" in result.stdout
