"""An actor's one waiting message needs no queue.

The first message to an actor that has no queue waits in the mailbox by itself (``MailboxQueue._single``); a
second one queued before it is taken makes the queue, with the first at its head. An actor's first run gives back
a queue it leaves empty, so that one message to each of many idle actors leaves none of them holding a deque; a
later run keeps it (an actor that is sent messages one at a time goes on to the tell's fast path). These tests
check every place that reads a mailbox with a message waiting by itself: its length and room, overflow, the
order and senders of what follows, a stop's dead letters, stash, parking, and the figures of its first tick.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorFailed, ActorRef, ActorSystem, DeadLetter, Mailbox, MailboxFull, Metrics
from actors.testing import Probe
from runtime._figures import PENDING, Figures
from runtime._mailbox import MailboxQueue

pytestmark = pytest.mark.deadline(60)


class Seen(Actor):
    """Records ``(message, sender)``; ``"hold"`` blocks on the gate; the first ``"stash"`` is stashed;
    ``"release"`` unstashes."""

    def __init__(self, seen: list[tuple[Any, Any]], gate: trio.Event | None = None) -> None:
        self.seen = seen
        self.gate = gate
        self.stashed = False

    async def receive(self, message: Any) -> Any:
        if message == "hold":
            assert self.gate is not None
            await self.gate.wait()
        elif message == "stash" and not self.stashed:
            self.stashed = True
            self.stash()
            return None
        elif message == "release":
            self.unstash_all()
        self.seen.append((message, self.sender))
        return message


class Teller(Actor):
    """Told ``(target, message)``: tells it to ``target``."""

    async def receive(self, message: Any) -> None:
        target, each = message
        target.tell(each)


class Lane(MailboxQueue):
    """The user lane alone, recording what it dead-letters."""

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(mailbox, -1)
        self.dropped: list[Any] = []

    def _accepting(self) -> bool:
        return True

    def _ready(self) -> None:
        self.scheduled = True

    def _undeliverable(self, message: Any, sender: Any, mark: Any, reason: str) -> None:
        self.dropped.append((message, reason))

    def messages(self) -> list[Any]:
        return [item if item.__class__ is not tuple else item[0] for item in self.open_queue()]


def test_one_message_waits_without_a_queue_and_counts_in_the_length() -> None:
    lane = Lane(Mailbox(capacity=1))
    lane.deliver("a", None, None)
    assert lane._queue is None
    assert lane.mailbox_length == 1
    assert not lane.has_room()  # the one message fills a mailbox of one
    assert lane.slow  # so the next tell takes the checked path, which makes the queue
    assert lane.messages() == ["a"]
    assert lane.mailbox_length == 1
    assert lane._queue is not None


@pytest.mark.parametrize(("overflow", "kept", "dropped"), [("drop_new", ["a"], ["b"]), ("drop_old", ["b"], ["a"])])
def test_a_full_mailbox_of_one_applies_its_overflow_to_the_message_waiting_by_itself(
        overflow: Any, kept: list[str], dropped: list[str]) -> None:
    lane = Lane(Mailbox(capacity=1, overflow=overflow))
    lane.deliver("a", None, None)
    lane.deliver("b", None, None)
    assert lane.messages() == kept
    assert lane.dropped == [(message, "overflow") for message in dropped]


def test_a_full_mailbox_of_one_that_fails_keeps_the_message_waiting_by_itself() -> None:
    lane = Lane(Mailbox(capacity=1))
    lane.deliver("a", None, None)
    with pytest.raises(MailboxFull, match="'b'"):
        lane.deliver("b", None, None)
    assert lane.messages() == ["a"]


async def test_a_message_waiting_by_itself_keeps_its_place_and_sender_ahead_of_the_next(
        actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    target = await actor_system.spawn(Seen, seen, name="target")
    teller = await actor_system.spawn(Teller, name="teller")
    target.tell("from outside")  # waits by itself
    reply = target.request("asked")  # makes the queue: an envelope behind it
    assert target.mailbox_length == 2
    teller.tell((target, "from the teller"))
    assert await reply == "asked"
    await trio.testing.wait_all_tasks_blocked()
    assert [message for message, _ in seen] == ["from outside", "asked", "from the teller"]
    assert seen[0][1] is None
    assert seen[1][1] is not None
    assert seen[2][1] == teller


async def test_one_message_to_each_of_many_idle_actors_leaves_none_of_them_a_queue(
        actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    refs = [await actor_system.spawn(Seen, seen) for _ in range(100)]
    for ref in refs:
        ref.tell("one")
    assert all(ref._target._queue is None and ref.mailbox_length == 1 for ref in refs)
    await trio.testing.wait_all_tasks_blocked()
    assert len(seen) == 100
    assert all(ref._target._queue is None and ref.mailbox_length == 0 for ref in refs)
    stats = actor_system.statistics().actors
    assert {(s.arrivals, s.handled, s.peak_mailbox_length) for s in stats.values()} == {(1, 1, 1)}


async def test_an_actor_told_one_message_at_a_time_keeps_its_queue_from_its_second_run(
        actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    ref = await actor_system.spawn(Seen, seen)
    cell = ref._target
    ref.tell(1)
    await trio.testing.wait_all_tasks_blocked()
    assert cell._queue is None  # its first run gave the queue back
    ref.tell(2)
    await trio.testing.wait_all_tasks_blocked()
    assert cell._queue is not None  # kept
    ref.tell(3)  # the checked path, once: the tells after it append on the fast path
    assert not cell.slow
    await trio.testing.wait_all_tasks_blocked()
    assert cell._queue is not None
    assert [message for message, _ in seen] == [1, 2, 3]


async def test_a_stop_dead_letters_the_message_waiting_by_itself_with_its_sender(
        actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    ref = await actor_system.spawn(Seen, seen)
    dead = await Probe.dead_letters(actor_system)
    ref.tell("never handled")
    await actor_system.stop(ref)  # the stop overtakes it
    letter = await dead.expect(DeadLetter)
    assert (letter.message, letter.sender, letter.recipient, letter.reason) == ("never handled", None, ref,
                                                                                 "stopped")
    assert seen == []


async def test_a_message_stashed_in_the_first_run_comes_back_ahead_of_the_next(actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    ref = await actor_system.spawn(Seen, seen)
    ref.tell("stash")
    await trio.testing.wait_all_tasks_blocked()
    assert ref._target._queue is None
    assert seen == []
    ref.tell("release")
    ref.tell("after")
    await trio.testing.wait_all_tasks_blocked()
    assert [message for message, _ in seen] == ["release", "stash", "after"]


async def test_a_message_to_a_busy_first_run_is_queued_behind_it(actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    gate = trio.Event()
    ref = await actor_system.spawn(Seen, seen, gate)
    ref.tell("hold")
    await trio.testing.wait_all_tasks_blocked()  # handling "hold", from the queue made for its run
    ref.tell("next")
    assert ref.mailbox_length == 1
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert [message for message, _ in seen] == ["hold", "next"]


async def test_a_parked_actor_gives_back_its_queue_and_its_next_message_waits_by_itself(
        autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[Any, Any]] = []
    async with ActorSystem(metrics=Metrics(window=4.0, buckets=4, tick=0.5)) as system:
        ref = await system.spawn(Seen, seen)
        cell = ref._target
        for n in range(3):  # two runs: it keeps a queue
            ref.tell(n)
            await trio.testing.wait_all_tasks_blocked()
        assert cell._queue is not None
        await trio.sleep(2.0)  # quiet for more than PARK_AFTER_TICKS ticks
        assert cell._queue is None
        assert not cell.figures.active
        ref.tell("back")
        assert cell._queue is None
        assert ref.mailbox_length == 1
        await trio.testing.wait_all_tasks_blocked()
        assert cell.figures.active
        assert [message for message, _ in seen] == [0, 1, 2, "back"]
        assert system.statistics().actors[ref.path.rsplit("/", 1)[-1]].arrivals == 4


async def test_pending_figures_hold_nothing_the_collector_tracks_and_a_timed_message_makes_them_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[Any, Any]] = []
    async with ActorSystem(metrics=Metrics(tick=5.0, sample_every=2)) as system:
        ref = await system.spawn(Seen, seen, name="seen")
        cell = ref._target
        await trio.sleep(7.0)  # past a tick: the next message is not timed
        started = trio.current_time()
        ref.tell("untimed")  # arrival 1 of 2
        assert cell.figures is PENDING
        gc.collect()
        assert not gc.is_tracked(system._measured[cell])
        autojump_clock.jump(0.5)
        ref.tell("timed")  # arrival 2: its stamp needs the figures now, as they were at the first
        figures = cell.figures
        assert figures.__class__ is Figures
        assert system._measured[cell] is None
        assert (figures._start, figures._arrivals0) == (started, 1)
        await trio.testing.wait_all_tasks_blocked()
        assert cell.figures is figures
        assert len(seen) == 2


async def test_an_ask_to_an_idle_actor_without_a_queue_is_answered(actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    ref: ActorRef = await actor_system.spawn(Seen, seen)
    for n in range(3):  # the first waits by itself, the second too (the first run gave the queue back)
        assert await ref.ask(n) == n
    assert [message for message, _ in seen] == [0, 1, 2]


class TellsItselfOnStart(Actor):
    """Tells itself one message in ``on_start``, waits until a runner has looked at it while it is still starting,
    then fails if told to."""

    def __init__(self, seen: list[Any], fail: bool) -> None:
        self.seen = seen
        self.fail = fail

    async def on_start(self) -> None:
        self.ref.tell("told while starting")
        await trio.testing.wait_all_tasks_blocked()  # a runner has seen it starting, and left it
        if self.fail:
            raise ValueError("cannot start")

    async def receive(self, message: Any) -> None:
        self.seen.append(message)


async def test_a_message_told_while_the_actor_starts_waits_by_itself_and_is_handled_once_it_runs(
        actor_system: ActorSystem) -> None:
    seen: list[Any] = []
    await actor_system.spawn(TellsItselfOnStart, seen, False)
    await trio.testing.wait_all_tasks_blocked()
    assert seen == ["told while starting"]


async def test_a_message_told_while_the_actor_fails_to_start_is_a_dead_letter(actor_system: ActorSystem) -> None:
    seen: list[Any] = []
    dead = await Probe.dead_letters(actor_system)
    with pytest.raises(ActorFailed, match="cannot start"):
        await actor_system.spawn(TellsItselfOnStart, seen, True)
    letter = await dead.expect(DeadLetter)
    assert (letter.message, letter.reason, seen) == ("told while starting", "stopped", [])
