"""LiveAudio: the browser's microphone in and speakers out, as one anywidget.

The page captures the microphone in an AudioWorklet, resamples it to the session's input rate
(16 kHz int16) and sends ~20 ms frames as binary widget-message buffers, each stamped when it was
captured and numbered; the kernel sends the model's PCM chunks back the same way and the page plays
them gap-free, flushes on interruption and reports what was actually heard, on the page's playback
clock.

No frame is lost without a trace: every frame that reaches the kernel is sent to the attached session,
held for a session that is opening (``hold``), given to ``on_frame`` callbacks, or counted as
unrouted; the page shows those counts beside the microphone. While a session is attached and no
frames come (the microphone is off or the page stalls), the session is fed silence
(``S2SSession.pause``), as a muted microphone is: a live session never starves.

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
#: Frames held for a session that is still opening (10 s of 20 ms frames); more are counted dropped.
HOLD_MAX = 500
#: No frame for this long while a session is attached: feed it silence until frames come again. Longer
#: than a busy page's main-thread stall (which delays frames without losing them), far shorter than
#: any service's input timeout.
STARVE_S = 0.5
#: The kernel's frame counters go to the page at most this often (they are shown beside the meter).
KSTATS_EVERY_S = 0.25
#: Frames per second are counted over this window.
FPS_WINDOW_S = 2.0
MODES = ("standalone", "panel", "ptt")

FrameCallback = Callable[[bytes, float], None]
ControlCallback = Callable[[dict[str, Any]], None]


def _wall_to_monotonic(wall_ms: float) -> float:
    """A wall-clock time in ms (the page's clock, shared with time.time()) on the monotonic clock."""
    return wall_ms / 1000.0 - (time.time() - time.monotonic())


class LiveAudio(anywidget.AnyWidget):
    """Live microphone and speaker in the notebook page.

    Parameters
    ----------
    mode : str
        ``"standalone"`` (its own microphone button), ``"panel"`` (inside :class:`SessionPanel`, whose
        Start/Stop and Mute are the only controls) or ``"ptt"`` (inside :class:`PushToTalk`).
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

    Page side, per widget (no globals): each view's root element has ``data-testid="nova-live"`` and
    ``data-widget-id`` = :attr:`_id`; its ``novaLive`` property has ``state()``, ``events(type)``,
    ``on(type, fn)`` and ``waitFor(type, pred, ms)`` for the events "frame", "started", "played",
    "flushed", "state", "control" and "error" (see live.js). The page's state also arrives here, in
    :attr:`page_state`.
    """

    _esm = _HERE / "live.js"
    #: Identifies this widget's audio engine in the page (one per widget, however many views).
    _id = traitlets.Unicode().tag(sync=True)
    #: The AudioWorklet module's source, sent once; the page loads it from a Blob URL.
    _worklet = traitlets.Unicode((_HERE / "audio_worklet.js").read_text(encoding="utf-8")).tag(sync=True)
    mode = traitlets.Unicode("standalone").tag(sync=True)
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
    #: Muted: frames are replaced by silence of the same length (the stream goes on).
    muted = traitlets.Bool(False).tag(sync=True)
    #: Set by the owner (panel or push-to-talk): the state its controls show, and a sentence about it.
    control_state = traitlets.Unicode("").tag(sync=True)
    control_detail = traitlets.Unicode("").tag(sync=True)
    #: Set by the page (at most 4 times a second, at once on a flush or error): its counters and clocks.
    page_state = traitlets.Dict().tag(sync=True)

    def __init__(self, mode: str = "standalone", **kwargs: Any) -> None:
        if mode not in MODES:
            raise ConfigError(f"LiveAudio mode must be one of {', '.join(MODES)}; got {mode!r}")
        kwargs.setdefault("_id", uuid.uuid4().hex)
        super().__init__(mode=mode, **kwargs)
        self._lock = threading.RLock()
        self._frame_callbacks: list[FrameCallback] = []
        self._control_callbacks: list[ControlCallback] = []
        self._seq = itertools.count()
        self._flush_tokens = itertools.count(1)
        self._flush_sent: dict[int, tuple[float, float | None, str | None]] = {}
        self._session: S2SSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frames: asyncio.Queue[bytes] = asyncio.Queue()
        self._holding = False
        self._held: deque[bytes] = deque()
        self._filling = False
        self._expect: tuple[Any, int] | None = None  # (epoch, next seq) of the page's frames
        self._arrivals: deque[float] = deque(maxlen=int(FPS_WINDOW_S * 1000 / 10))
        self._kstats_at = 0.0
        self.view_seen = threading.Event()
        #: Timing, in seconds, appended from whatever thread measured them (deque appends are atomic).
        #: Frame latency: captured in the page's AudioWorklet → the kernel's handler has it.
        self.frame_latency_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: The page's main thread posted the frame → the kernel's handler has it (transport only).
        self.frame_transport_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: kernel play() → the page's worklet rendered the first sample (a fresh start, not queued).
        self.playback_start_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: kernel play() → that sample leaves the speakers (adds the device's output latency).
        self.playback_audible_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: kernel → page transport of play/flush messages (received by the page's main thread).
        self.to_page_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: flush() → the first silent sample leaves the speakers / the audio thread emptied its queue.
        self.flush_latency_s: deque[float] = deque(maxlen=STATS_KEEP)
        self.flush_handled_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: The interruption signal arrived in the kernel → silence at the speaker (barge-in flushes).
        self.barge_in_s: deque[float] = deque(maxlen=STATS_KEEP)
        #: Per interrupted reply (content id): the barge-in's figures, once the page reports the flush.
        self.flush_results: dict[str, dict[str, float]] = {}
        #: Every barge-in flush the page reported: signal time (monotonic), content id and figures.
        self.barge_ins: deque[dict[str, Any]] = deque(maxlen=1000)
        self._flushed_content: str | None = None
        self.frames_received = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.frames_unrouted = 0
        self.frames_after_close = 0
        self.gaps = 0
        self.silence_fills = 0
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
            at = content.get("at")
            at_mono = _wall_to_monotonic(at) if isinstance(at, int | float) and at > 0 else None
            self._on_loop(
                self._report, content.get("id"), content.get("played_s"), bool(content.get("final")), at_mono
            )
        elif kind == "started":
            sent = content.get("sent")
            if isinstance(sent, int | float) and sent > 0:
                self._since(self.playback_start_s, sent, content.get("rendered"))
                self._since(self.playback_audible_s, sent, content.get("at"))
                self._since(self.to_page_s, sent, content.get("received"))
        elif kind == "flushed":
            self._flushed(content)
        elif kind == "control":
            with self._lock:
                callbacks = tuple(self._control_callbacks)
            for callback in callbacks:
                try:
                    callback(content)
                except Exception:
                    log.exception("control callback failed")
        elif kind == "hello":
            self.view_seen.set()
            self._send_kstats(force=True)

    @staticmethod
    def _since(into: deque[float], start_ms: float, end_ms: Any) -> None:
        if isinstance(end_ms, int | float) and end_ms > 0:
            into.append((end_ms - start_ms) / 1000.0)

    def _flushed(self, content: dict[str, Any]) -> None:
        token = content.get("token")
        with self._lock:
            sent = self._flush_sent.pop(token, None) if isinstance(token, int) else None
        if sent is None:
            return
        sent_at, signal_t, content_id = sent
        at, handled = content.get("at"), content.get("handled")
        self._since(self.flush_latency_s, sent_at * 1000.0, at)
        self._since(self.flush_handled_s, sent_at * 1000.0, handled)
        self._since(self.to_page_s, sent_at * 1000.0, content.get("received"))
        if signal_t is not None and isinstance(at, int | float) and at > 0:
            result = {"signal_to_silence_s": _wall_to_monotonic(at) - signal_t}
            if isinstance(handled, int | float) and handled > 0:
                result["signal_to_emptied_s"] = _wall_to_monotonic(handled) - signal_t
            dropped = content.get("dropped")
            if isinstance(dropped, int | float):
                result["dropped_s"] = dropped / max(self.output_rate, 1)
            self.barge_in_s.append(result["signal_to_silence_s"])
            self.barge_ins.append({"signal_t": signal_t, "content_id": content_id, **result})
            if content_id:
                self.flush_results[content_id] = result

    def _frame(self, frame: bytes, content: dict[str, Any]) -> None:
        now = time.time()
        captured, sent = content.get("captured"), content.get("sent")
        if isinstance(captured, int | float) and captured > 0:
            self.frame_latency_s.append(now - captured / 1000.0)
        elif isinstance(sent, int | float) and sent > 0:  # a page without capture stamps
            self.frame_latency_s.append(now - sent / 1000.0)
        if isinstance(sent, int | float) and sent > 0:
            self.frame_transport_s.append(now - sent / 1000.0)
        rms = content.get("rms")
        if isinstance(rms, int | float):
            self.last_rms = float(rms)
        seq, epoch = content.get("seq"), content.get("epoch")
        if isinstance(seq, int) and epoch is not None:
            with self._lock:
                # A new epoch is a new opening of the microphone: its frames count from 0 again.
                if self._expect is not None and self._expect[0] == epoch and seq > self._expect[1]:
                    self.gaps += seq - self._expect[1]
                self._expect = (epoch, seq + 1)
        self.deliver_frame(frame, time.monotonic())

    def deliver_frame(self, frame: bytes, timestamp: float | None = None) -> None:
        """Hand one frame of input-rate PCM to the callbacks and the attached session (thread-safe).

        The page calls this for every microphone frame; :meth:`feed_file` and push-to-talk call it
        without a page. Where the frame went is counted (:meth:`stats`), never silently lost.
        """
        if self.muted:
            # Muted still streams: the model measures turns in audio time, so silence must flow.
            frame = bytes(len(frame))
        t = time.monotonic() if timestamp is None else timestamp
        with self._lock:
            self.frames_received += 1
            self._arrivals.append(t)
            callbacks = tuple(self._frame_callbacks)
            # Routing and scheduling under one lock: frames reach the session's queue in order, held
            # frames before the ones that follow them.
            if self._session is not None:
                self._on_loop(self._enqueue_frame, frame)
            elif self._holding:
                if len(self._held) >= HOLD_MAX:
                    self._held.popleft()
                    self.frames_dropped += 1
                self._held.append(frame)
            elif not callbacks:
                self.frames_unrouted += 1
        for callback in callbacks:
            try:
                callback(frame, t)
            except Exception:
                log.exception("frame callback failed")
        self._send_kstats()

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

    def on_control(self, callback: ControlCallback) -> Callable[[], None]:
        """Call ``callback(message)`` when a control in the page is pressed; returns a remover.

        ``message["action"]`` is ``"start"``, ``"stop"``, ``"mute"`` (with ``value``), ``"record"`` or
        ``"send"``. Runs on the thread that received it; the owner (panel, push-to-talk) acts on it.
        """
        with self._lock:
            self._control_callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._control_callbacks:
                    self._control_callbacks.remove(callback)

        return remove

    def hold(self, on: bool = True) -> None:
        """Hold frames for a session that is opening (``on=True``) instead of counting them unrouted.

        The next :meth:`attach` sends the held frames first. ``hold(False)`` without a session counts
        what was held as unrouted (a Start that was cancelled before its session opened).
        """
        with self._lock:
            self._holding = on
            if not on and self._session is None and self._held:
                self.frames_unrouted += len(self._held)
                self._held.clear()
        self._send_kstats(force=True)

    def _on_loop(self, fn: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    @property
    def route(self) -> str:
        """Where frames go now: "session", "holding", "callbacks" or "none"."""
        if self._session is not None:
            return "session"
        if self._holding:
            return "holding"
        return "callbacks" if self._frame_callbacks else "none"

    def _send_kstats(self, force: bool = False) -> None:
        """Tell the page what became of its frames (throttled)."""
        now = time.monotonic()
        if not force and now - self._kstats_at < KSTATS_EVERY_S:
            return
        self._kstats_at = now
        recent = list(itertools.islice(reversed(self.frame_latency_s), 250))
        try:
            self.send(
                {
                    "type": "kstats",
                    "route": self.route,
                    "frames_received": self.frames_received,
                    "frames_sent": self.frames_sent,
                    "frames_held": len(self._held),
                    "frames_unrouted": self.frames_unrouted,
                    "frames_dropped": self.frames_dropped,
                    "gaps": self.gaps,
                    "muted": self.muted,
                    "filling": self._filling,
                    "frames_per_second": self.frames_per_second,
                    "frame_p95_ms": percentiles(recent).get("p95"),
                }
            )
        except Exception:  # no front end (a closed comm): nothing to tell
            log.debug("kstats not sent", exc_info=True)

    @property
    def frames_per_second(self) -> float:
        """Frames received per second over the last two seconds."""
        now = time.monotonic()
        with self._lock:
            recent = sum(1 for t in self._arrivals if t > now - FPS_WINDOW_S)
        return round(recent / FPS_WINDOW_S, 1)

    # -- session side (on the session's loop) ------------------------------------------------------

    def _enqueue_frame(self, frame: bytes) -> None:
        queue = self._frames
        if queue.qsize() >= FRAME_BACKLOG_MAX:
            queue.get_nowait()
            queue.task_done()
            with self._lock:
                self.frames_dropped += 1
        queue.put_nowait(frame)

    def _report(self, content_id: Any, played_s: Any, final: bool, at: float | None = None) -> None:
        session = self._session
        if session is None or not isinstance(content_id, str) or not content_id:
            return
        if not isinstance(played_s, int | float) or played_s < 0:
            return
        try:
            session.report_playback(content_id, float(played_s), final=final, at=at)
        except Exception:
            log.exception("report_playback failed")

    async def _send_frames(self, session: S2SSession) -> None:
        frames = self._frames
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(frames.get(), STARVE_S)
                except TimeoutError:
                    # No microphone frames: feed the session silence, as a muted microphone does.
                    if not session.closed and not session.paused:
                        session.pause()
                        self._filling = True
                        self.silence_fills += 1
                        self._send_kstats(force=True)
                    continue
                if session.closed:
                    with self._lock:
                        self.frames_after_close += 1 + frames.qsize()
                    return
                if self._filling:
                    self._filling = False
                    session.resume()
                try:
                    await session.send_audio(frame)
                finally:
                    frames.task_done()
                with self._lock:
                    self.frames_sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the session failed: it reports that itself, as an event
            log.info("live audio stopped sending: %s", exc)
        finally:
            if self._filling:
                self._filling = False
                if not session.closed:
                    session.resume()

    async def drain(self, timeout: float = 2.0) -> bool:
        """Wait (on the session's loop) until the frames handed over so far were sent; True if so."""
        await asyncio.sleep(0)  # let frames scheduled with call_soon_threadsafe reach the queue
        try:
            await asyncio.wait_for(self._frames.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def _play_replies(self, session: S2SSession) -> None:
        async for chunk in session.receive_audio():
            if chunk.interrupted:
                if chunk.content_id is None or chunk.content_id != self._flushed_content:
                    self.flush(content_id=chunk.content_id)
            elif chunk.audio:
                self.play(chunk)

    def attach(
        self, session: S2SSession, *, loop: asyncio.AbstractEventLoop | None = None, play: bool = True
    ) -> Callable[[], None]:
        """Stream this widget's microphone into ``session`` and play its replies in the page.

        Call from the session's event loop (or pass ``loop`` and call from its thread). Frames go to
        ``session.send_audio`` in order (held frames first); when none come for ``STARVE_S`` the
        session is fed silence until they do. Playback positions go to ``session.report_playback``
        (on the page's playback clock); an interruption flushes the page at once (from the session's
        event, before the interrupted chunk is even read). With ``play=False`` the caller reads
        ``receive_audio()`` and calls :meth:`play` itself. Returns a function that detaches.
        """
        target = loop or asyncio.get_running_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not target:
            raise ConfigError(
                "LiveAudio.attach must be called on the session's event loop (its thread); "
                "schedule it there, e.g. with asyncio.run_coroutine_threadsafe"
            )
        with self._lock:
            if self._session is not None:
                raise ConfigError("this LiveAudio is already attached to a session: detach it first")
            self._frames = asyncio.Queue()
            self._loop = target
            self._session = session
            # The page sends input-rate PCM in its own 20 ms frames: send_audio takes bytes at the
            # input rate in any chunk size without converting them, and re-frames them to frame_ms.
            self.output_rate = session.config.output_sample_rate
            self.input_rate = session.config.input_sample_rate
            for frame in self._held:
                self._frames.put_nowait(frame)
            self._held.clear()
            self._holding = False
        tasks = [target.create_task(self._send_frames(session), name="live-audio-send")]
        if play:
            tasks.append(target.create_task(self._play_replies(session), name="live-audio-play"))

        def on_event(event: ev.Event) -> None:
            if isinstance(event, ev.Interruption):
                self._flushed_content = event.content_id
                self.flush(content_id=event.content_id, signal_t=event.timestamp)

        remove_listener = session.add_listener(on_event)
        self._send_kstats(force=True)

        def detach() -> None:
            remove_listener()
            for task in tasks:
                task.cancel()
            with self._lock:
                if self._session is session:
                    self._session = None
                    self._loop = None
            self._send_kstats(force=True)

        return detach

    @property
    def attached(self) -> bool:
        """Whether a session is attached (frames go to it)."""
        return self._session is not None

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

    def flush(self, *, content_id: str | None = None, signal_t: float | None = None) -> int:
        """Stop playback in the page now, dropping everything queued. Returns the flush's token.

        ``signal_t`` (monotonic) is when the interruption signal arrived: the page's report then gives
        the barge-in's signal → silence time for ``content_id`` (:attr:`flush_results`).
        """
        token = next(self._flush_tokens)
        with self._lock:
            if len(self._flush_sent) > 1000:  # a page that never answers must not grow this for ever
                self._flush_sent.clear()
            self._flush_sent[token] = (time.time(), signal_t, content_id)
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
        """Counters and latency percentiles (ms) measured so far (JSON-serialisable)."""
        with self._lock:
            counters = {
                "route": self.route,
                "frames_received": self.frames_received,
                "frames_sent": self.frames_sent,
                "frames_held": len(self._held),
                "frames_dropped": self.frames_dropped,
                "frames_unrouted": self.frames_unrouted,
                "frames_after_close": self.frames_after_close,
                "gaps": self.gaps,
                "silence_fills": self.silence_fills,
                "filling": self._filling,
                "muted": self.muted,
                "chunks_sent": self.chunks_sent,
                "flush_results": {k: dict(v) for k, v in self.flush_results.items()},
            }
        return {
            **counters,
            "frames_per_second": self.frames_per_second,
            "device_rate": self.device_rate,
            "mic_running": self.running,
            "mic_status": self.status,
            "mic_error": self.error,
            "handler_threads": sorted(self.handler_threads),
            "frame_latency_ms": percentiles(self.frame_latency_s),
            "frame_transport_ms": percentiles(self.frame_transport_s),
            "to_page_ms": percentiles(self.to_page_s),
            "playback_start_ms": percentiles(self.playback_start_s),
            "playback_audible_ms": percentiles(self.playback_audible_s),
            "flush_ms": percentiles(self.flush_latency_s),
            "flush_handled_ms": percentiles(self.flush_handled_s),
            "barge_in_ms": percentiles(self.barge_in_s),
            "page": dict(self.page_state),
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
