"""Request/response: ``ask``, ``request`` and :class:`Future`, replies, deferred replies and what ends an ask."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorError,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    DeadLetter,
    Future,
    FutureCancelled,
    Mailbox,
    MailboxFull,
    PoisonPill,
    Reply,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        return message


class Gate(Actor):
    """Blocks on an event while handling "wait", so that a test can queue messages behind it."""

    def __init__(self, gate: trio.Event) -> None:
        self.gate = gate

    async def receive(self, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        return message


class Deferring(Actor):
    """Defers every ask except ("answer", v) / ("fail", exc) / "stop", which answer or end the deferred ones."""

    def __init__(self) -> None:
        self.open: list[ActorRef] = []
        self.state = 0

    async def receive(self, message: Any) -> Any:
        match message:
            case ("answer", value):
                for reply in self.open:
                    reply.tell(value)
                return len(self.open)
            case ("fail", exc):
                for reply in self.open:
                    reply.fail(exc)  # type: ignore[attr-defined]
                return None
            case "stop":
                self.stop()
            case "boom":
                raise ValueError("boom")
            case _:
                self.open.append(self.defer_reply())
                return "ignored: the reply was deferred"
        return None


async def pending_asks(system: ActorSystem) -> int:
    await trio.testing.wait_all_tasks_blocked()
    return system.statistics().pending_asks


# -- ask ------------------------------------------------------------------------------------------------------


async def test_ask_answers_with_the_return_value(actor_system: ActorSystem) -> None:
    echo = await actor_system.spawn(Echo)
    assert await echo.ask("ping") == "ping"
    assert await echo.ask(None) is None
    assert actor_system.statistics().pending_asks == 0


async def test_ask_raises_actor_failed_with_the_cause(actor_system: ActorSystem) -> None:
    error = KeyError("lost")

    class Fails(Actor):
        async def receive(self, message: Any) -> Any:
            raise error

    ref = await actor_system.spawn(Fails, name="fails")
    with pytest.raises(ActorFailed) as info:
        await ref.ask("question")
    assert info.value.cause is error
    assert info.value.__cause__ is error
    assert "'fails'" in str(info.value)
    assert "'question'" in str(info.value)


async def test_reply_error_makes_the_ask_raise_without_failing_the_actor(actor_system: ActorSystem) -> None:
    class Refuses(Actor):
        def __init__(self) -> None:
            self.count = 0

        async def receive(self, message: Any) -> Any:
            self.count += 1
            if message == "bad":
                return Reply.error(ValueError("bad request"))
            return self.count

    ref = await actor_system.spawn(Refuses, name="refuses")
    assert await ref.ask("good") == 1
    with pytest.raises(ValueError, match="bad request"):
        await ref.ask("bad")
    assert await ref.ask("good") == 3  # the state is kept
    stats = actor_system.statistics().actors["refuses"]
    assert (stats.failed, stats.restarts) == (0, 0)


def test_reply_error_takes_only_exceptions() -> None:
    with pytest.raises(TypeError, match="'oops'"):
        Reply.error("oops")  # type: ignore[arg-type]


async def test_cancelling_an_ask_removes_the_pending_entry_and_a_late_reply_is_a_dead_letter(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref = await actor_system.spawn(Deferring, name="slow")
    with trio.move_on_after(1) as scope:
        await ref.ask("question")
    assert scope.cancelled_caught
    assert await pending_asks(actor_system) == 0
    assert await ref.ask(("answer", "too late")) == 1
    letter = await dead.expect(DeadLetter)
    assert (letter.message, letter.recipient, letter.reason) == ("too late", ref, "late reply")
    assert actor_system.statistics().dead_letters == 1


async def test_ask_cancelled_before_it_starts_sends_nothing(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    with trio.CancelScope() as scope:
        scope.cancel()
        await probe.ref.ask("never sent")
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert probe.messages == []
    assert actor_system.statistics().pending_asks == 0


async def test_ask_is_a_checkpoint_even_when_answered_at_once(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Echo)
    await actor_system.stop(ref)
    with trio.CancelScope() as scope:
        scope.cancel()
        await ref.ask("to a stopped actor")
    assert scope.cancelled_caught


async def test_ask_from_inside_an_actor(actor_system: ActorSystem) -> None:
    class Middle(Actor):
        def __init__(self, backend: ActorRef) -> None:
            self.backend = backend

        async def receive(self, message: Any) -> Any:
            return ("via middle", await self.backend.ask(message))

    backend = await actor_system.spawn(Echo)
    middle = await actor_system.spawn(Middle, backend)
    assert await middle.ask("x") == ("via middle", "x")


# -- ActorStopped: an ask never hangs on a dead actor ----------------------------------------------------------


async def test_ask_a_stopped_actor(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Echo, name="gone")
    await actor_system.stop(ref)
    with pytest.raises(ActorStopped, match="'gone'"):
        await ref.ask("hello")
    assert actor_system.statistics().pending_asks == 0


@pytest.mark.parametrize("how", ["system.stop", "PoisonPill"])
async def test_asks_queued_behind_a_stop_raise_actor_stopped(actor_system: ActorSystem, how: str) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(Gate, gate)
    ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    if how == "PoisonPill":
        ref.tell(PoisonPill())
    futures = [ref.request(n) for n in range(3)]
    async with trio.open_nursery() as nursery:
        if how == "system.stop":
            nursery.start_soon(actor_system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    for future in futures:
        with pytest.raises(ActorStopped):
            await future
    assert await pending_asks(actor_system) == 0


async def test_an_asked_poison_pill_does_not_hang(actor_system: ActorSystem,
                                                  autojump_clock: trio.testing.MockClock) -> None:
    ref = await actor_system.spawn(Echo)
    with trio.fail_after(1):
        try:
            await ref.ask(PoisonPill())
        except ActorStopped:  # the contract leaves open whether the pill is answered or the stop fails it
            pass
        probe = await Probe.spawn(actor_system)
        await probe.expect_terminated(ref)
    assert actor_system.statistics().pending_asks == 0


@pytest.mark.parametrize("how", ["self.stop", "system.stop"])
async def test_deferred_replies_never_answered_raise_actor_stopped(actor_system: ActorSystem, how: str) -> None:
    ref = await actor_system.spawn(Deferring)
    outcomes: list[BaseException] = []

    async def ask() -> None:
        try:
            await ref.ask("question")
        except ActorError as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        assert actor_system.statistics().pending_asks == 2
        if how == "self.stop":
            ref.tell("stop")
        else:
            await actor_system.stop(ref)
    assert [type(exc) for exc in outcomes] == [ActorStopped, ActorStopped]
    assert actor_system.statistics().pending_asks == 0


async def test_deferred_reply_never_answered_before_a_restart_does_not_hang(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Deferring)
    future = ref.request("question")
    ref.tell("boom")
    with trio.fail_after(1):
        with pytest.raises(ActorError):
            await future
    assert await ref.ask(("answer", 1)) == 0  # the fresh instance has no open replies


# -- deferred replies and the reply ref -----------------------------------------------------------------------


async def test_defer_reply_answers_later_while_the_actor_handles_other_messages(
        actor_system: ActorSystem) -> None:
    class Frontend(Actor):
        def __init__(self, worker: ActorRef) -> None:
            self.worker = worker

        async def receive(self, message: Any) -> Any:
            if message == "ping":
                return "pong"
            self.worker.tell((self.defer_reply(), message))  # the worker answers the ask itself
            return "not the answer"

    worker = await Probe.spawn(actor_system)
    frontend = await actor_system.spawn(Frontend, worker.ref)
    future = frontend.request("work")
    reply, work = await worker.expect(tuple)
    assert work == "work"
    assert await frontend.ask("ping") == "pong"  # not blocked by the open ask
    assert not future.done()
    reply.tell(("done", work))
    assert await future == ("done", "work")


async def test_deferred_reply_fail_makes_the_ask_raise(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Deferring)
    future = ref.request("question")
    error = LookupError("not found")
    ref.tell(("fail", error))
    with pytest.raises(LookupError) as info:
        await future
    assert info.value is error
    assert await ref.ask(("answer", "x")) == 1  # the actor did not fail


async def test_first_answer_wins_later_ones_are_dead_letters(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)

    class AnswersTwice(Actor):
        async def receive(self, message: Any) -> Any:
            reply = self.defer_reply()
            reply.tell("first")
            reply.tell("second")

    ref = await actor_system.spawn(AnswersTwice)
    assert await ref.ask("?") == "first"
    assert (await dead.expect(DeadLetter)).message == "second"


async def test_sender_during_an_ask_is_a_reply_ref(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)

    class Replier(Actor):
        async def receive(self, message: Any) -> Any:
            self.sender.tell(("via sender", self.sender.correlation_id))  # type: ignore[union-attr]
            return message  # the ask is already answered: this one is a late reply

    ref = await actor_system.spawn(Replier)
    future = ref.request("?")
    assert await future == ("via sender", future.correlation_id)
    assert (await dead.expect(DeadLetter)).message == "?"


async def test_returning_none_after_answering_through_the_sender_makes_no_dead_letter(
        actor_system: ActorSystem) -> None:
    class Replier(Actor):
        async def receive(self, message: Any) -> None:
            self.sender.tell(message)  # type: ignore[union-attr]

    ref = await actor_system.spawn(Replier)
    assert await ref.ask("x") == "x"
    await trio.testing.wait_all_tasks_blocked()
    assert actor_system.statistics().dead_letters == 0


async def test_defer_reply_needs_an_ask_and_works_once(actor_system: ActorSystem) -> None:
    class Defers(Actor):
        def __init__(self) -> None:
            self.errors: list[str] = []

        async def receive(self, message: Any) -> Any:
            if message == "errors":
                return self.errors
            try:
                self.defer_reply()
                self.defer_reply()
            except RuntimeError as exc:
                self.errors.append(str(exc))
            return None

    ref = await actor_system.spawn(Defers)
    ref.tell("told")
    future = ref.request("asked")
    errors = await ref.ask("errors")
    assert len(errors) == 2
    assert "needs an ask" in errors[0]
    assert "already deferred" in errors[1]
    assert not future.done()  # deferred once, never answered


async def test_a_reply_ref_cannot_be_asked(actor_system: ActorSystem) -> None:
    class AsksItsSender(Actor):
        async def receive(self, message: Any) -> Any:
            assert self.sender is not None
            try:
                self.sender.request("?")
            except ActorError as exc:
                return str(exc)
            return None  # pragma: no cover

    ref = await actor_system.spawn(AsksItsSender)
    assert "cannot be asked" in await ref.ask("x")


# -- request and Future -----------------------------------------------------------------------------------------


async def test_request_returns_a_future_with_a_correlation_id(actor_system: ActorSystem) -> None:
    echo = await actor_system.spawn(Echo)
    first = echo.request("a")
    second = echo.request("b")
    assert isinstance(first, Future)
    assert isinstance(first.correlation_id, int)
    assert first.correlation_id != second.correlation_id
    assert not first.done()
    assert actor_system.statistics().pending_asks == 2
    assert await first == "a"
    assert await second == "b"
    assert first.done()
    assert first.result() == "a"
    assert first.exception() is None
    assert actor_system.statistics().pending_asks == 0


async def test_future_result_before_it_is_done(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    future = probe.ref.request("?")
    with pytest.raises(RuntimeError, match="not done yet"):
        future.result()
    with pytest.raises(RuntimeError, match="not done yet"):
        future.exception()


async def test_failed_future_exception_and_result(actor_system: ActorSystem) -> None:
    echo = await actor_system.spawn(Echo)
    future = echo.request("boom")
    with pytest.raises(ActorFailed):
        await future
    assert isinstance(future.exception(), ActorFailed)
    with pytest.raises(ActorFailed):
        future.result()


async def test_done_callbacks_run_once_resolved_and_at_once_when_done(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    future = probe.ref.request("?")
    called: list[tuple[str, object]] = []
    future.add_done_callback(lambda f: called.append(("first", f.result())))
    future.add_done_callback(lambda f: called.append(("second", f)))
    await probe.expect("?")
    assert called == []
    probe.reply(42)
    assert called == [("first", 42), ("second", future)]
    future.add_done_callback(lambda f: called.append(("late", f.result())))
    assert called[-1] == ("late", 42)


async def test_a_raising_callback_is_logged_and_the_others_still_run(
        actor_system: ActorSystem, caplog: pytest.LogCaptureFixture) -> None:
    echo = await actor_system.spawn(Echo)
    future = echo.request("x")
    called: list[str] = []

    def broken(_: Future[Any]) -> None:
        raise ZeroDivisionError("in a callback")

    future.add_done_callback(broken)
    future.add_done_callback(lambda _: called.append("after"))
    with caplog.at_level(logging.ERROR, logger="actors"):
        assert await future == "x"
    assert called == ["after"]
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.name == "actors"
    assert isinstance(record.exc_info[1], ZeroDivisionError)  # type: ignore[index]


async def test_cancelling_a_future(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref = await actor_system.spawn(Deferring)
    future = ref.request("question")
    called: list[Future[Any]] = []
    future.add_done_callback(called.append)
    assert future.cancel() is True
    assert future.done()
    assert called == [future]
    assert future.cancel() is False
    with pytest.raises(FutureCancelled):
        future.result()
    assert await pending_asks(actor_system) == 0
    ref.tell(("answer", "nobody listens"))
    assert (await dead.expect(DeadLetter)).reason == "late reply"


async def test_cancelling_an_await_leaves_the_future_pending(actor_system: ActorSystem,
                                                             autojump_clock: trio.testing.MockClock) -> None:
    ref = await actor_system.spawn(Deferring)
    future = ref.request("question")
    with trio.move_on_after(1):
        await future
    assert not future.done()
    assert actor_system.statistics().pending_asks == 1
    ref.tell(("answer", "still wanted"))
    assert await future == "still wanted"


async def test_several_tasks_await_one_future(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Deferring)
    future = ref.request("question")
    results: list[object] = []

    async def wait() -> None:
        results.append(await future)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        ref.tell(("answer", "shared"))
    assert results == ["shared"] * 3


# -- request(timeout=) ---------------------------------------------------------------------------------------


async def test_request_timeout_fails_the_future_with_ask_timeout(actor_system: ActorSystem,
                                                                 autojump_clock: trio.testing.MockClock) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref = await actor_system.spawn(Deferring, name="silent")
    future = ref.request("question", timeout=2.5)
    with pytest.raises(AskTimeout) as info:
        await future
    assert trio.current_time() == 2.5
    assert isinstance(info.value, trio.TooSlowError)
    assert "'silent'" in str(info.value)
    assert "'question'" in str(info.value)
    assert actor_system.statistics().pending_asks == 0
    ref.tell(("answer", "late"))
    assert (await dead.expect(DeadLetter)).message == "late"


async def test_request_answered_before_the_timeout(actor_system: ActorSystem,
                                                   autojump_clock: trio.testing.MockClock) -> None:
    echo = await actor_system.spawn(Echo)
    future = echo.request("fast", timeout=1)
    assert await future == "fast"
    await trio.sleep(2)  # the expiry passes without effect
    assert future.result() == "fast"
    assert actor_system.statistics().dead_letters == 0


def test_ask_timeout_is_a_trio_too_slow_error() -> None:
    assert issubclass(AskTimeout, trio.TooSlowError)
    assert issubclass(AskTimeout, ActorError)
    assert isinstance(pickle.loads(pickle.dumps(AskTimeout("x"))), trio.TooSlowError)


@pytest.mark.parametrize("bad", [0, -1, "1", True, float("nan")])
async def test_request_timeout_must_be_positive(actor_system: ActorSystem, bad: Any) -> None:
    echo = await actor_system.spawn(Echo)
    with pytest.raises(ValueError, match="timeout"):
        echo.request("x", timeout=bad)
    assert await pending_asks(actor_system) == 0


# -- asks on a full mailbox ----------------------------------------------------------------------------------


async def test_ask_on_a_full_fail_mailbox_raises_mailbox_full(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    ref = await actor_system.spawn(Gate, gate, mailbox=Mailbox(capacity=1, overflow="fail"))
    ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    ref.tell("fills it")
    with pytest.raises(MailboxFull):
        await ref.ask("no room")
    # request() never raises for the delivery: the refusal comes back in the future, as for "drop_new".
    future = ref.request("no room either")
    assert future.done()
    assert isinstance(future.exception(), MailboxFull)
    assert actor_system.statistics().pending_asks == 0
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert await ref.ask("room again") == "room again"


async def test_ask_dropped_by_overflow_raises_mailbox_full(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    new = await actor_system.spawn(Gate, gate, mailbox=Mailbox(capacity=1, overflow="drop_new"))
    old = await actor_system.spawn(Gate, gate, mailbox=Mailbox(capacity=1, overflow="drop_old"))
    for ref in (new, old):
        ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    new.tell("fills it")
    with pytest.raises(MailboxFull):
        await new.ask("dropped")
    dropped = old.request("queued first")
    old.tell("pushes it out")
    with pytest.raises(MailboxFull):
        await dropped
    gate.set()
    assert await pending_asks(actor_system) == 0
