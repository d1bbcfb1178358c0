"""Conditions the session handles never surface as tracebacks.

awscrt starts an unawaited task per stream that copies our input into the HTTP/2 stream; when a stream
ends before its input (reset, dropped connection, an exception from the service), that task used to die
with ``2080 AWS_ERROR_HTTP_STREAM_HAS_COMPLETED`` and asyncio printed "Task exception was never
retrieved" on stderr (and in notebook output) after the session had already recovered. The transport
now owns that task. Run in a fresh interpreter so that the garbage collector and the loop's shutdown,
which is where asyncio prints these, are part of what is checked.

Every fault of :class:`nova_nb.emulator.conversation.Faults` is run (stream limit, exception at an
event, reset, dropped connection, first-audio delay, input timeout, HTTP error at open), and the
``nova-nb`` commands a user meets first (talk, emulator serve stopped with SIGINT, doctor, voices,
providers), each with its stderr captured.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCENARIOS = textwrap.dedent(
    """
    import asyncio, gc
    import numpy as np
    from nova_nb import s2s
    from nova_nb.errors import NovaNbError, SessionClosedError
    from nova_nb.emulator.conversation import ConversationOptions, Faults
    from nova_nb.emulator.server import HttpError

    SCENARIOS = [
        # name, faults, seconds of paced silence after the question, seconds without any input
        ("reset", Faults(reset_at_event=40, faulty_streams=1), 0.5, 0),
        ("drop", Faults(drop_at_event=40, faulty_streams=1), 0.5, 0),
        ("throttling", Faults(exception_at_event=(40, "throttlingException", "slow down"), faulty_streams=1), 0.5, 0),
        ("validation", Faults(exception_at_event=(40, "validationException", "bad input"), faulty_streams=1), 0.5, 0),
        ("session-limit", Faults(session_limit_s=1.0, faulty_streams=1), 2.5, 0),
        ("first-audio-delay", Faults(first_audio_delay_s=0.8), 4.0, 0),
        ("input-timeout", Faults(input_timeout_s=0.5, faulty_streams=1), 0.3, 1.5),
        ("http-429", Faults(http_error_at_open=HttpError(429, "ThrottlingException", "Too many requests")), 0, 0),
        ("http-403", Faults(http_error_at_open=HttpError(403, "AccessDeniedException", "no access")), 0, 0),
        ("none", Faults(), 0.5, 0),
    ]

    async def main() -> None:
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.int16)
        for name, faults, silence_s, idle_s in SCENARIOS:
            options = ConversationOptions(faults=faults)
            provider = s2s.new_provider("local", engine=options, latency_target="low")
            try:
                session = await provider.start_streaming()
            except NovaNbError as exc:
                print("scenario", name, "refused", type(exc).__name__)
                continue
            try:
                await session.send_audio(tone)
                for _ in range(60):
                    if session.closed:
                        break
                    await session.send_audio(np.zeros(512, np.int16))
                if idle_s:
                    await asyncio.sleep(idle_s)  # no input at all: the input timeout
                deadline = asyncio.get_running_loop().time() + silence_s
                while not session.closed and asyncio.get_running_loop().time() < deadline:
                    await session.send_audio(np.zeros(512, np.int16), pace=True)
            except SessionClosedError:
                pass  # a fault that ends the session says so to the sender: handled, not a crash
            await asyncio.sleep(0.3)
            await session.close()
            print("scenario", name, "renewals", session.renewals, "error", type(session.error).__name__)
        gc.collect()

    asyncio.run(main())
    gc.collect()
    """
)

SIGNS = ("Traceback", "Task exception was never retrieved", "Task was destroyed", "Exception ignored")


def assert_clean(stderr: str) -> None:
    for sign in SIGNS:
        assert sign not in stderr, stderr


def test_fault_scenarios_leave_stderr_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIOS], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("scenario ")}
    assert len(lines) == 10, done.stdout
    # Recoverable faults are ridden out by reconnecting; the validationException ends its session.
    for name in ("reset", "drop", "throttling", "session-limit"):
        assert "renewals 1" in lines[name], done.stdout
    assert "refused" in lines["http-429"] and "refused" in lines["http-403"], done.stdout
    assert_clean(done.stderr)


def nova_nb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nova_nb.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("args", [["doctor"], ["voices"], ["providers"]])
def test_cli_commands_leave_stderr_clean(args: list[str]) -> None:
    done = nova_nb(*args)
    assert done.returncode in (0, 1), done.stderr  # doctor exits 1 when a check fails; that is no crash
    assert done.stdout.strip(), done.stderr
    assert_clean(done.stderr)


def test_cli_talk_leaves_stderr_clean(tmp_path: Path) -> None:
    from nova_nb.audio import write_wav
    from nova_nb.emulator.engine.testaudio import make_utterance

    question = tmp_path / "question.wav"
    write_wav(question, make_utterance("What time is it?", tail_silence_s=0.5), 16000)
    done = nova_nb("talk", str(question), "--engine", "scripted", "--fast", "--timeout", "60", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)
    assert (tmp_path / "question.reply.wav").exists()
    assert_clean(done.stderr)


def test_cli_emulator_serve_stops_cleanly_on_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nova_nb.cli", "emulator", "serve", "--engine", "scripted", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 60
            while not sel.select(timeout=1) and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        info = json.loads(proc.stdout.readline())
        assert info["endpoint_uri"].startswith("https://127.0.0.1:")
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode in (0, -signal.SIGINT, 130), stderr
    assert_clean(stderr)


ABORT_MID_REPLY = textwrap.dedent(
    """
    import asyncio, gc
    import numpy as np
    from nova_nb import s2s
    from nova_nb.emulator.conversation import ConversationOptions, ScriptedBrain

    def long_reply(_text):
        return " ".join(f"This is sentence number {i} of a long reply." for i in range(12))

    async def main() -> None:
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.int16)
        # A close bound too short for the closing handshake: close() aborts the stream, cancelling
        # its pending body read while the emulator is still sending the reply.
        engine = ConversationOptions(brain_factory=lambda: ScriptedBrain(long_reply))
        provider = s2s.new_provider("local", engine=engine, latency_target="low", close_timeout_s=0.05)
        aborted = 0
        for attempt in range(6):
            session = await provider.start_streaming()
            got_audio = asyncio.Event()
            session.add_listener(lambda e: got_audio.set() if type(e).__name__ == "AudioOutput" else None)
            await session.send_audio(tone)
            for _ in range(200):
                if got_audio.is_set():
                    break
                await session.send_audio(np.zeros(512, np.int16), pace=True)
            await session.close()
            aborted += got_audio.is_set()
            await asyncio.sleep(0.5)  # the emulator keeps sending into the aborted stream meanwhile
        print("aborted mid-reply", aborted)
        gc.collect()

    asyncio.run(main())
    gc.collect()
    """
)


def test_a_stream_aborted_mid_reply_leaves_stderr_clean() -> None:
    """awscrt resolves a pending body read from its own thread; a read cancelled by an abort used to
    make it raise InvalidStateError there (a traceback on stderr, an error box in a notebook)."""
    done = subprocess.run(
        [sys.executable, "-c", ABORT_MID_REPLY], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "aborted mid-reply" in done.stdout and "aborted mid-reply 0" not in done.stdout, done.stdout
    assert_clean(done.stderr)
    assert "InvalidStateError" not in done.stderr, done.stderr
