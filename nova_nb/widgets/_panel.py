"""SessionPanel: pick a provider, voice and latency target, press Start, talk.

The panel owns one session at a time, run on a :class:`~._runner.LoopThread` so it keeps going while
other cells run (or block). Button and microphone handlers arrive on whatever thread the kernel
uses for comm messages (a subshell thread in JupyterLab 4.6, else the main thread) and only hand work
to that loop. Errors end up in the panel's status line, never as tracebacks in the page.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np

from .. import s2s
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


class SessionPanel(w.VBox):
    """A complete voice session in one widget.

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
        self.provider_picker = w.Dropdown(
            options=names, value=provider if provider in names else names[0], description="Provider"
        )
        self.voice_picker = w.Dropdown(
            options=voices, value=voice if voice in voices else voices[0], description="Voice"
        )
        self.latency_picker = w.Dropdown(
            options=list(LATENCY_TARGETS), value=latency_target, description="Latency"
        )
        self.start_button = w.Button(description="Start", icon="play", button_style="success")
        self.start_button.add_class("nova-panel-start")
        self.mute_button = w.ToggleButton(description="Mute", icon="microphone-slash", value=False)
        self.mute_button.add_class("nova-panel-mute")
        self.live = LiveAudio()
        self.status = w.HTML(self._status_html("ready", "Press Start, allow the microphone, and talk."))
        self.status.add_class("nova-panel-status")
        self.transcript = w.HTML("")
        self.transcript.add_class("nova-panel-transcript")
        self.latency = w.HTML("")
        self.latency.add_class("nova-panel-latency")
        self.players = w.VBox([])
        self.players.add_class("nova-panel-players")
        super().__init__(
            [
                w.HBox([self.provider_picker, self.voice_picker, self.latency_picker]),
                w.HBox([self.start_button, self.mute_button, self.status]),
                self.live,
                w.HTML("<b>Transcript</b>"),
                self.transcript,
                w.HTML("<b>Per-turn latency</b>"),
                self.latency,
                w.HTML("<b>Replies</b>"),
                self.players,
            ]
        )
        self.add_class("nova-session-panel")
        self._lock = threading.RLock()
        self._runner: LoopThread | None = None
        self.session: s2s.S2SSession | None = None
        self._detach: Callable[[], None] | None = None
        self._removers: list[Callable[[], object]] = []
        self.lines: list[dict[str, Any]] = []
        #: The one turn model, fed the session's events and input frames; ``turns`` is its records.
        self.turn_model = TurnBuilder()
        self._players: dict[str, tuple[w.HTML, w.Audio]] = {}
        self.errors: list[str] = []
        self.events_seen = 0
        #: Threads that handled Start/Stop clicks (diagnostics: main thread or a subshell).
        self.control_threads: set[str] = set()
        self.interruptions = 0
        self._state = "ready"
        self.start_button.on_click(lambda _b: self._toggle())
        self.mute_button.observe(self._on_mute, names="value")

    # -- status ------------------------------------------------------------------------------------

    @property
    def turns(self) -> dict[str, TurnRecord]:
        """Each reply's record, by the content id of its first AUDIO block (a reply may come as
        several blocks, one per sentence: docs/PROTOCOL.md §12)."""
        return {turn.content_id: turn for turn in self.turn_model.turns}

    @staticmethod
    def _status_html(state: str, detail: str = "") -> str:
        colour = {"error": "#b00020", "live": "#2a9d4b", "starting": "#c77700"}.get(state, "#555")
        return (
            f'<span class="nova-state" data-state="{html.escape(state)}" style="color:{colour};'
            f'font-weight:bold">{html.escape(state)}</span> <span>{html.escape(detail)}</span>'
        )

    def _set_status(self, state: str, detail: str = "") -> None:
        self._state = state
        self.status.value = self._status_html(state, detail)

    def _error(self, message: str) -> None:
        self.errors.append(message)
        self._set_status("error", message)

    @property
    def state(self) -> str:
        """``"ready"``, ``"starting"``, ``"live"``, ``"stopped"`` or ``"error"``."""
        return self._state

    # -- start / stop ----------------------------------------------------------------------------

    def _toggle(self) -> None:
        self.control_threads.add(threading.current_thread().name)
        if self.session is None and self._state != "starting":
            self.start(wait=False)
        else:
            self.stop(wait=False)

    def _on_mute(self, change: dict[str, Any]) -> None:
        self.live.muted = bool(change["new"])

    def start(self, *, wait: bool = True, timeout: float = START_TIMEOUT_S) -> None:
        """Open a session with the picked settings and open the page's microphone.

        From a button (``wait=False``) it returns at once; the status line tells how it went.
        """
        with self._lock:
            if self.session is not None or self._state == "starting":
                return
            self._set_status("starting", f"opening a {self.provider_picker.value} session…")
            if self._runner is None or not self._runner.alive:
                self._runner = LoopThread()
            runner = self._runner
        future = runner.submit(self._start())
        if wait:
            try:
                future.result(timeout)
            except Exception as exc:  # reported in the panel
                log.debug("start failed: %s", exc)

    async def _start(self) -> None:
        try:
            options = dict(self.provider_options)
            options.setdefault("latency_target", self.latency_picker.value)
            provider = s2s.new_provider(self.provider_picker.value, **options)
            if not isinstance(provider, s2s.StreamingS2SProvider):
                raise s2s.ConfigError(f"provider {provider.name!r} cannot stream audio")
            session = await provider.start_streaming(self.context, voice_id=self.voice_picker.value)
        except Exception as exc:
            self._error(f"could not start: {exc}")
            raise
        runner = self._runner
        assert runner is not None
        with self._lock:
            self.session = session
            self._removers = [
                session.add_listener(self._on_event),
                session.add_input_listener(self._on_input),
            ]
            self._detach = self.live.attach(session, loop=runner.loop)
        self.start_button.description = "Stop"
        self.start_button.icon = "stop"
        self.start_button.button_style = "danger"
        self._set_status(
            "live", f"{provider.name} · {session.voice_id} · latency {self.latency_picker.value}"
        )
        self.live.capture = True

    def stop(self, *, wait: bool = True, timeout: float = 15.0) -> None:
        """Close the session and the microphone."""
        self.live.capture = False
        with self._lock:
            session = self.session
            runner = self._runner
        if session is None or runner is None:
            return
        future = runner.submit(self._stop(session))
        if wait:
            try:
                future.result(timeout)
            except Exception as exc:
                log.debug("stop failed: %s", exc)

    async def _stop(self, session: s2s.S2SSession) -> None:
        with self._lock:
            detach, self._detach = self._detach, None
            removers, self._removers = self._removers, []
        if detach is not None:
            detach()
        try:
            await session.close()
        finally:
            for remove in removers:
                remove()
            with self._lock:
                self.session = None
            self.start_button.description = "Start"
            self.start_button.icon = "play"
            self.start_button.button_style = "success"
            if self._state != "error":
                self._set_status("stopped", "session closed")

    def close(self) -> None:
        """Stop the session, end the loop thread and close the widgets."""
        self.stop()
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        super().close()

    # -- what the session says (on the session's loop) ----------------------------------------------

    def _on_input(self, frame: bytes, timestamp: float, rate: int) -> None:
        self.turn_model.input_audio(frame, timestamp, rate)

    def _on_event(self, event: ev.Event) -> None:
        try:
            self._apply(event)
        except Exception:  # the panel must never break the session
            log.exception("panel could not show %s", event.kind)

    def _apply(self, event: ev.Event) -> None:
        self.events_seen += 1
        turn = self.turn_model.feed(event)
        if isinstance(event, ev.Transcript):
            self.lines.append(
                {"role": event.role, "stage": event.stage, "text": event.text, "content_id": event.content_id}
            )
            self._render_transcript()
        elif isinstance(event, ev.AudioOutput):
            if turn is not None and turn.first_audio_t == event.timestamp:
                self._render_latency()
        elif isinstance(event, ev.PlaybackReported):
            if turn is not None:
                if turn.heard_t is not None and turn.heard_t == event.timestamp - event.played_s:
                    self._render_latency()  # the first report of this reply: it started to sound
                if event.final and turn.interrupted and turn.content_id in self._players:
                    self._update_player(turn)
        elif isinstance(event, ev.Interruption):
            self.interruptions += 1
            self.lines.append(
                {"role": "INTERRUPTION", "stage": None, "text": "", "content_id": event.content_id}
            )
            self._render_transcript()
        elif isinstance(event, ev.ContentEnded):
            if turn is not None and turn.end_t == event.timestamp:
                self._add_player(turn)
                self._render_latency()
        elif isinstance(event, ev.StreamErrorEvent):
            self._error(f"{event.code}: {event.message}")
        elif isinstance(event, ev.SessionClosed) and event.reason != "closed" and self._state != "error":
            self._set_status("stopped", f"the session ended ({event.reason})")

    def _render_transcript(self) -> None:
        rows = []
        for line in self.lines[-200:]:
            if line["role"] == "INTERRUPTION":
                rows.append(
                    '<div class="nova-interrupted" style="color:#b00020">■ interrupted (barge-in)</div>'
                )
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
        self.transcript.value = (
            '<div style="max-height:240px;overflow-y:auto;font:13px sans-serif">' + "".join(rows) + "</div>"
        )

    def _render_latency(self) -> None:
        head = "".join(
            f"<th>{h}</th>"
            for h in ("turn", "end of speech → audio", "decision → audio", "audio → heard", "length", "")
        )
        rows = []
        for turn in self.turns.values():
            rows.append(
                f'<tr class="nova-turn"><td>{turn.index + 1}</td><td>{_fmt_s(turn.response_s)}</td>'
                f"<td>{_fmt_s(turn.decision_to_audio_s)}</td><td>{_fmt_s(turn.audio_to_heard_s)}</td>"
                f"<td>{turn.duration_s:.1f} s</td><td>{'■ interrupted' if turn.interrupted else ''}</td></tr>"
            )
        self.latency.value = f'<table style="font:13px sans-serif"><tr>{head}</tr>{"".join(rows)}</table>'

    def _add_player(self, turn: TurnRecord) -> None:
        if not turn.audio:
            return
        label = w.HTML()
        player = w.Audio(format="wav", autoplay=False, loop=False)
        self._players[turn.content_id] = (label, player)
        self._update_player(turn)
        children = [*self.players.children, w.HBox([label, player])]
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
        ``timeout`` seconds pass. Starts a session first if none is running. Returns the reply's
        :class:`TurnRecord`, or None if none came (the status line says why).
        """
        samples = load_audio(source, sample_rate=sample_rate, target_rate=self.live.input_rate)
        if self.session is None:
            self.start(wait=True)
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
        """The panel's state as plain data (JSON-serialisable)."""
        session = self.session
        return {
            "state": self._state,
            "errors": list(self.errors),
            "events": self.events_seen,
            "interruptions": self.interruptions,
            "transcript": [dict(line) for line in self.lines],
            "turns": [
                {
                    "index": t.index,
                    "content_id": t.content_id,
                    "response_s": t.response_s,
                    "decision_to_audio_s": t.decision_to_audio_s,
                    "audio_to_heard_s": t.audio_to_heard_s,
                    "duration_s": t.duration_s,
                    "played_s": t.played_s,
                    "interrupted": t.interrupted,
                    "ended": t.ended_t is not None,
                }
                for t in list(self.turns.values())
            ],
            "played_s": dict(session.played_s) if session is not None else {},
            "audio_samples_sent": session.audio_samples_sent if session is not None else 0,
            "live": self.live.stats(),
            "control_threads": sorted(self.control_threads),
        }
