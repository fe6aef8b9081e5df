"""Shared queues: one line of messages that several actors take from, each when it has nothing else to do.

This is what a balancing pool stands on (``Pool(..., routing="balancing")``): its routees are the *members* of one
:class:`SharedQueue`, and a message waits in that queue, not behind one busy routee, until the first member is
free. With Poisson arrivals and exponential handling that is the M/M/c queue Erlang C describes.

A member takes work when the dispatcher asks it whether it has any (``has_work``, which a runner calls when the
member's run ends, and a start or restart calls when it is done) and its own mailbox is empty: so a member never
holds more than the one message it is handling, and nothing in the run loop changes. A message that finds a
member idle goes to it at once. What a member takes keeps its sender and its ask (the member answers the asker
itself), and is timed from when it entered the shared queue: the members' figures count the wait in that queue,
so their rows, summed by ``SystemStatistics.by_class()``, are the figures of the whole M/M/c system.

An actor that is not a member is a plain :class:`~runtime.Cell` and pays nothing for any of this.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ._cell import Cell
from ._exceptions import ActorStopped
from ._lifecycle import RUNNING
from ._messages import PoisonPill
from ._show import show

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._spawn import SpawnSpec
    from ._system import ActorSystem

__all__ = ["SharedQueue"]


class Member(Cell):
    """An actor that takes its work from a :class:`SharedQueue` whenever its own mailbox runs dry."""

    __slots__ = ("_queued_at", "shared")

    def __init__(self, system: ActorSystem, parent: Cell | None, name: str, spec: SpawnSpec, uid: int,
                 shared: SharedQueue) -> None:
        super().__init__(system, parent, name, spec, uid)
        self.shared: SharedQueue | None = shared
        """The queue it takes from; ``None`` once it has left it."""
        self._queued_at: float | None = None
        """While a message taken from the shared queue is delivered: when it entered that queue."""

    def idle(self) -> bool:
        """Whether it is running, with no runner, nothing queued and nothing being handled."""
        return self.state == RUNNING and not self.scheduled and not self.mailbox_length and not self._sysq

    def has_work(self) -> bool:
        """Whether a runner should run it again; with an empty mailbox, it takes the shared queue's next message
        (and becomes one of the queue's idle members if there is none)."""
        if Cell.has_work(self):
            return True
        shared = self.shared
        return shared is not None and self.state == RUNNING and shared.next_for(self)  # (so nothing is queued)

    def take(self, message: Any, sender: ActorRef | None, mark: Any, queued: float) -> None:
        """Queue a message taken from the shared queue, which entered it at ``queued`` (through ``deliver``, the
        one checked path; only the time a timed message is stamped with differs)."""
        self._queued_at = queued
        try:
            self.deliver(message, sender, mark)
        finally:
            self._queued_at = None

    def _stamp(self) -> tuple[float, int]:
        stamp = Cell._stamp(self)
        queued = self._queued_at
        return stamp if queued is None else (queued, stamp[1])


class SharedQueue:
    """Messages waiting for the first of several actors (its members) to be free: the one line of an M/M/c queue.

    Made by the actor that owns it (a balancing pool), whose children become members when spawned with
    ``Cell.spawn_child(spec, shared=queue)``. The owner hands messages in with ``Cell.forward(queue, message)``,
    which keeps the sender and the pending ask: the member that handles the message sees the original sender and
    answers the ask. A message goes straight to an idle member if there is one, and otherwise waits here, in
    order, until a member's mailbox runs dry; so no message waits while a member is idle, and a member never holds
    more than the message it is handling (plus what is sent to it directly).

    The queue is unbounded and lives in its owner's process. :meth:`leave` takes a member out (it takes nothing
    more; what it holds it finishes); :meth:`close` ends the queue when its owner stops: the asks still waiting
    fail with :class:`~runtime.ActorStopped` and the told messages become dead letters.
    """

    __slots__ = ("_closed", "_idle", "_items", "owner", "system")

    def __init__(self, system: ActorSystem, owner: ActorRef) -> None:
        self.system = system
        self.owner = owner
        """The actor the messages were sent to (a pool): the recipient its dead letters name."""
        self._items: deque[tuple[Any, ActorRef | None, Any, float]] = deque()
        self._idle: dict[Member, None] = {}
        """Members found idle with nothing to take, longest idle first (an ordered set)."""
        self._closed = False

    @property
    def _target(self) -> SharedQueue:
        # ``Cell.forward`` delivers through ``target._target``: a shared queue is its own delivery target.
        return self

    def __len__(self) -> int:
        """Messages waiting for a member."""
        return len(self._items)

    @property
    def idle_members(self) -> int:
        """Members known to be idle (each takes the next message that comes)."""
        return sum(1 for member in self._idle if member.shared is self and member.idle())

    def member(self, parent: Cell, name: str, spec: SpawnSpec, uid: int) -> Member:
        """A new cell that takes its work from this queue (``Cell.spawn_child`` makes it)."""
        return Member(self.system, parent, name, spec, uid, self)

    def offer(self, member: Cell) -> None:
        """Give ``member`` the next message if it is idle (a freshly started member, which no runner ran yet)."""
        if isinstance(member, Member) and member.shared is self and member.idle():
            self.next_for(member)

    def deliver(self, message: Any, sender: ActorRef | None, mark: Any) -> None:
        """Hand a message to the longest-idle member, or queue it until a member is free (never blocks).

        ``mark`` is the pending ask's correlation ID, or ``None`` for a tell. A closed queue refuses it as a
        stopped actor would.
        """
        if self._closed:
            self._refuse(message, sender, mark)
            return
        queued = self.system.now()
        idle = self._idle
        while idle:
            member = next(iter(idle))
            del idle[member]
            if member.shared is self and member.idle():
                member.take(message, sender, mark, queued)
                return
        self._items.append((message, sender, mark, queued))

    def next_for(self, member: Member) -> bool:
        """``member`` has nothing queued: give it the next message (``True``), or note it as idle (``False``)."""
        items = self._items
        if items:
            self._idle.pop(member, None)
            member.take(*items.popleft())
            return True
        self._idle[member] = None
        return False

    def leave(self, ref: ActorRef) -> None:
        """Take the member behind ``ref`` out: it takes nothing more from this queue (what it holds, it handles)."""
        member = ref._target
        if isinstance(member, Member) and member.shared is self:
            member.shared = None
            self._idle.pop(member, None)

    def close(self) -> None:
        """End the queue (its owner stops): fail the waiting asks, dead-letter the waiting tells; later
        deliveries are refused the same way."""
        self._closed = True
        self._idle.clear()
        items = self._items
        while items:
            self._refuse(*items.popleft()[:3])

    def _refuse(self, message: Any, sender: ActorRef | None, mark: Any) -> None:
        # As a stopped actor's mailbox does: the ask fails, and the message is a dead letter.
        if mark.__class__ is int:
            self.system.correlations.fail(mark, ActorStopped(f"{self.owner!r} stopped; {show(message)} was not "
                                                             "handled"))
        elif message.__class__ is PoisonPill:  # a pill for a member that had stopped already: nothing was lost
            return
        self.system.dead_letter(message, sender, self.owner, "stopped")

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SharedQueue{state} waiting={len(self._items)} idle={self.idle_members}>"
