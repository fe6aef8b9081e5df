"""Mailboxes: the public :class:`Mailbox` spec and the two-lane queue every actor cell is built on.

The user lane holds envelopes (see :mod:`runtime._envelope`); the system lane holds system messages, which
always go first. Enqueueing never blocks: a full bounded mailbox applies its overflow policy, and ``send``
parks on the mailbox's :class:`trio.lowlevel.ParkingLot` until the actor takes a message out.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from ._envelope import NO_ITEM, open_item
from ._exceptions import ActorStopped, MailboxFull
from ._show import show

if TYPE_CHECKING:
    from ._envelope import Envelope, QueueItem, SystemMessage
    from ._ref import ActorRef

__all__ = ["UNBOUNDED", "Mailbox", "MailboxQueue", "Overflow"]

Overflow = Literal["fail", "drop_new", "drop_old"]
_OVERFLOWS = ("fail", "drop_new", "drop_old")


def _check_capacity(_: object, __: object, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"Mailbox capacity={value!r} must be None (unbounded) or an integer of 1 or more")


def _check_overflow(_: object, __: object, value: str) -> None:
    if value not in _OVERFLOWS:
        raise ValueError(f"Mailbox overflow={value!r} is not a policy; use one of {', '.join(map(repr, _OVERFLOWS))}")


@attrs.frozen
class Mailbox:
    """How an actor's mailbox is bounded: ``spawn(..., mailbox=Mailbox(capacity=100, overflow="drop_old"))``.

    Unbounded by default. A bounded mailbox counts queued messages, not the one being handled. When it is full,
    ``tell`` (and ``ask``/``request``) apply ``overflow``: ``"fail"`` raises :class:`~runtime.MailboxFull`;
    ``"drop_new"`` drops the new message and ``"drop_old"`` the oldest queued one, each as a dead letter.
    ``await ref.send(...)`` instead waits for room (backpressure).
    """

    capacity: int | None = attrs.field(default=None, validator=_check_capacity)
    """Most messages queued at once; ``None`` for no limit."""
    overflow: Overflow = attrs.field(default="fail", validator=_check_overflow)
    """What a ``tell`` to a full mailbox does."""


UNBOUNDED = Mailbox()


class MailboxQueue:
    """Two lanes: system messages (stop, supervision, watch) always before user messages.

    The user lane is a deque made when a second message is queued before the first is taken: an actor that was
    never sent anything costs no queue, and one sent a single message keeps it in ``_single`` (a million idle
    actors told one message each keep no deque: see :meth:`open_queue` and the end of ``Cell.run``). ``slow`` is
    ``False`` while a message can be appended with no check at all (unbounded, accepting, with a queue): then
    :meth:`~runtime.ActorRef.tell` appends inline, the only copy of the fast path. Everything else goes through
    :meth:`deliver`.

    A subclass provides the four hooks: ``_accepting`` (whether user messages are still taken), ``_stamp`` (the
    time a sampled message is queued at, and its arrival number), ``_ready`` (hand the actor to its
    dispatcher) and ``_undeliverable`` (dead-letter a message, failing its ask).
    """

    __slots__ = ("_arrivals", "_capacity", "_due", "_from", "_last", "_mask", "_overflow", "_peak", "_putters",
                 "_queue", "_single", "_sysq", "scheduled", "slow")

    def __init__(self, mailbox: Mailbox, mask: int) -> None:
        self._queue: deque[QueueItem] | None = None
        self._single: QueueItem = NO_ITEM
        """The one queued item of a mailbox without a queue (``NO_ITEM`` if none)."""
        self._sysq: deque[SystemMessage] | None = None
        self._capacity = mailbox.capacity
        self._overflow = mailbox.overflow
        self._putters: trio.lowlevel.ParkingLot | None = None
        self._arrivals = 0
        self._peak = 0
        self._mask = mask
        """Arrival numbers ``n`` with ``n & mask == 0`` are stamped; ``-1`` stamps none, ``0`` every one."""
        self._due = mask + 1
        """The arrival number of the next message to stamp (one comparison a message, where ``n & mask`` is a
        generic operation in CPython): set from ``_mask`` whenever that changes, and moved on by :meth:`_timed`.
        ``0`` (with a mask of ``-1``) is never reached."""
        self.scheduled = False
        """Whether the actor is with the dispatcher (queued to run, or running)."""
        self.slow = True
        self._last: ActorRef | None = None
        """The sender of the item queued last: a message from the same sender may be queued by itself."""
        self._from: ActorRef | None = None
        """The sender of the last envelope taken out of the queue, so of a message that follows it by itself.
        When the queue is empty, ``_from is _last``."""

    # -- hooks -----------------------------------------------------------------------------------------------

    def _accepting(self) -> bool:
        raise NotImplementedError

    def _stamp(self) -> tuple[float, int]:
        raise NotImplementedError

    def _ready(self) -> None:
        raise NotImplementedError

    def _timed(self) -> tuple[float, int]:
        """The stamp of the arrival that was due to be timed, and the next one due."""
        self._due = self._arrivals + self._mask + 1
        return self._stamp()

    def set_mask(self, mask: int) -> None:
        """Stamp, from the next arrival on, those whose number ``n`` has ``n & mask == 0``."""
        self._mask = mask
        self._due = (self._arrivals | mask) + 1

    def _undeliverable(self, message: Any, sender: ActorRef | None, mark: Any, reason: str) -> None:
        raise NotImplementedError

    # -- the user lane ---------------------------------------------------------------------------------------

    @property
    def mailbox_length(self) -> int:
        """User messages queued now (the one being handled is not counted)."""
        q = self._queue
        if q is None:
            return 0 if self._single is NO_ITEM else 1
        return len(q)

    def open_queue(self) -> deque[QueueItem] | tuple[()]:
        """The queue a run takes messages from: the deque, made now if the mailbox holds its one message in
        ``_single``; ``()`` when nothing is queued."""
        q = self._queue
        if q is None:
            return () if self._single is NO_ITEM else self._queue_single()
        return q

    def _queue_single(self) -> deque[QueueItem]:
        """Make the queue, holding the one item that waited in ``_single``."""
        q = self._queue = deque((self._single,))
        self._single = NO_ITEM
        return q

    def deliver(self, message: Any, sender: ActorRef | None, mark: Any) -> None:
        """Queue a user message with every check; never blocks. A closed mailbox dead-letters it.

        :meth:`~runtime.ActorRef.tell` appends inline while ``slow`` is ``False`` and comes here otherwise; the
        runtime's own messages (asks, timer ticks, events) always come here.
        """
        if not self._accepting():
            self._undeliverable(message, sender, mark, "stopped")
            return
        q = self._queue
        if q is None and self._single is not NO_ITEM:
            q = self._queue_single()
        cap = self._capacity
        if q is not None:
            self.slow = cap is not None
            if cap is not None and len(q) >= cap and not self._overflowed(message, sender, mark, q, cap):
                return
        n = self._arrivals = self._arrivals + 1
        if sender is self._last and mark is None and n != self._due and message.__class__ is not tuple:
            item = message
        else:
            item = (message, sender, mark, None if n != self._due else self._timed())
            self._last = sender
        if q is None:  # an empty mailbox without a queue: the message waits by itself (``slow`` stays True)
            self._single = item
        else:
            q.append(item)
        if not self.scheduled:
            self._ready()

    def _overflowed(self, message: Any, sender: ActorRef | None, mark: Any, q: deque[QueueItem], cap: int) -> bool:
        """Apply the overflow policy of a full mailbox; ``True`` if the new message may still be queued."""
        policy = self._overflow
        if policy == "fail":
            raise MailboxFull(f"{self!r} has a full mailbox ({cap} queued); {show(message)} was not delivered")
        if policy == "drop_new":
            self._undeliverable(message, sender, mark, "overflow")
            return False
        old_message, old_sender, old_mark, _ = self._take_first(q)
        self._undeliverable(old_message, old_sender, old_mark, "overflow")
        return True

    def _take_first(self, q: deque[QueueItem]) -> Envelope:
        """Take the first queued item out (an overflow drops it) and keep every other item's sender: only the run
        loop moves ``_from``, since the message being handled may be one queued by itself."""
        item = q.popleft()
        if item.__class__ is not tuple:
            return (item, self._from, None, None)
        if not q:
            self._last = self._from  # so that what is queued next by itself is read as from ``_from``
        else:
            self._seal_head(q, item[1])  # it followed the envelope taken out: it keeps that sender
        return item

    @staticmethod
    def _seal_head(q: deque[QueueItem], sender: ActorRef | None) -> None:
        """Give the first item, if it was queued by itself, an envelope of its own with ``sender`` (that of the
        envelope before it), so that taking that envelope out, or putting others in front, keeps its sender."""
        if q[0].__class__ is not tuple:
            q[0] = (q[0], sender, None, None)

    def _open_all(self, items: deque[QueueItem]) -> list[Envelope]:
        """The envelopes of a whole queue, in order (for a stop's dead letters)."""
        sender = self._from
        envelopes = []
        for item in items:
            envelope = open_item(item, sender)
            sender = envelope[1]
            envelopes.append(envelope)
        return envelopes

    def has_room(self) -> bool:
        """Whether a bounded mailbox can take one more message without its overflow policy."""
        cap = self._capacity
        return cap is None or self.mailbox_length < cap

    async def send(self, message: Any, sender: ActorRef | None) -> None:
        """Queue a user message once a bounded mailbox has room (backpressure); raise ``ActorStopped`` if the actor
        stops while it waits. Always a checkpoint; cancelled while it waits, the message is not queued."""
        # Yield first: the check for room and the put below must have no checkpoint between them, or another
        # sender could take the room and the put would apply the overflow policy after all.
        await trio.lowlevel.checkpoint()
        if not self.has_room():
            while self._accepting() and not self.has_room():
                if self._putters is None:
                    self._putters = trio.lowlevel.ParkingLot()
                await self._putters.park()  # until the actor takes a message out, or stops
            if not self._accepting():
                raise ActorStopped(f"{self!r} stopped while {show(message)} waited for room in its mailbox")
        self.deliver(message, sender, None)

    # -- the system lane -------------------------------------------------------------------------------------

    def put_system(self, message: SystemMessage) -> None:
        """Queue a system message; it overtakes every user message."""
        if self._sysq is None:
            self._sysq = deque()
        self._sysq.append(message)
        if not self.scheduled:
            self._ready()
