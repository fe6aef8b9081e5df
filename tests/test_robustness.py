"""No odd value, stray exception or stuck hook takes a system down; stops are bounded; timers keep their rate."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorFailed,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    Directive,
    Mailbox,
    MailboxFull,
    OneForOne,
    Reply,
)
from actors.testing import Probe
from runtime._show import show

pytestmark = pytest.mark.deadline(120)


class BadRepr:
    """A value whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def deeply_nested() -> list[Any]:
    """A list nested deeper than the recursion limit: its repr raises RecursionError."""
    value: list[Any] = []
    for _ in range(sys.getrecursionlimit() + 100):
        value = [value]
    return value


ODD_VALUES = [BadRepr(), deeply_nested()]


class Fragile(Actor):
    """Fails on every message except "ping"."""

    async def receive(self, message: Any) -> Any:
        if isinstance(message, str) and message == "ping":
            return "pong"
        raise ValueError("cannot handle it")


# -- formatting user values never fails ------------------------------------------------------------------------


def test_show_survives_any_value_and_stays_short() -> None:
    assert show(BadRepr()) == "<BadRepr object (repr raised RuntimeError)>"
    assert show(deeply_nested()) == "<list object (repr raised RecursionError)>"
    assert show("x" * 1000).endswith("…")
    assert len(show("x" * 1000)) == 201
    assert show([1, 2]) == "[1, 2]"


@pytest.mark.parametrize("odd", ODD_VALUES, ids=["bad-repr", "too-deep"])
async def test_a_failure_on_an_odd_message_is_a_failure_of_that_actor_only(
        autojump_clock: trio.testing.MockClock, odd: Any) -> None:
    async with ActorSystem() as system:
        fragile = await system.spawn(Fragile, name="fragile")
        with pytest.raises(ActorFailed) as excinfo:
            await fragile.ask(odd)
        assert isinstance(excinfo.value.cause, ValueError)
        assert "repr raised" in str(excinfo.value)
        fragile.tell(odd)  # a tell fails it the same way, and it is restarted again
        assert await fragile.ask("ping") == "pong"
        assert system.statistics().actors["fragile"].restarts == 2


@pytest.mark.parametrize("odd", ODD_VALUES, ids=["bad-repr", "too-deep"])
async def test_an_odd_message_to_a_stopped_or_full_actor_is_refused_cleanly(
        actor_system: ActorSystem, odd: Any) -> None:
    letters = await Probe.dead_letters(actor_system)
    stopped = await actor_system.spawn(Fragile)
    await actor_system.stop(stopped)
    with pytest.raises(ActorStopped, match="repr raised"):
        await stopped.ask(odd)
    stopped.tell(odd)
    assert (await letters.expect(DeadLetter)).reason == "stopped"
    gate = trio.Event()

    class Busy(Actor):
        async def receive(self, message: Any) -> Any:
            await gate.wait()

    busy = await actor_system.spawn(Busy, mailbox=Mailbox(capacity=1))
    busy.tell("occupy")
    await trio.testing.wait_all_tasks_blocked()
    busy.tell("fill")
    with pytest.raises(MailboxFull, match="repr raised"):
        busy.tell(odd)
    gate.set()


async def test_an_odd_error_escalated_past_the_top_still_ends_the_system_as_actor_failed(
        autojump_clock: trio.testing.MockClock) -> None:
    class OddError(Exception):
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    class Escalating(Actor):
        async def receive(self, message: Any) -> Any:
            raise OddError

    async def run() -> None:
        async with ActorSystem(supervision=OneForOne(decider=lambda _: Directive.ESCALATE)) as system:
            (await system.spawn(Escalating)).tell("go")
            await trio.sleep_forever()

    with pytest.raises(ActorFailed) as excinfo:
        await run()
    assert isinstance(excinfo.value.cause, OddError)


# -- BaseExceptions from user code -----------------------------------------------------------------------------


async def stray_cancelled() -> BaseException:
    """A real trio.Cancelled, caught in a scope of its own: raising it outside that scope is a stray one."""
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            return exc
    raise AssertionError("the cancelled scope did not cancel")  # pragma: no cover


async def generator_exit() -> BaseException:
    return GeneratorExit()


async def base_group() -> BaseException:
    return BaseExceptionGroup("group", [GeneratorExit()])


def raisers() -> list[tuple[str, Any]]:
    return [("cancelled", stray_cancelled), ("generator-exit", generator_exit), ("base-group", base_group)]


@pytest.mark.parametrize(("kind", "make"), raisers(), ids=[kind for kind, _ in raisers()])
async def test_a_base_exception_in_receive_is_a_failure_of_that_actor(
        autojump_clock: trio.testing.MockClock, kind: str, make: Any) -> None:
    class Raiser(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "raise":
                raise await make()
            return message

    start = trio.current_time()
    async with ActorSystem() as system:
        raiser = await system.spawn(Raiser, name="raiser")
        with pytest.raises(ActorFailed) as excinfo:
            await raiser.ask("raise")
        assert isinstance(excinfo.value.cause, BaseException)
        assert not isinstance(excinfo.value.cause, Exception)
        assert await raiser.ask("still here") == "still here"  # restarted by the default decider
        other = await system.spawn(Raiser)  # the system still takes new actors and asks
        assert await other.ask("hello") == "hello"
        assert system.statistics().actors["raiser"].restarts == 1
    assert trio.current_time() - start < 1.0  # shut down at once, not after the shutdown timeout


@pytest.mark.parametrize(("kind", "make"), raisers(), ids=[kind for kind, _ in raisers()])
async def test_a_base_exception_in_on_start_fails_the_spawn(actor_system: ActorSystem, kind: str,
                                                            make: Any) -> None:
    class BadStart(Actor):
        async def on_start(self) -> None:
            raise await make()

        async def receive(self, message: Any) -> Any:  # pragma: no cover - never starts
            return message

    with pytest.raises(ActorFailed) as excinfo:
        await actor_system.spawn(BadStart, name="bad")
    assert not isinstance(excinfo.value.cause, Exception)
    assert actor_system.lookup("bad") is None
    assert await (await actor_system.spawn(Fragile)).ask("ping") == "pong"


@pytest.mark.parametrize(("kind", "make"), raisers(), ids=[kind for kind, _ in raisers()])
async def test_a_base_exception_in_on_stop_is_logged_and_the_stop_completes(
        actor_system: ActorSystem, caplog: pytest.LogCaptureFixture, kind: str, make: Any) -> None:
    class BadStop(Actor):
        async def on_stop(self) -> None:
            raise await make()

        async def receive(self, message: Any) -> Any:
            return message

    ref = await actor_system.spawn(BadStop, name="bad-stop")
    with caplog.at_level(logging.ERROR, logger="actors"):
        await actor_system.stop(ref)
    assert ref.is_stopped
    assert any("on_stop of actor 'bad-stop' raised" in record.getMessage() for record in caplog.records)


async def test_keyboard_interrupt_in_an_actor_ends_the_system_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    class Interrupting(Actor):
        async def receive(self, message: Any) -> Any:
            raise KeyboardInterrupt

    start = trio.current_time()
    with pytest.raises(BaseExceptionGroup) as excinfo:
        async with ActorSystem(shutdown_timeout=30.0) as system:
            await (await system.spawn(Interrupting)).ask("go")
    assert excinfo.group_contains(KeyboardInterrupt)
    assert trio.current_time() - start < 1.0


# -- stop_timeout bounds the whole stop ------------------------------------------------------------------------


async def test_stop_timeout_bounds_a_blocking_on_stop(autojump_clock: trio.testing.MockClock,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    stopped: list[str] = []

    class StuckOnStop(Actor):
        async def on_stop(self) -> None:
            try:
                await trio.sleep_forever()
            finally:
                stopped.append("cancelled")

        async def receive(self, message: Any) -> Any:
            return message

    async with ActorSystem() as system:
        ref = await system.spawn(StuckOnStop, stop_timeout=2.0)
        start = trio.current_time()
        with caplog.at_level(logging.WARNING, logger="actors"):
            await system.stop(ref)
        assert trio.current_time() - start == pytest.approx(2.0)
        assert stopped == ["cancelled"]
        assert any("did not finish within stop_timeout=2.0s" in r.getMessage() for r in caplog.records)


async def test_stop_timeout_bounds_the_handler_and_on_stop_together(
        autojump_clock: trio.testing.MockClock) -> None:
    class SlowBoth(Actor):
        async def on_stop(self) -> None:
            await trio.sleep(10.0)

        async def receive(self, message: Any) -> Any:
            await trio.sleep(10.0)

    async with ActorSystem() as system:
        ref = await system.spawn(SlowBoth, stop_timeout=3.0)
        ref.tell("work")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await system.stop(ref)
        assert trio.current_time() - start == pytest.approx(3.0)  # one budget for the whole stop, as OTP


async def test_stop_timeout_bounds_on_stop_during_a_restart(autojump_clock: trio.testing.MockClock) -> None:
    class Restarting(Actor):
        async def on_stop(self) -> None:
            await trio.sleep_forever()

        async def receive(self, message: Any) -> Any:
            if message == "boom":
                raise ValueError("boom")
            return message

    async with ActorSystem() as system:
        ref = await system.spawn(Restarting, stop_timeout=1.0)
        ref.tell("boom")
        start = trio.current_time()
        assert await ref.ask("after") == "after"
        assert trio.current_time() - start == pytest.approx(1.0)


async def test_without_stop_timeout_a_stop_waits_for_on_stop(autojump_clock: trio.testing.MockClock) -> None:
    class SlowStop(Actor):
        async def on_stop(self) -> None:
            await trio.sleep(30.0)

        async def receive(self, message: Any) -> Any:
            return message

    async with ActorSystem(shutdown_timeout=60.0) as system:
        ref = await system.spawn(SlowStop)
        start = trio.current_time()
        await system.stop(ref)
        assert trio.current_time() - start == pytest.approx(30.0)


# -- silent acceptance -----------------------------------------------------------------------------------------


def test_reply_error_refuses_anything_but_an_exception_at_once() -> None:
    with pytest.raises(TypeError, match="'text'"):
        Reply.error("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'text'"):
        Reply("text")  # type: ignore[arg-type]
    assert Reply.error(ValueError("x")).exception.args == ("x",)


@pytest.mark.parametrize("bad", [-1.0, 0, float("nan"), "10", True])
def test_a_bad_shutdown_timeout_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ActorSystem(shutdown_timeout=bad)


@pytest.mark.parametrize("overflow", ["fail", "drop_new"])
async def test_request_on_a_full_mailbox_returns_a_failed_future_whatever_the_policy(
        actor_system: ActorSystem, overflow: Any) -> None:
    gate = trio.Event()

    class Busy(Actor):
        async def receive(self, message: Any) -> Any:
            await gate.wait()
            return message

    busy = await actor_system.spawn(Busy, mailbox=Mailbox(capacity=1, overflow=overflow))
    busy.tell("occupy")
    await trio.testing.wait_all_tasks_blocked()
    busy.tell("fill")
    future = busy.request("no room")
    assert future.done()
    assert isinstance(future.exception(), MailboxFull)
    with pytest.raises(MailboxFull):
        await busy.ask("no room either")
    assert actor_system.statistics().pending_asks == 0
    gate.set()


# -- timers keep a fixed rate ----------------------------------------------------------------------------------


@pytest.mark.deadline(300)
async def test_a_periodic_timer_keeps_a_fixed_rate_when_handling_takes_time(
        autojump_clock: trio.testing.MockClock) -> None:
    class Ticker(Actor):
        def __init__(self) -> None:
            self.ticks = 0

        async def on_start(self) -> None:
            self.timers.start_periodic("tick", 1.0, "tick")

        async def receive(self, message: Any) -> Any:
            if message == "tick":
                self.ticks += 1
                autojump_clock.jump(0.3)  # the handler takes 0.3 s of the clock without yielding
                return None
            return self.ticks

    async with ActorSystem() as system:
        start = trio.current_time()
        ticker = await system.spawn(Ticker)
        await trio.sleep_until(start + 150.5)
        assert await ticker.ask("count") == 150
