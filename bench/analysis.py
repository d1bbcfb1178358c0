"""``python -m bench.analysis``: how fast the analysis is on long sessions.

Two figures, each the median of several runs after a warm-up (librosa's first call compiles):

* **spectrogram, 10 minutes**: the mel spectrogram of 10 minutes of 16 kHz input and of 10 minutes of
  24 kHz output (each pooled to 1200 columns), and the whole two-panel figure (both spectrograms plus
  drawing, with event markers). Target: ≤ 1 s for 10 minutes of audio.
* **latency report, 1,000 turns**: reading an ``events.jsonl`` of 1,000 turns (~48,000 lines, as the
  recorder writes them) and computing the per-turn table and percentiles. Target: ≤ 1 s.

``run()`` returns the figures as a dict; ``main()`` prints them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

SPECTROGRAM_TARGET_S: Final = 1.0
LATENCY_TARGET_S: Final = 1.0
MINUTES: Final = 10
TURNS: Final = 1000
CHUNKS_PER_TURN: Final = 40  # 3.2 s replies in 80 ms chunks, as the emulator sends them


def _speechy(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Noise shaped into 0.2 s syllables with pauses: something with structure for the spectrogram."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    envelope = (np.sin(np.pi * np.arange(n) / (0.2 * rate)) ** 2) * (rng.random(n // rate + 1) > 0.3).repeat(
        rate
    )[:n]
    return (3000 * rng.standard_normal(n) * envelope).astype(np.int16)


def _median_time(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _synthetic_jsonl(path: Path, turns: int) -> int:
    """Write events.jsonl lines for ``turns`` turns in the recorder's schema; returns the line count."""
    rng = np.random.default_rng(1)
    lines = 0
    t = 0.0
    with open(path, "w", encoding="utf-8") as f:

        def put(kind: str, at: float, **fields: Any) -> None:
            nonlocal lines
            f.write(
                json.dumps({"kind": kind, "t": round(at, 6), "t_monotonic": 1000.0 + at, **fields}) + "\n"
            )
            lines += 1

        put("RecordingStarted", 0.0, input_rate=16000, output_rate=24000)
        for i in range(turns):
            t += 0.5
            put("UserSpeechStarted", t, source="recorder")
            t += 2.0
            put("UserSpeechEnded", t, source="recorder")
            decision = t + 1.5 + float(rng.uniform(0, 0.3))
            put("CompletionStarted", decision, session_id="s", completion_id="c")
            put("Transcript", decision, role="USER", text=f"question {i}", stage="FINAL", content_id=f"u{i}")
            put("Transcript", decision + 0.001, role="ASSISTANT", text="an answer", stage="SPECULATIVE",
                content_id=f"s{i}")  # fmt: skip
            first = decision + 0.01 + float(rng.exponential(0.05))
            for k in range(CHUNKS_PER_TURN):
                put("AudioOutput", first + 0.002 * k, content_id=f"a{i}", sample_rate=24000, n_samples=1920,
                    duration_s=0.08, sample=0)  # fmt: skip
            end = first + CHUNKS_PER_TURN * 0.08
            put(
                "ContentEnded",
                end,
                content_id=f"a{i}",
                type="AUDIO",
                role="ASSISTANT",
                stop_reason="END_TURN",
            )
            put("Transcript", end, role="ASSISTANT", text="an answer", stage="FINAL", content_id=f"f{i}")
            put("Usage", end, input_tokens=10, output_tokens=10, total_tokens=20, details={})
            t = end
    return lines


def run(quick: bool = False) -> dict[str, Any]:
    """Measure; returns ``{"spectrogram_10min": {...}, "latency_1000_turns": {...}}`` (seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nova_nb.analysis import Marker, latency_report, plot_spectrograms, read_events, spectrogram

    reps = 2 if quick else 5
    seconds = MINUTES * 60
    inp, out = _speechy(seconds, 16000, 0), _speechy(seconds, 24000, 1)
    spectrogram(inp[:16000], 16000)  # warm-up: librosa's mel filters, numba, FFT plans
    markers = [Marker(float(t), "first audio out", "first_audio") for t in np.arange(5, seconds, 5.0)]

    def figure() -> None:
        fig = plot_spectrograms(
            [("in", spectrogram(inp, 16000)), ("out", spectrogram(out, 24000))], markers, legend=True
        )
        fig.canvas.draw()
        plt.close(fig)

    figure()
    result: dict[str, Any] = {
        "spectrogram_10min": {
            "input_16k_mel_s": _median_time(lambda: spectrogram(inp, 16000), reps),
            "output_24k_mel_s": _median_time(lambda: spectrogram(out, 24000), reps),
            "output_24k_linear_s": _median_time(lambda: spectrogram(out, 24000, kind="linear"), reps),
            "figure_both_streams_s": _median_time(figure, reps),
            "target_s": SPECTROGRAM_TARGET_S,
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        n_lines = _synthetic_jsonl(path, TURNS)
        read_s = _median_time(lambda: read_events(path), reps)
        events, _ = read_events(path)
        report_s = _median_time(lambda: latency_report(events), reps)
        n_turns = len(latency_report(events).turns)
    result["latency_1000_turns"] = {
        "turns": n_turns,
        "lines": n_lines,
        "read_jsonl_s": read_s,
        "report_s": report_s,
        "read_and_report_s": read_s + report_s,
        "target_s": LATENCY_TARGET_S,
    }
    return result


def _verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER TARGET"


def print_figures(result: dict[str, Any]) -> None:
    """Print the figures of :func:`run` with their targets."""
    s = result["spectrogram_10min"]
    print(f"analysis: spectrogram of {MINUTES} minutes of audio (median; target <= {s['target_s']:g} s)")
    for key, name in (
        ("input_16k_mel_s", "input  16 kHz, mel   "),
        ("output_24k_mel_s", "output 24 kHz, mel   "),
    ):
        print(f"  {name} : {s[key]:.3f} s  {_verdict(s[key], s['target_s'])}")
    print(f"  output 24 kHz, linear : {s['output_24k_linear_s']:.3f} s")
    print(f"  figure, both streams + markers, drawn: {s['figure_both_streams_s']:.3f} s")
    lat = result["latency_1000_turns"]
    print(f"analysis: latency report over {lat['turns']} turns ({lat['lines']} JSONL lines; target <= "
          f"{lat['target_s']:g} s)")  # fmt: skip
    print(f"  read events.jsonl     : {lat['read_jsonl_s']:.3f} s")
    print(f"  per-turn table + percentiles: {lat['report_s']:.3f} s")
    total = lat["read_and_report_s"]
    print(f"  together              : {total:.3f} s  {_verdict(total, lat['target_s'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_figures(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
