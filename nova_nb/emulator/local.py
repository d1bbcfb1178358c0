"""The ``local`` provider: the real ``amazon_nova`` provider bound to an in-process emulator.

No AWS account needed. ``new_provider("local")`` starts a background emulator (or reuses the one
already running for the same engine and region) on 127.0.0.1 with a CA and credentials made for
this run, and returns an :class:`~nova_nb.s2s.providers.amazon_nova.provider.AmazonNovaProvider`
configured for it, so every byte goes through the same SDK, HTTP/2, SigV4 and event-stream code as
with the real service.

It lives on the emulator's side of the house: ``nova_nb.s2s`` never imports the emulator; its
registry names this module by a dotted string (``"nova_nb.emulator.local:create"``) and imports it
the first time someone asks for ``"local"``.

Options beyond Config's fields:

``engine``
    what the emulated model does: ``"speech"`` (Silero VAD, Moonshine ASR, a rule-based reply,
    espeak-ng TTS — all shipped in their packages), ``"scripted"`` (no speech models; deterministic,
    instant), ``"auto"`` (the default: speech when its models load here, else scripted, with a
    warning), or a :class:`~nova_nb.emulator.conversation.ConversationOptions` (own brain, responder,
    faults, ...), which gets an emulator of its own.
``emulator``
    an already running :class:`~nova_nb.emulator.BackgroundEmulator` to talk to.
``responder``
    what the emulated model answers: any ``callable(text) -> str`` or ``callable(text, context) ->
    str`` (context: system prompt, history, turn), e.g. a text LLM. Gets an emulator of its own.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ConfigError, one_of
from ..s2s.config import Config
from ..s2s.providers.amazon_nova.provider import AmazonNovaProvider
from .background import BackgroundEmulator
from .conversation import ConversationOptions, ScriptedBrain, admission_for, conversation_handler
from .responder import Responder


def speech_options(responder: Responder | None = None, **overrides: Any) -> ConversationOptions:
    """ConversationOptions for the speech engine (models are loaded now, so the first turn is quick)."""
    from . import speech

    speech.warm_up()
    brain: Any = speech.SpeechBrain if responder is None else (lambda: speech.SpeechBrain(responder))
    return ConversationOptions(brain_factory=brain, detector_factory=speech.SileroTurnDetector, **overrides)


ENGINES: dict[str, Any] = {
    "scripted": lambda: ConversationOptions(brain_factory=ScriptedBrain),
    "speech": speech_options,
}
DEFAULT_ENGINE = "auto"


def resolve_engine(engine: str) -> str:
    """``"auto"`` → ``"speech"`` if its models can be loaded here, else ``"scripted"`` (with a warning)."""
    if engine != "auto":
        return engine
    try:
        from . import speech

        speech.warm_up()
    except Exception as exc:  # e.g. no Moonshine wheel for this platform
        import warnings

        warnings.warn(
            f"nova_nb: the local speech engine is unavailable here ({exc}); using the scripted engine",
            stacklevel=3,
        )
        return "scripted"
    return "speech"


_lock = threading.Lock()
_shared: dict[tuple[str, str], BackgroundEmulator] = {}


class LocalProvider(AmazonNovaProvider):
    """``amazon_nova`` talking to a local emulator. ``emulator`` is the server it talks to."""

    name = "local"

    def __init__(self, config: Config, emulator: BackgroundEmulator) -> None:
        super().__init__(config)
        self.emulator = emulator


def shared_emulator(engine: str = DEFAULT_ENGINE, region: str = "us-east-1") -> BackgroundEmulator:
    """The process-wide emulator for ``engine`` and ``region``, started on first use."""
    with _lock:
        emulator = _shared.get((engine, region))
        if emulator is None or not emulator.running:
            emulator = BackgroundEmulator(
                handler=conversation_handler(ENGINES[engine]()), region=region
            ).start()
            _shared[(engine, region)] = emulator
        return emulator


def create(
    config: Config,
    engine: str | ConversationOptions = DEFAULT_ENGINE,
    emulator: BackgroundEmulator | None = None,
    responder: Responder | None = None,
) -> LocalProvider:
    """The registry's factory for ``local``."""
    if responder is not None:
        if not callable(responder):
            raise ConfigError("responder must be a callable(text) -> str or callable(text, context) -> str")
        if emulator is not None or isinstance(engine, ConversationOptions):
            raise ConfigError("give responder= or engine=ConversationOptions/emulator=, not both")
        resolved = resolve_engine(engine)
        if resolved == "speech":
            engine = speech_options(responder)
        elif resolved == "scripted":
            engine = ConversationOptions(brain_factory=lambda: ScriptedBrain(responder))
        else:
            raise ConfigError(f"unknown local engine {engine!r}: use {one_of(['auto', *ENGINES])}")
    if config.endpoint_uri is not None or config.aws_access_key_id is not None or config.profile is not None:
        raise ConfigError(
            "the local provider runs its own emulator with its own endpoint and credentials; "
            "for another endpoint use new_provider('amazon_nova', endpoint_uri=..., ca_file=...)"
        )
    if emulator is None:
        if isinstance(engine, ConversationOptions):
            emulator = BackgroundEmulator(
                handler=conversation_handler(engine), admission=admission_for(engine), region=config.region
            ).start()
        elif engine == "auto" or engine in ENGINES:
            emulator = shared_emulator(resolve_engine(engine), config.region)
        else:
            raise ConfigError(
                f"unknown local engine {engine!r}: use {one_of(['auto', *ENGINES])} "
                "or a ConversationOptions instance"
            )
    elif not isinstance(emulator, BackgroundEmulator):
        raise ConfigError(
            f"emulator must be a nova_nb.emulator.BackgroundEmulator, got {type(emulator).__name__}"
        )
    creds = emulator.credentials
    bound = config.replace(
        endpoint_uri=emulator.endpoint_uri,
        ca_file=str(emulator.ca_file),
        region=emulator.region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )
    return LocalProvider(bound, emulator)
