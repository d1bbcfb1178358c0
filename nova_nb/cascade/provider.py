"""The ``cascade`` provider: a client-side STT → responder → TTS pipeline behind the session API."""

from __future__ import annotations

from ..emulator import speech
from ..emulator.responder import Responder, rule_based_reply
from ..errors import ConfigError
from ..s2s.config import Config
from ..s2s.session import StreamingS2SProvider
from ..s2s.types import ConversationContext
from .session import CascadeSession


class CascadeProvider(StreamingS2SProvider):
    """Opens :class:`~nova_nb.cascade.session.CascadeSession` s. Built by ``s2s.new_provider("cascade")``.

    ``responder`` answers each turn's text (default: the emulator's rule-based responder). Models are
    loaded when the provider is made, so the first turn does not pay for loading them.
    """

    name = "cascade"

    def __init__(self, config: Config, responder: Responder = rule_based_reply) -> None:
        self.config = config
        self.responder = responder
        speech.warm_up()
        self._brain = speech.SpeechBrain(responder)  # the emulator's shared Moonshine and espeak-ng
        self.sessions_opened = 0

    async def start_streaming(
        self,
        context: ConversationContext | None = None,
        *,
        voice_id: str | None = None,
        enable_streaming: bool = True,
    ) -> CascadeSession:
        context, voice = self._start_arguments(self.config, context, voice_id, enable_streaming)
        if context.tools:
            raise ConfigError(
                "the cascade provider has no tools (its responder is a plain callable(text[, context]) "
                "-> str): give a context without tools, or use 'local' or 'amazon_nova' for tool use"
            )
        session = CascadeSession(
            self.config,
            context=context,
            voice_id=voice,
            responder=self.responder,
            brain=self._brain,
            enable_streaming=enable_streaming,
        )
        self.sessions_opened += 1
        return session


def create(config: Config, responder: Responder | None = None) -> CascadeProvider:
    """The registry's factory for ``cascade``."""
    if responder is not None and not callable(responder):
        raise ConfigError("responder must be a callable(text) -> str or callable(text, context) -> str")
    if config.endpoint_uri is not None or config.aws_access_key_id is not None or config.profile is not None:
        raise ConfigError(
            "the cascade provider runs locally and calls no endpoint: endpoint_uri, profile and AWS "
            "credentials do not apply to it"
        )
    return CascadeProvider(config, responder or rule_based_reply)
