"""Typed calls: ``await ref.call(Counter.add, 5)`` and ``ref.cast(Counter.add, 5)``.

A call is an ask of a method by name: it keeps its place among the sender's other messages, answers the method's
result, and ends as an ask ends (failure, stop, cancellation, ``Reply.error``, restart). Refused methods raise
``TypeError`` at the call site; the receiving actor checks again. The behaviour that must not depend on where the
actor runs is one suite, run against an actor in the head's process and one on a worker process.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import trio
import trio.testing
from helpers import setting as setting  # every test taking it runs at each place

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    Pool,
    Reply,
)
from actors.testing import Probe
from runtime import Call

pytestmark = pytest.mark.deadline(60)


class Counter(Actor):
    """Methods for calls, and a ``receive`` for everything else; both write to one log, in handling order."""

    def __init__(self, start: int = 0) -> None:
        self.count = start
        self.log: list[object] = []

    async def receive(self, message: Any) -> Any:
        self.log.append(message)
        if message == "log":
            return list(self.log)
        return None

    async def add(self, n: int, *, times: int = 1) -> int:
        self.log.append(("add", n * times))
        self.count += n * times
        return self.count

    async def get(self) -> int:
        return self.count

    async def boom(self, text: str) -> int:
        raise ValueError(text)

    async def refuse(self, key: str) -> int:
        self.log.append(("refuse", key))
        return Reply.error(KeyError(key))  # type: ignore[return-value]

    async def wait(self, event: trio.Event) -> str:
        await event.wait()
        return "woke"

    async def hang(self, report: ActorRef) -> None:
        report.tell("started")
        await trio.sleep_forever()

    async def _secret(self) -> int:
        return -1

    def sync_get(self) -> int:
        return self.count


class Doubler(Counter):
    """Overrides ``add``: a call of ``Counter.add`` on a ``Doubler`` runs ``Doubler.add`` (by name)."""

    async def add(self, n: int, *, times: int = 1) -> int:
        return await super().add(2 * n, times=times)


class Other(Actor):
    async def add(self, n: int, *, times: int = 1) -> int:
        return -n


class MethodsOnly(Actor):
    """No ``receive``: its work is all methods."""

    def __init__(self) -> None:
        self.items: list[str] = []

    async def put(self, item: str) -> int:
        self.items.append(item)
        return len(self.items)

    async def items_so_far(self) -> list[str]:
        return list(self.items)


async def plain_function(self: Counter, n: int) -> int:
    return n


# -- wherever the actor runs -----------------------------------------------------------------------------------


async def test_a_call_answers_the_methods_result(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, 10, node=node)
    assert await ref.call(Counter.add, 5) == 15
    assert await ref.call(Counter.add, 1, times=3) == 18
    assert await ref.call(Counter.get) == 18


async def test_calls_casts_and_messages_keep_the_senders_order(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, node=node)
    ref.tell("first")
    ref.cast(Counter.add, 1)
    ref.tell("second")
    assert await ref.call(Counter.add, 2) == 3
    ref.tell("third")
    assert await ref.ask("log") == ["first", ("add", 1), "second", ("add", 2), "third", "log"]


async def test_a_raising_method_fails_the_call_and_the_actor_restarts(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, 7, name="c", node=node)
    await ref.call(Counter.add, 1)
    with pytest.raises(ActorFailed) as excinfo:
        await ref.call(Counter.boom, "bad input")
    assert isinstance(excinfo.value.cause, ValueError)
    assert str(excinfo.value.cause) == "bad input"
    assert await ref.call(Counter.get) == 7  # a fresh instance behind the same ref
    assert system.lookup("c") is ref


async def test_reply_error_raises_in_the_caller_without_failing_the_actor(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, node=node)
    await ref.call(Counter.add, 4)
    with pytest.raises(KeyError, match="nope"):
        await ref.call(Counter.refuse, "nope")
    assert await ref.call(Counter.get) == 4


async def test_a_call_to_a_stopped_actor_raises_actor_stopped(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, node=node)
    await system.stop(ref)
    with pytest.raises(ActorStopped):
        await ref.call(Counter.get)


async def test_a_pending_call_raises_when_the_actor_is_stopped(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, node=node, stop_timeout=0.5)
    probe = await Probe.spawn(system)
    result: list[BaseException] = []

    async def caller() -> None:
        try:
            await ref.call(Counter.hang, probe.ref)
        except ActorStopped as exc:
            result.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await probe.expect("started")  # handling the call, so the stop cannot overtake it
        await system.stop(ref)
    assert len(result) == 1
    assert "did not finish" in str(result[0])


async def test_a_foreign_method_is_refused_at_the_call_site(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, node=node)
    with pytest.raises(TypeError, match=r"Other\.add is not a method of Counter"):
        await ref.call(Other.add, 1)  # type: ignore[arg-type]
    assert await ref.call(Counter.get) == 0


async def test_the_receiving_actor_refuses_what_it_cannot_run(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(Counter, node=node)
    with pytest.raises(TypeError, match=r"Other\.add is not a method of Counter"):
        await ref.ask(Call(f"{Other.__module__}:Other", "add", (1,)))
    assert await ref.call(Counter.add, 2) == 2  # not failed: the state is kept


async def test_a_call_crosses_like_a_message_and_back(setting: Any) -> None:
    system, node = setting
    ref = await system.spawn(MethodsOnly, node=node)
    ref.cast(MethodsOnly.put, "a")
    assert await ref.call(MethodsOnly.put, "b") == 2
    assert await ref.call(MethodsOnly.items_so_far) == ["a", "b"]


# -- in the head's process -------------------------------------------------------------------------------------


async def test_cancelling_a_call_removes_the_pending_ask(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Counter)
        event = trio.Event()
        with trio.move_on_after(1) as scope:
            await ref.call(Counter.wait, event)
        assert scope.cancelled_caught
        assert system.statistics().pending_asks == 0
        event.set()
        assert await ref.call(Counter.get) == 0  # the actor went on, and the late answer was a dead letter


async def test_fail_after_bounds_a_call(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Counter)
        with pytest.raises(trio.TooSlowError):
            with trio.fail_after(2):
                await ref.call(Counter.wait, trio.Event())
        assert system.statistics().pending_asks == 0


async def test_a_call_already_cancelled_sends_nothing(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Counter)
    with trio.CancelScope() as scope:
        scope.cancel()
        await ref.call(Counter.add, 1)
    assert await ref.call(Counter.get) == 0


@pytest.mark.parametrize(
    ("method", "words"),
    [
        (Counter._secret, r"Counter\._secret is private"),
        (Other.add, r"Other\.add is not a method of Counter"),
        (lambda self, n: n, r"is a plain function"),
        (plain_function, r"plain_function is a plain function"),
        (Counter.sync_get, r"Counter\.sync_get is not an async method"),
        (Counter.receive, r"Counter\.receive cannot be called"),
        (Counter.on_start, r"on_start cannot be called"),
        (Counter.spawn, r"spawn cannot be called"),
        ("add", r"'add' is not one"),
        ([1], r"\[1\] is not one"),
    ],
    ids=["private", "foreign", "lambda", "function", "sync", "receive", "hook", "actor-api", "name", "unhashable"],
)
async def test_refused_methods_raise_type_error_naming_them(
        actor_system: ActorSystem, method: Any, words: str) -> None:
    ref = await actor_system.spawn(Counter)
    with pytest.raises(TypeError, match=words):
        await ref.call(method, 1)
    with pytest.raises(TypeError, match=words):
        ref.cast(method, 1)
    assert actor_system.statistics().actors[ref.path].arrivals == 0  # nothing was sent


async def test_the_receiving_actor_checks_too(actor_system: ActorSystem) -> None:
    """A call made where the class is not known (here, by hand) is checked by the actor that gets it: the ask
    raises ``TypeError``, a told one is a dead letter, and the actor is not failed."""
    ref = await actor_system.spawn(Counter)
    dead = await Probe.dead_letters(actor_system)
    foreign = Call(f"{Other.__module__}:Other", "add", (1,))
    with pytest.raises(TypeError, match=r"Other\.add is not a method of Counter"):
        await ref.ask(foreign)
    with pytest.raises(TypeError, match="private"):
        await ref.ask(Call(f"{Counter.__module__}:Counter", "_secret"))
    with pytest.raises(TypeError, match="not an async method"):
        await ref.ask(Call(f"{Counter.__module__}:Counter", "sync_get"))
    ref.tell(foreign)
    letter = await dead.expect(DeadLetter)
    assert letter.message == foreign
    assert letter.reason.startswith("refused: TypeError")
    assert actor_system.statistics().actors[ref.path].failed == 0


async def test_an_actor_without_receive_takes_calls_and_fails_on_messages(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(MethodsOnly)
    assert await ref.call(MethodsOnly.put, "x") == 1
    with pytest.raises(ActorFailed) as excinfo:
        await ref.ask("hello")
    assert isinstance(excinfo.value.cause, NotImplementedError)


async def test_a_base_method_runs_the_subclass_override(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Doubler)
    assert await ref.call(Counter.add, 5) == 10
    assert await ref.call(Doubler.add, 1) == 12
    assert await ref.call(Counter.get) == 12


async def test_become_does_not_change_calls(actor_system: ActorSystem) -> None:
    class Moody(Counter):
        async def receive(self, message: Any) -> Any:
            self.become(self.grumpy)
            return "became"

        async def grumpy(self, message: Any) -> Any:
            return "grr"

    ref = await actor_system.spawn(Moody)
    assert await ref.ask("x") == "became"
    assert await ref.ask("x") == "grr"
    assert await ref.call(Counter.add, 3) == 3


async def test_an_actor_calling_itself_is_refused(actor_system: ActorSystem) -> None:
    class Selfish(Actor):
        async def loop(self) -> str:
            try:
                await self.ref.call(Selfish.loop)
            except RuntimeError as exc:
                return str(exc)
            return "no error"

    ref = await actor_system.spawn(Selfish)
    assert "asked itself" in await ref.call(Selfish.loop)


async def test_a_cast_that_raises_fails_the_actor(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Counter, 3)
    await ref.call(Counter.add, 1)
    ref.cast(Counter.boom, "told")
    assert await ref.call(Counter.get) == 3  # restarted: a fresh instance
    assert actor_system.statistics().actors[ref.path].restarts == 1


async def test_a_pool_routes_calls_to_its_routees(actor_system: ActorSystem) -> None:
    pool = await actor_system.spawn(Pool[Counter], Counter, size=2)
    assert await pool.call(Counter.add, 1) == 1
    assert await pool.call(Counter.add, 1) == 1  # round robin: the other routee
    assert await pool.call(Counter.add, 1) == 2
    with pytest.raises(TypeError, match=r"Other\.add is not a method of Counter"):
        await pool.call(Other.add, 1)  # type: ignore[arg-type]  # refused by the routee that got it
    routees = actor_system.statistics().actors
    assert all(stats.failed == 0 for path, stats in routees.items() if path.startswith(pool.path))


async def test_a_ref_knows_its_class_before_and_after_restarts(actor_system: ActorSystem) -> None:
    ref: ActorRef[Counter] = await actor_system.spawn(Counter)
    with pytest.raises(ActorFailed):
        await ref.call(Counter.boom, "x")
    with pytest.raises(TypeError, match="not a method of Counter"):
        ref.cast(Other.add, 1)  # type: ignore[arg-type]


def test_a_call_is_an_immutable_picklable_value() -> None:
    call = Call(f"{Counter.__module__}:Counter", "add", (5,), {"times": 2})
    assert pickle.loads(pickle.dumps(call)) == call
    assert pickle.loads(pickle.dumps(call)).__class__ is Call
    assert (call.owner, call.name, call.args, call.kwargs) == (f"{Counter.__module__}:Counter", "add", (5,),
                                                               {"times": 2})
    assert repr(call) == "<call Counter.add(5, times=2)>"
    with pytest.raises(AttributeError):
        call.name = "other"  # type: ignore[misc]
