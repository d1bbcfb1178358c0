"""PushToTalk: record a turn in the browser with ipywebrtc, decode it with PyAV, send it paced.

ipywebrtc's ``CameraStream`` (audio only) and ``AudioRecorder`` work in JupyterLab 4 and deliver the
recording as WebM/Opus after the user presses stop. The recording is decoded with PyAV into the
session's input format and sent at real-time pace, followed by enough silence for the model to decide
the turn has ended (it measures pauses in audio time).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np

from ..audio import decode_audio
from ..errors import AudioFormatError
from ..s2s.talk import say
from ._live import load_audio

log = logging.getLogger("nova_nb.widgets")

#: Silence sent after a recording: longer than Nova 2's longest end-of-turn pause (~2 s at LOW).
TAIL_SILENCE_S = 2.5
#: Time allowed beyond the audio's own length for sending it (a busy loop, a slow network).
SEND_MARGIN_S = 10.0


class PushToTalk(w.VBox):
    """Record with the browser's microphone (ipywebrtc), then send the recording to a session.

    Parameters
    ----------
    session : S2SSession, optional
        Where recordings go (``session.send_audio(..., pace=True)``); without one they are only
        decoded and kept in :attr:`recordings`.
    loop : asyncio event loop, optional
        The session's loop (default: the running loop when constructed, if any).
    input_rate : int
        Rate recordings are decoded to (the session's input rate).
    tail_silence_s : float
        Silence sent after each recording so the model ends the turn.
    """

    def __init__(
        self,
        session: Any = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        input_rate: int = 16000,
        tail_silence_s: float = TAIL_SILENCE_S,
    ) -> None:
        from ipywebrtc import AudioRecorder, CameraStream

        self.session = session
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.loop = loop
        self.input_rate = input_rate
        self.tail_silence_s = tail_silence_s
        self.camera = CameraStream(constraints={"audio": True, "video": False})
        self.recorder = AudioRecorder(stream=self.camera, format="webm", codecs="opus")
        self.recorder.add_class("nova-ptt-recorder")
        self.status = w.HTML("Press the record button, speak, press it again to send.")
        self.status.add_class("nova-ptt-status")
        self.recordings: list[np.ndarray] = []
        self.errors: list[str] = []
        self.received = threading.Event()
        self.sends: list[Future[None]] = []
        self.recorder.audio.observe(self._on_audio, names="value")
        super().__init__([self.recorder, self.status])
        self.add_class("nova-push-to-talk")

    def _on_audio(self, change: dict[str, Any]) -> None:
        """A recording arrived (on a subshell or the main thread): decode it and hand it on."""
        data = bytes(change.get("new") or b"")
        if not data:
            return
        try:
            samples = decode_audio(data, target_rate=self.input_rate)
        except AudioFormatError as exc:
            self.errors.append(str(exc))
            self.status.value = f'<span style="color:#b00020">could not decode the recording: {exc}</span>'
            return
        self._accept(samples)

    def _accept(self, samples: np.ndarray) -> None:
        self.recordings.append(samples)
        self.received.set()
        seconds = samples.size / self.input_rate
        if self.session is None or self.loop is None:
            self.status.value = f"recorded {seconds:.1f} s (no session attached)"
            return
        self.status.value = f"sending {seconds:.1f} s…"
        self.sends.append(asyncio.run_coroutine_threadsafe(self._send_recording(samples), self.loop))

    async def _send_recording(self, samples: np.ndarray) -> None:
        session = self.session
        started = time.monotonic()
        seconds = samples.size / self.input_rate
        try:
            # No view of the replies here: the silence after the words is a fixed tail.
            outcome = await say(
                session,
                samples,
                sample_rate=self.input_rate,
                until=lambda quiet_s: quiet_s >= self.tail_silence_s,
                timeout_s=seconds + self.tail_silence_s + SEND_MARGIN_S,
            )
        except Exception as exc:
            self.errors.append(str(exc))
            self.status.value = f'<span style="color:#b00020">could not send: {exc}</span>'
            return
        if outcome != "done":
            self.errors.append(f"sending stopped early: {outcome}")
        self.status.value = f"sent {seconds:.1f} s in {time.monotonic() - started:.1f} s"

    def send_file(
        self, source: str | Path | np.ndarray, *, sample_rate: int | None = None
    ) -> Future[None] | None:
        """The headless path: treat an audio file (or array) as a recording. Returns the send's future."""
        samples = load_audio(source, sample_rate=sample_rate, target_rate=self.input_rate)
        before = len(self.sends)
        self._accept(samples)
        return self.sends[-1] if len(self.sends) > before else None
