"""``python -m bench`` (``./dev bench``): nova_nb's provider against the bare SDK, on one emulator.

The emulator runs in a separate process (``nova-nb emulator serve --json --engine bench-burst``), so
only the client's CPU is counted. Prints each figure with its method and the team's figures for
other Nova clients measured the same way, and writes everything to ``bench/results/latest.json``.
The machine is noisy (2 cores shared with the emulator): the CPU figures come from several runs,
provider and bare SDK back to back, with client and emulator pinned to a CPU each; the ratios are what
to compare from run to run. Other work on the machine spoils every figure: run it on a quiet machine
(it warns when the load average says otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from nova_nb import s2s

from . import _bare, cases
from ._emulator import EmulatorProcess, pin_threads

RESULTS: Final = Path(__file__).resolve().parent / "results" / "latest.json"

#: Targets (DESIGN.md §8 and the issue): ratios to the bare SDK, and absolute bounds.
SEND_RATIO_TARGET: Final = 1.05
RECEIVE_RATIO_TARGET: Final = 1.2
LATENCY_P99_TARGET_MS: Final = 3.0
CLOSE_TARGET_MS: Final = 50.0

#: Other Nova Sonic clients, measured by the team with these same methods (cost relative to the bare SDK).
OTHERS: Final = {
    "send_ratio": {"Strands": 1.06, "Pipecat": 1.54},
    "receive_ratio": {"Strands": 1.51, "Pipecat": 1.58},
    "close_ms": {"Pipecat": 2000.0},
}


def _full() -> dict[str, Any]:
    return {
        "send_events": 3000,
        "receive_events": 3000,
        "reps": 7,
        "latency_events": 750,
        "close_sessions": 20,
    }


def _quick() -> dict[str, Any]:
    return {"send_events": 600, "receive_events": 600, "reps": 2, "latency_events": 60, "close_sessions": 4}


LATENCY_INTERVAL_MS: Final = 20.0
#: A 1-minute load average above this before the bench starts means other work is running.
BUSY_LOAD: Final = 1.0
BUSY_WARNING: Final = (
    "WARNING: the machine was busy before the bench started (load average {load:.1f}): other processes "
    "compete for the CPUs, and the latency and close figures suffer most. Rerun on a quiet machine."
)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile, linear between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


async def _paired(
    provider: Callable[[], Awaitable[float]], bare: Callable[[], Awaitable[float]], reps: int, label: str
) -> tuple[list[float], list[float]]:
    """Run both ``reps`` times, alternating which goes first, after one unmeasured warm-up each."""
    await provider()
    await bare()
    p_runs: list[float] = []
    b_runs: list[float] = []
    for i in range(reps):
        order = ((provider, p_runs), (bare, b_runs)) if i % 2 == 0 else ((bare, b_runs), (provider, p_runs))
        for run, into in order:
            into.append(await run())
        p_ms, b_ms = p_runs[-1] * 1e3, b_runs[-1] * 1e3
        _log(f"{label} run {i + 1}/{reps}: nova_nb {p_ms:.1f} ms, bare SDK {b_ms:.1f} ms")
    return p_runs, b_runs


def _cpu_result(
    p_runs: list[float], b_runs: list[float], events: int, target: float, method: str
) -> dict[str, Any]:
    per_k = 1000 / events
    p = [r * 1e3 * per_k for r in p_runs]  # ms of CPU per 1,000 events
    b = [r * 1e3 * per_k for r in b_runs]
    p_med, b_med = statistics.median(p), statistics.median(b)
    # Each pair ran back to back, so its ratio cancels slow drifts of the machine's speed (other load,
    # CPU clock); the median of the pairs' ratios is the figure to compare from run to run.
    paired = [x / y for x, y in zip(p, b, strict=True)]
    ratio = statistics.median(paired)
    return {
        "events_per_run": events,
        "provider_ms_per_1000": round(p_med, 2),
        "bare_sdk_ms_per_1000": round(b_med, 2),
        "ratio": round(ratio, 3),
        "ratio_of_medians": round(p_med / b_med, 3),
        "paired_ratios": [round(x, 3) for x in paired],
        "provider_runs_ms_per_1000": [round(x, 2) for x in p],
        "bare_sdk_runs_ms_per_1000": [round(x, 2) for x in b],
        "target_ratio": target,
        "pass": ratio <= target,
        "method": method,
    }


#: The CPUs this process may use when it starts (before it pins itself).
ALL_CPUS: set[int] = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def cpu_plan() -> tuple[int, int] | None:
    """(client CPU, emulator CPU) when this machine lets us pin them apart (Linux, >= 2 CPUs)."""
    if not hasattr(os, "sched_getaffinity") or not os.path.isdir("/proc/self/task"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def _load() -> float | None:
    """The 1-minute load average, where the platform has one."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


async def run(settings: dict[str, Any], pins: tuple[int, int] | None) -> dict[str, Any]:
    started = time.monotonic()
    load_before = _load()
    results: dict[str, Any] = {}
    with EmulatorProcess("bench-burst") as emulator:
        assert emulator.endpoint is not None
        endpoint = emulator.endpoint
        if pins is not None:
            # One CPU each: the client's threads never compete with the emulator's, which makes the
            # CPU figures repeatable to about ±2 % instead of ±15 % on a 2-core machine.
            pin_threads(os.getpid(), {pins[0]})
            emulator.pin({pins[1]})
        provider = s2s.new_provider("amazon_nova", **endpoint.provider_options())
        clients = cases.Clients(endpoint, provider, await _bare.make_client(endpoint))
        _log(f"emulator pid {endpoint.pid} at {endpoint.endpoint_uri}; client pid {os.getpid()}")
        reps = settings["reps"]
        frame_bytes = len(clients.frame)

        n = settings["send_events"]
        p_runs, b_runs = await _paired(
            lambda: cases.send_cpu_provider(clients, n), lambda: cases.send_cpu_bare(clients, n), reps, "send"
        )
        results["send_cpu"] = _cpu_result(
            p_runs,
            b_runs,
            n,
            SEND_RATIO_TARGET,
            f"process_time() of the client from the first of {n} audioInput events "
            f"({clients.config.frame_ms} ms, {frame_bytes} B of PCM each) until the emulator's receipt for "
            f"the last one. nova_nb: session.send_audio(one frame, pace=False) per event. Bare SDK: "
            f"base64 + JSON bytes, then input_stream.send(chunk) from one task. "
            f"{reps} runs each, alternating, after a warm-up.",
        )

        n = settings["receive_events"]
        p_runs, b_runs = await _paired(
            lambda: cases.receive_cpu_provider(clients, n),
            lambda: cases.receive_cpu_bare(clients, n),
            reps,
            "receive",
        )
        results["receive_cpu"] = _cpu_result(
            p_runs,
            b_runs,
            n,
            RECEIVE_RATIO_TARGET,
            f"process_time() of the client from the audioInput that starts an emulator burst of {n} "
            f"audioOutput events ({cases.OUTPUT_CHUNK_MS} ms of 24 kHz PCM each, as fast as flow control "
            f"allows) until the last is in the application's hands. nova_nb: async for chunk in "
            f"session.receive_audio(). Bare SDK: rx.receive() loop doing json.loads + base64 decode. "
            f"{reps} runs each, alternating, after a warm-up.",
        )

        if pins is not None:
            # Latency and close are about scheduling, not CPU cost: let the OS place the threads freely,
            # as it does for an application (pinned, the SDK's CRT thread waits for the Python thread).
            everywhere = set(ALL_CPUS)
            pin_threads(os.getpid(), everywhere)
            emulator.pin(everywhere)

        n = settings["latency_events"]
        _log(f"latency: {n} events at {LATENCY_INTERVAL_MS:g} ms intervals, each client")
        p_lat = await cases.latency_provider(clients, n, LATENCY_INTERVAL_MS)
        b_lat = await cases.latency_bare(clients, n, LATENCY_INTERVAL_MS)

        def ms(values: list[float], q: float) -> float:
            return round(percentile(values, q) * 1e3, 3)

        results["latency"] = {
            "events": n,
            "interval_ms": LATENCY_INTERVAL_MS,
            "provider_p50_ms": ms(p_lat.delivered, 50),
            "provider_p99_ms": ms(p_lat.delivered, 99),
            "provider_max_ms": ms(p_lat.delivered, 100),
            "provider_sdk_arrival_p50_ms": ms(p_lat.arrived, 50),
            "provider_sdk_arrival_p99_ms": ms(p_lat.arrived, 99),
            "bare_sdk_p50_ms": ms(b_lat.delivered, 50),
            "bare_sdk_p99_ms": ms(b_lat.delivered, 99),
            "bare_sdk_max_ms": ms(b_lat.delivered, 100),
            "target_p99_ms": LATENCY_P99_TARGET_MS,
            "pass": percentile(p_lat.delivered, 99) * 1e3 <= LATENCY_P99_TARGET_MS,
            "method": (
                f"The emulator stamps time.monotonic() into the first 8 bytes of each audioOutput's PCM just "
                f"before sending it, one every {LATENCY_INTERVAL_MS:g} ms ({OUTPUT_CHUNK_MS_TEXT}); the "
                f"client "
                f"subtracts it from its own time.monotonic() (CLOCK_MONOTONIC is system-wide on Linux) when "
                f"receive_audio() yields the chunk (bare SDK: after rx.receive() + json.loads + base64), "
                f"while a paced microphone sends {clients.config.frame_ms} ms frames. 'SDK arrival' is the "
                f"provider reader's timestamp: the part spent in the SDK, before nova_nb."
            ),
        }

        n = settings["close_sessions"]
        _log(f"close: {n} sessions each")
        p_close = [await cases.close_provider(clients) for _ in range(n)]
        b_close = [await cases.close_bare(clients) for _ in range(n)]
        results["close"] = {
            "sessions": n,
            "provider_p50_ms": round(statistics.median(p_close) * 1e3, 2),
            "provider_max_ms": round(max(p_close) * 1e3, 2),
            "bare_sdk_p50_ms": round(statistics.median(b_close) * 1e3, 2),
            "bare_sdk_max_ms": round(max(b_close) * 1e3, 2),
            "target_ms": CLOSE_TARGET_MS,
            "pass": max(p_close) * 1e3 <= CLOSE_TARGET_MS,
            "method": (
                f"Wall time of await session.close() over {n} sessions, each closed while a paced reply "
                f"(one 40 ms chunk per 20 ms) is still arriving, after {cases.CLOSE_AFTER_CHUNKS} chunks and "
                f"after the microphone stopped; closed means the closing events were sent, the input ended "
                f"and the response ended cleanly. Bare SDK: the same closing events, input_stream.close() "
                f"and the reader's end."
            ),
        }
    return {
        "schema": 1,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": settings,
        "pinned": {"client_cpu": pins[0], "emulator_cpu": pins[1], "for": ["send_cpu", "receive_cpu"]}
        if pins
        else None,
        "seconds": round(time.monotonic() - started, 1),
        # The bench itself keeps about 1.5 CPUs busy; more than that means other work competed with it.
        "load_average_1min": {"before": load_before, "after": _load()},
        "results": results,
        "others": OTHERS,
    }


OUTPUT_CHUNK_MS_TEXT: Final = f"{cases.OUTPUT_CHUNK_MS} ms of audio each"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _others(key: str, unit: str) -> str:
    return ", ".join(f"{name} {value:g}{unit}" for name, value in OTHERS[key].items())


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    """Rows of cells as aligned text; columns in ``right`` are right-aligned. Row 0 is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [line(rows[0]), line(["-" * w for w in widths]), *(line(row) for row in rows[1:])]


def render(report: dict[str, Any]) -> str:
    r = report["results"]
    m = report["machine"]
    s, rc, lat, cl = r["send_cpu"], r["receive_cpu"], r["latency"], r["close"]
    rows = [
        ["measure", "nova_nb", "bare SDK", "ratio", "target", "", "others (team, same method)"],
        [
            "1. send CPU / 1,000 audioInput",
            f"{s['provider_ms_per_1000']:.1f} ms",
            f"{s['bare_sdk_ms_per_1000']:.1f} ms",
            f"{s['ratio']:.2f}×",
            f"≤ {s['target_ratio']:g}×",
            _verdict(s["pass"]),
            _others("send_ratio", "×"),
        ],
        [
            "2. receive CPU / 1,000 audioOutput",
            f"{rc['provider_ms_per_1000']:.1f} ms",
            f"{rc['bare_sdk_ms_per_1000']:.1f} ms",
            f"{rc['ratio']:.2f}×",
            f"≤ {rc['target_ratio']:g}×",
            _verdict(rc["pass"]),
            _others("receive_ratio", "×"),
        ],
        [
            "3. delivery latency p50 / p99",
            f"{lat['provider_p50_ms']:.2f} / {lat['provider_p99_ms']:.2f} ms",
            f"{lat['bare_sdk_p50_ms']:.2f} / {lat['bare_sdk_p99_ms']:.2f} ms",
            "",
            f"p99 ≤ {lat['target_p99_ms']:g} ms",
            _verdict(lat["pass"]),
            "",
        ],
        [
            "4. close() p50 / max",
            f"{cl['provider_p50_ms']:.1f} / {cl['provider_max_ms']:.1f} ms",
            f"{cl['bare_sdk_p50_ms']:.1f} / {cl['bare_sdk_max_ms']:.1f} ms",
            "",
            f"≤ {cl['target_ms']:g} ms",
            _verdict(cl["pass"]),
            _others("close_ms", " ms"),
        ],
    ]
    pinned = report["pinned"]
    where = (
        f"for the CPU figures, client pinned to CPU {pinned['client_cpu']}, emulator to CPU "
        f"{pinned['emulator_cpu']}"
        if pinned
        else "client and emulator not pinned"
    )
    load = report["load_average_1min"]
    busy = load["before"] is not None and load["before"] > BUSY_LOAD
    lines = [
        f"nova_nb benchmark · {m['cpus']} CPUs · Python {m['python']} · {m['platform']} · "
        f"{report['seconds']} s",
        _wrap(
            f"emulator in a separate process ({where}); CPU = time.process_time() of the client process, "
            "all its threads",
            indent="",
        ),
        *([_wrap(BUSY_WARNING.format(load=load["before"]), indent="  ")] if busy else []),
        "",
        *_table(rows, right={1, 2, 3}),
        "",
        "runs, ms per 1,000 events (nova_nb / bare SDK); ratio = median of the back-to-back pairs' ratios",
        f"(as ratios of the medians: send {s['ratio_of_medians']:.2f}×, "
        f"receive {rc['ratio_of_medians']:.2f}×):",
        f"  send     {' '.join(f'{x:.1f}' for x in s['provider_runs_ms_per_1000'])}"
        f"  /  {' '.join(f'{x:.1f}' for x in s['bare_sdk_runs_ms_per_1000'])}",
        f"  receive  {' '.join(f'{x:.1f}' for x in rc['provider_runs_ms_per_1000'])}"
        f"  /  {' '.join(f'{x:.1f}' for x in rc['bare_sdk_runs_ms_per_1000'])}",
        f"latency: max {lat['provider_max_ms']:.2f} ms (bare SDK {lat['bare_sdk_max_ms']:.2f} ms); "
        f"spent in the SDK, before nova_nb's reader: p50 {lat['provider_sdk_arrival_p50_ms']:.2f} / "
        f"p99 {lat['provider_sdk_arrival_p99_ms']:.2f} ms",
        "",
        "methods:",
    ]
    for number, key in enumerate(("send_cpu", "receive_cpu", "latency", "close"), start=1):
        lines.append(_wrap(f"{number}. {r[key]['method']}", indent="   "))
    lines.append(
        _wrap(
            "others: the team's figures for Strands' and Pipecat's Nova Sonic clients, measured with the "
            "same methods (cost relative to the bare SDK; Pipecat's close time).",
            indent="   ",
        )
    )
    return "\n".join(lines)


def _wrap(text: str, indent: str, width: int = 110) -> str:
    import textwrap

    return textwrap.fill(text, width=width, subsequent_indent=indent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts, for a smoke test (figures are rough)"
    )
    parser.add_argument("--reps", type=int, default=None, help="runs per CPU figure (default 7; quick: 2)")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let client and emulator float over all CPUs (default: one CPU each, for repeatable figures)",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"JSON results file (default: {RESULTS})"
    )
    args = parser.parse_args(argv)
    settings = _quick() if args.quick else _full()
    if args.reps is not None:
        settings["reps"] = max(1, args.reps)
    pins = None if args.no_pin else cpu_plan()
    if pins is not None:
        # Before any thread exists: the SDK's CRT threads, started later, inherit the main thread's CPU.
        os.sched_setaffinity(0, {pins[0]})
    report = asyncio.run(run(settings, pins))
    print(render(report))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
