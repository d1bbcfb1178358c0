"""AWS event-stream framing (``application/vnd.amazon.eventstream``), sans-I/O.

Every DATA frame of an ``InvokeModelWithBidirectionalStream`` call carries messages in this binary
format (docs/PROTOCOL.md §10, "Wire framing"). A message is::

    prelude       total length (uint32) | headers length (uint32) | prelude CRC32 (uint32)
    headers       repeated: name length (uint8) | name (UTF-8) | type (uint8) | value
    payload       opaque bytes
    message CRC   CRC32 of everything before it (uint32)

All integers are big-endian; the CRCs are the ISO-HDLC CRC-32 that ``zlib.crc32`` computes. The
header value types and the limits below are those of the AWS event-stream specification as the SDK
implements it (smithy_aws_event_stream/events.py), so what this module encodes the SDK decodes and
the other way round.

The second half of the module holds the Bedrock shapes carried inside that framing: the ``chunk``
event whose JSON payload is ``{"bytes": "<base64 of the Nova event JSON>"}`` and the exception
message (``:message-type=exception``, ``:exception-type=...``, payload ``{"message": ...}``).

Nothing here does I/O: :class:`MessageDecoder` takes bytes as they arrive (a message may be split
across HTTP/2 DATA frames, or several may share one) and returns whole messages.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from nova_nb.errors import NovaNbError

# Limits of the AWS event-stream format (the SDK enforces the same: MAX_HEADERS_LENGTH,
# MAX_HEADER_VALUE_BYTE_LENGTH, MAX_PAYLOAD_LENGTH in smithy_aws_event_stream/events.py).
MAX_HEADERS_LENGTH: Final = 128 * 1024
MAX_HEADER_VALUE_LENGTH: Final = 32 * 1024 - 1
MAX_HEADER_NAME_LENGTH: Final = 255  # one length byte
MAX_PAYLOAD_LENGTH: Final = 16 * 1024 * 1024
#: Prelude (8 bytes of lengths + 4 of CRC) and the trailing message CRC.
PRELUDE_LENGTH: Final = 12
MESSAGE_CRC_LENGTH: Final = 4
MESSAGE_OVERHEAD: Final = PRELUDE_LENGTH + MESSAGE_CRC_LENGTH

_PRELUDE = struct.Struct("!II")
_UINT32 = struct.Struct("!I")

# Header names and values of the AWS event-stream message model.
MESSAGE_TYPE: Final = ":message-type"
EVENT_TYPE: Final = ":event-type"
EXCEPTION_TYPE: Final = ":exception-type"
CONTENT_TYPE: Final = ":content-type"
ERROR_CODE: Final = ":error-code"
ERROR_MESSAGE: Final = ":error-message"
DATE: Final = ":date"
CHUNK_SIGNATURE: Final = ":chunk-signature"
MESSAGE_TYPE_EVENT: Final = "event"
MESSAGE_TYPE_EXCEPTION: Final = "exception"
MESSAGE_TYPE_ERROR: Final = "error"
JSON_CONTENT_TYPE: Final = "application/json"
#: The one member of Bedrock's bidirectional input and output unions that carries data (§10).
CHUNK_EVENT_TYPE: Final = "chunk"


class EventStreamError(NovaNbError, ValueError):
    """Bytes that are not a valid event-stream message, or a message of the wrong shape."""


class HeaderType(IntEnum):
    """Header value type codes of the AWS event-stream format."""

    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    SHORT = 3
    INTEGER = 4
    LONG = 5
    BYTE_ARRAY = 6
    STRING = 7
    TIMESTAMP = 8
    UUID = 9


class Int8(int):
    """An ``int`` header value sent as a signed 8-bit integer (type 2)."""


class Int16(int):
    """An ``int`` header value sent as a signed 16-bit integer (type 3)."""


class Int64(int):
    """An ``int`` header value sent as a signed 64-bit integer (type 5).

    A plain ``int`` is sent as a 32-bit integer (type 4), as the SDK does.
    """


#: What a header value may be. ``bool`` before ``int`` matters: ``bool`` is an ``int`` subclass.
HeaderValue = bool | int | bytes | str | datetime.datetime | uuid.UUID

_INT_FORMATS: Final[dict[HeaderType, struct.Struct]] = {
    HeaderType.BYTE: struct.Struct("!b"),
    HeaderType.SHORT: struct.Struct("!h"),
    HeaderType.INTEGER: struct.Struct("!i"),
    HeaderType.LONG: struct.Struct("!q"),
}
_INT_CLASSES: Final[dict[HeaderType, type[int]]] = {
    HeaderType.BYTE: Int8,
    HeaderType.SHORT: Int16,
    HeaderType.INTEGER: int,
    HeaderType.LONG: Int64,
}
_UINT16 = struct.Struct("!H")
_INT64 = _INT_FORMATS[HeaderType.LONG]
_UUID_LENGTH: Final = 16
_MILLIS_PER_SECOND: Final = 1000


@dataclass(frozen=True)
class Message:
    """One event-stream message: ordered headers and a payload."""

    headers: Mapping[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    def header_str(self, name: str) -> str | None:
        """The value of a string header, or ``None`` when absent or of another type."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None

    def encode(self) -> bytes:
        """This message in wire form."""
        return encode_message(self.headers, self.payload)


def _crc(data: bytes | memoryview, value: int = 0) -> int:
    return zlib.crc32(data, value) & 0xFFFFFFFF


def _int_type(value: int) -> HeaderType:
    if isinstance(value, Int8):
        return HeaderType.BYTE
    if isinstance(value, Int16):
        return HeaderType.SHORT
    if isinstance(value, Int64):
        return HeaderType.LONG
    return HeaderType.INTEGER


def _timestamp_millis(value: datetime.datetime) -> int:
    if value.tzinfo is None:
        raise EventStreamError("timestamp header values must be timezone-aware datetimes")
    # Integer arithmetic on the timedelta, not float seconds, so a millisecond never rounds away.
    delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return delta // datetime.timedelta(milliseconds=1)


def encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    """Encode headers in order. Also the input of the event signature's header hash (§10)."""
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        if not raw_name or len(raw_name) > MAX_HEADER_NAME_LENGTH:
            raise EventStreamError(f"header name {name!r} must be 1 to {MAX_HEADER_NAME_LENGTH} bytes")
        out.append(len(raw_name))
        out += raw_name
        if isinstance(value, bool):
            out.append(HeaderType.BOOL_TRUE if value else HeaderType.BOOL_FALSE)
        elif isinstance(value, int):
            kind = _int_type(value)
            out.append(kind)
            try:
                out += _INT_FORMATS[kind].pack(value)
            except struct.error as exc:
                raise EventStreamError(f"header {name!r}: {value} does not fit a {kind.name}") from exc
        elif isinstance(value, bytes | str):
            raw = value if isinstance(value, bytes) else value.encode("utf-8")
            if len(raw) > MAX_HEADER_VALUE_LENGTH:
                raise EventStreamError(
                    f"header {name!r} is {len(raw)} bytes; the limit is {MAX_HEADER_VALUE_LENGTH}"
                )
            out.append(HeaderType.BYTE_ARRAY if isinstance(value, bytes) else HeaderType.STRING)
            out += _UINT16.pack(len(raw))
            out += raw
        elif isinstance(value, datetime.datetime):
            out.append(HeaderType.TIMESTAMP)
            out += _INT64.pack(_timestamp_millis(value))
        elif isinstance(value, uuid.UUID):
            out.append(HeaderType.UUID)
            out += value.bytes
        else:
            raise EventStreamError(f"header {name!r} has a value of unsupported type {type(value).__name__}")
    if len(out) > MAX_HEADERS_LENGTH:
        raise EventStreamError(f"headers are {len(out)} bytes; the limit is {MAX_HEADERS_LENGTH}")
    return bytes(out)


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes = b"") -> bytes:
    """Encode one message: prelude, prelude CRC, headers, payload, message CRC."""
    raw_headers = encode_headers(headers)
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise EventStreamError(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_LENGTH}")
    total = MESSAGE_OVERHEAD + len(raw_headers) + len(payload)
    prelude = _PRELUDE.pack(total, len(raw_headers))
    head = prelude + _UINT32.pack(_crc(prelude))
    # The message CRC covers the prelude and its CRC too (the SDK computes it as a CRC continued
    # from the prelude CRC over the rest, which is the same number).
    body_crc = _crc(payload, _crc(raw_headers, _crc(head)))
    return b"".join((head, raw_headers, payload, _UINT32.pack(body_crc)))


def decode_headers(data: bytes | memoryview) -> dict[str, HeaderValue]:
    """Decode a headers section. Duplicate names are an error, as in the SDK."""
    view = memoryview(data)
    headers: dict[str, HeaderValue] = {}
    pos = 0
    end = len(view)

    def take(count: int) -> memoryview:
        nonlocal pos
        if pos + count > end:
            raise EventStreamError("truncated header")
        chunk = view[pos : pos + count]
        pos += count
        return chunk

    while pos < end:
        name_length = take(1)[0]
        if name_length == 0:
            raise EventStreamError("empty header name")
        try:
            name = bytes(take(name_length)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventStreamError("header name is not UTF-8") from exc
        code = take(1)[0]
        try:
            kind = HeaderType(code)
        except ValueError as exc:
            raise EventStreamError(f"header {name!r} has unknown value type {code}") from exc
        value: HeaderValue
        if kind is HeaderType.BOOL_TRUE:
            value = True
        elif kind is HeaderType.BOOL_FALSE:
            value = False
        elif kind in _INT_FORMATS:
            fmt = _INT_FORMATS[kind]
            value = _INT_CLASSES[kind](fmt.unpack(take(fmt.size))[0])
        elif kind in (HeaderType.BYTE_ARRAY, HeaderType.STRING):
            length = _UINT16.unpack(take(2))[0]
            if length > MAX_HEADER_VALUE_LENGTH:
                raise EventStreamError(f"header {name!r} value of {length} bytes is over the limit")
            raw = bytes(take(length))
            if kind is HeaderType.BYTE_ARRAY:
                value = raw
            else:
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise EventStreamError(f"header {name!r} is not UTF-8") from exc
        elif kind is HeaderType.TIMESTAMP:
            millis = _INT64.unpack(take(8))[0]
            value = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
                milliseconds=millis
            )
        else:
            value = uuid.UUID(bytes=bytes(take(_UUID_LENGTH)))
        if name in headers:
            raise EventStreamError(f"duplicate header {name!r}")
        headers[name] = value
    return headers


def _check_prelude(prelude: bytes | memoryview) -> tuple[int, int]:
    total, headers_length = _PRELUDE.unpack(prelude[:8])
    (expected,) = _UINT32.unpack(prelude[8:PRELUDE_LENGTH])
    if _crc(prelude[:8]) != expected:
        raise EventStreamError("prelude CRC mismatch")
    if headers_length > MAX_HEADERS_LENGTH:
        raise EventStreamError(f"headers length {headers_length} is over the limit {MAX_HEADERS_LENGTH}")
    payload_length = total - headers_length - MESSAGE_OVERHEAD
    if payload_length < 0:
        raise EventStreamError(f"total length {total} is too short for {headers_length} bytes of headers")
    if payload_length > MAX_PAYLOAD_LENGTH:
        raise EventStreamError(f"payload length {payload_length} is over the limit {MAX_PAYLOAD_LENGTH}")
    return total, headers_length


def _decode_whole(data: bytes | memoryview, total: int, headers_length: int) -> Message:
    (expected,) = _UINT32.unpack(data[total - MESSAGE_CRC_LENGTH : total])
    if _crc(data[: total - MESSAGE_CRC_LENGTH]) != expected:
        raise EventStreamError("message CRC mismatch")
    headers_end = PRELUDE_LENGTH + headers_length
    headers = decode_headers(data[PRELUDE_LENGTH:headers_end])
    return Message(headers=headers, payload=bytes(data[headers_end : total - MESSAGE_CRC_LENGTH]))


def decode_message(data: bytes) -> Message:
    """Decode exactly one message; trailing or missing bytes are an error."""
    if len(data) < MESSAGE_OVERHEAD:
        raise EventStreamError(f"{len(data)} bytes are too few for a message")
    total, headers_length = _check_prelude(data[:PRELUDE_LENGTH])
    if total != len(data):
        raise EventStreamError(f"message says {total} bytes but {len(data)} were given")
    return _decode_whole(data, total, headers_length)


class MessageDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, get back the messages they complete.

    Once it has raised, the decoder is broken for good (the stream is out of sync and there is no
    way to find the next message boundary), and every later ``feed`` raises again.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failure: EventStreamError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every message now complete, in order."""
        if self._failure is not None:
            raise EventStreamError(f"decoder already failed: {self._failure}")
        self._buffer += data
        messages: list[Message] = []
        view = memoryview(self._buffer)
        pos = 0
        try:
            while len(view) - pos >= PRELUDE_LENGTH:
                total, headers_length = _check_prelude(view[pos : pos + PRELUDE_LENGTH])
                if len(view) - pos < total:
                    break
                messages.append(_decode_whole(view[pos : pos + total], total, headers_length))
                pos += total
        except EventStreamError as exc:
            self._failure = exc
            raise
        finally:
            view.release()
        if pos:
            del self._buffer[:pos]
        return messages


# --- Bedrock's shapes inside the framing (docs/PROTOCOL.md §10) -----------------------------------


def encode_chunk_event(event_json: bytes) -> bytes:
    """The ``chunk`` event carrying one Nova event: what the service sends, and what a client signs.

    The SDK serialises ``BidirectionalInputPayloadPart``/``BidirectionalOutputPayloadPart`` as a JSON
    structure whose blob member ``bytes`` is base64 (restJson1 blobs), hence the double wrapping.
    """
    payload = json.dumps({"bytes": base64.b64encode(event_json).decode("ascii")}).encode()
    return encode_message(
        {MESSAGE_TYPE: MESSAGE_TYPE_EVENT, EVENT_TYPE: CHUNK_EVENT_TYPE, CONTENT_TYPE: JSON_CONTENT_TYPE},
        payload,
    )


def encode_exception(exception_type: str, message: str) -> bytes:
    """A modeled exception message, e.g. ``validationException``; ``receive()`` raises it (§8, §10)."""
    return encode_message(
        {
            MESSAGE_TYPE: MESSAGE_TYPE_EXCEPTION,
            EXCEPTION_TYPE: exception_type,
            CONTENT_TYPE: JSON_CONTENT_TYPE,
        },
        json.dumps({"message": message}).encode(),
    )


def unwrap_chunk(message: Message) -> bytes:
    """The Nova event JSON bytes carried by a ``chunk`` event message.

    Raises :class:`EventStreamError` naming what is wrong when the message is not a chunk event
    with a ``{"bytes": base64}`` JSON payload.
    """
    message_type = message.header_str(MESSAGE_TYPE)
    event_type = message.header_str(EVENT_TYPE)
    if message_type != MESSAGE_TYPE_EVENT or event_type != CHUNK_EVENT_TYPE:
        raise EventStreamError(
            f"expected a chunk event, got :message-type={message_type!r} :event-type={event_type!r}"
        )
    try:
        body = json.loads(message.payload)
    except ValueError as exc:
        raise EventStreamError("chunk payload is not JSON") from exc
    encoded = body.get("bytes") if isinstance(body, dict) else None
    if not isinstance(encoded, str):
        raise EventStreamError('chunk payload has no "bytes" string member')
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise EventStreamError('chunk "bytes" member is not valid base64') from exc
