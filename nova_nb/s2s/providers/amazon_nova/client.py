"""The client side of the Nova Sonic protocol as a sans-I/O state machine (in the manner of h11).

:class:`NovaClientProtocol` knows what to send and when, and turns the service's output events into
the typed events of :mod:`nova_nb.s2s.events`. It never touches a socket or an event loop: the
session feeds it bytes and timestamps, and writes what it returns. That keeps every protocol rule
testable with JSON in, events out.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ....errors import ConfigError, ProtocolError, SessionClosedError
from ....protocol import catalog, wire
from ....protocol.order import OutputOrder
from ... import events as ev
from ...types import HistoryMessage, Tool

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def new_name() -> str:
    """A fresh promptName/contentName. The client chooses these; the samples use UUIDs (§2)."""
    return str(uuid.uuid4())


def history_size(messages: Sequence[HistoryMessage]) -> int:
    """Bytes of history text as the 40 KB limit counts it (UTF-8 of the message texts)."""
    return sum(len(m.text.encode()) for m in messages)


def check_history(messages: Sequence[HistoryMessage]) -> None:
    """Raise ConfigError if the history breaks a documented rule (§2.4): first USER, ≤ 40 KB."""
    if not messages:
        return
    if messages[0].role != "USER":
        raise ConfigError(
            "the first history message must have role 'USER' (Nova Sonic rejects a history that starts "
            "with 'ASSISTANT'); drop leading assistant messages or prepend the user's message"
        )
    size = history_size(messages)
    if size > catalog.HISTORY_MAX_BYTES:
        raise ConfigError(
            f"history is {size} bytes; Nova Sonic accepts at most {catalog.HISTORY_MAX_BYTES} bytes "
            "(40 KB) in all. Drop older messages or summarise them."
        )


def shape_history(
    messages: Sequence[HistoryMessage], *, drop_last_user: bool = False
) -> list[HistoryMessage]:
    """Make a conversation fit to be replayed as history to a new stream (§9, §2.4).

    Merge consecutive messages of the same role; drop the last USER message when its audio is being
    replayed (the model would otherwise hear it twice); drop leading ASSISTANT messages (the first
    must be USER); drop the oldest messages until the whole fits in the 40 KB limit.
    """
    merged: list[HistoryMessage] = []
    for message in messages:
        if not message.text.strip():
            continue
        if merged and merged[-1].role == message.role:
            merged[-1] = HistoryMessage(message.role, f"{merged[-1].text} {message.text}")
        else:
            merged.append(message)
    if drop_last_user and merged and merged[-1].role == "USER":
        merged.pop()
    while merged and (merged[0].role != "USER" or history_size(merged) > catalog.HISTORY_MAX_BYTES):
        merged.pop(0)
    return merged


def tool_specs(tools: Sequence[Tool]) -> list[wire.ToolSpec]:
    """What promptStart says of each tool (name, description, input schema) (§3)."""
    return [wire.ToolSpec(t.name, t.description, t.input_schema) for t in tools]


def _offset_ms(value: Any) -> float | None:
    """A millisecond offset as sent (a number, or a numeric string), or None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None if value is None else str(value)


@dataclass
class _Block:
    """An output content block the service opened and has not closed yet."""

    type: str
    role: str | None
    stage: str | None
    completion_id: str | None


@dataclass
class ClientState:
    """What the client has sent; guards against sending in the wrong order."""

    setup_sent: bool = False
    closing_sent: bool = False
    open_tool_results: set[str] = field(default_factory=set)


class NovaClientProtocol:
    """One bidirectional stream, client role.

    Parameters are the prompt's fixed settings; ``prompt_name`` and ``audio_content_name`` are
    generated unless given (a continuation may want its own).
    """

    def __init__(
        self,
        *,
        model_id: str,
        voice_id: str,
        input_sample_rate: int,
        output_sample_rate: int,
        max_tokens: int,
        top_p: float,
        temperature: float,
        endpointing_sensitivity: str | None,
        tools: Sequence[wire.ToolSpec] = (),
        prompt_name: str | None = None,
        audio_content_name: str | None = None,
    ) -> None:
        self.model = catalog.MODELS[model_id]
        self.voice_id = voice_id
        self.input_sample_rate = input_sample_rate
        self.output_sample_rate = output_sample_rate
        self.max_tokens = max_tokens
        self.top_p = top_p
        self.temperature = temperature
        self.endpointing_sensitivity = endpointing_sensitivity if self.model.turn_detection else None
        self.tools = tuple(tools)
        self.prompt_name = prompt_name or new_name()
        self.audio_content_name = audio_content_name or new_name()
        for name in (self.prompt_name, self.audio_content_name):
            # audio_input_bytes() formats these into JSON unescaped; make sure that is safe.
            if not _NAME_RE.match(name):
                raise ProtocolError(f"prompt/content names must match {_NAME_RE.pattern}, got {name!r}")
        self.state = ClientState()
        # Output side.
        self._blocks: dict[str, _Block] = {}
        self._interrupted_audio: set[str] = set()  # audio contentIds already reported as interrupted
        self._current_audio: str | None = None  # the ASSISTANT AUDIO block now streaming
        self._last_audio: str | None = None
        self.session_id: str | None = None
        # The output order (docs/PROTOCOL.md §4), checked by the machine the emulator also obeys.
        self.order = OutputOrder()

    # -- sending -------------------------------------------------------------------------------

    def setup_events(self, system_prompt: str, history: Sequence[HistoryMessage] = ()) -> list[wire.Event]:
        """sessionStart → promptStart → system prompt → history → the USER AUDIO contentStart (§2)."""
        if self.state.setup_sent:
            raise ProtocolError("setup events were already sent on this stream")
        check_history(history)
        out = [
            wire.session_start(
                max_tokens=self.max_tokens,
                top_p=self.top_p,
                temperature=self.temperature,
                endpointing_sensitivity=self.endpointing_sensitivity,
            ),
            wire.prompt_start(
                prompt_name=self.prompt_name,
                voice_id=self.voice_id,
                output_sample_rate=self.output_sample_rate,
                tools=self.tools,
            ),
        ]
        if system_prompt:
            # The official samples send the SYSTEM block interactive: true and the service accepts it;
            # the docs are inconsistent (§3). History blocks are interactive: false.
            out += self._text_block("SYSTEM", system_prompt, interactive=False)
        for message in history:
            out += self._text_block(message.role, message.text, interactive=False)
        out.append(
            wire.audio_content_start(
                prompt_name=self.prompt_name,
                content_name=self.audio_content_name,
                sample_rate=self.input_sample_rate,
            )
        )
        self.state.setup_sent = True
        return out

    def setup_payloads(self, system_prompt: str, history: Sequence[HistoryMessage] = ()) -> list[bytes]:
        """:meth:`setup_events`, encoded: the bytes to write, in order (the I/O layer never encodes)."""
        return [wire.encode(e) for e in self.setup_events(system_prompt, history)]

    def _text_block(self, role: str, text: str, *, interactive: bool) -> list[wire.Event]:
        name = new_name()
        out = [
            wire.text_content_start(
                prompt_name=self.prompt_name, content_name=name, role=role, interactive=interactive
            )
        ]
        for piece in wire.split_utf8(text):
            out.append(wire.text_input(prompt_name=self.prompt_name, content_name=name, content=piece))
        out.append(wire.content_end(prompt_name=self.prompt_name, content_name=name))
        return out

    def _check_open(self) -> None:
        if not self.state.setup_sent:
            raise ProtocolError("send the setup events first")
        if self.state.closing_sent:
            raise SessionClosedError("the stream is closing; no more input can be sent")

    def audio_event(self, pcm: bytes) -> bytes:
        """One encoded ``audioInput`` for 16-bit LE mono PCM at the input rate (the hot path)."""
        self._check_open()
        return wire.audio_input_bytes(self.prompt_name, self.audio_content_name, pcm)

    def text_events(self, text: str, *, role: str = "USER") -> list[wire.Event]:
        """Cross-modal text input (Nova 2): an interactive TEXT block sent while audio streams (§3)."""
        self._check_open()
        if not self.model.cross_modal_text:
            raise ConfigError(f"{self.model.name} does not accept text input mid-session; use Nova 2 Sonic")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("text to send must be a non-empty string")
        if role not in ("USER", "SYSTEM_SPEECH"):
            raise ConfigError(f"cross-modal text role must be 'USER' or 'SYSTEM_SPEECH', got {role!r}")
        return self._text_block(role, text, interactive=True)

    def text_payloads(self, text: str, *, role: str = "USER") -> list[bytes]:
        """:meth:`text_events`, encoded."""
        return [wire.encode(e) for e in self.text_events(text, role=role)]

    def tool_result_events(self, tool_use_id: str, result: Any) -> list[wire.Event]:
        """TOOL contentStart → toolResult (a JSON object as a string) → contentEnd (§3)."""
        self._check_open()
        name = new_name()
        return [
            wire.tool_content_start(prompt_name=self.prompt_name, content_name=name, tool_use_id=tool_use_id),
            wire.tool_result(
                prompt_name=self.prompt_name, content_name=name, content=wire.tool_result_content(result)
            ),
            wire.content_end(prompt_name=self.prompt_name, content_name=name),
        ]

    def tool_result_payloads(self, tool_use_id: str, result: Any) -> list[bytes]:
        """:meth:`tool_result_events`, encoded."""
        return [wire.encode(e) for e in self.tool_result_events(tool_use_id, result)]

    def closing_events(self) -> list[wire.Event]:
        """contentEnd of the audio block → promptEnd → sessionEnd; also after errors (§2.6)."""
        if self.state.closing_sent:
            return []
        self.state.closing_sent = True
        out: list[wire.Event] = []
        if self.state.setup_sent:
            out.append(wire.content_end(prompt_name=self.prompt_name, content_name=self.audio_content_name))
            out.append(wire.prompt_end(prompt_name=self.prompt_name))
        out.append(wire.session_end())
        return out

    def closing_payloads(self) -> list[bytes]:
        """:meth:`closing_events`, encoded (empty once sent)."""
        return [wire.encode(e) for e in self.closing_events()]

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, raw: bytes | str, now: float) -> list[ev.Event]:
        """Turn one output event into typed events. Unknown events pass through as UnknownEvent."""
        out = wire.parse_output(raw)
        body = out.body
        flagged: list[ev.Event] = []
        violation = self.order.check(out.name, body)
        if violation is not None:
            # A service out of order is flagged, not fatal: the event is still handled as well as it
            # can be, and the session goes on.
            flagged.append(
                ev.ProtocolViolation(
                    timestamp=now,
                    event=violation.event,
                    state=violation.state,
                    expected=violation.expected,
                    message=str(violation),
                )
            )
        handler = getattr(self, "_on_" + out.name, None)
        if handler is None:
            return [*flagged, ev.UnknownEvent(timestamp=now, name=out.name, payload=body)]
        result: list[ev.Event] = handler(body, now)
        return [*flagged, *result] if flagged else result

    def _on_completionStart(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        self.session_id = str(body.get("sessionId", self.session_id or ""))
        return [
            ev.CompletionStarted(
                timestamp=now, session_id=self.session_id, completion_id=str(body.get("completionId", ""))
            )
        ]

    def _on_contentStart(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        cid = str(body.get("contentId", ""))
        block = _Block(
            type=str(body.get("type", "")),
            role=body.get("role"),
            stage=wire.generation_stage(body),
            completion_id=body.get("completionId"),
        )
        self._blocks[cid] = block
        if block.type == "AUDIO" and block.role == "ASSISTANT":
            self._current_audio = cid
            self._last_audio = cid
        return []

    def _interruption(self, now: float, signal: str) -> list[ev.Event]:
        audio = self._current_audio or self._last_audio
        key = audio or "-"
        if key in self._interrupted_audio:
            return []  # the other signal for the same response already reported it
        self._interrupted_audio.add(key)
        return [ev.Interruption(timestamp=now, content_id=audio, signal=signal)]  # type: ignore[arg-type]

    def _on_textOutput(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        cid = str(body.get("contentId", ""))
        text = body.get("content", "")
        if not isinstance(text, str):
            text = str(text)
        if wire.is_interrupted_marker(text):
            # §5: never show the marker as transcript text.
            return self._interruption(now, "marker")
        block = self._blocks.get(cid)
        role = body.get("role") or (block.role if block else None) or ""
        return [
            ev.Transcript(
                timestamp=now,
                role=str(role),
                text=text,
                stage=block.stage if block else None,  # type: ignore[arg-type]
                content_id=cid,
                completion_id=body.get("completionId"),
            )
        ]

    def _on_audioOutput(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        cid = str(body.get("contentId", ""))
        return [
            ev.AudioOutput(
                timestamp=now,
                audio=wire.decode_audio(body),
                content_id=cid,
                sample_rate=self.output_sample_rate,
            )
        ]

    def _on_toolUse(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        arguments = wire.tool_arguments(body.get("content", "{}"))
        return [
            ev.ToolUse(
                timestamp=now,
                tool_name=str(body.get("toolName", "")),
                tool_use_id=str(body.get("toolUseId", "")),
                arguments=arguments if arguments is not None else {"_raw": body.get("content")},
                content_id=str(body.get("contentId", "")),
            )
        ]

    def _on_contentEnd(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        cid = str(body.get("contentId", ""))
        block = self._blocks.pop(cid, None)
        stop = body.get("stopReason")
        ctype = str(body.get("type") or (block.type if block else ""))
        role = block.role if block else None
        out: list[ev.Event] = []
        if stop == "INTERRUPTED":
            if ctype == "AUDIO" and role == "ASSISTANT":
                self._current_audio = cid
            out += self._interruption(now, "stopReason")
        if ctype == "AUDIO" and role == "ASSISTANT" and self._current_audio == cid:
            self._current_audio = None
        out.append(ev.ContentEnded(timestamp=now, content_id=cid, type=ctype, role=role, stop_reason=stop))
        return out

    def _on_completionEnd(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        return [
            ev.CompletionEnded(
                timestamp=now,
                completion_id=str(body.get("completionId", "")),
                stop_reason=body.get("stopReason"),
            )
        ]

    # wire.USER_SPEECH_START / wire.USER_SPEECH_END (§12): undocumented, so every field is
    # optional, odd values become None and the whole body stays in ``raw`` for fields added later.

    def _on_userSpeechStart(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        return [
            ev.ServiceSpeechStarted(
                timestamp=now,
                input_audio_offset_ms=_offset_ms(body.get("inputAudioOffsetMs")),
                prompt_name=_opt_str(body.get("promptName")),
                session_id=_opt_str(body.get("sessionId")),
                raw=body,
            )
        ]

    def _on_userSpeechEnd(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        return [
            ev.ServiceSpeechEnded(
                timestamp=now,
                input_audio_offset_ms=_offset_ms(body.get("inputAudioOffsetMs")),
                detection_offset_ms=_offset_ms(body.get("inputAudioDetectionOffsetMs")),
                prompt_name=_opt_str(body.get("promptName")),
                session_id=_opt_str(body.get("sessionId")),
                raw=body,
            )
        ]

    def _on_usageEvent(self, body: dict[str, Any], now: float) -> list[ev.Event]:
        def as_int(name: str) -> int:
            value = body.get(name, 0)
            return int(value) if isinstance(value, int | float) else 0

        return [
            ev.Usage(
                timestamp=now,
                input_tokens=as_int("totalInputTokens"),
                output_tokens=as_int("totalOutputTokens"),
                total_tokens=as_int("totalTokens"),
                details=body.get("details") or {},
            )
        ]
