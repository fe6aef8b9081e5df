"""The test kit (``actors.testing``): Probe expectations, replies, dead-letter probes and the pytest fixtures."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorRef, ActorSystem, DeadLetter, PoisonPill, Reply, Terminated
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run

pytest_plugins = ["pytester"]


class Forwarder(Actor):
    """Tells each ``(target, message)`` it receives to ``target`` (so the sender is this actor)."""

    async def receive(self, message: Any) -> Any:
        target, payload = message
        target.tell(payload)
        return payload


class Asker(Actor):
    """Asks ``target`` whatever it is told to, and tells the answer (or the error) to ``report``."""

    def __init__(self, target: ActorRef, report: ActorRef) -> None:
        self.target = target
        self.report = report

    async def receive(self, message: Any) -> None:
        try:
            self.report.tell(("answer", await self.target.ask(message)))
        except Exception as exc:
            self.report.tell(("error", exc))


async def tell_later(ref: ActorRef, delay: float, message: object) -> None:
    await trio.sleep(delay)
    ref.tell(message)


# -- expect --------------------------------------------------------------------------------------------------


async def test_expect_value_type_and_predicate_return_the_message(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    for message in ("hello", 42, ("pair", 1)):
        probe.ref.tell(message)
    assert await probe.expect("hello") == "hello"
    assert await probe.expect(int) == 42
    assert await probe.expect(lambda m: m[0] == "pair") == ("pair", 1)
    assert probe.pending == []


@pytest.mark.parametrize(
    ("expected", "words"),
    [
        ("hello", ["'hello'", "'bye'"]),
        (int, ["an instance of int", "'bye'"]),
        (lambda m: m == "x", ["a message satisfying", "'bye'"]),
    ],
    ids=["value", "type", "predicate"],
)
async def test_expect_mismatch_says_what_was_expected_and_what_came(
        actor_system: ActorSystem, expected: object, words: list[str]) -> None:
    probe = await Probe.spawn(actor_system, name="probe")
    probe.ref.tell("bye")
    with pytest.raises(AssertionError) as info:
        await probe.expect(expected)
    for word in words:
        assert word in str(info.value)
    assert "'probe'" in str(info.value)
    assert probe.pending == []  # a mismatched message is consumed


async def test_expect_turns_a_raising_predicate_into_an_assertion(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    probe.ref.tell(7)
    with pytest.raises(AssertionError, match=r"predicate raised TypeError.* on 7") as info:
        await probe.expect(lambda m: m[0] == "x")
    assert isinstance(info.value.__cause__, TypeError)


async def test_expect_waits_for_a_message_that_comes_later(actor_system: ActorSystem,
                                                         autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tell_later, probe.ref, 5.0, "late")
        with trio.fail_after(10):
            assert await probe.expect("late") == "late"
    assert trio.current_time() == 5.0


async def test_expect_that_times_out_consumes_nothing(actor_system: ActorSystem,
                                                     autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(1):
            await probe.expect("anything")
    assert trio.current_time() == 1.0
    probe.ref.tell("next")
    assert await probe.expect("next") == "next"
    assert probe.messages == ["next"]


async def test_expect_is_a_checkpoint_even_with_a_message_waiting(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    probe.ref.tell("waiting")
    await trio.testing.wait_all_tasks_blocked()
    with trio.CancelScope() as scope:
        scope.cancel()
        await probe.expect("waiting")
    assert scope.cancelled_caught
    assert probe.pending == ["waiting"]


# -- expect_no_message ---------------------------------------------------------------------------------------


async def test_expect_no_message_sleeps_on_trios_clock(actor_system: ActorSystem,
                                                       autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    await probe.expect_no_message(30)
    assert trio.current_time() == 30.0


async def test_expect_no_message_fails_on_a_message_during_the_wait(actor_system: ActorSystem,
                                                                   autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tell_later, probe.ref, 2.0, "intruder")
        with pytest.raises(AssertionError, match=r"expected no message for 3s, got 'intruder'"):
            await probe.expect_no_message(3)


async def test_expect_no_message_fails_on_a_message_already_waiting(actor_system: ActorSystem,
                                                                   autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    probe.ref.tell("first")
    probe.ref.tell("second")
    with pytest.raises(AssertionError, match=r"got 'first' and 1 more"):
        await probe.expect_no_message(1)


# -- death watch ---------------------------------------------------------------------------------------------


async def test_expect_terminated_watches_the_actor(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    target = await actor_system.spawn(Forwarder)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, target)
        terminated = await probe.expect_terminated(target)
    assert terminated == Terminated(target, None)


async def test_expect_terminated_of_an_actor_already_stopped(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    target = await actor_system.spawn(Forwarder)
    await actor_system.stop(target)
    assert (await probe.expect_terminated(target)).ref == target


async def test_expect_terminated_does_not_skip_earlier_messages(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    target = await actor_system.spawn(Forwarder)
    await probe.watch(target)
    target.tell((probe.ref, "last words"))
    target.tell(PoisonPill())
    with pytest.raises(AssertionError, match=r"got 'last words'"):
        await probe.expect_terminated(target)
    assert isinstance(await probe.expect(Terminated), Terminated)


async def test_watch_twice_gives_one_terminated(actor_system: ActorSystem,
                                                autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    target = await actor_system.spawn(Forwarder)
    await probe.watch(target)
    await probe.watch(target)
    await actor_system.stop(target)
    await probe.expect_terminated(target)
    await probe.expect_no_message(1)


async def test_watch_takes_only_refs(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    with pytest.raises(TypeError, match="'not a ref'"):
        await probe.watch("not a ref")  # type: ignore[arg-type]


# -- what the probe remembers --------------------------------------------------------------------------------


async def test_messages_and_pending(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    probe.ref.tell(1)
    probe.ref.tell(2)
    await trio.testing.wait_all_tasks_blocked()
    assert probe.messages == [1, 2]
    assert probe.pending == [1, 2]
    await probe.expect(1)
    assert probe.messages == [1, 2]
    assert probe.pending == [2]
    assert repr(probe) == f"<Probe {probe.ref.path!r} received=2 pending=1>"


async def test_sender_is_the_telling_actor_or_none(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    forwarder = await actor_system.spawn(Forwarder)
    assert probe.sender is None
    forwarder.tell((probe.ref, "via forwarder"))
    await probe.expect("via forwarder")
    assert probe.sender == forwarder
    probe.ref.tell("from outside")
    await probe.expect("from outside")
    assert probe.sender is None


async def test_named_probe_is_registered(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system, name="observer")
    assert probe.ref.name == "observer"
    assert actor_system.lookup("observer") == probe.ref
    assert probe.system is actor_system


# -- replying ------------------------------------------------------------------------------------------------


async def test_reply_answers_an_ask(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    async with trio.open_nursery() as nursery:
        result: list[object] = []

        async def ask() -> None:
            result.append(await probe.ref.ask("question"))

        nursery.start_soon(ask)
        await probe.expect("question")
        probe.reply("answer")
    assert result == ["answer"]


async def test_reply_with_reply_error_makes_the_ask_raise(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    report = await Probe.spawn(actor_system)
    asker = await actor_system.spawn(Asker, probe.ref, report.ref)
    asker.tell("question")
    await probe.expect("question")
    error = LookupError("no such thing")
    probe.reply(Reply.error(error))
    assert await report.expect(("error", error)) == ("error", error)


async def test_ask_to_a_probe_is_unanswered_until_reply(actor_system: ActorSystem,
                                                        autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    with trio.move_on_after(5) as scope:
        await probe.ref.ask("question")
    assert scope.cancelled_caught
    assert actor_system.statistics().pending_asks == 0


async def test_reply_to_a_told_message_tells_the_sender_as_the_probe(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    other = await Probe.spawn(actor_system)
    forwarder = await actor_system.spawn(Forwarder)
    forwarder.tell((probe.ref, (other.ref, "bounce")))
    await probe.expect(tuple)
    assert probe.sender == forwarder
    probe.reply((other.ref, "back"))  # the forwarder forwards it on to `other`
    assert await other.expect("back") == "back"
    assert other.sender == forwarder


async def test_reply_with_nobody_to_answer(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    with pytest.raises(RuntimeError, match="call expect"):
        probe.reply("too soon")
    probe.ref.tell("from outside")
    await probe.expect("from outside")
    with pytest.raises(RuntimeError, match="outside any actor"):
        probe.reply("to nobody")


# -- dead letters --------------------------------------------------------------------------------------------


async def test_dead_letter_probe(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    target = await actor_system.spawn(Forwarder, name="gone")
    await actor_system.stop(target)
    target.tell("hello?")
    letter = await dead.expect(DeadLetter)
    assert letter == DeadLetter("hello?", None, target, "stopped")


# -- the pytest fixtures, as a user's conftest would use them --------------------------------------------------


def test_fixtures_from_a_users_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeini("""
        [pytest]
        trio_mode = true
        filterwarnings = error
    """)
    pytester.makeconftest("""
        from actors.testing import actor_system, autojump_clock
    """)
    pytester.makepyfile(test_user=textwrap.dedent("""
        import trio
        from actors import Actor, ActorSystem
        from actors.testing import Probe

        class Echo(Actor):
            async def receive(self, message):
                return message

        seen = []

        async def test_system_and_clock(actor_system, autojump_clock):
            assert isinstance(actor_system, ActorSystem)
            echo = await actor_system.spawn(Echo, name="echo")
            assert await echo.ask("hi") == "hi"
            probe = await Probe.spawn(actor_system)
            with trio.fail_after(3600):
                await probe.expect_no_message(3599)
            assert trio.current_time() == 3599
            seen.append(actor_system)

        async def test_a_fresh_system_each_time(actor_system):
            assert actor_system.lookup("echo") is None
            assert "closed" in repr(seen[0])
    """))
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


async def test_expect_no_message_counts_a_message_still_in_the_mailbox(
        actor_system: ActorSystem, mock_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)

    async def check() -> None:
        with pytest.raises(AssertionError, match="got 'just in time'"):
            await probe.expect_no_message(5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check)
        await trio.testing.wait_all_tasks_blocked()
        probe.ref.tell("just in time")  # queued before the deadline, but the probe has not taken it yet
        mock_clock.jump(5)


async def test_expect_no_message_on_a_stopped_probe(actor_system: ActorSystem,
                                                    autojump_clock: trio.testing.MockClock) -> None:
    probe = await Probe.spawn(actor_system)
    await actor_system.stop(probe.ref)
    await probe.expect_no_message(1)
