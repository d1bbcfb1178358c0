"""A cascaded pipeline you can measure: VAD endpointing → ASR → a responder → TTS, on this machine.

>>> from nova_nb import s2s
>>> provider = s2s.new_provider("cascade", latency_target="low")   # doctest: +SKIP

The seed tutorial says speech-to-speech is faster than a cascade of speech recognition, a text model
and speech synthesis. To measure a cascade at all, this provider assembles one from the local parts
the project already ships (the emulator's speech engine: Silero VAD, Moonshine tiny ASR, espeak-ng
TTS) behind the same session API as Nova, and times every stage of every turn
(:class:`~nova_nb.cascade.stages.CascadeStages`). It is a local cascade on this machine, not a model
of Nova's internals, and not a production cascade (a tiny recogniser, a rule-based responder unless
you pass one, a formant synthesizer).

Options beyond Config's fields: ``responder``, any ``callable(text) -> str`` or ``callable(text,
context) -> str`` (context: :class:`~nova_nb.emulator.responder.ReplyContext` with the system prompt
and the conversation so far), e.g. a text LLM. The latency target picks the endpointing pause, as for
Nova. The cascade has no tools.

It sits above ``s2s`` and the emulator (``tests/test_layout.py``); the registry names it by the dotted
string ``"nova_nb.cascade:create"`` and imports it on first use.
"""

from .provider import CascadeProvider, create
from .session import CascadeSession, pause_s
from .stages import STAGES, CascadeStages, CascadeTurnError, stage_rows, stages_of

__all__ = [
    "STAGES",
    "CascadeProvider",
    "CascadeSession",
    "CascadeStages",
    "CascadeTurnError",
    "create",
    "pause_s",
    "stage_rows",
    "stages_of",
]
