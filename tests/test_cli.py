"""The ``nova-nb`` command: help, listings, and ``emulator serve`` driven as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nova_nb import cli, s2s
from nova_nb.protocol import catalog

HELP_COMMANDS = [[], ["emulator"], ["emulator", "serve"], ["providers"], ["voices"]]
#: Bounds for the subprocess test: start-up (imports, CA generation), a reply, and shutdown.
START_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 5.0


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse exits for --help and usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "nova-nb")
def test_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: nova-nb {' '.join(command)}".rstrip())


def test_help_lists_commands_and_engines(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "--help")
    for name in ("emulator", "providers", "voices"):
        assert name in out
    _, out, _ = run_cli(capsys, "emulator", "serve", "--help")
    assert "scripted" in out and cli.BENCH_ENGINE in out
    assert "not AWS credentials" in out.replace("\n", " ")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys)
    assert code == 2
    assert "usage: nova-nb" in err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "nova-nb"
    if not script.exists():
        pytest.skip("the nova-nb console script is not installed (pip install -e .)")
    assert "nova_nb.cli" in script.read_text()


def test_providers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "providers")
    assert code == 0
    assert out.split() == s2s.providers()
    assert {"amazon_nova", "local"} <= set(out.split())


def test_voices_all_models(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "voices")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["MODEL", "VOICE"]
    expected = sum(len(m.voices) for m in catalog.MODELS.values())
    assert len(lines) == 1 + expected


def test_voices_by_model_and_language(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "voices", "--model", catalog.NOVA_2_SONIC, "--language", "en-GB")
    assert code == 0
    voices = {line.split()[1] for line in out.splitlines()[1:]}
    # amy speaks en-GB; tiffany and matthew are polyglot on Nova 2 (§7).
    assert (
        voices
        == set(catalog.MODELS[catalog.NOVA_2_SONIC].voices_for("en-GB"))
        == {"amy", "tiffany", "matthew"}
    )
    amy = next(line for line in out.splitlines() if " amy " in line)
    assert amy.rstrip().endswith("en-GB")  # the default voice for en-GB


def test_voices_rejects_unknown_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "voices", "--model", "amazon.nova-3")
    assert code == 2 and catalog.NOVA_2_SONIC in err
    code, _, err = run_cli(capsys, "voices", "--language", "xx-XX")
    assert code == 2 and "en-US" in err


def test_make_handler_rejects_bad_session_limit() -> None:
    with pytest.raises(s2s.ConfigError, match="session-limit"):
        cli.make_handler("scripted", 0)


@pytest.mark.slow
async def test_emulator_serve_json_subprocess() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nova_nb.cli",
        "emulator",
        "serve",
        "--engine",
        "scripted",  # _talk() speaks a tone, which only the scripted engine hears as speech
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        info = json.loads(line)
        assert info["pid"] == proc.pid
        assert info["endpoint_uri"].startswith("https://127.0.0.1:")
        assert await asyncio.to_thread(os.path.isfile, info["ca_file"])
        provider = s2s.new_provider(
            "amazon_nova",
            endpoint_uri=info["endpoint_uri"],
            ca_file=info["ca_file"],
            region=info["region"],
            aws_access_key_id=info["aws_access_key_id"],
            aws_secret_access_key=info["aws_secret_access_key"],
            latency_target="low",
        )
        await asyncio.wait_for(_talk(provider), REPLY_TIMEOUT_S)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S)
        assert code == 0
        assert not await asyncio.to_thread(
            os.path.exists, info["ca_file"]
        )  # the per-run CA is removed on shutdown
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _talk(provider: s2s.S2SProvider) -> None:
    """One turn: speech then silence past the endpointing pause; the scripted engine answers."""
    assert isinstance(provider, s2s.StreamingS2SProvider)
    rate = 16000
    t = np.arange(rate) / rate
    speech = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    session = await provider.start_streaming(s2s.ConversationContext())
    try:

        async def first_reply() -> int:
            received = 0
            async for chunk in session.receive_audio():
                assert chunk.error is None
                received += len(chunk.audio)
                if chunk.is_final:
                    return received
            return received

        reply = asyncio.create_task(first_reply())
        await session.send_audio(speech)
        # 2 s of silence (> the 1.5 s pause of latency_target="low"), then keep streaming silence.
        await session.send_audio(np.zeros(2 * rate, np.int16))
        while not reply.done():
            await session.send_audio(np.zeros(512, np.int16))
            await asyncio.sleep(0.01)
        assert reply.result() > 0
    finally:
        await session.close()
    assert session.error is None


def test_bench_engine_plan() -> None:
    from nova_nb.emulator.benchburst import BenchPlan

    plan = BenchPlan(mode="burst", count=7, chunk_ms=20, interval_ms=5, trigger="audio")
    assert BenchPlan.from_prompt(plan.to_prompt()) == plan
    assert BenchPlan.from_prompt("You are a friendly assistant.") is None
    with pytest.raises(s2s.ConfigError, match="chunk_ms"):
        BenchPlan(chunk_ms=100)
    assert callable(cli.make_handler(cli.BENCH_ENGINE, 10))


def test_talk_prints_turns_and_writes_the_reply(tmp_path: Path) -> None:
    from nova_nb.audio import read_wav, write_wav
    from nova_nb.emulator.engine.testaudio import make_utterance, word_overlap

    question = tmp_path / "question.wav"
    write_wav(
        question, make_utterance("What time is it right now?", sample_rate=24000, tail_silence_s=0.3), 24000
    )
    reply = tmp_path / "reply.wav"
    done = subprocess.run(
        [sys.executable, "-m", "nova_nb.cli", "talk", str(question), "-o", str(reply), "--json",
         "--latency-target", "low", "--engine", "speech"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (turn,) = result["turns"]
    assert word_overlap("what time is it right now", turn["user"]) >= 0.6
    assert turn["assistant"].startswith("It is")
    assert 1.4 < turn["end_of_speech_to_first_audio_s"] < 3.0
    audio, rate = read_wav(reply)
    assert rate == 24000 and audio.size / rate > 0.5


def test_talk_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nova_nb.cli", "talk", str(tmp_path / "missing.wav")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "nova_nb.cli", "talk", str(tmp_path / "x.wav"), "--voice", "Brian"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2


def test_doctor_never_shows_secrets(tmp_path: Path) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzSECRET"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLEDOCTOR9876",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_SESSION_TOKEN": "tokenvalue-should-not-print",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "nova_nb.cli", "doctor", "--region", "us-east-1"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "temporary, access key …9876" in out and "AWS SDK set" in out
    assert secret not in out and "tokenvalue" not in out and "AKIDEXAMPLEDOCTOR9876" not in out
