"""The Exchange actor: routing by kind, exchange-to-exchange bindings, alternates, confirms, mandatory, bad input.

The rules are RabbitMQ's (design/reference/amqp.md sections 1-8). Destinations are plain actors (probes, which
receive ``Delivery``) and queues (checked with ``Get`` and their statistics).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from actors import Actor, ActorFailed, ActorRef, ActorSystem, DeadLetter, Mailbox, Unroutable, transaction
from actors._exchange import Exchange, ExchangeStatistics
from actors._queue import Queue
from actors._router_messages import (
    Bind,
    Delivery,
    Get,
    GetStatistics,
    Publish,
    Returned,
    Unbind,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a broken rule fails its test instead of waiting forever


async def spawn_queue(system: ActorSystem, name: str, **options: Any) -> ActorRef:
    return await system.spawn(Queue, name=name, **options)


async def ready(queue: ActorRef) -> list[Any]:
    """Drain a queue with Get(auto_ack=True): the (routing key, body) of every ready message, in order."""
    found = []
    while (delivery := await queue.ask(Get(auto_ack=True))) is not None:
        found.append((delivery.routing_key, delivery.body))
    return found


# --- kinds --------------------------------------------------------------------------------------------------


async def test_direct_routes_on_exact_key(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct", name="direct")
    a, b = await spawn_queue(actor_system, "a"), await spawn_queue(actor_system, "b")
    await exchange.ask(Bind(a, "orders"))
    await exchange.ask(Bind(b, "Orders"))
    await exchange.ask(Bind(b, "orders"))
    assert await exchange.ask(Publish("orders", 1)) == 2
    assert await exchange.ask(Publish("Orders", 2)) == 1
    assert await exchange.ask(Publish("orders.x", 3)) == 0
    assert await ready(a) == [("orders", 1)]
    assert await ready(b) == [("orders", 1), ("Orders", 2)]


async def test_fanout_ignores_keys(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "fanout")
    a, b = await spawn_queue(actor_system, "a"), await spawn_queue(actor_system, "b")
    await exchange.ask(Bind(a, "x"))
    await exchange.ask(Bind(b))
    assert await exchange.ask(Publish("anything", 1)) == 2
    assert await ready(a) == await ready(b) == [("anything", 1)]


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("#", "", True),
        ("*", "", False),
        ("a.*", "a.", True),
        ("a.#", "a", True),
        ("a.*.b", "a..b", True),
        ("a*", "ab", False),
        ("*.b.c", "a.b.c", True),
        ("a.#.b", "a.b", True),
    ],
)
async def test_topic_patterns(
    autojump_clock: MockClock, actor_system: ActorSystem, pattern: str, key: str, matches: bool
) -> None:
    exchange = await actor_system.spawn(Exchange, "topic")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, pattern))
    assert await exchange.ask(Publish(key, "m")) == int(matches)


async def test_topic_with_many_hash_words_routes_fast(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "topic")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, ".".join(["#", "a"] * 20 + ["#", "z"])))
    key = ".".join(["a"] * 100)
    # 21 '#' words against 100 words: a backtracking matcher would not finish; a memoised one takes microseconds.
    assert await exchange.ask(Publish(key, None)) == 0
    assert await exchange.ask(Publish(key + ".z", None)) == 1


@pytest.mark.parametrize(
    ("arguments", "headers", "matches"),
    [
        ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1, "b": "x", "c": 0}, True),
        ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1}, False),
        ({"x-match": "any", "a": 1, "b": "x"}, {"a": 1}, True),
        ({"x-match": "any", "a": 1}, None, False),
        ({"a": 1}, {"a": 1}, True),  # no x-match: all
        ({"x-match": "all", "x-foo": "bar"}, None, True),  # x- keys ignored: nothing to compare, all matches
        ({"x-match": "all-with-x", "x-foo": "bar"}, {"x-foo": "bar"}, True),
        ({"x-match": "all-with-x", "x-foo": "bar"}, {}, False),
        ({"x-match": "any-with-x", "x-first-death-reason": "expired"}, {"x-first-death-reason": "expired"}, True),
        ({"a": None}, {"a": False}, True),  # None: presence
        ({"a": None}, {"b": 1}, False),
        ({"a": 1}, {"a": True}, False),  # strict types: True is not 1
        ({"a": 1}, {"a": 1.0}, False),  # 1 is not 1.0
        ({"a": "1"}, {"a": 1}, False),
    ],
)
async def test_headers_matching(
    autojump_clock: MockClock, actor_system: ActorSystem, arguments: dict[str, Any], headers: Any, matches: bool
) -> None:
    exchange = await actor_system.spawn(Exchange, "headers")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, "ignored", arguments))
    assert await exchange.ask(Publish("whatever", "m", headers)) == int(matches)


# --- plain actors as destinations -----------------------------------------------------------------------------


async def test_plain_actor_receives_delivery(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "topic", name="events")
    probe = await Probe.spawn(actor_system)
    await exchange.ask(Bind(probe.ref, "orders.*"))
    assert await exchange.ask(Publish("orders.new", {"id": 1}, {"h": 1})) == 1
    delivery = await probe.expect(Delivery)
    assert delivery == Delivery("events", "orders.new", {"id": 1}, {"h": 1}, False, None)
    delivery.ack()  # nothing to settle: a no-op
    delivery.nack()
    delivery.reject()
    await probe.expect_no_message(1)


async def test_destination_bound_several_times_gets_one_copy(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    exchange = await actor_system.spawn(Exchange, "topic")
    probe = await Probe.spawn(actor_system)
    queue = await spawn_queue(actor_system, "q")
    for pattern in ("a.b", "a.*", "#", "*.b"):
        await exchange.ask(Bind(probe.ref, pattern))
        await exchange.ask(Bind(queue, pattern))
    assert await exchange.ask(Publish("a.b", 1)) == 2
    await probe.expect(Delivery)
    await probe.expect_no_message(1)
    assert await ready(queue) == [("a.b", 1)]


async def test_bind_is_idempotent_and_unbind_answers_whether_it_existed(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    queue = await spawn_queue(actor_system, "q")
    assert await exchange.ask(Bind(queue, "k")) is True
    assert await exchange.ask(Bind(queue, "k")) is False
    assert (await exchange.ask(GetStatistics())).bindings == 1
    assert await exchange.ask(Unbind(queue, "k")) is True
    assert await exchange.ask(Unbind(queue, "k")) is False
    assert await exchange.ask(Publish("k", 1)) == 0


async def test_same_key_with_other_arguments_is_a_second_binding(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    exchange = await actor_system.spawn(Exchange, "headers")
    queue = await spawn_queue(actor_system, "q")
    assert await exchange.ask(Bind(queue, "", {"a": 1}))
    assert await exchange.ask(Bind(queue, "", {"b": 2}))
    statistics = await exchange.ask(GetStatistics())
    assert (statistics.bindings, statistics.destinations) == (2, 1)
    assert await exchange.ask(Publish("", 1, {"a": 1, "b": 2})) == 1  # still one copy


async def test_stopped_destination_is_unbound(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "fanout")
    probe = await Probe.spawn(actor_system)
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(probe.ref))
    await exchange.ask(Bind(queue, "a"))
    await exchange.ask(Bind(queue, "b"))
    await actor_system.stop(queue)
    assert await exchange.ask(Publish("k", 1)) == 1  # the stopped queue is skipped at once
    await trio.testing.wait_all_tasks_blocked()
    statistics = await exchange.ask(GetStatistics())
    assert (statistics.bindings, statistics.destinations) == (1, 1)
    await actor_system.stop(probe.ref)
    await trio.testing.wait_all_tasks_blocked()
    assert (await exchange.ask(GetStatistics())).bindings == 0
    assert await exchange.ask(Publish("k", 2)) == 0


# --- exchange-to-exchange -------------------------------------------------------------------------------------


async def test_destination_exchange_applies_its_own_kind_to_the_original_key(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    source = await actor_system.spawn(Exchange, "topic", name="src")
    target = await actor_system.spawn(Exchange, "direct", name="dst")
    queue = await spawn_queue(actor_system, "q")
    await source.ask(Bind(target, "a.*"))
    await target.ask(Bind(queue, "a.b"))
    assert await source.ask(Publish("a.b", 1)) == 1
    assert await source.ask(Publish("a.c", 2)) == 0  # reaches dst, which matches nothing: no queue
    deliveries = []
    while (delivery := await queue.ask(Get(auto_ack=True))) is not None:
        deliveries.append(delivery)
    assert [(d.exchange, d.routing_key, d.body) for d in deliveries] == [("src", "a.b", 1)]


async def test_headers_travel_through_exchange_bindings(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    source = await actor_system.spawn(Exchange, "fanout")
    target = await actor_system.spawn(Exchange, "headers")
    queue = await spawn_queue(actor_system, "q")
    await source.ask(Bind(target))
    await target.ask(Bind(queue, "", {"kind": "audit"}))
    assert await source.ask(Publish("", 1, {"kind": "audit"})) == 1
    assert await source.ask(Publish("", 2, {"kind": "other"})) == 0


async def test_exchange_cycle_delivers_one_copy_to_each_queue(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    exchanges = [await actor_system.spawn(Exchange, "fanout", name=f"e{i}") for i in range(3)]
    queues = [await spawn_queue(actor_system, f"q{i}") for i in range(3)]
    for i in range(3):
        await exchanges[i].ask(Bind(exchanges[(i + 1) % 3]))
        await exchanges[i].ask(Bind(queues[i]))
    await exchanges[1].ask(Bind(exchanges[1]))  # bound to itself, too
    for start, exchange in enumerate(exchanges):
        assert await exchange.ask(Publish("k", start)) == 3
    for queue in queues:
        assert await ready(queue) == [("k", 0), ("k", 1), ("k", 2)]


async def test_diamond_of_exchanges_gives_one_copy(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    top = await actor_system.spawn(Exchange, "fanout")
    left = await actor_system.spawn(Exchange, "fanout")
    right = await actor_system.spawn(Exchange, "topic")
    queue = await spawn_queue(actor_system, "q")
    probe = await Probe.spawn(actor_system)
    await top.ask(Bind(left))
    await top.ask(Bind(right))
    for exchange in (left, right):
        await exchange.ask(Bind(queue, "#"))
        await exchange.ask(Bind(probe.ref, "#"))
    assert await top.ask(Publish("k", 1)) == 2
    assert await ready(queue) == [("k", 1)]
    await probe.expect(Delivery)
    await probe.expect_no_message(1)


# --- sender-selected distribution (CC / BCC) --------------------------------------------------------------


async def test_cc_keys_are_extra_routing_keys(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct", name="default")
    queues = [await spawn_queue(actor_system, name) for name in ("q1", "q2", "q3", "q4")]
    for queue in queues:
        await exchange.ask(Bind(queue, queue.name))
    assert await exchange.ask(Publish("q1", "m", {"CC": ["q2", "q3"]})) == 3
    for queue in queues[:3]:
        delivery = await queue.ask(Get(auto_ack=True))
        assert (delivery.exchange, delivery.routing_key, delivery.body) == ("default", "q1", "m")
        assert delivery.headers == {"CC": ["q2", "q3"]}  # CC is kept
        assert await queue.ask(Get()) is None  # one copy each
    assert await ready(queues[3]) == []


async def test_bcc_keys_route_and_are_removed(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    queue = await spawn_queue(actor_system, "q")
    probe = await Probe.spawn(actor_system)
    await exchange.ask(Bind(queue, "secret"))
    await exchange.ask(Bind(probe.ref, "copy"))
    headers = {"BCC": ["secret", "copy"], "app": "shop"}
    assert await exchange.ask(Publish("nobody", "m", headers)) == 2
    assert (await queue.ask(Get(auto_ack=True))).headers == {"app": "shop"}
    assert (await probe.expect(Delivery)).headers == {"app": "shop"}
    assert headers == {"BCC": ["secret", "copy"], "app": "shop"}  # the publisher's dict is not changed


async def test_cc_and_bcc_overlaps_give_one_copy(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "topic")
    queue = await spawn_queue(actor_system, "q")
    probe = await Probe.spawn(actor_system)
    for pattern in ("a.*", "b.#"):
        await exchange.ask(Bind(queue, pattern))
        await exchange.ask(Bind(probe.ref, pattern))
    publish = Publish("a.x", 1, {"CC": ["a.y", "b", "a.x", "b"], "BCC": ["b.z", "a.x"]})
    assert await exchange.ask(publish) == 2
    assert await ready(queue) == [("a.x", 1)]
    await probe.expect(Delivery)
    await probe.expect_no_message(1)


async def test_empty_or_unknown_cc_keys_are_harmless(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, "k"))
    assert await exchange.ask(Publish("k", 1, {"CC": [], "BCC": []})) == 1
    assert await exchange.ask(Publish("k", 2, {"CC": ("nowhere",), "BCC": ["else"]})) == 1  # a tuple is an array
    assert await exchange.ask(Publish("other", 3, {"CC": ["nowhere"]})) == 0
    assert [(await queue.ask(Get(auto_ack=True))).headers for _ in range(2)] == [{"CC": []}, {"CC": ("nowhere",)}]


async def test_cc_keys_are_matched_at_every_hop(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    source = await actor_system.spawn(Exchange, "topic", name="src")
    target = await actor_system.spawn(Exchange, "direct", name="dst")
    queue = await spawn_queue(actor_system, "q")
    await source.ask(Bind(target, "a.*"))
    await target.ask(Bind(queue, "b"))
    # "a.x" takes the message to dst; there, only the CC key "b" matches.
    assert await source.ask(Publish("a.x", 1, {"CC": ["b"]})) == 1
    # The other way round: only the BCC key reaches dst, where the routing key matches.
    assert await source.ask(Publish("b", 2, {"BCC": ["a.y"]})) == 1
    assert await ready(queue) == [("a.x", 1), ("b", 2)]


async def test_fanout_and_headers_exchanges_ignore_cc_keys(autojump_clock: MockClock,
                                                           actor_system: ActorSystem) -> None:
    fanout = await actor_system.spawn(Exchange, "fanout")
    headers = await actor_system.spawn(Exchange, "headers")
    queue = await spawn_queue(actor_system, "q")
    await fanout.ask(Bind(queue, "x"))
    await headers.ask(Bind(queue, "x", {"kind": "audit"}))
    assert await fanout.ask(Publish("k", 1, {"CC": ["x", "y"], "BCC": ["z"]})) == 1
    assert await headers.ask(Publish("k", 2, {"CC": ["x"]})) == 0  # keys are no headers match
    assert await ready(queue) == [("k", 1)]


async def test_alternate_is_used_only_when_no_key_matches(autojump_clock: MockClock,
                                                          actor_system: ActorSystem) -> None:
    alternate = await actor_system.spawn(Exchange, "fanout")
    exchange = await actor_system.spawn(Exchange, "direct", alternate=alternate)
    known, unrouted = await spawn_queue(actor_system, "known"), await spawn_queue(actor_system, "unrouted")
    await exchange.ask(Bind(known, "known"))
    await alternate.ask(Bind(unrouted))
    assert await exchange.ask(Publish("unknown", 1, {"CC": ["known"]})) == 1  # a CC key matched: no alternate
    assert await exchange.ask(Publish("unknown", 2, {"BCC": ["other"]})) == 1  # none matched: the alternate
    assert await ready(known) == [("unknown", 1)]
    assert await ready(unrouted) == [("unknown", 2)]


async def test_mandatory_counts_cc_destinations(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, "q"))
    assert await exchange.ask(Publish("nowhere", 1, {"BCC": ["q"]}, mandatory=True)) == 1
    with pytest.raises(Unroutable):
        await exchange.ask(Publish("nowhere", 2, {"BCC": ["elsewhere"]}, mandatory=True))


async def test_a_bad_cc_tell_becomes_a_dead_letter(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, "k"))
    dead = await Probe.dead_letters(actor_system)
    exchange.tell(Publish("k", 1, {"CC": "q"}))
    letter = await dead.expect(DeadLetter)
    assert letter.recipient == exchange
    assert "CC='q'" in letter.reason
    assert await ready(queue) == []


async def test_transaction_routes_on_cc_and_bcc(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    queues = [await spawn_queue(actor_system, name) for name in ("q1", "q2", "q3")]
    probe = await Probe.spawn(actor_system)
    for queue in queues:
        await exchange.ask(Bind(queue, queue.name))
    await exchange.ask(Bind(probe.ref, "q3"))
    async with transaction(actor_system) as tx:
        tx.publish(exchange, "q1", "m", {"CC": ["q2"], "BCC": ["q3"]})
        tx.publish(queues[0], "direct", "n", {"BCC": ["q2"]})  # straight to a queue: BCC routes nothing
    assert tx.routed == 5
    assert [(await queue.ask(Get(auto_ack=True))).headers for queue in queues] == [{"CC": ["q2"]}] * 3
    assert (await probe.expect(Delivery)).headers == {"CC": ["q2"]}
    direct = await queues[0].ask(Get(auto_ack=True))
    assert (direct.body, direct.headers) == ("n", {})
    with pytest.raises(ValueError, match="BCC"):
        async with transaction(actor_system) as tx:
            tx.publish(exchange, "q1", "m", {"BCC": "q2"})


# --- alternate exchanges --------------------------------------------------------------------------------------


async def test_alternate_gets_only_what_matched_nothing(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    alternate = await actor_system.spawn(Exchange, "fanout", name="ae")
    exchange = await actor_system.spawn(Exchange, "direct", name="main", alternate=alternate)
    main_queue, unrouted = await spawn_queue(actor_system, "main-q"), await spawn_queue(actor_system, "unrouted")
    await exchange.ask(Bind(main_queue, "known"))
    await alternate.ask(Bind(unrouted))
    assert await exchange.ask(Publish("known", 1)) == 1
    assert await exchange.ask(Publish("unknown", 2, mandatory=True)) == 1  # routed through the AE: no return
    assert await ready(main_queue) == [("known", 1)]
    delivery = await unrouted.ask(Get(auto_ack=True))
    assert (delivery.exchange, delivery.routing_key, delivery.body) == ("main", "unknown", 2)
    assert await unrouted.ask(Get()) is None


async def test_alternate_chain_and_its_kind(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    last = await actor_system.spawn(Exchange, "fanout")
    middle = await actor_system.spawn(Exchange, "topic", alternate=last)
    first = await actor_system.spawn(Exchange, "direct", alternate=middle)
    topic_queue, last_queue = await spawn_queue(actor_system, "t"), await spawn_queue(actor_system, "l")
    await middle.ask(Bind(topic_queue, "a.#"))
    await last.ask(Bind(last_queue))
    assert await first.ask(Publish("a.b", 1)) == 1  # the AE routes with its own kind (topic)
    assert await first.ask(Publish("b", 2)) == 1  # the AE matched nothing: its own AE
    assert await ready(topic_queue) == [("a.b", 1)]
    assert await ready(last_queue) == [("b", 2)]


async def test_alternate_not_used_when_an_exchange_destination_routes_nowhere(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    alternate = await actor_system.spawn(Exchange, "fanout")
    inner = await actor_system.spawn(Exchange, "direct")
    exchange = await actor_system.spawn(Exchange, "fanout", alternate=alternate)
    unrouted = await spawn_queue(actor_system, "unrouted")
    await alternate.ask(Bind(unrouted))
    await exchange.ask(Bind(inner))
    assert await exchange.ask(Publish("k", 1)) == 0
    assert await ready(unrouted) == []


async def test_alternate_chain_stops_at_a_visited_exchange(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    # An alternate is named at spawn, so a cycle of alternates goes through a binding: e1's alternate is e2,
    # and e2 is bound to e1. Each exchange is routed at most once per publish, alternates included.
    e1_alternate_target = await spawn_queue(actor_system, "q")
    e2 = await actor_system.spawn(Exchange, "direct", name="e2")
    e1 = await actor_system.spawn(Exchange, "direct", name="e1", alternate=e2)
    await e1.ask(Bind(e1_alternate_target, "only"))
    await e2.ask(Bind(e1, "k"))
    # e1 matches nothing for "k" -> alternate e2 -> bound to e1 for "k": e1 already visited, so nothing.
    assert await e1.ask(Publish("k", 1)) == 0
    # e2 for "k" -> e1 (matches nothing) -> e1's alternate is e2: visited, stop.
    assert await e2.ask(Publish("k", 2)) == 0
    assert await ready(e1_alternate_target) == []


async def test_missing_or_stopped_alternate_counts_as_none(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    alternate = await actor_system.spawn(Exchange, "fanout")
    queue = await spawn_queue(actor_system, "q")
    await alternate.ask(Bind(queue))
    exchange = await actor_system.spawn(Exchange, "direct", alternate=alternate)
    assert await exchange.ask(Publish("k", 1, mandatory=True)) == 1
    await actor_system.stop(alternate)
    with pytest.raises(Unroutable):
        await exchange.ask(Publish("k", 2, mandatory=True))
    plain = await Probe.spawn(actor_system)
    with pytest.raises(ActorFailed) as caught:  # an alternate must be an exchange
        await actor_system.spawn(Exchange, "direct", alternate=plain.ref)
    assert isinstance(caught.value.cause, ValueError)
    assert "is not an Exchange" in str(caught.value.cause)


# --- confirms and mandatory -----------------------------------------------------------------------------------


async def test_confirm_counts_final_destinations_only(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    source = await actor_system.spawn(Exchange, "fanout")
    inner = await actor_system.spawn(Exchange, "fanout")
    full = await spawn_queue(actor_system, "full", max_length=0, overflow="reject_publish")
    open_queue = await spawn_queue(actor_system, "open")
    probe = await Probe.spawn(actor_system)
    for destination in (inner, full, probe.ref):
        await source.ask(Bind(destination))
    await inner.ask(Bind(open_queue))
    # inner: not counted; full: refused (not counted); open (through inner) and the probe: counted.
    assert await source.ask(Publish("k", 1)) == 2
    assert (await full.ask(GetStatistics())).refused == 1


async def test_mandatory_ask_raises_unroutable_and_the_exchange_goes_on(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    exchange = await actor_system.spawn(Exchange, "direct", name="orders")
    with pytest.raises(Unroutable, match="orders"):
        await exchange.ask(Publish("nowhere", 1, mandatory=True))
    assert await exchange.ask(Publish("nowhere", 1)) == 0  # not mandatory: dropped silently
    statistics = await exchange.ask(GetStatistics())
    assert (statistics.published, statistics.unroutable) == (2, 2)


class Publisher(Actor):
    """Tells its exchange whatever it is told to publish, and reports what comes back."""

    def __init__(self, exchange: ActorRef, report: ActorRef) -> None:
        self.exchange = exchange
        self.report = report

    async def receive(self, message: Any) -> None:
        if isinstance(message, Publish):
            self.exchange.tell(message)
        else:
            self.report.tell(message)


async def test_mandatory_tell_returns_to_the_sending_actor(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    report = await Probe.spawn(actor_system)
    publisher = await actor_system.spawn(Publisher, exchange, report.ref)
    unroutable = Publish("nowhere", "body", mandatory=True)
    publisher.tell(unroutable)
    assert await report.expect(Returned) == Returned(unroutable)
    publisher.tell(Publish("nowhere", "quiet"))  # not mandatory: nothing comes back
    await report.expect_no_message(1)


async def test_mandatory_tell_from_outside_becomes_a_dead_letter(
    autojump_clock: MockClock, actor_system: ActorSystem
) -> None:
    exchange = await actor_system.spawn(Exchange, "direct")
    dead = await Probe.dead_letters(actor_system)
    exchange.tell(Publish("nowhere", "body", mandatory=True))
    letter = await dead.expect(DeadLetter)
    assert letter.message == Publish("nowhere", "body", mandatory=True)
    assert letter.reason == "unroutable"


# --- bad input --------------------------------------------------------------------------------------------------


async def test_unknown_kind_fails_the_spawn() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as caught:
            await system.spawn(Exchange, "Topic", name="events")
        assert isinstance(caught.value.cause, ValueError)
        assert "'Topic'" in str(caught.value.cause)
        assert system.lookup("events") is None


async def test_bad_alternate_fails_the_spawn(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    with pytest.raises(ActorFailed) as caught:
        await actor_system.spawn(Exchange, "direct", alternate="ae")
    assert isinstance(caught.value.cause, ValueError)


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (Publish("a" * 256, 1), ["256 bytes", "255"]),
        (Publish("é" * 128, 1), ["256 bytes", "255"]),
        (Publish(42, 1), ["42", "str"]),  # type: ignore[arg-type]
        (Publish("k", 1, headers=["a"]), ["['a']", "mapping"]),  # type: ignore[arg-type]
        (Publish("k", 1, ttl=-1), ["-1", "seconds"]),
        (Publish("k", 1, mandatory="yes"), ["'yes'", "True or False"]),  # type: ignore[arg-type]
        (Publish("k", 1, persistent=1), ["persistent=1", "True or False"]),  # type: ignore[arg-type]
        (Publish("k", 1, {"CC": "q2"}), ["CC='q2'", "list of routing keys"]),
        (Publish("k", 1, {"CC": None}), ["CC=None", "list of routing keys"]),
        (Publish("k", 1, {"BCC": {"q2"}}), ["BCC={'q2'}", "list of routing keys"]),
        (Publish("k", 1, {"CC": ["ok", 7]}), ["['ok', 7]", "7 is a int"]),
        (Publish("k", 1, {"BCC": ["x" * 256]}), ["BCC routing key", "256 bytes"]),
        (Bind("not a ref", "k"), ["'not a ref'", "ActorRef"]),  # type: ignore[arg-type]
        ("hello", ["'hello'", "does not understand"]),
    ],
)
async def test_bad_input_fails_the_ask_and_changes_nothing(
    autojump_clock: MockClock, actor_system: ActorSystem, message: object, words: list[str]
) -> None:
    exchange = await actor_system.spawn(Exchange, "topic")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, "#"))
    with pytest.raises(ValueError, match=re.escape(words[0])) as caught:
        await exchange.ask(message)
    for word in words:
        assert word in str(caught.value)
    statistics = await exchange.ask(GetStatistics())
    assert (statistics.bindings, statistics.published) == (1, 0)
    assert (await queue.ask(GetStatistics())).published == 0
    assert await exchange.ask(Publish("k", "still routing")) == 1


async def test_bad_binding_changes_nothing(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    headers = await actor_system.spawn(Exchange, "headers")
    topic = await actor_system.spawn(Exchange, "topic")
    queue = await spawn_queue(actor_system, "q")
    with pytest.raises(ValueError, match="x-match 'ALL'"):
        await headers.ask(Bind(queue, "", {"x-match": "ALL", "a": 1}))
    with pytest.raises(ValueError, match="x-match"):
        await headers.ask(Bind(queue, "", {"x-match": 1}))
    with pytest.raises(ValueError, match="255"):
        await topic.ask(Bind(queue, "a." * 128))
    with pytest.raises(ValueError, match="str"):
        await topic.ask(Unbind(queue, None))  # type: ignore[arg-type]
    for exchange in (headers, topic):
        assert (await exchange.ask(GetStatistics())).bindings == 0
    assert await headers.ask(Bind(queue, "", {"x-match": "any", "a": 1})) is True


async def test_bad_tell_becomes_a_dead_letter(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "topic")
    dead = await Probe.dead_letters(actor_system)
    exchange.tell(Publish("x" * 300, 1))
    letter = await dead.expect(DeadLetter)
    assert letter.recipient == exchange
    assert "255" in letter.reason
    assert await exchange.ask(Publish("ok", 1)) == 0  # still running


async def test_a_long_valid_key_routes(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "topic")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, "a.#"))
    assert await exchange.ask(Publish(".".join(["a"] * 128), 1)) == 1  # 255 bytes


class Stuck(Actor):
    """Blocks in its first message until ``release`` is set; reports what it gets."""

    def __init__(self, release: trio.Event, report: ActorRef) -> None:
        self.release = release
        self.report = report

    async def receive(self, message: Any) -> None:
        await self.release.wait()
        self.report.tell(message)


async def test_a_full_mailbox_loses_its_copy_not_the_exchange(autojump_clock: MockClock,
                                                               actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "fanout")
    report = await Probe.spawn(actor_system)
    release = trio.Event()
    stuck = await actor_system.spawn(Stuck, release, report.ref, mailbox=Mailbox(capacity=1, overflow="fail"))
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(stuck))
    await exchange.ask(Bind(queue))
    dead = await Probe.dead_letters(actor_system)
    assert await exchange.ask(Publish("k", 1)) == 2  # handled: stuck in it
    await trio.testing.wait_all_tasks_blocked()
    assert await exchange.ask(Publish("k", 2)) == 2  # queued in the mailbox
    assert await exchange.ask(Publish("k", 3)) == 1  # refused by the full mailbox: not counted
    letter = await dead.expect(DeadLetter)
    assert (letter.recipient, letter.message.body) == (stuck, 3)
    assert "overflow" in letter.reason
    release.set()
    assert [(await report.expect(Delivery)).body for _ in range(2)] == [1, 2]
    assert (await queue.ask(GetStatistics())).published == 3


# --- figures ----------------------------------------------------------------------------------------------------


async def test_statistics_and_repr(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "topic", name="events")
    queue = await spawn_queue(actor_system, "q")
    await exchange.ask(Bind(queue, "a.*"))
    await exchange.ask(Bind(queue, "b.*"))
    await exchange.ask(Publish("a.x", 1))
    await exchange.ask(Publish("c.x", 1))
    assert await exchange.ask(GetStatistics()) == ExchangeStatistics(
        kind="topic", bindings=2, destinations=1, published=2, unroutable=1)
    assert repr(exchange) == "<ActorRef 'events'>"


def test_exchange_repr_shows_its_state() -> None:
    text = repr(Exchange("fanout"))
    assert text == "<Exchange 'not started' fanout bindings=0 published=0>"
