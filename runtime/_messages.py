"""Messages the runtime itself sends to actors and publishes on the event stream.

All are frozen attrs classes: immutable, so one instance can safely reach many recipients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

from ._show import show

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["DeadLetter", "LifecycleEvent", "PoisonPill", "Reply", "Terminated"]


@attrs.frozen
class Terminated:
    """Death watch: ``ref`` has stopped for good (a restart does not count).

    Delivered through the watcher's ordinary mailbox, so the messages the dying actor sent before it stopped
    arrive first. ``unwatch(ref)`` discards one that is already queued.
    """

    ref: ActorRef
    """The actor that stopped."""
    reason: BaseException | None = None
    """``None`` for a normal stop, else the error that made its supervisor stop it."""


@attrs.frozen
class PoisonPill:
    """An ordinary user message that stops its recipient once the messages queued before it are handled.

    Compare ``system.stop(ref)``, which overtakes queued messages.
    """


@attrs.frozen
class DeadLetter:
    """A message that could not be delivered, published on the event stream and counted.

    Sources: a tell to a stopped actor, the messages left queued when an actor stops, mailbox overflow, a reply
    that arrives after its ask is gone.
    """

    message: object
    """What could not be delivered."""
    sender: ActorRef | None
    """Who sent it, when known."""
    recipient: ActorRef | None
    """Where it was going."""
    reason: str
    """Why it was not delivered, in words (``"stopped"``, ``"overflow"``, ``"late reply"``, ...)."""


LifecycleKind = Literal["started", "stopped", "failed", "restarted"]


@attrs.frozen
class LifecycleEvent:
    """Published on the event stream when an actor starts, stops, fails or is restarted."""

    ref: ActorRef
    """The actor concerned."""
    kind: LifecycleKind
    """``"started"``, ``"stopped"``, ``"failed"`` or ``"restarted"``."""
    error: BaseException | None = None
    """The failure, for ``"failed"`` and ``"restarted"`` (and for a stop decided after a failure)."""


def _check_exception(_: object, __: attrs.Attribute[BaseException], value: object) -> None:
    if not isinstance(value, BaseException):
        raise TypeError(f"Reply.error takes an exception instance, not {show(value)}")


@attrs.frozen
class Reply:
    """A reply that makes the pending ask raise instead of returning, without failing the actor.

    ``return Reply.error(ValueError("no such item"))`` from ``receive`` (or ``reply.fail(exc)`` on a deferred
    reply) makes the asker's ``await ref.ask(...)`` raise that exception. The actor keeps running with its state;
    a refused request is not a failure. Returned for a told message, nobody waits for the error, so the message
    becomes a :class:`DeadLetter` whose reason names the exception: a refusal is never silent.
    """

    exception: BaseException = attrs.field(validator=_check_exception)
    """The exception the asker will see."""

    @classmethod
    def error(cls, exception: BaseException) -> Reply:
        """Answer the current ask with ``exception``; anything but an exception raises :class:`TypeError` at once."""
        return cls(exception)
