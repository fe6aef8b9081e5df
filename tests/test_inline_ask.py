"""An ask to an idle local actor whose handler never suspends is handled in the asker's own task.

The behaviour suites run both ways (``helpers.PLACES``); these tests pin the path itself: when it is taken, when it
is not, and that the actor cannot tell the difference (its context, order, supervision, fairness to other tasks).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorFailed, ActorRef, ActorSystem
from actors.testing import Probe
from runtime import ActorStopped
from runtime._dispatcher import current_actor, current_system, never_suspends
from runtime._futures import Correlations

pytestmark = pytest.mark.deadline(30)


class Where(Actor):
    """Answers with the task that handled the message; does what the message says first."""

    def __init__(self, probe: ActorRef | None = None) -> None:
        self.probe = probe
        self.handled: list[Any] = []

    async def receive(self, message: Any) -> Any:
        self.handled.append(message)
        match message:
            case "boom":
                raise ValueError("boom")
            case "tell-probe":
                assert self.probe is not None
                self.probe.tell(("from", current_actor.get()))
            case "tell-self":
                self.ref.tell("again")
            case "again":
                assert self.probe is not None
                self.probe.tell("again")
            case "system":
                return current_system.get()
            case "slow-down":
                self.become(self.awaiting)
            case "sender":
                return self.sender
        return trio.lowlevel.current_task()

    async def awaiting(self, message: Any) -> Any:
        await trio.lowlevel.checkpoint()
        if message == "back":
            self.unbecome()
        return trio.lowlevel.current_task()

    async def add(self, n: int) -> Any:
        return trio.lowlevel.current_task(), n

    async def add_later(self, n: int) -> Any:
        await trio.lowlevel.checkpoint()
        return trio.lowlevel.current_task(), n


async def test_the_asker_handles_an_ask_to_an_idle_actor_whose_handler_never_suspends(
        actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    here = trio.lowlevel.current_task()
    assert await ref.ask("where") is here
    assert await ref.ask("where") is here
    assert ref.mailbox_length == 0


async def test_a_handler_that_can_suspend_runs_on_a_runner(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    here = trio.lowlevel.current_task()
    await ref.ask("slow-down")  # become a handler with an await
    assert await ref.ask("where") is not here
    assert await ref.ask("back") is not here  # unbecome, in a runner
    assert await ref.ask("where") is here


async def test_a_busy_actor_is_asked_through_its_mailbox_after_what_is_queued(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    cell = ref._target  # type: ignore[attr-defined]
    for n in range(3):
        ref.tell(n)
    assert await ref.ask("where") is not trio.lowlevel.current_task()
    assert cell.instance.handled == [0, 1, 2, "where"]


async def test_an_actor_with_a_stop_timeout_is_always_asked_through_a_runner(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where, stop_timeout=1)
    assert await ref.ask("where") is not trio.lowlevel.current_task()


async def test_the_handler_runs_as_the_actor_and_the_asker_is_itself_again_after(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    ref = await actor_system.spawn(Where, probe.ref)

    class Asker(Actor):
        async def receive(self, message: Any) -> Any:
            answer = await ref.ask("tell-probe")
            probe.ref.tell(("asker", current_actor.get()))
            return answer

    asker = await actor_system.spawn(Asker)
    await asker.ask("go")
    assert await probe.expect(lambda m: m[0] == "from") == ("from", ref)
    assert await probe.expect(lambda m: m[0] == "asker") == ("asker", asker)
    assert current_actor.get() is None


async def test_self_sender_is_the_askers_reply_ref(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    reply = await ref.ask("sender")
    assert reply.correlation_id > 0
    assert len(actor_system.correlations) == 0  # answered and gone from the table


async def test_what_the_handler_tells_itself_is_handled_after_by_a_runner(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    ref = await actor_system.spawn(Where, probe.ref)
    assert await ref.ask("tell-self") is trio.lowlevel.current_task()
    await probe.expect("again")


async def test_a_failure_in_a_handler_run_by_its_asker_is_supervised(actor_system: ActorSystem) -> None:
    child = await actor_system.spawn(Where, name="child")
    with pytest.raises(ActorFailed) as excinfo:
        await child.ask("boom")
    assert isinstance(excinfo.value.cause, ValueError)
    # restarted behind the same ref (the ask waits for the restart), then asked in this task again
    await child.ask("where")
    assert await child.ask("where") is trio.lowlevel.current_task()
    assert child._target.instance.handled == ["where", "where"]  # type: ignore[attr-defined]


async def test_an_actor_of_another_system_sees_its_own_system(actor_system: ActorSystem) -> None:
    async with ActorSystem(name="other2") as other2:
        ref = await other2.spawn(Where)
        outer = current_system.get()
        async with trio.open_nursery() as nursery:
            answers: list[Any] = []

            async def ask_from_a_task_of_the_first_system() -> None:
                token = current_system.set(actor_system)
                try:
                    answers.append(await ref.ask("system"))
                    answers.append(current_system.get())
                finally:
                    current_system.reset(token)

            nursery.start_soon(ask_from_a_task_of_the_first_system)
        assert answers == [other2, actor_system]
        assert current_system.get() is outer


async def test_a_cancelled_asker_delivers_nothing(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    with trio.CancelScope() as scope:
        scope.cancel()
        await ref.ask("never")
    assert ref._target.instance.handled == []  # type: ignore[attr-defined]


async def test_asks_handled_by_the_asker_still_let_other_tasks_run(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    turns = 0

    async def spinner() -> None:
        nonlocal turns
        while True:
            turns += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spinner)
        await trio.lowlevel.checkpoint()
        before = turns
        for n in range(256 * 8):
            await ref.ask(n)
        ran = turns - before
        nursery.cancel_scope.cancel()
    assert ran >= 7  # one schedule point every 256 asks at least


async def test_a_call_runs_in_the_askers_task_once_its_method_is_known(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    here = trio.lowlevel.current_task()
    await ref.call(Where.add, 0)  # the first call of a method is checked on the runner's path
    assert await ref.call(Where.add, 1) == (here, 1)
    for n in (2, 3):
        task, answer = await ref.call(Where.add_later, n)
        assert task is not here
        assert answer == n


async def test_an_ask_to_a_stopped_actor_still_raises(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Where)
    await actor_system.stop(ref)
    with pytest.raises(ActorStopped):
        await ref.ask("where")


async def test_a_handler_that_suspends_despite_the_check_ends_the_system_not_a_hang() -> None:
    cells: list[Any] = []

    async def run() -> None:
        async with ActorSystem() as system:
            ref = await system.spawn(Where)
            await ref.ask("slow-down")
            cells.append(ref._target)  # type: ignore[attr-defined]
            cells[0]._inline = True  # as if the check had let the awaiting handler in
            await ref.ask("where")

    with pytest.raises(BaseExceptionGroup) as excinfo:
        await run()
    assert excinfo.group_contains(RuntimeError, match="suspended in a handler run by its asker")
    assert not cells[0].scheduled


async def test_a_keyboard_interrupt_in_a_handler_run_by_its_asker_ends_the_system(
        autojump_clock: trio.testing.MockClock) -> None:
    class Interrupting(Actor):
        async def receive(self, message: Any) -> Any:
            raise KeyboardInterrupt

    assert never_suspends(Interrupting.receive)  # so the asker handles the ask

    async def run() -> None:
        async with ActorSystem() as system:
            await (await system.spawn(Interrupting)).ask("go")

    with pytest.raises(BaseExceptionGroup) as excinfo:
        await run()
    assert excinfo.group_contains(KeyboardInterrupt)


class _Codes:
    async def plain(self, message: Any) -> Any:
        return [m for m in message]

    async def awaits(self, message: Any) -> Any:
        return await message

    async def loops(self, message: Any) -> Any:
        async for item in message:
            return item

    async def enters(self, message: Any) -> Any:
        async with message:
            return None

    async def comprehension(self, message: Any) -> Any:
        return [await m for m in message]


def test_never_suspends_reads_the_handlers_own_code() -> None:
    codes = _Codes()
    assert never_suspends(codes.plain)
    assert never_suspends(_Codes.plain)
    for handler in (codes.awaits, codes.loops, codes.enters, codes.comprehension):
        assert not never_suspends(handler), handler
    assert not never_suspends(lambda message: message)  # not a coroutine function
    assert not never_suspends(print)
    assert not never_suspends(None)


async def test_a_claimed_actor_is_released_when_the_ask_fails_to_deliver(actor_system: ActorSystem,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ref = await actor_system.spawn(Where)
    cell = ref._target  # type: ignore[attr-defined]
    await ref.ask("warm")

    def broken(*args: Any) -> Any:
        raise MemoryError("no room for a future")

    with monkeypatch.context() as patch:
        patch.setattr(Correlations, "new_future", broken)
        with pytest.raises(MemoryError):
            await ref.ask("lost")
    assert not cell.scheduled
    assert await ref.ask("where") is trio.lowlevel.current_task()
    assert cell.instance.handled == ["warm", "where"]
