"""Soak test: 100,000 messages through a topic exchange into four queues, with consumers that misbehave.

Consumers ack most deliveries, but also nack (requeue), reject, and crash (raise, so their supervisor restarts
them); one is stopped for good halfway. Queues have a delivery limit and a dead-letter exchange. In the end
every message must have been acknowledged exactly once or dead-lettered exactly once, and none may be lost.

No work is done twice either: a queue tells a consumer its deliveries under a lease that ends when the consumer
fails, so the restarted consumer never handles what the queue took back and redelivered to the others, and the
queue refuses no ack (a refused ack would arrive here as a dead letter).

Runs in real time (it measures nothing timed, and waits with ``wait_all_tasks_blocked``).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

import trio
import trio.testing

from actors import Actor, ActorRef, ActorSystem, DeadLetter, OneForOne
from actors._exchange import Exchange
from actors._queue import Queue, QueueStatistics
from actors._router_messages import Ack, Bind, Delivery, GetStatistics, Publish, Subscribe

MESSAGES = int(os.environ.get("ROUTER_SOAK_MESSAGES", "100000"))
QUEUES = 4
CONSUMERS_PER_QUEUE = 3
NACK, REJECT, CRASH = 0.03, 0.005, 0.002  # probabilities per delivery; the rest is acked
DELIVERY_LIMIT = 4


class Ledger:
    """What the consumers and the dead-letter listener saw (shared in-process, for the checks)."""

    def __init__(self) -> None:
        self.acks: dict[tuple[str, int], int] = {}
        """(queue name, delivery tag) -> message id, for every ack a consumer sent."""
        self.refused: set[tuple[str, int]] = set()
        """(queue name, delivery tag) of acks the queue refused (the tag was requeued when its consumer failed)."""
        self.dead: Counter[int] = Counter()
        """Message id -> how many times it arrived dead-lettered."""
        self.crashes = 0
        self.seeds = 0


class Worker(Actor):
    """A consumer that acks, nacks, rejects or crashes at random."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        ledger.seeds += 1
        self.random = random.Random(ledger.seeds)

    async def receive(self, message: Any) -> None:
        assert isinstance(message, Delivery)
        assert message.queue is not None
        draw = self.random.random()
        if draw < CRASH:
            self.ledger.crashes += 1
            raise RuntimeError("worker crashed")  # unsettled: the queue requeues it when it hears of the failure
        if draw < CRASH + NACK:
            message.nack(requeue=True)
        elif draw < CRASH + NACK + REJECT:
            message.reject()
        else:
            assert message.delivery_tag is not None
            self.ledger.acks[(message.queue.name, message.delivery_tag)] = message.body
            message.ack()


class Graveyard(Actor):
    """Receives the dead letters (bound to the dead-letter exchange) and records refused acks."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def receive(self, message: Any) -> None:
        if isinstance(message, Delivery):
            assert message.headers is not None
            assert message.headers["x-death"]
            self.ledger.dead[message.body] += 1
        elif isinstance(message, DeadLetter) and isinstance(message.message, Ack):
            assert message.recipient is not None
            self.ledger.refused.add((message.recipient.name, message.message.delivery_tag))


async def test_every_message_is_acked_once_or_dead_lettered() -> None:
    ledger = Ledger()
    supervision = OneForOne(max_restarts=1_000_000, within=1.0)
    async with ActorSystem(name="soak", supervision=supervision) as system:
        graveyard = await system.spawn(Graveyard, ledger)
        system.events.subscribe(graveyard, DeadLetter)
        dlx = await system.spawn(Exchange, "fanout", name="dlx")
        await dlx.ask(Bind(graveyard))
        exchange = await system.spawn(Exchange, "topic", name="work")
        patterns = ["tasks.0.*", "tasks.1.#", "*.2.*", "#.3.x"]  # each key below matches exactly one
        queues: list[ActorRef] = []
        workers: list[ActorRef] = []
        for index, pattern in enumerate(patterns):
            queue = await system.spawn(Queue, name=f"q{index}", delivery_limit=DELIVERY_LIMIT,
                                       dead_letter_exchange=dlx)
            await exchange.ask(Bind(queue, pattern))
            queues.append(queue)
            for _ in range(CONSUMERS_PER_QUEUE):
                worker = await system.spawn(Worker, ledger)
                await queue.ask(Subscribe(worker, prefetch=20))
                workers.append(worker)
        with trio.fail_after(120):
            for message_id in range(MESSAGES):
                exchange.tell(Publish(f"tasks.{message_id % QUEUES}.x", message_id))
                if message_id % 500 == 499:
                    await trio.lowlevel.checkpoint()
                if message_id == MESSAGES // 2:
                    await system.stop(workers[0])  # stopped for good: its deliveries go to the others
            await trio.testing.wait_all_tasks_blocked()
            stats: list[QueueStatistics] = [await queue.ask(GetStatistics()) for queue in queues]

    for stat in stats:
        assert (stat.ready, stat.unacked) == (0, 0), stat
        assert stat.published == stat.acked + stat.dead_lettered
    assert sum(stat.published for stat in stats) == MESSAGES
    assert ledger.crashes > 0
    assert sum(stat.redelivered for stat in stats) > 0
    assert not ledger.refused  # no delivery was handled by a restarted consumer after it went to another

    accepted = Counter(message_id for key, message_id in ledger.acks.items() if key not in ledger.refused)
    assert sum(accepted.values()) == sum(stat.acked for stat in stats)
    assert sum(ledger.dead.values()) == sum(stat.dead_lettered for stat in stats) > 0
    for message_id in range(MESSAGES):
        assert accepted[message_id] + ledger.dead[message_id] == 1, (
            message_id, accepted[message_id], ledger.dead[message_id])
