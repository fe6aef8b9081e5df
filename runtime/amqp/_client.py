"""A trio-native AMQP 0-9-1 client: pamqp encodes and decodes the frames, trio moves them.

One reader task per connection reads frames and hands each to its channel; one heartbeat task sends heartbeats.
Both live in a nursery the caller owns (:func:`open_connection` opens one). Sends are shielded from cancellation
so that a frame is never half written; a send that cannot complete is ended by the heartbeat watch, which closes
the socket when the broker falls silent.
"""

from __future__ import annotations

import collections
import logging
import struct
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pamqp.exceptions
import trio
from pamqp import base, body, commands, header, heartbeat
from pamqp import frame as pamqp_frame

from ._errors import (
    REPLY_SUCCESS,
    AMQPError,
    ChannelClosed,
    ConnectionLost,
    ProtocolError,
    PublishNacked,
    Unroutable,
    error_for,
)

__all__ = ["Channel", "Connection", "Consumer", "Delivery", "Properties", "QueueDeclared", "open_connection"]

logger = logging.getLogger("actors")

Properties = commands.Basic.Properties
"""A message's properties (content type, headers, delivery mode, ...): pamqp's ``Basic.Properties``."""

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_HEADER = struct.Struct(">BHI")
DEFAULT_FRAME_MAX = 131072
DEFAULT_CHANNEL_MAX = 2047
CLIENT_PROPERTIES: dict[str, Any] = {
    "product": "trio-actors",
    "platform": "Python/trio",
    "capabilities": {
        "authentication_failure_close": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "publisher_confirms": True,
    },
}


@attrs.frozen
class _Params:
    host: str
    port: int
    user: str
    password: str
    vhost: str
    heartbeat: int | None

    @classmethod
    def parse(cls, url: str) -> _Params:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "amqp":
            raise ValueError(f"{url!r} is not an amqp:// URL")
        try:
            port = parts.port or 5672
        except ValueError as exc:
            raise ValueError(f"{url!r} has an invalid port") from exc
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        query = urllib.parse.parse_qs(parts.query)
        heartbeat_value: int | None = None
        if "heartbeat" in query:
            try:
                heartbeat_value = int(query["heartbeat"][-1])
            except ValueError as exc:
                raise ValueError(f"{url!r}: heartbeat must be a whole number of seconds") from exc
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=urllib.parse.unquote(parts.username) if parts.username is not None else "guest",
            password=urllib.parse.unquote(parts.password) if parts.password is not None else "guest",
            vhost=urllib.parse.unquote(path) if path else "/",
            heartbeat=heartbeat_value,
        )

    def show(self) -> str:
        vhost = urllib.parse.quote(self.vhost, safe="")
        return f"amqp://{self.user}@{self.host}:{self.port}/{vhost}"


def _marshal(value: pamqp_frame.FrameTypes, channel_id: int) -> bytes:
    try:
        return pamqp_frame.marshal(value, channel_id)
    except (pamqp.exceptions.PAMQPException, ValueError, TypeError, struct.error) as exc:
        raise ValueError(f"cannot encode {value!r}: {exc}") from exc


@attrs.frozen
class QueueDeclared:
    """What ``Channel.queue_declare`` returns: the queue's name (the broker's, for a server-named queue) and its
    counts of ready messages and consumers."""

    queue: str
    """The queue's name."""
    message_count: int
    """Messages ready in the queue."""
    consumer_count: int
    """Consumers on the queue."""


@attrs.frozen(repr=False)
class Delivery:
    """A message delivered by ``basic_consume`` or ``basic_get``.

    Unless it was consumed with ``no_ack=True``, settle it once with :meth:`ack` or :meth:`nack`; the broker
    redelivers it (``redelivered=True``) if the channel closes first.
    """

    body: bytes
    """The message body."""
    properties: commands.Basic.Properties
    """The message's properties."""
    exchange: str
    """The exchange it was published to."""
    routing_key: str
    """The routing key it was published with."""
    delivery_tag: int
    """The channel's tag for this delivery."""
    redelivered: bool
    """Whether the broker delivered it before (to this or another consumer) without an ack."""
    _channel: Channel

    def __repr__(self) -> str:
        return (f"<Delivery tag={self.delivery_tag} {self.exchange!r}/{self.routing_key!r} "
                f"{len(self.body)} bytes redelivered={self.redelivered}>")

    async def ack(self, *, multiple: bool = False) -> None:
        """Acknowledge this delivery (and with ``multiple`` every earlier unsettled one on the channel)."""
        await self._channel._send_method(commands.Basic.Ack(self.delivery_tag, multiple))

    async def nack(self, *, requeue: bool = True, multiple: bool = False) -> None:
        """Reject this delivery: the broker requeues it (``requeue``) or dead-letters or drops it."""
        await self._channel._send_method(commands.Basic.Nack(self.delivery_tag, multiple, requeue))


@attrs.define(eq=False)
class _Waiter:
    """One outstanding synchronous method: the reply (or the error) arrives from the reader task."""

    expect: tuple[type[Any], ...]
    event: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: BaseException | None = None

    def resolve(self, result: Any) -> None:
        self.result = result
        self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.event.set()


@attrs.define(eq=False)
class _Confirm:
    """A publish waiting for the broker's ack in confirm mode."""

    exchange: str
    routing_key: str
    mandatory: bool
    event: trio.Event = attrs.field(factory=trio.Event)
    acked: bool = False
    returned: bool = False
    error: BaseException | None = None


@attrs.define(eq=False)
class _Incoming:
    """A content-bearing method (Deliver, GetOk, Return) whose header and body frames are still arriving."""

    method: base.Frame
    size: int = -1
    properties: commands.Basic.Properties | None = None
    chunks: list[bytes] = attrs.field(factory=list)
    received: int = 0


@attrs.define(eq=False, repr=False)
class Consumer:
    """The deliveries of one ``basic_consume``, as an async iterator.

    Iteration ends when the consumer is cancelled (:meth:`cancel`) or its channel closed by this side; it raises
    the channel's error when the broker closed the channel or the connection broke.
    """

    _channel: Channel
    consumer_tag: str
    _send: trio.MemorySendChannel[Delivery]
    _receive: trio.MemoryReceiveChannel[Delivery]

    def __repr__(self) -> str:
        return f"<Consumer {self.consumer_tag!r} on channel {self._channel.channel_id}>"

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Delivery:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            error = self._channel._error
            if error is not None and not isinstance(error, ChannelClosed):
                raise error from None
            raise StopAsyncIteration from None

    async def cancel(self) -> None:
        """Stop the broker delivering to this consumer (Basic.Cancel); deliveries already here stay readable."""
        await self._channel._rpc(commands.Basic.Cancel(self.consumer_tag), commands.Basic.CancelOk)
        self._channel._consumers.pop(self.consumer_tag, None)
        self._send.close()


@attrs.define(eq=False, repr=False)
class Channel:
    """An AMQP channel: declarations, publishing (with confirms), consuming.

    Obtain one from :meth:`Connection.channel`. A channel the broker closes (a 404, 406 or 403) stays closed:
    every later operation raises the same error, so open a new channel to go on.
    """

    _connection: Connection
    channel_id: int
    _waiters: collections.deque[_Waiter] = attrs.field(factory=collections.deque)
    _consumers: dict[str, Consumer] = attrs.field(factory=dict)
    _gets: collections.deque[_Waiter] = attrs.field(factory=collections.deque)
    _incoming: _Incoming | None = None
    _confirming: bool = False
    _publish_seq: int = 0
    _unconfirmed: dict[int, _Confirm] = attrs.field(factory=dict)
    _error: AMQPError | None = None

    def __repr__(self) -> str:
        state = "open" if self._error is None else "closed"
        return (f"<Channel {self.channel_id} {state} consumers={len(self._consumers)} "
                f"unconfirmed={len(self._unconfirmed)}>")

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- operations ---------------------------------------------------------------------------------------------

    async def exchange_declare(self, exchange: str, exchange_type: str = "direct", *, passive: bool = False,
                               durable: bool = False, auto_delete: bool = False, internal: bool = False,
                               arguments: dict[str, Any] | None = None) -> None:
        """Declare an exchange (or with ``passive`` check it exists: :class:`NotFound` otherwise)."""
        await self._rpc(commands.Exchange.Declare(
            exchange=exchange, exchange_type=exchange_type, passive=passive, durable=durable,
            auto_delete=auto_delete, internal=internal, arguments=arguments), commands.Exchange.DeclareOk)

    async def queue_declare(self, queue: str = "", *, passive: bool = False, durable: bool = False,
                            exclusive: bool = False, auto_delete: bool = False,
                            arguments: dict[str, Any] | None = None) -> QueueDeclared:
        """Declare a queue (``""``: the broker names it) and return its name and counts.

        Redeclaring an existing queue with other properties or arguments raises :class:`PreconditionFailed`.
        """
        ok = await self._rpc(commands.Queue.Declare(
            queue=queue, passive=passive, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
            arguments=arguments), commands.Queue.DeclareOk)
        return QueueDeclared(ok.queue, ok.message_count, ok.consumer_count)

    async def queue_bind(self, queue: str, exchange: str, routing_key: str = "", *,
                         arguments: dict[str, Any] | None = None) -> None:
        """Bind a queue to an exchange with a binding key (and arguments, for a headers exchange)."""
        await self._rpc(commands.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key,
                                            arguments=arguments), commands.Queue.BindOk)

    async def basic_qos(self, prefetch_count: int, *, global_: bool = False) -> None:
        """Limit unacknowledged deliveries: per consumer created afterwards (RabbitMQ), or per channel with
        ``global_``. ``0`` is unlimited."""
        await self._rpc(commands.Basic.Qos(prefetch_count=prefetch_count, global_=global_), commands.Basic.QosOk)

    async def confirm_select(self) -> None:
        """Put the channel in confirm mode: from then on ``basic_publish`` returns once the broker acks."""
        if not self._confirming:
            await self._rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)
            self._confirming = True

    async def basic_publish(self, exchange: str, routing_key: str, body: bytes, *,
                            properties: commands.Basic.Properties | None = None, mandatory: bool = False) -> None:
        """Publish a message; in confirm mode, return once the broker has acked it.

        Raises :class:`PublishNacked` if the broker nacks it and, for a ``mandatory`` publish that reached no queue,
        :class:`Unroutable`. ``mandatory`` needs confirm mode: only the ack tells that no return is coming.
        Cancelled while waiting for the ack, the message may or may not have been published.
        """
        if mandatory and not self._confirming:
            raise ValueError(f"mandatory publish to {exchange!r}/{routing_key!r} needs confirm mode: "
                             "await channel.confirm_select() first")
        self._check()
        frame_max = self._connection._frame_max
        room = (frame_max - 8) if frame_max else len(body) or 1
        parts = [_marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
                          self.channel_id),
                 _marshal(header.ContentHeader(0, len(body), properties or commands.Basic.Properties()),
                          self.channel_id)]
        parts.extend(_marshal(body_frame(body[i:i + room]), self.channel_id) for i in range(0, len(body), room))
        data = b"".join(parts)
        pending: _Confirm | None = None

        def register() -> None:
            nonlocal pending
            self._check()
            if self._confirming:
                self._publish_seq += 1
                pending = self._unconfirmed[self._publish_seq] = _Confirm(exchange, routing_key, mandatory)

        await self._connection._send(data, before=register)
        if pending is None:
            return
        await pending.event.wait()
        if pending.error is not None:
            raise pending.error
        if not pending.acked:
            raise PublishNacked(f"the broker nacked a publish to {exchange!r}/{routing_key!r} on {self}")
        if pending.returned:
            raise Unroutable(f"a mandatory publish to {exchange!r}/{routing_key!r} reached no queue",
                             exchange=exchange, routing_key=routing_key)

    async def basic_consume(self, queue: str, *, no_ack: bool = False, exclusive: bool = False,
                            consumer_tag: str = "", arguments: dict[str, Any] | None = None) -> Consumer:
        """Start consuming from a queue; iterate the returned :class:`Consumer` for the deliveries."""
        send, receive = trio.open_memory_channel[Delivery](float("inf"))
        consumer = Consumer(self, consumer_tag, send, receive)
        # The deliveries may follow ConsumeOk at once: register the consumer before the reply is handled.
        ok = await self._rpc(commands.Basic.Consume(queue=queue, consumer_tag=consumer_tag, no_ack=no_ack,
                                                    exclusive=exclusive, arguments=arguments),
                             commands.Basic.ConsumeOk, on_reply=lambda ok: self._add_consumer(ok, consumer))
        assert ok.consumer_tag == consumer.consumer_tag
        return consumer

    def _add_consumer(self, ok: commands.Basic.ConsumeOk, consumer: Consumer) -> None:
        consumer.consumer_tag = ok.consumer_tag or ""
        self._consumers[consumer.consumer_tag] = consumer

    async def basic_get(self, queue: str, *, no_ack: bool = False) -> Delivery | None:
        """Take one message from a queue, or ``None`` if it is empty. Not limited by ``basic_qos``."""
        result: Delivery | None = await self._rpc(commands.Basic.Get(queue=queue, no_ack=no_ack),
                                                  commands.Basic.GetOk, commands.Basic.GetEmpty)
        return result

    async def close(self) -> None:
        """Close the channel (the broker requeues its unacked deliveries); a no-op if it is already closed."""
        if self._error is not None:
            return
        try:
            await self._rpc(commands.Channel.Close(REPLY_SUCCESS, "bye", 0, 0), commands.Channel.CloseOk)
        except AMQPError:
            pass  # closed meanwhile, by the broker or with the connection: closed either way
        self._shut(ChannelClosed(f"channel {self.channel_id} is closed"))

    # -- machinery ----------------------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    async def _send_method(self, method: base.Frame) -> None:
        self._check()
        await self._connection._send(_marshal(method, self.channel_id), before=self._check)

    async def _rpc(self, method: base.Frame, *expect: type[Any], on_reply: Any = None) -> Any:
        """Send a synchronous method and wait for its reply (one of ``expect``).

        Replies arrive in the order the methods were sent, so the waiter is queued in the same step as the send.
        Cancelled after the send, the waiter stays queued (abandoned) to take its reply when it comes.
        """
        waiter = _Waiter(expect)
        waiter.result = on_reply
        data = _marshal(method, self.channel_id)

        def register() -> None:
            self._check()
            self._waiters.append(waiter)

        await self._connection._send(data, before=register)
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _shut(self, error: AMQPError) -> None:
        """Close this side: fail every waiter, publish and consumer with ``error``. Idempotent."""
        if self._error is None:
            self._error = error
        self._connection._channels.pop(self.channel_id, None)
        while self._waiters:
            self._waiters.popleft().fail(self._error)
        for pending in self._unconfirmed.values():
            pending.error = self._error
            pending.event.set()
        self._unconfirmed.clear()
        for consumer in self._consumers.values():
            consumer._send.close()
        self._consumers.clear()

    def _on_frame(self, value: pamqp_frame.FrameTypes) -> None:
        """Handle one frame for this channel (reader task; never blocks)."""
        if isinstance(value, header.ContentHeader):
            if self._incoming is None or self._incoming.size >= 0:
                raise ProtocolError(f"unexpected content header on channel {self.channel_id}")
            self._incoming.size = value.body_size
            self._incoming.properties = value.properties
            self._content_maybe_done()
        elif isinstance(value, body.ContentBody):
            if self._incoming is None or self._incoming.size < 0:
                raise ProtocolError(f"unexpected content body on channel {self.channel_id}")
            self._incoming.chunks.append(value.value)
            self._incoming.received += len(value.value)
            self._content_maybe_done()
        elif isinstance(value, commands.Basic.Deliver | commands.Basic.Return):
            self._incoming = _Incoming(value)
        elif isinstance(value, commands.Basic.Ack | commands.Basic.Nack):
            self._on_confirm(value)
        elif isinstance(value, commands.Channel.Close):
            self._connection._send_nowait(_marshal(commands.Channel.CloseOk(), self.channel_id))
            self._shut(error_for(value.reply_code or 0, value.reply_text,
                                 where=f"channel {self.channel_id} of {self._connection._params.show()}"))
        elif isinstance(value, commands.Basic.Cancel):
            consumer = self._consumers.pop(value.consumer_tag or "", None)
            if consumer is not None:
                consumer._send.close()
        elif isinstance(value, base.Frame):
            self._on_reply(value)
        else:
            raise ProtocolError(f"unexpected {value!r} on channel {self.channel_id}")

    def _on_reply(self, value: Any) -> None:
        if not self._waiters:
            raise ProtocolError(f"unexpected {value.name} on channel {self.channel_id}: no method awaits a reply")
        waiter = self._waiters[0]
        if not isinstance(value, waiter.expect):
            raise ProtocolError(f"unexpected {value.name} on channel {self.channel_id}; "
                                f"expected {' or '.join(cls.name for cls in waiter.expect)}")
        self._waiters.popleft()
        if isinstance(value, commands.Basic.GetOk):
            # The message follows in content frames; resolve the waiter once it is complete.
            self._gets.append(waiter)
            self._incoming = _Incoming(value)
            return
        if isinstance(value, commands.Basic.GetEmpty):
            waiter.resolve(None)
            return
        if waiter.result is not None:
            waiter.result(value)
        waiter.resolve(value)
        if isinstance(value, commands.Channel.CloseOk):
            self._shut(ChannelClosed(f"channel {self.channel_id} is closed"))

    def _content_maybe_done(self) -> None:
        incoming = self._incoming
        assert incoming is not None
        if incoming.received < incoming.size:
            return
        if incoming.received > incoming.size:
            raise ProtocolError(f"content on channel {self.channel_id} is longer than its header said")
        self._incoming = None
        method = incoming.method
        data = b"".join(incoming.chunks)
        properties = incoming.properties or commands.Basic.Properties()
        if isinstance(method, commands.Basic.Return):
            self._on_return(method)
            return
        assert isinstance(method, commands.Basic.Deliver | commands.Basic.GetOk)
        delivery = Delivery(data, properties, method.exchange, method.routing_key or "",
                            method.delivery_tag or 0, method.redelivered, self)
        if isinstance(method, commands.Basic.GetOk):
            self._gets.popleft().resolve(delivery)
            return
        consumer = self._consumers.get(method.consumer_tag or "")
        if consumer is None:
            raise ProtocolError(f"delivery for unknown consumer {method.consumer_tag!r} on channel {self.channel_id}")
        consumer._send.send_nowait(delivery)

    def _on_return(self, method: commands.Basic.Return) -> None:
        # A return precedes the ack of its publish; the broker routes in order, so it belongs to the oldest
        # mandatory publish to the same exchange and key not yet returned.
        for pending in self._unconfirmed.values():
            if (pending.mandatory and not pending.returned and pending.exchange == method.exchange
                    and pending.routing_key == method.routing_key):
                pending.returned = True
                return
        logger.warning("basic.return on channel %d matches no pending mandatory publish: %r", self.channel_id, method)

    def _on_confirm(self, value: commands.Basic.Ack | commands.Basic.Nack) -> None:
        acked = isinstance(value, commands.Basic.Ack)
        tag = value.delivery_tag
        if value.multiple:
            # Insertion order is tag order: settle from the oldest up to ``tag``.
            settled = []
            for key in self._unconfirmed:
                if key > tag:
                    break
                settled.append(key)
        else:
            settled = [tag] if tag in self._unconfirmed else []
        for key in settled:
            pending = self._unconfirmed.pop(key)
            pending.acked = acked
            pending.event.set()


def body_frame(data: bytes) -> body.ContentBody:
    return body.ContentBody(data)


@attrs.define(eq=False, repr=False)
class Connection:
    """A connection to an AMQP 0-9-1 broker (RabbitMQ).

    Open one with ``async with open_connection(url) as connection`` (which owns the connection's tasks), or
    ``await Connection.open(url, nursery)`` to run them in a nursery of yours and ``await connection.close()``.
    When the broker closes the connection or the socket fails, every pending and later operation raises
    :class:`ConnectionLost` (or the error the broker's reply code maps to).
    """

    _params: _Params
    _stream: trio.SocketStream
    _frame_max: int = 0
    _channel_max: int = DEFAULT_CHANNEL_MAX
    _heartbeat: int = 0
    _channels: dict[int, Channel] = attrs.field(factory=dict)
    _abandoned: set[int] = attrs.field(factory=set)
    """Channels whose Channel.Open was cancelled before its OpenOk: closed as soon as it comes, then reused."""
    _next_channel: int = 1
    _send_lock: trio.StrictFIFOLock = attrs.field(factory=trio.StrictFIFOLock)
    _buffer: bytearray = attrs.field(factory=bytearray)
    _error: AMQPError | None = None
    _closing: bool = False
    _close_ok: trio.Event = attrs.field(factory=trio.Event)
    _scope: trio.CancelScope | None = None
    _outbox_send: trio.MemorySendChannel[bytes] | None = None

    def __repr__(self) -> str:
        state = "open" if self._error is None else "closed"
        return f"<Connection {self._params.show()} {state} channels={len(self._channels)}>"

    @classmethod
    async def open(cls, url: str = "amqp://guest:guest@127.0.0.1:5672/", nursery: trio.Nursery | None = None,
                   ) -> Connection:
        """Connect and handshake (Start/StartOk with PLAIN, Tune/TuneOk, Open/OpenOk), then start the reader and
        heartbeat tasks in ``nursery``.

        ``nursery`` is required; it is optional in the signature only for the error message. Bound the handshake
        with ``trio.fail_after``: cancelled, the socket is closed. A refused login or virtual host raises
        :class:`AccessRefused`; an unreachable broker :class:`ConnectionLost`.
        """
        if nursery is None:
            raise TypeError("Connection.open needs a nursery to run its tasks in; "
                            "or use `async with open_connection(url) as connection`")
        connection = await cls._connect(url)
        await nursery.start(connection._run)
        return connection

    @classmethod
    async def _connect(cls, url: str) -> Connection:
        """Connect and handshake; the connection's tasks are not started yet."""
        params = _Params.parse(url)
        try:
            stream = await trio.open_tcp_stream(params.host, params.port)
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {params.show()}: {exc}") from exc
        connection = cls(params, stream)
        try:
            await connection._handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return connection

    async def channel(self) -> Channel:
        """Open a new channel."""
        self._check()
        for _ in range(self._channel_max):
            channel_id = self._next_channel
            self._next_channel = channel_id % self._channel_max + 1
            if channel_id not in self._channels and channel_id not in self._abandoned:
                break
        else:
            raise AMQPError(f"{self} has all its {self._channel_max} channels open")
        channel = self._channels[channel_id] = Channel(self, channel_id)
        try:
            await channel._rpc(commands.Channel.Open(), commands.Channel.OpenOk)
        except BaseException:
            if channel._error is None:
                if channel._waiters:
                    # Cancelled after the Open went out: close the channel once the broker has opened it.
                    self._abandoned.add(channel_id)
                channel._shut(ChannelClosed(f"channel {channel_id} was not opened"))
            raise
        return channel

    async def close(self) -> None:
        """Close the connection gracefully (Connection.Close, wait for CloseOk) and stop its tasks.

        A no-op on a connection already closed or lost. Cancelled, the socket is closed at once.
        """
        if self._error is None and not self._closing:
            self._closing = True
            try:
                await self._send(_marshal(commands.Connection.Close(REPLY_SUCCESS, "bye", 0, 0), 0))
                await self._close_ok.wait()
            except AMQPError:
                pass  # lost meanwhile: closed either way
            finally:
                self._fail(ChannelClosed(f"{self._params.show()} is closed"))
        if self._scope is not None:
            self._scope.cancel()
        await trio.aclose_forcefully(self._stream)

    def statistics(self) -> ConnectionStatistics:
        """The negotiated parameters and the number of open channels."""
        return ConnectionStatistics(self._frame_max, self._channel_max, self._heartbeat, len(self._channels),
                                    self._error is None)

    # -- machinery ----------------------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    async def _send(self, data: bytes, before: Any = None) -> None:
        """Write ``data`` whole. ``before`` runs once the lock is held, just before the write (no checkpoint in
        between), so that what it registers is in the same order as the writes."""
        async with self._send_lock:
            self._check()
            if before is not None:
                before()
            with trio.CancelScope(shield=True):
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    error = self._error or ConnectionLost(f"lost {self._params.show()}: {exc}")
                    error.__cause__ = error.__cause__ or exc
                    self._fail(error)
                    raise error from exc

    def _send_nowait(self, data: bytes) -> None:
        """Queue ``data`` for the writer side of the reader task (replies the reader owes the broker)."""
        assert self._outbox_send is not None
        try:
            self._outbox_send.send_nowait(data)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the connection is going away: the reply would not reach the broker anyway

    async def _handshake(self) -> None:
        await self._write(PROTOCOL_HEADER)
        start = await self._expect(commands.Connection.Start)
        if "PLAIN" not in start.mechanisms.split():
            raise ProtocolError(f"{self._params.show()} does not offer PLAIN login (offers {start.mechanisms!r})")
        response = f"\0{self._params.user}\0{self._params.password}"
        await self._write(_marshal(commands.Connection.StartOk(
            client_properties=CLIENT_PROPERTIES, mechanism="PLAIN", response=response), 0))
        tune = await self._expect(commands.Connection.Tune)
        self._frame_max = min(x for x in (tune.frame_max, DEFAULT_FRAME_MAX) if x) if tune.frame_max \
            else DEFAULT_FRAME_MAX
        self._channel_max = min(tune.channel_max or DEFAULT_CHANNEL_MAX, DEFAULT_CHANNEL_MAX)
        self._heartbeat = tune.heartbeat if self._params.heartbeat is None else self._params.heartbeat
        await self._write(_marshal(commands.Connection.TuneOk(self._channel_max, self._frame_max, self._heartbeat),
                                   0))
        await self._write(_marshal(commands.Connection.Open(virtual_host=self._params.vhost), 0))
        await self._expect(commands.Connection.OpenOk)

    async def _write(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ConnectionLost(f"lost {self._params.show()} during the handshake: {exc}") from exc

    async def _expect(self, cls: type[Any]) -> Any:
        channel_id, value = await self._read_frame()
        if isinstance(value, commands.Connection.Close):
            raise error_for(value.reply_code or 0, value.reply_text, where=self._params.show(), connection=True)
        if channel_id != 0 or not isinstance(value, cls):
            raise ProtocolError(f"{self._params.show()} sent {value!r} on channel {channel_id} during the "
                                f"handshake; expected {cls.name}")
        return value

    async def _read_frame(self) -> tuple[int, pamqp_frame.FrameTypes]:
        """The next frame from the socket; raises :class:`ConnectionLost` on EOF or a socket error."""
        while True:
            if len(self._buffer) >= FRAME_HEADER.size:
                _, channel_id, size = FRAME_HEADER.unpack_from(self._buffer)
                if self._frame_max and size > self._frame_max:
                    raise ProtocolError(f"{self._params.show()} sent a frame of {size} bytes; "
                                        f"frame_max is {self._frame_max}")
                total = FRAME_HEADER.size + size + 1
                if len(self._buffer) >= total:
                    data = bytes(self._buffer[:total])
                    del self._buffer[:total]
                    try:
                        _, channel_id, value = pamqp_frame.unmarshal(data)
                    except (pamqp.exceptions.PAMQPException, ValueError, struct.error) as exc:
                        raise ProtocolError(f"{self._params.show()} sent a malformed frame: {exc}") from exc
                    return channel_id, value
            elif self._buffer.startswith(b"AMQP"[:len(self._buffer)]) and len(self._buffer) >= 4:
                raise ProtocolError(f"{self._params.show()} does not speak AMQP 0-9-1 "
                                    f"(it answered {bytes(self._buffer)!r})")
            try:
                chunk = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise ConnectionLost(f"lost {self._params.show()}: {exc}") from exc
            if not chunk:
                raise ConnectionLost(f"{self._params.show()} hung up")
            self._buffer += chunk

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The connection's tasks: the reader, the writer of the reader's replies, and the heartbeat."""
        send, receive = trio.open_memory_channel[bytes](float("inf"))
        self._outbox_send = send
        with trio.CancelScope() as scope:
            self._scope = scope
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_loop, nursery.cancel_scope)
                    nursery.start_soon(self._outbox_loop, receive)
                    if self._heartbeat:
                        nursery.start_soon(self._heartbeat_loop)
                    task_status.started()
            finally:
                send.close()
                if self._error is None:
                    self._fail(ChannelClosed(f"{self._params.show()} is closed"))
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(self._stream)

    async def _outbox_loop(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        async for data in receive:
            try:
                await self._send(data)
            except AMQPError:
                return

    async def _heartbeat_loop(self) -> None:
        frame = heartbeat.Heartbeat.marshal()
        while True:
            await trio.sleep(self._heartbeat / 2)
            try:
                await self._send(frame)
            except AMQPError:
                return

    async def _read_loop(self, cancel_scope: trio.CancelScope) -> None:
        try:
            while True:
                silence = 2 * self._heartbeat if self._heartbeat else float("inf")
                with trio.move_on_after(silence):
                    channel_id, value = await self._read_frame()
                    self._dispatch(channel_id, value)
                    continue
                raise ConnectionLost(f"{self._params.show()} sent nothing for {silence} s (two heartbeats)")
        except AMQPError as error:
            self._fail(error)
        cancel_scope.cancel()

    def _dispatch(self, channel_id: int, value: pamqp_frame.FrameTypes) -> None:
        if isinstance(value, heartbeat.Heartbeat):
            return
        if channel_id == 0:
            if isinstance(value, commands.Connection.Close):
                self._send_nowait(_marshal(commands.Connection.CloseOk(), 0))
                raise error_for(value.reply_code or 0, value.reply_text, where=self._params.show(),
                                connection=True)
            if isinstance(value, commands.Connection.CloseOk) and self._closing:
                self._close_ok.set()
                raise ChannelClosed(f"{self._params.show()} is closed")
            if isinstance(value, commands.Connection.Blocked | commands.Connection.Unblocked):
                logger.info("%s: %r", self._params.show(), value)
                return
            raise ProtocolError(f"{self._params.show()} sent unexpected {value!r} on channel 0")
        channel = self._channels.get(channel_id)
        if channel is None:
            if channel_id in self._abandoned:
                if isinstance(value, commands.Channel.OpenOk):
                    self._send_nowait(_marshal(commands.Channel.Close(REPLY_SUCCESS, "abandoned", 0, 0), channel_id))
                elif isinstance(value, commands.Channel.CloseOk | commands.Channel.Close):
                    if isinstance(value, commands.Channel.Close):
                        self._send_nowait(_marshal(commands.Channel.CloseOk(), channel_id))
                    self._abandoned.discard(channel_id)
                return
            raise ProtocolError(f"{self._params.show()} sent {value!r} on channel {channel_id}, which is not open")
        channel._on_frame(value)

    def _fail(self, error: AMQPError) -> None:
        """Mark the connection closed with ``error`` and fail every channel with it. Idempotent."""
        if self._error is None:
            self._error = error
        self._close_ok.set()
        for channel in list(self._channels.values()):
            channel._shut(self._error)


@attrs.frozen
class ConnectionStatistics:
    """What :meth:`Connection.statistics` returns."""

    frame_max: int
    """The negotiated largest frame, in bytes (bodies are split to fit)."""
    channel_max: int
    """The negotiated highest channel number."""
    heartbeat: int
    """The negotiated heartbeat interval in seconds (0: none)."""
    open_channels: int
    """Channels open now."""
    open: bool
    """Whether the connection is usable."""


@asynccontextmanager
async def open_connection(url: str = "amqp://guest:guest@127.0.0.1:5672/") -> AsyncIterator[Connection]:
    """``async with open_connection(url) as connection``: a connection whose tasks live in a nursery owned by the
    block; it is closed gracefully when the block ends.

    ``url`` is ``amqp://user:password@host:port/vhost`` (defaults: guest/guest, 127.0.0.1, 5672, ``/``; a
    ``?heartbeat=N`` query overrides the broker's heartbeat proposal, ``0`` disabling heartbeats).
    """
    # The handshake happens outside the nursery, so that a refused login raises as itself, not in a group.
    connection = await Connection._connect(url)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(connection._run)
            try:
                yield connection
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await connection.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The connection's tasks record their errors instead of raising: a lone exception is the block's own.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
    finally:
        await trio.aclose_forcefully(connection._stream)
