"""The seed tutorial's verification, measured instead of assumed.

The Go tutorial this project comes from ends with: *say "Hello, who are you?"; you should hear a voice
reply within 500 ms; then interrupt it.* :func:`verify_seed` does exactly that against any streaming
provider, at real-time pace, and judges what it measured:

* three readings of "within 500 ms", each from the one turn model (:mod:`nova_nb.s2s.turns`):
  end of the user's speech (the recorder's energy detector) → first audio, the turn decision (USER FINAL
  transcript) → first audio, and the service's own end of speech (``userSpeechEnd``, when the service
  sends it) → first audio. Each gets PASS or FAIL against the budget, or :data:`NOT_SENT` when the
  service sent no ``userSpeechEnd``: a missing event never becomes a number.
* the interruption: a spoken interjection over the reply, then whether playback stopped before the
  reply's end, how fast (speech onset → interruption signal → flush), and how much of the reply was heard.

The first reading cannot meet 500 ms with any Nova Sonic setting: the service only decides that a turn
is over after a pause of silence (the endpointing pause, 1.5–2 s; docs/PROTOCOL.md §6, §11), so that row
is reported and judged, not redefined. Every row says what produced its figure; under the local emulator
several figures are the emulator's rules, not a model's behaviour, and say so.

Everything is measured on the recording clock of a :class:`~nova_nb.analysis.recording.Recording`
(``docs/RECORDING.md``), so the verdict can be recomputed from the saved ``events.jsonl``.
"""

from __future__ import annotations

import html
import math
import numbers
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ..s2s import StreamingS2SProvider
from .experiments import endpointing_pause_s, run_conversation
from .latency import BargeIn, Turn, barge_ins, turns
from .recording import Recording

__all__ = [
    "NOT_SENT",
    "SEED_BUDGET_S",
    "SEED_QUESTION",
    "SeedMeasure",
    "SeedVerdict",
    "judge",
    "seed_verdict",
    "verify_seed",
]

#: What the seed tutorial asks the model.
SEED_QUESTION: Final = "Hello, who are you?"
#: The seed's budget: "you should hear a voice reply within 500 ms".
SEED_BUDGET_S: Final = 0.5
#: The verdict of a latency whose start event the service never sent.
NOT_SENT: Final = "n/a — not sent"
#: Shown instead of a value when the service sent no ``userSpeechEnd``.
NOT_SENT_VALUE: Final = "not sent by this provider"
#: Verdict of a row the seed sets no budget for (reported, not judged).
NO_BUDGET: Final = "—"
#: Provider names whose figures come from the local emulator's rules.
EMULATED_PROVIDERS: Final = frozenset({"local"})


def _seconds(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number of seconds; got {value!r}")
    number = float(value)
    if number < 0 or (positive and number == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'} seconds; got {value!r}")
    return number


def judge(value_s: float | None, budget_s: float = SEED_BUDGET_S) -> str:
    """PASS when a latency is within the budget, FAIL when over, :data:`NOT_SENT` when there is none.

    Parameters
    ----------
    value_s : float or None
        A measured latency in seconds; ``None`` when the event it starts from never arrived.
    budget_s : float
        The budget in seconds (> 0).

    Examples
    --------
    >>> judge(0.31), judge(1.62), judge(None)
    ('PASS', 'FAIL', 'n/a — not sent')
    """
    budget = _seconds("budget_s", budget_s, positive=True)
    if value_s is None:
        return NOT_SENT
    if isinstance(value_s, bool) or not isinstance(value_s, numbers.Real) or math.isnan(value_s):
        raise ConfigError(f"value_s must be a number of seconds or None; got {value_s!r}")
    return "PASS" if float(value_s) <= budget else "FAIL"


@dataclass(frozen=True)
class SeedMeasure:
    """One row of the verdict: a figure, the budget it is judged against, and where it came from."""

    measure: str
    value: float | bool | None
    shown: str
    budget: str
    verdict: str
    produced_by: str


@dataclass(frozen=True)
class SeedVerdict:
    """What :func:`verify_seed` measured and how each figure was judged (shows as a table)."""

    provider: str
    model_id: str | None
    budget_s: float
    pause_s: float
    interrupt_after_s: float
    question_text: str
    recording: Recording
    turn: Turn | None
    barge_in: BargeIn | None
    playback_stopped: bool
    speech_onset_t: float | None
    unplayed_s: float | None
    measures: tuple[SeedMeasure, ...]

    @property
    def emulated(self) -> bool:
        """Whether the figures come from the local emulator (several are its rules, not a model's)."""
        return self.provider in EMULATED_PROVIDERS

    @property
    def verdicts(self) -> dict[str, str]:
        """``{measure: verdict}`` for every row."""
        return {m.measure: m.verdict for m in self.measures}

    def measure(self, name: str) -> SeedMeasure:
        """The row called ``name``."""
        for m in self.measures:
            if m.measure == name:
                return m
        raise KeyError(f"no measure {name!r}; the rows are {[m.measure for m in self.measures]}")

    @property
    def passed(self) -> bool:
        """Every judged row (PASS/FAIL) passed; rows without a budget or without a value do not count."""
        return all(m.verdict == "PASS" for m in self.measures if m.verdict in ("PASS", "FAIL"))

    # Figures, for code that wants the numbers (seconds; None when not measured).
    @property
    def response_s(self) -> float | None:
        return None if self.turn is None else self.turn.response_s

    @property
    def decision_to_audio_s(self) -> float | None:
        return None if self.turn is None else self.turn.decision_to_audio_s

    @property
    def service_response_s(self) -> float | None:
        return None if self.turn is None else self.turn.service_response_s

    @property
    def onset_to_signal_s(self) -> float | None:
        if self.barge_in is None or self.speech_onset_t is None:
            return None
        return self.barge_in.signal_t - self.speech_onset_t

    @property
    def onset_to_stop_s(self) -> float | None:
        """Your speech onset → the flush: a player's playback report if one came, else the interrupted
        end of the reply reaching ``receive_audio()`` (see :class:`BargeIn`); not audible silence, which
        a real player reaches only after its own output latency."""
        if self.barge_in is None or self.barge_in.flush_t is None or self.speech_onset_t is None:
            return None
        return self.barge_in.flush_t - self.speech_onset_t

    def _repr_html_(self) -> str:
        model = f", {self.model_id}" if self.model_id else ""
        heard = self.turn.user_text if self.turn is not None else None
        said = self.turn.speculative_text or self.turn.reply_text if self.turn is not None else None
        lines = [
            f"<b>The seed's verification</b> — provider <code>{html.escape(self.provider)}</code>"
            f"{html.escape(model)}, paced in real time, budget {self.budget_s * 1000:.0f} ms",
            f"asked: “{html.escape(self.question_text)}” · "
            f"heard as: “{html.escape(heard or '(no transcript)')}” · "
            f"reply: “{html.escape(said or '(no reply)')}”",
        ]
        # Left-aligned and wrapping, so the table fits a notebook's width instead of being clipped.
        base = "text-align:left; white-space:normal; vertical-align:top; padding:2px 8px"
        cell = f"style='{base}'"
        head = "".join(
            f"<th {cell}>{h}</th>" for h in ("measure", "value", "budget", "verdict", "what produced it")
        )
        colour = {"PASS": "#1a7f37", "FAIL": "#cf222e"}
        body = "".join(
            "<tr>"
            + f"<td {cell}>{html.escape(m.measure)}</td>"
            + f"<td {cell}>{html.escape(m.shown)}</td>"
            + f"<td {cell}>{html.escape(m.budget)}</td>"
            + f"<td {cell}><b style='color:{colour.get(m.verdict, 'inherit')}'>"
            + f"{html.escape(m.verdict)}</b></td>"
            + f"<td style='{base}; max-width:34em'>{html.escape(m.produced_by)}</td>"
            + "</tr>"
            for m in self.measures
        )
        table = (
            "<table style='table-layout:auto; max-width:100%'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
        return "<br>".join(lines) + table

    def __str__(self) -> str:
        rows = [
            f"{m.measure}: {m.shown} (budget {m.budget}) {m.verdict} — {m.produced_by}" for m in self.measures
        ]
        return "\n".join(rows)


def _check_audio(name: str, pcm: object) -> npt.NDArray[np.int16]:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1 or pcm.size == 0:
        raise ConfigError(
            f"{name} must be non-empty int16 mono samples at the provider's input rate (shape (n,)), e.g. "
            "from nova_nb.emulator.engine.testaudio.make_utterance or nova_nb.audio.load_audio; got "
            + (f"{pcm.dtype} {pcm.shape}" if isinstance(pcm, np.ndarray) else type(pcm).__name__)
        )
    return pcm


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f} ms"


def _speech_onset(events: list[dict[str, Any]], after: float, until: float) -> float | None:
    """The last start of user speech the recorder's energy detector saw in ``(after, until]``."""
    starts = [e["t"] for e in events if e["kind"] == "UserSpeechStarted" and after < e["t"] <= until]
    return max(starts) if starts else None


def _unplayed_s(rec: Recording, barge: BargeIn) -> float | None:
    """Seconds of the interrupted reply that were received but never played (flushed), if known.

    The session's ``Interruption`` says how much audio it dropped before handing it out; the recorder's
    simulated real-time player (``PlayerFlushed``) how much it still had queued.
    """
    dropped = None
    for e in rec.events:
        if e.get("content_id") != barge.content_id or e["t"] < barge.signal_t - 1e-9:
            continue
        if e["kind"] == "Interruption" and dropped is None:
            dropped = float(e.get("dropped_bytes") or 0) / 2 / rec.output_rate
        elif e["kind"] == "PlayerFlushed":
            return (dropped or 0.0) + float(e.get("dropped_s") or 0.0)
    return dropped


def _audio_after(rec: Recording, turn_list: list[Turn], barge: BargeIn) -> float:
    """Seconds of reply audio that arrived after the flush and before the next reply began."""
    later = [t.first_audio_t for t in turn_list[barge.turn_index + 1 :] if t.first_audio_t is not None]
    end = min(later, default=math.inf)
    start = barge.flush_t if barge.flush_t is not None else barge.signal_t
    return sum(
        float(e.get("duration_s") or 0.0) for e in rec.of("AudioOutput") if start < e["t"] < end - 1e-9
    )


async def verify_seed(
    provider: StreamingS2SProvider,
    question: npt.NDArray[np.int16],
    interjection: npt.NDArray[np.int16],
    *,
    question_text: str = SEED_QUESTION,
    budget_s: float = SEED_BUDGET_S,
    interrupt_after_s: float = 1.0,
    folder: str | os.PathLike[str] | None = None,
    voice_id: str | None = None,
    timeout_s: float = 60.0,
) -> SeedVerdict:
    """Ask the seed's question in real time, judge the reply's latency, then interrupt the reply.

    Parameters
    ----------
    provider : StreamingS2SProvider
        Any streaming provider: ``s2s.new_provider("local", ...)`` or ``"amazon_nova"``.
    question : numpy.ndarray
        The spoken question, int16 mono at the provider's input rate (e.g.
        ``make_utterance("Hello, who are you?", tail_silence_s=0)``); silence is streamed after it.
        An argument rather than made here: ``analysis`` sits above ``s2s`` and never imports the
        emulator, whose synthesizer makes the test speech (docs/LAYOUT.md).
    interjection : numpy.ndarray
        What to say over the reply, same format.
    question_text : str
        What ``question`` says, for the report.
    budget_s : float
        The budget each latency is judged against (the seed's 0.5 s).
    interrupt_after_s : float
        Start the interjection this long after the reply's first audio arrived.
    folder : str or os.PathLike, optional
        Where the recording goes (a new temporary folder by default).
    voice_id : str, optional
    timeout_s : float
        Bound on the whole run.

    Returns
    -------
    SeedVerdict
        The rows (measure, value, budget, verdict, what produced it) and the recording they came from.
    """
    if not isinstance(provider, StreamingS2SProvider):
        raise ConfigError(
            f"verify_seed() needs a streaming provider (s2s.new_provider('local') or 'amazon_nova'); "
            f"got {type(provider).__name__}"
        )
    question = _check_audio("question", question)
    interjection = _check_audio("interjection", interjection)
    budget = _seconds("budget_s", budget_s, positive=True)
    after = _seconds("interrupt_after_s", interrupt_after_s, positive=False)
    limit = _seconds("timeout_s", timeout_s, positive=True)
    where = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="nova_nb_seed_"))
    # Paced, always: a latency measured faster than real time says nothing about what a user hears.
    rec = await run_conversation(
        provider,
        question,
        where,
        voice_id=voice_id,
        barge_in=(after, interjection),
        pace=True,
        timeout_s=limit,
        metadata={"experiment": "verify_seed", "question": question_text, "budget_s": budget},
    )
    return seed_verdict(rec, provider, question_text=question_text, budget_s=budget, interrupt_after_s=after)


def seed_verdict(
    rec: Recording,
    provider: StreamingS2SProvider,
    *,
    question_text: str = SEED_QUESTION,
    budget_s: float = SEED_BUDGET_S,
    interrupt_after_s: float = 1.0,
) -> SeedVerdict:
    """Judge a recording made by :func:`verify_seed` (or any paced one-question run with a barge-in)."""
    budget = _seconds("budget_s", budget_s, positive=True)
    name = str(getattr(provider, "name", type(provider).__name__))
    config = provider.config
    model_id = getattr(config, "model_id", None)
    emulated = name in EMULATED_PROVIDERS
    pause = endpointing_pause_s(provider)
    sensitivity = getattr(config, "endpointing_sensitivity", None)
    target = getattr(config, "latency_target", None)
    turn_list = turns(rec.events)
    turn = turn_list[0] if turn_list else None
    found = [b for b in barge_ins(rec.events) if b.turn_index == 0]
    barge = found[0] if found else None
    budget_text = f"≤ {budget * 1000:.0f} ms"
    run = "measured, real-time run" + ("" if emulated else f" against {name} ({model_id})")

    setting = (
        f"latency_target {target!r} → endpointingSensitivity {sensitivity} → {pause:g} s, this project's "
        "mapping in protocol/catalog.py"
        if sensitivity
        else "this model takes no turn-detection setting; the pause is an assumption"
    )
    pause_note = (
        f"nearly all of it is waiting out the endpointing pause: the model waits for about {pause:g} s of "
        f"silence in the audio before it decides the turn ({setting})"
    )
    if emulated:
        # The figure can come out below the pause: say why, so a reader does not take it for a fast model.
        pause_note += (
            "; the emulator implements that pause as a rule, counted in whole frames from where its own "
            "speech detector puts the end of speech, and each frame is sent when its audio starts, so this "
            "figure can land some tens of ms either side of the pause"
        )
    rows: list[SeedMeasure] = []

    def latency(label: str, value: float | None, note: str, *, absent: str = "not measured") -> None:
        verdict = judge(value, budget)
        shown = _ms(value) if value is not None else absent
        if value is None and absent != NOT_SENT_VALUE:
            verdict = "FAIL"  # the reply (or the decision) never came: that is a failure, not "n/a"
        rows.append(SeedMeasure(label, value, shown, budget_text, verdict, note))

    latency(
        "end of speech → first audio",
        None if turn is None else turn.response_s,
        f"{run}; end of speech from the recorder's energy detector on the audio sent; {pause_note}",
        absent="no reply" if turn is None else "no end of speech found",
    )
    latency(
        "turn decision → first audio",
        None if turn is None else turn.decision_to_audio_s,
        f"{run}; "
        + (
            "under the emulator this is its rule-based answer plus speech synthesis on this machine, "
            "not Nova's model time"
            if emulated
            else "from the USER FINAL transcript's arrival: the model's own reaction after its turn decision"
        ),
        absent="no reply" if turn is None else "no turn decision (USER FINAL transcript) arrived",
    )
    service_value = None if turn is None else turn.service_response_s
    latency(
        "service end of speech → first audio",
        service_value,
        (
            "the service sent no userSpeechEnd (ServiceSpeechEnded) before the reply"
            if service_value is None
            else f"{run}; from the arrival of the service's userSpeechEnd"
            + (
                ": the emulator sends it a fixed time after speech ends and answers only after its "
                "endpointing pause, so this gap is set by emulator rules, not Nova's timing"
                if emulated
                else " (docs/PROTOCOL.md §12)"
            )
        ),
        absent=NOT_SENT_VALUE if turn is not None else "no reply",
    )

    onset = unplayed = None
    stopped = False
    if barge is None:
        reason = (
            "no reply to interrupt"
            if turn is None
            else f"no interruption: the reply ({turn.reply_audio_s:.2f} s) was over before the interjection "
            f"{interrupt_after_s:g} s after its first audio, or the service sent no interruption signal"
        )
        rows.append(
            SeedMeasure("playback stopped", False, "no", "stops before the reply ends", "FAIL", reason)
        )
    else:
        first = turn.first_audio_t if turn is not None and turn.first_audio_t is not None else -math.inf
        onset = _speech_onset(rec.events, first, barge.signal_t)
        unplayed = _unplayed_s(rec, barge)
        late_audio = _audio_after(rec, turn_list, barge)
        stopped = barge.flush_t is not None and unplayed is not None and unplayed > 0 and late_audio == 0
        if stopped:
            shown = f"yes — {unplayed:.2f} s of the reply flushed unplayed"
        elif barge.flush_t is None:
            shown = "no — no flush reached the client"
        elif late_audio > 0:
            shown = f"no — {late_audio:.2f} s more of the reply arrived after the flush"
        else:
            shown = "no — the reply had nothing left to play when the signal came"
        signal_note = f"the service's interruption signal ({barge.signal})"
        rows.append(
            SeedMeasure(
                "playback stopped",
                stopped,
                shown,
                "stops before the reply ends",
                "PASS" if stopped else "FAIL",
                f"measured: {signal_note}, then this client's session dropped the audio it had not handed "
                "out and the recorder's simulated real-time player dropped what it had queued",
            )
        )
        no_budget = "none in the seed"
        reaction = None if onset is None else barge.signal_t - onset
        rows.append(
            SeedMeasure(
                "your speech onset → interruption signal",
                reaction,
                _ms(reaction) if onset is not None else "no speech onset found",
                no_budget,
                NO_BUDGET,
                f"{run}; onset from the recorder's energy detector; "
                + (
                    "the emulator's fixed rule (it calls a barge-in after a set stretch of speech), "
                    "not Nova's"
                    if emulated
                    else "how long the model listened before it stopped"
                ),
            )
        )
        rows.append(
            SeedMeasure(
                "interruption signal → flush",
                barge.flush_s,
                _ms(barge.flush_s),
                no_budget,
                NO_BUDGET,
                "measured: this client (nova_nb's session) delivering the interrupted end of the reply to "
                "receive_audio(); the same code runs against any provider",
            )
        )
        stop_s = None if onset is None or barge.flush_t is None else barge.flush_t - onset
        rows.append(
            SeedMeasure(
                "your speech onset → playback stopped",
                stop_s,
                _ms(stop_s),
                no_budget,
                NO_BUDGET,
                "the two rows above together: to the flush (a player's own report when one reports "
                "playback, else the interrupted end of the reply reaching receive_audio(), where the "
                "recorder's simulated player stops); a real player adds its output latency"
                + (" — mostly the emulator's barge-in rule" if emulated else ""),
            )
        )
        received = turn.reply_audio_s if turn is not None else None
        heard = barge.heard_s
        rows.append(
            SeedMeasure(
                "reply audio heard",
                heard,
                "—"
                if heard is None
                else f"{heard:.2f} s of {received:.2f} s received"
                if received is not None
                else f"{heard:.2f} s",
                no_budget,
                NO_BUDGET,
                "the recorder's simulated real-time player (a player that starts each chunk on arrival)",
            )
        )
    return SeedVerdict(
        provider=name,
        model_id=model_id,
        budget_s=budget,
        pause_s=pause,
        interrupt_after_s=interrupt_after_s,
        question_text=question_text,
        recording=rec,
        turn=turn,
        barge_in=barge,
        playback_stopped=stopped,
        speech_onset_t=onset,
        unplayed_s=unplayed,
        measures=tuple(rows),
    )
