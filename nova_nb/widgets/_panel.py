"""SessionPanel: pick a provider, voice and latency target, press Start, talk.

The panel owns one session at a time, run on a :class:`~._runner.LoopThread` so it keeps going while
other cells run (or block). Its controls (Start/Stop, Mute) are drawn by its LiveAudio widget, so Start
opens the microphone inside the click and asks the kernel for the session in the same moment. Control
and microphone handlers arrive on whatever thread the kernel uses for comm messages (a subshell thread
in JupyterLab 4.6, else the main thread) and only hand work to that loop. Errors end up in the panel's
status line, never as tracebacks in the page. Code can wait for replies (:meth:`SessionPanel.
wait_for_turn`) or be told of them (:meth:`SessionPanel.on_turn`).
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np

from .. import s2s
from ..errors import ConfigError, StateError
from ..protocol import catalog
from ..s2s import events as ev
from ..s2s.config import LATENCY_TARGETS
from ..s2s.talk import say
from ..s2s.turns import TurnBuilder, TurnRecord
from ._live import LiveAudio, load_audio
from ._runner import LoopThread

log = logging.getLogger("nova_nb.widgets")

#: Turns whose players stay in the panel; older ones are dropped to keep the page light.
MAX_TURN_PLAYERS = 20
START_TIMEOUT_S = 60.0


def frontend_attached() -> bool:
    """Whether cells run in a front end that renders widgets (JupyterLab, Notebook 7, VS Code).

    ``NOVA_NB_HEADLESS=1`` (or ``0``) decides explicitly. Otherwise: inside an IPython kernel whose
    current request carries a ``cellId`` (front ends send it; nbval, nbclient and papermill do not).
    """
    forced = os.environ.get("NOVA_NB_HEADLESS", "").strip()
    if forced:
        return forced.lower() in ("0", "false", "no")
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent("shell")
    except Exception:
        return False
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    return isinstance(metadata, dict) and "cellId" in metadata


def _fmt_s(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"


#: Panel states. ready/stopped/error: no session and the microphone closed. starting: the session
#: and the microphone are opening (frames are held for the session). live: both open (or, for a file,
#: the session). stopping: both closing.
STATES = ("ready", "starting", "live", "stopping", "stopped", "error")
#: Wait this long at most, on Stop, for the page to confirm its microphone is closed (its last frames
#: arrive before that confirmation: one comm, in order).
MIC_CLOSE_WAIT_S = 1.5

TurnCallback = Callable[[TurnRecord], None]


def transcript_html(lines: list[dict[str, Any]]) -> str:
    """The transcript as HTML: roles, SPECULATIVE/FINAL stages, interruption marks (wraps, scrolls)."""
    rows = []
    for line in lines[-200:]:
        if line["role"] == "INTERRUPTION":
            rows.append('<div class="nova-interrupted" style="color:#b00020">■ interrupted (barge-in)</div>')
            continue
        stage = line["stage"] or ""
        style = "color:#777;font-style:italic" if stage == "SPECULATIVE" else ""
        rows.append(
            f'<div class="nova-line" data-role="{html.escape(line["role"])}" '
            f'data-stage="{html.escape(stage)}" style="{style}">'
            f"<b>{html.escape(line['role'].lower())}</b> "
            f'<small style="border:1px solid #aaa;border-radius:3px;padding:0 3px">'
            f"{html.escape(stage)}</small> "
            f"{html.escape(line['text'])}</div>"
        )
    return (
        '<div data-testid="nova-transcript" style="max-height:240px;overflow-y:auto;'
        'overflow-wrap:anywhere;font:13px sans-serif;max-width:100%">' + "".join(rows) + "</div>"
    )


class SessionPanel(w.VBox):
    """A complete voice session in one widget.

    One control owns the microphone: **Start** opens the microphone and the session together, **Stop**
    closes both, **Mute** (only while live) keeps the stream going with silence. A microphone that
    fails or closes during a session stops the session too, with the reason in the status line; a
    session that ends by itself closes the microphone. So no combination of microphone, session and
    mute can leave frames flowing into nothing or a session without frames.

    Parameters
    ----------
    provider : str
        Registered provider name (``s2s.providers()``); ``"local"`` needs no AWS account.
    voice : str, optional
        Voice id; default: the model's voice for ``language``.
    latency_target : str
        ``"low"``, ``"medium"`` or ``"high"`` (the model's end-of-turn sensitivity).
    language : str
        Locale used to list voices.
    context : s2s.ConversationContext, optional
        System prompt, history and tools of the conversation.
    provider_options : dict, optional
        More options for ``s2s.new_provider`` (e.g. ``{"engine": "scripted"}`` for the local one).

    Examples
    --------
    >>> panel = SessionPanel("local")               # doctest: +SKIP
    >>> panel                                       # doctest: +SKIP  (press Start, then talk)
    >>> turn = panel.wait_for_turn(timeout=60)      # doctest: +SKIP  (the next reply, once it ended)
    >>> panel.run_file("question.wav")              # doctest: +SKIP  (no browser: a file instead)
    """

    def __init__(
        self,
        provider: str = "local",
        *,
        voice: str | None = None,
        latency_target: str = "low",
        language: str = "en-US",
        context: s2s.ConversationContext | None = None,
        provider_options: dict[str, Any] | None = None,
    ) -> None:
        names = list(s2s.providers())
        model_id = s2s.default_config().model_id
        voices = catalog.MODELS[model_id].voices_for(language)
        voice = voice or catalog.default_voice(model_id, language)
        self.language = language
        self.context = context or s2s.ConversationContext()
        self.provider_options = dict(provider_options or {})
        picker = {"layout": w.Layout(width="auto"), "style": {"description_width": "initial"}}
        self.provider_picker = w.Dropdown(
            options=names, value=provider if provider in names else names[0], description="Provider", **picker
        )
        self.voice_picker = w.Dropdown(
            options=voices, value=voice if voice in voices else voices[0], description="Voice", **picker
        )
        self.latency_picker = w.Dropdown(
            options=list(LATENCY_TARGETS), value=latency_target, description="Latency", **picker
        )
        for name, widget in (
            ("provider", self.provider_picker),
            ("voice", self.voice_picker),
            ("latency", self.latency_picker),
        ):
            widget.add_class(f"nova-panel-pick-{name}")
        #: The microphone and speaker, and the panel's Start/Stop and Mute controls.
        self.live = LiveAudio(mode="panel")
        self.status = w.HTML()
        self.status.add_class("nova-panel-status")
        self.transcript = w.HTML("")
        self.transcript.add_class("nova-panel-transcript")
        self.latency = w.HTML("")
        self.latency.add_class("nova-panel-latency")
        self.players = w.VBox([])
        self.players.add_class("nova-panel-players")
        super().__init__(
            [
                w.HBox(
                    [self.provider_picker, self.voice_picker, self.latency_picker],
                    layout=w.Layout(flex_flow="row wrap", max_width="100%"),
                ),
                self.live,
                self.status,
                w.HTML("<b>Transcript</b>"),
                self.transcript,
                w.HTML("<b>Per-turn latency</b>"),
                self.latency,
                w.HTML("<b>Replies</b>"),
                self.players,
            ],
            layout=w.Layout(max_width="100%"),
        )
        self.add_class("nova-session-panel")
        # _lock guards the panel's state (start/stop/mute); _data guards what the session's events
        # fill (turns, transcript, counters). Order: _lock before _data, never the other way.
        self._lock = threading.RLock()
        self._data = threading.Condition(threading.RLock())
        self._runner: LoopThread | None = None
        self._generation = 0
        self._microphone = True
        self.session: s2s.S2SSession | None = None
        self._detach: Callable[[], None] | None = None
        self._removers: list[Callable[[], object]] = []
        self.lines: list[dict[str, Any]] = []
        #: The one turn model, fed the session's events and input frames; ``turns`` is its records.
        self.turn_model = TurnBuilder()
        self._players: dict[str, tuple[w.HTML, w.Audio]] = {}
        self._finished: list[TurnRecord] = []
        self._finished_ids: set[str] = set()
        self._wait_cursor = 0
        self._turn_callbacks: list[TurnCallback] = []
        self._played_s: dict[str, float] = {}
        self._barge_in_turn: dict[float, str] = {}  # interruption signal time → the turn it cut
        self._samples_sent = 0
        self._sessions = 0
        self.errors: list[str] = []
        self.events_seen = 0
        #: Threads that handled Start/Stop clicks (diagnostics: main thread or a subshell).
        self.control_threads: set[str] = set()
        self.interruptions = 0
        self._state = "ready"
        self._detail = ""
        self._set_state("ready", "Press Start, allow the microphone, and talk.")
        self.live.on_control(self._on_control)
        self.live.observe(self._on_mic, names=["running", "status"])

    # -- status ------------------------------------------------------------------------------------

    @property
    def turns(self) -> dict[str, TurnRecord]:
        """Each reply's record, by the content id of its first AUDIO block (a reply may come as
        several blocks, one per sentence: docs/PROTOCOL.md §12)."""
        with self._data:
            return {turn.content_id: turn for turn in self.turn_model.turns}

    @staticmethod
    def _status_html(state: str, detail: str = "") -> str:
        colour = {"error": "#b00020", "live": "#2a9d4b", "starting": "#c77700", "stopping": "#c77700"}.get(
            state, "#555"
        )
        return (
            f'<div data-testid="nova-panel-status" role="status" style="overflow-wrap:anywhere">'
            f'<span class="nova-state" data-state="{html.escape(state)}" style="color:{colour};'
            f'font-weight:bold">{html.escape(state)}</span> <span>{html.escape(detail)}</span></div>'
        )

    def _set_state(self, state: str, detail: str = "") -> None:
        self._state = state
        self._detail = detail
        self.status.value = self._status_html(state, detail)
        self.live.control_detail = detail
        self.live.control_state = state
        busy = state in ("starting", "live", "stopping")
        for picker in (self.provider_picker, self.voice_picker, self.latency_picker):
            picker.disabled = busy  # settings apply to the next session: not changeable during one
        with self._data:
            self._data.notify_all()  # wait_for_turn gives up at once on an error

    def _error(self, message: str) -> None:
        self.errors.append(message)
        self._set_state("error", message)

    @property
    def state(self) -> str:
        """``"ready"``, ``"starting"``, ``"live"``, ``"stopping"``, ``"stopped"`` or ``"error"``."""
        return self._state

    @property
    def muted(self) -> bool:
        """Whether the microphone is muted (the session gets silence instead)."""
        return bool(self.live.muted)

    # -- the page's controls (any thread) ----------------------------------------------------------

    def _on_control(self, message: dict[str, Any]) -> None:
        self.control_threads.add(threading.current_thread().name)
        action = message.get("action")
        if action == "start":
            self.start(wait=False)
        elif action == "stop":
            self.stop(wait=False)
        elif action == "mute":
            with self._lock:
                if self._state == "live":
                    self.mute(bool(message.get("value")))
                else:  # the button is disabled unless live; a click in flight says why it did nothing
                    self.live.control_detail = f"{self._detail} (Mute works only while live)"

    def _toggle(self) -> None:
        """What Start/Stop does: start when idle, else stop."""
        if self._state in ("starting", "live"):
            self.stop(wait=False)
        else:
            self.start(wait=False)

    def _on_mic(self, change: Any) -> None:
        """The page's microphone changed (any thread): go live, or stop if it failed or closed."""
        with self._lock:
            if not self._microphone or self._state not in ("starting", "live"):
                return
            running, status = self.live.running, self.live.status
            if running and self._state == "starting" and self.session is not None:
                self._go_live()
                return
            closed = change.name == "running" and change.old and not change.new
            if not (status == "error" or (closed and not running)):
                return
            message = self.live.error or "the microphone closed"
        self.stop(wait=False, error=f"microphone: {message}")

    def _go_live(self) -> None:
        session = self.session
        where = "microphone" if self._microphone else "no microphone: saying a file"
        voice = session.voice_id if session is not None else self.voice_picker.value
        self._set_state(
            "live",
            f"{self.provider_picker.value} · {voice} · latency {self.latency_picker.value} · {where}",
        )

    # -- start / stop / mute -----------------------------------------------------------------------

    def start(self, *, wait: bool = True, timeout: float = START_TIMEOUT_S, microphone: bool = True) -> None:
        """Open a session with the picked settings and the page's microphone, together.

        From a button (``wait=False``) it returns at once; the status line tells how it went. With
        ``microphone=False`` only the session opens (the headless file path). Does nothing while a
        session is starting, live or stopping.
        """
        with self._lock:
            if self._state in ("starting", "live", "stopping"):
                return
            self._generation += 1
            generation = self._generation
            self._microphone = microphone
            self._set_state(
                "starting",
                f"opening a {self.provider_picker.value} session"
                + (" and the microphone (allow it in the browser)…" if microphone else "…"),
            )
            if self._runner is None or not self._runner.alive:
                self._runner = LoopThread()
            runner = self._runner
            self.live.muted = False
            if microphone:
                self.live.hold(True)  # frames captured before the session opens are kept for it
                self.live.capture = True
        future = runner.submit(self._start(generation))
        if wait:
            try:
                future.result(timeout)
            except Exception as exc:  # reported in the panel
                log.debug("start failed: %s", exc)

    async def _start(self, generation: int) -> None:
        try:
            options = dict(self.provider_options)
            options.setdefault("latency_target", self.latency_picker.value)
            provider = s2s.new_provider(self.provider_picker.value, **options)
            if not isinstance(provider, s2s.StreamingS2SProvider):
                raise s2s.ConfigError(f"provider {provider.name!r} cannot stream audio")
            session = await provider.start_streaming(self.context, voice_id=self.voice_picker.value)
        except Exception as exc:
            with self._lock:
                if generation == self._generation:
                    self._generation += 1
                    self.live.capture = False
                    self.live.hold(False)
                    self._error(f"could not start: {exc}")
            raise
        runner = self._runner
        assert runner is not None
        with self._lock:
            if generation != self._generation or self._state != "starting":
                stale = True  # stopped (or restarted) while it was opening
            else:
                stale = False
                self.session = session
                self._sessions += 1
                with self._data:
                    self._samples_sent = 0
                self._removers = [
                    session.add_listener(self._on_event),
                    session.add_input_listener(self._on_input),
                ]
                self._detach = self.live.attach(session, loop=runner.loop)
                if not self._microphone or self.live.running:
                    self._go_live()
                else:
                    self._set_state("starting", "session open; waiting for the microphone (allow it)…")
        if stale:
            await session.close()

    def stop(
        self, *, wait: bool = True, timeout: float = 15.0, error: str | None = None, reason: str | None = None
    ) -> None:
        """Close the microphone and the session together.

        ``error`` ends in the "error" state with that message; ``reason`` says why it stopped.
        """
        with self._lock:
            if self._state not in ("starting", "live"):
                return
            self._generation += 1
            self._set_state("stopping", "closing the microphone and the session…")
            session = self.session
            runner = self._runner
            self.live.capture = False
        if runner is None or not runner.alive:
            self._finish_stop(error, reason)
            return
        future = runner.submit(self._stop(session, error, reason))
        if wait:
            try:
                future.result(timeout)
            except Exception as exc:
                log.debug("stop failed: %s", exc)

    async def _stop(self, session: s2s.S2SSession | None, error: str | None, reason: str | None) -> None:
        try:
            if self._microphone:
                # The page's last frames arrive before its "microphone closed" (one comm, in order):
                # wait for that (bounded), then let the frames reach the session before it closes.
                deadline = time.monotonic() + MIC_CLOSE_WAIT_S
                while self.live.running and time.monotonic() < deadline:  # noqa: ASYNC110 (a trait set by another thread)
                    await asyncio.sleep(0.02)
            if session is not None:
                await self.live.drain(1.0)
            with self._lock:
                detach, self._detach = self._detach, None
                removers, self._removers = self._removers, []
            if detach is not None:
                detach()
            if session is not None:
                await session.close()
            for remove in removers:
                remove()
        finally:
            self._finish_stop(error, reason)

    def _finish_stop(self, error: str | None, reason: str | None) -> None:
        with self._lock:
            self.session = None
            self.live.hold(False)
            self.live.muted = False
            if error:
                self._error(error)
            elif self._state != "error":
                self._set_state("stopped", reason or "session and microphone closed; press Start again")

    def mute(self, on: bool = True) -> None:
        """Mute (``on=True``) or unmute the microphone while live: muted, the session gets silence."""
        with self._lock:
            if self._state != "live":
                raise StateError(f"mute works only while the panel is live (it is {self._state})")
            self.live.muted = bool(on)
            self._go_live()
            if on:
                self._set_state("live", f"{self._detail} · muted (sending silence)")

    def close(self) -> None:
        """Stop the session, end the loop thread and close the widgets."""
        self.stop()
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        super().close()

    # -- observing turns from code -----------------------------------------------------------------

    def on_turn(self, callback: TurnCallback) -> Callable[[], None]:
        """Call ``callback(turn)`` once per reply when it has ended (all its audio received, or cut
        by a barge-in); returns a remover. Runs on the session's thread: keep it short."""
        with self._data:
            self._turn_callbacks.append(callback)

        def remove() -> None:
            with self._data:
                if callback in self._turn_callbacks:
                    self._turn_callbacks.remove(callback)

        return remove

    def wait_for_turn(self, timeout: float = 60.0, *, index: int | None = None) -> TurnRecord:
        """Wait until a reply has ended and return its :class:`TurnRecord` (thread-safe, bounded).

        Without ``index``: the next reply not yet returned by this method (so successive calls walk
        through the replies in order, none missed, even ones that ended before the call). With
        ``index``: the reply with that index. Raises TimeoutError after ``timeout`` seconds and
        StateError at once if the panel is in the error state. Never call it on the session's own
        thread (an ``on_turn`` callback); in a notebook cell, prefer ``await wait_for_turn_async()``.
        """
        runner = self._runner
        if runner is not None and threading.current_thread() is runner.thread:
            raise StateError(
                "wait_for_turn was called on the session's own thread, where it would wait for itself; "
                "use on_turn there"
            )
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        deadline = time.monotonic() + timeout
        with self._data:
            while True:
                if index is None:
                    if len(self._finished) > self._wait_cursor:
                        turn = self._finished[self._wait_cursor]
                        self._wait_cursor += 1
                        return turn
                else:
                    for turn in self._finished:
                        if turn.index == index:
                            return turn
                if self._state == "error":
                    raise StateError(
                        f"the panel stopped with an error: {self.errors[-1] if self.errors else ''}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no reply ended within {timeout:g} s (panel {self._state}: {self._detail}; "
                        f"{len(self._finished)} replies so far; "
                        f"{self.live.frames_received} microphone frames)"
                    )
                self._data.wait(remaining)

    async def wait_for_turn_async(self, timeout: float = 60.0, *, index: int | None = None) -> TurnRecord:
        """:meth:`wait_for_turn` without blocking the caller's event loop (e.g. a notebook cell)."""
        return await asyncio.to_thread(self.wait_for_turn, timeout, index=index)

    # -- what the session says (on the session's loop) ----------------------------------------------

    def _on_input(self, frame: bytes, timestamp: float, rate: int) -> None:
        with self._data:
            self._samples_sent += len(frame) // 2
            self.turn_model.input_audio(frame, timestamp, rate)

    def _on_event(self, event: ev.Event) -> None:
        try:
            finished = self._apply(event)
        except Exception:  # the panel must never break the session
            log.exception("panel could not show %s", event.kind)
            return
        if finished is not None:
            with self._data:
                callbacks = tuple(self._turn_callbacks)
            for callback in callbacks:
                try:
                    callback(finished)
                except Exception:
                    log.exception("on_turn callback failed")
        if isinstance(event, ev.SessionClosed) and event.reason != "closed":
            # The session ended by itself: close the microphone too (nothing may feed a dead session).
            failed = event.reason == "error"
            last = self.errors[-1] if self.errors else event.reason
            self.stop(
                wait=False,
                error=f"the session ended: {last}" if failed else None,
                reason=f"the session ended ({event.reason}); press Start for a new one",
            )

    def _apply(self, event: ev.Event) -> TurnRecord | None:
        """Update the turn model and the views; returns a turn that has just ended, if any."""
        with self._data:
            self.events_seen += 1
            turn = self.turn_model.feed(event)
            if isinstance(event, ev.Transcript):
                self.lines.append(
                    {
                        "role": event.role,
                        "stage": event.stage,
                        "text": event.text,
                        "content_id": event.content_id,
                    }
                )
                self.transcript.value = transcript_html(self.lines)
            elif isinstance(event, ev.AudioOutput):
                if turn is not None and turn.first_audio_t == event.timestamp:
                    self._render_latency()
            elif isinstance(event, ev.PlaybackReported):
                self._played_s[event.content_id] = event.played_s
                if turn is not None:
                    if turn.heard_t is not None and turn.heard_t == event.timestamp - event.played_s:
                        self._render_latency()  # the first report of this reply: it started to sound
                    if event.final and turn.interrupted:
                        self._render_latency()  # the barge-in's flush time is known now
                        if turn.content_id in self._players:
                            self._update_player(turn)
            elif isinstance(event, ev.Interruption):
                if turn is not None:  # the signal may name a later block of the reply, or none
                    self._barge_in_turn[event.timestamp] = turn.content_id
                self.interruptions += 1
                self.lines.append(
                    {"role": "INTERRUPTION", "stage": None, "text": "", "content_id": event.content_id}
                )
                self.transcript.value = transcript_html(self.lines)
                self._render_latency()
            elif isinstance(event, ev.ContentEnded):
                if turn is not None and turn.end_t == event.timestamp:
                    self._add_player(turn)
                    self._render_latency()
            elif isinstance(event, ev.StreamErrorEvent) and not event.recoverable:
                self.errors.append(f"{event.code}: {event.message}")
            if (
                turn is not None
                and turn.content_id not in self._finished_ids
                and (turn.end_t is not None or turn.interrupted)
            ):
                self._finished_ids.add(turn.content_id)
                self._finished.append(turn)
                self._data.notify_all()
                return turn
        return None

    def _barge_in_s(self, turn: TurnRecord) -> float | None:
        """The interruption signal → silence at the page's speaker, for a reply cut by a barge-in."""
        for flush in list(self.live.barge_ins):
            if self._barge_in_turn.get(flush["signal_t"]) == turn.content_id:
                value = flush.get("signal_to_silence_s")
                return float(value) if value is not None else None
        return None

    def _render_latency(self) -> None:
        headers = (
            "turn",
            "end of speech → first audio",
            "turn decision → first audio",
            "first audio → heard",
            "barge-in → silence",
            "reply length",
            "",
        )
        cell = "padding:2px 8px;text-align:left;vertical-align:top"
        head = "".join(f'<th style="{cell};white-space:normal">{h}</th>' for h in headers)
        rows = []
        for turn in self.turn_model.turns:
            flush = self._barge_in_s(turn)
            rows.append(
                f'<tr class="nova-turn" data-turn="{turn.index + 1}">'
                f'<td style="{cell}">{turn.index + 1}</td>'
                f'<td style="{cell}">{_fmt_s(turn.response_s)}</td>'
                f'<td style="{cell}">{_fmt_s(turn.decision_to_audio_s)}</td>'
                f'<td style="{cell}">{_fmt_s(turn.audio_to_heard_s)}</td>'
                f'<td style="{cell}">{_fmt_s(flush) if turn.interrupted else ""}</td>'
                f'<td style="{cell}">{turn.duration_s:.1f} s</td>'
                f'<td style="{cell}">{"■ interrupted" if turn.interrupted else ""}</td></tr>'
            )
        self.latency.value = (
            '<div data-testid="nova-latency" style="max-width:100%;overflow-x:auto">'
            '<table style="font:13px sans-serif;border-collapse:collapse">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            '<div style="font-size:12px;color:#555;overflow-wrap:anywhere">Measured live on one clock: '
            "end of speech is the last loud input frame sent; the turn decision is the model's FINAL user "
            "transcript; heard is when the page's audio output played the first sample; barge-in → "
            "silence runs from the interruption signal arriving to silence at the page's speaker.</div></div>"
        )

    def _add_player(self, turn: TurnRecord) -> None:
        if not turn.audio:
            return
        label = w.HTML()
        player = w.Audio(format="wav", autoplay=False, loop=False, layout=w.Layout(max_width="100%"))
        self._players[turn.content_id] = (label, player)
        self._update_player(turn)
        children = [*self.players.children, w.HBox([label, player], layout=w.Layout(flex_flow="row wrap"))]
        self.players.children = children[-MAX_TURN_PLAYERS:]
        for cid in list(self._players)[:-MAX_TURN_PLAYERS]:
            del self._players[cid]

    def _update_player(self, turn: TurnRecord) -> None:
        """An interrupted turn's player holds what was heard (known once the page reports the flush)."""
        label, player = self._players[turn.content_id]
        if turn.interrupted and turn.played_s > 0:
            label.value = (
                f"turn {turn.index + 1} (interrupted after {turn.played_s:.1f} of {turn.duration_s:.1f} s): "
            )
            player.value = turn.wav_bytes(heard=True)
        else:
            label.value = f"turn {turn.index + 1}{' (interrupted)' if turn.interrupted else ''}: "
            player.value = turn.wav_bytes()

    # -- without a browser -------------------------------------------------------------------------

    def run_file(
        self, source: str | Path | np.ndarray, *, sample_rate: int | None = None, timeout: float = 60.0
    ) -> TurnRecord | None:
        """Say what ``source`` holds (a WAV/WebM/... file or an array) and wait for the reply.

        The headless path: the audio goes through the same LiveAudio frame path as the microphone,
        followed by silence (as a live microphone keeps streaming) until the reply ends or
        ``timeout`` seconds pass. Starts a session (without the microphone) if none is running.
        Returns the reply's :class:`TurnRecord`, or None if none came (the status line says why).
        """
        samples = load_audio(source, sample_rate=sample_rate, target_rate=self.live.input_rate)
        if self._microphone and self.live.running and self.session is not None:
            raise StateError(
                "the microphone is live in this panel: press Stop before saying a file through it"
            )
        if self.session is None:
            self.start(wait=True, microphone=False)
        runner = self._runner
        if self.session is None or runner is None:
            return None
        try:
            return runner.run(self._say(samples, timeout), timeout + 5)
        except TimeoutError:
            self._error(f"no reply within {timeout:g} s")
            return None

    async def _say(self, samples: np.ndarray, timeout: float) -> TurnRecord | None:
        known = set(self.turns)
        session = self.session
        if session is None:
            return None

        async def deliver(frame: np.ndarray) -> None:
            # The microphone's path: through LiveAudio's callbacks to the session, as fast as it goes
            # (the model counts samples, not seconds).
            self.live.deliver_frame(frame.astype("<i2").tobytes())

        def replied(_quiet_s: float) -> bool:
            new = [t for cid, t in self.turns.items() if cid not in known]
            return bool(new) and new[-1].end_t is not None

        rate = self.live.input_rate
        await say(
            session,
            samples,
            sample_rate=rate,
            until=replied,
            pace=False,
            frame_s=self.live.frame_ms / 1000,
            timeout_s=timeout,
            send=deliver,
        )
        new = [t for cid, t in self.turns.items() if cid not in known]
        return new[-1] if new and new[-1].end_t is not None else None

    # -- state, for tests and notebooks --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The panel's state as plain data (JSON-serialisable), safe from any thread, kept after Stop."""
        with self._data:
            turns = [
                {
                    "index": t.index,
                    "content_id": t.content_id,
                    "response_s": t.response_s,
                    "decision_to_audio_s": t.decision_to_audio_s,
                    "audio_to_heard_s": t.audio_to_heard_s,
                    "barge_in_to_silence_s": self._barge_in_s(t),
                    "duration_s": t.duration_s,
                    "played_s": t.played_s,
                    "interrupted": t.interrupted,
                    "ended": t.ended_t is not None,
                    "user_text": t.user_text,
                    "reply_text": t.reply_text or t.speculative_text,
                }
                for t in self.turn_model.turns
            ]
            data = {
                "events": self.events_seen,
                "interruptions": self.interruptions,
                "transcript": [dict(line) for line in self.lines],
                "turns": turns,
                "turns_finished": len(self._finished),
                "played_s": dict(self._played_s),
                "audio_samples_sent": self._samples_sent,
                "sessions": self._sessions,
            }
        return {
            "state": self._state,
            "detail": self._detail,
            "errors": list(self.errors),
            **data,
            "muted": self.muted,
            "microphone": {
                "wanted": self._microphone and self._state in ("starting", "live"),
                "running": self.live.running,
                "status": self.live.status,
                "error": self.live.error,
            },
            "live": self.live.stats(),
            "control_threads": sorted(self.control_threads),
        }
