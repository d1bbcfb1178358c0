"""Barge-in sweeps and replays against the local emulator, with real spoken questions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from nova_nb.analysis import Recording, barge_ins, interruption_sweep, plot_sweep, replay, sweep_table, turns
from nova_nb.emulator.engine.testaudio import make_utterance

from .conftest import LiveTurn, provider


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> list:
    question = make_utterance("Tell me about the weather tomorrow.", lead_silence_s=0.3, tail_silence_s=0.0)
    stop = make_utterance("Stop, please.", lead_silence_s=0.0, tail_silence_s=0.0)
    folder = tmp_path_factory.mktemp("sweep")
    return asyncio.run(
        interruption_sweep(provider(), [0.3, 0.9, 1.5, 6.0], question, stop, folder, timeout_s=40)
    )


def test_heard_grows_with_the_offset(sweep: list) -> None:
    hit = [t for t in sweep if t.barge_in is not None]
    assert [t.offset_s for t in hit] == [0.3, 0.9, 1.5]
    heard = [t.barge_in.heard_s for t in hit]
    words = [t.barge_in.final_words for t in hit]
    assert heard == sorted(heard) and heard[0] < heard[-1]
    assert words == sorted(words) and words[0] < words[-1]
    for t in hit:
        b = t.barge_in
        rec = Recording.load(t.folder)
        # The onset is the service's userSpeechStart (docs/PROTOCOL.md §12). The emulator sends it and
        # the interruption at one VAD decision, so its reaction is ~0: an emulator fact, not Nova's.
        assert b.onset_source == "service" and 0 <= b.reaction_s < 0.1
        # From the speech itself (the recorder's energy detector): the emulator needs 0.15 s of speech
        # to call it a barge-in, and heard = offset + the wait for the speech to start + that reaction.
        energy_onset = max(e["t"] for e in rec.of("UserSpeechStarted") if e["t"] <= b.signal_t)
        reaction = b.signal_t - energy_onset
        assert 0.1 < reaction < 0.5 and 0 <= b.flush_s < 0.1
        assert t.offset_s + reaction - 0.03 < b.heard_s < t.offset_s + reaction + 0.25
        assert b.final_words < b.planned_words
        assert t.turns == 2  # the interjection is answered too
        # The microphone carried the question, then the interjection alone, then silence.
        assert rec.user_audio().size > 0 and rec.of("UserSpeechEnded")[-1]["t"] - b.onset_t < 1.2


def test_offset_past_the_reply_interrupts_nothing(sweep: list) -> None:
    late = sweep[-1]
    assert late.offset_s == 6.0 and late.barge_in is None and late.turns == 1


def test_sweep_table_and_plot(sweep: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    assert sweep_table(sweep).count("<tr>") == 1 + len(sweep)
    fig = plot_sweep(sweep)
    assert len(fig.axes) == 3
    matplotlib.pyplot.close(fig)


async def test_replay_reproduces_the_turns(sweep: list, tmp_path: Path) -> None:
    original = Recording.load(sweep[1].folder)
    again = await replay(original, provider(), tmp_path / "replay", pace=False, timeout_s=30)
    assert np.array_equal(again.user_audio()[: original.user_audio().size], original.user_audio())
    assert len(turns(again.events)) == len(turns(original.events)) == 2
    assert len(barge_ins(again.events)) == len(barge_ins(original.events)) == 1
    assert again.meta["user"]["replay_of"] == str(original.folder)


async def test_replay_of_one_turn(one_turn: LiveTurn, tmp_path: Path) -> None:
    again = await replay(one_turn.recording, provider(), tmp_path / "again", pace=False, timeout_s=30)
    assert [t.user_text for t in turns(again.events)] == [
        t.user_text for t in turns(one_turn.recording.events)
    ]


async def test_an_unpaced_run_waits_for_the_next_sentence(tmp_path: Path) -> None:
    """A reply's blocks end PARTIAL_TURN until its last one (docs/PROTOCOL.md §13.4). A pause between
    two sentences (a slow model or a loaded machine) longer than the run's settle time must not be
    taken for the end of the conversation: an unpaced run once closed there, cutting the reply short
    and losing its last usage event (the output speech tokens of evaluate's fast runs)."""
    from nova_nb import s2s
    from nova_nb.analysis import run_conversation
    from nova_nb.emulator.conversation import ConversationOptions, Faults

    gap = 0.6  # well over the unpaced settle time (0.1 s of quiet)
    slow = s2s.new_provider(
        "local",
        engine=ConversationOptions(faults=Faults(sentence_gap_s=gap)),
        latency_target="low",
    )
    question = make_utterance("Hello there.", lead_silence_s=0.3, tail_silence_s=0.0)
    rec = await run_conversation(slow, question, tmp_path / "gap", pace=False, timeout_s=40)
    audio_ends = [
        e for e in rec.of("ContentEnded") if e.get("type") == "AUDIO" and e.get("role") == "ASSISTANT"
    ]
    finals = [e for e in rec.of("Transcript") if e["role"] == "ASSISTANT" and e["stage"] == "FINAL"]
    speculative = [
        e for e in rec.of("Transcript") if e["role"] == "ASSISTANT" and e["stage"] == "SPECULATIVE"
    ]
    assert len(speculative) >= 2  # the scripted reply has two sentences, so there was a gap to wait out
    assert [e["stop_reason"] for e in audio_ends] == ["PARTIAL_TURN"] * (len(speculative) - 1) + ["END_TURN"]
    assert len(finals) == len(speculative)  # every sentence was spoken to the end and confirmed
    last_end = audio_ends[-1]["t"]
    assert any(e["t"] >= last_end for e in rec.of("Usage"))  # the last block's usage was recorded
    assert rec.meta["user"]["timed_out"] is False


def test_the_runner_waits_while_the_service_hears_speech_or_a_reply_is_unfinished() -> None:
    """What keeps a run going, event by event: the service's open speech (an emulator that hears a
    fast run's audio late has not decided yet, whatever silence was sent), a reply whose last block
    ended PARTIAL_TURN, and each is bounded (the grace, or the run's timeout)."""
    import time

    from nova_nb.analysis.experiments import _Watch
    from nova_nb.s2s import events as ev

    now = time.monotonic()
    watch = _Watch(real_time=False, decision_grace_s=5.0)
    assert not watch.busy()
    watch(ev.ServiceSpeechStarted(timestamp=now))
    assert watch.busy()  # the service hears the user: a turn may follow
    watch(ev.ServiceSpeechEnded(timestamp=now))
    assert watch.busy()  # no decision yet, within the grace
    watch(ev.Transcript(timestamp=now, role="USER", text="hello", stage="FINAL", content_id="u"))
    assert watch.busy()  # decided, no audio yet
    watch(ev.AudioOutput(timestamp=now, audio=b"\0\0" * 240, content_id="a1", sample_rate=24000))
    assert watch.busy()  # a block is open
    watch(
        ev.ContentEnded(
            timestamp=now, content_id="a1", type="AUDIO", role="ASSISTANT", stop_reason="PARTIAL_TURN"
        )
    )
    assert watch.busy()  # the reply's next sentence is due
    watch(ev.AudioOutput(timestamp=now, audio=b"\0\0" * 240, content_id="a2", sample_rate=24000))
    watch(
        ev.ContentEnded(
            timestamp=now, content_id="a2", type="AUDIO", role="ASSISTANT", stop_reason="END_TURN"
        )
    )
    assert not watch.busy()  # the turn is over (unpaced: no playback to wait for)

    stale = _Watch(real_time=False, decision_grace_s=0.5)
    stale(
        ev.ContentEnded(
            timestamp=now - 1.0, content_id="b", type="AUDIO", role="ASSISTANT", stop_reason="PARTIAL_TURN"
        )
    )
    assert not stale.busy()  # a next sentence that never came is waited for only decision_grace_s
