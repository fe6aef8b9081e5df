"""Router benchmark: topic publishes through an ``Exchange`` actor, and queue throughput with acks.

``run()`` returns:

- ``exchange_topic_10k_publishes_per_s`` / ``exchange_topic_10_publishes_per_s``: publishes per second told to a
  topic ``Exchange`` with 10,000 and with 10 mixed ``*``/``#`` bindings, counted from the first tell until every
  delivery has been handled. The bindings all lead to one plain actor, which is also bound with ``#``: every
  publish makes exactly one delivery (a destination gets one copy however many bindings match), so the two
  rates differ only by the cost of routing;
- ``exchange_topic_10k_vs_10_ratio``: the first rate over the second (near 1: the cost of a publish follows
  the key, not the number of bindings; the routing table's own ratio, in :mod:`benchmarks.routing`, bounds it);
- ``exchange_confirmed_publishes_per_s``: publishes per second with a publisher confirm (``ask``) each, one at
  a time, through a topic exchange into one queue;
- ``queue_messages_per_s``: messages per second published straight to a ``Queue`` (tells) and consumed by 4
  consumers with prefetch 100 that ack each delivery, until the last ack is handled.

The keys and bindings are those of :mod:`benchmarks.routing` (seeded). ``quick=True`` uses fewer messages.
Wall time comes from :func:`time.perf_counter`: these are real runs, never under a ``MockClock``.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import trio

if not __package__:  # Run as a script (python benchmarks/exchange.py): make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import Actor, ActorRef, ActorSystem
from actors._exchange import Exchange
from actors._queue import Queue
from actors._router_messages import Bind, Delivery, GetStatistics, Publish, Subscribe
from benchmarks._harness import expect_equal
from benchmarks.routing import _routing_keys, _topic_bindings

__all__ = ["run"]

_SEED = 20240917


class _Count:
    """Ask a sink how many deliveries it has handled."""


_COUNT = _Count()


class _Sink(Actor):
    """Counts deliveries; answers ``_COUNT``."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message.__class__ is Delivery:
            self.count += 1
            return None
        return self.count


class _Consumer(Actor):
    """Acks every delivery; sets ``done`` when the shared tally reaches its target."""

    def __init__(self, tally: list[int], target: int, done: trio.Event) -> None:
        self.tally = tally
        self.target = target
        self.done = done

    async def receive(self, message: Any) -> None:
        message.ack()
        self.tally[0] += 1
        if self.tally[0] == self.target:
            self.done.set()


async def _topic_rate(bindings: list[str], keys: list[str]) -> float:
    """Publishes per second through a topic exchange with ``bindings`` (and ``#``) to one actor."""
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "topic")
        sink = await system.spawn(_Sink)
        for pattern in [*bindings, "#"]:
            await exchange.ask(Bind(sink, pattern))
        tell = exchange.tell
        start = time.perf_counter()
        for key in keys:
            tell(Publish(key, None))
        await exchange.ask(GetStatistics())  # every publish routed, every delivery queued
        delivered = await sink.ask(_COUNT)
        elapsed = time.perf_counter() - start
    expect_equal("deliveries", delivered, len(keys))
    return len(keys) / elapsed


async def _confirmed_rate(count: int) -> float:
    """Publishes per second, each confirmed (ask) before the next, through a topic exchange to one queue."""
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "topic")
        queue = await system.spawn(Queue, name="q")
        await exchange.ask(Bind(queue, "orders.#"))
        ask = exchange.ask
        start = time.perf_counter()
        for _ in range(count):
            await ask(Publish("orders.new.eu", None))
        elapsed = time.perf_counter() - start
    return count / elapsed


async def _queue_rate(count: int) -> float:
    """Messages per second: tells straight to a queue, 4 consumers with prefetch 100 acking each one."""
    async with ActorSystem() as system:
        queue = await system.spawn(Queue, name="q")
        tally = [0]
        done = trio.Event()
        consumers: list[ActorRef] = [await system.spawn(_Consumer, tally, count, done) for _ in range(4)]
        for consumer in consumers:
            await queue.ask(Subscribe(consumer, prefetch=100))
        tell = queue.tell
        start = time.perf_counter()
        for index in range(count):
            tell(Publish("job", index))
            if index % 1000 == 999:
                await trio.lowlevel.checkpoint()  # a producer that lets consumers run, as a real one would
        await done.wait()
        elapsed = time.perf_counter() - start
        stats = await queue.ask(GetStatistics())
        expect_equal("messages acked", (stats.acked, stats.ready, stats.unacked), (count, 0, 0))
    return count / elapsed


def run(quick: bool = False) -> dict[str, float]:
    """Measure the router; see the module docstring for the figures returned."""
    rng = random.Random(_SEED)
    publishes = 2_000 if quick else 50_000
    confirmed = 500 if quick else 10_000
    queued = 2_000 if quick else 100_000
    rounds = 1 if quick else 3
    keys = _routing_keys(publishes, rng)
    big = _topic_bindings(10_000, rng)
    small = _topic_bindings(10, rng)
    rate_big = rate_small = 0.0
    for _ in range(rounds):  # best of rounds, alternating, to share the machine's noise
        rate_big = max(rate_big, trio.run(_topic_rate, big, keys))
        rate_small = max(rate_small, trio.run(_topic_rate, small, keys))
    confirmed_rate = max(trio.run(_confirmed_rate, confirmed) for _ in range(rounds))
    queue_rate = max(trio.run(_queue_rate, queued) for _ in range(rounds))
    return {
        "exchange_topic_10k_publishes_per_s": rate_big,
        "exchange_topic_10_publishes_per_s": rate_small,
        "exchange_topic_10k_vs_10_ratio": rate_big / rate_small,
        "exchange_confirmed_publishes_per_s": confirmed_rate,
        "queue_messages_per_s": queue_rate,
    }


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv[1:]).items():
        print(f"{name}: {value:,.4g}")
