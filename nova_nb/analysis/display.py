"""Plots of what the analysis computes, kept apart from the computing (as ``librosa.display``).

Every function here takes data the analysis functions return (spectrograms and markers, turns,
sweep trials, variant results) and an optional matplotlib ``ax``/``axes`` to draw into, and returns
the figure or axes it drew on. matplotlib (and librosa, for spectrograms) is imported only when a
plot is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..s2s.events import Event
from .experiments import BargeInTrial, VariantResult
from .latency import Turn
from .spectrograms import Kind, Marker, Spectrogram, event_markers, recording_spectrograms

if TYPE_CHECKING:  # prosody imports nothing from here at import time; this is for the type only
    from .prosody import ProsodyReport

__all__ = [
    "MARKER_STYLES",
    "plot_comparison",
    "plot_latency",
    "plot_prosody",
    "plot_recording",
    "plot_spectrograms",
    "plot_stream_timeline",
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


def plot_stream_timeline(
    events: Sequence[Event],
    streams: Sequence[tuple[float, float | None]],
    *,
    t0: float | None = None,
    user_speech: Sequence[tuple[float, float]] = (),
    stream_limit_s: float | None = None,
    limit_label: str = "stream limit",
    block_streams: Mapping[str, int] | None = None,
    ax: Any = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 80,
) -> Any:
    """The streams of one session as horizontal bars on one time axis, with what moved between them.

    One lane per stream (stream 1 at the top), and a lane for the user's speech if ``user_speech`` is
    given. On them: each reply on the lane of the stream that sent it, as a player would play that
    stream's audio (each AUDIO block from its first chunk, or when the block before it has played);
    each ``SessionRenewed`` as an arrow from
    the old stream to the new one at the switch, with the audio replayed into the new stream drawn
    hatched over the ``replayed_s + held_s`` seconds before the switch (where that audio was spoken,
    when it was sent in real time); the continuation trigger (the first audio of the reply that made
    the session continue); ``Reconnecting`` and ``StreamErrorEvent`` as crosses; and, with
    ``stream_limit_s``, where each stream's time limit falls.

    Parameters
    ----------
    events : sequence of Event
        The session's events (``session.events()`` or a listener), on the ``time.monotonic()`` clock.
    streams : sequence of (opened, ended)
        Monotonic times each stream opened and ended, in the order they opened; ``ended`` None draws
        the bar to the last event. ``session.streams[i].opened_at`` gives the first.
    t0 : float, optional
        The time drawn as 0; default the first stream's opening.
    user_speech : sequence of (start, end)
        Monotonic times the user's speech was being sent, drawn on a lane of its own.
    stream_limit_s : float, optional
        Each stream's time limit, counted from its opening: a red tick at ``opened + stream_limit_s``.
    limit_label : str
        The legend text of that tick (say which limit it is, e.g. an emulator test setting).
    block_streams : mapping of str to int, optional
        The content id of each ASSISTANT AUDIO block → the index of the stream that sent it, e.g.
        ``{cid: i for i, s in enumerate(session.streams) for cid in s.audio_blocks}``. Without it a
        block goes on the stream that was current when its first chunk arrived, which is wrong when an
        old stream is still finishing its reply after a switch.
    ax : matplotlib.axes.Axes, optional
    figsize, dpi :
        Figure size in inches and resolution, when no ``ax`` is given.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    from ..s2s import events as ev

    if not streams:
        raise ValueError("streams is empty: give (opened, ended) for every stream, e.g. from session.streams")
    for i, (opened, ended) in enumerate(streams):
        if ended is not None and ended < opened:
            raise ValueError(f"stream {i + 1} ends before it opens: ({opened}, {ended})")
        if i and opened < streams[i - 1][0]:
            raise ValueError("streams must be in the order they opened (sorted by their opening time)")
    for start, end in user_speech:
        if end < start:
            raise ValueError(f"a user_speech span ends before it starts: ({start}, {end})")
    if stream_limit_s is not None and not stream_limit_s > 0:
        raise ValueError(f"stream_limit_s must be a positive number of seconds; got {stream_limit_s!r}")
    origin = streams[0][0] if t0 is None else t0
    last_t = max(
        [e.timestamp for e in events] + [o for o, _ in streams] + [e for _, e in streams if e is not None]
    )

    n = len(streams)
    has_user = bool(user_speech)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize or (10, 0.55 * (n + has_user) + 1.6), dpi=dpi)

    def lane(index: int) -> float:  # stream index → y (stream 1 at the top, the user above it)
        return float(n - 1 - index)

    # Which stream was current when: the first from its opening, then each from its SessionRenewed.
    switches = [e for e in events if isinstance(e, ev.SessionRenewed)]
    current_from = [streams[0][0]] + [e.timestamp for e in switches]

    def current_at(t: float) -> int:
        index = 0
        for i, since in enumerate(current_from[:n]):
            if since <= t:
                index = i
        return index

    labelled: set[str] = set()

    def once(label: str) -> str | None:  # each legend entry once
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for i, (opened, ended) in enumerate(streams):
        end = last_t if ended is None else ended
        ax.barh(
            lane(i),
            end - opened,
            left=opened - origin,
            height=0.5,
            color="lightgrey",
            edgecolor="dimgrey",
            label=once("stream open"),
        )
        if stream_limit_s is not None:
            x = opened - origin + stream_limit_s
            ax.plot([x, x], [lane(i) - 0.35, lane(i) + 0.35], color="tab:red", lw=2, label=once(limit_label))

    # Replies: the AudioOutput events grouped by content id (one block per sentence on Nova 2), laid
    # out per stream as its audio would play: a block starts at its first chunk or when the one before
    # it has played. A block that starts with the stream's player idle begins a reply.
    blocks: dict[str, list[Any]] = {}
    for e in events:
        if isinstance(e, ev.AudioOutput):
            blocks.setdefault(e.content_id, []).append(e)
    played_until = [-math.inf] * n
    reply_starts: list[list[float]] = [[] for _ in range(n)]
    for cid, chunks in blocks.items():
        first = chunks[0].timestamp
        index = block_streams.get(cid, current_at(first)) if block_streams else current_at(first)
        if not 0 <= index < n:
            raise ValueError(f"block_streams puts block {cid!r} on stream {index}; there are {n} streams")
        begin = max(first, played_until[index])
        if first >= played_until[index]:
            reply_starts[index].append(first)
        length = sum(c.duration_s for c in chunks)
        played_until[index] = begin + length
        ax.barh(
            lane(index),
            length,
            left=begin - origin,
            height=0.3,
            color="tab:green",
            edgecolor="darkgreen",
            linewidth=0.5,
            label=once("reply, as played (one block per sentence)"),
        )

    for k, e in enumerate(switches):
        new, old = min(k + 1, n - 1), current_at(e.timestamp - 1e-9)
        window = e.replayed_s + e.held_s
        if window > 0:
            ax.barh(
                lane(new),
                window,
                left=e.timestamp - origin - window,
                height=0.5,
                fill=False,
                hatch="///",
                edgecolor="tab:orange",
                label=once("audio replayed into the new stream"),
            )
        ax.annotate(
            "",
            xy=(e.timestamp - origin, lane(new) + 0.25),
            xytext=(e.timestamp - origin, lane(old) - 0.25),
            arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1.5},
        )
        ax.plot([], [], color="tab:blue", label=once("switch to the new stream (SessionRenewed)"))
        if e.reason == "continuation":
            # The trigger: the first audio of the last reply that began on the old stream before the switch.
            starts = [t for t in reply_starts[old] if t <= e.timestamp]
            if starts:
                ax.plot(
                    max(starts) - origin,
                    lane(old) + 0.38,
                    "v",
                    color="tab:purple",
                    markersize=9,
                    label=once("continuation triggered (a reply began)"),
                )

    for e in events:
        if isinstance(e, ev.Reconnecting | ev.StreamErrorEvent):
            label = "stream failed, reconnecting" if isinstance(e, ev.Reconnecting) else "stream error"
            ax.plot(
                e.timestamp - origin,
                lane(current_at(e.timestamp - 1e-9)),
                "X",
                color="tab:red",
                markersize=10,
                label=once(label),
            )

    ticks = [lane(i) for i in range(n)]
    names = [f"stream {i + 1}" for i in range(n)]
    if has_user:
        for start, end in user_speech:
            ax.barh(
                float(n),
                end - start,
                left=start - origin,
                height=0.4,
                color="tab:blue",
                label=once("user speech sent"),
            )
        ticks.append(float(n))
        names.append("you")
    ax.set_yticks(ticks)
    ax.set_yticklabels(names)
    ax.set_ylim(-0.7, n - 0.3 + has_user + 0.9)  # room above for the legend
    ax.set_xlabel("seconds")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    return ax


def plot_prosody(report: ProsodyReport, *, max_turns: int = 8, axes: Any = None) -> Any:
    """User against assistant pitch (f0) contours, one panel per turn.

    Each side's contour starts at 0 s (the start of its cut: the user's utterance, the assistant's
    reply); the dotted lines are each side's median f0. When the assistant's voice is synthetic (the
    emulator) the figure's title says so.

    Parameters
    ----------
    report : ProsodyReport
        From :func:`nova_nb.analysis.prosody.conversation_prosody`.
    max_turns : int
        At most this many turns (the first ones) are drawn.
    axes : sequence of matplotlib.axes.Axes, optional
        One per turn drawn.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise ValueError(f"max_turns must be an int >= 1; got {max_turns!r}")
    shown = report.turns[:max_turns]
    n = max(1, len(shown))
    if axes is None:
        fig, axes = plt.subplots(n, 1, figsize=(8, 1.9 * n + 0.6), dpi=80, sharex=True, squeeze=False)
        axes = axes[:, 0]
    else:
        axes = list(np.atleast_1d(axes))
        if len(axes) < n:
            raise ValueError(f"axes: {n} turns to draw but {len(axes)} axes given")
        fig = axes[0].figure
    styles = {"user": ("tab:blue", "user"), "assistant": ("tab:red", "assistant")}
    if report.synthetic_assistant:
        styles["assistant"] = ("tab:red", "assistant (synthetic voice: emulator)")
    for ax, turn in zip(axes, shown, strict=False):
        for side in ("user", "assistant"):
            p = getattr(turn, side)
            colour, label = styles[side]
            if p is None or p.f0_hz.size == 0:
                continue
            ax.plot(p.f0_times_s, p.f0_hz, color=colour, lw=1.4, label=label)
            if math.isfinite(p.median_f0_hz):
                ax.axhline(p.median_f0_hz, color=colour, ls=":", lw=1)
        ax.set_ylabel("f0 Hz")
        ax.set_title(f"turn {turn.index}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize=7)
    if not shown:
        axes[0].text(0.5, 0.5, "no turns", ha="center", va="center", transform=axes[0].transAxes)
    axes[min(n, len(axes)) - 1].set_xlabel("seconds from the start of each side's speech")
    title = "pitch (librosa pyin), user vs assistant"
    if report.synthetic_assistant:
        title += "\nassistant = emulator's synthetic voice: says nothing about Nova Sonic's expressiveness"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
