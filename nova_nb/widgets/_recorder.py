"""PushToTalk: record a turn with ipywebrtc, decode it with PyAV, send it paced, hear the reply.

ipywebrtc's ``CameraStream`` (audio only) and ``AudioRecorder`` work in JupyterLab 4 and deliver the
recording as WebM/Opus after the recording stops. Its own recorder view has two unlabelled icon
buttons (record, download) and replays the recording; this widget shows neither. Its controls are
drawn by a :class:`LiveAudio` in "ptt" mode: **● Record** and **■ Stop and send**, with text labels,
aria-labels and test ids, which set the recorder's ``recording`` trait. The same LiveAudio plays the
reply (gap-free, flushed at once on a barge-in) and reports what was heard.

The recording is decoded with PyAV into the session's input format and sent at real-time pace through
LiveAudio's frame path, followed by enough silence for the model to decide the turn has ended (it
measures pauses in audio time). Between recordings the session is fed silence (LiveAudio feeds an
attached session silence whenever no frames come), so it never starves.
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np

from ..audio import decode_audio
from ..errors import AudioFormatError, ConfigError
from ..s2s import events as ev
from ..s2s.talk import say
from ._live import LiveAudio, load_audio
from ._panel import transcript_html

log = logging.getLogger("nova_nb.widgets")

#: Silence sent after a recording: longer than Nova 2's longest end-of-turn pause (~2 s at LOW).
TAIL_SILENCE_S = 2.5
#: Time allowed beyond the audio's own length for sending it (a busy loop, a slow network).
SEND_MARGIN_S = 10.0
#: Bound on attaching the player to a session's loop from another thread.
ATTACH_TIMEOUT_S = 10.0
FRAME_S = 0.02


class PushToTalk(w.VBox):
    """Record with the browser's microphone (ipywebrtc), send the recording, play the reply.

    Parameters
    ----------
    session : S2SSession, optional
        Where recordings go; its replies play in the page and its transcript is shown. Without one,
        recordings are only decoded and kept in :attr:`recordings` (the status line says so).
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
        if session is not None and loop is None:
            raise ConfigError("PushToTalk(session) needs the session's event loop: pass loop=")
        self.loop = loop
        self.input_rate = input_rate
        self.tail_silence_s = tail_silence_s
        self.camera = CameraStream(constraints={"audio": True, "video": False})
        # Not displayed: its view's buttons are unlabelled icons. Our labelled buttons drive it.
        self.recorder = AudioRecorder(stream=self.camera, format="webm", codecs="opus")
        self.recorder.add_class("nova-ptt-recorder")
        #: The controls, and the player of the replies.
        self.live = LiveAudio(mode="ptt", input_rate=input_rate)
        self.status = w.HTML()
        self.status.add_class("nova-ptt-status")
        self.transcript = w.HTML(transcript_html([]))
        self.transcript.add_class("nova-ptt-transcript")
        self.lines: list[dict[str, Any]] = []
        self.recordings: list[np.ndarray] = []
        self.errors: list[str] = []
        self.received = threading.Event()
        self.sends: list[Future[None]] = []
        self._lock = threading.Lock()
        self._detach: Any = None
        self._remove_listener: Any = None
        self.recorder.audio.observe(self._on_audio, names="value")
        self.live.on_control(self._on_control)
        super().__init__([self.live, self.status, self.transcript], layout=w.Layout(max_width="100%"))
        self.add_class("nova-push-to-talk")
        if session is None:
            self._set("idle", "no session attached: recordings are kept in .recordings, not sent")
        else:
            self._attach()
            self._set("idle", "press Record, speak, press Stop and send")

    def _set(self, state: str, detail: str, error: bool = False) -> None:
        colour = "#b00020" if error else "#333"
        self.status.value = (
            f'<div data-testid="nova-ptt-status" role="status" data-state="{html.escape(state)}" '
            f'style="color:{colour};overflow-wrap:anywhere">{html.escape(detail)}</div>'
        )
        self.live.control_detail = detail
        self.live.control_state = state

    # -- the session: replies to the page, transcript to the panel ------------------------------

    def _attach(self) -> None:
        assert self.loop is not None

        async def attach() -> None:
            self._detach = self.live.attach(self.session, loop=self.loop)
            self._remove_listener = self.session.add_listener(self._on_event)

        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            # Constructed on the session's loop (a notebook cell): attach right here.
            self._detach = self.live.attach(self.session, loop=self.loop)
            self._remove_listener = self.session.add_listener(self._on_event)
        else:
            asyncio.run_coroutine_threadsafe(attach(), self.loop).result(ATTACH_TIMEOUT_S)

    def _on_event(self, event: ev.Event) -> None:
        try:
            if isinstance(event, ev.Transcript):
                self.lines.append(
                    {
                        "role": event.role,
                        "stage": event.stage,
                        "text": event.text,
                        "content_id": event.content_id,
                    }
                )
            elif isinstance(event, ev.Interruption):
                self.lines.append(
                    {"role": "INTERRUPTION", "stage": None, "text": "", "content_id": event.content_id}
                )
            else:
                return
            self.transcript.value = transcript_html(self.lines)
        except Exception:  # never break the session over a view
            log.exception("push-to-talk could not show %s", event.kind)

    def close(self) -> None:
        """Stop playing the session's replies here and close the widgets."""
        if self._remove_listener is not None:
            self._remove_listener()
        if self._detach is not None and self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._detach)
        self.recorder.recording = False
        super().close()

    # -- the page's buttons (any thread) -----------------------------------------------------------

    def _on_control(self, message: dict[str, Any]) -> None:
        action = message.get("action")
        if action == "record":
            self.record()
        elif action == "send":
            self.stop_and_send()

    def record(self) -> None:
        """Start recording (what **● Record** does)."""
        with self._lock:
            if self.recorder.recording:
                return
            self.recorder.recording = True
        self._set("recording", "recording… press Stop and send when you are done")

    def stop_and_send(self) -> None:
        """Stop recording; the recording is then decoded and sent (what **■ Stop and send** does)."""
        with self._lock:
            if not self.recorder.recording:
                return
            self.recorder.recording = False
        self._set("decoding", "decoding the recording…")

    def _on_audio(self, change: dict[str, Any]) -> None:
        """A recording arrived (on a subshell or the main thread): decode it and hand it on."""
        data = bytes(change.get("new") or b"")
        if not data:
            return
        try:
            samples = decode_audio(data, target_rate=self.input_rate)
        except AudioFormatError as exc:
            self.errors.append(str(exc))
            self._set("error", f"could not decode the recording: {exc}", error=True)
            return
        self._accept(samples)

    def _accept(self, samples: np.ndarray) -> None:
        self.recordings.append(samples)
        self.received.set()
        seconds = samples.size / self.input_rate
        if self.session is None or self.loop is None:
            self._set("idle", f"recorded {seconds:.1f} s (no session attached: kept in .recordings)")
            return
        self._set("sending", f"sending {seconds:.1f} s…")
        self.sends.append(asyncio.run_coroutine_threadsafe(self._send_recording(samples), self.loop))

    async def _send_recording(self, samples: np.ndarray) -> None:
        session = self.session
        started = time.monotonic()
        seconds = samples.size / self.input_rate
        clock = {"t0": 0.0, "n": 0}

        async def send(frame: np.ndarray) -> None:
            # Real-time pace, through the microphone's path (LiveAudio keeps the order and counts).
            if clock["n"] == 0:
                clock["t0"] = time.monotonic()
            due = clock["t0"] + clock["n"] * FRAME_S
            clock["n"] += 1
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.live.deliver_frame(frame.astype("<i2").tobytes())

        try:
            outcome = await say(
                session,
                samples,
                sample_rate=self.input_rate,
                until=lambda quiet_s: quiet_s >= self.tail_silence_s,
                frame_s=FRAME_S,
                timeout_s=seconds + self.tail_silence_s + SEND_MARGIN_S,
                send=send,
            )
            await self.live.drain(2.0)
        except Exception as exc:
            self.errors.append(str(exc))
            self._set("error", f"could not send: {exc}", error=True)
            return
        if outcome != "done":
            self.errors.append(f"sending stopped early: {outcome}")
        if not self.recorder.recording:
            self._set(
                "idle", f"sent {seconds:.1f} s in {time.monotonic() - started:.1f} s; press Record to talk"
            )

    def send_file(
        self, source: str | Path | np.ndarray, *, sample_rate: int | None = None
    ) -> Future[None] | None:
        """The headless path: treat an audio file (or array) as a recording. Returns the send's future."""
        samples = load_audio(source, sample_rate=sample_rate, target_rate=self.input_rate)
        before = len(self.sends)
        self._accept(samples)
        return self.sends[-1] if len(self.sends) > before else None
