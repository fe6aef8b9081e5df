"""Transactions: nothing is published before the block ends; then everything, together; on an error, nothing."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    Bind,
    Delivery,
    Exchange,
    Get,
    GetStatistics,
    Publish,
    PublishBatch,
    Queue,
    Subscribe,
    Transaction,
    transaction,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a broken rule fails its test instead of waiting forever


async def setup(system: ActorSystem) -> tuple[ActorRef, ActorRef, ActorRef]:
    """A topic exchange "orders" routing ``orders.#`` to a queue "jobs" and ``#`` to a queue "audit"."""
    exchange = await system.spawn(Exchange, "topic", name="orders")
    jobs = await system.spawn(Queue, name="jobs")
    audit = await system.spawn(Queue, name="audit")
    await exchange.ask(Bind(jobs, "orders.#"))
    await exchange.ask(Bind(audit, "#"))
    return exchange, jobs, audit


async def published(queue: ActorRef) -> int:
    stats = await queue.ask(GetStatistics())
    return int(stats.published)


async def test_nothing_is_published_before_the_block_ends(autojump_clock: MockClock,
                                                          actor_system: ActorSystem) -> None:
    exchange, jobs, audit = await setup(actor_system)
    async with transaction(actor_system) as tx:
        tx.publish(exchange, "orders.new", 1)
        tx.publish(exchange, "orders.paid", 2, {"h": 1})
        tx.publish(exchange, "other", 3)
        await trio.sleep(1)
        await trio.testing.wait_all_tasks_blocked()
        assert await published(jobs) == await published(audit) == 0
    assert tx.routed == 5
    assert await published(jobs) == 2
    assert await published(audit) == 3
    delivery = await jobs.ask(Get(auto_ack=True))
    assert (delivery.exchange, delivery.routing_key, delivery.body) == ("orders", "orders.new", 1)
    assert (await jobs.ask(Get(auto_ack=True))).headers == {"h": 1}


async def test_an_error_in_the_block_publishes_nothing(autojump_clock: MockClock,
                                                       actor_system: ActorSystem) -> None:
    exchange, jobs, audit = await setup(actor_system)
    tx = transaction(actor_system)

    async def failing() -> None:
        async with tx:
            tx.publish(exchange, "orders.new", 1)
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await failing()
    await trio.testing.wait_all_tasks_blocked()
    assert await published(jobs) == await published(audit) == 0
    assert tx.routed is None


async def test_cancellation_in_the_block_publishes_nothing(autojump_clock: MockClock,
                                                           actor_system: ActorSystem) -> None:
    exchange, jobs, _ = await setup(actor_system)
    with trio.move_on_after(1):
        async with transaction(actor_system) as tx:
            tx.publish(exchange, "orders.new", 1)
            await trio.sleep_forever()
    await trio.testing.wait_all_tasks_blocked()
    assert await published(jobs) == 0
    assert tx.routed is None


class Witness(Actor):
    """A consumer that, on its first delivery, asks the queue how many messages it had accepted by then."""

    def __init__(self, queue: ActorRef, report: ActorRef) -> None:
        self.queue = queue
        self.report = report
        self.first = True

    async def receive(self, message: Any) -> None:
        message.ack()
        if self.first:
            self.first = False
            stats = await self.queue.ask(GetStatistics())
            self.report.tell(("published when the first arrived", stats.published))
        self.report.tell(message.body)


async def test_a_consumer_never_sees_part_of_a_batch(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange, jobs, _ = await setup(actor_system)
    report = await Probe.spawn(actor_system)
    witness = await actor_system.spawn(Witness, jobs, report.ref)
    await jobs.ask(Subscribe(witness, prefetch=1))  # one at a time: the rest must already be queued
    async with transaction(actor_system) as tx:
        for n in range(5):
            tx.publish(exchange, "orders.new", n)
    assert await report.expect(tuple) == ("published when the first arrived", 5)
    assert [await report.expect(int) for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_a_batch_spanning_exchanges_and_queues(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange, jobs, audit = await setup(actor_system)
    direct = await actor_system.spawn(Exchange, "direct")
    other = await actor_system.spawn(Queue, name="other")
    probe = await Probe.spawn(actor_system)
    await direct.ask(Bind(other, "x"))
    await direct.ask(Bind(probe.ref, "x"))
    async with transaction(actor_system) as tx:
        tx.publish(jobs, "straight.in", "direct to a queue")
        tx.publish(direct, "x", "via direct")
        tx.publish(exchange, "orders.new", "via topic")
    assert tx.routed == 5  # jobs twice, other, the probe, audit
    assert [d.body for d in [await jobs.ask(Get(auto_ack=True)) for _ in range(2)]] == ["direct to a queue",
                                                                                        "via topic"]
    assert (await other.ask(Get(auto_ack=True))).body == "via direct"
    assert (await probe.expect(Delivery)).body == "via direct"
    assert (await audit.ask(Get(auto_ack=True))).body == "via topic"


async def test_bad_publish_raises_at_once(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange, jobs, _ = await setup(actor_system)
    probe = await Probe.spawn(actor_system)
    async with transaction(actor_system) as tx:
        with pytest.raises(ValueError, match="256 bytes"):
            tx.publish(exchange, "k" * 256, 1)
        with pytest.raises(ValueError, match="must be a running Exchange or Queue"):
            tx.publish(probe.ref, "k", 1)
        with pytest.raises(ValueError, match="mapping"):
            tx.publish(exchange, "k", 1, ["not", "headers"])  # type: ignore[arg-type]
        tx.publish(exchange, "orders.ok", 1)
    assert await published(jobs) == 1
    with pytest.raises(RuntimeError, match="inside its 'async with' block"):
        tx.publish(exchange, "orders.late", 2)


async def test_an_empty_transaction_publishes_nothing(autojump_clock: MockClock,
                                                      actor_system: ActorSystem) -> None:
    async with transaction(actor_system) as tx:
        pass
    assert tx.routed == 0
    with pytest.raises(RuntimeError, match="only once"):
        async with tx:
            pass


async def test_a_batch_with_a_bad_entry_is_refused_whole(autojump_clock: MockClock,
                                                         actor_system: ActorSystem) -> None:
    exchange, jobs, audit = await setup(actor_system)
    batch = PublishBatch(((exchange, Publish("orders.new", 1)), (exchange, Publish("x" * 300, 2))))
    with pytest.raises(ValueError, match="300 bytes"):
        await exchange.ask(batch)
    with pytest.raises(ValueError, match="PublishBatch entry 0"):
        await jobs.ask(PublishBatch((("not a ref", Publish("k", 1)),)))  # type: ignore[arg-type]
    await trio.testing.wait_all_tasks_blocked()
    assert await published(jobs) == await published(audit) == 0


async def test_a_full_queue_refuses_its_share(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "fanout")
    small = await actor_system.spawn(Queue, name="small", max_length=1, overflow="reject_publish")
    await exchange.ask(Bind(small))
    async with transaction(actor_system) as tx:
        tx.publish(exchange, "k", 1)
        tx.publish(exchange, "k", 2)
    assert tx.routed == 1
    stats = await small.ask(GetStatistics())
    assert (stats.published, stats.refused) == (1, 1)


async def test_transaction_of_a_durable_queue_waits_for_storage(actor_system: ActorSystem, tmp_path: Any) -> None:
    exchange = await actor_system.spawn(Exchange, "fanout")
    queue = await actor_system.spawn(Queue, name="stored", durable=True, storage=tmp_path)
    await exchange.ask(Bind(queue))
    with trio.fail_after(10):
        async with transaction(actor_system) as tx:
            for n in range(3):
                tx.publish(exchange, "k", n)
        assert tx.routed == 3
        await actor_system.stop(queue)
        queue = await actor_system.spawn(Queue, name="stored", durable=True, storage=tmp_path)
        stats = await queue.ask(GetStatistics())
    assert stats.ready == 3


def test_transaction_needs_a_system() -> None:
    with pytest.raises(TypeError, match="ActorSystem"):
        transaction("system")  # type: ignore[arg-type]
    assert isinstance(transaction.__doc__, str)
    assert Transaction.__doc__
