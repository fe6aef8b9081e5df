"""Mailboxes: bounds and overflow policies, ``send`` backpressure, and the system lane overtaking user messages."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Gate

from actors import Actor, ActorStopped, ActorSystem, DeadLetter, Mailbox, MailboxFull
from actors.testing import Probe
from runtime._mailbox import MailboxQueue

pytestmark = pytest.mark.deadline(60)  # a deadlock fails the test instead of hanging the run




async def busy_actor(system: ActorSystem, mailbox: Mailbox | None = None, *,
                     name: str | None = None) -> tuple[Any, trio.Event, list[object]]:
    """Spawn a Gate actor and make it busy with "wait", so that its mailbox is empty and what comes next queues."""
    gate = trio.Event()
    handled: list[object] = []
    ref = await system.spawn(Gate, gate, handled, mailbox=mailbox, name=name)
    ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    return ref, gate, handled


def queued(system: ActorSystem, path: str) -> int:
    return system.statistics().actors[path].mailbox_length


# -- the Mailbox spec ----------------------------------------------------------------------------------------


def test_mailbox_defaults_to_unbounded_fail() -> None:
    assert Mailbox() == Mailbox(capacity=None, overflow="fail")


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "10"])
def test_mailbox_capacity_must_be_a_positive_integer(capacity: Any) -> None:
    with pytest.raises(ValueError, match=f"capacity={capacity!r}"):
        Mailbox(capacity=capacity)


def test_mailbox_overflow_must_be_a_policy() -> None:
    with pytest.raises(ValueError, match=r"'drop_everything'.*'fail', 'drop_new', 'drop_old'"):
        Mailbox(capacity=1, overflow="drop_everything")  # type: ignore[arg-type]


async def test_spawn_takes_only_a_mailbox_spec(actor_system: ActorSystem) -> None:
    with pytest.raises(TypeError, match="mailbox=10"):
        await actor_system.spawn(Gate, trio.Event(), [], mailbox=10)  # type: ignore[arg-type]


# -- what every kind of mailbox does while it has room --------------------------------------------------------

MAILBOXES = [None, Mailbox(capacity=100), Mailbox(capacity=100, overflow="drop_new"),
             Mailbox(capacity=100, overflow="drop_old")]


@pytest.mark.parametrize("mailbox", MAILBOXES, ids=repr)
async def test_every_mailbox_keeps_order_and_answers(actor_system: ActorSystem, mailbox: Mailbox | None) -> None:
    ref, gate, seen = await busy_actor(actor_system, mailbox, name="m")
    for n in range(30):
        ref.tell(n)
    for n in range(30, 40):
        await ref.send(n)
    future = ref.request("last")
    assert queued(actor_system, "m") == 41
    gate.set()
    assert await future == "last"
    assert seen == ["wait", *range(40), "last"]
    assert actor_system.statistics().dead_letters == 0


@pytest.mark.parametrize("mailbox", MAILBOXES, ids=repr)
async def test_every_mailbox_drains_to_dead_letters_in_order_on_stop(actor_system: ActorSystem,
                                                                     mailbox: Mailbox | None) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref, gate, seen = await busy_actor(actor_system, mailbox)
    for n in range(5):
        ref.tell(n)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert seen == ["wait"]
    assert [(await dead.expect(DeadLetter)).message for _ in range(5)] == list(range(5))


# -- overflow policies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overflow", "handled", "dropped"),
    [
        ("drop_new", ["wait", 0, 1], [2, 3]),
        ("drop_old", ["wait", 2, 3], [0, 1]),
    ],
)
async def test_overflow_drops_to_dead_letters(actor_system: ActorSystem, overflow: Any,
                                              handled: list[object], dropped: list[object]) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref, gate, seen = await busy_actor(actor_system, Mailbox(capacity=2, overflow=overflow), name="bounded")
    for n in range(4):
        ref.tell(n)
        assert queued(actor_system, "bounded") <= 2
    for n in dropped:
        assert await dead.expect(DeadLetter) == DeadLetter(n, None, ref, "overflow")
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen == handled
    assert actor_system.statistics().dead_letters == 2
    assert actor_system.statistics().actors["bounded"].peak_mailbox_length == 2


async def test_overflow_fail_raises_mailbox_full_naming_actor_and_capacity(actor_system: ActorSystem) -> None:
    ref, gate, seen = await busy_actor(actor_system, Mailbox(capacity=2, overflow="fail"), name="strict")
    ref.tell(0)
    ref.tell(1)
    with pytest.raises(MailboxFull) as info:
        ref.tell("one too many")
    message = str(info.value)
    assert "'strict'" in message
    assert "2" in message
    assert "'one too many'" in message
    assert queued(actor_system, "strict") == 2
    assert actor_system.statistics().dead_letters == 0  # the caller got the error: nothing was dropped
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen == ["wait", 0, 1]
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args


async def test_capacity_counts_queued_messages_not_the_one_being_handled(actor_system: ActorSystem) -> None:
    ref, gate, seen = await busy_actor(actor_system, Mailbox(capacity=1), name="one")
    ref.tell("fits")  # "wait" is being handled: the mailbox is empty
    with pytest.raises(MailboxFull):
        ref.tell("does not fit")
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen == ["wait", "fits"]


async def test_system_default_mailbox_applies_to_spawned_actors() -> None:
    async with ActorSystem(mailbox=Mailbox(capacity=1)) as system:
        ref, gate, _ = await busy_actor(system)
        ref.tell("fits")
        with pytest.raises(MailboxFull):
            ref.tell("does not fit")
        gate.set()


# -- send: backpressure ------------------------------------------------------------------------------------


async def test_send_waits_for_room_and_keeps_order(actor_system: ActorSystem) -> None:
    ref, gate, seen = await busy_actor(actor_system, Mailbox(capacity=1), name="bp")
    sent: list[int] = []

    async def sender(start: int) -> None:
        for n in range(start, start + 3):
            await ref.send(n)
            sent.append(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender, 0)
        await trio.testing.wait_all_tasks_blocked()
        assert sent == [0]  # the first fitted; the second waits for room
        assert queued(actor_system, "bp") == 1
        gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert sent == [0, 1, 2]
    assert seen == ["wait", 0, 1, 2]
    assert actor_system.statistics().dead_letters == 0


async def test_several_senders_waiting_all_get_through(actor_system: ActorSystem) -> None:
    ref, gate, seen = await busy_actor(actor_system, Mailbox(capacity=1))
    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(ref.send, n)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(seen[1:]) == [0, 1, 2, 3, 4]  # type: ignore[type-var]


async def test_cancelled_send_leaves_the_message_unsent_and_the_mailbox_consistent(
        actor_system: ActorSystem, autojump_clock: trio.testing.MockClock) -> None:
    ref, gate, seen = await busy_actor(actor_system, Mailbox(capacity=1), name="bp")
    ref.tell("fills it")
    with trio.move_on_after(5) as scope:
        await ref.send("cancelled")
    assert scope.cancelled_caught
    assert queued(actor_system, "bp") == 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ref.send, "after")  # a later sender still gets woken up
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen == ["wait", "fills it", "after"]
    assert actor_system.statistics().dead_letters == 0


async def test_send_is_a_checkpoint_even_with_room(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)
    with trio.CancelScope() as scope:
        scope.cancel()
        await probe.ref.send("never sent")
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert probe.messages == []
    await probe.ref.send("sent")
    assert await probe.expect("sent") == "sent"


async def test_send_to_an_actor_that_stops_while_waiting(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref, gate, _ = await busy_actor(actor_system, Mailbox(capacity=1))
    ref.tell("fills it")
    async with trio.open_nursery() as nursery:
        errors: list[BaseException] = []

        async def send() -> None:
            try:
                await ref.send("waiting")
            except ActorStopped as exc:
                errors.append(exc)

        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(actor_system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert len(errors) == 1
    assert "'waiting'" in str(errors[0])
    assert (await dead.expect(DeadLetter)).message == "fills it"


async def test_send_to_a_stopped_actor_is_a_dead_letter(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    ref, gate, _ = await busy_actor(actor_system)
    gate.set()
    await actor_system.stop(ref)
    await ref.send("to nobody")
    assert (await dead.expect(DeadLetter)).message == "to nobody"


# -- two lanes -------------------------------------------------------------------------------------------------


async def test_system_lane_overtakes_the_user_lane(actor_system: ActorSystem) -> None:
    class StopsOnRequest(Actor):
        def __init__(self, gate: trio.Event, handled: list[object]) -> None:
            self.gate = gate
            self.handled = handled

        async def receive(self, message: Any) -> Any:
            if message == "wait":
                await self.gate.wait()
            elif message == "stop":
                self.stop()
            self.handled.append(message)

    gate = trio.Event()
    handled: list[object] = []
    ref = await actor_system.spawn(StopsOnRequest, gate, handled)
    ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()
    ref.tell("stop")
    ref.tell("user message")
    # Stop requested after "stop" and "user message" were queued: it still overtakes both.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert handled == ["wait"]


async def test_mailbox_statistics(actor_system: ActorSystem) -> None:
    ref, gate, _ = await busy_actor(actor_system, name="stats")
    for n in range(3):
        ref.tell(n)
    stats = actor_system.statistics().actors["stats"]
    assert (stats.arrivals, stats.mailbox_length, stats.peak_mailbox_length) == (4, 3, 3)
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    stats = actor_system.statistics().actors["stats"]
    assert (stats.handled, stats.mailbox_length, stats.peak_mailbox_length) == (4, 0, 3)


class Grows(Actor):
    """``("burst", n)`` tells itself ``n`` messages at once; ``"keep"`` is stashed; ``"release"`` unstashes."""

    async def receive(self, message: Any) -> None:
        if message == "keep":
            self.stash()
        elif message == "release":
            self.unstash_all()
        elif isinstance(message, tuple):
            for n in range(message[1]):
                self.ref.tell(n)


async def test_the_peak_counts_what_an_actor_queues_for_itself_and_what_it_unstashes(
        actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Grows, name="grows")
    ref.tell(("burst", 5))  # 5 queued while it handles the burst, in the same run (no checkpoint between)
    await trio.testing.wait_all_tasks_blocked()
    assert actor_system.statistics().actors["grows"].peak_mailbox_length == 5
    for _ in range(7):  # one at a time: never more than one queued
        ref.tell("keep")
        await trio.testing.wait_all_tasks_blocked()
    assert actor_system.statistics().actors["grows"].peak_mailbox_length == 5
    ref.tell("release")  # the 7 kept come back at once
    await trio.testing.wait_all_tasks_blocked()
    stats = actor_system.statistics().actors["grows"]
    assert (stats.handled, stats.mailbox_length, stats.peak_mailbox_length) == (1 + 5 + 7 + 1 + 7, 0, 7)


async def test_an_actor_that_never_had_a_message_shows_zeros(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    await actor_system.spawn(Gate, gate, [], name="idle")
    await trio.testing.wait_all_tasks_blocked()
    stats = actor_system.statistics().actors["idle"]
    assert (stats.arrivals, stats.handled, stats.mailbox_length, stats.peak_mailbox_length) == (0, 0, 0, 0)


class Lane(MailboxQueue):
    """The user lane alone, its hooks recording: which arrivals are stamped for the figures."""

    def __init__(self, mask: int) -> None:
        super().__init__(Mailbox(), mask)
        self.stamped: list[int] = []  # the length of the queue when a stamped message joined it

    def _accepting(self) -> bool:
        return True

    def _stamp(self) -> tuple[float, int]:
        self.stamped.append(self.mailbox_length)
        return (0.0, 1)

    def _ready(self) -> None:
        self.scheduled = True

    def _undeliverable(self, message: Any, sender: Any, mark: Any, reason: str) -> None:
        raise AssertionError(reason)


@pytest.mark.parametrize(("mask", "stamped"), [(0, [0, 1, 2, 3, 4, 5, 6, 7]), (3, [3, 7]), (1, [1, 3, 5, 7]),
                                               (-1, [])])
def test_the_sampling_mask_picks_which_arrivals_are_stamped(mask: int, stamped: list[int]) -> None:
    lane = Lane(mask)
    assert lane.mailbox_length == 0  # no queue yet
    assert lane.has_room()
    for n in range(8):
        lane.deliver(n, None, None)
    assert lane.stamped == stamped  # arrival number n (from 1) is stamped when n & mask == 0
    assert lane.mailbox_length == 8


def test_a_new_mask_picks_from_the_next_arrival_on() -> None:
    lane = Lane(3)
    for n in range(5):
        lane.deliver(n, None, None)  # arrival 4 stamped
    lane.set_mask(0)
    for n in range(3):
        lane.deliver(n, None, None)  # 6, 7, 8: every one
    lane.set_mask(3)
    for n in range(9):
        lane.deliver(n, None, None)  # 9 .. 17: 12 and 16 (n & 3 == 0), not the first after the change
    lane.set_mask(-1)
    for n in range(8):
        lane.deliver(n, None, None)  # none
    assert lane.stamped == [3, 5, 6, 7, 11, 15]  # the queue's length as each joined: its arrival number - 1
