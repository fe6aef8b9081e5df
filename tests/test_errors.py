"""The error tree: every class picklable with its message, and messages that name the actor and the value."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import trio
import trio.testing

import actors
from actors import (
    Actor,
    ActorError,
    ActorFailed,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    BacklogFull,
    Directive,
    FutureCancelled,
    Mailbox,
    MailboxFull,
    NameTaken,
    Node,
    NodeDown,
    NotAuthorized,
    OneForOne,
    SerializationError,
    StorageError,
    Unroutable,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run

ERRORS = [ActorError, ActorFailed, ActorStopped, AskTimeout, BacklogFull, FutureCancelled, MailboxFull, NameTaken,
          NodeDown, NotAuthorized, SerializationError, StorageError, Unroutable]


def test_every_exported_error_is_listed_here() -> None:
    exported = {getattr(actors, name) for name in actors.__all__}
    errors = {obj for obj in exported if isinstance(obj, type) and issubclass(obj, BaseException)}
    assert errors == set(ERRORS)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_errors_derive_from_actor_error_and_say_when_they_are_raised(cls: type[ActorError]) -> None:
    assert issubclass(cls, ActorError)
    assert cls.__doc__
    assert cls.__doc__.strip()


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_errors_pickle_with_their_message(cls: type[ActorError]) -> None:
    error = cls("<ActorRef 'jobs'> is stopped; 'hello' was not delivered")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert copy.args == error.args


def test_actor_failed_pickles_with_its_cause() -> None:
    cause = KeyError("lost")
    error = ActorFailed("actor 'a' failed", cause)
    assert error.cause is cause
    assert error.__cause__ is cause
    assert str(error) == "actor 'a' failed"
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == "actor 'a' failed"
    assert isinstance(copy.cause, KeyError)
    assert copy.cause.args == ("lost",)
    assert ActorFailed("no cause").cause is None


def test_node_down_pickles_with_its_node_and_reason() -> None:
    node = Node("app.w1", "worker", 1234, alive=False)
    error = NodeDown(node, "its link broke")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.node, copy.reason) == (node, "its link broke")
    assert str(copy) == "node app.w1 is down: its link broke"


def test_ask_timeout_is_a_trio_timeout() -> None:
    assert issubclass(AskTimeout, trio.TooSlowError)


# -- messages, as the runtime raises them -----------------------------------------------------------------------


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        return message


class Silent(Actor):
    async def receive(self, message: Any) -> Any:
        self.defer_reply()


class Parent(Actor):
    async def on_start(self) -> None:
        await self.spawn(Echo, name="kid")

    async def receive(self, message: Any) -> Any:
        return await self.spawn(Echo, name=message)


async def test_name_taken_names_the_name_and_the_parent(actor_system: ActorSystem) -> None:
    await actor_system.spawn(Echo, name="jobs")
    with pytest.raises(NameTaken, match=r"'jobs'.*top level"):
        await actor_system.spawn(Echo, name="jobs")
    parent = await actor_system.spawn(Parent, name="parent")
    with pytest.raises(ActorFailed) as info:
        await parent.ask("kid")
    assert isinstance(info.value.cause, NameTaken)
    assert "'kid'" in str(info.value.cause)
    assert "<ActorRef 'parent'>" in str(info.value.cause)


async def test_mailbox_full_names_the_actor_the_capacity_and_the_message(actor_system: ActorSystem) -> None:
    gate = trio.Event()

    class Busy(Actor):
        async def receive(self, message: Any) -> Any:
            await gate.wait()

    ref = await actor_system.spawn(Busy, name="jobs", mailbox=Mailbox(capacity=3))
    ref.tell("handled now")
    await trio.testing.wait_all_tasks_blocked()
    for n in range(3):
        ref.tell(n)
    with pytest.raises(MailboxFull) as info:
        ref.tell({"order": 17})
    gate.set()
    assert "'jobs'" in str(info.value)
    assert "3" in str(info.value)
    assert "{'order': 17}" in str(info.value)


async def test_actor_stopped_names_the_actor_and_the_message(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Echo, name="jobs")
    await actor_system.stop(ref)
    with pytest.raises(ActorStopped) as info:
        await ref.ask(("order", 17))
    assert "'jobs'" in str(info.value)
    assert "('order', 17)" in str(info.value)


async def test_actor_failed_names_the_actor_the_message_and_the_error(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Echo, name="jobs")
    with pytest.raises(ActorFailed) as info:
        await ref.ask("boom")
    message = str(info.value)
    assert "'jobs'" in message
    assert "'boom'" in message
    assert "ValueError" in message


async def test_spawn_failures_name_the_actor_and_the_error(actor_system: ActorSystem) -> None:
    class BadStart(Echo):
        async def on_start(self) -> None:
            raise OSError("no database")

    def bad_factory() -> Actor:
        raise LookupError("no config")

    with pytest.raises(ActorFailed, match=r"'db'.*OSError\('no database'\)"):
        await actor_system.spawn(BadStart, name="db")
    with pytest.raises(ActorFailed, match=r"bad_factory.*'cfg'.*LookupError\('no config'\)"):
        await actor_system.spawn(bad_factory, name="cfg")


async def test_ask_timeout_names_the_actor_and_the_message(actor_system: ActorSystem,
                                                           autojump_clock: trio.testing.MockClock) -> None:
    ref = await actor_system.spawn(Silent, name="jobs")
    with pytest.raises(AskTimeout) as info:
        await ref.request(("order", 17), timeout=1.5)
    assert "'jobs'" in str(info.value)
    assert "('order', 17)" in str(info.value)
    assert "1.5" in str(info.value)


async def test_future_cancelled_names_the_actor(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Silent, name="jobs")
    future = ref.request("x")
    future.cancel()
    with pytest.raises(FutureCancelled, match="'jobs'"):
        future.result()


async def test_a_failure_escalated_past_the_top_leaves_the_system_as_actor_failed() -> None:
    error = ValueError("fatal")

    class Fatal(Actor):
        async def receive(self, message: Any) -> Any:
            raise error

    def find_actor_failed(exc: BaseException) -> ActorFailed:
        if isinstance(exc, ActorFailed):
            return exc
        assert isinstance(exc, BaseExceptionGroup)
        (found,) = [find_actor_failed(e) for e in exc.exceptions if isinstance(e, ActorFailed | BaseExceptionGroup)]
        return found

    with pytest.raises((ActorFailed, BaseExceptionGroup)) as info:  # noqa: PT012 - the body is the system's life
        async with ActorSystem(name="app", supervision=OneForOne(decider=lambda e: Directive.ESCALATE)) as system:
            ref = await system.spawn(Fatal, name="fatal")
            ref.tell("go")
            await trio.sleep_forever()  # cancelled by the failure
    failed = find_actor_failed(info.value)
    assert failed.cause is error
    assert "'app'" in str(failed)
    assert "ValueError('fatal')" in str(failed)


async def test_an_escalated_failure_shuts_the_tree_down_in_order() -> None:
    log: list[str] = []

    class Logs(Actor):
        def __init__(self, label: str) -> None:
            self.label = label

        async def on_stop(self) -> None:
            log.append(self.label)

        async def receive(self, message: Any) -> Any:
            raise ValueError(message)

    with pytest.raises((ActorFailed, BaseExceptionGroup)):  # noqa: PT012
        async with ActorSystem(supervision=OneForOne(max_restarts=0)) as system:
            first = await system.spawn(Logs, "first")
            await system.spawn(Logs, "second")
            first.tell("boom")
            await trio.sleep_forever()
    assert sorted(log) == ["first", "second"]


async def test_probe_reports_errors_naming_the_probe(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system, name="observer")
    probe.ref.tell("x")
    with pytest.raises(AssertionError, match="'observer'"):
        await probe.expect("y")
