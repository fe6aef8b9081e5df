"""Every queued message keeps its sender, whichever way it was queued.

A message from the same sender as the item queued before it goes into the queue by itself, with no envelope (see
``runtime/_envelope.py``): these tests interleave senders, stash, overflow and stop around such runs, and check
``self.sender`` and the dead letters' senders message by message.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorRef, ActorSystem, DeadLetter, Mailbox
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)


class Recorder(Actor):
    """Records ``(message, sender)``. ``"hold"`` blocks on the gate; while ``stashing`` it stashes everything but
    ``"release"``, which unstashes (``"release and hold"`` then blocks on the gate); ``"slow"`` holds on the gate
    too, then records its sender again."""

    def __init__(self, gate: trio.Event, seen: list[tuple[Any, Any]], stashing: bool = False) -> None:
        self.gate = gate
        self.seen = seen
        self.stashing = stashing

    async def receive(self, message: Any) -> Any:
        if message == "hold":
            await self.gate.wait()
            return None
        if self.stashing:
            if message in ("release", "release and hold"):
                self.stashing = False
                self.unstash_all()
                if message == "release and hold":
                    await self.gate.wait()
            else:
                self.stash()
            return None
        if message == "slow":
            before = self.sender
            await self.gate.wait()
            self.seen.append((("slow", before), self.sender))
            return None
        self.seen.append((message, self.sender))
        return None


class Teller(Actor):
    """Told ``(target, messages)``: tells ``target`` each message."""

    async def receive(self, message: Any) -> Any:
        target, messages = message
        for each in messages:
            target.tell(each)


async def _tellers(system: ActorSystem) -> tuple[ActorRef, ActorRef]:
    return await system.spawn(Teller, name="a"), await system.spawn(Teller, name="b")


async def test_interleaved_senders_are_each_kept(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    seen: list[tuple[Any, Any]] = []
    recorder = await actor_system.spawn(Recorder, gate, seen)
    a, b = await _tellers(actor_system)
    recorder.tell("hold")
    await trio.testing.wait_all_tasks_blocked()
    plan = [(a, [1, 2, 3]), (b, [4, 5]), (None, [6, 7]), (a, [8]), (b, [9, (10, "a tuple")]), (None, [11])]
    for sender, messages in plan:
        if sender is None:
            for each in messages:
                recorder.tell(each)
        else:
            await sender.ask((recorder, messages))  # queued behind "hold", in this order
    assert actor_system.statistics().actors[recorder.path].mailbox_length == 11
    gate.set()
    await recorder.ask("sync")
    expected = [(each, sender) for sender, messages in plan for each in messages]
    assert seen[:-1] == expected


async def test_unstashed_messages_and_those_after_them_keep_their_senders(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    seen: list[tuple[Any, Any]] = []
    recorder = await actor_system.spawn(Recorder, gate, seen, stashing=True)
    a, b = await _tellers(actor_system)
    await a.ask((recorder, [1, 2]))
    await b.ask((recorder, [3, 4]))
    await trio.testing.wait_all_tasks_blocked()  # all four stashed; the queue is empty
    recorder.tell("hold")
    await trio.testing.wait_all_tasks_blocked()
    await a.ask((recorder, ["release", 5, 6]))  # queued behind "hold": the release unstashes ahead of 5 and 6
    gate.set()
    await recorder.ask("sync")
    assert seen[:-1] == [(1, a), (2, a), (3, b), (4, b), (5, a), (6, a)]


async def test_unstashing_into_an_empty_queue_keeps_the_next_senders(actor_system: ActorSystem) -> None:
    seen: list[tuple[Any, Any]] = []
    recorder = await actor_system.spawn(Recorder, trio.Event(), seen, stashing=True)
    a, b = await _tellers(actor_system)
    await a.ask((recorder, [1]))
    await b.ask((recorder, [2, "release"]))  # the stash (1 from a, 2 from b) comes back into an empty queue
    await b.ask((recorder, [3]))
    await a.ask((recorder, [4]))
    await recorder.ask("sync")
    assert seen[:-1] == [(1, a), (2, b), (3, b), (4, a)]


async def test_a_message_queued_right_after_an_unstash_into_an_empty_queue_keeps_its_sender(
        actor_system: ActorSystem) -> None:
    gate = trio.Event()
    seen: list[tuple[Any, Any]] = []
    recorder = await actor_system.spawn(Recorder, gate, seen, stashing=True)
    a, b = await _tellers(actor_system)
    await a.ask((recorder, [1]))
    await b.ask((recorder, [2]))
    await a.ask((recorder, ["release and hold"]))  # the queue was empty: now it holds 1 (from a), 2 (from b)
    await trio.testing.wait_all_tasks_blocked()
    await a.ask((recorder, [3]))  # queued after 2, from b: it needs its own envelope
    gate.set()
    await recorder.ask("sync")
    assert seen[:-1] == [(1, a), (2, b), (3, a)]


async def test_a_message_queued_after_an_overflow_emptied_the_queue_keeps_its_sender(
        actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    gate = trio.Event()
    seen: list[tuple[Any, Any]] = []
    recorder = await actor_system.spawn(Recorder, gate, seen, mailbox=Mailbox(capacity=1, overflow="drop_old"))
    (a, _) = await _tellers(actor_system)
    recorder.tell("hold")  # from outside any actor
    await trio.testing.wait_all_tasks_blocked()
    await a.ask((recorder, [1, 2]))  # 2 drops 1, the only queued message
    assert (await dead.expect(DeadLetter)).sender == a
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    await recorder.ask("sync")
    assert seen[:-1] == [(2, a)]


async def test_an_overflow_keeps_the_senders_of_what_it_drops_and_of_what_stays(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    gate = trio.Event()
    seen: list[tuple[Any, Any]] = []
    recorder = await actor_system.spawn(Recorder, gate, seen, mailbox=Mailbox(capacity=3, overflow="drop_old"))
    a, b = await _tellers(actor_system)
    recorder.tell("hold")
    await trio.testing.wait_all_tasks_blocked()
    await a.ask((recorder, [1, 2, 3]))
    await b.ask((recorder, [4, 5]))  # drops 1 and 2, from a
    letters = [await dead.expect(DeadLetter) for _ in range(2)]
    assert [(letter.message, letter.sender) for letter in letters] == [(1, a), (2, a)]
    gate.set()
    await trio.testing.wait_all_tasks_blocked()  # all handled, before the sync ask could overflow the mailbox
    await recorder.ask("sync")
    assert seen[:-1] == [(3, a), (4, b), (5, b)]


async def test_an_overflow_while_a_message_is_handled_leaves_its_sender_alone(actor_system: ActorSystem) -> None:
    gate = trio.Event()
    seen: list[tuple[Any, Any]] = []
    recorder = await actor_system.spawn(Recorder, gate, seen, mailbox=Mailbox(capacity=2, overflow="drop_old"))
    a, b = await _tellers(actor_system)
    await a.ask((recorder, ["x", "slow"]))  # "slow" was queued by itself, after a's "x"
    await trio.testing.wait_all_tasks_blocked()  # "slow" is being handled, waiting on the gate
    await b.ask((recorder, [1, 2, 3, 4]))  # 1 and 2 dropped from the head while "slow" waits
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    await recorder.ask("sync")
    assert seen[:-1] == [("x", a), (("slow", a), a), (3, b), (4, b)]


async def test_a_stop_dead_letters_what_is_queued_with_each_sender(actor_system: ActorSystem) -> None:
    dead = await Probe.dead_letters(actor_system)
    gate = trio.Event()
    recorder = await actor_system.spawn(Recorder, gate, [])
    a, b = await _tellers(actor_system)
    recorder.tell("hold")
    await trio.testing.wait_all_tasks_blocked()
    await a.ask((recorder, [1, 2]))
    await b.ask((recorder, [3, 4]))
    recorder.tell(5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, recorder)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    letters = [await dead.expect(DeadLetter) for _ in range(5)]
    assert [(letter.message, letter.sender) for letter in letters] == [(1, a), (2, a), (3, b), (4, b), (5, None)]
