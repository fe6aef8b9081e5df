"""Chaos: exchanges and queues fail and restart while publishers wait for confirms and consumers ack.

An exchange and a queue under ``OneForOne`` fail on their own; a queue under ``OneForAll`` is restarted by a
failing sibling. Through it all, publishers publish with confirms and consumers ack. At the end:

- every confirmed message reached every queue it was confirmed for (0 confirmed messages lost);
- the exchange's bindings are intact, and it routes to both queues;
- every delivery of a message after its first is flagged ``redelivered``.

On trio's mock clock, with a seeded random, so every run is the same.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from actors import (
    Actor,
    ActorError,
    ActorRef,
    ActorSystem,
    Bind,
    Delivery,
    Exchange,
    GetStatistics,
    OneForAll,
    OneForOne,
    Publish,
    Queue,
    Subscribe,
)

pytestmark = pytest.mark.deadline(600)

PUBLISHERS = 4
MESSAGES = 150
"""Per publisher."""
CRASH = "crash"


class FragileExchange(Exchange):
    """An exchange that fails when told ``CRASH``."""

    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            raise RuntimeError("chaos: the exchange fails")
        return await super().receive(message)


class FragileQueue(Queue):
    """A queue that fails when told ``CRASH``."""

    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            raise RuntimeError("chaos: the queue fails")
        return await super().receive(message)


class Bomb(Actor):
    """Fails when told anything: its OneForAll siblings are restarted with it."""

    async def receive(self, message: Any) -> None:
        raise RuntimeError("chaos: a sibling fails")


class Tree(Actor):
    """Starts ``specs`` (name, factory, args) in order and answers its children."""

    def __init__(self, *specs: tuple[str, Any, tuple[Any, ...]]) -> None:
        self.specs = specs

    async def on_start(self) -> None:
        for name, factory, args in self.specs:
            await self.spawn(factory, *args, name=name)

    async def receive(self, message: Any) -> list[ActorRef]:
        return self.children


class Consumer(Actor):
    """Records (body, redelivered) of every delivery and acks it, sometimes after a pause."""

    def __init__(self, seen: list[tuple[Any, bool]], seed: int) -> None:
        self.seen = seen
        self.random = random.Random(seed)

    async def receive(self, message: Any) -> None:
        assert isinstance(message, Delivery)
        self.seen.append((message.body, message.redelivered))
        if self.random.random() < 0.1:
            await trio.sleep(self.random.random() * 0.01)
        if self.random.random() < 0.05:
            message.nack(requeue=True)  # comes back, flagged
        else:
            message.ack()


async def test_chaos_loses_no_confirmed_message(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    rng = random.Random(7)
    restarts = {"max_restarts": 10_000, "within": 1}
    alone = await actor_system.spawn(Tree, ("events", FragileExchange, ("fanout",)), ("a", FragileQueue, ()),
                                     supervision=OneForOne(**restarts))
    exchange, queue_a = await alone.ask("children")
    together = await actor_system.spawn(Tree, ("b", FragileQueue, ()), ("bomb", Bomb, ()),
                                        supervision=OneForAll(**restarts))
    queue_b, bomb = await together.ask("children")
    await exchange.ask(Bind(queue_a))
    await exchange.ask(Bind(queue_b))
    seen: dict[str, list[tuple[Any, bool]]] = {"a": [], "b": []}
    for name, queue in (("a", queue_a), ("b", queue_b)):
        consumer = await actor_system.spawn(Consumer, seen[name], len(name))
        await queue.ask(Subscribe(consumer, prefetch=5))

    confirmed: dict[int, int] = {}
    unconfirmed = 0
    crashes: dict[str, int] = defaultdict(int)

    async def publisher(index: int) -> None:
        nonlocal unconfirmed
        for n in range(MESSAGES):
            body = index * 1_000_000 + n
            try:
                confirmed[body] = await exchange.ask(Publish("k", body))
            except ActorError:  # the exchange restarted before it confirmed: not confirmed, not counted
                unconfirmed += 1
            await trio.sleep(rng.random() * 0.01)

    async def chaos(done: trio.Event) -> None:
        targets = [("exchange", exchange), ("queue a", queue_a), ("queue b", queue_b), ("sibling of b", bomb)]
        while not done.is_set():
            await trio.sleep(rng.random() * 0.02)
            name, target = rng.choice(targets)
            target.tell(CRASH)
            crashes[name] += 1

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chaos, done)
        async with trio.open_nursery() as publishers:
            for index in range(PUBLISHERS):
                publishers.start_soon(publisher, index)
        done.set()
    await trio.sleep(5)  # let the consumers catch up
    await trio.testing.wait_all_tasks_blocked()

    print(f"crashes {dict(crashes)}, confirmed {len(confirmed)}, unconfirmed {unconfirmed}, "
          f"deliveries a={len(seen['a'])} b={len(seen['b'])}")
    assert min(crashes.values()) >= 10, crashes
    assert len(confirmed) >= PUBLISHERS * MESSAGES * 0.9, (len(confirmed), unconfirmed)
    for name in ("a", "b"):
        bodies = {body for body, _ in seen[name]}
        lost = {body for body, count in confirmed.items() if count == 2 and body not in bodies}
        assert lost == set(), f"queue {name} lost confirmed messages {sorted(lost)[:10]}"
        first: set[Any] = set()
        for body, redelivered in seen[name]:
            assert redelivered or body not in first, f"queue {name} delivered {body} again unflagged"
            first.add(body)
    assert all(count == 2 for count in confirmed.values()), "every confirm counted both queues"
    stats = await exchange.ask(GetStatistics())
    assert (stats.bindings, stats.destinations) == (2, 2)
    assert await exchange.ask(Publish("k", "after the chaos")) == 2
