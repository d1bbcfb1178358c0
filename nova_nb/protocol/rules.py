"""The server side of the Nova Sonic input protocol as a sans-I/O validator.

:class:`InputValidator` checks each input event the way the service does (order, names, roles,
limits, formats; docs/PROTOCOL.md §2, §3, §7) and returns a parsed :class:`InputEvent`, or raises
:class:`ServiceException` carrying the exception type and message the service would answer with.
The emulator applies it to every event; tests use it to check that the provider's own output obeys
the rules. Messages quoted from the service are marked as such; the others are written in its style.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ProtocolError
from . import catalog, wire

#: Quoted from the service (seen by LiveKit, docs/PROTOCOL.md §2).
MSG_HISTORY_BEFORE_AUDIO: Final = "Chat history should be sent completely before streaming audio."
#: Quoted from the service (docs/PROTOCOL.md §3).
MSG_TOOL_RESPONSE: Final = "Tool Response parsing error"
#: Quoted from the service, as seen in 2026 captures and reports (docs/PROTOCOL.md §12).
MSG_HISTORY_OVER_LIMIT: Final = "Chat history is over max limit. Trim chat history and try again."
MSG_EMPTY_VOICE: Final = "Received invalid voiceId: value must not be empty"
MSG_UNPARSABLE_CHUNK: Final = (
    "Unable to parse input chunk. Please check input format contains correct format."
)
MSG_NO_OPEN_CONTENT: Final = "No open content found for content name: {name}"


class ServiceException(ProtocolError):
    """What the service answers to a bad input event: an in-stream exception frame."""

    def __init__(self, message: str, exception_type: str = "validationException") -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message


@dataclass(frozen=True)
class InputEvent:
    name: str
    body: dict[str, Any]
    #: For textInput/audioInput/toolResult: the type and role of the block it belongs to.
    content_type: str | None = None
    role: str | None = None
    interactive: bool | None = None


@dataclass
class _OpenBlock:
    type: str
    role: str
    interactive: bool
    tool_use_id: str | None = None
    text_bytes: int = 0
    pieces: list[str] = field(default_factory=list)


@dataclass
class PromptSettings:
    """What sessionStart and promptStart configured."""

    prompt_name: str = ""
    voice_id: str = ""
    output_sample_rate: int = catalog.DEFAULT_OUTPUT_RATE
    input_sample_rate: int = catalog.DEFAULT_INPUT_RATE
    endpointing_sensitivity: str | None = None
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.9
    tools: list[dict[str, Any]] = field(default_factory=list)
    system_prompt: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)


class InputValidator:
    """Validates one stream's input events in order. ``model_id`` selects voices and features."""

    def __init__(self, model_id: str) -> None:
        self.model = catalog.MODELS[model_id]
        self.settings = PromptSettings()
        self.stage = "start"  # start → session → prompt → audio → prompt_ended → ended
        self._blocks: dict[str, _OpenBlock] = {}
        self._used_names: set[str] = set()
        self._history_bytes = 0
        self._history_count = 0
        self._audio_started = False
        self._system_seen = False
        self.audio_content_name: str | None = None

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _fail(message: str) -> ServiceException:
        return ServiceException(message)

    def _require(self, body: dict[str, Any], key: str, event: str, kind: type = str) -> Any:
        value = body.get(key)
        if value is None:
            raise self._fail(f"Invalid input: {event} is missing required field '{key}'.")
        if not isinstance(value, kind) or (kind is str and not value):
            raise self._fail(f"Invalid input: {event}.{key} must be a non-empty {kind.__name__}.")
        return value

    def _check_prompt(self, body: dict[str, Any], event: str) -> None:
        name = self._require(body, "promptName", event)
        if name != self.settings.prompt_name:
            raise self._fail(
                f"Invalid input: {event}.promptName '{name}' does not match the active prompt "
                f"'{self.settings.prompt_name}'."
            )

    def _block(self, body: dict[str, Any], event: str) -> tuple[str, _OpenBlock]:
        self._check_prompt(body, event)
        name = self._require(body, "contentName", event)
        block = self._blocks.get(name)
        if block is None:
            raise self._fail(MSG_NO_OPEN_CONTENT.format(name=name))
        return name, block

    # -- the state machine -----------------------------------------------------------------------

    def receive(self, raw: bytes | str) -> InputEvent:
        """Validate one input event. Raises ServiceException with the service's answer."""
        try:
            name, body = wire.split_event(raw)
        except ProtocolError as exc:
            raise self._fail(f"Invalid input request: {exc}") from None
        if name not in wire.INPUT_EVENT_NAMES:
            raise self._fail(
                f"Invalid input request: unknown event '{name}'. "
                f"Expected one of {', '.join(wire.INPUT_EVENT_NAMES)}."
            )
        if self.stage == "ended":
            raise self._fail(f"Invalid input request: {name} received after sessionEnd.")
        handler = getattr(self, "_on_" + name)
        result: InputEvent = handler(body)
        return result

    def _on_sessionStart(self, body: dict[str, Any]) -> InputEvent:
        if self.stage != "start":
            raise self._fail("Invalid input request: sessionStart may be sent only once, as the first event.")
        inference = body.get("inferenceConfiguration", {})
        if not isinstance(inference, dict):
            raise self._fail("Invalid input: sessionStart.inferenceConfiguration must be an object.")
        s = self.settings
        s.max_tokens = int(inference.get("maxTokens", s.max_tokens))
        s.temperature = float(inference.get("temperature", s.temperature))
        s.top_p = float(inference.get("topP", s.top_p))
        if not 1 <= s.max_tokens <= 10_000 or not 0 <= s.temperature <= 1 or not 0 <= s.top_p <= 1:
            raise self._fail("Invalid input: inferenceConfiguration values are out of range.")
        turn = body.get("turnDetectionConfiguration")
        if turn is not None:
            # Nova 1 takes no turn-detection settings (docs/PROTOCOL.md §3).
            if not self.model.turn_detection:
                raise self._fail(
                    f"Invalid input: turnDetectionConfiguration is not supported by {self.model.id}."
                )
            sensitivity = turn.get("endpointingSensitivity") if isinstance(turn, dict) else None
            if sensitivity not in catalog.ENDPOINTING_PAUSE_S:
                raise self._fail(
                    "Invalid input: turnDetectionConfiguration.endpointingSensitivity must be one of "
                    f"{', '.join(catalog.ENDPOINTING_PAUSE_S)}."
                )
            s.endpointing_sensitivity = sensitivity
        self.stage = "session"
        return InputEvent("sessionStart", body)

    def _on_promptStart(self, body: dict[str, Any]) -> InputEvent:
        if self.stage != "session":
            raise self._fail("Invalid input request: promptStart must follow sessionStart, once.")
        s = self.settings
        s.prompt_name = self._require(body, "promptName", "promptStart")
        audio = body.get("audioOutputConfiguration")
        if not isinstance(audio, dict):
            raise self._fail("Invalid input: promptStart is missing audioOutputConfiguration.")
        voice = audio.get("voiceId")
        if not voice:
            raise self._fail(MSG_EMPTY_VOICE)
        if voice not in self.model.voices:
            raise self._fail(
                f"Invalid input: voiceId '{voice}' is not supported by {self.model.id}. "
                f"Supported voices: {', '.join(self.model.voices)}."
            )
        s.voice_id = voice
        rate = audio.get("sampleRateHertz")
        if rate not in catalog.SAMPLE_RATES:
            raise self._fail(
                f"Invalid input: audioOutputConfiguration.sampleRateHertz {rate} is not supported. "
                f"Supported: {', '.join(map(str, catalog.SAMPLE_RATES))}."
            )
        s.output_sample_rate = rate
        if audio.get("mediaType", "audio/lpcm") != "audio/lpcm":
            raise self._fail("Invalid input: audioOutputConfiguration.mediaType must be audio/lpcm.")
        tools = (body.get("toolConfiguration") or {}).get("tools", [])
        for tool in tools:
            spec = tool.get("toolSpec", {}) if isinstance(tool, dict) else {}
            schema = (spec.get("inputSchema") or {}).get("json")
            if schema is not None and not isinstance(schema, str):
                # An inputSchema.json given as an object, not a JSON string: the service's answer.
                raise self._fail(MSG_UNPARSABLE_CHUNK)
            if not spec.get("name") or not isinstance(schema, str):
                raise self._fail(
                    "Invalid input: each tool needs toolSpec.name and inputSchema.json (a JSON string)."
                )
            try:
                json.loads(schema)
            except ValueError:
                raise self._fail(
                    f"Invalid input: inputSchema.json of tool '{spec['name']}' is not valid JSON."
                ) from None
        s.tools = tools
        self.stage = "prompt"
        return InputEvent("promptStart", body)

    def _on_contentStart(self, body: dict[str, Any]) -> InputEvent:
        if self.stage not in ("prompt", "audio"):
            raise self._fail("Invalid input request: contentStart before promptStart or after promptEnd.")
        self._check_prompt(body, "contentStart")
        name = self._require(body, "contentName", "contentStart")
        if name in self._used_names:
            raise self._fail(f"Invalid input: contentName '{name}' was already used in this prompt.")
        ctype = body.get("type")
        if ctype not in wire.CONTENT_TYPES:
            raise self._fail(f"Invalid input: contentStart.type must be TEXT, AUDIO or TOOL, got '{ctype}'.")
        role = body.get("role")
        interactive = bool(body.get("interactive", False))
        open_text = [b for b in self._blocks.values() if b.type == "TEXT"]
        if open_text:
            raise self._fail(
                "Invalid input request: a TEXT content block is still open; send its contentEnd first."
            )
        block = _OpenBlock(type=ctype, role=str(role), interactive=interactive)
        if ctype == "TEXT":
            if role not in wire.INPUT_TEXT_ROLES:
                raise self._fail(
                    f"Invalid input: TEXT role must be one of {', '.join(wire.INPUT_TEXT_ROLES)}, "
                    f"got '{role}'."
                )
            if role == "SYSTEM":
                if self._system_seen or self._history_count or self._audio_started:
                    raise self._fail("Invalid input: the SYSTEM prompt must be the first content, sent once.")
                self._system_seen = True
            elif not interactive:
                if role == "SYSTEM_SPEECH":
                    pass
                elif self._audio_started:
                    raise self._fail(MSG_HISTORY_BEFORE_AUDIO)
                elif self._history_count == 0 and role != "USER":
                    raise self._fail("Invalid input: the first chat history message must have role USER.")
                else:
                    self._history_count += 1
            elif not self.model.cross_modal_text:
                raise self._fail(
                    f"Invalid input: interactive text input is not supported by {self.model.id}."
                )
        elif ctype == "AUDIO":
            if role != "USER":
                raise self._fail(f"Invalid input: AUDIO content must have role USER, got '{role}'.")
            if self._audio_started:
                raise self._fail("Invalid input: an audio content block was already started in this prompt.")
            cfg = body.get("audioInputConfiguration")
            if not isinstance(cfg, dict):
                raise self._fail("Invalid input: AUDIO contentStart is missing audioInputConfiguration.")
            rate = cfg.get("sampleRateHertz")
            if rate not in catalog.SAMPLE_RATES:
                raise self._fail(
                    f"Invalid input: audioInputConfiguration.sampleRateHertz {rate} is not supported. "
                    f"Supported: {', '.join(map(str, catalog.SAMPLE_RATES))}."
                )
            if cfg.get("sampleSizeBits", 16) != 16 or cfg.get("channelCount", 1) != 1:
                raise self._fail("Invalid input: audio input must be 16-bit mono LPCM.")
            self.settings.input_sample_rate = rate
            self._audio_started = True
            self.audio_content_name = name
            self.stage = "audio"
        else:  # TOOL
            if role != "TOOL":
                raise self._fail(f"Invalid input: TOOL content must have role TOOL, got '{role}'.")
            cfg = body.get("toolResultInputConfiguration") or {}
            tool_use_id = cfg.get("toolUseId")
            if not tool_use_id:
                raise self._fail(
                    "Invalid input: TOOL contentStart needs toolResultInputConfiguration.toolUseId."
                )
            block.tool_use_id = tool_use_id
        self._blocks[name] = block
        self._used_names.add(name)
        return InputEvent("contentStart", body, ctype, str(role), interactive)

    def _on_textInput(self, body: dict[str, Any]) -> InputEvent:
        _, block = self._block(body, "textInput")
        if block.type != "TEXT":
            raise self._fail(f"Invalid input: textInput for a {block.type} content block.")
        content = body.get("content")
        if not isinstance(content, str):
            raise self._fail("Invalid input: textInput.content must be a string.")
        size = len(content.encode())
        if size > catalog.TEXT_INPUT_MAX_BYTES:
            raise self._fail(
                f"Invalid input: textInput.content is {size} bytes; the limit is "
                f"{catalog.TEXT_INPUT_MAX_BYTES} bytes per event. Split it into several textInput events."
            )
        if block.role in ("USER", "ASSISTANT") and not block.interactive:
            self._history_bytes += size
            if self._history_bytes > catalog.HISTORY_MAX_BYTES:
                raise self._fail(MSG_HISTORY_OVER_LIMIT)  # the limit: catalog.HISTORY_MAX_BYTES (40 KB)
        block.pieces.append(content)
        return InputEvent("textInput", body, "TEXT", block.role, block.interactive)

    def _on_audioInput(self, body: dict[str, Any]) -> InputEvent:
        if any(b.type == "TEXT" for b in self._blocks.values()):
            raise self._fail(MSG_HISTORY_BEFORE_AUDIO)
        _, block = self._block(body, "audioInput")
        if block.type != "AUDIO":
            raise self._fail(f"Invalid input: audioInput for a {block.type} content block.")
        try:
            pcm = wire.decode_audio(body)
        except ProtocolError as exc:
            raise self._fail(f"Invalid input: {exc}") from None
        if len(pcm) % 2:
            raise self._fail("Invalid input: audioInput content must hold whole 16-bit samples.")
        return InputEvent("audioInput", body, "AUDIO", "USER", True)

    def _on_toolResult(self, body: dict[str, Any]) -> InputEvent:
        _, block = self._block(body, "toolResult")
        if block.type != "TOOL":
            raise self._fail(f"Invalid input: toolResult for a {block.type} content block.")
        content = body.get("content")
        try:
            parsed = json.loads(content) if isinstance(content, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise self._fail(MSG_TOOL_RESPONSE)
        return InputEvent("toolResult", body, "TOOL", "TOOL", False)

    def _on_contentEnd(self, body: dict[str, Any]) -> InputEvent:
        name, block = self._block(body, "contentEnd")
        del self._blocks[name]
        if block.type == "TEXT" and block.role == "SYSTEM":
            self.settings.system_prompt = "".join(block.pieces)
        elif block.type == "TEXT" and not block.interactive and block.role in ("USER", "ASSISTANT"):
            self.settings.history.append((block.role, "".join(block.pieces)))
        return InputEvent("contentEnd", body, block.type, block.role, block.interactive)

    def _on_promptEnd(self, body: dict[str, Any]) -> InputEvent:
        if self.stage not in ("prompt", "audio"):
            raise self._fail("Invalid input request: promptEnd without an active prompt.")
        self._check_prompt(body, "promptEnd")
        if self._blocks:
            raise self._fail("Invalid input request: promptEnd while content blocks are still open.")
        self.stage = "prompt_ended"
        return InputEvent("promptEnd", body)

    def _on_sessionEnd(self, body: dict[str, Any]) -> InputEvent:
        self.stage = "ended"
        return InputEvent("sessionEnd", body)

    def block_text(self, content_name: str) -> str:
        """The text received so far in an open TEXT block."""
        block = self._blocks.get(content_name)
        return "".join(block.pieces) if block else ""
