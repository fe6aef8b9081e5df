"""The ready-made supervisors (``actors._supervisor``): ChildSpec, Supervisor and DynamicSupervisor.

Checked against OTP's supervisor rules (design/reference/otp-akka.md 1.1-1.4): start order and all-or-nothing
start, restart types, the three strategies seen from a Supervisor, restart intensity and escalation, backoff on
trio's clock, simple_one_for_one, and a seeded random stress test of a three-level tree.
"""

from __future__ import annotations

import collections
import random
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from helpers import all_tasks

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorSystem,
    Backoff,
    DeadLetter,
    LifecycleEvent,
    Mailbox,
    MailboxFull,
    NameTaken,
    OneForAll,
    OneForOne,
    Restart,
    RestForOne,
    Strategy,
)
from actors._supervisor import (
    ChildSpec,
    CountChildren,
    DynamicSupervisor,
    StartChild,
    StopChild,
    Supervisor,
    WhichChildren,
)


class Worker(Actor):
    """Logs its hooks as ``"<hook> <tag>"``; counts ``"bump"``s; crashes or stops on request."""

    def __init__(self, log: list[str], tag: str, start_delay: float = 0.0, fail_start: bool = False) -> None:
        self.log = log
        self.tag = tag
        self.start_delay = start_delay
        self.fail_start = fail_start
        self.count = 0

    async def on_start(self) -> None:
        self.log.append(f"start {self.tag}")
        await trio.sleep(self.start_delay)
        if self.fail_start:
            raise RuntimeError(f"{self.tag} cannot start")

    async def on_restart(self, error: BaseException | None) -> None:
        self.log.append(f"restart {self.tag}")

    async def on_stop(self) -> None:
        self.log.append(f"stop {self.tag}")

    async def receive(self, message: Any) -> Any:
        match message:
            case "crash":
                raise RuntimeError(f"{self.tag} crashed")
            case "stop":
                self.stop()
            case "bump":
                self.count += 1
                return self.count
            case "tag":
                return self.tag


class Broken(Actor):
    """A factory that raises: the child fails before ``on_start``."""

    def __init__(self) -> None:
        raise RuntimeError("cannot build")


def specs(log: list[str], *tags: str, **options: Any) -> list[ChildSpec]:
    return [ChildSpec(Worker, log, tag, name=tag, **options) for tag in tags]


def only_failure(exc: BaseException) -> ActorFailed:
    """The ActorFailed that left ``async with ActorSystem()``, whether or not trio wrapped it in a group."""
    while isinstance(exc, BaseExceptionGroup):
        assert len(exc.exceptions) == 1, exc
        exc = exc.exceptions[0]
    assert isinstance(exc, ActorFailed), exc
    return exc


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


# -- ChildSpec -----------------------------------------------------------------------------------------------


def test_child_spec_defaults_to_permanent_and_keeps_its_arguments() -> None:
    spec = ChildSpec(Worker, [], "a", name="a", start_delay=1.0)
    assert spec.factory is Worker
    assert spec.args == ([], "a")
    assert spec.kwargs == {"start_delay": 1.0}
    assert spec.restart is Restart.PERMANENT
    assert spec.mailbox is None
    assert spec.supervision is None
    assert ChildSpec(Worker, name="a", restart="temporary").restart is Restart.TEMPORARY
    assert ChildSpec(Worker, name="a", restart=Restart.TRANSIENT) == ChildSpec(Worker, name="a", restart="transient")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.kwargs["start_delay"] = 2.0  # type: ignore[index]


def test_child_spec_passes_a_keyword_named_factory_to_the_actor() -> None:
    spec = ChildSpec(Worker, factory="mine")
    assert spec.kwargs == {"factory": "mine"}


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"restart": "forever"}, ValueError, ["restart='forever'", "'permanent'", "'transient'", "'temporary'"]),
    ({"mailbox": 10}, TypeError, ["mailbox=10", "Mailbox"]),
    ({"supervision": "one_for_one"}, TypeError, ["supervision='one_for_one'", "OneForOne()"]),
])
def test_child_spec_rejects_bad_options_naming_them(kwargs: dict[str, Any], error: type[Exception],
                                                    words: list[str]) -> None:
    with pytest.raises(error) as excinfo:
        ChildSpec(Worker, name="a", **kwargs)
    for word in words:
        assert word in str(excinfo.value)


def test_child_spec_rejects_a_factory_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match="not 42"):
        ChildSpec(42)  # type: ignore[arg-type]


# -- starting ------------------------------------------------------------------------------------------------


async def test_children_start_in_order_and_spawn_returns_after_the_last(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        start = trio.current_time()
        sup = await system.spawn(Supervisor, specs(log, "a", "b", "c", start_delay=1.0), name="sup",
                                 supervision=RestForOne())
        assert trio.current_time() - start == 3.0  # each on_start took 1s, one after the other
        assert log == ["start a", "start b", "start c"]
        children = await sup.ask(WhichChildren())
        assert [ref.path for ref in children] == ["sup/a", "sup/b", "sup/c"]
        assert all(system.lookup(ref.path) is ref for ref in children)
        assert await sup.ask(CountChildren()) == {"running": 3}
        assert [await ref.ask("tag") for ref in children] == ["a", "b", "c"]
    assert log[3:] == ["stop c", "stop b", "stop a"]


@pytest.mark.parametrize("bad", ["on_start", "factory"])
async def test_a_child_that_fails_to_start_fails_the_spawn_and_stops_the_earlier_ones_in_reverse(
        autojump_clock: trio.testing.MockClock, bad: str) -> None:
    log: list[str] = []
    broken = ChildSpec(Worker, log, "bad", name="bad", fail_start=True) if bad == "on_start" else \
        ChildSpec(Broken, name="bad")
    children = [*specs(log, "a", "b"), broken, *specs(log, "d")]
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as excinfo:
            await system.spawn(Supervisor, children, name="sup")
        assert "'sup'" in str(excinfo.value)
        child_failure = excinfo.value.cause
        assert isinstance(child_failure, ActorFailed)
        assert "sup/bad" in str(child_failure)
        assert isinstance(child_failure.cause, RuntimeError)
        started = ["start a", "start b", "start bad"] if bad == "on_start" else ["start a", "start b"]
        assert log == [*started, "stop b", "stop a"]  # d never started
        assert system.lookup("sup") is None
        assert system.lookup("sup/a") is None
        assert system.statistics().actors == {}
        # The name is free again.
        await system.spawn(Supervisor, specs(log, "a"), name="sup")
        assert system.lookup("sup/a") is not None


async def test_supervisor_arguments_are_checked(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as excinfo:
            await system.spawn(Supervisor, [Worker])
        assert isinstance(excinfo.value.cause, TypeError)
        assert "ChildSpec" in str(excinfo.value.cause)
        with pytest.raises(ActorFailed) as excinfo:
            await system.spawn(Supervisor, specs([], "a", "a"))
        assert isinstance(excinfo.value.cause, ValueError)
        assert "'a'" in str(excinfo.value.cause)
        assert system.statistics().actors == {}


async def test_cancelling_the_spawn_midway_stops_what_started_and_registers_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        with trio.move_on_after(1.5) as scope:
            await system.spawn(Supervisor, specs(log, "a", "b", "c", start_delay=1.0), name="sup")
        assert scope.cancelled_caught
        assert log == ["start a", "start b", "stop a"]
        assert system.statistics().actors == {}
        await system.spawn(Supervisor, specs(log, "a"), name="sup")


async def test_child_spec_options_reach_the_child(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    inner = ChildSpec(Supervisor, specs(log, "x"), name="inner", supervision=OneForOne(max_restarts=0),
                      mailbox=Mailbox(capacity=1))
    async with ActorSystem() as system:
        await system.spawn(Supervisor, [inner], name="sup")
        inner_ref = system.lookup("sup/inner")
        assert inner_ref is not None
        inner_ref.tell(WhichChildren())
        with pytest.raises(MailboxFull):  # capacity 1, and inner has not run yet
            inner_ref.tell(WhichChildren())
        x = system.lookup("sup/inner/x")
        assert x is not None
        x.tell("crash")  # inner may not restart anything: it fails, and sup restarts it
        await settle()
        stats = system.statistics().actors
        assert stats["sup/inner"].restarts == 1
        assert system.lookup("sup/inner/x") is not x  # a restarted supervisor starts new children


# -- restart types -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("restart", "how", "restarted"), [
    ("permanent", "crash", True),
    ("permanent", "stop", True),
    ("transient", "crash", True),
    ("transient", "stop", False),
    ("temporary", "crash", False),
    ("temporary", "stop", False),
])
async def test_restart_types_follow_otp(autojump_clock: trio.testing.MockClock, restart: str, how: str,
                                        restarted: bool) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        await system.spawn(Supervisor, specs(log, "a", restart=restart), name="sup")
        a = system.lookup("sup/a")
        assert a is not None
        a.tell(how)
        await settle()
        if restarted:
            assert log == ["start a", "stop a", "restart a"]
            assert system.lookup("sup/a") is a
            assert await a.ask("tag") == "a"
            assert system.statistics().actors["sup/a"].restarts == 1
        else:
            assert log == ["start a", "stop a"]
            assert a.is_stopped
            assert system.lookup("sup/a") is None
        assert system.lookup("sup") is not None


async def test_a_permanent_child_is_not_restarted_when_stopped_from_outside(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        sup = await system.spawn(Supervisor, specs(log, "a", "b", "c"), name="sup")
        b = system.lookup("sup/b")
        assert b is not None
        await system.stop(b)
        await settle()
        assert log == ["start a", "start b", "start c", "stop b"]
        assert system.lookup("sup/b") is None
        assert [ref.name for ref in await sup.ask(WhichChildren())] == ["a", "c"]
        await system.stop(sup)
        await settle()
        assert log[4:] == ["stop c", "stop a"]  # the supervisor's stop restarts nothing either
        assert system.statistics().actors == {}


# -- strategies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("strategy", "expected", "affected"), [
    (OneForOne(), ["stop c", "restart c"], "c"),
    (OneForAll(), ["stop d", "stop c", "stop b", "stop a", "restart a", "restart b", "restart c", "restart d"],
     "abcd"),
    (RestForOne(), ["stop d", "stop c", "restart c", "restart d"], "cd"),
])
async def test_strategies_through_a_supervisor_keep_every_ref(
        autojump_clock: trio.testing.MockClock, strategy: Strategy, expected: list[str], affected: str) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        sup = await system.spawn(Supervisor, specs(log, "a", "b", "c", "d"), name="sup", supervision=strategy)
        before: list[ActorRef] = await sup.ask(WhichChildren())
        for ref in before:
            assert await ref.ask("bump") == 1
        del log[:]
        before[2].tell("crash")
        await settle()
        assert log == expected
        after: list[ActorRef] = await sup.ask(WhichChildren())
        assert len(after) == 4
        for old, new in zip(before, after, strict=True):
            assert new is old
            assert system.lookup(old.path) is old
            # A restarted child is a fresh instance; the others kept their state.
            assert await new.ask("bump") == (1 if old.name in affected else 2)
        assert system.statistics().actors["sup"].restarts_in_window == 1  # one failure, one restart counted


async def test_a_temporary_bystander_is_stopped_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    children = [*specs(log, "a"), *specs(log, "b", restart="temporary"), *specs(log, "c")]
    async with ActorSystem() as system:
        sup = await system.spawn(Supervisor, children, name="sup", supervision=OneForAll())
        del log[:]
        c = system.lookup("sup/c")
        assert c is not None
        c.tell("crash")
        await settle()
        assert log == ["stop c", "stop b", "stop a", "restart a", "restart c"]
        assert [ref.name for ref in await sup.ask(WhichChildren())] == ["a", "c"]


# -- restart intensity and escalation ------------------------------------------------------------------------


async def test_exceeding_the_intensity_stops_the_children_in_reverse_and_fails_the_system(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    with pytest.raises((ActorFailed, BaseExceptionGroup)) as excinfo:  # noqa: PT012 - the block is the subject
        async with ActorSystem(supervision=OneForOne(max_restarts=0)) as system:
            await system.spawn(Supervisor, specs(log, "a", "b", "c"), name="sup",
                               supervision=OneForOne(max_restarts=2, within=10.0))
            b = system.lookup("sup/b")
            assert b is not None
            for _ in range(2):
                b.tell("crash")
                await settle()
                await trio.sleep(1.0)
            assert log[3:] == ["stop b", "restart b", "stop b", "restart b"]
            b.tell("crash")  # the third within 10s: one more than allowed
            await trio.sleep_forever()
    failure = only_failure(excinfo.value)
    assert isinstance(failure.cause, RuntimeError)
    assert str(failure.cause) == "b crashed"
    assert log[7:] == ["stop c", "stop b", "stop a"]


async def test_exceeding_the_intensity_escalates_to_the_parent_supervisor(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    inner = ChildSpec(Supervisor, specs(log, "a", "b"), name="inner", supervision=OneForOne(max_restarts=1))
    failures: list[tuple[str, str]] = []

    class Listener(Actor):
        async def receive(self, message: Any) -> None:
            if message.kind == "failed":
                failures.append((message.ref.path, str(message.error)))

    async with ActorSystem() as system:
        system.events.subscribe(await system.spawn(Listener), LifecycleEvent)
        outer = await system.spawn(Supervisor, [*specs(log, "first"), inner], name="outer")
        first = system.lookup("outer/first")
        for _ in range(2):
            a = system.lookup("outer/inner/a")
            assert a is not None
            a.tell("crash")
            await settle()
        assert log[3:] == ["stop a", "restart a",                   # the one restart allowed
                           "stop b", "stop a",                      # the second: inner's children stop...
                           "start a", "start b"]                    # ...and outer restarts inner
        assert failures == [("outer/inner/a", "a crashed"), ("outer/inner/a", "a crashed"),
                            ("outer/inner", "a crashed")]
        assert system.lookup("outer/first") is first  # OneForOne: the sibling was not touched
        stats = system.statistics().actors
        assert stats["outer/inner"].restarts == 1
        assert stats["outer/inner"].state == "running"
        assert stats["outer"].restarts_in_window == 1
        assert [ref.name for ref in await outer.ask(WhichChildren())] == ["first", "inner"]


async def test_a_restarted_supervisor_starts_with_a_fresh_restart_window(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    inner = ChildSpec(Supervisor, specs(log, "a"), name="inner", supervision=OneForOne(max_restarts=1))
    async with ActorSystem() as system:
        await system.spawn(Supervisor, [inner], name="outer", supervision=OneForOne(max_restarts=10))
        for _ in range(3):  # restart, escalate (inner restarted), then one more restart of a
            a = system.lookup("outer/inner/a")
            assert a is not None
            a.tell("crash")
            await settle()
        # OTP: the product of the intensities. The fresh inner may restart a once before escalating again.
        assert system.statistics().actors["outer/inner"].restarts == 1


# -- backoff -------------------------------------------------------------------------------------------------


class Timed(Actor):
    """Records (time, incarnation, message) for every message it handles, and the times of its restarts."""

    incarnations = 0

    def __init__(self, handled: list[tuple[float, int, Any]], restarts: list[float]) -> None:
        self.handled = handled
        self.restarts = restarts
        Timed.incarnations += 1
        self.incarnation = Timed.incarnations

    async def on_restart(self, error: BaseException | None) -> None:
        self.restarts.append(trio.current_time())

    async def receive(self, message: Any) -> Any:
        self.handled.append((trio.current_time(), self.incarnation, message))
        if message == "crash":
            raise RuntimeError("crash")
        return message


async def test_backoff_delays_are_measured_on_trios_clock_and_messages_wait_for_the_fresh_instance(
        autojump_clock: trio.testing.MockClock) -> None:
    handled: list[tuple[float, int, Any]] = []
    restarts: list[float] = []
    Timed.incarnations = 0
    strategy = OneForOne(max_restarts=10, within=100.0, backoff=Backoff(1.0, 4.0))
    async with ActorSystem() as system:
        sup = await system.spawn(Supervisor, [ChildSpec(Timed, handled, restarts, name="t")], name="sup",
                                 supervision=strategy)
        t = system.lookup("sup/t")
        assert t is not None
        crashed_at = []
        for _ in range(4):
            crashed_at.append(trio.current_time())
            t.tell("crash")
            t.tell("after")  # told during the backoff: it waits in the mailbox
            await settle()
            assert await sup.ask(CountChildren()) == {"restarting": 1}
            assert await t.ask("ping") == "ping"  # answered by the fresh instance, after the delay
        delays = [restart - crash for restart, crash in zip(restarts, crashed_at, strict=True)]
        assert delays == [1.0, 2.0, 4.0, 4.0]
        assert system.lookup("sup/t") is t
        for restart, incarnation in zip(restarts, range(2, 6), strict=True):
            assert (restart, incarnation, "after") in handled
        assert [message for _, _, message in handled] == ["crash", "after", "ping"] * 4
        assert system.statistics().dead_letters == 0


async def test_backoff_applies_to_a_group_restart(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        sup = await system.spawn(Supervisor, specs(log, "a", "b"), name="sup",
                                 supervision=OneForAll(backoff=Backoff(3.0, 3.0)))
        del log[:]
        b = system.lookup("sup/b")
        assert b is not None
        start = trio.current_time()
        b.tell("crash")
        await settle()
        assert log == ["stop b", "stop a"]
        assert await sup.ask(WhichChildren()) == [system.lookup("sup/a"), b]
        assert trio.current_time() - start == 3.0  # the supervisor answered once the group was back
        assert log == ["stop b", "stop a", "restart a", "restart b"]


async def test_stopping_a_supervisor_during_a_group_backoff_is_prompt(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        sup = await system.spawn(Supervisor, specs(log, "a", "b"), name="sup",
                                 supervision=OneForAll(backoff=Backoff(30.0, 30.0)))
        b = system.lookup("sup/b")
        assert b is not None
        b.tell("crash")
        await settle()
        start = trio.current_time()
        await system.stop(sup)
        assert trio.current_time() == start  # as with OneForOne, whose child sleeps in a cancellable scope
        assert log == ["start a", "start b", "stop b", "stop a"]


# -- DynamicSupervisor ---------------------------------------------------------------------------------------


class Connection(Actor):
    """A per-connection worker: the template gives ``log``, StartChild appends ``peer``."""

    def __init__(self, log: list[str], peer: str, *, greeting: str = "hello") -> None:
        self.log = log
        self.peer = peer
        self.greeting = greeting
        if peer == "broken":
            raise RuntimeError("cannot connect")

    async def on_start(self) -> None:
        self.log.append(f"start {self.peer}")

    async def on_stop(self) -> None:
        self.log.append(f"stop {self.peer}")

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.peer} crashed")
        return f"{self.greeting} {self.peer}"


async def test_dynamic_children_start_list_count_and_stop(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        sup = await system.spawn(DynamicSupervisor, ChildSpec(Connection, log, greeting="hi"), name="conns")
        assert await sup.ask(WhichChildren()) == []
        one = await sup.ask(StartChild("one"))
        two = await sup.ask(StartChild("two", name="second", greeting="hey"))
        assert isinstance(one, ActorRef)
        assert two.path == "conns/second"
        assert await one.ask("hi?") == "hi one"  # template args + extra args, template kwargs
        assert await two.ask("hi?") == "hey two"  # StartChild's kwargs override the template's
        assert await sup.ask(WhichChildren()) == [one, two]
        assert await sup.ask(CountChildren()) == {"running": 2}
        assert await sup.ask(StopChild(one)) is None
        assert one.is_stopped
        assert await sup.ask(WhichChildren()) == [two]
        with pytest.raises(ValueError, match="not a live child"):
            await sup.ask(StopChild(one))
        with pytest.raises(NameTaken):
            await sup.ask(StartChild("three", name="second"))
        with pytest.raises(ActorFailed) as excinfo:
            await sup.ask(StartChild("broken"))
        assert isinstance(excinfo.value.cause, RuntimeError)
        with pytest.raises(TypeError, match="StartChild"):
            await sup.ask("what?")
        assert await sup.ask(WhichChildren()) == [two]  # the refused requests changed nothing
        assert log == ["start one", "start two", "stop one"]


async def test_a_told_request_that_is_refused_becomes_a_dead_letter(autojump_clock: trio.testing.MockClock) -> None:
    letters: list[DeadLetter] = []

    class Letters(Actor):
        async def receive(self, message: Any) -> None:
            letters.append(message)

    async with ActorSystem() as system:
        system.events.subscribe(await system.spawn(Letters), DeadLetter)
        sup = await system.spawn(DynamicSupervisor, ChildSpec(Connection, []), name="conns")
        sup.tell("what?")
        await settle()
        assert len(letters) == 1
        assert letters[0].message == "what?"
        assert letters[0].recipient is sup
        assert "does not handle" in letters[0].reason
        assert system.lookup("conns") is sup


async def test_dynamic_children_follow_the_templates_restart_type(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        permanent = await system.spawn(DynamicSupervisor, ChildSpec(Connection, log), name="p")
        temporary = await system.spawn(DynamicSupervisor, ChildSpec(Connection, log, restart="temporary"),
                                       name="t")
        kept = await permanent.ask(StartChild("kept"))
        gone = await temporary.ask(StartChild("gone"))
        kept.tell("crash")
        gone.tell("crash")
        await settle()
        assert await permanent.ask(WhichChildren()) == [kept]
        assert await kept.ask("?") == "hello kept"
        assert await temporary.ask(WhichChildren()) == []
        assert gone.is_stopped


async def test_dynamic_children_are_lost_when_the_supervisor_restarts(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    dynamic = ChildSpec(DynamicSupervisor, ChildSpec(Connection, log), name="conns",
                        supervision=OneForOne(max_restarts=0))
    async with ActorSystem() as system:
        await system.spawn(Supervisor, [dynamic], name="sup")
        conns = system.lookup("sup/conns")
        assert conns is not None
        one = await conns.ask(StartChild("one"))
        await conns.ask(StartChild("two"))
        one.tell("crash")  # conns may not restart it: conns fails and sup restarts it
        await settle()
        assert system.lookup("sup/conns") is conns
        assert await conns.ask(WhichChildren()) == []
        assert log == ["start one", "start two", "stop two", "stop one"]


async def test_a_dynamic_template_may_not_have_a_name(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as excinfo:
            await system.spawn(DynamicSupervisor, ChildSpec(Connection, [], name="fixed"))
        assert isinstance(excinfo.value.cause, ValueError)
        assert "'fixed'" in str(excinfo.value.cause)


# -- stress --------------------------------------------------------------------------------------------------


@attrs.frozen
class Work:
    """One unit of traffic for a leaf; ``fail`` makes the leaf raise while handling it."""

    serial: int
    fail: bool


@attrs.define
class Ledger:
    """What the leaves did, by leaf path (shared by reference: one process)."""

    handled: collections.Counter[str] = attrs.field(factory=collections.Counter)
    failed: collections.Counter[str] = attrs.field(factory=collections.Counter)
    lost: collections.Counter[str] = attrs.field(factory=collections.Counter)


class Leaf(Actor):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def receive(self, message: Work) -> None:
        if message.fail:
            self.ledger.failed[self.ref.path] += 1
            raise RuntimeError(f"failure #{message.serial}")
        self.ledger.handled[self.ref.path] += 1
        await trio.sleep(0.02)  # handling takes time, so that messages queue up (utilization about 1/3)


class LostLetters(Actor):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def receive(self, message: DeadLetter) -> None:
        if isinstance(message.message, Work):
            assert message.recipient is not None
            self.ledger.lost[message.recipient.path] += 1




@pytest.mark.parametrize("mid_intensity", [3, 1000], ids=["escalating", "leaf-restarts-only"])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_three_level_tree_stays_consistent_under_random_failures(
        autojump_clock: trio.testing.MockClock, seed: int, mid_intensity: int) -> None:
    rng = random.Random(seed)
    ledger = Ledger()
    sent: collections.Counter[str] = collections.Counter()
    mid_strategies = [OneForOne(max_restarts=mid_intensity, within=1.0),
                      OneForAll(max_restarts=mid_intensity, within=1.0),
                      RestForOne(max_restarts=mid_intensity, within=1.0)]
    root_strategy = OneForOne(max_restarts=1000, within=1.0)
    leaves = [f"leaf{j}" for j in range(4)]
    mids = [ChildSpec(Supervisor, [ChildSpec(Leaf, ledger, name=leaf) for leaf in leaves], name=f"mid{i}",
                      supervision=strategy) for i, strategy in enumerate(mid_strategies)]
    paths = [f"root/mid{i}/{leaf}" for i in range(len(mids)) for leaf in leaves]
    before = all_tasks()
    async with ActorSystem(supervision=OneForOne(max_restarts=0), seed=seed) as system:
        system.events.subscribe(await system.spawn(LostLetters, ledger, name="lost"), DeadLetter)
        await system.spawn(Supervisor, mids, name="root", supervision=root_strategy)
        end = trio.current_time() + 20.0
        while trio.current_time() < end:  # about 200 messages/s for 20 virtual seconds, 3% of them failing
            path = rng.choice(paths)
            ref = system.lookup(path)
            if ref is not None:  # None while its supervisor stops it to be restarted
                ref.tell(Work(sum(sent.values()), fail=rng.random() < 0.03))
                sent[path] += 1
            await trio.sleep(rng.expovariate(200.0))
        await trio.sleep(1.0)
        await settle()

        stats = system.statistics().actors
        # Every permanent child is alive and running, and every restart count respects its intensity.
        assert {path for path in stats if path.startswith("root")} == {
            "root", *(f"root/mid{i}" for i in range(len(mids))), *paths}
        assert all(stats[path].state == "running" for path in stats)
        assert stats["root"].restarts_in_window <= root_strategy.max_restarts
        for i, strategy in enumerate(mid_strategies):
            assert stats[f"root/mid{i}"].restarts_in_window <= strategy.max_restarts
        assert sum(ledger.failed.values()) > 50
        assert sum(ledger.handled.values()) > 3000
        mid_restarts = sum(stats[f"root/mid{i}"].restarts for i in range(len(mids)))
        if mid_intensity == 1000:
            # Only leaves restarted (behind the same refs, keeping their mailboxes): nothing lost but the
            # failing messages.
            assert mid_restarts == 0
            assert not ledger.lost
            for path in paths:
                assert ledger.handled[path] + ledger.failed[path] == sent[path], path
        else:
            # Mid-level supervisors exceeded their intensity and were restarted by root: their leaves stopped
            # for good, and what was queued for them became dead letters; nothing vanished silently.
            assert mid_restarts > 3
            assert sum(ledger.lost.values()) > 0
            for path in paths:
                assert ledger.handled[path] + ledger.failed[path] + ledger.lost[path] == sent[path], path
    assert all_tasks() == before
