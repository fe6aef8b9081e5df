"""The Queue actor: consumers, acks, prefetch, requeue, TTL, length limits, dead-lettering and durability.

The rules are RabbitMQ's (design/reference/amqp.md sections 10-14). Consumers are probes that record their
deliveries; the test settles them with ``delivery.ack()`` and friends. Timed tests run on a ``MockClock``.
"""

from __future__ import annotations

import functools
import inspect
import pickle
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorSystem,
    DeadLetter,
    LifecycleEvent,
    Mailbox,
    OneForAll,
    SerializationError,
)
from actors._amqp import (
    Ack,
    Bind,
    Delivery,
    Enqueue,
    EnqueueBatch,
    Get,
    GetStatistics,
    Nack,
    Publish,
    Reject,
    Subscribe,
    Unsubscribe,
)
from actors._exchange import Exchange
from actors._queue import Queue, QueueStatistics
from actors.testing import Probe


async def statistics(queue: ActorRef) -> QueueStatistics:
    result = await queue.ask(GetStatistics())
    assert isinstance(result, QueueStatistics)
    assert result.published == result.ready + result.unacked + result.acked + result.dead_lettered
    return result


async def bodies(queue: ActorRef) -> list[Any]:
    """Drain the ready messages with Get(auto_ack=True): their bodies, in order."""
    found = []
    while (delivery := await queue.ask(Get(auto_ack=True))) is not None:
        found.append(delivery.body)
    return found


async def dead_letter_setup(system: ActorSystem, **options: Any) -> tuple[ActorRef, ActorRef, ActorRef]:
    """A queue "jobs" whose dead letters go through a fanout exchange "dlx" to a queue "dead"."""
    dlx = await system.spawn(Exchange, "fanout", name="dlx")
    dead = await system.spawn(Queue, name="dead")
    await dlx.ask(Bind(dead))
    jobs = await system.spawn(Queue, name="jobs", dead_letter_exchange=dlx, **options)
    return jobs, dlx, dead


# --- publishing and Get -------------------------------------------------------------------------------------


async def test_direct_publish_keeps_the_routing_key(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="jobs")
    assert await queue.ask(Publish("orders.new", {"id": 7}, {"h": 1})) == 1
    delivery = await queue.ask(Get())
    assert delivery == Delivery("", "orders.new", {"id": 7}, {"h": 1}, False, delivery.delivery_tag, queue=queue)
    assert isinstance(delivery.delivery_tag, int)
    assert (await statistics(queue)).unacked == 1
    delivery.ack()
    assert await statistics(queue) == QueueStatistics(ready=0, unacked=0, consumers=0, published=1, delivered=1,
                                                      acked=1, redelivered=0, dead_lettered=0)


async def test_get_on_an_empty_queue_answers_none(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    assert await queue.ask(Get()) is None
    assert await queue.ask(Get(auto_ack=True)) is None


async def test_get_auto_ack_settles_at_once(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    queue.tell(Publish("k", 1))
    delivery = await queue.ask(Get(auto_ack=True))
    assert delivery.body == 1
    stats = await statistics(queue)
    assert (stats.unacked, stats.acked) == (0, 1)


async def test_exchange_routed_message_names_its_exchange(autojump_clock: MockClock,
                                                          actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "direct", name="orders")
    queue = await actor_system.spawn(Queue, name="jobs")
    await exchange.ask(Bind(queue, "new"))
    await exchange.ask(Publish("new", 1))
    delivery = await queue.ask(Get(auto_ack=True))
    assert (delivery.exchange, delivery.routing_key) == ("orders", "new")


# --- consumers ------------------------------------------------------------------------------------------------


async def test_round_robin_over_consumers(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    a, b = await Probe.spawn(actor_system), await Probe.spawn(actor_system)
    await queue.ask(Subscribe(a.ref))
    await queue.ask(Subscribe(b.ref))
    for n in range(6):
        queue.tell(Publish("k", n))
    assert [(await a.expect(Delivery)).body for _ in range(3)] == [0, 2, 4]
    assert [(await b.expect(Delivery)).body for _ in range(3)] == [1, 3, 5]
    stats = await statistics(queue)
    assert (stats.consumers, stats.unacked, stats.delivered) == (2, 6, 6)


async def test_prefetch_limits_unsettled_deliveries(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    consumer = await Probe.spawn(actor_system)
    await queue.ask(Subscribe(consumer.ref, prefetch=2))
    for n in range(5):
        queue.tell(Publish("k", n))
    first = await consumer.expect(Delivery)
    second = await consumer.expect(Delivery)
    await consumer.expect_no_message(1)
    assert (await statistics(queue)).ready == 3
    first.ack()
    assert (await consumer.expect(Delivery)).body == 2
    await consumer.expect_no_message(1)
    second.nack(requeue=False)  # settles too (dropped: no dead-letter exchange)
    assert (await consumer.expect(Delivery)).body == 3


async def test_prefetch_goes_to_consumers_with_room(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    slow, fast = await Probe.spawn(actor_system), await Probe.spawn(actor_system)
    await queue.ask(Subscribe(slow.ref, prefetch=1))
    await queue.ask(Subscribe(fast.ref, prefetch=0))  # 0: no limit
    for n in range(4):
        queue.tell(Publish("k", n))
    assert (await slow.expect(Delivery)).body == 0
    assert [(await fast.expect(Delivery)).body for _ in range(3)] == [1, 2, 3]
    await slow.expect_no_message(1)


async def test_auto_ack_consumer_ignores_prefetch(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    consumer = await Probe.spawn(actor_system)
    await queue.ask(Subscribe(consumer.ref, prefetch=1, auto_ack=True))
    for n in range(3):
        queue.tell(Publish("k", n))
    assert [(await consumer.expect(Delivery)).body for _ in range(3)] == [0, 1, 2]
    stats = await statistics(queue)
    assert (stats.acked, stats.unacked) == (3, 0)


async def test_unsubscribe_stops_deliveries_but_keeps_what_is_held(autojump_clock: MockClock,
                                                                    actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    consumer = await Probe.spawn(actor_system)
    await queue.ask(Subscribe(consumer.ref))
    queue.tell(Publish("k", 1))
    held = await consumer.expect(Delivery)
    await queue.ask(Unsubscribe(consumer.ref))
    queue.tell(Publish("k", 2))
    await consumer.expect_no_message(1)
    stats = await statistics(queue)
    assert (stats.consumers, stats.ready, stats.unacked) == (0, 1, 1)
    held.ack()
    assert (await statistics(queue)).acked == 1


async def test_subscribe_again_changes_the_settings(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    consumer = await Probe.spawn(actor_system)
    await queue.ask(Subscribe(consumer.ref, prefetch=1))
    for n in range(3):
        queue.tell(Publish("k", n))
    await consumer.expect(Delivery)
    await queue.ask(Subscribe(consumer.ref, prefetch=3))
    assert [(await consumer.expect(Delivery)).body for _ in range(2)] == [1, 2]
    assert (await statistics(queue)).consumers == 1


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (Subscribe("me"), ["'me'", "ActorRef"]),  # type: ignore[arg-type]
        (Subscribe(None, prefetch=1), ["None", "ActorRef"]),  # type: ignore[arg-type]
        (Get(auto_ack="yes"), ["'yes'", "True or False"]),  # type: ignore[arg-type]
        (Publish("k" * 256, 1), ["256 bytes"]),
        (Ack("1"), ["'1'", "not outstanding"]),  # type: ignore[arg-type]
        (Enqueue(1, Publish("k", 1)), ["1", "name of an exchange"]),  # type: ignore[arg-type]
        (Enqueue("x", Publish("k", 1, ttl="1")), ["'1'", "seconds"]),  # type: ignore[arg-type]
        (EnqueueBatch(("x",)), ["'x'", "not an Enqueue"]),  # type: ignore[arg-type]
        (EnqueueBatch(None), ["None", "must be a tuple"]),  # type: ignore[arg-type]
        (42, ["42", "does not understand"]),
    ],
)
async def test_bad_input_fails_the_ask_and_the_queue_goes_on(autojump_clock: MockClock, actor_system: ActorSystem,
                                                             message: object, words: list[str]) -> None:
    queue = await actor_system.spawn(Queue)
    await queue.ask(Publish("k", "kept"))
    with pytest.raises(ValueError, match=words[0]) as caught:
        await queue.ask(message)
    for word in words:
        assert word in str(caught.value)
    assert await bodies(queue) == ["kept"]


async def test_bad_prefetch_is_refused(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    consumer = await Probe.spawn(actor_system)
    for prefetch in (-1, 1.5, True):
        with pytest.raises(ValueError, match="prefetch"):
            await queue.ask(Subscribe(consumer.ref, prefetch=prefetch))  # type: ignore[arg-type]
    assert (await statistics(queue)).consumers == 0


@pytest.mark.parametrize(
    "options",
    [
        {"max_length": -1},
        {"max_length": 1.0},
        {"overflow": "reject-publish"},
        {"message_ttl": -1},
        {"message_ttl": "1"},
        {"delivery_limit": -1},
        {"dead_letter_exchange": "dlx"},
        {"dead_letter_routing_key": "k"},  # without a dead-letter exchange
        {"durable": True},  # without storage
        {"durable": 1},
    ],
)
async def test_bad_options_fail_the_spawn(autojump_clock: MockClock, actor_system: ActorSystem,
                                          options: dict[str, Any]) -> None:
    with pytest.raises(ActorFailed) as caught:
        await actor_system.spawn(Queue, name="q", **options)
    assert isinstance(caught.value.cause, ValueError)
    assert actor_system.lookup("q") is None


# --- settling -------------------------------------------------------------------------------------------------


async def test_nack_requeues_at_the_original_position(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    for n in range(4):
        queue.tell(Publish("k", n))
    first = await queue.ask(Get())
    second = await queue.ask(Get())
    second.nack()
    first.nack(requeue=True)
    deliveries = [await queue.ask(Get(auto_ack=True)) for _ in range(4)]
    assert [(d.body, d.redelivered) for d in deliveries] == [(0, True), (1, True), (2, False), (3, False)]
    stats = await statistics(queue)
    assert (stats.delivered, stats.redelivered, stats.acked) == (6, 2, 4)


async def test_reject_never_requeues(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system)
    jobs.tell(Publish("k", 1))
    (await jobs.ask(Get())).reject()
    assert await jobs.ask(Get()) is None  # also: the reject was handled before this
    assert await bodies(dead) == [1]
    assert (await statistics(jobs)).dead_lettered == 1


async def test_unknown_and_double_acks_are_reported_not_fatal(autojump_clock: MockClock,
                                                              actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="jobs")
    dead_letters = await Probe.dead_letters(actor_system)
    queue.tell(Publish("k", 1))
    delivery = await queue.ask(Get())
    delivery.ack()
    delivery.ack()  # twice
    letter = await dead_letters.expect(DeadLetter)
    assert letter.message == Ack(delivery.delivery_tag)
    assert letter.recipient == queue
    assert f"delivery tag {delivery.delivery_tag} is not outstanding" in letter.reason
    assert "<Queue 'jobs' ready=0 unacked=0 consumers=0>" in letter.reason  # the queue's repr
    with pytest.raises(ValueError, match="delivery tag 12345 is not outstanding"):
        await queue.ask(Nack(12345))
    with pytest.raises(ValueError, match="delivery tag 12345"):
        await queue.ask(Reject(12345))
    assert await queue.ask(Publish("k", 2)) == 1  # still running
    assert (await statistics(queue)).acked == 1


async def test_stopped_consumer_deliveries_go_to_the_others(autojump_clock: MockClock,
                                                            actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    leaving, staying = await Probe.spawn(actor_system), await Probe.spawn(actor_system)
    await queue.ask(Subscribe(leaving.ref, prefetch=2))
    for n in range(2):
        queue.tell(Publish("k", n))
    await leaving.expect(Delivery)
    await leaving.expect(Delivery)
    await queue.ask(Subscribe(staying.ref))
    await actor_system.stop(leaving.ref)
    redelivered = [await staying.expect(Delivery) for _ in range(2)]
    assert [(d.body, d.redelivered) for d in redelivered] == [(0, True), (1, True)]
    stats = await statistics(queue)
    assert (stats.consumers, stats.unacked, stats.redelivered) == (1, 2, 2)


class Flaky(Actor):
    """A consumer that forwards its deliveries to ``report`` without settling them, and raises on "crash"."""

    def __init__(self, report: ActorRef) -> None:
        self.report = report

    async def receive(self, message: Any) -> None:
        if message == "crash":
            raise RuntimeError("consumer crashed")
        self.report.tell(message)


async def test_failed_consumer_deliveries_go_to_the_others(autojump_clock: MockClock,
                                                           actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    report, other = await Probe.spawn(actor_system), await Probe.spawn(actor_system)
    flaky = await actor_system.spawn(Flaky, report.ref)
    await queue.ask(Subscribe(flaky, prefetch=1))
    queue.tell(Publish("k", "held"))
    held = await report.expect(Delivery)
    await queue.ask(Subscribe(other.ref))
    flaky.tell("crash")  # it fails (and is restarted) while it holds the delivery
    redelivery = await other.expect(Delivery)
    assert (redelivery.body, redelivery.redelivered) == ("held", True)
    held.ack()  # the failed consumer's delivery was requeued: its tag is no longer outstanding
    redelivery.ack()
    stats = await statistics(queue)
    assert (stats.acked, stats.unacked, stats.consumers) == (1, 0, 2)  # the restarted consumer stays subscribed
    queue.tell(Publish("k", "next"))
    assert (await report.expect(Delivery)).body == "next"  # ... and gets the next message, round-robin


class Slow(Actor):
    """A consumer that blocks in each delivery until ``release`` is set, then acks it and reports its body."""

    def __init__(self, release: trio.Event, report: ActorRef) -> None:
        self.release = release
        self.report = report

    async def receive(self, message: Any) -> None:
        await self.release.wait()
        message.ack()
        self.report.tell(message.body)


async def test_a_consumer_with_a_full_mailbox_waits_its_turn(autojump_clock: MockClock,
                                                             actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    report = await Probe.spawn(actor_system)
    release = trio.Event()
    slow = await actor_system.spawn(Slow, release, report.ref, mailbox=Mailbox(capacity=1, overflow="fail"))
    await queue.ask(Subscribe(slow, prefetch=10))
    for n in range(4):
        queue.tell(Publish("k", n))
    await trio.testing.wait_all_tasks_blocked()
    stats = await statistics(queue)
    assert (stats.delivered, stats.ready) == (1, 3)  # its mailbox took one (capacity 1); the rest wait here
    release.set()
    assert [await report.expect(int) for _ in range(4)] == [0, 1, 2, 3]
    assert (await statistics(queue)).acked == 4


# --- delivery limit -------------------------------------------------------------------------------------------


async def test_delivery_limit_dead_letters_after_n_returns(autojump_clock: MockClock,
                                                           actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, delivery_limit=2)
    jobs.tell(Publish("k", "poison"))
    deliveries = 0
    while (delivery := await jobs.ask(Get())) is not None:
        deliveries += 1
        delivery.nack()
    assert deliveries == 3  # at most N + 1 deliveries
    letter = await dead.ask(Get(auto_ack=True))
    assert letter.body == "poison"
    assert letter.headers["x-death"][0]["reason"] == "delivery_limit"
    assert letter.headers["x-first-death-reason"] == "delivery_limit"


async def test_delivery_limit_counts_consumer_losses(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, delivery_limit=0)
    consumer = await Probe.spawn(actor_system)
    await jobs.ask(Subscribe(consumer.ref))
    jobs.tell(Publish("k", 1))
    await consumer.expect(Delivery)
    await actor_system.stop(consumer.ref)
    await trio.testing.wait_all_tasks_blocked()
    assert await bodies(dead) == [1]


# --- TTL ------------------------------------------------------------------------------------------------------


async def test_message_ttl_expires_and_dead_letters(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, message_ttl=10)
    jobs.tell(Publish("k", 1))
    await trio.sleep(9.5)
    assert (await statistics(jobs)).ready == 1
    await trio.sleep(1)
    assert (await statistics(jobs)).ready == 0
    letter = await dead.ask(Get(auto_ack=True))
    assert letter.body == 1
    assert letter.headers["x-death"] == [
        {"count": 1, "reason": "expired", "queue": "jobs", "exchange": "", "routing-keys": ["k"]}]


async def test_effective_ttl_is_the_smaller_one(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, message_ttl=10)
    jobs.tell(Publish("k", "short", ttl=2))
    await trio.sleep(2.5)
    assert (await statistics(jobs)).ready == 0
    letter = await dead.ask(Get(auto_ack=True))
    assert letter.headers["x-death"][0]["original-expiration"] == 2
    jobs.tell(Publish("k", "long", ttl=20))
    await trio.sleep(10.5)
    assert (await statistics(jobs)).ready == 0


async def test_expiry_happens_at_the_head_only(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system)
    jobs.tell(Publish("k", "long", ttl=10))
    jobs.tell(Publish("k", "short", ttl=1))
    await trio.sleep(5)
    assert (await statistics(jobs)).ready == 2  # "short" waits behind "long"
    await trio.sleep(5.5)
    assert (await statistics(jobs)).ready == 0
    assert await bodies(dead) == ["long", "short"]


async def test_expired_message_is_never_delivered(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system)
    jobs.tell(Publish("k", "stale", ttl=1))
    jobs.tell(Publish("k", "fresh"))
    await trio.sleep(1)  # the head is due now: the next delivery finds it expired
    assert (await jobs.ask(Get(auto_ack=True))).body == "fresh"
    assert await bodies(dead) == ["stale"]


async def test_ttl_zero_reaches_a_waiting_consumer_only(autojump_clock: MockClock,
                                                        actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system)
    jobs.tell(Publish("k", "nobody waits", ttl=0))
    await trio.testing.wait_all_tasks_blocked()
    assert await jobs.ask(Get()) is None
    assert await bodies(dead) == ["nobody waits"]
    consumer = await Probe.spawn(actor_system)
    await jobs.ask(Subscribe(consumer.ref))
    jobs.tell(Publish("k", "delivered", ttl=0))
    assert (await consumer.expect(Delivery)).body == "delivered"


async def test_requeue_keeps_the_original_expiry(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system)
    jobs.tell(Publish("k", 1, ttl=5))
    delivery = await jobs.ask(Get())
    await trio.sleep(6)  # unacked messages do not expire
    assert (await statistics(jobs)).unacked == 1
    delivery.nack()
    await trio.testing.wait_all_tasks_blocked()
    assert await jobs.ask(Get()) is None
    assert await bodies(dead) == [1]


async def test_ttl_without_dead_letter_exchange_is_a_dead_letter_event(autojump_clock: MockClock,
                                                                       actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="jobs", message_ttl=1)
    dead_letters = await Probe.dead_letters(actor_system)
    queue.tell(Publish("k", "gone"))
    letter = await dead_letters.expect(DeadLetter)
    assert letter.message.body == "gone"
    assert "expired" in letter.reason
    assert trio.current_time() == 1


# --- length limits --------------------------------------------------------------------------------------------


async def test_max_length_drop_head_dead_letters_the_oldest(autojump_clock: MockClock,
                                                            actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length=2)
    for n in range(4):
        assert await jobs.ask(Publish("k", n)) == 1  # drop-head confirms every publish
    letters = [await dead.ask(Get(auto_ack=True)) for _ in range(2)]
    assert [(letter.body, letter.headers["x-death"][0]["reason"]) for letter in letters] == [(0, "maxlen"),
                                                                                            (1, "maxlen")]
    assert await bodies(jobs) == [2, 3]


async def test_max_length_counts_ready_messages_only(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length=1)
    jobs.tell(Publish("k", 1))
    held = await jobs.ask(Get())
    assert await jobs.ask(Publish("k", 2)) == 1
    assert (await statistics(jobs)).dead_lettered == 0
    held.nack()  # a requeue is never refused nor dropped: two ready now
    assert (await statistics(jobs)).ready == 2
    assert await bodies(dead) == []


async def test_max_length_zero_drops_every_message(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length=0)
    jobs.tell(Publish("k", 1))
    await trio.testing.wait_all_tasks_blocked()
    letter = await dead.ask(Get(auto_ack=True))
    assert letter.headers["x-death"][0]["reason"] == "maxlen"


async def test_reject_publish_refuses_the_new_message(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length=2, overflow="reject_publish")
    assert [await jobs.ask(Publish("k", n)) for n in range(3)] == [1, 1, 0]
    stats = await statistics(jobs)
    assert (stats.ready, stats.refused, stats.published, stats.dead_lettered) == (2, 1, 2, 0)
    assert await bodies(dead) == []  # refused, not dead-lettered
    held = await jobs.ask(Get())
    assert await jobs.ask(Publish("k", 3)) == 1  # room again (unacked messages do not count)
    held.nack()
    assert (await statistics(jobs)).ready == 3  # the requeue is never refused
    assert await bodies(jobs) == [0, 1, 3]


# --- dead-lettering -------------------------------------------------------------------------------------------


async def test_x_death_headers(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    orders = await actor_system.spawn(Exchange, "direct", name="orders")
    jobs, _, dead = await dead_letter_setup(actor_system)
    await orders.ask(Bind(jobs, "new"))
    await orders.ask(Publish("new", "body", {"app": "shop"}))
    (await jobs.ask(Get())).reject()
    await statistics(jobs)  # the reject is handled: the dead letter is on its way
    letter = await dead.ask(Get(auto_ack=True))
    assert (letter.exchange, letter.routing_key, letter.body) == ("dlx", "new", "body")
    assert letter.headers == {
        "app": "shop",
        "x-death": [{"count": 1, "reason": "rejected", "queue": "jobs", "exchange": "orders",
                     "routing-keys": ["new"]}],
        "x-first-death-reason": "rejected",
        "x-first-death-queue": "jobs",
        "x-first-death-exchange": "orders",
    }
    assert letter.redelivered is False


async def test_repeated_deaths_count_and_move_to_the_front(autojump_clock: MockClock,
                                                           actor_system: ActorSystem) -> None:
    orders = await actor_system.spawn(Exchange, "direct", name="orders")
    dlx = await actor_system.spawn(Exchange, "fanout", name="dlx")
    jobs = await actor_system.spawn(Queue, name="jobs", dead_letter_exchange=dlx)
    retry = await actor_system.spawn(Queue, name="retry", dead_letter_exchange=orders)
    await orders.ask(Bind(jobs, "new"))
    await dlx.ask(Bind(retry))
    await orders.ask(Publish("new", "body"))
    (await jobs.ask(Get())).reject()  # jobs -> retry
    await statistics(jobs)
    (await retry.ask(Get())).reject()  # retry -> orders -> jobs (a cycle with rejections: it goes on)
    await statistics(retry)
    back = await jobs.ask(Get())
    assert [(d["queue"], d["count"]) for d in back.headers["x-death"]] == [("retry", 1), ("jobs", 1)]
    assert (back.headers["x-first-death-queue"], back.headers["x-first-death-exchange"]) == ("jobs", "orders")
    back.reject()  # jobs -> retry again
    await statistics(jobs)
    letter = await retry.ask(Get(auto_ack=True))
    deaths = letter.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [("jobs", "rejected", 2),
                                                                      ("retry", "rejected", 1)]
    assert deaths[0]["exchange"] == "orders"
    assert deaths[1]["exchange"] == "dlx"
    assert letter.headers["x-first-death-queue"] == "jobs"
    assert letter.headers["x-first-death-exchange"] == "orders"


async def test_dead_letter_routing_key(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    dlx = await actor_system.spawn(Exchange, "direct", name="dlx")
    parked = await actor_system.spawn(Queue, name="parked")
    await dlx.ask(Bind(parked, "parked"))
    jobs = await actor_system.spawn(Queue, name="jobs", dead_letter_exchange=dlx, dead_letter_routing_key="parked")
    jobs.tell(Publish("orders.new", 1))
    (await jobs.ask(Get())).nack(requeue=False)
    await statistics(jobs)
    letter = await parked.ask(Get(auto_ack=True))
    assert letter.routing_key == "parked"
    assert letter.headers["x-death"][0]["routing-keys"] == ["orders.new"]


async def test_automatic_dead_letter_cycle_is_dropped(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    # jobs (TTL) -> dlx -> retry (TTL) -> orders -> jobs: a cycle of expiries only, which RabbitMQ ends.
    orders = await actor_system.spawn(Exchange, "fanout", name="orders")
    dlx = await actor_system.spawn(Exchange, "fanout", name="dlx")
    jobs = await actor_system.spawn(Queue, name="jobs", message_ttl=1, dead_letter_exchange=dlx)
    retry = await actor_system.spawn(Queue, name="retry", message_ttl=1, dead_letter_exchange=orders)
    await orders.ask(Bind(jobs))
    await dlx.ask(Bind(retry))
    dead_letters = await Probe.dead_letters(actor_system)
    await orders.ask(Publish("k", "looping"))
    letter = await dead_letters.expect(DeadLetter)
    assert "reached no queue" in letter.reason
    assert trio.current_time() == 2
    await trio.sleep(10)
    assert (await statistics(jobs)).published == 1
    assert (await statistics(retry)).published == 1


async def test_dead_letter_cycle_with_a_rejection_goes_on(autojump_clock: MockClock,
                                                          actor_system: ActorSystem) -> None:
    orders = await actor_system.spawn(Exchange, "fanout", name="orders")
    dlx = await actor_system.spawn(Exchange, "fanout", name="dlx")
    jobs = await actor_system.spawn(Queue, name="jobs", dead_letter_exchange=dlx)
    retry = await actor_system.spawn(Queue, name="retry", message_ttl=1, dead_letter_exchange=orders)
    await orders.ask(Bind(jobs))
    await dlx.ask(Bind(retry))
    await orders.ask(Publish("k", "retried"))
    (await jobs.ask(Get())).reject()  # rejected -> retry, which expires it back to jobs
    await trio.sleep(1.5)
    back = await jobs.ask(Get(auto_ack=True))
    assert back.body == "retried"
    assert [(d["queue"], d["reason"]) for d in back.headers["x-death"]] == [("retry", "expired"),
                                                                           ("jobs", "rejected")]


async def test_dead_letters_to_a_plain_actor(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    jobs = await actor_system.spawn(Queue, name="jobs", dead_letter_exchange=probe.ref)
    jobs.tell(Publish("k", 1))
    (await jobs.ask(Get())).reject()
    letter = await probe.expect(Delivery)
    assert (letter.exchange, letter.body, letter.headers["x-first-death-reason"]) == ("", 1, "rejected")


# --- figures ----------------------------------------------------------------------------------------------------


def test_repr_of_a_queue_not_started() -> None:
    assert repr(Queue()) == "<Queue 'not started' ready=0 unacked=0 consumers=0>"


# --- durability ---------------------------------------------------------------------------------------------------


def stored_rows(path: Path) -> list[tuple[Any, ...]]:
    """The rows of a durable queue's database (read in a worker thread by the tests)."""
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        return db.execute("SELECT seq, routing_key, payload FROM messages ORDER BY seq").fetchall()


async def test_durable_queue_stores_before_confirming(actor_system: ActorSystem, tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=path)
    with trio.fail_after(10):
        assert await queue.ask(Publish("k", {"n": 1}, {"h": "v"})) == 1
    rows = await trio.to_thread.run_sync(stored_rows, path)
    assert [(row[1], pickle.loads(row[2])) for row in rows] == [("k", ({"n": 1}, {"h": "v"}))]


async def test_durable_queue_restores_on_respawn(actor_system: ActorSystem, tmp_path: Path) -> None:
    with trio.fail_after(10):
        queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        for n in range(4):
            assert await queue.ask(Publish("k", n)) == 1
        (await queue.ask(Get())).ack()
        (await queue.ask(Get())).nack()
        assert await queue.ask(Publish("k", 4)) == 1  # writes go in order: the ack and requeue are stored too
        await actor_system.stop(queue)
        assert (tmp_path / "jobs.sqlite3").exists()
        queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        stats = await statistics(queue)
        assert (stats.ready, stats.published) == (4, 4)
        deliveries = [await queue.ask(Get(auto_ack=True)) for _ in range(4)]
        assert [(d.body, d.redelivered) for d in deliveries] == [(1, True), (2, False), (3, False), (4, False)]
        assert await queue.ask(Publish("k", 5)) == 1  # stored after the auto-acks' deletes
        await actor_system.stop(queue)
        queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        assert await bodies(queue) == [5]


class Bomb(Actor):
    """Raises when told to."""

    async def receive(self, message: Any) -> None:
        raise RuntimeError("bang")


class Pair(Actor):
    """Supervises a durable queue and a bomb with OneForAll: the bomb going off restarts the queue too."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage

    async def on_start(self) -> None:
        await self.spawn(Queue, name="jobs", durable=True, storage=self.storage)
        await self.spawn(Bomb, name="bomb")

    async def receive(self, message: Any) -> list[ActorRef]:
        return self.children


async def test_durable_queue_restores_after_a_restart(actor_system: ActorSystem, tmp_path: Path) -> None:
    events = await Probe.spawn(actor_system)
    actor_system.events.subscribe(events.ref, LifecycleEvent)
    with trio.fail_after(10):
        pair = await actor_system.spawn(Pair, tmp_path, supervision=OneForAll(max_restarts=3, within=5))
        queue, bomb = await pair.ask("children")
        for n in range(3):
            assert await queue.ask(Publish("k", n)) == 1
        (await queue.ask(Get())).ack()
        assert await queue.ask(Publish("k", 3)) == 1
        bomb.tell("go off")
        while (event := await events.expect(LifecycleEvent)).ref != queue or event.kind != "restarted":
            pass
        stats = await statistics(queue)
        assert (stats.ready, stats.published, stats.acked) == (3, 3, 0)  # a fresh incarnation, restored
        assert await bodies(queue) == [1, 2, 3]


async def test_durable_confirm_through_an_exchange(actor_system: ActorSystem, tmp_path: Path) -> None:
    exchange = await actor_system.spawn(Exchange, "fanout")
    path = tmp_path / "q.db"
    durable = await actor_system.spawn(Queue, name="durable", durable=True, storage=path)
    transient = await actor_system.spawn(Queue, name="transient")
    await exchange.ask(Bind(durable))
    await exchange.ask(Bind(transient))
    with trio.fail_after(10):
        assert await exchange.ask(Publish("k", "stored")) == 2
    assert len(await trio.to_thread.run_sync(stored_rows, path)) == 1


async def test_durable_queue_refuses_what_it_cannot_store(actor_system: ActorSystem, tmp_path: Path) -> None:
    queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
    with trio.fail_after(10):
        with pytest.raises(SerializationError, match="cannot store"):
            await queue.ask(Publish("k", lambda: None))
        assert await queue.ask(Publish("k", "fine")) == 1
    assert await bodies(queue) == ["fine"]


async def test_durable_storage_that_cannot_open_fails_the_spawn(actor_system: ActorSystem, tmp_path: Path) -> None:
    with trio.fail_after(10), pytest.raises(ActorFailed):
        await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path / "missing" / "jobs.db")
    assert actor_system.lookup("jobs") is None


# Every test above runs under a deadline (virtual time under the mock clock), so that a broken rule fails the
# test instead of leaving it waiting forever for a message that never comes.
def _bounded(test: Any) -> Any:
    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> None:
        with trio.fail_after(60):
            await test(*args, **kwargs)

    return bounded


for _name, _test in list(globals().items()):
    if _name.startswith("test_") and inspect.iscoroutinefunction(_test):
        globals()[_name] = _bounded(_test)
