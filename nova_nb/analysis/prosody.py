"""Prosody of both sides of a conversation: pitch, energy, speaking rate and voicing, per turn.

:func:`turn_prosody` measures one stretch of speech; :func:`conversation_prosody` cuts every turn of
a :class:`~nova_nb.analysis.recording.Recording` into the user's utterance (from ``input.wav``) and
the assistant's reply (from ``output.wav``) and measures both, giving a :class:`ProsodyReport` that
shows as a table in a notebook and draws user against assistant pitch contours (``.plot()``).

How each figure is made (all from the audio, nothing from the service):

``f0_hz``
    librosa's probabilistic YIN (``librosa.pyin``) on the audio resampled to 16 kHz, searching
    :data:`FMIN_HZ`–:data:`FMAX_HZ` with a 64 ms window every 10 ms; ``NaN`` where pyin calls the frame
    unvoiced. ``median_f0_hz`` is the median of the voiced frames; ``f0_range_semitones`` is
    ``12·log2(p90 / p10)`` of them (10th to 90th percentile: an octave error in a few frames does not
    stretch it).
``mean_energy_dbfs``
    the RMS level (25 ms window, same 10 ms hop) averaged as power over the voiced frames, or over
    the active frames (within :data:`ACTIVE_RANGE_DB` of the loudest and above
    :data:`ACTIVE_FLOOR_DBFS`) when none is voiced; ``NaN`` for silence.
``voiced_fraction``
    voiced frames over all frames of the audio given (silence around the speech counts).
``speaking_rate``
    with ``text``: its words over the active span (first to last active frame, pauses included),
    ``rate_unit`` ``"words/s"``; without: syllable nuclei over that span, a nucleus being a peak of
    the smoothed level at least :data:`NUCLEUS_PROMINENCE_DB` above the dips around it, in a voiced
    frame, at least 80 ms from the next (after de Jong & Wempe, 2009), ``rate_unit``
    ``"syllables/s (energy peaks)"``.

pyin is the slow part: about 0.2 s of CPU for 3 s of audio on this project's machine, after the first
call of a process (numba compiles then; a few seconds).

**The emulator's voice is synthetic.** Against the local emulator the assistant speaks through
espeak-ng, a formant synthesizer (or tone patterns, with the scripted engine): its pitch, energy and
rate are rules of the synthesizer and say nothing about Nova Sonic's expressiveness. A report of such
a recording says so in its caption.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import DEFAULT_SPEECH_DBFS, check_pcm16, check_rate, to_pcm16_mono
from ..errors import ConfigError
from .latency import turns as _turns
from .recording import Recording

__all__ = [
    "ACTIVE_FLOOR_DBFS",
    "ACTIVE_RANGE_DB",
    "ANALYSIS_RATE",
    "FMAX_HZ",
    "FMIN_HZ",
    "HOP_S",
    "NUCLEUS_PROMINENCE_DB",
    "ProsodyReport",
    "ProsodyTurn",
    "TurnProsody",
    "conversation_prosody",
    "turn_prosody",
]

#: pyin's search range: below the lowest adult male voices, above most speaking (not singing) voices.
FMIN_HZ = 65.0
FMAX_HZ = 400.0
#: Audio is resampled to this rate first: speech pitch needs no more, and pyin's cost grows with it.
ANALYSIS_RATE = 16000
#: Seconds between analysis frames.
HOP_S = 0.010
#: pyin's window: 1024 samples at 16 kHz (64 ms) holds four periods of FMIN_HZ.
_PYIN_FRAME = 1024
#: The level window: 25 ms, the usual speech frame.
_RMS_FRAME = 400
#: A frame is active when its level is within this many dB of the loudest frame ...
ACTIVE_RANGE_DB = 35.0
#: ... and above this level (quieter than any speech worth measuring).
ACTIVE_FLOOR_DBFS = -60.0
#: How far a level peak must rise above the dips on either side to count as a syllable nucleus.
NUCLEUS_PROMINENCE_DB = 2.0
#: Nuclei closer than this are one syllable (no one says more than ~12 syllables per second).
_NUCLEUS_MIN_GAP_S = 0.08
#: Level smoothing before the nucleus search (50 ms moving average), so one vowel gives one peak.
_SMOOTH_FRAMES = 5
#: Silence kept around a user utterance cut out of input.wav.
_PAD_S = 0.1

RATE_WORDS = "words/s"
RATE_SYLLABLES = "syllables/s (energy peaks)"


@dataclass(frozen=True, eq=False)
class TurnProsody:
    """Prosody of one stretch of speech (:func:`turn_prosody`). Frequencies in Hz, times in seconds.

    Attributes
    ----------
    f0_times_s : numpy.ndarray
        Centre of each analysis frame, from the start of the audio given.
    f0_hz : numpy.ndarray
        pyin's f0 per frame; ``NaN`` where unvoiced.
    median_f0_hz : float
        Median f0 of the voiced frames; ``NaN`` when none is voiced.
    f0_range_semitones : float
        ``12·log2(p90/p10)`` of the voiced f0; ``NaN`` with fewer than 2 voiced frames.
    mean_energy_dbfs : float
        Power mean of the frame levels over the voiced frames (the active ones if none is voiced);
        ``NaN`` for silence.
    voiced_fraction : float
        Voiced frames / all frames.
    speaking_rate : float
        In ``rate_unit``; ``NaN`` when there is no active span (or, in words/s, an empty text).
    rate_unit : str
        ``"words/s"`` (from the text given) or ``"syllables/s (energy peaks)"``.
    duration_s : float
        Length of the audio given.
    active_s : float
        First to last active frame: the span the rate is computed over.
    words : int or None
        Words of the text given.
    """

    f0_times_s: npt.NDArray[np.float64]
    f0_hz: npt.NDArray[np.float64]
    median_f0_hz: float
    f0_range_semitones: float
    mean_energy_dbfs: float
    voiced_fraction: float
    speaking_rate: float
    rate_unit: str
    duration_s: float
    active_s: float = 0.0
    words: int | None = None

    def __repr__(self) -> str:
        return (
            f"<TurnProsody {self.duration_s:.2f} s: median f0 {self.median_f0_hz:.1f} Hz, range "
            f"{self.f0_range_semitones:.1f} st, {self.mean_energy_dbfs:.1f} dBFS, voiced "
            f"{self.voiced_fraction:.0%}, {self.speaking_rate:.2f} {self.rate_unit}>"
        )


_WORD = re.compile(r"[\w']+")


def _count_words(text: str) -> int:
    return len(_WORD.findall(text))


def _levels_db(y: npt.NDArray[np.float32], n_frames: int, hop: int) -> npt.NDArray[np.float64]:
    """RMS level in dBFS of a 25 ms window centred on each of ``n_frames`` frames ``hop`` apart."""
    padded = np.pad(y.astype(np.float64), _RMS_FRAME // 2)
    power = np.concatenate([[0.0], np.cumsum(padded**2)])
    starts = np.minimum(np.arange(n_frames) * hop, padded.size - _RMS_FRAME)
    starts = np.maximum(starts, 0)
    width = min(_RMS_FRAME, padded.size)
    mean_power = (power[starts + width] - power[starts]) / max(width, 1)
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(mean_power), -120.0)


def _power_mean_db(levels: npt.NDArray[np.float64]) -> float:
    if levels.size == 0:
        return math.nan
    return float(10.0 * np.log10(np.mean(10.0 ** (levels / 10.0))))


def _nuclei(
    levels: npt.NDArray[np.float64], voiced: npt.NDArray[np.bool_], active: npt.NDArray[np.bool_]
) -> int:
    """Syllable nuclei: prominent peaks of the smoothed level, voiced and active (module docstring)."""
    from scipy.signal import find_peaks

    if levels.size < 3:
        return 0
    kernel = np.ones(_SMOOTH_FRAMES) / _SMOOTH_FRAMES
    smooth = np.convolve(levels, kernel, mode="same")
    peaks, _ = find_peaks(
        smooth,
        prominence=NUCLEUS_PROMINENCE_DB,
        distance=max(1, round(_NUCLEUS_MIN_GAP_S / HOP_S)),
    )
    # pyin's voicing decision can lag a vowel onset by a frame or two: a voiced frame within ±20 ms.
    near_voiced = np.convolve(voiced.astype(float), np.ones(5), mode="same") > 0
    return int(np.count_nonzero(near_voiced[peaks] & active[peaks]))


def turn_prosody(pcm: npt.NDArray[np.int16], sample_rate: int, text: str | None = None) -> TurnProsody:
    """Pitch contour, energy, voicing and speaking rate of one stretch of speech.

    Parameters
    ----------
    pcm : numpy.ndarray
        Mono int16 samples (silence around the speech is fine: it lowers ``voiced_fraction`` only).
    sample_rate : int
        Rate of ``pcm`` in Hz; the audio is resampled to 16 kHz for the analysis.
    text : str, optional
        What was said. With it the rate is words per second, without it syllable nuclei per second.

    Returns
    -------
    TurnProsody

    Raises
    ------
    AudioFormatError
        ``pcm`` is not a 1-D int16 array, or ``sample_rate`` is not a supported rate.
    ConfigError
        ``text`` is not a string.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(16000) / 16000
    >>> tone = (8000 * np.sin(2 * np.pi * 150 * t)).astype(np.int16)
    >>> p = turn_prosody(tone, 16000)
    >>> round(p.median_f0_hz), p.voiced_fraction > 0.9
    (150, True)
    """
    import librosa

    pcm = check_pcm16(pcm, "pcm")
    rate = check_rate(sample_rate, "sample_rate")
    if text is not None and not isinstance(text, str):
        raise ConfigError(f"text must be a string (what was said) or None; got {type(text).__name__}")
    duration = pcm.size / rate
    if rate != ANALYSIS_RATE:
        pcm = to_pcm16_mono(pcm, sample_rate=rate, target_rate=ANALYSIS_RATE)
    y = pcm.astype(np.float32) / 32768.0
    hop = round(HOP_S * ANALYSIS_RATE)
    words = None if text is None else _count_words(text)
    unit = RATE_SYLLABLES if text is None else RATE_WORDS
    if y.size < _PYIN_FRAME // 2:
        # Shorter than half a pyin window: nothing to measure, and pyin's padding would be all there is.
        empty = np.zeros(0)
        return TurnProsody(
            empty, empty, math.nan, math.nan, math.nan, 0.0, math.nan, unit, duration, 0.0, words
        )
    f0, voiced, _ = librosa.pyin(
        y, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=ANALYSIS_RATE, frame_length=_PYIN_FRAME, hop_length=hop
    )
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = np.asarray(voiced, dtype=bool) & np.isfinite(f0)
    f0 = np.where(voiced, f0, np.nan)
    times = np.arange(f0.size) * hop / ANALYSIS_RATE
    levels = _levels_db(y, f0.size, hop)
    peak = float(levels.max()) if levels.size else -120.0
    active = levels >= max(ACTIVE_FLOOR_DBFS, peak - ACTIVE_RANGE_DB)
    voiced_f0 = f0[voiced]
    median = float(np.median(voiced_f0)) if voiced_f0.size else math.nan
    if voiced_f0.size >= 2:
        p10, p90 = np.percentile(voiced_f0, [10, 90])
        f0_range = float(12.0 * math.log2(p90 / p10))
    else:
        f0_range = math.nan
    energy = _power_mean_db(levels[voiced] if voiced.any() else levels[active])
    idx = np.flatnonzero(active)
    active_s = float((idx[-1] - idx[0] + 1) * HOP_S) if idx.size else 0.0
    if active_s <= 0:
        speaking_rate = math.nan
    elif words is not None:
        speaking_rate = words / active_s if words else math.nan
    else:
        speaking_rate = _nuclei(levels, voiced, active) / active_s
    return TurnProsody(
        f0_times_s=times,
        f0_hz=f0,
        median_f0_hz=median,
        f0_range_semitones=f0_range,
        mean_energy_dbfs=energy,
        voiced_fraction=float(voiced.mean()) if voiced.size else 0.0,
        speaking_rate=float(speaking_rate),
        rate_unit=unit,
        duration_s=duration,
        active_s=active_s,
        words=words,
    )


# -- a conversation --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ProsodyTurn:
    """One turn of a :class:`ProsodyReport`: the user's utterance and the assistant's reply.

    ``user_span_s`` and ``assistant_span_s`` are ``(start, end)`` in seconds of ``input.wav`` and
    ``output.wav`` (the recording clock, for a paced recording). A side is ``None`` when the turn has
    no audio for it (a typed turn, or the model speaking first, has no user utterance).
    """

    index: int
    user: TurnProsody | None
    assistant: TurnProsody | None
    user_text: str | None
    assistant_text: str
    user_span_s: tuple[float, float] | None
    assistant_span_s: tuple[float, float] | None
    interrupted: bool = False


def _emulator_caption() -> str:
    return (
        "The assistant here is local (the emulator or the local cascade): it speaks through espeak-ng, "
        "a formant synthesizer (tone patterns with the emulator's scripted engine), so the assistant's "
        "pitch, energy and rate are synthesizer rules and say nothing about Nova Sonic's expressiveness."
    )


@dataclass(frozen=True, eq=False)
class ProsodyReport:
    """User against assistant prosody, per turn (:func:`conversation_prosody`).

    Shows as a table in a notebook (``_repr_html_``); :meth:`plot` draws the pitch contours.
    ``model_id`` is the Nova model the session asked for; ``None`` for the local cascade, which uses none.
    """

    turns: tuple[ProsodyTurn, ...]
    synthetic_assistant: bool
    provider: str | None = None
    model_id: str | None = None
    voice_id: str | None = None
    folder: Path | None = None

    METHOD = (
        "f0: librosa pyin, 65–400 Hz, 10 ms hop, at 16 kHz; range: 10th–90th percentile of voiced f0 "
        "in semitones; energy: power mean of 25 ms RMS levels over voiced frames; rate: transcript "
        "words over the active span, or energy peaks (syllable nuclei) when a side has no text."
    )

    @property
    def caption(self) -> str:
        """What the table shows, how it was measured, and whether the assistant's voice is synthetic."""
        who = self.provider or "unknown provider"
        if _is_cascade(self.provider):
            # Its parts answer, not the Nova model id its config carries (that id is never used).
            who += ": a local STT → responder → TTS pipeline, not a Nova model"
        elif self.model_id:
            who += f", {self.model_id}"
        if self.voice_id:
            who += f", voice {self.voice_id}"
        parts = [f"Prosody per turn ({who}). {self.METHOD}"]
        if self.synthetic_assistant:
            parts.append(_emulator_caption())
        return " ".join(parts)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per turn and side: the table's rows (``None`` for a missing side's figures)."""
        out: list[dict[str, Any]] = []
        for turn in self.turns:
            for side, p, text in (
                ("user", turn.user, turn.user_text),
                ("assistant", turn.assistant, turn.assistant_text),
            ):
                out.append(
                    {
                        "turn": turn.index,
                        "side": side,
                        "text": text,
                        "duration_s": None if p is None else p.duration_s,
                        "median_f0_hz": None if p is None else p.median_f0_hz,
                        "f0_range_st": None if p is None else p.f0_range_semitones,
                        "energy_dbfs": None if p is None else p.mean_energy_dbfs,
                        "voiced_fraction": None if p is None else p.voiced_fraction,
                        "rate": None if p is None else p.speaking_rate,
                        "rate_unit": None if p is None else p.rate_unit,
                    }
                )
        return out

    def summary(self) -> dict[str, dict[str, float]]:
        """Per side, the median over turns of each figure (``NaN`` where no turn has it)."""
        out: dict[str, dict[str, float]] = {}
        for side in ("user", "assistant"):
            sides = [getattr(t, side) for t in self.turns if getattr(t, side) is not None]
            figures = {
                "median_f0_hz": [p.median_f0_hz for p in sides],
                "f0_range_st": [p.f0_range_semitones for p in sides],
                "energy_dbfs": [p.mean_energy_dbfs for p in sides],
                "voiced_fraction": [p.voiced_fraction for p in sides],
            }
            out[side] = {
                k: float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan for k, v in figures.items()
            }
        return out

    def _repr_html_(self) -> str:
        def cell(v: Any, fmt: str) -> str:
            if v is None:
                return "—"
            if isinstance(v, float):
                return "n/a" if math.isnan(v) else format(v, fmt)
            return html.escape(str(v))

        header = ["turn", "side", "said", "s", "median f0 Hz", "f0 range st", "energy dBFS", "voiced", "rate"]
        body = []
        for r in self.rows():
            said = r["text"] or ""
            said = said if len(said) <= 48 else said[:47] + "…"
            rate = "—" if r["rate"] is None else f"{cell(r['rate'], '.2f')} {html.escape(r['rate_unit'])}"
            cells = [
                str(r["turn"]),
                r["side"],
                html.escape(said),
                cell(r["duration_s"], ".2f"),
                cell(r["median_f0_hz"], ".1f"),
                cell(r["f0_range_st"], ".1f"),
                cell(r["energy_dbfs"], ".1f"),
                cell(r["voiced_fraction"], ".0%"),
                rate,
            ]
            body.append("<tr>" + "".join(f"<td style='text-align:right'>{c}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th style='text-align:right'>{html.escape(h)}</th>" for h in header)
        # The synthetic-voice warning first and in bold: it decides how to read every assistant row.
        warning = f"<b>{html.escape(_emulator_caption())}</b><br>" if self.synthetic_assistant else ""
        method = html.escape(self.caption.replace(_emulator_caption(), "").strip())
        return (
            f"<table><caption style='caption-side:top;text-align:left'>{warning}{method}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )

    def __repr__(self) -> str:
        return f"<ProsodyReport {len(self.turns)} turns; {self.caption}>"

    def plot(self, **kwargs: Any) -> Any:
        """User against assistant f0 contours per turn (:func:`nova_nb.analysis.display.plot_prosody`)."""
        from .display import plot_prosody

        return plot_prosody(self, **kwargs)


def _input_sample(rec: Recording, t: float) -> int:
    """Sample of ``input.wav`` at recording time ``t``, through the frames as sent.

    Frames sent faster than real time run ahead of the clock in input.wav (docs/RECORDING.md), so a
    time is placed within the frame that was sent at or before it, never past the next one.
    """
    frames = rec.input_frames
    rate = rec.input_rate
    if frames.size == 0:
        return int(np.clip(round(t * rate), 0, rec.input.size))
    i = int(np.searchsorted(frames["t"], t, side="right")) - 1
    if i < 0:
        return int(np.clip(round(t * rate), 0, int(frames["sample"][0])))
    s = int(frames["sample"][i]) + round((t - float(frames["t"][i])) * rate)
    if i + 1 < frames.size:
        s = min(s, int(frames["sample"][i + 1]))
    return int(np.clip(s, 0, rec.input.size))


def _trim_to_speech(pcm: npt.NDArray[np.int16], rate: int, threshold_dbfs: float) -> tuple[int, int] | None:
    """First and last 20 ms frame louder than ``threshold_dbfs`` (padded by 0.1 s), or None."""
    n = max(1, round(0.02 * rate))
    frames = pcm[: pcm.size // n * n].astype(np.float64).reshape(-1, n) / 32768.0
    if frames.size == 0:
        return None
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(level >= threshold_dbfs)
    if loud.size == 0:
        return None
    pad = round(_PAD_S * rate)
    return max(0, int(loud[0]) * n - pad), min(pcm.size, (int(loud[-1]) + 1) * n + pad)


def _is_cascade(provider: object) -> bool:
    return str(provider or "").lower() == "cascade"


def _is_emulator(meta: dict[str, Any]) -> bool:
    session = meta.get("session") or {}
    # Both local providers speak through the emulator's espeak-ng synthesizer.
    return str(session.get("provider", "")).lower() in ("local", "emulator", "cascade")


def conversation_prosody(
    recording: Recording, *, synthetic_assistant: bool | None = None, use_transcripts: bool = True
) -> ProsodyReport:
    """Prosody of the user's utterance and the assistant's reply, turn by turn.

    Turns are the one turn model (:func:`nova_nb.analysis.latency.turns`). For turn *i*:

    * the **user** side is ``input.wav`` between the previous turn's first audio (the start, for the
      first turn) and this turn's decision (its USER FINAL transcript, else its first audio), trimmed
      to the frames louder than the recording's speech threshold (``meta.json`` ``speech_detector``)
      with 0.1 s around; its text is the turn's USER transcript (the service's recognition);
    * the **assistant** side is ``output.wav`` from the turn's first scheduled chunk to the end of its
      last one (cut where a flush stopped the player, and before the next turn), its text the turn's
      ASSISTANT FINAL transcript.

    The rate is words per second when a side has text, syllable nuclei per second otherwise (or
    always, with ``use_transcripts=False``: for transcripts that are not the words spoken, such as the
    scripted emulator's "(2.4 seconds of speech)").

    Parameters
    ----------
    recording : Recording
        A loaded recording (``Recording.load`` or ``run_conversation``).
    synthetic_assistant : bool, optional
        Whether the assistant's voice is a synthesizer standing in for the model. By default it is
        when ``meta.json`` names the local emulator as the provider.
    use_transcripts : bool
        Count the transcripts' words for the rate (words/s); ``False``: syllable nuclei for both sides.

    Returns
    -------
    ProsodyReport

    Raises
    ------
    ConfigError
        ``recording`` is not a :class:`~nova_nb.analysis.recording.Recording`.
    """
    if not isinstance(recording, Recording):
        raise ConfigError(
            "recording must be an analysis.Recording (Recording.load(folder)); "
            f"got {type(recording).__name__}"
        )
    if not isinstance(use_transcripts, bool):
        raise ConfigError(f"use_transcripts must be True or False; got {use_transcripts!r}")
    rec = recording
    words = use_transcripts  # count the transcripts' words for the rate
    session = rec.meta.get("session") or {}
    if synthetic_assistant is None:
        synthetic_assistant = _is_emulator(rec.meta)
    threshold = float((rec.meta.get("speech_detector") or {}).get("threshold_dbfs", DEFAULT_SPEECH_DBFS))
    turn_list = _turns(rec.events)
    audio_lines = [e for e in rec.events if e["kind"] == "AudioOutput" and "sample" in e]
    flushes = [e["t"] for e in rec.events if e["kind"] == "PlayerFlushed"]
    out_rate, in_rate = rec.output_rate, rec.input_rate
    result: list[ProsodyTurn] = []
    for i, turn in enumerate(turn_list):
        start_t = turn.first_audio_t if turn.first_audio_t is not None else 0.0
        prev_t = turn_list[i - 1].first_audio_t if i > 0 else None
        next_t = turn_list[i + 1].first_audio_t if i + 1 < len(turn_list) else None
        # -- the user's utterance ------------------------------------------------------------------
        user = None
        user_span = None
        anchor = turn.decision_t if turn.decision_t is not None else start_t
        lo = _input_sample(rec, prev_t) if prev_t is not None else 0
        hi = _input_sample(rec, anchor)
        if hi > lo:
            window = np.asarray(rec.input[lo:hi])
            cut = _trim_to_speech(window, in_rate, threshold)
            if cut is not None:
                a, b = cut
                user = turn_prosody(window[a:b], in_rate, (turn.user_text or None) if words else None)
                user_span = ((lo + a) / in_rate, (lo + b) / in_rate)
        # -- the assistant's reply -----------------------------------------------------------------
        chunks = [
            e for e in audio_lines if e["t"] >= start_t - 1e-9 and (next_t is None or e["t"] < next_t - 1e-9)
        ]
        assistant = None
        assistant_span = None
        if chunks:
            a = min(int(e["sample"]) for e in chunks)
            b = max(int(e["sample"]) + int(e.get("n_samples", 0)) for e in chunks)
            flush = [t for t in flushes if t >= start_t and (next_t is None or t < next_t)]
            if flush:
                b = min(b, max(a, round(flush[0] * out_rate)))
            later = [e for e in audio_lines if next_t is not None and e["t"] >= next_t - 1e-9]
            if later:
                b = min(b, min(int(e["sample"]) for e in later))
            b = min(b, rec.output.size)
            if b > a:
                assistant = turn_prosody(
                    np.asarray(rec.output[a:b]),
                    out_rate,
                    (turn.reply_text or None) if words else None,
                )
                assistant_span = (a / out_rate, b / out_rate)
        result.append(
            ProsodyTurn(
                index=turn.index,
                user=user,
                assistant=assistant,
                user_text=turn.user_text,
                assistant_text=turn.reply_text,
                user_span_s=user_span,
                assistant_span_s=assistant_span,
                interrupted=turn.interrupted,
            )
        )
    return ProsodyReport(
        turns=tuple(result),
        synthetic_assistant=bool(synthetic_assistant),
        provider=session.get("provider"),
        # meta.json has the session config's model id; a cascade session never uses it.
        model_id=None if _is_cascade(session.get("provider")) else session.get("model_id"),
        voice_id=session.get("voice_id"),
        folder=rec.folder,
    )
