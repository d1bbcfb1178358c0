"""Provider configuration: one frozen dataclass, validated on construction, secrets hidden.

``default_config()`` gives the defaults; ``new_provider(name, config, **options)`` overrides fields with
keyword options. Every invalid value raises :class:`~nova_nb.errors.ConfigError` naming the field, the
value and what is valid; unknown option names get the list of known ones (and a close match).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, get_args

from ..errors import ConfigError, NovaNbWarning, UsageError, one_of
from ..protocol import catalog

LatencyTarget = Literal["low", "medium", "high"]
LATENCY_TARGETS: Final = get_args(LatencyTarget)

#: Frame durations the session may re-frame input audio to. AWS suggests ~32 ms; 20 ms is the WebRTC
#: norm. Both are integral sample counts at 8, 16 and 24 kHz, as is every value here.
FRAME_MS_CHOICES: Final = (10, 20, 30, 32, 40, 50, 60, 80, 100)


class Secret:
    """A string that never shows itself in ``repr``, ``str``, f-strings, logs or tracebacks.

    ``reveal()`` returns the value; only the transport calls it, at signing time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ConfigError("a secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        # Pickling would write the value out; a config that needs to travel should carry a profile name.
        raise UsageError(
            "Secret values cannot be pickled: pass a profile name (profile=...) to a config that must travel"
        )


def _mask_access_key(key: str | None) -> str | None:
    # An access key id is not secret on its own, but showing all of it helps nobody; AWS consoles
    # show the last four characters, and so do we.
    if key is None:
        return None
    return "…" + key[-4:] if len(key) > 4 else "…"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything a provider needs to open sessions. Frozen: use :meth:`replace` to change fields.

    Credentials: by default boto3's chain (environment, shared files, SSO, assume-role, container,
    instance), refreshed when temporary; or ``profile``; or explicit ``aws_access_key_id`` +
    ``aws_secret_access_key`` (+ ``aws_session_token``). Bedrock API keys cannot call the
    bidirectional stream, so there is no ``api_key``.
    """

    provider: str = "amazon_nova"
    region: str = "us-east-1"
    #: Default: the current generation, Nova 2.5 Sonic (docs/PROTOCOL.md §12). A legacy or retired
    #: model is accepted with a NovaNbWarning (an account may still reach it), never refused here.
    model_id: str = catalog.DEFAULT_MODEL_ID
    #: Nova Sonic detects the spoken language itself; ``language`` picks the default voice and is
    #: checked against the voice's locales (polyglot voices speak all of the model's languages).
    language: str = "en-US"
    #: ``None`` = the model's default voice for ``language``.
    voice_id: str | None = None
    #: low/medium/high → Nova 2 endpointingSensitivity HIGH/MEDIUM/LOW (this project's mapping).
    latency_target: LatencyTarget = "medium"
    input_sample_rate: int = catalog.DEFAULT_INPUT_RATE
    output_sample_rate: int = catalog.DEFAULT_OUTPUT_RATE
    #: Input audio is re-framed to this many milliseconds per audioInput event (AWS suggests ~32 ms).
    frame_ms: int = 32
    max_tokens: int = 1024
    top_p: float = 0.9
    temperature: float = 0.7
    #: Another Bedrock-compatible endpoint (e.g. the local emulator), and the CA that signed its cert.
    endpoint_uri: str | None = None
    ca_file: str | None = None
    profile: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: Secret | None = field(default=None, repr=False)
    aws_session_token: Secret | None = field(default=None, repr=False)
    #: Bounds on waits, in seconds: opening a stream, and closing it (close never takes longer).
    open_timeout_s: float = 15.0
    close_timeout_s: float = 2.0
    #: Continue past the 8-minute stream limit: from this age on, when the assistant next starts
    #: speaking, a new stream is opened in the background with the history and the last ``replay_s``
    #: of user audio, and takes over (docs/PROTOCOL.md §9).
    continuation: bool = True
    continuation_after_s: float = 6 * 60
    #: Reconnect after recoverable errors and silent resets, with the same replay; give up after this
    #: many failures in a row (a stream that stays up ``RECONNECT_HEALTHY_S`` resets the count).
    #: ``reconnect_attempts`` also bounds the retries of a throttled or busy first open
    #: (``start_streaming``), whatever ``reconnect`` says: 0 fails at the first refusal.
    reconnect: bool = True
    reconnect_attempts: int = 5
    replay_s: float = 3.0
    #: Output audio a consumer has not taken yet, in seconds, before the oldest is dropped (with an
    #: AudioDropped event): a consumer that stops reading cannot grow memory without limit.
    output_buffer_s: float = 120.0

    def __post_init__(self) -> None:
        # Accept plain strings for secrets, store them wrapped so they can never print.
        for name in ("aws_secret_access_key", "aws_session_token"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value))
        if (
            isinstance(self.voice_id, str)
            and self.model_id in catalog.MODELS
            and self.language in self.model.locales
        ):
            # Validate with the caller's spelling (errors quote it), then store the wire form.
            object.__setattr__(self, "voice_id", validate_voice(self.model_id, self.language, self.voice_id))
        _validate(self)
        _warn_lifecycle(self.model_id)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            if f.repr:
                shown.append(f"{f.name}={getattr(self, f.name)!r}")
        shown.append(f"credentials={self.credentials_source!r}")
        return f"Config({', '.join(shown)})"

    __str__ = __repr__

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated; unknown names raise ConfigError)."""
        check_option_names(changes, valid=option_names(), what="Config field")
        return dataclasses.replace(self, **changes)

    @property
    def credentials_source(self) -> str:
        """Where credentials come from, for display: never the secret itself."""
        if self.aws_access_key_id is not None:
            token = " + session token" if self.aws_session_token is not None else ""
            return f"explicit keys (access key {_mask_access_key(self.aws_access_key_id)}{token})"
        if self.profile is not None:
            return f"profile {self.profile!r}"
        return "boto3 default chain"

    @property
    def model(self) -> catalog.Model:
        return catalog.MODELS[self.model_id]

    @property
    def resolved_voice_id(self) -> str:
        """The voice to use: ``voice_id``, or the model's default for ``language``."""
        return self.voice_id or catalog.default_voice(self.model_id, self.language)

    @property
    def endpointing_sensitivity(self) -> str | None:
        """Nova 2's endpointingSensitivity for ``latency_target``; ``None`` for Nova 1."""
        if not self.model.turn_detection:
            return None
        return catalog.LATENCY_TARGET_TO_ENDPOINTING[self.latency_target]

    @property
    def input_frame_samples(self) -> int:
        return self.input_sample_rate * self.frame_ms // 1000


def default_config() -> Config:
    """The defaults: Nova 2.5 Sonic in us-east-1, en-US, medium latency target, 16 kHz in, 24 kHz out."""
    return Config()


def option_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Config))


def check_option_names(options: dict[str, Any], *, valid: tuple[str, ...], what: str = "option") -> None:
    """Raise ConfigError for any name not in ``valid``, listing the valid ones."""
    for name in options:
        if name in valid:
            continue
        if name == "api_key":
            raise ConfigError(
                "api_key is not supported: Bedrock API keys (bearer tokens) cannot call "
                "InvokeModelWithBidirectionalStream, which Nova Sonic needs; only SigV4 credentials can. "
                "Use the boto3 default chain (environment, ~/.aws, SSO, roles; the default), "
                "profile='name', or aws_access_key_id=... with aws_secret_access_key=... "
                "(and aws_session_token=... for temporary credentials)."
            )
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {what} {name!r}.{hint} Valid: {', '.join(sorted(valid))}.")


def validate_voice(model_id: str, language: str, voice_id: str) -> str:
    """Return the normalised voice id, or raise ConfigError saying why and listing valid voices."""
    model = catalog.MODELS[model_id]
    vid = voice_id.lower()
    for_language = model.voices_for(language)
    if vid not in model.voices:
        if vid in catalog.POLLY_VOICES:
            raise ConfigError(
                f"voice {voice_id!r} is an Amazon Polly voice, not a Nova Sonic voice. "
                f"{model.name} voices for {language}: {one_of(for_language)}; "
                f"all its voices: {', '.join(model.voices)}."
            )
        raise ConfigError(
            f"unknown voice {voice_id!r} for {model.name}. Voices for {language}: {one_of(for_language)}; "
            f"all its voices: {', '.join(model.voices)}."
        )
    if vid not in for_language:
        voice = model.voices[vid]
        raise ConfigError(
            f"voice {vid!r} speaks {', '.join(voice.locales)}, not {language}. "
            f"{model.name} voices for {language}: {one_of(for_language)}."
        )
    return vid


#: Frames the lifecycle warning looks past to point at the caller's line: nova_nb's own, dataclasses'
#: ``replace`` and the generated ``__init__`` (whose code has no file). Walked by hand because
#: ``warnings.warn(skip_file_prefixes=...)`` does not skip the ``<string>`` frame on Python 3.12.1.
_WARNING_SKIP: Final = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.path.abspath(dataclasses.__file__),
    "<string>",
)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning from :func:`_warn_lifecycle` name the user's line."""
    level, frame = 2, sys._getframe(2)  # 1 = _warn_lifecycle, 2 = its caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_WARNING_SKIP):
        frame, level = frame.f_back, level + 1
    return level


def _warn_lifecycle(model_id: str) -> None:
    """Warn once per Config created with a legacy or retired model (catalog lifecycle, §12)."""
    message = catalog.lifecycle_warning(model_id)
    if message is not None:
        warnings.warn(message, NovaNbWarning, stacklevel=_caller_stacklevel())


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate(c: Config) -> None:
    def bad(name: str, valid: str) -> ConfigError:
        return ConfigError(f"invalid {name}={getattr(c, name)!r}: {valid}")

    if not isinstance(c.provider, str) or not c.provider:
        raise bad("provider", "a registered provider name (see s2s.providers())")
    if c.model_id not in catalog.MODELS:
        raise bad("model_id", f"use {one_of(catalog.MODELS)}")
    model = c.model
    if not isinstance(c.region, str) or not c.region or any(ch.isspace() for ch in c.region):
        raise bad("region", "an AWS region name such as 'us-east-1'")
    if c.language not in model.locales:
        raise bad("language", f"{model.name} supports {one_of(model.locales)}")
    if c.voice_id is not None:
        if not isinstance(c.voice_id, str):
            raise bad("voice_id", "a voice id string")
        validate_voice(c.model_id, c.language, c.voice_id)
    if c.latency_target not in LATENCY_TARGETS:
        raise bad("latency_target", f"use {one_of(LATENCY_TARGETS)}")
    for name in ("input_sample_rate", "output_sample_rate"):
        if getattr(c, name) not in catalog.SAMPLE_RATES or isinstance(getattr(c, name), bool):
            raise bad(name, f"Nova Sonic takes {one_of(catalog.SAMPLE_RATES)} Hz")
    if c.frame_ms not in FRAME_MS_CHOICES or isinstance(c.frame_ms, bool):
        raise bad("frame_ms", f"use one of {one_of(FRAME_MS_CHOICES)} milliseconds")
    if not isinstance(c.max_tokens, int) or isinstance(c.max_tokens, bool) or not 1 <= c.max_tokens <= 10_000:
        raise bad("max_tokens", "an integer from 1 to 10000")
    if not _is_number(c.top_p) or not 0.0 <= c.top_p <= 1.0:
        raise bad("top_p", "a number from 0.0 to 1.0")
    if not _is_number(c.temperature) or not 0.0 <= c.temperature <= 1.0:
        raise bad("temperature", "a number from 0.0 to 1.0")
    if c.endpoint_uri is not None and (
        not isinstance(c.endpoint_uri, str) or not c.endpoint_uri.startswith("https://")
    ):
        raise bad(
            "endpoint_uri",
            "an https:// URI (the SDK's CRT client speaks HTTP/2 only over TLS; plain http:// cannot stream)",
        )
    if c.ca_file is not None and not isinstance(c.ca_file, str):
        raise ConfigError(f"invalid ca_file: a path string to a PEM CA certificate, got {type(c.ca_file)}")
    if c.profile is not None and (not isinstance(c.profile, str) or not c.profile):
        raise bad("profile", "a profile name from ~/.aws/config")
    has_key = c.aws_access_key_id is not None
    has_secret = c.aws_secret_access_key is not None
    if has_key != has_secret:
        raise ConfigError(
            "aws_access_key_id and aws_secret_access_key must be given together "
            f"(got {'the key id' if has_key else 'the secret'} only)"
        )
    if c.aws_session_token is not None and not has_key:
        raise ConfigError("aws_session_token needs aws_access_key_id and aws_secret_access_key too")
    if has_key and c.profile is not None:
        raise ConfigError(
            "give either profile=... or explicit aws_access_key_id/aws_secret_access_key, not both"
        )
    if has_key and (not isinstance(c.aws_access_key_id, str) or not c.aws_access_key_id.strip()):
        raise ConfigError("invalid aws_access_key_id: a non-empty string")
    for name in ("aws_secret_access_key", "aws_session_token"):
        value = getattr(c, name)
        if value is not None and not isinstance(value, Secret):
            raise ConfigError(f"invalid {name}: a string")
    for name in ("open_timeout_s", "close_timeout_s"):
        value = getattr(c, name)
        if not _is_number(value) or not 0 < value <= 600:
            raise bad(name, "a number of seconds, more than 0 and at most 600")
    for name in ("continuation", "reconnect"):
        if not isinstance(getattr(c, name), bool):
            raise bad(name, "True or False")
    if not _is_number(c.continuation_after_s) or not 1 <= c.continuation_after_s <= 7.5 * 60:
        raise bad("continuation_after_s", "seconds from 1 to 450 (a stream lives at most 480 s)")
    if (
        not isinstance(c.reconnect_attempts, int)
        or isinstance(c.reconnect_attempts, bool)
        or not 0 <= c.reconnect_attempts <= 50
    ):
        raise bad("reconnect_attempts", "an integer from 0 to 50")
    if not _is_number(c.replay_s) or not 0 <= c.replay_s <= 10:
        raise bad("replay_s", "seconds from 0 to 10")
    if not _is_number(c.output_buffer_s) or not 1 <= c.output_buffer_s <= 3600:
        raise bad("output_buffer_s", "seconds from 1 to 3600")
