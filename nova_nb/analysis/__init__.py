"""Analysis of sessions: recordings, spectrograms, latency reports and experiments.

>>> from nova_nb import analysis
>>> rec = analysis.Recording.load("recordings/rec-001")            # doctest: +SKIP
>>> analysis.latency_report(rec.events)                            # doctest: +SKIP
>>> analysis.plot_recording(rec, kind="mel")                       # doctest: +SKIP

The recording format and the latency definitions are documented in ``docs/RECORDING.md``.
Computing functions return data; the ``plot_*`` functions (:mod:`nova_nb.analysis.display`) draw it.
Evaluation at scale (many utterances × a grid of settings, resumable, one report) is
:mod:`nova_nb.analysis.evaluate` (``docs/EVALUATE.md``).
Prosody (pitch, energy, rate and voicing of both sides, per turn) is :mod:`nova_nb.analysis.prosody`.
Spectrograms need librosa and plots matplotlib, which are imported only when used.
"""

from .display import (
    plot_comparison,
    plot_latency,
    plot_prosody,
    plot_recording,
    plot_spectrograms,
    plot_stream_timeline,
    plot_sweep,
)
from .evaluate import EvalReport, PriceTable, Setting, expand_grid, load_items
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
from .prosody import ProsodyReport, ProsodyTurn, TurnProsody, conversation_prosody, turn_prosody
from .recording import Recording, RecordingError, SessionRecorder, SpeechDetector, read_events
from .replay import replay
from .spectrograms import Marker, Spectrogram, event_markers, recording_spectrograms, spectrogram
from .verify import SEED_BUDGET_S, SEED_QUESTION, SeedMeasure, SeedVerdict, judge, seed_verdict, verify_seed

__all__ = [
    "LATENCY_METRICS",
    "SEED_BUDGET_S",
    "SEED_QUESTION",
    "BargeIn",
    "BargeInTrial",
    "EvalReport",
    "LatencyReport",
    "Marker",
    "PriceTable",
    "ProsodyReport",
    "ProsodyTurn",
    "Recording",
    "RecordingError",
    "SeedMeasure",
    "SeedVerdict",
    "SessionRecorder",
    "Setting",
    "Spectrogram",
    "SpeechDetector",
    "Turn",
    "TurnProsody",
    "Variant",
    "VariantResult",
    "barge_ins",
    "compare_settings",
    "comparison_table",
    "conversation_prosody",
    "endpointing_pause_s",
    "evaluate",
    "event_markers",
    "expand_grid",
    "html_table",
    "interruption_sweep",
    "judge",
    "latency_report",
    "load_items",
    "plot_comparison",
    "plot_latency",
    "plot_prosody",
    "plot_recording",
    "plot_spectrograms",
    "plot_stream_timeline",
    "plot_sweep",
    "read_events",
    "recording_spectrograms",
    "replay",
    "run_conversation",
    "seed_verdict",
    "spectrogram",
    "summarize",
    "sweep_table",
    "turn_prosody",
    "turns",
    "verify_seed",
]
