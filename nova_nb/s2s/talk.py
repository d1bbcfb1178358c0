"""One-call conversations: send recorded audio like a microphone would, collect the turns with timings.

:func:`talk` is what ``nova-nb talk`` and the quick-start notebook use: it streams audio (a file or an
array) into a session at real-time pace, keeps streaming silence afterwards (a live microphone never
stops, and the service decides turns on pauses), and returns each turn's transcripts, reply audio and
latency figures measured on the one monotonic clock:

* ``end_of_speech_to_first_audio_s`` — the last input frame with speech was sent → first audioOutput
  arrived (includes the service's endpointing pause);
* ``decision_to_first_audio_s`` — the USER FINAL transcript arrived → first audioOutput arrived.

The turns are the one turn model (:mod:`nova_nb.s2s.turns`); :func:`say` is the one "say this audio,
then keep the microphone streaming silence until the reply is over" loop, which the analysis
experiments and the widgets use too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .. import audio as pcm
from ..errors import ConfigError
from . import events as ev
from .session import S2SSession, StreamingS2SProvider
from .turns import TurnBuilder, TurnRecord
from .types import ConversationContext

#: Streamed silence after the last reply, so a turn that is still being decided is not cut off.
SETTLE_S = 0.3
#: Without any speech in the audio, silence is streamed this long before giving up on a reply.
NO_SPEECH_WAIT_S = 2.5

#: One exchange as ``talk()`` returns it: the one turn model (``user_text``, ``reply_text``,
#: ``reply_audio``, ``end_of_speech_to_first_audio_s``, ``decision_to_first_audio_s``, ...).
Turn = TurnRecord

SayOutcome = Literal["done", "stopped", "closed", "timeout"]


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


async def say(
    session: S2SSession,
    audio: npt.NDArray[np.int16],
    *,
    sample_rate: int,
    until: Callable[[float], bool],
    pace: bool = True,
    frame_s: float = 0.02,
    timeout_s: float = 60.0,
    stop_speaking: Callable[[], bool] | None = None,
    on_frame: Callable[[npt.NDArray[np.int16], float], None] | None = None,
    send: Callable[[npt.NDArray[np.int16]], Awaitable[None]] | None = None,
) -> SayOutcome:
    """Say ``audio`` like a live microphone, then keep streaming silence until ``until`` says stop.

    A microphone never stops: the service decides turns on pauses it measures in the audio, so after
    the words the silence must keep flowing until the reply is over.

    Parameters
    ----------
    session : S2SSession
        Where the audio goes (``send_audio``), and whose ``closed`` ends the wait.
    audio : numpy.ndarray
        int16 mono samples at ``sample_rate``.
    sample_rate : int
    until : callable
        Called with the seconds of silence streamed so far after each silent frame; True ends it.
    pace : bool
        Send no faster than real time; otherwise as fast as the session takes it (the local emulator
        counts audio time), yielding to the event loop between frames so events keep arriving.
    frame_s : float
        Audio per send.
    timeout_s : float
        Bound on the whole call.
    stop_speaking : callable, optional
        Checked before every frame of ``audio``: True gives up the rest of it (e.g. to barge in).
    on_frame : callable, optional
        ``on_frame(frame, t)`` after each frame was sent (the words and the silence after them), ``t``
        the time it was handed over.
    send : callable, optional
        ``await send(frame)`` instead of ``session.send_audio`` (e.g. a widget's microphone path).

    Returns
    -------
    str
        ``"done"`` (``until`` said so), ``"stopped"`` (``stop_speaking`` did), ``"closed"`` (the session
        closed) or ``"timeout"``.
    """
    if not isinstance(audio, np.ndarray) or audio.dtype != np.int16 or audio.ndim != 1:
        raise ConfigError("say() takes int16 mono samples (shape (n,)); use nova_nb.audio.load_audio first")
    step = max(1, round(frame_s * sample_rate))
    deadline = time.monotonic() + timeout_s

    async def out(frame: npt.NDArray[np.int16]) -> None:
        if send is not None:
            await send(frame)
        else:
            await session.send_audio(frame, sample_rate=sample_rate, pace=pace)
        if not pace:
            await asyncio.sleep(0.001)

    for start in range(0, audio.size, step):
        if stop_speaking is not None and stop_speaking():
            return "stopped"
        if session.closed:
            return "closed"
        if time.monotonic() > deadline:
            return "timeout"
        frame = audio[start : start + step]
        t = time.monotonic()
        await out(frame)
        if on_frame is not None:
            on_frame(frame, t)
    silence = np.zeros(step, dtype=np.int16)
    quiet_s = 0.0
    while not until(quiet_s):
        if session.closed:
            return "closed"
        if time.monotonic() > deadline:
            return "timeout"
        t = time.monotonic()
        await out(silence)
        if on_frame is not None:
            on_frame(silence, t)
        quiet_s += step / sample_rate
    return "done"


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

    ``audio`` is anything :func:`nova_nb.audio.load_audio` takes (an array or raw PCM bytes need
    ``sample_rate``). ``pace=True`` sends at real-time pace, as a microphone would (needed for
    meaningful latency figures with the real service); ``pace=False`` sends as fast as the session
    accepts, which the local emulator handles in audio time. Every wait is bounded by ``timeout_s``.
    """
    if not isinstance(provider, StreamingS2SProvider):
        raise ConfigError("talk() needs a streaming provider, e.g. s2s.new_provider('local')")
    rate = int(getattr(provider.config, "input_sample_rate", 16000))
    mono = pcm.load_audio(audio, sample_rate=sample_rate, target_rate=rate)
    session: S2SSession = await provider.start_streaming(context, voice_id=voice_id)
    events: list[ev.Event] = []
    builder = TurnBuilder()
    spoken: dict[str, Any] = {}

    async def collect() -> None:
        async for event in session.events():
            events.append(event)
            builder.feed(event)

    def settled(_quiet_s: float) -> bool:
        # Done when a reply has ended after the user's last speech, and nothing new started.
        speech_end = builder.last_speech_end
        if speech_end is None:
            return time.monotonic() - spoken.setdefault("at", time.monotonic()) > NO_SPEECH_WAIT_S
        last = builder.current
        if last is None or last.end_t is None or last.end_t <= speech_end:
            return False
        now = time.monotonic()
        if now - last.end_t <= SETTLE_S:
            return False
        # The reply's FINAL texts come paced to when its playback would end (docs/PROTOCOL.md §12), and
        # never if the stream is closed first: keep the microphone open until they are all in, or
        # until a real-time player would have finished (they may never come, e.g. after a barge-in).
        playback_end = last.playback_end_t
        return (
            last.texts_complete
            or last.interrupted
            or (playback_end is not None and now > playback_end + SETTLE_S)
        )

    collector = asyncio.create_task(collect())
    try:
        await say(
            session,
            mono,
            sample_rate=rate,
            until=settled,
            pace=pace,
            frame_s=frame_ms / 1000,
            timeout_s=timeout_s,
            on_frame=lambda frame, t: builder.input_audio(frame, t, rate),
        )
    finally:
        await session.close()
        await asyncio.wait({collector}, timeout=5)
    output_rate = getattr(getattr(session, "config", None), "output_sample_rate", 24000)
    return TalkResult(turns=builder.turns, events=events, sample_rate=output_rate)
