"""Facts about Amazon Nova Sonic that more than one module needs: models, voices, locales, limits.

This is the single source of truth for them: the provider validates options against it, the protocol
module checks event limits with it, and the emulator answers with it. Every fact cites the section of
the project's protocol notes (docs/PROTOCOL.md) or the AWS page it comes from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

NOVA_SONIC_V1: Final = "amazon.nova-sonic-v1:0"
NOVA_2_SONIC: Final = "amazon.nova-2-sonic-v1:0"
#: Nova 2.5 Sonic's id has no ``-v1:0`` suffix (Pipecat 1.14, Strands 1.62, LiveKit 1.8.9; §12).
NOVA_2_5_SONIC: Final = "amazon.nova-2-5-sonic"
#: The current generation (§12): what the peer clients default to since October 2026.
DEFAULT_MODEL_ID: Final = NOVA_2_5_SONIC

Gender = Literal["feminine", "masculine"]
#: "active": offered and current; "legacy": still served, end of life announced; "retired": past its
#: end of life, calls should be expected to fail (Bedrock's model lifecycle terms).
LifecycleStatus = Literal["active", "legacy", "retired"]
LIFECYCLE_STATUSES: Final = ("active", "legacy", "retired")


@dataclass(frozen=True)
class Lifecycle:
    """Where a model is in its life, as published: status, launch, end of life, and the source.

    ``status`` is the status the source gives; :meth:`status_on` is the status on a given day (a
    legacy model past its end-of-life date is retired).
    """

    status: LifecycleStatus
    #: ISO date, or only year-month where the source gives no day ("2025-03"); None if unknown.
    launched: str | None
    end_of_life: dt.date | None
    source: str

    def status_on(self, day: dt.date | None = None) -> LifecycleStatus:
        """The status on ``day`` (default: today, UTC)."""
        day = day or dt.datetime.now(dt.UTC).date()
        if self.end_of_life is not None and day >= self.end_of_life:
            return "retired"
        return self.status


@dataclass(frozen=True)
class Voice:
    """A Nova Sonic voice: its id as sent in ``voiceId``, its locales, and whether it is polyglot."""

    id: str
    gender: Gender
    locales: tuple[str, ...]
    #: Nova 2's polyglot voices speak every supported language (AWS: sonic-language-support).
    polyglot: bool = False


@dataclass(frozen=True)
class Model:
    """A Nova Sonic model: what it accepts and which features it has."""

    id: str
    name: str
    voices: dict[str, Voice]
    locales: tuple[str, ...]
    #: Nova 2 takes ``turnDetectionConfiguration.endpointingSensitivity``; Nova 1 rejects it.
    turn_detection: bool
    #: Nova 2 accepts interactive USER TEXT blocks mid-session (cross-modal input).
    cross_modal_text: bool
    lifecycle: Lifecycle

    def status_on(self, day: dt.date | None = None) -> LifecycleStatus:
        """The model's lifecycle status on ``day`` (default: today, UTC)."""
        return self.lifecycle.status_on(day)

    def voices_for(self, language: str) -> list[str]:
        """Voice ids of this model that speak ``language`` (polyglot voices included)."""
        return [v.id for v in self.voices.values() if v.polyglot or language in v.locales]


def _voices(*voices: Voice) -> dict[str, Voice]:
    return {v.id: v for v in voices}


# Nova Sonic (v1) voices per locale. [AWS Nova 1 user guide: available-voices]
_V1_VOICES = _voices(
    Voice("tiffany", "feminine", ("en-US",)),
    Voice("matthew", "masculine", ("en-US",)),
    Voice("amy", "feminine", ("en-GB",)),
    Voice("ambre", "feminine", ("fr-FR",)),
    Voice("florian", "masculine", ("fr-FR",)),
    Voice("beatrice", "feminine", ("it-IT",)),
    Voice("lorenzo", "masculine", ("it-IT",)),
    Voice("greta", "feminine", ("de-DE",)),
    Voice("lennart", "masculine", ("de-DE",)),
    Voice("lupe", "feminine", ("es-US",)),
    Voice("carlos", "masculine", ("es-US",)),
)

# Nova 2 Sonic voiceId enum and locales. [AWS Nova 2 user guide: sonic-language-support]
# tiffany and matthew are polyglot. The locale of olivia (en-AU) is the AWS page's; peer lists disagree.
_V2_VOICES = _voices(
    Voice("tiffany", "feminine", ("en-US",), polyglot=True),
    Voice("matthew", "masculine", ("en-US",), polyglot=True),
    Voice("amy", "feminine", ("en-GB",)),
    Voice("olivia", "feminine", ("en-AU",)),
    Voice("kiara", "feminine", ("en-IN", "hi-IN")),
    Voice("arjun", "masculine", ("en-IN", "hi-IN")),
    Voice("ambre", "feminine", ("fr-FR",)),
    Voice("florian", "masculine", ("fr-FR",)),
    Voice("beatrice", "feminine", ("it-IT",)),
    Voice("lorenzo", "masculine", ("it-IT",)),
    Voice("tina", "feminine", ("de-DE",)),
    Voice("lennart", "masculine", ("de-DE",)),
    Voice("lupe", "feminine", ("es-US",)),
    Voice("carlos", "masculine", ("es-US",)),
    Voice("carolina", "feminine", ("pt-BR",)),
    Voice("leo", "masculine", ("pt-BR",)),
)

#: Nova 2's locales (AWS: sonic-language-support); Nova 2.5 has the same in the peer clients (§12).
_V2_LOCALES: Final = (
    "en-US", "en-GB", "en-AU", "en-IN", "fr-FR", "it-IT", "de-DE", "es-US", "pt-BR", "hi-IN",
)  # fmt: skip

MODELS: Final[dict[str, Model]] = {
    NOVA_SONIC_V1: Model(
        id=NOVA_SONIC_V1,
        name="Amazon Nova Sonic",
        voices=_V1_VOICES,
        locales=("en-US", "en-GB", "fr-FR", "it-IT", "de-DE", "es-US"),
        turn_detection=False,
        cross_modal_text=False,
        # Bedrock's model card: launched March 2025, Legacy, end of life 2026-09-14. After that date
        # calls should be expected to fail (§12).
        lifecycle=Lifecycle(
            status="legacy",
            launched="2025-03",
            end_of_life=dt.date(2026, 9, 14),
            source="Bedrock user guide, model-card-amazon-nova-sonic",
        ),
    ),
    NOVA_2_SONIC: Model(
        id=NOVA_2_SONIC,
        name="Amazon Nova 2 Sonic",
        voices=_V2_VOICES,
        locales=_V2_LOCALES,
        turn_detection=True,
        cross_modal_text=True,
        # No end of life announced in any source read here; the launch date is not in them either.
        lifecycle=Lifecycle(
            status="active",
            launched=None,
            end_of_life=None,
            source="AWS Nova 2 user guide (sonic-language-support); no lifecycle page read",
        ),
    ),
    # Nova 2.5 Sonic: GA 2026-10-05. Same protocol, turn-detection setting, cross-modal text, voices
    # and locales as Nova 2 in Pipecat 1.14, Strands 1.62 and LiveKit 1.8.9 (October 2026). These facts
    # come from those clients and a third-party summary (refreshed 2026-10-09): no AWS page about 2.5
    # was readable here, so re-check them against AWS's model card when it can be read (§12).
    NOVA_2_5_SONIC: Model(
        id=NOVA_2_5_SONIC,
        name="Amazon Nova 2.5 Sonic",
        voices=_V2_VOICES,
        locales=_V2_LOCALES,
        turn_detection=True,
        cross_modal_text=True,
        lifecycle=Lifecycle(
            status="active",
            launched="2026-10-05",
            end_of_life=None,
            source="third-party summary (2026-10-09); Pipecat 1.14, Strands 1.62, LiveKit 1.8.9",
        ),
    ),
}

#: Every voice of any model, by id: Nova 2's in their order, then those only Nova Sonic v1 has. A voice
#: has the same gender and native locales in every model that offers it (AWS: available-voices,
#: sonic-language-support); ``polyglot`` is Nova 2's. Emulator code derives its voice tables from this.
ALL_VOICES: Final[dict[str, Voice]] = {
    **_V2_VOICES,
    **{vid: voice for vid, voice in _V1_VOICES.items() if vid not in _V2_VOICES},
}

#: The voice chosen when none is given, per language (a native voice of that locale).
DEFAULT_VOICE: Final[dict[str, str]] = {
    "en-US": "matthew",
    "en-GB": "amy",
    "en-AU": "olivia",
    "en-IN": "kiara",
    "hi-IN": "kiara",
    "fr-FR": "ambre",
    "it-IT": "beatrice",
    "de-DE": "tina",
    "es-US": "lupe",
    "pt-BR": "carolina",
}
#: Nova 1 has no tina; its German voices are greta and lennart.
DEFAULT_VOICE_V1_OVERRIDES: Final[dict[str, str]] = {"de-DE": "greta"}

#: Amazon Polly voice names people carry over from TTS examples (the Go seed used "Brian"/"Ruth").
#: Nova Sonic rejects them. Names that are also Nova voices (Matthew, Amy, Olivia, ...) are not listed.
POLLY_VOICES: Final = frozenset(
    {
        "brian", "ruth", "joanna", "salli", "kimberly", "kendra", "ivy", "justin", "joey", "kevin",
        "stephen", "emma", "arthur", "danielle", "gregory", "nicole", "russell", "raveena", "aditi",
        "geraint", "celine", "mathieu", "lea", "remi", "hans", "marlene", "vicki", "daniel", "giorgio",
        "carla", "bianca", "adriano", "penelope", "miguel", "lucia", "enrique", "conchita", "camila",
        "vitoria", "ricardo", "thiago", "mia", "andres", "pedro", "sergio", "kajal", "aria", "ayanda",
        "niamh", "zhiyu", "takumi", "mizuki", "seoyeon", "filiz", "tatyana", "maxim",
    }
)  # fmt: skip

# Audio formats. [AWS sonic-input-events; docs/PROTOCOL.md §6]
SAMPLE_RATES: Final = (8000, 16000, 24000)
SAMPLE_SIZE_BITS: Final = 16
CHANNEL_COUNT: Final = 1
DEFAULT_INPUT_RATE: Final = 16000
DEFAULT_OUTPUT_RATE: Final = 24000

# Limits. [AWS sonic-chat-history: 40 KB of history, 1 KB per textInput]
HISTORY_MAX_BYTES: Final = 40 * 1024
TEXT_INPUT_MAX_BYTES: Final = 1024
#: One bidirectional stream lives at most 8 minutes, then ModelTimeoutException. [AWS; §1]
STREAM_MAX_SECONDS: Final = 8 * 60

# Turn detection. [AWS sonic-turn-taking] endpointingSensitivity → pause that ends a turn.
ENDPOINTING_PAUSE_S: Final[dict[str, float]] = {"HIGH": 1.5, "MEDIUM": 1.75, "LOW": 2.0}
#: This project's mapping from the seed's latency target to Nova 2's sensitivity (ours, not AWS's):
#: a low latency target wants the shortest pause, so the most sensitive end-of-turn detection.
LATENCY_TARGET_TO_ENDPOINTING: Final[dict[str, str]] = {"low": "HIGH", "medium": "MEDIUM", "high": "LOW"}

# In-stream exception types and their HTTP status. [SDK model; AWS speech-errors; §8]
STREAM_EXCEPTIONS: Final[dict[str, int]] = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "modelTimeoutException": 408,
    "serviceUnavailableException": 503,
}
#: Errors after which a new stream can continue the conversation (§8).
RECOVERABLE_EXCEPTIONS: Final = frozenset(
    {
        "internalServerException",
        "modelStreamErrorException",
        "throttlingException",
        "modelTimeoutException",
        "serviceUnavailableException",
    }
)
#: Message fragments seen in the wild that mark a recoverable failure even in a validationException.
RECOVERABLE_MESSAGES: Final = (
    "RST_STREAM",
    "System instability detected",
    "Timed out waiting for input events",
)


def models_with_status(status: LifecycleStatus, day: dt.date | None = None) -> tuple[str, ...]:
    """Ids of the models whose lifecycle status on ``day`` (default: today, UTC) is ``status``."""
    return tuple(mid for mid, m in MODELS.items() if m.status_on(day) == status)


def current_models(day: dt.date | None = None) -> tuple[str, ...]:
    """Ids of the models still active on ``day``, newest launch first (undated ones last)."""
    active = [m for m in MODELS.values() if m.status_on(day) == "active"]
    active.sort(key=lambda m: m.lifecycle.launched or "", reverse=True)
    return tuple(m.id for m in active)


def lifecycle_warning(model_id: str, day: dt.date | None = None) -> str | None:
    """What to tell a user who chose ``model_id``: None for an active model, else a sentence naming
    the status, the end-of-life date, its source and what to use instead."""
    model = MODELS[model_id]
    life = model.lifecycle
    status = life.status_on(day)
    if status == "active":
        return None
    instead = f"use {DEFAULT_MODEL_ID!r} ({MODELS[DEFAULT_MODEL_ID].name}) instead"
    eol = life.end_of_life.isoformat() if life.end_of_life is not None else "not announced"
    if status == "retired":
        return (
            f"model {model_id!r} ({model.name}) is retired: its end of life was {eol} ({life.source}). "
            f"Calls to it should be expected to fail unless your account still has it; {instead}."
        )
    return (
        f"model {model_id!r} ({model.name}) is legacy: its end of life is {eol} ({life.source}); {instead}."
    )


def default_voice(model_id: str, language: str) -> str:
    """The default voice of ``model_id`` for ``language``."""
    if model_id == NOVA_SONIC_V1 and language in DEFAULT_VOICE_V1_OVERRIDES:
        return DEFAULT_VOICE_V1_OVERRIDES[language]
    return DEFAULT_VOICE.get(language, "matthew")
