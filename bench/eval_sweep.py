"""``python -m bench.eval_sweep``: throughput and cost of ``nova-nb eval``'s runner against the emulator.

A sweep of N utterances (default 100, synthesised once with espeak-ng) is sent faster than real time
(``pace=False``: the emulator decides turns in audio time, so every utterance still gets its turn and
reply) at concurrency 1, 4 and 8, each job recorded and analysed as ``evaluate`` always does. Printed
per concurrency: utterances per minute (wall clock) and client CPU seconds per utterance (this process:
runner, SDK, recorder, analysis; the emulator runs in a process of its own, ``nova-nb emulator serve
--engine scripted``, so its CPU is not counted). Then the runner's overhead: the same utterances through
``s2s.talk()`` in a plain loop (no recording, no analysis, no results file) against the runner at
concurrency 1.

The machine's load average is printed beside the figures: other work on the 2 cores moves them.
Results go to ``bench/results/eval_sweep.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from nova_nb import s2s
from nova_nb.analysis.evaluate import evaluate
from nova_nb.audio import write_wav
from nova_nb.emulator.engine.testaudio import make_utterance
from nova_nb.s2s.talk import talk

from ._emulator import EmulatorProcess

RESULTS: Final = Path(__file__).resolve().parent / "results" / "eval_sweep.json"
CONCURRENCY: Final = (1, 4, 8)
PHRASES: Final = (
    "What will the weather be like tomorrow?",
    "Hello, who are you?",
    "Please repeat after me: the quick brown fox.",
    "What time is it?",
    "Thank you, goodbye.",
)


def _cpu() -> float:
    """CPU seconds of this process (all its threads), user + system."""
    t = os.times()
    return t.user + t.system


def _items(folder: Path, n: int) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    spoken = {p: make_utterance(p, lead_silence_s=0.3, tail_silence_s=0.5) for p in PHRASES}
    for i, p in enumerate(PHRASES):
        write_wav(folder / f"p{i}.wav", spoken[p], 16000)
    return [
        {
            "id": f"u{i:03d}",
            "audio": str(folder / f"p{i % len(PHRASES)}.wav"),
            "expected": PHRASES[i % len(PHRASES)],
        }
        for i in range(n)
    ]


async def _sweep(
    items: list[dict[str, Any]], options: dict[str, Any], concurrency: int, out: Path
) -> dict[str, Any]:
    cpu, wall = _cpu(), time.perf_counter()
    report = await evaluate(
        items, None, out, provider="amazon_nova", options=options, concurrency=concurrency, pace=False,
        timeout_s=60, progress=False,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    n = len(items)
    return {
        "concurrency": concurrency,
        "utterances": n,
        "errors": len(report.errors()),
        "wall_s": wall,
        "utterances_per_min": 60 * n / wall,
        "cpu_s_per_utterance": cpu / n,
        "wall_s_per_utterance": wall / n,
    }


async def _talk_loop(items: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    provider = s2s.new_provider("amazon_nova", **options)
    assert isinstance(provider, s2s.StreamingS2SProvider)
    cpu, wall = _cpu(), time.perf_counter()
    for it in items:
        await talk(provider, it["audio"], pace=False, timeout_s=60)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    n = len(items)
    return {"utterances": n, "wall_s_per_utterance": wall / n, "cpu_s_per_utterance": cpu / n}


async def run(n: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nova-nb-eval-bench-") as tmp, EmulatorProcess("scripted") as emu:
        assert emu.endpoint is not None
        options = {**emu.endpoint.provider_options(), "latency_target": "low"}
        items = _items(Path(tmp) / "inputs", n)
        # One warm-up job: the SDK's first client, TLS set-up, imports.
        await _sweep(items[:1], options, 1, Path(tmp) / "warm")
        sweeps = [await _sweep(items, options, c, Path(tmp) / f"c{c}") for c in CONCURRENCY]
        loop = await _talk_loop(items, options)
    runner_1 = sweeps[0]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "method": __doc__,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "sweeps": sweeps,
        "talk_loop": loop,
        "runner_overhead": {
            "wall_s_per_utterance": runner_1["wall_s_per_utterance"] - loop["wall_s_per_utterance"],
            "cpu_s_per_utterance": runner_1["cpu_s_per_utterance"] - loop["cpu_s_per_utterance"],
            "cpu_ratio": runner_1["cpu_s_per_utterance"] / loop["cpu_s_per_utterance"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval_sweep", description=__doc__)
    parser.add_argument("--utterances", type=int, default=100, help="utterances per sweep (default 100)")
    parser.add_argument("--no-save", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.utterances))
    la, lb = result["load_average_before"], result["load_average_after"]
    print(
        f"eval sweep: {args.utterances} utterances, sent faster than real time to the scripted emulator "
        f"(its own process), {result['cpus']} CPUs, load average {la[0]:.2f} before / {lb[0]:.2f} after"
    )
    print(f"{'concurrency':>11} {'utterances/min':>15} {'CPU s/utterance':>16} {'errors':>7}")
    for s in result["sweeps"]:
        print(
            f"{s['concurrency']:>11} {s['utterances_per_min']:>15.1f} {s['cpu_s_per_utterance']:>16.3f} "
            f"{s['errors']:>7}"
        )
    loop, over = result["talk_loop"], result["runner_overhead"]
    print(
        f"talk() in a loop: {loop['wall_s_per_utterance']:.3f} s wall, "
        f"{loop['cpu_s_per_utterance']:.3f} s CPU "
        "per utterance (no recording, no analysis)"
    )
    print(
        f"runner overhead at concurrency 1: {over['wall_s_per_utterance'] * 1000:+.0f} ms wall, "
        f"{over['cpu_s_per_utterance'] * 1000:+.0f} ms CPU per utterance "
        f"({over['cpu_ratio']:.2f}× talk()'s CPU)"
    )
    if not args.no_save:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
