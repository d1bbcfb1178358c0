"""The widgets in a real JupyterLab 4 with chromium and a fake microphone (a WAV made with espeak-ng).

One conversation with the local provider: the panel renders with no console errors, the spoken
question reaches the emulator, the answer plays in the page (the page's audio tap and the playback
position the session was told), and the question coming round again barges in and flushes playback;
a kernel thread waiting with ``panel.wait_for_turn`` gets the reply. Then the panel's controls in the
orders a user presses them, a standalone LiveAudio without a session, and push-to-talk with the reply
played. Screenshots of each state go to $NOVA_NB_TEST_ARTIFACTS/browser.
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
    "import threading\n"
    "from nova_nb import widgets\n"
    "panel = widgets.SessionPanel('local', provider_options={{'engine': 'scripted', 'responder': lambda text: {reply!r}}})\n"
    "_waited, _seen = {{}}, []\n"
    "panel.on_turn(lambda turn: _seen.append(turn.index))\n"
    "threading.Thread(target=lambda: _waited.update(index=panel.wait_for_turn(120).index), daemon=True).start()\n"
    "panel"
)
#: The page's state of a widget, through its element (no globals): the first LiveAudio under `scope`.
PAGE_STATE = "(scope) => document.querySelector(scope + ' [data-testid=nova-live]').novaLive.state()"


def page_state(page: Any, scope: str = ".nova-session-panel") -> Any:
    return page.evaluate(PAGE_STATE, scope)


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
    state = (
        "lambda: {**panel.snapshot(), 'main_thread_busy': globals().get('_busy', False), "
        "'waited': dict(_waited), 'seen': list(_seen)}"
    )
    cells = [PANEL_CELL.format(reply=REPLY), harness.DUMP_CELL.format(path=str(results), state=state)]
    harness.write_notebook(lab.root / f"{name}.ipynb", [*cells, BUSY_CELL] if busy else cells)
    out: dict[str, Any] = {}
    with harness.browser(fake_mic) as context:
        page = context.new_page()
        console = harness.ConsoleLog(page)
        try:
            harness.open_notebook(page, lab, f"{name}.ipynb", cells=2)
            page.wait_for_selector("[data-testid=nova-panel-start]", timeout=60_000)
            # One control owns the microphone: the panel has no separate microphone button.
            out["inner_mic_buttons"] = page.locator(".nova-session-panel [data-testid=nova-live-mic]").count()
            harness.wait_until(lambda: _results(results), 30, "the kernel to report the panel's state")
            page.screenshot(path=str(artifacts / f"{prefix}-1-panel.png"))
            out["console_errors_after_render"] = list(console.errors)

            page.click("[data-testid=nova-panel-start]")
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
            out["tap_playing"] = page_state(page)
            page.screenshot(path=str(artifacts / f"{prefix}-2-answer-playing.png"))

            def barged() -> Any:
                r = _results(results)
                flushes = page_state(page)["flushes"]
                return (r, flushes) if r and r["interruptions"] and flushes else None

            out["barge_in"], out["flushes"] = harness.wait_until(
                barged, 30, "a barge-in and a flush in the page"
            )
            page.wait_for_timeout(300)  # long enough to hear sound after the flush, were there any
            out["tap_after_flush"] = page_state(page)
            out["after"] = harness.wait_until(
                lambda: (r := _results(results)) and r["live"]["flush_ms"]["n"] and r, 5, "flush report"
            )
            page.wait_for_selector(".nova-panel-players :text('interrupted after')", timeout=10_000)
            out["players_text"] = page.inner_text(".nova-panel-players")
            page.screenshot(path=str(artifacts / f"{prefix}-3-barge-in.png"))
            out["latency_text"] = page.inner_text(".nova-panel-latency")
            page.click("[data-testid=nova-panel-start]")  # Stop
            page.wait_for_selector('.nova-panel-status [data-state="stopped"]', timeout=30_000)
            out["final"] = harness.wait_until(
                lambda: (r := _results(results)) and r["state"] == "stopped" and r, 10, "the stopped state"
            )
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
    assert conversation["inner_mic_buttons"] == 0


def test_kernel_side_wait_and_observe(conversation: dict[str, Any]) -> None:
    final = conversation["final"]
    # A kernel thread blocked in panel.wait_for_turn got the first reply; on_turn saw it too.
    assert final["waited"] == {"index": 0} and 0 in final["seen"]
    # The snapshot survives Stop: what was played and sent is still there.
    assert final["played_s"] and max(final["played_s"].values()) > 0 and final["audio_samples_sent"] > 0
    live = final["live"]
    assert live["frames_dropped"] == 0 and live["gaps"] == 0 and live["frames_unrouted"] == 0, live
    assert live["frames_received"] == live["frames_sent"], live
    # The latency table shows both definitions and the barge-in's flush time.
    text = conversation["latency_text"]
    assert "end of speech → first audio" in text and "turn decision → first audio" in text
    assert "barge-in → silence" in text and final["turns"][0]["barge_in_to_silence_s"] is not None


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


PTT_CELL = (
    "from nova_nb import s2s, widgets\n"
    "from nova_nb.widgets._runner import LoopThread\n"
    "runner = LoopThread()\n"
    "provider = s2s.new_provider('local', engine='scripted', responder=lambda text: 'Here is the spoken answer to your question.')\n"
    "session = runner.run(provider.start_streaming(s2s.ConversationContext()), 60)\n"
    "ptt = widgets.PushToTalk(session, loop=runner.loop)\n"
    "ptt"
)


def test_push_to_talk_records_sends_and_plays_the_reply(
    lab: harness.JupyterLab, fake_mic: Path, artifacts: Path
) -> None:
    results = lab.root / "ptt.json"
    harness.write_notebook(
        lab.root / "ptt.ipynb",
        [
            PTT_CELL,
            harness.DUMP_CELL.format(
                path=str(results),
                state="lambda: {'n': len(ptt.recordings), 'errors': ptt.errors, "
                "'seconds': [r.size / 16000 for r in ptt.recordings], "
                "'peak': [int(abs(r.astype('int32')).max()) if r.size else 0 for r in ptt.recordings], "
                "'lines': list(ptt.lines), 'played_s': dict(session.played_s), 'live': ptt.live.stats()}",
            ),
        ],
    )
    with harness.browser(fake_mic) as context:
        page = context.new_page()
        console = harness.ConsoleLog(page)
        try:
            harness.open_notebook(page, lab, "ptt.ipynb")
            record = page.locator("[data-testid=nova-ptt-record]")
            record.wait_for(timeout=60_000)
            harness.wait_until(lambda: _results(results), 30, "the kernel to report")
            labels = page.evaluate(
                "[...document.querySelectorAll('.nova-push-to-talk button')].map(b => [b.textContent, b.getAttribute('aria-label')])"
            )
            record.click()
            page.wait_for_selector("[data-testid=nova-ptt-record][data-state=recording]", timeout=10_000)
            stop_label = record.get_attribute("aria-label")
            time.sleep(3.0)
            page.screenshot(path=str(artifacts / "ptt-1-recording.png"))
            record.click()  # Stop and send
            r = harness.wait_until(
                lambda: (x := _results(results)) and x["n"] and x, 20, "the recording in the kernel"
            )
            # The reply plays in the page, through the same player as the panel's.
            played = harness.wait_until(
                lambda: (st := page_state(page, ".nova-push-to-talk"))["audibleSamples"] > 0.5 * 24000 and st,
                60,
                "the reply to play in the page",
            )
            final = harness.wait_until(
                lambda: (x := _results(results)) and x["played_s"] and x, 20, "the playback report"
            )
            page.wait_for_selector(".nova-push-to-talk .nova-line[data-role=USER]", timeout=20_000)
            page.screenshot(path=str(artifacts / "ptt-2-reply.png"))
        except Exception:
            page.screenshot(path=str(artifacts / "ptt-failure.png"))
            print("\n".join(console.lines[-40:]))
            raise
        finally:
            lab.shutdown_kernels()
    assert r["errors"] == []
    assert 2.0 < r["seconds"][0] < 5.0, r  # WebM/Opus decoded by PyAV to 16 kHz samples
    assert r["peak"][0] > 1000, r  # with the fake microphone's speech in it
    # Every button has a text label and an aria-label.
    assert labels and all(text.strip() and aria for text, aria in labels), labels
    assert "Stop recording" in (stop_label or "")
    assert played["chunksStarted"] >= 1 and max(final["played_s"].values()) > 0.3
    assert any(line["role"] == "USER" for line in final["lines"])
    assert final["live"]["frames_unrouted"] == 0 and final["live"]["frames_dropped"] == 0
    assert console.errors == []


STANDALONE_CELL = "from nova_nb import widgets\nlive = widgets.LiveAudio()\nlive"


def test_standalone_live_audio_says_it_has_no_session(
    lab: harness.JupyterLab, fake_mic: Path, artifacts: Path
) -> None:
    results = lab.root / "standalone.json"
    harness.write_notebook(
        lab.root / "standalone.ipynb",
        [STANDALONE_CELL, harness.DUMP_CELL.format(path=str(results), state="lambda: live.stats()")],
    )
    with harness.browser(fake_mic) as context:
        page = context.new_page()
        try:
            harness.open_notebook(page, lab, "standalone.ipynb")
            page.click("[data-testid=nova-live-mic]", timeout=60_000)
            harness.wait_until(
                lambda: (x := _results(results)) and x["frames_received"] >= 50 and x,
                30,
                "frames in the kernel",
            )
            page.wait_for_selector(
                "[data-testid=nova-live-detail]:has-text('no session attached')", timeout=10_000
            )
            detail = page.inner_text("[data-testid=nova-live-detail]")
            page.screenshot(path=str(artifacts / "standalone.png"))
            page.click("[data-testid=nova-live-mic]")  # Stop microphone
            page.wait_for_selector("[data-testid=nova-live-mic][data-state=off]", timeout=10_000)
            time.sleep(0.5)
            r = _results(results)
        finally:
            lab.shutdown_kernels()
    # Nothing silently dropped: every frame the kernel got is counted as having gone nowhere, and shown.
    assert r["route"] == "none" and r["frames_unrouted"] == r["frames_received"] > 0, r
    assert "frames counted, not sent anywhere" in detail


def _wait_state(page: Any, state: str, timeout: float = 60) -> None:
    page.wait_for_selector(f'.nova-panel-status [data-state="{state}"]', timeout=timeout * 1000)


def test_panel_controls_in_every_order(lab: harness.JupyterLab, fake_mic: Path, artifacts: Path) -> None:
    """Start, Mute, Unmute, echo cancellation, Stop, Start again, Stop while starting, Start again:
    every step either works or its control is disabled, frames are never lost silently and a live
    session is never starved."""
    results = lab.root / "controls.json"
    harness.write_notebook(
        lab.root / "controls.ipynb",
        [
            "from nova_nb import widgets\npanel = widgets.SessionPanel('local', provider_options={'engine': 'scripted'})\npanel",
            harness.DUMP_CELL.format(path=str(results), state="panel.snapshot"),
        ],
    )
    start = "[data-testid=nova-panel-start]"
    mute = "[data-testid=nova-panel-mute]"
    steps: dict[str, Any] = {}

    def snap() -> Any:
        return _results(results)

    def flowing(label: str, sessions: int, seconds: float = 1.5) -> None:
        """Frames reach the session while live: audio_samples_sent grows at about real time.

        The count is per session and the kernel's dump trails the page by up to 0.1 s, so the
        measurement starts only once the dump shows this session live (else it straddles two)."""
        a = harness.wait_until(
            lambda: (x := snap()) and x["state"] == "live" and x["sessions"] == sessions and x,
            10,
            f"session {sessions} live in the kernel",
        )
        time.sleep(seconds)
        b = snap()
        steps[label] = (b["audio_samples_sent"] - a["audio_samples_sent"]) / 16000 / seconds
        assert steps[label] > 0.5, (label, steps[label])

    with harness.browser(fake_mic) as context:
        page = context.new_page()
        console = harness.ConsoleLog(page)
        try:
            harness.open_notebook(page, lab, "controls.ipynb")
            page.wait_for_selector(start, timeout=60_000)
            harness.wait_until(snap, 30, "the kernel to report")
            assert page.is_disabled(mute)  # nothing to mute before Start
            page.click(start)
            _wait_state(page, "live")
            flowing("live", 1)
            page.click(mute)
            page.wait_for_selector(f"{mute}[aria-pressed=true]", timeout=10_000)
            assert harness.wait_until(lambda: snap()["muted"], 5, "muted in the kernel")
            flowing("muted", 1)  # muted streams silence: the session keeps getting audio
            page.click(mute)
            page.wait_for_selector(f"{mute}[aria-pressed=false]", timeout=10_000)
            page.uncheck("[data-testid=nova-live-aec]")  # reopens the microphone mid-session
            flowing("echo cancellation off", 1)
            page.screenshot(path=str(artifacts / "controls-1-live.png"))
            page.click(start)  # Stop
            _wait_state(page, "stopped", 30)
            stopped = harness.wait_until(
                lambda: (x := snap()) and x["state"] == "stopped" and x, 10, "stopped"
            )
            assert not page_state(page)["running"] and page.is_disabled(mute)
            assert stopped["audio_samples_sent"] > 0 and stopped["sessions"] == 1  # kept after Stop
            page.click(start)  # Start again
            _wait_state(page, "live")
            flowing("live again", 2)
            page.click(start)  # Stop
            _wait_state(page, "stopped", 30)
            page.click(start)  # Start, then Stop at once (while starting)
            page.click(start)
            _wait_state(page, "stopped", 30)
            page.click(start)
            _wait_state(page, "live")
            flowing("live after a cancelled start", 4)
            page.click(start)
            _wait_state(page, "stopped", 30)
            final = harness.wait_until(lambda: (x := snap()) and x["state"] == "stopped" and x, 10, "stopped")
            page.screenshot(path=str(artifacts / "controls-2-stopped.png"))
        except Exception:
            page.screenshot(path=str(artifacts / "controls-failure.png"))
            print("\n".join(console.lines[-40:]))
            print(snap())
            raise
        finally:
            lab.shutdown_kernels()
    live = final["live"]
    assert final["errors"] == [] and final["sessions"] == 4, final
    assert live["frames_dropped"] == 0 and live["gaps"] == 0, live
    # Every frame is accounted for: sent to a session, or (the cancelled start) counted as unrouted.
    assert (
        live["frames_received"] == live["frames_sent"] + live["frames_unrouted"] + live["frames_after_close"]
    ), live
    assert console.errors == []
