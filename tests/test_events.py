"""The event stream: dead letters and lifecycle events, subscribe/unsubscribe, and the dead-letter count."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorFailed, ActorRef, ActorSystem, DeadLetter, LifecycleEvent
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        return message


class Relay(Actor):
    """Tells each ``(target, message)`` to ``target``, so that the dead letter's sender is this actor."""

    async def receive(self, message: Any) -> Any:
        target, payload = message
        target.tell(payload)


async def test_dead_letter_fields(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    target = await actor_system.spawn(Echo, name="target")
    relay = await actor_system.spawn(Relay, name="relay")
    await actor_system.stop(target)
    await relay.ask((target, "from relay"))
    target.tell("from outside")
    letter = await dead.expect(DeadLetter)
    assert (letter.message, letter.sender, letter.recipient, letter.reason) == ("from relay", relay, target,
                                                                                 "stopped")
    assert await dead.expect(DeadLetter("from outside", None, target, "stopped"))


async def test_dead_letters_are_counted_with_or_without_subscribers(actor_system: ActorSystem) -> None:
    target = await actor_system.spawn(Echo)
    await actor_system.stop(target)
    assert actor_system.statistics().dead_letters == 0
    target.tell(1)
    target.tell(2)
    assert actor_system.statistics().dead_letters == 2
    dead = await Probe.dead_letters(actor_system)
    target.tell(3)
    assert actor_system.statistics().dead_letters == 3
    assert (await dead.expect(DeadLetter)).message == 3
    assert "dead_letters=3" in repr(actor_system)


async def test_unsubscribe_stops_the_events(actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    dead = await Probe.dead_letters(actor_system)
    target = await actor_system.spawn(Echo)
    await actor_system.stop(target)
    actor_system.events.unsubscribe(dead.ref)
    target.tell("unseen")
    await dead.expect_no_message(1)
    assert actor_system.statistics().dead_letters == 1
    actor_system.events.unsubscribe(dead.ref)  # unsubscribing twice is harmless


async def test_unsubscribe_some_types_keeps_the_others(actor_system: ActorSystem,
                                                       autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    actor_system.events.subscribe(probe.ref, DeadLetter, LifecycleEvent)
    actor_system.events.unsubscribe(probe.ref, LifecycleEvent)
    target = await actor_system.spawn(Echo)
    await actor_system.stop(target)
    target.tell("x")
    assert (await probe.expect(DeadLetter)).message == "x"
    await probe.expect_no_message(1)


async def test_lifecycle_events(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    actor_system.events.subscribe(probe.ref, LifecycleEvent)
    ref = await actor_system.spawn(Echo)
    assert await probe.expect(LifecycleEvent(ref, "started", None))
    with pytest.raises(ActorFailed) as info:
        await ref.ask("boom")
    error = info.value.cause
    assert await probe.expect(LifecycleEvent(ref, "failed", error))
    assert await probe.expect(LifecycleEvent(ref, "restarted", error))
    await actor_system.stop(ref)
    assert await probe.expect(LifecycleEvent(ref, "stopped", None))


async def test_subscribing_to_a_base_class_or_to_everything(actor_system: ActorSystem) -> None:
    everything = await Probe.spawn(actor_system)
    objects = await Probe.spawn(actor_system)
    actor_system.events.subscribe(everything.ref)
    actor_system.events.subscribe(objects.ref, object)
    ref = await actor_system.spawn(Echo)
    await actor_system.stop(ref)
    ref.tell("x")
    for probe in (everything, objects):
        assert (await probe.expect(LifecycleEvent)).kind == "started"
        assert (await probe.expect(LifecycleEvent)).kind == "stopped"
        assert (await probe.expect(DeadLetter)).message == "x"


async def test_a_stopped_subscriber_is_unsubscribed(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    target = await actor_system.spawn(Echo)
    await actor_system.stop(target)
    await actor_system.stop(dead.ref)
    target.tell("x")
    target.tell("y")
    # Counted, but not re-published as dead letters to the stopped subscriber, which would loop.
    assert actor_system.statistics().dead_letters == 2
    assert dead.messages == []


async def test_subscribe_checks_its_arguments(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    with pytest.raises(TypeError, match="'nobody'"):
        actor_system.events.subscribe("nobody", DeadLetter)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DeadLetter"):
        actor_system.events.subscribe(probe.ref, DeadLetter(1, None, None, "an instance, not a class"))


async def test_events_reach_an_actor_subscriber(actor_system: ActorSystem) -> None:
    class Collector(Actor):
        def __init__(self, report: ActorRef) -> None:
            self.report = report

        async def on_start(self) -> None:
            self.system.events.subscribe(self.ref, DeadLetter)

        async def receive(self, message: Any) -> Any:
            self.report.tell(("collected", message.message))

    probe = await Probe.spawn(actor_system)
    await actor_system.spawn(Collector, probe.ref)
    target = await actor_system.spawn(Echo)
    await actor_system.stop(target)
    target.tell("lost")
    assert await probe.expect(("collected", "lost"))
