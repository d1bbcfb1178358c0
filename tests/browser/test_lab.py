"""The widgets in a real JupyterLab 4 with chromium and a fake microphone (a WAV made with espeak-ng).

One conversation with the local provider: the panel renders with no console errors, the spoken
question reaches the emulator, the answer plays in the page (the page's audio tap and the playback
position the session was told), and the question coming round again barges in and flushes playback.
Screenshots of each state go to $NOVA_NB_TEST_ARTIFACTS/browser.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from . import harness

pytestmark = pytest.mark.slow

#: A long reply (about 6 s of scripted speech), so the looping fake microphone barges in on it.
REPLY = "Here is a long answer for the browser test. " + " ".join(["words"] * 28) + "."
PANEL_CELL = (
    "from nova_nb import widgets\n"
    "panel = widgets.SessionPanel('local', provider_options={{'engine': 'scripted', 'responder': lambda text: {reply!r}}})\n"
    "panel"
)


def _results(path: Path) -> Any:
    return harness.read_json(path)


#: Keeps the kernel's main thread busy while we talk: with comms over subshells the conversation must
#: go on regardless (the dump thread reports whether the cell was still running). It starts after
#: Start: JupyterLab routes a comm to its subshell only once that subshell exists, and the first clicks
#: on a freshly shown widget can still reach the main shell (and wait for a running cell). Stop is
#: clicked while the cell runs, and is handled on the subshell.
BUSY_CELL = "import time as _t\n_busy = True\n_t.sleep(25)\n_busy = False"


def _conversation(
    lab: harness.JupyterLab, fake_mic: Path, artifacts: Path, name: str, prefix: str, busy: bool = False
) -> dict[str, Any]:
    results = lab.root / f"{name}.json"
    state = "lambda: {**panel.snapshot(), 'main_thread_busy': globals().get('_busy', False)}"
    cells = [PANEL_CELL.format(reply=REPLY), harness.DUMP_CELL.format(path=str(results), state=state)]
    harness.write_notebook(lab.root / f"{name}.ipynb", [*cells, BUSY_CELL] if busy else cells)
    out: dict[str, Any] = {}
    with harness.browser(fake_mic) as context:
        page = context.new_page()
        console = harness.ConsoleLog(page)
        try:
            harness.open_notebook(page, lab, f"{name}.ipynb", cells=2)
            page.wait_for_selector("button.nova-panel-start", timeout=60_000)
            page.wait_for_selector(".nova-live button.nova-live-start", timeout=30_000)
            harness.wait_until(lambda: _results(results), 30, "the kernel to report the panel's state")
            page.screenshot(path=str(artifacts / f"{prefix}-1-panel.png"))
            out["console_errors_after_render"] = list(console.errors)

            page.click("button.nova-panel-start")
            page.wait_for_selector('.nova-panel-status [data-state="live"]', timeout=60_000)
            if busy:
                harness.run_cell(page, 2)
                harness.wait_until(
                    lambda: (r := _results(results)) and r["main_thread_busy"], 15, "the busy cell"
                )

            def heard() -> Any:
                r = _results(results)
                return r if r and any(v >= 0.5 for v in r["played_s"].values()) else None

            out["heard"] = harness.wait_until(heard, 45, "the answer to be played in the page")
            out["tap_playing"] = page.evaluate("window.__novaNbLive[0]")
            page.screenshot(path=str(artifacts / f"{prefix}-2-answer-playing.png"))

            def barged() -> Any:
                r = _results(results)
                flushes = page.evaluate("window.__novaNbLive[0].flushes")
                return (r, flushes) if r and r["interruptions"] and flushes else None

            out["barge_in"], out["flushes"] = harness.wait_until(
                barged, 30, "a barge-in and a flush in the page"
            )
            page.wait_for_timeout(300)  # long enough to hear sound after the flush, were there any
            out["tap_after_flush"] = page.evaluate("window.__novaNbLive[0]")
            out["after"] = harness.wait_until(
                lambda: (r := _results(results)) and r["live"]["flush_ms"]["n"] and r, 5, "flush report"
            )
            page.wait_for_selector(".nova-panel-players :text('interrupted after')", timeout=10_000)
            out["players_text"] = page.inner_text(".nova-panel-players")
            page.screenshot(path=str(artifacts / f"{prefix}-3-barge-in.png"))
            page.click("button.nova-panel-start")  # Stop
            page.wait_for_selector('.nova-panel-status [data-state="stopped"]', timeout=30_000)
            out["final"] = _results(results)
            out["console_errors"] = list(console.errors)
        except Exception:
            page.screenshot(path=str(artifacts / f"{prefix}-failure.png"))
            print("\n".join(console.lines[-40:]))
            print(_results(results))
            raise
        finally:
            lab.shutdown_kernels()
    return out


@pytest.fixture(scope="module")
def conversation(lab: harness.JupyterLab, fake_mic: Path, artifacts: Path) -> dict[str, Any]:
    return _conversation(lab, fake_mic, artifacts, "panel", "lab", busy=True)


def test_panel_renders_without_console_errors(conversation: dict[str, Any]) -> None:
    assert conversation["console_errors_after_render"] == []
    assert conversation["console_errors"] == []


def test_question_reaches_the_local_provider_and_the_answer_plays(conversation: dict[str, Any]) -> None:
    r = conversation["heard"]
    # The emulator heard the fake microphone (the scripted engine reports the speech it heard).
    user = [t for t in r["transcript"] if t["role"] == "USER"]
    assert user and "seconds of speech" in user[0]["text"]
    assert any(t["role"] == "ASSISTANT" and t["stage"] == "SPECULATIVE" for t in r["transcript"])
    # The page played it: its audio tap heard sound, and it told the session what was played.
    assert conversation["tap_playing"]["audibleSamples"] > 0.3 * 24000
    assert max(r["played_s"].values()) >= 0.5
    turn = r["turns"][0]
    assert turn["response_s"] is not None and turn["audio_to_heard_s"] is not None
    # The microphone went through the worklet's resampler at the device's rate, 20 ms frames.
    live = r["live"]
    assert live["device_rate"] in (44100, 48000) and live["frames_received"] > 50
    assert r["audio_samples_sent"] > 0


def test_barge_in_flushes_playback(conversation: dict[str, Any]) -> None:
    r = conversation["after"]
    assert r["interruptions"] >= 1 and r["turns"][0]["interrupted"]
    assert any(t["role"] == "INTERRUPTION" for t in r["transcript"])
    flush = conversation["flushes"][0]
    assert flush["dropped"] > 0  # queued reply audio was thrown away, not played out
    # Silent from the flush on (one render quantum of slack).
    assert conversation["tap_after_flush"]["lastAudibleAt"] <= flush["at"] + 6
    # The session was told how much of the interrupted reply was heard: less than all of it.
    cid = r["turns"][0]["content_id"]
    assert 0 < r["played_s"][cid] < r["turns"][0]["duration_s"]
    assert r["live"]["flush_ms"]["n"] >= 1
    # The turn's inline player holds what was heard, cut at the barge-in.
    assert "turn 1 (interrupted after" in conversation["players_text"]


def test_frames_arrive_on_a_subshell_thread_while_a_cell_runs(conversation: dict[str, Any]) -> None:
    threads = conversation["heard"]["live"]["handler_threads"]
    assert any(t.startswith("subshell") for t in threads), threads
    # The whole conversation happened while a cell kept the kernel's main thread busy.
    assert conversation["heard"]["main_thread_busy"] and conversation["after"]["main_thread_busy"]
    # Start/Stop clicks were handled too. On which thread depends on JupyterLab: a comm gets its
    # subshell only some seconds after the widget appears, so under load a click can still reach
    # the main shell; that is JupyterLab's timing, not something the widget controls.
    control = conversation["final"]["control_threads"]
    assert control and all(t == "MainThread" or t.startswith("subshell") for t in control), control


def test_works_with_comms_over_subshells_disabled(lab_root: Path, fake_mic: Path, artifacts: Path) -> None:
    root = lab_root / "no-subshells"
    root.mkdir(exist_ok=True)
    server = harness.JupyterLab(root, comms_over_subshells="disabled")
    try:
        server.start()
        out = _conversation(server, fake_mic, artifacts, "panel-main-thread", "lab-no-subshells")
    finally:
        server.stop()
    threads = out["heard"]["live"]["handler_threads"]
    assert threads == ["MainThread"], threads
    assert max(out["heard"]["played_s"].values()) >= 0.5 and out["after"]["interruptions"] >= 1


def test_push_to_talk_recorder_yields_decodable_audio(
    lab: harness.JupyterLab, fake_mic: Path, artifacts: Path
) -> None:
    results = lab.root / "ptt.json"
    harness.write_notebook(
        lab.root / "ptt.ipynb",
        [
            "from nova_nb import widgets\nptt = widgets.PushToTalk()\nptt",
            harness.DUMP_CELL.format(
                path=str(results),
                state="lambda: {'n': len(ptt.recordings), 'errors': ptt.errors, "
                "'seconds': [r.size / 16000 for r in ptt.recordings], "
                "'peak': [int(abs(r.astype('int32')).max()) if r.size else 0 for r in ptt.recordings]}",
            ),
        ],
    )
    with harness.browser(fake_mic) as context:
        page = context.new_page()
        console = harness.ConsoleLog(page)
        try:
            harness.open_notebook(page, lab, "ptt.ipynb")
            record = page.locator(".nova-ptt-recorder button.jupyter-button").first
            record.wait_for(timeout=60_000)
            harness.wait_until(lambda: _results(results), 30, "the kernel to report")
            record.click()
            time.sleep(3.0)
            page.screenshot(path=str(artifacts / "ptt-1-recording.png"))
            record.click()
            r = harness.wait_until(
                lambda: (x := _results(results)) and x["n"] and x, 20, "the recording in the kernel"
            )
            page.screenshot(path=str(artifacts / "ptt-2-recorded.png"))
        except Exception:
            page.screenshot(path=str(artifacts / "ptt-failure.png"))
            print("\n".join(console.lines[-40:]))
            raise
        finally:
            lab.shutdown_kernels()
    assert r["errors"] == []
    assert 2.0 < r["seconds"][0] < 5.0, r  # WebM/Opus decoded by PyAV to 16 kHz samples
    assert r["peak"][0] > 1000, r  # with the fake microphone's speech in it
