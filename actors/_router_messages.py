"""The router's vocabulary: the messages exchanges, queues and transactions exchange, and what they send on.

Every message is a frozen attrs class: one instance can reach many recipients safely. Messages are not
validated when they are built but by the actor that receives them (see ``_router_checks``), which refuses bad
input with a :class:`ValueError` naming the value and the rule (an ask raises it; the actor keeps running).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from runtime import ActorRef, Topology

__all__ = [
    "AbortBatch",
    "Ack",
    "Bind",
    "CommitBatch",
    "Delivery",
    "Enqueue",
    "EnqueueBatch",
    "EnqueueCC",
    "Get",
    "GetStatistics",
    "Headers",
    "Nack",
    "PrepareBatch",
    "Publish",
    "PublishBatch",
    "Reject",
    "Returned",
    "Subscribe",
    "Unbind",
    "Unsubscribe",
    "enqueue_of",
]

Headers = Mapping[str, Any]
"""Message headers: an AMQP table, as a mapping from header name to value."""


# --- Messages to exchanges --------------------------------------------------------------------------------


@attrs.frozen
class Bind:
    """Bind ``destination`` to the exchange that receives this: an actor, a ``Queue`` or another ``Exchange``.

    For a direct exchange ``routing_key`` must equal the publish's key, for a topic exchange it is a pattern
    (``*`` one word, ``#`` zero or more), fanout ignores it, and a headers exchange matches on ``arguments``
    (``x-match`` ``all``/``any``/``all-with-x``/``any-with-x``; a value of ``None`` asks only for presence).
    An ask answers ``True`` if the binding is new, ``False`` if it existed (binding is idempotent).
    """

    destination: ActorRef
    """Where matching messages go."""
    routing_key: str = ""
    """The binding key (at most 255 UTF-8 bytes)."""
    arguments: Headers | None = None
    """Binding arguments: the match spec of a headers exchange; part of the binding's identity."""


@attrs.frozen
class Unbind:
    """Remove the binding (``destination``, ``routing_key``, ``arguments``).

    An ask answers ``True`` if it existed, ``False`` if not (unbinding nothing is not an error, as in AMQP).
    """

    destination: ActorRef
    """The bound destination."""
    routing_key: str = ""
    """The binding key it was bound with."""
    arguments: Headers | None = None
    """The arguments it was bound with."""


@attrs.frozen
class Publish:
    """Publish ``body`` to an exchange (routed by its kind) or straight to a queue.

    ``ask(Publish(...))`` is a publisher confirm: it answers the number of final destinations (queues and
    actors) that accepted the message, once durable queues have stored it. With ``mandatory=True`` and no
    destination at all, an ask raises :class:`~actors.Unroutable` and a tell sends :class:`Returned` back to
    the sending actor. ``ttl`` is the message's time to live in seconds (a queue applies the smaller of it and
    its own ``message_ttl``); ``persistent`` is kept with the message.

    Sender-selected distribution (RabbitMQ's CC and BCC): the headers ``CC`` and ``BCC``, lists of str, are
    extra routing keys, matched like ``routing_key`` by every exchange kind that uses keys, at every hop; a
    destination reached by several keys still gets one copy. ``BCC`` is removed from the headers that
    destinations see, ``CC`` is kept. Any other value (a str, ``None``, a list holding a non-str) is refused
    with :class:`ValueError`.
    """

    routing_key: str
    """The key bindings are matched against (at most 255 UTF-8 bytes)."""
    body: Any
    """The payload, passed by reference and never copied."""
    headers: Headers | None = None
    """Message headers; what a headers exchange matches on (``CC`` and ``BCC`` add routing keys)."""
    mandatory: bool = False
    """Return the message (tell) or fail the ask with ``Unroutable`` when it reaches no destination."""
    persistent: bool = False
    """AMQP delivery mode 2; kept with the message (durable queues store every message)."""
    ttl: float | None = None
    """Time to live in seconds, ``None`` for no limit."""


@attrs.frozen
class PublishBatch:
    """Publish several messages in one step: what a transaction sends when its block ends.

    ``entries`` are (target, publish) pairs, a target being an ``Exchange`` or a ``Queue``. The receiving
    exchange or queue validates them all first (one bad entry refuses the whole batch, nothing is routed),
    routes them all in one handler step, then publishes all or nothing in two phases (``PrepareBatch`` to
    every queue reached, then ``CommitBatch``, or ``AbortBatch`` if one refused), each queue enqueueing its
    share in one step, so a consumer never sees part of it. An ask answers the number of accepted copies, or
    raises the error of the queue that refused.
    """

    entries: tuple[tuple[ActorRef, Publish], ...]
    """What to publish where, in order."""


@attrs.frozen
class Returned:
    """A mandatory publish that reached no destination, sent back to the actor that told it (AMQP basic.return)."""

    publish: Publish
    """The message, unchanged."""


# --- What exchanges send on ------------------------------------------------------------------------------


@attrs.frozen
class Delivery:
    """A message delivered to an actor: by an exchange it is bound to, or by a queue it consumes from.

    A delivery from a queue (``queue`` is set) must be settled once: :meth:`ack`, :meth:`nack` or
    :meth:`reject` (unless the consumer subscribed with ``auto_ack=True``). A delivery straight from an
    exchange needs no settling: its ``delivery_tag`` is ``None`` and those methods do nothing.
    """

    exchange: str
    """The name of the exchange the message was published to; ``""`` for a publish sent straight to a queue."""
    routing_key: str
    """The routing key it was published with."""
    body: Any
    """The payload."""
    headers: Headers | None
    """Its headers (with ``x-death`` and friends if it was dead-lettered)."""
    redelivered: bool = False
    """Whether it was delivered before (and returned: nacked, or its consumer stopped or failed)."""
    delivery_tag: int | None = None
    """Identifies the delivery to the queue for ack/nack/reject; ``None`` when it came from an exchange."""
    queue: ActorRef | None = attrs.field(default=None, kw_only=True)
    """The queue it came from, ``None`` for a delivery straight from an exchange."""

    def ack(self) -> None:
        """Acknowledge: the queue forgets the message. A plain call (a tell to the queue).

        The settlement is also noted at once where the queue's state sees it (``Topology.note_settlement``),
        so that a durable queue that is stopped before it handles the tell still honours it: the message is
        not restored on its next start. The same goes for :meth:`nack` and :meth:`reject`.
        """
        queue, tag = self.queue, self.delivery_tag
        if queue is not None and tag is not None:
            _note(queue, tag, None)
            queue.tell(Ack(tag))

    def nack(self, requeue: bool = True) -> None:
        """Give the message back: requeued at its original place (``redelivered=True``) or dead-lettered."""
        queue, tag = self.queue, self.delivery_tag
        if queue is not None and tag is not None:
            _note(queue, tag, bool(requeue))
            queue.tell(Nack(tag, requeue))

    def reject(self) -> None:
        """Refuse the message for good: it is dead-lettered (reason ``rejected``) or dropped, never requeued."""
        queue, tag = self.queue, self.delivery_tag
        if queue is not None and tag is not None:
            _note(queue, tag, False)
            queue.tell(Reject(tag))


def _note(queue: ActorRef, tag: int, requeue: bool | None) -> None:
    """Note a settlement in the caller's system's topology (a no-op outside a system)."""
    topology = Topology.current()
    if topology is not None:
        topology.note_settlement(queue, tag, requeue)


@attrs.frozen
class Enqueue:
    """What an exchange sends a queue bound to it: ``publish`` as routed through ``exchange`` (its name).

    An ask answers 1 once the queue accepted (and, if durable, stored) the message, 0 if it refused it.
    Made by :func:`enqueue_of`; a message published with ``CC`` or ``BCC`` headers travels as the subclass
    :class:`EnqueueCC`, which carries their keys (a plain publish does not pay for two more fields).
    """

    exchange: str
    """The name of the exchange the message was published to."""
    publish: Publish
    """The message, as destinations see it (without a ``BCC`` header)."""

    @property
    def cc(self) -> tuple[str, ...]:
        """Its extra routing keys from the ``CC`` header: none (see :class:`EnqueueCC`)."""
        return ()

    @property
    def bcc(self) -> tuple[str, ...]:
        """Its extra routing keys from the ``BCC`` header: none (see :class:`EnqueueCC`)."""
        return ()


@attrs.frozen
class EnqueueCC(Enqueue):
    """An :class:`Enqueue` of a message published with ``CC`` or ``BCC`` headers, with their keys.

    The queue keeps them with the message: dead-lettering without a ``dead_letter_routing_key`` routes on
    every key the message was published with, and ``BCC`` is no longer in its headers.
    """

    cc: tuple[str, ...]  # a field here, a property answering () on Enqueue
    """Its extra routing keys from the ``CC`` header (the header itself is kept in ``publish``)."""
    bcc: tuple[str, ...]
    """Its extra routing keys from the ``BCC`` header, which ``publish`` no longer carries."""


@attrs.frozen
class EnqueueBatch:
    """A queue's share of a batch in one step: every entry is enqueued, or none and the ask raises (a
    reject mode that would go beyond a limit, a body the queue cannot measure or store)."""

    entries: tuple[Enqueue, ...]
    """The messages, in publish order."""


@attrs.frozen
class PrepareBatch:
    """Phase one of a transaction, to each queue it reaches: take ``entries`` or refuse them all.

    The queue checks every message (its length limits in a reject mode, with room already held for other
    transactions counted; a body it must measure or store and cannot), then holds room for them under
    ``batch`` and answers ``None``; or refuses the whole share, the ask raising an error that names the
    message and the queue, and holds nothing.
    """

    batch: int
    """The transaction's id (unique in its system)."""
    entries: tuple[Enqueue, ...]
    """The queue's share, in publish order."""


@attrs.frozen
class CommitBatch:
    """Phase two: enqueue the share prepared under ``batch``; an ask answers how many once they are stored."""

    batch: int
    """The transaction's id."""


@attrs.frozen
class AbortBatch:
    """Phase two when another queue refused: drop the share prepared under ``batch`` and the room it held."""

    batch: int
    """The transaction's id."""


# --- Messages to queues -----------------------------------------------------------------------------------


@attrs.frozen
class Subscribe:
    """Make ``consumer`` a consumer of the queue: it receives :class:`Delivery` messages, round-robin.

    At most ``prefetch`` deliveries are unsettled at once (0 for no limit); an ``auto_ack`` consumer's
    deliveries count as acknowledged when sent and ignore ``prefetch``. Subscribing again changes the
    settings. A consumer that stops or fails gets its unsettled deliveries requeued for the others.
    """

    consumer: ActorRef
    """The consuming actor."""
    prefetch: int = 10
    """The most unsettled deliveries it may hold; 0 for no limit."""
    auto_ack: bool = False
    """Count deliveries as acknowledged as soon as they are sent."""


@attrs.frozen
class Unsubscribe:
    """Stop delivering to ``consumer`` (AMQP basic.cancel); what it holds unsettled it may still settle."""

    consumer: ActorRef
    """The consumer to remove."""


@attrs.frozen
class Get:
    """Take one message (AMQP basic.get): an ask answers the next ready :class:`Delivery`, or ``None``.

    Not limited by prefetch. Unless ``auto_ack``, the delivery must be settled like a consumer's (it is not
    requeued automatically: nothing watches the asker).
    """

    auto_ack: bool = False
    """Count the message as acknowledged at once."""


@attrs.frozen
class Ack:
    """Settle a delivery as done (what :meth:`Delivery.ack` sends)."""

    delivery_tag: int
    """The tag of the delivery."""


@attrs.frozen
class Nack:
    """Give a delivery back (what :meth:`Delivery.nack` sends): requeue it, or dead-letter it."""

    delivery_tag: int
    """The tag of the delivery."""
    requeue: bool = True
    """Requeue at its original place (``True``) or dead-letter with reason ``rejected`` (``False``)."""


@attrs.frozen
class Reject:
    """Refuse a delivery for good (what :meth:`Delivery.reject` sends): dead-letter it, never requeue."""

    delivery_tag: int
    """The tag of the delivery."""


@attrs.frozen
class GetStatistics:
    """Ask an ``Exchange`` or ``Queue`` for its ``statistics()``: a frozen snapshot of its figures."""


def enqueue_of(exchange: str, publish: Publish) -> Enqueue:
    """The :class:`Enqueue` of a validated ``publish`` routed through ``exchange`` (its name, ``""`` for none).

    A publish without ``CC``/``BCC`` headers is taken as it is; otherwise their keys go to ``cc`` and ``bcc``
    and the ``BCC`` header is removed from the message (a new headers dict; the publisher's is not changed).
    """
    headers = publish.headers
    if not headers or ("CC" not in headers and "BCC" not in headers):
        return Enqueue(exchange, publish)
    cc = tuple(headers.get("CC", ()))
    bcc = tuple(headers.get("BCC", ()))
    if "BCC" in headers:
        publish = attrs.evolve(publish, headers={name: value for name, value in headers.items() if name != "BCC"})
    return EnqueueCC(exchange, publish, cc, bcc)
