"""talk(): recorded audio in, turns with transcripts, reply audio and latencies out."""

from __future__ import annotations

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.audio import write_wav
from nova_nb.emulator.engine.testaudio import make_utterance, word_overlap
from nova_nb.s2s.talk import talk


async def test_talk_from_a_wav_file_real_time(tmp_path: object) -> None:
    path = f"{tmp_path}/question.wav"
    write_wav(
        path, make_utterance("What time is it right now?", sample_rate=24000, tail_silence_s=0.3), 24000
    )
    provider = s2s.new_provider("local", engine="speech", latency_target="low")
    result = await talk(provider, path, timeout_s=30)  # type: ignore[arg-type]
    (turn,) = result.turns
    assert word_overlap("what time is it right now", turn.user_text) >= 0.6
    assert turn.reply_text.startswith("It is") and turn.reply_duration_s > 0.5
    # Paced like a microphone: the turn ends after the 1.5 s pause of latency_target="low".
    assert turn.end_of_speech_to_first_audio_s is not None and 1.4 < turn.end_of_speech_to_first_audio_s < 3.0
    assert turn.decision_to_first_audio_s is not None and 0 <= turn.decision_to_first_audio_s < 0.5
    assert result.reply_audio.size == turn.reply_audio.size == len(b"".join(turn.audio)) // 2
    assert turn.speech_end_source == "input_energy"


async def test_talk_two_questions_fast() -> None:
    provider = s2s.new_provider("local", engine="speech", latency_target="low")
    audio = np.concatenate(
        [make_utterance("Hello there.", tail_silence_s=6.0), make_utterance("What is the date today?")]
    )
    result = await talk(provider, audio, sample_rate=16000, pace=False, timeout_s=30)  # type: ignore[arg-type]
    seen = [(t.user_text, t.reply_text, t.interrupted) for t in result.turns]
    assert len(result.turns) == 2, seen
    assert all(t.reply_text and not t.interrupted for t in result.turns), seen


async def test_talk_bad_input() -> None:
    provider = s2s.new_provider("local", engine="scripted")
    with pytest.raises(s2s.ConfigError, match="does not exist"):
        await talk(provider, "/nonexistent.wav")  # type: ignore[arg-type]
    with pytest.raises(s2s.ConfigError, match="sample_rate"):
        await talk(provider, np.zeros(100, np.int16))  # type: ignore[arg-type]
