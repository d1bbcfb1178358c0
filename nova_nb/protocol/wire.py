"""Nova Sonic event shapes, both directions: builders and parsers. Pure functions, no I/O.

Every event is JSON ``{"event": {NAME: {...}}}`` (docs/PROTOCOL.md §2). The provider builds input
events and parses output events here; the emulator parses input events and builds output events here.
Keeping both directions in one module means a shape guessed wrongly cannot hide by being wrong the
same way on both sides: the tests check these builders against the JSON examples on the AWS pages.

Sections cited: §3 input events, §4 output events, §5 barge-in (docs/PROTOCOL.md, from the AWS
Nova 2 user guide pages ``sonic-input-events`` and ``sonic-output-events``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ConfigError, ProtocolError
from . import catalog

Event = dict[str, Any]

# Event names, one constant each, so no module outside ``protocol/`` spells one (§2, §3, §4).
SESSION_START: Final = "sessionStart"
PROMPT_START: Final = "promptStart"
CONTENT_START: Final = "contentStart"  # both directions
TEXT_INPUT: Final = "textInput"
AUDIO_INPUT: Final = "audioInput"
TOOL_RESULT: Final = "toolResult"
CONTENT_END: Final = "contentEnd"  # both directions
PROMPT_END: Final = "promptEnd"
SESSION_END: Final = "sessionEnd"
COMPLETION_START: Final = "completionStart"
TEXT_OUTPUT: Final = "textOutput"
AUDIO_OUTPUT: Final = "audioOutput"
TOOL_USE: Final = "toolUse"
COMPLETION_END: Final = "completionEnd"
USAGE_EVENT: Final = "usageEvent"
#: Nova 2's speech-boundary events: not on the AWS pages, but present in captured real sessions
#: (userSpeechStart → completionStart → userSpeechEnd → USER TEXT …; peer: BerriAI/litellm issue 38346,
#: 2026). The provider's client parses them leniently, as the service's speech start and end.
USER_SPEECH_START: Final = "userSpeechStart"
USER_SPEECH_END: Final = "userSpeechEnd"

INPUT_EVENT_NAMES: Final = (
    SESSION_START,
    PROMPT_START,
    CONTENT_START,
    TEXT_INPUT,
    AUDIO_INPUT,
    TOOL_RESULT,
    CONTENT_END,
    PROMPT_END,
    SESSION_END,
)
#: Every output event name the order machine (:mod:`.order`) knows, documented (§4) or observed.
OUTPUT_EVENT_NAMES: Final = (
    COMPLETION_START,
    CONTENT_START,
    TEXT_OUTPUT,
    AUDIO_OUTPUT,
    TOOL_USE,
    CONTENT_END,
    COMPLETION_END,
    USAGE_EVENT,
    USER_SPEECH_START,
    USER_SPEECH_END,
)
CONTENT_TYPES: Final = ("TEXT", "AUDIO", "TOOL")
INPUT_TEXT_ROLES: Final = ("SYSTEM", "USER", "ASSISTANT", "SYSTEM_SPEECH")
STOP_REASONS: Final = ("PARTIAL_TURN", "END_TURN", "INTERRUPTED", "TOOL_USE")
GENERATION_STAGES: Final = ("SPECULATIVE", "FINAL")

#: The barge-in marker some service versions send as a textOutput (§5). Compared after parsing, so
#: whitespace variants (``{ "interrupted" : true }`` vs ``{"interrupted":true}``) all match.
INTERRUPTED_MARKER_TEXT: Final = '{ "interrupted" : true }'

_TEXT_PLAIN: Final = {"mediaType": "text/plain"}


def _wrap(name: str, body: Mapping[str, Any]) -> Event:
    return {"event": {name: dict(body)}}


def encode(event: Event) -> bytes:
    """Serialise an event as compact UTF-8 JSON, the payload the SDK sends as ``bytes_``."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------------------------------
# Input events (client → service), §3
# --------------------------------------------------------------------------------------------------


def session_start(
    *, max_tokens: int, top_p: float, temperature: float, endpointing_sensitivity: str | None = None
) -> Event:
    """``sessionStart``. ``endpointing_sensitivity`` only for Nova 2; Nova 1 rejects the field (§3)."""
    body: dict[str, Any] = {
        "inferenceConfiguration": {"maxTokens": max_tokens, "topP": top_p, "temperature": temperature}
    }
    if endpointing_sensitivity is not None:
        if endpointing_sensitivity not in catalog.ENDPOINTING_PAUSE_S:
            raise ProtocolError(
                f"endpointingSensitivity must be one of {sorted(catalog.ENDPOINTING_PAUSE_S)}, "
                f"got {endpointing_sensitivity!r}"
            )
        body["turnDetectionConfiguration"] = {"endpointingSensitivity": endpointing_sensitivity}
    return _wrap("sessionStart", body)


@dataclass(frozen=True)
class ToolSpec:
    """A tool as declared in ``promptStart.toolConfiguration`` (schema sent as a JSON *string*)."""

    name: str
    description: str
    input_schema: Mapping[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {
            "toolSpec": {
                "name": self.name,
                "description": self.description,
                "inputSchema": {"json": json.dumps(self.input_schema, separators=(",", ":"))},
            }
        }


def prompt_start(
    *,
    prompt_name: str,
    voice_id: str,
    output_sample_rate: int,
    tools: Sequence[ToolSpec] = (),
) -> Event:
    """``promptStart``: output formats, the voice, and tools if any (§3)."""
    body: dict[str, Any] = {
        "promptName": prompt_name,
        "textOutputConfiguration": dict(_TEXT_PLAIN),
        "audioOutputConfiguration": {
            "mediaType": "audio/lpcm",
            "sampleRateHertz": output_sample_rate,
            "sampleSizeBits": catalog.SAMPLE_SIZE_BITS,
            "channelCount": catalog.CHANNEL_COUNT,
            "voiceId": voice_id,
            "encoding": "base64",
            "audioType": "SPEECH",
        },
    }
    if tools:
        body["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
        body["toolConfiguration"] = {"tools": [t.to_wire() for t in tools]}
    return _wrap("promptStart", body)


def text_content_start(*, prompt_name: str, content_name: str, role: str, interactive: bool) -> Event:
    """A TEXT ``contentStart``: system prompt, history (interactive false) or cross-modal text (true)."""
    return _wrap(
        "contentStart",
        {
            "promptName": prompt_name,
            "contentName": content_name,
            "type": "TEXT",
            "interactive": interactive,
            "role": role,
            "textInputConfiguration": dict(_TEXT_PLAIN),
        },
    )


def text_input(*, prompt_name: str, content_name: str, content: str) -> Event:
    return _wrap("textInput", {"promptName": prompt_name, "contentName": content_name, "content": content})


def audio_content_start(*, prompt_name: str, content_name: str, sample_rate: int) -> Event:
    """The USER AUDIO ``contentStart`` that stays open for the whole conversation (§2.5)."""
    return _wrap(
        "contentStart",
        {
            "promptName": prompt_name,
            "contentName": content_name,
            "type": "AUDIO",
            "interactive": True,
            "role": "USER",
            "audioInputConfiguration": {
                "mediaType": "audio/lpcm",
                "sampleRateHertz": sample_rate,
                "sampleSizeBits": catalog.SAMPLE_SIZE_BITS,
                "channelCount": catalog.CHANNEL_COUNT,
                "audioType": "SPEECH",
                "encoding": "base64",
            },
        },
    )


def audio_input(*, prompt_name: str, content_name: str, pcm: bytes) -> Event:
    """``audioInput`` carrying base64 of 16-bit LE mono PCM."""
    return _wrap(
        "audioInput",
        {"promptName": prompt_name, "contentName": content_name, "content": base64.b64encode(pcm).decode()},
    )


def audio_input_bytes(prompt_name: str, content_name: str, pcm: bytes) -> bytes:
    """:func:`audio_input` already encoded: the hot path, ~50 events/s per session.

    Same JSON as ``encode(audio_input(...))`` (a test checks it) but built by formatting, which skips
    the dict and the JSON encoder. The names are the client's own UUIDs, so they need no escaping;
    :class:`~.client.NovaClientProtocol` checks that once.
    """
    return b"".join(
        (
            b'{"event":{"audioInput":{"promptName":"',
            prompt_name.encode(),
            b'","contentName":"',
            content_name.encode(),
            b'","content":"',
            base64.b64encode(pcm),
            b'"}}}',
        )
    )


def tool_content_start(*, prompt_name: str, content_name: str, tool_use_id: str) -> Event:
    """The TOOL ``contentStart`` that answers a ``toolUse`` (§3)."""
    return _wrap(
        "contentStart",
        {
            "promptName": prompt_name,
            "contentName": content_name,
            "interactive": False,
            "type": "TOOL",
            "role": "TOOL",
            "toolResultInputConfiguration": {
                "toolUseId": tool_use_id,
                "type": "TEXT",
                "textInputConfiguration": dict(_TEXT_PLAIN),
            },
        },
    )


def tool_result(*, prompt_name: str, content_name: str, content: str) -> Event:
    """``toolResult``: ``content`` must be a JSON object as a string (a plain string is rejected, §3)."""
    return _wrap("toolResult", {"promptName": prompt_name, "contentName": content_name, "content": content})


def content_end(*, prompt_name: str, content_name: str) -> Event:
    return _wrap("contentEnd", {"promptName": prompt_name, "contentName": content_name})


def prompt_end(*, prompt_name: str) -> Event:
    return _wrap("promptEnd", {"promptName": prompt_name})


def session_end() -> Event:
    return _wrap("sessionEnd", {})


def tool_result_content(result: Any) -> str:
    """Turn a tool handler's result into the JSON-object string ``toolResult.content`` needs.

    A dict is serialised; a string that already holds a JSON object is kept; anything else is wrapped
    as ``{"result": value}``, because the service rejects a content that is not a JSON object.
    """
    if isinstance(result, str):
        try:
            parsed = json.loads(result)
        except ValueError:
            return json.dumps({"result": result})
        if isinstance(parsed, dict):
            return result
        return json.dumps({"result": parsed})
    if isinstance(result, Mapping):
        return json.dumps(dict(result), default=str)
    return json.dumps({"result": result}, default=str)


def split_utf8(text: str, max_bytes: int = catalog.TEXT_INPUT_MAX_BYTES) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes, on character boundaries.

    Prefers to break after whitespace so words stay whole. One content block may carry several
    ``textInput`` events, which is how a message longer than the 1 KB limit is sent (§2.4).
    """
    if max_bytes < 4:
        raise ConfigError(f"max_bytes must be at least 4 (the longest UTF-8 character), got {max_bytes}")
    pieces: list[str] = []
    rest = text
    while len(rest.encode()) > max_bytes:
        # Largest prefix that fits, by bytes.
        cut = len(rest.encode()[:max_bytes].decode("utf-8", errors="ignore"))
        space = rest.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space + 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest or not pieces:
        pieces.append(rest)
    return pieces


# --------------------------------------------------------------------------------------------------
# Output events (service → client), §4
# --------------------------------------------------------------------------------------------------


def _ids(session_id: str, prompt_name: str, completion_id: str) -> dict[str, Any]:
    return {"sessionId": session_id, "promptName": prompt_name, "completionId": completion_id}


def completion_start(*, session_id: str, prompt_name: str, completion_id: str) -> Event:
    return _wrap("completionStart", _ids(session_id, prompt_name, completion_id))


def output_content_start(
    *,
    session_id: str,
    prompt_name: str,
    completion_id: str,
    content_id: str,
    type: str,
    role: str,
    generation_stage: str | None = None,
    sample_rate: int | None = None,
    voice_id: str | None = None,
) -> Event:
    """An output ``contentStart``. ``additionalModelFields`` is a JSON *string* (§4)."""
    body = _ids(session_id, prompt_name, completion_id)
    body.update({"contentId": content_id, "type": type, "role": role})
    if generation_stage is not None:
        body["additionalModelFields"] = json.dumps({"generationStage": generation_stage})
    if type == "TEXT":
        body["textOutputConfiguration"] = dict(_TEXT_PLAIN)
    elif type == "AUDIO":
        body["audioOutputConfiguration"] = {
            "mediaType": "audio/lpcm",
            "sampleRateHertz": sample_rate or catalog.DEFAULT_OUTPUT_RATE,
            "sampleSizeBits": catalog.SAMPLE_SIZE_BITS,
            "channelCount": catalog.CHANNEL_COUNT,
            "encoding": "base64",
            "audioType": "SPEECH",
        }
        if voice_id is not None:
            body["audioOutputConfiguration"]["voiceId"] = voice_id
    elif type == "TOOL":
        body["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
    return _wrap("contentStart", body)


def text_output(
    *, session_id: str, prompt_name: str, completion_id: str, content_id: str, role: str, content: str
) -> Event:
    body = _ids(session_id, prompt_name, completion_id)
    body.update({"contentId": content_id, "content": content, "role": role})
    return _wrap("textOutput", body)


def audio_output(
    *, session_id: str, prompt_name: str, completion_id: str, content_id: str, pcm: bytes
) -> Event:
    body = _ids(session_id, prompt_name, completion_id)
    body.update({"contentId": content_id, "content": base64.b64encode(pcm).decode()})
    return _wrap("audioOutput", body)


def tool_use(
    *,
    session_id: str,
    prompt_name: str,
    completion_id: str,
    content_id: str,
    tool_name: str,
    tool_use_id: str,
    arguments: Mapping[str, Any],
) -> Event:
    """``toolUse``: the arguments travel as a JSON string in ``content`` (§4)."""
    body = _ids(session_id, prompt_name, completion_id)
    body.update(
        {
            "contentId": content_id,
            "content": json.dumps(dict(arguments)),
            "toolName": tool_name,
            "toolUseId": tool_use_id,
        }
    )
    return _wrap("toolUse", body)


def output_content_end(
    *, session_id: str, prompt_name: str, completion_id: str, content_id: str, type: str, stop_reason: str
) -> Event:
    body = _ids(session_id, prompt_name, completion_id)
    body.update({"contentId": content_id, "type": type, "stopReason": stop_reason})
    return _wrap("contentEnd", body)


def completion_end(
    *, session_id: str, prompt_name: str, completion_id: str, stop_reason: str = "END_TURN"
) -> Event:
    body = _ids(session_id, prompt_name, completion_id)
    body["stopReason"] = stop_reason
    return _wrap("completionEnd", body)


def user_speech_start(*, session_id: str, prompt_name: str, input_audio_offset_ms: int) -> Event:
    """``userSpeechStart``: the service heard the user start speaking, ``input_audio_offset_ms`` into the
    input audio (counted from the start of the stream). No ``completionId`` (docs/PROTOCOL.md §12;
    public capture redstarh/OhMyEnglish ``N1-nova-protocol.json``, 2026)."""
    return _wrap(
        USER_SPEECH_START,
        {
            "inputAudioOffsetMs": int(input_audio_offset_ms),
            "promptName": prompt_name,
            "sessionId": session_id,
        },
    )


def user_speech_end(
    *, session_id: str, prompt_name: str, input_audio_offset_ms: int, input_audio_detection_offset_ms: int
) -> Event:
    """``userSpeechEnd``: where the speech ended in the input audio, and where the service decided it had
    (``inputAudioDetectionOffsetMs``, later by the endpointing pause). No ``completionId`` (§12)."""
    return _wrap(
        USER_SPEECH_END,
        {
            "inputAudioOffsetMs": int(input_audio_offset_ms),
            "inputAudioDetectionOffsetMs": int(input_audio_detection_offset_ms),
            "promptName": prompt_name,
            "sessionId": session_id,
        },
    )


def usage_event(
    *,
    session_id: str,
    prompt_name: str,
    completion_id: str,
    delta_input: Mapping[str, int],
    delta_output: Mapping[str, int],
    total_input: Mapping[str, int],
    total_output: Mapping[str, int],
) -> Event:
    """``usageEvent``: token counts, as deltas and running totals, speech and text apart (§4)."""

    def tokens(m: Mapping[str, int]) -> dict[str, int]:
        return {"speechTokens": int(m.get("speechTokens", 0)), "textTokens": int(m.get("textTokens", 0))}

    tin, tout = tokens(total_input), tokens(total_output)
    body = _ids(session_id, prompt_name, completion_id)
    body.update(
        {
            "details": {
                "delta": {"input": tokens(delta_input), "output": tokens(delta_output)},
                "total": {"input": tin, "output": tout},
            },
            "totalInputTokens": sum(tin.values()),
            "totalOutputTokens": sum(tout.values()),
            "totalTokens": sum(tin.values()) + sum(tout.values()),
        }
    )
    return _wrap("usageEvent", body)


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def split_event(raw: bytes | str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{"event": {NAME: BODY}}`` → ``(NAME, BODY)``; raise ProtocolError on any other shape."""
    if isinstance(raw, Mapping):
        obj: Any = raw
    else:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"event is not valid JSON: {exc}") from None
    if type(obj) is dict and len(obj) == 1:
        # Fast path (every well-formed event): {"event": {NAME: {...}}} as json.loads makes it.
        inner = obj.get("event")
        if type(inner) is dict and len(inner) == 1:
            ((name, body),) = inner.items()
            if type(body) is dict:
                return name, body
    if not isinstance(obj, Mapping) or set(obj) != {"event"} or not isinstance(obj["event"], Mapping):
        raise ProtocolError('an event must be a JSON object {"event": {NAME: {...}}}')
    inner = obj["event"]
    if len(inner) != 1:
        raise ProtocolError(f"an event must hold exactly one event name, got {sorted(inner)}")
    ((name, body),) = inner.items()
    if not isinstance(body, Mapping):
        raise ProtocolError(f"the body of {name!r} must be a JSON object")
    return str(name), dict(body)


@dataclass(frozen=True)
class OutputEvent:
    """A parsed output event: its name, its body, and the fields every consumer needs, typed."""

    name: str
    body: dict[str, Any] = field(repr=False)

    @property
    def content_id(self) -> str | None:
        value = self.body.get("contentId")
        return str(value) if value is not None else None

    @property
    def completion_id(self) -> str | None:
        value = self.body.get("completionId")
        return str(value) if value is not None else None


def generation_stage(body: Mapping[str, Any]) -> str | None:
    """The SPECULATIVE/FINAL stage of an output ``contentStart``, from ``additionalModelFields``.

    The field is a JSON *string* (§4); tolerate an object too, and a missing or unparsable field.
    """
    extra = body.get("additionalModelFields")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            return None
    if isinstance(extra, Mapping):
        stage = extra.get("generationStage")
        return str(stage) if stage is not None else None
    return None


def is_interrupted_marker(text: str) -> bool:
    """True for the ``{ "interrupted" : true }`` barge-in marker textOutput (§5), in any spacing."""
    stripped = text.strip()
    if not (stripped.startswith("{") and "interrupted" in stripped):
        return False
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("interrupted") is True


def tool_arguments(content: Any) -> dict[str, Any] | None:
    """Decode ``toolUse.content`` into a dict, undoing double encoding (a JSON string of a JSON string).

    Returns ``None`` if it does not decode to a JSON object.
    """
    value = content
    for _ in range(3):  # at most a couple of layers have been seen; bound the loop anyway
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            return None
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def decode_audio(body: Mapping[str, Any]) -> bytes:
    """The PCM bytes of an ``audioOutput``/``audioInput`` body (base64 in ``content``)."""
    content = body.get("content")
    if not isinstance(content, str):
        raise ProtocolError("audio event without a base64 string in 'content'")
    try:
        return base64.b64decode(content, validate=True)
    except ValueError as exc:
        raise ProtocolError(f"audio content is not valid base64: {exc}") from None


def parse_output(raw: bytes | str | Mapping[str, Any]) -> OutputEvent:
    """Parse one output event. Unknown names are returned as-is (passed through, not an error)."""
    name, body = split_event(raw)
    return OutputEvent(name, body)
