"""The AMQP client's wire layer (``runtime.amqp._frames``) against pamqp, and its pure decisions (reconnect
backoff, the topology to replay). No broker needed.

The hot frames have a struct-based path of their own; these tests hold it to pamqp's bytes and values on
generated inputs, fed in arbitrary chunks.
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import body, commands, header, heartbeat
from pamqp import frame as pamqp_frame

from runtime.amqp import Reconnect
from runtime.amqp._frames import FrameError, FrameReader, encode_ack, encode_nack, encode_publish

short_strings = st.text(max_size=40)
# pamqp checks exchange and queue names (RabbitMQ does not).
names = st.from_regex(r"[a-zA-Z0-9_:.-]{0,40}", fullmatch=True)
tags = st.integers(min_value=0, max_value=2**63 - 1)  # pamqp encodes them signed
channels = st.integers(min_value=1, max_value=2047)
properties = st.builds(
    commands.Basic.Properties,
    content_type=st.none() | st.sampled_from(["application/json", "text/plain"]),
    headers=st.none() | st.dictionaries(st.text(min_size=1, max_size=8), st.integers(-1000, 1000) | st.text(max_size=8),
                                        max_size=3),
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    correlation_id=st.none() | st.text(min_size=1, max_size=20),
    timestamp=st.none() | st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1),
                                       timezones=st.just(datetime.UTC)).map(lambda t: t.replace(microsecond=0)),
)


def pamqp_publish(channel: int, exchange: str, routing_key: str, mandatory: bool,
                  props: commands.Basic.Properties | None, content: bytes, frame_max: int) -> bytes:
    room = frame_max - 8
    parts = [pamqp_frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                                        mandatory=mandatory), channel),
             pamqp_frame.marshal(header.ContentHeader(0, len(content), props or commands.Basic.Properties()),
                                 channel)]
    parts += [pamqp_frame.marshal(body.ContentBody(content[i:i + room]), channel) for i in range(0, len(content), room)]
    return b"".join(parts)


@given(channels, names, short_strings, st.booleans(), st.none() | properties,
       st.binary(max_size=300), st.integers(min_value=9, max_value=100))
def test_publish_is_encoded_as_pamqp_encodes_it(channel: int, exchange: str, routing_key: str, mandatory: bool,
                                               props: commands.Basic.Properties | None, content: bytes,
                                               frame_max: int) -> None:
    assert encode_publish(channel, exchange, routing_key, mandatory, props, content, frame_max) == pamqp_publish(
        channel, exchange, routing_key, mandatory, props, content, frame_max)


@given(channels, tags, st.booleans(), st.booleans())
def test_acks_and_nacks_are_encoded_as_pamqp_encodes_them(channel: int, tag: int, multiple: bool,
                                                          requeue: bool) -> None:
    assert encode_ack(channel, tag, multiple) == pamqp_frame.marshal(commands.Basic.Ack(tag, multiple), channel)
    assert encode_nack(channel, tag, multiple, requeue) == pamqp_frame.marshal(
        commands.Basic.Nack(tag, multiple, requeue), channel)


def test_names_over_255_bytes_are_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match=r"routing key .* 256 bytes"):
        encode_publish(1, "", "é" * 128, False, None, b"", 4096)


frames = st.one_of(
    st.builds(commands.Basic.Deliver, short_strings, tags, st.booleans(), names, short_strings),
    st.builds(commands.Basic.Ack, tags, st.booleans()),
    st.builds(commands.Basic.Nack, tags, st.booleans(), st.booleans()),
    st.builds(header.ContentHeader, st.just(0), st.integers(0, 2**40), properties),
    st.builds(body.ContentBody, st.binary(max_size=200)),
    st.builds(commands.Queue.DeclareOk, names, st.integers(0, 2**31), st.integers(0, 2**31)),
    st.builds(commands.Basic.Return, st.integers(300, 599), short_strings, names, short_strings),
    st.just(heartbeat.Heartbeat()),
)


@given(st.lists(st.tuples(st.integers(0, 2047), frames), max_size=12), st.lists(st.integers(1, 64), max_size=30))
def test_frames_read_in_any_chunks_are_pamqps(sent: list[tuple[int, object]], cuts: list[int]) -> None:
    data = b"".join(pamqp_frame.marshal(value, 0 if isinstance(value, heartbeat.Heartbeat) else channel)
                    for channel, value in sent)  # type: ignore[arg-type]
    reader = FrameReader()
    received = []
    position = 0
    for size in [*cuts, len(data)]:
        reader.feed(data[position:position + size])
        position += size
        while (frame := reader.read()) is not None:
            received.append(frame)
    assert len(received) == len(sent)
    for (channel, value), (got_channel, got) in zip(sent, received, strict=True):
        assert type(got) is type(value)
        if not isinstance(value, heartbeat.Heartbeat):
            assert got_channel == channel
        if isinstance(value, header.ContentHeader):
            assert isinstance(got, header.ContentHeader)
            assert (got.body_size, got.properties) == (value.body_size, value.properties)
        elif isinstance(value, body.ContentBody):
            assert isinstance(got, body.ContentBody)
            assert got.value == value.value
        elif not isinstance(value, heartbeat.Heartbeat):
            assert dict(got) == dict(value)  # type: ignore[call-overload]


def test_malformed_input_is_a_frame_error() -> None:
    reader = FrameReader()
    reader.feed(b"AMQP\x00\x00\x09\x01")
    with pytest.raises(FrameError, match="does not speak AMQP 0-9-1"):
        reader.read()

    reader = FrameReader()
    reader.frame_max = 4096
    reader.feed(pamqp_frame.marshal(body.ContentBody(b"x" * 4089), 1))
    with pytest.raises(FrameError, match="over frame_max"):
        reader.read()

    reader = FrameReader()
    reader.feed(pamqp_frame.marshal(commands.Basic.Ack(1, False), 1)[:-1] + b"\x00")
    with pytest.raises(FrameError, match="does not end with 0xCE"):
        reader.read()

    reader = FrameReader()
    deliver = pamqp_frame.marshal(commands.Basic.Deliver("tag", 1, False, "x", "k"), 1)
    reader.feed(deliver[:11] + b"\xff" + deliver[12:])  # the consumer tag claims 255 bytes
    with pytest.raises(FrameError, match="malformed"):
        reader.read()


def test_reconnect_delays_grow_to_the_maximum_and_stop_after_the_attempts() -> None:
    assert list(Reconnect(initial=0.5, maximum=3, factor=2, attempts=5).delays()) == [0.5, 1, 2, 3, 3]
    forever = Reconnect().delays()
    assert [next(forever) for _ in range(100)][-1] == Reconnect().maximum


def test_a_frame_of_exactly_frame_max_bytes_is_read() -> None:
    reader = FrameReader()
    reader.frame_max = 4096
    frame = pamqp_frame.marshal(body.ContentBody(b"x" * 4088), 1)  # 4088 + 8 bytes of overhead
    assert len(frame) == 4096
    reader.feed(frame[:-1])
    assert reader.read() is None  # everything but the end octet: not a frame yet
    reader.feed(frame[-1:])
    read = reader.read()
    assert read is not None
    channel, value = read
    assert channel == 1
    assert isinstance(value, body.ContentBody)
    assert value.value == b"x" * 4088
    assert reader.read() is None


def test_a_peer_answering_with_a_short_protocol_header_is_named() -> None:
    reader = FrameReader()
    reader.feed(b"AMQP\x01")
    with pytest.raises(FrameError, match=r"^the peer does not speak AMQP 0-9-1 \(it answered b'AMQP\\x01'\)$"):
        reader.read()
    reader = FrameReader()
    reader.feed(b"\x08\x00")  # the start of a frame, not a header: wait for more
    assert reader.read() is None


def test_a_frame_of_an_unknown_type_is_refused_naming_it() -> None:
    reader = FrameReader()
    reader.feed(b"\x05\x00\x07\x00\x00\x00\x00\xce")
    with pytest.raises(FrameError, match=r"^a frame of unknown type 5 on channel 7$"):
        reader.read()


def test_a_body_is_split_into_frames_of_at_most_frame_max_bytes() -> None:
    encoded = encode_publish(3, "ex", "k", True, None, b"0123456789", 12)  # room for 4 bytes a body frame
    reader = FrameReader()
    reader.feed(encoded)
    frames = []
    while (frame := reader.read()) is not None:
        frames.append(frame)
    assert [channel for channel, _ in frames] == [3] * 5
    publish, content_header, *bodies = (value for _, value in frames)
    assert isinstance(publish, commands.Basic.Publish)
    assert (publish.exchange, publish.routing_key, publish.mandatory) == ("ex", "k", True)
    assert isinstance(content_header, header.ContentHeader)
    assert content_header.body_size == 10
    assert [value.value for value in bodies] == [b"0123", b"4567", b"89"]  # type: ignore[attr-defined]


def test_names_of_255_bytes_are_the_longest_accepted() -> None:
    encoded = encode_publish(1, "e" * 255, "k" * 255, False, None, b"", 4096)
    reader = FrameReader()
    reader.feed(encoded)
    read = reader.read()
    assert read is not None
    publish = read[1]
    assert isinstance(publish, commands.Basic.Publish)
    assert (publish.exchange, publish.routing_key) == ("e" * 255, "k" * 255)
    with pytest.raises(ValueError, match=r"^exchange name 'eeee.*'\.\.\. is 256 bytes in UTF-8; AMQP allows 255$"):
        encode_publish(1, "e" * 256, "k", False, None, b"", 4096)


def test_methods_past_basic_nack_go_through_pamqp_whole() -> None:
    for method in (commands.Confirm.SelectOk(), commands.Tx.CommitOk(), commands.Channel.CloseOk(),
                   commands.Basic.RecoverOk()):
        reader = FrameReader()
        reader.feed(pamqp_frame.marshal(method, 2))
        read = reader.read()
        assert read is not None
        assert type(read[1]) is type(method)


def test_a_short_string_running_past_its_frame_is_named() -> None:
    deliver = bytearray(pamqp_frame.marshal(commands.Basic.Deliver("tag", 1, False, "x", "k"), 1))
    deliver[11] = 20  # the consumer tag claims 20 bytes; 17 are left in the frame
    reader = FrameReader()
    reader.feed(deliver)
    with pytest.raises(FrameError, match=r"^a malformed frame on channel 1: a short string runs past the end"):
        reader.read()


def test_the_limits_before_and_after_tune() -> None:
    reader = FrameReader()
    assert reader.frame_max == 131072  # until Connection.Tune sets the negotiated limit
    reader.frame_max = 4096
    reader.feed(pamqp_frame.marshal(body.ContentBody(b"x" * 4089), 1))
    with pytest.raises(FrameError, match=r"^a frame of 4097 bytes is over frame_max \(4096\)$"):
        reader.read()


def test_a_peer_answering_with_another_protocol_header_is_shown_by_it() -> None:
    reader = FrameReader()
    reader.feed(b"AMQP\x00\x00\x09\x00")
    with pytest.raises(FrameError) as info:
        reader.read()
    assert str(info.value) == "the peer does not speak AMQP 0-9-1 (it answered b'AMQP\\x00\\x00\\t\\x00')"
