"""LiveAudio: the browser's microphone in and speakers out, as one anywidget.

The page captures the microphone in an AudioWorklet, resamples it to the session's input rate
(16 kHz int16) and sends ~20 ms frames as binary widget-message buffers; the kernel sends the
model's PCM chunks back the same way and the page plays them gap-free, flushes on interruption and
reports what was actually heard.

Threading
---------
In JupyterLab 4.6 with ipykernel 7, widget messages are handled on a *subshell thread* (comms over
subshells, on by default), so they also arrive while a cell runs; with that setting off they arrive on
the kernel's main thread between cells. :meth:`LiveAudio._handle` therefore runs on any thread and
does only cheap, thread-safe work: it copies the frame, records a timing figure in a ``deque`` and
hands the frame to the attached session's event loop with ``loop.call_soon_threadsafe``. Everything
that touches the session (``send_audio``, ``report_playback``) runs on that loop. Sending to the page
(:meth:`play`, :meth:`flush`) is safe from any thread: ipykernel's IOPub socket is thread-safe.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from .. import audio as pcm
from ..errors import ConfigError
from ..s2s import events as ev
from ..s2s.session import S2SSession
from ..s2s.types import AudioOutputChunk

log = logging.getLogger("nova_nb.widgets")

_HERE = Path(__file__).parent
#: How many timing samples each statistic keeps (a few minutes of frames).
STATS_KEEP = 10_000
#: Frames waiting for the session's loop before the oldest are dropped (about 10 s of 20 ms frames):
#: a loop that is blocked for that long has lost the conversation anyway.
FRAME_BACKLOG_MAX = 500

FrameCallback = Callable[[bytes, float], None]


class LiveAudio(anywidget.AnyWidget):
    """Live microphone and speaker in the notebook page.

    Parameters
    ----------
    input_rate : int
        Rate of the frames sent to the kernel (the session's input rate, 16000).
    output_rate : int
        Rate of the PCM that :meth:`play` sends (the session's output rate, 24000).
    frame_ms : int
        Frame length the page sends (20 ms = 640 bytes at 16 kHz).
    echo_cancellation : bool
        Ask the browser for echo cancellation (and noise suppression). Keep it on with open speakers:
        without it the model hears its own voice and interrupts itself.

    Examples
    --------
    >>> live = LiveAudio()                       # doctest: +SKIP
    >>> live                                     # doctest: +SKIP  (shows the Start button and meter)
    >>> detach = live.attach(session)            # doctest: +SKIP  (mic -> session, replies -> page)
    """

    _esm = _HERE / "live.js"
    #: Identifies this widget's audio engine in the page (one per widget, however many views).
    _id = traitlets.Unicode().tag(sync=True)
    #: The AudioWorklet module's source, sent once; the page loads it from a Blob URL.
    _worklet = traitlets.Unicode((_HERE / "audio_worklet.js").read_text(encoding="utf-8")).tag(sync=True)
    input_rate = traitlets.Int(16000).tag(sync=True)
    output_rate = traitlets.Int(24000).tag(sync=True)
    frame_ms = traitlets.Int(20).tag(sync=True)
    echo_cancellation = traitlets.Bool(True).tag(sync=True)
    #: Set True to open the microphone (the page's button sets it too); False closes it.
    capture = traitlets.Bool(False).tag(sync=True)
    #: Set by the page: the microphone is open and frames are flowing.
    running = traitlets.Bool(False).tag(sync=True)
    #: Set by the page: "", "starting", "listening", "stopped" or "error".
    status = traitlets.Unicode("").tag(sync=True)
    #: Set by the page: a sentence for the user when the microphone cannot be used, else "".
    error = traitlets.Unicode("").tag(sync=True)
    #: Set by the page: the capture device's sample rate (what the worklet resamples from).
    device_rate = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("_id", uuid.uuid4().hex)
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._frame_callbacks: list[FrameCallback] = []
        self._seq = itertools.count()
        self._flush_tokens = itertools.count(1)
        self._sent_at: dict[int, float] = {}
        self._flush_sent: dict[int, float] = {}
        self._session: S2SSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frames: asyncio.Queue[bytes] = asyncio.Queue()
        self._detachers: list[Callable[[], object]] = []
        self.muted = False
        self.view_seen = threading.Event()
        #: Timing, in seconds, appended from whatever thread measured them (deque appends are atomic).
        self.frame_latency_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: kernel play() → the page's worklet rendered the first sample (a fresh start, not queued).
        self.playback_start_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: kernel play() → that sample leaves the speakers (adds the device's output latency).
        self.playback_audible_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: kernel → page transport of play/flush messages (received by the page's main thread).
        self.to_page_s: deque[float] = deque(maxlen=STATS_KEEP)
        self.flush_latency_s: deque[float] = deque(maxlen=STATS_KEEP)
        self.flush_handled_s: deque[float] = deque(maxlen=STATS_KEEP)
        self._flushed_content: str | None = None
        self.frames_received = 0
        self.frames_dropped = 0
        self.chunks_sent = 0
        self.last_rms = 0.0
        self.handler_threads: set[str] = set()
        self.on_msg(self._handle)

    # -- page -> kernel (any thread) -----------------------------------------------------------------

    def _handle(self, _widget: Any, content: Any, buffers: list[Any] | None) -> None:
        """Custom messages from the page. Runs on a subshell thread or the main thread: keep it cheap."""
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        self.handler_threads.add(threading.current_thread().name)
        if kind == "frame" and buffers:
            self._frame(bytes(buffers[0]), content)
        elif kind == "played":
            self._on_loop(
                self._report, content.get("id"), content.get("played_s"), bool(content.get("final"))
            )
        elif kind == "started":
            sent = content.get("sent")
            if isinstance(sent, int | float) and sent > 0:
                self._since(self.playback_start_s, sent, content.get("rendered"))
                self._since(self.playback_audible_s, sent, content.get("at"))
                self._since(self.to_page_s, sent, content.get("received"))
        elif kind == "flushed":
            token = content.get("token")
            sent_at = self._flush_sent.pop(token, None) if isinstance(token, int) else None
            at = content.get("at")
            if sent_at is not None:
                self._since(self.flush_latency_s, sent_at * 1000.0, at)
                self._since(self.flush_handled_s, sent_at * 1000.0, content.get("handled"))
                self._since(self.to_page_s, sent_at * 1000.0, content.get("received"))
        elif kind == "hello":
            self.view_seen.set()

    @staticmethod
    def _since(into: deque[float], start_ms: float, end_ms: Any) -> None:
        if isinstance(end_ms, int | float) and end_ms > 0:
            into.append((end_ms - start_ms) / 1000.0)

    def _frame(self, frame: bytes, content: dict[str, Any]) -> None:
        now = time.time()
        sent = content.get("sent")
        if isinstance(sent, int | float):
            self.frame_latency_s.append(now - sent / 1000.0)
        rms = content.get("rms")
        if isinstance(rms, int | float):
            self.last_rms = float(rms)
        self.deliver_frame(frame, time.monotonic())

    def deliver_frame(self, frame: bytes, timestamp: float | None = None) -> None:
        """Hand one frame of input-rate PCM to the callbacks and the attached session (thread-safe).

        The page calls this for every microphone frame; :meth:`feed_file` calls it without a page.
        """
        self.frames_received += 1
        if self.muted:
            # Muted still streams: the model measures turns in audio time, so silence must flow.
            frame = bytes(len(frame))
        t = time.monotonic() if timestamp is None else timestamp
        with self._lock:
            callbacks = tuple(self._frame_callbacks)
        for callback in callbacks:
            try:
                callback(frame, t)
            except Exception:
                log.exception("frame callback failed")
        self._on_loop(self._enqueue_frame, frame)

    def on_frame(self, callback: FrameCallback) -> Callable[[], None]:
        """Call ``callback(frame, monotonic_time)`` for every input frame; returns a remover.

        It runs on the thread that received the frame (a subshell thread in JupyterLab 4.6): keep it
        cheap and thread-safe.
        """
        with self._lock:
            self._frame_callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._frame_callbacks:
                    self._frame_callbacks.remove(callback)

        return remove

    def _on_loop(self, fn: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    # -- session side (on the session's loop) ------------------------------------------------------

    def _enqueue_frame(self, frame: bytes) -> None:
        queue = self._frames
        if queue.qsize() >= FRAME_BACKLOG_MAX:
            queue.get_nowait()
            self.frames_dropped += 1
        queue.put_nowait(frame)

    def _report(self, content_id: Any, played_s: Any, final: bool) -> None:
        session = self._session
        if session is None or not isinstance(content_id, str) or not content_id:
            return
        if not isinstance(played_s, int | float) or played_s < 0:
            return
        try:
            session.report_playback(content_id, float(played_s), final=final)
        except Exception:
            log.exception("report_playback failed")

    async def _send_frames(self) -> None:
        session = self._session
        assert session is not None
        while True:
            frame = await self._frames.get()
            if session.closed:
                return
            try:
                await session.send_audio(frame)
            except Exception as exc:  # the session failed: it reports that itself, as an event
                log.info("live audio stopped sending: %s", exc)
                return

    async def _play_replies(self) -> None:
        assert self._session is not None
        async for chunk in self._session.receive_audio():
            if chunk.interrupted:
                if chunk.content_id is None or chunk.content_id != self._flushed_content:
                    self.flush()
            elif chunk.audio:
                self.play(chunk)

    def attach(
        self, session: S2SSession, *, loop: asyncio.AbstractEventLoop | None = None, play: bool = True
    ) -> Callable[[], None]:
        """Stream this widget's microphone into ``session`` and play its replies in the page.

        Call from the session's event loop (or pass ``loop``). Frames go to ``session.send_audio`` in
        order; playback positions go to ``session.report_playback``; an interruption flushes the
        page at once (from the session's event, before the interrupted chunk is even read). With
        ``play=False`` the caller reads ``receive_audio()`` and calls :meth:`play` itself.
        Returns a function that detaches.
        """
        if self._session is not None:
            raise ConfigError("this LiveAudio is already attached to a session: detach it first")
        self._loop = loop or asyncio.get_running_loop()
        self._session = session
        self._frames = asyncio.Queue()
        # The page sends input-rate PCM in its own 20 ms frames: send_audio takes bytes at the input
        # rate in any chunk size without converting them, and re-frames them to the session's frame_ms.
        self.output_rate = session.config.output_sample_rate
        self.input_rate = session.config.input_sample_rate
        tasks = [self._loop.create_task(self._send_frames(), name="live-audio-send")]
        if play:
            tasks.append(self._loop.create_task(self._play_replies(), name="live-audio-play"))

        def on_event(event: ev.Event) -> None:
            if isinstance(event, ev.Interruption):
                self._flushed_content = event.content_id
                self.flush()

        remove_listener = session.add_listener(on_event)

        def detach() -> None:
            remove_listener()
            for task in tasks:
                task.cancel()
            self._session = None
            self._loop = None

        return detach

    # -- kernel -> page (any thread) -----------------------------------------------------------------

    def play(
        self,
        audio: AudioOutputChunk | bytes | np.ndarray,
        *,
        content_id: str | None = None,
        sample_rate: int | None = None,
    ) -> None:
        """Queue audio for gap-free playback in the page.

        ``audio`` is an :class:`~nova_nb.s2s.AudioOutputChunk`, 16-bit mono PCM bytes or a numpy
        array, at ``sample_rate`` (default: the chunk's rate, else ``output_rate``); other rates are
        resampled. ``content_id`` groups chunks into one reply for playback reports.
        """
        if isinstance(audio, AudioOutputChunk):
            content_id = content_id or audio.content_id
            sample_rate = sample_rate or audio.sample_rate
            data: Any = audio.audio
        else:
            data = audio
        rate = sample_rate or self.output_rate
        if rate != self.output_rate or not isinstance(data, bytes | bytearray | memoryview):
            data = pcm.pcm16_to_bytes(pcm.to_pcm16_mono(data, sample_rate=rate, target_rate=self.output_rate))
        if not data:
            return
        seq = next(self._seq)
        self.chunks_sent += 1
        self.send(
            {"type": "play", "id": content_id, "seq": seq, "sent": time.time() * 1000.0},
            buffers=[bytes(data)],
        )

    def flush(self) -> int:
        """Stop playback in the page now, dropping everything queued. Returns the flush's token."""
        token = next(self._flush_tokens)
        if len(self._flush_sent) > 1000:  # a page that never answers must not grow this for ever
            self._flush_sent.clear()
        self._flush_sent[token] = time.time()
        self.send({"type": "flush", "token": token})
        return token

    # -- without a browser -------------------------------------------------------------------------

    def feed_file(self, source: str | Path | np.ndarray, *, sample_rate: int | None = None) -> int:
        """Feed an audio file (or array) through the same path as the microphone; returns frames fed.

        For running without a browser (nbval, scripts): WAV files are read directly, anything else
        (WebM, Ogg, MP3, ...) is decoded with PyAV. The frames reach callbacks and the attached
        session exactly as microphone frames do (the session paces nothing: the model decides turns
        in audio time, so a file may go faster than real time).
        """
        samples = load_audio(source, sample_rate=sample_rate, target_rate=self.input_rate)
        frames = pcm.Reframer(pcm.frame_samples(self.input_rate, self.frame_ms))
        out = frames.push(samples) + frames.flush(pad=True)
        for frame in out:
            self.deliver_frame(frame)
        return len(out)

    def stats(self) -> dict[str, Any]:
        """Counters and latency percentiles (ms) measured so far."""
        return {
            "frames_received": self.frames_received,
            "frames_dropped": self.frames_dropped,
            "chunks_sent": self.chunks_sent,
            "device_rate": self.device_rate,
            "handler_threads": sorted(self.handler_threads),
            "frame_latency_ms": percentiles(self.frame_latency_s),
            "to_page_ms": percentiles(self.to_page_s),
            "playback_start_ms": percentiles(self.playback_start_s),
            "playback_audible_ms": percentiles(self.playback_audible_s),
            "flush_ms": percentiles(self.flush_latency_s),
            "flush_handled_ms": percentiles(self.flush_handled_s),
        }


def percentiles(values: Any) -> dict[str, float | int]:
    """``{"n", "p50", "p95", "max"}`` in milliseconds of a collection of seconds."""
    data = np.asarray(list(values), dtype=np.float64) * 1000.0
    if data.size == 0:
        return {"n": 0}
    return {
        "n": int(data.size),
        "p50": round(float(np.percentile(data, 50)), 2),
        "p95": round(float(np.percentile(data, 95)), 2),
        "max": round(float(data.max()), 2),
    }


def load_audio(
    source: str | Path | bytes | np.ndarray, *, sample_rate: int | None = None, target_rate: int = 16000
) -> np.ndarray:
    """:func:`nova_nb.audio.load_audio`, with an array taken to be at ``target_rate`` unless told."""
    if isinstance(source, np.ndarray) and sample_rate is None:
        sample_rate = target_rate
    return pcm.load_audio(source, sample_rate=sample_rate, target_rate=target_rate)
