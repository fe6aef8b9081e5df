"""Supervision: strategies, restart intensity, deciders, backoff and restart types, under virtual time."""

from __future__ import annotations

import pickle
import re
from typing import Any

import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorFailed,
    ActorSystem,
    Backoff,
    Directive,
    LifecycleEvent,
    OneForAll,
    OneForOne,
    RestForOne,
    Terminated,
)
from runtime._supervision import Restart, RestartWindow, default_decider, plan_restart, should_restart

# -- the pure decisions --------------------------------------------------------------------------------------


def test_restart_window_is_sliding_as_otp() -> None:
    window = RestartWindow(max_restarts=2, within=10.0)
    assert window.allow(0.0)
    assert window.allow(4.0)
    assert not window.allow(9.0)  # a third restart inside any 10 s
    assert window.count(9.0) == 2
    assert window.allow(10.5)  # the one at 0.0 has left the window
    assert not window.allow(13.0)
    assert window.allow(14.5)


def test_zero_restarts_means_the_first_failure_is_too_many() -> None:
    assert not RestartWindow(0, 5.0).allow(0.0)


def test_backoff_doubles_up_to_the_cap_and_jitter_stays_in_bounds() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittery = Backoff(1.0, 8.0, jitter=0.25)
    assert jittery.delay(1, lambda: 0.0) == pytest.approx(1.5)
    assert jittery.delay(1, lambda: 0.999999) == pytest.approx(2.5, rel=1e-5)
    assert Backoff(1.0, 8.0).delay(10_000) == 8.0


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: OneForOne(max_restarts=-1), ["max_restarts=-1"]),
        (lambda: OneForOne(within=0), ["within=0"]),
        (lambda: OneForAll(within=-2.0), ["within=-2.0"]),
        (lambda: RestForOne(max_restarts=1.5), ["max_restarts=1.5"]),  # type: ignore[arg-type]
        (lambda: Backoff(2.0, 1.0), ["max=1.0", "min=2.0"]),
        (lambda: Backoff(-1.0, 1.0), ["min=-1.0"]),
        (lambda: Backoff(1.0, 2.0, jitter=2.0), ["jitter=2.0"]),
        (lambda: Restart.coerce("sometimes"), ["'sometimes'", "'permanent'"]),
        (lambda: OneForOne(decider="restart"), ["decider='restart'"]),  # type: ignore[arg-type]
    ],
)
def test_bad_strategy_arguments_name_the_argument_and_value(make: Any, words: list[str]) -> None:
    with pytest.raises(ValueError, match=re.escape(words[0])) as info:
        make()
    for word in words[1:]:
        assert word in str(info.value)


def test_deciders() -> None:
    assert default_decider(ValueError()) is Directive.RESTART
    assert default_decider(KeyboardInterrupt()) is Directive.ESCALATE
    original = KeyError("k")

    def broken(_: BaseException) -> Directive:
        raise RuntimeError("decider bug")

    directive, error = OneForOne(decider=broken).decide(original)
    assert directive is Directive.ESCALATE
    assert isinstance(error, RuntimeError)
    assert error.__cause__ is original
    directive, error = OneForOne(decider=lambda _: "restart").decide(original)  # type: ignore[arg-type,return-value]
    assert directive is Directive.ESCALATE
    assert "'restart'" in str(error)
    assert error.__cause__ is original


def test_affected_children_per_strategy() -> None:
    children = ["a", "b", "c", "d"]
    assert OneForOne().affected(children, "b") == ["b"]
    assert OneForAll().affected(children, "b") == children
    assert RestForOne().affected(children, "b") == ["b", "c", "d"]


def test_restart_types_follow_otp() -> None:
    assert should_restart(Restart.PERMANENT, failed=False)
    assert should_restart(Restart.PERMANENT, failed=True)
    assert should_restart(Restart.TRANSIENT, failed=True)
    assert not should_restart(Restart.TRANSIENT, failed=False)
    assert not should_restart(Restart.TEMPORARY, failed=True)


def test_strategies_pickle() -> None:
    strategy = RestForOne(max_restarts=2, within=3.0, backoff=Backoff(0.1, 1.0))
    assert pickle.loads(pickle.dumps(strategy)) == strategy


# -- actors that record what happens to them -----------------------------------------------------------------


class Worker(Actor):
    """Counts messages; raises on ("boom", exc); records its hooks in a shared log."""

    def __init__(self, log: list[Any], tag: str) -> None:
        self.log = log
        self.tag = tag
        self.count = 0

    async def on_start(self) -> None:
        self.log.append((self.tag, "start"))

    async def on_restart(self, error: BaseException | None) -> None:
        self.log.append((self.tag, "restart", repr(error)))

    async def on_stop(self) -> None:
        self.log.append((self.tag, "stop"))

    async def receive(self, message: Any) -> Any:
        match message:
            case ("boom", exc):
                raise exc
            case "count":
                return self.count
            case "repr":
                return repr(self)
            case "stop":
                self.stop()
            case _:
                self.count += 1
                return self.count


class Parent(Actor):
    """Spawns Worker children named by ``tags`` in on_start; answers ("child", tag) with the child's ref."""

    def __init__(self, log: list[Any], tags: list[str], child_restart: str = "transient") -> None:
        self.log = log
        self.tags = tags
        self.child_restart = child_restart

    async def on_start(self) -> None:
        self.log.append(("parent", "start"))
        for tag in self.tags:
            await self.spawn(Worker, self.log, tag, name=tag, restart=self.child_restart)

    async def on_restart(self, error: BaseException | None) -> None:
        self.log.append(("parent", "restart", repr(error)))
        await self.on_start()

    async def on_stop(self) -> None:
        self.log.append(("parent", "stop"))

    async def receive(self, message: Any) -> Any:
        match message:
            case ("child", tag):
                return next(ref for ref in self.children if ref.name == tag)
            case "children":
                return [ref.name for ref in self.children]
            case "repr":
                return repr(self)


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


# -- restarts ------------------------------------------------------------------------------------------------


async def test_restart_builds_a_fresh_instance_behind_the_same_ref_and_keeps_the_mailbox(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        worker = await system.spawn(Worker, log, "w", name="w")
        assert await worker.ask("x") == 1
        worker.tell(("boom", ValueError("bad")))
        worker.tell("y")  # queued behind the failing message: handled by the fresh instance
        worker.tell("z")
        assert await worker.ask("count") == 2
        assert system.lookup("w") is worker
        stats = system.statistics().actors["w"]
        assert stats.restarts == 1
        assert stats.failed == 1
        assert log == [("w", "start"), ("w", "stop"), ("w", "restart", "ValueError('bad')")]


async def test_ask_of_the_failing_message_raises_actor_failed_with_the_cause(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        worker = await system.spawn(Worker, [], "w", name="worker")
        error = ZeroDivisionError("x")
        with pytest.raises(ActorFailed) as info:
            await worker.ask(("boom", error))
        assert info.value.cause is error
        assert info.value.__cause__ is error
        # the message names the actor, the message it was handling and the error
        assert "<ActorRef 'worker'>" in str(info.value)
        assert "('boom', ZeroDivisionError('x'))" in str(info.value)
        assert "ZeroDivisionError('x')" in str(info.value).split("handling")[-1]
        assert await worker.ask("count") == 0


async def test_children_of_a_failed_incarnation_stop_before_its_on_stop(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []

    class Boss(Parent):
        async def receive(self, message: Any) -> Any:
            if message == "fail":
                raise RuntimeError("boss down")
            return await super().receive(message)

    async with ActorSystem() as system:
        boss = await system.spawn(Boss, log, ["a", "b"], name="boss")
        old_a = await boss.ask(("child", "a"))
        log.clear()
        boss.tell("fail")
        assert await boss.ask("children") == ["a", "b"]
        assert log == [("b", "stop"), ("a", "stop"), ("parent", "stop"),
                       ("parent", "restart", "RuntimeError('boss down')"), ("parent", "start"),
                       ("a", "start"), ("b", "start")]
        assert old_a.is_stopped  # children are not restarted: the fresh boss spawned new ones
        assert await boss.ask(("child", "a")) is not old_a


@pytest.mark.parametrize(
    ("strategy", "failing", "expected"),
    [
        (OneForOne(), "b", [("b", "stop"), ("b", "restart", "ValueError('b')")]),
        (OneForAll(), "b", [("c", "stop"), ("b", "stop"), ("a", "stop"),
                            ("a", "restart", "ValueError('b')"), ("b", "restart", "ValueError('b')"),
                            ("c", "restart", "ValueError('b')")]),
        (RestForOne(), "b", [("c", "stop"), ("b", "stop"),
                             ("b", "restart", "ValueError('b')"), ("c", "restart", "ValueError('b')")]),
    ],
)
async def test_strategies_stop_in_reverse_start_order_and_start_in_start_order(
        autojump_clock: trio.testing.MockClock, strategy: Any, failing: str, expected: list[Any]) -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        parent = await system.spawn(Parent, log, ["a", "b", "c"], supervision=strategy)
        refs = {tag: await parent.ask(("child", tag)) for tag in "abc"}
        for ref in refs.values():
            ref.tell("work")
        log.clear()
        with pytest.raises(ActorFailed):
            await refs[failing].ask(("boom", ValueError(failing)))
        await settle()
        assert log == expected
        for tag, ref in refs.items():  # every ref survives, whichever strategy restarted it
            assert await parent.ask(("child", tag)) is ref
            restarted = any(entry[0] == tag and entry[1] == "restart" for entry in expected)
            assert await ref.ask("count") == (0 if restarted else 1)


async def test_exceeding_the_intensity_stops_the_children_and_fails_the_parent(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []

    async def run() -> None:
        async with ActorSystem(supervision=OneForOne(max_restarts=0)) as system:
            parent = await system.spawn(Parent, log, ["a", "b", "c"], name="parent",
                                        supervision=OneForOne(max_restarts=2, within=60.0))
            b = await parent.ask(("child", "b"))
            for n in range(3):
                log.append(("test", "fail", n))
                b.tell(("boom", KeyError(n)))
                await settle()
            await trio.sleep_forever()  # the escalation cancels the body

    with pytest.raises(ActorFailed) as info:
        await run()
    assert isinstance(info.value.cause, KeyError)
    assert info.value.cause.args == (2,)
    third = log.index(("test", "fail", 2))
    assert log[third + 1:third + 5] == [("c", "stop"), ("b", "stop"), ("a", "stop"), ("parent", "stop")]


async def test_restarts_spread_wider_than_the_window_never_exceed_it(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem(supervision=OneForOne(max_restarts=1, within=2.0)) as system:
        worker = await system.spawn(Worker, [], "w")
        for _ in range(5):
            worker.tell(("boom", ValueError()))
            await trio.sleep(2.1)
        assert await worker.ask("count") == 0
        assert system.statistics().actors[worker.path].restarts == 5
        assert system.statistics().actors[worker.path].state == "running"


async def test_resume_keeps_state_and_stop_notifies_watchers_once(autojump_clock: trio.testing.MockClock) -> None:
    def decider(error: BaseException) -> Directive:
        return Directive.RESUME if isinstance(error, ValueError) else Directive.STOP

    class Watcher(Actor):
        def __init__(self) -> None:
            self.seen: list[Terminated] = []

        async def receive(self, message: Any) -> Any:
            if isinstance(message, Terminated):
                self.seen.append(message)
            elif message == "seen":
                return self.seen
            else:
                self.watch(message)

    async with ActorSystem(supervision=OneForOne(decider=decider)) as system:
        worker = await system.spawn(Worker, [], "w")
        watcher = await system.spawn(Watcher)
        watcher.tell(worker)
        await worker.ask("x")
        worker.tell(("boom", ValueError("resume me")))
        assert await worker.ask("count") == 1  # same instance, state kept
        error = OSError("stop me")
        worker.tell(("boom", error))
        await settle()
        assert worker.is_stopped
        seen = await watcher.ask("seen")
        assert len(seen) == 1
        assert seen[0].ref is worker
        assert seen[0].reason is error


async def test_escalate_restarts_the_parent_with_the_original_error(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        parent = await system.spawn(Parent, log, ["a"],
                                    supervision=OneForOne(decider=lambda _: Directive.ESCALATE))
        a = await parent.ask(("child", "a"))
        error = LookupError("escalated")
        a.tell(("boom", error))
        await settle()
        assert ("parent", "restart", repr(error)) in log
        assert a.is_stopped  # the escalation restarted the parent, which stopped its children
        assert not parent.is_stopped


async def test_a_raising_decider_escalates_with_both_errors_chained(autojump_clock: trio.testing.MockClock) -> None:
    def decider(error: BaseException) -> Directive:
        raise TypeError("decider broke")

    async def run() -> None:
        async with ActorSystem(supervision=OneForOne(decider=decider)) as system:
            worker = await system.spawn(Worker, [], "w")
            worker.tell(("boom", ValueError("original")))
            await trio.sleep_forever()

    with pytest.raises(ActorFailed) as info:
        await run()
    cause = info.value.cause
    assert isinstance(cause, TypeError)
    assert isinstance(cause.__cause__, ValueError)


async def test_backoff_delays_restarts_and_resets_after_a_quiet_window(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []

    class Timed(Worker):
        async def on_restart(self, error: BaseException | None) -> None:
            self.log.append(("restart-at", trio.current_time()))

    strategy = OneForOne(max_restarts=10, within=30.0, backoff=Backoff(1.0, 4.0))
    async with ActorSystem(supervision=strategy) as system:
        worker = await system.spawn(Timed, log, "w")
        start = trio.current_time()
        for _ in range(4):
            worker.tell(("boom", ValueError()))
            worker.tell("during backoff")  # waits in the mailbox for the fresh instance
            assert await worker.ask("count") == 1
        times = [t - start for kind, t in log if kind == "restart-at"]
        assert times == pytest.approx([1.0, 3.0, 7.0, 11.0])  # 1, 2, 4, then capped at 4
        await trio.sleep(31.0)  # a quiet window: the next restart waits min again
        log.clear()
        failed_at = trio.current_time()
        worker.tell(("boom", ValueError()))
        assert await worker.ask("count") == 0
        assert [entry for entry in log if entry[0] == "restart-at"] == [("restart-at", failed_at + 1.0)]


async def test_stop_during_backoff_is_prompt(autojump_clock: trio.testing.MockClock) -> None:
    strategy = OneForOne(backoff=Backoff(100.0, 100.0))
    async with ActorSystem(supervision=strategy) as system:
        worker = await system.spawn(Worker, [], "w")
        worker.tell(("boom", ValueError()))
        await settle()
        before = trio.current_time()
        await system.stop(worker)
        assert trio.current_time() - before < 1.0
        assert worker.is_stopped


@pytest.mark.parametrize(
    ("restart", "fail_restarts", "stop_restarts"),
    [("permanent", True, True), ("transient", True, False), ("temporary", False, False)],
)
async def test_restart_types(autojump_clock: trio.testing.MockClock, restart: str, fail_restarts: bool,
                             stop_restarts: bool) -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        parent = await system.spawn(Parent, log, ["a", "b"], child_restart=restart)
        a = await parent.ask(("child", "a"))
        b = await parent.ask(("child", "b"))
        a.tell(("boom", ValueError()))
        b.tell("stop")
        await settle()
        assert a.is_stopped is not fail_restarts
        assert b.is_stopped is not stop_restarts
        assert (("a", "restart", "ValueError()") in log) is fail_restarts
        assert (("b", "restart", "None") in log) is stop_restarts
        await system.stop(parent)
        assert a.is_stopped
        assert b.is_stopped
        # a parent stopping its children never restarts them, whatever their type
        assert log[-1] == ("parent", "stop")


async def test_timers_of_the_old_incarnation_never_fire_in_the_new_one(
        autojump_clock: trio.testing.MockClock) -> None:
    class Ticker(Actor):
        def __init__(self, log: list[Any]) -> None:
            self.log = log

        async def on_start(self) -> None:
            self.timers.start_single("once", 5.0, "tick")
            self.timers.start_periodic("every", 1.0, "beat")

        async def on_restart(self, error: BaseException | None) -> None:
            self.log.append("restarted")

        async def receive(self, message: Any) -> Any:
            if message == "boom":
                raise ValueError
            self.log.append(message)

    log: list[Any] = []
    async with ActorSystem() as system:
        ticker = await system.spawn(Ticker, log)
        await trio.sleep(2.5)
        ticker.tell("boom")
        await trio.sleep(10.0)
        assert log == ["beat", "beat", "restarted"]


async def test_a_restart_sends_no_terminated_and_publishes_failed_and_restarted(
        autojump_clock: trio.testing.MockClock) -> None:
    class Recorder(Actor):
        def __init__(self) -> None:
            self.seen: list[Any] = []

        async def receive(self, message: Any) -> Any:
            if message == "seen":
                return self.seen
            if isinstance(message, LifecycleEvent | Terminated):
                self.seen.append(message)
            else:
                self.watch(message)
            return None

    async with ActorSystem() as system:
        recorder = await system.spawn(Recorder, name="recorder")
        worker = await system.spawn(Worker, [], "w", name="w")
        system.events.subscribe(recorder, LifecycleEvent)
        recorder.tell(worker)
        error = ValueError("once")
        worker.tell(("boom", error))
        await settle()
        seen = await recorder.ask("seen")
        assert [(e.kind, e.error) for e in seen] == [("failed", error), ("restarted", error)]
        assert not any(isinstance(e, Terminated) for e in seen)


async def test_supervision_state_is_inspectable(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        parent = await system.spawn(Parent, log, ["a", "b"], name="p",
                                    supervision=OneForOne(max_restarts=5, within=10.0))
        a = await parent.ask(("child", "a"))
        for _ in range(2):
            a.tell(("boom", ValueError()))
        await settle()
        stats = system.statistics()
        assert stats.actors["p"].children == {"running": 2}
        assert stats.actors["p"].restarts_in_window == 2
        assert stats.actors["p/a"].restarts == 2
        assert await a.ask("repr") == "<Worker 'p/a' running queued=0 children=0 restarts=2>"
        assert await parent.ask("repr") == "<Parent 'p' running queued=0 children=2>"
        await trio.sleep(11.0)
        assert system.statistics().actors["p"].restarts_in_window == 0


# -- the restart plan, decided without a scheduler -------------------------------------------------------------


class _Child:
    """What plan_restart reads of a child."""

    def __init__(self, path: str, restart: Restart = Restart.PERMANENT) -> None:
        self.path = path
        self.restart = restart
        self.backoff_count = 0
        self.last_restart = float("-inf")


def test_a_lone_restart_plans_the_failed_child_only() -> None:
    a, b = _Child("a"), _Child("b")
    error = ValueError("x")
    plan = plan_restart(OneForOne(), [a, b], b, error, failed=True, window=RestartWindow(3, 5.0), now=0.0)
    assert (plan.action, plan.directive, plan.error) == ("restart", Directive.RESTART, error)
    assert plan.halt == plan.rebuild == (b,)
    assert plan.stop == ()
    assert plan.alone


def test_a_group_restart_halts_in_reverse_and_drops_temporary_siblings() -> None:
    a, b, c = _Child("a"), _Child("b", Restart.TEMPORARY), _Child("c")
    plan = plan_restart(OneForAll(), [a, b, c], a, ValueError(), failed=True, window=RestartWindow(3, 5.0), now=0.0)
    assert plan.halt == (c, b, a)
    assert plan.rebuild == (a, b, c)
    assert plan.stop == (b,)
    assert not plan.alone
    rest = plan_restart(RestForOne(), [a, b, c], c, ValueError(), failed=True, window=RestartWindow(3, 5.0),
                        now=0.0)
    assert rest.halt == rest.rebuild == (c,)  # the last child: nothing was started after it
    temporary = plan_restart(OneForAll(), [a, b, c], b, ValueError(), failed=True, window=RestartWindow(3, 5.0),
                             now=0.0)
    assert (temporary.action, temporary.stop) == ("stop", (b,))  # a failed temporary child is never restarted


@pytest.mark.parametrize(("directive", "action"), [
    (Directive.RESUME, "resume"), (Directive.STOP, "stop"), (Directive.ESCALATE, "escalate"),
])
def test_the_decider_picks_the_plan(directive: Directive, action: str) -> None:
    child = _Child("a")
    window = RestartWindow(3, 5.0)
    plan = plan_restart(OneForOne(decider=lambda _: directive), [child], child, ValueError(), failed=True,
                        window=window, now=0.0)
    assert plan.action == action
    assert plan.stop == ((child,) if action == "stop" else ())
    assert window.count(0.0) == 0  # only a restart counts against the intensity


def test_exceeding_the_intensity_gives_up_and_a_normal_exit_of_a_transient_child_stops_it() -> None:
    child = _Child("a")
    window = RestartWindow(1, 5.0)
    assert plan_restart(OneForOne(), [child], child, ValueError(), failed=True, window=window, now=0.0).action \
        == "restart"
    plan = plan_restart(OneForOne(), [child], child, ValueError("again"), failed=True, window=window, now=1.0)
    assert plan.action == "give_up"
    exited = plan_restart(OneForOne(), [child], child, None, failed=False, window=RestartWindow(3, 5.0), now=0.0)
    assert exited.action == "restart"  # a permanent child that stopped itself
    transient = _Child("t", Restart.TRANSIENT)
    assert plan_restart(OneForOne(), [transient], transient, None, failed=False, window=RestartWindow(3, 5.0),
                        now=0.0).action == "stop"
    give_up = plan_restart(OneForOne(max_restarts=0), [child], child, None, failed=False,
                           window=RestartWindow(0, 5.0), now=0.0)
    assert give_up.action == "give_up"
    assert isinstance(give_up.error, ActorFailed)


def test_the_backoff_count_grows_and_resets_after_a_quiet_window() -> None:
    child = _Child("a")
    strategy = OneForOne(max_restarts=100, within=10.0, backoff=Backoff(1.0, 60.0))
    window = RestartWindow(100, 10.0)
    delays = []
    for now in (0.0, 1.0, 2.0):
        plan = plan_restart(strategy, [child], child, ValueError(), failed=True, window=window, now=now)
        child.backoff_count, child.last_restart = plan.backoff_count, now
        delays.append(plan.delay)
    assert delays == [1.0, 2.0, 4.0]
    quiet = plan_restart(strategy, [child], child, ValueError(), failed=True, window=window, now=2.0 + 10.0)
    assert (quiet.delay, quiet.backoff_count) == (1.0, 1)


# -- the edges of the rules ------------------------------------------------------------------------------------


def test_a_restart_exactly_within_seconds_later_is_outside_the_window() -> None:
    window = RestartWindow(max_restarts=1, within=10.0)
    assert window.allow(0.0)
    assert not window.allow(9.999)
    assert window.count(10.0) == 0  # the restart at 0.0 has left the window at 10.0
    assert window.allow(10.0)
    assert repr(window) == "<RestartWindow 1/1 within 10.0s>"


def test_the_backoff_count_resets_exactly_within_seconds_after_the_last_restart() -> None:
    child = _Child("a")
    child.backoff_count, child.last_restart = 3, 5.0
    strategy = OneForOne(max_restarts=100, within=10.0, backoff=Backoff(1.0, 60.0))
    almost = plan_restart(strategy, [child], child, ValueError(), failed=True, window=RestartWindow(100, 10.0),
                          now=14.5)
    assert (almost.delay, almost.backoff_count) == (8.0, 4)
    edge = plan_restart(strategy, [child], child, ValueError(), failed=True, window=RestartWindow(100, 10.0),
                        now=15.0)
    assert (edge.delay, edge.backoff_count) == (1.0, 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: OneForOne(within=True), "within=True must be a number"),
        (lambda: OneForOne(within="5"), "within='5' must be a number"),
        (lambda: OneForOne(within=float("nan")), "within=nan must be a number"),
        (lambda: OneForOne(max_restarts=True), "max_restarts=True must be an integer"),
        (lambda: Backoff(False, 1.0), "Backoff min=False must be a number"),
        (lambda: Backoff(0.0, None), "Backoff max=None must be a number"),
        (lambda: Backoff(0.0, float("nan")), "Backoff max=nan must be a number"),
        (lambda: Backoff(0.0, -1.0), "Backoff max=-1.0 must be zero or more"),
        (lambda: Backoff(1.0, 2.0, jitter=-0.1), "Backoff jitter=-0.1 must be zero or more"),
        (lambda: Backoff(1.0, 2.0, jitter=1.01), "Backoff jitter=1.01 must be between 0 and 1"),
        (lambda: OneForOne(within=0.0), "within=0.0 must be positive"),
        (lambda: OneForOne(backoff=1.0), "backoff=1.0 must be a Backoff"),
    ],
)
def test_bad_numbers_are_refused_with_the_reason(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()


def test_the_edges_of_the_valid_numbers_are_accepted() -> None:
    assert Backoff(0.0, 0.0).delay(3) == 0.0  # zero is a valid min and max
    assert Backoff(1.0, 1.0, jitter=0.0).delay(0, lambda: 0.0) == 1.0
    full = Backoff(1.0, 2.0, jitter=1)  # the widest spread: a factor in [0, 2)
    assert full.delay(0, lambda: 0.0) == 0.0
    assert full.delay(0, lambda: 0.5) == 1.0
    assert OneForOne(max_restarts=0, within=1e-9).max_restarts == 0


def test_jitter_scales_the_delay_linearly_in_the_random_draw() -> None:
    backoff = Backoff(2.0, 100.0, jitter=0.5)
    # factor = 1 + jitter * (2 * r - 1)
    assert backoff.delay(1, lambda: 0.75) == pytest.approx(4.0 * 1.25)
    assert backoff.delay(1, lambda: 0.25) == pytest.approx(4.0 * 0.75)
    assert backoff.delay(0, lambda: 0.6) == pytest.approx(2.0 * 1.1)


def test_backoff_reaches_the_cap_from_the_64th_attempt() -> None:
    huge = Backoff(1.0, 2.0**70)
    assert huge.delay(63) == 2.0**63
    assert huge.delay(64) == 2.0**70  # no 2**n computed past 63: the cap is taken as it is
    assert huge.delay(65) == 2.0**70


def test_default_strategy_limits_and_the_vocabulary() -> None:
    strategy = OneForOne()
    assert (strategy.max_restarts, strategy.within, strategy.decider, strategy.backoff) == (3, 5.0, None, None)
    assert repr(strategy.new_window()) == "<RestartWindow 0/3 within 5.0s>"
    assert [d.value for d in Directive] == ["resume", "restart", "stop", "escalate"]
    assert [r.value for r in Restart] == ["permanent", "transient", "temporary"]
    assert Restart.coerce("transient") is Restart.TRANSIENT
    assert Restart.coerce(Restart.TEMPORARY) is Restart.TEMPORARY
    with pytest.raises(ValueError, match="restart=3 is not a restart type"):
        Restart.coerce(3)  # type: ignore[arg-type]
    assert default_decider(SystemExit()) is Directive.ESCALATE
    assert default_decider(BaseExceptionGroup("g", [ValueError()])) is Directive.RESTART


@pytest.mark.parametrize(("directive", "action"), [
    (Directive.RESUME, "resume"), (Directive.STOP, "stop"), (Directive.ESCALATE, "escalate"),
])
def test_a_plan_without_a_restart_has_no_delay_and_restarts_nobody(directive: Directive, action: str) -> None:
    child = _Child("a")
    plan = plan_restart(OneForOne(decider=lambda _: directive, backoff=Backoff(1.0, 2.0)), [child], child,
                        ValueError(), failed=True, window=RestartWindow(3, 5.0), now=0.0)
    assert (plan.action, plan.delay, plan.backoff_count, plan.halt, plan.rebuild) == (action, 0.0, 0, (), ())
    assert not plan.alone


def test_without_backoff_a_restart_is_immediate_and_counts_nothing() -> None:
    child = _Child("a")
    child.backoff_count = 5
    plan = plan_restart(OneForOne(), [child], child, ValueError(), failed=True, window=RestartWindow(3, 5.0),
                        now=0.0)
    assert (plan.action, plan.delay, plan.backoff_count) == ("restart", 0.0, 0)


def test_a_large_intensity_is_counted_exactly() -> None:
    window = RestartWindow(max_restarts=1000, within=10.0)
    assert all(window.allow(0.0) for _ in range(1000))
    assert not window.allow(0.0)
    assert window.count(0.0) == 1000
