"""The queue's state as plain code: ordering, round-robin, prefetch, settling, limits, TTL, delivery limit, x-death.

No actor system and no scheduler: the effects are recorded by a fake, time is a number the test sets, and refs
are stand-ins (the state only hashes them and hands them back).
"""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    Lease,
    PendingWrites,
    QueueConsumer,
    QueuedMessage,
    QueueLimits,
    QueueState,
    StoredMessage,
    body_size,
    dead_letter_headers,
    is_dead_letter_cycle,
)


class Ref:
    """A stand-in for an ActorRef: hashable by identity, with a name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<Ref {self.name!r}>"


class Effects:
    """Records what the state asks for; ``full`` holds the consumers whose mailbox refuses."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Any, int, bool]] = []
        self.dead: list[tuple[Any, str]] = []
        self.armed: list[float] = []
        self.released: list[Any] = []
        self.full: set[Any] = set()

    def deliver(self, consumer: QueueConsumer, message: QueuedMessage, tag: int) -> bool:
        if consumer.ref in self.full:
            return False
        self.delivered.append((consumer.ref.name, message.body, tag, message.redelivered))
        return True

    def dead_letter(self, message: QueuedMessage, reason: str) -> None:
        self.dead.append((message.body, reason))

    def arm_expiry(self, delay: float) -> None:
        self.armed.append(delay)

    def release(self, consumer: Any) -> None:
        self.released.append(consumer)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(**limits: Any) -> tuple[QueueState, Effects, Clock]:
    clock = Clock()
    durable = limits.get("durable", False)
    state = QueueState(Ref("q"), QueueLimits(**limits), clock=clock,  # type: ignore[arg-type]
                       writes=PendingWrites() if durable else None)
    effects = Effects()
    state.attach(effects)
    return state, effects, clock


def publish(state: QueueState, body: Any, *, ttl: float | None = None, size: int = 0) -> QueuedMessage:
    message = state.admit("ex", "k", body, None, False, ttl, size)
    state.place(message)
    return message


def invariant(state: QueueState) -> None:
    assert state.published == state.ready + state.unacked + state.acked + state.dead_lettered


def test_get_takes_messages_in_order_and_ack_settles() -> None:
    state, _, _ = make()
    for n in range(3):
        publish(state, n)
    got = state.get(auto_ack=False)
    assert got is not None
    message, tag = got
    assert (message.body, state.ready, state.unacked) == (0, 2, 1)
    assert state.ack(tag) is True
    assert state.ack(tag) is False  # settled already: refused, nothing changes
    assert (state.acked, state.unacked) == (1, 0)
    invariant(state)


def test_round_robin_with_prefetch() -> None:
    state, effects, _ = make()
    a, b = Ref("a"), Ref("b")
    assert state.subscribe(a, prefetch=1, auto_ack=False) is True  # type: ignore[arg-type]
    assert state.subscribe(b, prefetch=1, auto_ack=False) is True  # type: ignore[arg-type]
    for n in range(3):
        publish(state, n)
    assert [(name, body) for name, body, _, _ in effects.delivered] == [("a", 0), ("b", 1)]
    assert state.ready == 1
    state.ack(effects.delivered[0][2])  # a has room again: it gets the next one
    assert effects.delivered[-1][:2] == ("a", 2)
    invariant(state)


def test_nack_requeues_at_the_original_place_and_marks_redelivered() -> None:
    state, _, _ = make()
    for n in range(3):
        publish(state, n)
    first, second = state.get(False), state.get(False)
    assert first is not None
    assert second is not None
    state.nack(second[1], requeue=True)
    state.nack(first[1], requeue=True)
    bodies = []
    while (got := state.get(auto_ack=True)) is not None:
        bodies.append((got[0].body, got[0].redelivered))
    assert bodies == [(0, True), (1, True), (2, False)]
    assert state.redelivered == 2
    invariant(state)


def test_reject_dead_letters_and_the_delivery_limit_bounds_returns() -> None:
    state, effects, _ = make(delivery_limit=1)
    publish(state, "poison")
    for _ in range(2):
        got = state.get(False)
        assert got is not None
        state.nack(got[1], requeue=True)
    assert effects.dead == [("poison", "delivery_limit")]  # at most N + 1 deliveries
    publish(state, "bad")
    got = state.get(False)
    assert got is not None
    state.nack(got[1], requeue=False)
    assert effects.dead[-1] == ("bad", "rejected")
    invariant(state)


def test_a_lost_consumer_gives_its_deliveries_to_the_others() -> None:
    state, effects, _ = make()
    a, b = Ref("a"), Ref("b")
    state.subscribe(a, prefetch=2, auto_ack=False)  # type: ignore[arg-type]
    publish(state, 0)
    publish(state, 1)
    state.subscribe(b, prefetch=0, auto_ack=False)  # type: ignore[arg-type]
    state.consumer_lost(a, stopped=True)  # type: ignore[arg-type]
    assert [(name, body, redelivered) for name, body, _, redelivered in effects.delivered] == [
        ("a", 0, False), ("a", 1, False), ("b", 0, True), ("b", 1, True)]
    assert state.consumers == 1
    invariant(state)


def test_a_failed_consumer_keeps_its_subscription_under_a_new_lease() -> None:
    state, effects, _ = make()
    a = Ref("a")
    state.subscribe(a, prefetch=1, auto_ack=False)  # type: ignore[arg-type]
    publish(state, 0)
    old = Lease()
    state.lease_ended(old, a)  # type: ignore[arg-type]  # not its lease: nothing happens
    assert state.unacked == 1
    consumer = next(iter(state._consumers.values()))
    lease = consumer.lease
    state.lease_ended(lease, a)  # type: ignore[arg-type]
    assert consumer.lease is not lease
    assert effects.delivered[-1][1:] == (0, 2, True)  # redelivered to the same, restarted consumer
    assert state.consumers == 1


def test_unsubscribed_consumer_is_released_once_it_holds_nothing() -> None:
    state, effects, _ = make()
    a = Ref("a")
    state.subscribe(a, prefetch=1, auto_ack=False)  # type: ignore[arg-type]
    publish(state, 0)
    state.unsubscribe(a)  # type: ignore[arg-type]
    assert effects.released == []
    state.ack(effects.delivered[0][2])
    assert effects.released == [a]


def test_a_full_mailbox_leaves_the_message_first_in_line() -> None:
    state, effects, _ = make()
    a = Ref("a")
    effects.full.add(a)
    state.subscribe(a, prefetch=5, auto_ack=False)  # type: ignore[arg-type]
    publish(state, 0)
    publish(state, 1)
    assert (state.delivered, state.ready) == (0, 2)
    effects.full.clear()
    state.subscribe(a, prefetch=5, auto_ack=False)  # type: ignore[arg-type]
    assert [body for _, body, _, _ in effects.delivered] == [0, 1]


@pytest.mark.parametrize(("overflow", "refused"), [("drop_head", False), ("reject_publish", True)])
def test_length_limit(overflow: str, refused: bool) -> None:
    state, effects, _ = make(max_length=2, overflow=overflow)
    assert state.refuses(0) is False
    publish(state, 0)
    publish(state, 1)
    assert state.refuses(0) is refused
    if overflow == "drop_head":
        publish(state, 2)
        assert effects.dead == [(0, "maxlen")]
    assert state.ready == 2
    assert state.describe_limits() == "max_length=2"
    invariant(state)


def test_byte_limit_counts_ready_bodies_only() -> None:
    state, effects, _ = make(max_length_bytes=10)
    publish(state, b"12345", size=5)
    publish(state, b"123456", size=6)
    assert effects.dead == [(b"12345", "maxlen")]
    assert state.ready_bytes == 6
    got = state.get(False)
    assert got is not None
    assert state.ready_bytes == 0


def test_ttl_expires_at_the_head_on_the_given_clock() -> None:
    state, effects, clock = make(message_ttl=10)
    publish(state, "long", ttl=None)
    publish(state, "short", ttl=1)
    assert effects.armed == [10]  # the head's deadline; the short one waits behind it (RabbitMQ)
    clock.now += 5
    state.expire()
    assert effects.dead == []
    clock.now += 5
    state.expire()
    assert effects.dead == [("long", "expired"), ("short", "expired")]
    invariant(state)


def test_attach_rearms_the_expiry_timer() -> None:
    state, effects, _ = make(message_ttl=10)
    publish(state, 0)
    assert effects.armed == [10]
    fresh = Effects()
    state.attach(fresh)  # a restarted actor: its timers are new
    state.dispatch()
    assert fresh.armed == [10]


def test_durable_state_records_its_writes() -> None:
    state, _, _ = make(durable=True)
    message = state.admit("ex", "k", "body", None, True, None)
    state.store(message, b"payload")
    state.place(message)
    got = state.get(False)
    assert got is not None
    state.nack(got[1], requeue=True)
    got = state.get(auto_ack=True)
    assert state.writes is not None
    batch = state.writes.take()
    assert batch.inserts == [(1, "ex", "k", b"payload", 1, None, 0, 0, None)]
    assert batch.updates == [(0, 1, 1), (1, 1, 1)]  # delivered (flagged for a crash), then returned
    assert batch.deletes == [(1,)]
    assert not state.writes


def test_restore_and_adopt_consumers_for_a_durable_restart() -> None:
    old, _, _ = make(durable=True)
    a = Ref("a")
    old.subscribe(a, prefetch=1, auto_ack=False)  # type: ignore[arg-type]
    publish(old, "x")
    old_lease = next(iter(old._consumers.values())).lease
    new = QueueState(Ref("q"), old.limits, first_tag=old.next_tag, writes=PendingWrites())  # type: ignore[arg-type]
    effects = Effects()
    new.attach(effects)
    new.adopt_consumers(old)
    assert old_lease.revoked  # what it was told before the restart is dropped unhandled
    new.restore([StoredMessage(1, "ex", "k", "x", None, False, None, 0, False)])
    assert effects.delivered == [("a", "x", old.next_tag + 1, False)]  # a tag never given before
    assert (new.published, new.unacked, new.consumers) == (1, 1, 1)


def test_x_death_headers_and_cycles() -> None:
    message = QueuedMessage(1, "ex", "k", "body", {"h": 1}, False, 5.0, None, cc=("c",), bcc=("b",))
    headers = dead_letter_headers(message, "jobs", "expired")
    (death,) = headers["x-death"]
    assert (death["queue"], death["reason"], death["count"], death["routing-keys"]) == ("jobs", "expired", 1,
                                                                                          ["k", "c"])
    assert death["original-expiration"] == 5.0
    assert headers["x-first-death-reason"] == "expired"
    assert message.headers == {"h": 1}  # not changed in place
    message.headers = headers
    again = dead_letter_headers(message, "jobs", "expired")
    assert again["x-death"][0]["count"] == 2
    assert is_dead_letter_cycle("jobs", again["x-death"]) is True
    rejected = dead_letter_headers(message, "other", "rejected")
    assert is_dead_letter_cycle("jobs", rejected["x-death"]) is False


def test_body_size_rule() -> None:
    assert body_size(b"abc") == 3
    assert body_size("é") == 2
    assert body_size(memoryview(b"abcd")) == 4
    with pytest.raises(AttributeError):  # what pickle raises for a local function
        body_size(lambda: None)


def test_every_expired_message_at_the_head_is_dropped_before_a_delivery() -> None:
    state, effects, clock = make()
    publish(state, "stale", ttl=1)
    publish(state, "staler", ttl=1)
    publish(state, "fresh")
    clock.now += 1  # both are due exactly now
    got = state.get(auto_ack=True)
    assert got is not None
    assert got[0].body == "fresh"
    assert effects.dead == [("stale", "expired"), ("staler", "expired")]
    invariant(state)


def test_a_consumer_gets_the_first_fresh_message_behind_expired_ones() -> None:
    state, effects, clock = make()
    for body in ("a", "b"):
        publish(state, body, ttl=2)
    publish(state, "c")
    clock.now += 2.5
    state.subscribe(Ref("x"), prefetch=0, auto_ack=True)  # type: ignore[arg-type]
    assert [body for _, body, _, _ in effects.delivered] == ["c"]
    assert effects.dead == [("a", "expired"), ("b", "expired")]


def test_the_expiry_timer_is_armed_for_the_time_left_even_below_a_second() -> None:
    state, effects, clock = make()
    publish(state, "soon", ttl=0.25)
    publish(state, "later", ttl=0.75)
    assert effects.armed == [0.25]
    clock.now += 0.1
    state.expire()  # early: nothing is due, and the timer is set again for what is left
    assert effects.dead == []
    assert effects.armed[-1] == pytest.approx(0.15)
    clock.now += 0.15
    state.expire()
    assert effects.dead == [("soon", "expired")]
    assert effects.armed[-1] == pytest.approx(0.5)
    clock.now += 2
    fresh = Effects()
    state.attach(fresh)  # restarted with the head overdue: the timer goes off at once, never in the past
    state.dispatch()
    assert fresh.armed == [0.0]


def test_an_earlier_deadline_behind_the_head_does_not_rearm() -> None:
    state, effects, _ = make()
    publish(state, "head", ttl=5)
    publish(state, "behind", ttl=1)
    assert effects.armed == [5]


def test_an_unsubscribed_consumer_is_forgotten_when_it_settles_its_last_tag() -> None:
    state, effects, _ = make()
    a = Ref("a")
    state.subscribe(a, prefetch=2, auto_ack=False)  # type: ignore[arg-type]
    publish(state, 0)
    publish(state, 1)
    first, second = (tag for _, _, tag, _ in effects.delivered)
    state.unsubscribe(a)  # type: ignore[arg-type]
    assert state.ack(first)
    assert (effects.released, list(state.consumer_refs())) == ([], [a])  # it still holds one
    assert state.nack(second, requeue=True)
    assert (effects.released, list(state.consumer_refs())) == ([a], [])
    assert (state.ready, len(effects.delivered)) == (1, 2)  # requeued, and not sent to the one that left
    assert state.subscribe(a, prefetch=1, auto_ack=True)  # type: ignore[arg-type]  # a new consumer again


def test_a_stopped_consumer_leaves_the_consumer_table() -> None:
    state, effects, _ = make()
    a = Ref("a")
    state.subscribe(a, prefetch=1, auto_ack=False)  # type: ignore[arg-type]
    publish(state, 0)
    state.consumer_lost(a, stopped=True)  # type: ignore[arg-type]
    assert (state.consumers, state.ready, state.unacked) == (0, 1, 0)
    assert list(state.consumer_refs()) == []
    assert "consumers=0" in repr(state)
    publish(state, 1)
    assert len(effects.delivered) == 1  # nothing more for the stopped one
    state.consumer_lost(a, stopped=True)  # type: ignore[arg-type]  # its Terminated again: nothing happens
    assert state.subscribe(a, prefetch=1, auto_ack=False)  # type: ignore[arg-type]  # a new consumer


def test_a_durable_queue_deletes_what_it_dead_letters() -> None:
    state, effects, clock = make(durable=True)
    for seq, ttl in ((1, None), (2, 1.0)):
        message = state.admit("ex", "k", f"m{seq}", None, True, ttl)
        state.store(message, b"payload")
        state.place(message)
    got = state.get(False)
    assert got is not None
    assert state.nack(got[1], requeue=False)
    clock.now += 1
    state.expire()
    assert effects.dead == [("m1", "rejected"), ("m2", "expired")]
    assert state.writes is not None
    assert state.writes.take().deletes == [(1,), (2,)]


def test_an_x_death_count_that_is_not_an_int_starts_again_at_one() -> None:
    old = [{"queue": "jobs", "reason": "expired", "count": "7"}, {"queue": "other", "reason": "rejected", "count": 2}]
    message = QueuedMessage(1, "ex", "k", "body", {"x-death": old}, False, None, None)
    deaths = dead_letter_headers(message, "jobs", "expired")["x-death"]
    assert [(d["queue"], d["count"]) for d in deaths] == [("jobs", 1), ("other", 2)]
    assert old[0]["count"] == "7"  # the incoming headers are not changed
    message.headers = {"x-death": [{"queue": "jobs", "reason": "expired", "count": 4}]}
    assert dead_letter_headers(message, "jobs", "expired")["x-death"][0]["count"] == 5


def test_a_message_admitted_without_a_size_counts_no_bytes() -> None:
    state, _, _ = make(max_length_bytes=1)
    message = state.admit("ex", "k", "a body", None, False, None)
    assert message.size == 0
    state.place(message)
    assert (state.ready, state.ready_bytes) == (1, 0)


@pytest.mark.parametrize("durable", [True, False])
def test_only_a_durable_open_queue_applies_noted_settlements_when_it_closes(durable: bool) -> None:
    state, _, _ = make(durable=durable)
    publish(state, "a")
    publish(state, "b")
    first, second = state.get(False), state.get(False)
    assert first is not None
    assert second is not None
    state.note_settlement(first[1], None)  # an ack the queue had not handled when it stopped
    state.close()
    state.note_settlement(second[1], None)  # noted after the close: too late
    assert (state.acked, state.unacked) == ((1, 1) if durable else (0, 2))


@pytest.mark.parametrize(("queue_ttl", "row_ttl", "armed"), [(None, 5.0, 5.0), (3, 5.0, 3.0), (3, 2.0, 2.0),
                                                             (3, None, 3.0)])
def test_a_message_stored_without_a_deadline_gets_its_ttl_from_the_restore(
        queue_ttl: float | None, row_ttl: float | None, armed: float) -> None:
    state, effects, clock = make(message_ttl=queue_ttl)
    state.restore([StoredMessage(1, "ex", "k", "old", None, False, row_ttl, 0, False)])
    assert effects.armed == [armed]  # counted from the restore (the clock reads 100), the smaller TTL winning
    clock.now += armed
    state.expire()
    assert effects.dead == [("old", "expired")]
