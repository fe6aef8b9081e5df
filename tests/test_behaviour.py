"""Changing behaviour: ``stash``/``unstash_all`` and ``become``/``unbecome``, and what a restart does to them."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorError, ActorFailed, ActorRef, ActorSystem, DeadLetter
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run


class Door(Actor):
    """Closed: stashes everything but "open". Open: reports each message (and answers asks with it)."""

    def __init__(self, report: ActorRef, gate: trio.Event | None = None) -> None:
        self.report = report
        self.gate = gate
        self.is_open = False

    async def receive(self, message: Any) -> Any:
        if message == "wait":
            assert self.gate is not None
            await self.gate.wait()
            return None
        if message == "boom":
            raise ValueError("boom")
        if message == "open":
            self.is_open = True
            self.report.tell("open")
            self.unstash_all()
            return None
        if not self.is_open:
            self.stash()
            return "stashed: not the answer"
        self.report.tell(message)
        return ("handled", message)


async def test_unstash_all_puts_the_stash_ahead_of_what_came_after(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    probe = await Probe.spawn(actor_system)
    door = await actor_system.spawn(Door, probe.ref, gate)
    door.tell("a")
    door.tell("b")
    door.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    for message in ("open", "c", "d"):  # all queued before "open" is handled
        door.tell(message)
    gate.set()
    for expected in ("open", "a", "b", "c", "d"):
        assert await probe.expect(expected) == expected


async def test_a_stashed_ask_is_answered_once_unstashed(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    door = await actor_system.spawn(Door, probe.ref)
    future = door.request("question")
    door.tell("later")
    await trio.testing.wait_all_tasks_blocked()
    assert not future.done()
    door.tell("open")
    assert await future == ("handled", "question")
    assert probe.messages == ["open", "question", "later"]


async def test_stashing_a_told_message_leaves_the_next_ask_answered(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    door = await actor_system.spawn(Door, probe.ref)
    door.tell("told and stashed")
    door.tell("open")
    with trio.fail_after(1):
        assert await door.ask("asked after") == ("handled", "asked after")
    assert probe.messages == ["open", "told and stashed", "asked after"]


async def test_unstash_all_with_an_empty_stash(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    door = await actor_system.spawn(Door, probe.ref)
    door.tell("open")
    door.tell("open")
    assert await door.ask("x") == ("handled", "x")


async def test_a_restart_clears_the_stash_into_dead_letters(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    probe = await Probe.spawn(actor_system)
    door = await actor_system.spawn(Door, probe.ref)
    door.tell("a")
    future = door.request("b")
    with pytest.raises(ActorFailed):
        await door.ask("boom")
    assert (await dead.expect(DeadLetter)).message == "a"
    assert (await dead.expect(DeadLetter)).message == "b"
    with trio.fail_after(1):
        with pytest.raises(ActorError):  # a stashed ask does not hang
            await future
    door.tell("open")  # the fresh instance has nothing stashed
    assert await probe.expect("open") == "open"
    door.tell("c")
    assert await probe.expect("c") == "c"


async def test_a_stop_turns_the_stash_into_dead_letters(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    probe = await Probe.spawn(actor_system)
    door = await actor_system.spawn(Door, probe.ref)
    door.tell("a")
    future = door.request("b")
    await trio.testing.wait_all_tasks_blocked()
    await actor_system.stop(door)
    assert [(await dead.expect(DeadLetter)).message for _ in range(2)] == ["a", "b"]
    with pytest.raises(ActorError):
        await future


async def test_stash_twice_is_refused(actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    errors: list[str] = []

    class StashesTwice(Actor):
        async def receive(self, message: Any) -> Any:
            self.stash()
            try:
                self.stash()
            except RuntimeError as exc:
                errors.append(str(exc))
            self.unstash_all()
            self.become(self.answer)

        async def answer(self, message: Any) -> Any:
            return "unstashed once"

    ref = await actor_system.spawn(StashesTwice)
    with trio.fail_after(1):
        assert await ref.ask("x") == "unstashed once"  # the stashed ask came back to the new behaviour
    assert len(errors) == 1
    assert "already stashed" in errors[0]


# -- become / unbecome ------------------------------------------------------------------------------------------


class Moody(Actor):
    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        self.count += 1
        match message:
            case "angry":
                self.become(self.angry)
            case "boom":
                raise ValueError("boom")
        return ("calm", message, self.count)

    async def angry(self, message: Any) -> Any:
        self.count += 1
        if message == "calm down":
            self.unbecome()
        if message == "boom":
            raise ValueError("boom")
        return ("angry", message, self.count)


async def test_become_replaces_the_handler_until_unbecome(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Moody)
    assert await ref.ask("hello") == ("calm", "hello", 1)
    assert await ref.ask("angry") == ("calm", "angry", 2)
    assert await ref.ask("hello") == ("angry", "hello", 3)  # the state carries over
    assert await ref.ask("calm down") == ("angry", "calm down", 4)
    assert await ref.ask("hello") == ("calm", "hello", 5)


async def test_a_restart_restores_receive(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Moody)
    ref.tell("angry")
    with pytest.raises(ActorFailed):
        await ref.ask("boom")
    assert await ref.ask("hello") == ("calm", "hello", 1)


async def test_become_takes_a_function(actor_system: ActorSystem) -> None:
    class Bad(Actor):
        async def receive(self, message: Any) -> Any:
            self.become("not a function")  # type: ignore[arg-type]

    ref = await actor_system.spawn(Bad)
    with pytest.raises(ActorFailed) as info:
        await ref.ask("x")
    assert isinstance(info.value.cause, TypeError)
    assert "'not a function'" in str(info.value.cause)


async def test_become_with_any_async_function(actor_system: ActorSystem) -> None:
    class Delegates(Actor):
        async def receive(self, message: Any) -> Any:
            async def shout(message: Any) -> Any:
                return str(message).upper()

            self.become(shout)
            return "delegating"

    ref = await actor_system.spawn(Delegates)
    assert await ref.ask("x") == "delegating"
    assert await ref.ask("hello") == "HELLO"


# -- what a queue holds: a message told from outside any actor goes in by itself -------------------------------


async def test_the_same_message_object_told_twice_is_stashed_twice(actor_system: ActorSystem) -> None:
    """Told from outside, ``"a"`` is queued as itself (one interned object, twice): each is its own stash entry,
    and a second ``stash()`` of the same message is still refused."""
    probe = await Probe.spawn(actor_system)
    errors: list[str] = []

    class StashAndCheck(Door):
        async def receive(self, message: Any) -> Any:
            if message == "a" and not self.is_open:
                self.stash()
                try:
                    self.stash()
                except RuntimeError as exc:
                    errors.append(str(exc))
                return None
            return await super().receive(message)

    door = await actor_system.spawn(StashAndCheck, probe.ref)
    for message in ("a", "a", "open"):
        door.tell(message)
    assert await probe.expect("open") == "open"
    assert await probe.expect("a") == "a"  # unstashed, handled by Door's open branch
    assert await probe.expect("a") == "a"
    assert len(errors) == 2
    assert all("already stashed" in error for error in errors)


class Recorder(Actor):
    """Records each message, its class and its sender."""

    def __init__(self, seen: list[tuple[Any, type, Any]]) -> None:
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        self.seen.append((message, type(message), self.sender))


class Relay(Actor):
    async def receive(self, message: Any) -> Any:
        target, payload = message
        target.tell(payload)


async def test_every_shape_of_message_arrives_as_told_with_its_sender(actor_system: ActorSystem) -> None:
    from collections import namedtuple

    Point = namedtuple("Point", "x y")
    seen: list[tuple[Any, type, Any]] = []
    recorder = await actor_system.spawn(Recorder, seen)
    relay = await actor_system.spawn(Relay)
    shapes: list[Any] = [None, 7, "inc", ("a", None, None, None), (), Point(1, 2), [1, 2]]
    for message in shapes:
        recorder.tell(message)  # from outside any actor: no sender
    for message in shapes:
        relay.tell((recorder, message))  # from an actor
    await relay.ask((recorder, "last"))  # the relay has told everything before it answers
    await recorder.ask("sync")
    expected = [(m, type(m), None) for m in shapes] + [(m, type(m), relay) for m in [*shapes, "last"]]
    assert seen[:-1] == expected
    assert seen[-1][0] == "sync"
