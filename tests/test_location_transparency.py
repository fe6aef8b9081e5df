"""The core behaviour, run against an actor in the head's process and against one on a worker process.

One suite, parametrized by where the actor under test lives: the same code must behave the same (messages are
copied across a node, so the actor reports what it saw instead of sharing state with the test).
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import setting as setting  # every test taking it runs at each place

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    PoisonPill,
    Reply,
    Terminated,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)


class Subject(Actor):
    """The actor under test: its behaviour is driven by messages and reported to ``report``."""

    def __init__(self, report: ActorRef) -> None:
        self.report = report
        self.count = 0
        self.deferred: Any = None

    async def receive(self, message: Any) -> Any:
        match message:
            case ("add", n):
                self.count += n
                return self.count
            case "get":
                return self.count
            case "boom":
                raise ValueError("boom")
            case "refuse":
                return Reply.error(KeyError("refused"))
            case "defer":
                self.deferred = self.defer_reply()
                return None
            case ("answer", value):
                self.deferred.tell(value)
                return None
            case ("tell-back", ref):
                ref.tell(("from", self.ref))
                return None
            case ("timer", delay):
                self.timers.start_single("t", delay, "tick")
                return None
            case "tick":
                self.report.tell("ticked")
                return None
            case "stash-me":
                self.stash()
                return None
            case "unstash":
                self.unstash_all()
                return None
            case "become":
                self.become(self.shouting)
                return None
            case ("record", value):
                self.report.tell(value)
                return None
        return message

    async def shouting(self, message: Any) -> Any:
        if message == "unbecome":
            self.unbecome()
            return None
        return str(message).upper()


class Forwarder(Actor):
    def __init__(self, target: ActorRef) -> None:
        self.target = target

    async def receive(self, message: Any) -> Any:
        self.forward(self.target, message)


async def subject(setting: tuple[ActorSystem, Any], **options: Any) -> tuple[ActorRef, Probe]:
    system, node = setting
    probe = await Probe.spawn(system)
    ref = await system.spawn(Subject, probe.ref, node=node, **options)
    return ref, probe


async def test_tells_in_order_then_an_ask(setting: Any) -> None:
    ref, _ = await subject(setting)
    for n in range(1, 101):
        ref.tell(("add", n))
    assert await ref.ask("get") == 5050


async def test_a_failure_fails_the_ask_and_restarts_behind_the_same_ref(setting: Any) -> None:
    ref, _ = await subject(setting, name="s")
    await ref.ask(("add", 5))
    with pytest.raises(ActorFailed) as excinfo:
        await ref.ask("boom")
    assert isinstance(excinfo.value.cause, ValueError)
    assert await ref.ask("get") == 0  # a fresh instance
    system, _ = setting
    assert system.lookup("s") is ref


async def test_reply_error_raises_in_the_asker_without_failing_the_actor(setting: Any) -> None:
    ref, _ = await subject(setting)
    await ref.ask(("add", 3))
    with pytest.raises(KeyError, match="refused"):
        await ref.ask("refuse")
    assert await ref.ask("get") == 3


async def test_a_deferred_reply_answers_later(setting: Any) -> None:
    ref, _ = await subject(setting)
    future = ref.request("defer")  # queued before the tell below: one sender, one order
    ref.tell(("answer", "later"))
    assert await future == "later"


async def test_forward_hands_the_ask_on(setting: Any) -> None:
    system, _ = setting
    ref, _ = await subject(setting)
    forwarder = await system.spawn(Forwarder, ref)
    assert await forwarder.ask(("add", 7)) == 7


async def test_refs_in_messages_reach_back(setting: Any) -> None:
    ref, probe = await subject(setting)
    ref.tell(("tell-back", probe.ref))
    message = await probe.expect(lambda m: m[0] == "from")
    assert message[1] is ref


async def test_watch_and_stop(setting: Any) -> None:
    system, _ = setting
    ref, _ = await subject(setting, name="s")
    watcher = await Probe.spawn(system)
    await watcher.watch(ref)
    await system.stop(ref)
    assert system.lookup("s") is None
    await watcher.expect_terminated(ref)


async def test_a_poison_pill_comes_after_what_was_queued(setting: Any) -> None:
    system, _ = setting
    ref, probe = await subject(setting)
    watcher = await Probe.spawn(system)
    await watcher.watch(ref)
    for value in range(3):
        ref.tell(("record", value))
    ref.tell(PoisonPill())
    for value in range(3):
        await probe.expect(value)
    await watcher.expect_terminated(ref)
    with pytest.raises(ActorStopped):
        await ref.ask("get")


async def test_a_timer_fires_in_the_actor(setting: Any) -> None:
    ref, probe = await subject(setting)
    ref.tell(("timer", 0.05))
    await probe.expect("ticked")


async def test_stash_and_unstash_keep_the_order(setting: Any) -> None:
    ref, probe = await subject(setting)
    ref.tell("stash-me")
    ref.tell(("record", "after"))
    await probe.expect("after")
    ref.tell("unstash")
    assert await ref.ask("get") == 0


async def test_become_and_unbecome(setting: Any) -> None:
    ref, _ = await subject(setting)
    ref.tell("become")
    assert await ref.ask("quiet") == "QUIET"
    ref.tell("unbecome")
    assert await ref.ask("quiet") == "quiet"


async def test_terminated_reaches_a_watcher_on_the_other_side(setting: Any) -> None:
    system, _ = setting

    class Watcher(Actor):
        def __init__(self, probe: ActorRef) -> None:
            self.probe = probe

        async def receive(self, message: Any) -> Any:
            if isinstance(message, Terminated):
                self.probe.tell(message)
                return None
            self.watch(message)
            return None

    ref, probe = await subject(setting)
    watcher = await system.spawn(Watcher, probe.ref)
    await watcher.ask(ref)
    ref.tell(PoisonPill())
    terminated = await probe.expect(Terminated)
    assert terminated.ref is ref
    assert terminated.reason is None
