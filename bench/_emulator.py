"""The emulator under the benchmarks, in a process of its own so its CPU is never the client's."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True)
class Endpoint:
    """What ``nova-nb emulator serve --json`` prints: where it listens and how to sign for it."""

    endpoint_uri: str
    ca_file: str
    region: str
    aws_access_key_id: str
    aws_secret_access_key: str
    pid: int

    def provider_options(self) -> dict[str, Any]:
        """Keyword options for ``s2s.new_provider("amazon_nova", ...)``."""
        return {
            "endpoint_uri": self.endpoint_uri,
            "ca_file": self.ca_file,
            "region": self.region,
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
        }


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Pin every thread of process ``pid`` to ``cpus``; threads they start later inherit it."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, FileNotFoundError):  # a thread that just ended
            pass


class EmulatorProcess:
    """``nova-nb emulator serve --json --engine ENGINE`` as a child process; SIGTERM on exit."""

    def __init__(self, engine: str = "bench-burst") -> None:
        self.engine = engine
        self.proc: subprocess.Popen[str] | None = None
        self._log = tempfile.TemporaryFile(mode="w+", prefix="nova-nb-bench-emulator-")
        self.endpoint: Endpoint | None = None

    def __enter__(self) -> Self:
        argv = [sys.executable, "-m", "nova_nb.cli", "emulator", "serve", "--json", "--engine", self.engine]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)
        try:
            line = self._first_line(START_TIMEOUT_S)
            info = json.loads(line)
            self.endpoint = Endpoint(
                endpoint_uri=info["endpoint_uri"],
                ca_file=info["ca_file"],
                region=info["region"],
                aws_access_key_id=info["aws_access_key_id"],
                aws_secret_access_key=info["aws_secret_access_key"],
                pid=info["pid"],
            )
        except BaseException:
            self.stop()
            raise
        return self

    def pin(self, cpus: set[int]) -> None:
        """Run every thread of the emulator (and any it starts later) on ``cpus`` only (Linux)."""
        assert self.proc is not None
        pin_threads(self.proc.pid, cpus)

    def _first_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"the emulator printed nothing within {timeout:g} s{self._log_tail()}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator exited with code {self.proc.wait()}{self._log_tail()}")
        return line

    def _log_tail(self) -> str:
        self._log.seek(0)
        text = self._log.read()[-2000:]
        return f"; its stderr:\n{text}" if text else ""

    def stop(self) -> int | None:
        """SIGTERM the emulator (by its own pid) and wait, bounded; SIGKILL only if it hangs."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()
        self._log.close()
        return proc.returncode

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        started = time.monotonic()
        code = self.stop()
        if code not in (0, None):
            print(f"bench: the emulator exited with code {code} after {time.monotonic() - started:.1f} s")
