"""Broker-backed exchanges and queues: ``spawn(Exchange, kind, name=..., broker=...)`` and
``spawn(Queue, name=..., broker=...)`` are a RabbitMQ exchange and queue, with the router's messages.

``Exchange(..., broker=...)`` and ``Queue(..., broker=...)`` build the actors of this module instead of the
embedded ones (see ``Exchange.__new__``), so the embedded path pays nothing for them. Routing, confirms,
returns, prefetch, acknowledgements, TTL, length limits, dead-lettering and delivery limits are the broker's;
these actors translate messages into AMQP methods (through ``runtime.BrokerLink``, one connection per broker
URL per system) and deliveries into :class:`~actors.Delivery` values. Bodies cross the broker as bytes, UTF-8
text or JSON, never pickles.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import attrs
import trio

from runtime import (
    OVERFLOWS,
    AccessRefused,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AMQPDelivery,
    AMQPError,
    BrokerLink,
    Channel,
    Consumer,
    NotAuthorized,
    PreconditionFailed,
    Publisher,
    PublishOutcome,
    Reply,
    ReplyRef,
    RoutingTable,
    SerializationError,
    Terminated,
    Unroutable,
    amqp_properties,
    broker_link,
    check_table,
    decode_body,
    delivery_headers,
    encode_body,
    hide_password,
    make_table,
    topology,
    validate_key,
)

from ._actor import Actor
from ._exchange import ExchangeStatistics
from ._queue import QueueStatistics
from ._router_checks import check_count, check_ref, check_subscribe, check_ttl, publish_error, show
from ._router_messages import (
    Ack,
    Bind,
    Delivery,
    Get,
    GetStatistics,
    Nack,
    Publish,
    PublishBatch,
    Reject,
    Returned,
    Subscribe,
    Unbind,
    Unsubscribe,
)

__all__ = ["BrokerExchange", "BrokerQueue", "broker_entities", "broker_url"]

logger = logging.getLogger("actors")

T = TypeVar("T")

_OVERFLOW_ARGUMENT: Final = {"drop_head": "drop-head", "reject_publish": "reject-publish",
                             "reject_publish_dlx": "reject-publish-dlx"}


def broker_url(system: ActorSystem, broker: object) -> str:
    """The broker URL that ``broker=`` stands for: the URL itself, or for ``True`` the system's ``broker``.

    Raises :class:`ValueError` for anything else, and for ``True`` in a system that has no broker.
    """
    if broker is True:
        url = system.broker
        if url is None:
            raise ValueError(f"broker=True uses the system's broker, but {system!r} has no broker; open it with "
                             "a broker URL, or pass broker='amqp://user:password@host:5672/vhost'")
        return url
    if isinstance(broker, str) and broker.startswith(("amqp://", "amqps://")):
        return broker
    raise ValueError(f"broker={show(hide_password(broker) if isinstance(broker, str) else broker)} must be an "
                     "amqp:// or amqps:// URL, or True for the system's broker")


def _broker_name(name: str, what: str) -> str:
    """The actor's registered name as the broker's exchange or queue name, or :class:`ValueError`."""
    if name.startswith("$"):
        raise ValueError(f"a broker-backed {what} needs a name: spawn({what.capitalize()}, ..., name=..., "
                         f"broker=...); {name!r} is generated and would change from run to run")
    if name.startswith("amq."):
        raise ValueError(f"{what} name {name!r} starts with 'amq.', which RabbitMQ reserves for itself")
    validate_key(name, what=f"{what} name")
    return name


# --- what the system keeps across restarts ------------------------------------------------------------------


@attrs.frozen
class _Entity:
    """A broker-backed exchange or queue, as other broker-backed actors of the system find it."""

    kind: str
    """``"exchange"`` or ``"queue"``."""
    name: str
    """Its name on the broker."""
    url: str
    """The broker's URL."""


@attrs.define(eq=False)
class _ExchangeKept:
    """What a broker-backed exchange keeps in the system across restarts."""

    table: RoutingTable[ActorRef]
    """The bindings made through it (the broker holds the real ones): to validate, count, and bind again
    the actors that get deliveries through a private queue."""
    actor_bindings: dict[ActorRef, list[Bind]] = attrs.field(factory=dict)
    published: int = 0
    unroutable: int = 0


@attrs.define(eq=False)
class _QueueKept:
    """What a broker-backed queue keeps in the system across restarts."""

    subscriptions: dict[ActorRef, Subscribe] = attrs.field(factory=dict)
    next_tag: int = 1
    published: int = 0
    refused: int = 0
    delivered: int = 0
    redelivered: int = 0
    acked: int = 0
    dead_lettered: int = 0


@attrs.define(eq=False)
class _Directory:
    """The system's broker-backed exchanges and queues, by ref."""

    entities: dict[ActorRef, _Entity] = attrs.field(factory=dict)
    exchanges: dict[ActorRef, _ExchangeKept] = attrs.field(factory=dict)
    queues: dict[ActorRef, _QueueKept] = attrs.field(factory=dict)

    def entity(self, ref: ActorRef, kind: str, what: str, url: str) -> _Entity:
        """The broker-backed ``kind`` behind ``ref`` on the broker at ``url``, or :class:`ValueError`."""
        entity = self.entities.get(ref)
        if entity is None or entity.kind != kind:
            raise ValueError(f"{what} {ref!r} must be a broker-backed {kind} (spawned with broker=...)")
        if entity.url != url:
            raise ValueError(f"{what} {ref!r} is on {hide_password(entity.url)}, not on {hide_password(url)}")
        return entity


def _directory(system: Any) -> _Directory:
    return system.extension(_Directory, _Directory)  # type: ignore[no-any-return]


def broker_entities(system: ActorSystem) -> dict[ActorRef, _Entity]:
    """The system's broker-backed exchanges and queues (a kind, a name, a URL each), by ref."""
    return _directory(system).entities


# --- the common part ----------------------------------------------------------------------------------------


class _BrokerActor(Actor):
    """What both broker-backed actors do: hold the link and a channel for methods, translate refusals."""

    _url: str
    _name: str
    _link: BrokerLink | None
    _control: Channel | None

    _tx: Channel | None

    def _init_broker(self, broker: object) -> None:
        self._url = broker_url(self.system, broker)
        self._name = ""
        self._link = None
        self._control = None
        self._tx = None

    async def _open_link(self) -> BrokerLink:
        self._link = await broker_link(self.system, self._url)
        return self._link

    async def _call(self, what: str, method: Callable[[Channel], Awaitable[T]]) -> T:
        """Run ``method`` on this actor's channel for methods (opened again if the broker closed it).

        A refusal for lack of permission becomes :class:`NotAuthorized` naming the user, the virtual host and
        ``what`` was refused.
        """
        link = self._link
        assert link is not None
        try:
            channel = self._control
            if channel is None or not channel.statistics().open:
                channel = self._control = await link.channel()
            return await method(channel)
        except AccessRefused as exc:
            raise link.refused(exc, what) from exc

    async def _close_link(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        control, self._control = self._control, None
        tx, self._tx = self._tx, None
        try:
            for channel in (control, tx):
                if channel is not None:
                    await channel.close()
        finally:
            link.release()

    async def _publish_batch(self, batch: PublishBatch) -> Any:
        """A transaction's batch, published all or nothing in one AMQP transaction (``tx.select`` once on a
        channel of this actor's, the publishes, ``tx.commit``); answers how many messages reached a queue.

        Every entry is checked and encoded first: one that is bad refuses the whole batch with its error and
        nothing is published. A commit that fails publishes nothing, except as RabbitMQ allows: a queue that
        refuses its message (full, ``overflow="reject_publish"``) fails the commit and the other queues keep
        theirs ("partial tx completion"), which raises :class:`ValueError` saying so. A connection lost before
        the commit loses the whole batch (:class:`~runtime.amqp.ConnectionLost`); lost while the commit is under
        way, it may or may not have been committed. Cancelled midway, the channel is closed, which drops what
        was not committed.
        """
        try:
            messages = self._batch_messages(batch)
        except (ValueError, SerializationError) as exc:
            return Reply.error(exc)
        link = self._link
        assert link is not None
        try:
            channel = self._tx
            if channel is None or not channel.statistics().open:
                channel = self._tx = await link.channel()
                await channel.tx_select()
            for exchange, routing_key, body, properties in messages:
                await channel.basic_publish(exchange, routing_key, body, properties=properties, mandatory=True)
            returned = await channel.tx_commit()
        except AccessRefused as exc:
            return Reply.error(_refused_as_error(link, exc, "publish the transaction's batch"))
        except PreconditionFailed as exc:
            if "partial tx completion" not in exc.reply_text:
                return Reply.error(exc)
            error = ValueError(f"a queue refused a message of {show(batch)} (full, with overflow='reject_publish'): "
                               "the broker committed the other messages of the batch (RabbitMQ's transactions "
                               "do not take back what other queues took)")
            error.__cause__ = exc
            return Reply.error(error)
        except AMQPError as exc:
            return Reply.error(exc)
        except BaseException:
            tx, self._tx = self._tx, None
            if tx is not None:
                with trio.CancelScope(shield=True):
                    await tx.close()  # the broker drops what this channel did not commit
            raise
        return len(messages) - returned

    @staticmethod
    def _encode(publish: Publish, target: object, what: str = "Publish") -> tuple[bytes, Any]:
        """``publish``'s body and AMQP properties for ``target``: :class:`ValueError` if it is malformed,
        :class:`SerializationError` if its body cannot travel, each naming ``what`` it is."""
        error = publish_error(publish, what)
        if error is not None:
            raise error
        try:
            body, content_type = encode_body(publish.body)
            return body, amqp_properties(content_type, publish.headers, persistent=publish.persistent,
                                         ttl=publish.ttl)
        except SerializationError as exc:
            where = "" if what == "Publish" else f"{what}: "
            raise SerializationError(f"{where}{show(publish)} to {target!r}: {exc}") from exc

    def _batch_messages(self, batch: PublishBatch) -> list[tuple[str, str, bytes, Any]]:
        """The batch's messages as (exchange, routing key, body, properties), each checked and encoded; or
        :class:`ValueError` or :class:`SerializationError` naming the first bad entry."""
        entries: object = batch.entries
        if not isinstance(entries, tuple | list):
            raise ValueError(f"PublishBatch entries {show(entries)} must be a tuple of (target, Publish) pairs")
        directory = _directory(self.system)
        messages = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, tuple | list) or len(entry) != 2:
                raise ValueError(f"PublishBatch entry {index} {show(entry)} must be a (target, Publish) pair")
            target, publish = entry
            check_ref(f"PublishBatch entry {index}: target", target)
            body, properties = self._encode(publish, target, f"PublishBatch entry {index}")
            entity = directory.entities.get(target)
            if entity is None or entity.url != self._url or target.is_stopped:
                raise ValueError(f"PublishBatch entry {index}: target {target!r} must be a running broker-backed "
                                 f"Exchange or Queue on {hide_password(self._url)}: a batch is one transaction on "
                                 "one broker")
            if entity.kind == "exchange":
                messages.append((entity.name, publish.routing_key, body, properties))
            else:  # to a queue: through the default exchange, under its name, as a Publish to it goes
                messages.append(("", entity.name, body, properties))
        return messages


def _refused_as_error(link: BrokerLink, error: BaseException, what: str) -> BaseException:
    if isinstance(error, AccessRefused):
        refused = link.refused(error, what)
        refused.__cause__ = error
        return refused
    return error


# --- the exchange -------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class _ActorRoute:
    """A plain actor bound to a broker-backed exchange: a private queue of its own, consumed for it."""

    consumer: Consumer
    channel: Channel
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


class BrokerExchange(_BrokerActor):
    """The RabbitMQ exchange behind ``spawn(Exchange, kind, name=..., broker=URL or True, durable=False)``.

    The exchange is declared on the broker under the actor's name with ``kind`` (and ``alternate``, which must
    be a broker-backed exchange on the same broker, as its ``alternate-exchange``), durable if ``durable``. It
    takes the embedded exchange's messages:

    - :class:`~actors.Bind` / :class:`~actors.Unbind` a broker-backed queue (``queue.bind``), or any other actor,
      which then receives :class:`~actors.Delivery` values through a private, exclusive queue of its own (as a
      consumer with ``auto_ack``; deleted when it is unbound or stops). Binding an embedded queue or exchange, or
      another broker-backed exchange, is refused with :class:`ValueError`. Keys and arguments are checked as the
      embedded exchange checks them; the answer is ``True`` for a binding new to this actor.
    - :class:`~actors.Publish`: published with publisher confirms. An ask answers once the broker confirmed: 1
      if the message reached at least one queue, 0 if it reached none (the publish is always ``mandatory`` on
      the wire, so the broker says so) or a queue refused it (a nack: ``overflow="reject_publish"``). With
      ``mandatory=True`` and no queue, an ask raises :class:`~actors.Unroutable` and a tell sends
      :class:`~actors.Returned` to the sender. The body is encoded by type (``bytes`` as is, ``str`` as UTF-8,
      anything else as JSON; :class:`~actors.SerializationError` naming a value JSON cannot encode); headers
      named like AMQP properties (``correlation_id``, ``reply_to``, ``message_id``, ``timestamp``, ``app_id``,
      ...) set those properties, the others go in the headers table. Publishes keep their order and do not wait
      for each other's confirms.
    - :class:`~actors.PublishBatch` (what ``transaction(system)`` sends): every entry, to broker-backed exchanges
      and queues on the same broker, published in one AMQP transaction, all or nothing (see
      :class:`~actors.Transaction`); an ask answers how many messages reached a queue.
    - :class:`~actors.GetStatistics`: an :class:`~actors.ExchangeStatistics` of what went through this actor.

    A publish the broker refuses for lack of permission fails with :class:`~actors.NotAuthorized` naming the
    user, the virtual host and the exchange; so does a declaration (the spawn fails with it as the cause).
    The exchange is not deleted when the actor stops: it is the broker's, and other nodes may use it.
    """

    def __init__(self, kind: str, *, alternate: ActorRef | None = None, broker: str | bool = True,
                 durable: bool = False) -> None:
        self._table: RoutingTable[ActorRef] = make_table(kind)
        self._alternate = check_ref("alternate", alternate, optional=True)
        if durable.__class__ is not bool:
            raise ValueError(f"durable={show(durable)} must be True or False")
        self._durable = durable
        self._init_broker(broker)
        self._publisher: Publisher | None = None
        self._kept: _ExchangeKept | None = None
        self._routes: dict[ActorRef, _ActorRoute] = {}

    @property
    def kind(self) -> str:
        """The exchange kind."""
        return self._table.kind

    async def on_start(self) -> None:
        name = self._name = _broker_name(self.ref.name, "exchange")
        directory = _directory(self.system)
        arguments: dict[str, Any] | None = None
        if self._alternate is not None:
            alternate = directory.entity(self._alternate, "exchange", "alternate", self._url)
            arguments = {"alternate-exchange": alternate.name}
        link = await self._open_link()
        try:
            await self._call(f"declare exchange {name!r}", lambda channel: channel.exchange_declare(
                name, self._table.kind, durable=self._durable, arguments=arguments))
            self._publisher = Publisher(link, f"exchange {name!r}")
            await self._publisher.start()
            kept = directory.exchanges.get(self.ref)
            if kept is None or kept.table.kind != self._table.kind:
                kept = directory.exchanges[self.ref] = _ExchangeKept(self._table)
            self._kept = kept
            directory.entities[self.ref] = _Entity("exchange", name, self._url)
            for actor, binds in list(kept.actor_bindings.items()):  # after a restart: the actors' queues again
                if actor.is_stopped:
                    self._forget_actor(actor)
                    continue
                for bind in binds:
                    await self._bind_actor(actor, bind.routing_key, check_table(bind.arguments, 'Bind arguments'))
                self.watch(actor)
        except BaseException:
            await self._shut()
            raise

    async def on_stop(self) -> None:
        await self._shut()

    async def _shut(self) -> None:
        with trio.CancelScope(shield=True):
            for route in self._routes.values():
                route.scope.cancel()
                await route.channel.close()  # its exclusive, auto-delete queue goes with its consumer
            self._routes.clear()
            if self._publisher is not None:
                await self._publisher.aclose()
            await self._close_link()

    async def receive(self, message: Any) -> Any:
        """Handle one message; see the class docstring."""
        cls = message.__class__
        if cls is Publish:
            return self._publish(message)
        if cls is PublishBatch:
            return await self._publish_batch(message)
        if cls is Bind:
            return await self._bind(message)
        if cls is Unbind:
            return await self._unbind(message)
        if cls is Terminated:
            await self._drop_actor(message.ref)
            return None
        if cls is GetStatistics:
            return self.statistics()
        return Reply.error(ValueError(
            f"{self!r} does not understand {show(message)}; send it Bind, Unbind, Publish, PublishBatch or "
            "GetStatistics"))

    # -- publishing ----------------------------------------------------------------------------------------

    def _publish(self, publish: Publish) -> Any:
        try:
            body, properties = self._encode(publish, self)
        except (ValueError, SerializationError) as exc:
            return Reply.error(exc)
        kept = self._kept
        publisher = self._publisher
        assert kept is not None
        assert publisher is not None
        kept.published += 1
        sender = self.sender
        reply = self.defer_reply() if isinstance(sender, ReplyRef) else None
        publisher.publish(self._name, publish.routing_key, body, properties,
                          functools.partial(self._confirmed, publish, reply, sender, self.ref, self.system))
        return None

    def _confirmed(self, publish: Publish, reply: ActorRef | None, sender: ActorRef | None, ref: ActorRef,
                   system: Any, outcome: PublishOutcome | BaseException) -> None:
        """The broker's answer to a publish (called from the publisher's task, not in this actor's turn)."""
        assert self._kept is not None
        if isinstance(outcome, BaseException):
            if isinstance(reply, ReplyRef):
                reply.fail(outcome)
            else:
                logger.warning("%r: %r was not published: %s", self, publish, outcome)
                system.dead_letter(publish, sender, ref, f"not published: {outcome}")
            return
        if outcome is PublishOutcome.ROUTED:
            if reply is not None:
                reply.tell(1)
            return
        if outcome is PublishOutcome.UNROUTABLE:
            self._kept.unroutable += 1
            if publish.mandatory:
                if isinstance(reply, ReplyRef):
                    reply.fail(Unroutable(f"{show(publish)} published to {self!r} reached no queue "
                                          "(alternates included)"))
                elif sender is not None:
                    sender.tell(Returned(publish))
                else:
                    system.dead_letter(publish, None, ref, "unroutable")
                return
        elif reply is None:  # refused by a queue (a nack), told: nobody else hears of it
            system.dead_letter(publish, sender, ref, "refused: a queue it reached refused it (the broker nacked it)")
        if reply is not None:
            reply.tell(0)

    # -- bindings ------------------------------------------------------------------------------------------

    def _destination(self, destination: ActorRef, what: str) -> _Entity | None:
        """The broker-backed queue or exchange ``destination`` is, ``None`` for a plain actor; :class:`ValueError`
        else."""
        entity = _directory(self.system).entities.get(destination)
        if entity is not None:
            if entity.url != self._url:
                raise ValueError(f"{what} {destination!r} is on {hide_password(entity.url)}, not on "
                                 f"{hide_password(self._url)}")
            return entity
        if topology(self.system).kinds.get(destination) is not None:
            raise ValueError(f"{what} {destination!r} is an embedded exchange or queue, which cannot take "
                             f"messages from the broker-backed {self!r}; spawn it with broker=... too")
        return None

    def _checked_binding(self, message: Bind | Unbind) -> tuple[_Entity | None, dict[str, Any] | None]:
        """The broker entity a (un)binding's destination is (``None`` for a plain actor) and its arguments as the
        broker takes them; :class:`ValueError` or :class:`SerializationError` naming what is wrong."""
        what = type(message).__name__
        check_ref(f"{what} destination", message.destination)
        entity = self._destination(message.destination, f"{what} destination")
        return entity, check_table(message.arguments, f"{what} arguments for {message.destination!r}")

    async def _bind(self, message: Bind) -> Any:
        kept = self._kept
        assert kept is not None
        destination = message.destination
        try:
            entity, arguments = self._checked_binding(message)
            new = kept.table.bind(message.routing_key, message.arguments, destination)
        except (ValueError, SerializationError) as exc:
            return Reply.error(exc)
        try:
            if entity is not None:
                await self._bind_entity(entity, message.routing_key, arguments, bind=True)
            else:
                await self._bind_actor(destination, message.routing_key, arguments)
                if new:
                    kept.actor_bindings.setdefault(destination, []).append(message)
                    self.watch(destination)
        except (AMQPError, NotAuthorized) as exc:
            if new:
                kept.table.unbind(message.routing_key, message.arguments, destination)
            return Reply.error(exc)
        return new

    async def _bind_entity(self, entity: _Entity, routing_key: str, arguments: dict[str, Any] | None, *,
                           bind: bool) -> None:
        """Bind the broker's queue or exchange ``entity`` to this exchange (or, ``bind=False``, unbind it)."""
        operation: Callable[..., Awaitable[None]]
        if entity.kind == "exchange":
            operation = Channel.exchange_bind if bind else Channel.exchange_unbind
        else:
            operation = Channel.queue_bind if bind else Channel.queue_unbind
        what = f"{'bind' if bind else 'unbind'} {entity.kind} {entity.name!r} {'to' if bind else 'from'} exchange"
        await self._call(f"{what} {self._name!r}",
                         lambda channel: operation(channel, entity.name, self._name, routing_key, arguments=arguments))

    async def _bind_actor(self, actor: ActorRef, routing_key: str, arguments: dict[str, Any] | None) -> None:
        route = self._routes.get(actor)
        link = self._link
        assert link is not None
        if route is None:
            channel = await link.channel()
            try:
                declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
                consumer = await channel.basic_consume(declared.queue, no_ack=True)
            except BaseException:
                await channel.close()
                raise
            route = self._routes[actor] = _ActorRoute(consumer, channel)
            link.start_soon(self._pump, route, actor, self.system)
        queue = route.consumer.queue
        await self._call(f"bind a queue to exchange {self._name!r}",
                         lambda channel: channel.queue_bind(queue, self._name, routing_key, arguments=arguments))

    async def _pump(self, route: _ActorRoute, actor: ActorRef, system: Any) -> None:
        """Tell ``actor`` what its private queue receives, in order, waiting for room in its mailbox."""
        with route.scope:
            try:
                async for incoming in route.consumer:
                    delivery = _delivery(incoming, system, actor)
                    if delivery is not None:
                        await actor.send(delivery)
            except ActorStopped:
                pass  # its Terminated unbinds it
            except AMQPError as exc:
                logger.warning("%r: deliveries to %r stopped: %s", self, actor, exc)

    async def _unbind(self, message: Unbind) -> Any:
        kept = self._kept
        assert kept is not None
        destination = message.destination
        try:
            entity, arguments = self._checked_binding(message)
            removed = kept.table.unbind(message.routing_key, message.arguments, destination)
        except (ValueError, SerializationError) as exc:
            return Reply.error(exc)
        try:
            if entity is not None:
                await self._bind_entity(entity, message.routing_key, arguments, bind=False)
            elif removed:
                binds = kept.actor_bindings.get(destination, [])
                binds[:] = [bind for bind in binds if (bind.routing_key, bind.arguments) !=
                            (message.routing_key, message.arguments)]
                route = self._routes.get(destination)
                if not binds:
                    await self._drop_actor(destination)
                elif route is not None:
                    queue = route.consumer.queue
                    await self._call(f"unbind a queue from exchange {self._name!r}",
                                     lambda channel: channel.queue_unbind(queue, self._name, message.routing_key,
                                                                          arguments=arguments))
        except (AMQPError, NotAuthorized) as exc:
            return Reply.error(exc)
        return removed

    async def _drop_actor(self, actor: ActorRef) -> None:
        """Forget every binding of ``actor`` and delete its private queue."""
        self._forget_actor(actor)
        if actor != self.ref:
            self.unwatch(actor)
        route = self._routes.pop(actor, None)
        if route is not None:
            route.scope.cancel()
            await route.channel.close()

    def _forget_actor(self, actor: ActorRef) -> None:
        kept = self._kept
        assert kept is not None
        kept.table.remove_destination(actor)
        kept.actor_bindings.pop(actor, None)

    # -- figures -------------------------------------------------------------------------------------------

    def statistics(self) -> ExchangeStatistics:
        """A frozen snapshot of what went through this exchange actor (the broker routes what others publish
        to the exchange too, uncounted here)."""
        kept = self._kept
        if kept is None:
            return ExchangeStatistics(kind=self._table.kind, bindings=0, destinations=0, published=0,
                                      unroutable=0)
        return ExchangeStatistics(kind=kept.table.kind, bindings=len(kept.table),
                                  destinations=len(kept.table.destinations()), published=kept.published,
                                  unroutable=kept.unroutable)

    def __repr__(self) -> str:
        kept = self._kept
        published = 0 if kept is None else kept.published
        return (f"<Exchange {self._name or 'not started'!r} {self._table.kind} on {hide_password(self._url)} "
                f"published={published}>")


def _delivery(incoming: AMQPDelivery, system: Any, recipient: ActorRef, tag: int | None = None,
              queue: ActorRef | None = None) -> Delivery | None:
    """The :class:`Delivery` of a message from the broker, its body decoded; ``None`` (and a dead letter
    naming why) for a body that is not what its content type says."""
    properties = incoming.properties
    try:
        body = decode_body(incoming.body, properties.content_type, properties.content_encoding)
    except SerializationError as exc:
        logger.warning("a message from exchange %r with key %r cannot be decoded for %r: %s", incoming.exchange,
                       incoming.routing_key, recipient, exc)
        system.dead_letter(incoming.body, None, recipient, f"undecodable: {exc}")
        return None
    return Delivery(incoming.exchange, incoming.routing_key, body, delivery_headers(properties),
                    incoming.redelivered, tag, queue=queue)


# --- the queue ----------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class _Subscription:
    """A consumer of a broker-backed queue: a channel of its own (so its prefetch and its unacked deliveries
    are its own), the AMQP consumer, and the task that tells it the deliveries."""

    consumer: ActorRef
    channel: Channel
    amqp: Consumer | None = None
    auto_ack: bool = False
    scopes: list[trio.CancelScope] = attrs.field(factory=list)
    """One per task that told it deliveries (a subscription made again starts another)."""

    def cancel(self) -> None:
        """Stop telling the consumer anything."""
        for scope in self.scopes:
            scope.cancel()


class BrokerQueue(_BrokerActor):
    """The RabbitMQ queue behind ``spawn(Queue, name=..., broker=URL or True, durable=False, ...)``.

    Declared on the broker under the actor's name: a quorum queue when ``durable`` (durable, replicated, with
    ``delivery_limit``), a classic non-durable one otherwise. The keywords become the queue's arguments, and
    the broker applies them: ``max_length`` (``x-max-length``), ``max_length_bytes``, ``overflow`` (``x-overflow``;
    quorum queues do not support ``"reject_publish_dlx"``), ``message_ttl`` (``x-message-ttl``, seconds rounded
    up to whole milliseconds), ``dead_letter_exchange`` (a broker-backed exchange's ref, or an exchange name as a
    str; ``x-dead-letter-exchange``), ``dead_letter_routing_key``, ``delivery_limit`` (``x-delivery-limit``;
    needs ``durable=True``). ``storage=`` does not apply: the broker stores the messages. Declaring it again with
    other arguments fails the spawn (the broker's ``PreconditionFailed``).

    Messages, as for the embedded queue: :class:`~actors.Publish` sent to it (published to the default exchange
    under the queue's name, so deliveries show the exchange ``""`` and the queue's name as routing key; an ask
    answers 1, or 0 if the queue refused it); :class:`~actors.PublishBatch`, as a broker-backed exchange takes
    it; :class:`~actors.Subscribe` (each consumer gets a channel of its
    own with ``prefetch`` as its limit; subscribing again changes the settings), :class:`~actors.Unsubscribe`,
    :class:`~actors.Get`, and the settlements ``delivery.ack()``, ``nack(requeue=...)`` and ``reject()`` send
    (an unknown tag is refused with :class:`ValueError`). A consumer that stops has its channel closed, and the
    broker requeues what it held unacked (``redelivered=True`` when delivered again). Consumers stay subscribed
    across a restart of the queue (their unacked deliveries are requeued). Bodies are decoded by content type.

    :class:`~actors.GetStatistics` answers a :class:`~actors.QueueStatistics` whose ``ready`` and ``consumers``
    are the broker's, and whose other figures count what went through this actor (``dead_lettered``: the
    deliveries it rejected; the broker's own expiries and drops are not seen here).

    The queue is not deleted when the actor stops: it is the broker's, and other nodes may use it.
    """

    def __init__(self, *, max_length: int | None = None, overflow: str = "drop_head",
                 message_ttl: float | None = None, dead_letter_exchange: ActorRef | str | None = None,
                 dead_letter_routing_key: str | None = None, delivery_limit: int | None = None,
                 durable: bool = False, storage: object = None, max_length_bytes: int | None = None,
                 broker: str | bool = True) -> None:
        max_length = check_count("max_length", max_length)
        max_length_bytes = check_count("max_length_bytes", max_length_bytes)
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow={show(overflow)} is not a policy; use 'drop_head', 'reject_publish' or "
                             "'reject_publish_dlx'")
        ttl = check_ttl("message_ttl", message_ttl)
        if dead_letter_exchange is not None and not isinstance(dead_letter_exchange, str):
            check_ref("dead_letter_exchange", dead_letter_exchange)
        if dead_letter_routing_key is not None:
            validate_key(dead_letter_routing_key, what="dead_letter_routing_key")
            if dead_letter_exchange is None:
                raise ValueError(f"dead_letter_routing_key={dead_letter_routing_key!r} needs a "
                                 "dead_letter_exchange too")
        delivery_limit = check_count("delivery_limit", delivery_limit)
        if durable.__class__ is not bool:
            raise ValueError(f"durable={show(durable)} must be True or False")
        if storage is not None:
            raise ValueError(f"storage={show(storage)} does not apply to a broker-backed queue: the broker stores "
                             "its messages (durable=True makes it a quorum queue)")
        if delivery_limit is not None and not durable:
            raise ValueError(f"delivery_limit={delivery_limit} needs durable=True: RabbitMQ counts deliveries on "
                             "quorum queues only")
        if durable and overflow == "reject_publish_dlx":
            raise ValueError("overflow='reject_publish_dlx' is not supported by quorum queues (durable=True); use "
                             "'reject_publish' or 'drop_head'")
        self._durable = durable
        self._dlx = dead_letter_exchange
        arguments: dict[str, Any] = {}
        if durable:
            arguments["x-queue-type"] = "quorum"
        if max_length is not None:
            arguments["x-max-length"] = max_length
        if max_length_bytes is not None:
            arguments["x-max-length-bytes"] = max_length_bytes
        if overflow != "drop_head":
            arguments["x-overflow"] = _OVERFLOW_ARGUMENT[overflow]
        if ttl is not None:
            arguments["x-message-ttl"] = math.ceil(ttl * 1000)
        if dead_letter_routing_key is not None:
            arguments["x-dead-letter-routing-key"] = dead_letter_routing_key
        if delivery_limit is not None:
            arguments["x-delivery-limit"] = delivery_limit
        self._arguments = arguments
        self._init_broker(broker)
        self._publisher: Publisher | None = None
        self._kept: _QueueKept | None = None
        self._subscriptions: dict[ActorRef, _Subscription] = {}
        self._unsettled: dict[int, tuple[AMQPDelivery, ActorRef | None]] = {}
        """Deliveries to settle, by this queue's tag: the broker's delivery and its consumer (``None``: a Get)."""
        self._gets: Channel | None = None
        self._ready = 0
        self._consumers = 0

    async def on_start(self) -> None:
        name = self._name = _broker_name(self.ref.name, "queue")
        directory = _directory(self.system)
        arguments = dict(self._arguments)
        dlx = self._dlx
        if dlx is not None:
            arguments["x-dead-letter-exchange"] = (
                dlx if isinstance(dlx, str)
                else directory.entity(dlx, "exchange", "dead_letter_exchange", self._url).name)
        link = await self._open_link()
        try:
            declared = await self._call(f"declare queue {name!r}", lambda channel: channel.queue_declare(
                name, durable=self._durable, arguments=arguments))
            self._ready, self._consumers = declared.message_count, declared.consumer_count
            self._publisher = Publisher(link, f"queue {name!r}")
            await self._publisher.start()
            kept = self._kept = directory.queues.setdefault(self.ref, _QueueKept())
            directory.entities[self.ref] = _Entity("queue", name, self._url)
            for consumer, subscribe in list(kept.subscriptions.items()):  # after a restart: subscribe them again
                if consumer.is_stopped:
                    del kept.subscriptions[consumer]
                    continue
                await self._subscribe_on_broker(subscribe)
                self.watch(consumer)
        except BaseException:
            await self._shut()
            raise

    async def on_stop(self) -> None:
        await self._shut()

    async def _shut(self) -> None:
        with trio.CancelScope(shield=True):
            for subscription in self._subscriptions.values():
                subscription.cancel()
                await subscription.channel.close()  # the broker requeues what it held unacked
            self._subscriptions.clear()
            self._unsettled.clear()
            if self._gets is not None:
                await self._gets.close()
            if self._publisher is not None:
                await self._publisher.aclose()
            await self._close_link()

    async def receive(self, message: Any) -> Any:
        """Handle one message; see the class docstring."""
        cls = message.__class__
        if cls is Ack or cls is Nack or cls is Reject:
            return self._settle(message)
        if cls is Publish:
            return self._publish(message)
        if cls is PublishBatch:
            return await self._publish_batch(message)
        if cls is Subscribe:
            return await self._subscribe(message)
        if cls is Unsubscribe:
            return await self._unsubscribe(message)
        if cls is Get:
            return await self._get(message)
        if cls is Terminated:
            await self._drop_consumer(message.ref)
            return None
        if cls is GetStatistics:
            return await self._statistics()
        return Reply.error(ValueError(
            f"{self!r} does not understand {show(message)}; send it Publish, PublishBatch, Get, Subscribe, "
            "Unsubscribe, Ack, Nack, Reject or GetStatistics"))

    # -- publishing ----------------------------------------------------------------------------------------

    def _publish(self, publish: Publish) -> Any:
        try:
            body, properties = self._encode(publish, self)
        except (ValueError, SerializationError) as exc:
            return Reply.error(exc)
        publisher = self._publisher
        assert publisher is not None
        sender = self.sender
        reply = self.defer_reply() if isinstance(sender, ReplyRef) else None
        publisher.publish("", self._name, body, properties,
                          functools.partial(self._confirmed, publish, reply, sender, self.ref, self.system))
        return None

    def _confirmed(self, publish: Publish, reply: ActorRef | None, sender: ActorRef | None, ref: ActorRef,
                   system: Any, outcome: PublishOutcome | BaseException) -> None:
        """The broker's answer to a publish (called from the publisher's task, not in this actor's turn)."""
        kept = self._kept
        assert kept is not None
        if isinstance(outcome, BaseException):
            if isinstance(reply, ReplyRef):
                reply.fail(outcome)
            else:
                logger.warning("%r: %r was not published: %s", self, publish, outcome)
                system.dead_letter(publish, sender, ref, f"not published: {outcome}")
            return
        accepted = outcome is PublishOutcome.ROUTED
        if accepted:
            kept.published += 1
        else:
            kept.refused += 1
        if reply is not None:
            reply.tell(1 if accepted else 0)
        elif not accepted:
            system.dead_letter(publish, sender, ref, f"refused: {self!r} did not take it ({outcome.value})")

    # -- consumers -----------------------------------------------------------------------------------------

    async def _subscribe(self, message: Subscribe) -> Any:
        try:
            ref = check_subscribe(message)
        except ValueError as exc:
            return Reply.error(exc)
        assert self._kept is not None
        try:
            await self._subscribe_on_broker(message)
        except (AMQPError, NotAuthorized) as exc:
            return Reply.error(exc)
        self._kept.subscriptions[ref] = message
        if ref != self.ref:
            self.watch(ref)
        return None

    async def _subscribe_on_broker(self, message: Subscribe) -> None:
        link = self._link
        assert link is not None
        consumer = message.consumer
        subscription = self._subscriptions.get(consumer)
        if subscription is None:
            channel = await link.channel()
            subscription = self._subscriptions[consumer] = _Subscription(consumer, channel)
        old = subscription.amqp
        channel = subscription.channel
        try:
            await channel.basic_qos(message.prefetch)
            subscription.amqp = await channel.basic_consume(self._name, no_ack=message.auto_ack)
        except AccessRefused as exc:
            raise link.refused(exc, f"consume from queue {self._name!r}") from exc
        subscription.auto_ack = message.auto_ack
        await link.start(self._pump, subscription, subscription.amqp, self.system)
        if old is not None:
            await old.cancel()  # what it delivered unacked stays settleable on the same channel

    async def _pump(self, subscription: _Subscription, amqp: Consumer, system: Any,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tell the consumer what the broker delivers to ``amqp``, in order, waiting for room in its mailbox."""
        kept = self._kept
        assert kept is not None
        consumer, ref = subscription.consumer, self.ref
        with trio.CancelScope() as scope:
            subscription.scopes.append(scope)
            task_status.started()
            try:
                async for incoming in amqp:
                    tag = kept.next_tag
                    kept.next_tag += 1
                    kept.delivered += 1
                    if incoming.redelivered:
                        kept.redelivered += 1
                    if amqp.no_ack:
                        kept.acked += 1
                    else:
                        self._unsettled[tag] = (incoming, consumer)
                    delivery = _delivery(incoming, system, consumer, tag, ref)
                    if delivery is None:  # undecodable: dead-lettered by the broker (rejected), never retried
                        if self._unsettled.pop(tag, None) is not None:
                            incoming.nack(requeue=False)
                            kept.dead_lettered += 1
                        continue
                    await consumer.send(delivery)
            except ActorStopped:
                pass  # its Terminated closes its channel: the broker requeues what it held
            except AMQPError as exc:
                logger.warning("%r: deliveries to %r stopped: %s", self, consumer, exc)

    async def _unsubscribe(self, message: Unsubscribe) -> Any:
        try:
            ref = check_ref("Unsubscribe consumer", message.consumer)
        except ValueError as exc:
            return Reply.error(exc)
        assert ref is not None
        assert self._kept is not None
        self._kept.subscriptions.pop(ref, None)
        subscription = self._subscriptions.get(ref)
        if subscription is not None and subscription.amqp is not None:
            amqp, subscription.amqp = subscription.amqp, None
            try:
                await amqp.cancel()  # its channel stays open: what it holds unacked it may still settle
            except AMQPError as exc:
                return Reply.error(exc)
        return None

    async def _drop_consumer(self, consumer: ActorRef) -> None:
        assert self._kept is not None
        self._kept.subscriptions.pop(consumer, None)
        subscription = self._subscriptions.pop(consumer, None)
        if subscription is None:
            return
        for tag in [tag for tag, (_, owner) in self._unsettled.items() if owner == consumer]:
            del self._unsettled[tag]
        subscription.cancel()
        await subscription.channel.close()  # the broker requeues what it held unacked

    # -- get and settle ------------------------------------------------------------------------------------

    async def _get(self, message: Get) -> Any:
        auto_ack: object = message.auto_ack
        if auto_ack.__class__ is not bool:
            return Reply.error(ValueError(f"Get auto_ack={show(auto_ack)} must be True or False"))
        link, kept = self._link, self._kept
        assert link is not None
        assert kept is not None
        try:
            channel = self._gets
            if channel is None or not channel.statistics().open:
                channel = self._gets = await link.channel()
            incoming = await channel.basic_get(self._name, no_ack=bool(auto_ack))
        except AccessRefused as exc:
            return Reply.error(_refused_as_error(link, exc, f"get from queue {self._name!r}"))
        except AMQPError as exc:
            return Reply.error(exc)
        if incoming is None:
            return None
        tag = kept.next_tag
        kept.next_tag += 1
        kept.delivered += 1
        if incoming.redelivered:
            kept.redelivered += 1
        if auto_ack:
            kept.acked += 1
        else:
            self._unsettled[tag] = (incoming, None)
        delivery = _delivery(incoming, self.system, self.ref, tag, self.ref)
        if delivery is None:
            if self._unsettled.pop(tag, None) is not None:
                incoming.nack(requeue=False)
                kept.dead_lettered += 1
            return Reply.error(SerializationError(
                f"{self!r}: the next message's body is not what its content type {incoming.properties.content_type!r} "
                "says; it was rejected"))
        return delivery

    def _settle(self, message: Ack | Nack | Reject) -> Any:
        kept = self._kept
        assert kept is not None
        found = self._unsettled.pop(message.delivery_tag, None)
        if found is None:
            error = ValueError(
                f"delivery tag {show(message.delivery_tag)} is not outstanding on {self!r}: already settled, never "
                f"delivered, or requeued when its consumer stopped; {message!r} was ignored")
            logger.warning("%s", error)
            return Reply.error(error)
        incoming = found[0]
        try:
            if message.__class__ is Ack:
                incoming.ack()
                kept.acked += 1
            elif message.__class__ is Nack and message.requeue:
                incoming.nack(requeue=True)
            else:
                incoming.nack(requeue=False)
                kept.dead_lettered += 1
        except AMQPError as exc:  # its channel or connection is gone: the broker redelivers it
            logger.warning("%r: %r could not be settled: %s", self, message, exc)
            return Reply.error(exc)
        return None

    # -- figures -------------------------------------------------------------------------------------------

    async def _statistics(self) -> Any:
        try:
            declared = await self._call(f"inspect queue {self._name!r}",
                                        lambda channel: channel.queue_declare(self._name, passive=True))
        except (AMQPError, NotAuthorized) as exc:
            return Reply.error(exc)
        self._ready, self._consumers = declared.message_count, declared.consumer_count
        return self.statistics()

    def statistics(self) -> QueueStatistics:
        """A frozen snapshot: ``ready`` and ``consumers`` as the broker last said (``GetStatistics`` asks it),
        the other figures as counted by this actor."""
        kept = self._kept or _QueueKept()
        return QueueStatistics(ready=self._ready, unacked=len(self._unsettled), consumers=self._consumers,
                               published=kept.published, delivered=kept.delivered, acked=kept.acked,
                               redelivered=kept.redelivered, dead_lettered=kept.dead_lettered,
                               refused=kept.refused)

    def __repr__(self) -> str:
        return (f"<Queue {self._name or 'not started'!r} on {hide_password(self._url)} unacked={len(self._unsettled)} "
                f"consumers={len(self._subscriptions)}>")

