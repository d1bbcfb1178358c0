"""Barge-in sweeps with the emulator's speech engine: spoken replies, a bounded number of trials at once.

Notebook 05 relies on these facts: the rule-based responder answers "who are you" with one fixed
sentence whatever else the recogniser hears, so every trial interrupts the same reply; the reaction
measured from the service's ``userSpeechStart`` is ~0 under the emulator (it sends that event and the
interruption at one decision), while the reaction from the sound itself is the emulator's rule
(``MIN_SPEECH_S`` of speech) plus the detector's delay.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nova_nb import s2s
from nova_nb.analysis import Recording, turns
from nova_nb.analysis.experiments import (
    BargeInTrial,
    Variant,
    compare_settings,
    input_onset_reaction_s,
    interruption_sweep,
)
from nova_nb.emulator.conversation import MIN_SPEECH_S
from nova_nb.emulator.engine.testaudio import make_utterance
from nova_nb.emulator.responder import rule_based_reply
from nova_nb.errors import ConfigError
from nova_nb.protocol import catalog

OFFSETS = [0.5, 1.5, 8.0]  # the last one after the ~4.5 s reply has ended


def speech_provider() -> s2s.StreamingS2SProvider:
    return s2s.new_provider("local", engine="speech", latency_target="low")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> list[BargeInTrial]:
    question = make_utterance("Hello, who are you?", tail_silence_s=0.0)
    stop = make_utterance("Wait, stop.", lead_silence_s=0.0, tail_silence_s=0.0)
    folder = tmp_path_factory.mktemp("speech_sweep")
    return asyncio.run(
        interruption_sweep(speech_provider(), OFFSETS, question, stop, folder, timeout_s=45, max_concurrent=2)
    )


def test_every_trial_interrupts_the_same_spoken_reply(sweep: list[BargeInTrial]) -> None:
    fixed = rule_based_reply("who are you")
    assert [t.offset_s for t in sweep] == OFFSETS
    for t in sweep:
        first = turns(Recording.load(t.folder).events)[0]
        assert "who are you" in first.user_text.lower()
        assert first.speculative_text == fixed
    late = sweep[-1]
    assert late.barge_in is None and late.turns == 1
    assert turns(Recording.load(late.folder).events)[0].reply_text == fixed


def test_reaction_is_the_emulator_rule_and_heard_follows_the_offset(sweep: list[BargeInTrial]) -> None:
    fixed_words = rule_based_reply("who are you").split()
    heard = []
    for t in sweep[:-1]:
        b = t.barge_in
        assert b is not None and b.onset_source == "service"
        rec = Recording.load(t.folder)
        # The emulator sends userSpeechStart and the interruption at the same decision.
        assert b.reaction_s is not None and 0 <= b.reaction_s < 0.1
        from_sound = input_onset_reaction_s(rec, b)
        assert from_sound is not None and MIN_SPEECH_S - 0.05 < from_sound < 0.6
        assert b.heard_s is not None and t.offset_s < b.heard_s < t.offset_s + from_sound + 0.3
        # The FINAL text is the start of the planned sentence, cut where the user came in.
        said = " ".join(
            e["text"]
            for e in rec.of("Transcript")
            if e["role"] == "ASSISTANT"
            and e["stage"] == "FINAL"
            and e["t"] < turns(rec.events)[1].first_audio_t
        )
        assert said.split() == fixed_words[: len(said.split())] and 0 < len(said.split()) < len(fixed_words)
        heard.append(b.heard_s)
    assert heard == sorted(heard)


def test_at_most_max_concurrent_trials_run_at_once(sweep: list[BargeInTrial]) -> None:
    spans = []
    for t in sweep:
        meta = Recording.load(t.folder).meta
        spans.append((meta["t0_monotonic"], meta["t0_monotonic"] + meta["duration_s"]))
    # Two slots: the third trial starts only once one of the first two has finished.
    assert spans[2][0] >= min(spans[0][1], spans[1][1]) - 0.5


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_concurrent_must_be_a_positive_whole_number(bad: object, tmp_path: Path) -> None:
    question = make_utterance("Hello.", tail_silence_s=0.0)
    with pytest.raises(ConfigError, match="max_concurrent"):
        asyncio.run(
            interruption_sweep(
                speech_provider(),
                [0.5],
                question,
                question,
                tmp_path,
                max_concurrent=bad,  # type: ignore[arg-type]
            )
        )


def test_compare_settings_passes_settle_s_on(tmp_path: Path) -> None:
    # Unpaced, so only the settle rule (not real-time playback) decides how long the microphone stays open.
    question = make_utterance("What time is it?", tail_silence_s=0.0)
    variant = Variant("low", speech_provider())
    (result,) = asyncio.run(compare_settings([variant], question, tmp_path, pace=False, settle_s=8.0))
    sent_s = result.recording.input_frames["n_samples"].sum() / 16000
    pause_s = catalog.ENDPOINTING_PAUSE_S["HIGH"]
    assert sent_s - question.size / 16000 >= pause_s + 8.0
    assert result.turns == 1
