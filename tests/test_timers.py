"""Timers: single and periodic on trio's clock, cancel, replace by key, and their end with the incarnation."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorFailed, ActorRef, ActorSystem
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run


class Timed(Actor):
    """Runs timer commands and reports each other message with the time it arrived."""

    def __init__(self, report: ActorRef, gate: trio.Event | None = None) -> None:
        self.report = report
        self.gate = gate

    async def receive(self, message: Any) -> Any:
        match message:
            case ("single", key, delay, payload):
                self.timers.start_single(key, delay, payload)
            case ("periodic", key, interval, payload):
                self.timers.start_periodic(key, interval, payload)
            case ("cancel", key):
                self.timers.cancel(key)
            case ("active", key):
                return self.timers.is_active(key)
            case "wait":
                assert self.gate is not None
                await self.gate.wait()
            case "boom":
                raise ValueError("boom")
            case _:
                self.report.tell((message, trio.current_time()))
        return None


async def spawn_timed(system: ActorSystem, gate: trio.Event | None = None) -> tuple[Probe, ActorRef]:
    probe = await Probe.spawn(system)
    return probe, await system.spawn(Timed, probe.ref, gate)


async def test_single_timer_fires_once_after_its_delay(actor_system: ActorSystem,
                                                       autojump_clock: trio.testing.MockClock) -> None:
    probe, ref = await spawn_timed(actor_system)
    await ref.ask(("single", "k", 2.5, "tick"))
    assert await ref.ask(("active", "k")) is True
    assert await probe.expect(("tick", 2.5))
    await probe.expect_no_message(10)
    assert await ref.ask(("active", "k")) is False


async def test_single_timer_with_zero_delay(actor_system: ActorSystem,
                                            autojump_clock: trio.testing.MockClock) -> None:
    probe, ref = await spawn_timed(actor_system)
    ref.tell(("single", "k", 0, "now"))
    assert await probe.expect(("now", 0.0))


async def test_periodic_timer_fires_every_interval(actor_system: ActorSystem,
                                                   autojump_clock: trio.testing.MockClock) -> None:
    probe, ref = await spawn_timed(actor_system)
    ref.tell(("periodic", "k", 1.5, "tick"))
    for n in range(1, 5):
        assert await probe.expect(("tick", 1.5 * n))
    ref.tell(("cancel", "k"))
    await probe.expect_no_message(10)


async def test_cancel_before_it_fires(actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    probe, ref = await spawn_timed(actor_system)
    ref.tell(("single", "k", 1, "tick"))
    ref.tell(("cancel", "k"))
    ref.tell(("cancel", "no such key"))  # no error
    await probe.expect_no_message(5)
    assert await ref.ask(("active", "k")) is False


async def test_timers_with_different_keys_are_independent(actor_system: ActorSystem,
                                                          autojump_clock: trio.testing.MockClock) -> None:
    probe, ref = await spawn_timed(actor_system)
    ref.tell(("single", "a", 2, "a"))
    ref.tell(("single", "b", 1, "b"))
    assert await probe.expect(("b", 1.0))
    assert await probe.expect(("a", 2.0))


async def test_starting_under_an_active_key_replaces_the_timer(actor_system: ActorSystem,
                                                               autojump_clock: trio.testing.MockClock) -> None:
    probe, ref = await spawn_timed(actor_system)
    ref.tell(("periodic", "k", 1, "old"))
    ref.tell(("single", "k", 3, "new"))
    assert await probe.expect(("new", 3.0))
    await probe.expect_no_message(10)


@pytest.mark.parametrize("how", ["replace", "cancel"])
async def test_replacing_or_cancelling_discards_a_tick_queued_before(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock, how: str) -> None:
    class Replaces(Actor):
        """On "go": blocks until a tick of "k" is queued, then replaces or cancels "k"."""

        def __init__(self, report: ActorRef) -> None:
            self.report = report

        async def receive(self, message: Any) -> Any:
            if message == "arm":
                self.timers.start_single("k", 1, "stale")
            elif message == "go":
                await trio.sleep(2)  # the tick of "k" queues meanwhile
                if how == "replace":
                    self.timers.start_single("k", 1, "fresh")
                else:
                    self.timers.cancel("k")
            else:
                self.report.tell((message, trio.current_time()))

    probe = await Probe.spawn(actor_system)
    ref = await actor_system.spawn(Replaces, probe.ref)
    ref.tell("arm")
    ref.tell("go")
    if how == "replace":
        assert await probe.expect(("fresh", 3.0))
    await probe.expect_no_message(5)


async def test_timers_are_cancelled_on_restart(actor_system: ActorSystem,
                                               autojump_clock: trio.testing.MockClock) -> None:
    probe, ref = await spawn_timed(actor_system)
    ref.tell(("periodic", "k", 1, "tick"))
    assert await probe.expect(("tick", 1.0))
    with pytest.raises(ActorFailed):
        await ref.ask("boom")
    await probe.expect_no_message(5)
    assert await ref.ask(("active", "k")) is False


async def test_a_tick_queued_before_a_restart_never_reaches_the_new_incarnation(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    gate = trio.Event()
    probe, ref = await spawn_timed(actor_system, gate)
    ref.tell(("single", "k", 1, "old incarnation"))
    ref.tell("wait")
    ref.tell("boom")
    await trio.sleep(2)  # the tick queues behind "boom"
    assert actor_system.statistics().actors[ref.path].mailbox_length == 2
    gate.set()
    ref.tell("after restart")
    assert (await probe.expect(tuple))[0] == "after restart"
    await probe.expect_no_message(5)
    assert actor_system.statistics().actors[ref.path].restarts == 1


async def test_a_timer_started_in_on_start_runs_in_each_incarnation(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    class Heartbeat(Actor):
        def __init__(self, report: ActorRef) -> None:
            self.report = report

        async def on_start(self) -> None:
            self.timers.start_periodic("beat", 10, "beat")

        async def receive(self, message: Any) -> Any:
            if message == "boom":
                raise ValueError("boom")
            self.report.tell((id(self), trio.current_time()))

    probe = await Probe.spawn(actor_system)
    ref = await actor_system.spawn(Heartbeat, probe.ref)
    await trio.sleep(15)
    ref.tell("boom")  # at t=15, so the old timer would next fire at 20, the new one fires at 25
    (first, at) = await probe.expect(tuple)
    assert at == 10.0
    (second, at) = await probe.expect(tuple)
    assert (second != first, at) == (True, 25.0)


async def test_timers_are_cancelled_on_stop_without_dead_letters(actor_system: ActorSystem,
                                                                 autojump_clock: trio.testing.MockClock) -> None:
    gate = trio.Event()
    probe, ref = await spawn_timed(actor_system, gate)
    ref.tell(("periodic", "k", 1, "tick"))
    ref.tell("wait")
    await trio.sleep(1.5)  # one tick queued
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    await trio.sleep(10)
    assert probe.messages == []
    assert actor_system.statistics().dead_letters == 0


@pytest.mark.parametrize(
    ("command", "value"),
    [("single", -1), ("single", float("nan")), ("single", "1"), ("periodic", 0), ("periodic", float("inf"))],
)
async def test_bad_delays_are_refused(actor_system: ActorSystem, command: str, value: Any) -> None:
    _, ref = await spawn_timed(actor_system)
    with pytest.raises(ActorFailed) as info:
        await ref.ask((command, "k", value, "tick"))
    assert isinstance(info.value.cause, ValueError)
    assert repr(value) in str(info.value.cause)
