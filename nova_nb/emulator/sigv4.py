"""Verify AWS Signature Version 4 on a request and on each event of its input stream, sans-I/O.

The emulator checks what the real SDK sends exactly as the service would, so a client that signs
wrongly fails here as it would against AWS. The algorithm is the one the SDK applies
(aws_sdk_signers/signers.py, ``AsyncSigV4Signer`` and ``AsyncEventSigner``); § numbers are sections
of docs/PROTOCOL.md:

* Request: ``Authorization: AWS4-HMAC-SHA256 Credential=<key>/<YYYYMMDD>/<region>/bedrock/aws4_request,
  SignedHeaders=<a;b;c>, Signature=<hex>``. The canonical request is method, canonical path, canonical
  query, canonical headers, signed header names and the payload hash, which for an event stream is the
  literal ``STREAMING-AWS4-HMAC-SHA256-EVENTS`` sent in ``x-amz-content-sha256`` (§10).
* The path arrives already percent-encoded (``amazon.nova-sonic-v1%3A0``) with a trailing ``?`` from
  the CRT client (§10); the SDK signs ``quote(path, safe="/")`` of that encoded path, so ``%`` is encoded
  once more (``%253A``). That double encoding is what SigV4 prescribes for every service but S3.
* Events: each input DATA message carries ``:date`` and ``:chunk-signature`` (32 raw bytes); the chain
  starts from the request's ``Signature=`` and each string to sign is ``AWS4-HMAC-SHA256-PAYLOAD``,
  timestamp, scope, previous signature (hex), sha256 of the encoded ``:date`` header, sha256 of the
  payload (§10). The end of input is a signed message with an empty payload.

Signatures are compared in constant time. Errors name what failed through :class:`AuthFailure` and
carry the error type and message the service answers with; no message ever contains a secret.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final
from urllib.parse import parse_qsl, quote

from nova_nb.emulator.eventstream import CHUNK_SIGNATURE, DATE, Message, encode_headers
from nova_nb.errors import NovaNbError

ALGORITHM: Final = "AWS4-HMAC-SHA256"
EVENT_ALGORITHM: Final = "AWS4-HMAC-SHA256-PAYLOAD"
#: The payload hash the SDK signs (and sends in x-amz-content-sha256) for an event-stream body.
STREAMING_EVENTS_PAYLOAD: Final = "STREAMING-AWS4-HMAC-SHA256-EVENTS"
SCOPE_TERMINATOR: Final = "aws4_request"
#: SigV4 signing name of Bedrock runtime (§1).
BEDROCK_SERVICE: Final = "bedrock"
TIMESTAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
#: AWS rejects signatures dated more than 15 minutes from its clock ("Signature expired").
MAX_CLOCK_SKEW: Final = datetime.timedelta(minutes=15)
#: HMAC-SHA256 output, the length of ``:chunk-signature``.
EVENT_SIGNATURE_LENGTH: Final = 32

#: Length of a generated access key id, as AWS's (20 characters).
ACCESS_KEY_ID_LENGTH: Final = 20
#: Prefix of generated access key ids. It makes them obviously fake and can never match the
#: pattern of real keys, ``(AKIA|ASIA)[0-9A-Z]{16}``, that secret scanners look for.
FAKE_ACCESS_KEY_PREFIX: Final = "NOVANB"
SECRET_ACCESS_KEY_LENGTH: Final = 40

# The service's answers for authentication failures (error type in x-amzn-errortype, then message).
MISSING_TOKEN: Final = ("MissingAuthenticationTokenException", "Missing Authentication Token")
UNRECOGNIZED_CLIENT: Final = (
    "UnrecognizedClientException",
    "The security token included in the request is invalid.",
)
SIGNATURE_MISMATCH_MESSAGE: Final = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_SIGNATURE: Final = "InvalidSignatureException"
INCOMPLETE_SIGNATURE: Final = "IncompleteSignatureException"


class AuthFailure(Enum):
    """What made a signature check fail."""

    MISSING_AUTHENTICATION = "no Authorization header"
    MALFORMED_AUTHORIZATION = "malformed Authorization header"
    UNKNOWN_ACCESS_KEY = "unknown access key id"
    INVALID_SESSION_TOKEN = "session token does not match"
    WRONG_SCOPE = "credential scope does not match"
    MISSING_SIGNED_HEADER = "a required or signed header is missing"
    EXPIRED = "signature date too far in the past"
    NOT_YET_VALID = "signature date too far in the future"
    SIGNATURE_MISMATCH = "request signature does not match"
    MALFORMED_EVENT = "event message lacks a valid :date or :chunk-signature"
    BAD_EVENT_SIGNATURE = "event signature breaks the chain"
    CHAIN_FINISHED = "event after the final empty message"


class SignatureError(NovaNbError):
    """A request or event whose signature does not verify.

    ``failure`` says what failed; ``error_type`` and ``service_message`` are what the service answers
    (``x-amzn-errortype`` and the JSON ``message``). ``str()`` gives the failure and a detail that
    names the offending value but never a secret.
    """

    http_status: Final = 403

    def __init__(self, failure: AuthFailure, detail: str, *, error_type: str, service_message: str) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure
        self.detail = detail
        self.error_type = error_type
        self.service_message = service_message


@dataclass(frozen=True)
class EmulatorCredentials:
    """The credentials the emulator accepts. ``repr`` shows the access key id only."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    @classmethod
    def generate(cls) -> EmulatorCredentials:
        """Random credentials for one run, with an access key id that is clearly not AWS's."""
        alphabet = string.ascii_uppercase + string.digits
        suffix = "".join(
            secrets.choice(alphabet) for _ in range(ACCESS_KEY_ID_LENGTH - len(FAKE_ACCESS_KEY_PREFIX))
        )
        secret_alphabet = string.ascii_letters + string.digits + "+/"
        secret = "".join(secrets.choice(secret_alphabet) for _ in range(SECRET_ACCESS_KEY_LENGTH))
        return cls(access_key_id=FAKE_ACCESS_KEY_PREFIX + suffix, secret_access_key=secret)

    def __repr__(self) -> str:
        token = "None" if self.session_token is None else "'<hidden>'"
        return (
            f"EmulatorCredentials(access_key_id={self.access_key_id!r}, "
            f"secret_access_key='<hidden>', session_token={token})"
        )


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")


def parse_authorization(value: str) -> Authorization:
    """Parse an ``Authorization`` header of the SigV4 form; raise :class:`SignatureError` if malformed."""

    def malformed(detail: str, message: str) -> SignatureError:
        return SignatureError(
            AuthFailure.MALFORMED_AUTHORIZATION,
            detail,
            error_type=INCOMPLETE_SIGNATURE,
            service_message=message,
        )

    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise malformed(
            f"algorithm is {algorithm!r}, expected {ALGORITHM!r}",
            "Authorization header requires 'Credential' parameter. Authorization header requires "
            "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.",
        )
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, param = part.strip().partition("=")
        if sep:
            params[name] = param
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not params.get(required):
            raise malformed(
                f"{required}= is missing", f"Authorization header requires '{required}' parameter."
            )
    credential = params["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise malformed(
            "Credential= is not <key>/<date>/<region>/<service>/aws4_request",
            "Credential should be scoped to a valid region, service and date: "
            "<key>/<YYYYMMDD>/<region>/<service>/aws4_request.",
        )
    signature = params["Signature"]
    if not _HEX_SIGNATURE.fullmatch(signature):
        raise malformed("Signature= is not 64 lowercase hex digits", SIGNATURE_MISMATCH_MESSAGE)
    key, date, region, service, terminator = credential
    return Authorization(
        access_key_id=key,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(params["SignedHeaders"].split(";")),
        signature=signature,
    )


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key: HMAC chain over date (YYYYMMDD), region, service, ``aws4_request``."""
    key = hmac.new(f"AWS4{secret_access_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, SCOPE_TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 dot-segment removal, then ``//`` collapsed, as the SDK normalises paths."""
    output: list[str] = []
    for segment in path.split("/"):
        if segment == ".":
            continue
        if segment == "..":
            if output:
                output.pop()
            continue
        output.append(segment)
    if path.startswith("/") and (not output or output[0]):
        output.insert(0, "")
    if output and path.endswith(("/.", "/..")):
        output.append("")
    return "/".join(output).replace("//", "/")


def canonical_path(raw_path: str) -> str:
    """Canonical URI of a path as received (still percent-encoded): normalised, then encoded again."""
    return quote(_remove_dot_segments(raw_path or "/"), safe="/")


def canonical_query(query: str) -> str:
    """Canonical query string: decoded pairs re-encoded strictly and sorted, as the SDK does."""
    pairs = ((quote(k, safe=""), quote(v, safe="")) for k, v in parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_map(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in headers:
        result.setdefault(name.lower(), []).append(value)
    # HTTP/2 carries the host in :authority; SigV4 signs it as "host" (the CRT client also sends
    # a host header, but a client that does not is still valid HTTP/2).
    if "host" not in result and ":authority" in result:
        result["host"] = result[":authority"]
    return result


def canonical_request(
    *,
    method: str,
    path: str,
    headers: Mapping[str, Sequence[str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The SigV4 canonical request of a request target ``path`` (which may carry ``?query``)."""
    raw_path, _, query = path.partition("?")
    lines = [method.upper(), canonical_path(raw_path), canonical_query(query)]
    canonical_headers = "".join(
        f"{name}:{' '.join(','.join(headers[name]).split())}\n" for name in signed_headers
    )
    return "\n".join([*lines, canonical_headers, ";".join(signed_headers), payload_hash])


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_amz_date(value: str) -> datetime.datetime | None:
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime.datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def _check_skew(when: datetime.datetime, now: datetime.datetime, stamp: str) -> None:
    fmt = TIMESTAMP_FORMAT
    if when < now - MAX_CLOCK_SKEW:
        earliest = (now - MAX_CLOCK_SKEW).strftime(fmt)
        raise SignatureError(
            AuthFailure.EXPIRED,
            f"signed at {stamp}, server time {now.strftime(fmt)}",
            error_type=INVALID_SIGNATURE,
            service_message=f"Signature expired: {stamp} is now earlier than {earliest} "
            f"({now.strftime(fmt)} - 15 min.)",
        )
    if when > now + MAX_CLOCK_SKEW:
        latest = (now + MAX_CLOCK_SKEW).strftime(fmt)
        raise SignatureError(
            AuthFailure.NOT_YET_VALID,
            f"signed at {stamp}, server time {now.strftime(fmt)}",
            error_type=INVALID_SIGNATURE,
            service_message=f"Signature not yet current: {stamp} is still later than {latest} "
            f"({now.strftime(fmt)} + 15 min.)",
        )


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature verified: who signed it and the seed of its event chain."""

    credentials: EmulatorCredentials
    authorization: Authorization
    timestamp: str

    @property
    def access_key_id(self) -> str:
        return self.credentials.access_key_id

    def event_verifier(self) -> EventChainVerifier:
        """A verifier for this request's input events, seeded with the request signature."""
        return EventChainVerifier(
            secret_access_key=self.credentials.secret_access_key,
            region=self.authorization.region,
            service=self.authorization.service,
            seed_signature=self.authorization.signature,
        )


def verify_request(
    *,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    credentials: Iterable[EmulatorCredentials],
    region: str,
    service: str = BEDROCK_SERVICE,
    now: datetime.datetime | None = None,
) -> VerifiedRequest:
    """Verify the SigV4 signature of a request against the accepted ``credentials``.

    ``headers`` are the request's header fields as received (HTTP/2 pseudo-headers may be
    included; ``:authority`` stands in for ``host``). Raises :class:`SignatureError`.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    fields = _header_map(headers)
    auth_values = fields.get("authorization")
    if not auth_values:
        raise SignatureError(
            AuthFailure.MISSING_AUTHENTICATION,
            "the request is not signed",
            error_type=MISSING_TOKEN[0],
            service_message=MISSING_TOKEN[1],
        )
    auth = parse_authorization(auth_values[0])

    known = {c.access_key_id: c for c in credentials}
    creds = known.get(auth.access_key_id)
    if creds is None:
        raise SignatureError(
            AuthFailure.UNKNOWN_ACCESS_KEY,
            f"access key id {auth.access_key_id!r} is not one the emulator accepts",
            error_type=UNRECOGNIZED_CLIENT[0],
            service_message=UNRECOGNIZED_CLIENT[1],
        )
    token_values = fields.get("x-amz-security-token")
    sent_token = token_values[0] if token_values else None
    if (sent_token is None) != (creds.session_token is None) or not hmac.compare_digest(
        (sent_token or "").encode(), (creds.session_token or "").encode()
    ):
        raise SignatureError(
            AuthFailure.INVALID_SESSION_TOKEN,
            "x-amz-security-token is missing, unexpected or wrong for this access key",
            error_type=UNRECOGNIZED_CLIENT[0],
            service_message=UNRECOGNIZED_CLIENT[1],
        )

    stamp = (fields.get("x-amz-date") or [""])[0]
    when = _parse_amz_date(stamp)
    if when is None:
        raise SignatureError(
            AuthFailure.MISSING_SIGNED_HEADER,
            "x-amz-date is missing or not YYYYMMDDTHHMMSSZ",
            error_type=INCOMPLETE_SIGNATURE,
            service_message="Authorization header requires existence of either a 'X-Amz-Date' or a "
            "'Date' header.",
        )
    _check_scope(auth, stamp, region, service)
    _check_skew(when, now, stamp)

    for required in ("host", "x-amz-date"):
        if required not in auth.signed_headers:
            raise SignatureError(
                AuthFailure.MISSING_SIGNED_HEADER,
                f"{required!r} is not in SignedHeaders",
                error_type=INVALID_SIGNATURE,
                service_message=f"'{required}' must be a 'SignedHeader' in the AWS Authorization.",
            )
    missing = [name for name in auth.signed_headers if name not in fields]
    if missing:
        raise SignatureError(
            AuthFailure.MISSING_SIGNED_HEADER,
            f"signed headers absent from the request: {', '.join(missing)}",
            error_type=INVALID_SIGNATURE,
            service_message=SIGNATURE_MISMATCH_MESSAGE,
        )
    payload_hash = (fields.get("x-amz-content-sha256") or [""])[0]
    if payload_hash != STREAMING_EVENTS_PAYLOAD:
        # The body is an endless event stream: only the per-event chain can protect it.
        raise SignatureError(
            AuthFailure.MISSING_SIGNED_HEADER,
            f"x-amz-content-sha256 must be {STREAMING_EVENTS_PAYLOAD!r} for an event stream",
            error_type=INVALID_SIGNATURE,
            service_message=SIGNATURE_MISMATCH_MESSAGE,
        )

    canonical = canonical_request(
        method=method,
        path=path,
        headers=fields,
        signed_headers=auth.signed_headers,
        payload_hash=payload_hash,
    )
    to_sign = "\n".join([ALGORITHM, stamp, auth.scope, _sha256_hex(canonical.encode())])
    key = signing_key(creds.secret_access_key, auth.date, auth.region, auth.service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureError(
            AuthFailure.SIGNATURE_MISMATCH,
            f"signature of access key {auth.access_key_id!r} does not verify (wrong secret, or the "
            "request was signed differently)",
            error_type=INVALID_SIGNATURE,
            service_message=SIGNATURE_MISMATCH_MESSAGE,
        )
    return VerifiedRequest(credentials=creds, authorization=auth, timestamp=stamp)


def _check_scope(auth: Authorization, stamp: str, region: str, service: str) -> None:
    def wrong(detail: str, message: str) -> SignatureError:
        return SignatureError(
            AuthFailure.WRONG_SCOPE, detail, error_type=INVALID_SIGNATURE, service_message=message
        )

    # The messages follow the service's wording; the exact text of each is not documented.
    if auth.date != stamp[:8]:
        raise wrong(
            f"scope date {auth.date} is not the date of x-amz-date {stamp}",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.date}' != '{stamp[:8]}', from '{stamp}'.",
        )
    if auth.region != region:
        raise wrong(
            f"scope region {auth.region!r}, the emulator serves {region!r}",
            f"Credential should be scoped to a valid region, not '{auth.region}'.",
        )
    if auth.service != service:
        raise wrong(
            f"scope service {auth.service!r}, expected {service!r}",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    if auth.terminator != SCOPE_TERMINATOR:
        raise wrong(
            f"scope terminator {auth.terminator!r}, expected {SCOPE_TERMINATOR!r}",
            f"Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', "
            f"not '{auth.terminator}'.",
        )


#: What the emulator answers inside the stream when an event signature fails. The service's real
#: answer is not documented; we assume a validationException (the only modeled in-stream client
#: error of Bedrock, §8) with a message in the style of its signature errors.
EVENT_SIGNATURE_EXCEPTION: Final = "validationException"
EVENT_SIGNATURE_MESSAGE: Final = (
    "The event signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)


class EventChainVerifier:
    """Checks the signature chain of one input stream, message by message (§10).

    ``verify`` returns the payload (the inner message's bytes, or ``b""`` for the final empty
    message). After a failure the chain is broken for good: every later message fails too.
    """

    def __init__(self, *, secret_access_key: str, region: str, service: str, seed_signature: str) -> None:
        self._secret = secret_access_key
        self._region = region
        self._service = service
        self._prior = seed_signature
        self._keys: dict[str, bytes] = {}
        self._finished = False
        self._broken: SignatureError | None = None
        self.verified = 0

    def __repr__(self) -> str:
        return f"EventChainVerifier(region={self._region!r}, verified={self.verified})"

    @property
    def finished(self) -> bool:
        """True once the final, empty, signed message has been verified."""
        return self._finished

    def _key(self, date: str) -> bytes:
        # One derived key per day: a stream may span midnight (UTC) and each event is signed
        # with the key of its own date.
        key = self._keys.get(date)
        if key is None:
            key = self._keys[date] = signing_key(self._secret, date, self._region, self._service)
        return key

    def _fail(self, failure: AuthFailure, detail: str) -> SignatureError:
        self._broken = SignatureError(
            failure,
            detail,
            error_type=EVENT_SIGNATURE_EXCEPTION,
            service_message=EVENT_SIGNATURE_MESSAGE,
        )
        return self._broken

    def verify(self, message: Message, *, now: datetime.datetime | None = None) -> bytes:
        """Verify one envelope message and advance the chain; return its payload."""
        if self._broken is not None:
            raise self._broken
        if self._finished:
            raise self._fail(AuthFailure.CHAIN_FINISHED, "input continued after its final empty message")
        date = message.headers.get(DATE)
        signature = message.headers.get(CHUNK_SIGNATURE)
        if (
            not isinstance(date, datetime.datetime)
            or not isinstance(signature, bytes)
            or len(signature) != EVENT_SIGNATURE_LENGTH
            or set(message.headers) != {DATE, CHUNK_SIGNATURE}
        ):
            raise self._fail(
                AuthFailure.MALFORMED_EVENT,
                f"envelope headers are {sorted(message.headers)}; expected a timestamp {DATE} "
                f"and a {EVENT_SIGNATURE_LENGTH}-byte {CHUNK_SIGNATURE}",
            )
        # The SDK signs the :date header as encoded (milliseconds) but writes the second-precision
        # SigV4 timestamp into the string to sign.
        stamp = date.astimezone(datetime.UTC).strftime(TIMESTAMP_FORMAT)
        try:
            _check_skew(date, now or datetime.datetime.now(datetime.UTC), stamp)
        except SignatureError as exc:
            raise self._fail(exc.failure, exc.detail) from None
        scope = f"{stamp[:8]}/{self._region}/{self._service}/{SCOPE_TERMINATOR}"
        to_sign = "\n".join(
            [
                EVENT_ALGORITHM,
                stamp,
                scope,
                self._prior,
                _sha256_hex(encode_headers({DATE: date})),
                _sha256_hex(message.payload),
            ]
        )
        expected = hmac.new(self._key(stamp[:8]), to_sign.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise self._fail(
                AuthFailure.BAD_EVENT_SIGNATURE,
                f"event {self.verified + 1} of the stream does not verify against the chain",
            )
        self._prior = signature.hex()
        self.verified += 1
        if not message.payload:
            self._finished = True
        return message.payload
