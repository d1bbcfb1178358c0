"""Plots of an evaluation: latency distributions and word error rates per setting (data in, figure out).

Kept apart from :mod:`nova_nb.analysis.display` (which draws single sessions). Figures are made with
``matplotlib.figure.Figure`` directly, not pyplot: saving a report needs no display and leaves no
global figure state behind; a notebook shows a returned figure as it would a pyplot one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_latency_distributions", "plot_wer"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def plot_latency_distributions(
    values: Mapping[str, Mapping[str, Sequence[float]]], labels: Sequence[str], *, note: str | None = None
) -> Any:
    """One panel per latency definition: a box per setting with every turn drawn as a dot.

    Parameters
    ----------
    values : mapping
        ``{metric: {setting label: [seconds per turn, ...]}}``; metrics with no values are skipped.
    labels : sequence of str
        Settings in the order to draw them.
    note : str, optional
        Said under the title (e.g. that the audio was sent faster than real time).

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = [m for m, per in values.items() if any(per.get(lb) for lb in labels)]
    fig = _figure(max(5.0, 1.2 * len(labels) + 2.5), 2.6 * max(1, len(metrics)) + 0.4)
    if not metrics:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no turns with latency figures", ha="center", va="center")
        ax.set_axis_off()
        return fig
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    rng = np.random.default_rng(0)  # the dots' horizontal jitter, the same every time
    for ax, metric in zip(axes, metrics, strict=True):
        data = [np.asarray(values[metric].get(lb) or [], dtype=float) for lb in labels]
        positions = [i + 1 for i, d in enumerate(data) if d.size]
        ax.boxplot([d for d in data if d.size], positions=positions, widths=0.5, showfliers=False)
        for i, d in enumerate(data, 1):
            if d.size:
                ax.plot(i + rng.uniform(-0.15, 0.15, d.size), d, "o", ms=3, alpha=0.5, color="tab:blue")
        ax.set_xticks(range(1, len(labels) + 1), [_wrap(lb) for lb in labels], fontsize=7)
        ax.set_ylabel(f"{metric} (s)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title("latency per turn, by setting" + (f"\n{note}" if note else ""), fontsize=9)
    return fig


def plot_wer(
    per_item: Mapping[str, Sequence[float]], corpus: Mapping[str, float | None], labels: Sequence[str]
) -> Any:
    """Word error rate per setting: a bar for the whole set (all errors / all words), a dot per item.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _figure(max(5.0, 1.2 * len(labels) + 2.5), 3.2)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, lb in enumerate(labels, 1):
        c = corpus.get(lb)
        if c is not None:
            ax.bar(i, c, width=0.6, color="tab:orange", alpha=0.6)
        d = np.asarray(per_item.get(lb) or [], dtype=float)
        if d.size:
            ax.plot(i + rng.uniform(-0.15, 0.15, d.size), d, "o", ms=3, color="black", alpha=0.6)
    ax.set_xticks(range(1, len(labels) + 1), [_wrap(lb) for lb in labels], fontsize=7)
    ax.set_ylabel("word error rate")
    ax.set_title("WER of the USER transcript (bar: whole set; dots: items)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _wrap(label: str) -> str:
    return label.replace(" · ", "\n")
