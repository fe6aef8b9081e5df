"""The wire: frames cut out of the byte stream and decoded, and the frames this client sends, encoded.

pamqp is the codec. The frames a busy connection carries by the thousand (Basic.Deliver, Basic.Ack and Nack,
content headers and bodies on the way in; Basic.Publish with its content, Basic.Ack and Nack on the way out) take
a path written with :mod:`struct` that builds the same pamqp values and the same bytes at a fraction of the cost
(the tests compare both paths on generated values); every other frame goes through pamqp itself.
"""

from __future__ import annotations

import struct
from typing import Final

import pamqp.exceptions
from pamqp import base, body, commands, header, heartbeat
from pamqp import frame as pamqp_frame

__all__ = ["FrameError", "FrameReader", "encode_ack", "encode_method", "encode_nack", "encode_publish"]

PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_END: Final = b"\xce"
FRAME_OVERHEAD: Final = 8
"""Bytes a frame adds around its payload: type, channel and size before it, the end octet after it."""
HANDSHAKE_FRAME_MAX: Final = 131072
"""The largest frame accepted before Connection.Tune has set the real limit."""

_FRAME: Final = struct.Struct(">BHI")
_METHOD_ID: Final = struct.Struct(">HH")
_U64_U8: Final = struct.Struct(">QB")
_HEADER: Final = struct.Struct(">HHQH")
_ACK: Final = struct.Struct(">BHIHHQBB")
_PUBLISH_HEAD: Final = struct.Struct(">BHIHHH")
_HEADER_HEAD: Final = struct.Struct(">BHIHHQ")

_DELIVER: Final = (60, 60)
_ACK_ID: Final = (60, 80)
_NACK_ID: Final = (60, 120)
_EMPTY_PROPERTIES: Final = b"\x00\x00"

FrameValue = base.Frame | header.ContentHeader | body.ContentBody | heartbeat.Heartbeat


class FrameError(ValueError):
    """Bytes that are not a well-formed AMQP 0-9-1 frame (the client turns it into ``ProtocolError``)."""


class FrameReader:
    """Cuts frames out of the bytes :meth:`feed` is given and decodes them, one :meth:`read` at a time.

    The buffer is consumed by advancing an offset and compacted once per :meth:`feed`, so reading the frames of a
    chunk costs their size, not their number times the chunk's.
    """

    __slots__ = ("_buffer", "_offset", "frame_max")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._offset = 0
        self.frame_max = HANDSHAKE_FRAME_MAX
        """The largest frame accepted, payload and overhead included."""

    def feed(self, data: bytes | bytearray) -> None:
        """Append bytes received from the socket."""
        if self._offset:
            del self._buffer[:self._offset]
            self._offset = 0
        self._buffer += data

    def read(self) -> tuple[int, FrameValue] | None:
        """The next complete frame as ``(channel, value)``, or ``None`` until more bytes are fed.

        Raises :class:`FrameError` for a frame over :attr:`frame_max`, a bad end octet, an unknown frame type, a
        payload that does not decode, or a peer answering with an AMQP protocol header (another version).
        """
        buffer = self._buffer
        start = self._offset
        if len(buffer) - start < 7:
            if buffer.startswith(b"AMQP", start):
                raise FrameError("the peer does not speak AMQP 0-9-1 "
                                 f"(it answered {bytes(buffer[start:start + 8])!r})")
            return None
        kind, channel, size = _FRAME.unpack_from(buffer, start)
        if size + FRAME_OVERHEAD > self.frame_max:
            if buffer.startswith(b"AMQP", start):
                raise FrameError("the peer does not speak AMQP 0-9-1 "
                                 f"(it answered {bytes(buffer[start:start + 8])!r})")
            raise FrameError(f"a frame of {size + FRAME_OVERHEAD} bytes is over frame_max ({self.frame_max})")
        end = start + 7 + size
        if len(buffer) <= end:
            return None
        if buffer[end] != 0xCE:
            raise FrameError(f"a frame on channel {channel} does not end with 0xCE")
        self._offset = end + 1
        try:
            if kind == FRAME_BODY:
                return channel, body.ContentBody(bytes(buffer[start + 7:end]))
            if kind == FRAME_METHOD:
                return channel, _method(buffer, start, end)
            if kind == FRAME_HEADER:
                return channel, _content_header(buffer, start + 7, end)
            if kind == FRAME_HEARTBEAT:
                return channel, heartbeat.Heartbeat()
        except (pamqp.exceptions.PAMQPException, ValueError, struct.error, IndexError, UnicodeDecodeError) as exc:
            raise FrameError(f"a malformed frame on channel {channel}: {exc}") from exc
        raise FrameError(f"a frame of unknown type {kind} on channel {channel}")


def _short_str(buffer: bytearray, offset: int, end: int) -> tuple[str, int]:
    length = buffer[offset]
    offset += 1
    if offset + length > end:
        raise FrameError("a short string runs past the end of its frame")
    return buffer[offset:offset + length].decode(), offset + length


def _method(buffer: bytearray, start: int, end: int) -> base.Frame:
    offset = start + 7
    method_id = _METHOD_ID.unpack_from(buffer, offset)
    offset += 4
    if method_id == _DELIVER:
        consumer_tag, offset = _short_str(buffer, offset, end)
        delivery_tag, redelivered = _U64_U8.unpack_from(buffer, offset)
        exchange, offset = _short_str(buffer, offset + 9, end)
        routing_key, offset = _short_str(buffer, offset, end)
        return commands.Basic.Deliver(consumer_tag, delivery_tag, bool(redelivered & 1), exchange, routing_key)
    if method_id == _ACK_ID:
        delivery_tag, bits = _U64_U8.unpack_from(buffer, offset)
        return commands.Basic.Ack(delivery_tag, bool(bits & 1))
    if method_id == _NACK_ID:
        delivery_tag, bits = _U64_U8.unpack_from(buffer, offset)
        return commands.Basic.Nack(delivery_tag, bool(bits & 1), bool(bits & 2))
    _, _, value = pamqp_frame.unmarshal(bytes(buffer[start:end + 1]))
    assert isinstance(value, base.Frame)
    return value


def _content_header(buffer: bytearray, offset: int, end: int) -> header.ContentHeader:
    _class_id, weight, body_size, flags = _HEADER.unpack_from(buffer, offset)
    properties = commands.Basic.Properties()
    if flags & 1:  # more flag words follow: none in 0-9-1's Basic, but leave it to pamqp
        value = header.ContentHeader()
        value.unmarshal(bytes(buffer[offset:end]))
        return value
    if flags:
        properties.unmarshal(flags, bytes(buffer[offset + 14:end]))
    return header.ContentHeader(weight, body_size, properties)


def encode_method(method: base.Frame, channel: int) -> bytes:
    """One method frame, by pamqp; a value it cannot encode raises :class:`ValueError` naming it."""
    try:
        return pamqp_frame.marshal(method, channel)
    except (pamqp.exceptions.PAMQPException, ValueError, TypeError, struct.error) as exc:
        raise ValueError(f"cannot encode {method!r}: {exc}") from exc


def _short(value: str, what: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"{what} {value[:40]!r}... is {len(data)} bytes in UTF-8; AMQP allows 255")
    return bytes((len(data),)) + data


def encode_publish(channel: int, exchange: str, routing_key: str, mandatory: bool,
                   properties: commands.Basic.Properties | None, content: bytes, frame_max: int) -> bytes:
    """Basic.Publish, its content header and its body, split into frames of at most ``frame_max`` bytes."""
    arguments = _short(exchange, "exchange name") + _short(routing_key, "routing key") + (b"\x01" if mandatory
                                                                                        else b"\x00")
    if properties is None:
        encoded_properties = _EMPTY_PROPERTIES
    else:
        try:
            encoded_properties = properties.marshal()
        except (pamqp.exceptions.PAMQPException, ValueError, TypeError, struct.error) as exc:
            raise ValueError(f"cannot encode {properties!r}: {exc}") from exc
    size = len(content)
    parts = [
        _PUBLISH_HEAD.pack(FRAME_METHOD, channel, 6 + len(arguments), 60, 40, 0), arguments, FRAME_END,
        _HEADER_HEAD.pack(FRAME_HEADER, channel, 12 + len(encoded_properties), 60, 0, size), encoded_properties,
        FRAME_END,
    ]
    room = frame_max - FRAME_OVERHEAD
    for offset in range(0, size, room):
        chunk = content[offset:offset + room]
        parts += (_FRAME.pack(FRAME_BODY, channel, len(chunk)), chunk, FRAME_END)
    return b"".join(parts)


def encode_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """Basic.Ack."""
    return _ACK.pack(FRAME_METHOD, channel, 13, 60, 80, delivery_tag, multiple, 0xCE)


def encode_nack(channel: int, delivery_tag: int, multiple: bool, requeue: bool) -> bytes:
    """Basic.Nack."""
    return _ACK.pack(FRAME_METHOD, channel, 13, 60, 120, delivery_tag, multiple | requeue << 1, 0xCE)
