"""Analysis of sessions: recordings, spectrograms, latency reports and experiments.

>>> from nova_nb import analysis
>>> rec = analysis.Recording.load("recordings/rec-001")            # doctest: +SKIP
>>> analysis.latency_report(rec.events)                            # doctest: +SKIP
>>> analysis.plot_recording(rec, kind="mel")                       # doctest: +SKIP

The recording format and the latency definitions are documented in ``docs/RECORDING.md``.
Computing functions return data; the ``plot_*`` functions (:mod:`nova_nb.analysis.display`) draw it.
Spectrograms need librosa and plots matplotlib, which are imported only when used.
"""

from .display import plot_comparison, plot_latency, plot_recording, plot_spectrograms, plot_sweep
from .experiments import (
    BargeInTrial,
    Variant,
    VariantResult,
    compare_settings,
    comparison_table,
    endpointing_pause_s,
    interruption_sweep,
    run_conversation,
    sweep_table,
)
from .latency import (
    LATENCY_METRICS,
    BargeIn,
    LatencyReport,
    Turn,
    barge_ins,
    html_table,
    latency_report,
    summarize,
    turns,
)
from .recording import Recording, RecordingError, SessionRecorder, SpeechDetector, read_events
from .replay import replay
from .spectrograms import Marker, Spectrogram, event_markers, recording_spectrograms, spectrogram

__all__ = [
    "LATENCY_METRICS",
    "BargeIn",
    "BargeInTrial",
    "LatencyReport",
    "Marker",
    "Recording",
    "RecordingError",
    "SessionRecorder",
    "Spectrogram",
    "SpeechDetector",
    "Turn",
    "Variant",
    "VariantResult",
    "barge_ins",
    "compare_settings",
    "comparison_table",
    "endpointing_pause_s",
    "event_markers",
    "html_table",
    "interruption_sweep",
    "latency_report",
    "plot_comparison",
    "plot_latency",
    "plot_recording",
    "plot_spectrograms",
    "plot_sweep",
    "read_events",
    "recording_spectrograms",
    "replay",
    "run_conversation",
    "spectrogram",
    "summarize",
    "sweep_table",
    "turns",
]
