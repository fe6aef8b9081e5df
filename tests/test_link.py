"""One authenticated link: handshake, batching, refusal of anything forged or out of order, heartbeats, hang-ups.

Deterministic: memory streams and ``autojump_clock`` (mock time), scripted peers that speak the wire format with
:mod:`runtime._codec`, and a real ``socketpair`` only where the kernel's own behaviour is the point.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import pathlib
import pickle
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import (
    AuthenticationFailed,
    FrameError,
    Link,
    LinkClosed,
    LinkError,
    LinkOptions,
    LinkStatistics,
    SerializationError,
    open_link,
)
from runtime._codec import (
    HEADER_SIZE,
    HELLO_SIZE,
    NONCE_SIZE,
    PROOF_SIZE,
    FrameDecoder,
    FrameEncoder,
    FrameKind,
    Role,
    dump_batch,
    hello,
    parse_hello,
    proof,
    session_keys,
)
from runtime._link import EAGER_ITEMS, RawSocketStream

pytestmark = pytest.mark.deadline(60)

SECRET = b"the cluster's shared secret"
WRONG_SECRET = b"a guess at the cluster's secret"


class CreatesFile:
    """A payload whose unpickling creates a file: what a forged frame carries."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def evil_payload(path: pathlib.Path) -> bytes:
    return pickle.dumps([CreatesFile(path)])


# -- Helpers: scripted peers and pairs of links ----------------------------------------------------------


async def receive_exactly(stream: trio.abc.Stream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, "the link hung up"
        data += chunk
    return data


@attrs.define
class ScriptedPeer:
    """The far end of a link, played by hand: it writes frames as raw bytes."""

    stream: trio.abc.Stream
    encoder: FrameEncoder
    decoder: FrameDecoder

    def frame(self, items: list[Any]) -> bytes:
        return self.encoder.encode(FrameKind.BATCH, dump_batch(items))


async def scripted_handshake(stream: trio.abc.Stream, *, secret: bytes = SECRET, role: Role = "worker",
                             glue: Callable[[FrameEncoder], bytes] = lambda encoder: b"",
                             write: Callable[[bytes], Any] | None = None) -> ScriptedPeer:
    """Read the link's hello, then answer hello + proof + ``glue(encoder)`` in one write (or through ``write``)."""
    their_nonce = parse_hello(await receive_exactly(stream, HELLO_SIZE))
    our_nonce = secrets.token_bytes(NONCE_SIZE)
    send_key, receive_key = session_keys(secret, role, our_nonce, their_nonce)
    encoder = FrameEncoder(send_key)
    data = hello(our_nonce) + proof(secret, role, their_nonce, our_nonce) + glue(encoder)
    if write is None:
        await stream.send_all(data)
    else:
        await write(data)
    return ScriptedPeer(stream, encoder, FrameDecoder(receive_key))


async def connect_to_script(ours: trio.abc.Stream, theirs: trio.abc.Stream, *, options: LinkOptions | None = None,
                            on_refused: Any = None, **script: Any) -> tuple[Link, ScriptedPeer]:
    """Connect a head link over ``ours`` while a scripted worker answers over ``theirs``."""
    peers: list[ScriptedPeer] = []

    async def play() -> None:
        peers.append(await scripted_handshake(theirs, **script))

    error: LinkError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(play)
        try:
            link = await Link.connect(ours, SECRET, role="head", options=options, on_refused=on_refused)
        except LinkError as exc:
            error = exc
    if error is not None:
        raise error
    return link, peers[0]


@asynccontextmanager
async def running(link: Link) -> AsyncIterator[Link]:
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        try:
            yield link
        finally:
            await link.aclose()


@asynccontextmanager
async def link_pair(options: LinkOptions | None = None, on_refused: Any = None,
                    streams: tuple[trio.abc.Stream, trio.abc.Stream] | None = None) -> AsyncIterator[tuple[Link, Link]]:
    """A head and a worker link over a memory stream pair (or ``streams``), both running."""
    head_stream, worker_stream = streams if streams is not None else trio.testing.memory_stream_pair()
    head_link, worker_link = await connected(head_stream, worker_stream, options=options, on_refused=on_refused)
    async with running(head_link) as head, running(worker_link) as worker:
        yield head, worker


class StallingStream(trio.abc.Stream):
    """A stream whose writes hang forever once ``stalled`` is set: a peer that stopped reading."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.stalled = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.stalled:
            await trio.sleep_forever()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def socket_streams() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return trio.SocketStream(trio.socket.from_stdlib_socket(a)), trio.SocketStream(trio.socket.from_stdlib_socket(b))


def raw_socket_streams(buffer: int | None = None) -> tuple[RawSocketStream, RawSocketStream]:
    """Both ends of a socketpair as :class:`RawSocketStream` s (what nodes use), with small buffers if given."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if buffer is not None:
        for sock in (a, b):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    return RawSocketStream(a), RawSocketStream(b)


async def connected(head_stream: trio.abc.Stream, worker_stream: trio.abc.Stream, *,
                    options: LinkOptions | None = None, on_refused: Any = None) -> tuple[Link, Link]:
    """A head and a worker link over the two streams, connected and not yet running."""
    links: dict[str, Link] = {}

    async def connect(stream: trio.abc.Stream, role: Role) -> None:
        links[role] = await Link.connect(stream, SECRET, role=role, options=options, on_refused=on_refused)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connect, head_stream, "head")
        nursery.start_soon(connect, worker_stream, "worker")
    return links["head"], links["worker"]


# -- Round trips and batching ----------------------------------------------------------------------------


async def test_batches_with_lambdas_closures_and_nested_data_round_trip(
        autojump_clock: trio.testing.MockClock) -> None:
    factor = 3

    def triple(x: int) -> int:
        return x * factor

    nested = {"refs": [("a", 1), ("b", 2)], "deep": [[[{"x": frozenset({1, 2})}]]]}
    async with link_pair() as (head, worker):
        head.send(lambda x: x + 1)
        head.send(triple)
        head.send(nested)
        increment, closure, data = await worker.receive()
        assert increment(1) == 2
        assert closure(2) == 6
        assert data == nested
        worker.send(("reply", data))
        assert await head.receive() == [("reply", nested)]


async def test_everything_queued_before_a_flush_goes_in_one_frame(autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair() as (head, worker):
        for i in range(1000):
            head.send(i)
        assert head.statistics().pending == 1000
        assert await worker.receive() == list(range(1000))
        stats = head.statistics()
        assert (stats.frames_sent, stats.items_sent, stats.pending, stats.items_per_frame) == (1, 1000, 0, 1000.0)
        assert worker.statistics().frames_received == 1
        assert worker.statistics().items_received == 1000


async def test_order_is_kept_across_many_flushes(autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair() as (head, worker):
        for chunk in range(50):
            for i in range(chunk):
                head.send((chunk, i))
            await trio.lowlevel.checkpoint()
        received: list[Any] = []
        while len(received) < sum(range(50)):
            received.extend(await worker.receive())
        assert received == [(chunk, i) for chunk in range(50) for i in range(chunk)]


async def test_send_never_blocks_even_when_the_peer_reads_nothing(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stalling = StallingStream(ours)
    link, _peer = await connect_to_script(stalling, theirs)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        stalling.stalled = True
        link.send("first")
        await trio.testing.wait_all_tasks_blocked()  # the writer is stuck writing "first"
        for i in range(10_000):
            link.send(i)
        assert link.statistics().pending == 10_000
        assert repr(link) == "<Link head->worker open frames=0/0 items=0/0 pending=10000>"
        nursery.cancel_scope.cancel()


async def test_aclose_flushes_what_is_queued_and_ends_the_peers_iteration(
        autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair() as (head, worker):
        head.send("last words")
        await head.aclose()
        assert head.state == "closed"
        assert head.error is None
        assert [batch async for batch in worker] == [["last words"]]
        assert worker.state == "closed"
        assert worker.error is None
        with pytest.raises(LinkClosed, match="closed by this side"):
            head.send("too late")
        with pytest.raises(LinkClosed, match="closed by the head"):
            worker.send("too late")
        with pytest.raises(LinkClosed, match="closed by the head"):
            await worker.receive()


async def test_statistics_and_repr_show_the_state(autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair() as (head, worker):
        head.send("a")
        head.send("b")
        await worker.receive()
        stats = head.statistics()
        assert isinstance(stats, LinkStatistics)
        assert (stats.role, stats.state, stats.frames_sent, stats.items_sent, stats.refused) == (
            "head", "open", 1, 2, 0)
        assert stats.bytes_sent == worker.statistics().bytes_received > 0
        assert repr(head) == "<Link head->worker open frames=1/0 items=2/0 pending=0>"
        assert repr(worker) == "<Link worker->head open frames=0/1 items=0/2 pending=0>"
    assert repr(head) == "<Link head->worker closed frames=1/0 items=2/0 pending=0>"
    assert LinkStatistics("head", "open", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0).items_per_frame == 0.0


# -- Bytes glued or split anyhow ---------------------------------------------------------------------------


async def test_a_frame_glued_to_the_handshake_in_the_same_read_is_parsed(
        autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    # The worker's hello, proof and first frame arrive in one read; nothing else ever comes.
    link, _peer = await connect_to_script(
        ours, theirs, glue=lambda encoder: encoder.encode(FrameKind.BATCH, dump_batch(["glued"])))
    async with running(link):
        with trio.fail_after(1):  # a link waiting for more bytes would hang here
            assert await link.receive() == ["glued"]
        assert link.statistics().bytes_received > 0


def peer_bytes_in_chunks(cuts: list[int]) -> list[Any]:
    """Run a head link against a scripted worker whose whole answer (hello, proof, three frames) is cut at
    ``cuts``, each piece arriving in a read of its own; return the batches the link received."""

    async def main() -> list[Any]:
        with trio.fail_after(10):  # mock time: a link waiting for bytes that never come fails at once
            return await exchange()

    async def exchange() -> list[Any]:
        ours, theirs = trio.testing.memory_stream_pair()

        async def write_in_pieces(data: bytes) -> None:
            points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
            for start, end in itertools.pairwise(points):
                await theirs.send_all(data[start:end])
                await trio.testing.wait_all_tasks_blocked()  # the link reads this piece alone

        def three_frames(encoder: FrameEncoder) -> bytes:
            return b"".join(encoder.encode(FrameKind.BATCH, dump_batch([n, "x" * n])) for n in (1, 20, 300))

        link, _peer = await connect_to_script(ours, theirs, glue=three_frames, write=write_in_pieces)
        received: list[Any] = []
        async with running(link):
            while len(received) < 3:
                received.append(await link.receive())
        return received

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


EXPECTED = [[1, "x"], [20, "x" * 20], [300, "x" * 300]]


@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
@settings(max_examples=60, deadline=None)
def test_the_peers_bytes_cut_anywhere_make_the_same_batches(cuts: list[int]) -> None:
    assert peer_bytes_in_chunks(cuts) == EXPECTED


@pytest.mark.parametrize("piece", [1, 7, 35, 36, 37, 68, 69])
def test_the_peers_bytes_in_pieces_of_n_make_the_same_batches(piece: int) -> None:
    """Cuts around the hello (36 bytes) and the proof (32 more) as well as every ``piece`` bytes."""
    assert peer_bytes_in_chunks(list(range(piece, 2000, piece))) == EXPECTED


# -- Forged, oversized, replayed: refused before anything is unpickled ------------------------------------


async def test_a_frame_with_a_wrong_tag_breaks_the_link_unopened(
        autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "pwned"
    ours, theirs = trio.testing.memory_stream_pair()
    link, peer = await connect_to_script(ours, theirs)
    async with running(link):
        await theirs.send_all(peer.frame(["before"]))
        assert await link.receive() == ["before"]
        forged = FrameEncoder(b"k" * 32).encode(FrameKind.BATCH, evil_payload(path))
        with caplog.at_level(logging.INFO, logger="actors"):
            await theirs.send_all(forged)
            await link.wait_closed()
        assert link.state == "broken"
        assert isinstance(link.error, AuthenticationFailed)
        with pytest.raises(AuthenticationFailed, match="wrong tag"):
            await link.receive()
        with pytest.raises(LinkClosed, match="is broken: frame claiming sequence number 0"):
            link.send("anything")
    assert not path.exists()
    [record] = [r for r in caplog.records if r.name == "actors"]
    assert record.levelno == logging.WARNING
    assert "link head->worker broken: frame claiming sequence number 0" in record.getMessage()


async def test_a_forged_frame_sent_before_the_handshake_is_never_opened(
        autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pwned"
    ours, theirs = trio.testing.memory_stream_pair()
    forged = FrameEncoder(b"k" * 32).encode(FrameKind.BATCH, evil_payload(path))
    await theirs.send_all(forged)
    with pytest.raises(AuthenticationFailed, match="not a link of version 1"):
        await Link.connect(ours, SECRET, role="head")
    assert not path.exists()
    assert await receive_exactly(theirs, HELLO_SIZE)  # our hello; then the stream was closed
    assert await theirs.receive_some() == b""


async def test_an_impostor_with_a_wrong_secret_gets_nothing_unpickled(
        autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pwned"
    ours, theirs = trio.testing.memory_stream_pair()
    with pytest.raises(AuthenticationFailed, match="the worker's handshake proof does not match"):
        # It answers in the right shape, and glues a frame signed with its own key to its proof.
        await connect_to_script(ours, theirs, secret=WRONG_SECRET,
                                glue=lambda encoder: encoder.encode(FrameKind.BATCH, evil_payload(path)))
    assert not path.exists()


async def test_two_heads_do_not_accept_each_other(autojump_clock: trio.testing.MockClock) -> None:
    a, b = trio.testing.memory_stream_pair()
    errors: list[BaseException] = []

    async def connect(stream: trio.abc.Stream) -> None:
        try:
            await Link.connect(stream, SECRET, role="head")
        except AuthenticationFailed as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connect, a)
        nursery.start_soon(connect, b)
    assert len(errors) == 2
    assert all("it is not the worker" in str(error) for error in errors)


@pytest.mark.parametrize(("options", "seconds"), [(LinkOptions(handshake_timeout=2), 2.0), (None, 10.0)])
async def test_a_peer_that_never_proves_itself_times_out(autojump_clock: trio.testing.MockClock,
                                                         options: LinkOptions | None, seconds: float) -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    with pytest.raises(AuthenticationFailed, match=f"did not complete the handshake within {seconds:g} s") as caught:
        await Link.connect(ours, SECRET, role="head", options=options)  # None: the default, 10 s
    assert trio.current_time() == pytest.approx(seconds)
    assert isinstance(caught.value.__cause__, trio.TooSlowError)


async def test_a_peer_that_hangs_up_during_the_handshake(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    await theirs.aclose()
    with pytest.raises(LinkClosed, match="during the handshake"):
        await Link.connect(ours, SECRET, role="worker")


async def test_an_oversized_frame_is_refused_before_its_payload_is_read(
        autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link, peer = await connect_to_script(ours, theirs, options=LinkOptions(max_frame=1024))
    async with running(link):
        before = link.statistics().bytes_received
        frame = peer.encoder.encode(FrameKind.BATCH, b"x" * 1025)  # legitimately signed, but too big
        await theirs.send_all(frame[:HEADER_SIZE])  # the payload never comes
        with trio.fail_after(1):
            await link.wait_closed()
        assert isinstance(link.error, FrameError)
        assert "declares a payload of 1025 bytes, over the limit of 1024 bytes" in str(link.error)
        assert link.statistics().bytes_received - before == HEADER_SIZE


@pytest.mark.parametrize(("order", "delivered_first"), [((0, 1, 0), [0, 1]), ((1, 0), []), ((0, 2), [0])],
                         ids=["replayed", "reordered", "lost"])
async def test_replayed_reordered_or_lost_frames_break_the_link(
        autojump_clock: trio.testing.MockClock, order: tuple[int, ...], delivered_first: list[int]) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link, peer = await connect_to_script(ours, theirs)
    frames = [peer.frame([n]) for n in range(3)]
    async with running(link):
        await theirs.send_all(b"".join(frames[n] for n in order))
        await link.wait_closed()
        assert isinstance(link.error, FrameError)
        assert [(await link.receive())[0] for _ in delivered_first] == delivered_first
        with pytest.raises(FrameError, match="expected sequence number"):
            await link.receive()


async def test_a_checked_frame_that_does_not_unpickle_here_leaves_the_link_open(
        autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link, peer = await connect_to_script(ours, theirs)
    async with running(link):
        await theirs.send_all(peer.encoder.encode(FrameKind.BATCH, b"not a pickle") + peer.frame(["next"]))
        with pytest.raises(SerializationError, match="cannot unpickle a batch of 12 bytes"):
            await link.receive()
        assert await link.receive() == ["next"]
        assert link.state == "open"


# -- Heartbeats and hang-ups -------------------------------------------------------------------------------


async def test_heartbeats_keep_an_idle_link_alive(autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair(LinkOptions(heartbeat=1.0, dead_after=3)) as (head, worker):
        await trio.sleep(50)
        assert (head.state, worker.state) == ("open", "open")
        for link in (head, worker):
            stats = link.statistics()
            assert 49 <= stats.heartbeats_sent <= 50
            assert 49 <= stats.heartbeats_received <= 50
            assert stats.frames_sent == 0
        head.send("still here")
        assert await worker.receive() == ["still here"]


async def test_traffic_replaces_heartbeats(autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair(LinkOptions(heartbeat=1.0)) as (head, worker):
        for _ in range(20):
            head.send("tick")
            await worker.receive()
            await trio.sleep(0.5)
        assert head.statistics().heartbeats_sent == 0
        assert head.statistics().frames_sent == 20


async def test_a_silent_peer_is_presumed_dead(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link, _peer = await connect_to_script(ours, theirs, options=LinkOptions(heartbeat=1.0, dead_after=3))
    start = trio.current_time()
    async with running(link):
        await link.wait_closed()
        assert trio.current_time() - start == pytest.approx(3.0)
        assert isinstance(link.error, LinkClosed)
        assert "the worker sent nothing for 3 s (3 heartbeat intervals of 1 s): presumed dead" in str(link.error)
        assert link.statistics().heartbeats_sent >= 2  # we kept talking; it did not


async def test_without_heartbeats_silence_is_not_death(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link, _peer = await connect_to_script(ours, theirs)
    async with running(link):
        await trio.sleep(50)
        assert link.state == "open"
        assert link.statistics().heartbeats_sent == 0


async def test_a_peer_hanging_up_without_a_goodbye_breaks_the_link(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link, peer = await connect_to_script(ours, theirs)
    async with running(link):
        await theirs.send_all(peer.frame(["last"]))
        await theirs.aclose()
        assert await anext(link) == ["last"]
        with pytest.raises(LinkClosed, match="hung up without a goodbye"):  # iteration raises, not ends
            await anext(link)
        assert link.state == "broken"
        with pytest.raises(LinkClosed, match="hung up without a goodbye"):
            link.send("anything")


async def test_a_connection_reset_by_a_real_socket_is_a_hang_up() -> None:
    ours, theirs = socket_streams()
    link, _peer = await connect_to_script(ours, theirs)
    async with running(link):
        # The link's proof is still unread on the far socket: closing it resets the connection.
        await theirs.aclose()
        await link.wait_closed()
        assert isinstance(link.error, LinkClosed)
        assert "hung up" in str(link.error)
        cause = link.error.__cause__
        assert isinstance(cause, trio.BrokenResourceError)
        assert isinstance(cause.__cause__, ConnectionResetError)
        assert cause.__cause__.errno == errno.ECONNRESET


# -- Real sockets --------------------------------------------------------------------------------------------


async def test_a_round_trip_over_a_real_socketpair() -> None:
    count = 10_000
    async with link_pair(streams=socket_streams()) as (head, worker):

        async def echo() -> None:
            async for batch in worker:
                for item in batch:
                    worker.send(("echo", item))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            for start in range(0, count, 100):
                for i in range(start, start + 100):
                    head.send({"n": i, "fn": (lambda n: lambda: n)(i)})
                await trio.lowlevel.checkpoint()
            received: list[Any] = []
            while len(received) < count:
                received.extend(await head.receive())
            assert [item["n"] for _, item in received] == list(range(count))
            assert received[-1][1]["fn"]() == count - 1
            assert head.statistics().items_per_frame >= 100
            await head.aclose()
        assert worker.state == "closed"


@pytest.mark.parametrize("streams", [socket_streams, raw_socket_streams], ids=["trio-socket", "raw-socket"])
async def test_a_burst_arrives_whole_and_in_order_over_either_socket_stream(
        streams: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]) -> None:
    async with link_pair(streams=streams()) as (head, worker):
        for i in range(3 * EAGER_ITEMS + 7):
            head.send(i)
        received: list[Any] = []
        while len(received) < 3 * EAGER_ITEMS + 7:
            received.extend(await worker.receive())
        assert received == list(range(3 * EAGER_ITEMS + 7))


# -- Raw sockets: no scheduler turn a write or a read does not need ------------------------------------------


async def test_a_raw_socket_stream_writes_what_the_socket_cannot_take_at_once_after_waiting() -> None:
    ours, theirs = raw_socket_streams(buffer=4096)
    data = bytes(range(256)) * 4096  # 1 MiB through a few KiB of buffers
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ours.send_all, data)
        while len(received) < len(data):
            chunk = await theirs.receive_some(65536)
            assert chunk
            received += chunk
    assert received == data
    await ours.aclose()
    assert await theirs.receive_some() == b""  # the end of the stream
    await theirs.aclose()


async def test_a_raw_socket_stream_reports_a_gone_peer_and_its_own_close() -> None:
    ours, theirs = raw_socket_streams()
    with pytest.raises(ValueError, match="max_bytes must be at least 1, got 0"):
        await ours.receive_some(0)
    await theirs.aclose()
    with pytest.raises(trio.BrokenResourceError, match="socket error: BrokenPipeError"):
        await ours.send_all(b"to no one")
    await ours.aclose()
    await ours.aclose()  # twice is harmless
    with pytest.raises(trio.ClosedResourceError):
        await ours.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await ours.receive_some()


async def test_closing_a_raw_socket_stream_wakes_its_blocked_reader() -> None:
    ours, theirs = raw_socket_streams()
    raised: list[BaseException] = []

    async def read() -> None:
        try:
            await ours.receive_some()
        except trio.ClosedResourceError as exc:
            raised.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        await ours.aclose()
    await theirs.aclose()
    assert len(raised) == 1


async def test_on_a_raw_socket_the_first_item_is_written_in_the_senders_turn() -> None:
    async with link_pair(streams=raw_socket_streams()) as (head, worker):
        await trio.testing.wait_all_tasks_blocked()  # the writer has caught up
        head.send("first")
        assert head.statistics().frames_sent == 1  # before any checkpoint: written by send() itself
        for i in range(10):
            head.send(i)
        assert (head.statistics().frames_sent, head.statistics().pending) == (1, 10)  # these wait for the writer
        assert await worker.receive() == ["first"]
        assert await worker.receive() == list(range(10))
        assert head.statistics().frames_sent == 2
        assert head.statistics().items_per_frame == 5.5  # 11 items in 2 frames


async def test_on_a_raw_socket_a_long_burst_is_written_every_eager_items() -> None:
    async with link_pair(streams=raw_socket_streams()) as (head, worker):
        await trio.testing.wait_all_tasks_blocked()
        head.send("first")
        for i in range(3 * EAGER_ITEMS):
            head.send(i)
        stats = head.statistics()
        assert (stats.frames_sent, stats.items_sent, stats.pending) == (4, 3 * EAGER_ITEMS + 1, 0)
        received: list[Any] = []
        while len(received) < 4:
            received.append(await worker.receive())
        assert received == [["first"], *(list(range(n, n + EAGER_ITEMS)) for n in range(0, 3 * EAGER_ITEMS,
                                                                                          EAGER_ITEMS))]


async def test_a_write_in_the_senders_turn_that_the_socket_cannot_finish_is_finished_first_by_the_writer() -> None:
    async with link_pair(streams=raw_socket_streams(buffer=4096)) as (head, worker):
        await trio.testing.wait_all_tasks_blocked()
        big = bytes(1_000_000)
        head.send(big)
        assert head.statistics().bytes_sent < len(big)  # the socket took only part of it
        head.send("after")
        assert await worker.receive() == [big]
        assert await worker.receive() == ["after"]
        assert head.statistics().bytes_sent > len(big)


async def test_with_on_batch_the_reader_hands_each_batch_over_in_its_own_turn(
        autojump_clock: trio.testing.MockClock) -> None:
    head, worker = await connected(*trio.testing.memory_stream_pair())
    got: list[list[Any]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(head.run)
        await nursery.start(functools.partial(worker.run, on_batch=got.append))
        head.send(1)
        head.send(2)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [[1, 2]]
        assert worker.statistics().items_received == 2
        await head.aclose()
        await worker.wait_closed()
    assert (worker.state, worker.error) == ("closed", None)


def _explode() -> None:
    raise ValueError("this does not load here")


class _LoadsBadly:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


@pytest.mark.parametrize(("item", "on_batch", "expected"), [
    ("fine", lambda items: 1 / 0, "the handler of the head's batches failed: ZeroDivisionError"),
    (_LoadsBadly(), lambda items: None, "a batch from the head does not unpickle here: cannot unpickle a batch"),
])
async def test_with_on_batch_a_failing_handler_or_batch_breaks_the_link(
        autojump_clock: trio.testing.MockClock, item: Any, on_batch: Callable[[list[Any]], object],
        expected: str) -> None:
    head, worker = await connected(*trio.testing.memory_stream_pair())
    async with trio.open_nursery() as nursery:
        await nursery.start(head.run)
        await nursery.start(functools.partial(worker.run, on_batch=on_batch))
        head.send(item)
        await worker.wait_closed()
        assert worker.state == "broken"
        assert expected in str(worker.error)
        nursery.cancel_scope.cancel()


async def test_a_writer_stuck_on_a_peer_that_reads_nothing_does_not_hide_its_silence(
        autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stalling = StallingStream(ours)
    link, _peer = await connect_to_script(stalling, theirs, options=LinkOptions(heartbeat=1.0, dead_after=3))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        stalling.stalled = True
        link.send("stuck")
        await link.wait_closed()
        assert trio.current_time() - start == pytest.approx(3.0)
        assert "presumed dead" in str(link.error)


# -- Refusing what cannot be pickled or is too big ----------------------------------------------------------


async def test_an_unpicklable_item_is_refused_and_the_rest_is_sent(autojump_clock: trio.testing.MockClock) -> None:
    refused: list[tuple[Any, SerializationError]] = []
    lock = threading.Lock()
    async with link_pair(on_refused=lambda item, error: refused.append((item, error))) as (head, worker):
        head.send("before")
        head.send(lock)
        head.send("after")
        assert await worker.receive() == ["before", "after"]
        [(item, error)] = refused
        assert item is lock
        assert isinstance(error, SerializationError)
        assert "cannot pickle <unlocked _thread.lock" in str(error)
        assert head.statistics().refused == 1
        assert head.state == "open"


async def test_a_flush_of_nothing_but_refused_items_sends_no_frame(autojump_clock: trio.testing.MockClock) -> None:
    refused: list[Any] = []
    async with link_pair(on_refused=lambda item, error: refused.append(item)) as (head, worker):
        head.send(threading.Lock())
        await trio.testing.wait_all_tasks_blocked()
        stats = head.statistics()
        assert (stats.frames_sent, stats.items_sent, stats.refused, len(refused)) == (0, 0, 1, 1)
        head.send("next")
        assert await worker.receive() == ["next"]
        assert head.statistics().items_sent == 1


async def test_an_unpicklable_item_without_a_taker_breaks_the_link_naming_it(
        autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair() as (head, worker):
        head.send("before")
        head.send(threading.Lock())
        await head.wait_closed()
        assert head.state == "broken"
        assert isinstance(head.error, LinkClosed)
        assert isinstance(head.error.__cause__, SerializationError)
        assert "cannot pickle item 1 of a batch of 2, <unlocked _thread.lock" in str(head.error)
        with pytest.raises(LinkClosed, match="hung up without a goodbye"):
            await worker.receive()


async def test_a_flush_over_the_frame_limit_is_split_and_a_huge_item_refused(
        autojump_clock: trio.testing.MockClock) -> None:
    refused: list[Any] = []
    options = LinkOptions(max_frame=1000)
    async with link_pair(options, on_refused=lambda item, error: refused.append((item, str(error)))) \
            as (head, worker):
        items = [f"{i:03d}" + "x" * 96 for i in range(40)]
        for item in items[:20]:
            head.send(item)
        head.send("y" * 5000)
        for item in items[20:]:
            head.send(item)
        received: list[Any] = []
        while len(received) < len(items):
            received.extend(await worker.receive())
        assert received == items
        assert head.statistics().frames_sent > 4
        [(big, reason)] = refused
        assert big == "y" * 5000
        assert "over the frame limit of 1000 bytes" in reason


# -- Cancellation -------------------------------------------------------------------------------------------


async def test_connect_cancelled_midway_closes_the_stream(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    with trio.move_on_after(1) as scope:
        await Link.connect(ours, SECRET, role="head")
    assert scope.cancelled_caught
    assert len(await receive_exactly(theirs, HELLO_SIZE)) == HELLO_SIZE
    assert await theirs.receive_some() == b""


async def test_receive_cancelled_midway_takes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair() as (head, worker):
        with trio.move_on_after(1) as scope:
            await worker.receive()
        assert scope.cancelled_caught
        head.send("after the cancel")
        assert await worker.receive() == ["after the cancel"]
        assert worker.state == "open"


async def test_aclose_cancelled_midway_closes_abruptly(autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stalling = StallingStream(ours)
    link, _peer = await connect_to_script(stalling, theirs)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        stalling.stalled = True
        link.send("never written")
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(5) as scope:
            await link.aclose()
        assert scope.cancelled_caught
        assert link.state == "closed"
    assert await receive_exactly(theirs, PROOF_SIZE)  # our proof; then the end, without a goodbye
    assert await theirs.receive_some() == b""
    await link.aclose()  # closing a closed link does nothing


async def test_cancelling_run_closes_the_link_and_the_peer_sees_a_hang_up(
        autojump_clock: trio.testing.MockClock) -> None:
    head, worker = await connected(*trio.testing.memory_stream_pair())
    async with running(worker):
        async with trio.open_nursery() as nursery:
            await nursery.start(head.run)
            nursery.cancel_scope.cancel()
        assert head.state == "closed"
        with pytest.raises(LinkClosed, match="closed abruptly: the task running it was cancelled"):
            head.send("anything")
        with pytest.raises(LinkClosed, match="hung up without a goodbye"):
            await worker.receive()


async def test_open_link_closes_on_the_way_out(autojump_clock: trio.testing.MockClock) -> None:
    head_stream, worker_stream = trio.testing.memory_stream_pair()

    async def worker_side(task_status: trio.TaskStatus[list[Any]]) -> None:
        got: list[Any] = []
        task_status.started(got)
        async with open_link(worker_stream, SECRET, role="worker") as link:
            async for batch in link:
                got.extend(batch)

    async with trio.open_nursery() as nursery:
        got = await nursery.start(worker_side)
        async with open_link(head_stream, SECRET, role="head") as head:
            head.send(1)
            head.send(2)
        assert head.state == "closed"
    assert got == [1, 2]


# -- Options and arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "match"), [
    ({"max_frame": 0}, "max_frame must be an int from 1 to 4294967295 bytes, got 0"),
    ({"heartbeat": 0}, "heartbeat must be a positive, finite number of seconds, got 0"),
    ({"heartbeat": float("inf")}, "heartbeat must be a positive, finite number of seconds, got inf"),
    ({"dead_after": 0}, "dead_after must be an int of at least 1, got 0"),
    ({"handshake_timeout": -1}, "handshake_timeout must be a positive, finite number of seconds, got -1"),
    ({"receive_buffer": 0}, "receive_buffer must be an int of at least 1, got 0"),
    ({"read_size": 1.5}, "read_size must be an int of at least 1, got 1.5"),
])
def test_invalid_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LinkOptions(**options)


def test_option_defaults() -> None:
    options = LinkOptions()
    assert options.heartbeat is None
    assert options.silence_limit == float("inf")
    assert LinkOptions(heartbeat=0.5, dead_after=4).silence_limit == 2.0


async def test_bad_secrets_and_roles_are_refused_before_anything_is_sent(
        autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    with pytest.raises(ValueError, match="at least 16 bytes, got 5"):
        await Link.connect(ours, b"short", role="head")
    with pytest.raises(ValueError, match="'head' or 'worker', got 'boss'"):
        await Link.connect(ours, SECRET, role="boss")  # type: ignore[arg-type]
    with trio.move_on_after(1):
        assert await theirs.receive_some() == b"never"  # nothing was sent


async def test_run_twice_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with link_pair() as (head, _worker):
        with pytest.raises(RuntimeError, match=r"<Link head->worker open .*> is already running"):
            await head.run()


def test_errors_are_link_errors() -> None:
    for cls in (LinkClosed, FrameError, AuthenticationFailed):
        assert issubclass(cls, LinkError)


def test_the_link_benchmark_measures_every_figure() -> None:
    """``benchmarks/link.py`` runs (quick sizes) and reports finite, positive figures; their values are noise here."""
    from benchmarks import link as link_benchmark

    figures = link_benchmark.run(quick=True)
    assert set(figures) == {"batched_items_per_s", "batched_items_per_frame", "unbatched_items_per_s",
                            "round_trips_per_s", "pickle_ns_per_item", "hmac_ns_per_item", "decode_ns_per_item"}
    assert all(0 < value < float("inf") for value in figures.values())
    assert figures["batched_items_per_frame"] > 1
