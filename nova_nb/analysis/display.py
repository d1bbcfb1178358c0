"""Plots of what the analysis computes, kept apart from the computing (as ``librosa.display``).

Every function here takes data the analysis functions return (spectrograms and markers, turns,
sweep trials, variant results) and an optional matplotlib ``ax``/``axes`` to draw into, and returns
the figure or axes it drew on. matplotlib (and librosa, for spectrograms) is imported only when a
plot is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .experiments import BargeInTrial, VariantResult
from .latency import Turn
from .spectrograms import Kind, Marker, Spectrogram, event_markers, recording_spectrograms

__all__ = [
    "MARKER_STYLES",
    "plot_comparison",
    "plot_latency",
    "plot_recording",
    "plot_spectrograms",
    "plot_sweep",
]

#: label → (colour, line style) for each marker kind.
MARKER_STYLES: dict[str, tuple[str, str]] = {
    "speech_start": ("tab:cyan", ":"),
    "speech_end": ("tab:blue", "--"),
    # The service's own speech boundaries (userSpeechStart/End, §12): same hues family, dash-dot, so
    # they read apart from the energy detector's lines.
    "service_speech_start": ("tab:olive", "-."),
    "service_speech_end": ("navy", "-."),
    "decision": ("tab:orange", "--"),
    "first_audio": ("tab:green", "-"),
    "interruption": ("tab:red", "-"),
    "flush": ("magenta", ":"),
}


def _show(spec: Spectrogram, ax: Any, cmap: str = "magma") -> Any:
    import librosa.display

    y_axis = "mel" if spec.kind == "mel" else "linear"
    kwargs: dict[str, Any] = {"sr": spec.sample_rate, "n_fft": spec.n_fft, "y_axis": y_axis, "cmap": cmap}
    if spec.kind == "mel":
        kwargs["fmax"] = float(spec.freqs[-1])
    return librosa.display.specshow(
        spec.db, x_coords=spec.times, x_axis="s", ax=ax, shading="nearest", **kwargs
    )


def plot_spectrograms(
    streams: Sequence[tuple[str, Spectrogram]],
    markers: Sequence[Marker] = (),
    *,
    t_range: tuple[float, float] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 80,
    legend: bool = True,
) -> Any:
    """Spectrograms stacked on one time axis, with every marker drawn across all of them.

    Parameters
    ----------
    streams : sequence of (title, Spectrogram)
    markers : sequence of Marker
    t_range : (float, float), optional
        Limits of the time axis.
    figsize, dpi :
        Figure size in inches and resolution.
    legend : bool

    Returns
    -------
    matplotlib.figure.Figure
        Its axes are in ``fig.axes`` (top to bottom); marker lines carry ``gid`` ``"marker:<kind>"``.
    """
    import matplotlib.pyplot as plt

    n = len(streams)
    fig, axes = plt.subplots(
        n, 1, figsize=figsize or (11, 2.2 * n + 0.6), dpi=dpi, sharex=True, squeeze=False
    )
    for ax, (title, spec) in zip(axes[:, 0], streams, strict=False):
        _show(spec, ax)
        ax.set_ylabel(f"{title}\nHz")
        ax.set_xlabel("")
        for m in markers:
            if t_range is not None and not t_range[0] <= m.t <= t_range[1]:
                continue
            color, style = MARKER_STYLES[m.kind]
            # Dashed markers on top, so a decision a few ms before the first audio stays visible.
            z = 3 if style == "-" else 4
            ax.axvline(m.t, color=color, ls=style, lw=1.3, label=m.label, gid=f"marker:{m.kind}", zorder=z)
    bottom = axes[-1, 0]
    bottom.set_xlabel("seconds since the recording started")
    if t_range is not None:
        bottom.set_xlim(*t_range)
    if legend and markers:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=False))
        fig.legend(unique.values(), unique.keys(), loc="upper center", ncol=min(6, len(unique)), fontsize=8,
                   frameon=False)  # fmt: skip
        fig.tight_layout(rect=(0, 0, 1, 0.93))
    else:
        fig.tight_layout()
    return fig


def plot_recording(
    recording: Any,
    *,
    kind: Kind = "mel",
    t_range: tuple[float, float] | None = None,
    max_columns: int = 1200,
    speech_start: bool = True,
    **kwargs: Any,
) -> Any:
    """Input and output spectrograms of a :class:`~nova_nb.analysis.recording.Recording`, events marked.

    The spectra come from :func:`~nova_nb.analysis.spectrograms.recording_spectrograms` and the
    markers from :func:`~nova_nb.analysis.spectrograms.event_markers`.

    Parameters
    ----------
    recording : Recording
    kind : {"mel", "linear"}
    t_range : (float, float), optional
        Only this stretch of time (the audio is cut before the spectra are computed).
    max_columns : int
        Image width in columns for each stream.
    speech_start : bool
        Also mark where user speech starts.
    **kwargs
        Passed to :func:`plot_spectrograms`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    streams, span = recording_spectrograms(recording, kind=kind, t_range=t_range, max_columns=max_columns)
    markers = event_markers(recording.events, speech_start=speech_start)
    return plot_spectrograms(streams, markers, t_range=span, **kwargs)


def plot_latency(rows: Sequence[Turn], ax: Any = None) -> Any:
    """A bar per turn: end of user audio → turn decision → first audio (→ heard), stacked; a diamond
    at the service's end of speech → first audio where the service sent ``userSpeechEnd``.

    Parameters
    ----------
    rows : sequence of Turn
        E.g. ``latency_report(events).turns``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3), dpi=80)
    idx = np.arange(len(rows))
    to_decision = np.array(
        [
            None if r.decision_t is None or r.speech_end_t is None else r.decision_t - r.speech_end_t
            for r in rows
        ],
        dtype=float,
    )
    # The legend names where "end of user audio" came from, so a figure never mixes sources unseen.
    sources = sorted({r.speech_end_source for r in rows if r.speech_end_source})
    source = f" ({', '.join(sources)})" if sources else ""
    to_audio = np.array([r.decision_to_audio_s for r in rows], dtype=float)
    to_heard = np.array([r.audio_to_heard_s for r in rows], dtype=float)
    a = np.nan_to_num(to_decision)
    b = np.nan_to_num(to_audio)
    ax.bar(idx, a, color="tab:orange", label=f"end of user audio{source} → turn decision")
    ax.bar(idx, b, bottom=a, color="tab:green", label="turn decision → first audio")
    if np.isfinite(to_heard).any():
        ax.bar(idx, np.nan_to_num(to_heard), bottom=a + b, color="tab:purple", label="first audio → heard")
    # The service's own end of speech (userSpeechEnd, §12) → first audio, as a point against the bars'
    # client-side figure: a third definition, drawn apart so it is never read as one of the others.
    service = np.array([r.service_response_s for r in rows], dtype=float)
    if np.isfinite(service).any():
        ax.scatter(
            idx, service, marker="D", color="navy", zorder=3, label="service end of speech → first audio"
        )
    top = float(np.nanmax(np.concatenate([a + b + np.nan_to_num(to_heard), service]), initial=0.0))
    ax.set_ylim(0, max(top * 1.35, 0.1))  # room for the legend above the bars
    ax.set_xlabel("turn")
    ax.set_ylabel("seconds")
    ax.set_xticks(idx)
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_sweep(trials: Sequence[BargeInTrial], axes: Any = None) -> Any:
    """Two panels over the offset: heard audio vs FINAL text, and the reaction times.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), dpi=80)
    else:
        fig = axes[0].figure
    rows = [t for t in trials if t.barge_in is not None]
    x = np.array([t.offset_s for t in rows])

    def col(name: str) -> npt.NDArray[np.float64]:
        return np.array([getattr(t.barge_in, name) for t in rows], dtype=float)

    ax = axes[0]
    ax.plot(x, col("heard_s"), "o-", color="tab:green", label="reply heard (s of audio)")
    ax.set_xlabel("barge-in offset into the reply (s)")
    ax.set_ylabel("seconds heard")
    twin = ax.twinx()
    twin.plot(x, col("final_words"), "s--", color="tab:purple", label="words in FINAL text")
    twin.set_ylabel("FINAL words")
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(lines, [str(h.get_label()) for h in lines], loc="upper left", fontsize=8)
    ax = axes[1]
    ax.plot(x, 1000 * col("reaction_s"), "o-", color="tab:red", label="speech onset → interruption signal")
    ax.plot(x, 1000 * col("flush_s"), "s-", color="magenta", label="signal → flush")
    ax.set_xlabel("barge-in offset into the reply (s)")
    ax.set_ylabel("milliseconds")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_comparison(results: Sequence[VariantResult], ax: Any = None) -> Any:
    """Every turn's response time (end of user audio → first audio) per variant, with the median.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3), dpi=80)
    for i, r in enumerate(results):
        values = np.array([t.response_s for t in r.report.turns if t.response_s is not None], dtype=float)
        if values.size:
            jitter = np.linspace(-0.12, 0.12, values.size) if values.size > 1 else np.zeros(1)
            ax.plot(i + jitter, values, "o", color="tab:blue", alpha=0.7)
            ax.hlines(np.median(values), i - 0.3, i + 0.3, color="tab:red", lw=2)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([r.label for r in results], rotation=15)
    ax.set_ylabel("end of user audio → first audio (s)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    if not math.isfinite(ax.get_ylim()[1]):
        ax.set_ylim(0, 1)
    return ax
