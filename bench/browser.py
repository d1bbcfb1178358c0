"""Browser audio latency on loopback: JupyterLab + Debian's chromium + a fake microphone.

    .venv/bin/python -m bench.browser [--rounds 40] [--subshells perCommTarget|disabled] [--stock]

Measures, with the page's and the kernel's wall clocks (one machine, so one clock):

* **browser → kernel frame latency**: a microphone frame is ready in the page (``sent``) → the
  kernel's comm handler has it (``time.time()`` in ``LiveAudio._handle``).
* **kernel → browser start of playback**: ``LiveAudio.play()`` is called in the kernel → the chunk's
  first sample leaves the page's audio graph (the player worklet's ``currentTime`` mapped to wall time
  with ``getOutputTimestamp()``; this includes the audio output latency the browser reports).
* **interruption → silence**: ``LiveAudio.flush()`` (what the session's Interruption listener calls,
  synchronously, when the signal arrives) → the first silent sample leaves the page's audio graph;
  and → the audio thread has emptied its queue (``handled``, which excludes the output latency).

Targets on loopback: frame latency p95 <= 10 ms, start of playback p95 <= 40 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.browser import harness

FRAME_TARGET_P95_MS = 10.0
PLAYBACK_TARGET_P95_MS = 40.0

KERNEL_CELL = """
import threading, time
import numpy as np
from nova_nb.widgets import LiveAudio
live = LiveAudio()
bench_state = {{"phase": "waiting"}}
def _tone(seconds, freq=440.0):
    t = np.arange(int(24000 * seconds)) / 24000
    return (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
def _bench(rounds):
    while live.frames_received < 50:
        time.sleep(0.05)
    live.frame_latency_s.clear()
    bench_state["phase"] = "playback"
    for i in range(rounds):
        live.play(_tone(0.15), content_id=f"start-{{i}}")
        time.sleep(0.3)
    bench_state["phase"] = "flush"
    for i in range(max(rounds // 2, 5)):
        live.play(_tone(2.0), content_id=f"flush-{{i}}")
        time.sleep(0.3)
        live.flush()
        time.sleep(0.2)
    time.sleep(0.5)
    bench_state["phase"] = "done"
threading.Thread(target=_bench, args=({rounds},), daemon=True, name="bench").start()
live
"""


def run(
    rounds: int = 40, subshells: str | None = None, artifacts: Path | None = None, nodelay: bool = True
) -> dict[str, Any]:
    reason = harness.unavailable_reason()
    if reason:
        raise SystemExit(f"bench.browser needs chromium and playwright: {reason}")
    with tempfile.TemporaryDirectory(prefix="nova-nb-bench-") as tmp:
        root = Path(tmp)
        mic = harness.make_fake_mic_wav(root / "mic.wav")
        results = root / "results.json"
        harness.write_notebook(
            root / "bench.ipynb",
            [
                KERNEL_CELL.format(rounds=rounds),
                harness.DUMP_CELL.format(
                    path=str(results), state="lambda: {**live.stats(), 'phase': bench_state['phase']}"
                ),
            ],
        )
        lab = harness.JupyterLab(root, comms_over_subshells=subshells, nodelay=nodelay)
        try:
            lab.start()
            with harness.browser(mic) as context:
                page = context.new_page()
                harness.open_notebook(page, lab, "bench.ipynb")
                page.click(".nova-live button.nova-live-start", timeout=60_000)
                budget = 30 + rounds * 0.6
                stats = harness.wait_until(
                    lambda: (r := harness.read_json(results)) and r["phase"] == "done" and r,
                    budget,
                    "the benchmark to finish",
                    interval=0.25,
                )
                page_stats = page.evaluate("window.__novaNbLive[0]")
                if artifacts is not None:
                    page.screenshot(path=str(artifacts / "bench.png"))
        finally:
            lab.stop()
    stats["output_latency_ms"] = round(1000 * float(page_stats.get("outputLatency") or 0), 1)
    stats["base_latency_ms"] = round(1000 * float(page_stats.get("baseLatency") or 0), 1)
    return dict(stats)


def report(stats: dict[str, Any], subshells: str | None, nodelay: bool = True) -> str:
    def row(name: str, key: str, target: float | None = None) -> str:
        p = stats[key]
        if not p.get("n"):
            return f"  {name:<44} (no samples)"
        verdict = (
            "" if target is None else ("  ok" if p["p95"] <= target else f"  ABOVE target {target:g} ms")
        )
        return (
            f"  {name:<44} n={p['n']:<5} p50={p['p50']:7.2f} ms  p95={p['p95']:7.2f} ms  "
            f"max={p['max']:7.2f} ms{verdict}"
        )

    lines = [
        f"browser audio on loopback (comms over subshells: {subshells or 'default (perCommTarget)'}; "
        f"server extension nova_nb.widgets.server (TCP_NODELAY): {'on' if nodelay else 'off'}; "
        f"kernel handler threads: {', '.join(stats['handler_threads'])})",
        row("browser -> kernel frame", "frame_latency_ms", FRAME_TARGET_P95_MS),
        row("kernel -> page message", "to_page_ms"),
        row("kernel -> browser start of playback", "playback_start_ms", PLAYBACK_TARGET_P95_MS),
        row("kernel -> start of playback, audible", "playback_audible_ms"),
        row("interruption -> silence (audible)", "flush_ms"),
        row("interruption -> audio thread emptied", "flush_handled_ms"),
        f"  page audio output latency {stats['output_latency_ms']} ms (base {stats['base_latency_ms']} ms), "
        f"capture device {stats['device_rate']} Hz; frames {stats['frames_received']}, "
        f"dropped {stats['frames_dropped']}",
        f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end "
        "(tails grow with load: compare runs on a quiet machine)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.browser", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="playback starts to measure (default 40)")
    parser.add_argument(
        "--subshells",
        choices=["perCommTarget", "perComm", "disabled"],
        default=None,
        help="JupyterLab's 'comms over subshells' setting (default: JupyterLab's default)",
    )
    parser.add_argument(
        "--stock", action="store_true", help="without nova_nb.widgets.server (stock jupyter_server: Nagle on)"
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args(argv)
    started = time.monotonic()
    stats = run(args.rounds, args.subshells, nodelay=not args.stock)
    print(report(stats, args.subshells, nodelay=not args.stock))
    if args.json:
        print(json.dumps(stats, indent=1))
    print(f"  ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
