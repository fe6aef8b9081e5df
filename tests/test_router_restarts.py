"""Exchanges and queues that are restarted keep what they held: bindings, ready messages, unacked deliveries.

Each restart here comes from a failure, as in production: a sibling that fails under ``OneForAll`` (so the
exchange or queue is restarted through no fault of its own), or a message that makes the actor itself fail.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    Bind,
    Delivery,
    Exchange,
    ExchangeStatistics,
    Get,
    GetStatistics,
    LifecycleEvent,
    OneForAll,
    Publish,
    Queue,
    QueueStatistics,
    Subscribe,
)
from actors.testing import Probe
from runtime import topology

pytestmark = pytest.mark.deadline(60)


class Bomb(Actor):
    """Raises when told anything."""

    async def receive(self, message: Any) -> None:
        raise RuntimeError("bang")


class Siblings(Actor):
    """Starts ``specs`` (name, factory, args) then a bomb, under OneForAll: the bomb restarts them all."""

    def __init__(self, *specs: tuple[str, Any, tuple[Any, ...]]) -> None:
        self.specs = specs

    async def on_start(self) -> None:
        for name, factory, args in self.specs:
            await self.spawn(factory, *args, name=name)
        await self.spawn(Bomb, name="bomb")

    async def receive(self, message: Any) -> list[ActorRef]:
        return self.children


async def restart_all(system: ActorSystem, bomb: ActorRef, watched: ActorRef) -> None:
    """Set the bomb off and wait until ``watched`` has been restarted."""
    events = await Probe.spawn(system)
    system.events.subscribe(events.ref, LifecycleEvent)
    bomb.tell("go off")
    while (event := await events.expect(LifecycleEvent)).ref != watched or event.kind != "restarted":
        pass
    system.events.unsubscribe(events.ref)


async def spawn_siblings(system: ActorSystem, *specs: tuple[str, Any, tuple[Any, ...]]) -> list[ActorRef]:
    parent = await system.spawn(Siblings, *specs, supervision=OneForAll(max_restarts=3, within=5))
    children: list[ActorRef] = await parent.ask("children")
    return children


async def test_a_restarted_exchange_keeps_its_bindings(autojump_clock: MockClock,
                                                       actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="q")
    probe = await Probe.spawn(actor_system)
    exchange, bomb = await spawn_siblings(actor_system, ("events", Exchange, ("topic",)))
    assert await exchange.ask(Bind(queue, "order.*")) is True
    assert await exchange.ask(Bind(probe.ref, "#")) is True
    assert await exchange.ask(Publish("order.new", 1)) == 2
    await restart_all(actor_system, bomb, exchange)
    stats = await exchange.ask(GetStatistics())
    assert isinstance(stats, ExchangeStatistics)
    assert (stats.bindings, stats.destinations, stats.published) == (2, 2, 1)
    assert await exchange.ask(Bind(queue, "order.*")) is False  # the binding is still there
    assert await exchange.ask(Publish("order.paid", 2)) == 2
    assert [(await probe.expect(Delivery)).body for _ in range(2)] == [1, 2]
    assert [(await queue.ask(Get(auto_ack=True))).body for _ in range(2)] == [1, 2]


async def test_a_restarted_exchange_still_unbinds_what_stops(autojump_clock: MockClock,
                                                             actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    exchange, bomb = await spawn_siblings(actor_system, ("events", Exchange, ("fanout",)))
    await exchange.ask(Bind(probe.ref))
    await restart_all(actor_system, bomb, exchange)
    await actor_system.stop(probe.ref)
    await trio.testing.wait_all_tasks_blocked()
    stats = await exchange.ask(GetStatistics())
    assert (stats.bindings, stats.destinations) == (0, 0)  # it still watches what is bound to it


async def test_exchange_to_exchange_routing_survives_a_restart_of_the_bound_exchange(
        autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="q")
    source = await actor_system.spawn(Exchange, "topic", name="source")
    inner, bomb = await spawn_siblings(actor_system, ("inner", Exchange, ("direct",)))
    await source.ask(Bind(inner, "a.*"))
    await inner.ask(Bind(queue, "a.b"))
    assert await source.ask(Publish("a.b", 1)) == 1
    await restart_all(actor_system, bomb, inner)
    assert await source.ask(Publish("a.b", 2)) == 1  # the inner exchange applies its kept binding
    assert await source.ask(Publish("a.c", 3)) == 0  # ... with its own kind (direct)
    assert [(await queue.ask(Get(auto_ack=True))).body for _ in range(2)] == [1, 2]


async def test_an_alternate_exchange_that_restarted_still_takes_the_unmatched(
        autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="q")
    alternate, bomb = await spawn_siblings(actor_system, ("ae", Exchange, ("fanout",)))
    await alternate.ask(Bind(queue))
    main = await actor_system.spawn(Exchange, "direct", name="main", alternate=alternate)
    await restart_all(actor_system, bomb, alternate)
    assert await main.ask(Publish("nobody", 1)) == 1
    assert (await queue.ask(Get(auto_ack=True))).body == 1


async def queue_statistics(queue: ActorRef) -> QueueStatistics:
    stats = await queue.ask(GetStatistics())
    assert isinstance(stats, QueueStatistics)
    assert stats.published == stats.ready + stats.unacked + stats.acked + stats.dead_lettered
    return stats


async def test_a_restarted_queue_keeps_its_ready_and_unacked_messages(autojump_clock: MockClock,
                                                                      actor_system: ActorSystem) -> None:
    queue, bomb = await spawn_siblings(actor_system, ("jobs", Queue, ()))
    for n in range(4):
        queue.tell(Publish("k", n))
    held = await queue.ask(Get())  # unacked across the restart
    await restart_all(actor_system, bomb, queue)
    stats = await queue_statistics(queue)
    assert (stats.ready, stats.unacked, stats.published) == (3, 1, 4)
    held.ack()  # the tag given before the restart is still outstanding
    stats = await queue_statistics(queue)
    assert (stats.unacked, stats.acked) == (0, 1)
    assert [(await queue.ask(Get(auto_ack=True))).body for _ in range(3)] == [1, 2, 3]


async def test_a_restarted_queue_keeps_its_consumers_and_delivers_each_message_once(
        autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    consumer = await Probe.spawn(actor_system)
    queue, bomb = await spawn_siblings(actor_system, ("jobs", Queue, ()))
    await queue.ask(Subscribe(consumer.ref, prefetch=2))
    for n in range(4):
        queue.tell(Publish("k", n))
    before = [await consumer.expect(Delivery) for _ in range(2)]  # in flight when the queue restarts
    await restart_all(actor_system, bomb, queue)
    stats = await queue_statistics(queue)
    assert (stats.consumers, stats.ready, stats.unacked) == (1, 2, 2)
    for delivery in before:
        delivery.ack()
    after = [await consumer.expect(Delivery) for _ in range(2)]
    for delivery in after:
        delivery.ack()
    await consumer.expect_no_message(1)
    assert [(d.body, d.redelivered) for d in before + after] == [(0, False), (1, False), (2, False), (3, False)]
    stats = await queue_statistics(queue)
    assert (stats.acked, stats.ready, stats.unacked, stats.redelivered) == (4, 0, 0, 0)


async def test_a_restarted_queue_still_expires_its_messages(autojump_clock: MockClock,
                                                            actor_system: ActorSystem) -> None:
    queue, bomb = await spawn_siblings(actor_system, ("jobs", Queue, ()))
    queue.tell(Publish("k", "short", ttl=5))
    await restart_all(actor_system, bomb, queue)  # the restart cancels the expiry timer; it is armed again
    await trio.sleep(6)
    stats = await queue_statistics(queue)
    assert (stats.ready, stats.dead_lettered) == (0, 1)


async def test_a_restarted_durable_queue_restores_from_storage_and_keeps_its_consumers(
        actor_system: ActorSystem, tmp_path: Path) -> None:
    consumer = await Probe.spawn(actor_system)
    durable_queue = functools.partial(Queue, durable=True, storage=tmp_path)
    with trio.fail_after(10):  # real threads (SQLite): no mock clock
        queue, bomb = await spawn_siblings(actor_system, ("jobs", durable_queue, ()))
        await queue.ask(Subscribe(consumer.ref, prefetch=1))
        assert await queue.ask(Publish("k", "first")) == 1
        first = await consumer.expect(Delivery)
        await restart_all(actor_system, bomb, queue)
        again = await consumer.expect(Delivery)  # from storage, to the consumer that stayed subscribed
        assert (again.body, first.body) == ("first", "first")
        first.ack()  # a tag of the old incarnation: refused (a dead letter); the message is still unacked
        again.ack()
        stats = await queue_statistics(queue)
        assert (stats.consumers, stats.acked, stats.unacked, stats.ready) == (1, 1, 0, 0)


async def test_stopped_exchanges_and_queues_leave_the_topology(autojump_clock: MockClock,
                                                               actor_system: ActorSystem) -> None:
    keep = await actor_system.spawn(Exchange, "fanout", name="keep")
    for n in range(40):
        queue = await actor_system.spawn(Queue, name=f"q{n}")
        exchange = await actor_system.spawn(Exchange, "direct", name=f"x{n}")
        await keep.ask(Bind(queue))
        queue.tell(Publish("k", n))
        await actor_system.stop(queue)
        await actor_system.stop(exchange)
    assert await keep.ask(Publish("k", "after")) == 0  # stopped queues are unbound, never routed to
    repr_ = repr(topology(actor_system))
    exchanges, queues = (int(part.split("=")[1].rstrip(">")) for part in repr_.split()[1:])
    assert exchanges < 10  # swept lazily as new ones were declared: not 41
    assert queues < 10
