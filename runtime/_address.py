"""Addresses and delivery targets: what a ref points at, so that the same ``tell`` reaches a local cell or, later,
an actor on another node.

An :class:`Address` names an actor anywhere: the node (one running actor system), an actor id unique on that
node, and the actor's path. A ref holds an address and a *target*, the object that delivers to that address; a
local :class:`~runtime._cell.Cell` is one target, :class:`Unreachable` (an address that resolves to nothing) is
another, and a link to another process will be the next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from ._envelope import SystemMessage
    from ._lease import Lease
    from ._ref import ActorRef
    from ._system import ActorSystem

__all__ = ["Address", "Target"]


@attrs.frozen(cache_hash=True)
class Address:
    """Where an actor lives: ``node`` (its system's node id), ``uid`` (unique on that node) and ``path``.

    A name can be reused after its actor stopped; the ``uid`` cannot, so an address never reaches the new actor
    that took an old one's name.
    """

    node: str
    """The node id of the system the actor runs in."""
    uid: int
    """The actor's id, unique among every actor its node ever ran."""
    path: str
    """Its names from the top of the tree, joined by ``/``."""

    @property
    def name(self) -> str:
        """The last part of the path: the actor's name among its siblings."""
        return self.path.rpartition("/")[2]

    def __str__(self) -> str:
        return f"{self.path}@{self.node}#{self.uid}"


class Target(Protocol):
    """What a ref delivers through. A local cell is one; every target keeps the same rules.

    ``deliver`` queues a user envelope and never blocks: ``sender`` is the sending actor's ref (or ``None``),
    ``mark`` is ``None`` for a tell, an ``int`` correlation ID for an ask (the answer goes back through the
    asker's correlation table by that ID), or a runtime mark (a timer tick, a watch mark, a lease). A target that
    cannot deliver turns the message into a dead letter and fails a pending ask with ``ActorStopped``.
    ``deliver_system`` queues a system message (stop, supervision, watch), which overtakes user messages.
    ``send`` delivers once a bounded mailbox has room (backpressure), waiting as long as it takes.

    ``slow`` is ``False`` only while a local cell lets :meth:`ActorRef.tell` append to its queue inline; any other
    target keeps it ``True`` and gets every message through ``deliver``. ``claim`` is ``True`` only for a local
    cell whose next message the asker may handle in its own task (see ``Cell.claim``).
    """

    slow: bool
    system: ActorSystem
    """The local system: its correlation table takes the asks made through this target."""

    @property
    def address(self) -> Address: ...

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def is_stopped(self) -> bool: ...

    @property
    def mailbox_length(self) -> int: ...

    @property
    def ref(self) -> ActorRef: ...

    @property
    def actor_class(self) -> type | None:
        """The actor's class when this node knows it (a local actor, or one this node spawned), else ``None``."""

    async def send(self, message: Any, sender: ActorRef | None) -> None: ...

    def deliver(self, message: Any, sender: ActorRef | None, mark: Any) -> None: ...

    def claim(self, message: Any) -> bool: ...

    def deliver_leased(self, message: Any, sender: ActorRef | None, lease: Lease) -> None: ...

    def deliver_system(self, message: SystemMessage) -> None: ...
