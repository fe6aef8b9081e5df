"""Sending what routing decided: one routine that tells every final destination its copy, and confirms or counts.

:func:`send_routed` is the only place where the router hands messages to queues and actors: the Exchange's
publish path, a transaction's batch (to an exchange or a queue) and a queue's dead letters all go through it.
What each destination gets is described by a :class:`Copies`: :class:`OnePublish` (one message, the same copy
for every destination, built once and only if needed), :class:`BatchShares` (each destination's share of a
batch) or :class:`DeadLetterCopies`.

Counting follows the publisher-confirm contract: a plain actor counts 1 per delivery its mailbox took; a queue
counts what it answers (the messages it accepted, and stored if durable; 0 if it refused), so an asked publish
is answered once every queue has confirmed. A destination whose bounded mailbox refuses (``overflow="fail"``)
is not counted and the copy becomes a dead letter: a router must not fail for that.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from runtime import (
    ActorFailed,
    ActorRef,
    ActorStopped,
    Future,
    MailboxFull,
    Reply,
    ReplyRef,
    RouterKind,
    StorageError,
    Topology,
)

from ._actor import Actor
from ._router_checks import check_ref, publish_error, show
from ._router_messages import (
    AbortBatch,
    CommitBatch,
    Delivery,
    Enqueue,
    EnqueueBatch,
    EnqueueCC,
    PrepareBatch,
    Publish,
    PublishBatch,
    enqueue_of,
)

__all__ = [
    "BatchShares",
    "Confirm",
    "Copies",
    "DeadLetterCopies",
    "OnePublish",
    "TwoPhaseBatch",
    "plan_batch",
    "publish_batch",
    "send",
    "send_routed",
]


class Copies(Protocol):
    """What :func:`send_routed` sends each kind of destination."""

    def for_queue(self, queue: ActorRef) -> object:
        """The message for ``queue`` (an ``Enqueue`` or an ``EnqueueBatch``)."""
        ...

    def for_actor(self, actor: ActorRef) -> Sequence[Delivery]:
        """The deliveries for the plain actor ``actor``."""
        ...

    def lost(self, message: object) -> object:
        """What a dead letter carries when a full mailbox refused ``message``."""
        ...


class OnePublish:
    """One published message: the same ``Enqueue`` for every queue and ``Delivery`` for every actor."""

    __slots__ = ("_deliveries", "_enqueue", "_exchange", "_publish")

    def __init__(self, exchange: str, publish: Publish, enqueue: Enqueue | None = None) -> None:
        self._exchange = exchange
        self._publish = publish
        self._enqueue = enqueue
        """Made on first need unless given (an ``EnqueueCC`` for a publish with CC or BCC headers)."""
        self._deliveries: tuple[Delivery] | None = None

    def for_queue(self, queue: ActorRef) -> object:
        """The ``Enqueue`` (one for all queues)."""
        enqueue = self._enqueue
        if enqueue is None:
            enqueue = self._enqueue = Enqueue(self._exchange, self._publish)
        return enqueue

    def for_actor(self, actor: ActorRef) -> Sequence[Delivery]:
        """The ``Delivery`` (one for all actors), without a ``BCC`` header."""
        deliveries = self._deliveries
        if deliveries is None:
            seen = self._publish if self._enqueue is None else self._enqueue.publish
            deliveries = self._deliveries = (Delivery(self._exchange, seen.routing_key, seen.body, seen.headers),)
        return deliveries

    def lost(self, message: object) -> object:
        """The publish itself."""
        return self._publish


class BatchShares:
    """A routed batch: each destination's messages, in publish order (see :func:`plan_batch`)."""

    __slots__ = ("_plan",)

    def __init__(self, plan: Mapping[ActorRef, Sequence[Enqueue]]) -> None:
        self._plan = plan

    def for_queue(self, queue: ActorRef) -> object:
        """The queue's share, as one ``EnqueueBatch``: enqueued in one step."""
        return EnqueueBatch(tuple(self._plan[queue]))

    def for_actor(self, actor: ActorRef) -> Sequence[Delivery]:
        """A ``Delivery`` per message of the actor's share."""
        return [Delivery(enqueue.exchange, enqueue.publish.routing_key, enqueue.publish.body,
                         enqueue.publish.headers) for enqueue in self._plan[actor]]

    def lost(self, message: object) -> object:
        """The refused message itself."""
        return message


class DeadLetterCopies:
    """A dead letter republished through ``exchange`` (its name) on ``routing_key`` with its x-death ``headers``."""

    __slots__ = ("_enqueue", "_exchange", "_publish")

    def __init__(self, exchange: str, publish: Publish, cc: tuple[str, ...], bcc: tuple[str, ...]) -> None:
        self._exchange = exchange
        self._publish = publish
        self._enqueue = EnqueueCC(exchange, publish, cc, bcc) if cc or bcc else Enqueue(exchange, publish)

    def for_queue(self, queue: ActorRef) -> object:
        """The ``Enqueue`` (with the keys it was published with)."""
        return self._enqueue

    def for_actor(self, actor: ActorRef) -> Sequence[Delivery]:
        """A ``Delivery`` of the dead letter."""
        publish = self._publish
        return (Delivery(self._exchange, publish.routing_key, publish.body, publish.headers),)

    def lost(self, message: object) -> object:
        """The refused message itself."""
        return message


def send_routed(actor: Actor, kinds: Mapping[ActorRef, RouterKind], finals: Iterable[ActorRef], copies: Copies,
                *, asked: bool) -> Any:
    """Send each of ``finals`` its copy on behalf of ``actor`` (in its ``receive``); confirm or count.

    A queue (by ``kinds``) gets ``copies.for_queue``: asked for a confirm when ``asked``, told otherwise; a plain
    actor is told ``copies.for_actor``. Returns what ``receive`` should return: the number of accepted copies,
    or ``None`` when queues must confirm an ask, the reply then being deferred until they all have.
    """
    count = 0
    confirm: Confirm | None = None
    for destination in finals:
        if kinds.get(destination) == "queue":
            message = copies.for_queue(destination)
            try:
                if asked:
                    if confirm is None:
                        confirm = Confirm(actor.defer_reply())
                    confirm.wait_for(destination.request(message))
                else:
                    destination.tell(message)
            except MailboxFull as exc:  # a bounded mailbox with overflow="fail": that copy is lost, not counted
                actor.system.dead_letter(copies.lost(message), actor.ref, destination, f"overflow: {exc}")
        else:
            for delivery in copies.for_actor(destination):
                try:
                    destination.tell(delivery)
                except MailboxFull as exc:
                    actor.system.dead_letter(copies.lost(delivery), actor.ref, destination, f"overflow: {exc}")
                else:
                    count += 1
    if confirm is None:
        return count
    confirm.add(count)
    confirm.seal()
    return None


def send(actor: Actor, destination: ActorRef, message: object) -> bool:
    """Tell ``message`` to ``destination`` on behalf of ``actor``; ``False`` if its full mailbox refused it.

    A bounded mailbox with ``overflow="fail"`` raises :class:`~actors.MailboxFull` on a tell; a router must not
    fail for that, so the message becomes a dead letter instead.
    """
    try:
        destination.tell(message)
    except MailboxFull as exc:
        actor.system.dead_letter(message, actor.ref, destination, f"overflow: {exc}")
        return False
    return True


class Confirm:
    """Adds up queue confirms and answers a deferred ask with the total once every one is in.

    ``count`` starts with the destinations that accepted already (actors); each queue ask adds what the
    queue answered (how many messages it accepted, and stored if durable; 0 if it refused); a queue that
    stopped or failed first adds 0. The answer goes out once :meth:`seal` was called and nothing is pending.
    """

    __slots__ = ("_count", "_pending", "_reply", "_sealed")

    def __init__(self, reply: ActorRef) -> None:
        self._reply = reply
        self._count = 0
        self._pending = 0
        self._sealed = False

    def add(self, count: int) -> None:
        """Count ``count`` more accepting destinations."""
        self._count += count

    def wait_for(self, future: Future[Any]) -> None:
        """Count ``future`` (a queue ask) in once it resolves."""
        self._pending += 1
        future.add_done_callback(self._done)

    def seal(self) -> None:
        """No more futures will come: answer as soon as the pending ones are in."""
        self._sealed = True
        if not self._pending:
            self._reply.tell(self._count)

    def _done(self, future: Future[Any]) -> None:
        if future.exception() is None:
            self._count += future.result()
        self._pending -= 1
        if self._sealed and not self._pending:
            self._reply.tell(self._count)


# --- Batches ----------------------------------------------------------------------------------------------


def plan_batch(topology: Topology, batch: PublishBatch) -> dict[ActorRef, list[Enqueue]]:
    """Route every entry of ``batch``: the messages each final destination gets, in publish order.

    Raises :class:`ValueError` for a malformed batch or entry, or a target that is not a running exchange or
    queue, before anything is sent.
    """
    entries: object = batch.entries
    if not isinstance(entries, tuple | list):
        raise ValueError(f"PublishBatch entries {show(entries)} must be a tuple of (target, Publish) pairs")
    checked: list[tuple[ActorRef, Publish]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise ValueError(f"PublishBatch entry {index} {show(entry)} must be a (target, Publish) pair")
        target, publish = entry
        check_ref(f"PublishBatch entry {index}: target", target)
        assert isinstance(target, ActorRef)
        error = publish_error(publish, f"PublishBatch entry {index}")
        if error is not None:
            raise error
        if topology.kind(target) is None or target.is_stopped:
            raise ValueError(f"PublishBatch entry {index}: target {target!r} must be a running Exchange or Queue")
        checked.append((target, publish))
    plan: dict[ActorRef, list[Enqueue]] = {}
    for target, publish in checked:
        exchange = topology.exchange(target)
        if exchange is not None:
            enqueue = enqueue_of(target.name, publish)
            finals = topology.route(exchange, publish.routing_key, publish.headers, enqueue.cc + enqueue.bcc)
        else:
            enqueue = enqueue_of("", publish)
            finals = {target}
        for final in finals:
            share = plan.get(final)
            if share is None:
                plan[final] = [enqueue]
            else:
                share.append(enqueue)
    return plan


def publish_batch(actor: Actor, topology: Topology, batch: PublishBatch) -> Any:
    """Handle a :class:`PublishBatch` received by an exchange or a queue: all of it, or none of it.

    The batch is checked and routed in this step; then, in two phases (:class:`TwoPhaseBatch`), every queue
    it reaches is asked to hold room for its share (``PrepareBatch``) and, once all have, to enqueue it
    (``CommitBatch``); plain actors get their deliveries then. If a queue refuses (full in a reject mode, a
    body it cannot measure or store) or has stopped, every queue drops what it prepared (``AbortBatch``),
    nothing is published, and the ask raises that queue's error, which names the message and the queue.
    An ask answers the number of accepted copies once every queue has stored its share.
    """
    try:
        plan = plan_batch(topology, batch)
    except ValueError as exc:
        return Reply.error(exc)
    sender = actor.sender
    asked = isinstance(sender, ReplyRef)
    kinds = topology.kinds
    queues = [destination for destination in plan if kinds.get(destination) == "queue"]
    if not queues:
        return send_routed(actor, kinds, plan, BatchShares(plan), asked=asked)
    reply = actor.defer_reply() if asked else None
    assert reply is None or isinstance(reply, ReplyRef)
    TwoPhaseBatch(actor, batch, plan, queues, topology.new_batch(), reply).start()
    return None


class TwoPhaseBatch:
    """A transaction's batch published to several queues all or nothing: prepare everywhere, then commit.

    It lives in the callbacks of the queues' answers, not in the actor that started it, so a restart of that
    actor does not leave prepared shares behind. A queue that stops between the phases cannot be rolled
    back: its commit fails, and the ask raises saying so (the other queues have their shares).
    """

    __slots__ = ("_actor", "_batch", "_count", "_error", "_id", "_pending", "_plan", "_prepared", "_queues",
                 "_reply", "_system")

    def __init__(self, actor: Actor, batch: PublishBatch, plan: dict[ActorRef, list[Enqueue]],
                 queues: list[ActorRef], batch_id: int, reply: ReplyRef | None) -> None:
        self._actor = actor
        self._system = actor.system
        self._batch = batch
        self._plan = plan
        self._queues = queues
        self._id = batch_id
        self._reply = reply
        self._prepared: list[ActorRef] = []
        self._pending = 0
        self._count = 0
        self._error: BaseException | None = None

    def start(self) -> None:
        """Phase one: ask every queue to prepare its share."""
        self._pending = len(self._queues)
        for queue in self._queues:
            try:
                future = queue.request(PrepareBatch(self._id, tuple(self._plan[queue])))
            except MailboxFull as exc:
                self._refused(queue, exc)
                continue
            future.add_done_callback(functools.partial(self._on_prepared, queue))

    def _refused(self, queue: ActorRef, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._pending -= 1
        if not self._pending:
            self._decide()

    def _on_prepared(self, queue: ActorRef, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            if isinstance(error, ActorStopped | ActorFailed):
                error = ActorStopped(f"{queue!r} stopped before it took its share of the transaction; nothing "
                                     "was published")
            self._refused(queue, error)
            return
        self._prepared.append(queue)
        self._pending -= 1
        if not self._pending:
            self._decide()

    def _decide(self) -> None:
        """Every queue answered: commit everywhere, or abort everywhere."""
        error = self._error
        if error is not None:
            for queue in self._prepared:
                queue.tell(AbortBatch(self._id))
            if self._reply is not None:
                self._reply.fail(error)
            else:
                self._system.dead_letter(self._batch, None, self._actor.ref, f"transaction refused: {error}")
            return
        plan = self._plan
        shares = BatchShares(plan)
        for destination in plan:
            if destination in self._queues:
                continue
            for delivery in shares.for_actor(destination):
                try:
                    destination.tell(delivery)
                except MailboxFull as exc:
                    self._system.dead_letter(delivery, self._actor.ref, destination, f"overflow: {exc}")
                else:
                    self._count += 1
        self._pending = len(self._queues)
        for queue in self._queues:
            queue.request(CommitBatch(self._id)).add_done_callback(functools.partial(self._on_committed, queue))

    def _on_committed(self, queue: ActorRef, future: Future[Any]) -> None:
        error = future.exception()
        if error is None:
            self._count += future.result()
        elif self._error is None:
            self._error = error if isinstance(error, StorageError) else ActorStopped(
                f"{queue!r} stopped between the two phases of the transaction and lost its share; the other "
                f"queues have theirs: {error!r}")
        self._pending -= 1
        if self._pending:
            return
        if self._reply is None:
            return
        if self._error is not None:
            self._reply.fail(self._error)
        else:
            self._reply.tell(self._count)
