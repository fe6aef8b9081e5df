"""Actors and the system: spawn, tell/ask, names and paths, lifecycle hooks, stopping and shutdown."""

from __future__ import annotations

import functools
import gc
import weakref
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from helpers import Gate, all_tasks

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    NameTaken,
    PoisonPill,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run


class Counter(Actor):
    def __init__(self, start: int = 0, *, step: int = 1) -> None:
        self.count = start
        self.step = step

    async def receive(self, message: Any) -> Any:
        match message:
            case "inc":
                self.count += self.step
            case ("add", n):
                self.count += n
            case "get":
                return self.count
            case "boom":
                raise ValueError("boom")
        return None


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class Hooks(Actor):
    """Records its hooks and messages into ``log`` as ``(label, event)`` pairs; can spawn children in on_start."""

    def __init__(self, log: list[tuple[str, str]], label: str, children: tuple[str, ...] = ()) -> None:
        self.log = log
        self.label = label
        self.child_labels = children

    async def on_start(self) -> None:
        self.log.append((self.label, "start"))
        for child in self.child_labels:
            await self.spawn(Hooks, self.log, child, name=child)

    async def on_stop(self) -> None:
        self.log.append((self.label, "stop"))

    async def on_restart(self, error: BaseException | None) -> None:
        self.log.append((self.label, f"restart {error!r}"))

    async def receive(self, message: Any) -> Any:
        self.log.append((self.label, f"receive {message!r}"))
        if message == "boom":
            raise ValueError("boom")
        if message == "stop":
            self.stop()
        return message




# -- spawn, tell, ask ------------------------------------------------------------------------------------------


async def test_first_program(actor_system: ActorSystem) -> None:
    counter = await actor_system.spawn(Counter, 10, name="counter")
    counter.tell(("add", 5))
    assert await counter.ask("get") == 15


async def test_spawn_passes_args_and_keywords_to_the_factory(actor_system: ActorSystem) -> None:
    counter = await actor_system.spawn(Counter, 100, step=7)
    counter.tell("inc")
    assert await counter.ask("get") == 107


async def test_factory_parameter_named_like_a_spawn_option_goes_through_partial(actor_system: ActorSystem) -> None:
    class Named(Actor):
        def __init__(self, name: str) -> None:
            self.given = name

        async def receive(self, message: Any) -> Any:
            return self.given

    ref = await actor_system.spawn(functools.partial(Named, name="inner"), name="outer")
    assert ref.name == "outer"
    assert await ref.ask("?") == "inner"


async def test_any_callable_returning_an_actor_is_a_factory(actor_system: ActorSystem) -> None:
    def make_counter(start: int) -> Counter:
        return Counter(start * 2)

    ref = await actor_system.spawn(make_counter, 21)
    assert await ref.ask("get") == 42


async def test_tell_never_blocks_or_yields(actor_system: ActorSystem) -> None:
    counter = await actor_system.spawn(Counter)
    with trio.CancelScope() as scope:  # noqa: ASYNC100 - the test is that nothing in it checkpoints
        scope.cancel()
        for _ in range(3):
            counter.tell("inc")
    assert not scope.cancelled_caught
    assert await counter.ask("get") == 3


async def test_one_message_at_a_time_in_arrival_order(actor_system: ActorSystem,
                                                      autojump_clock: trio.testing.MockClock) -> None:
    class Slow(Actor):
        def __init__(self) -> None:
            self.busy = False
            self.overlaps = 0
            self.seen: list[int] = []

        async def receive(self, message: Any) -> Any:
            if message == "report":
                return self.seen, self.overlaps
            self.overlaps += self.busy
            self.busy = True
            await trio.sleep(0.1)
            self.seen.append(message)
            self.busy = False
            return None

    slow = await actor_system.spawn(Slow)
    for n in range(20):
        slow.tell(n)
    assert await slow.ask("report") == (list(range(20)), 0)


async def test_messages_and_arguments_are_passed_by_reference(actor_system: ActorSystem) -> None:
    payload = {"big": list(range(10))}
    echo = await actor_system.spawn(Echo)
    assert await echo.ask(payload) is payload
    holder = await actor_system.spawn(Counter, payload)  # an argument too
    assert await holder.ask("get") is payload
    probe = await Probe.spawn(actor_system)
    probe.ref.tell(payload)
    assert await probe.expect(dict) is payload


# -- names, paths, lookup --------------------------------------------------------------------------------------


async def test_names_paths_and_lookup(actor_system: ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    parent = await actor_system.spawn(Hooks, log, "parent", ("kid",), name="parent")
    assert parent.name == "parent"
    assert parent.path == "parent"
    kid = actor_system.lookup("parent/kid")
    assert kid is not None
    assert kid.name == "kid"
    assert kid.path == "parent/kid"
    assert actor_system.lookup("parent") == parent
    assert actor_system.lookup("kid") is None
    assert actor_system.lookup("parent/nobody") is None
    assert actor_system.lookup("nobody/kid") is None
    assert repr(kid) == "<ActorRef 'parent/kid'>"


async def test_unnamed_actors_get_distinct_names(actor_system: ActorSystem) -> None:
    refs = [await actor_system.spawn(Echo) for _ in range(3)]
    assert len({ref.name for ref in refs}) == 3
    for ref in refs:
        assert actor_system.lookup(ref.path) == ref


async def test_refs_are_hashable_and_compare_by_actor(actor_system: ActorSystem) -> None:
    a = await actor_system.spawn(Echo, name="a")
    b = await actor_system.spawn(Echo, name="b")
    assert actor_system.lookup("a") == a
    assert a != b
    table = {a: "a", b: "b"}
    assert table[actor_system.lookup("a")] == "a"  # type: ignore[index]
    assert await a.ask(b) is b  # refs travel inside messages


async def test_name_taken_among_siblings_only(actor_system: ActorSystem) -> None:
    first = await actor_system.spawn(Echo, name="twin")
    with pytest.raises(NameTaken, match="'twin'"):
        await actor_system.spawn(Echo, name="twin")
    assert actor_system.lookup("twin") == first
    log: list[tuple[str, str]] = []
    await actor_system.spawn(Hooks, log, "p", ("twin",), name="p")  # the same name under another parent
    assert actor_system.lookup("p/twin") is not None


async def test_name_is_free_again_once_stop_returns(actor_system: ActorSystem) -> None:
    first = await actor_system.spawn(Echo, name="reused")
    await actor_system.stop(first)
    assert actor_system.lookup("reused") is None
    second = await actor_system.spawn(Echo, name="reused")
    assert second != first
    assert actor_system.lookup("reused") == second
    assert first.is_stopped
    assert not second.is_stopped


@pytest.mark.parametrize("name", ["", "a/b", 42])
async def test_bad_names_are_refused(actor_system: ActorSystem, name: Any) -> None:
    with pytest.raises(ValueError, match=repr(name)):
        await actor_system.spawn(Echo, name=name)
    assert actor_system.statistics().actors == {}


async def test_spawn_options_are_checked(actor_system: ActorSystem) -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        await actor_system.spawn(Echo, restart="sometimes")
    with pytest.raises(TypeError, match="'one for one'"):
        await actor_system.spawn(Echo, supervision="one for one")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'one for one'"):
        ActorSystem(supervision="one for one")  # type: ignore[arg-type]
    assert actor_system.statistics().actors == {}


async def test_statistics_are_a_frozen_snapshot_by_path(actor_system: ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    parent = await actor_system.spawn(Hooks, log, "parent", ("kid",), name="parent")
    assert set(actor_system.statistics().actors) == {"parent", "parent/kid"}
    for message in ("a", "boom", "b"):
        parent.tell(message)
    await parent.ask("c")
    stats = actor_system.statistics()
    assert set(stats.actors) == {"parent"}  # the restart stopped the child; on_restart did not start it again
    figures = stats.actors["parent"]
    assert (figures.arrivals, figures.handled, figures.failed, figures.restarts) == (4, 3, 1, 1)
    assert figures.mailbox_length == 0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        figures.handled = 0  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.dead_letters = 0  # type: ignore[misc]
    await actor_system.stop(parent)
    assert actor_system.statistics().actors == {}
    assert stats.actors["parent"] == figures  # a snapshot: unchanged by what happened since


# -- factories that are not factories --------------------------------------------------------------------------


async def test_non_callable_factory_is_a_type_error_naming_it(actor_system: ActorSystem) -> None:
    with pytest.raises(TypeError, match="'not a factory'"):
        await actor_system.spawn("not a factory", name="x")  # type: ignore[arg-type]
    assert actor_system.lookup("x") is None


async def test_factory_returning_a_non_actor_is_a_type_error_naming_it(actor_system: ActorSystem) -> None:
    def make_nothing() -> object:
        return ["not", "an", "actor"]

    with pytest.raises(TypeError) as info:
        await actor_system.spawn(make_nothing, name="x")
    assert "make_nothing" in str(info.value)
    assert "['not', 'an', 'actor']" in str(info.value)
    assert actor_system.lookup("x") is None
    assert actor_system.statistics().actors == {}


async def test_factory_that_raises_fails_the_spawn(actor_system: ActorSystem) -> None:
    error = KeyError("missing")

    def broken() -> Actor:
        raise error

    with pytest.raises(ActorFailed) as info:
        await actor_system.spawn(broken, name="broken")
    assert info.value.cause is error
    assert actor_system.lookup("broken") is None


# -- lifecycle hooks -------------------------------------------------------------------------------------------


async def test_on_start_runs_before_the_first_message_and_spawn_waits_for_it(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    class SlowStart(Actor):
        def __init__(self, log: list[str]) -> None:
            self.log = log

        async def on_start(self) -> None:
            await trio.sleep(5)
            self.log.append("started")

        async def receive(self, message: Any) -> Any:
            self.log.append(message)
            return message

    log: list[str] = []
    ref = await actor_system.spawn(SlowStart, log)
    assert log == ["started"]
    assert trio.current_time() == 5.0
    assert await ref.ask("first") == "first"
    assert log == ["started", "first"]


async def test_messages_told_during_on_start_wait_for_it(actor_system: ActorSystem) -> None:
    class TellsItself(Actor):
        def __init__(self) -> None:
            self.log: list[str] = []

        async def on_start(self) -> None:
            self.ref.tell("from on_start")
            await trio.testing.wait_all_tasks_blocked()
            self.log.append("started")

        async def receive(self, message: Any) -> Any:
            if message == "log":
                return self.log
            self.log.append(message)
            return None

    ref = await actor_system.spawn(TellsItself)
    assert await ref.ask("log") == ["started", "from on_start"]


async def test_children_spawned_in_on_start_exist_when_spawn_returns(actor_system: ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    await actor_system.spawn(Hooks, log, "parent", ("a", "b"), name="parent")
    assert actor_system.lookup("parent/a") is not None
    assert actor_system.lookup("parent/b") is not None
    assert log == [("parent", "start"), ("a", "start"), ("b", "start")]


async def test_on_start_failure_fails_the_spawn_and_registers_nothing(actor_system: ActorSystem) -> None:
    error = RuntimeError("cannot start")

    class Broken(Hooks):
        async def on_start(self) -> None:
            await super().on_start()
            raise error

    log: list[tuple[str, str]] = []
    with pytest.raises(ActorFailed) as info:
        await actor_system.spawn(Broken, log, "broken", ("kid",), name="broken")
    assert info.value.cause is error
    assert info.value.__cause__ is error
    assert "'broken'" in str(info.value)
    assert actor_system.lookup("broken") is None
    assert actor_system.lookup("broken/kid") is None
    assert actor_system.statistics().actors == {}
    assert log[:3] == [("broken", "start"), ("kid", "start"), ("kid", "stop")]  # the child it started is stopped
    await actor_system.spawn(Echo, name="broken")  # the name is free


async def test_failed_spawns_leave_nothing_behind(actor_system: ActorSystem) -> None:
    alive: list[weakref.ref[Actor]] = []

    class TellsItselfThenFails(Actor):
        async def on_start(self) -> None:
            alive.append(weakref.ref(self))
            self.ref.tell("queued during on_start")  # makes the system start measuring the actor
            await trio.testing.wait_all_tasks_blocked()
            raise ValueError("cannot start")

        async def receive(self, message: Any) -> Any:
            return message  # pragma: no cover

    for _ in range(20):
        with pytest.raises(ActorFailed):
            await actor_system.spawn(TellsItselfThenFails)
    gc.collect()
    # An idle runner may still hold the last actor it looked at; nothing else may.
    assert sum(ref() is not None for ref in alive) <= 2
    assert actor_system.statistics().actors == {}


async def test_cancelling_spawn_during_on_start_registers_nothing(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, str]] = []

    class Hangs(Hooks):
        async def on_start(self) -> None:
            await super().on_start()
            await trio.sleep_forever()

    with trio.move_on_after(1) as scope:
        await actor_system.spawn(Hangs, log, "hangs", ("kid",), name="hangs")
    assert scope.cancelled_caught
    assert actor_system.lookup("hangs") is None
    assert actor_system.statistics().actors == {}
    assert ("kid", "stop") in log  # the child it had started is stopped
    await actor_system.spawn(Echo, name="hangs")  # the name is free


async def test_hook_order_through_a_restart_and_a_stop(actor_system: ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    ref = await actor_system.spawn(Hooks, log, "a")
    with pytest.raises(ActorFailed):
        await ref.ask("boom")
    assert await ref.ask("after") == "after"  # the same ref, a fresh instance
    await actor_system.stop(ref)
    assert log == [
        ("a", "start"),
        ("a", "receive 'boom'"),
        ("a", "stop"),                             # the failed incarnation's on_stop
        ("a", "restart ValueError('boom')"),       # the fresh instance's on_restart(error)
        ("a", "receive 'after'"),
        ("a", "stop"),
    ]


async def test_default_on_restart_calls_on_start_on_a_fresh_instance(actor_system: ActorSystem) -> None:
    class Starts(Actor):
        def __init__(self, log: list[tuple[str, int]]) -> None:
            self.log = log

        async def on_start(self) -> None:
            self.log.append(("start", id(self)))

        async def receive(self, message: Any) -> Any:
            if message == "boom":
                raise ValueError(message)
            return id(self)

    log: list[tuple[str, int]] = []
    ref = await actor_system.spawn(Starts, log)
    first = await ref.ask("who")
    with pytest.raises(ActorFailed):
        await ref.ask("boom")
    second = await ref.ask("who")
    assert first != second
    assert log == [("start", first), ("start", second)]


async def test_restart_resets_state_and_keeps_the_mailbox(actor_system: ActorSystem) -> None:
    counter = await actor_system.spawn(Counter, 5)
    counter.tell("inc")
    counter.tell("boom")
    counter.tell("inc")  # queued behind the failure: kept for the fresh instance
    assert await counter.ask("get") == 6


# -- context inside an actor -----------------------------------------------------------------------------------


async def test_context_inside_an_actor(actor_system: ActorSystem) -> None:
    class Context(Actor):
        async def on_start(self) -> None:
            if self.parent is None:
                await self.spawn(Context, name="first")
                await self.spawn(Context, name="second")

        async def receive(self, message: Any) -> Any:
            return self.ref, self.parent, self.system, self.children

    top = await actor_system.spawn(Context, name="top")
    ref, parent, system, children = await top.ask("?")
    assert (ref, parent, system) == (top, None, actor_system)
    assert [child.name for child in children] == ["first", "second"]
    assert await children[0].ask("?") == (children[0], top, actor_system, [])


async def test_sender_is_the_telling_actor_or_none(actor_system: ActorSystem) -> None:
    class Recorder(Actor):
        def __init__(self, probe: ActorRef) -> None:
            self.probe = probe

        async def receive(self, message: Any) -> Any:
            if isinstance(message, ActorRef):
                message.tell("hello")
            else:
                self.probe.tell(self.sender)

    probe = await Probe.spawn(actor_system)
    one = await actor_system.spawn(Recorder, probe.ref)
    two = await actor_system.spawn(Recorder, probe.ref)
    two.tell("from outside")
    assert await probe.expect(lambda m: m is None) is None
    one.tell(two)
    assert await probe.expect(ActorRef) == one


def test_context_outside_an_actor_says_where_to_call_it() -> None:
    counter = Counter()
    for name in ("ref", "sender", "system", "parent", "children", "timers"):
        with pytest.raises(RuntimeError, match=r"system\.spawn\(Counter"):
            getattr(counter, name)
    for call in (counter.stop, counter.stash, counter.unstash_all, counter.unbecome, counter.defer_reply):
        with pytest.raises(RuntimeError, match=r"system\.spawn\(Counter"):
            call()
    assert repr(counter) == "<Counter not spawned>"


async def test_message_context_outside_the_actors_receive(actor_system: ActorSystem) -> None:
    instances: list[Actor] = []

    class Leaky(Echo):
        def __init__(self) -> None:
            instances.append(self)

    ref = await actor_system.spawn(Leaky)
    await ref.ask("?")
    (actor,) = instances
    for call in (actor.stash, actor.defer_reply):
        with pytest.raises(RuntimeError, match=r"inside the actor's own receive\(\)"):
            call()
    with pytest.raises(RuntimeError, match="inside their methods"):
        await Counter().spawn(Echo)


# -- stopping --------------------------------------------------------------------------------------------------


async def test_self_stop_after_the_current_message(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    log: list[tuple[str, str]] = []
    ref = await actor_system.spawn(Hooks, log, "a")
    ref.tell("stop")
    ref.tell("never")  # queued behind the message that stops the actor
    probe = await Probe.spawn(actor_system)
    await probe.expect_terminated(ref)
    assert log == [("a", "start"), ("a", "receive 'stop'"), ("a", "stop")]
    assert await dead.expect(DeadLetter) == DeadLetter("never", None, ref, "stopped")


async def test_poison_pill_stops_after_what_was_queued_before_it(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    gate = trio.Event()
    handled: list[object] = []
    ref = await actor_system.spawn(Gate, gate, handled)
    ref.tell("wait")
    ref.tell("before 1")
    ref.tell("before 2")
    ref.tell(PoisonPill())
    ref.tell("after 1")
    ref.tell("after 2")
    gate.set()
    probe = await Probe.spawn(actor_system)
    await probe.expect_terminated(ref)
    assert handled == ["wait", "before 1", "before 2"]
    assert (await dead.expect(DeadLetter)).message == "after 1"
    assert (await dead.expect(DeadLetter)).message == "after 2"


async def test_system_stop_overtakes_queued_messages_which_become_dead_letters_in_order(
        actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    gate = trio.Event()
    handled: list[object] = []
    ref = await actor_system.spawn(Gate, gate, handled, name="gated")
    ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()  # busy with "wait"
    for n in range(3):
        ref.tell(n)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        assert not ref.is_stopped  # the message being handled is finished first
        gate.set()
    assert ref.is_stopped
    assert handled == ["wait"]
    for n in range(3):
        assert await dead.expect(DeadLetter) == DeadLetter(n, None, ref, "stopped")
    assert actor_system.statistics().dead_letters == 3


async def test_tell_and_ask_after_stop(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref = await actor_system.spawn(Echo, name="gone")
    await actor_system.stop(ref)
    ref.tell("hello")
    assert (await dead.expect(DeadLetter)).message == "hello"
    with pytest.raises(ActorStopped, match="'gone'"):
        await ref.ask("anyone?")


async def test_stop_twice_is_a_no_op(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Echo)
    await actor_system.stop(ref)
    await actor_system.stop(ref)
    assert ref.is_stopped


async def test_stop_waits_for_the_subtree_in_order(actor_system: ActorSystem) -> None:
    log: list[tuple[str, str]] = []
    parent = await actor_system.spawn(Hooks, log, "parent", ("a", "b", "c"))
    log.clear()
    await actor_system.stop(parent)
    assert log == [("c", "stop"), ("b", "stop"), ("a", "stop"), ("parent", "stop")]


async def test_cancelling_stop_does_not_cancel_the_stop(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    handled: list[object] = []
    ref = await actor_system.spawn(Gate, gate, handled)
    ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor_system.stop, ref)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    assert not ref.is_stopped
    gate.set()
    probe = await Probe.spawn(actor_system)
    await probe.expect_terminated(ref)
    assert handled == ["wait"]


async def test_system_stop_from_inside_the_actor_is_refused(actor_system: ActorSystem) -> None:
    class StopsItselfWrongly(Actor):
        async def receive(self, message: Any) -> Any:
            await self.system.stop(self.ref)

    ref = await actor_system.spawn(StopsItselfWrongly)
    with pytest.raises(ActorFailed) as info:
        await ref.ask("go")
    assert isinstance(info.value.cause, RuntimeError)
    assert "self.stop()" in str(info.value.cause)


# -- shutdown --------------------------------------------------------------------------------------------------


async def test_shutdown_children_before_parents_siblings_in_reverse_start_order() -> None:
    log: list[tuple[str, str]] = []
    async with ActorSystem() as system:
        await system.spawn(Hooks, log, "A", ("A1", "A2"), name="A")
        await system.spawn(Hooks, log, "B", ("B1",), name="B")
        await system.spawn(Hooks, log, "C", name="C")
        log.clear()
    assert log == [
        ("C", "stop"),
        ("B1", "stop"), ("B", "stop"),
        ("A2", "stop"), ("A1", "stop"), ("A", "stop"),
    ]




class Quiet(Actor):
    """No ``on_stop`` of its own (so its parent may stop it in place); spawns ``Hooks`` children in on_start."""

    def __init__(self, log: list[tuple[str, str]] | None = None, children: tuple[str, ...] = ()) -> None:
        self.log = log
        self.child_labels = children

    async def on_start(self) -> None:
        for child in self.child_labels:
            await self.spawn(Hooks, self.log, child, name=child)

    async def receive(self, message: Any) -> Any:
        return message


async def test_mass_shutdown_runs_every_on_stop_children_before_parents() -> None:
    """Idle actors without ``on_stop`` are stopped in place by their parent, the others through their mailbox:
    the hooks that exist still run, each subtree before its parent, siblings in reverse start order."""
    log: list[tuple[str, str]] = []
    expected: list[tuple[str, str]] = []
    async with ActorSystem() as system:
        for i in range(1_000):
            if i % 100 == 0:  # a parent with a hook, over children with hooks
                await system.spawn(Hooks, log, f"h{i}", (f"h{i}.a", f"h{i}.b"))
                expected[:0] = [(f"h{i}.b", "stop"), (f"h{i}.a", "stop"), (f"h{i}", "stop")]
            elif i % 100 == 50:  # a parent without a hook, over children with hooks
                await system.spawn(Quiet, log, (f"q{i}.a", f"q{i}.b"))
                expected[:0] = [(f"q{i}.b", "stop"), (f"q{i}.a", "stop")]
            else:
                await system.spawn(Quiet)
        log.clear()
    assert log == expected


async def test_idle_actors_stopped_in_place_tell_their_watchers_and_refuse_later_messages(
        actor_system: ActorSystem) -> None:
    quiet: list[ActorRef] = []

    class Family(Actor):
        async def on_start(self) -> None:
            for _ in range(600):
                quiet.append(await self.spawn(Quiet))

        async def receive(self, message: Any) -> Any:
            return message

    family = await actor_system.spawn(Family)
    probe = await Probe.spawn(actor_system)
    dead = await Probe.dead_letters(actor_system)
    watched = quiet[::100]
    for ref in watched:
        await probe.watch(ref)
    await actor_system.stop(family)
    assert all(ref.is_stopped for ref in quiet)
    for ref in reversed(watched):  # stopped last first
        await probe.expect_terminated(ref)
    quiet[0].tell("late")
    assert await dead.expect(DeadLetter) == DeadLetter("late", None, quiet[0], "stopped")
    with pytest.raises(ActorStopped):
        await quiet[1].ask("late")


async def test_stopping_many_idle_children_in_place_lets_other_tasks_run(actor_system: ActorSystem) -> None:
    refs: list[ActorRef] = []

    class Family(Actor):
        async def on_start(self) -> None:
            for _ in range(1_000):
                refs.append(await self.spawn(Quiet))

        async def receive(self, message: Any) -> Any:
            return message

    family = await actor_system.spawn(Family)
    seen: list[int] = []

    async def count_the_live() -> None:
        while not family.is_stopped:
            seen.append(sum(not ref.is_stopped for ref in refs))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(count_the_live)
        await actor_system.stop(family)
    assert any(0 < live < len(refs) for live in seen), seen


async def test_a_child_stopped_in_place_answers_what_reaches_it_while_it_waits_for_its_own(
        actor_system: ActorSystem) -> None:
    """A child without ``on_stop`` that waits, while its parent stops it, for a grandchild with a slow ``on_stop``:
    no runner takes it meanwhile, and a watch that reaches it then still gets its ``Terminated``."""
    gate = trio.Event()
    log: list[str] = []

    class Slow(Actor):
        async def on_stop(self) -> None:
            await gate.wait()
            log.append("grandchild stopped")

        async def receive(self, message: Any) -> Any:
            return message

    class Middle(Actor):
        async def on_start(self) -> None:
            await self.spawn(Slow, name="slow")

        async def receive(self, message: Any) -> Any:
            return message

    class Top(Actor):
        async def on_start(self) -> None:
            await self.spawn(Middle, name="middle")

        async def receive(self, message: Any) -> Any:
            return message

    top = await actor_system.spawn(Top, name="top")
    middle = actor_system.lookup("top/middle")
    assert middle is not None
    probe = await Probe.spawn(actor_system)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, top)
        await trio.testing.wait_all_tasks_blocked()
        assert not middle.is_stopped
        await probe.watch(middle)
        await trio.testing.wait_all_tasks_blocked()
        assert not middle.is_stopped  # the watch was not taken by a runner of its own
        gate.set()
    assert log == ["grandchild stopped"]
    assert middle.is_stopped
    await probe.expect_terminated(middle)


class Ticker(Actor):
    async def on_start(self) -> None:
        self.timers.start_periodic("tick", 1.0, "tick")

    async def receive(self, message: Any) -> Any:
        return message


async def test_no_task_outlives_the_system(autojump_clock: trio.testing.MockClock) -> None:
    before = all_tasks()
    async with ActorSystem() as system:
        gate = trio.Event()
        for _ in range(5):
            ref = await system.spawn(Gate, gate, [])
            ref.tell("wait")  # every actor busy: one runner task each
        await system.spawn(Ticker)
        await trio.testing.wait_all_tasks_blocked()
        assert len(all_tasks()) > len(before) + 5
        gate.set()
        ref.request("pending", timeout=100)
        await trio.sleep(3.5)
    assert all_tasks() == before
    assert "closed" in repr(system)


async def test_system_is_unusable_after_close() -> None:
    async with ActorSystem(name="app") as system:
        pass
    with pytest.raises(RuntimeError, match="async with ActorSystem"):
        await system.spawn(Echo)
    with pytest.raises(RuntimeError, match="only once"):
        async with system:
            pass  # pragma: no cover


async def test_system_escapes_a_failure_in_shutdown_hooks_without_hanging() -> None:
    class BadStop(Echo):
        async def on_stop(self) -> None:
            raise RuntimeError("on_stop broke")

    log: list[tuple[str, str]] = []
    async with ActorSystem() as system:
        await system.spawn(Hooks, log, "first")
        await system.spawn(BadStop)
    assert log[-1] == ("first", "stop")


async def test_cancelling_the_systems_block_still_shuts_down_gracefully(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, str]] = []
    with trio.move_on_after(1) as scope:
        async with ActorSystem() as system:
            await system.spawn(Hooks, log, "a", ("kid",))
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert log == [("a", "start"), ("kid", "start"), ("kid", "stop"), ("a", "stop")]


async def test_a_system_entered_in_a_cancelled_scope_still_opens_and_closes(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, str]] = []
    before = all_tasks()
    with trio.fail_after(60):
        with trio.CancelScope() as scope:
            scope.cancel()
            async with ActorSystem() as system:
                await system.spawn(Hooks, log, "a")  # raises Cancelled at its first checkpoint
    assert scope.cancelled_caught
    assert log == []
    assert all_tasks() == before


async def test_shutdown_that_runs_out_of_time_cancels_what_is_left(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    class Stuck(Actor):
        async def on_stop(self) -> None:
            await trio.sleep_forever()

        async def receive(self, message: Any) -> Any:
            return message  # pragma: no cover

    log: list[tuple[str, str]] = []
    before = all_tasks()
    async with ActorSystem(name="stuck", shutdown_timeout=7) as system:
        await system.spawn(Hooks, log, "first")
        await system.spawn(Stuck)
    assert trio.current_time() == 7.0
    assert log == [("first", "start")]  # the stop never got past the stuck actor
    assert all_tasks() == before
    assert any("did not shut down within 7" in record.getMessage() for record in caplog.records)


async def test_body_exception_still_shuts_down_gracefully() -> None:
    log: list[tuple[str, str]] = []

    async def body() -> None:
        async with ActorSystem() as system:
            await system.spawn(Hooks, log, "a")
            raise KeyError("body")

    with pytest.raises(KeyError):
        await body()
    assert log == [("a", "start"), ("a", "stop")]



async def test_an_actor_that_uses_no_watchers_timers_or_stash_shares_the_empty_defaults(
        actor_system: ActorSystem) -> None:
    """An idle actor reads the one shared, empty part of a cell (which nothing can write); an actor that
    watches, stashes or fails gets its own, and the shared part stays empty."""
    from runtime._cell import _NONE_YET

    idle = await actor_system.spawn(Gate, trio.Event(), [])
    watcher = await actor_system.spawn(Gate, trio.Event(), [])
    watcher._target.watch(idle)  # type: ignore[union-attr]
    await trio.testing.wait_all_tasks_blocked()
    assert watcher._target._rare is not _NONE_YET  # type: ignore[union-attr]
    assert idle._target._rare is not _NONE_YET  # type: ignore[union-attr]  # it has a watcher now
    fresh = await actor_system.spawn(Gate, trio.Event(), [])
    assert fresh._target._rare is _NONE_YET  # type: ignore[union-attr]
    assert (_NONE_YET.watchers, _NONE_YET.watching, _NONE_YET.restarts, _NONE_YET.failed) == (None, None, 0, 0)
    with pytest.raises(AttributeError, match="shared defaults"):
        _NONE_YET.restarts = 1
