"""Leases: messages their sender can take back, and that end when their recipient fails."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from actors import Actor, ActorSystem, Lease, OneForOne


class Recorder(Actor):
    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        if message == "block":
            await trio.sleep(1.0)
        self.seen.append(message)
        return None


async def test_revoking_drops_what_is_still_queued(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[Any] = []
    async with ActorSystem() as system:
        actor = await system.spawn(Recorder, seen)
        lease = Lease()
        actor.tell("block")
        await trio.testing.wait_all_tasks_blocked()
        lease.tell(actor, "leased-1")
        lease.tell(actor, "leased-2")
        actor.tell("plain")
        lease.revoke()
        await trio.sleep(2.0)
        assert seen == ["block", "plain"]
        assert lease.revoked
        assert system.statistics().dead_letters == 0  # taken back on purpose: not a dead letter


async def test_a_failure_ends_the_lease_even_for_what_is_told_after_it(
        autojump_clock: trio.testing.MockClock) -> None:
    seen: list[Any] = []
    async with ActorSystem(supervision=OneForOne(max_restarts=10)) as system:
        actor = await system.spawn(Recorder, seen)
        lease = Lease()
        lease.tell(actor, "before")
        await trio.testing.wait_all_tasks_blocked()
        actor.tell("boom")  # the mailbox is empty when it fails: the lease ends all the same
        await trio.testing.wait_all_tasks_blocked()
        assert lease.revoked
        lease.tell(actor, "after the failure")  # the sender has not heard of it yet
        fresh = Lease()
        fresh.tell(actor, "under a new lease")
        await trio.testing.wait_all_tasks_blocked()
        assert seen == ["before", "under a new lease"]
        assert not fresh.revoked


async def test_the_holder_is_told_when_a_recipient_failure_ends_the_lease(
        autojump_clock: trio.testing.MockClock) -> None:
    from actors import LeaseEnded
    from actors.testing import Probe

    seen: list[Any] = []
    async with ActorSystem(supervision=OneForOne(max_restarts=10)) as system:
        holder = await Probe.spawn(system)
        worker = await system.spawn(Recorder, seen)
        lease = Lease(notify=holder.ref)
        lease.tell(worker, "work")
        worker.tell("boom")
        ended = await holder.expect(LeaseEnded)
        assert ended.lease is lease
        assert ended.recipient is worker
        assert isinstance(ended.error, RuntimeError)
        worker.tell("boom")  # a second failure: the lease has already ended, nobody is told again
        await holder.expect_no_message(1.0)


async def test_a_stop_ends_the_lease_without_dead_letters(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[Any] = []
    async with ActorSystem() as system:
        worker = await system.spawn(Recorder, seen)
        lease = Lease()
        worker.tell("block")
        await trio.testing.wait_all_tasks_blocked()
        lease.tell(worker, "leased")
        worker.tell("plain")
        await system.stop(worker)
        assert lease.revoked
        stats = system.statistics()
        assert stats.dead_letters == 1  # "plain" only: the leased message went back to its sender
