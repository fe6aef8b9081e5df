"""The :class:`Queue` actor: buffers messages for consumers, with acks, prefetch, TTL, length limits and
dead-lettering by RabbitMQ's rules, optionally stored in SQLite."""

from __future__ import annotations

import heapq
import logging
import os
import pickle
import sqlite3
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import trio

from runtime import (
    ActorRef,
    Lease,
    LeaseEnded,
    MailboxFull,
    Reply,
    ReplyRef,
    SerializationError,
    Terminated,
    validate_key,
)

from ._actor import Actor
from ._amqp import (
    Ack,
    Delivery,
    Directory,
    Enqueue,
    EnqueueBatch,
    EnqueueCC,
    Get,
    GetStatistics,
    Headers,
    Nack,
    Publish,
    PublishBatch,
    Reject,
    Subscribe,
    Unsubscribe,
    check_ref,
    check_ttl,
    directory,
    enqueue_of,
    publish_batch,
    publish_error,
    send,
    show,
)

__all__ = ["Queue", "QueueStatistics"]

logger = logging.getLogger("actors")

Overflow = Literal["drop_head", "reject_publish", "reject_publish_dlx"]
_OVERFLOWS: Final = ("drop_head", "reject_publish", "reject_publish_dlx")
DeathReason = Literal["rejected", "expired", "maxlen", "delivery_limit"]


@attrs.frozen
class QueueStatistics:
    """A snapshot of a queue, from ``await queue.ask(GetStatistics())``.

    Every message a queue accepted is, at any moment, exactly one of ready, unacked, acked or dead-lettered:
    ``published == ready + unacked + acked + dead_lettered`` (counted since the queue's current incarnation
    started; a durable queue's restored messages count as published).
    """

    ready: int
    """Messages waiting to be delivered."""
    unacked: int
    """Messages delivered and not settled yet."""
    consumers: int
    """Subscribed consumers."""
    published: int
    """Messages accepted into the queue."""
    delivered: int
    """Deliveries made (to consumers and through ``Get``), redeliveries included."""
    acked: int
    """Messages acknowledged, explicitly or by an ``auto_ack`` consumer or ``Get``."""
    redelivered: int
    """Deliveries of messages that had been delivered before."""
    dead_lettered: int
    """Messages removed as dead letters (rejected, expired, over the length limit, over the delivery limit),
    republished to the dead-letter exchange if there is one."""
    refused: int = 0
    """Publishes refused because the queue was full (``overflow="reject_publish"`` or
    ``"reject_publish_dlx"``, which dead-letters them as well); not in ``published`` nor ``dead_lettered``."""
    ready_bytes: int | None = None
    """The sum of the body sizes of the ready messages, for a queue with ``max_length_bytes`` (``None``
    otherwise: bodies are measured only when a byte limit needs it)."""


class _Message:
    """A message in the queue: what was published, where it stands, and how often it came back."""

    __slots__ = ("bcc", "body", "cc", "exchange", "expires_at", "headers", "persistent", "redelivered", "returns",
                 "routing_key", "seq", "size", "ttl")

    def __init__(self, seq: int, exchange: str, routing_key: str, body: Any, headers: Headers | None,
                 persistent: bool, ttl: float | None, expires_at: float | None, cc: tuple[str, ...] = (),
                 bcc: tuple[str, ...] = (), size: int = 0) -> None:
        self.seq = seq
        """Its position: requeued messages go back in seq order."""
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.headers = headers
        """Its headers as delivered: without ``BCC``."""
        self.cc = cc
        """The extra routing keys of its ``CC`` header."""
        self.bcc = bcc
        """The extra routing keys of the ``BCC`` header it was published with (kept for dead-lettering only)."""
        self.size = size
        """The size of its body in bytes, measured only if the queue has ``max_length_bytes`` (else 0)."""
        self.persistent = persistent
        self.ttl = ttl
        """The per-message TTL it was published with (for ``x-death``'s ``original-expiration``)."""
        self.expires_at = expires_at
        """When it expires on trio's clock, ``None`` for never."""
        self.returns = 0
        """How many times it came back unsettled (nacked with requeue, or its consumer stopped or failed)."""
        self.redelivered = False


class _Consumer:
    """A consumer's settings and the delivery tags it holds."""

    __slots__ = ("auto_ack", "in_free", "lease", "prefetch", "ref", "subscribed", "tags")

    def __init__(self, ref: ActorRef, queue: ActorRef) -> None:
        self.ref = ref
        self.lease = Lease(notify=queue)
        """Its deliveries are told under this lease: revoked when it fails, so that its restarted incarnation
        does not handle again what the queue gave to others."""
        self.prefetch = 0
        self.auto_ack = False
        self.subscribed = False
        self.in_free = False
        """Whether it is in the queue's round-robin of consumers with room."""
        self.tags: set[int] = set()

    def has_room(self) -> bool:
        return self.auto_ack or not self.prefetch or len(self.tags) < self.prefetch


@attrs.frozen
class _Expire:
    """The queue's expiry timer went off: drop the expired messages at the head."""


_EXPIRE: Final = _Expire()


class Queue(Actor):
    """A buffering actor: ``await system.spawn(Queue, name="jobs", max_length=..., ...)``.

    It takes :class:`~actors.Publish` sent to it directly (the routing key is kept, not used; the exchange name is
    ``""``; a ``BCC`` header is removed as an exchange would, its keys kept for dead-lettering) and what the
    exchanges it is bound to route to it; an ask answers 1 once the message is accepted (and stored, for a durable
    queue) or 0 if the queue refused it. Consumers attach with :class:`~actors.Subscribe` and receive
    :class:`~actors.Delivery` messages round-robin, each holding at most ``prefetch`` unsettled;
    :class:`~actors.Get` takes one message. A delivery is settled with ``ack()``, ``nack(requeue=True)`` or
    ``reject()``: a requeued message goes back to its original place and comes again with ``redelivered=True``;
    the unsettled deliveries of a consumer that stops or fails are requeued for the others (at-least-once: the
    failed consumer may still handle the ones left in its mailbox, but their acks are refused, so each message is
    acked once). Settling an unknown or already settled tag is refused: an ask raises :class:`ValueError`, a tell
    becomes a dead letter, and the queue goes on.

    Keywords:

    - ``max_length``: the most ready messages; ``max_length_bytes``: the most bytes of body, summed over the
      ready messages (unacked ones count for neither). Either or both may be set. Beyond a limit
      ``overflow="drop_head"`` (default) dead-letters the oldest messages (reason ``maxlen``) until the queue
      is within both; ``"reject_publish"`` refuses a new publish that would take the queue beyond either (its
      confirm counts 0, and a tell becomes a ``DeadLetter`` event); ``"reject_publish_dlx"`` refuses it the
      same way and dead-letters it (reason ``maxlen``) instead. A requeued message is never refused nor
      dropped. The size of a body is ``len()`` of a ``bytes`` or ``bytearray``, the ``nbytes`` of a
      ``memoryview``, the length in UTF-8 of a ``str``, and for any other body the length of its pickle
      (``pickle.dumps`` with the highest protocol); a body that cannot be pickled cannot be measured, so a
      queue with ``max_length_bytes`` refuses it with :class:`~actors.SerializationError`. Bodies are measured
      only when ``max_length_bytes`` is set.
    - ``message_ttl``: seconds a message may wait; a publish's own ``ttl`` can shorten it. Expired messages
      are dead-lettered (``expired``) when they reach the head of the queue, as RabbitMQ does, on trio's clock.
    - ``dead_letter_exchange`` (an exchange ref) and ``dead_letter_routing_key``: where dead letters are
      republished, with RabbitMQ's ``x-death`` and ``x-first-death-*`` headers. Without a
      ``dead_letter_routing_key`` a dead letter is routed on all the keys it was published with: its routing
      key and its ``CC`` and ``BCC`` keys. A dead letter loses its per-message ``ttl`` (it is recorded in
      ``x-death`` as ``original-expiration``), so it does not expire again downstream. Without a
      ``dead_letter_exchange``, dead letters are dropped (and published on the event stream as ``DeadLetter``).
    - ``delivery_limit``: a message returned more than this many times is dead-lettered (``delivery_limit``).
    - ``durable=True`` with ``storage=`` a path: every message is stored in SQLite (WAL mode, on a worker
      thread) before its publish is confirmed, and the queue restores them when it starts again (after a
      restart, or when spawned again with the same storage). ``storage`` is the database file, or an existing
      directory in which the file is ``<queue name>.sqlite3``. Bodies and headers must be picklable.

    Ask :class:`~actors.GetStatistics` for :meth:`statistics`. Leave a queue's mailbox unbounded (the default):
    it must not refuse its consumers' acks nor its store's answers.
    """

    def __init__(self, *, max_length: int | None = None, overflow: Overflow = "drop_head",
                 message_ttl: float | None = None, dead_letter_exchange: ActorRef | None = None,
                 dead_letter_routing_key: str | None = None, delivery_limit: int | None = None,
                 durable: bool = False, storage: str | os.PathLike[str] | None = None,
                 max_length_bytes: int | None = None) -> None:
        self._max_length = _check_count("max_length", max_length)
        self._max_bytes = _check_count("max_length_bytes", max_length_bytes)
        self._limited = self._max_length is not None or self._max_bytes is not None
        if overflow not in _OVERFLOWS:
            raise ValueError(f"overflow={show(overflow)} is not a policy; use 'drop_head', 'reject_publish' or "
                             "'reject_publish_dlx'")
        self._reject_publish = overflow != "drop_head"
        self._reject_dlx = overflow == "reject_publish_dlx"
        self._message_ttl = check_ttl("message_ttl", message_ttl)
        self._dlx = check_ref("dead_letter_exchange", dead_letter_exchange, optional=True)
        if dead_letter_routing_key is not None:
            validate_key(dead_letter_routing_key, what="dead_letter_routing_key")
            if self._dlx is None:
                raise ValueError(f"dead_letter_routing_key={dead_letter_routing_key!r} needs a "
                                 "dead_letter_exchange too")
        self._dl_key = dead_letter_routing_key
        self._delivery_limit = _check_count("delivery_limit", delivery_limit)
        if durable.__class__ is not bool:
            raise ValueError(f"durable={show(durable)} must be True or False")
        if durable and not isinstance(storage, str | os.PathLike):
            raise ValueError(f"durable=True needs storage= the path of its SQLite database (a file, or a "
                             f"directory for '<queue name>.sqlite3'), not {show(storage)}")
        self._durable = durable
        self._storage = storage

        self._ready: deque[_Message] = deque()
        """Messages never delivered, in seq order (appended at the tail)."""
        self._requeued: list[tuple[int, _Message]] = []
        """A heap of returned messages by seq; each was once at the head, so it comes before all of _ready."""
        self._ready_bytes = 0
        """The sum of ``size`` over _ready and _requeued (sizes are 0 unless there is a max_length_bytes)."""
        self._unacked: dict[int, tuple[_Message, _Consumer | None]] = {}
        self._consumers: dict[ActorRef, _Consumer] = {}
        self._free: deque[_Consumer] = deque()
        """The round-robin: subscribed consumers with room (``in_free``), the next one first."""
        self._seq = 0
        self._tag = 0
        self._armed: float | None = None
        """The deadline the expiry timer is set for."""
        self._name = ""
        self._directory = Directory()  # replaced by the system's in on_start
        self._published = self._delivered = self._acked = self._redelivered = 0
        self._dead_lettered = self._refused = 0
        # Durable queues: pending writes, and the confirms that wait for them.
        self._store: ActorRef | None = None
        self._inserts: list[tuple[Any, ...]] = []
        self._updates: list[tuple[int, int, int]] = []
        self._deletes: list[tuple[int]] = []
        self._confirms: list[tuple[ReplyRef, int]] = []
        self._flushing = False

    async def on_start(self) -> None:
        self._name = self.ref.name
        self._directory = directory(self.system)
        incarnation = self._directory.register(self.ref, "queue")
        self._tag = incarnation << 32  # a restarted queue never reuses its predecessor's tags
        if self._durable:
            assert self._storage is not None
            self._store = await self.spawn(_Store, os.fspath(self._storage), self._name, name="storage")
            rows = await self._store.ask(_LOAD)
            self._restore(rows)

    # -- messages ------------------------------------------------------------------------------------------

    async def receive(self, message: Any) -> Any:
        """Handle one message; see the class docstring."""
        result = self._handle(message)
        if self._durable and not self._flushing:
            self._flush()
        return result

    def _handle(self, message: Any) -> Any:
        cls = message.__class__
        if cls is Enqueue:
            error = _enqueue_error(message)
            if error is not None:
                return Reply.error(error)
            return self._enqueue(message.exchange, message.publish, message)
        if cls is Ack:
            return self._ack(message)
        if cls is EnqueueCC:
            error = _enqueue_error(message)
            if error is not None:
                return Reply.error(error)
            return self._enqueue(message.exchange, message.publish, message, message.cc, message.bcc)
        if cls is Publish:
            error = publish_error(message)
            if error is not None:
                return Reply.error(error)
            headers = message.headers
            if headers and ("CC" in headers or "BCC" in headers):
                selected = enqueue_of("", message)  # takes BCC out of the headers, keeps the keys
                return self._enqueue("", selected.publish, message, selected.cc, selected.bcc)
            return self._enqueue("", message, message)
        if cls is Nack or cls is Reject:
            return self._settle(message)
        if cls is EnqueueBatch:
            entries: object = message.entries
            if not isinstance(entries, tuple | list):
                return Reply.error(ValueError(f"EnqueueBatch entries {show(entries)} must be a tuple"))
            for entry in entries:
                error = _enqueue_error(entry)
                if error is not None:
                    return Reply.error(error)
            return self._enqueue_batch(message)
        if cls is Get:
            return self._get(message)
        if cls is Subscribe:
            return self._subscribe(message)
        if cls is Unsubscribe:
            return self._unsubscribe(message)
        if cls is Terminated:
            self._consumer_lost(message.ref, stopped=True)
            return None
        if cls is LeaseEnded:
            consumer = self._consumers.get(message.recipient)
            if consumer is not None and consumer.lease is message.lease:
                self._consumer_lost(message.recipient, stopped=False)
            return None
        if cls is _Expire:
            self._armed = None
            self._expire_head()
            self._dispatch()
            return None
        if cls is _Flushed:
            return self._flushed(message)
        if cls is PublishBatch:
            return publish_batch(self, self._directory, message)
        if cls is GetStatistics:
            return self.statistics()
        return Reply.error(ValueError(
            f"{self!r} does not understand {show(message)}; send it Publish, Get, Subscribe, Unsubscribe, "
            "Ack, Nack, Reject or GetStatistics"))

    # -- enqueueing ----------------------------------------------------------------------------------------

    def _enqueue(self, exchange: str, publish: Publish, message: object, cc: tuple[str, ...] = (),
                 bcc: tuple[str, ...] = ()) -> Any:
        """Accept one message (answer 1), or refuse it when full in a reject mode (answer 0).

        ``publish`` is the message as it is to be delivered (without BCC), ``cc`` and ``bcc`` its extra keys.
        """
        size = 0
        if self._max_bytes is not None:
            try:
                size = _body_size(publish.body)
            except Exception as exc:
                return Reply.error(SerializationError(
                    f"{self!r} has max_length_bytes={self._max_bytes} and cannot measure the body of "
                    f"{show(publish)}: pickle refused it ({exc!r})"))
        if self._reject_publish and self._refuses(size):
            self._refused += 1
            if self._reject_dlx:
                self._dead_letter_refused(exchange, publish, size, cc, bcc)
            elif not isinstance(self.sender, ReplyRef):
                self.system.dead_letter(message, self.sender, self.ref,
                                        f"refused: {self!r} is full ({self._limits()}, overflow='reject_publish')")
            return 0
        if not self._durable:
            self._place(self._admit(exchange, publish, size, cc, bcc))
            return 1
        try:
            payload = _payload(publish, cc, bcc)
        except Exception as exc:
            return Reply.error(SerializationError(
                f"{self!r} is durable and cannot store {show(publish)}: {exc!r}"))
        msg = self._admit(exchange, publish, size, cc, bcc)
        self._inserts.append(_row(msg, payload))
        sender = self.sender
        self._place(msg)
        if isinstance(sender, ReplyRef):
            self._defer_confirm(1)
            return None
        return 1

    def _enqueue_batch(self, batch: EnqueueBatch) -> Any:
        """A transaction's share for this queue: enqueue every message in this one step.

        A durable queue stores the messages it can pickle; one it cannot is kept in memory only (logged): the
        batch was validated and routed already, and refusing part of it would break its all-or-nothing. The
        length limits still apply to each message (a refused one is counted, and dead-lettered with
        ``reject_publish_dlx``); a body that ``max_length_bytes`` cannot measure is refused as a dead letter.
        """
        accepted = 0
        durable = self._durable
        for entry in batch.entries:
            publish = entry.publish
            size = 0
            if self._max_bytes is not None:
                try:
                    size = _body_size(publish.body)
                except Exception as exc:
                    self._refused += 1
                    self.system.dead_letter(entry, self.sender, self.ref,
                                            f"refused: {self!r} has max_length_bytes={self._max_bytes} and "
                                            f"cannot measure the body: pickle refused it ({exc!r})")
                    continue
            if self._reject_publish and self._refuses(size):
                self._refused += 1
                if self._reject_dlx:
                    self._dead_letter_refused(entry.exchange, publish, size, entry.cc, entry.bcc)
                continue
            msg = self._admit(entry.exchange, publish, size, entry.cc, entry.bcc)
            if durable:
                try:
                    self._inserts.append(_row(msg, _payload(publish, entry.cc, entry.bcc)))
                except Exception:
                    logger.exception("%r cannot store %r; it is kept in memory only", self, publish)
            self._place(msg)
            accepted += 1
        if durable and accepted and isinstance(self.sender, ReplyRef):
            self._defer_confirm(accepted)
            return None
        return accepted

    def _defer_confirm(self, count: int) -> None:
        """Answer the current ask with ``count`` once the pending writes are stored."""
        reply = self.defer_reply()
        assert isinstance(reply, ReplyRef)
        self._confirms.append((reply, count))

    def _refuses(self, size: int) -> bool:
        """In a reject mode: whether one more message with a body of ``size`` bytes would take the ready
        messages beyond ``max_length`` or ``max_length_bytes``."""
        limit = self._max_length
        if limit is not None and self._ready_count() >= limit:
            return True
        max_bytes = self._max_bytes
        return max_bytes is not None and self._ready_bytes + size > max_bytes

    def _limits(self) -> str:
        """The length limits, for messages: ``max_length=2, max_length_bytes=100``."""
        limits = [f"max_length={self._max_length}"] if self._max_length is not None else []
        if self._max_bytes is not None:
            limits.append(f"max_length_bytes={self._max_bytes}")
        return ", ".join(limits)

    def _admit(self, exchange: str, publish: Publish, size: int, cc: tuple[str, ...],
               bcc: tuple[str, ...]) -> _Message:
        seq = self._seq = self._seq + 1
        self._published += 1
        ttl = publish.ttl
        effective = self._message_ttl
        if ttl is not None and (effective is None or ttl < effective):
            effective = ttl
        expires_at = None if effective is None else trio.current_time() + effective
        return _Message(seq, exchange, publish.routing_key, publish.body, publish.headers, publish.persistent,
                        ttl, expires_at, cc, bcc, size)

    def _dead_letter_refused(self, exchange: str, publish: Publish, size: int, cc: tuple[str, ...],
                             bcc: tuple[str, ...]) -> None:
        """Dead-letter a publish refused by ``overflow="reject_publish_dlx"`` (reason ``maxlen``).

        It never was in the queue: it counts as refused, not as published nor dead-lettered, and is not stored.
        """
        msg = _Message(0, exchange, publish.routing_key, publish.body, publish.headers, publish.persistent,
                       publish.ttl, None, cc, bcc, size)
        self._republish_dead(msg, "maxlen")

    def _place(self, msg: _Message) -> None:
        """Deliver a new message at once if a consumer waits, else queue it (then apply the length limit)."""
        if self._free and not self._ready and not self._requeued:
            consumer = self._next_free()
            if consumer is not None:
                self._deliver(msg, consumer)  # on arrival: not subject to expiry, even with a TTL of 0
                return
        self._ready.append(msg)
        if self._limited:
            self._ready_bytes += msg.size  # (sizes are 0 without a max_length_bytes)
            limit = self._max_length
            max_bytes = self._max_bytes
            # drop_head (in a reject mode the publish was refused before it could go beyond a limit).
            while ((limit is not None and self._ready_count() > limit)
                   or (max_bytes is not None and self._ready_bytes > max_bytes)):
                self._dead_letter(self._pop_head(), "maxlen")
        self._dispatch()

    def _restore(self, rows: Sequence[tuple[Any, ...]]) -> None:
        now = trio.current_time()
        for seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered in rows:
            stored = pickle.loads(payload)
            body, headers = stored[0], stored[1]
            cc, bcc = (stored[2], stored[3]) if len(stored) > 2 else ((), ())
            effective = self._message_ttl
            if ttl is not None and (effective is None or ttl < effective):
                effective = ttl
            msg = _Message(seq, exchange, routing_key, body, headers, bool(persistent), ttl,
                           None if effective is None else now + effective, cc=cc, bcc=bcc,
                           size=0 if self._max_bytes is None else _body_size(body))
            msg.returns = returns
            msg.redelivered = bool(redelivered)
            self._ready.append(msg)
            self._ready_bytes += msg.size
            self._seq = max(self._seq, seq)
            self._published += 1
        self._dispatch()

    # -- the head of the queue -----------------------------------------------------------------------------

    def _ready_count(self) -> int:
        return len(self._ready) + len(self._requeued)

    def _head(self) -> _Message | None:
        if self._requeued:
            return self._requeued[0][1]
        if self._ready:
            return self._ready[0]
        return None

    def _pop_head(self) -> _Message:
        msg = heapq.heappop(self._requeued)[1] if self._requeued else self._ready.popleft()
        self._ready_bytes -= msg.size
        return msg

    def _push_requeued(self, msg: _Message) -> None:
        """Put ``msg`` back among the ready messages, at its place by seq."""
        heapq.heappush(self._requeued, (msg.seq, msg))
        self._ready_bytes += msg.size

    def _next_ready(self) -> _Message | None:
        """Take the next deliverable message, dead-lettering the expired ones found at the head."""
        while True:
            if self._requeued:
                msg = self._requeued[0][1]
            elif self._ready:
                msg = self._ready[0]
            else:
                return None
            if msg.expires_at is not None and msg.expires_at <= trio.current_time():
                self._pop_head()
                self._dead_letter(msg, "expired")
                continue
            return self._pop_head()

    def _expire_head(self) -> None:
        now = trio.current_time()
        while True:
            head = self._head()
            if head is None or head.expires_at is None or head.expires_at > now:
                return
            self._pop_head()
            self._dead_letter(head, "expired")

    def _arm_expiry(self) -> None:
        """Set the expiry timer for the head's deadline, unless it is set for that or earlier already."""
        head = self._head()
        if head is None or head.expires_at is None:
            return
        armed = self._armed
        if armed is not None and armed <= head.expires_at:
            return
        self._armed = head.expires_at
        self.timers.start_single("expire", max(0.0, head.expires_at - trio.current_time()), _EXPIRE)

    # -- delivering ----------------------------------------------------------------------------------------

    def _next_free(self) -> _Consumer | None:
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

    def _refill(self, consumer: _Consumer) -> None:
        """Put ``consumer`` back in the round-robin if it is subscribed and has room."""
        if consumer.subscribed and not consumer.in_free and consumer.has_room():
            consumer.in_free = True
            self._free.append(consumer)

    def _dispatch(self) -> None:
        """Deliver ready messages to consumers with room, round-robin; then re-arm the expiry timer."""
        while self._free and (self._ready or self._requeued):
            consumer = self._next_free()
            if consumer is None:
                break
            msg = self._next_ready()
            if msg is None:
                self._refill(consumer)
                break
            self._deliver(msg, consumer)
        self._arm_expiry()

    def _deliver(self, msg: _Message, consumer: _Consumer) -> None:
        tag = self._tag = self._tag + 1
        try:
            consumer.lease.tell(consumer.ref, Delivery(msg.exchange, msg.routing_key, msg.body, msg.headers,
                                                       msg.redelivered, tag, queue=self.ref))
        except MailboxFull:
            # A bounded mailbox that refuses: the message stays first in line, and the consumer is left out of
            # the round-robin until it settles something (its prefetch should be below its mailbox capacity).
            logger.warning("%r: consumer %r has a full mailbox; delivery postponed", self, consumer.ref)
            self._push_requeued(msg)
            return
        self._delivered += 1
        if msg.redelivered:
            self._redelivered += 1
        if consumer.auto_ack:
            self._acked += 1
            self._forget(msg)
        else:
            self._unacked[tag] = (msg, consumer)
            consumer.tags.add(tag)
        if consumer.has_room():
            consumer.in_free = True
            self._free.append(consumer)

    def _get(self, message: Get) -> Any:
        auto_ack: object = message.auto_ack
        if auto_ack.__class__ is not bool:
            return Reply.error(ValueError(f"Get auto_ack={show(auto_ack)} must be True or False"))
        msg = self._next_ready()
        if msg is None:
            self._arm_expiry()
            return None
        tag = self._tag = self._tag + 1
        self._delivered += 1
        if msg.redelivered:
            self._redelivered += 1
        if auto_ack:
            self._acked += 1
            self._forget(msg)
        else:
            self._unacked[tag] = (msg, None)
        self._arm_expiry()
        return Delivery(msg.exchange, msg.routing_key, msg.body, msg.headers, msg.redelivered, tag,
                        queue=self.ref)

    # -- settling ------------------------------------------------------------------------------------------

    def _take_unacked(self, message: Ack | Nack | Reject) -> tuple[_Message, _Consumer | None] | None:
        tag = message.delivery_tag
        entry = self._unacked.pop(tag, None) if tag.__class__ is int else None
        if entry is None:
            return None
        consumer = entry[1]
        if consumer is not None:
            consumer.tags.discard(tag)
            if consumer.subscribed:
                self._refill(consumer)
            elif not consumer.tags:
                self._drop_consumer(consumer)
        return entry

    def _unknown_tag(self, message: Ack | Nack | Reject) -> Any:
        error = ValueError(
            f"delivery tag {show(message.delivery_tag)} is not outstanding on {self!r}: already settled, never "
            f"delivered, or requeued when its consumer stopped or failed; {message!r} was ignored")
        logger.warning("%s", error)
        return Reply.error(error)

    def _ack(self, message: Ack) -> Any:
        entry = self._take_unacked(message)
        if entry is None:
            return self._unknown_tag(message)
        self._acked += 1
        self._forget(entry[0])
        self._dispatch()
        return None

    def _settle(self, message: Nack | Reject) -> Any:
        entry = self._take_unacked(message)
        if entry is None:
            return self._unknown_tag(message)
        msg = entry[0]
        if isinstance(message, Nack) and message.requeue:
            self._return(msg)
        else:
            self._dead_letter(msg, "rejected")
        self._dispatch()
        return None

    def _return(self, msg: _Message) -> None:
        """Put an unsettled message back at its original place, or dead-letter it past the delivery limit."""
        msg.returns += 1
        if self._delivery_limit is not None and msg.returns > self._delivery_limit:
            self._dead_letter(msg, "delivery_limit")
            return
        msg.redelivered = True
        self._push_requeued(msg)
        if self._durable:
            self._updates.append((msg.returns, 1, msg.seq))

    # -- consumers -----------------------------------------------------------------------------------------

    def _subscribe(self, message: Subscribe) -> Any:
        prefetch = message.prefetch
        try:
            ref = check_ref("Subscribe consumer", message.consumer)
            if prefetch.__class__ is not int or prefetch < 0:
                raise ValueError(f"Subscribe prefetch={show(prefetch)} must be an int, 0 (no limit) or more")
            if message.auto_ack.__class__ is not bool:
                raise ValueError(f"Subscribe auto_ack={show(message.auto_ack)} must be True or False")
        except ValueError as exc:
            return Reply.error(exc)
        assert ref is not None
        consumer = self._consumers.get(ref)
        if consumer is None:
            consumer = self._consumers[ref] = _Consumer(ref, self.ref)
            if ref != self.ref:
                self.watch(ref)
        consumer.prefetch = prefetch
        consumer.auto_ack = message.auto_ack
        consumer.subscribed = True
        self._refill(consumer)
        self._dispatch()
        return None

    def _unsubscribe(self, message: Unsubscribe) -> Any:
        try:
            ref = check_ref("Unsubscribe consumer", message.consumer)
        except ValueError as exc:
            return Reply.error(exc)
        consumer = self._consumers.get(ref)  # type: ignore[arg-type]
        if consumer is not None:
            consumer.subscribed = False
            if not consumer.tags:
                self._drop_consumer(consumer)
        return None

    def _drop_consumer(self, consumer: _Consumer) -> None:
        """Forget a consumer that is unsubscribed and holds nothing (it stays in ``_free`` until skipped)."""
        consumer.subscribed = False
        if self._consumers.pop(consumer.ref, None) is not None and consumer.ref != self.ref:
            self.unwatch(consumer.ref)

    def _consumer_lost(self, ref: ActorRef, *, stopped: bool) -> None:
        """A consumer stopped or failed: requeue what it held (in order) for the others."""
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
            consumer.lease = Lease(notify=self.ref)  # the old one ended with the failure
            self._refill(consumer)
        self._dispatch()

    # -- dead letters --------------------------------------------------------------------------------------

    def _dead_letter(self, msg: _Message, reason: DeathReason) -> None:
        """Remove ``msg`` for ``reason`` and republish it to the dead-letter exchange, if any (at most once)."""
        self._dead_lettered += 1
        self._forget(msg)
        self._republish_dead(msg, reason)

    def _republish_dead(self, msg: _Message, reason: DeathReason) -> None:
        """Republish ``msg``, dead for ``reason``, to the dead-letter exchange (or drop it as a ``DeadLetter``)."""
        dlx = self._dlx
        if dlx is None:
            self.system.dead_letter(Publish(msg.routing_key, msg.body, msg.headers), None, self.ref,
                                    f"dead-lettered ({reason}); {self!r} has no dead_letter_exchange")
            return
        headers = _died(msg, self._name, reason)
        if self._dl_key is None:  # every key it was published with, BCC included (RabbitMQ)
            key, cc, bcc = msg.routing_key, msg.cc, msg.bcc
        else:
            key, cc, bcc = self._dl_key, (), ()
        # No ttl: the per-message TTL is dropped (x-death keeps it as original-expiration), so that the dead
        # letter does not expire again downstream.
        publish = Publish(key, msg.body, headers, persistent=msg.persistent)
        dir_ = self._directory
        kinds = dir_.kinds
        kind = kinds.get(dlx)
        if dlx.is_stopped:
            finals: set[ActorRef] = set()
        elif kind == "exchange":
            router = dir_.exchange(dlx)
            finals = set() if router is None else router.resolve(key, headers, cc + bcc)
        else:
            finals = {dlx}
        exchange = dlx.name if kind == "exchange" else ""
        deaths = headers["x-death"]
        finals = {final for final in finals if kinds.get(final) != "queue" or not _is_cycle(final.name, deaths)}
        if not finals:
            self.system.dead_letter(publish, self.ref, dlx, f"dead letter ({reason}) from {self!r} reached no "
                                                            "queue or actor")
            return
        enqueue = EnqueueCC(exchange, publish, cc, bcc) if cc or bcc else Enqueue(exchange, publish)
        for final in finals:
            send(self, final, enqueue if kinds.get(final) == "queue" else Delivery(exchange, key, msg.body, headers))

    # -- durability ----------------------------------------------------------------------------------------

    def _forget(self, msg: _Message) -> None:
        """The message left the queue for good: delete it from storage."""
        if self._durable:
            self._deletes.append((msg.seq,))

    def _flush(self) -> None:
        """Send the pending writes to the store, if any; their confirms go out once it has written them."""
        if not (self._inserts or self._updates or self._deletes):
            return
        assert self._store is not None
        write = _Write(self._inserts, self._updates, self._deletes)
        confirms = self._confirms
        self._inserts, self._updates, self._deletes, self._confirms = [], [], [], []
        self._flushing = True
        ref = self.ref
        future = self._store.request(write)
        future.add_done_callback(lambda done: ref.tell(_Flushed(done.exception(), confirms)))

    def _flushed(self, message: _Flushed) -> None:
        self._flushing = False
        error = message.error
        if error is not None:
            logger.error("%r could not store messages: %r", self, error)
        for reply, count in message.confirms:
            if error is None:
                reply.tell(count)
            else:
                reply.fail(error)

    # -- figures -------------------------------------------------------------------------------------------

    def statistics(self) -> QueueStatistics:
        """A frozen snapshot of this queue's figures."""
        return QueueStatistics(
            ready=self._ready_count(), unacked=len(self._unacked),
            consumers=sum(1 for consumer in self._consumers.values() if consumer.subscribed),
            published=self._published, delivered=self._delivered, acked=self._acked,
            redelivered=self._redelivered, dead_lettered=self._dead_lettered, refused=self._refused,
            ready_bytes=None if self._max_bytes is None else self._ready_bytes)

    def __repr__(self) -> str:
        consumers = sum(1 for consumer in self._consumers.values() if consumer.subscribed)
        return (f"<Queue {self._name or 'not started'!r} ready={self._ready_count()} "
                f"unacked={len(self._unacked)} consumers={consumers}>")


def _enqueue_error(message: object) -> ValueError | None:
    """The :class:`ValueError` that refuses an :class:`Enqueue`, or ``None`` if it is well formed."""
    cls = message.__class__
    if cls is not Enqueue and cls is not EnqueueCC:
        return ValueError(f"{show(message)} is not an Enqueue")
    assert isinstance(message, Enqueue)
    exchange: object = message.exchange
    if exchange.__class__ is not str:
        return ValueError(f"Enqueue exchange {show(exchange)} must be the name of an exchange (a str)")
    if cls is EnqueueCC:
        for name, keys in (("cc", message.cc), ("bcc", message.bcc)):
            if keys.__class__ is not tuple or not all(key.__class__ is str for key in keys):
                return ValueError(f"Enqueue {name}={show(keys)} must be a tuple of routing keys (str)")
    return publish_error(message.publish, "Enqueue publish")


def _payload(publish: Publish, cc: tuple[str, ...], bcc: tuple[str, ...]) -> bytes:
    """What a durable queue stores of a message besides its row: body and headers, and CC/BCC keys if any."""
    if cc or bcc:
        stored: tuple[Any, ...] = (publish.body, publish.headers, cc, bcc)
    else:
        stored = (publish.body, publish.headers)
    return pickle.dumps(stored, protocol=pickle.HIGHEST_PROTOCOL)


def _body_size(body: Any) -> int:
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


def _row(msg: _Message, payload: bytes) -> tuple[Any, ...]:
    return (msg.seq, msg.exchange, msg.routing_key, payload, int(msg.persistent), msg.ttl, 0, 0)


def _check_count(what: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or value.__class__ is bool or value < 0:
        raise ValueError(f"{what}={show(value)} must be None or an int, 0 or more")
    return value


# --- x-death ----------------------------------------------------------------------------------------------


def _died(msg: _Message, queue: str, reason: str) -> dict[str, Any]:
    """The headers of ``msg`` dead-lettered from ``queue`` for ``reason``, by RabbitMQ's rules.

    ``x-death`` lists one entry per (queue, reason), most recent first: a repeat increments ``count`` and moves
    the entry to the front. A new entry has ``count``, ``reason``, ``queue``, ``time`` (wall-clock seconds),
    ``exchange``, ``routing-keys`` (the routing key and the ``CC`` keys, never the ``BCC`` ones) and, for a
    message published with a ``ttl``, ``original-expiration`` (that ttl, in seconds). ``x-first-death-*`` are
    set once. Nothing of the old headers is changed in place.
    """
    headers = dict(msg.headers) if msg.headers else {}
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
        entry = {"count": 1, "reason": reason, "queue": queue, "time": time.time(), "exchange": msg.exchange,
                 "routing-keys": [msg.routing_key, *msg.cc]}  # CC, never BCC
        if msg.ttl is not None:
            entry["original-expiration"] = msg.ttl
        deaths.insert(0, entry)
    headers["x-death"] = deaths
    headers.setdefault("x-first-death-reason", reason)
    headers.setdefault("x-first-death-queue", queue)
    headers.setdefault("x-first-death-exchange", msg.exchange)
    return headers


def _is_cycle(queue: str, deaths: list[dict[str, Any]]) -> bool:
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


# --- Storage ----------------------------------------------------------------------------------------------


@attrs.frozen
class _Load:
    """Ask the store for every stored message, in seq order."""


_LOAD: Final = _Load()


@attrs.frozen
class _Write:
    """Apply pending writes in one transaction: inserts, then updates, then deletes."""

    inserts: list[tuple[Any, ...]]
    updates: list[tuple[int, int, int]]
    deletes: list[tuple[int]]


@attrs.frozen
class _Flushed:
    """The store finished a write (``error`` is ``None``) or failed it; answer the confirms that waited."""

    error: BaseException | None
    confirms: list[tuple[ReplyRef, int]]


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    payload BLOB NOT NULL,
    persistent INTEGER NOT NULL,
    ttl REAL,
    returns INTEGER NOT NULL,
    redelivered INTEGER NOT NULL
)
"""


def _open(storage: str, queue: str) -> sqlite3.Connection:
    path = Path(storage)
    if path.is_dir():
        path = path / f"{queue}.sqlite3"
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _load(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return db.execute("SELECT seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered "
                      "FROM messages ORDER BY seq").fetchall()


def _write(db: sqlite3.Connection, write: _Write) -> None:
    db.execute("BEGIN")
    try:
        if write.inserts:
            db.executemany("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", write.inserts)
        if write.updates:
            db.executemany("UPDATE messages SET returns = ?, redelivered = ? WHERE seq = ?", write.updates)
        if write.deletes:
            db.executemany("DELETE FROM messages WHERE seq = ?", write.deletes)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class _Store(Actor):
    """A durable queue's child that owns its SQLite connection and runs every call on a worker thread.

    One call at a time (it is an actor), so the connection is never used by two threads at once; the queue
    sends it its writes in batches (group commit), so a busy queue makes few transactions.
    """

    def __init__(self, storage: str, queue: str) -> None:
        self._storage = storage
        self._queue = queue
        self._db: sqlite3.Connection | None = None

    async def on_start(self) -> None:
        self._db = await trio.to_thread.run_sync(_open, self._storage, self._queue)

    async def on_stop(self) -> None:
        if self._db is not None:
            await trio.to_thread.run_sync(self._db.close)
            self._db = None

    async def receive(self, message: Any) -> Any:
        assert self._db is not None
        if message.__class__ is _Write:
            await trio.to_thread.run_sync(_write, self._db, message)
            return None
        if message.__class__ is _Load:
            return await trio.to_thread.run_sync(_load, self._db)
        raise TypeError(f"{self!r} takes only its queue's writes, not {message!r}")
