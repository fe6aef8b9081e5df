"""Orders over RabbitMQ: broker-backed exchanges and queues, with the same messages as the embedded ones.

A topic exchange routes order events to a durable (quorum) queue of new orders, which two workers consume with
prefetch. An order without a SKU is rejected and dead-lettered, through a fanout exchange, into a queue of
failed orders, with RabbitMQ's ``x-death`` header saying why. Every body crosses the broker as JSON, so a
client in any language could publish the orders or consume the failed ones.

Needs a RabbitMQ: ``python -m examples.broker_orders [amqp://guest:guest@127.0.0.1:5672/]``.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from actors import Actor, ActorSystem, Bind, Delivery, Exchange, Publish, Queue, Subscribe

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


class Worker(Actor):
    """Handles new orders: acknowledges the good ones, rejects those without a SKU (into the failed queue)."""

    def __init__(self, done: list[tuple[str, int]], expected: int, finished: trio.Event) -> None:
        self.done = done
        self.expected = expected
        self.finished = finished

    async def receive(self, delivery: Delivery) -> None:
        order = delivery.body  # decoded from JSON by its content type
        if "sku" not in order:
            delivery.reject()  # never requeued: dead-lettered with reason "rejected"
            return
        self.done.append((self.ref.name, order["id"]))
        delivery.ack()
        if len(self.done) == self.expected:
            self.finished.set()


class FailedOrders(Actor):
    """Keeps the first failed order it is delivered."""

    def __init__(self, failed: list[Delivery], arrived: trio.Event) -> None:
        self.failed = failed
        self.arrived = arrived

    async def receive(self, delivery: Delivery) -> None:
        self.failed.append(delivery)
        delivery.ack()
        self.arrived.set()


async def main(broker: str = BROKER, prefix: str = "shop") -> dict[str, Any]:
    done: list[tuple[str, int]] = []
    failed: list[Delivery] = []
    finished, arrived = trio.Event(), trio.Event()
    async with ActorSystem("shop") as system:
        dead_letters = await system.spawn(Exchange, "fanout", name=f"{prefix}.dead-letters", broker=broker)
        failed_orders = await system.spawn(Queue, name=f"{prefix}.failed-orders", broker=broker)
        await dead_letters.ask(Bind(failed_orders))

        orders = await system.spawn(Exchange, "topic", name=f"{prefix}.orders", broker=broker)
        new_orders = await system.spawn(Queue, name=f"{prefix}.new-orders", broker=broker, durable=True,
                                        dead_letter_exchange=dead_letters, delivery_limit=3)
        await orders.ask(Bind(new_orders, "order.created.*"))

        for n in range(2):
            worker = await system.spawn(Worker, done, 10, finished, name=f"worker-{n}")
            await new_orders.ask(Subscribe(worker, prefetch=5))
        keeper = await system.spawn(FailedOrders, failed, arrived, name="failed-orders")
        await failed_orders.ask(Subscribe(keeper))

        confirmed = 0
        for n in range(10):  # each ask is a publisher confirm: 1 once the broker has the order in a queue
            region = ("eu", "us")[n % 2]
            confirmed += await orders.ask(Publish(f"order.created.{region}", {"id": n, "sku": f"tea-{n}"},
                                                  {"message_id": f"order-{n}", "app_id": "shop"}, persistent=True))
        await orders.ask(Publish("order.created.eu", {"id": 99}, persistent=True))  # no SKU: it will fail
        unrouted = await orders.ask(Publish("order.cancelled.eu", {"id": 3}))  # nobody is bound: 0

        with trio.fail_after(10):
            await finished.wait()
            await arrived.wait()
        letter = failed[0]
        assert letter.headers is not None
        death = letter.headers["x-death"][0]
        print(f"{confirmed} orders confirmed, {len(done)} handled by "
              f"{sorted({name for name, _ in done})}; a cancellation nobody listens to reached {unrouted} queues")
        print(f"failed order {letter.body} ({letter.headers['content_type']}): {death['reason']} in "
              f"{death['queue']!r}")
    return {"confirmed": confirmed, "done": sorted(order for _, order in done), "workers": len({n for n, _ in done}),
            "unrouted": unrouted, "failed": letter.body, "reason": death["reason"], "queue": death["queue"]}


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:2])
