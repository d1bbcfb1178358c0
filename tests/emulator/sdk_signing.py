"""Requests and events signed by the SDK's own signers, presented as the CRT client sends them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from io import BytesIO

from aws_sdk_signers import (
    URI,
    AsyncEventSigner,
    AsyncSigV4Signer,
    AWSCredentialIdentity,
    AWSRequest,
    Field,
    Fields,
)
from smithy_aws_event_stream.events import Event, EventHeaderEncoder, EventMessage

from nova_nb.emulator.eventstream import Message, decode_message
from nova_nb.emulator.sigv4 import EmulatorCredentials

REGION = "us-east-1"
PATH = "/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream"


@dataclass
class Signed:
    headers: list[tuple[str, str]]
    signature: str
    when: datetime.datetime


async def sign(
    creds: EmulatorCredentials,
    *,
    secret: str | None = None,
    token: str | None = None,
    region: str = REGION,
    path: str = PATH,
    port: int = 8443,
) -> Signed:
    """Sign like the SDK does, then present the request as the CRT client sends it over HTTP/2."""
    request = AWSRequest(
        destination=URI(host="127.0.0.1", port=port, path=path, query=""),
        method="POST",
        body=None,
        fields=Fields([Field(name="Content-Type", values=["application/vnd.amazon.eventstream"])]),
    )
    identity = AWSCredentialIdentity(
        access_key_id=creds.access_key_id,
        secret_access_key=secret or creds.secret_access_key,
        session_token=token,
    )
    signed = await AsyncSigV4Signer().sign(
        request=request, identity=identity, properties={"region": region, "service": "bedrock"}
    )
    # CRT turns the host header into :authority and renders an empty query as a trailing "?".
    headers = [
        (":method", "POST"),
        (":path", path + "?"),
        (":scheme", "https"),
        (":authority", f"127.0.0.1:{port}"),
    ]
    headers += [(f.name.lower(), f.as_string()) for f in signed.fields if f.name.lower() != "host"]
    auth = dict(headers)["authorization"]
    stamp = dict(headers)["x-amz-date"]
    when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    return Signed(headers=headers, signature=auth.rsplit("Signature=", 1)[1], when=when)


def decode_sdk(wire: bytes) -> EventMessage:
    event = Event.decode(BytesIO(wire))
    assert event is not None
    return event.message


async def signed_events(
    creds: EmulatorCredentials, signature: str, payloads: list[bytes], *, secret: str | None = None
) -> list[Message]:
    """Envelopes as the SDK's event signer produces them; an empty payload is the final message."""
    signer = AsyncEventSigner(initial_signature=signature.encode(), event_encoder_cls=EventHeaderEncoder)
    identity = AWSCredentialIdentity(
        access_key_id=creds.access_key_id, secret_access_key=secret or creds.secret_access_key
    )
    props = {"region": REGION, "service": "bedrock"}
    out = []
    for payload in payloads:
        if payload:
            envelope = await signer.sign(event=decode_sdk(payload), identity=identity, properties=props)  # type: ignore[arg-type]
        else:
            envelope = await signer.sign_empty(event=EventMessage(), identity=identity, properties=props)  # type: ignore[arg-type]
        out.append(decode_message(envelope.encode()))
    return out
