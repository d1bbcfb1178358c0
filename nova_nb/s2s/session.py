"""The provider and session contract (the seed's interfaces, as abstract classes).

A provider opens sessions; a *streaming* provider opens bidirectional ones. As in the seed, not every
provider can stream, so code checks ``isinstance(provider, StreamingS2SProvider)`` where the Go
version used a type assertion.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

import numpy as np

from . import events as ev
from .config import Config
from .types import AudioOutputChunk, ConversationContext


class S2SProvider(abc.ABC):
    """A speech-to-speech provider built by :func:`nova_nb.s2s.new_provider`."""

    name: str
    config: Config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.config!r}>"


class S2SSession(abc.ABC):
    """One live conversation. Use as ``async with await provider.start_streaming(ctx) as session``."""

    @abc.abstractmethod
    async def send_audio(
        self, audio: bytes | np.ndarray, *, sample_rate: int | None = None, pace: bool = False
    ) -> None:
        """Send user audio: 16-bit LE mono PCM bytes at the input rate, or a numpy array (int16 or
        float32, mono or stereo, any rate given ``sample_rate``). Any chunk size; re-framed.
        ``pace=True`` sends no faster than real time."""

    @abc.abstractmethod
    async def send_text(self, text: str) -> None:
        """Cross-modal text input: typed text the model answers as if spoken (Nova 2)."""

    @abc.abstractmethod
    async def send_tool_result(self, tool_use_id: str, result: Any) -> None:
        """Answer a ``toolUse`` event with a JSON-serialisable result."""

    @abc.abstractmethod
    def receive_audio(self) -> AsyncIterator[AudioOutputChunk]:
        """The model's speech as :class:`AudioOutputChunk`, ending when the session ends."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[ev.Event]:
        """Every typed event of the session, ending when the session ends."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Send the closing sequence and release the stream. Bounded in time; idempotent."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...

    @abc.abstractmethod
    def add_listener(self, callback: Callable[[ev.Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event on the session's loop; returns a remover."""

    @abc.abstractmethod
    def add_input_listener(self, callback: Callable[[bytes, float, int], None]) -> Callable[[], None]:
        """Call ``callback(frame, timestamp, sample_rate)`` for every input frame sent."""

    @abc.abstractmethod
    def report_playback(
        self, content_id: str, played_s: float, *, final: bool = False, at: float | None = None
    ) -> None:
        """Tell the session how much of a reply a player has played (seconds)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class StreamingS2SProvider(S2SProvider):
    """A provider that opens bidirectional streaming sessions."""

    @abc.abstractmethod
    async def start_streaming(
        self,
        context: ConversationContext | None = None,
        *,
        voice_id: str | None = None,
        enable_streaming: bool = True,
    ) -> S2SSession:
        """Open a session. ``voice_id`` overrides the config's voice. With ``enable_streaming=False``
        ``receive_audio()`` yields one chunk per turn (the whole reply) instead of chunks as they arrive."""
