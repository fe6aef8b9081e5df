"""Durable queues keep their word: settlements made before a stop, absolute deadlines, crash flags, clear refusals.

These use real SQLite on worker threads, so waits are bounded with ``trio.fail_after`` (the deadline marker) on
trio's real clock; nothing sleeps. The store-level tests drive :class:`~runtime.QueueState` with fake clocks.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorSystem,
    Delivery,
    Get,
    GetStatistics,
    Publish,
    Queue,
    QueueStatistics,
    StorageError,
    Subscribe,
)
from actors.testing import Probe
from runtime import PendingWrites, QueueLimits, QueueState, SQLiteStore, encode_payload

pytestmark = pytest.mark.deadline(30)


async def statistics(queue: ActorRef) -> QueueStatistics:
    stats: QueueStatistics = await queue.ask(GetStatistics())
    return stats


async def drain(queue: ActorRef) -> list[tuple[Any, bool]]:
    """Every ready message's (body, redelivered), taken with auto-ack."""
    taken = []
    while (delivery := await queue.ask(Get(auto_ack=True))) is not None:
        taken.append((delivery.body, delivery.redelivered))
    return taken


async def held_deliveries(system: ActorSystem, queue: ActorRef, count: int) -> list[Delivery]:
    """Subscribe a probe that holds ``count`` deliveries without settling them."""
    probe = await Probe.spawn(system)
    await queue.ask(Subscribe(probe.ref, prefetch=0))
    return [await probe.expect(Delivery) for _ in range(count)]


# --- settlements a stop overtook ------------------------------------------------------------------------------


async def test_acks_a_stop_overtakes_are_honoured(tmp_path: Path) -> None:
    async with ActorSystem(name="durable") as system:
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        for n in range(10):
            assert await queue.ask(Publish("k", n)) == 1
        deliveries = await held_deliveries(system, queue, 10)
        for delivery in deliveries[:9]:
            delivery.ack()  # told, not handled yet:
        await system.stop(queue)  # the stop overtakes them (system messages first)
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        assert await drain(queue) == [(9, True)]


async def test_nacks_and_rejects_a_stop_overtakes_are_honoured(tmp_path: Path) -> None:
    async with ActorSystem(name="durable") as system:
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        for n in range(3):
            assert await queue.ask(Publish("k", n)) == 1
        first, second, third = await held_deliveries(system, queue, 3)
        first.reject()
        second.nack(requeue=False)
        third.nack(requeue=True)
        await system.stop(queue)
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        assert await drain(queue) == [(2, True)]


class AckAndStop(Actor):
    """Acks each delivery, and stops its queue right after the fifth ack (the acks still queued there)."""

    def __init__(self, system: ActorSystem) -> None:
        self.count = 0
        self.actor_system = system

    async def receive(self, message: Any) -> None:
        message.ack()
        self.count += 1
        if self.count == 5:
            await self.actor_system.stop(message.queue)


async def test_acks_made_while_a_write_is_in_flight_survive_a_clean_shutdown(tmp_path: Path) -> None:
    async with ActorSystem(name="durable") as system:
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        consumer = await system.spawn(AckAndStop, system)
        await queue.ask(Subscribe(consumer, prefetch=0))
        confirms = [queue.request(Publish("k", n)) for n in range(5)]
        for confirm in confirms:
            assert await confirm == 1
        watcher = await Probe.spawn(system)
        await watcher.expect_terminated(queue)
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        assert await drain(queue) == []


# --- what a crash leaves --------------------------------------------------------------------------------------


def stored_flags(path: Path) -> list[tuple[int, int]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT seq, redelivered FROM messages ORDER BY seq").fetchall()


async def test_a_delivered_message_is_stored_as_delivered(tmp_path: Path) -> None:
    """What a crash leaves behind flags every delivered, unacked message: it comes back ``redelivered``."""
    async with ActorSystem(name="durable") as system:
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        for n in range(3):
            assert await queue.ask(Publish("k", n)) == 1
        assert (await queue.ask(Get())).body == 0  # delivered, not acked
        assert await queue.ask(Publish("k", 3)) == 1  # stored after the delivery's flag (writes keep order)
        rows = await trio.to_thread.run_sync(stored_flags, tmp_path / "jobs.sqlite3")
        assert rows == [(1, 1), (2, 0), (3, 0), (4, 0)]


def test_a_deadline_is_absolute_across_restores(tmp_path: Path) -> None:
    """A message's TTL does not start again when a durable queue is restored in another process."""
    now, wall = [50.0], [1000.0]
    limits = QueueLimits(durable=True, message_ttl=10)
    first = QueueState(object(), limits, clock=lambda: now[0], wall_clock=lambda: wall[0],  # type: ignore[arg-type]
                       writes=PendingWrites())
    message = first.admit("", "k", "body", None, False, None)
    first.store(message, encode_payload("body", None))
    store = SQLiteStore(tmp_path, "jobs")
    store.open()
    assert first.writes is not None
    store.write(first.writes.take())
    loaded = store.load()
    store.close()
    now[0], wall[0] = 7.0, 1008.0  # another process: its trio clock starts elsewhere; 8 s went by
    second = QueueState(object(), limits, clock=lambda: now[0], wall_clock=lambda: wall[0],  # type: ignore[arg-type]
                        writes=PendingWrites())
    dead: list[str] = []

    class Effects:
        def deliver(self, *args: Any) -> bool:
            return True

        def dead_letter(self, message: Any, reason: str) -> None:
            dead.append(reason)

        def arm_expiry(self, delay: float) -> None:
            pass

        def release(self, consumer: Any) -> None:
            pass

    second.attach(Effects())
    second.restore(loaded)
    now[0] = 8.9  # 9.9 s after it was published: still there
    second.expire()
    assert (second.ready, dead) == (1, [])
    now[0] = 9.1  # 10.1 s after it was published: expired, though it was restored only 2.1 s ago
    second.expire()
    assert (second.ready, dead) == (0, ["expired"])


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "error"), [
    ({"durable": True}, r"durable queue needs a name"),  # an unnamed one, whatever its storage
    ({"storage": "jobs.db"}, r"storage='jobs\.db' is used only by a durable queue"),
])
async def test_unnamed_durable_and_storage_without_durable_are_refused(tmp_path: Path, options: dict[str, Any],
                                                                       error: str) -> None:
    options = {**options, "storage": tmp_path} if options.get("durable") else options
    async with ActorSystem(name="durable") as system:
        with pytest.raises(ActorFailed) as info:
            await system.spawn(Queue, **options)
        assert isinstance(info.value.cause, ValueError)
        assert re.search(error, str(info.value.cause))
        assert list(await trio.Path(tmp_path).iterdir()) == []  # nothing stored under a generated name


@pytest.mark.parametrize("damage", ["zero-length file", "directory for the file", "missing directory"])
async def test_a_store_that_is_not_a_database_fails_the_spawn_naming_the_path(tmp_path: Path, damage: str) -> None:
    storage: Path = tmp_path
    if damage == "zero-length file":
        (tmp_path / "jobs.sqlite3").touch()
        named, says = tmp_path / "jobs.sqlite3", "is empty (0 bytes)"
    elif damage == "directory for the file":
        (tmp_path / "jobs.sqlite3").mkdir()
        named, says = tmp_path / "jobs.sqlite3", "is a directory"
    else:
        storage = tmp_path / "missing" / "jobs.db"
        named, says = tmp_path / "missing", "does not exist"
    async with ActorSystem(name="durable") as system:
        with pytest.raises(ActorFailed) as info:
            await system.spawn(Queue, name="jobs", durable=True, storage=storage)
        assert isinstance(info.value.cause, StorageError)
        assert str(named) in str(info.value.cause)
        assert says in str(info.value.cause)
        assert system.lookup("jobs") is None


async def test_a_store_restored_beyond_its_limits_is_trimmed(tmp_path: Path) -> None:
    async with ActorSystem(name="durable") as system:
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        for n in range(5):
            assert await queue.ask(Publish("k", n)) == 1
        await system.stop(queue)
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path, max_length=2)
        stats = await statistics(queue)
        assert (stats.ready, stats.dead_lettered) == (2, 3)
        await system.stop(queue)
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)  # the drops were stored
        assert await drain(queue) == [(3, False), (4, False)]
        await system.stop(queue)
        for n in range(3):  # a reject mode keeps what it had, and refuses until it is within its limits
            queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
            assert await queue.ask(Publish("k", n)) == 1
            await system.stop(queue)
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path, max_length=2,
                                   overflow="reject_publish")
        assert (await statistics(queue)).ready == 3
        assert await queue.ask(Publish("k", "refused")) == 0


async def test_a_dead_lettered_message_is_gone_after_a_restart(tmp_path: Path) -> None:
    async with ActorSystem(name="durable") as system:
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        for n in range(2):
            await queue.ask(Publish("k", n))
        (first,) = await held_deliveries(system, queue, 1)
        first.reject()
        await queue.ask(GetStatistics())  # the rejection is handled (and its delete written) before the stop
        await system.stop(queue)
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
        assert await drain(queue) == [(1, True)]
