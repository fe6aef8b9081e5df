"""Death watch: ``watch``/``unwatch`` and the ``Terminated`` message."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorFailed, ActorRef, ActorSystem, PoisonPill, Terminated
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run


class Talker(Actor):
    """Tells ``to`` every message it gets; "stop" stops it, "boom" fails it."""

    def __init__(self, to: ActorRef) -> None:
        self.to = to

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        self.to.tell(message)
        if message == "stop":
            self.stop()
        return message


class Watcher(Actor):
    """Watches or unwatches refs on command and reports everything else (``Terminated`` included) to ``report``."""

    def __init__(self, report: ActorRef, gate: trio.Event | None = None) -> None:
        self.report = report
        self.gate = gate

    async def receive(self, message: Any) -> Any:
        match message:
            case ("watch", ref):
                self.watch(ref)
            case ("wait then unwatch", ref):
                assert self.gate is not None
                await self.gate.wait()
                self.unwatch(ref)
            case ("unwatch", ref):
                self.unwatch(ref)
            case _:
                self.report.tell(message)
        return None


async def test_terminated_comes_after_the_dying_actors_last_messages(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    talker = await actor_system.spawn(Talker, probe.ref)
    await probe.watch(talker)
    for message in ("one", "two", "stop", "never"):
        talker.tell(message)
    assert await probe.expect("one") == "one"
    assert await probe.expect("two") == "two"
    assert await probe.expect("stop") == "stop"
    assert await probe.expect_terminated(talker) == Terminated(talker, None)


async def test_terminated_through_an_actor_that_watches(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    watcher = await actor_system.spawn(Watcher, probe.ref)
    talker = await actor_system.spawn(Talker, watcher)
    watcher.tell(("watch", talker))
    talker.tell("last words")
    talker.tell(PoisonPill())
    assert await probe.expect("last words") == "last words"
    terminated = await probe.expect(Terminated)
    assert terminated.ref == talker
    assert terminated.reason is None


async def test_watching_a_stopped_actor_gives_terminated_at_once(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    watcher = await actor_system.spawn(Watcher, probe.ref)
    talker = await actor_system.spawn(Talker, probe.ref)
    await actor_system.stop(talker)
    watcher.tell(("watch", talker))
    assert (await probe.expect(Terminated)).ref == talker


async def test_watching_twice_gives_one_terminated(actor_system: ActorSystem,
                                                   autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    watcher = await actor_system.spawn(Watcher, probe.ref)
    talker = await actor_system.spawn(Talker, probe.ref)
    watcher.tell(("watch", talker))
    watcher.tell(("watch", talker))
    await trio.testing.wait_all_tasks_blocked()
    await actor_system.stop(talker)
    await probe.expect(Terminated)
    await probe.expect_no_message(1)


async def test_unwatch_before_the_stop(actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    watcher = await actor_system.spawn(Watcher, probe.ref)
    talker = await actor_system.spawn(Talker, probe.ref)
    watcher.tell(("watch", talker))
    watcher.tell(("unwatch", talker))
    await trio.testing.wait_all_tasks_blocked()
    await actor_system.stop(talker)
    await probe.expect_no_message(1)


async def test_unwatch_discards_a_terminated_already_queued(actor_system: ActorSystem,
                                                           autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    gate = trio.Event()
    watcher = await actor_system.spawn(Watcher, probe.ref, gate)
    talker = await actor_system.spawn(Talker, probe.ref)
    watcher.tell(("watch", talker))
    watcher.tell(("wait then unwatch", talker))
    await trio.testing.wait_all_tasks_blocked()
    await actor_system.stop(talker)  # its Terminated queues behind the message the watcher is busy with
    assert actor_system.statistics().actors[watcher.path].mailbox_length == 1
    watcher.tell("after")
    gate.set()
    assert await probe.expect("after") == "after"
    await probe.expect_no_message(1)


async def test_no_terminated_on_restart(actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    talker = await actor_system.spawn(Talker, probe.ref)
    await probe.watch(talker)
    with pytest.raises(ActorFailed):
        await talker.ask("boom")
    talker.tell("restarted")
    assert await probe.expect("restarted") == "restarted"
    await probe.expect_no_message(1)
    await actor_system.stop(talker)
    await probe.expect_terminated(talker)


async def test_terminated_reason_is_the_error_when_the_supervisor_stops_it(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    talker = await actor_system.spawn(Talker, probe.ref, restart="temporary")
    await probe.watch(talker)
    talker.tell("boom")
    terminated = await probe.expect_terminated(talker)
    assert isinstance(terminated.reason, ValueError)
    assert str(terminated.reason) == "boom"


async def test_a_stopped_watcher_stops_watching(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    watcher = await actor_system.spawn(Watcher, probe.ref)
    talker = await actor_system.spawn(Talker, probe.ref)
    watcher.tell(("watch", talker))
    await trio.testing.wait_all_tasks_blocked()
    await actor_system.stop(watcher)
    await actor_system.stop(talker)
    assert actor_system.statistics().dead_letters == 0  # no Terminated sent to the stopped watcher


async def test_watch_and_unwatch_take_only_refs(actor_system: ActorSystem) -> None:
    class Checks(Actor):
        async def receive(self, message: Any) -> Any:
            errors = []
            for call in (self.watch, self.unwatch):
                try:
                    call("nobody")  # type: ignore[arg-type]
                except TypeError as exc:
                    errors.append(str(exc))
            return errors

    ref = await actor_system.spawn(Checks)
    errors = await ref.ask("?")
    assert len(errors) == 2
    assert all("'nobody'" in error for error in errors)


async def test_children_stopping_with_their_parent_notify_watchers(actor_system: ActorSystem) -> None:
    class Parent(Actor):
        async def on_start(self) -> None:
            await self.spawn(Talker, self.ref, name="kid")

        async def receive(self, message: Any) -> Any:
            return None

    probe = await Probe.spawn(actor_system)
    parent = await actor_system.spawn(Parent, name="parent")
    kid = actor_system.lookup("parent/kid")
    assert kid is not None
    await probe.watch(kid)
    await probe.watch(parent)
    await actor_system.stop(parent)
    assert (await probe.expect(Terminated)).ref == kid  # children stop before their parent
    assert (await probe.expect(Terminated)).ref == parent
