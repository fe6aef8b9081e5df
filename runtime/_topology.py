"""The router's topology as data: which refs are exchanges and queues, each exchange's bindings, each queue's state.

One :class:`Topology` per actor system, kept on the system (``topology(system)``, through
``system.extension``), never in a module global. Everything in it is keyed by ref, and a ref survives
restarts: an ``Exchange`` that is restarted (a fresh instance, after its own failure or a sibling's under
``OneForAll``) finds its bindings, its alternate and its figures where it left them, and a ``Queue`` finds its
:class:`~runtime._queue_state.QueueState`. Exchanges change their own :class:`ExchangeEntry` (bind, unbind)
and routing reads the entries (:meth:`Topology.route`): no exchange ever reads another exchange instance.

Trio runs one task at a time and an entry changes only inside a synchronous call, so routing always sees a
consistent topology. While an exchange is restarting its entry keeps routing as before.

Stopped for good: an exchange's or queue's ``on_stop`` runs on a restart as well as on its final stop, and
cannot tell them apart, so nothing is removed there. Instead, entries whose ref ``is_stopped`` are dropped
lazily: by a sweep when an exchange or queue is declared (amortized O(1) per declaration: a sweep visits every
entry, and the next one waits for half as many declarations as there are entries), and when routing finds a
bound exchange or queue, or an alternate, stopped. A stopped ref is never routed to in the meantime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from ._dispatcher import current_system
from ._routing import RoutingTable

if TYPE_CHECKING:
    from ._queue_state import QueueState
    from ._ref import ActorRef
    from ._system import ActorSystem

__all__ = ["ExchangeEntry", "RouterKind", "Topology", "topology"]

RouterKind = Literal["exchange", "queue"]
"""What a ref of the topology is."""

_KEYED_KINDS: Final = frozenset({"direct", "topic"})
"""The kinds that match on routing keys, and so on the extra keys of ``CC`` and ``BCC`` too."""


class ExchangeEntry:
    """One exchange as data: its routing table, its alternate, which destinations it watches, its figures."""

    __slots__ = ("alternate", "bound", "keyed", "published", "ref", "table", "unroutable")

    def __init__(self, ref: ActorRef, table: RoutingTable[ActorRef], alternate: ActorRef | None) -> None:
        self.ref = ref
        """The exchange."""
        self.table = table
        """Its bindings."""
        self.keyed = table.kind in _KEYED_KINDS
        """Whether its kind matches routing keys (so CC and BCC keys count)."""
        self.alternate = alternate
        """Where what its own bindings match nothing of goes, ``None`` for nowhere."""
        self.bound: dict[ActorRef, int] = {}
        """Destination -> number of its bindings (the exchange watches it while it has any)."""
        self.published = 0
        """Messages published to it (not counting those routed through it from another exchange)."""
        self.unroutable = 0
        """Of those, the ones that reached no queue or actor."""

    @property
    def kind(self) -> str:
        """``"direct"``, ``"fanout"``, ``"topic"`` or ``"headers"``."""
        return self.table.kind

    def bind(self, routing_key: str, arguments: Mapping[str, Any] | None, destination: ActorRef) -> bool:
        """Add a binding; ``True`` if it is new. Raises :class:`ValueError` for a bad key or arguments."""
        new = self.table.bind(routing_key, arguments, destination)
        if new:
            self.bound[destination] = self.bound.get(destination, 0) + 1
        return new

    def unbind(self, routing_key: str, arguments: Mapping[str, Any] | None, destination: ActorRef) -> bool:
        """Remove a binding; ``True`` if it existed. Raises :class:`ValueError` for a bad key or arguments."""
        removed = self.table.unbind(routing_key, arguments, destination)
        if removed:
            count = self.bound[destination] - 1
            if count:
                self.bound[destination] = count
            else:
                del self.bound[destination]
        return removed

    def remove_destination(self, destination: ActorRef) -> None:
        """Remove every binding of ``destination`` (it stopped)."""
        self.table.remove_destination(destination)
        self.bound.pop(destination, None)

    def __repr__(self) -> str:
        return f"<ExchangeEntry {self.ref!r} {self.table.kind} bindings={len(self.table)}>"


class Topology:
    """The exchanges and queues of one actor system, by ref; see the module docstring."""

    __slots__ = ("_batches", "_exchanges", "_kinds", "_queues", "_until_sweep")

    def __init__(self) -> None:
        self._batches = 0
        self._kinds: dict[ActorRef, RouterKind] = {}
        self._exchanges: dict[ActorRef, ExchangeEntry] = {}
        self._queues: dict[ActorRef, QueueState] = {}
        self._until_sweep = 0

    # -- declaring -----------------------------------------------------------------------------------------

    def declare_exchange(self, ref: ActorRef, table: RoutingTable[ActorRef],
                         alternate: ActorRef | None) -> ExchangeEntry:
        """The entry of the exchange ``ref``: the one it had (it restarted), else a new one with ``table``.

        A new exchange's ``alternate`` must be an exchange of this topology (:class:`ValueError` otherwise); a
        restarted exchange keeps its entry as it was, whatever became of its alternate since.
        """
        entry = self._exchanges.get(ref)
        if entry is not None:
            return entry
        if alternate is not None and self._kinds.get(alternate) != "exchange":
            raise ValueError(f"alternate={alternate!r} is not an Exchange; an alternate exchange must be one")
        self._declared()
        entry = self._exchanges[ref] = ExchangeEntry(ref, table, alternate)
        self._kinds[ref] = "exchange"
        return entry

    def new_batch(self) -> int:
        """A fresh transaction id, unique in this topology's system."""
        self._batches += 1
        return self._batches

    @staticmethod
    def current() -> Topology | None:
        """The topology of the actor system the calling task runs in (an actor's, or the one opened by the
        task), ``None`` outside any system."""
        system = current_system.get()
        return None if system is None else topology(system)

    def note_settlement(self, queue: ActorRef, tag: int, requeue: bool | None) -> None:
        """A consumer settles the delivery ``tag`` of ``queue`` (see :meth:`QueueState.note_settlement`).

        Synchronous, before the settlement message reaches the queue: so that a durable queue that stops first
        still honours it. Nothing happens for a ref that is not a queue of this topology.
        """
        state = self._queues.get(queue)
        if state is not None:
            state.note_settlement(tag, requeue)

    def queue_state(self, ref: ActorRef) -> QueueState | None:
        """The state the queue ``ref`` left when it last stopped or restarted, ``None`` for a new queue."""
        return self._queues.get(ref)

    def declare_queue(self, ref: ActorRef, state: QueueState) -> None:
        """Keep ``state`` as the state of the queue ``ref`` (new, or replacing the one it had)."""
        if ref not in self._queues:
            self._declared()
        self._queues[ref] = state
        self._kinds[ref] = "queue"

    def _declared(self) -> None:
        """Sweep the stopped refs out, once every so many declarations (amortized O(1) each)."""
        self._until_sweep -= 1
        if self._until_sweep > 0:
            return
        for ref in [ref for ref in self._kinds if ref.is_stopped]:
            self._drop(ref)
        self._until_sweep = max(1, len(self._kinds) // 2)

    def _drop(self, ref: ActorRef) -> None:
        self._kinds.pop(ref, None)
        self._exchanges.pop(ref, None)
        self._queues.pop(ref, None)

    # -- reading -------------------------------------------------------------------------------------------

    def kind(self, ref: ActorRef) -> RouterKind | None:
        """``"exchange"``, ``"queue"`` or ``None`` (any other actor, or one swept after it stopped)."""
        return self._kinds.get(ref)

    @property
    def kinds(self) -> Mapping[ActorRef, RouterKind]:
        """Every known exchange and queue ref and its kind (the live mapping, for the sending loops)."""
        return self._kinds

    def exchange(self, ref: ActorRef) -> ExchangeEntry | None:
        """The entry of the exchange ``ref``, or ``None``."""
        return self._exchanges.get(ref)

    def route(self, source: ExchangeEntry, routing_key: str, headers: Mapping[str, Any] | None,
              extra_keys: tuple[str, ...] = ()) -> set[ActorRef]:
        """The final destinations (queues and actors, never exchanges) of a message published to ``source``.

        Synchronous and side-effect free but for dropping stopped exchanges: walks ``source``'s table, the
        tables of the exchanges it reaches (each once, so cycles are harmless) and alternates where a table
        matched nothing. Destinations that have stopped are skipped as if unbound. ``extra_keys`` (a publish's
        CC and BCC keys) are matched as well as ``routing_key`` by every keyed table on the way; an exchange's
        own matches are the union over all the keys (so its alternate is used only when no key matched).
        ``routing_key``, ``headers`` and ``extra_keys`` must have been validated.
        """
        if extra_keys:
            extra_keys = tuple(key for key in dict.fromkeys(extra_keys) if key != routing_key)
        kinds = self._kinds
        exchanges = self._exchanges
        finals: set[ActorRef] = set()
        visited: set[ActorRef] | None = None
        pending: list[ExchangeEntry] = []
        entry = source
        while True:
            live = False
            table = entry.table
            matched = table.match(routing_key, headers)
            if extra_keys and entry.keyed:
                for key in extra_keys:
                    matched |= table.match(key, headers)
            for destination in matched:
                if destination.is_stopped:
                    if destination in kinds:
                        self._drop(destination)
                    continue
                live = True
                if kinds.get(destination) != "exchange":
                    finals.add(destination)
                    continue
                if visited is None:
                    visited = {source.ref}
                if destination not in visited:
                    visited.add(destination)
                    inner = exchanges.get(destination)
                    if inner is not None:
                        pending.append(inner)
            alternate = entry.alternate
            if not live and alternate is not None:
                if visited is None:
                    visited = {source.ref}
                if alternate not in visited:
                    visited.add(alternate)
                    if alternate.is_stopped:
                        self._drop(alternate)
                    else:
                        inner = exchanges.get(alternate)
                        if inner is not None:
                            pending.append(inner)
            if not pending:
                return finals
            entry = pending.pop()

    def __repr__(self) -> str:
        return f"<Topology exchanges={len(self._exchanges)} queues={len(self._queues)}>"


def topology(system: ActorSystem) -> Topology:
    """The :class:`Topology` of ``system``, kept on the system itself (made on first use)."""
    return system.extension(Topology, Topology)
