"""One authenticated link between two nodes over a byte stream: batches of items each way, in order.

A link is made over any :class:`trio.abc.Stream`: in real use one end of a ``socketpair(AF_UNIX)`` wrapped in a
:class:`trio.SocketStream`, in tests a :func:`trio.testing.memory_stream_pair`. :meth:`Link.connect` runs the
handshake: each end sends a random nonce, then proves it holds the shared secret by answering
HMAC(secret, its role || the other's nonce || its own nonce), and each direction's frames are then tagged with a key
derived from both nonces (:mod:`runtime._codec`). Nothing the peer sends is decoded before its proof is checked.

After the handshake, :meth:`Link.send` queues an item without blocking; the link's writer task writes one frame
per flush with everything queued since the last one (batching is what makes a link fast: one pickle, one tag, one
write for many items), and its reader task checks every frame the peer sends before :meth:`Link.receive` unpickles
it. Both tasks run in :meth:`Link.run`, which the owner starts in a nursery (or :func:`open_link` does it), so no
task outlives its nursery.

A link ends in one of two states. ``"closed"``: this end closed it (:meth:`Link.aclose`, which flushes what is
queued and says goodbye), or the peer said goodbye. ``"broken"``: the peer hung up without a goodbye (end of
stream, connection reset), fell silent past the heartbeat limit, or sent a frame that is malformed, oversized,
forged or out of sequence. Breaking is logged on the ``"actors"`` logger and never raised out of :meth:`Link.run`;
:attr:`Link.error` keeps the :class:`~runtime.LinkError`, and :meth:`Link.receive` raises it once the batches that
arrived before it are taken.
"""

from __future__ import annotations

import errno
import logging
import math
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import attrs
import trio

from ._codec import (
    DEFAULT_MAX_FRAME,
    HELLO_SIZE,
    NONCE_SIZE,
    PROOF_SIZE,
    Frame,
    FrameDecoder,
    FrameEncoder,
    FrameKind,
    Role,
    check_max_frame,
    check_proof,
    check_secret,
    dump_batch,
    hello,
    load_batch,
    parse_hello,
    peer_of,
    proof,
    session_keys,
    show,
    split_batch,
)
from ._exceptions import AuthenticationFailed, LinkClosed, LinkError, SerializationError

__all__ = ["Link", "LinkOptions", "LinkState", "LinkStatistics", "RawSocketStream", "open_link"]

logger = logging.getLogger("actors")

LinkState = Literal["open", "closing", "closed", "broken"]
"""``"open"``; ``"closing"`` while :meth:`Link.aclose` flushes; ``"closed"`` on purpose; ``"broken"`` by a failure."""

_STREAM_ERRORS: Final = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
"""What a stream raises when the other end is gone (trio turns a connection reset into ``BrokenResourceError``)."""


class RawSocketStream(trio.abc.Stream):
    """A stream over a connected stdlib socket that spends no scheduler turn it does not need: what links run on.

    :class:`trio.SocketStream` pays a checkpoint before and after every operation, which on a link is three or four
    turns of the scheduler for each frame each way; a round trip between two nodes is a chain of such turns, so
    they are its latency. Here :meth:`send_all` writes at once when the socket takes the bytes (it waits only when
    the socket is full) and so is *not* a checkpoint; :meth:`receive_some` always waits for the socket to be
    readable first, so a reader that loops on it gives the other tasks a turn between reads, however fast the peer
    writes. Socket errors come out as :class:`trio.BrokenResourceError`, as from trio's streams.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False

    @property
    def socket(self) -> socket.socket:
        """The socket under the stream."""
        return self._sock

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``; wait only while the socket is full. Not a checkpoint when it writes at once."""
        sock = self._sock
        with memoryview(data) as view:
            sent = 0
            total = len(view)
            while sent < total:
                self._check_open()
                try:
                    sent += sock.send(view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
                except OSError as exc:
                    raise _broken(exc) from exc

    async def wait_send_all_might_not_block(self) -> None:
        self._check_open()
        await trio.lowlevel.wait_writable(self._sock)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Wait until the socket is readable, then read up to ``max_bytes`` (64 KiB by default); ``b""`` at its end."""
        sock = self._sock
        size = 65536 if max_bytes is None else max_bytes
        if size < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes!r}")
        while True:
            self._check_open()
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(size)
            except BlockingIOError:  # woken without data: wait again
                continue
            except OSError as exc:
                raise _broken(exc) from exc

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")


def _broken(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("the socket was closed")
    return trio.BrokenResourceError(f"socket error: {exc!r}")


EAGER_ITEMS: Final = 32
"""Items queued in one turn of the scheduler after which a sender writes them at once (see :meth:`Link.send`).

Small enough that the peer starts on a burst while this side still makes it, so the two sides take turns less:
64 pipelined asks to a worker went from 76-91k to 90-127k a second when it went from 256 to 32 (quiet machine,
alternated runs of ``python -m benchmarks.workers``), and a long burst of tells kept its rate."""


def check_positive_seconds(name: str, *, optional: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")

    return check


def check_positive_int(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int of at least 1, got {value!r}")

    return check


@attrs.frozen
class LinkOptions:
    """The policy of a link: its frame size limit, its heartbeats, and how long a handshake may take.

    Both ends of a link should be given the same options: each refuses frames over its own ``max_frame`` and
    splits what it sends to fit the same limit.
    """

    max_frame: int = attrs.field(default=DEFAULT_MAX_FRAME, validator=lambda _i, _a, v: check_max_frame(v))
    """The largest payload a frame may carry, in bytes. A bigger frame from the peer breaks the link (refused
    from its header, before the payload is read); a flush bigger than this is split, and a single item that
    pickles bigger than this is refused with :class:`~runtime.SerializationError`."""
    heartbeat: float | None = attrs.field(default=None, validator=check_positive_seconds("heartbeat", optional=True))
    """Seconds: after this long without writing anything, the link writes an empty frame. ``None``: no
    heartbeats, and silence never breaks the link."""
    dead_after: int = attrs.field(default=3, validator=check_positive_int("dead_after"))
    """Heartbeat intervals without a byte from the peer after which the link breaks as dead."""
    handshake_timeout: float = attrs.field(default=10.0, validator=check_positive_seconds("handshake_timeout"))
    """Seconds :meth:`Link.connect` waits for the peer to prove itself before it fails."""
    receive_buffer: int = attrs.field(default=16, validator=check_positive_int("receive_buffer"))
    """Checked batches held for :meth:`Link.receive`; when that many wait, the reader stops reading the stream,
    so a slow receiver slows the peer's writes down instead of growing memory."""
    read_size: int = attrs.field(default=65536, validator=check_positive_int("read_size"))
    """Bytes asked of the stream per read."""

    @property
    def silence_limit(self) -> float:
        """Seconds of silence from the peer after which the link breaks (infinite without heartbeats)."""
        return math.inf if self.heartbeat is None else self.heartbeat * self.dead_after


@attrs.frozen
class LinkStatistics:
    """What a link has done so far, as returned by :meth:`Link.statistics`."""

    role: Role
    """This end's role."""
    state: LinkState
    frames_sent: int
    """Batch frames written (heartbeats and the goodbye not counted)."""
    frames_received: int
    """Batch frames from the peer that passed their checks."""
    items_sent: int
    """Items written, in all the batch frames."""
    items_received: int
    """Items :meth:`Link.receive` has unpickled."""
    bytes_sent: int
    """Bytes written after the handshake: frames, heartbeats and the goodbye."""
    bytes_received: int
    """Bytes read after the handshake."""
    heartbeats_sent: int
    heartbeats_received: int
    pending: int
    """Items queued by :meth:`Link.send` and not yet written."""
    refused: int
    """Items dropped at a flush because they could not be pickled (each reported to ``on_refused``)."""

    @property
    def items_per_frame(self) -> float:
        """Mean items per batch frame written: how well flushes batch (0.0 before the first)."""
        return self.items_sent / self.frames_sent if self.frames_sent else 0.0


Refused = Callable[[Any, SerializationError], object]
"""Called at a flush with an item that could not be pickled (or pickles over the frame limit) and the error."""


@attrs.define(eq=False)
class Link(trio.abc.AsyncResource):
    """One end of an authenticated link: :meth:`send` items, :meth:`receive` the peer's batches, in order.

    Made by :meth:`connect` (after the handshake), run by :meth:`run` in a nursery, closed by :meth:`aclose`;
    :func:`open_link` does all three for an ``async with`` block. ``async for batch in link`` takes batches until
    the link closes: it ends when the link was closed on purpose (by either end) and raises the
    :class:`~runtime.LinkError` that broke it otherwise.
    """

    _stream: trio.abc.Stream
    _role: Role
    _encoder: FrameEncoder
    _decoder: FrameDecoder
    _options: LinkOptions
    _on_refused: Refused | None
    _glued: bytes
    """Bytes that arrived glued to the end of the handshake: the start of the first frames."""
    _state: LinkState = attrs.field(default="open", init=False)
    _reason: LinkError | None = attrs.field(default=None, init=False)
    """Why the link is closed or broken; ``None`` while it is open."""
    _pending: list[Any] = attrs.field(factory=list, init=False)
    _unsent: bytes = attrs.field(default=b"", init=False)
    """The end of frames a write in a sender's turn could not finish: the writer writes it before anything else."""
    _armed: bool = attrs.field(default=True, init=False)
    """The writer has caught up since the last write in a sender's turn: the next item may be written at once."""
    _direct: socket.socket | None = attrs.field(default=None, init=False)
    """The socket under a :class:`RawSocketStream`, which a sender's turn can write to without waiting."""
    _wake: trio.Event = attrs.field(factory=trio.Event, init=False)
    _write_lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _closed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _frames_in: trio.MemorySendChannel[Frame] = attrs.field(init=False)
    _frames_out: trio.MemoryReceiveChannel[Frame] = attrs.field(init=False)
    _loops: trio.CancelScope | None = attrs.field(default=None, init=False)
    _on_batch: Callable[[list[Any]], object] | None = attrs.field(default=None, init=False)
    """Given to :meth:`run`: takes each batch in the reader's own turn, in place of :meth:`receive`."""
    _running: bool = attrs.field(default=False, init=False)
    _stream_closed: bool = attrs.field(default=False, init=False)
    _last_sent: float = attrs.field(init=False)
    _last_received: float = attrs.field(init=False)
    _beat: bool = attrs.field(default=False, init=False)
    """A heartbeat is due: the heartbeat task asks the writer for one."""
    _frames_sent: int = attrs.field(default=0, init=False)
    _frames_received: int = attrs.field(default=0, init=False)
    _items_sent: int = attrs.field(default=0, init=False)
    _items_received: int = attrs.field(default=0, init=False)
    _bytes_sent: int = attrs.field(default=0, init=False)
    _bytes_received: int = attrs.field(default=0, init=False)
    _heartbeats_sent: int = attrs.field(default=0, init=False)
    _heartbeats_received: int = attrs.field(default=0, init=False)
    _refused: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self._frames_in, self._frames_out = trio.open_memory_channel[Frame](self._options.receive_buffer)
        self._last_sent = self._last_received = trio.current_time()
        if isinstance(self._stream, RawSocketStream):
            self._direct = self._stream.socket

    @classmethod
    async def connect(cls, stream: trio.abc.Stream, secret: bytes, *, role: Role,
                      options: LinkOptions | None = None, on_refused: Refused | None = None) -> Link:
        """Authenticate the peer at the other end of ``stream`` and return this end of the link.

        Both ends prove they hold ``secret`` (bytes, at least 16) and play different ``role`` s, within
        ``options.handshake_timeout`` seconds; nothing the peer sent is decoded before that. The link is then
        open: items can be sent at once, and :meth:`run` writes and reads them. ``on_refused(item, error)`` is
        called for each item that a flush cannot pickle (or that pickles over the frame limit); the rest of the
        flush is still sent. Without it, such an item breaks the link.

        Raises :class:`~runtime.AuthenticationFailed` when the peer fails to prove itself or runs out of time,
        and :class:`~runtime.LinkClosed` when the stream breaks; either way the stream is closed. Cancelled
        midway, the stream is closed too.
        """
        check_secret(secret)
        peer = peer_of(role)
        options = LinkOptions() if options is None else options
        buffer = bytearray()
        connected = False
        try:
            try:
                with trio.fail_after(options.handshake_timeout):
                    send_key, receive_key = await _handshake(stream, secret, role, buffer, options.read_size)
            except trio.TooSlowError as exc:
                error: LinkError = _caused(AuthenticationFailed(
                    f"the {peer} did not complete the handshake within {options.handshake_timeout:g} s"), exc)
            except _STREAM_ERRORS as exc:
                error = _caused(LinkClosed(f"the stream to the {peer} broke during the handshake: {exc!r}"), exc)
            except LinkError as exc:
                error = exc
            else:
                link = cls(stream, role, FrameEncoder(send_key, max_frame=options.max_frame),
                           FrameDecoder(receive_key, max_frame=options.max_frame), options, on_refused,
                           bytes(buffer))
                connected = True
                return link
            logger.warning("link %s->%s refused: %s", role, peer, error)
            raise error
        finally:
            if not connected:
                await trio.aclose_forcefully(stream)

    # -- Sending -------------------------------------------------------------------------------------------

    def send(self, item: Any) -> None:
        """Queue ``item`` for the peer; it never blocks. The writer sends it with the next flush.

        On a :class:`RawSocketStream`, the first item after the writer has caught up, and every
        ``EAGER_ITEMS``-th item of a long burst, is written at once, in the caller's turn, with what is queued
        before it: the peer starts on it a turn of the scheduler sooner, and on a long burst while the rest is
        still being sent. Items sent in the same turn after it wait for the writer, which sends them together.

        Items reach the peer's :meth:`receive` in the order they were sent, unless the link closes or breaks
        first: what is still queued then is not sent (:attr:`LinkStatistics.pending` counts it), and a frame
        written just before a break may never be read. Raises
        :class:`~runtime.LinkClosed` once the link is closing, closed or broken.
        """
        if self._state != "open":
            raise self._closed_error()
        pending = self._pending
        pending.append(item)
        queued = len(pending)
        if queued == 1 or queued >= EAGER_ITEMS:  # else the writer was woken for the first of them already
            if self._direct is not None and (self._armed or queued >= EAGER_ITEMS) and not self._unsent:
                self._write_now()
            self._wake.set()

    # -- Receiving -----------------------------------------------------------------------------------------

    async def receive(self) -> list[Any]:
        """The next batch from the peer: the items of one frame, unpickled, in the order they were sent.

        Waits for one if none has arrived. Batches that arrived before the link closed are still given out;
        after them, raises :class:`~runtime.LinkClosed` for a link closed on purpose or by a hang-up, or the
        :class:`~runtime.LinkError` that broke it. A frame that passed its checks but does not unpickle here
        raises :class:`~runtime.SerializationError`; the link stays open and the next call gets the next batch.
        Cancelled, it takes nothing: the batch stays for the next call.
        """
        try:
            frame = await self._frames_out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._closed_error(for_receive=True) from None
        items = load_batch(frame.payload)
        self._items_received += len(items)
        return items

    def __aiter__(self) -> Link:
        return self

    async def __anext__(self) -> list[Any]:
        try:
            return await self.receive()
        except LinkClosed:
            if self._state == "closed":
                raise StopAsyncIteration from None
            raise

    # -- Running and closing -------------------------------------------------------------------------------

    async def run(self, *, on_batch: Callable[[list[Any]], object] | None = None,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write and read the link's frames until it closes; start it in a nursery (``nursery.start(link.run)``).

        Runs the writer (one frame per flush of what :meth:`send` queued, and heartbeats) and the reader (checks
        the peer's frames and hands batches to :meth:`receive`, and notices a silent peer). Returns when the link
        is closed or broken; a broken link is logged and its error kept in :attr:`error`, never raised here.
        Cancelled, it closes the link at once, without a goodbye: the peer sees a hang-up.

        With ``on_batch``, the reader unpickles each batch and calls ``on_batch(items)`` itself, at once, in
        place of :meth:`receive` (which must not be used then): a batch reaches its handler without a turn of the
        scheduler in between. ``on_batch`` must not block; an exception from it breaks the link, and so does a
        batch that does not unpickle.
        """
        if self._running:
            raise RuntimeError(f"{self!r} is already running")
        self._running = True
        self._on_batch = on_batch
        try:
            async with trio.open_nursery() as nursery:
                self._loops = nursery.cancel_scope
                if self._state not in ("open", "closing"):
                    nursery.cancel_scope.cancel()
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self._read_loop)
                if self._options.heartbeat is not None:
                    nursery.start_soon(self._heartbeat_loop, self._options.heartbeat)
                task_status.started()
        finally:
            self._loops = None
            if self._state == "open":  # cancelled from outside
                self._finish("closed", LinkClosed(f"link {self._role}->{self._peer} was closed abruptly: the task "
                                                  "running it was cancelled"))
            if self._state != "closing":  # else aclose() is writing its goodbye and closes the stream after
                await self._close_stream()

    async def aclose(self) -> None:
        """Close the link on purpose: flush what is queued, say goodbye, close the stream.

        :meth:`send` raises from the moment it is called. Waits for a write in progress, so a peer that reads
        nothing can hold it up: bound it with ``trio.move_on_after``. Cancelled midway, it still closes the link,
        abruptly (the stream is closed without the rest of the flush, and the peer sees a hang-up). Closing a
        closed link does nothing; closing a closing one waits for it to be closed.
        """
        if self._state != "open":
            if self._state == "closing":
                await self._closed.wait()
            else:
                await trio.lowlevel.checkpoint()
            return
        self._state = "closing"
        try:
            async with self._write_lock:
                if self._loops is not None:
                    self._loops.cancel()  # under the lock: the writer is not halfway through a frame
                if self._state == "closing":
                    await self._flush()
                    await self._write(self._encoder.encode(FrameKind.GOODBYE))
        except _STREAM_ERRORS as exc:
            self._break(_caused(LinkClosed(f"the {self._peer} was gone before the goodbye: {exc!r}"), exc))
        except SerializationError as exc:
            self._break(_caused(LinkClosed(f"link closed while flushing: {exc}"), exc))
        finally:
            if self._state == "closing":
                self._finish("closed", LinkClosed(f"link {self._role}->{self._peer} was closed by this side"))
            await self._close_stream()

    async def wait_closed(self) -> None:
        """Wait until the link is closed or broken (at once if it is); then :attr:`error` says how it broke."""
        await self._closed.wait()

    # -- State ---------------------------------------------------------------------------------------------

    @property
    def role(self) -> Role:
        """This end's role: ``"head"`` or ``"worker"``."""
        return self._role

    @property
    def state(self) -> LinkState:
        """``"open"``, ``"closing"``, ``"closed"`` (on purpose, by either end) or ``"broken"``."""
        return self._state

    @property
    def error(self) -> LinkError | None:
        """The error that broke the link; ``None`` while it is open or after it was closed on purpose."""
        return self._reason if self._state == "broken" else None

    def statistics(self) -> LinkStatistics:
        """Frames, items and bytes each way, heartbeats, and what is queued, as a frozen value."""
        return LinkStatistics(
            role=self._role, state=self._state, frames_sent=self._frames_sent, frames_received=self._frames_received,
            items_sent=self._items_sent, items_received=self._items_received, bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received, heartbeats_sent=self._heartbeats_sent,
            heartbeats_received=self._heartbeats_received, pending=len(self._pending), refused=self._refused)

    def __repr__(self) -> str:
        return (f"<Link {self._role}->{self._peer} {self._state} frames={self._frames_sent}/{self._frames_received}"
                f" items={self._items_sent}/{self._items_received} pending={len(self._pending)}>")

    @property
    def _peer(self) -> Role:
        return peer_of(self._role)

    # -- The writer ----------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        try:
            while True:
                if not self._pending and not self._beat and not self._unsent:
                    self._armed = True
                    self._wake = trio.Event()
                    await self._wake.wait()
                lock = self._write_lock
                try:
                    lock.acquire_nowait()  # no turn of the scheduler when aclose() is not writing
                except trio.WouldBlock:
                    await lock.acquire()
                try:
                    if self._pending or self._unsent:
                        await self._flush()
                    elif self._beat:
                        await self._write(self._encoder.encode(FrameKind.HEARTBEAT))
                        self._heartbeats_sent += 1
                    self._beat = False
                finally:
                    lock.release()
        except _STREAM_ERRORS as exc:
            self._break(_caused(LinkClosed(f"the {self._peer} is gone: writing failed with {exc!r}"), exc))
        except SerializationError as exc:
            self._break(_caused(LinkClosed(f"link broken by an item no one takes refusals for: {exc}"), exc))

    async def _heartbeat_loop(self, heartbeat: float) -> None:
        """Ask the writer for a heartbeat after ``heartbeat`` seconds without a write, and break the link once the
        peer has sent nothing for the silence limit. It never writes itself, so a write blocked on a peer that
        reads nothing cannot keep it from noticing that the peer says nothing either."""
        limit = self._options.silence_limit
        while True:
            now = trio.current_time()
            if now >= self._last_received + limit:
                self._break(LinkClosed(
                    f"the {self._peer} sent nothing for {limit:g} s ({self._options.dead_after} heartbeat "
                    f"intervals of {heartbeat:g} s): presumed dead"))
                return
            beat_at = self._last_sent + heartbeat
            if now >= beat_at and not self._beat:
                self._beat = True
                self._wake.set()
            if self._beat:  # asked for: look again a period on
                beat_at = now + heartbeat
            await trio.sleep_until(min(beat_at, self._last_received + limit))

    async def _flush(self) -> None:
        """Write the rest of an unfinished write, then everything queued: one frame, or several over the limit."""
        if self._unsent:
            data, self._unsent = self._unsent, b""
            await self._write(data)
        data, frames, items = self._take_frames()
        if data:
            await self._write(data)
            self._frames_sent += frames
            self._items_sent += items

    def _take_frames(self) -> tuple[bytes, int, int]:
        """The frames for everything queued, how many and how many items they carry; the queue is then empty."""
        if not self._pending:
            return b"", 0, 0
        items, self._pending = self._pending, []
        frames: list[bytes] = []
        sent = self._encode(items, frames)
        return b"".join(frames), len(frames), sent

    def _write_now(self) -> None:
        """Write what is queued in the caller's turn, as far as the socket takes it, unless a write is under way
        (the writer's, or this one's own, called again from ``on_refused``)."""
        lock = self._write_lock
        if lock.locked() or self._unsent:
            return
        self._armed = False
        lock.acquire_nowait()
        try:
            data, frames, items = self._take_frames()
            if not data:
                return
            self._frames_sent += frames
            self._items_sent += items
            try:
                written = self._direct.send(data)  # type: ignore[union-attr]
            except OSError:  # full (BlockingIOError) or gone: the writer writes it, or meets the error itself
                written = 0
            self._bytes_sent += written
            self._last_sent = trio.current_time()
            if written < len(data):
                self._unsent = data[written:]
        except SerializationError as exc:
            self._break(_caused(LinkClosed(f"link broken by an item no one takes refusals for: {exc}"), exc))
        finally:
            lock.release()

    def _encode(self, items: list[Any], frames: list[bytes]) -> int:
        """Append the frames for ``items`` to ``frames``; return how many items they carry.

        The fast path is one pickle of the whole list. A refused item is reported to ``on_refused`` (or raised
        without one), and a list that pickles over the frame limit is split in halves until each part fits.
        """
        try:
            payload = dump_batch(items)
        except SerializationError:
            if self._on_refused is None:
                raise
            items, refused = split_batch(items)
            for item, error in refused:
                self._refuse(item, error)
            if not items:
                return 0
            payload = dump_batch(items)
        if len(payload) <= self._encoder.max_frame:
            frames.append(self._encoder.encode(FrameKind.BATCH, payload))
            return len(items)
        if len(items) == 1:
            self._refuse(items[0], SerializationError(
                f"{show(items[0])} pickles to {len(payload)} bytes, over the frame limit of "
                f"{self._encoder.max_frame} bytes"))
            return 0
        half = len(items) // 2
        return self._encode(items[:half], frames) + self._encode(items[half:], frames)

    def _refuse(self, item: Any, error: SerializationError) -> None:
        if self._on_refused is None:
            raise error
        self._refused += 1
        self._on_refused(item, error)

    async def _write(self, data: bytes) -> None:
        await self._stream.send_all(data)
        self._bytes_sent += len(data)
        self._last_sent = trio.current_time()

    # -- The reader ----------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        read_size = self._options.read_size
        on_batch = self._on_batch
        data: bytes | bytearray = self._glued
        self._glued = b""
        try:
            while True:
                if data:
                    self._bytes_received += len(data)
                    self._decoder.feed(data)
                    for frame in self._decoder:
                        if frame.kind == FrameKind.BATCH:
                            self._frames_received += 1
                            if on_batch is None:
                                await self._frames_in.send(frame)
                            else:
                                items = load_batch(frame.payload)
                                self._items_received += len(items)
                                on_batch(items)
                        elif frame.kind == FrameKind.HEARTBEAT:
                            self._heartbeats_received += 1
                        else:
                            logger.info("link %s->%s closed by the %s", self._role, self._peer, self._peer)
                            self._finish("closed", LinkClosed(
                                f"link {self._role}->{self._peer} was closed by the {self._peer}"))
                            return
                data = await self._stream.receive_some(read_size)
                self._last_received = trio.current_time()
                if not data:
                    raise LinkClosed(f"the {self._peer} hung up without a goodbye (end of stream)")
        except SerializationError as exc:  # only with on_batch: receive() raises it to its caller instead
            self._break(_caused(LinkClosed(f"a batch from the {self._peer} does not unpickle here: {exc}"), exc))
        except LinkError as exc:
            self._break(exc)
        except _STREAM_ERRORS as exc:
            self._break(_caused(LinkClosed(f"the {self._peer} hung up: reading failed with {exc!r}"), exc))
        except Exception as exc:  # on_batch raised
            self._break(_caused(LinkClosed(f"the handler of the {self._peer}'s batches failed: {exc!r}"), exc))

    # -- Ending --------------------------------------------------------------------------------------------

    def _break(self, error: LinkError) -> None:
        """The link failed: keep why, log it, stop both tasks. A link already closed stays as it was."""
        if self._state not in ("open", "closing"):
            return
        log = logger.info if isinstance(error, LinkClosed) else logger.warning
        log("link %s->%s broken: %s", self._role, self._peer, error)
        self._finish("broken", error)

    def _finish(self, state: LinkState, reason: LinkError) -> None:
        self._state = state
        self._reason = reason
        self._frames_in.close()  # receive() gives out what is buffered, then raises the reason
        if self._loops is not None:
            self._loops.cancel()
        self._closed.set()

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            await trio.aclose_forcefully(self._stream)

    def _closed_error(self, *, for_receive: bool = False) -> LinkError:
        reason = self._reason
        if reason is None:  # closing: aclose() has begun
            return LinkClosed(f"link {self._role}->{self._peer} is closing")
        if for_receive or isinstance(reason, LinkClosed):
            return _caused(type(reason)(*reason.args), reason.__cause__)
        return _caused(LinkClosed(f"link {self._role}->{self._peer} is broken: {reason}"), reason)


def _caused(error: LinkError, cause: BaseException | None) -> LinkError:
    error.__cause__ = cause
    return error


async def _handshake(stream: trio.abc.Stream, secret: bytes, role: Role, buffer: bytearray,
                     read_size: int) -> tuple[bytes, bytes]:
    """Prove ourselves to the peer and check its proof; return the frame keys ``(send, receive)``.

    Whatever the peer sent beyond its proof stays in ``buffer``: the first bytes of its frames.
    """
    our_nonce = secrets.token_bytes(NONCE_SIZE)
    await stream.send_all(hello(our_nonce))
    their_nonce = parse_hello(await _read_exactly(stream, buffer, HELLO_SIZE, read_size, role))
    await stream.send_all(proof(secret, role, their_nonce, our_nonce))
    answer = await _read_exactly(stream, buffer, PROOF_SIZE, read_size, role)
    check_proof(secret, role, our_nonce, their_nonce, answer)
    return session_keys(secret, role, our_nonce, their_nonce)


async def _read_exactly(stream: trio.abc.Stream, buffer: bytearray, size: int, read_size: int, role: Role) -> bytes:
    """The next ``size`` bytes from ``buffer`` and then the stream; any more that the reads bring stay in ``buffer``.

    Bytes already in the buffer are used first, so a message glued to the previous one is never waited for.
    """
    while len(buffer) < size:
        data = await stream.receive_some(read_size)
        if not data:
            raise LinkClosed(f"the {peer_of(role)} hung up during the handshake")
        buffer += data
    message = bytes(buffer[:size])
    del buffer[:size]
    return message


@asynccontextmanager
async def open_link(stream: trio.abc.Stream, secret: bytes, *, role: Role, options: LinkOptions | None = None,
                    on_refused: Refused | None = None) -> AsyncIterator[Link]:
    """Connect a link over ``stream``, run it for the block in a nursery of its own, and close it on the way out.

    The arguments are those of :meth:`Link.connect`. Leaving the block closes the link with :meth:`Link.aclose`
    (a flush and a goodbye); leaving it by cancellation closes it abruptly.
    """
    link = await Link.connect(stream, secret, role=role, options=options, on_refused=on_refused)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        try:
            yield link
        finally:
            await link.aclose()
