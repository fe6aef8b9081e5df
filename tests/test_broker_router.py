"""The broker-backed router against the embedded one: the same routing cases, replayed through ``Exchange`` and
``Queue`` in one process and through the RabbitMQ exchanges and queues that ``broker=`` makes, must agree.

Every case is parametrized over the two sides. On the broker side names are unique per test and everything
declared is deleted afterwards. Time is real here (the broker's TTLs run on its own clock): waits are polls
bounded by ``trio.fail_after``, with TTLs of a few tens of milliseconds. Without a broker the broker side is
skipped (it fails under ``CI=true``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from amqp_support import broker as broker

from actors import (
    Ack,
    Actor,
    ActorRef,
    ActorSystem,
    Bind,
    Delivery,
    Exchange,
    Get,
    GetStatistics,
    Publish,
    Queue,
    Returned,
    Subscribe,
    Unbind,
    Unroutable,
    Unsubscribe,
)
from actors.testing import Probe
from runtime import PROPERTY_NAMES
from runtime.amqp import open_connection

pytestmark = pytest.mark.deadline(30)

SIDES = ["embedded", "broker"]
"""The two implementations every case runs on."""


@attrs.define(eq=False)
class Side:
    """One implementation of the router, in one system: spawns exchanges and queues under logical names."""

    system: ActorSystem
    url: str | None
    prefix: str
    exchanges: list[str] = attrs.field(factory=list)
    queues: list[str] = attrs.field(factory=list)

    @property
    def is_broker(self) -> bool:
        return self.url is not None

    async def exchange(self, kind: str, logical: str, **options: Any) -> ActorRef:
        name = self.prefix + logical
        if self.url is not None:
            options["broker"] = self.url
            self.exchanges.append(name)
        return await self.system.spawn(Exchange, kind, name=name, **options)

    async def queue(self, logical: str, **options: Any) -> ActorRef:
        name = self.prefix + logical
        if self.url is not None:
            options["broker"] = self.url
            if options.get("delivery_limit") is not None:
                options["durable"] = True  # RabbitMQ counts deliveries on quorum queues only
            self.queues.append(name)
        return await self.system.spawn(Queue, name=name, **options)

    def logical(self, name: object) -> object:
        """A broker name or an x-death value with this side's prefix taken off, to compare the two sides."""
        if isinstance(name, str) and name.startswith(self.prefix):
            return name[len(self.prefix):]
        if isinstance(name, list):
            return [self.logical(item) for item in name]
        return name

    def deaths(self, delivery: Delivery) -> list[dict[str, Any]]:
        """The delivery's ``x-death`` entries, in logical names, without what the sides may differ on (time)."""
        assert delivery.headers is not None
        keep = ("queue", "reason", "count", "exchange", "routing-keys")
        return [{key: self.logical(entry[key]) for key in keep} for entry in delivery.headers["x-death"]]


@pytest.fixture(params=SIDES)
async def side(request: pytest.FixtureRequest) -> AsyncIterator[Side]:
    url = request.getfixturevalue("broker") if request.param == "broker" else None
    prefix = f"test.brouter.{uuid.uuid4().hex[:8]}."
    async with ActorSystem("conformance") as system:
        made = Side(system, url, prefix)
        yield made
    if url is not None:
        await delete_declared(url, made.exchanges, made.queues)


async def delete_declared(url: str, exchanges: list[str], queues: list[str]) -> None:
    with trio.fail_after(10):
        async with open_connection(url) as connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)
            await channel.close()


async def drain(queue: ActorRef) -> list[Any]:
    """The bodies ready in ``queue``, in order, taken with ``Get(auto_ack=True)``."""
    found = []
    while (delivery := await queue.ask(Get(auto_ack=True))) is not None:
        found.append(delivery.body)
    return found


async def next_delivery(queue: ActorRef, *, within: float = 5.0) -> Delivery:
    """Poll ``queue`` with ``Get(auto_ack=True)`` until a message is there (the broker expires on its clock)."""
    with trio.fail_after(within):
        while (delivery := await queue.ask(Get(auto_ack=True))) is None:  # noqa: ASYNC110 - the broker's clock
            await trio.sleep(0.01)
    assert isinstance(delivery, Delivery)
    return delivery


def user_headers(delivery: Delivery) -> dict[str, Any]:
    """A delivery's headers without the AMQP properties a broker-backed delivery also carries there."""
    return {key: value for key, value in (delivery.headers or {}).items() if key not in PROPERTY_NAMES}


async def routing_table(side: Side, kind: str, bindings: dict[str, list[Bind]],
                        publishes: list[Publish]) -> tuple[list[bool], dict[str, list[Any]]]:
    """Bind one queue per entry of ``bindings`` (its binds, with the queue as destination), publish, and
    return whether each publish reached a queue and what each queue holds."""
    exchange = await side.exchange(kind, "x")
    queues = {}
    for logical, binds in bindings.items():
        queue = queues[logical] = await side.queue(logical)
        for bind in binds:
            await exchange.ask(attrs.evolve(bind, destination=queue))
    reached = [bool(await exchange.ask(publish)) for publish in publishes]
    return reached, {logical: await drain(queue) for logical, queue in queues.items()}


def binds(*keys: str, arguments: dict[str, Any] | None = None) -> list[Bind]:
    return [Bind(None, key, arguments) for key in keys]  # type: ignore[arg-type]  # destination set later


# --- routing ------------------------------------------------------------------------------------------------


async def test_direct(side: Side) -> None:
    reached, held = await routing_table(
        side, "direct", {"a": binds("k1", "k2"), "b": binds("k2"), "c": binds("")},
        [Publish("k1", 1), Publish("k2", 2), Publish("k3", 3), Publish("", 4), Publish("K1", 5)])
    assert reached == [True, True, False, True, False]
    assert held == {"a": [1, 2], "b": [2], "c": [4]}


async def test_fanout(side: Side) -> None:
    reached, held = await routing_table(side, "fanout", {"a": binds("ignored"), "b": binds("")},
                                        [Publish("any", "x"), Publish("", b"y")])
    assert reached == [True, True]
    assert held == {"a": ["x", b"y"], "b": ["x", b"y"]}


async def test_topic_words_and_wildcards(side: Side) -> None:
    patterns = {"hash": "#", "star": "*", "a-hash": "a.#", "a-star": "a.*", "star-b-hash": "*.b.#",
                "a-star-b": "a.*.b", "empty": ""}
    keys = ["", "a", "a.", "a.b", "a..b", "x.b.c", "."]
    bindings = {logical: binds(pattern) for logical, pattern in patterns.items()}
    reached, held = await routing_table(side, "topic", bindings, [Publish(key, key) for key in keys])
    assert reached == [True] * len(keys)
    assert held == {
        "hash": keys,
        "star": ["a"],
        "a-hash": ["a", "a.", "a.b", "a..b"],
        "a-star": ["a.", "a.b"],
        "star-b-hash": ["a.b", "x.b.c"],
        "a-star-b": ["a..b"],
        "empty": [""],
    }


async def test_headers_all_and_any(side: Side) -> None:
    bindings = {
        "all": binds("", arguments={"x-match": "all", "kind": "order", "region": "eu"}),
        "any": binds("", arguments={"x-match": "any", "kind": "order", "region": "eu"}),
        "present": binds("", arguments={"x-match": "all", "urgent": None}),
        "int": binds("", arguments={"x-match": "all", "n": 5}),
    }
    publishes = [
        Publish("", "both", {"kind": "order", "region": "eu"}),
        Publish("", "kind", {"kind": "order", "region": "us"}),
        Publish("", "urgent", {"urgent": False}),
        Publish("", "five", {"n": 5}),
        Publish("", "bool", {"n": True}),
        Publish("", "none"),
    ]
    reached, held = await routing_table(side, "headers", bindings, publishes)
    assert reached == [True, True, True, True, False, False]
    assert held == {"all": ["both"], "any": ["both", "kind"], "present": ["urgent"], "int": ["five"]}


async def test_unbind_stops_routing(side: Side) -> None:
    exchange = await side.exchange("direct", "x")
    queue = await side.queue("q")
    assert await exchange.ask(Bind(queue, "k")) is True
    assert await exchange.ask(Publish("k", 1)) == 1
    assert await exchange.ask(Unbind(queue, "k")) is True
    assert await exchange.ask(Publish("k", 2)) == 0
    assert await drain(queue) == [1]


async def test_alternate_exchange_takes_what_matched_nothing(side: Side) -> None:
    alternate = await side.exchange("fanout", "alt")
    stray = await side.queue("stray")
    await alternate.ask(Bind(stray))
    exchange = await side.exchange("direct", "x", alternate=alternate)
    known = await side.queue("known")
    await exchange.ask(Bind(known, "k"))
    assert await exchange.ask(Publish("k", "known")) == 1
    assert await exchange.ask(Publish("other", "stray", mandatory=True)) == 1  # the alternate counts as routed
    assert (await drain(known), await drain(stray)) == (["known"], ["stray"])


async def test_exchange_to_exchange_bindings_route_on_and_unbind(side: Side) -> None:
    front = await side.exchange("topic", "front")
    orders = await side.exchange("direct", "orders")
    audit = await side.exchange("fanout", "audit")
    paid, log = await side.queue("paid"), await side.queue("log")
    await front.ask(Bind(orders, "order.*"))
    await front.ask(Bind(audit, "#"))
    await orders.ask(Bind(paid, "order.paid"))
    await audit.ask(Bind(log))
    assert await front.ask(Publish("order.paid", "p1")) >= 1  # the contract: at least 1 when routed
    assert await front.ask(Publish("order.new", "n1")) == 1  # only the audit trail takes it
    assert (await drain(paid), await drain(log)) == (["p1"], ["p1", "n1"])
    assert await front.ask(Unbind(audit, "#")) is True
    assert await front.ask(Publish("order.paid", "p2")) == 1
    assert (await drain(paid), await drain(log)) == (["p2"], [])


# --- unroutable and mandatory -------------------------------------------------------------------------------


class Publisher(Actor):
    """Tells an exchange what it is told to publish, and passes what comes back on to a probe."""

    def __init__(self, probe: ActorRef) -> None:
        self.probe = probe

    async def receive(self, message: Any) -> None:
        match message:
            case (ActorRef() as exchange, Publish() as publish):
                exchange.tell(publish)
            case _:
                self.probe.tell(message)


async def test_unroutable_answers_zero_and_mandatory_raises_or_returns(side: Side) -> None:
    exchange = await side.exchange("direct", "x")
    assert await exchange.ask(Publish("nowhere", 1)) == 0
    with pytest.raises(Unroutable, match="reached no queue"):
        await exchange.ask(Publish("nowhere", 2, mandatory=True))
    probe = await Probe.spawn(side.system)
    publisher = await side.system.spawn(Publisher, probe.ref)
    publish = Publish("nowhere", {"n": 3}, mandatory=True)
    publisher.tell((exchange, publish))
    with trio.fail_after(5):
        assert await probe.expect(Returned) == Returned(publish)
    statistics = await exchange.ask(GetStatistics())
    assert (statistics.published, statistics.unroutable) == (3, 3)


async def test_bad_input_is_refused_and_the_exchange_goes_on(side: Side) -> None:
    exchange = await side.exchange("headers", "x")
    queue = await side.queue("q")
    with pytest.raises(ValueError, match="x-match"):
        await exchange.ask(Bind(queue, "", {"x-match": "ALL", "a": 1}))
    with pytest.raises(ValueError, match="255"):
        await exchange.ask(Publish("k" * 256, 1))
    await exchange.ask(Bind(queue, "", {"a": 1}))
    assert await exchange.ask(Publish("", "fine", {"a": 1})) == 1
    assert await drain(queue) == ["fine"]


# --- queues: consumers, acks --------------------------------------------------------------------------------


async def test_prefetch_holds_back_until_acked(side: Side) -> None:
    queue = await side.queue("q")
    probe = await Probe.spawn(side.system)
    await queue.ask(Subscribe(probe.ref, prefetch=1))
    for n in range(3):
        assert await queue.ask(Publish("k", n)) == 1
    with trio.fail_after(5):
        first = await probe.expect(Delivery)
        await probe.expect_no_message(0.1)
        first.ack()
        second = await probe.expect(Delivery)
        second.ack()
        third = await probe.expect(Delivery)
        third.ack()
    assert [first.body, second.body, third.body] == [0, 1, 2]
    assert not any(d.redelivered for d in (first, second, third))


async def test_nack_requeues_and_reject_dead_letters(side: Side) -> None:
    dlx = await side.exchange("fanout", "dlx")
    dead = await side.queue("dead")
    await dlx.ask(Bind(dead))
    exchange = await side.exchange("direct", "in")
    jobs = await side.queue("jobs", dead_letter_exchange=dlx)
    await exchange.ask(Bind(jobs, "job"))
    assert await exchange.ask(Publish("job", {"id": 7}, {"trace": "t1"})) == 1
    first = await jobs.ask(Get())
    first.nack(requeue=True)
    again = await jobs.ask(Get())
    assert (again.body, again.redelivered) == ({"id": 7}, True)
    again.reject()
    letter = await next_delivery(dead)
    assert letter.body == {"id": 7}
    assert side.deaths(letter) == [{"queue": "jobs", "reason": "rejected", "count": 1, "exchange": "in",
                                    "routing-keys": ["job"]}]
    assert user_headers(letter)["x-first-death-reason"] == "rejected"
    assert user_headers(letter)["trace"] == "t1"
    assert await drain(jobs) == []


async def test_unknown_tag_is_refused(side: Side) -> None:
    queue = await side.queue("q")
    await queue.ask(Publish("k", 1))
    delivery = await queue.ask(Get())
    delivery.ack()
    with pytest.raises(ValueError, match="not outstanding"):
        await queue.ask(Ack(delivery.delivery_tag))


async def test_a_stopped_consumer_s_deliveries_go_to_another(side: Side) -> None:
    queue = await side.queue("q")
    first = await Probe.spawn(side.system)
    await queue.ask(Subscribe(first.ref, prefetch=5))
    await queue.ask(Publish("k", "job"))
    with trio.fail_after(5):
        held = await first.expect(Delivery)
    assert not held.redelivered
    await side.system.stop(first.ref)
    second = await Probe.spawn(side.system)
    await queue.ask(Subscribe(second.ref, prefetch=5))
    with trio.fail_after(5):
        again = await second.expect(Delivery)
    assert (again.body, again.redelivered) == ("job", True)
    again.ack()
    await queue.ask(Unsubscribe(second.ref))


# --- TTL, length limits, delivery limits --------------------------------------------------------------------


async def dead_letter_setup(side: Side, **options: Any) -> tuple[ActorRef, ActorRef]:
    """A queue "jobs" whose dead letters go through a fanout exchange to a queue "dead"."""
    dlx = await side.exchange("fanout", "dlx")
    dead = await side.queue("dead")
    await dlx.ask(Bind(dead))
    jobs = await side.queue("jobs", dead_letter_exchange=dlx, **options)
    return jobs, dead


async def test_queue_ttl_expires_into_the_dead_letter_queue(side: Side) -> None:
    jobs, dead = await dead_letter_setup(side, message_ttl=0.05)
    assert await jobs.ask(Publish("k", "stale")) == 1
    letter = await next_delivery(dead)
    assert letter.body == "stale"
    assert side.deaths(letter) == [{"queue": "jobs", "reason": "expired", "count": 1, "exchange": "",
                                    "routing-keys": ["jobs" if side.is_broker else "k"]}]
    assert await drain(jobs) == []


async def test_message_ttl_expires_too(side: Side) -> None:
    jobs, dead = await dead_letter_setup(side)
    assert await jobs.ask(Publish("k", "short", ttl=0.05)) == 1
    letter = await next_delivery(dead)
    assert (letter.body, side.deaths(letter)[0]["reason"]) == ("short", "expired")


async def test_max_length_drops_the_head(side: Side) -> None:
    jobs, dead = await dead_letter_setup(side, max_length=2)
    for n in range(3):
        assert await jobs.ask(Publish("k", n)) == 1
    letter = await next_delivery(dead)
    assert (letter.body, side.deaths(letter)[0]["reason"]) == (0, "maxlen")
    assert await drain(jobs) == [1, 2]


async def test_max_length_reject_publish_refuses_the_newest(side: Side) -> None:
    queue = await side.queue("q", max_length=1, overflow="reject_publish")
    assert await queue.ask(Publish("k", "kept")) == 1
    assert await queue.ask(Publish("k", "refused")) == 0
    exchange = await side.exchange("fanout", "x")
    await exchange.ask(Bind(queue))
    assert await exchange.ask(Publish("k", "refused too")) == 0
    assert await drain(queue) == ["kept"]


async def test_delivery_limit_dead_letters_after_n_returns(side: Side) -> None:
    jobs, dead = await dead_letter_setup(side, delivery_limit=1)
    assert await jobs.ask(Publish("k", "poison")) == 1
    seen = []
    with trio.fail_after(5):
        while (delivery := await jobs.ask(Get())) is not None:
            seen.append(delivery.redelivered)
            delivery.nack(requeue=True)
    assert seen == [False, True]  # at most N + 1 deliveries
    letter = await next_delivery(dead)
    assert (letter.body, side.deaths(letter)[0]["reason"]) == ("poison", "delivery_limit")


# --- actors bound to an exchange ----------------------------------------------------------------------------


async def test_an_actor_bound_to_an_exchange_gets_deliveries(side: Side) -> None:
    exchange = await side.exchange("topic", "x")
    probe = await Probe.spawn(side.system)
    await exchange.ask(Bind(probe.ref, "orders.*"))
    assert await exchange.ask(Publish("orders.new", {"id": 1}, {"source": "web"})) == 1
    assert await exchange.ask(Publish("users.new", {"id": 2})) == 0
    with trio.fail_after(5):
        delivery = await probe.expect(Delivery)
    assert (side.logical(delivery.exchange), delivery.routing_key, delivery.body) == ("x", "orders.new", {"id": 1})
    assert user_headers(delivery) == {"source": "web"}
    assert (delivery.delivery_tag, delivery.queue) == (None, None)
    await side.system.stop(probe.ref)
    with trio.fail_after(5):
        while (await exchange.ask(GetStatistics())).bindings:  # noqa: ASYNC110 - unbound once it hears
            await trio.sleep(0.01)

