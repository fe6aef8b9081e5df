"""Envelopes and system messages: what travels to an actor, as values that hold addresses, never objects.

A user envelope is a plain tuple ``(message, sender, mark, stamp)``, the cheapest record Python has:

- ``sender``: the sending actor's :class:`~runtime.ActorRef`, or ``None`` for a tell from outside any actor;
- ``mark``: ``None`` for a tell; an ``int`` correlation ID for an ask, whose answer resolves through the asker's
  correlation table by that ID; or a runtime mark on a message the runtime queued itself (a timer tick, a watch
  mark on ``Terminated``, a :class:`~runtime.Lease`), which the run loop opens on its one slow branch;
- ``stamp``: ``(enqueue time, weight)`` for the messages that figure sampling selects (the weight is how many
  arrivals the sample stands for), else ``None``.

The common tell needs no envelope: it is not an ask, not timed, and comes from the same sender as the message
queued before it (one actor telling another many times, or tells from outside any actor). Then the queue holds
the message itself, unless the message is itself a plain ``tuple``; so a queue item is an envelope exactly when
its class is ``tuple``, and a message queued by itself has the sender of the envelope before it in the queue
(``MailboxQueue._last`` is the sender of the item queued last, ``MailboxQueue._from`` the sender of the last
envelope taken out; see :class:`~runtime._mailbox.MailboxQueue`). :func:`open_item` reads either kind, given
that sender.

System messages are frozen attrs values. They overtake every user message, and the ones that name an actor name
it by ref, so they can cross to another node like any message.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = [
    "NO_ITEM",
    "WATCH_MARK",
    "ChildExited",
    "ChildFailed",
    "Envelope",
    "Halt",
    "Halted",
    "QueueItem",
    "Rebuild",
    "Rebuilt",
    "Reincarnate",
    "Resume",
    "Stop",
    "StopOrigin",
    "SystemMessage",
    "Unwatch",
    "Watch",
    "open_item",
]

Envelope = tuple[Any, "ActorRef | None", Any, "tuple[float, int] | None"]
"""``(message, sender, mark, stamp)``: see the module docstring."""

QueueItem = Any
"""What a user lane holds: an :data:`Envelope`, or a message that is not a plain ``tuple`` standing for
``(message, sender, None, None)``, where ``sender`` is that of the envelope before it."""


NO_ITEM: Any = object()
"""Where a queue item may be, none: a message told by itself may be ``None``."""


def open_item(item: QueueItem, sender: ActorRef | None) -> Envelope:
    """The envelope a queue item stands for, ``sender`` being the sender of the envelope before it."""
    return item if item.__class__ is tuple else (item, sender, None, None)


class _WatchMark:
    """Marks a queued ``Terminated`` so that ``unwatch`` can discard it before it is handled."""

    def __repr__(self) -> str:
        return "WATCH_MARK"


WATCH_MARK = _WatchMark()

StopOrigin = Literal["self", "parent", "external"]


@attrs.frozen
class Stop:
    """Stop after the current message: ``origin`` says who asked (the actor itself, its parent, or outside)."""

    reason: BaseException | None
    """``None`` for a normal stop, else the error its supervisor stops it for."""
    origin: StopOrigin
    """``"self"`` (``self.stop()``, a ``PoisonPill``), ``"parent"`` or ``"external"`` (``system.stop``)."""
    deadline: float = math.inf
    """When the whole stop must be over (the actor's ``stop_timeout`` after the request), on trio's clock."""


@attrs.frozen
class ChildFailed:
    """To a parent: ``child`` raised ``error`` and is suspended until the parent decides.

    ``incarnation`` counts the child's restarts at the failure: a report from an incarnation that a group restart
    has already replaced is stale and ignored (as OTP ignores the exit of a process it has already restarted).
    """

    child: ActorRef
    error: BaseException
    incarnation: int


@attrs.frozen
class ChildExited:
    """To a parent: its permanent ``child`` stopped itself, so it is to be restarted (OTP)."""

    child: ActorRef
    incarnation: int


@attrs.frozen
class Resume:
    """To a suspended child: keep the instance and go on with the next message."""


@attrs.frozen
class Reincarnate:
    """To a child restarted on its own: end this incarnation, wait ``delay`` seconds, start a fresh one."""

    error: BaseException | None
    delay: float


@attrs.frozen
class Halt:
    """To a child of a group restart: end this incarnation and answer :class:`Halted` to the parent."""

    error: BaseException | None


@attrs.frozen
class Halted:
    """To a parent: ``child`` has ended its incarnation (or was already stopping) after a :class:`Halt`."""

    child: ActorRef


@attrs.frozen
class Rebuild:
    """To a halted child of a group restart: start a fresh incarnation and answer :class:`Rebuilt`."""

    error: BaseException | None


@attrs.frozen
class Rebuilt:
    """To a parent: ``child`` has handled its :class:`Rebuild` (started, failed again, or was stopped).

    ``incarnation`` is the child's count of restarts after it: a failure report from an earlier one is stale.
    """

    child: ActorRef
    incarnation: int = 0


@attrs.frozen
class Watch:
    """To the watched actor: tell ``watcher`` ``Terminated`` when you stop (at once if you have)."""

    watcher: ActorRef


@attrs.frozen
class Unwatch:
    """To the watched actor: ``watcher`` no longer wants your ``Terminated``."""

    watcher: ActorRef


SystemMessage = Stop | ChildFailed | ChildExited | Resume | Reincarnate | Halt | Halted | Rebuild | Rebuilt | Watch \
    | Unwatch
