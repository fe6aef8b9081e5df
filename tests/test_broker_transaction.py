"""Transactions and ``PublishBatch`` on broker-backed exchanges and queues: one AMQP transaction on the broker,
committed when the block ends, nothing published when it raises or an entry cannot be encoded; read back by a
consumer of our own on another connection.

Needs the broker of ``scripts/broker`` (skipped without one, failed under ``CI=true``). Names are unique per test
and everything declared is deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import trio
from amqp_support import broker as broker

from actors import ActorRef, ActorSystem, Bind, Exchange, Publish, PublishBatch, Queue, SerializationError, transaction
from runtime.amqp import Channel, open_connection

pytestmark = pytest.mark.deadline(30)


@pytest.fixture
async def prefix(broker: str) -> AsyncIterator[str]:
    made = f"test.btx.{uuid.uuid4().hex[:8]}."
    yield made
    with trio.fail_after(10):
        async with open_connection(broker) as connection, await connection.channel() as channel:
            for queue in ("q1", "q2", "full"):
                await channel.queue_delete(made + queue)
            await channel.exchange_delete(made + "x")


async def setup(system: ActorSystem, broker: str, prefix: str) -> tuple[ActorRef, ActorRef, ActorRef]:
    """A direct exchange ``x`` with queue ``q1`` bound by ``a`` and ``q2`` by ``b``, all on the broker."""
    x = await system.spawn(Exchange, "direct", name=prefix + "x", broker=broker)
    q1 = await system.spawn(Queue, name=prefix + "q1", broker=broker)
    q2 = await system.spawn(Queue, name=prefix + "q2", broker=broker)
    assert await x.ask(Bind(q1, "a"))
    assert await x.ask(Bind(q2, "b"))
    return x, q1, q2


async def bodies(channel: Channel, queue: str) -> list[tuple[bytes, str | None]]:
    """What ``queue`` holds, taken with ``basic_get`` by a client that is not the system: (body, content type)."""
    found = []
    while (delivery := await channel.basic_get(queue, no_ack=True)) is not None:
        found.append((delivery.body, delivery.properties.content_type))
    return found


async def test_a_transaction_on_the_broker_publishes_everything_when_the_block_ends(broker: str,
                                                                                  prefix: str) -> None:
    async with ActorSystem("btx") as system, open_connection(broker) as connection:
        x, q1, q2 = await setup(system, broker, prefix)
        channel = await connection.channel()
        async with transaction(system) as tx:
            tx.publish(x, "a", "one")
            tx.publish(x, "b", {"n": 2})
            tx.publish(q2, "", b"three")  # to a queue itself, through the default exchange
            tx.publish(x, "nowhere", "reaches no queue")
        assert tx.routed == 3  # the messages that reached a queue
        assert await bodies(channel, prefix + "q1") == [(b"one", "text/plain")]
        assert await bodies(channel, prefix + "q2") == [(b'{"n":2}', "application/json"),
                                                        (b"three", "application/octet-stream")]
        assert await q1.ask(PublishBatch(((x, Publish("a", "asked")),))) == 1  # the message itself works too
        assert await bodies(channel, prefix + "q1") == [(b"asked", "text/plain")]


async def test_a_transaction_on_the_broker_publishes_nothing_when_the_block_raises_or_an_entry_is_bad(
        broker: str, prefix: str) -> None:
    async with ActorSystem("btx") as system, open_connection(broker) as connection:
        x, _, q2 = await setup(system, broker, prefix)
        channel = await connection.channel()

        async def abandoned() -> None:
            async with transaction(system) as tx:
                tx.publish(x, "a", "one")
                raise RuntimeError("changed my mind")

        async def unencodable() -> None:
            async with transaction(system) as tx:
                tx.publish(x, "a", "one")
                tx.publish(q2, "", {"not json": object()})

        with pytest.raises(RuntimeError, match="changed my mind"):
            await abandoned()
        with pytest.raises(SerializationError, match=r"PublishBatch entry 1: .* cannot travel through the broker"):
            await unencodable()
        assert await bodies(channel, prefix + "q1") == []
        assert await bodies(channel, prefix + "q2") == []
        async with transaction(system) as tx:  # the exchange goes on
            tx.publish(x, "a", "two")
        assert tx.routed == 1
        assert await bodies(channel, prefix + "q1") == [(b"two", "text/plain")]


async def test_a_transaction_cannot_mix_the_broker_and_the_embedded_router(broker: str, prefix: str) -> None:
    async with ActorSystem("btx") as system:
        x, _, _ = await setup(system, broker, prefix)
        embedded = await system.spawn(Queue, name="embedded")
        async with transaction(system) as tx:
            tx.publish(x, "a", "one")
            with pytest.raises(ValueError, match=r"is embedded, but .* is on the broker amqp://guest:\*\*\*@"):
                tx.publish(embedded, "", "two")
        assert tx.routed == 1
        with pytest.raises(ValueError, match="must be a running broker-backed Exchange or Queue"):
            await x.ask(PublishBatch(((embedded, Publish("", "three")),)))


async def test_a_full_queue_that_rejects_fails_the_commit_and_says_the_others_kept_theirs(broker: str,
                                                                                        prefix: str) -> None:
    """RabbitMQ's limit, stated rather than hidden: its transactions do not take back what other queues took."""
    async with ActorSystem("btx") as system, open_connection(broker) as connection:
        x, q1, _ = await setup(system, broker, prefix)
        full = await system.spawn(Queue, name=prefix + "full", broker=broker, max_length=1,
                                  overflow="reject_publish")
        assert await full.ask(Publish("", "first")) == 1
        channel = await connection.channel()

        async def partly_refused() -> None:
            async with transaction(system) as tx:
                tx.publish(x, "a", "taken")
                tx.publish(full, "", "refused")

        with pytest.raises(ValueError, match="the broker committed the other messages"):
            await partly_refused()
        assert await bodies(channel, prefix + "q1") == [(b"taken", "text/plain")]
        async with transaction(system) as tx:  # a new channel for the next one
            tx.publish(q1, "", "after")
        assert tx.routed == 1
