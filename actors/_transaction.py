"""Transactions: publish a batch of messages all together, or not at all."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import trio

from runtime import ActorRef, ActorSystem, hide_password, topology

from ._broker_router import broker_entities
from ._router_checks import check_ref, publish_error
from ._router_messages import Publish, PublishBatch

__all__ = ["Transaction", "transaction"]


class Transaction:
    """A batch of publishes that takes effect when its ``async with`` block ends normally.

    ``tx.publish(...)`` only records the message: nothing is published before the block ends. On a normal exit
    the whole batch goes, as one :class:`~actors.PublishBatch` message, to the first exchange it names (or the
    first queue, if it names no exchange), which routes every message in one handler step, then publishes it
    all or nothing, in two phases: every queue reached checks its share and holds room for it, then, once all
    have, enqueues it in one step (so none of its consumers sees part of it) and stores it if durable. Leaving
    the block waits until every queue has confirmed; :attr:`routed` is then the number of copies accepted.

    If a queue refuses its share (full with ``overflow="reject_publish"`` or ``"reject_publish_dlx"``, a body
    that ``max_length_bytes`` cannot measure, or that a durable queue cannot pickle) or has stopped, nothing
    is published anywhere and leaving the block raises that queue's error, naming the message and the queue
    (:class:`ValueError` for a full queue, :class:`~actors.SerializationError` for a body it cannot measure
    or store, :class:`~actors.ActorStopped`). If the block raises (or is cancelled), nothing is published
    and the error propagates.

    Limits: a queue that stops between the two phases loses its share while the others keep theirs (the
    block raises :class:`~actors.ActorStopped` saying so), and a store that fails to write raises
    :class:`~actors.StorageError` after the other queues have enqueued. Cancelling the wait at the end does
    not take back a batch that was already sent.

    Broker-backed exchanges and queues (``broker=...``) take part the same way, all of a transaction's targets
    on one broker (mixing them with embedded ones, or two brokers, is refused by :meth:`publish` with
    :class:`ValueError`): the batch is one AMQP transaction (``tx.select``, the publishes, ``tx.commit``) on a
    channel of the first broker-backed exchange named, so the broker makes the messages visible together at the
    commit, or none of them. An entry whose body or headers cannot travel through the broker refuses the batch
    (:class:`~actors.SerializationError`) before anything is published; :attr:`routed` is the number of
    messages that reached at least one queue (the broker does not say how many copies). RabbitMQ's own limit:
    a full queue with ``overflow="reject_publish"`` fails the commit after the other queues took their
    messages (:class:`ValueError` saying so); and a connection lost while the commit is under way leaves its
    outcome unknown (``ConnectionLost``).
    """

    def __init__(self, system: ActorSystem) -> None:
        if not isinstance(system, ActorSystem):
            raise TypeError(f"transaction() takes an ActorSystem, not {system!r}")
        self._system = system
        self._entries: list[tuple[ActorRef, Publish]] = []
        self._on = ""
        """Where the batch goes: ``""`` for the embedded router, else the broker's URL."""
        self._state = "new"
        self.routed: int | None = None
        """How many copies the queues and actors accepted, once the block has ended normally."""

    def publish(self, exchange: ActorRef, routing_key: str, body: Any, headers: Mapping[str, Any] | None = None,
                *, persistent: bool = False, ttl: float | None = None) -> None:
        """Add a message for ``exchange`` (an ``Exchange`` or a ``Queue``) to the batch. A plain call.

        Raises :class:`ValueError` at once for a bad key, headers or TTL, a target that is not a running
        exchange or queue, or one on another router than the batch's first (embedded or a broker's);
        :class:`RuntimeError` outside the ``async with`` block.
        """
        if self._state != "open":
            raise RuntimeError(f"{self!r}: publish() works only inside its 'async with' block")
        target = check_ref("transaction target", exchange)
        assert target is not None
        where = self._where(target)
        if self._entries and where != self._on:
            first = self._entries[0][0]
            raise ValueError(
                f"transaction target {target!r} is {_describe(where)}, but {first!r} is {_describe(self._on)}: a "
                "transaction publishes through the embedded router or through one broker, not both")
        message = Publish(routing_key, body, headers, persistent=persistent, ttl=ttl)
        error = publish_error(message)
        if error is not None:
            raise error
        self._on = where
        self._entries.append((target, message))

    def _where(self, target: ActorRef) -> str:
        """``""`` for an embedded exchange or queue, the broker's URL for a broker-backed one."""
        if not target.is_stopped:
            if topology(self._system).kind(target) is not None:
                return ""
            entity = broker_entities(self._system).get(target)
            if entity is not None:
                return entity.url
        raise ValueError(f"transaction target {target!r} must be a running Exchange or Queue")

    async def __aenter__(self) -> Transaction:
        if self._state != "new":
            raise RuntimeError(f"{self!r} can be entered only once")
        await trio.lowlevel.checkpoint()
        self._state = "open"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        entries = self._entries
        self._entries = []
        if exc_type is not None:
            self._state = "aborted"
            return
        self._state = "committed"
        if not entries:
            await trio.lowlevel.checkpoint()
            self.routed = 0
            return
        if self._on:
            entities = broker_entities(self._system)
            coordinator = next((target for target, _ in entries if entities[target].kind == "exchange"),
                               entries[0][0])
        else:
            kinds = topology(self._system).kinds
            coordinator = next((target for target, _ in entries if kinds.get(target) == "exchange"), entries[0][0])
        self.routed = await coordinator.ask(PublishBatch(tuple(entries)))

    def __repr__(self) -> str:
        return f"<Transaction {self._state} messages={len(self._entries)} system={self._system.name!r}>"


def _describe(where: str) -> str:
    return f"on the broker {hide_password(where)}" if where else "embedded"


def transaction(system: ActorSystem) -> Transaction:
    """``async with transaction(system) as tx: tx.publish(exchange, routing_key, body)``: see :class:`Transaction`."""
    return Transaction(system)


