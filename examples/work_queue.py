"""A work queue: competing consumers with prefetch, acknowledgements, a retry, and a dead-letter queue.

Jobs go to one queue; three workers take them round-robin, at most two unacknowledged at a time each. A job that
fails once is requeued (``nack``) and retried by whoever is free; a job that is malformed is rejected and lands
in the dead-letter queue, with RabbitMQ's ``x-death`` header saying why.

Run it with ``python -m examples.work_queue``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio

from actors import (
    Actor,
    ActorSystem,
    Bind,
    Delivery,
    Exchange,
    Get,
    GetStatistics,
    Publish,
    Queue,
    Subscribe,
)


class Worker(Actor):
    """Does jobs; retries a job once if it is flaky, rejects it if it is malformed."""

    def __init__(self, done: Counter[str]) -> None:
        self.done = done

    async def receive(self, delivery: Delivery) -> None:
        job = delivery.body
        if job == "malformed":
            delivery.reject()  # never requeued: dead-lettered with reason "rejected"
        elif job.startswith("flaky") and not delivery.redelivered:
            delivery.nack(requeue=True)  # back to its place in the queue, marked redelivered
        else:
            await trio.sleep(0.01)  # the work
            self.done[self.ref.name] += 1
            delivery.ack()


async def main() -> dict[str, Any]:
    done: Counter[str] = Counter()
    async with ActorSystem() as system:
        dead_letters = await system.spawn(Exchange, "fanout", name="dlx")
        graveyard = await system.spawn(Queue, name="graveyard")
        await dead_letters.ask(Bind(graveyard))
        jobs = await system.spawn(Queue, name="jobs", dead_letter_exchange=dead_letters)
        for n in range(3):
            worker = await system.spawn(Worker, done, name=f"worker-{n}")
            await jobs.ask(Subscribe(worker, prefetch=2))
        for n in range(30):
            jobs.tell(Publish("", f"flaky-{n}" if n % 10 == 0 else f"job-{n}"))
        jobs.tell(Publish("", "malformed"))
        await trio.sleep(1.0)
        stats = await jobs.ask(GetStatistics())
        dead = await graveyard.ask(Get(auto_ack=True))
    print("jobs done by each worker:", dict(sorted(done.items())))
    print(f"acked {stats.acked}, redelivered {stats.redelivered}, dead-lettered {stats.dead_lettered}")
    print("the dead letter:", dead.body, "because", dead.headers["x-death"][0]["reason"])
    return {"done": dict(done), "acked": stats.acked, "redelivered": stats.redelivered, "dead": dead.body,
            "reason": dead.headers["x-death"][0]["reason"]}


if __name__ == "__main__":
    trio.run(main)
