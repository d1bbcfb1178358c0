"""Real-browser harness: JupyterLab on 127.0.0.1, Debian's chromium driven by Playwright.

Shared by tests/browser and bench/browser.py. Everything here is bounded in time: servers are started
with a deadline and stopped by their own pid; every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WIDGETS_DIR = ROOT / "nova_nb" / "widgets"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAB_START_TIMEOUT_S = 90.0


def chromium_path() -> str | None:
    """Debian's chromium, or None (browser tests then skip)."""
    override = os.environ.get("NOVA_NB_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    return found


def unavailable_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; no 'playwright install' needed)"
    if chromium_path() is None:
        return (
            "chromium is not installed: run scripts/install-browser-deps.sh as root "
            "(apt-get install chromium), or set NOVA_NB_CHROMIUM to a Chromium binary"
        )
    return None


def artifacts_dir() -> Path:
    path = Path(os.environ.get("NOVA_NB_TEST_ARTIFACTS", "./test-artifacts")).resolve() / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until[T](check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


# -- fake microphone --------------------------------------------------------------------------------


def make_fake_mic_wav(path: Path, text: str = "What time is it?", tail_s: float = 5.0) -> Path:
    """A spoken question with espeak-ng, then silence: chromium loops it as the microphone.

    44.1 kHz stereo, the format Chromium's fake capture reads; the loop brings the question back
    while the reply plays, which is the barge-in.
    """
    from nova_nb.audio import to_pcm16_mono, write_wav
    from nova_nb.emulator.engine.testaudio import make_utterance

    speech = make_utterance(text, sample_rate=16000, lead_silence_s=0.3, tail_silence_s=tail_s)
    up = to_pcm16_mono(speech, sample_rate=16000, target_rate=44100)
    write_wav(path, np.stack([up, up], axis=1), 44100)
    return path


# -- a static server for the plain-page (no Jupyter) tests ------------------------------------------


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a secure context, as AudioWorklet requires)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="static-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def guess_type(self, path: Any) -> str:
        # Module scripts need a JavaScript MIME type whatever the system's mimetypes say.
        return "text/javascript" if str(path).endswith(".js") else super().guess_type(path)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- JupyterLab -------------------------------------------------------------------------------------


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 with a notebook directory and its own settings."""

    def __init__(self, root: Path, *, comms_over_subshells: str | None = None, nodelay: bool = True) -> None:
        self.root = root
        self.nodelay = nodelay
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.settings = root / ".settings"
        self.log = root / "jupyterlab.log"
        overrides: dict[str, Any] = {
            # No news or update checks (no internet, and their toasts cover the page).
            "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
        }
        if comms_over_subshells is not None:
            overrides["@jupyterlab/apputils-extension:kernels-settings"] = {
                "commsOverSubshells": comms_over_subshells
            }
        self.settings.mkdir(parents=True, exist_ok=True)
        (self.settings / "overrides.json").write_text(json.dumps(overrides))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> JupyterLab:
        env = dict(os.environ)
        env.update(
            JUPYTERLAB_SETTINGS_DIR=str(self.settings / "user"),
            JUPYTERLAB_WORKSPACES_DIR=str(self.root / ".workspaces"),
            JUPYTER_RUNTIME_DIR=str(self.root / ".runtime"),
            PYTHONUNBUFFERED="1",
        )
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.app_settings_dir={self.settings}",
            "--LabApp.expose_app_in_browser=True",
            "--LabServerApp.extra_labextensions_path=[]",
            "--ServerApp.disable_check_xsrf=True",
            "--ServerApp.terminals_enabled=False",
        ]
        # nova_nb's server extension (nova_nb/widgets/server.py) is enabled by the installed
        # jupyter_server_config.d/nova_nb.json; say it explicitly either way, so a run does not depend on
        # how this environment was installed (--stock in bench.browser turns it off).
        flag = "True" if self.nodelay else "False"
        cmd.append(f'--ServerApp.jpserver_extensions={{"nova_nb.widgets.server": {flag}}}')
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        log = self.log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until(self._ready, LAB_START_TIMEOUT_S, "JupyterLab to answer", interval=0.25)
        except AssertionError:
            self.stop()
            raise AssertionError(f"JupyterLab did not start; log:\n{self.log.read_text()[-3000:]}") from None
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"JupyterLab exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        with contextlib.suppress(OSError):
            for session in self.api("GET", "/api/sessions") or []:
                self.api("DELETE", f"/api/sessions/{session['id']}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # Its own process group (start_new_session): the server and the kernels it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
            for src in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))
    return path


# -- chromium ------------------------------------------------------------------------------------


@contextlib.contextmanager
def browser(fake_mic: Path | None = None, *, extra_args: list[str] | None = None) -> Iterator[Any]:
    """A Playwright browser context on Debian's chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    assert path is not None, unavailable_reason()
    args = list(BASE_ARGS)
    if fake_mic is not None:
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_mic}",
        ]
    args += extra_args or []
    with tempfile.TemporaryDirectory(prefix="nova-nb-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=path,
            headless=True,
            args=args,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


class ConsoleLog:
    """Console errors and uncaught page errors of a page."""

    #: Messages of JupyterLab itself, with no internet and no favicon, that say nothing about us.
    IGNORED = ("favicon", "Failed to load resource: the server responded with a status of 404")

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.lines: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg: Any) -> None:
        self.lines.append(f"{msg.type}: {msg.text}")
        if msg.type == "error" and not any(s in msg.text for s in self.IGNORED):
            self.errors.append(msg.text)


def open_notebook(
    page: Any, lab: JupyterLab, name: str, *, cells: int | None = None, timeout: float = 60.0
) -> None:
    """Open a notebook, wait for its kernel, and run its cells (all, or the first ``cells``)."""
    page.goto(lab.notebook_url(name), wait_until="domcontentloaded", timeout=timeout * 1000)
    page.wait_for_function(
        """() => {
            const app = window.jupyterapp;
            if (!app) return false;
            const w = app.shell.currentWidget;
            const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!(kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle');
        }""",
        timeout=timeout * 1000,
    )
    # Not awaited: the commands' promises settle only when the cells have finished.
    if cells is None:
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    else:
        page.evaluate(
            """(n) => {
                const notebook = window.jupyterapp.shell.currentWidget.content;
                if (n >= notebook.widgets.length) {
                    window.jupyterapp.commands.execute('notebook:run-all-cells');
                } else {
                    notebook.activeCellIndex = n;
                    window.jupyterapp.commands.execute('notebook:run-all-above');
                }
            }""",
            cells,
        )


def run_cell(page: Any, index: int) -> None:
    """Start running cell ``index`` of the open notebook (without waiting for it to finish)."""
    page.evaluate(
        """(i) => {
            window.jupyterapp.shell.currentWidget.content.activeCellIndex = i;
            window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        index,
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


#: Kernel-side code that writes a callable's JSON result to a file every 100 ms (atomically), so a
#: test can watch the kernel without typing into cells.
DUMP_CELL = """
import json as _json, os as _os, threading as _threading, time as _time
def _dump_forever(path, state):
    while True:
        try:
            data = _json.dumps(state(), default=str)
            with open(path + '.tmp', 'w') as f:
                f.write(data)
            _os.replace(path + '.tmp', path)
        except Exception as exc:
            with open(path + '.err', 'w') as f:
                f.write(repr(exc))
        _time.sleep(0.1)
_threading.Thread(target=_dump_forever, args=({path!r}, {state}), daemon=True, name='test-dump').start()
"""
