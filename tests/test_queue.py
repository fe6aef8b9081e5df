"""The Queue actor: consumers, acks, prefetch, requeue, TTL, length limits, dead-lettering and durability.

The rules are RabbitMQ's (design/reference/amqp.md sections 10-14). Consumers are probes that record their
deliveries; the test settles them with ``delivery.ack()`` and friends. Timed tests run on a ``MockClock``.
"""

from __future__ import annotations

import array
import pickle
import sqlite3
import time
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
from actors._exchange import Exchange
from actors._queue import Queue, QueueStatistics
from actors._router_messages import (
    Ack,
    Bind,
    Delivery,
    Enqueue,
    EnqueueBatch,
    EnqueueCC,
    Get,
    GetStatistics,
    Nack,
    Publish,
    Reject,
    Subscribe,
    Unsubscribe,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a broken rule fails its test instead of waiting forever


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


def timeless(deaths: list[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    """``x-death`` without the entries' ``time``, after checking each is wall-clock seconds from ``since`` on."""
    now = time.time()
    for entry in deaths:
        assert isinstance(entry["time"], float)
        assert since <= entry["time"] <= now
    return [{name: value for name, value in entry.items() if name != "time"} for entry in deaths]


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
        (Publish("k", 1, {"CC": "other"}), ["'other'", "list of routing keys"]),
        (Publish("k", 1, {"BCC": [b"other"]}), ["b'other'", "must be a str"]),
        (EnqueueCC("x", Publish("k", 1), ["a"], ()), ["['a']", "tuple of routing keys"]),  # type: ignore[arg-type]
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
        {"max_length_bytes": -1},
        {"max_length_bytes": 1.5},
        {"max_length_bytes": True},
        {"max_length_bytes": "10"},
        {"overflow": "reject-publish"},
        {"overflow": "reject-publish-dlx"},
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
    [(name, value)] = options.items()
    assert name in str(caught.value.cause)  # the message names the argument ...
    assert repr(value) in str(caught.value.cause)  # ... and the value
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
    since = time.time()
    jobs.tell(Publish("k", 1))
    await trio.sleep(9.5)
    assert (await statistics(jobs)).ready == 1
    await trio.sleep(1)
    assert (await statistics(jobs)).ready == 0
    letter = await dead.ask(Get(auto_ack=True))
    assert letter.body == 1
    assert timeless(letter.headers["x-death"], since) == [  # no original-expiration: no per-message ttl
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
    jobs.tell(Publish("k", "staler", ttl=1))
    jobs.tell(Publish("k", "fresh"))
    await trio.testing.wait_all_tasks_blocked()
    # Move the clock without running anything: the Get is queued before the expiry timer can go off, so it is
    # the delivery, not the timer, that finds both messages at the head expired.
    autojump_clock.jump(1)
    assert (await jobs.ask(Get(auto_ack=True))).body == "fresh"
    assert await bodies(dead) == ["stale", "staler"]


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


async def test_reject_publish_dlx_refuses_and_dead_letters(autojump_clock: MockClock,
                                                           actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length=2, overflow="reject_publish_dlx")
    dead_letters = await Probe.dead_letters(actor_system)
    assert [await jobs.ask(Publish("k", n)) for n in range(3)] == [1, 1, 0]  # refused: the confirm is a nack
    jobs.tell(Publish("k", 3))  # refused too, told: it goes to the dead-letter exchange, not the event stream
    await statistics(jobs)
    letters = [await dead.ask(Get(auto_ack=True)) for _ in range(2)]
    assert [letter.body for letter in letters] == [2, 3]
    assert [letter.headers["x-death"][0]["reason"] for letter in letters] == ["maxlen", "maxlen"]
    assert letters[0].headers["x-first-death-queue"] == "jobs"
    stats = await statistics(jobs)
    assert (stats.ready, stats.published, stats.refused, stats.dead_lettered) == (2, 2, 2, 0)
    assert await bodies(jobs) == [0, 1]
    await dead_letters.expect_no_message(1)


async def test_reject_publish_dlx_without_exchange_is_a_dead_letter_event(autojump_clock: MockClock,
                                                                          actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="jobs", max_length=0, overflow="reject_publish_dlx")
    dead_letters = await Probe.dead_letters(actor_system)
    assert await queue.ask(Publish("k", "refused")) == 0
    letter = await dead_letters.expect(DeadLetter)
    assert letter.message.body == "refused"
    assert "maxlen" in letter.reason


async def test_max_length_bytes_drop_head(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length_bytes=10)
    assert (await statistics(jobs)).ready_bytes == 0
    for body in (b"aaaa", b"bbbb"):
        assert await jobs.ask(Publish("k", body)) == 1
    assert (await statistics(jobs)).ready_bytes == 8
    assert await jobs.ask(Publish("k", b"cccccc")) == 1  # 14 bytes: the oldest goes, then 10 is within
    stats = await statistics(jobs)
    assert (stats.ready, stats.ready_bytes, stats.dead_lettered) == (2, 10, 1)
    assert await jobs.ask(Publish("k", b"d" * 11)) == 1  # bigger than the limit: everything goes, itself too
    stats = await statistics(jobs)
    assert (stats.ready, stats.ready_bytes, stats.dead_lettered) == (0, 0, 4)
    letters = [await dead.ask(Get(auto_ack=True)) for _ in range(4)]
    assert [letter.body for letter in letters] == [b"aaaa", b"bbbb", b"cccccc", b"d" * 11]
    assert {letter.headers["x-death"][0]["reason"] for letter in letters} == {"maxlen"}


async def test_max_length_and_max_length_bytes_both_apply(autojump_clock: MockClock,
                                                          actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length=3, max_length_bytes=10)
    for n in range(4):  # one byte each: the count limit drops the oldest
        jobs.tell(Publish("k", str(n)))
    await statistics(jobs)
    assert await bodies(dead) == ["0"]
    assert await jobs.ask(Publish("k", "x" * 8)) == 1  # 4 messages, 11 bytes: drop until 3 and at most 10
    assert await bodies(dead) == ["1"]
    stats = await statistics(jobs)
    assert (stats.ready, stats.ready_bytes) == (3, 10)
    assert await jobs.ask(Publish("k", "y" * 9)) == 1  # 19 bytes: dropping "2" and "3" is not enough
    assert await bodies(dead) == ["2", "3", "x" * 8]
    assert await bodies(jobs) == ["y" * 9]


@pytest.mark.parametrize("overflow", ["reject_publish", "reject_publish_dlx"])
async def test_max_length_bytes_refuses_what_would_exceed_it(autojump_clock: MockClock, actor_system: ActorSystem,
                                                             overflow: str) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length_bytes=10, overflow=overflow)
    assert await jobs.ask(Publish("k", b"123456")) == 1
    assert await jobs.ask(Publish("k", b"12345")) == 0  # 11 would exceed 10
    assert await jobs.ask(Publish("k", b"1234")) == 1  # exactly 10
    assert await jobs.ask(Publish("k", b"")) == 1  # an empty body adds nothing
    assert await jobs.ask(Publish("k", b"1")) == 0
    stats = await statistics(jobs)
    assert (stats.ready, stats.ready_bytes, stats.refused) == (3, 10, 2)
    assert await bodies(dead) == ([b"12345", b"1"] if overflow == "reject_publish_dlx" else [])


async def test_max_length_bytes_counts_ready_messages_only(autojump_clock: MockClock,
                                                           actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, max_length_bytes=4, overflow="reject_publish")
    assert await jobs.ask(Publish("k", b"1234")) == 1
    held = await jobs.ask(Get())
    assert (await statistics(jobs)).ready_bytes == 0  # unacked: not counted
    assert await jobs.ask(Publish("k", b"5678")) == 1
    held.nack()  # a requeue is never refused nor dropped
    stats = await statistics(jobs)
    assert (stats.ready, stats.ready_bytes) == (2, 8)
    assert await jobs.ask(Publish("k", b"")) == 0  # over the limit already: nothing more, not even 0 bytes
    assert await bodies(jobs) == [b"1234", b"5678"]
    assert (await statistics(jobs)).ready_bytes == 0
    assert await bodies(dead) == []


@pytest.mark.parametrize(
    ("body", "size"),
    [
        (b"abc", 3),
        (bytearray(b"abcd"), 4),
        (memoryview(array.array("i", [1, 2])), 2 * array.array("i").itemsize),  # nbytes, not len()
        ("abc", 3),
        ("é€", 5),  # UTF-8: 2 + 3 bytes
        ("", 0),
        ({"id": 7}, len(pickle.dumps({"id": 7}, protocol=pickle.HIGHEST_PROTOCOL))),
        (None, len(pickle.dumps(None, protocol=pickle.HIGHEST_PROTOCOL))),
    ],
)
async def test_body_size_rule(autojump_clock: MockClock, actor_system: ActorSystem, body: Any, size: int) -> None:
    queue = await actor_system.spawn(Queue, max_length_bytes=1000)
    assert await queue.ask(Publish("k", body)) == 1
    assert (await statistics(queue)).ready_bytes == size


async def test_max_length_bytes_refuses_a_body_it_cannot_measure(autojump_clock: MockClock,
                                                                 actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="jobs", max_length_bytes=100)
    with pytest.raises(SerializationError, match="max_length_bytes=100"):
        await queue.ask(Publish("k", lambda: None))
    assert await queue.ask(Publish("k", "fine")) == 1
    stats = await statistics(queue)
    assert (stats.ready, stats.ready_bytes, stats.published) == (1, 4, 1)


async def test_a_queue_without_a_byte_limit_does_not_measure(autojump_clock: MockClock,
                                                             actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue)
    assert await queue.ask(Publish("k", lambda: None)) == 1  # unpicklable, and never measured
    assert (await statistics(queue)).ready_bytes is None


# --- dead-lettering -------------------------------------------------------------------------------------------


async def test_x_death_headers(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    orders = await actor_system.spawn(Exchange, "direct", name="orders")
    jobs, _, dead = await dead_letter_setup(actor_system)
    await orders.ask(Bind(jobs, "new"))
    since = time.time()
    await orders.ask(Publish("new", "body", {"app": "shop"}))
    (await jobs.ask(Get())).reject()
    await statistics(jobs)  # the reject is handled: the dead letter is on its way
    letter = await dead.ask(Get(auto_ack=True))
    assert (letter.exchange, letter.routing_key, letter.body) == ("dlx", "new", "body")
    assert {**letter.headers, "x-death": timeless(letter.headers["x-death"], since)} == {
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


async def cc_setup(system: ActorSystem, **options: Any) -> tuple[ActorRef, ActorRef, dict[str, ActorRef]]:
    """An exchange "orders" -> queue "jobs" (key "k") whose dead letters go to a direct exchange "dlx" with queues
    bound under "k", "c" (a CC key), "b" (a BCC key) and "parked"."""
    orders = await system.spawn(Exchange, "direct", name="orders")
    dlx = await system.spawn(Exchange, "direct", name="dlx")
    queues = {key: await system.spawn(Queue, name=f"dead-{key}") for key in ("k", "c", "b", "parked")}
    for key, queue in queues.items():
        await dlx.ask(Bind(queue, key))
    jobs = await system.spawn(Queue, name="jobs", dead_letter_exchange=dlx, **options)
    await orders.ask(Bind(jobs, "k"))
    return orders, jobs, queues


async def test_dead_letter_routes_on_every_original_key(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    orders, jobs, queues = await cc_setup(actor_system)
    assert await orders.ask(Publish("k", "body", {"CC": ["c"], "BCC": ["b"], "app": "shop"})) == 1
    delivery = await jobs.ask(Get())
    assert delivery.headers == {"CC": ["c"], "app": "shop"}  # BCC is gone, CC stays
    delivery.reject()
    await statistics(jobs)
    letters = {key: await bodies(queue) for key, queue in queues.items()}
    assert letters == {"k": ["body"], "c": ["body"], "b": ["body"], "parked": []}  # routing key, CC and BCC
    jobs.tell(Publish("k", "again", {"CC": ["c"], "BCC": ["b"]}))
    (await jobs.ask(Get())).reject()
    await statistics(jobs)
    letter = await queues["b"].ask(Get(auto_ack=True))
    assert letter.routing_key == "k"
    assert letter.headers["CC"] == ["c"]
    assert "BCC" not in letter.headers
    assert letter.headers["x-death"][0]["routing-keys"] == ["k", "c"]  # CC, not BCC


async def test_dead_letter_routing_key_replaces_every_key(autojump_clock: MockClock,
                                                          actor_system: ActorSystem) -> None:
    orders, jobs, queues = await cc_setup(actor_system, dead_letter_routing_key="parked")
    await orders.ask(Publish("k", "body", {"CC": ["c"], "BCC": ["b"]}))
    (await jobs.ask(Get())).reject()
    await statistics(jobs)
    letters = {key: await bodies(queue) for key, queue in queues.items()}
    assert letters == {"k": [], "c": [], "b": [], "parked": ["body"]}


async def test_dead_letter_keys_survive_another_death(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    # first -> hop (fanout) -> retry -> dlx (direct): the second death still routes on the BCC key.
    _, _, queues = await cc_setup(actor_system)
    dlx = actor_system.lookup("dlx")
    assert dlx is not None
    hop = await actor_system.spawn(Exchange, "fanout", name="hop")
    retry = await actor_system.spawn(Queue, name="retry", dead_letter_exchange=dlx)
    await hop.ask(Bind(retry))
    first = await actor_system.spawn(Queue, name="first", dead_letter_exchange=hop)
    first.tell(Publish("k", "body", {"BCC": ["b"]}))
    (await first.ask(Get())).reject()
    await statistics(first)
    (await retry.ask(Get())).reject()
    await statistics(retry)
    assert await bodies(queues["b"]) == ["body"]


async def test_publish_straight_to_a_queue_drops_bcc(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    queue = await actor_system.spawn(Queue, name="jobs")
    headers = {"CC": ["c"], "BCC": ["b"], "h": 1}
    assert await queue.ask(Publish("k", 1, headers)) == 1  # a queue routes nothing: CC and BCC reach nothing
    assert (await queue.ask(Get(auto_ack=True))).headers == {"CC": ["c"], "h": 1}
    assert headers == {"CC": ["c"], "BCC": ["b"], "h": 1}  # the publisher's dict is not changed


async def test_x_death_time_and_original_expiration(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system, message_ttl=60)
    since = time.time()
    jobs.tell(Publish("k", "short", ttl=1.5))
    jobs.tell(Publish("k", "queue ttl"))
    await trio.sleep(2)
    (await jobs.ask(Get())).reject()
    await statistics(jobs)
    short, plain = [await dead.ask(Get(auto_ack=True)) for _ in range(2)]
    assert timeless(short.headers["x-death"], since) == [
        {"count": 1, "reason": "expired", "queue": "jobs", "exchange": "", "routing-keys": ["k"],
         "original-expiration": 1.5}]  # in seconds, like the ttl it was published with
    assert timeless(plain.headers["x-death"], since) == [  # the queue's TTL is not the message's
        {"count": 1, "reason": "rejected", "queue": "jobs", "exchange": "", "routing-keys": ["k"]}]


async def test_a_repeated_death_keeps_its_first_time(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    orders = await actor_system.spawn(Exchange, "fanout", name="orders")
    jobs = await actor_system.spawn(Queue, name="jobs", dead_letter_exchange=orders)
    await orders.ask(Bind(jobs))
    jobs.tell(Publish("k", 1))
    (await jobs.ask(Get())).reject()  # jobs -> orders -> jobs: a cycle with a rejection goes on
    await statistics(jobs)  # the dead letter, told by jobs to itself, is queued after this
    first = await jobs.ask(Get())
    first.reject()
    await statistics(jobs)
    second = await jobs.ask(Get())
    assert second.headers["x-death"][0]["count"] == 2
    assert second.headers["x-death"][0]["time"] == first.headers["x-death"][0]["time"]


async def test_a_dead_letter_loses_its_ttl(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs, _, dead = await dead_letter_setup(actor_system)
    jobs.tell(Publish("k", "short-lived", ttl=1))
    (await jobs.ask(Get())).reject()
    await statistics(jobs)
    await trio.sleep(10)  # well past its ttl: in "dead" (no message_ttl) it does not expire again
    letter = await dead.ask(Get(auto_ack=True))
    assert letter.body == "short-lived"
    assert letter.headers["x-death"][0]["original-expiration"] == 1
    assert (await statistics(dead)).dead_lettered == 0


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


async def test_durable_queue_keeps_cc_and_bcc_keys(actor_system: ActorSystem, tmp_path: Path) -> None:
    dlx = await actor_system.spawn(Exchange, "direct", name="dlx")
    by_bcc = await actor_system.spawn(Queue, name="by-bcc")
    await dlx.ask(Bind(by_bcc, "b"))
    with trio.fail_after(10):
        queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path,
                                         dead_letter_exchange=dlx)
        assert await queue.ask(Publish("k", "body", {"CC": ["c"], "BCC": ["b"]})) == 1
        await actor_system.stop(queue)
        queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path,
                                         dead_letter_exchange=dlx, max_length_bytes=100)
        assert (await statistics(queue)).ready_bytes == 4  # restored messages are measured too
        delivery = await queue.ask(Get())
        assert delivery.headers == {"CC": ["c"]}
        delivery.reject()
        await statistics(queue)
    letter = await by_bcc.ask(Get(auto_ack=True))
    assert letter.headers["x-death"][0]["routing-keys"] == ["k", "c"]


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


async def test_a_dead_letter_exchange_that_stopped_reaches_no_one(autojump_clock: MockClock,
                                                                   actor_system: ActorSystem) -> None:
    jobs, dlx, dead = await dead_letter_setup(actor_system)
    dead_letters = await Probe.dead_letters(actor_system)
    await actor_system.stop(dlx)
    jobs.tell(Publish("k", "doomed"))
    delivery = await jobs.ask(Get())
    delivery.reject()
    letter = await dead_letters.expect(DeadLetter)
    assert "dead letter (rejected)" in letter.reason
    assert "reached no queue or actor" in letter.reason
    assert letter.message.body == "doomed"
    assert await bodies(dead) == []


async def test_a_batch_is_refused_whole_naming_the_first_message_beyond_the_limit(
        autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs = await actor_system.spawn(Queue, name="jobs", max_length=2, overflow="reject_publish")
    batch = EnqueueBatch(tuple(Enqueue("", Publish("k", n)) for n in range(3)))
    with pytest.raises(ValueError, match=r"refuses Publish\(routing_key='k', body=2, .* \(message 3 of 3 for it\)"):
        await jobs.ask(batch)
    assert (await statistics(jobs)).ready == 0  # none of it
    assert await jobs.ask(EnqueueBatch(batch.entries[:2])) == 2


def test_a_subclass_of_queue_is_never_swapped_for_the_broker_backed_one() -> None:
    class Jobs(Queue):
        pass

    assert type(Jobs.__new__(Jobs, broker="amqp://nowhere")) is Jobs


@pytest.mark.parametrize(("options", "ready_bytes"), [({}, None), ({"max_length_bytes": 10}, 0)])
def test_a_queue_not_started_yet_shows_zeros(options: dict[str, Any], ready_bytes: int | None) -> None:
    assert Queue(**options).statistics() == QueueStatistics(
        ready=0, unacked=0, consumers=0, published=0, delivered=0, acked=0, redelivered=0, dead_lettered=0,
        refused=0, ready_bytes=ready_bytes)


async def test_a_refused_tell_is_a_dead_letter_and_a_refused_ask_is_an_answer(
        autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    jobs = await actor_system.spawn(Queue, name="jobs", max_length=1, overflow="reject_publish")
    dead_letters = await Probe.dead_letters(actor_system)
    assert await jobs.ask(Publish("k", "kept")) == 1
    assert await jobs.ask(Publish("k", "asked")) == 0  # the answer says it: no dead letter
    await dead_letters.expect_no_message(1)
    jobs.tell(Publish("k", "told"))
    letter = await dead_letters.expect(DeadLetter)
    assert letter.message == Publish("k", "told")
    assert "refused: <Queue 'jobs'" in letter.reason
    assert "is full (max_length=1, overflow='reject_publish')" in letter.reason
    assert (await statistics(jobs)).refused == 2


class PlainPair(Actor):
    """Supervises a queue and a bomb with OneForAll: the bomb going off restarts the queue too."""

    async def on_start(self) -> None:
        await self.spawn(Queue, name="jobs")
        await self.spawn(Bomb, name="bomb")

    async def receive(self, message: Any) -> list[ActorRef]:
        return self.children


async def test_a_restarted_queue_still_notices_a_consumer_that_stops(autojump_clock: MockClock,
                                                                     actor_system: ActorSystem) -> None:
    events = await Probe.spawn(actor_system)
    actor_system.events.subscribe(events.ref, LifecycleEvent)
    pair = await actor_system.spawn(PlainPair, supervision=OneForAll(max_restarts=3, within=5))
    queue, bomb = await pair.ask("children")
    consumer = await Probe.spawn(actor_system)
    await queue.ask(Subscribe(consumer.ref))
    queue.tell(Publish("k", "held"))
    assert (await consumer.expect(Delivery)).body == "held"
    bomb.tell("go off")
    while (event := await events.expect(LifecycleEvent)).ref != queue or event.kind != "restarted":
        pass
    assert (await statistics(queue)).unacked == 1  # the consumer and what it holds outlive the restart
    await actor_system.stop(consumer.ref)
    await trio.testing.wait_all_tasks_blocked()
    stats = await statistics(queue)
    assert (stats.consumers, stats.unacked, stats.ready) == (0, 0, 1)  # watched again: its delivery came back


def test_queue_with_a_broker_is_the_broker_backed_queue() -> None:
    for broker in (None, False):
        assert type(Queue(broker=broker)) is Queue
    with pytest.raises(RuntimeError, match=r"^BrokerQueue is not running in an actor system"):
        Queue(broker="amqp://nowhere")  # outside a system its constructor refuses, naming it
