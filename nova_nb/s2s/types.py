"""Plain data the core API passes around: the conversation context, history, tools, output chunks."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError

Role = Literal["USER", "ASSISTANT"]
HISTORY_ROLES: tuple[Role, ...] = ("USER", "ASSISTANT")

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly assistant. The user and you will engage in a spoken dialog exchanging "
    "transcripts of a natural real-time conversation. Keep your responses short, generally two or "
    "three sentences for chatty scenarios."
)


@dataclass(frozen=True)
class HistoryMessage:
    """One earlier message replayed to the model before audio starts."""

    role: Role
    text: str

    def __post_init__(self) -> None:
        if self.role not in HISTORY_ROLES:
            raise ConfigError(f"history role {self.role!r} is not valid: use 'USER' or 'ASSISTANT'")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ConfigError(f"history message text must be a non-empty string, got {self.text!r}")

    @classmethod
    def coerce(cls, item: HistoryMessage | Mapping[str, Any] | tuple[str, str]) -> HistoryMessage:
        """Accept ``HistoryMessage``, ``{"role": ..., "text"|"content": ...}`` or ``(role, text)``."""
        if isinstance(item, HistoryMessage):
            return item
        if isinstance(item, Mapping):
            text = item.get("text", item.get("content"))
            role = str(item.get("role", "")).upper()
            return cls(role=role, text=text)  # type: ignore[arg-type]
        if isinstance(item, tuple) and len(item) == 2:
            return cls(role=str(item[0]).upper(), text=item[1])  # type: ignore[arg-type]
        raise ConfigError(
            f"a history item must be HistoryMessage, a dict with 'role' and 'text', or (role, text); "
            f"got {type(item).__name__}"
        )


ToolHandler = Callable[[dict[str, Any]], Any | Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    """A tool the model may call. ``handler(arguments) -> JSON-serialisable result`` (sync or async).

    Without a handler, ``toolUse`` events still reach ``session.events()`` and the application
    answers with ``session.send_tool_result``.
    """

    name: str
    description: str
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    handler: ToolHandler | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Tool names: letters, digits, '_' and '-'. [AWS speech-tools-bp]
        if (
            not self.name
            or not all(ch.isalnum() or ch in "_-" for ch in self.name)
            or not self.name.isascii()
        ):
            raise ConfigError(f"tool name {self.name!r} is not valid: use ASCII letters, digits, '_' and '-'")
        if not isinstance(self.description, str) or not self.description:
            raise ConfigError(f"tool {self.name!r} needs a non-empty description")
        try:
            json.dumps(self.input_schema)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"tool {self.name!r}: input_schema must be JSON-serialisable ({exc})") from None


@dataclass
class ConversationContext:
    """Who is talking and what the model knows before the first word: ids, system prompt, history, tools.

    The ids are this application's (for logs and recordings); the service issues its own session id.
    """

    session_id: str = "session-001"
    conversation_id: str = "conv-001"
    user_id: str = "user-001"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history: Sequence[HistoryMessage | Mapping[str, Any] | tuple[str, str]] = ()
    tools: Sequence[Tool] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def history_messages(self) -> list[HistoryMessage]:
        return [HistoryMessage.coerce(item) for item in self.history]


@dataclass(frozen=True)
class AudioOutputChunk:
    """A piece of the model's speech, as the seed's ``AudioOutputChunk`` plus what a player needs.

    ``audio`` is 16-bit LE mono PCM at ``sample_rate``; ``timestamp`` is ``time.monotonic()`` when the
    chunk arrived from the stream; ``is_final`` marks the last chunk of a turn (also of an interrupted
    turn, whose final chunk may be empty); ``error`` is set on a chunk that reports a stream failure.
    """

    audio: bytes
    timestamp: float
    is_final: bool = False
    error: BaseException | None = None
    sample_rate: int = 24000
    #: The service's contentId of the audio block, to relate chunks to transcript events.
    content_id: str | None = None
    interrupted: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.audio) / 2 / self.sample_rate

    def samples(self) -> Any:
        """The audio as a numpy int16 array."""
        import numpy as np

        return np.frombuffer(self.audio, dtype="<i2")
