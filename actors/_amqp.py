"""The messages of the AMQP-style router (exchanges, queues, transactions) and what they share.

Every message is a frozen attrs class: one instance can reach many recipients safely. Messages are not
validated when they are built but by the actor that receives them, which refuses bad input with a
:class:`ValueError` naming the value and the rule (an ask raises it; the actor keeps running).

The :class:`Directory` is the in-process side of routing: it knows which refs of a system are exchanges and
queues, so that an exchange can route a publish through the exchanges bound to it synchronously, inside one
handler step (one copy per destination, exact confirm counts, ``mandatory`` decided at once), and so that an
exchange sends queues an :class:`Enqueue` and plain actors a :class:`Delivery`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import attrs

from runtime import ActorRef, Future, MailboxFull, Reply, ReplyRef, validate_key

from ._actor import Actor

if TYPE_CHECKING:
    from runtime import ActorSystem

__all__ = [
    "Ack",
    "Bind",
    "Delivery",
    "Directory",
    "Enqueue",
    "EnqueueBatch",
    "EnqueueCC",
    "Get",
    "GetStatistics",
    "Nack",
    "Publish",
    "PublishBatch",
    "Reject",
    "Returned",
    "Subscribe",
    "Unbind",
    "Unsubscribe",
    "directory",
    "enqueue_of",
    "publish_batch",
    "publish_error",
    "send",
    "show",
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
    routes them all in one handler step and gives each queue its share in one :class:`EnqueueBatch`, so a
    consumer never sees part of a queue's share. An ask answers the number of accepted copies.
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
        """Acknowledge: the queue forgets the message. A plain call (a tell to the queue)."""
        if self.queue is not None and self.delivery_tag is not None:
            self.queue.tell(Ack(self.delivery_tag))

    def nack(self, requeue: bool = True) -> None:
        """Give the message back: requeued at its original place (``redelivered=True``) or dead-lettered."""
        if self.queue is not None and self.delivery_tag is not None:
            self.queue.tell(Nack(self.delivery_tag, requeue))

    def reject(self) -> None:
        """Refuse the message for good: it is dead-lettered (reason ``rejected``) or dropped, never requeued."""
        if self.queue is not None and self.delivery_tag is not None:
            self.queue.tell(Reject(self.delivery_tag))


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
    """A queue's share of a transaction: every entry is enqueued in one step, then delivered."""

    entries: tuple[Enqueue, ...]
    """The messages, in publish order."""


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


# --- Shared helpers ---------------------------------------------------------------------------------------

_SHOW_LIMIT: Final = 60


def show(value: object) -> str:
    """``repr(value)`` cut short for error messages."""
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[:_SHOW_LIMIT] + "…"


def check_ttl(what: str, value: object) -> float | None:
    """``value`` as seconds if it is ``None`` or a finite number >= 0, else raise :class:`ValueError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}={show(value)} must be None or a number of seconds, zero or more")
    return float(value)


def publish_error(publish: Publish, what: str = "Publish") -> ValueError | None:
    """The :class:`ValueError` that refuses ``publish``, or ``None`` if it is well formed."""
    if publish.__class__ is not Publish:
        return ValueError(f"{what} must be a Publish, not {show(publish)}")
    try:
        validate_key(publish.routing_key)
        check_ttl("ttl", publish.ttl)
    except ValueError as exc:
        return exc
    headers: object = publish.headers
    if headers is not None:
        if not isinstance(headers, Mapping):
            return ValueError(f"headers {show(headers)} must be a mapping or None")
        if not all(isinstance(name, str) for name in headers):
            return ValueError(f"header names in {show(headers)} must all be str")
        if "CC" in headers or "BCC" in headers:
            error = _sender_keys_error(headers)
            if error is not None:
                return error
    mandatory: object = publish.mandatory
    if mandatory.__class__ is not bool:
        return ValueError(f"mandatory={show(mandatory)} must be True or False")
    persistent: object = publish.persistent
    if persistent.__class__ is not bool:
        return ValueError(f"persistent={show(persistent)} must be True or False")
    return None


_SENDER_KEYS: Final = ("CC", "BCC")


def _sender_keys_error(headers: Mapping[str, Any]) -> ValueError | None:
    """The :class:`ValueError` that refuses a ``CC`` or ``BCC`` header, or ``None`` if both are well formed.

    Each must be a list (or tuple: an AMQP array either way) of routing keys, each a valid key. A str is
    refused rather than taken as a list of one-character keys.
    """
    for name in _SENDER_KEYS:
        if name not in headers:
            continue
        keys = headers[name]
        if not isinstance(keys, list | tuple):
            return ValueError(f"header {name}={show(keys)} must be a list of routing keys (str), as "
                              "sender-selected distribution requires")
        for key in keys:
            try:
                validate_key(key, what=f"{name} routing key")
            except ValueError as exc:
                return ValueError(f"header {name}={show(keys)}: {exc}")
    return None


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


def check_ref(what: str, value: object, *, optional: bool = False) -> ActorRef | None:
    """``value`` if it is an actor's ref (not a reply ref), else raise :class:`ValueError`."""
    if value is None and optional:
        return None
    if not isinstance(value, ActorRef) or isinstance(value, ReplyRef):
        rule = "an ActorRef or None" if optional else "an ActorRef"
        raise ValueError(f"{what} {show(value)} must be {rule} (the ref of a spawned actor)")
    return value


# --- The directory ----------------------------------------------------------------------------------------


class Router(Protocol):
    """What the directory knows of a live exchange: its in-process routing function."""

    def resolve(self, routing_key: str, headers: Headers | None, extra_keys: tuple[str, ...] = ()) -> set[ActorRef]:
        """The final destinations (queues and actors) of a message entering the exchange.

        ``extra_keys`` are routing keys matched as well as ``routing_key`` (CC and BCC).
        """
        ...


Kind = Literal["exchange", "queue"]


class Directory:
    """Which refs of one actor system are exchanges and queues, and each exchange's current instance.

    Exchanges and queues register when they start (and again after a restart). A ref's kind never changes,
    so it is kept until the actor has stopped for good (stopped refs are swept lazily); an exchange's instance
    is forgotten when it stops, and replaced by the fresh one after a restart. Routing reads other
    exchanges' tables through :meth:`exchange`: trio runs one task at a time and a table changes only inside
    a synchronous ``bind``/``unbind``, so a reader always sees a consistent table.
    """

    __slots__ = ("_exchanges", "_incarnations", "_kinds", "_sweep_at")

    def __init__(self) -> None:
        self._kinds: dict[ActorRef, Kind] = {}
        self._exchanges: dict[ActorRef, Router] = {}
        self._incarnations: dict[ActorRef, int] = {}
        self._sweep_at = 64

    def register(self, ref: ActorRef, kind: Kind, instance: Router | None = None) -> int:
        """Record ``ref`` as an exchange (with its routing ``instance``) or a queue.

        Returns how many times this ref registered before: its incarnation number.
        """
        self._kinds[ref] = kind
        if instance is not None:
            self._exchanges[ref] = instance
        incarnation = self._incarnations.get(ref, -1) + 1
        self._incarnations[ref] = incarnation
        if len(self._kinds) >= self._sweep_at:
            for stopped in [r for r in self._kinds if r.is_stopped]:
                del self._kinds[stopped]
                self._incarnations.pop(stopped, None)
                self._exchanges.pop(stopped, None)
            self._sweep_at = 2 * len(self._kinds) + 64
        return incarnation

    def unregister(self, ref: ActorRef, instance: Router) -> None:
        """Forget ``instance`` as the router behind ``ref`` (it stopped); the kind is kept (see the class)."""
        if self._exchanges.get(ref) is instance:
            del self._exchanges[ref]

    def kind(self, ref: ActorRef) -> Kind | None:
        """``"exchange"``, ``"queue"`` or ``None`` (any other actor)."""
        return self._kinds.get(ref)

    def exchange(self, ref: ActorRef) -> Router | None:
        """The running exchange behind ``ref``, or ``None`` (not an exchange, or not running now)."""
        return self._exchanges.get(ref)

    @property
    def exchanges(self) -> dict[ActorRef, Router]:
        """The running exchanges by ref (the live dict, for the routing loop; do not change it)."""
        return self._exchanges

    @property
    def kinds(self) -> dict[ActorRef, Kind]:
        """Every known exchange and queue ref and its kind (the live dict; do not change it)."""
        return self._kinds

    def __repr__(self) -> str:
        queues = sum(1 for kind in self._kinds.values() if kind == "queue")
        return f"<Directory exchanges={len(self._kinds) - queues} queues={queues}>"


def directory(system: ActorSystem) -> Directory:
    """The :class:`Directory` of ``system``, kept on the system itself (made on first use)."""
    return system.extension(Directory, Directory)


# --- Sending what routing decided -------------------------------------------------------------------------


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


def plan_batch(dir_: Directory, batch: PublishBatch) -> dict[ActorRef, list[Enqueue]]:
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
        if dir_.kind(target) is None or target.is_stopped:
            raise ValueError(f"PublishBatch entry {index}: target {target!r} must be a running Exchange or Queue")
        checked.append((target, publish))
    plan: dict[ActorRef, list[Enqueue]] = {}
    for target, publish in checked:
        if dir_.kind(target) == "exchange":
            enqueue = enqueue_of(target.name, publish)
            router = dir_.exchange(target)  # None: restarting right now; it routes nothing meanwhile
            finals = set() if router is None else router.resolve(publish.routing_key, publish.headers,
                                                                 enqueue.cc + enqueue.bcc)
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


def publish_batch(actor: Actor, dir_: Directory, batch: PublishBatch) -> Any:
    """Handle a :class:`PublishBatch` received by an exchange or a queue: check it all, then route it all."""
    try:
        plan = plan_batch(dir_, batch)
    except ValueError as exc:
        return Reply.error(exc)
    return send_batch(actor, dir_, plan)


def send_batch(actor: Actor, dir_: Directory, plan: dict[ActorRef, list[Enqueue]]) -> Any:
    """Send each destination its share of a planned batch, on behalf of ``actor`` (in its ``receive``).

    A queue gets one :class:`EnqueueBatch`; a plain actor a :class:`Delivery` per message. Returns what
    ``receive`` should return: the number of accepted copies, or (when queues must confirm and the message
    was an ask) nothing, the reply being deferred until they have.
    """
    asked = isinstance(actor.sender, ReplyRef)
    count = 0
    confirm: Confirm | None = None
    kinds = dir_.kinds
    for final, share in plan.items():
        if kinds.get(final) == "queue":
            message = EnqueueBatch(tuple(share))
            if asked:
                if confirm is None:
                    confirm = Confirm(actor.defer_reply())
                try:
                    confirm.wait_for(final.request(message))
                except MailboxFull as exc:
                    actor.system.dead_letter(message, actor.ref, final, f"overflow: {exc}")
            else:
                send(actor, final, message)
        else:
            for enqueue in share:
                publish = enqueue.publish
                count += send(actor, final, Delivery(enqueue.exchange, publish.routing_key, publish.body,
                                                     publish.headers))
    if confirm is None:
        return count
    confirm.add(count)
    confirm.seal()
    return None
