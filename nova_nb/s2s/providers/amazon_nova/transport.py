"""The I/O side of the amazon_nova provider: credentials, the SDK client, error mapping.

The SDK (aws-sdk-bedrock-runtime) does the HTTP/2, SigV4 and event-stream work; this module builds it
the way the bidirectional stream needs (docs/PROTOCOL.md §10): the CRT transport (the default aiohttp
transport cannot do duplex), an identity resolver backed by boto3's credential chain, and a transport
that trusts a private CA for Bedrock-compatible endpoints such as the local emulator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

from ....errors import ConfigError, StreamError
from ....protocol import catalog
from ...config import Config

if TYPE_CHECKING:
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
    from smithy_aws_core.identity import AWSCredentialsIdentity


class NoCredentialsError(ConfigError):
    """No AWS credentials could be found."""


class Boto3CredentialsResolver:
    """An SDK identity resolver backed by a boto3 session's credential chain.

    The SDK's own chain knows only environment variables and shared files, and its environment
    resolver caches forever (§10). boto3's chain also covers SSO, assume-role, containers and
    instances, and its ``RefreshableCredentials`` renew temporary credentials before they expire;
    ``get_identity`` is called for every stream the SDK opens, so each new stream gets fresh keys.
    """

    def __init__(self, profile: str | None = None) -> None:
        self._profile = profile
        self._session: Any = None

    def _frozen(self) -> tuple[Any, dt.datetime | None]:
        import boto3
        import botocore.exceptions

        if self._session is None:
            try:
                self._session = boto3.Session(profile_name=self._profile)
            except botocore.exceptions.ProfileNotFound:
                raise NoCredentialsError(
                    f"AWS profile {self._profile!r} was not found in ~/.aws/config or ~/.aws/credentials"
                ) from None
        credentials = self._session.get_credentials()
        if credentials is None:
            raise NoCredentialsError(
                "no AWS credentials found (boto3 looked at the environment, ~/.aws, SSO, container and "
                "instance roles). Set credentials, pass profile=... or aws_access_key_id=.../"
                "aws_secret_access_key=..., or use new_provider('local') for the offline emulator."
            )
        expiry = getattr(credentials, "_expiry_time", None)
        # get_frozen_credentials() refreshes RefreshableCredentials that are close to expiry.
        return credentials.get_frozen_credentials(), expiry

    async def get_identity(self, *, properties: Any = None) -> AWSCredentialsIdentity:
        from smithy_aws_core.identity import AWSCredentialsIdentity

        # boto3 may do network I/O here (SSO, STS, IMDS): keep it off the event loop.
        frozen, expiry = await asyncio.to_thread(self._frozen)
        return AWSCredentialsIdentity(
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token,
            expiration=expiry,
        )

    def __repr__(self) -> str:
        return f"Boto3CredentialsResolver(profile={self._profile!r})"


class PinnedCredentialsResolver:
    """Always the same credentials: those one stream was opened with.

    The SDK asks its identity resolver again for every *event* it signs (smithy_aws_event_stream),
    but an event's signature chains from the request's, so one stream must sign all its events with
    the key it started with. With refreshing credentials (SSO, assume-role, credential_process) a
    stream would otherwise switch keys mid-chain at a refresh and be refused. Each stream therefore
    resolves credentials once (fresh ones: boto3 refreshes keys close to expiry) and pins them;
    the next stream (a continuation at 6 minutes, or a reconnect) resolves again. It also spares a
    thread hop per event.
    """

    def __init__(self, identity: AWSCredentialsIdentity) -> None:
        self._identity = identity

    async def get_identity(self, *, properties: Any = None) -> AWSCredentialsIdentity:
        return self._identity

    def __repr__(self) -> str:
        return "PinnedCredentialsResolver(<one stream's credentials>)"


async def resolve_identity(resolver: Any, timeout: float) -> AWSCredentialsIdentity:
    """Resolve credentials once, bounded; a failure is a clear NoCredentialsError."""
    task = asyncio.ensure_future(resolver.get_identity(properties={}))
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise NoCredentialsError(f"resolving AWS credentials took more than {timeout:g} s")
    exc = task.exception()
    if isinstance(exc, ConfigError):
        raise exc
    if exc is not None:
        raise NoCredentialsError(f"could not resolve AWS credentials: {type(exc).__name__}: {exc}") from exc
    identity: AWSCredentialsIdentity = task.result()
    return identity


def pin_credentials(identity: AWSCredentialsIdentity) -> Any:
    """An SDK operation plugin that makes one call (one stream) sign with ``identity`` throughout."""

    def plugin(sdk_config: Any) -> None:
        sdk_config.aws_credentials_identity_resolver = PinnedCredentialsResolver(identity)

    return plugin


def identity_resolver(config: Config) -> Any:
    """The identity resolver for ``config``: explicit keys, a profile, or boto3's default chain."""
    if config.aws_access_key_id is not None and config.aws_secret_access_key is not None:
        from smithy_aws_core.identity import AWSCredentialsIdentity, StaticCredentialsResolver

        return StaticCredentialsResolver(
            AWSCredentialsIdentity(
                access_key_id=config.aws_access_key_id,
                secret_access_key=config.aws_secret_access_key.reveal(),
                session_token=config.aws_session_token.reveal() if config.aws_session_token else None,
            )
        )
    return Boto3CredentialsResolver(config.profile)


async def make_client(config: Config, resolver: Any = None) -> AsyncBedrockRuntimeClient:
    """An SDK client for ``config``: CRT transport (trusting ``ca_file`` if given) and credentials."""
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
    from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig

    from ._crt import NovaCRTHTTPClient, TrustingCRTHTTPClient

    transport: Any = TrustingCRTHTTPClient(config.ca_file) if config.ca_file else NovaCRTHTTPClient()
    options: dict[str, Any] = {
        "region": config.region,
        "transport": transport,
        "aws_credentials_identity_resolver": resolver if resolver is not None else identity_resolver(config),
    }
    if config.endpoint_uri is not None:
        options["endpoint_uri"] = config.endpoint_uri
    sdk_config = await AsyncBedrockRuntimeConfig.resolve(**options)
    return AsyncBedrockRuntimeClient(config=sdk_config)


def endpoint_of(config: Config) -> str:
    return config.endpoint_uri or f"https://bedrock-runtime.{config.region}.amazonaws.com"


#: HTTP errors the SDK does not model for bedrock-runtime: it raises a bare CallError whose message
#: ends with "id: ...#<Type>" and drops the service's text (seen by running it, docs/PROTOCOL.md §10).
_UNMODELED_AUTH_ERRORS = {
    "InvalidSignatureException": (
        "the request signature does not match: the secret access key is wrong for this access key id "
        "(check aws_secret_access_key, or the credentials your profile or environment provide)"
    ),
    "UnrecognizedClientException": (
        "the security token included in the request is invalid: the access key id is unknown to this "
        "endpoint (check aws_access_key_id, or which account/endpoint you are calling)"
    ),
    "ExpiredTokenException": "the security token has expired: refresh your temporary credentials",
}


def stream_error_from(exc: BaseException) -> StreamError:
    """Map an exception from the SDK (HTTP-level, in-stream or transport) to a StreamError.

    The code is the service's exception type as it appears on the wire (``validationException``...)
    for in-stream errors and the HTTP error type (``AccessDeniedException``...) otherwise.
    """
    if isinstance(exc, StreamError):
        return exc
    name = type(exc).__name__
    message = str(getattr(exc, "message", "") or exc) or name
    wire_name = name[:1].lower() + name[1:]
    if wire_name in catalog.STREAM_EXCEPTIONS:
        recoverable = wire_name in catalog.RECOVERABLE_EXCEPTIONS or any(
            fragment in message for fragment in catalog.RECOVERABLE_MESSAGES
        )
        return StreamError(message, code=wire_name, recoverable=recoverable)
    if name in ("ServiceQuotaExceededException", "ModelNotReadyException", "ModelErrorException"):
        return StreamError(message, code=name, recoverable=name != "ModelErrorException")
    if name == "CallError":
        for error_type, explanation in _UNMODELED_AUTH_ERRORS.items():
            if f"#{error_type}" in message:
                return StreamError(explanation, code=error_type, recoverable=False)
    if name.endswith("Exception") and hasattr(exc, "fault"):
        # HTTP-level modeled errors (AccessDenied, ResourceNotFound, ...): the caller must act.
        return StreamError(message, code=name, recoverable=False)
    if name == "AwsCrtError":
        crt_name = getattr(exc, "name", "")
        return StreamError(f"{crt_name}: {message}", code="ConnectionError", recoverable=True)
    return StreamError(f"{name}: {message}", code=name, recoverable=False)
