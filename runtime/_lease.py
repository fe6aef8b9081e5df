"""Leases: messages a sender can take back after telling them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._dispatcher import current_cell

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["Lease"]


class Lease:
    """Messages told under a lease are dropped unhandled if the lease ends before the recipient takes them.

    A lease ends when its holder calls :meth:`revoke`, or when a recipient of its messages fails: at that moment
    the messages still queued for that recipient are dropped. It is for a sender that hands work out and takes it
    back when the worker fails: a queue tells a consumer its deliveries under one lease and, when it learns that
    the consumer failed, redelivers them to others. The restarted consumer keeps its mailbox (a restart always
    does) but never handles the deliveries that were taken back, so no work is done twice. An ended lease stays
    ended; tell what follows under a new one. A message dropped this way is not a dead letter: its sender took it
    back on purpose.
    """

    __slots__ = ("_revoked",)

    def __init__(self) -> None:
        self._revoked = False

    @property
    def revoked(self) -> bool:
        """Whether :meth:`revoke` was called."""
        return self._revoked

    def revoke(self) -> None:
        """End the lease: every message told under it that its recipient has not started to handle is dropped."""
        self._revoked = True

    def tell(self, ref: ActorRef, message: Any) -> None:
        """Tell ``message`` to ``ref`` under this lease: like ``ref.tell``, overflow policy included."""
        ref._cell.put_leased(message, current_cell.get(), self)

    def __repr__(self) -> str:
        return f"<Lease {'revoked' if self._revoked else 'active'}>"
