"""A queue's state, apart from the actor that serves it: messages, deliveries, consumers, limits, expiry.

:class:`QueueState` is plain synchronous code. It holds the ready messages (in order, requeued ones back at
their place), the unacked deliveries by tag, the consumers and their round-robin, the counters, and applies
RabbitMQ's rules for length limits, TTL at the head of the queue, the delivery limit and requeueing. What it
cannot do itself (tell a consumer a delivery, republish a dead letter, arm a timer, stop watching a consumer)
it asks of the :class:`QueueEffects` attached to it: the ``Queue`` actor, or a fake in a unit test.

The state outlives the actor instance. The ``Queue`` actor keeps it in the system's
:class:`~runtime._topology.Topology` under its ref, so a restarted queue (same ref, fresh instance) attaches
itself to the state its predecessor left: its ready messages, its unacked deliveries (same tags) and its
consumers (same leases) are where they were, and the deliveries already told to consumers stay valid. Nothing
is lost, and nothing is delivered twice: a consumer handles each delivery it was told once and acks it under
the tag the state still knows.

Time comes from ``clock`` (``trio.current_time`` by default), read only when a message has a TTL.

The x-death rules of dead-lettering (:func:`dead_letter_headers`, :func:`is_dead_letter_cycle`) are here too:
they are decisions on a message, not on an actor.
"""

from __future__ import annotations

import heapq
import pickle
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import attrs
import trio

from ._lease import Lease

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._storage import PendingWrites, StoredMessage

__all__ = [
    "OVERFLOWS",
    "DeathReason",
    "Overflow",
    "QueueConsumer",
    "QueueEffects",
    "QueueLimits",
    "QueueState",
    "QueuedMessage",
    "body_size",
    "dead_letter_headers",
    "is_dead_letter_cycle",
]

Overflow = Literal["drop_head", "reject_publish", "reject_publish_dlx"]
"""What a full queue does with a new message: drop from the head, or refuse it (and dead-letter it)."""

OVERFLOWS: Final = ("drop_head", "reject_publish", "reject_publish_dlx")
"""The overflow policies, in the order error messages list them."""

DeathReason = Literal["rejected", "expired", "maxlen", "delivery_limit"]
"""Why a message was dead-lettered, as RabbitMQ's ``x-death`` names it."""


@attrs.frozen
class QueueLimits:
    """A queue's rules: length limits and overflow, TTL, delivery limit, durability. Checked by the caller."""

    max_length: int | None = None
    """The most ready messages, ``None`` for no limit."""
    max_length_bytes: int | None = None
    """The most bytes of body over the ready messages, ``None`` for no limit."""
    overflow: Overflow = "drop_head"
    """What happens beyond a limit."""
    message_ttl: float | None = None
    """Seconds a message may wait, ``None`` for no limit."""
    delivery_limit: int | None = None
    """A message returned more than this many times is dead-lettered."""
    durable: bool = False
    """Whether every change is recorded as a pending write for the store."""


class QueuedMessage:
    """A message in a queue: what was published, where it stands, and how often it came back."""

    __slots__ = ("bcc", "body", "cc", "exchange", "expires_at", "headers", "persistent", "redelivered", "returns",
                 "routing_key", "seq", "size", "ttl")

    def __init__(self, seq: int, exchange: str, routing_key: str, body: Any, headers: Mapping[str, Any] | None,
                 persistent: bool, ttl: float | None, expires_at: float | None, cc: tuple[str, ...] = (),
                 bcc: tuple[str, ...] = (), size: int = 0) -> None:
        self.seq = seq
        """Its position: requeued messages go back in seq order."""
        self.exchange = exchange
        """The name of the exchange it was published to, ``""`` for none."""
        self.routing_key = routing_key
        """The routing key it was published with."""
        self.body = body
        """The payload."""
        self.headers = headers
        """Its headers as delivered: without ``BCC``."""
        self.cc = cc
        """The extra routing keys of its ``CC`` header."""
        self.bcc = bcc
        """The extra routing keys of the ``BCC`` header it was published with (kept for dead-lettering only)."""
        self.size = size
        """The size of its body in bytes, measured only if the queue has ``max_length_bytes`` (else 0)."""
        self.persistent = persistent
        """AMQP delivery mode 2, kept with the message."""
        self.ttl = ttl
        """The per-message TTL it was published with (for ``x-death``'s ``original-expiration``)."""
        self.expires_at = expires_at
        """When it expires on the queue's clock, ``None`` for never."""
        self.returns = 0
        """How many times it came back unsettled (nacked with requeue, or its consumer stopped or failed)."""
        self.redelivered = False
        """Whether it was delivered before."""

    def __repr__(self) -> str:
        return f"<QueuedMessage #{self.seq} {self.routing_key!r} returns={self.returns}>"


class QueueConsumer:
    """A consumer's settings, the lease its deliveries are told under, and the delivery tags it holds."""

    __slots__ = ("auto_ack", "in_free", "lease", "prefetch", "ref", "subscribed", "tags")

    def __init__(self, ref: ActorRef, queue: ActorRef) -> None:
        self.ref = ref
        """The consuming actor."""
        self.lease = Lease(notify=queue)
        """Its deliveries are told under this lease: revoked when it fails, so that its restarted incarnation
        does not handle again what the queue gave to others."""
        self.prefetch = 0
        """The most unsettled deliveries it may hold; 0 for no limit."""
        self.auto_ack = False
        """Whether its deliveries count as acknowledged when sent."""
        self.subscribed = False
        """Whether it is subscribed (an unsubscribed consumer is kept while it holds deliveries)."""
        self.in_free = False
        """Whether it is in the queue's round-robin of consumers with room."""
        self.tags: set[int] = set()
        """The tags of the deliveries it holds unsettled."""

    def has_room(self) -> bool:
        """Whether it may take one more delivery."""
        return self.auto_ack or not self.prefetch or len(self.tags) < self.prefetch

    def __repr__(self) -> str:
        return f"<QueueConsumer {self.ref!r} holds={len(self.tags)} prefetch={self.prefetch}>"


class QueueEffects(Protocol):
    """What a :class:`QueueState` asks of the actor serving it."""

    def deliver(self, consumer: QueueConsumer, message: QueuedMessage, tag: int) -> bool:
        """Tell ``consumer`` the delivery of ``message`` under ``tag``; ``False`` if its full mailbox refused it."""
        ...

    def dead_letter(self, message: QueuedMessage, reason: DeathReason) -> None:
        """Republish ``message``, dead for ``reason``, to the dead-letter exchange (or drop it as a dead letter)."""
        ...

    def arm_expiry(self, delay: float) -> None:
        """Call :meth:`QueueState.expire` in ``delay`` seconds (replacing the timer set before, if any)."""
        ...

    def release(self, consumer: ActorRef) -> None:
        """``consumer`` is no longer a consumer: stop watching it."""
        ...


class QueueState:
    """The state of one queue; see the module docstring.

    Every message the queue accepted is, at any moment, exactly one of ready, unacked, acked or dead-lettered:
    ``published == ready + unacked + acked + dead_lettered``.
    """

    __slots__ = ("_armed", "_clock", "_closed", "_consumers", "_effects", "_free", "_limited", "_noted", "_ready",
                 "_requeued", "_seq", "_tag", "_unacked", "_wall", "acked", "dead_lettered", "delivered", "limits",
                 "published", "queue", "ready_bytes", "redelivered", "refused", "reservations", "writes")

    def __init__(self, queue: ActorRef, limits: QueueLimits, *, clock: Callable[[], float] = trio.current_time,
                 first_tag: int = 0, writes: PendingWrites | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.queue = queue
        """The queue's ref (the ``notify`` of its consumers' leases)."""
        self.limits = limits
        """Its rules."""
        self._clock = clock
        self._wall = wall_clock
        """Wall-clock seconds, for the deadlines a durable queue stores (trio's clock starts again each run)."""
        self._noted: dict[int, bool | None] = {}
        """Settlements noted by the consumers (:meth:`note_settlement`) that the queue has not handled yet."""
        self._closed = False
        """Set by :meth:`close`: no more deliveries."""
        self.reservations: dict[int, tuple[int, int, Any]] = {}
        """Room held for transactions between their two phases: id -> (messages, bytes, what the actor keeps
        to enqueue them). Kept in the state, so that a queue restarted between the phases still commits."""
        self._effects: QueueEffects | None = None
        self._limited = limits.max_length is not None or limits.max_length_bytes is not None
        self._ready: deque[QueuedMessage] = deque()
        """Messages never delivered, in seq order (appended at the tail)."""
        self._requeued: list[tuple[int, QueuedMessage]] = []
        """A heap of returned messages by seq; each was once at the head, so it comes before all of _ready."""
        self.ready_bytes = 0
        """The sum of ``size`` over the ready messages (sizes are 0 unless there is a ``max_length_bytes``)."""
        self._unacked: dict[int, tuple[QueuedMessage, QueueConsumer | None]] = {}
        self._consumers: dict[ActorRef, QueueConsumer] = {}
        self._free: deque[QueueConsumer] = deque()
        """The round-robin: subscribed consumers with room (``in_free``), the next one first."""
        self._seq = 0
        self._tag = first_tag
        self._armed: float | None = None
        """The deadline the expiry timer is set for."""
        self.writes = writes
        """A durable queue's pending writes (``None`` unless ``limits.durable``)."""
        self.published = 0
        """Messages accepted."""
        self.delivered = 0
        """Deliveries made, redeliveries included."""
        self.acked = 0
        """Messages acknowledged."""
        self.redelivered = 0
        """Deliveries of messages delivered before."""
        self.dead_lettered = 0
        """Messages removed as dead letters."""
        self.refused = 0
        """Publishes refused because the queue was full."""

    # -- the actor ---------------------------------------------------------------------------------------------

    def attach(self, effects: QueueEffects) -> None:
        """Serve this state through ``effects`` from now on (a queue's new instance, after a restart too).

        The timers of an earlier instance ended with it, so the expiry timer is armed afresh on the next
        :meth:`dispatch`.
        """
        self._effects = effects
        self._armed = None

    @property
    def effects(self) -> QueueEffects:
        """The attached effects; :class:`RuntimeError` before :meth:`attach`."""
        effects = self._effects
        if effects is None:
            raise RuntimeError(f"{self!r} has no actor attached")
        return effects

    @property
    def next_tag(self) -> int:
        """The last delivery tag given out: a successor state starts after it, so tags are never reused."""
        return self._tag

    def adopt_consumers(self, other: QueueState) -> None:
        """Take over ``other``'s subscribed consumers, with fresh leases and holding nothing.

        For a durable queue that restarted: its messages come back from storage, so what ``other`` delivered
        and was not settled is delivered again. The old leases are revoked, so a consumer does not handle the
        deliveries it had not started on yet (they would come twice); one it is handling right now is acked
        under a tag this state does not know, refused, and delivered again (at least once).
        """
        for ref, old in other._consumers.items():
            old.lease.revoke()
            if not old.subscribed:
                continue
            consumer = self._consumers[ref] = QueueConsumer(ref, self.queue)
            consumer.prefetch = old.prefetch
            consumer.auto_ack = old.auto_ack
            consumer.subscribed = True
            self._refill(consumer)
        other._consumers = {}
        other._free.clear()

    # -- figures -----------------------------------------------------------------------------------------------

    @property
    def ready(self) -> int:
        """Messages waiting to be delivered."""
        return len(self._ready) + len(self._requeued)

    @property
    def unacked(self) -> int:
        """Messages delivered and not settled."""
        return len(self._unacked)

    @property
    def consumers(self) -> int:
        """Subscribed consumers."""
        return sum(1 for consumer in self._consumers.values() if consumer.subscribed)

    def consumer_refs(self) -> Iterator[ActorRef]:
        """Every consumer known, subscribed or still holding deliveries."""
        return iter(self._consumers)

    def describe_limits(self) -> str:
        """The length limits, for messages: ``max_length=2, max_length_bytes=100``."""
        limits = self.limits
        text = [f"max_length={limits.max_length}"] if limits.max_length is not None else []
        if limits.max_length_bytes is not None:
            text.append(f"max_length_bytes={limits.max_length_bytes}")
        return ", ".join(text)

    def __repr__(self) -> str:
        return f"<QueueState ready={self.ready} unacked={self.unacked} consumers={self.consumers}>"

    # -- enqueueing --------------------------------------------------------------------------------------------

    def refuses(self, size: int) -> bool:
        """Whether a new message of ``size`` body bytes is refused: in a reject mode, beyond a limit."""
        return self.refuses_many(1, size)

    def refuses_many(self, count: int, size: int) -> bool:
        """Whether ``count`` new messages of ``size`` body bytes in all are refused (room reserved counts as used)."""
        limits = self.limits
        if limits.overflow == "drop_head":
            return False
        held, held_bytes = self._reserved()
        if limits.max_length is not None and self.ready + held + count > limits.max_length:
            return True
        return limits.max_length_bytes is not None and self.ready_bytes + held_bytes + size > limits.max_length_bytes

    def _reserved(self) -> tuple[int, int]:
        reservations = self.reservations
        if not reservations:
            return 0, 0
        return (sum(reserved[0] for reserved in reservations.values()),
                sum(reserved[1] for reserved in reservations.values()))

    def admit(self, exchange: str, routing_key: str, body: Any, headers: Mapping[str, Any] | None,
              persistent: bool, ttl: float | None, size: int = 0, cc: tuple[str, ...] = (),
              bcc: tuple[str, ...] = ()) -> QueuedMessage:
        """Count a new message in and give it its place; :meth:`place` it next (after storing it, if durable)."""
        seq = self._seq = self._seq + 1
        self.published += 1
        effective = self.limits.message_ttl
        if ttl is not None and (effective is None or ttl < effective):
            effective = ttl
        expires_at = None if effective is None else self._clock() + effective
        return QueuedMessage(seq, exchange, routing_key, body, headers, persistent, ttl, expires_at, cc, bcc, size)

    def store(self, message: QueuedMessage, payload: bytes) -> None:
        """Record the insert of an admitted ``message`` (``payload``: its pickled body and headers) for the store."""
        assert self.writes is not None
        expires_at = message.expires_at
        # The deadline is stored on the wall clock: trio's clock starts again in the next process.
        expires = None if expires_at is None else self._wall() + (expires_at - self._clock())
        self.writes.inserts.append((message.seq, message.exchange, message.routing_key, payload,
                                    int(message.persistent), message.ttl, 0, 0, expires))

    def place(self, message: QueuedMessage) -> None:
        """Deliver an admitted message at once if a consumer waits, else queue it and apply the length limits."""
        if self._free and not self._ready and not self._requeued:
            consumer = self._next_free()
            if consumer is not None:
                self._deliver(message, consumer)  # on arrival: not subject to expiry, even with a TTL of 0
                return
        self._ready.append(message)
        if self._limited:
            self.ready_bytes += message.size  # (sizes are 0 without a max_length_bytes)
            # drop_head (in a reject mode the publish was refused before it could go beyond a limit).
            self._trim()
        self.dispatch()

    def _trim(self) -> None:
        """Dead-letter messages from the head (reason ``maxlen``) until the queue is within its limits."""
        limit = self.limits.max_length
        max_bytes = self.limits.max_length_bytes
        while ((limit is not None and self.ready > limit)
               or (max_bytes is not None and self.ready_bytes > max_bytes)):
            self._dead_letter(self._pop_head(), "maxlen")

    def restore(self, stored: Iterable[StoredMessage]) -> None:
        """Queue messages read back from storage, in seq order, as published; then deliver what can be.

        A message keeps the deadline it was given when published (stored on the wall clock), so a restore
        does not give it its TTL again; one that expired meanwhile is dead-lettered (``expired``) at the head.
        A ``drop_head`` queue restored beyond its length limits (they were lowered, say) dead-letters from the
        head (``maxlen``) until it is within them; a queue in a reject mode keeps what it had and refuses new
        publishes until it is back within them.
        """
        now: float | None = None  # read only if a message has a deadline
        wall = 0.0
        measure = self.limits.max_length_bytes is not None
        for row in stored:
            expires_at: float | None = None
            if row.expires is not None or row.ttl is not None or self.limits.message_ttl is not None:
                if now is None:
                    now, wall = self._clock(), self._wall()
                if row.expires is not None:
                    expires_at = now + (row.expires - wall)
                else:  # stored before deadlines were: its TTL counts from now
                    effective = self.limits.message_ttl
                    if row.ttl is not None and (effective is None or row.ttl < effective):
                        effective = row.ttl
                    expires_at = None if effective is None else now + effective
            message = QueuedMessage(row.seq, row.exchange, row.routing_key, row.body, row.headers, row.persistent,
                                    row.ttl, expires_at, row.cc, row.bcc, body_size(row.body) if measure else 0)
            message.returns = row.returns
            message.redelivered = row.redelivered
            self._ready.append(message)
            self.ready_bytes += message.size
            self._seq = max(self._seq, row.seq)
            self.published += 1
        if self._limited and self.limits.overflow == "drop_head":
            self._trim()
        self.dispatch()

    # -- the head of the queue ---------------------------------------------------------------------------------

    def _head(self) -> QueuedMessage | None:
        if self._requeued:
            return self._requeued[0][1]
        if self._ready:
            return self._ready[0]
        return None

    def _pop_head(self) -> QueuedMessage:
        message = heapq.heappop(self._requeued)[1] if self._requeued else self._ready.popleft()
        self.ready_bytes -= message.size
        return message

    def _push_requeued(self, message: QueuedMessage) -> None:
        """Put ``message`` back among the ready messages, at its place by seq."""
        heapq.heappush(self._requeued, (message.seq, message))
        self.ready_bytes += message.size

    def _next_ready(self) -> QueuedMessage | None:
        """Take the next deliverable message, dead-lettering the expired ones found at the head."""
        while True:
            if self._requeued:
                message = self._requeued[0][1]
            elif self._ready:
                message = self._ready[0]
            else:
                return None
            if message.expires_at is not None and message.expires_at <= self._clock():
                self._pop_head()
                self._dead_letter(message, "expired")
                continue
            return self._pop_head()

    def expire(self) -> None:
        """The expiry timer went off: dead-letter the expired messages at the head, then deliver."""
        self._armed = None
        now = self._clock()
        while True:
            head = self._head()
            if head is None or head.expires_at is None or head.expires_at > now:
                break
            self._pop_head()
            self._dead_letter(head, "expired")
        self.dispatch()

    def _arm_expiry(self) -> None:
        """Set the expiry timer for the head's deadline, unless it is set for that or earlier already."""
        head = self._head()
        if head is None or head.expires_at is None:
            return
        armed = self._armed
        if armed is not None and armed <= head.expires_at:
            return
        self._armed = head.expires_at
        self.effects.arm_expiry(max(0.0, head.expires_at - self._clock()))

    # -- delivering --------------------------------------------------------------------------------------------

    def _next_free(self) -> QueueConsumer | None:
        """Take the next consumer of the round-robin that can receive (skipping cancelled ones).

        A consumer that stopped stays in the round-robin until its ``Terminated`` is handled; what it is sent
        meanwhile becomes a runtime dead letter and is requeued with the rest of what it held.
        """
        free = self._free
        while free:
            consumer = free.popleft()
            consumer.in_free = False
            if consumer.subscribed:
                return consumer
        return None

    def _refill(self, consumer: QueueConsumer) -> None:
        """Put ``consumer`` back in the round-robin if it is subscribed and has room."""
        if consumer.subscribed and not consumer.in_free and consumer.has_room():
            consumer.in_free = True
            self._free.append(consumer)

    def dispatch(self) -> None:
        """Deliver ready messages to consumers with room, round-robin; then re-arm the expiry timer."""
        if self._closed:
            return
        while self._free and (self._ready or self._requeued):
            consumer = self._next_free()
            if consumer is None:
                break
            message = self._next_ready()
            if message is None:
                self._refill(consumer)
                break
            self._deliver(message, consumer)
        self._arm_expiry()

    def _deliver(self, message: QueuedMessage, consumer: QueueConsumer) -> None:
        tag = self._tag = self._tag + 1
        if not self.effects.deliver(consumer, message, tag):
            # A bounded mailbox that refused: the message stays first in line, and the consumer is left out of
            # the round-robin until it settles something (its prefetch should be below its mailbox capacity).
            self._push_requeued(message)
            return
        self.delivered += 1
        if message.redelivered:
            self.redelivered += 1
        if consumer.auto_ack:
            self.acked += 1
            self._forget(message)
        else:
            self._unacked[tag] = (message, consumer)
            consumer.tags.add(tag)
            self._stored_delivered(message)
        if consumer.has_room():
            consumer.in_free = True
            self._free.append(consumer)

    def get(self, auto_ack: bool) -> tuple[QueuedMessage, int] | None:
        """Take the next ready message for a ``Get`` (not limited by prefetch), with its tag; ``None`` if empty."""
        message = self._next_ready()
        if message is None:
            self._arm_expiry()
            return None
        tag = self._tag = self._tag + 1
        self.delivered += 1
        if message.redelivered:
            self.redelivered += 1
        if auto_ack:
            self.acked += 1
            self._forget(message)
        else:
            self._unacked[tag] = (message, None)
            self._stored_delivered(message)
        self._arm_expiry()
        return message, tag

    def _stored_delivered(self, message: QueuedMessage) -> None:
        """A durable queue delivered ``message`` for the first time: store it as delivered.

        After a crash it then comes back with ``redelivered=True``, as RabbitMQ flags a message that may have
        been seen. (One that came back before is stored as redelivered already.)
        """
        if self.writes is not None and not message.redelivered:
            self.writes.updates.append((message.returns, 1, message.seq))

    # -- settling ----------------------------------------------------------------------------------------------

    def _take_unacked(self, tag: object) -> QueuedMessage | None:
        entry = self._unacked.pop(tag, None) if tag.__class__ is int else None
        if entry is None:
            return None
        message, consumer = entry
        if consumer is not None:
            consumer.tags.discard(tag)
            if consumer.subscribed:
                self._refill(consumer)
            elif not consumer.tags:
                self._drop_consumer(consumer)
        return message

    def note_settlement(self, tag: int, requeue: bool | None) -> None:
        """A consumer settled ``tag`` and told the queue: ``None`` for an ack, else a nack with ``requeue``.

        Called synchronously by the consumer (``Delivery.ack()``, ``nack()``, ``reject()``), before its
        message reaches the queue. Only a durable queue notes them: if it stops before it handles the message
        (a stop overtakes what is queued), :meth:`close` still applies the settlement, so that an acked message
        is not restored on the next start. Handling the message forgets the note.
        """
        if self.writes is not None and not self._closed and tag in self._unacked:
            self._noted[tag] = requeue

    def close(self) -> None:
        """The queue stops: apply the noted settlements it did not handle, and deliver nothing more.

        Acks delete their messages, requeues and rejections are recorded (a rejection is dead-lettered), all
        as pending writes for the store's last write.
        """
        noted = self._noted
        self._closed = True
        self._noted = {}
        for tag, requeue in noted.items():
            if requeue is None:
                self.ack(tag)
            else:
                self.nack(tag, requeue)

    def ack(self, tag: object) -> bool:
        """Settle the delivery ``tag`` as done; ``False`` if it is not outstanding (nothing changes then)."""
        if self._noted:
            self._noted.pop(tag, None)  # type: ignore[call-overload]
        message = self._take_unacked(tag)
        if message is None:
            return False
        self.acked += 1
        self._forget(message)
        self.dispatch()
        return True

    def nack(self, tag: object, requeue: bool) -> bool:
        """Give the delivery ``tag`` back: requeue it, or dead-letter it (``rejected``); ``False`` if unknown."""
        if self._noted:
            self._noted.pop(tag, None)  # type: ignore[call-overload]
        message = self._take_unacked(tag)
        if message is None:
            return False
        if requeue:
            self._return(message)
        else:
            self._dead_letter(message, "rejected")
        self.dispatch()
        return True

    def _return(self, message: QueuedMessage) -> None:
        """Put an unsettled message back at its original place, or dead-letter it past the delivery limit."""
        message.returns += 1
        limit = self.limits.delivery_limit
        if limit is not None and message.returns > limit:
            self._dead_letter(message, "delivery_limit")
            return
        message.redelivered = True
        self._push_requeued(message)
        if self.writes is not None:
            self.writes.updates.append((message.returns, 1, message.seq))

    # -- consumers ---------------------------------------------------------------------------------------------

    def subscribe(self, ref: ActorRef, prefetch: int, auto_ack: bool) -> bool:
        """Make ``ref`` a consumer (or change its settings), then deliver; ``True`` if it is a new consumer."""
        consumer = self._consumers.get(ref)
        new = consumer is None
        if consumer is None:
            consumer = self._consumers[ref] = QueueConsumer(ref, self.queue)
        consumer.prefetch = prefetch
        consumer.auto_ack = auto_ack
        consumer.subscribed = True
        self._refill(consumer)
        self.dispatch()
        return new

    def unsubscribe(self, ref: ActorRef) -> None:
        """Stop delivering to ``ref``; it is forgotten once it holds nothing unsettled."""
        consumer = self._consumers.get(ref)
        if consumer is not None:
            consumer.subscribed = False
            if not consumer.tags:
                self._drop_consumer(consumer)

    def _drop_consumer(self, consumer: QueueConsumer) -> None:
        """Forget a consumer that is unsubscribed and holds nothing (it stays in ``_free`` until skipped)."""
        consumer.subscribed = False
        if self._consumers.pop(consumer.ref, None) is not None:
            self.effects.release(consumer.ref)

    def consumer_lost(self, ref: ActorRef, *, stopped: bool) -> None:
        """A consumer stopped or failed: requeue what it held (in order) for the others.

        A stopped consumer is forgotten; a failed one (restarted, or about to be) stays subscribed under a new
        lease, the old one having ended with the failure.
        """
        consumer = self._consumers.get(ref)
        if consumer is None:
            return
        tags = sorted(consumer.tags)
        consumer.tags = set()
        for tag in tags:
            self._return(self._unacked.pop(tag)[0])
        if stopped:
            consumer.subscribed = False
            del self._consumers[ref]
        else:
            consumer.lease = Lease(notify=self.queue)
            self._refill(consumer)
        self.dispatch()

    def lease_ended(self, lease: Lease, recipient: ActorRef) -> None:
        """``recipient`` failed, which ended ``lease``: if it is its consumer's current lease, requeue."""
        consumer = self._consumers.get(recipient)
        if consumer is not None and consumer.lease is lease:
            self.consumer_lost(recipient, stopped=False)

    # -- dead letters ------------------------------------------------------------------------------------------

    def _dead_letter(self, message: QueuedMessage, reason: DeathReason) -> None:
        """Remove ``message`` for ``reason`` and have it republished (at most once)."""
        self.dead_lettered += 1
        self._forget(message)
        self.effects.dead_letter(message, reason)

    def _forget(self, message: QueuedMessage) -> None:
        """The message left the queue for good: delete it from storage."""
        if self.writes is not None:
            self.writes.deletes.append((message.seq,))


def body_size(body: Any) -> int:
    """The size of a body for ``max_length_bytes``: its bytes, a str's UTF-8 length, else its pickle's length.

    Raises what :func:`pickle.dumps` raises for a body that is none of those and cannot be pickled.
    """
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, str):
        return len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))
    if isinstance(body, memoryview):
        return body.nbytes
    return len(pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL))


# --- x-death ----------------------------------------------------------------------------------------------


def dead_letter_headers(message: QueuedMessage, queue: str, reason: str) -> dict[str, Any]:
    """The headers of ``message`` dead-lettered from ``queue`` for ``reason``, by RabbitMQ's rules.

    ``x-death`` lists one entry per (queue, reason), most recent first: a repeat increments ``count`` and moves
    the entry to the front. A new entry has ``count``, ``reason``, ``queue``, ``time`` (wall-clock seconds),
    ``exchange``, ``routing-keys`` (the routing key and the ``CC`` keys, never the ``BCC`` ones) and, for a
    message published with a ``ttl``, ``original-expiration`` (that ttl, in seconds). ``x-first-death-*`` are
    set once. Nothing of the old headers is changed in place.
    """
    headers = dict(message.headers) if message.headers else {}
    old = headers.get("x-death")
    deaths = [dict(entry) for entry in old if isinstance(entry, Mapping)] if isinstance(old, list | tuple) else []
    for index, entry in enumerate(deaths):
        if entry.get("queue") == queue and entry.get("reason") == reason:
            del deaths[index]
            count = entry.get("count")
            entry["count"] = count + 1 if isinstance(count, int) else 1
            deaths.insert(0, entry)
            break
    else:
        # "time" is a record for people and other systems (AMQP's timestamp), not a timer: wall-clock seconds
        # from time.time(), not trio's clock. A repeat keeps the first time, as RabbitMQ does.
        entry = {"count": 1, "reason": reason, "queue": queue, "time": time.time(), "exchange": message.exchange,
                 "routing-keys": [message.routing_key, *message.cc]}  # CC, never BCC
        if message.ttl is not None:
            entry["original-expiration"] = message.ttl
        deaths.insert(0, entry)
    headers["x-death"] = deaths
    headers.setdefault("x-first-death-reason", reason)
    headers.setdefault("x-first-death-queue", queue)
    headers.setdefault("x-first-death-exchange", message.exchange)
    return headers


def is_dead_letter_cycle(queue: str, deaths: list[dict[str, Any]]) -> bool:
    """Whether dead-lettering into ``queue`` closes a cycle with no rejection in it (RabbitMQ drops those).

    ``deaths`` is the new ``x-death``, most recent first (the death being dealt with included, so a rejection
    now is never a cycle): it is a cycle if ``queue`` died before and none of the deaths since then, that one
    included, was a rejection.
    """
    for entry in deaths:
        if entry.get("reason") == "rejected":
            return False
        if entry.get("queue") == queue:
            return True
    return False
