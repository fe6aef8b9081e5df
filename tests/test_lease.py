"""Leases: messages their sender can take back, and that end when their recipient fails."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from actors import Actor, ActorSystem, OneForOne
from actors import Lease


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
