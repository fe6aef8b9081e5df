"""Nodes that meet on a RabbitMQ broker: one inbox queue per node, signed batches, and presence by heartbeats.

``ActorSystem(name, broker=url, secret=...)`` makes the system one node of the cluster ``name`` on that broker.
:class:`BrokerHub` is that node's side of it: channels on the system's AMQP connection to the broker (a
:class:`~runtime._broker_router.BrokerLink`, reconnecting, shared with the system's broker-backed exchanges and
queues; its 5 s heartbeat finds a connection that froze without an error in about 10 s), the node's inbox (a queue named
from the cluster and the node, see :func:`inbox_name`, consumed exclusively, which outlives a lost connection by
:data:`INBOX_EXPIRES` and is deleted when the node leaves), bound to the cluster's presence exchange (a fanout,
:func:`presence_exchange`), and one :class:`PeerLink` per live peer. A peer link has the shape
of a :class:`~runtime._link.Link` (``send(item)`` never blocks; ``run(on_batch=...)``; ``wait_closed()``;
``error``), so the :class:`~runtime._node.Cluster` runs peers with the same code as worker processes.

What a node sends another travels as one AMQP message per flush: everything queued for that peer since the last
flush, pickled together (:func:`~runtime._codec.dump_batch`), published to the peer's inbox through the default
exchange. Every message, batches and presence alike, is signed with HMAC-SHA256 under a key derived from the
cluster's secret and name (:func:`signing_key`), over its kind, sender, recipient, message id (the sender's
incarnation and a sequence number) and body (:func:`signature`); a message for one node names its incarnation
too (:func:`addressee`), so that what was meant for an earlier one is dropped. :func:`check_message` verifies all
of that before anything is decoded; the hub then refuses a sequence number that is not above the last one it took
from that incarnation (a replay). A message that fails is dropped unread and logged as a warning.

Every message is published with a publisher confirm, up to :data:`WINDOW` of them (and :data:`WINDOW_BYTES`) in
flight (the writer never waits for one to publish the next), and kept until the broker confirms it. What a node
holds for its peers, queued for a flush or published and unconfirmed, is bounded by its backlog
(:attr:`BrokerSettings.backlog`): while the broker is away or slow and the backlog is full, a tell or an ask to a
peer is refused with :class:`~runtime.BacklogFull` (a dead letter, or the ask's failure), never dropped
silently; a ``send`` (whose sender waits for its answer) and the runtime's own messages still go.

Presence: a node announces itself with a ``hello`` on the presence exchange when it starts (each peer answers
``here`` straight to its inbox), a ``beat`` every heartbeat interval, and a ``bye`` when it closes in an orderly
way. A node's own beats come back to it through the fanout; a peer is lost once this node has taken its own
beats for ``dead_after`` intervals without one from the peer. Measuring silence against the node's own echo
keeps a node whose loop was busy (or whose broker was slow) from declaring every peer lost: their beats wait in
its inbox ahead of its own.

A lost broker connection is opened again with backoff (:class:`~runtime.amqp.Reconnect`, up to a heartbeat
between attempts) and the node declares its topology again; its inbox, and what peers sent to it meanwhile, is
still there. The node keeps its incarnation and its sequence numbers: the messages the broker had not confirmed
are published again, in order and under their own numbers, before anything new, so a peer takes each exactly
once (one that did arrive is dropped as a replay); deliveries it had taken but not acknowledged come again and
are dropped the same way. Its peers' silence is measured from the reconnection, not across the outage. So an
outage shorter than the silence limit changes nothing that peers can see.

A longer one does: a peer that found the node lost has failed its asks to it with ``NodeDown`` and fired its
watchers, and drops whatever that incarnation still sends. The rule is that *a node found lost rejoins as a new
incarnation*. A node whose connection has been down for the silence limit knows that its peers are finding it
lost, and rejoins without waiting to come back; and when a peer hears from an incarnation it found lost (the
outage was just short of the node's own count, or the node was only slow), it tells it so (``out``, addressed to
that incarnation), and the node rejoins then. To rejoin, the node loses every peer (its own pending asks fail
with ``NodeDown``, its watchers fire), forgets what it had not published, takes a new incarnation and says
``hello`` (once the connection is back). Every peer sees it as
it sees a restarted node: ``NodeDown`` for the old incarnation, ``NodeUp`` for the new one, refs to actors from
before stay down, and addresses resolve afresh. The node is never half present: either nothing changed for
anyone, or everything did, for everyone. (Telling the node it is out and letting it carry on alone was the
other choice; it leaves a node up and cut off from a cluster it can reach, and needs a restart to join again.)
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import os
import secrets
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs
import trio

from ._broker_router import broker_link
from ._codec import check_secret, dump_batch, load_batch, split_batch
from ._exceptions import (
    ActorError,
    AuthenticationFailed,
    BacklogFull,
    LinkClosed,
    LinkError,
    NameTaken,
    SerializationError,
)
from ._link import check_positive_int, check_positive_seconds
from ._remote import ANSWER, DELIVER
from ._show import show
from .amqp import (
    AMQPError,
    Channel,
    Confirmation,
    Connection,
    ConnectionLost,
    Consumer,
    Delivery,
    Properties,
    Reconnect,
    hide_password,
)

if TYPE_CHECKING:
    from ._system import ActorSystem

__all__ = [
    "BrokerHub",
    "BrokerSettings",
    "BrokerStatistics",
    "PeerLink",
    "addressee",
    "check_message",
    "inbox_name",
    "load_secret",
    "presence_exchange",
    "signature",
    "signing_key",
]

logger = logging.getLogger("actors")

MessageKind = Literal["batch", "hello", "here", "beat", "bye", "out"]
KINDS: Final[frozenset[str]] = frozenset(("batch", "hello", "here", "beat", "bye", "out"))
EVERYONE: Final = "*"
"""The recipient of a message published on the presence exchange."""
BATCH_CONTENT_TYPE: Final = "application/x-trio-actors-batch"
MAX_BODY: Final = 16 * 1024 * 1024
"""The largest batch body a node publishes (bigger flushes are split); RabbitMQ's own limit is 128 MiB."""


# -- settings and names ---------------------------------------------------------------------------------------


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"broker={url!r} must be a URL string such as 'amqp://guest:guest@127.0.0.1:5672/'")
    if urllib.parse.urlsplit(url).scheme not in ("amqp", "amqps"):
        raise ValueError(f"broker={hide_password(url)!r} must be an amqp:// or amqps:// (TLS) URL, "
                         "such as 'amqp://guest:guest@127.0.0.1:5672/'")
    return url


def load_secret(secret: object) -> bytes:
    """The cluster secret: ``secret`` itself (bytes), or the bytes of the file at that path (``str`` or a path).

    Raises :class:`TypeError` for anything else and :class:`ValueError` for an unreadable file or a secret of
    fewer than 16 bytes; errors name the path, never the secret.
    """
    if isinstance(secret, bytes | bytearray):
        data = bytes(secret)
        where = "secret"
    elif isinstance(secret, str | os.PathLike):
        path = os.fspath(secret)
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise ValueError(f"secret={path!r}: cannot read the secret from that file: {exc.strerror}") from exc
        where = f"the secret in {path!r}"
    else:
        raise TypeError(f"secret must be bytes or the path of a file holding them, got {type(secret).__name__}")
    try:
        return check_secret(data)
    except ValueError as exc:
        raise ValueError(f"{where} is too short: {exc}") from None


@attrs.frozen
class BrokerSettings:
    """How a node meets its cluster on the broker."""

    url: str = attrs.field(validator=lambda _i, _a, value: _check_url(value))
    """The broker's ``amqp://user:password@host:port/vhost`` URL."""
    secret: bytes = attrs.field(repr=False, converter=load_secret)
    """The cluster secret (bytes, or the path of a file holding them)."""
    heartbeat: float = attrs.field(default=1.0, validator=check_positive_seconds("heartbeat"))
    """Seconds between two presence beats."""
    dead_after: int = attrs.field(default=3, validator=check_positive_int("dead_after"))
    """Heartbeat intervals of silence after which a peer is lost."""
    backlog: int = attrs.field(default=100_000, validator=check_positive_int("backlog"))
    """Messages for peers the node holds at most while the broker has not confirmed them (queued for the next
    flush, or published and unconfirmed): past it, tells and asks to peers are refused with
    :class:`~runtime.BacklogFull` (see :class:`BrokerHub`). The default holds a busy node's traffic over an outage
    as long as the silence limit, past which the node rejoins and what it held goes as messages to any lost node
    go: its asks fail with ``NodeDown``, watchers fire, tells are lost with the node."""

    @property
    def shown_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return hide_password(self.url)


def inbox_name(cluster: str, node: str) -> str:
    """The name of ``node``'s inbox queue in ``cluster``."""
    return f"trio-actors.{cluster}.node.{node}"


def presence_exchange(cluster: str) -> str:
    """The name of ``cluster``'s presence exchange (a fanout every node's inbox is bound to)."""
    return f"trio-actors.{cluster}.presence"


# -- signing ----------------------------------------------------------------------------------------------------


def signing_key(secret: bytes, cluster: str) -> bytes:
    """The key that signs the messages of ``cluster``: HMAC-SHA256(secret, "broker" || cluster's name), so that
    one secret shared by two clusters does not let a message of one pass in the other."""
    return hmac.digest(check_secret(secret), b"trio-actors broker\0" + cluster.encode(), "sha256")


def signature(key: bytes, kind: str, sender: str, recipient: str, message_id: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of a message: its kind, sender, recipient, message id and body, each length-prefixed
    so that no two different messages sign the same bytes."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in (kind.encode(), sender.encode(), recipient.encode(), message_id.encode()):
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    mac.update(body)
    return mac.hexdigest()


@attrs.frozen
class Checked:
    """A message whose signature verified: who sent it, what it is, and its place in its sender's sequence."""

    kind: MessageKind
    sender: str
    incarnation: str
    """The sender's incarnation: fresh each time a system with that node name opens."""
    seq: int
    """Its place among the messages of that incarnation, from 1."""
    to: str = ""
    """The incarnation of this node it is addressed to; ``""`` for a message to the node whatever its incarnation
    (or to everyone)."""


def addressee(node: str, incarnation: str) -> str:
    """The recipient of a message for one incarnation of ``node``: what :func:`check_message` checks."""
    return f"{node}.{incarnation}"


def check_message(key: bytes, me: str, properties: Properties, body: bytes) -> Checked:
    """Verify a message taken from ``me``'s inbox before anything in it is decoded.

    Raises :class:`~runtime.AuthenticationFailed` saying what is wrong: a missing or malformed property, a
    recipient other than ``me``, an incarnation of ``me`` (see :func:`addressee`) or everyone, or a signature that
    does not verify. Which incarnation it is for is the caller's to check (:attr:`Checked.to`).
    """
    kind = properties.message_type
    sender = properties.app_id
    message_id = properties.message_id
    headers = properties.headers or {}
    recipient = headers.get("to")
    sig = headers.get("sig")
    if kind not in KINDS or not sender or not isinstance(message_id, str) or not isinstance(recipient, str) \
            or not isinstance(sig, str):
        raise AuthenticationFailed(
            f"a message of type {show(kind)} from {show(sender)} lacks the properties of a signed message")
    to = ""
    if recipient not in (me, EVERYONE):
        head, _, to = recipient.rpartition(".")
        if head != me or not to:
            raise AuthenticationFailed(f"a {kind} from {sender!r} is addressed to {recipient!r}, not to {me!r}")
    if not hmac.compare_digest(signature(key, kind, sender, recipient, message_id, body), sig):
        raise AuthenticationFailed(
            f"a {kind} claiming to come from {sender!r} ({len(body)} bytes) has a wrong signature: it was forged, "
            "corrupted, or signed with another secret")
    incarnation, _, seq = message_id.rpartition(".")
    if not incarnation or not seq.isdigit():
        raise AuthenticationFailed(f"a {kind} from {sender!r} has a malformed message id {message_id!r}")
    return Checked(kind, sender, incarnation, int(seq), to)  # type: ignore[arg-type]


# -- one peer ----------------------------------------------------------------------------------------------------


LinkState = Literal["open", "closed", "broken"]


class PeerLink:
    """This node's link to one peer through the broker, with the interface of a :class:`~runtime._link.Link`.

    :meth:`send` queues an item without blocking; the hub's writer publishes everything queued for the peer as
    one message per flush. Batches from the peer are handed to the ``on_batch`` given to :meth:`run`, in the
    hub's reader turn (batches that arrive before :meth:`run` are kept for it). The link ends ``"closed"`` when
    the peer said goodbye or this node closed, ``"broken"`` when the peer fell silent, when this node was found
    lost and rejoined as a new incarnation, or when the broker connection was lost for good.
    """

    __slots__ = ("_closed", "_early", "_hub", "_on_batch", "_reason", "_state", "incarnation", "last_seen",
                 "last_seq", "name", "pending", "pid")

    def __init__(self, hub: BrokerHub, name: str, pid: int, incarnation: str, now: float) -> None:
        self._hub = hub
        self.name = name
        """The peer's node name."""
        self.pid = pid
        """The peer's process id, as it announced it."""
        self.incarnation = incarnation
        self.last_seq = 0
        self.last_seen = now
        """When this node last took a message from the peer (its own clock, in the reader's turn)."""
        self.pending: list[Any] = []
        self._early: list[list[Any]] = []
        self._on_batch: Callable[[list[Any]], object] | None = None
        self._state: LinkState = "open"
        self._reason: LinkError | None = None
        self._closed = trio.Event()

    def send(self, item: Any) -> None:
        """Queue ``item`` for the peer; it never blocks. Raises :class:`~runtime.LinkClosed` once the link ended.

        A tell or ask past the hub's backlog is not queued: it is refused with :class:`~runtime.BacklogFull`
        through the hub's ``on_refused`` (its ask fails, a tell is a dead letter)."""
        if self._state != "open":
            raise LinkClosed(f"the link to peer {self.name} is {self._state}: {self._reason}")
        hub = self._hub
        room = hub._room
        if room <= 0 and item.__class__ is tuple and item[0] == DELIVER:
            hub._refuse(item, self)
            return
        hub._room = room - 1
        pending = self.pending
        pending.append(item)
        if len(pending) == 1:
            hub._dirty(self)

    async def run(self, *, on_batch: Callable[[list[Any]], object],
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hand the peer's batches to ``on_batch`` (first those that came before) until the link ends."""
        self._on_batch = on_batch
        early, self._early = self._early, []
        for batch in early:
            on_batch(batch)
        task_status.started()
        await self._closed.wait()

    def take(self, items: list[Any]) -> None:
        """A batch from the peer (the hub's reader turn)."""
        if self._on_batch is None:
            self._early.append(items)
        else:
            self._on_batch(items)

    async def wait_closed(self) -> None:
        """Wait until the link is closed or broken."""
        await self._closed.wait()

    @property
    def state(self) -> LinkState:
        """``"open"``, ``"closed"`` (a goodbye, or this node closed) or ``"broken"`` (the peer was lost)."""
        return self._state

    @property
    def error(self) -> LinkError | None:
        """Why the link broke; ``None`` while it is open or after an orderly close."""
        return self._reason if self._state == "broken" else None

    @property
    def reason(self) -> LinkError | None:
        """Why the link ended, closed or broken; ``None`` while it is open."""
        return self._reason

    def finish(self, state: Literal["closed", "broken"], reason: LinkError) -> None:
        """End the link (once): what is still queued is dropped, and :meth:`run` returns."""
        if self._state != "open":
            return
        self._state = state
        self._reason = reason
        self._hub._release(len(self.pending))  # lost with the peer: its asks fail with NodeDown
        self.pending = []
        self._closed.set()

    def __repr__(self) -> str:
        return f"<PeerLink {self.name} pid={self.pid} {self._state} pending={len(self.pending)}>"


@attrs.frozen
class BrokerStatistics:
    """What a node's hub has done so far, as returned by :meth:`BrokerHub.statistics`."""

    peers: int
    """Peers whose link is open."""
    published: int
    """Messages published: batches and presence (a message published again after a reconnection counts once)."""
    batches_sent: int
    items_sent: int
    batches_received: int
    items_received: int
    dropped: int
    """Messages taken from the inbox and dropped unread: a bad signature, a replay, a lost peer's, one for an
    earlier incarnation of this node."""
    unconfirmed: int
    """Messages published and not yet confirmed by the broker."""
    held: int
    """Items (tells, asks, answers, ...) for peers held until the broker confirms them: queued for the next flush,
    or in a message published and not confirmed yet. Tells and asks are refused while it is at the backlog."""
    refused: int
    """Tells and asks to peers refused with :class:`~runtime.BacklogFull` (the backlog was full)."""
    republished: int
    """Messages published again after a reconnection because the broker had not confirmed them."""
    reconnects: int
    """Times the broker connection was lost and opened again."""
    rejoins: int
    """Times this node was found lost by a peer and rejoined the cluster as a new incarnation."""
    incarnation: str
    """This node's incarnation now."""


Refused = Callable[[Any, ActorError], object]
"""Called for an item the hub will not send: one that does not pickle (:class:`~runtime.SerializationError`), or a
tell or ask past the backlog (:class:`~runtime.BacklogFull`)."""


@attrs.define(eq=False)
class _Outgoing:
    """A signed message on its way: kept, in order, until the broker confirms it, to be published again (as it
    is, same sequence number) after a reconnection."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Properties
    items: int
    """The items of the batch it carries (0 for presence): held until it is confirmed."""
    confirmation: Confirmation | None = None
    """The current publish's confirmation; ``None`` while it waits to be published (again)."""


ACK_EVERY: Final = 256
"""Deliveries a node takes from its inbox before it acknowledges them (it does at each beat too)."""
WINDOW: Final = 1024
"""Messages the hub has published and the broker has not confirmed, at most; the writer waits beyond that."""
WINDOW_BYTES: Final = 64 * 1024 * 1024
"""Bytes of messages the hub has published and the broker has not confirmed, at most (one more message may pass
it); the writer waits beyond that, and what is sent meanwhile waits in the peers' queues, counted against the
backlog."""
INBOX_EXPIRES: Final = 60.0
"""Seconds an inbox queue outlives its node's connection: long enough for any outage short of the silence
limit, so that what peers send meanwhile waits in it."""


class BrokerHub:
    """One node on the broker: its connection, its inbox, its presence, and a :class:`PeerLink` per peer."""

    def __init__(self, system: ActorSystem, settings: BrokerSettings, *, on_peer: Callable[[PeerLink], object],
                 on_refused: Refused) -> None:
        self.settings = settings
        self.cluster = system.name
        self.me = system.node_id
        self.inbox = inbox_name(self.cluster, self.me)
        self.exchange = presence_exchange(self.cluster)
        self.peers: dict[str, PeerLink] = {}
        self._on_peer = on_peer
        self._on_refused = on_refused
        self._key = signing_key(settings.secret, self.cluster)
        self._incarnation = secrets.token_hex(8)
        self._seq = 0
        self._lost: set[tuple[str, str]] = set()
        """(name, incarnation) of peers that are lost: what they still send is dropped."""
        self._queued: list[PeerLink] = []
        self._replies: list[tuple[MessageKind, str, str]] = []
        """Presence messages for the writer to publish, as (kind, node, recipient): a ``hello`` or ``beat`` to
        everyone, a ``here`` to each newcomer, an ``out`` to a peer this node found lost that still talks to it."""
        self._told_lost: set[tuple[str, str]] = set()
        self._wake = trio.Event()
        self._outgoing: collections.deque[_Outgoing] = collections.deque()
        """Messages published and not confirmed yet, in the order of their sequence numbers."""
        self._outgoing_bytes = 0
        """The size of the bodies in ``_outgoing``."""
        self._room = settings.backlog
        """The backlog less the items sent to peers and not confirmed by the broker yet (in ``PeerLink.pending`` or
        in ``_outgoing``): one count to decrement on the sender's path."""
        self._refused = 0
        self._full = False
        """Whether the backlog is full (said once in the log each time it fills)."""
        self._resend = False
        """The connection was lost: every message in ``_outgoing`` is to be published again, in order, before any
        new one."""
        self._epoch = 0
        """The publishing channel's epoch when the messages in ``_outgoing`` were published."""
        self._window_lot = trio.lowlevel.ParkingLot()
        self._system = system
        self._channel: Channel | None = None
        """The channel the hub publishes on (in confirm mode)."""
        self._inbox_channel: Channel | None = None
        """The channel the inbox is consumed on."""
        self._connection: Connection | None = None
        self._scope: trio.CancelScope | None = None
        self._done = trio.Event()
        """Set once the hub's tasks have ended and it let the connection go."""
        self._closing = False
        self._published = 0
        self._republished = 0
        self._batches_sent = 0
        self._items_sent = 0
        self._batches_received = 0
        self._items_received = 0
        self._dropped = 0
        self._reconnects = 0
        self._rejoins = 0
        self._unacked: Delivery | None = None
        """The last delivery taken and not acknowledged yet."""
        self._unacked_count = 0
        self._cut_off = False
        """Whether this node rejoined as a new incarnation because its connection was down too long (once per
        outage)."""
        self._echoed = 0.0
        """When a beat of this node's came back to it last (or it started, or rejoined): until then, its peers
        heard it."""

    # -- running ----------------------------------------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Connect, declare the inbox and presence, announce this node; then run in ``nursery`` until closed.

        Raises what the broker refuses (:class:`~runtime.NotAuthorized` for a refused login or permission), and
        :class:`~runtime.NameTaken` when a live node of the cluster already has this node's name.
        """
        await nursery.start(self._run)

    @property
    def connection(self) -> Connection:
        """The system's connection to the broker, which the hub shares with broker-backed exchanges and queues."""
        assert self._connection is not None, f"{self!r} is not started"
        return self._connection

    @property
    def connection_name(self) -> str:
        """The name the hub's connection gives itself to the broker (its tools show it)."""
        return f"trio-actors {self.cluster} {self.me}"

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        heartbeat = self.settings.heartbeat
        reconnect = Reconnect(initial=min(0.1, heartbeat), maximum=heartbeat, attempt_timeout=max(10.0, heartbeat))
        # The system's one connection to this broker: broker-backed exchanges and queues share it (the hub opens it
        # first, with its backoff, which keeps an outage short of the silence limit).
        link = await broker_link(self._system, self.settings.url, reconnect=reconnect, name=self.connection_name)
        try:
            connection = self._connection = link.connection
            channel = self._channel = await connection.channel()
            await channel.confirm_select()
            self._epoch = channel.epoch
            self._echoed = trio.current_time()
            await channel.exchange_declare(self.exchange, "fanout")
            consumer = await self._open_inbox(first=True)
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    self._reply(("hello", EVERYONE, EVERYONE))
                    nursery.start_soon(self._write_loop)
                    nursery.start_soon(self._beat_loop)
                    task_status.started()
                    await self._read_loop(consumer)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                for own in (self._channel, self._inbox_channel):
                    if own is not None:
                        await own.close()  # the connection is shared: the hub's channels go, the rest stay
            link.release()
            self._done.set()

    async def _open_inbox(self, *, first: bool) -> Consumer:
        """Declare the inbox (a queue that outlives a lost connection by :data:`INBOX_EXPIRES`), bind it to the
        presence exchange and consume it, exclusively, on a channel of its own.

        The first time, a consumer already there means the name is taken. After a reconnection it is this node's
        own consumer on the lost connection, which the broker has not found dead yet: tried again until it has
        (the broker finds a connection that went silent dead after two AMQP heartbeats), for the silence limit or
        three heartbeats at most (then another node has taken the name meanwhile: :class:`NameTaken`).
        """
        assert self._connection is not None
        delay = min(0.1, self.settings.heartbeat)
        patience = max(self.settings.heartbeat * self.settings.dead_after,
                       3 * self._connection.statistics().heartbeat)
        give_up = trio.current_time() + patience
        while True:
            if self._inbox_channel is not None:
                await self._inbox_channel.close()
            channel = self._inbox_channel = await self._connection.channel()
            try:
                await channel.queue_declare(self.inbox, arguments={"x-expires": int(INBOX_EXPIRES * 1000)})
                await channel.queue_bind(self.inbox, self.exchange)
                return await channel.basic_consume(self.inbox, exclusive=True)
            except AMQPError as exc:
                # 403 for a consumer already there; 405 for an exclusive queue of that name (an older version)
                taken = exc.reply_code == 405 or (exc.reply_code == 403 and "exclusive" in exc.reply_text)
                if not taken:
                    raise
                if first or trio.current_time() > give_up:
                    raise NameTaken(
                        f"node name {self.me!r} is taken: a live node of cluster {self.cluster!r} on "
                        f"{self.settings.shown_url} already has it; give this one another node_name=") from exc
                logger.info("node %s: its inbox is still held by its lost connection; trying again", self.me)
            await trio.sleep(delay)
            delay = min(delay * 2, self.settings.heartbeat)

    async def _read_loop(self, consumer: Consumer) -> None:
        """Take what comes to the inbox, batch by batch, in this task's turn.

        Deliveries are acknowledged off the message path: every :data:`ACK_EVERY` of them, and at each beat (see
        :meth:`_ack`). What was taken and not acknowledged when the connection was lost is delivered again after
        the reconnection, and dropped by the replay check."""
        assert self._connection is not None
        reconnects = 0
        while True:
            try:
                deliveries = await consumer.receive_batch()
            except AMQPError as exc:
                if self._closing:
                    return
                if not self._connection.statistics().open:
                    self._lose_all(f"the broker connection was lost: {exc}")
                    return
                logger.warning("node %s: its inbox consumer ended (%s); consuming it again", self.me, exc)
                try:
                    consumer = await self._open_inbox(first=False)
                except AMQPError as error:
                    self._lose_all(f"its inbox cannot be consumed again: {error}")
                    return
                except NameTaken as error:
                    self._lose_all(str(error))
                    return
                continue
            if not deliveries:
                self._lose_all("the broker stopped delivering to this node")
                return
            now_reconnects = self._connection.reconnects
            if now_reconnects != reconnects:
                reconnects = now_reconnects
                self._reconnected()
            for delivery in deliveries:
                try:
                    self._take(delivery)
                except Exception:  # a bug must not cost the node its cluster: say it, go on
                    logger.exception("node %s: taking %r from the broker failed", self.me, delivery)
            self._unacked = deliveries[-1]
            self._unacked_count += len(deliveries)
            if self._unacked_count >= ACK_EVERY:
                self._ack()

    def _ack(self) -> None:
        """Acknowledge every delivery taken so far (one ``multiple`` ack)."""
        delivery, self._unacked, self._unacked_count = self._unacked, None, 0
        if delivery is not None:
            try:
                delivery.ack(multiple=True)
            except AMQPError:
                pass  # it came on a lost connection: delivered again, and dropped as a replay

    def _reconnected(self) -> None:
        """The connection is back: the outage was this node's, not its peers' silence, so each peer's silence is
        measured from now. A peer that found this node lost meanwhile says so (``out``) once it hears from it."""
        self._reconnects += 1
        now = trio.current_time()
        for peer in self.peers.values():
            peer.last_seen = now
        logger.warning("node %s is back on %s", self.me, self.settings.shown_url)

    def _lose_all(self, why: str) -> None:
        if self._closing:
            return
        logger.error("node %s: %s; every peer is lost", self.me, why)
        for peer in list(self.peers.values()):
            self._lose(peer, "broken", LinkClosed(why))
        if self._scope is not None:
            self._scope.cancel()

    def _rejoin(self, cause: str) -> None:
        """This node was (or may have been) found lost: every peer is lost to it too, and it comes back as a new
        incarnation, with a ``hello`` (published once the connection is up)."""
        self._rejoins += 1
        why = f"{cause}: node {self.me} rejoins the cluster as a new incarnation"
        logger.warning("%s", why)
        for peer in list(self.peers.values()):
            self._lose(peer, "broken", LinkClosed(why))
        # A fresh start: what was on its way is for the old incarnation, which peers no longer take; peers are not
        # lost to the new one.
        self._lost.clear()
        self._told_lost.clear()
        self._queued = []
        self._release(sum(outgoing.items for outgoing in self._outgoing))
        self._outgoing.clear()
        self._outgoing_bytes = 0
        self._window_lot.unpark_all()
        self._incarnation = secrets.token_hex(8)
        self._seq = 0
        self._echoed = trio.current_time()
        self._replies = [("hello", EVERYONE, EVERYONE)]
        self._wake.set()

    async def aclose(self) -> None:
        """Leave the cluster in order: publish what is queued, say goodbye, wait for the broker to confirm, delete
        the inbox, close the hub's channels and let the connection go (the system's broker-backed actors may still
        use it; the last user closes it). Bounded by the caller; cancelled, peers find this node silent."""
        if self._closing:
            return
        self._closing = True
        try:
            # Bounded by the silence limit too: a node whose broker is away cannot say goodbye, and is found silent.
            with trio.move_on_after(self.settings.heartbeat * self.settings.dead_after) as scope:
                if self._channel is not None:
                    self._flush_all()
                    self._queue_presence("bye", EVERYONE, EVERYONE)
                    self._wake.set()
                    await self._wait_confirmed()
                    assert self._connection is not None
                    async with await self._connection.channel() as channel:
                        await channel.queue_delete(self.inbox)
            if scope.cancelled_caught:
                logger.info("node %s could not say goodbye: the broker did not confirm it in time", self.me)
        except AMQPError as exc:
            logger.info("node %s could not say goodbye: %s", self.me, exc)
        finally:
            for peer in list(self.peers.values()):
                peer.finish("closed", LinkClosed(f"node {self.me} left the cluster"))
            if self._scope is not None:
                self._scope.cancel()  # its run ends: its channels are closed, and the connection let go
                await self._done.wait()

    async def _wait_confirmed(self) -> None:
        """Wait until the broker has confirmed everything published so far."""
        assert self._connection is not None
        while self._outgoing and self._connection.statistics().open:
            await self._window_lot.park()  # woken by each confirmation and by a lost connection

    # -- sending ------------------------------------------------------------------------------------------------

    def _refuse(self, item: tuple[Any, ...], peer: PeerLink) -> None:
        """A tell or ask to ``peer`` past the backlog: refused, through ``on_refused`` (its ask fails with
        :class:`~runtime.BacklogFull`, a tell becomes a dead letter); nothing is queued."""
        self._refused += 1
        backlog = self.settings.backlog
        if not self._full:
            self._full = True
            logger.warning("node %s holds %d messages for its peers that %s has not confirmed (its backlog): "
                           "tells and asks to peers are refused until the broker takes them", self.me, self._held,
                           self.settings.shown_url)
        self._on_refused(item, BacklogFull(
            f"{show(item[2])} for {item[1]} on peer {peer.name} was not sent: node {self.me} holds {self._held} "
            f"messages for its peers that the broker {self.settings.shown_url} has not confirmed (backlog="
            f"{backlog}); the broker is away or slow"))

    @property
    def _held(self) -> int:
        return self.settings.backlog - self._room

    def _release(self, count: int) -> None:
        """``count`` held items were confirmed by the broker (or dropped, each with its own outcome)."""
        self._room += count
        if self._full and self._room > 0:
            self._full = False
            logger.info("node %s: its backlog has room again (%d held)", self.me, self._held)

    def _dirty(self, peer: PeerLink) -> None:
        self._queued.append(peer)
        self._wake.set()

    async def _write_loop(self) -> None:
        """Publish what is queued, one message per peer per flush, without waiting for confirms (see :meth:`_settle`).

        After a lost connection it waits for the new one and publishes again, in order, whatever the broker had
        not confirmed, before anything new. Ends only when the connection is lost for good (the reader finds that
        too and loses every peer)."""
        assert self._connection is not None
        try:
            while True:
                if not self._queued and not self._replies and not self._resend:
                    self._wake = trio.Event()
                    await self._wake.wait()
                if not self._connection.connected:  # (when it is, publish in this turn: no checkpoint first)
                    await self._connection.wait_connected()
                self._publish_again()
                while (len(self._outgoing) >= WINDOW or self._outgoing_bytes >= WINDOW_BYTES) and not self._resend:
                    await self._window_lot.park()
                if not self._resend:
                    self._flush_all()
                    await trio.lowlevel.checkpoint()
        except AMQPError as exc:
            logger.info("node %s stopped publishing: %s", self.me, exc)

    def _flush_all(self) -> None:
        replies, self._replies = self._replies, []
        for kind, node, recipient in replies:
            self._queue_presence(kind, node, recipient)
        while self._queued:
            queued, self._queued = self._queued, []
            for peer in queued:
                items, peer.pending = peer.pending, []
                if items and peer.state == "open":
                    self._publish_batch(peer, items)

    def _publish_batch(self, peer: PeerLink, items: list[Any]) -> None:
        """Publish ``items`` to ``peer`` as one message (or several, if they pickle over :data:`MAX_BODY`); an
        item that does not pickle is refused on its own and the rest still go."""
        try:
            body = dump_batch(items)
        except SerializationError:
            items, refused = split_batch(items)
            self._release(len(refused))
            for item, error in refused:
                self._on_refused(item, error)
            if not items:
                return
            body = dump_batch(items)
        if len(body) > MAX_BODY:
            if len(items) == 1:
                self._release(1)
                self._on_refused(items[0], SerializationError(
                    f"{show(items[0])} pickles to {len(body)} bytes, over the limit of {MAX_BODY} bytes"))
                return
            half = len(items) // 2
            self._publish_batch(peer, items[:half])
            self._publish_batch(peer, items[half:])
            return
        self._batches_sent += 1
        self._items_sent += len(items)
        self._publish("batch", peer.name, addressee(peer.name, peer.incarnation), body, "", _correlation(items),
                      len(items))

    def _queue_presence(self, kind: MessageKind, node: str, recipient: str) -> None:
        body = json.dumps({"pid": os.getpid()}).encode()
        exchange = self.exchange if recipient == EVERYONE else ""
        self._publish(kind, node, recipient, body, exchange, None, 0)

    def _publish(self, kind: MessageKind, node: str, recipient: str, body: bytes, exchange: str,
                 correlation: str | None, items: int) -> None:
        """Sign one message, number it and publish it, without a checkpoint: numbers reach the broker in order.
        While the connection is down it waits in ``_outgoing`` with the unconfirmed ones, in order."""
        self._seq += 1
        message_id = f"{self._incarnation}.{self._seq}"
        sig = signature(self._key, kind, self.me, recipient, message_id, body)
        properties = Properties(
            content_type=BATCH_CONTENT_TYPE if kind == "batch" else "application/json", message_type=kind,
            app_id=self.me, message_id=message_id, reply_to=self.inbox, correlation_id=correlation,
            headers={"to": recipient, "sig": sig})
        routing_key = self.inbox if recipient == EVERYONE else inbox_name(self.cluster, node)
        outgoing = _Outgoing(exchange, routing_key, body, properties, items)
        self._outgoing.append(outgoing)
        self._outgoing_bytes += len(body)
        self._published += 1
        channel = self._channel
        assert channel is not None
        if self._resend or channel.epoch != self._epoch:
            self._resend = True  # published with the others once the connection is back
            return
        self._send(channel, outgoing)

    def _send(self, channel: Channel, outgoing: _Outgoing) -> bool:
        try:
            outgoing.confirmation = channel.publish_nowait(outgoing.exchange, outgoing.routing_key, outgoing.body,
                                                           properties=outgoing.properties, on_done=self._settle)
        except ConnectionLost:
            self._resend = True
            return False
        return True

    def _publish_again(self) -> None:
        """After a reconnection: publish every unconfirmed message again, in order (a peer drops one it took
        already: its number is not above the last one it took)."""
        channel = self._channel
        assert channel is not None
        if not self._resend and channel.epoch == self._epoch:
            return
        self._resend = False
        self._epoch = channel.epoch
        count = 0
        for outgoing in list(self._outgoing):
            if not self._send(channel, outgoing):
                return
            count += 1
        self._republished += count
        if count:
            logger.info("node %s published %d unconfirmed messages again", self.me, count)

    def _settle(self, _confirmation: Confirmation | None = None) -> None:
        """Forget the confirmed messages at the head of ``_outgoing``; on a lost connection, have every one that
        is left published again. Called by the AMQP client as each confirm comes (or fails), in its reader's turn:
        the broker confirms in order, so no task waits on each."""
        outgoing = self._outgoing
        while outgoing:
            head = outgoing[0]
            confirmation = head.confirmation
            if confirmation is None or not confirmation.done:
                break
            try:
                confirmation.result()
            except ConnectionLost:
                for message in outgoing:
                    message.confirmation = None
                self._resend = True
                self._wake.set()
                break
            except AMQPError as exc:
                # The broker could not take it (an internal error): publishing it again would come after later
                # numbers, which the peer has taken, so it would be dropped. Say so.
                logger.error("node %s: the broker refused a %s to %s, which is lost: %s", self.me,
                             head.properties.message_type, head.routing_key, exc)
            outgoing.popleft()
            self._outgoing_bytes -= len(head.body)
            self._release(head.items)
        if self._window_lot:
            self._window_lot.unpark_all()

    async def _beat_loop(self) -> None:
        """Beat every heartbeat interval; and while the connection is down, count how long: past the silence
        limit, peers find this node lost, so it rejoins as a new incarnation without waiting to hear it (its
        pending asks fail now, not when the broker is back)."""
        assert self._connection is not None
        limit = self.settings.heartbeat * self.settings.dead_after
        while True:
            await trio.sleep(self.settings.heartbeat)
            self._ack()
            if self._connection.connected:
                self._cut_off = False
            elif not self._cut_off:
                # Counted from the last beat of its own that came back, not from when the connection was found
                # lost: a connection that froze is found lost only after two AMQP heartbeats of silence, and
                # peers stopped hearing this node when it froze.
                silence = trio.current_time() - self._echoed
                if silence >= limit:
                    self._cut_off = True
                    self._rejoin(f"node {self.me} was cut off from the broker for {silence:.1f} s "
                                 f"(peers find a node lost after {limit:g} s)")
            if ("beat", EVERYONE, EVERYONE) not in self._replies:  # one at a time while the connection is down
                self._reply(("beat", EVERYONE, EVERYONE))

    # -- receiving ----------------------------------------------------------------------------------------------

    def _take(self, delivery: Delivery) -> None:
        """One message from the inbox, in the reader's turn: checked before anything in it is decoded."""
        try:
            checked = check_message(self._key, self.me, delivery.properties, delivery.body)
        except AuthenticationFailed as exc:
            self._drop(str(exc))
            return
        now = trio.current_time()
        sender = checked.sender
        if sender == self.me:
            if checked.incarnation == self._incarnation and checked.kind == "beat":
                self._echoed = now
                self._judge(now)
            return
        if checked.to and checked.to != self._incarnation:
            self._dropped += 1  # for an earlier incarnation of this node: no longer its business
            return
        if checked.kind == "out":
            self._rejoin(f"peer {sender} found node {self.me} lost")
            return
        if (sender, checked.incarnation) in self._lost:
            if checked.kind != "beat":
                self._drop(f"a {checked.kind} from {sender!r}, which this node has found lost")
            else:
                self._dropped += 1
            if checked.kind != "bye" and (sender, checked.incarnation) not in self._told_lost:
                # It still counts on this node (it was only slow, or cut off for a while): it is told that it is
                # out, so that it rejoins as a new incarnation instead of waiting on messages dropped here.
                self._told_lost.add((sender, checked.incarnation))
                self._reply(("out", sender, addressee(sender, checked.incarnation)))
            return
        peer = self.peers.get(sender)
        if peer is not None and peer.incarnation != checked.incarnation:
            if checked.kind != "hello":
                self._drop(f"a {checked.kind} from another incarnation of {sender!r} than the one this node knows")
                return
            self._lose(peer, "broken", LinkClosed(f"peer {sender} started again"))
            peer = None
        if peer is None:
            if checked.kind == "bye":
                return
            peer = self._add_peer(checked, delivery.body, now)
        if checked.seq <= peer.last_seq:
            if delivery.redelivered:  # taken before the connection was lost, not yet acknowledged: no news
                self._dropped += 1
                return
            self._drop(f"a {checked.kind} from {sender!r} numbered {checked.seq}, after {peer.last_seq}: a replay")
            return
        peer.last_seq = checked.seq
        peer.last_seen = now
        kind = checked.kind
        if kind == "batch":
            try:
                items = load_batch(delivery.body)
            except SerializationError as exc:
                logger.error("node %s: a batch from peer %s does not unpickle here: %s", self.me, sender, exc)
                self._lose(peer, "broken", LinkClosed(f"a batch from peer {sender} does not unpickle here: {exc}"))
                return
            self._batches_received += 1
            self._items_received += len(items)
            peer.take(items)
        elif kind == "hello":  # answered straight to its inbox, so that the newcomer knows this node at once
            self._reply(("here", sender, addressee(sender, checked.incarnation)))
        elif kind == "bye":
            logger.info("node %s: peer %s left", self.me, sender)
            self._lose(peer, "closed", LinkClosed(f"peer {sender} left the cluster"))

    def _add_peer(self, checked: Checked, body: bytes, now: float) -> PeerLink:
        pid = 0
        if checked.kind != "batch":
            try:
                pid = int(json.loads(body)["pid"])
            except (ValueError, KeyError, TypeError):
                pid = 0
        peer = self.peers[checked.sender] = PeerLink(self, checked.sender, pid, checked.incarnation, now)
        self._on_peer(peer)
        return peer

    def _reply(self, message: tuple[MessageKind, str, str]) -> None:
        """Have the writer publish a presence message (the reader never waits)."""
        if not self._closing:
            self._replies.append(message)
            self._wake.set()

    def _judge(self, now: float) -> None:
        """This node's own beat came back: every peer not heard from for the silence limit is lost."""
        limit = self.settings.heartbeat * self.settings.dead_after
        for peer in list(self.peers.values()):
            silence = now - peer.last_seen
            if silence > limit:
                logger.warning("node %s: peer %s sent nothing for %.1f s; it is lost", self.me, peer.name, silence)
                self._lose(peer, "broken", LinkClosed(
                    f"peer {peer.name} fell silent: no heartbeat for {silence:.1f} s (limit {limit:g} s)"))

    def _lose(self, peer: PeerLink, state: Literal["closed", "broken"], reason: LinkError) -> None:
        if self.peers.get(peer.name) is peer:
            del self.peers[peer.name]
        self._lost.add((peer.name, peer.incarnation))
        peer.finish(state, reason)

    def _drop(self, why: str) -> None:
        self._dropped += 1
        logger.warning("node %s dropped a message from the broker unread: %s", self.me, why)

    def statistics(self) -> BrokerStatistics:
        """Peers, messages and items each way, messages dropped, and what the connection's losses cost, as a
        frozen value."""
        return BrokerStatistics(
            peers=len(self.peers), published=self._published, batches_sent=self._batches_sent,
            items_sent=self._items_sent, batches_received=self._batches_received,
            items_received=self._items_received, dropped=self._dropped, unconfirmed=len(self._outgoing),
            held=self._held, refused=self._refused,
            republished=self._republished, reconnects=self._reconnects, rejoins=self._rejoins,
            incarnation=self._incarnation)

    def __repr__(self) -> str:
        return (f"<BrokerHub {self.me!r} in {self.cluster!r} on {self.settings.shown_url} peers={len(self.peers)} "
                f"unconfirmed={len(self._outgoing)} held={self._held} reconnects={self._reconnects} "
                f"dropped={self._dropped}>")


def _correlation(items: list[Any]) -> str | None:
    """The correlation id of a batch that carries a single ask or answer (for anyone tracing the broker)."""
    if len(items) == 1:
        item = items[0]
        if item.__class__ is tuple and item[0] in (DELIVER, ANSWER):
            correlation = item[4] if item[0] == DELIVER else item[2]
            if correlation is not None:
                return str(correlation)
    return None
