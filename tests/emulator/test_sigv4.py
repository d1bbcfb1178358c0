"""SigV4 verification against requests and events signed by the SDK's own signers."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from nova_nb.emulator.eventstream import Message, encode_chunk_event
from nova_nb.emulator.sigv4 import (
    SIGNATURE_MISMATCH_MESSAGE,
    AuthFailure,
    EmulatorCredentials,
    EventChainVerifier,
    SignatureError,
    VerifiedRequest,
    canonical_path,
    parse_authorization,
    verify_request,
)

from . import sdk_signing
from .sdk_signing import PATH, REGION, Signed

CREDS = EmulatorCredentials.generate()


async def sign(creds: EmulatorCredentials = CREDS, **options: Any) -> Signed:
    return await sdk_signing.sign(creds, **options)


async def signed_events(signature: str, payloads: list[bytes], *, secret: str | None = None) -> list[Message]:
    return await sdk_signing.signed_events(CREDS, signature, payloads, secret=secret)


def verify(
    signed: Signed, creds: tuple[EmulatorCredentials, ...] = (CREDS,), **kw: object
) -> VerifiedRequest:
    return verify_request(
        method="POST",
        path=dict(signed.headers)[":path"],
        headers=signed.headers,
        credentials=creds,
        region=REGION,
        **kw,  # type: ignore[arg-type]
    )


def failure_of(signed: Signed, **kw: object) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify(signed, **kw)  # type: ignore[arg-type]
    return info.value


async def test_a_request_signed_by_the_sdk_verifies() -> None:
    signed = await sign()
    verified = verify(signed)
    assert verified.access_key_id == CREDS.access_key_id
    assert verified.authorization.signature == signed.signature
    assert verified.authorization.signed_headers == (
        "content-type",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
    )


def test_the_encoded_path_is_encoded_again() -> None:
    assert canonical_path(PATH) == "/model/amazon.nova-sonic-v1%253A0/invoke-with-bidirectional-stream"
    assert canonical_path("/a/./b/../c//d") == "/a/c/d"


async def test_wrong_secret_is_a_signature_mismatch() -> None:
    error = failure_of(await sign(secret="not-the-secret"))
    assert error.failure is AuthFailure.SIGNATURE_MISMATCH
    assert (error.error_type, error.service_message) == (
        "InvalidSignatureException",
        SIGNATURE_MISMATCH_MESSAGE,
    )
    assert error.http_status == 403


async def test_unknown_access_key_is_unrecognized_client() -> None:
    error = failure_of(await sign(EmulatorCredentials.generate()))
    assert error.failure is AuthFailure.UNKNOWN_ACCESS_KEY
    assert error.error_type == "UnrecognizedClientException"
    assert error.service_message == "The security token included in the request is invalid."


async def test_a_changed_path_breaks_the_signature() -> None:
    signed = await sign()
    other = "/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream?"
    with pytest.raises(SignatureError) as info:
        verify_request(method="POST", path=other, headers=signed.headers, credentials=(CREDS,), region=REGION)
    assert info.value.failure is AuthFailure.SIGNATURE_MISMATCH


async def test_a_changed_signed_header_breaks_the_signature() -> None:
    signed = await sign()
    signed.headers = [(k, "text/plain" if k == "content-type" else v) for k, v in signed.headers]
    assert failure_of(signed).failure is AuthFailure.SIGNATURE_MISMATCH


async def test_session_tokens_must_match() -> None:
    with_token = EmulatorCredentials(CREDS.access_key_id, CREDS.secret_access_key, session_token="TOKEN-123")
    assert verify(await sign(with_token, token="TOKEN-123"), creds=(with_token,))
    for token in (None, "TOKEN-999"):
        error = failure_of(await sign(with_token, token=token), creds=(with_token,))
        assert error.failure is AuthFailure.INVALID_SESSION_TOKEN
        assert error.error_type == "UnrecognizedClientException"
    error = failure_of(await sign(token="TOKEN-777"))
    assert error.failure is AuthFailure.INVALID_SESSION_TOKEN
    assert "TOKEN" not in str(error) and "TOKEN" not in error.service_message


async def test_dates_more_than_fifteen_minutes_off_are_refused() -> None:
    signed = await sign()
    late = failure_of(signed, now=signed.when + datetime.timedelta(minutes=16))
    assert late.failure is AuthFailure.EXPIRED
    assert late.service_message.startswith("Signature expired: ")
    early = failure_of(signed, now=signed.when - datetime.timedelta(minutes=16))
    assert early.failure is AuthFailure.NOT_YET_VALID
    assert verify(signed, now=signed.when + datetime.timedelta(minutes=14))


async def test_a_request_scoped_to_another_region_is_refused() -> None:
    error = failure_of(await sign(region="eu-west-1"))
    assert error.failure is AuthFailure.WRONG_SCOPE
    assert "eu-west-1" in error.service_message


async def test_missing_and_malformed_authorization() -> None:
    signed = await sign()
    unsigned = Signed([h for h in signed.headers if h[0] != "authorization"], "", signed.when)
    error = failure_of(unsigned)
    assert (error.failure, error.error_type) == (
        AuthFailure.MISSING_AUTHENTICATION,
        "MissingAuthenticationTokenException",
    )
    for bad in ("Bearer abc", "AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host", "AWS4-HMAC-SHA256 x"):
        with pytest.raises(SignatureError) as info:
            parse_authorization(bad)
        assert info.value.failure is AuthFailure.MALFORMED_AUTHORIZATION
    no_stream_hash = Signed([h for h in signed.headers if h[0] != "x-amz-content-sha256"], "", signed.when)
    assert failure_of(no_stream_hash).failure is AuthFailure.MISSING_SIGNED_HEADER


async def test_no_message_or_repr_contains_the_secret() -> None:
    error = failure_of(await sign(secret="wrong"))
    for text in (str(error), repr(error), error.service_message, error.detail, repr(CREDS)):
        assert CREDS.secret_access_key not in text
    assert "<hidden>" in repr(CREDS)


def test_generated_credentials_look_fake_and_differ() -> None:
    many = {EmulatorCredentials.generate() for _ in range(50)}
    assert len({c.access_key_id for c in many}) == 50
    for creds in many:
        assert creds.access_key_id.startswith("NOVANB") and len(creds.access_key_id) == 20
        assert not re.search(r"(AKIA|ASIA)[0-9A-Z]{16}", creds.access_key_id)
        assert len(creds.secret_access_key) == 40 and creds.session_token is None


# --- the event chain (docs/PROTOCOL.md §10) ---------------------------------------------------------


async def chain() -> tuple[EventChainVerifier, list[Message], list[bytes]]:
    verified = verify(await sign())
    inner = [encode_chunk_event(b'{"event": {"n": %d}}' % i) for i in range(5)]
    envelopes = await signed_events(verified.authorization.signature, [*inner, b""])
    return verified.event_verifier(), envelopes, inner


async def test_the_sdk_event_chain_verifies_to_its_end() -> None:
    verifier, envelopes, inner = await chain()
    payloads = [verifier.verify(m) for m in envelopes]
    assert payloads == [*inner, b""]
    assert verifier.finished and verifier.verified == 6


async def test_a_tampered_event_breaks_the_chain_for_good() -> None:
    verifier, envelopes, _ = await chain()
    verifier.verify(envelopes[0])
    tampered = Message(envelopes[1].headers, envelopes[1].payload + b" ")
    with pytest.raises(SignatureError) as info:
        verifier.verify(tampered)
    assert info.value.failure is AuthFailure.BAD_EVENT_SIGNATURE
    assert info.value.error_type == "validationException"
    with pytest.raises(SignatureError):
        verifier.verify(envelopes[1])  # even the genuine message: the chain is broken


async def test_reordered_or_replayed_events_fail() -> None:
    verifier, envelopes, _ = await chain()
    with pytest.raises(SignatureError):
        verifier.verify(envelopes[1])
    verifier2, envelopes2, _ = await chain()
    verifier2.verify(envelopes2[0])
    with pytest.raises(SignatureError):
        verifier2.verify(envelopes2[0])


async def test_events_signed_with_another_secret_fail() -> None:
    verified = verify(await sign())
    envelopes = await signed_events(
        verified.authorization.signature, [encode_chunk_event(b"{}")], secret="other"
    )
    with pytest.raises(SignatureError) as info:
        verified.event_verifier().verify(envelopes[0])
    assert info.value.failure is AuthFailure.BAD_EVENT_SIGNATURE


async def test_nothing_may_follow_the_final_message_and_envelopes_need_both_headers() -> None:
    verifier, envelopes, _ = await chain()
    for message in envelopes:
        verifier.verify(message)
    with pytest.raises(SignatureError) as info:
        verifier.verify(envelopes[-1])
    assert info.value.failure is AuthFailure.CHAIN_FINISHED
    verifier2, envelopes2, _ = await chain()
    with pytest.raises(SignatureError) as info:
        verifier2.verify(Message({":date": envelopes2[0].headers[":date"]}, envelopes2[0].payload))
    assert info.value.failure is AuthFailure.MALFORMED_EVENT


async def test_stale_event_dates_are_refused() -> None:
    verifier, envelopes, _ = await chain()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=20)
    with pytest.raises(SignatureError) as info:
        verifier.verify(envelopes[0], now=later)
    assert info.value.failure is AuthFailure.EXPIRED
