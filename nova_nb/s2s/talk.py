"""One-call conversations: send recorded audio like a microphone would, collect the turns with timings.

:func:`talk` is what ``nova-nb talk`` and the quick-start notebook use: it streams audio (a file or an
array) into a session at real-time pace, keeps streaming silence afterwards (a live microphone never
stops, and the service decides turns on pauses), and returns each turn's transcripts, reply audio and
latency figures measured on the one monotonic clock:

* ``end_of_speech_to_first_audio_s`` — the last input frame with speech was sent → first audioOutput
  arrived (includes the service's endpointing pause);
* ``decision_to_first_audio_s`` — the USER FINAL transcript arrived → first audioOutput arrived.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import audio as pcm
from ..errors import ConfigError
from . import events as ev
from .session import S2SSession, StreamingS2SProvider
from .types import ConversationContext

#: A frame louder than this counts as speech when finding the end of the user's speech.
SPEECH_DBFS = -45.0
#: Streamed silence after the last reply, so a turn that is still being decided is not cut off.
SETTLE_S = 0.3


@dataclass
class Turn:
    """One exchange: what the user said (as recognised), what the model said, and when."""

    user_text: str = ""
    speculative_text: str = ""
    reply_text: str = ""
    interrupted: bool = False
    audio: bytearray = field(default_factory=bytearray, repr=False)
    sample_rate: int = 24000
    end_of_speech_at: float | None = None
    decided_at: float | None = None
    first_audio_at: float | None = None
    last_audio_at: float | None = None

    @property
    def reply_audio(self) -> np.ndarray:
        return np.frombuffer(bytes(self.audio), dtype="<i2")

    @property
    def reply_duration_s(self) -> float:
        return len(self.audio) / 2 / self.sample_rate

    @property
    def end_of_speech_to_first_audio_s(self) -> float | None:
        if self.end_of_speech_at is None or self.first_audio_at is None:
            return None
        return self.first_audio_at - self.end_of_speech_at

    @property
    def decision_to_first_audio_s(self) -> float | None:
        if self.decided_at is None or self.first_audio_at is None:
            return None
        return self.first_audio_at - self.decided_at


@dataclass
class TalkResult:
    turns: list[Turn]
    events: list[ev.Event]
    sample_rate: int

    @property
    def reply_audio(self) -> np.ndarray:
        """All replies, one after the other."""
        parts = [t.reply_audio for t in self.turns]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def _load(audio: str | Path | np.ndarray | bytes, sample_rate: int | None) -> tuple[np.ndarray, int]:
    if isinstance(audio, str | Path):
        path = Path(audio)
        if not path.is_file():
            raise ConfigError(f"audio file {str(path)!r} does not exist")
        data, rate = pcm.read_wav(path)
        return data, rate
    if isinstance(audio, bytes | bytearray | memoryview):
        if sample_rate is None:
            raise ConfigError("raw PCM bytes need sample_rate=...")
        return pcm.bytes_to_pcm16(bytes(audio)), sample_rate
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise ConfigError("a numpy array needs sample_rate=...")
        return audio, sample_rate
    raise ConfigError(f"audio must be a WAV path, a numpy array or PCM bytes, got {type(audio).__name__}")


async def talk(
    provider: StreamingS2SProvider,
    audio: str | Path | np.ndarray | bytes,
    *,
    sample_rate: int | None = None,
    context: ConversationContext | None = None,
    voice_id: str | None = None,
    pace: bool = True,
    frame_ms: int = 20,
    timeout_s: float = 60.0,
) -> TalkResult:
    """Say ``audio`` to the model and collect its answers.

    ``pace=True`` sends at real-time pace, as a microphone would (needed for meaningful latency
    figures with the real service); ``pace=False`` sends as fast as the session accepts, which the
    local emulator handles in audio time. Every wait is bounded by ``timeout_s``.
    """
    if not isinstance(provider, StreamingS2SProvider):
        raise ConfigError("talk() needs a streaming provider, e.g. s2s.new_provider('local')")
    data, rate = _load(audio, sample_rate)
    mono = pcm.to_pcm16_mono(data, sample_rate=rate, target_rate=16000)
    frame = pcm.frame_samples(16000, frame_ms)
    deadline = time.monotonic() + timeout_s
    session: S2SSession = await provider.start_streaming(context, voice_id=voice_id)
    events: list[ev.Event] = []
    last_speech_sent: list[float] = []

    async def collect() -> None:
        async for event in session.events():
            events.append(event)

    collector = asyncio.create_task(collect())
    try:
        silence = np.zeros(frame, dtype=np.int16)
        for start in range(0, mono.size, frame):
            chunk = mono[start : start + frame]
            await session.send_audio(chunk, sample_rate=16000, pace=pace)
            if pcm.rms_dbfs(chunk) > SPEECH_DBFS:
                last_speech_sent.append(time.monotonic())
            if time.monotonic() > deadline:
                break
        file_ended = time.monotonic()

        def settled() -> bool:
            # Done when a reply has ended after the user's last speech, and nothing new started.
            speech_end = last_speech_sent[-1] if last_speech_sent else file_ended
            ends = [
                e.timestamp
                for e in events
                if isinstance(e, ev.ContentEnded) and e.type == "AUDIO" and e.role == "ASSISTANT"
            ]
            if not last_speech_sent:
                return time.monotonic() - file_ended > 2.5
            return bool(ends) and ends[-1] > speech_end and time.monotonic() - ends[-1] > SETTLE_S

        while not settled() and time.monotonic() < deadline and not session.closed:
            await session.send_audio(silence, sample_rate=16000, pace=pace)
            if not pace:
                await asyncio.sleep(0.002)
    finally:
        await session.close()
        await asyncio.wait({collector}, timeout=5)
    output_rate = getattr(getattr(session, "config", None), "output_sample_rate", 24000)
    turns = _turns(events, last_speech_sent, output_rate)
    return TalkResult(turns=turns, events=events, sample_rate=output_rate)


def _turns(events: list[ev.Event], speech_times: list[float], rate: int) -> list[Turn]:
    turns: list[Turn] = []
    turn: Turn | None = None
    for event in events:
        if isinstance(event, ev.Transcript) and event.role == "USER":
            turn = Turn(user_text=event.text, decided_at=event.timestamp, sample_rate=rate)
            before = [t for t in speech_times if t <= event.timestamp]
            turn.end_of_speech_at = before[-1] if before else None
            turns.append(turn)
        elif turn is None:
            if isinstance(event, ev.Transcript | ev.AudioOutput):
                # A reply without a user turn (typed input, or the model speaking first).
                turn = Turn(sample_rate=rate)
                turns.append(turn)
            else:
                continue
        if isinstance(event, ev.Transcript) and event.role == "ASSISTANT":
            if event.stage == "SPECULATIVE":
                turn.speculative_text += event.text
            else:
                turn.reply_text += event.text
        elif isinstance(event, ev.AudioOutput):
            turn.audio += event.audio
            turn.first_audio_at = turn.first_audio_at or event.timestamp
            turn.last_audio_at = event.timestamp
        elif isinstance(event, ev.Interruption):
            turn.interrupted = True
    return turns
