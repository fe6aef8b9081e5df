"""Transactions: nothing is published before the block ends; then everything, together; on an error, nothing."""

from __future__ import annotations

import threading
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
    SerializationError,
    Subscribe,
    Transaction,
    transaction,
)
from actors._router_messages import AbortBatch, CommitBatch, Enqueue, PrepareBatch
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


async def commit(tx: Transaction, *entries: tuple[ActorRef, Any]) -> None:
    """Publish each (target, body) on routing key "k" in ``tx``."""
    async with tx:
        for target, body in entries:
            tx.publish(target, "k", body)


async def test_a_queue_that_refuses_part_of_a_batch_refuses_it_all(autojump_clock: MockClock,
                                                                    actor_system: ActorSystem) -> None:
    """All or nothing: a full queue (reject_publish) that can take 3 of 5 makes the whole batch fail."""
    exchange = await actor_system.spawn(Exchange, "fanout")
    big = await actor_system.spawn(Queue, name="big")
    small = await actor_system.spawn(Queue, name="small", max_length=3, overflow="reject_publish")
    probe = await Probe.spawn(actor_system)
    for destination in (big, small, probe.ref):
        await exchange.ask(Bind(destination))
    tx = transaction(actor_system)
    with pytest.raises(ValueError, match=r"<Queue 'small'.*is full \(max_length=3.*refuses Publish\(routing_key='k', "
                                         r"body=3.*message 4 of 5"):
        await commit(tx, *[(exchange, n) for n in range(5)])
    assert tx.routed is None
    await probe.expect_no_message(1)
    for queue in (big, small):
        stats = await queue.ask(GetStatistics())
        assert (stats.published, stats.refused, stats.ready) == (0, 0, 0)
    async with transaction(actor_system) as tx:  # nothing is held for the refused batch
        for n in range(3):
            tx.publish(exchange, "k", n)
    assert tx.routed == 9


async def test_a_full_queue_without_an_exchange_refuses_the_batch(autojump_clock: MockClock,
                                                                  actor_system: ActorSystem) -> None:
    small = await actor_system.spawn(Queue, name="small", max_length=1, overflow="reject_publish_dlx")
    with pytest.raises(ValueError, match="is full"):
        await commit(transaction(actor_system), (small, 1), (small, 2))
    stats = await small.ask(GetStatistics())
    assert (stats.published, stats.refused, stats.dead_lettered) == (0, 0, 0)


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


async def test_a_body_a_durable_queue_cannot_store_refuses_the_batch(actor_system: ActorSystem,
                                                                     tmp_path: Any) -> None:
    """A lock cannot be pickled: the batch is refused before anything is enqueued, stored or confirmed."""
    exchange = await actor_system.spawn(Exchange, "fanout")
    stored = await actor_system.spawn(Queue, name="stored", durable=True, storage=tmp_path)
    other = await actor_system.spawn(Queue, name="other")
    await exchange.ask(Bind(stored))
    await exchange.ask(Bind(other))
    with trio.fail_after(10):
        with pytest.raises(SerializationError, match=r"<Queue 'stored'.*is durable and cannot store Publish\("
                                                     r"routing_key='k', body=<unlocked _thread.lock.*message 2 of 2"):
            await commit(transaction(actor_system), (exchange, "fine"), (exchange, threading.Lock()))
        assert await published(stored) == await published(other) == 0
        await actor_system.stop(stored)
        stored = await actor_system.spawn(Queue, name="stored", durable=True, storage=tmp_path)
        assert await published(stored) == 0  # nothing was stored either


async def test_a_prepared_share_holds_its_room_until_commit_or_abort(autojump_clock: MockClock,
                                                                     actor_system: ActorSystem) -> None:
    """Between the two phases, a publish cannot take the room a transaction holds."""
    small = await actor_system.spawn(Queue, name="small", max_length=1, overflow="reject_publish")
    share = (Enqueue("", Publish("k", "held")),)
    assert await small.ask(PrepareBatch(1, share)) is None
    assert await small.ask(Publish("k", "late")) == 0  # the room is held
    await small.ask(AbortBatch(1))
    assert await small.ask(Publish("k", "now")) == 1
    with pytest.raises(ValueError, match="is full"):
        await small.ask(PrepareBatch(2, share))
    assert (await small.ask(Get(auto_ack=True))).body == "now"
    assert await small.ask(PrepareBatch(3, share)) is None
    assert await small.ask(CommitBatch(3)) == 1
    with pytest.raises(ValueError, match="holds no prepared transaction 3"):
        await small.ask(CommitBatch(3))
    assert (await small.ask(Get(auto_ack=True))).body == "held"
