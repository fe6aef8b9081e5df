"""The :class:`Exchange` actor: routes what is published to it to the destinations bound to it, by AMQP rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

import attrs

from runtime import ActorRef, MailboxFull, Reply, ReplyRef, RoutingTable, Terminated, Unroutable, make_table

from ._actor import Actor
from ._amqp import (
    Bind,
    Confirm,
    Delivery,
    Directory,
    Enqueue,
    GetStatistics,
    Publish,
    PublishBatch,
    Returned,
    Unbind,
    check_ref,
    directory,
    enqueue_of,
    publish_batch,
    publish_error,
    send,
    show,
)

__all__ = ["Exchange", "ExchangeStatistics"]

_KEYED_KINDS: Final = frozenset({"direct", "topic"})
"""The kinds that match on routing keys, and so on the extra keys of ``CC`` and ``BCC`` too."""


@attrs.frozen
class ExchangeStatistics:
    """A snapshot of an exchange, from ``await exchange.ask(GetStatistics())``."""

    kind: str
    """``"direct"``, ``"fanout"``, ``"topic"`` or ``"headers"``."""
    bindings: int
    """How many bindings it holds."""
    destinations: int
    """How many distinct destinations are bound to it."""
    published: int
    """Messages published to it (not counting those routed through it from another exchange)."""
    unroutable: int
    """Of those, the ones that reached no queue or actor."""


class Exchange(Actor):
    """A router actor: ``await system.spawn(Exchange, "topic", name="events", alternate=None)``.

    ``kind`` is ``"direct"``, ``"fanout"``, ``"topic"`` or ``"headers"`` (anything else fails the spawn with
    :class:`ValueError`, as the cause of ``ActorFailed``); ``alternate`` is an exchange that gets what this
    one's own bindings match nothing of (AMQP's alternate exchange; a ref that is not an exchange fails the
    spawn the same way; one that has stopped counts as none).

    Messages: :class:`Bind` and :class:`Unbind` change its bindings; :class:`Publish` routes a message;
    :class:`PublishBatch` routes a transaction's batch; :class:`GetStatistics` answers :meth:`statistics`.
    Bad input (a key over 255 UTF-8 bytes, a non-str key, an invalid ``x-match``, a ``CC`` or ``BCC`` header
    that is not a list of such keys, a malformed message) makes the ask raise :class:`ValueError` naming the
    value and the rule; the exchange keeps running, unchanged (a bad tell becomes a dead letter).

    Routing follows RabbitMQ. A publish reaches a *set* of final destinations: a queue or actor reachable
    through several bindings gets one copy. A destination that is another exchange routes the message with its
    own kind and its own bindings, on the original routing key and headers; each exchange is visited at most
    once per publish, so cycles are harmless. The alternate exchange is used only when the exchange's own
    bindings matched nothing (a chain of alternates is followed the same way). All of that happens inside
    this exchange's handler, synchronously, through the other exchanges' tables, so the publish is routed in
    one step and its outcome is known at once: queues get an internal ``Enqueue`` message, plain actors a
    :class:`~actors.Delivery`.

    Sender-selected distribution: the keys in a publish's ``CC`` and ``BCC`` headers are matched as well as
    its routing key, by direct and topic exchanges, at every hop (exchange-to-exchange and alternates too),
    and the destinations found are united: one copy each. Destinations get the message without its ``BCC``
    header; ``CC`` stays.

    An ask answers the number of final destinations that accepted the message (actors at once; queues once
    they confirmed, durable ones once they stored it; a queue with ``overflow="reject_publish"`` that is full
    counts 0). ``mandatory=True`` with no destination: an ask raises :class:`~actors.Unroutable`, a tell
    sends :class:`~actors.Returned` to the sending actor (a dead letter when there is none).

    A destination that stops is unbound (the exchange watches what is bound to it).
    """

    def __init__(self, kind: str, *, alternate: ActorRef | None = None) -> None:
        self._table: RoutingTable[ActorRef] = make_table(kind)
        self._keyed = self._table.kind in _KEYED_KINDS
        """Whether this kind matches routing keys (so CC and BCC keys count)."""
        self._alternate = check_ref("alternate", alternate, optional=True)
        self._bound: dict[ActorRef, int] = {}
        """Destination -> number of its bindings (to watch it while it has any)."""
        self._published = 0
        self._unroutable = 0
        self._name = ""
        self._directory = Directory()  # replaced by the system's in on_start

    async def on_start(self) -> None:
        self._name = self.ref.name
        self._directory = directory(self.system)
        alternate = self._alternate
        if alternate is not None and self._directory.kind(alternate) != "exchange":
            raise ValueError(f"alternate={alternate!r} is not an Exchange; an alternate exchange must be one")
        self._directory.register(self.ref, "exchange", self)

    async def on_stop(self) -> None:
        self._directory.unregister(self.ref, self)

    @property
    def kind(self) -> str:
        """The exchange kind."""
        return self._table.kind

    async def receive(self, message: Any) -> Any:
        """Handle one message; see the class docstring."""
        cls = message.__class__
        if cls is Publish:
            return self._publish(message)
        if cls is Bind:
            return self._bind(message)
        if cls is Unbind:
            return self._unbind(message)
        if cls is Terminated:
            self._table.remove_destination(message.ref)
            self._bound.pop(message.ref, None)
            return None
        if cls is PublishBatch:
            return publish_batch(self, self._directory, message)
        if cls is GetStatistics:
            return self.statistics()
        return Reply.error(ValueError(
            f"{self!r} does not understand {show(message)}; send it Bind, Unbind, Publish, PublishBatch or "
            "GetStatistics"))

    # -- routing -------------------------------------------------------------------------------------------

    def resolve(self, routing_key: str, headers: Mapping[str, Any] | None,
                extra_keys: tuple[str, ...] = ()) -> set[ActorRef]:
        """The final destinations (queues and actors, never exchanges) of a message published here.

        Synchronous and side-effect free: walks this exchange's table, the tables of the exchanges it reaches
        (each once) and alternates where a table matched nothing. Destinations that have stopped are skipped as
        if unbound. ``extra_keys`` (a publish's CC and BCC keys) are matched as well as ``routing_key`` by
        every keyed table on the way; an exchange's own matches are the union over all the keys (so its
        alternate is used only when no key matched). ``routing_key``, ``headers`` and ``extra_keys`` must have
        been validated.
        """
        if extra_keys:
            extra_keys = tuple(key for key in dict.fromkeys(extra_keys) if key != routing_key)
        dir_ = self._directory
        kinds = dir_.kinds
        exchanges = dir_.exchanges
        finals: set[ActorRef] = set()
        visited: set[ActorRef] | None = None
        pending: list[Exchange] = []
        router = self
        while True:
            live = False
            matched = router._table.match(routing_key, headers)
            if extra_keys and router._keyed:
                table = router._table
                for key in extra_keys:
                    matched |= table.match(key, headers)
            for destination in matched:
                if destination.is_stopped:
                    continue
                live = True
                if kinds.get(destination) != "exchange":
                    finals.add(destination)
                    continue
                if visited is None:
                    visited = {self.ref}
                if destination not in visited:
                    visited.add(destination)
                    inner = exchanges.get(destination)
                    if inner is not None:  # None: restarting right now; it routes nothing meanwhile.
                        pending.append(cast(Exchange, inner))
            if not live and router._alternate is not None:
                alternate = router._alternate
                if visited is None:
                    visited = {self.ref}
                if alternate not in visited:
                    visited.add(alternate)
                    inner = exchanges.get(alternate)
                    if inner is not None and not alternate.is_stopped:
                        pending.append(cast(Exchange, inner))
            if not pending:
                return finals
            router = pending.pop()

    def _publish(self, publish: Publish) -> Any:
        error = publish_error(publish)
        if error is not None:
            return Reply.error(error)
        self._published += 1
        name = self._name
        headers = publish.headers
        enqueue: Enqueue | None = None
        if headers and ("CC" in headers or "BCC" in headers):  # the only cost without them: this check
            enqueue = enqueue_of(name, publish)
            finals = self.resolve(publish.routing_key, headers, enqueue.cc + enqueue.bcc)
        else:
            finals = self.resolve(publish.routing_key, headers)
        sender = self.sender
        asked = isinstance(sender, ReplyRef)
        if not finals:
            self._unroutable += 1
            if publish.mandatory:
                if asked:
                    return Reply.error(Unroutable(
                        f"{publish!r} published to {self!r} reached no queue or actor (alternates included)"))
                if sender is not None:
                    send(self, sender, Returned(publish))
                else:
                    self.system.dead_letter(publish, None, self.ref, "unroutable")
            return 0
        kinds = self._directory.kinds
        count = 0
        confirm: Confirm | None = None
        delivery: Delivery | None = None
        for destination in finals:
            try:
                if kinds.get(destination) == "queue":
                    if enqueue is None:
                        enqueue = Enqueue(name, publish)
                    if asked:
                        if confirm is None:
                            confirm = Confirm(self.defer_reply())
                        confirm.wait_for(destination.request(enqueue))
                    else:
                        destination.tell(enqueue)
                else:
                    if delivery is None:
                        seen = publish if enqueue is None else enqueue.publish  # without BCC
                        delivery = Delivery(name, seen.routing_key, seen.body, seen.headers)
                    destination.tell(delivery)
                    count += 1
            except MailboxFull as exc:  # a bounded mailbox with overflow="fail": that copy is lost, not counted
                self.system.dead_letter(publish, self.ref, destination, f"overflow: {exc}")
        if confirm is None:
            return count
        confirm.add(count)
        confirm.seal()
        return None

    # -- bindings ------------------------------------------------------------------------------------------

    def _bind(self, message: Bind) -> Any:
        destination = message.destination
        try:
            check_ref("Bind destination", destination)
            new = self._table.bind(message.routing_key, message.arguments, destination)
        except ValueError as exc:
            return Reply.error(exc)
        if new:
            count = self._bound.get(destination, 0)
            if not count and destination != self.ref:
                self.watch(destination)
            self._bound[destination] = count + 1
        return new

    def _unbind(self, message: Unbind) -> Any:
        destination = message.destination
        try:
            check_ref("Unbind destination", destination)
            removed = self._table.unbind(message.routing_key, message.arguments, destination)
        except ValueError as exc:
            return Reply.error(exc)
        if removed:
            count = self._bound[destination] - 1
            if count:
                self._bound[destination] = count
            else:
                del self._bound[destination]
                if destination != self.ref:
                    self.unwatch(destination)
        return removed

    # -- figures -------------------------------------------------------------------------------------------

    def statistics(self) -> ExchangeStatistics:
        """A frozen snapshot of this exchange's figures."""
        return ExchangeStatistics(kind=self._table.kind, bindings=len(self._table), destinations=len(self._bound),
                                  published=self._published, unroutable=self._unroutable)

    def __repr__(self) -> str:
        name = self._name or "not started"
        return (f"<Exchange {name!r} {self._table.kind} bindings={len(self._table)}"
                f" published={self._published}>")
