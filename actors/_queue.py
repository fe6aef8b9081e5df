"""The :class:`Queue` actor: buffers messages for consumers, with acks, prefetch, TTL, length limits and
dead-lettering by RabbitMQ's rules, optionally stored in SQLite.

The actor is thin: the queue's state and rules are ``runtime.QueueState`` (kept in the system's topology, so
that it survives a restart), the database is ``runtime.SQLiteStore``; this module turns messages into calls on
them and carries out what they decide (deliveries, dead letters, the expiry timer, confirms).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final, NamedTuple

import attrs
import trio

from runtime import (
    OVERFLOWS,
    ActorFailed,
    ActorRef,
    DeathReason,
    Future,
    LeaseEnded,
    MailboxFull,
    Overflow,
    PendingWrites,
    QueueConsumer,
    QueuedMessage,
    QueueLimits,
    QueueState,
    Reply,
    ReplyRef,
    SerializationError,
    SQLiteStore,
    StorageError,
    StoredMessage,
    Terminated,
    Topology,
    body_size,
    dead_letter_headers,
    encode_payload,
    is_dead_letter_cycle,
    provide_queue_consumer,
    topology,
    validate_key,
)

from ._actor import Actor
from ._consume import consume
from ._router_checks import check_count, check_ref, check_subscribe, check_ttl, enqueue_error, publish_error, show
from ._router_messages import (
    AbortBatch,
    Ack,
    CommitBatch,
    Delivery,
    Enqueue,
    EnqueueBatch,
    EnqueueCC,
    Get,
    GetStatistics,
    Nack,
    PrepareBatch,
    Publish,
    PublishBatch,
    Reject,
    Subscribe,
    Unsubscribe,
    enqueue_of,
)
from ._router_send import DeadLetterCopies, publish_batch, send_routed

__all__ = ["Queue", "QueueStatistics"]

logger = logging.getLogger("actors")


@attrs.frozen
class QueueStatistics:
    """A snapshot of a queue, from ``await queue.ask(GetStatistics())``.

    Every message a queue accepted is, at any moment, exactly one of ready, unacked, acked or dead-lettered:
    ``published == ready + unacked + acked + dead_lettered``. A queue keeps its figures across restarts,
    except a durable one, which counts from its last start (its restored messages count as published).
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
      directory in which the file is ``<queue name>.sqlite3``. Bodies and headers must be picklable. A durable
      queue needs a ``name`` (a generated one changes from run to run), and ``storage`` needs ``durable=True``.
      A message's deadline (its TTL) is stored on the wall clock, so a restore does not restart it; a first
      delivery is stored, so that after a crash unacked messages come back ``redelivered=True``; a ``drop_head``
      queue restored beyond its limits drops from the head. An ack, nack or reject made through a
      :class:`~actors.Delivery` is noted in the queue's state at once: if the queue is stopped before it
      handles it (a stop overtakes queued messages), it is still written at the stop, with every other
      pending change.

    A store that cannot open, read or write its database raises :class:`~actors.StorageError` naming the path:
    as the cause of the failed spawn, or from the publish confirms that waited for the write.

    Restarts: the queue's state (``runtime.QueueState``: its ready messages, unacked deliveries, consumers and
    figures) is kept in the system's topology under the queue's ref, not in the instance. A queue restarted
    after a failure (its own, or a sibling's under ``OneForAll``) keeps its ref and takes its state back as it
    was: its ready messages in order, its unacked deliveries under the same tags, its consumers subscribed
    under the same leases. The deliveries already told to consumers stay valid, so nothing is lost and
    nothing is delivered twice: each consumer handles what it was sent once, and its acks settle the tags the
    state still holds (the queue's mailbox, acks included, is kept by the restart). A durable queue instead
    restores its messages from storage (the store is its truth); its consumers stay subscribed, but their
    old leases are revoked, since what they held unacked is delivered again from storage (a delivery being
    handled at that moment is acked under a tag the new state does not know, refused, and redelivered: at
    least once).

    ``broker=`` (a URL, or ``True`` for the system's broker) makes it the RabbitMQ queue of that name instead (a
    quorum queue when ``durable``), with the same messages and keywords, applied by the broker; see
    ``actors._broker_router.BrokerQueue``.

    Ask :class:`~actors.GetStatistics` for :meth:`statistics`. Leave a queue's mailbox unbounded (the default):
    it must not refuse its consumers' acks nor its store's answers.
    """

    def __new__(cls, *args: Any, broker: str | bool | None = None, **kwargs: Any) -> Any:
        # broker=...: the RabbitMQ queue instead (its own class, so that the embedded path pays nothing).
        if broker is None or broker is False or cls is not Queue:
            return super().__new__(cls)
        from ._broker_router import BrokerQueue

        instance = BrokerQueue(*args, broker=broker, **kwargs)
        return instance

    def __init__(self, *, max_length: int | None = None, overflow: Overflow = "drop_head",
                 message_ttl: float | None = None, dead_letter_exchange: ActorRef | None = None,
                 dead_letter_routing_key: str | None = None, delivery_limit: int | None = None,
                 durable: bool = False, storage: str | os.PathLike[str] | None = None,
                 max_length_bytes: int | None = None, broker: str | bool | None = None) -> None:
        max_length = check_count("max_length", max_length)
        max_length_bytes = check_count("max_length_bytes", max_length_bytes)
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow={show(overflow)} is not a policy; use 'drop_head', 'reject_publish' or "
                             "'reject_publish_dlx'")
        self._reject_publish = overflow != "drop_head"
        self._reject_dlx = overflow == "reject_publish_dlx"
        message_ttl = check_ttl("message_ttl", message_ttl)
        self._dlx = check_ref("dead_letter_exchange", dead_letter_exchange, optional=True)
        if dead_letter_routing_key is not None:
            validate_key(dead_letter_routing_key, what="dead_letter_routing_key")
            if self._dlx is None:
                raise ValueError(f"dead_letter_routing_key={dead_letter_routing_key!r} needs a "
                                 "dead_letter_exchange too")
        self._dl_key = dead_letter_routing_key
        delivery_limit = check_count("delivery_limit", delivery_limit)
        if durable.__class__ is not bool:
            raise ValueError(f"durable={show(durable)} must be True or False")
        if durable and not isinstance(storage, str | os.PathLike):
            raise ValueError(f"durable=True needs storage= the path of its SQLite database (a file, or a "
                             f"directory for '<queue name>.sqlite3'), not {show(storage)}")
        if not durable and storage is not None:
            raise ValueError(f"storage={show(storage)} is used only by a durable queue; add durable=True (or "
                             "drop storage=)")
        self._durable = durable
        self._storage = storage
        self._limits = QueueLimits(max_length=max_length, max_length_bytes=max_length_bytes, overflow=overflow,
                                   message_ttl=message_ttl, delivery_limit=delivery_limit, durable=durable)
        self._max_bytes = max_length_bytes
        self._state: QueueState | None = None
        """The queue's state, taken from (or put into) the system's topology in ``on_start``."""
        self._name = ""
        self._topology = Topology()  # replaced by the system's in on_start
        # Durable queues: the store, and the confirms that wait for the pending writes.
        self._store: ActorRef | None = None
        self._confirms: list[tuple[ReplyRef, int]] = []
        self._flushing = False

    async def on_start(self) -> None:
        ref = self.ref
        self._name = ref.name
        self._topology = topology(self.system)
        if self._durable and self._name.startswith("$"):
            raise ValueError(f"a durable queue needs a name: spawn(Queue, name=..., durable=True); under a "
                             f"generated name ({self._name!r}) its next run would look for another store")
        kept = self._topology.queue_state(ref)
        if self._durable:  # the store is the truth: start from what it holds, keep only the consumers
            state = QueueState(ref, self._limits, first_tag=0 if kept is None else kept.next_tag,
                               writes=PendingWrites())
            if kept is not None:
                state.adopt_consumers(kept)
                state.reservations.update(kept.reservations)
        else:
            state = kept if kept is not None else QueueState(ref, self._limits)
        self._state = state
        self._topology.declare_queue(ref, state)
        state.attach(self)
        for consumer in state.consumer_refs():  # after a restart: watch them again (watching is idempotent)
            if consumer != ref:
                self.watch(consumer)
        if self._durable:
            assert self._storage is not None
            try:
                self._store = await self.spawn(_Store, self._storage, self._name, name="storage")
            except ActorFailed as exc:
                if isinstance(exc.cause, StorageError):
                    raise exc.cause from exc.cause.__cause__
                raise
            state.restore(await self._store.ask(_LOAD))
            self._flush()  # what the restore changed: trimmed, expired, delivered
        else:
            state.dispatch()  # a restarted queue: deliver to whoever has room, and arm the expiry timer again

    async def on_stop(self) -> None:
        """A durable queue's last write: what is pending, and the settlements it was told and did not handle.

        Its store (a child) has stopped by now, after finishing the write in flight; what the queue had not
        sent it yet (changes made meanwhile, and the acks, nacks and rejects consumers made that a stop
        overtook, see ``Delivery.ack``) is written here through a connection of its own, and the confirms
        that waited for it are answered. This runs on a restart too, before the new instance restores.
        """
        state = self._state
        if not self._durable or state is None or self._store is None:
            return
        state.close()
        assert state.writes is not None
        write = state.writes.take()
        confirms, self._confirms = self._confirms, []
        if not write and not confirms:
            return
        assert self._storage is not None
        store = SQLiteStore(self._storage, self._name)
        error: StorageError | None = None
        try:
            with trio.CancelScope(shield=True):  # a stop must not lose the last write half-way
                await trio.to_thread.run_sync(self._write_last, store, write)
        except StorageError as exc:
            error = exc
            logger.error("%r could not store its last changes: %r", self, exc)
        _answer_confirms(confirms, error)

    @staticmethod
    def _write_last(store: SQLiteStore, write: PendingWrites) -> None:
        store.open()
        try:
            if write:
                store.write(write)
        finally:
            store.close()

    # -- QueueEffects: what the state asks of this actor ------------------------------------------------------

    def deliver(self, consumer: QueueConsumer, message: QueuedMessage, tag: int) -> bool:
        """Tell ``consumer`` a :class:`~actors.Delivery` under its lease; ``False`` if its mailbox is full."""
        try:
            consumer.lease.tell(consumer.ref, Delivery(message.exchange, message.routing_key, message.body,
                                                       message.headers, message.redelivered, tag, queue=self.ref))
        except MailboxFull:
            logger.warning("%r: consumer %r has a full mailbox; delivery postponed", self, consumer.ref)
            return False
        return True

    def dead_letter(self, message: QueuedMessage, reason: DeathReason) -> None:
        """Republish ``message``, dead for ``reason``, to the dead-letter exchange (or drop it as a ``DeadLetter``)."""
        dlx = self._dlx
        if dlx is None:
            self.system.dead_letter(Publish(message.routing_key, message.body, message.headers), None, self.ref,
                                    f"dead-lettered ({reason}); {self!r} has no dead_letter_exchange")
            return
        headers = dead_letter_headers(message, self._name, reason)
        if self._dl_key is None:  # every key it was published with, BCC included (RabbitMQ)
            key, cc, bcc = message.routing_key, message.cc, message.bcc
        else:
            key, cc, bcc = self._dl_key, (), ()
        # No ttl: the per-message TTL is dropped (x-death keeps it as original-expiration), so that the dead
        # letter does not expire again downstream.
        publish = Publish(key, message.body, headers, persistent=message.persistent)
        topology_ = self._topology
        kinds = topology_.kinds
        entry = topology_.exchange(dlx)
        if dlx.is_stopped:
            finals: set[ActorRef] = set()
        elif entry is not None:
            try:
                finals = topology_.route(entry, key, headers, cc + bcc)
            except ValueError as exc:  # a header value that a headers exchange on the way cannot compare
                self.system.dead_letter(publish, self.ref, dlx, f"dead letter ({reason}) from {self!r} was "
                                                                f"refused by {dlx!r}: {exc}")
                return
        else:
            finals = {dlx}
        exchange = dlx.name if entry is not None else ""
        deaths = headers["x-death"]
        finals = {final for final in finals
                  if kinds.get(final) != "queue" or not is_dead_letter_cycle(final.name, deaths)}
        if not finals:
            self.system.dead_letter(publish, self.ref, dlx, f"dead letter ({reason}) from {self!r} reached no "
                                                            "queue or actor")
            return
        send_routed(self, kinds, finals, DeadLetterCopies(exchange, publish, cc, bcc), asked=False)

    def arm_expiry(self, delay: float) -> None:
        """Have the state expire its head in ``delay`` seconds."""
        self.timers.start_single("expire", delay, _EXPIRE)

    def release(self, consumer: ActorRef) -> None:
        """Stop watching a consumer the state forgot."""
        if consumer != self.ref:
            self.unwatch(consumer)

    # -- messages ------------------------------------------------------------------------------------------

    async def receive(self, message: Any) -> Any:
        """Handle one message; see the class docstring."""
        result = self._handle(message)
        if self._durable and not self._flushing:
            self._flush()
        return result

    def _handle(self, message: Any) -> Any:
        state = self._state
        assert state is not None
        cls = message.__class__
        if cls is Enqueue:
            error = enqueue_error(message)
            if error is not None:
                return Reply.error(error)
            return self._enqueue(message.exchange, message.publish, message)
        if cls is Ack:
            if not state.ack(message.delivery_tag):
                return self._unknown_tag(message)
            return None
        if cls is EnqueueCC:
            error = enqueue_error(message)
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
            if not state.nack(message.delivery_tag, cls is Nack and message.requeue):
                return self._unknown_tag(message)
            return None
        if cls is EnqueueBatch or cls is PrepareBatch:
            entries: object = message.entries
            if not isinstance(entries, tuple | list):
                return Reply.error(ValueError(f"{cls.__name__} entries {show(entries)} must be a tuple"))
            for entry in entries:
                error = enqueue_error(entry)
                if error is not None:
                    return Reply.error(error)
            if cls is PrepareBatch:
                return self._prepare_batch(message)
            return self._enqueue_batch(tuple(entries))
        if cls is CommitBatch:
            return self._commit_batch(message)
        if cls is AbortBatch:
            state.reservations.pop(message.batch, None)
            return None
        if cls is Get:
            return self._get(message)
        if cls is Subscribe:
            return self._subscribe(message)
        if cls is Unsubscribe:
            return self._unsubscribe(message)
        if cls is Terminated:
            state.consumer_lost(message.ref, stopped=True)
            return None
        if cls is LeaseEnded:
            state.lease_ended(message.lease, message.recipient)
            return None
        if cls is _Expire:
            state.expire()
            return None
        if cls is _Flushed:
            return self._flushed(message)
        if cls is PublishBatch:
            return publish_batch(self, self._topology, message)
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
        state = self._state
        assert state is not None
        size = 0
        if self._max_bytes is not None:
            try:
                size = body_size(publish.body)
            except Exception as exc:
                return Reply.error(SerializationError(
                    f"{self!r} has max_length_bytes={self._max_bytes} and cannot measure the body of "
                    f"{show(publish)}: pickle refused it ({exc!r})"))
        if self._reject_publish and state.refuses(size):
            state.refused += 1
            if self._reject_dlx:
                self._dead_letter_refused(exchange, publish, size, cc, bcc)
            elif not isinstance(self.sender, ReplyRef):
                self.system.dead_letter(message, self.sender, self.ref,
                                        f"refused: {self!r} is full ({state.describe_limits()}, "
                                        "overflow='reject_publish')")
            return 0
        if not self._durable:
            state.place(state.admit(exchange, publish.routing_key, publish.body, publish.headers,
                                    publish.persistent, publish.ttl, size, cc, bcc))
            return 1
        try:
            payload = encode_payload(publish.body, publish.headers, cc, bcc)
        except SerializationError as exc:
            return Reply.error(SerializationError(
                f"{self!r} is durable and cannot store {show(publish)}: {exc.__cause__!r}"))
        msg = state.admit(exchange, publish.routing_key, publish.body, publish.headers, publish.persistent,
                          publish.ttl, size, cc, bcc)
        state.store(msg, payload)
        sender = self.sender
        state.place(msg)
        if isinstance(sender, ReplyRef):
            self._defer_confirm(1)
            return None
        return 1

    def _enqueue_batch(self, entries: tuple[Enqueue, ...]) -> Any:
        """A share of a transaction in one step (``EnqueueBatch``): all of it, or none and the ask raises."""
        prepared = self._prepare(entries)
        if isinstance(prepared, Exception):
            return Reply.error(prepared)
        return self._commit(prepared)

    def _prepare(self, entries: tuple[Enqueue, ...]) -> list[_Prepared] | Exception:
        """Check a transaction's share: every message fits and can be measured and stored, or the error.

        The error names the first message refused and this queue: a reject mode that would go beyond a limit
        (room held for other transactions counts as used), a body that ``max_length_bytes`` cannot measure,
        or one a durable queue cannot pickle. Nothing changes.
        """
        state = self._state
        assert state is not None
        prepared: list[_Prepared] = []
        total = 0
        for index, entry in enumerate(entries):
            publish = entry.publish
            which = f"{show(publish)} (message {index + 1} of {len(entries)} for it)"
            size = 0
            if self._max_bytes is not None:
                try:
                    size = body_size(publish.body)
                except Exception as exc:
                    return SerializationError(
                        f"{self!r} has max_length_bytes={self._max_bytes} and cannot measure the body of {which}: "
                        f"pickle refused it ({exc!r}); the transaction was not published")
            payload = None
            if self._durable:
                try:
                    payload = encode_payload(publish.body, publish.headers, entry.cc, entry.bcc)
                except SerializationError as exc:
                    return SerializationError(f"{self!r} is durable and cannot store {which}: {exc.__cause__!r}; "
                                              "the transaction was not published")
            total += size
            if self._reject_publish and state.refuses_many(index + 1, total):
                return ValueError(f"{self!r} is full ({state.describe_limits()}, "
                                  f"overflow={self._limits.overflow!r}) and refuses {which}; the transaction "
                                  "was not published")
            prepared.append(_Prepared(entry, size, payload))
        return prepared

    def _commit(self, prepared: list[_Prepared]) -> Any:
        """Enqueue a checked share; answer how many, once stored for a durable queue."""
        state = self._state
        assert state is not None
        for entry, size, payload in prepared:
            publish = entry.publish
            msg = state.admit(entry.exchange, publish.routing_key, publish.body, publish.headers,
                              publish.persistent, publish.ttl, size, entry.cc, entry.bcc)
            if payload is not None:
                state.store(msg, payload)
            state.place(msg)
        if self._durable and prepared and isinstance(self.sender, ReplyRef):
            self._defer_confirm(len(prepared))
            return None
        return len(prepared)

    def _prepare_batch(self, message: PrepareBatch) -> Any:
        """Phase one of a transaction: hold room for the share, or refuse it all."""
        state = self._state
        assert state is not None
        batch: object = message.batch
        if batch.__class__ is not int or batch in state.reservations:
            return Reply.error(ValueError(f"PrepareBatch batch={show(batch)} must be a new transaction id (int)"))
        prepared = self._prepare(message.entries)
        if isinstance(prepared, Exception):
            return Reply.error(prepared)
        assert isinstance(batch, int)
        state.reservations[batch] = (len(prepared), sum(item.size for item in prepared), prepared)
        return None

    def _commit_batch(self, message: CommitBatch) -> Any:
        """Phase two of a transaction: enqueue the share prepared under its id."""
        state = self._state
        assert state is not None
        reserved = state.reservations.pop(message.batch, None)
        if reserved is None:
            return Reply.error(ValueError(f"{self!r} holds no prepared transaction {show(message.batch)}"))
        prepared: list[_Prepared] = reserved[2]
        return self._commit(prepared)

    def _defer_confirm(self, count: int) -> None:
        """Answer the current ask with ``count`` once the pending writes are stored."""
        reply = self.defer_reply()
        assert isinstance(reply, ReplyRef)
        self._confirms.append((reply, count))

    def _dead_letter_refused(self, exchange: str, publish: Publish, size: int, cc: tuple[str, ...],
                             bcc: tuple[str, ...]) -> None:
        """Dead-letter a publish refused by ``overflow="reject_publish_dlx"`` (reason ``maxlen``).

        It never was in the queue: it counts as refused, not as published nor dead-lettered, and is not stored.
        """
        self.dead_letter(QueuedMessage(0, exchange, publish.routing_key, publish.body, publish.headers,
                                       publish.persistent, publish.ttl, None, cc, bcc, size), "maxlen")

    # -- delivering and settling -----------------------------------------------------------------------------

    def _get(self, message: Get) -> Any:
        auto_ack: object = message.auto_ack
        if auto_ack.__class__ is not bool:
            return Reply.error(ValueError(f"Get auto_ack={show(auto_ack)} must be True or False"))
        state = self._state
        assert state is not None
        got = state.get(bool(auto_ack))
        if got is None:
            return None
        msg, tag = got
        return Delivery(msg.exchange, msg.routing_key, msg.body, msg.headers, msg.redelivered, tag,
                        queue=self.ref)

    def _unknown_tag(self, message: Ack | Nack | Reject) -> Any:
        error = ValueError(
            f"delivery tag {show(message.delivery_tag)} is not outstanding on {self!r}: already settled, never "
            f"delivered, or requeued when its consumer stopped or failed; {message!r} was ignored")
        logger.warning("%s", error)
        return Reply.error(error)

    # -- consumers -----------------------------------------------------------------------------------------

    def _subscribe(self, message: Subscribe) -> Any:
        try:
            ref = check_subscribe(message)
        except ValueError as exc:
            return Reply.error(exc)
        assert self._state is not None
        if self._state.subscribe(ref, message.prefetch, message.auto_ack) and ref != self.ref:
            self.watch(ref)
        return None

    def _unsubscribe(self, message: Unsubscribe) -> Any:
        try:
            ref = check_ref("Unsubscribe consumer", message.consumer)
        except ValueError as exc:
            return Reply.error(exc)
        assert ref is not None
        assert self._state is not None
        self._state.unsubscribe(ref)
        return None

    # -- durability ----------------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Send the pending writes to the store, if any; their confirms go out once it has written them."""
        state = self._state
        assert state is not None
        assert state.writes is not None
        if not state.writes:
            return
        assert self._store is not None
        write = state.writes.take()
        confirms = self._confirms
        self._confirms = []
        self._flushing = True
        ref = self.ref

        def written(done: Future[Any]) -> None:
            error = done.exception()
            _answer_confirms(confirms, error)  # at once: the queue may be stopping, its mailbox closed
            ref.tell(_Flushed(error))

        self._store.request(write).add_done_callback(written)

    def _flushed(self, message: _Flushed) -> None:
        self._flushing = False
        if message.error is not None:
            logger.error("%r could not store messages: %r", self, message.error)

    # -- figures -------------------------------------------------------------------------------------------

    def statistics(self) -> QueueStatistics:
        """A frozen snapshot of this queue's figures."""
        state = self._state
        if state is None:
            return QueueStatistics(ready=0, unacked=0, consumers=0, published=0, delivered=0, acked=0,
                                   redelivered=0, dead_lettered=0, ready_bytes=None if self._max_bytes is None else 0)
        return QueueStatistics(
            ready=state.ready, unacked=state.unacked, consumers=state.consumers, published=state.published,
            delivered=state.delivered, acked=state.acked, redelivered=state.redelivered,
            dead_lettered=state.dead_lettered, refused=state.refused,
            ready_bytes=None if self._max_bytes is None else state.ready_bytes)

    def __repr__(self) -> str:
        state = self._state
        ready, unacked, consumers = (0, 0, 0) if state is None else (state.ready, state.unacked, state.consumers)
        return f"<Queue {self._name or 'not started'!r} ready={ready} unacked={unacked} consumers={consumers}>"


# --- Storage ----------------------------------------------------------------------------------------------


@attrs.frozen
class _Load:
    """Ask the store for every stored message, in seq order."""


_LOAD: Final = _Load()


class _Prepared(NamedTuple):
    """A message of a transaction's share, checked: its body size (if measured) and payload (if durable)."""

    entry: Enqueue
    size: int
    payload: bytes | None


@attrs.frozen
class _Flushed:
    """The store finished a write (``error`` is ``None``) or failed it: the queue may send the next one."""

    error: BaseException | None


def _answer_confirms(confirms: list[tuple[ReplyRef, int]], error: BaseException | None) -> None:
    """Answer publish confirms that waited for a write: their counts, or ``error`` if it failed."""
    for reply, count in confirms:
        if error is None:
            reply.tell(count)
        else:
            reply.fail(error)


class _Store(Actor):
    """A durable queue's child that owns its store and runs every call on a worker thread.

    One call at a time (it is an actor), so the database is never used by two threads at once. A
    :class:`~actors.StorageError` fails the spawn (opening) or answers the ask (loading, writing): refusing a
    request is not a failure of the store.
    """

    def __init__(self, storage: str | os.PathLike[str], queue: str) -> None:
        self._store = SQLiteStore(storage, queue)

    async def on_start(self) -> None:
        await trio.to_thread.run_sync(self._store.open)

    async def on_stop(self) -> None:
        await trio.to_thread.run_sync(self._store.close)

    async def receive(self, message: Any) -> Any:
        try:
            if message.__class__ is PendingWrites:
                await trio.to_thread.run_sync(self._store.write, message)
                return None
            if message.__class__ is _Load:
                loaded: list[StoredMessage] = await trio.to_thread.run_sync(self._store.load)
                return loaded
        except StorageError as exc:
            return Reply.error(exc)
        raise TypeError(f"{self!r} takes only its queue's writes, not {message!r}")


provide_queue_consumer(consume)  # ActorSystem.consume speaks this queue's protocol
