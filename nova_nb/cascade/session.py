"""The cascade's session: VAD endpointing → ASR → responder → TTS, behind the one session contract.

:class:`CascadeSession` is an :class:`~nova_nb.s2s.S2SSession` like the Nova one, so ``talk()``,
``analysis.run_conversation()``, recorders and the turn model work on it unchanged. What the service
does for Nova happens here, in the client's process:

* every input frame goes through Silero VAD (on the event loop: a 32 ms window costs well under a
  millisecond); a turn ends after the endpointing pause of the latency target
  (``protocol.catalog``, the same mapping the emulator uses), with the emulator's rules for what
  counts as speech (``MIN_SPEECH_S``) and how much audio around it is recognised (pre- and post-roll);
* the decided turn goes to a worker thread that runs recognition, the responder and synthesis one
  after the other (a plain cascade: nothing starts before the previous stage is done) and hands
  each TTS chunk to the loop as soon as it exists;
* speech that starts while a reply is being made or is still playing (in input audio time, as the
  emulator counts it) stops the worker and interrupts the reply (``S2SSession._interrupt``).

Events per spoken turn, in order: ``ServiceSpeechStarted`` and ``ServiceSpeechEnded`` (the
cascade's VAD, where the emulator sends ``userSpeechStart``/``userSpeechEnd``), ``Transcript`` USER
FINAL (after ASR), ``Transcript`` ASSISTANT SPECULATIVE (the reply text), ``AudioOutput`` chunks,
``Transcript`` ASSISTANT FINAL, ``ContentEnded`` AUDIO END_TURN (or ``Interruption`` +
``ContentEnded`` INTERRUPTED), then :class:`CascadeStages`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..emulator import speech
from ..emulator.conversation import MIN_SPEECH_S, POSTROLL_S, PREROLL_S, SPEECH_END_DETECTION_S
from ..emulator.responder import ReplyContext, Responder, call_responder
from ..errors import ConfigError
from ..protocol import catalog
from ..s2s import events as ev
from ..s2s.config import Config
from ..s2s.session import S2SSession
from ..s2s.types import ConversationContext
from .stages import CascadeStages, CascadeTurnError

log = logging.getLogger("nova_nb.cascade")

#: Speech shorter than this and then this much silence is a click, not a turn (the emulator's rule).
BLIP_SILENCE_S = 0.3
#: The model id sessions report in SessionStarted: what actually answers, not a Nova model.
MODEL_DESCRIPTION = "local cascade: silero-vad + moonshine-tiny-en + responder + espeak-ng"


def pause_s(config: Config) -> float:
    """The endpointing pause for ``config``'s latency target (Nova 1, which has no setting: MEDIUM's)."""
    return catalog.ENDPOINTING_PAUSE_S[config.endpointing_sensitivity or "MEDIUM"]


@dataclass
class _Turn:
    """One turn in flight: what the worker made so far and the loop has handed out."""

    user_cid: str = field(default_factory=lambda: str(uuid.uuid4()))
    text_cid: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio_cid: str = field(default_factory=lambda: str(uuid.uuid4()))
    stop: threading.Event = field(default_factory=threading.Event)
    typed: bool = False
    times: dict[str, float] = field(default_factory=dict)
    user_text: str | None = None
    reply_text: str | None = None
    error: str | None = None
    #: Input samples received when the first audio went out, and output samples handed out since.
    audio_start_sample: int | None = None
    out_samples: int = 0
    worker_done: bool = False
    ended: bool = False  # END_TURN, INTERRUPTED or failed: the turn's events are all out
    worker: asyncio.Future[None] | None = None


class CascadeSession(S2SSession):
    """One conversation with the local cascade. Open with ``provider.start_streaming(...)``."""

    def __init__(
        self,
        config: Config,
        *,
        context: ConversationContext,
        voice_id: str,
        responder: Responder,
        brain: speech.SpeechBrain,
        enable_streaming: bool = True,
    ) -> None:
        super().__init__(config, voice_id=voice_id, enable_streaming=enable_streaming)
        self.context = context
        self.responder = responder
        self._asr = brain.asr
        self._tts = brain.tts
        self._language = speech.voice_language(voice_id)
        self.pause_s = pause_s(config)
        self.prompt_name = f"cascade-{uuid.uuid4()}"
        #: The conversation as the responder sees it: the context's history, then every turn spoken.
        self.history: list[tuple[str, str]] = [(m.role, m.text) for m in context.history_messages()]
        self._loop = asyncio.get_running_loop()
        self._detector = speech.SileroTurnDetector()
        self._rate = config.input_sample_rate
        self._frame_s = config.frame_ms / 1000
        # Endpointing state, in input audio samples (the emulator's way: deterministic under load).
        self._samples = 0
        self._heard: list[npt.NDArray[np.int16]] = []
        self._preroll: deque[npt.NDArray[np.int16]] = deque()
        self._speech_samples = 0
        self._silence_samples = 0
        self._in_speech = False
        self._speech_end_t: float | None = None
        self._speech_end_sent = False
        self._turn: _Turn | None = None
        self._turn_number = 0
        self.turns_started = 0
        self._publish(
            ev.SessionStarted(
                timestamp=time.monotonic(),
                prompt_name=self.prompt_name,
                model_id=MODEL_DESCRIPTION,
                voice_id=voice_id,
            )
        )

    # -- input: VAD endpointing ------------------------------------------------------------------

    async def _send_frame_to_service(self, frame: bytes) -> None:
        now = time.monotonic()
        samples = np.frombuffer(frame, dtype="<i2").astype(np.int16)
        is_speech = self._detector.is_speech(samples, self._rate)
        self._samples += samples.size
        in_turn = self._in_speech or self._speech_samples > 0
        if is_speech:
            if not in_turn:
                # The VAD flags speech a window late: start the turn with the audio just before it.
                self._heard = list(self._preroll)
                self._preroll.clear()
            self._silence_samples = 0
            self._speech_samples += samples.size
            self._speech_end_t = None
            if self._speech_end_sent:
                # The user spoke again before the turn was decided: a new start, as the service says.
                self._speech_end_sent = False
                self._speech_started(now, self._samples - samples.size)
            if not self._in_speech and self._speech_samples >= MIN_SPEECH_S * self._rate:
                self._in_speech = True
                self._speech_started(now, self._samples - self._speech_samples)
                self._barge_in(now)
        elif in_turn:
            if self._silence_samples == 0:
                self._speech_end_t = now  # the first silent frame: the earliest the VAD can know
            self._silence_samples += samples.size
        if is_speech or in_turn:
            self._heard.append(samples)
        else:
            self._preroll.append(samples)
            while sum(f.size for f in self._preroll) - self._preroll[0].size >= PREROLL_S * self._rate:
                self._preroll.popleft()
        if (
            not is_speech
            and self._speech_samples
            and not self._in_speech
            and self._silence_samples > BLIP_SILENCE_S * self._rate
        ):
            self._reset_turn()  # a blip too short to be speech
            return
        if (
            self._in_speech
            and not is_speech
            and not self._speech_end_sent
            and self._silence_samples >= SPEECH_END_DETECTION_S * self._rate
        ):
            self._speech_ended(now)
        if self._in_speech and self._silence_samples >= self.pause_s * self._rate:
            if not self._speech_end_sent:
                self._speech_ended(now)
            total = sum(f.size for f in self._heard)
            length = total - self._silence_samples + min(self._silence_samples, int(POSTROLL_S * self._rate))
            pcm = np.concatenate(self._heard)[:length]
            speech_end_t = self._speech_end_t
            self._reset_turn()
            self._start_turn(pcm=pcm, text=None, speech_end_t=speech_end_t, decision_t=now)

    def _ms(self, samples: int) -> float:
        return samples * 1000 / self._rate

    def _speech_started(self, now: float, onset_sample: int) -> None:
        """The VAD heard the user start (the emulator's userSpeechStart, at the same point)."""
        self._publish(ev.ServiceSpeechStarted(timestamp=now, input_audio_offset_ms=self._ms(onset_sample)))

    def _speech_ended(self, now: float) -> None:
        """The VAD says the user stopped, after the emulator's detection delay (its userSpeechEnd).

        Clients wait on this for a turn decision (``analysis.run_conversation``): without it, a run
        could end between the pause and the transcript."""
        self._speech_end_sent = True
        self._publish(
            ev.ServiceSpeechEnded(
                timestamp=now,
                input_audio_offset_ms=self._ms(self._samples - self._silence_samples),
                detection_offset_ms=self._ms(self._samples),
            )
        )

    def _reset_turn(self) -> None:
        self._speech_end_sent = False
        self._heard = []
        self._speech_samples = self._silence_samples = 0
        self._in_speech = False
        self._speech_end_t = None

    def _playing(self, turn: _Turn) -> bool:
        """The reply is being made, or a real-time player would still be playing it (audio time)."""
        if not turn.worker_done:
            return True
        if turn.audio_start_sample is None:
            return False
        heard_in = turn.out_samples * self._rate / self.config.output_sample_rate
        return self._samples < turn.audio_start_sample + heard_in

    def _barge_in(self, now: float) -> None:
        turn = self._turn
        if turn is None or not self._playing(turn):
            return
        self._stop_turn(turn, now, outcome="interrupted")

    # -- a turn: the worker thread ---------------------------------------------------------------

    def _start_turn(
        self,
        *,
        pcm: npt.NDArray[np.int16] | None,
        text: str | None,
        speech_end_t: float | None,
        decision_t: float,
    ) -> None:
        turn = _Turn(typed=text is not None)
        if speech_end_t is not None:
            turn.times["speech_end_t"] = speech_end_t
        if pcm is not None:
            turn.times["decision_t"] = decision_t
        self._turn = turn
        self._turn_number += 1
        self.turns_started += 1
        context = ReplyContext(
            system_prompt=self.context.system_prompt,
            history=tuple(self.history),
            turn=self._turn_number,
            voice_id=self.voice_id,
        )
        turn.worker = self._loop.run_in_executor(None, self._work, turn, pcm, text, context)

    def _post(self, turn: _Turn, callback: Callable[..., None], *args: Any) -> None:
        """From the worker: run ``callback(turn, *args)`` on the loop, unless the turn was stopped."""
        if turn.stop.is_set() or self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(self._on_loop, turn, callback, args)
        except RuntimeError:  # the loop closed meanwhile
            turn.stop.set()

    def _on_loop(self, turn: _Turn, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        if turn.stop.is_set() or turn.ended or self._closed.is_set():
            return
        callback(turn, *args)

    def _work(
        self, turn: _Turn, pcm: npt.NDArray[np.int16] | None, text: str | None, context: ReplyContext
    ) -> None:
        """ASR → responder → TTS, one after the other (runs in a worker thread)."""
        try:
            if pcm is not None:
                turn.times["asr_start_t"] = time.monotonic()
                try:
                    text = self._asr.transcribe(pcm, self._rate).strip() if pcm.size else ""
                except Exception as exc:
                    self._post(turn, self._on_error, "asr", exc)
                    return
                turn.times["asr_end_t"] = time.monotonic()
            assert text is not None
            self._post(turn, self._on_user_text, text)
            if turn.stop.is_set():
                return
            turn.times["reply_start_t"] = time.monotonic()
            try:
                reply = call_responder(self.responder, text, context)
            except Exception as exc:
                self._post(turn, self._on_error, "responder", exc)
                return
            turn.times["reply_end_t"] = time.monotonic()
            self._post(turn, self._on_reply_text, reply)
            try:
                chunks = self._tts.stream(
                    reply,
                    voice_id=self.voice_id,
                    language=self._language,
                    sample_rate=self.config.output_sample_rate,
                    chunk_ms=speech.TTS_CHUNK_MS,
                )
                try:
                    for chunk in chunks:
                        if turn.stop.is_set():
                            break  # closing the generator below stops synthesis of later sentences
                        turn.times.setdefault("tts_first_audio_t", time.monotonic())
                        self._post(turn, self._on_audio, chunk.astype("<i2").tobytes())
                finally:
                    chunks.close()
            except Exception as exc:
                self._post(turn, self._on_error, "tts", exc)
                return
            self._post(turn, self._on_spoken)
        finally:
            try:
                self._loop.call_soon_threadsafe(self._on_worker_done, turn)
            except RuntimeError:  # the loop closed meanwhile: nobody is left to tell
                pass

    # -- a turn: on the loop ---------------------------------------------------------------------

    def _on_worker_done(self, turn: _Turn) -> None:
        turn.worker_done = True

    def _on_user_text(self, turn: _Turn, text: str) -> None:
        turn.user_text = text
        self._publish(
            ev.Transcript(
                timestamp=time.monotonic(), role="USER", text=text, stage="FINAL", content_id=turn.user_cid
            )
        )

    def _on_reply_text(self, turn: _Turn, reply: str) -> None:
        turn.reply_text = reply
        self._publish(
            ev.Transcript(
                timestamp=time.monotonic(),
                role="ASSISTANT",
                text=reply,
                stage="SPECULATIVE",
                content_id=turn.text_cid,
            )
        )

    def _on_audio(self, turn: _Turn, audio: bytes) -> None:
        now = time.monotonic()
        if turn.audio_start_sample is None:
            turn.times["first_audio_out_t"] = now
            turn.audio_start_sample = self._samples
        turn.out_samples += len(audio) // 2
        self._output_audio(
            ev.AudioOutput(
                timestamp=now,
                audio=audio,
                content_id=turn.audio_cid,
                sample_rate=self.config.output_sample_rate,
            )
        )

    def _on_spoken(self, turn: _Turn) -> None:
        now = time.monotonic()
        turn.ended = True
        reply = turn.reply_text or ""
        self.history += [("USER", turn.user_text or ""), ("ASSISTANT", reply)]
        self._publish(
            ev.Transcript(
                timestamp=now, role="ASSISTANT", text=reply, stage="FINAL", content_id=turn.text_cid
            )
        )
        self._end_spoken_audio(turn, now)
        self._publish_stages(turn, now, "spoken")

    def _audio_block_ended(self, turn: _Turn, now: float, stop_reason: str) -> None:
        """The reply's AUDIO block ends, as the service ends one (END_TURN, or INTERRUPTED)."""
        self._publish(
            ev.ContentEnded(
                timestamp=now,
                content_id=turn.audio_cid,
                type="AUDIO",
                role="ASSISTANT",
                stop_reason=stop_reason,
            )
        )

    def _end_spoken_audio(self, turn: _Turn, now: float) -> None:
        """If the reply's audio had begun, close its block as a finished turn (END_TURN)."""
        if turn.audio_start_sample is None:
            return
        self._audio_block_ended(turn, now, "END_TURN")
        self._end_turn_audio(turn.audio_cid, now)

    def _on_error(self, turn: _Turn, stage: str, exc: BaseException) -> None:
        now = time.monotonic()
        turn.ended = True
        turn.error = f"{stage}: {type(exc).__name__}: {exc}"
        log.warning("cascade turn failed in %s: %s", stage, exc)
        self._publish(
            CascadeTurnError(
                timestamp=now,
                content_id=turn.audio_cid,
                stage=stage,
                error_type=type(exc).__name__,
                message=f"the cascade's {stage} raised {type(exc).__name__}: {exc}; "
                "this turn gets no reply, the session goes on",
            )
        )
        self._end_spoken_audio(turn, now)  # TTS may have failed part-way: end what was spoken
        self._publish_stages(turn, now, "failed")

    def _stop_turn(self, turn: _Turn, now: float, *, outcome: str) -> None:
        """Stop the worker; if the reply had begun, interrupt it as a barge-in does."""
        turn.stop.set()
        if turn.audio_start_sample is not None:
            if outcome == "interrupted":
                self._interrupt(
                    ev.Interruption(timestamp=now, content_id=turn.audio_cid, signal="stopReason")
                )
            else:
                self._abandon_turn(turn.audio_cid, now)
            if not turn.ended:
                self._audio_block_ended(turn, now, "INTERRUPTED")
        if not turn.ended:
            turn.ended = True
            self._publish_stages(turn, now, outcome if turn.audio_start_sample is not None else "cancelled")

    def _publish_stages(self, turn: _Turn, now: float, outcome: str) -> None:
        t = turn.times
        self._publish(
            CascadeStages(
                timestamp=now,
                content_id=turn.audio_cid,
                user_text=turn.user_text,
                reply_text=turn.reply_text,
                typed=turn.typed,
                outcome=outcome,
                error=turn.error,
                speech_end_t=t.get("speech_end_t"),
                decision_t=t.get("decision_t"),
                asr_start_t=t.get("asr_start_t"),
                asr_end_t=t.get("asr_end_t"),
                reply_start_t=t.get("reply_start_t"),
                reply_end_t=t.get("reply_end_t"),
                tts_first_audio_t=t.get("tts_first_audio_t"),
                first_audio_out_t=t.get("first_audio_out_t"),
                pause_s=None if turn.typed else self.pause_s,
            )
        )

    # -- the rest of the contract ----------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Typed text: answered like a spoken turn, without VAD or ASR. Interrupts a reply in progress."""
        self._check_usable()
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("send_text() takes a non-empty str")
        now = time.monotonic()
        if self._turn is not None and not self._turn.ended:
            self._stop_turn(self._turn, now, outcome="interrupted")
        self._start_turn(pcm=None, text=text, speech_end_t=None, decision_t=now)

    async def send_tool_result(self, tool_use_id: str, result: Any) -> None:
        raise ConfigError(
            "the cascade provider has no tools: its responder is a plain callable(text[, context]) -> str, "
            "so no toolUse is ever asked for and there is nothing to answer. Call your tool inside the "
            "responder, or use the 'local' or 'amazon_nova' provider for tool use."
        )

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closing = True
        self._stop_input()  # a held-back partial frame has no service to go to
        now = time.monotonic()
        turn = self._turn
        if turn is not None:
            if not turn.ended:
                self._stop_turn(turn, now, outcome="cancelled")
            if turn.worker is not None and not turn.worker.done():
                # The worker stops at its next check; a stage already running (a slow responder) is
                # not waited for beyond close_timeout_s: its results are dropped when they come.
                await asyncio.wait({turn.worker}, timeout=self.config.close_timeout_s)
        self._finish("closed")
