"""Event-stream framing: bytes in, messages out, checked against the SDK's own codec."""

from __future__ import annotations

import base64
import datetime
import json
import struct
import uuid
import zlib
from io import BytesIO

import pytest
from smithy_aws_event_stream.events import Byte, Event, EventMessage, Long, Short

from nova_nb.emulator.eventstream import (
    MAX_HEADER_VALUE_LENGTH,
    MAX_PAYLOAD_LENGTH,
    EventStreamError,
    Int8,
    Int16,
    Int64,
    Message,
    MessageDecoder,
    decode_message,
    encode_chunk_event,
    encode_exception,
    encode_headers,
    encode_message,
    unwrap_chunk,
)

WHEN = datetime.datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=datetime.UTC)
ALL_TYPES: dict[str, object] = {
    "yes": True,
    "no": False,
    "byte": Int8(-5),
    "short": Int16(-300),
    "int": 70000,
    "long": Int64(2**40),
    "blob": b"\x00\x01\xff",
    "text": "héllo",
    "when": WHEN,
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}
SDK_TYPES: dict[str, object] = {
    **ALL_TYPES,
    "byte": Byte(-5),
    "short": Short(-300),
    "long": Long(2**40),
}


def test_every_header_type_round_trips_and_matches_the_sdk_bytes() -> None:
    wire = encode_message(ALL_TYPES, b"payload")  # type: ignore[arg-type]
    assert wire == EventMessage(headers=SDK_TYPES, payload=b"payload").encode()  # type: ignore[arg-type]
    message = decode_message(wire)
    assert message.headers == ALL_TYPES
    assert type(message.headers["long"]) is Int64 and type(message.headers["byte"]) is Int8
    assert message.payload == b"payload"


def test_the_sdk_decodes_what_we_encode_and_the_other_way_round() -> None:
    sdk_event = Event.decode(BytesIO(encode_message({":date": WHEN, "n": 3}, b"x")))
    assert sdk_event is not None
    assert sdk_event.message.headers == {":date": WHEN, "n": 3}
    ours = decode_message(EventMessage(headers={"a": "b", "t": WHEN}, payload=b"yz").encode())
    assert ours == Message({"a": "b", "t": WHEN}, b"yz")


def test_empty_message_is_sixteen_bytes() -> None:
    wire = encode_message({}, b"")
    assert len(wire) == 16
    assert decode_message(wire) == Message({}, b"")


@pytest.mark.parametrize("position", [0, 5, 9, 14, -3])
def test_any_flipped_byte_is_caught(position: int) -> None:
    wire = bytearray(encode_message({"k": "v"}, b"some payload"))
    wire[position] ^= 0x40
    with pytest.raises(EventStreamError):
        decode_message(bytes(wire))


def test_decoder_accepts_any_split_and_many_messages_per_feed() -> None:
    messages = [Message({"i": i, "s": "x" * i}, bytes([i]) * (i * 7)) for i in range(12)]
    wire = b"".join(m.encode() for m in messages)
    for step in (1, 3, 16, 100, len(wire)):
        decoder = MessageDecoder()
        out: list[Message] = []
        for start in range(0, len(wire), step):
            out += decoder.feed(wire[start : start + step])
        assert out == messages
        assert decoder.buffered == 0


def test_decoder_keeps_a_partial_message_until_it_is_complete() -> None:
    wire = encode_message({"k": "v"}, b"abc")
    decoder = MessageDecoder()
    assert decoder.feed(wire[:-1]) == []
    assert decoder.buffered == len(wire) - 1
    assert decoder.feed(wire[-1:]) == [Message({"k": "v"}, b"abc")]


def test_decoder_stays_broken_after_bad_bytes() -> None:
    decoder = MessageDecoder()
    with pytest.raises(EventStreamError, match="prelude CRC"):
        decoder.feed(b"\x00" * 8 + b"\x01\x02\x03\x04")
    with pytest.raises(EventStreamError, match="already failed"):
        decoder.feed(encode_message({}, b""))


def test_limits_are_enforced_both_ways() -> None:
    with pytest.raises(EventStreamError, match="limit"):
        encode_headers({"big": "x" * (MAX_HEADER_VALUE_LENGTH + 1)})
    with pytest.raises(EventStreamError):
        encode_headers({"": "empty name"})
    with pytest.raises(EventStreamError, match="does not fit"):
        encode_headers({"b": Int8(200)})
    with pytest.raises(EventStreamError, match="timezone"):
        encode_headers({"t": datetime.datetime(2025, 1, 1)})
    # A prelude claiming a payload over 16 MiB is refused before any of it is buffered.
    prelude = struct.pack("!II", MAX_PAYLOAD_LENGTH + 17, 0)
    with pytest.raises(EventStreamError, match="payload length"):
        MessageDecoder().feed(prelude + struct.pack("!I", zlib.crc32(prelude)))


def test_duplicate_and_unknown_header_types_are_refused() -> None:
    one = encode_headers({"k": "v"})
    with pytest.raises(EventStreamError, match="duplicate"):
        decode_message(_frame(one + one))
    with pytest.raises(EventStreamError, match="unknown value type"):
        decode_message(_frame(b"\x01k\x0b"))
    with pytest.raises(EventStreamError, match="truncated"):
        decode_message(_frame(b"\x01k\x07\x00\x05ab"))


def _frame(raw_headers: bytes) -> bytes:
    prelude = struct.pack("!II", 16 + len(raw_headers), len(raw_headers))
    head = prelude + struct.pack("!I", zlib.crc32(prelude))
    return head + raw_headers + struct.pack("!I", zlib.crc32(head + raw_headers))


def test_chunk_event_has_the_bedrock_shape() -> None:
    event = b'{"event": {"sessionStart": {}}}'
    message = decode_message(encode_chunk_event(event))
    assert message.headers == {
        ":message-type": "event",
        ":event-type": "chunk",
        ":content-type": "application/json",
    }
    assert json.loads(message.payload) == {"bytes": base64.b64encode(event).decode()}
    assert unwrap_chunk(message) == event


def test_exception_message_has_the_bedrock_shape() -> None:
    message = decode_message(encode_exception("validationException", "bad"))
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "validationException"
    assert json.loads(message.payload) == {"message": "bad"}


@pytest.mark.parametrize(
    ("headers", "payload", "match"),
    [
        ({":message-type": "event", ":event-type": "other"}, b"{}", "expected a chunk"),
        ({":message-type": "event", ":event-type": "chunk"}, b"not json", "not JSON"),
        ({":message-type": "event", ":event-type": "chunk"}, b'{"bytes": 3}', 'no "bytes"'),
        ({":message-type": "event", ":event-type": "chunk"}, b'{"bytes": "!!"}', "base64"),
    ],
)
def test_unwrap_chunk_names_what_is_wrong(headers: dict[str, str], payload: bytes, match: str) -> None:
    with pytest.raises(EventStreamError, match=match):
        unwrap_chunk(Message(headers, payload))  # type: ignore[arg-type]
