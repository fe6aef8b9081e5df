"""A trio-native AMQP 0-9-1 client: pamqp encodes and decodes the frames (see ``_frames``), trio moves them.

A connection runs a reader task, a writer task and a heartbeat task in a nursery the caller owns
(:func:`open_connection` opens one). Every operation queues its frames in the connection's outbox without a
checkpoint in between registering what it waits for (a reply, a confirm) and queueing the frames, so replies
arrive in the order they are expected; the writer sends everything queued in one write per flush, after letting
the tasks woken with it add theirs. Nothing is ever half written: a cancelled operation has either queued all its
frames or none.

With :class:`Reconnect`, a lost connection is opened again with backoff: the channels are reopened under the same
numbers and the topology declared through the client (exchanges, queues, bindings, qos and consumers) is replayed
in the order it was first declared, before any waiting operation goes on. What was in flight on the lost
connection fails with :class:`ConnectionLost`.
"""

from __future__ import annotations

import collections
import logging
import math
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import trio
from pamqp import base, body, commands, header, heartbeat

from ._errors import (
    REPLY_SUCCESS,
    AMQPError,
    ChannelClosed,
    ConnectionLost,
    ConsumerCancelled,
    ProtocolError,
    PublishNacked,
    Unroutable,
    error_for,
)
from ._frames import (
    PROTOCOL_HEADER,
    FrameError,
    FrameReader,
    FrameValue,
    encode_ack,
    encode_method,
    encode_nack,
    encode_publish,
)

__all__ = [
    "Channel",
    "Confirmation",
    "Connection",
    "ConnectionStatistics",
    "Consumer",
    "Delivery",
    "Properties",
    "QueueDeclared",
    "Reconnect",
    "open_connection",
]

logger = logging.getLogger("actors")

Properties = commands.Basic.Properties
"""A message's properties (content type, headers, delivery mode, ...): pamqp's ``Basic.Properties``."""

DEFAULT_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_FRAME_MAX: Final = 131072
DEFAULT_CHANNEL_MAX: Final = 2047
RECEIVE_SIZE: Final = 262144
FLUSH_BYTES: Final = 262144
"""The writer stops gathering and writes once this much is queued."""
FLUSH_PASSES: Final = 16
"""The writer waits at most this many scheduler passes for more frames before it writes."""
OUTBOX_HIGH_WATER: Final = 4 * 1024 * 1024
"""Publishers without confirms wait while more than this is queued and not yet written."""
CLIENT_PROPERTIES: Final[dict[str, Any]] = {
    "product": "trio-actors",
    "platform": "Python/trio",
    "capabilities": {
        "authentication_failure_close": True,
        "basic.nack": True,
        "connection.blocked": True,
        "consumer_cancel_notify": True,
        "publisher_confirms": True,
    },
}
_Errors: Final = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError)
"""What a socket or TLS stream raises when the connection breaks; translated into :class:`ConnectionLost`."""


@attrs.frozen
class Reconnect:
    """How a connection is opened again when it is lost: delays that grow from :attr:`initial` by :attr:`factor`
    up to :attr:`maximum` between attempts, each attempt bounded by :attr:`attempt_timeout`.

    Only a lost connection (:class:`ConnectionLost`: a socket error, EOF, two missed heartbeats, the broker closing
    it with ``320 CONNECTION_FORCED``) is reconnected; an attempt refused for good (a login the broker refuses now)
    ends the connection with that error, and so does running out of :attr:`attempts`. Times are trio's, so
    ``MockClock`` governs them.
    """

    initial: float = 0.1
    """Seconds before the first attempt."""
    maximum: float = 10.0
    """The longest wait between attempts, in seconds."""
    factor: float = 2.0
    """How much each wait grows over the one before."""
    attempt_timeout: float = 10.0
    """Seconds an attempt (connecting, TLS, the AMQP handshake) may take before it counts as failed."""
    attempts: int | None = None
    """Attempts before the connection is given up (``None``: never)."""

    def delays(self) -> Iterator[float]:
        """The waits before each attempt, in order (a decision, no I/O)."""
        delay = self.initial
        count = 0
        while self.attempts is None or count < self.attempts:
            yield delay
            count += 1
            delay = min(self.maximum, delay * self.factor)


@attrs.frozen
class _Params:
    host: str
    port: int
    user: str
    password: str
    vhost: str
    heartbeat: int | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> _Params:
        parts = urllib.parse.urlsplit(url)
        shown = hide_password(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"{shown!r} is not an amqp:// or amqps:// URL")
        tls = parts.scheme == "amqps"
        try:
            port = parts.port or (5671 if tls else 5672)
        except ValueError as exc:
            raise ValueError(f"{shown!r} has an invalid port") from exc
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        query = urllib.parse.parse_qs(parts.query)
        heartbeat_value: int | None = None
        if "heartbeat" in query:
            try:
                heartbeat_value = int(query["heartbeat"][-1])
            except ValueError as exc:
                raise ValueError(f"{shown!r}: heartbeat must be a whole number of seconds") from exc
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=urllib.parse.unquote(parts.username) if parts.username is not None else "guest",
            password=urllib.parse.unquote(parts.password) if parts.password is not None else "guest",
            vhost=urllib.parse.unquote(path) if path else "/",
            heartbeat=heartbeat_value,
            tls=tls,
        )

    def show(self) -> str:
        vhost = urllib.parse.quote(self.vhost, safe="")
        return f"{'amqps' if self.tls else 'amqp'}://{self.user}@{self.host}:{self.port}/{vhost}"


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``: what messages and logs show of a broker URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


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
    redelivers it (``redelivered=True``) if the channel closes or the connection is lost first.
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
    _epoch: int

    def __repr__(self) -> str:
        return (f"<Delivery tag={self.delivery_tag} {self.exchange!r}/{self.routing_key!r} "
                f"{len(self.body)} bytes redelivered={self.redelivered}>")

    def ack(self, *, multiple: bool = False) -> None:
        """Acknowledge this delivery (and with ``multiple`` every earlier unsettled one on the channel).

        Does not block: the ack is queued for the writer. Raises the channel's error if it is closed, and
        :class:`ConnectionLost` if the delivery came on a connection since lost (the broker redelivers it).
        """
        self._channel._settle(self, multiple, None)

    def nack(self, *, requeue: bool = True, multiple: bool = False) -> None:
        """Reject this delivery: the broker requeues it (``requeue``) or dead-letters or drops it. Does not
        block; raises as :meth:`ack` does."""
        self._channel._settle(self, multiple, requeue)


@attrs.define(eq=False)
class _Waiter:
    """One outstanding synchronous method: the reply (or the error) arrives from the reader task."""

    expect: tuple[type[Any], ...]
    on_reply: Callable[[Any], None] | None = None
    event: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: BaseException | None = None

    def resolve(self, result: Any) -> None:
        self.result = result
        self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.event.set()


@attrs.define(eq=False, repr=False)
class Confirmation:
    """A publish in confirm mode waiting for the broker's ack: what :meth:`Channel.publish_nowait` returns."""

    exchange: str
    """The exchange it was published to."""
    routing_key: str
    """The routing key it was published with."""
    mandatory: bool
    """Whether it was published ``mandatory``."""
    _on_done: Callable[[Confirmation], object] | None = None
    _event: trio.Event = attrs.field(factory=trio.Event)
    _acked: bool = False
    _returned: bool = False
    _error: BaseException | None = None

    def __repr__(self) -> str:
        state = "pending" if not self._event.is_set() else "failed" if self._error is not None else \
            "acked" if self._acked else "nacked"
        return f"<Confirmation {self.exchange!r}/{self.routing_key!r} {state}>"

    @property
    def done(self) -> bool:
        """Whether the broker has answered (or the connection was lost meanwhile)."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait for the broker's answer; return once it acked the publish.

        Raises :class:`ConnectionLost` if the connection was lost first (the message may or may not have reached
        the broker), :class:`PublishNacked` for a nack and :class:`Unroutable` for a mandatory publish that
        reached no queue. Cancelled, the confirmation stays valid and can be awaited again.
        """
        await self._event.wait()
        self.result()

    def result(self) -> None:
        """What :meth:`wait` would do once the broker has answered: return for an ack, raise otherwise. Raises
        :class:`RuntimeError` while it has not answered."""
        if not self._event.is_set():
            raise RuntimeError(f"{self!r}: the broker has not answered yet; await wait()")
        if self._error is not None:
            raise self._error
        if not self._acked:
            raise PublishNacked(f"the broker nacked a publish to {self.exchange!r}/{self.routing_key!r}")
        if self._returned:
            raise Unroutable(f"a mandatory publish to {self.exchange!r}/{self.routing_key!r} reached no queue",
                             exchange=self.exchange, routing_key=self.routing_key)

    def _settle(self, acked: bool) -> None:
        self._acked = acked
        self._event.set()
        if self._on_done is not None:
            self._on_done(self)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._event.set()
        if self._on_done is not None:
            self._on_done(self)


@attrs.define(eq=False)
class _Incoming:
    """A content-bearing method (Deliver, GetOk, Return) whose header and body frames are still arriving."""

    method: Any
    size: int = -1
    properties: commands.Basic.Properties | None = None
    chunks: list[bytes] = attrs.field(factory=list)
    received: int = 0


@attrs.define(eq=False, repr=False)
class Consumer:
    """The deliveries of one ``basic_consume``, as an async iterator.

    Iteration ends when the consumer is cancelled (:meth:`cancel`) or its channel closed by this side; it raises
    :class:`ConsumerCancelled` when the broker cancelled the consumer (its queue was deleted), and the channel's
    error when the broker closed the channel or the connection was lost for good. With reconnection the
    consumer is started again on the new connection; deliveries of the lost connection that were not read yet
    are dropped, since the broker redelivers them (those of a ``no_ack`` consumer are kept).
    """

    _channel: Channel
    consumer_tag: str
    """The broker's tag for this consumer."""
    queue: str
    """The queue consumed from (its new name, after a reconnect, if the broker named it)."""
    no_ack: bool
    """Whether deliveries count as acknowledged once sent."""
    _exclusive: bool
    _arguments: dict[str, Any] | None
    _ready: collections.deque[Delivery] = attrs.field(factory=collections.deque)
    _lot: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _ended: bool = False
    _end_error: AMQPError | None = None

    def __repr__(self) -> str:
        state = "ended" if self._ended else "active"
        return (f"<Consumer {self.consumer_tag!r} on {self.queue!r} channel {self._channel.channel_id} {state} "
                f"ready={len(self._ready)}>")

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Delivery:
        await trio.lowlevel.checkpoint_if_cancelled()
        delivery = self._take()
        if delivery is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return delivery
        while True:
            if self._ended:
                if self._end_error is not None:
                    raise self._end_error
                raise StopAsyncIteration
            await self._lot.park()
            delivery = self._take()
            if delivery is not None:
                return delivery

    async def receive_batch(self, max_items: int | None = None) -> list[Delivery]:
        """Every delivery that has arrived (at most ``max_items``), waiting for the first: one checkpoint for the
        lot, where ``async for`` takes one a delivery. An empty list once the consumer has ended (or the error
        that ended it, as ``async for`` raises). With a prefetch window, the broker sends the next deliveries as
        these are acked.
        """
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int)
                                      or max_items < 1):
            raise ValueError(f"max_items={max_items!r} must be an int of at least 1, or None for all")
        try:
            first = await self.__anext__()
        except StopAsyncIteration:
            return []
        batch = [first]
        while max_items is None or len(batch) < max_items:
            delivery = self._take()
            if delivery is None:
                break
            batch.append(delivery)
        return batch

    def _take(self) -> Delivery | None:
        ready = self._ready
        while ready:
            delivery = ready.popleft()
            channel = self._channel
            if self.no_ack or (delivery._epoch == channel._epoch and channel._error is None):
                return delivery
            # Received on a lost connection or a closed channel: the broker redelivers it.
        return None

    async def cancel(self) -> None:
        """Stop the broker delivering to this consumer (Basic.Cancel); deliveries already here stay readable.

        A no-op on a consumer that has ended. Waits for a reconnection under way.
        """
        if self._ended:
            await trio.lowlevel.checkpoint()
            return
        self._channel._connection._topology.forget_consumer(self)
        await self._channel._rpc(commands.Basic.Cancel(self.consumer_tag), commands.Basic.CancelOk)
        self._channel._consumers.pop(self.consumer_tag, None)
        self._end(None)

    def _method(self) -> commands.Basic.Consume:
        return commands.Basic.Consume(queue=self.queue, consumer_tag=self.consumer_tag, no_ack=self.no_ack,
                                      exclusive=self._exclusive, arguments=self._arguments)

    def _deliver(self, delivery: Delivery) -> None:
        self._ready.append(delivery)
        if self._lot:
            self._lot.unpark()

    def _end(self, error: AMQPError | None) -> None:
        if not self._ended:
            self._ended = True
            self._end_error = error
        self._lot.unpark_all()


@attrs.frozen
class ChannelStatistics:
    """What :meth:`Channel.statistics` returns."""

    channel_id: int
    """The channel's number."""
    open: bool
    """Whether the channel is usable."""
    confirming: bool
    """Whether it is in confirm mode."""
    unconfirmed: int
    """Publishes sent and not yet confirmed."""
    consumers: int
    """Consumers started on it and not ended."""


@attrs.define(eq=False, repr=False)
class Channel:
    """An AMQP channel: declarations, publishing (with confirms), consuming.

    Obtain one from :meth:`Connection.channel`. A channel the broker closes (a 404, 406 or 403) stays closed:
    every later operation raises the same error, so open a new channel to go on. On a connection that
    reconnects, the channel is reopened under the same number and its operations wait while it is.
    """

    _connection: Connection
    channel_id: int
    """The channel's number on the connection."""
    _waiters: collections.deque[_Waiter] = attrs.field(factory=collections.deque)
    _consumers: dict[str, Consumer] = attrs.field(factory=dict)
    _gets: collections.deque[_Waiter] = attrs.field(factory=collections.deque)
    _incoming: _Incoming | None = None
    _confirming: bool = False
    _transactional: bool = False
    _tx_returned: int = 0
    """Mandatory publishes the broker returned since the transaction began."""
    _tx_published: bool = False
    """Whether anything was published since the transaction began."""
    _tx_lost: AMQPError | None = None
    """Why the transaction under way was lost (the connection under it was), until it is committed or rolled
    back."""
    _publish_seq: int = 0
    _unconfirmed: dict[int, Confirmation] = attrs.field(factory=dict)
    _error: AMQPError | None = None
    _epoch: int = 0
    """Counts the connections this channel was opened on: deliveries of an earlier one cannot be settled."""
    _opened: bool = False
    """Whether the broker has this channel open on the current connection."""
    _unsettled: dict[int, None] = attrs.field(factory=dict)
    """The tags of the deliveries to settle (not ``no_ack``), in tag order."""

    def __repr__(self) -> str:
        state = "open" if self._error is None else "closed"
        return (f"<Channel {self.channel_id} {state} consumers={len(self._consumers)} "
                f"unconfirmed={len(self._unconfirmed)}>")

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def statistics(self) -> ChannelStatistics:
        """Whether the channel is open, in confirm mode, and its unconfirmed publishes and consumers."""
        return ChannelStatistics(self.channel_id, self._error is None, self._confirming, len(self._unconfirmed),
                                 len(self._consumers))

    # -- operations ---------------------------------------------------------------------------------------------

    async def exchange_declare(self, exchange: str, exchange_type: str = "direct", *, passive: bool = False,
                               durable: bool = False, auto_delete: bool = False, internal: bool = False,
                               arguments: dict[str, Any] | None = None) -> None:
        """Declare an exchange (or with ``passive`` check it exists: :class:`NotFound` otherwise)."""
        method = commands.Exchange.Declare(exchange=exchange, exchange_type=exchange_type, passive=passive,
                                           durable=durable, auto_delete=auto_delete, internal=internal,
                                           arguments=arguments)
        await self._rpc(method, commands.Exchange.DeclareOk)
        if not passive:
            self._connection._topology.add(_Step("exchange", exchange, method))

    async def exchange_delete(self, exchange: str, *, if_unused: bool = False) -> None:
        """Delete an exchange and its bindings (a no-op if it does not exist)."""
        await self._rpc(commands.Exchange.Delete(exchange=exchange, if_unused=if_unused),
                        commands.Exchange.DeleteOk)
        self._connection._topology.forget_exchange(exchange)

    async def queue_declare(self, queue: str = "", *, passive: bool = False, durable: bool = False,
                            exclusive: bool = False, auto_delete: bool = False,
                            arguments: dict[str, Any] | None = None) -> QueueDeclared:
        """Declare a queue (``""``: the broker names it) and return its name and counts.

        Redeclaring an existing queue with other properties or arguments raises :class:`PreconditionFailed`. A
        server-named queue is named anew when a reconnection declares it again (``Consumer.queue`` follows).
        """
        method = commands.Queue.Declare(queue=queue, passive=passive, durable=durable, exclusive=exclusive,
                                        auto_delete=auto_delete, arguments=arguments)
        ok = await self._rpc(method, commands.Queue.DeclareOk)
        if not passive:
            self._connection._topology.add(_Step("queue", ok.queue, method))
        return QueueDeclared(ok.queue, ok.message_count, ok.consumer_count)

    async def queue_delete(self, queue: str, *, if_unused: bool = False, if_empty: bool = False) -> int:
        """Delete a queue and return how many messages it held; its consumers are cancelled by the broker."""
        ok = await self._rpc(commands.Queue.Delete(queue=queue, if_unused=if_unused, if_empty=if_empty),
                             commands.Queue.DeleteOk)
        self._connection._topology.forget_queue(queue)
        return int(ok.message_count or 0)

    async def queue_bind(self, queue: str, exchange: str, routing_key: str = "", *,
                         arguments: dict[str, Any] | None = None) -> None:
        """Bind a queue to an exchange with a binding key (and arguments, for a headers exchange)."""
        method = commands.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key, arguments=arguments)
        await self._rpc(method, commands.Queue.BindOk)
        self._connection._topology.add(_Step("bind", _binding_key(queue, exchange, routing_key, arguments),
                                             method))

    async def exchange_bind(self, destination: str, source: str, routing_key: str = "", *,
                            arguments: dict[str, Any] | None = None) -> None:
        """Bind exchange ``destination`` to exchange ``source``: what ``source`` routes with this key (and
        arguments, for a headers exchange) goes on through ``destination`` (RabbitMQ's exchange-to-exchange
        bindings)."""
        method = commands.Exchange.Bind(destination=destination, source=source, routing_key=routing_key,
                                        arguments=arguments)
        await self._rpc(method, commands.Exchange.BindOk)
        self._connection._topology.add(_Step("bind", _binding_key(destination, source, routing_key, arguments,
                                                                  kind="exchange"), method))

    async def exchange_unbind(self, destination: str, source: str, routing_key: str = "", *,
                              arguments: dict[str, Any] | None = None) -> None:
        """Remove an exchange-to-exchange binding (a no-op if it does not exist)."""
        await self._rpc(commands.Exchange.Unbind(destination=destination, source=source, routing_key=routing_key,
                                                 arguments=arguments), commands.Exchange.UnbindOk)
        self._connection._topology.forget(_binding_key(destination, source, routing_key, arguments,
                                                       kind="exchange"))

    async def queue_unbind(self, queue: str, exchange: str, routing_key: str = "", *,
                           arguments: dict[str, Any] | None = None) -> None:
        """Remove a binding (a no-op if it does not exist)."""
        await self._rpc(commands.Queue.Unbind(queue=queue, exchange=exchange, routing_key=routing_key,
                                              arguments=arguments), commands.Queue.UnbindOk)
        self._connection._topology.forget(_binding_key(queue, exchange, routing_key, arguments))

    async def basic_qos(self, prefetch_count: int, *, global_: bool = False) -> None:
        """Limit unacknowledged deliveries: per consumer created afterwards (RabbitMQ), or per channel with
        ``global_``. ``0`` is unlimited."""
        method = commands.Basic.Qos(prefetch_count=prefetch_count, global_=global_)
        await self._rpc(method, commands.Basic.QosOk)
        self._connection._topology.add_qos(_Step("qos", (self.channel_id, global_), method, channel=self))

    async def confirm_select(self) -> None:
        """Put the channel in confirm mode: from then on ``basic_publish`` returns once the broker acks."""
        if not self._confirming:
            await self._rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)
            self._confirming = True
        else:
            await trio.lowlevel.checkpoint()

    async def tx_select(self) -> None:
        """Put the channel in transaction mode: from then on its publishes take effect together at
        :meth:`tx_commit`, or not at all at :meth:`tx_rollback` (or when the channel or connection goes first).

        A channel is in transaction mode or in confirm mode, never both (the broker closes it with a 406).
        """
        if not self._transactional:
            await self._rpc(commands.Tx.Select(), commands.Tx.SelectOk)
            self._transactional = True
        else:
            await trio.lowlevel.checkpoint()

    async def tx_commit(self) -> int:
        """Commit the publishes made since the transaction began (the last commit or rollback), and return how
        many of the ``mandatory`` ones the broker returned because they reached no queue.

        If the connection was lost since the transaction began, what was published before is gone with it: the
        transaction is rolled back (what was published since the reconnection too) and :class:`ConnectionLost`
        raised, so nothing of it takes effect. Lost while waiting for the broker's answer, it raises
        :class:`ConnectionLost` too, and then the transaction may or may not have been committed.
        """
        if not self._transactional:
            raise ValueError(f"tx_commit on channel {self.channel_id}, which is not in transaction mode: "
                             "await channel.tx_select() first")
        lost = self._tx_lost
        if lost is not None:
            await self.tx_rollback()
            error = ConnectionLost(f"the transaction on channel {self.channel_id} was lost with the connection "
                                   f"({lost}); nothing of it was committed")
            error.__cause__ = lost
            raise error
        returned = 0

        def committed(_ok: commands.Tx.CommitOk) -> None:
            nonlocal returned
            returned, self._tx_returned, self._tx_published = self._tx_returned, 0, False

        await self._rpc(commands.Tx.Commit(), commands.Tx.CommitOk, on_reply=committed)
        return returned

    async def tx_rollback(self) -> None:
        """Drop the publishes made since the transaction began; the channel stays in transaction mode."""
        if not self._transactional:
            raise ValueError(f"tx_rollback on channel {self.channel_id}, which is not in transaction mode: "
                             "await channel.tx_select() first")

        def rolled_back(_ok: commands.Tx.RollbackOk) -> None:
            self._tx_returned, self._tx_published, self._tx_lost = 0, False, None

        await self._rpc(commands.Tx.Rollback(), commands.Tx.RollbackOk, on_reply=rolled_back)

    async def basic_publish(self, exchange: str, routing_key: str, body: bytes, *,
                            properties: commands.Basic.Properties | None = None, mandatory: bool = False) -> None:
        """Publish a message; in confirm mode, return once the broker has acked it.

        Raises :class:`PublishNacked` if the broker nacks it and, for a ``mandatory`` publish that reached no queue,
        :class:`Unroutable`. ``mandatory`` needs confirm mode (only the ack tells that no return is coming) or
        transaction mode (:meth:`tx_commit` counts the returns). While
        the broker has blocked the connection (a resource alarm) or a reconnection is under way, the publish waits
        before it is sent; a publish awaiting its confirm when the connection is lost raises
        :class:`ConnectionLost` (it may or may not have reached the broker). Without confirm mode the publish
        returns once it is queued for the socket. Cancelled while waiting for the ack, the message may or may
        not have been published.
        """
        if mandatory and not self._confirming and not self._transactional:
            raise ValueError(f"mandatory publish to {exchange!r}/{routing_key!r} needs confirm mode: "
                             "await channel.confirm_select() first (or transaction mode: channel.tx_select())")
        await trio.lowlevel.checkpoint_if_cancelled()
        connection = self._connection
        if connection._down is not None or not connection._unblocked.is_set():
            await connection._wait_publishable()
        self._check()
        data = encode_publish(self.channel_id, exchange, routing_key, mandatory, properties, body,
                              connection._frame_max)
        if not self._confirming:
            if self._transactional:
                self._tx_published = True
            connection._write(data)
            await connection._wait_drained()
            return
        self._publish_seq += 1
        pending = self._unconfirmed[self._publish_seq] = Confirmation(exchange, routing_key, mandatory)
        connection._write(data)
        await pending.wait()

    def publish_nowait(self, exchange: str, routing_key: str, body: bytes, *,
                       properties: commands.Basic.Properties | None = None, mandatory: bool = False,
                       on_done: Callable[[Confirmation], object] | None = None) -> Confirmation:
        """Publish a message on a channel in confirm mode without waiting: queue it for the writer and return its
        :class:`Confirmation`, to be awaited later. Many publishes can so await their confirms at once, in the
        order they were made (the broker confirms in order). ``on_done(confirmation)``, if given, is called once
        the broker has answered or the connection was lost, in the connection's reader task (it must not block
        nor raise): a way to follow many confirms without a task waiting on each.

        Never blocks, so it neither waits for a reconnection nor for the broker to unblock the connection: raises
        :class:`ConnectionLost` while a reconnection is under way (publish again once :meth:`Connection.wait_connected`
        returns), the channel's error if it is closed, and :class:`ValueError` if the channel is not in confirm mode.
        """
        if not self._confirming:
            raise ValueError(f"publish_nowait to {exchange!r}/{routing_key!r} needs confirm mode: "
                             "await channel.confirm_select() first")
        connection = self._connection
        if connection._down is not None:
            raise ConnectionLost(f"{connection._params.show()} is reconnecting: {connection._down}")
        self._check()
        data = encode_publish(self.channel_id, exchange, routing_key, mandatory, properties, body,
                              connection._frame_max)
        self._publish_seq += 1
        pending = self._unconfirmed[self._publish_seq] = Confirmation(exchange, routing_key, mandatory, on_done)
        connection._write(data)
        return pending

    @property
    def epoch(self) -> int:
        """Counts the connections lost under this channel: it changes when what was in flight failed with
        :class:`ConnectionLost`."""
        return self._epoch

    async def basic_consume(self, queue: str, *, no_ack: bool = False, exclusive: bool = False,
                            consumer_tag: str = "", arguments: dict[str, Any] | None = None) -> Consumer:
        """Start consuming from a queue; iterate the returned :class:`Consumer` for the deliveries."""
        consumer = Consumer(self, consumer_tag, queue, no_ack, exclusive, arguments)
        # The deliveries may follow ConsumeOk at once: register the consumer before the reply is handled.
        await self._rpc(consumer._method(), commands.Basic.ConsumeOk,
                        on_reply=lambda ok: self._add_consumer(ok, consumer))
        self._connection._topology.add(_Step("consume", ("consume", consumer.consumer_tag), None, channel=self,
                                             consumer=consumer))
        return consumer

    def _add_consumer(self, ok: commands.Basic.ConsumeOk, consumer: Consumer) -> None:
        consumer.consumer_tag = ok.consumer_tag or ""
        self._consumers[consumer.consumer_tag] = consumer

    async def basic_get(self, queue: str, *, no_ack: bool = False) -> Delivery | None:
        """Take one message from a queue, or ``None`` if it is empty. Not limited by ``basic_qos``."""
        def unsettled(ok: commands.Basic.GetOk) -> None:
            self._unsettled[ok.delivery_tag or 0] = None

        result: Delivery | None = await self._rpc(commands.Basic.Get(queue=queue, no_ack=no_ack),
                                                  commands.Basic.GetOk, commands.Basic.GetEmpty,
                                                  on_reply=None if no_ack else unsettled)
        return result

    async def close(self) -> None:
        """Close the channel (the broker requeues its unacked deliveries); a no-op if it is already closed.

        While the connection is reconnecting the channel is closed at once, without waiting (if the reconnection
        had reopened it already, the broker is told behind the scenes).
        """
        if self._error is not None:
            await trio.lowlevel.checkpoint()
            return
        connection = self._connection
        connection._topology.forget_channel(self)
        if connection._down is None:
            try:
                await self._rpc(commands.Channel.Close(REPLY_SUCCESS, "bye", 0, 0), commands.Channel.CloseOk)
            except AMQPError:
                pass  # closed meanwhile, by the broker or with the connection: closed either way
        else:
            await trio.lowlevel.checkpoint()
            if self._opened:
                # Reopened by the replay under way: close it without waiting, and keep its number until CloseOk.
                connection._abandoned.add(self.channel_id)
                connection._write(encode_method(commands.Channel.Close(REPLY_SUCCESS, "bye", 0, 0), self.channel_id))
        self._shut(ChannelClosed(f"channel {self.channel_id} is closed"))

    # -- machinery ----------------------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _settle(self, delivery: Delivery, multiple: bool, requeue: bool | None) -> None:
        """Queue the ack (``requeue`` is None) or nack of ``delivery``.

        An ack after which no delivery up to its tag is left unsettled goes out as ``multiple``, and replaces an
        ack of this channel queued just before it (which it covers): a consumer acking one delivery after another
        sends one ack per flush, and the broker does the work of one.
        """
        self._check()
        if delivery._epoch != self._epoch:
            raise ConnectionLost(f"{delivery!r} came on a connection to {self._connection._params.show()} since "
                                 "lost; the broker redelivers it")
        tag = delivery.delivery_tag
        unsettled = self._unsettled
        known = tag in unsettled
        if multiple:
            for other in list(unsettled):
                if other > tag:
                    break
                del unsettled[other]
        else:
            unsettled.pop(tag, None)
        connection = self._connection
        if requeue is not None:
            connection._write(encode_nack(self.channel_id, tag, multiple, requeue))
        elif known and (not unsettled or next(iter(unsettled)) > tag):
            frame = encode_ack(self.channel_id, tag, True)
            if connection._last_ack == (self.channel_id, len(connection._outbox)):
                connection._outbox[-len(frame):] = frame
                connection._queued += 1
            else:
                connection._write(frame)
            connection._last_ack = (self.channel_id, len(connection._outbox))
        else:
            connection._write(encode_ack(self.channel_id, tag, multiple))

    async def _rpc(self, method: base.Frame, *expect: type[Any], on_reply: Callable[[Any], None] | None = None,
                   wait_connected: bool = True) -> Any:
        """Send a synchronous method and wait for its reply (one of ``expect``).

        Waits first for a reconnection under way (unless ``wait_connected`` is false: the replay itself). Replies
        arrive in the order the methods were sent, so the waiter is queued in the same step as the frame.
        Cancelled after that, the waiter stays queued (abandoned) to take its reply when it comes.
        """
        data = encode_method(method, self.channel_id)
        if wait_connected:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._connection._down is not None:
                await self._connection._wait_connected()
        self._check()
        waiter = _Waiter(expect, on_reply)
        self._waiters.append(waiter)
        self._connection._write(data)
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _shut(self, error: AMQPError) -> None:
        """Close this side for good: fail every waiter, publish and consumer with ``error``. Idempotent."""
        if self._error is None:
            self._error = error
        self._connection._channels.pop(self.channel_id, None)
        self._connection._topology.forget_channel(self)
        self._interrupt(self._error)
        for consumer in self._consumers.values():
            consumer._end(None if isinstance(self._error, ChannelClosed) else self._error)
        self._consumers.clear()

    def _interrupt(self, error: AMQPError) -> None:
        """The connection under this channel is gone: fail what awaits a reply or a confirm with ``error``.
        Consumers stay, to be started again on the next connection."""
        self._epoch += 1
        self._opened = False
        self._unsettled.clear()
        self._incoming = None
        self._publish_seq = 0
        if self._tx_published:
            self._tx_lost = error  # what it published is gone: its commit must not take only what follows
            self._tx_returned = 0
        while self._waiters:
            self._waiters.popleft().fail(error)
        while self._gets:
            self._gets.popleft().fail(error)
        for pending in self._unconfirmed.values():
            pending._fail(error)
        self._unconfirmed.clear()

    async def _reopen(self) -> None:
        """Open this channel again on a new connection (the replay), in confirm mode if it was."""
        await self._rpc(commands.Channel.Open(), commands.Channel.OpenOk, wait_connected=False)
        if self._confirming:
            await self._rpc(commands.Confirm.Select(), commands.Confirm.SelectOk, wait_connected=False)
        if self._transactional:
            await self._rpc(commands.Tx.Select(), commands.Tx.SelectOk, wait_connected=False)

    def _on_frame(self, value: FrameValue) -> None:
        """Handle one frame for this channel (reader task; never blocks)."""
        kind = type(value)
        if kind is body.ContentBody:
            incoming = self._incoming
            if incoming is None or incoming.size < 0:
                raise ProtocolError(f"unexpected content body on channel {self.channel_id}")
            chunk = value.value  # type: ignore[union-attr]
            incoming.chunks.append(chunk)
            incoming.received += len(chunk)
            if incoming.received >= incoming.size:
                self._content_done(incoming)
        elif kind is header.ContentHeader:
            incoming = self._incoming
            if incoming is None or incoming.size >= 0:
                raise ProtocolError(f"unexpected content header on channel {self.channel_id}")
            incoming.size = value.body_size  # type: ignore[union-attr]
            incoming.properties = value.properties  # type: ignore[union-attr]
            if incoming.size == 0:
                self._content_done(incoming)
        elif kind is commands.Basic.Deliver or kind is commands.Basic.Return:
            self._incoming = _Incoming(value)
        elif kind is commands.Basic.Ack or kind is commands.Basic.Nack:
            self._on_confirm(value)  # type: ignore[arg-type]
        elif kind is commands.Channel.Close:
            assert isinstance(value, commands.Channel.Close)
            self._connection._write(encode_method(commands.Channel.CloseOk(), self.channel_id))
            self._opened = False
            self._shut(error_for(value.reply_code or 0, value.reply_text,
                                 where=f"channel {self.channel_id} of {self._connection._params.show()}"))
        elif kind is commands.Basic.Cancel:
            assert isinstance(value, commands.Basic.Cancel)
            self._on_cancel(value)
        elif isinstance(value, base.Frame):
            self._on_reply(value)
        else:
            raise ProtocolError(f"unexpected {value!r} on channel {self.channel_id}")

    def _on_cancel(self, value: commands.Basic.Cancel) -> None:
        tag = value.consumer_tag or ""
        if not value.nowait:
            self._connection._write(encode_method(commands.Basic.CancelOk(tag), self.channel_id))
        consumer = self._consumers.pop(tag, None)
        if consumer is None:
            return
        self._connection._topology.forget_consumer(consumer)
        logger.warning("the broker cancelled consumer %r on queue %r (channel %d of %s)", tag, consumer.queue,
                       self.channel_id, self._connection._params.show())
        consumer._end(ConsumerCancelled(
            f"consumer {tag!r} on queue {consumer.queue!r} was cancelled by the broker "
            "(the queue was deleted, or its node is gone)", consumer_tag=tag, queue=consumer.queue))

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
            if waiter.on_reply is not None:
                waiter.on_reply(value)
            self._gets.append(waiter)
            self._incoming = _Incoming(value)
            return
        if isinstance(value, commands.Basic.GetEmpty):
            waiter.resolve(None)
            return
        if waiter.on_reply is not None:
            waiter.on_reply(value)
        waiter.resolve(value)
        if isinstance(value, commands.Channel.OpenOk):
            self._opened = True
        elif isinstance(value, commands.Channel.CloseOk):
            self._opened = False
            self._shut(ChannelClosed(f"channel {self.channel_id} is closed"))

    def _content_done(self, incoming: _Incoming) -> None:
        if incoming.received > incoming.size:
            raise ProtocolError(f"content on channel {self.channel_id} is longer than its header said")
        self._incoming = None
        method = incoming.method
        chunks = incoming.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        properties = incoming.properties or commands.Basic.Properties()
        if type(method) is commands.Basic.Return:
            self._on_return(method)
            return
        delivery = Delivery(data, properties, method.exchange, method.routing_key or "", method.delivery_tag or 0,
                            method.redelivered, self, self._epoch)
        if type(method) is commands.Basic.GetOk:
            self._gets.popleft().resolve(delivery)
            return
        consumer = self._consumers.get(method.consumer_tag)
        if consumer is None:
            raise ProtocolError(f"delivery for unknown consumer {method.consumer_tag!r} on channel {self.channel_id}")
        if not consumer.no_ack:
            self._unsettled[delivery.delivery_tag] = None
        consumer._deliver(delivery)

    def _on_return(self, method: commands.Basic.Return) -> None:
        if self._transactional:  # counted for the commit, which it precedes
            self._tx_returned += 1
            return
        # A return precedes the ack of its publish; the broker routes in order, so it belongs to the oldest
        # mandatory publish to the same exchange and key not yet returned.
        for pending in self._unconfirmed.values():
            if (pending.mandatory and not pending._returned and pending.exchange == method.exchange
                    and pending.routing_key == method.routing_key):
                pending._returned = True
                return
        logger.warning("basic.return on channel %d matches no pending mandatory publish: %r", self.channel_id, method)

    def _on_confirm(self, value: commands.Basic.Ack | commands.Basic.Nack) -> None:
        acked = type(value) is commands.Basic.Ack
        tag = value.delivery_tag
        unconfirmed = self._unconfirmed
        if value.multiple:
            # Insertion order is tag order: settle from the oldest up to ``tag``.
            settled = []
            for key in unconfirmed:
                if key > tag:
                    break
                settled.append(key)
        else:
            settled = [tag] if tag in unconfirmed else []
        for key in settled:
            unconfirmed.pop(key)._settle(acked)


def _binding_key(destination: str, source: str, routing_key: str, arguments: dict[str, Any] | None, *,
                 kind: str = "queue") -> tuple[Any, ...]:
    """The key of a binding of a queue (or, with ``kind="exchange"``, an exchange) to the exchange ``source``."""
    return ("bind", destination, source, routing_key, repr(sorted((arguments or {}).items())), kind)


@attrs.define(eq=False)
class _Step:
    """One declaration a reconnection replays, in the order it was first made."""

    kind: str
    """``"exchange"``, ``"queue"``, ``"bind"``, ``"qos"`` or ``"consume"``."""
    key: Any
    """What identifies it: the exchange or queue name, the binding, the channel, the consumer tag."""
    method: base.Frame | None
    """The method to send again (a consumer's is made from the consumer)."""
    channel: Channel | None = None
    """The channel it belongs to (qos, consume); ``None``: any channel."""
    consumer: Consumer | None = None


@attrs.define(eq=False)
class _Topology:
    """What the connection declared, to be declared again after a reconnection: decisions, no I/O."""

    steps: list[_Step] = attrs.field(factory=list)

    def add(self, step: _Step) -> None:
        """Record ``step`` unless the same declaration is already recorded (it keeps its first place)."""
        if step.kind == "queue" or step.kind == "exchange":
            key = (step.kind, step.key)
            if any((other.kind, other.key) == key for other in self.steps):
                return
        elif any(other.key == step.key for other in self.steps):
            return
        self.steps.append(step)

    def add_qos(self, step: _Step) -> None:
        """Record a qos; an earlier one of the same channel and scope that no consumer came after is dropped."""
        assert step.channel is not None
        for index in range(len(self.steps) - 1, -1, -1):
            other = self.steps[index]
            if other.kind == "consume" and other.channel is step.channel:
                break
            if other.kind == "qos" and other.key == step.key:
                del self.steps[index]
                break
        self.steps.append(step)

    def forget(self, key: Any) -> None:
        self.steps = [step for step in self.steps if step.key != key]

    def forget_exchange(self, exchange: str) -> None:
        self.steps = [step for step in self.steps if not (
            (step.kind == "exchange" and step.key == exchange)
            or (step.kind == "bind" and (step.key[2] == exchange
                                         or (step.key[5] == "exchange" and step.key[1] == exchange))))]

    def forget_queue(self, queue: str) -> None:
        self.steps = [step for step in self.steps if not (
            (step.kind == "queue" and step.key == queue)
            or (step.kind == "bind" and step.key[5] == "queue" and step.key[1] == queue)
            or (step.kind == "consume" and step.consumer is not None and step.consumer.queue == queue))]

    def forget_consumer(self, consumer: Consumer) -> None:
        self.steps = [step for step in self.steps if step.consumer is not consumer]

    def forget_channel(self, channel: Channel) -> None:
        self.steps = [step for step in self.steps if step.channel is not channel]

    def rename_queue(self, old: str, new: str) -> None:
        """A server-named queue got a new name on the new connection: later steps use it."""
        for step in self.steps:
            if step.kind == "queue" and step.key == old:
                step.key = new
            elif step.kind == "bind" and step.key[5] == "queue" and step.key[1] == old:
                assert isinstance(step.method, commands.Queue.Bind)
                step.method.queue = new
                step.key = (step.key[0], new, *step.key[2:])
            elif step.kind == "consume" and step.consumer is not None and step.consumer.queue == old:
                step.consumer.queue = new


@attrs.define(eq=False, repr=False)
class Connection:
    """A connection to an AMQP 0-9-1 broker (RabbitMQ), over TCP or TLS (``amqps://``).

    Open one with ``async with open_connection(url) as connection`` (which owns the connection's tasks), or
    ``await Connection.open(url, nursery)`` to run them in a nursery of yours and ``await connection.close()``.
    When the broker closes the connection or the socket fails, every pending and later operation raises
    :class:`ConnectionLost` (or the error the broker's reply code maps to) — unless the connection was opened
    with ``reconnect=Reconnect(...)``, when it is opened again (see :class:`Reconnect`).
    """

    _params: _Params
    _reconnect: Reconnect | None
    _ssl_context: ssl.SSLContext | None
    _name: str | None
    _stream: trio.abc.Stream
    _reader: FrameReader
    _frame_max: int = DEFAULT_FRAME_MAX
    _channel_max: int = DEFAULT_CHANNEL_MAX
    _heartbeat: int = 0
    _channels: dict[int, Channel] = attrs.field(factory=dict)
    _abandoned: set[int] = attrs.field(factory=set)
    """Channels whose Channel.Open was cancelled before its OpenOk: closed as soon as it comes, then reused."""
    _next_channel: int = 1
    _outbox: bytearray = attrs.field(factory=bytearray)
    _queued: int = 0
    """Counts the frames queued (and acks merged): the writer waits while it grows."""
    _last_ack: tuple[int, int] | None = None
    """``(channel, outbox length)`` when the outbox ends with an ack a later ack of that channel may replace."""
    _writer_lot: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _drained_lot: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _error: AMQPError | None = None
    """Why the connection ended for good (``ChannelClosed`` when this side closed it)."""
    _down: AMQPError | None = None
    """Why the connection is down while a reconnection is under way."""
    _connected: trio.Event = attrs.field(factory=trio.Event)
    """Set while connected (topology replayed), and once closed for good, to wake the waiters."""
    _unblocked: trio.Event = attrs.field(factory=trio.Event)
    """Cleared while the broker says the connection is blocked (Connection.Blocked)."""
    _blocked_reason: str = ""
    _link_error: AMQPError | None = None
    _link_scope: trio.CancelScope | None = None
    _closing: bool = False
    _close_ok: trio.Event = attrs.field(factory=trio.Event)
    _scope: trio.CancelScope | None = None
    _topology: _Topology = attrs.field(factory=_Topology)
    _reconnects: int = 0

    def __attrs_post_init__(self) -> None:
        self._connected.set()
        self._unblocked.set()

    def __repr__(self) -> str:
        if self._error is not None:
            state = "closed"
        elif self._down is not None:
            state = "reconnecting"
        else:
            state = "blocked" if not self._unblocked.is_set() else "open"
        return f"<Connection {self._params.show()} {state} channels={len(self._channels)}>"

    @classmethod
    async def open(cls, url: str = DEFAULT_URL, nursery: trio.Nursery | None = None, *,
                   reconnect: Reconnect | None = None, ssl_context: ssl.SSLContext | None = None,
                   name: str | None = None, heartbeat: int | None = None) -> Connection:
        """Connect and handshake (TLS for ``amqps://``; Start/StartOk with PLAIN, Tune/TuneOk, Open/OpenOk), then
        start the connection's tasks in ``nursery``.

        ``nursery`` is required; it is optional in the signature only for the error message. Bound the handshake
        with ``trio.fail_after``: cancelled, the socket is closed. A refused login or virtual host raises
        :class:`AccessRefused`; an unreachable broker or a failed TLS handshake :class:`ConnectionLost` (the first
        connection is not retried, even with ``reconnect``). ``ssl_context`` defaults to
        :func:`ssl.create_default_context` (the system's CAs, the host name checked). ``name`` is announced to the
        broker as the ``connection_name`` client property, which its tools show. ``heartbeat`` is the heartbeat
        interval to ask for (seconds, ``0`` for none) when the URL has no ``?heartbeat=``; ``None`` accepts the
        broker's proposal.
        """
        if nursery is None:
            raise TypeError("Connection.open needs a nursery to run its tasks in; "
                            "or use `async with open_connection(url) as connection`")
        connection = await cls._connect(url, reconnect, ssl_context, name, heartbeat)
        await nursery.start(connection._run)
        return connection

    @classmethod
    async def _connect(cls, url: str, reconnect: Reconnect | None, ssl_context: ssl.SSLContext | None,
                       name: str | None, heartbeat: int | None = None) -> Connection:
        """Connect and handshake; the connection's tasks are not started yet."""
        params = _Params.parse(url)
        if heartbeat is not None:
            if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or not 0 <= heartbeat <= 65535:
                raise ValueError(f"heartbeat={heartbeat!r} must be a whole number of seconds from 0 (none) to 65535")
            if params.heartbeat is None:  # the URL's ?heartbeat= wins
                params = attrs.evolve(params, heartbeat=heartbeat)
        if ssl_context is not None and not params.tls:
            raise ValueError(f"ssl_context is given but {params.show()} is not an amqps:// URL")
        stream = await _open_stream(params, ssl_context)
        connection = cls(params, reconnect, ssl_context, name, stream, FrameReader())
        try:
            await connection._handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return connection

    async def channel(self) -> Channel:
        """Open a new channel (waiting for a reconnection under way)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._down is not None:
            await self._wait_connected()
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
            await channel._rpc(commands.Channel.Open(), commands.Channel.OpenOk, wait_connected=False)
        except BaseException:
            if channel._error is None:
                if channel._waiters:
                    # Cancelled after the Open went out: close the channel once the broker has opened it.
                    self._abandoned.add(channel_id)
                channel._shut(ChannelClosed(f"channel {channel_id} was not opened"))
            raise
        return channel

    async def close(self) -> None:
        """Close the connection gracefully (Connection.Close after everything queued, wait for CloseOk) and stop
        its tasks.

        A no-op on a connection already closed or lost for good; a reconnection under way is abandoned.
        Cancelled, the socket is closed at once.
        """
        if self._error is None and not self._closing:
            self._closing = True
            try:
                if self._down is None and self._link_error is None:
                    self._write(encode_method(commands.Connection.Close(REPLY_SUCCESS, "bye", 0, 0), 0))
                    await self._close_ok.wait()
            except AMQPError:
                pass  # lost meanwhile: closed either way
            finally:
                self._fail(ChannelClosed(f"{self._params.show()} is closed"))
        if self._scope is not None:
            self._scope.cancel()
        await trio.aclose_forcefully(self._stream)

    async def wait_connected(self) -> None:
        """Return once the connection is up: at once if it is, after the reconnection (topology replayed) if one
        is under way. Raises the connection's error if it ended for good."""
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._wait_connected()
        await trio.lowlevel.cancel_shielded_checkpoint()

    @property
    def connected(self) -> bool:
        """Whether the connection is up now: not closed, not lost for good, and no reconnection under way."""
        return self._error is None and self._down is None

    @property
    def reconnects(self) -> int:
        """How many times it was connected again after being lost."""
        return self._reconnects

    def statistics(self) -> ConnectionStatistics:
        """The negotiated parameters, the state and the number of open channels and reconnections."""
        return ConnectionStatistics(self._frame_max, self._channel_max, self._heartbeat, len(self._channels),
                                    self._error is None, self._error is None and self._down is None,
                                    not self._unblocked.is_set(), self._reconnects)

    # -- machinery: writing -------------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _write(self, data: bytes) -> None:
        """Queue ``data`` for the writer: the order of the calls is the order on the wire."""
        if self._error is not None:
            raise self._error
        if self._down is not None and self._link_error is not None:
            raise self._down
        self._outbox += data
        self._queued += 1
        self._last_ack = None
        if self._writer_lot:
            self._writer_lot.unpark()

    async def _wait_drained(self) -> None:
        """A checkpoint; and while the outbox is over its high water mark, wait for the writer."""
        if len(self._outbox) <= OUTBOX_HIGH_WATER:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        while len(self._outbox) > OUTBOX_HIGH_WATER and self._error is None and self._link_error is None:
            await self._drained_lot.park()

    async def _wait_connected(self) -> None:
        while True:
            self._check()
            if self._down is None:
                return
            await self._connected.wait()

    async def _wait_publishable(self) -> None:
        while True:
            await self._wait_connected()
            if self._unblocked.is_set():
                return
            await self._unblocked.wait()

    async def _write_loop(self, stream: trio.abc.Stream) -> None:
        while True:
            if not self._outbox:
                await self._writer_lot.park()
                continue
            # Let the tasks woken with this one queue their frames too: one write for all of them.
            for _ in range(FLUSH_PASSES):
                if len(self._outbox) >= FLUSH_BYTES:
                    break
                queued = self._queued
                await trio.lowlevel.cancel_shielded_checkpoint()
                if self._queued == queued:
                    break
            data, self._outbox, self._last_ack = self._outbox, bytearray(), None
            try:
                await stream.send_all(data)
            except _Errors as exc:
                self._break_link(_lost(f"lost {self._params.show()}: {_describe(exc)}", exc))
                return
            if self._drained_lot:
                self._drained_lot.unpark_all()

    async def _heartbeat_loop(self) -> None:
        frame = heartbeat.Heartbeat.marshal()
        while True:
            await trio.sleep(self._heartbeat / 2)
            if self._error is None and self._link_error is None:
                self._write(frame)

    # -- machinery: reading -------------------------------------------------------------------------------------

    async def _read_loop(self, stream: trio.abc.Stream) -> None:
        silence = 2 * self._heartbeat if self._heartbeat else math.inf
        reader = self._reader
        error: AMQPError
        with trio.CancelScope(deadline=trio.current_time() + silence) as scope:
            while True:
                try:
                    chunk = await stream.receive_some(RECEIVE_SIZE)
                except _Errors as exc:
                    error = _lost(f"lost {self._params.show()}: {_describe(exc)}", exc)
                    break
                if not chunk:
                    error = ConnectionLost(f"{self._params.show()} hung up")
                    break
                scope.deadline = trio.current_time() + silence
                reader.feed(chunk)
                try:
                    while (frame := reader.read()) is not None:
                        self._dispatch(*frame)
                except FrameError as exc:
                    error = ProtocolError(f"{self._params.show()} sent {exc}")
                    error.__cause__ = exc
                    break
                except AMQPError as exc:
                    error = exc
                    break
        if scope.cancelled_caught:
            error = ConnectionLost(f"{self._params.show()} sent nothing for {silence} s (two heartbeats)")
        self._break_link(error)

    def _dispatch(self, channel_id: int, value: FrameValue) -> None:
        if channel_id != 0:
            channel = self._channels.get(channel_id)
            if channel is not None:
                channel._on_frame(value)
                return
            if channel_id in self._abandoned:
                if isinstance(value, commands.Channel.OpenOk):
                    self._write(encode_method(commands.Channel.Close(REPLY_SUCCESS, "abandoned", 0, 0), channel_id))
                elif isinstance(value, commands.Channel.CloseOk | commands.Channel.Close):
                    if isinstance(value, commands.Channel.Close):
                        self._write(encode_method(commands.Channel.CloseOk(), channel_id))
                    self._abandoned.discard(channel_id)
                return
            if isinstance(value, commands.Channel.Close):  # closed by the broker as this side closed it
                self._write(encode_method(commands.Channel.CloseOk(), channel_id))
                return
            if isinstance(value, commands.Channel.CloseOk | body.ContentBody | header.ContentHeader
                          | commands.Basic.Deliver | commands.Basic.Ack | commands.Basic.Nack):
                return  # crossed this side's close of the channel
            raise ProtocolError(f"{self._params.show()} sent {value!r} on channel {channel_id}, which is not open")
        if isinstance(value, heartbeat.Heartbeat):
            return
        if isinstance(value, commands.Connection.Close):
            self._write(encode_method(commands.Connection.CloseOk(), 0))
            raise error_for(value.reply_code or 0, value.reply_text, where=self._params.show(), connection=True)
        if isinstance(value, commands.Connection.CloseOk) and self._closing:
            self._close_ok.set()
            raise ChannelClosed(f"{self._params.show()} is closed")
        if isinstance(value, commands.Connection.Blocked):
            self._blocked_reason = value.reason or ""
            if self._unblocked.is_set():
                self._unblocked = trio.Event()
            logger.warning("%s is blocked by the broker (%s): publishes wait", self._params.show(),
                           self._blocked_reason or "no reason given")
            return
        if isinstance(value, commands.Connection.Unblocked):
            self._blocked_reason = ""
            self._unblocked.set()
            logger.info("%s is unblocked by the broker", self._params.show())
            return
        raise ProtocolError(f"{self._params.show()} sent unexpected {value!r} on channel 0")

    # -- machinery: the handshake -------------------------------------------------------------------------------

    async def _handshake(self) -> None:
        await self._send_direct(PROTOCOL_HEADER)
        start = await self._expect(commands.Connection.Start)
        if "PLAIN" not in start.mechanisms.split():
            raise ProtocolError(f"{self._params.show()} does not offer PLAIN login (offers {start.mechanisms!r})")
        response = f"\0{self._params.user}\0{self._params.password}"
        properties = CLIENT_PROPERTIES if self._name is None else {**CLIENT_PROPERTIES, "connection_name": self._name}
        await self._send_direct(encode_method(commands.Connection.StartOk(
            client_properties=properties, mechanism="PLAIN", response=response), 0))
        tune = await self._expect(commands.Connection.Tune)
        self._frame_max = min(tune.frame_max, DEFAULT_FRAME_MAX) if tune.frame_max else DEFAULT_FRAME_MAX
        self._channel_max = min(tune.channel_max or DEFAULT_CHANNEL_MAX, DEFAULT_CHANNEL_MAX)
        self._heartbeat = tune.heartbeat if self._params.heartbeat is None else self._params.heartbeat
        await self._send_direct(encode_method(
            commands.Connection.TuneOk(self._channel_max, self._frame_max, self._heartbeat), 0))
        self._reader.frame_max = self._frame_max
        await self._send_direct(encode_method(commands.Connection.Open(virtual_host=self._params.vhost), 0))
        await self._expect(commands.Connection.OpenOk)

    async def _send_direct(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except _Errors as exc:
            raise _lost(f"lost {self._params.show()} during the handshake: {_describe(exc)}", exc) from exc

    async def _expect(self, cls: type[Any]) -> Any:
        while True:
            try:
                frame = self._reader.read()
            except FrameError as exc:
                raise ProtocolError(f"{self._params.show()} sent {exc}") from exc
            if frame is not None:
                break
            try:
                chunk = await self._stream.receive_some(RECEIVE_SIZE)
            except _Errors as exc:
                raise _lost(f"lost {self._params.show()} during the handshake: {_describe(exc)}", exc) from exc
            if not chunk:
                raise ConnectionLost(f"{self._params.show()} hung up during the handshake")
            self._reader.feed(chunk)
        channel_id, value = frame
        if isinstance(value, commands.Connection.Close):
            raise error_for(value.reply_code or 0, value.reply_text, where=self._params.show(), connection=True)
        if channel_id != 0 or not isinstance(value, cls):
            raise ProtocolError(f"{self._params.show()} sent {value!r} on channel {channel_id} during the "
                                f"handshake; expected {cls.name}")
        return value

    # -- machinery: the connection's life -----------------------------------------------------------------------

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The connection's tasks, for each connection in turn: the reader, the writer, the heartbeat (and after a
        reconnection the replay); between connections, the reconnection."""
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                replay = False
                while True:
                    error = await self._serve(replay, task_status)
                    task_status = trio.TASK_STATUS_IGNORED
                    if (self._closing or self._error is not None or self._reconnect is None
                            or type(error) is not ConnectionLost):
                        self._fail(error)
                        return
                    self._lose(error)
                    failure = await self._reconnect_with_backoff(error)
                    if failure is not None:
                        self._fail(failure)
                        return
                    replay = True
        finally:
            if self._error is None:
                self._fail(ChannelClosed(f"{self._params.show()} is closed"))
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)

    async def _serve(self, replay: bool, task_status: trio.TaskStatus[None]) -> AMQPError:
        """Run the tasks of the current connection until it breaks; return why."""
        async with trio.open_nursery() as nursery:
            self._new_link(nursery.cancel_scope)
            nursery.start_soon(self._read_loop, self._stream)
            nursery.start_soon(self._write_loop, self._stream)
            if self._heartbeat:
                nursery.start_soon(self._heartbeat_loop)
            if replay:
                nursery.start_soon(self._replay)
            task_status.started()
        assert self._link_error is not None
        return self._link_error

    def _new_link(self, scope: trio.CancelScope) -> None:
        self._link_error = None
        self._link_scope = scope

    def _break_link(self, error: AMQPError) -> None:
        if self._link_error is None:
            self._link_error = error
        if self._closing:
            self._close_ok.set()
        if self._link_scope is not None:
            self._link_scope.cancel()

    def _lose(self, error: AMQPError) -> None:
        """The connection is lost and will be opened again: fail what was in flight, keep the rest."""
        logger.warning("%s; reconnecting", error)
        self._down = error
        self._connected = trio.Event()
        self._unblocked.set()
        self._outbox = bytearray()
        self._last_ack = None
        self._abandoned.clear()
        self._drained_lot.unpark_all()
        for channel in list(self._channels.values()):
            channel._interrupt(error)

    async def _reconnect_with_backoff(self, lost: AMQPError) -> AMQPError | None:
        """Open a new connection after backoff delays; ``None`` once connected, else why it was given up."""
        assert self._reconnect is not None
        await trio.aclose_forcefully(self._stream)
        attempts = 0
        for delay in self._reconnect.delays():
            await trio.sleep(delay)
            attempts += 1
            try:
                with trio.fail_after(self._reconnect.attempt_timeout):
                    stream = await _open_stream(self._params, self._ssl_context)
                    self._stream, self._reader = stream, FrameReader()
                    await self._handshake()
            except trio.TooSlowError:
                logger.warning("reconnecting to %s: attempt %d took over %s s", self._params.show(), attempts,
                               self._reconnect.attempt_timeout)
            except ConnectionLost as exc:
                logger.warning("reconnecting to %s: attempt %d failed: %s", self._params.show(), attempts, exc)
            except AMQPError as exc:
                await trio.aclose_forcefully(self._stream)
                return exc
            else:
                self._reconnects += 1
                return None
            await trio.aclose_forcefully(self._stream)
        error = ConnectionLost(f"gave up reconnecting to {self._params.show()} after {attempts} attempts; "
                               f"lost: {lost}")
        error.__cause__ = lost
        return error

    async def _replay(self) -> None:
        """Reopen the channels and declare the topology again, in order; then let the waiting operations go."""
        try:
            for channel in sorted(self._channels.values(), key=lambda c: c.channel_id):
                try:
                    await channel._reopen()
                except ConnectionLost:
                    raise
                except AMQPError as exc:
                    logger.error("reconnected to %s but could not reopen channel %d: %s", self._params.show(),
                                 channel.channel_id, exc)
            spare: Channel | None = None
            for step in list(self._topology.steps):
                if step not in self._topology.steps:
                    continue  # dropped meanwhile (its channel failed)
                if step.channel is None and (spare is None or spare._error is not None):
                    spare = await self._spare_channel()
                await self._replay_step(step, spare)
            if spare is not None and spare._error is None:
                await spare._rpc(commands.Channel.Close(REPLY_SUCCESS, "replayed", 0, 0), commands.Channel.CloseOk,
                                 wait_connected=False)
        except ConnectionLost:
            return  # lost again: the run loop reconnects
        self._down = None
        self._connected.set()
        logger.warning("reconnected to %s; topology declared again (%d steps)", self._params.show(),
                       len(self._topology.steps))

    async def _spare_channel(self) -> Channel:
        channel_id = next(i for i in range(self._channel_max, 0, -1)
                          if i not in self._channels and i not in self._abandoned)
        channel = self._channels[channel_id] = Channel(self, channel_id)
        await channel._rpc(commands.Channel.Open(), commands.Channel.OpenOk, wait_connected=False)
        return channel

    async def _replay_step(self, step: _Step, spare: Channel | None) -> None:
        channel = step.channel or spare
        assert channel is not None
        if channel._error is not None:
            return
        try:
            if step.kind == "consume":
                assert step.consumer is not None
                await channel._rpc(step.consumer._method(), commands.Basic.ConsumeOk, wait_connected=False)
                return
            assert step.method is not None
            ok = await channel._rpc(step.method, commands.Exchange.DeclareOk, commands.Queue.DeclareOk,
                                    commands.Queue.BindOk, commands.Exchange.BindOk, commands.Basic.QosOk,
                                    wait_connected=False)
            if step.kind == "queue" and ok.queue != step.key:
                logger.warning("the server-named queue %r is now %r", step.key, ok.queue)
                self._topology.rename_queue(step.key, ok.queue)
        except ConnectionLost:
            raise
        except AMQPError as exc:
            # The broker refused it (someone redeclared it otherwise, or deleted what it needs): it is dropped, and
            # the channel that needed it is closed with that error, so its users see it.
            logger.error("reconnected to %s but could not declare %s %r again: %s", self._params.show(), step.kind,
                         step.key, exc)
            self._topology.steps = [other for other in self._topology.steps if other is not step]

    def _fail(self, error: AMQPError) -> None:
        """Mark the connection ended with ``error`` and fail every channel with it. Idempotent."""
        if self._error is None:
            self._error = error
        self._close_ok.set()
        self._connected.set()
        self._unblocked.set()
        self._drained_lot.unpark_all()
        for channel in list(self._channels.values()):
            channel._shut(self._error)


async def _open_stream(params: _Params, ssl_context: ssl.SSLContext | None) -> trio.abc.Stream:
    """A TCP stream to the broker, wrapped in TLS (handshake done) for ``amqps://``."""
    try:
        tcp = await trio.open_tcp_stream(params.host, params.port)
    except OSError as exc:
        raise _lost(f"cannot connect to {params.show()}: {exc}", exc) from exc
    if not params.tls:
        return tcp
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    stream = trio.SSLStream(tcp, context, server_hostname=params.host)
    try:
        await stream.do_handshake()
    except _Errors as exc:
        await trio.aclose_forcefully(tcp)
        raise _lost(f"TLS handshake with {params.show()} failed: {_describe(exc)}", exc) from exc
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream


def _describe(exc: BaseException) -> str:
    """The error, with the SSL or OS error trio wraps in a BrokenResourceError."""
    cause = exc.__cause__
    if isinstance(exc, trio.BrokenResourceError) and cause is not None:
        return f"{cause}" or type(cause).__name__
    return f"{exc}" or type(exc).__name__


def _lost(message: str, cause: BaseException) -> ConnectionLost:
    error = ConnectionLost(message)
    error.__cause__ = cause
    return error


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
    """Whether the connection is usable (not closed, nor lost for good)."""
    connected: bool
    """Whether it is connected now (``False`` while a reconnection is under way)."""
    blocked: bool
    """Whether the broker has blocked it (a resource alarm): publishes wait until it is unblocked."""
    reconnects: int
    """How many times it was connected again after being lost."""


@asynccontextmanager
async def open_connection(url: str = DEFAULT_URL, *, reconnect: Reconnect | None = None,
                          ssl_context: ssl.SSLContext | None = None, name: str | None = None,
                          heartbeat: int | None = None) -> AsyncIterator[Connection]:
    """``async with open_connection(url) as connection``: a connection whose tasks live in a nursery owned by the
    block; it is closed gracefully when the block ends.

    ``url`` is ``amqp://user:password@host:port/vhost`` or ``amqps://...`` for TLS (defaults: guest/guest,
    127.0.0.1, 5672 or 5671, ``/``; a ``?heartbeat=N`` query overrides the broker's heartbeat proposal, ``0``
    disabling heartbeats). ``reconnect`` opens the connection again when it is lost (see :class:`Reconnect`);
    ``ssl_context`` is the TLS context of an ``amqps://`` URL (default: :func:`ssl.create_default_context`);
    ``name`` is announced to the broker as the connection's name; ``heartbeat`` is the interval asked for when the
    URL has none (``None``: the broker's proposal).
    """
    # The handshake happens outside the nursery, so that a refused login raises as itself, not in a group.
    connection = await Connection._connect(url, reconnect, ssl_context, name, heartbeat)
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
