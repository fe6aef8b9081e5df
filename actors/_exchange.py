"""The :class:`Exchange` actor: routes what is published to it to the destinations bound to it, by AMQP rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from runtime import (
    ActorRef,
    ExchangeEntry,
    Reply,
    ReplyRef,
    RoutingTable,
    Terminated,
    Topology,
    Unroutable,
    make_table,
    topology,
)

from ._actor import Actor
from ._router_checks import check_ref, publish_error, show
from ._router_messages import Bind, Enqueue, GetStatistics, Publish, PublishBatch, Returned, Unbind, enqueue_of
from ._router_send import OnePublish, publish_batch, send, send_routed

__all__ = ["Exchange", "ExchangeStatistics"]

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

    ``broker=`` (a URL such as ``"amqp://guest:guest@127.0.0.1:5672/"``, or ``True`` for the system's broker)
    makes it the RabbitMQ exchange of that name and kind instead, with the same messages, routed by the broker
    (``durable=True`` declares it durable); see ``actors._broker_router.BrokerExchange``.

    Messages: :class:`Bind` and :class:`Unbind` change its bindings; :class:`Publish` routes a message;
    :class:`PublishBatch` routes a transaction's batch; :class:`GetStatistics` answers :meth:`statistics`.
    Bad input (a key over 255 UTF-8 bytes, a non-str key, an invalid ``x-match``, a ``CC`` or ``BCC`` header
    that is not a list of such keys, a malformed message) makes the ask raise :class:`ValueError` naming the
    value and the rule; the exchange keeps running, unchanged (a bad tell becomes a dead letter). So do
    values it cannot compare, as a binding argument or as a header value a headers binding tests: a list or
    dict that contains itself, one nested more than 100 levels deep, a mapping whose ``items()`` or lookups
    raise, an object whose ``__hash__`` raises (other than ``TypeError``, which makes a header value equal
    to nothing and a binding argument refused); headers that cannot be read are refused by every kind.
    Headers matching takes every float NaN as one value: a NaN header matches a NaN binding.

    Routing follows RabbitMQ. A publish reaches a *set* of final destinations: a queue or actor reachable
    through several bindings gets one copy. A destination that is another exchange routes the message with its
    own kind and its own bindings, on the original routing key and headers; each exchange is visited at most
    once per publish, so cycles are harmless. The alternate exchange is used only when the exchange's own
    bindings matched nothing (a chain of alternates is followed the same way). All of that happens inside
    this exchange's handler, synchronously, through the system's topology (``runtime.Topology``: every
    exchange's bindings as data), so the publish is routed in one step and its outcome is known at once:
    queues get an internal ``Enqueue`` message, plain actors a :class:`~actors.Delivery`.

    Sender-selected distribution: the keys in a publish's ``CC`` and ``BCC`` headers are matched as well as
    its routing key, by direct and topic exchanges, at every hop (exchange-to-exchange and alternates too),
    and the destinations found are united: one copy each. Destinations get the message without its ``BCC``
    header; ``CC`` stays.

    An ask answers the number of final destinations that accepted the message (actors at once; queues once
    they confirmed, durable ones once they stored it; a queue with ``overflow="reject_publish"`` that is full
    counts 0). ``mandatory=True`` with no destination: an ask raises :class:`~actors.Unroutable`, a tell
    sends :class:`~actors.Returned` to the sending actor (a dead letter when there is none).

    A destination that stops is unbound (the exchange watches what is bound to it).

    The bindings, the alternate and the figures are kept in the topology under the exchange's ref, not in the
    instance: an exchange that is restarted (after its own failure, or a sibling's under ``OneForAll``) has
    the same ref and finds them as they were, and routes through them even while it restarts.
    """

    def __new__(cls, *args: Any, broker: str | bool | None = None, **kwargs: Any) -> Any:
        # broker=...: the RabbitMQ exchange instead (its own class, so that the embedded path pays nothing).
        if broker is None or broker is False or cls is not Exchange:
            return super().__new__(cls)
        from ._broker_router import BrokerExchange

        instance = BrokerExchange(*args, broker=broker, **kwargs)
        return instance

    def __init__(self, kind: str, *, alternate: ActorRef | None = None, broker: str | bool | None = None,
                 durable: bool = False) -> None:
        if durable:
            raise ValueError("durable=True applies to a broker-backed exchange (broker=...); an embedded exchange "
                             "holds only its bindings, which live as long as the system")
        self._table: RoutingTable[ActorRef] = make_table(kind)
        """The table of a new exchange (made here to check ``kind``); a restarted one keeps the one it had."""
        self._alternate = check_ref("alternate", alternate, optional=True)
        self._name = ""
        self._topology = Topology()  # replaced by the system's in on_start
        self._entry: ExchangeEntry | None = None
        """This exchange in the topology, from ``on_start`` on."""

    async def on_start(self) -> None:
        self._name = self.ref.name
        self._topology = topology(self.system)
        entry = self._entry = self._topology.declare_exchange(self.ref, self._table, self._alternate)
        for destination in entry.bound:  # after a restart: watch what is bound again (watching is idempotent)
            if destination != self.ref:
                self.watch(destination)

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
            assert self._entry is not None
            self._entry.remove_destination(message.ref)
            return None
        if cls is PublishBatch:
            return publish_batch(self, self._topology, message)
        if cls is GetStatistics:
            return self.statistics()
        return Reply.error(ValueError(
            f"{self!r} does not understand {show(message)}; send it Bind, Unbind, Publish, PublishBatch or "
            "GetStatistics"))

    # -- routing -------------------------------------------------------------------------------------------

    def resolve(self, routing_key: str, headers: Mapping[str, Any] | None,
                extra_keys: tuple[str, ...] = ()) -> set[ActorRef]:
        """The final destinations (queues and actors, never exchanges) of a message published here.

        See :meth:`runtime.Topology.route`; ``routing_key``, ``headers`` and ``extra_keys`` must have been
        validated.
        """
        assert self._entry is not None, f"{self!r} has not started"
        return self._topology.route(self._entry, routing_key, headers, extra_keys)

    def _publish(self, publish: Publish) -> Any:
        error = publish_error(publish)
        if error is not None:
            return Reply.error(error)
        entry = self._entry
        assert entry is not None
        name = self._name
        headers = publish.headers
        enqueue: Enqueue | None = None
        try:
            if headers and ("CC" in headers or "BCC" in headers):  # the only cost without them: this check
                enqueue = enqueue_of(name, publish)
                finals = self._topology.route(entry, publish.routing_key, headers, enqueue.cc + enqueue.bcc)
            else:
                finals = self._topology.route(entry, publish.routing_key, headers)
        except ValueError as exc:  # a header value a headers exchange cannot compare: refused, nothing changed
            return Reply.error(exc)
        entry.published += 1
        sender = self.sender
        asked = isinstance(sender, ReplyRef)
        if not finals:
            entry.unroutable += 1
            if publish.mandatory:
                if asked:
                    return Reply.error(Unroutable(
                        f"{show(publish)} published to {self!r} reached no queue or actor (alternates included)"))
                if sender is not None:
                    send(self, sender, Returned(publish))
                else:
                    self.system.dead_letter(publish, None, self.ref, "unroutable")
            return 0
        return send_routed(self, self._topology.kinds, finals, OnePublish(name, publish, enqueue), asked=asked)

    # -- bindings ------------------------------------------------------------------------------------------

    def _bind(self, message: Bind) -> Any:
        destination = message.destination
        entry = self._entry
        assert entry is not None
        try:
            check_ref("Bind destination", destination)
            new = entry.bind(message.routing_key, message.arguments, destination)
        except ValueError as exc:
            return Reply.error(exc)
        if new and entry.bound[destination] == 1 and destination != self.ref:
            self.watch(destination)
        return new

    def _unbind(self, message: Unbind) -> Any:
        destination = message.destination
        entry = self._entry
        assert entry is not None
        try:
            check_ref("Unbind destination", destination)
            removed = entry.unbind(message.routing_key, message.arguments, destination)
        except ValueError as exc:
            return Reply.error(exc)
        if removed and destination not in entry.bound and destination != self.ref:
            self.unwatch(destination)
        return removed

    # -- figures -------------------------------------------------------------------------------------------

    def statistics(self) -> ExchangeStatistics:
        """A frozen snapshot of this exchange's figures."""
        entry = self._entry
        if entry is None:
            return ExchangeStatistics(kind=self._table.kind, bindings=0, destinations=0, published=0, unroutable=0)
        return ExchangeStatistics(kind=entry.kind, bindings=len(entry.table), destinations=len(entry.bound),
                                  published=entry.published, unroutable=entry.unroutable)

    def __repr__(self) -> str:
        name = self._name or "not started"
        entry = self._entry
        bindings, published = (0, 0) if entry is None else (len(entry.table), entry.published)
        return f"<Exchange {name!r} {self._table.kind} bindings={bindings} published={published}>"
