"""live.js and the AudioWorklet in a real chromium, without Jupyter: resampling, playback, flush, and
the messages for a denied permission, a missing device and an insecure page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from . import harness

pytestmark = pytest.mark.slow


def _gain_db(samples: list[int], amplitude: float) -> float:
    x = np.asarray(samples, dtype=np.float64)
    x = x[len(x) // 4 :]  # past the filter's start-up
    rms = float(np.sqrt(np.mean(x**2)))
    return 20 * np.log10(max(rms, 1e-9) / (amplitude * 32768 / np.sqrt(2)))


def _open(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url + "/index.html")
    page.wait_for_function("window.ready === true", timeout=10_000)
    return page


@pytest.mark.parametrize("device_rate", [44100, 48000])
def test_capture_resamples_with_an_anti_aliasing_filter(page_dir: Path, device_rate: int) -> None:
    with harness.static_server(page_dir) as url, harness.browser() as context:
        page = _open(context, url)
        gains = {
            f: _gain_db(page.evaluate(f"resampleTone({device_rate}, {f}, 1.0)"), 0.5)
            for f in (1000, 6500, 9000, 12000)
        }
    # Speech band passes unchanged (±0.5 dB); above the new Nyquist (8 kHz) nothing folds back.
    assert abs(gains[1000]) < 0.5 and abs(gains[6500]) < 0.5, gains
    assert gains[9000] < -60 and gains[12000] < -60, gains


def test_frames_are_20ms_of_16khz_int16(page_dir: Path, fake_mic: Path) -> None:
    with harness.static_server(page_dir) as url, harness.browser(fake_mic) as context:
        page = _open(context, url)
        page.evaluate("setup({})")
        page.click("button.nova-live-start")
        harness.wait_until(
            lambda: page.evaluate("model.sent.filter(m => m.content.type === 'frame').length") >= 60,
            15,
            "60 frames",
        )
        frames = page.evaluate(
            "model.sent.filter(m => m.content.type === 'frame').map(m => [m.bytes, m.content.seq])"
        )
        stamps = page.evaluate(
            "model.sent.filter(m => m.content.type === 'frame').map(m => [m.content.captured, m.content.sent])"
        )
        # Page-side events per widget, through the element's hook (no globals).
        events = page.evaluate("live.events('frame').length")
        controls = page.evaluate(
            "[...document.querySelectorAll('[data-testid]')].map(e => e.dataset.testid + ':' + (e.getAttribute('aria-label') || ''))"
        )
        state = page.evaluate(
            "({running: model.get('running'), rate: model.get('device_rate'), status: model.get('status')})"
        )
        peak = page.evaluate(
            "Math.max(...model.sent.filter(m => m.content.type === 'frame').flatMap(m => m.pcm.map(Math.abs)))"
        )
        meter = harness.wait_until(
            lambda: page.evaluate(
                "parseFloat(document.querySelector('.nova-live-meter div').style.width) || 0"
            ),
            10,
            "the level meter to move",
        )
        # Echo cancellation off: the microphone is reopened without it, and frames keep coming.
        assert page.evaluate("live.state().echoCancellation") is True
        before = page.evaluate("live.state().framesSent")
        page.uncheck("input.nova-live-aec")
        harness.wait_until(lambda: page.evaluate("live.state().echoCancellation") is False, 10, "AEC off")
        harness.wait_until(
            lambda: page.evaluate("live.state().framesSent") > before + 25,
            10,
            "frames after the toggle",
        )
        assert page.evaluate("model.get('echo_cancellation')") is False and page.evaluate(
            "model.get('running')"
        )
    assert state["running"] and state["status"] == "listening" and state["rate"] in (44100, 48000), state
    assert {b for b, _ in frames} == {640}
    # Stamped on the audio thread at capture, before the main thread posted them.
    assert all(0 < captured <= sent + 1 for captured, sent in stamps), stamps[:5]
    assert events >= 60
    assert "nova-live-mic:Stop the microphone" in controls and "nova-live-aec:echo cancellation" in controls
    assert [s for _, s in frames] == list(range(len(frames)))  # in order, none lost
    assert peak > 1000  # the fake microphone's speech came through
    assert meter > 0


def test_playback_is_gap_free_and_flush_silences_at_once(
    page_dir: Path, fake_mic: Path, artifacts: Path
) -> None:
    with harness.static_server(page_dir) as url, harness.browser(fake_mic) as context:
        page = _open(context, url)
        page.evaluate("setup({})")
        page.click("button.nova-live-start")
        page.wait_for_function("model.get('running') === true", timeout=15_000)
        # 1 s of tone in 25 chunks of 40 ms at 24 kHz, sent at once: it must play as one 1 s sound.
        page.evaluate(
            """() => {
                for (let k = 0; k < 25; k++) {
                    const pcm = new Int16Array(960);
                    for (let i = 0; i < 960; i++) pcm[i] = Math.round(8000 * Math.sin(2 * Math.PI * 440 * (k * 960 + i) / 24000));
                    model.emit('msg:custom', {type: 'play', id: 'reply-1', seq: k, sent: performance.timeOrigin + performance.now()},
                               [new DataView(pcm.buffer)]);
                }
            }"""
        )
        harness.wait_until(
            lambda: page.evaluate("live.state().audibleSamples") >= 24000 - 128, 5, "1 s played"
        )
        played = page.evaluate("model.sent.filter(m => m.content.type === 'played').map(m => m.content)")
        audible = page.evaluate("live.state().audibleSamples")
        # Gap-free: exactly as many audible samples as were sent (± one render quantum of rounding).
        assert abs(audible - 24000) <= 128, audible
        assert played and abs(played[-1]["played_s"] - 1.0) < 0.01 and played[-1]["id"] == "reply-1"

        # A 10 s reply, flushed after ~300 ms: the page goes silent and says what was heard.
        page.evaluate(
            """() => {
                const pcm = new Int16Array(240000);
                for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(8000 * Math.sin(2 * Math.PI * 330 * i / 24000));
                model.emit('msg:custom', {type: 'play', id: 'reply-2', seq: 100, sent: 0}, [new DataView(pcm.buffer)]);
            }"""
        )
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "page-playing.png"))
        page.evaluate("model.emit('msg:custom', {type: 'flush', token: 7})")
        harness.wait_until(lambda: page.evaluate("live.state().flushes.length") >= 1, 5, "flush")
        page.wait_for_timeout(300)
        flush = page.evaluate("live.state().flushes[0]")
        last_audible = page.evaluate("live.state().lastAudibleAt")
        final = page.evaluate(
            "model.sent.filter(m => m.content.type === 'played' && m.content.final).map(m => m.content)"
        )
    assert flush["token"] == 7 and flush["dropped"] > 200_000
    # Nothing audible after the flush took effect (one 5.3 ms render quantum of slack).
    assert last_audible <= flush["at"] + 6, (last_audible, flush)
    assert final and final[0]["id"] == "reply-2" and 0.1 < final[0]["played_s"] < 2.0


def _start_and_get_error(context: Any, url: str) -> dict[str, Any]:
    page = _open(context, url)
    page.evaluate("setup({})")
    page.click("button.nova-live-start")
    page.wait_for_function("model.get('status') === 'error'", timeout=15_000)
    return page.evaluate(
        "({error: model.get('error'), running: model.get('running'), shown: document.querySelector('.nova-live-error').textContent})"
    )


def test_denied_permission_is_explained(page_dir: Path) -> None:
    # No fake UI: headless chromium answers the permission prompt with "deny".
    with (
        harness.static_server(page_dir) as url,
        harness.browser(extra_args=["--use-fake-device-for-media-stream"]) as context,
    ):
        state = _start_and_get_error(context, url)
    assert (
        "permission was denied" in state["error"]
        and state["shown"] == state["error"]
        and not state["running"]
    )


def test_missing_microphone_is_explained(page_dir: Path) -> None:
    # Permission granted, but no device (no fake device and no sound card in the container).
    with (
        harness.static_server(page_dir) as url,
        harness.browser(extra_args=["--use-fake-ui-for-media-stream"]) as context,
    ):
        state = _start_and_get_error(context, url)
    assert "No microphone was found" in state["error"], state


def test_insecure_page_is_explained(page_dir: Path, fake_mic: Path) -> None:
    # The same server under a name that is not localhost: http there is not a secure context.
    with (
        harness.static_server(page_dir) as url,
        harness.browser(fake_mic, extra_args=["--host-resolver-rules=MAP nova-nb.test 127.0.0.1"]) as context,
    ):
        state = _start_and_get_error(context, url.replace("127.0.0.1", "nova-nb.test"))
    assert "needs a secure page" in state["error"] and "https://" in state["error"], state
