"""Mailboxes: the public :class:`Mailbox` spec and the two-lane queue every actor cell is built on.

An envelope is a plain tuple ``(message, sender_cell, reply, stamp)``: the cheapest record Python has, allocated
once per message. ``reply`` is ``None`` for a tell, a :class:`~runtime._futures.Future` for an ask, or a marker
for messages the runtime itself queues (timer ticks, ``Terminated``). ``stamp`` is the enqueue time for the
messages that figure sampling selects, else ``None``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from trio.lowlevel import Task

__all__ = ["Envelope", "Mailbox", "MailboxQueue", "Overflow"]

Overflow = Literal["fail", "drop_new", "drop_old"]
_OVERFLOWS = ("fail", "drop_new", "drop_old")

Envelope = tuple[Any, Any, Any, "float | None"]


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
    """Two lanes: system messages (stop, supervision directives) always before user messages.

    The user lane is a deque created on the first message, so an actor that was never sent anything costs
    no queue. ``_putters`` holds tasks parked in ``send`` waiting for room in a bounded mailbox.
    """

    __slots__ = ("_arrivals", "_capacity", "_overflow", "_peak", "_putters", "_queue", "_sysq")

    def __init__(self, mailbox: Mailbox) -> None:
        self._queue: deque[Envelope] | None = None
        self._sysq: deque[tuple[Any, ...]] | None = None
        self._capacity = mailbox.capacity
        self._overflow = mailbox.overflow
        self._putters: deque[Task] | None = None
        self._arrivals = 0
        self._peak = 0

    @property
    def mailbox_length(self) -> int:
        """User messages queued now (the one being handled is not counted)."""
        q = self._queue
        return 0 if q is None else len(q)

    def _new_queue(self) -> deque[Envelope]:
        q: deque[Envelope] = deque()
        self._queue = q
        return q

    def _put_system(self, item: tuple[Any, ...]) -> None:
        if self._sysq is None:
            self._sysq = deque()
        self._sysq.append(item)
