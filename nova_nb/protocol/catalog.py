"""Facts about Amazon Nova Sonic that more than one module needs: models, voices, locales, limits.

This is the single source of truth for them: the provider validates options against it, the protocol
module checks event limits with it, and the emulator answers with it. Every fact cites the section of
the project's protocol notes (docs/PROTOCOL.md) or the AWS page it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

NOVA_SONIC_V1: Final = "amazon.nova-sonic-v1:0"
NOVA_2_SONIC: Final = "amazon.nova-2-sonic-v1:0"
DEFAULT_MODEL_ID: Final = NOVA_2_SONIC

Gender = Literal["feminine", "masculine"]


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

MODELS: Final[dict[str, Model]] = {
    NOVA_SONIC_V1: Model(
        id=NOVA_SONIC_V1,
        name="Amazon Nova Sonic",
        voices=_V1_VOICES,
        locales=("en-US", "en-GB", "fr-FR", "it-IT", "de-DE", "es-US"),
        turn_detection=False,
        cross_modal_text=False,
    ),
    NOVA_2_SONIC: Model(
        id=NOVA_2_SONIC,
        name="Amazon Nova 2 Sonic",
        voices=_V2_VOICES,
        locales=("en-US", "en-GB", "en-AU", "en-IN", "fr-FR", "it-IT", "de-DE", "es-US", "pt-BR", "hi-IN"),
        turn_detection=True,
        cross_modal_text=True,
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


def default_voice(model_id: str, language: str) -> str:
    """The default voice of ``model_id`` for ``language``."""
    if model_id == NOVA_SONIC_V1 and language in DEFAULT_VOICE_V1_OVERRIDES:
        return DEFAULT_VOICE_V1_OVERRIDES[language]
    return DEFAULT_VOICE.get(language, "matthew")
