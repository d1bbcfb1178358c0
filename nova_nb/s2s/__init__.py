"""The provider-agnostic speech-to-speech API: ``from nova_nb import s2s``.

>>> from nova_nb import s2s
>>> provider = s2s.new_provider("local")            # doctest: +SKIP
>>> ctx = s2s.ConversationContext(system_prompt="You are a friendly assistant.")
"""

from ..errors import (
    AudioFormatError,
    ConfigError,
    NovaNbError,
    ProtocolError,
    SessionClosedError,
    StreamError,
)
from . import events

# The subpackage ``providers`` must be imported before the function ``providers`` is bound below:
# importing a subpackage sets it as an attribute of its parent, so a later first import of
# ``nova_nb.s2s.providers.amazon_nova`` (the registry does that lazily) would replace the function.
from . import providers as _providers_package  # noqa: F401  (imported for that side effect)
from .choice import PROVIDER_ENV, choose_provider
from .config import LATENCY_TARGETS, Config, Secret, default_config
from .registry import new_provider, providers, register_provider
from .session import S2SProvider, S2SSession, StreamingS2SProvider
from .types import AudioOutputChunk, ConversationContext, HistoryMessage, Tool

__all__ = [
    "LATENCY_TARGETS",
    "PROVIDER_ENV",
    "AudioFormatError",
    "AudioOutputChunk",
    "Config",
    "ConfigError",
    "ConversationContext",
    "HistoryMessage",
    "NovaNbError",
    "ProtocolError",
    "S2SProvider",
    "S2SSession",
    "Secret",
    "SessionClosedError",
    "StreamError",
    "StreamingS2SProvider",
    "Tool",
    "choose_provider",
    "default_config",
    "events",
    "new_provider",
    "providers",
    "register_provider",
]
