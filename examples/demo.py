"""The demo: a small open platform for orders, supervised end to end.

    third-party apps ──Publish──> orders (topic exchange)
      "order.<region>.created" ──> payments queue (prefetch, TTL) ──> payment pool (fails now and then)
                                        payment workers ask pricing, then publish "order.<region>.paid"
      "order.*.paid" ────────────> shipping queue ──> packer pool (on a worker process)
    rejected and expired messages ──> dlx (fanout exchange) ──> dead-letters queue ──> auditor

The whole tree is one ``Supervisor`` built from ``ChildSpec``s. It runs for about ten seconds with a live
progress line, then prints what happened and the queue figures of the busiest actors (λ, μ, ρ, L, W) with a
check of Little's law (L = λW). The packers run on a worker process. Run it with ``make demo`` or
``python -m examples.demo [seconds] [workers]``.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from typing import Any

import attrs
import trio

from actors import (
    Actor,
    ActorSystem,
    Backoff,
    Bind,
    ChildSpec,
    Delivery,
    Exchange,
    GetRoutees,
    GetStatistics,
    OneForOne,
    Pool,
    Publish,
    Queue,
    Reply,
    RestForOne,
    Subscribe,
    Supervisor,
)

PRICES = {"tea": 4.5, "mug": 12.0, "kettle": 39.0}
REGIONS = ("eu", "us", "apac")


@attrs.frozen
class Order:
    """An order event: frozen, so every actor that sees it sees the same thing."""

    order_id: str
    app: str
    region: str
    sku: str
    quantity: int


# -- the broker: exchanges and queues, wired in on_start -------------------------------------------------------


class Broker(Actor):
    """Spawns the exchanges and queues and binds them; everyone else finds them by path."""

    async def on_start(self) -> None:
        dlx = await self.spawn(Exchange, "fanout", name="dlx")
        dead_letters = await self.spawn(Queue, name="dead-letters")
        orders = await self.spawn(Exchange, "topic", name="orders")
        payments = await self.spawn(Queue, name="payments", message_ttl=2.0, dead_letter_exchange=dlx,
                                    delivery_limit=5)
        shipping = await self.spawn(Queue, name="shipping", dead_letter_exchange=dlx)
        await dlx.ask(Bind(dead_letters))
        await orders.ask(Bind(payments, "order.*.created"))
        await orders.ask(Bind(shipping, "order.*.paid"))

    async def receive(self, message: Any) -> Any:
        return Reply.error(TypeError(f"the broker takes no messages; got {message!r}"))


def broker(actor: Actor, name: str) -> Any:
    """The ref of the broker's child ``name`` (an exchange or a queue)."""
    ref = actor.system.lookup(f"platform/broker/{name}")
    if ref is None:
        raise LookupError(f"platform/broker/{name} is not running")
    return ref


# -- the services ----------------------------------------------------------------------------------------------


class Pricing(Actor):
    """Answers ``("quote", sku, quantity)`` asks with a price; an unknown sku is refused, not a failure."""

    async def receive(self, message: Any) -> Any:
        _, sku, quantity = message
        if sku not in PRICES:
            return Reply.error(KeyError(f"no price for {sku!r}"))
        return round(PRICES[sku] * quantity, 2)


class PaymentWorker(Actor):
    """Charges orders from the payments queue. The card processor times out now and then: the worker raises,
    its supervisor restarts it with backoff, and the queue redelivers what it had not acknowledged."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def on_start(self) -> None:
        broker(self, "payments").tell(Subscribe(self.ref, prefetch=2))

    async def receive(self, delivery: Delivery) -> None:
        order: Order = delivery.body
        if order.quantity <= 0:
            delivery.reject()  # dead-lettered with reason "rejected"
            return
        try:
            amount = await self.system.lookup("platform/pricing").ask(("quote", order.sku, order.quantity))  # type: ignore[union-attr]
        except KeyError:
            delivery.reject()
            return
        await trio.sleep(self.rng.expovariate(120.0))  # talking to the card processor: about 8 ms
        if self.rng.random() < 0.01:
            raise ConnectionError(f"card processor timed out charging {amount} for {order.order_id}")
        broker(self, "orders").tell(Publish(f"order.{order.region}.paid", order, headers={"amount": amount}))
        delivery.ack()


class Packer(Actor):
    """Packs paid orders from the shipping queue (from a worker process, when the demo has workers)."""

    async def on_start(self) -> None:
        path = "platform/broker/shipping"
        # lookup() sees this node's actors; on a worker, ask the node the pool (our parent) runs on.
        shipping = self.system.lookup(path) or await self.system.resolve(self.parent.node, path)  # type: ignore[union-attr]
        if shipping is None:
            raise LookupError(f"{path} is not running")
        shipping.tell(Subscribe(self.ref, prefetch=16))

    async def receive(self, delivery: Delivery) -> None:
        await trio.sleep(0.001)
        delivery.ack()


class Auditor(Actor):
    """Reads the dead-letter queue and counts why each message died (``x-first-death-reason``)."""

    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()

    async def on_start(self) -> None:
        broker(self, "dead-letters").tell(Subscribe(self.ref, prefetch=32))

    async def receive(self, message: Any) -> Any:
        if message == "reasons":
            return dict(self.reasons)
        self.reasons[message.headers["x-first-death-reason"]] += 1
        message.ack()
        return None


class App(Actor):
    """A third-party app publishing order events at random; some orders are bad, some are urgent (short TTL)."""

    def __init__(self, name: str, rate: float, seed: int) -> None:
        self.name = name
        self.rate = rate
        self.rng = random.Random(seed)
        self.sent = 0

    async def on_start(self) -> None:
        self.timers.start_single("next", self.rng.expovariate(self.rate), "publish")

    async def receive(self, message: Any) -> Any:
        if message == "sent":
            return self.sent
        self.sent += 1
        sku = self.rng.choice([*PRICES, "unobtainium"] if self.rng.random() < 0.02 else list(PRICES))
        quantity = 0 if self.rng.random() < 0.01 else self.rng.randint(1, 5)
        order = Order(f"{self.name}-{self.sent}", self.name, self.rng.choice(REGIONS), sku, quantity)
        urgent = self.rng.random() < 0.05  # must be paid within 20 ms, or it expires
        broker(self, "orders").tell(Publish(f"order.{order.region}.created", order, headers={"app": self.name},
                                            ttl=0.02 if urgent else None))
        self.timers.start_single("next", self.rng.expovariate(self.rate), "publish")
        return None


def platform_spec(*, spread: bool = False) -> list[ChildSpec]:
    """The supervision tree, declared: RestForOne, so a broker restart restarts everything that uses it.

    ``spread``: the packers run on the worker processes (``ActorSystem(workers=N)``), the rest on the head.
    """
    payments = OneForOne(max_restarts=100, within=10.0, backoff=Backoff(0.01, 0.5, jitter=0.2))
    return [
        ChildSpec(Broker, name="broker"),
        ChildSpec(Pricing, name="pricing"),
        ChildSpec(Pool, PaymentWorker, 7, name="payments", size=3, supervision=payments),
        ChildSpec(Pool, Packer, name="packers", size=2, spread=spread),
        ChildSpec(Auditor, name="auditor"),
        ChildSpec(Supervisor, [ChildSpec(App, "webshop", 150.0, 1, name="webshop"),
                               ChildSpec(App, "mobile", 100.0, 2, name="mobile"),
                               ChildSpec(App, "partner-api", 50.0, 3, name="partner-api")], name="apps"),
    ]


# -- running it and reporting ----------------------------------------------------------------------------------


async def totals(system: ActorSystem) -> dict[str, int]:
    """Counts across the platform, from the exchanges', queues' and actors' own statistics."""
    queues = [await broker_ref(system, name).ask(GetStatistics())
              for name in ("payments", "shipping", "dead-letters")]
    orders = await broker_ref(system, "orders").ask(GetStatistics())
    return {
        "routed": orders.published,
        "acked": sum(q.acked for q in queues),
        "redelivered": sum(q.redelivered for q in queues),
        "dead-lettered": sum(q.dead_lettered for q in queues),
        "restarts": sum(a.restarts for a in system.statistics().actors.values()),
    }


def broker_ref(system: ActorSystem, name: str) -> Any:
    ref = system.lookup(f"platform/broker/{name}")
    assert ref is not None, f"platform/broker/{name} is not running"
    return ref


def figures_table(system: ActorSystem, top: int = 8) -> list[str]:
    """λ, μ, ρ, L, W of the busiest actors, with L checked against λW (Little's law)."""
    actors = system.statistics().actors
    busiest = sorted(actors.items(), key=lambda item: -item[1].arrival_rate)[:top]
    lines = [f"{'actor':34} {'λ/s':>8} {'μ/s':>9} {'ρ':>6} {'L':>7} {'W ms':>8} {'λW':>7}  L = λW?"]
    for path, s in busiest:
        predicted = s.arrival_rate * s.mean_sojourn
        apart = abs(s.mean_in_system - predicted)
        # L is the time average of the messages in the actor, λ counts arrivals and W averages the timed
        # messages' sojourns: measured apart over one window, they agree within 5%.
        agree = apart <= 0.05 * max(s.mean_in_system, predicted)
        verdict = f"{'yes' if agree else 'NO'} ({apart:.3f} apart)"
        lines.append(f"{path:34} {s.arrival_rate:8.1f} {s.service_rate:9.1f} {s.utilization:6.2f} "
                     f"{s.mean_in_system:7.3f} {s.mean_sojourn * 1e3:8.3f} {predicted:7.3f}  {verdict}")
    return lines


async def main(seconds: float = 10.0, workers: int = 0) -> dict[str, Any]:
    """Run the platform for ``seconds`` (of trio's clock), print progress and a summary; return the figures.

    With ``workers``, the packers run on that many worker processes (the last stage of the pipeline crosses
    processes: deliveries go out to them and their acks come back).
    """
    async with ActorSystem("demo", workers=workers) as system:  # the figures at their default settings
        await system.spawn(Supervisor, platform_spec(spread=workers > 0), name="platform",
                           supervision=RestForOne())
        packers = await system.lookup("platform/packers").ask(GetRoutees())  # type: ignore[union-attr]
        places = sorted({"the head" if ref.node.kind == "head" else f"worker {ref.node.pid}" for ref in packers})
        print(f"packers run on {', '.join(places)}", flush=True)
        start = trio.current_time()
        while (elapsed := trio.current_time() - start) < seconds:
            await trio.sleep(min(1.0, seconds - elapsed))
            now = await totals(system)
            print(f"  {trio.current_time() - start:5.1f}s  " + "  ".join(f"{k} {v:,}" for k, v in now.items()),
                  flush=True)
        for app in ("webshop", "mobile", "partner-api"):  # stop the apps, let the pipeline drain
            await system.stop(system.lookup(f"platform/apps/{app}"))  # type: ignore[arg-type]
        await trio.sleep(0.5)
        result = await totals(system)
        reasons = await system.lookup("platform/auditor").ask("reasons")  # type: ignore[union-attr]
        table = figures_table(system)
    print("\nsummary:", ", ".join(f"{k} {v:,}" for k, v in result.items()))
    print("dead letters by reason:", ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none")
    print("\nqueue figures over the run (busiest actors first):")
    print("\n".join(table))
    return {**result, "reasons": reasons, "packer_nodes": places}


if __name__ == "__main__":
    trio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 10.0,
             int(sys.argv[2]) if len(sys.argv) > 2 else 1)
