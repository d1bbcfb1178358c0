"""plot_stream_timeline: bars, replays, triggers and failures where a real session's events put them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from nova_nb import s2s
from nova_nb.analysis import plot_stream_timeline
from nova_nb.emulator.conversation import ConversationOptions, Faults
from nova_nb.emulator.engine.testaudio import make_utterance
from nova_nb.s2s import events as ev

matplotlib.use("Agg")

RATE = 16000


async def _session(faults: Faults, *, warm_up_s: float = 0.0, **options: Any) -> dict[str, Any]:
    """One question to the scripted emulator with ``faults``; what the plot needs, and the truth to check."""
    ended: dict[int, float] = {}
    engine = ConversationOptions(
        faults=faults, on_stream_end=lambda st: ended.setdefault(st["stream_number"], time.monotonic())
    )
    provider = s2s.new_provider("local", engine=engine, latency_target="low", **options)
    log: list[ev.Event] = []
    question = make_utterance("What will the weather be like?", lead_silence_s=0.2, tail_silence_s=0.0)
    async with await provider.start_streaming() as session:
        session.add_listener(log.append)
        # Streams age on the wall clock: stream this much silence in real time before the question.
        await session.send_audio(np.zeros(int(warm_up_s * RATE), np.int16), pace=True)
        start = time.monotonic()
        await session.send_audio(question)
        spoken = (start, time.monotonic())
        deadline = time.monotonic() + 20
        while not any(
            isinstance(e, ev.ContentEnded) and e.type == "AUDIO" and e.stop_reason == "END_TURN" for e in log
        ):
            assert time.monotonic() < deadline, "no reply within 20 s"
            await session.send_audio(np.zeros(512, np.int16))
            await asyncio.sleep(0.005)
        blocks = {cid: i for i, s in enumerate(session.streams) for cid in s.audio_blocks}
        opened = [s.opened_at for s in session.streams]
    await asyncio.sleep(0.2)  # the emulator's on_stream_end for the last stream
    return {
        "log": log,
        "spans": [(t, ended.get(i)) for i, t in enumerate(opened)],
        "blocks": blocks,
        "spoken": [spoken],
    }


def _bars(ax: Any, color: str) -> list[Rectangle]:
    rgba = matplotlib.colors.to_rgba(color)
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_facecolor() == rgba]


def test_reconnect_is_drawn_where_the_events_are() -> None:
    run = asyncio.run(_session(Faults(reset_at_event=20, faulty_streams=1)))
    log, spans = run["log"], run["spans"]
    assert len(spans) == 2
    t0 = spans[0][0]
    ax = plot_stream_timeline(log, spans, user_speech=run["spoken"], block_streams=run["blocks"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["stream 1", "stream 2", "you"]

    grey = sorted(_bars(ax, "lightgrey"), key=lambda p: p.get_x())
    assert [p.get_x() for p in grey] == pytest.approx([o - t0 for o, _ in spans])
    assert grey[0].get_width() == pytest.approx(spans[0][1] - spans[0][0])

    renewed = next(e for e in log if isinstance(e, ev.SessionRenewed))
    assert renewed.reason == "reconnect"
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch() == "///"]
    assert len(hatched) == 1
    window = renewed.replayed_s + renewed.held_s
    assert hatched[0].get_width() == pytest.approx(window)
    assert hatched[0].get_x() + window == pytest.approx(renewed.timestamp - t0)
    assert hatched[0].get_y() + hatched[0].get_height() / 2 == pytest.approx(0.0)  # stream 2's lane

    # The reply came from stream 2 (lane 0), all of its audio, laid end to end.
    green = _bars(ax, "tab:green")
    audio = [e for e in log if isinstance(e, ev.AudioOutput)]
    assert green and {p.get_y() + p.get_height() / 2 for p in green} == {0.0}
    assert sum(p.get_width() for p in green) == pytest.approx(sum(a.duration_s for a in audio))
    assert min(p.get_x() for p in green) == pytest.approx(audio[0].timestamp - t0)

    failed = next(e for e in log if isinstance(e, ev.Reconnecting))
    crosses = [line for line in ax.lines if line.get_marker() == "X"]
    assert len(crosses) == 1
    assert crosses[0].get_xdata()[0] == pytest.approx(failed.timestamp - t0)
    assert crosses[0].get_ydata()[0] == 1.0  # on stream 1, the one that failed


def test_continuation_trigger_and_the_old_stream_s_reply() -> None:
    # replay_s=0: the new stream must not hear the question again (it would answer it too).
    run = asyncio.run(_session(Faults(), warm_up_s=1.1, continuation_after_s=1.0, replay_s=0.0))
    log, spans, blocks = run["log"], run["spans"], run["blocks"]
    renewed = [e for e in log if isinstance(e, ev.SessionRenewed)]
    assert [e.reason for e in renewed] == ["continuation"]
    audio = [e for e in log if isinstance(e, ev.AudioOutput)]
    # The reply that triggered the continuation was spoken by stream 1, even after the switch.
    assert set(blocks.values()) == {0}
    t0 = spans[0][0]
    ax = plot_stream_timeline(log, spans, stream_limit_s=3.0, limit_label="test limit", block_streams=blocks)
    green = _bars(ax, "tab:green")
    assert {p.get_y() + p.get_height() / 2 for p in green} == {1.0}  # stream 1's lane (the top one)
    triggers = [line for line in ax.lines if line.get_marker() == "v"]
    assert len(triggers) == 1 and triggers[0].get_xdata()[0] == pytest.approx(audio[0].timestamp - t0)
    limits = [line for line in ax.lines if line.get_label() == "test limit"]
    assert limits and limits[0].get_xdata()[0] == pytest.approx(3.0)
    # Without block_streams a block goes to the stream current when it arrived: blocks that came after
    # the switch land on stream 2, which is why the mapping exists.
    late = [
        a
        for a in audio
        if a.content_id not in {b.content_id for b in audio if b.timestamp <= renewed[0].timestamp}
    ]
    guessed = plot_stream_timeline(log, spans)
    lanes = {p.get_y() + p.get_height() / 2 for p in _bars(guessed, "tab:green")}
    assert lanes == ({0.0, 1.0} if late else {1.0})


def test_bad_input_is_named() -> None:
    event = ev.SessionClosed(timestamp=1.0, reason="closed")
    with pytest.raises(ValueError, match="streams is empty"):
        plot_stream_timeline([event], [])
    with pytest.raises(ValueError, match="stream 1 ends before it opens"):
        plot_stream_timeline([event], [(2.0, 1.0)])
    with pytest.raises(ValueError, match="order they opened"):
        plot_stream_timeline([event], [(2.0, 3.0), (1.0, None)])
    with pytest.raises(ValueError, match="stream_limit_s must be a positive"):
        plot_stream_timeline([event], [(0.0, 3.0)], stream_limit_s=0)
    with pytest.raises(ValueError, match="user_speech span ends before it starts"):
        plot_stream_timeline([event], [(0.0, 3.0)], user_speech=[(2.0, 1.0)])
    audio = ev.AudioOutput(timestamp=1.0, audio=bytes(4800), content_id="c1", sample_rate=24000)
    with pytest.raises(ValueError, match="block_streams puts block 'c1' on stream 5; there are 1 streams"):
        plot_stream_timeline([audio], [(0.0, 3.0)], block_streams={"c1": 5})
