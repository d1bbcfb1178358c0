"""The one energy speech detector: a frame is speech when its RMS level is above a threshold.

Used wherever nova_nb needs to know, without a speech model, whether the user is talking: the
emulator's scripted engine decides turns with it, :func:`nova_nb.s2s.talk.talk` and the session panel
find the end of the user's speech with it, and the recorder writes ``UserSpeechStarted`` /
``UserSpeechEnded`` lines with it. One detector, one threshold, so the emulator's turn decisions and
the measured "end of speech" agree. It cannot tell speech from steady noise (Silero VAD, in the
emulator's speech engine, can).
"""

from __future__ import annotations

import math
import numbers
from typing import Final

import numpy as np
import numpy.typing as npt

from nova_nb.audio.levels import rms_dbfs
from nova_nb.errors import ConfigError

__all__ = [
    "DEFAULT_END_SILENCE_S",
    "DEFAULT_MIN_SPEECH_S",
    "DEFAULT_SPEECH_DBFS",
    "SPEECH_ENDED",
    "SPEECH_STARTED",
    "EnergySpeechDetector",
]

#: Frame RMS level above which a frame is speech. Speech into a laptop or headset microphone sits
#: around -35 to -20 dBFS RMS and a quiet room's hiss around -60 to -50 dBFS; -42 dBFS is below the
#: quietest voiced syllables of close speech yet 8 dB above :func:`~nova_nb.audio.is_silent`'s
#: -50 dBFS. It was the emulator's turn threshold already, which the recorder's marks must match.
DEFAULT_SPEECH_DBFS: Final = -42.0
#: Loud audio needed before speech is declared: shorter is a click or a cough.
DEFAULT_MIN_SPEECH_S: Final = 0.15
#: Quiet needed after the last loud frame before speech is declared over; pauses between words are
#: shorter, and any service's end-of-turn pause is much longer.
DEFAULT_END_SILENCE_S: Final = 0.3
#: Kinds of the transitions :meth:`EnergySpeechDetector.push` reports.
SPEECH_STARTED: Final = "UserSpeechStarted"
SPEECH_ENDED: Final = "UserSpeechEnded"

_Pcm = npt.NDArray[np.generic] | bytes | bytearray | memoryview


def _setting(name: str, value: object, *, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number; got {value!r}")
    number = float(value)
    if upper is not None and number > upper:
        raise ConfigError(f"{name} must be <= {upper:g}; got {value!r}")
    if upper is None and number < 0:
        raise ConfigError(f"{name} must be >= 0 seconds; got {value!r}")
    return number


class EnergySpeechDetector:
    """Speech by level, frame by frame, with the hysteresis that turns frames into speech runs.

    Parameters
    ----------
    threshold_dbfs : float
        Frame RMS level above which a frame is speech (<= 0; default :data:`DEFAULT_SPEECH_DBFS`).
    min_speech_s : float
        Loud audio needed before a run counts as speech (shorter blips are ignored).
    end_silence_s : float
        Quiet needed after the last loud frame before the speech is over.

    Examples
    --------
    >>> d = EnergySpeechDetector()
    >>> d.is_speech(np.full(320, 1000, dtype=np.int16)), d.is_speech(np.zeros(320, dtype=np.int16))
    (True, False)
    >>> loud, quiet = np.full(320, 1000, dtype=np.int16), np.zeros(320, dtype=np.int16)
    >>> marks = [m for i in range(40) for m in d.push(loud if 5 <= i < 25 else quiet, i * 0.02, 16000)]
    >>> [(kind, round(t, 2)) for kind, t in marks]
    [('UserSpeechStarted', 0.1), ('UserSpeechEnded', 0.5)]
    """

    def __init__(
        self,
        threshold_dbfs: float = DEFAULT_SPEECH_DBFS,
        min_speech_s: float = DEFAULT_MIN_SPEECH_S,
        end_silence_s: float = DEFAULT_END_SILENCE_S,
    ) -> None:
        self.threshold_dbfs = _setting("threshold_dbfs", threshold_dbfs, upper=0.0)
        self.min_speech_s = _setting("min_speech_s", min_speech_s)
        self.end_silence_s = _setting("end_silence_s", end_silence_s)
        self.reset()

    def __repr__(self) -> str:
        return (
            f"EnergySpeechDetector(threshold_dbfs={self.threshold_dbfs}, min_speech_s={self.min_speech_s}, "
            f"end_silence_s={self.end_silence_s})"
        )

    def reset(self) -> None:
        """Forget the current run (a new stream)."""
        self._loud_s = 0.0
        self._quiet_s = 0.0
        self._run_start: float | None = None
        self._last_loud_end: float | None = None
        self.in_speech = False

    def is_loud(self, level_dbfs: float) -> bool:
        """Whether a frame of this RMS level is speech."""
        return level_dbfs > self.threshold_dbfs

    def is_speech(self, frame: _Pcm, sample_rate: int | None = None) -> bool:
        """Whether one frame (int16/float samples or 16-bit PCM bytes) is speech; no state is kept.

        ``sample_rate`` is accepted so the detector fits the emulator's ``TurnDetector`` protocol; a
        level does not depend on it. An empty frame is not speech.
        """
        return self.is_loud(rms_dbfs(frame))

    def push(self, frame: _Pcm, t: float, sample_rate: int) -> list[tuple[str, float]]:
        """Feed one frame starting at time ``t``; return the transitions it completes.

        See :meth:`push_level`, which this calls with the frame's level and duration.
        """
        n = len(frame) // 2 if isinstance(frame, bytes | bytearray | memoryview) else np.asarray(frame).size
        return self.push_level(rms_dbfs(frame), t, n / sample_rate)

    def push_level(self, level_dbfs: float, t: float, duration_s: float) -> list[tuple[str, float]]:
        """Feed one frame by its level, start time and length; return ``[(kind, t), ...]``.

        ``kind`` is :data:`SPEECH_STARTED` (``t``: start of the first loud frame of the run, reported
        once the run has lasted ``min_speech_s``) or :data:`SPEECH_ENDED` (``t``: end of the last loud
        frame, reported once ``end_silence_s`` of quiet followed).
        """
        found: list[tuple[str, float]] = []
        if self.is_loud(level_dbfs):
            if self._run_start is None:
                self._run_start = t
                self._loud_s = 0.0
            self._loud_s += duration_s
            self._quiet_s = 0.0
            self._last_loud_end = t + duration_s
            if not self.in_speech and self._loud_s >= self.min_speech_s - 1e-9:
                self.in_speech = True
                found.append((SPEECH_STARTED, self._run_start))
            return found
        if self._run_start is None:
            return found
        self._quiet_s += duration_s
        if self._quiet_s >= self.end_silence_s - 1e-9:
            if self.in_speech and self._last_loud_end is not None:
                found.append((SPEECH_ENDED, self._last_loud_end))
            self._run_start = None
            self.in_speech = False
        return found

    def settings(self) -> dict[str, float]:
        """The three settings, for a recording's ``meta.json``."""
        return {
            "threshold_dbfs": self.threshold_dbfs,
            "min_speech_s": self.min_speech_s,
            "end_silence_s": self.end_silence_s,
        }
