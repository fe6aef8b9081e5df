"""Leases: messages a sender can take back after telling them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ._dispatcher import current_actor

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["Lease", "LeaseEnded"]


@attrs.frozen(eq=False)
class LeaseEnded:
    """Told to a lease's ``notify`` actor when a recipient of its messages failed, which ended the lease."""

    lease: Lease
    """The lease that ended."""
    recipient: ActorRef
    """The actor that failed; what it had not handled yet was dropped."""
    error: BaseException
    """Its failure."""


class Lease:
    """Messages told under a lease are dropped unhandled if the lease ends before the recipient takes them.

    A lease ends when its holder calls :meth:`revoke`, or when a recipient of its messages fails or stops: the
    messages still queued for that recipient, and those told to it under the lease afterwards, are dropped. On a
    failure, the ``notify`` actor (if any) is told :class:`LeaseEnded`, in order with what else it is sent.

    It is for a sender that hands work out and takes it back when the worker fails: a queue tells a consumer its
    deliveries under one lease and, told that the lease ended, redelivers them to other consumers. The restarted
    consumer keeps its mailbox (a restart always does) but never handles the deliveries that were taken back, so no
    work is done twice. An ended lease stays ended; tell what follows under a new one. A message dropped this way
    is not a dead letter: its sender took it back on purpose.
    """

    __slots__ = ("_notify", "_revoked")

    def __init__(self, notify: ActorRef | None = None) -> None:
        self._revoked = False
        self._notify = notify

    @property
    def revoked(self) -> bool:
        """Whether the lease has ended."""
        return self._revoked

    def revoke(self) -> None:
        """End the lease: every message told under it that its recipient has not started to handle is dropped."""
        self._revoked = True

    def tell(self, ref: ActorRef, message: Any) -> None:
        """Tell ``message`` to ``ref`` under this lease: like ``ref.tell``, overflow policy included."""
        ref._target.deliver_leased(message, current_actor.get(), self)

    def recipient_failed(self, recipient: ActorRef, error: BaseException) -> None:
        """End the lease because ``recipient`` failed, and tell the ``notify`` actor (called by the runtime)."""
        if self._revoked:
            return
        self._revoked = True
        if self._notify is not None:
            self._notify._target.deliver(LeaseEnded(self, recipient, error), None, None)

    def __repr__(self) -> str:
        return f"<Lease {'ended' if self._revoked else 'active'}>"
