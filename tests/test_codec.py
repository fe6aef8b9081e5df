"""Link frames: batches pickled once and tagged; the decoder checks size, tag and sequence before unpickling."""

from __future__ import annotations

import itertools
import pathlib
import pickle
import struct
import sys
import threading
import types
from typing import Any

import attrs
import cloudpickle  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import ActorError, AuthenticationFailed, FrameError, LinkClosed, LinkError, SerializationError
from runtime._codec import (
    HEADER_SIZE,
    HELLO_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    Frame,
    FrameDecoder,
    FrameEncoder,
    FrameKind,
    check_proof,
    check_secret,
    dump_batch,
    dumps,
    hello,
    load_batch,
    parse_hello,
    peer_of,
    proof,
    session_keys,
    show,
    split_batch,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
SECRET = b"the cluster's shared secret"


class CreatesFile:
    """A payload whose unpickling creates a file: what a forged frame would carry."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def batch_frames(*batches: list[Any], key: bytes = KEY) -> bytes:
    encoder = FrameEncoder(key)
    return b"".join(encoder.encode(FrameKind.BATCH, dump_batch(batch)) for batch in batches)


def decode(data: bytes, *, key: bytes = KEY, max_frame: int = 1 << 20) -> list[Frame]:
    decoder = FrameDecoder(key, max_frame=max_frame)
    decoder.feed(data)
    return list(decoder)


# -- Round trips ------------------------------------------------------------------------------------------


def test_a_batch_with_lambdas_closures_and_nested_data_round_trips() -> None:
    offset = 10

    def add(x: int) -> int:
        return x + offset

    nested = {"a": [1, (2, 3), {"b": frozenset({4})}], "c": b"\x00\xff", "d": None}
    batch = [lambda x: x * 2, add, nested, ("tell", 42, None, 1.5), "é" * 3]
    [frame] = decode(batch_frames(batch))
    assert frame.kind == FrameKind.BATCH
    assert frame.seq == 0
    double, closure, data, envelope, text = load_batch(frame.payload)
    assert double(21) == 42
    assert closure(1) == 11
    assert data == nested
    assert envelope == ("tell", 42, None, 1.5)
    assert text == "ééé"


def test_frame_layout_is_header_payload_tag() -> None:
    payload = dump_batch([1, 2, 3])
    frame = FrameEncoder(KEY).encode(FrameKind.BATCH, payload)
    assert len(frame) == HEADER_SIZE + len(payload) + TAG_SIZE
    assert HEADER_SIZE == 16
    assert TAG_SIZE == 32
    magic, version, kind, seq, length = struct.unpack("!2sBBQI", frame[:HEADER_SIZE])
    assert (magic, version, kind, seq, length) == (b"TA", 1, FrameKind.BATCH, 0, len(payload))


def test_sequence_numbers_count_every_frame_kind() -> None:
    encoder = FrameEncoder(KEY)
    data = (encoder.encode(FrameKind.BATCH, dump_batch(["a"])) + encoder.encode(FrameKind.HEARTBEAT)
            + encoder.encode(FrameKind.BATCH, dump_batch(["b"])) + encoder.encode(FrameKind.GOODBYE))
    frames = decode(data)
    assert [(f.kind, f.seq) for f in frames] == [
        (FrameKind.BATCH, 0), (FrameKind.HEARTBEAT, 1), (FrameKind.BATCH, 2), (FrameKind.GOODBYE, 3)]
    assert [f.payload for f in frames if f.kind != FrameKind.BATCH] == [b"", b""]
    assert encoder.next_seq == 4


def test_frames_glued_in_one_read_all_come_out_and_a_partial_one_waits() -> None:
    data = batch_frames(["one"], ["two"], ["three"])
    decoder = FrameDecoder(KEY)
    decoder.feed(data[:-5])
    assert [load_batch(f.payload) for f in decoder] == [["one"], ["two"]]
    assert decoder.buffered == len(data) - 5 - len(batch_frames(["one"], ["two"]))
    decoder.feed(data[-5:])
    assert [load_batch(f.payload) for f in decoder] == [["three"]]
    assert decoder.buffered == 0
    assert decoder.next_seq == 3
    assert repr(decoder) == "<FrameDecoder next_seq=3 buffered=0>"


STREAM = batch_frames([1, "x" * 40], [], [lambda: 3, {"k": [1, 2]}], ["last"])


def frames_of(chunks: list[bytes]) -> list[tuple[int, int, bytes]]:
    decoder = FrameDecoder(KEY)
    out = []
    for chunk in chunks:
        decoder.feed(chunk)
        out.extend((f.kind, f.seq, f.payload) for f in decoder)
    assert decoder.buffered == 0
    return out


WHOLE = frames_of([STREAM])


def test_a_stream_cut_in_two_at_every_boundary_decodes_the_same() -> None:
    for cut in range(len(STREAM) + 1):
        assert frames_of([STREAM[:cut], STREAM[cut:]]) == WHOLE, cut


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_a_stream_cut_anywhere_any_number_of_times_decodes_the_same(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    assert frames_of([STREAM[a:b] for a, b in itertools.pairwise(points)]) == WHOLE


def test_byte_by_byte_decodes_the_same() -> None:
    assert frames_of([STREAM[i:i + 1] for i in range(len(STREAM))]) == WHOLE


# -- What is refused, before anything is unpickled ---------------------------------------------------------


def test_the_forged_payload_does_create_a_file_when_unpickled(tmp_path: pathlib.Path) -> None:
    """The control for the tests below: unpickling this payload really does have an effect."""
    path = tmp_path / "control"
    [created] = pickle.loads(pickle.dumps([CreatesFile(path)]))
    created.close()
    assert path.exists()


def test_a_frame_tagged_with_another_key_is_refused_unopened(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pwned"
    forged = FrameEncoder(OTHER_KEY).encode(FrameKind.BATCH, pickle.dumps([CreatesFile(path)]))
    decoder = FrameDecoder(KEY)
    decoder.feed(forged)
    with pytest.raises(AuthenticationFailed, match=r"wrong tag.*nothing in it was unpickled"):
        decoder.next_frame()
    assert not path.exists()


@pytest.mark.parametrize("position", [0, 5, HEADER_SIZE + 3, -1], ids=["magic", "seq", "payload", "tag"])
def test_a_flipped_bit_anywhere_is_refused(position: int) -> None:
    frame = bytearray(batch_frames(["payload"]))
    frame[position] ^= 0x01
    with pytest.raises(LinkError):
        decode(bytes(frame))


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header = struct.pack("!2sBBQI", b"TA", 1, FrameKind.BATCH, 0, 2**32 - 1)
    decoder = FrameDecoder(KEY, max_frame=1024)
    decoder.feed(header)  # only the header: the 4 GiB payload is neither read nor waited for
    with pytest.raises(FrameError, match="4294967295 bytes, over the limit of 1024 bytes; refused before reading"):
        decoder.next_frame()


def test_the_size_limit_is_inclusive() -> None:
    payload = dump_batch(["x" * 100])
    frame = FrameEncoder(KEY).encode(FrameKind.BATCH, payload)
    assert len(decode(frame, max_frame=len(payload))) == 1
    with pytest.raises(FrameError, match="over the limit"):
        decode(frame, max_frame=len(payload) - 1)


def test_an_encoder_refuses_a_payload_over_its_limit() -> None:
    encoder = FrameEncoder(KEY, max_frame=8)
    with pytest.raises(ValueError, match="a payload of 9 bytes is over the frame limit of 8 bytes"):
        encoder.encode(FrameKind.BATCH, b"x" * 9)
    assert encoder.next_seq == 0


def test_a_replayed_frame_is_refused(tmp_path: pathlib.Path) -> None:
    encoder = FrameEncoder(KEY)
    first = encoder.encode(FrameKind.BATCH, dump_batch(["once"]))
    decoder = FrameDecoder(KEY)
    decoder.feed(first + first)
    assert load_batch(decoder.next_frame().payload) == ["once"]  # type: ignore[union-attr]
    with pytest.raises(FrameError, match="frame 0 is a replay: expected sequence number 1"):
        decoder.next_frame()


def test_reordered_frames_are_refused() -> None:
    encoder = FrameEncoder(KEY)
    first = encoder.encode(FrameKind.BATCH, dump_batch([1]))
    second = encoder.encode(FrameKind.BATCH, dump_batch([2]))
    with pytest.raises(FrameError, match=r"frame 1 is out of order .* expected sequence number 0"):
        decode(second + first)


def test_a_lost_frame_is_refused() -> None:
    encoder = FrameEncoder(KEY)
    first = encoder.encode(FrameKind.BATCH, dump_batch([1]))
    encoder.encode(FrameKind.BATCH, dump_batch([2]))
    third = encoder.encode(FrameKind.BATCH, dump_batch([3]))
    with pytest.raises(FrameError, match="frame 2 is out of order"):
        decode(first + third)


def test_a_frame_from_the_other_direction_is_refused() -> None:
    """Each direction has its own key, so the peer cannot be sent its own frames back."""
    head_send, head_receive = session_keys(SECRET, "head", b"h" * 32, b"w" * 32)
    echoed = FrameEncoder(head_send).encode(FrameKind.BATCH, dump_batch(["mine"]))
    with pytest.raises(AuthenticationFailed):
        decode(echoed, key=head_receive)


@pytest.mark.parametrize(("header", "match"), [
    (struct.pack("!2sBBQI", b"GE", 1, 1, 0, 0), "not a frame of link version 1"),
    (struct.pack("!2sBBQI", b"TA", 2, 1, 0, 0), "not a frame of link version 1"),
    (struct.pack("!2sBBQI", b"TA", 1, 9, 0, 0), "unknown kind 9"),
    (struct.pack("!2sBBQI", b"TA", 1, FrameKind.HEARTBEAT, 0, 5), "heartbeat frame 0 carries 5 bytes"),
])
def test_malformed_headers_are_refused(header: bytes, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        decode(header)


def test_a_decoder_that_refused_a_frame_refuses_everything_after(tmp_path: pathlib.Path) -> None:
    decoder = FrameDecoder(KEY)
    decoder.feed(batch_frames(["x"], key=OTHER_KEY))
    with pytest.raises(AuthenticationFailed) as first:
        decoder.next_frame()
    with pytest.raises(AuthenticationFailed) as again:
        decoder.feed(batch_frames(["good"]))
    assert again.value is not first.value
    assert str(again.value) == str(first.value)
    with pytest.raises(AuthenticationFailed):
        decoder.next_frame()
    assert decoder.buffered == 0
    assert "failed=AuthenticationFailed" in repr(decoder)


def test_good_frames_before_a_bad_one_are_given_out_first() -> None:
    data = batch_frames(["good"]) + batch_frames(["bad"], key=OTHER_KEY)
    decoder = FrameDecoder(KEY)
    decoder.feed(data)
    frames = iter(decoder)
    assert load_batch(next(frames).payload) == ["good"]
    with pytest.raises(AuthenticationFailed):
        next(frames)


@pytest.mark.parametrize("max_frame", [0, -1, 2**32, 1.5, True])
def test_invalid_frame_limits_are_refused(max_frame: Any) -> None:
    with pytest.raises(ValueError, match="max_frame must be an int from 1 to 4294967295"):
        FrameDecoder(KEY, max_frame=max_frame)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(TypeError, match="non-empty bytes"):
        FrameEncoder(b"")


# -- Pickling ------------------------------------------------------------------------------------------------


def test_an_unpicklable_item_is_named() -> None:
    lock = threading.Lock()
    with pytest.raises(SerializationError, match=r"cannot pickle item 1 of a batch of 3, <unlocked _thread.lock") \
            as caught:
        dump_batch(["fine", lock, "also fine"])
    assert isinstance(caught.value.__cause__, TypeError)


def test_split_batch_keeps_the_picklable_items_in_order() -> None:
    lock = threading.Lock()
    kept, refused = split_batch([1, lock, 2, lock, 3])
    assert kept == [1, 2, 3]
    assert [item for item, _ in refused] == [lock, lock]
    assert all(isinstance(error, SerializationError) and "_thread.lock" in str(error) for _, error in refused)


def test_a_payload_that_does_not_unpickle_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="cannot unpickle a batch of 3 bytes"):
        load_batch(b"abc")
    with pytest.raises(SerializationError, match="must unpickle to a list, got tuple"):
        load_batch(pickle.dumps((1, 2)))


# -- Handshake pieces ---------------------------------------------------------------------------------------


def test_hello_carries_the_nonce() -> None:
    nonce = bytes(range(NONCE_SIZE))
    message = hello(nonce)
    assert len(message) == HELLO_SIZE
    assert parse_hello(message) == nonce


@pytest.mark.parametrize("message", [b"GET / HTTP/1.1\r\n" + b"x" * 20, b"TA\x02H" + b"n" * 32, b"short"])
def test_anything_but_a_hello_is_refused(message: bytes) -> None:
    with pytest.raises(AuthenticationFailed, match="not a link of version 1"):
        parse_hello(message)


def test_proofs_check_only_with_the_same_secret_and_the_right_role() -> None:
    head_nonce, worker_nonce = b"h" * 32, b"w" * 32
    worker_answer = proof(SECRET, "worker", head_nonce, worker_nonce)
    check_proof(SECRET, "head", head_nonce, worker_nonce, worker_answer)
    with pytest.raises(AuthenticationFailed, match="holds another secret"):
        check_proof(b"another secret, same length", "head", head_nonce, worker_nonce, worker_answer)
    # The worker's own proof reflected back to it is not a head's proof...
    with pytest.raises(AuthenticationFailed, match="it is not the head"):
        check_proof(SECRET, "worker", worker_nonce, head_nonce, proof(SECRET, "worker", head_nonce, worker_nonce))
    # ... and a second head (both ends claiming "head") is not a worker.
    with pytest.raises(AuthenticationFailed, match="it is not the worker"):
        check_proof(SECRET, "head", head_nonce, worker_nonce, proof(SECRET, "head", head_nonce, worker_nonce))


def test_an_echoed_nonce_is_refused() -> None:
    nonce = b"n" * 32
    with pytest.raises(AuthenticationFailed, match="echoed our nonce"):
        check_proof(SECRET, "head", nonce, nonce, proof(SECRET, "worker", nonce, nonce))


def test_both_ends_derive_the_same_keys_one_per_direction() -> None:
    head_nonce, worker_nonce = b"h" * 32, b"w" * 32
    head_send, head_receive = session_keys(SECRET, "head", head_nonce, worker_nonce)
    worker_send, worker_receive = session_keys(SECRET, "worker", worker_nonce, head_nonce)
    assert (head_send, head_receive) == (worker_receive, worker_send)
    assert head_send != head_receive
    assert session_keys(SECRET, "head", b"x" * 32, worker_nonce)[0] != head_send


def test_secrets_and_roles_are_checked() -> None:
    assert check_secret(b"s" * 16) == b"s" * 16
    with pytest.raises(ValueError, match="at least 16 bytes, got 3"):
        check_secret(b"abc")
    with pytest.raises(TypeError, match="must be bytes, got str"):
        check_secret("a string secret!!")  # type: ignore[arg-type]
    assert peer_of("head") == "worker"
    assert peer_of("worker") == "head"
    with pytest.raises(ValueError, match="'head' or 'worker', got 'peer'"):
        peer_of("peer")  # type: ignore[arg-type]


# -- The errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [LinkError, LinkClosed, FrameError, AuthenticationFailed], ids=lambda c: c.__name__)
def test_link_errors_say_when_they_are_raised_and_pickle(cls: type[LinkError]) -> None:
    assert issubclass(cls, ActorError)
    assert issubclass(cls, LinkError)
    assert cls.__doc__
    assert cls.__doc__.strip()
    error = cls("frame 3 is a replay: expected sequence number 4")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)


# -- The fast pickler and when cloudpickle takes over ------------------------------------------------------


@pytest.fixture
def cloudpickle_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every value :func:`cloudpickle.dumps` is called with from here on."""
    calls: list[Any] = []
    real = cloudpickle.dumps

    def counting(value: Any, *args: Any, **kwargs: Any) -> bytes:
        calls.append(value)
        result: bytes = real(value, *args, **kwargs)
        return result

    monkeypatch.setattr(cloudpickle, "dumps", counting)
    return calls


def _module_level(x: int) -> int:
    return x + 1


def test_dumps_takes_the_standard_pickler_where_it_means_the_same(cloudpickle_calls: list[Any]) -> None:
    value = [1, "two", (3.0, None), {"four": b"5"}, _module_level]
    assert pickle.loads(dumps(value)) == value
    assert cloudpickle_calls == []


def test_dumps_leaves_lambdas_closures_and_local_classes_to_cloudpickle(cloudpickle_calls: list[Any]) -> None:
    factor = 3

    class Local:
        def __init__(self) -> None:
            self.n = 4

    value = [lambda x: x * factor, Local()]
    triple, local = pickle.loads(dumps(value))
    assert (triple(2), local.n) == (6, 4)
    assert cloudpickle_calls == [value]


def test_dumps_leaves_what_is_defined_in_main_to_cloudpickle(monkeypatch: pytest.MonkeyPatch,
                                                             cloudpickle_calls: list[Any]) -> None:
    main = sys.modules["__main__"]
    defined_in_main = type("DefinedInMain", (), {"__module__": "__main__"})
    monkeypatch.setattr(main, "DefinedInMain", defined_in_main, raising=False)
    assert pickle.dumps(defined_in_main) != b""  # the standard pickler would take it, by a name no worker has
    value = defined_in_main()
    assert type(pickle.loads(dumps(value))).__name__ == "DefinedInMain"
    assert cloudpickle_calls == [value]


def test_dumps_leaves_modules_registered_by_value_to_cloudpickle(monkeypatch: pytest.MonkeyPatch,
                                                                 cloudpickle_calls: list[Any]) -> None:
    module = types.ModuleType("registered_by_value")
    exec("def answer():\n    return 42\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "registered_by_value", module)
    assert dumps(module.answer) == pickle.dumps(module.answer, protocol=pickle.HIGHEST_PROTOCOL)
    assert cloudpickle_calls == []
    cloudpickle.register_pickle_by_value(module)
    try:
        payload = dumps(module.answer)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert cloudpickle_calls == [module.answer]
    monkeypatch.delitem(sys.modules, "registered_by_value")
    assert pickle.loads(payload)() == 42  # by value: it loads where the module is not importable


# -- system messages: frozen values that cross the link as they are --------------------------------------------


def test_system_messages_are_frozen_values_with_their_defaults() -> None:
    import math

    from runtime._envelope import WATCH_MARK, ChildExited, Halt, Rebuilt, Reincarnate, Stop

    stop = Stop(None, "external")
    assert stop.deadline == math.inf  # no deadline unless one is given
    assert Rebuilt("child").incarnation == 0  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(Reincarnate(ValueError("x"), 1.5))).delay == 1.5
    assert ChildExited("c", 2) == ChildExited("c", 2)  # type: ignore[arg-type]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Halt(None).error = ValueError()  # type: ignore[misc]
    assert repr(WATCH_MARK) == "WATCH_MARK"


def test_every_system_message_compares_by_value_and_pickles() -> None:
    from runtime._envelope import (
        ChildExited,
        ChildFailed,
        Halt,
        Halted,
        Rebuild,
        Rebuilt,
        Reincarnate,
        Resume,
        Stop,
        Unwatch,
        Watch,
    )

    error = KeyError("k")
    messages: list[object] = [
        Stop(error, "parent", 3.0), ChildFailed("c", error, 1), ChildExited("c", 1), Resume(), Reincarnate(error, 0.5),
        Halt(error), Halted("c"), Rebuild(None), Rebuilt("c", 2), Watch("w"), Unwatch("w"),  # type: ignore[arg-type]
    ]
    for message in messages:
        values = [getattr(message, field.name) for field in attrs.fields(type(message))]
        copy = type(message)(*values)
        assert copy == message  # a value: equal to another with the same fields, and hashable alike
        assert hash(copy) == hash(message)
        assert repr(pickle.loads(pickle.dumps(message))) == repr(message)


def test_the_wire_constants_a_peer_must_agree_on() -> None:
    assert len(hello(bytes(32))) == 36  # magic, version, 'H', then a 32-byte nonce
    with pytest.raises(ValueError, match="a nonce is 32 bytes, got 33"):
        hello(bytes(33))
    # Frames of up to 64 MiB by default, on both ends.
    assert FrameEncoder(b"key").max_frame == 64 * 1024 * 1024
    assert repr(FrameEncoder(b"key")) == f"<FrameEncoder next_seq=0 max_frame={64 * 1024 * 1024}>"


def test_values_in_link_errors_are_cut_at_80_characters() -> None:
    assert show("x" * 100) == repr("x" * 100)[:80] + "…"
    assert show("y" * 78) == repr("y" * 78)  # exactly 80 characters: shown whole


def test_frame_kinds_have_fixed_wire_values() -> None:
    assert [(kind.name, kind.value) for kind in FrameKind] == [("BATCH", 1), ("HEARTBEAT", 2), ("GOODBYE", 3)]
    frame = FrameEncoder(KEY).encode(FrameKind.BATCH, b"x")
    assert frame[:4] == b"TA\x01\x01"  # magic, version 1, kind 1


def test_a_peer_that_is_not_a_link_is_shown_by_its_first_16_bytes() -> None:
    opening = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"
    with pytest.raises(AuthenticationFailed) as info:
        parse_hello(opening)
    assert str(info.value) == f"the peer is not a link of version 1: it opened with {opening[:16]!r}"


def test_decoders_are_resources_made_empty() -> None:
    first, second = FrameDecoder(KEY), FrameDecoder(KEY)
    assert first != second  # two streams, never equal however alike their state
    assert len({first, second}) == 2
    for state in ("buffer", "next_seq", "length", "error"):
        with pytest.raises(TypeError, match=state):
            FrameDecoder(KEY, **{state: None})
