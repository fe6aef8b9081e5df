"""The actor system: the root of the supervision tree, the nursery every runner lives in, and the registry."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Literal, TypeVar, overload

import trio

from ._address import Address
from ._broker import BrokerSettings
from ._calls import Methods
from ._cell import ActorBase, Cell
from ._dispatcher import Dispatcher, current_actor, current_system
from ._envelope import Stop
from ._events import EventStream
from ._exceptions import ActorFailed
from ._figures import (
    FIGURES_OFF,
    PENDING,
    RANKABLE,
    Figures,
    Metrics,
    StatisticsRows,
    SystemStatistics,
    class_name,
)
from ._futures import Correlations, Future
from ._lifecycle import RUNNING, STOPPED, STOPPING
from ._link import Link
from ._mailbox import UNBOUNDED, Mailbox
from ._messages import DeadLetter, LifecycleEvent, LifecycleKind
from ._node import Cluster, ClusterStatistics, Node
from ._ref import ActorRef, Unreachable
from ._remote import Published
from ._show import show
from ._spawn import SpawnSpec
from ._supervision import OneForOne, Restart, Strategy
from ._timers import TimerService, positive_seconds
from .amqp import hide_password

__all__ = ["ActorSystem"]

T = TypeVar("T")
AnyActor = TypeVar("AnyActor", bound=ActorBase)

logger = logging.getLogger("actors")
logger.addHandler(logging.NullHandler())


class _Guardian(ActorBase):
    """The root actor: it has no behaviour of its own; its children are the top-level actors."""

    async def receive(self, message: Any) -> None:
        raise TypeError(f"the root of the actor tree takes no messages; got {show(message)}")


_TRANSIENT: Final = Restart.TRANSIENT
"""The default restart type, looked up once: an enum member read from its class costs ten times a global."""

TICK_SHARE: Final = 0.1
"""The most of the loop's time the metrics tick takes: a pass over the measured actors that takes longer than this
share of a tick makes the next ticks that much rarer (each sample then stands for that many ticks)."""

STATISTICS_SLICE: Final = 500
"""Actors :meth:`ActorSystem.gather_statistics` reads, and the metrics tick samples, between two checkpoints
(a few milliseconds of work)."""


_QueueConsumer = Callable[["ActorSystem", ActorRef, int], AbstractAsyncContextManager[AsyncIterator[Any]]]
"""How :meth:`ActorSystem.consume` takes a queue's deliveries: ``consumer(system, queue, prefetch)``."""

_QUEUE_CONSUMERS: list[_QueueConsumer] = []


def provide_queue_consumer(consumer: _QueueConsumer) -> None:
    """Install how :meth:`ActorSystem.consume` consumes a queue. The queue protocol belongs to the queue actors
    built on the runtime (``actors.Queue``), which install it when imported: the runtime never imports them."""
    _QUEUE_CONSUMERS.append(consumer)


class ActorSystem:
    """An actor system: ``async with ActorSystem() as system:`` opens it in the current trio task.

    The top-level actors are children of a root guardian that supervises them with ``supervision`` (default
    ``OneForOne(max_restarts=3, within=5.0)``). Leaving the block stops everything gracefully: children before
    parents, siblings in reverse start order, ``on_stop`` hooks included, within ``shutdown_timeout`` seconds
    (after which what is left is cancelled). A failure escalated past the top cancels the block's body, shuts the
    tree down in order, and leaves the ``async with`` as :class:`~runtime.ActorFailed` whose ``.cause`` is the
    original exception.

    Whatever an actor's code raises is a failure of that actor, handled by its supervisor: every ``Exception``, and
    also a stray ``trio.Cancelled`` it raised itself, ``GeneratorExit`` or a ``BaseExceptionGroup``. Only
    ``KeyboardInterrupt`` and ``SystemExit`` end the system: they stop the runners at once, skip the orderly
    shutdown, and leave ``async with`` inside a ``BaseExceptionGroup``, as trio nurseries raise them.

    ``workers=N`` starts N worker processes (nodes) on this machine. ``broker="amqp://user:password@host/vhost"``
    with ``secret=`` (bytes, at least 16, or the path of a file holding them) makes the system one node of the
    cluster called ``name`` on that RabbitMQ broker: every system opened with the same name, broker and secret is
    a node of it, listed in :attr:`nodes` with kind ``"peer"`` while it is alive. ``node_name`` names this node
    (default: host name and pid on a broker); it must be unique among the live nodes of the cluster
    (:class:`~runtime.NameTaken` otherwise). Opening the block then connects to the broker: a refused login is
    :class:`~runtime.NotAuthorized`, an unreachable broker a ``ConnectionLost``. The two combine: a node's workers
    are named under it (``node.w1``, ...) and its peers reach their actors through it; a peer lists them in
    :attr:`nodes` with kind ``"peer"`` and ``head`` naming the node.
    """

    def __init__(self, name: str = "app", *, supervision: Strategy | None = None,
                 metrics: Metrics | None = None, mailbox: Mailbox | None = None,
                 shutdown_timeout: float = 10.0, batch: int = 256, seed: int | None = None, workers: int = 0,
                 node_name: str | None = None, broker: str | None = None,
                 secret: bytes | str | os.PathLike[str] | None = None, _head: tuple[str, Link] | None = None,
                 _heartbeat: float = 1.0, _backlog: int = 100_000) -> None:
        if supervision is not None and not isinstance(supervision, Strategy):
            raise TypeError(f"supervision={supervision!r} must be a strategy such as OneForOne()")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch={batch!r} must be a positive integer")
        shutdown_timeout = positive_seconds("shutdown_timeout", shutdown_timeout)
        self.name = name
        """The system's name."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers={workers!r} must be a whole number, 0 (one process) or more")
        if node_name is not None and (not isinstance(node_name, str) or not node_name):
            raise ValueError(f"node_name={node_name!r} must be a non-empty string")
        settings = _broker_settings(name, broker, secret, node_name, _heartbeat, _backlog)
        if settings is not None and node_name is None:
            node_name = f"{socket.gethostname()}.{os.getpid()}"
        self.node_id = node_name or f"{name}.{secrets.token_hex(6)}"
        """This system's node id: the ``node`` of every address it hands out, unique to this run."""
        self.broker: str | None = None if settings is None else settings.url
        """The broker URL this system's nodes meet on (``broker=``), or ``None``: what ``Exchange(...,
        broker=True)`` and ``Queue(..., broker=True)`` connect to."""
        self.cluster: Cluster | None = None
        """The other nodes: worker processes (``workers=N``), the head for a worker, or the peers on a broker;
        ``None`` on one node."""
        if workers or _head is not None or settings is not None:
            head, link = _head if _head is not None else (None, None)
            self.cluster = Cluster(self, workers=workers, head=head, link=link, broker=settings)
        self._cancel_scope: trio.CancelScope | None = None
        self.default_strategy: Strategy = supervision or OneForOne()
        self.metrics = metrics or Metrics()
        """How queue figures are measured."""
        self.default_mailbox = mailbox or UNBOUNDED
        self.sample_mask = self.metrics.sample_every - 1 if self.metrics.enabled else -1
        self.shutdown_timeout = shutdown_timeout
        self.events = EventStream()
        """The event stream: dead letters and lifecycle events."""
        self.correlations = Correlations()
        self.methods = Methods()
        """Which methods typed calls may run on which actor classes, learnt as calls are made."""
        self.timer_service = TimerService()
        self.random: Callable[[], float] = random.Random(seed).random
        self.auto_names = 0
        self.uids = itertools.count(1)
        """The actor ids of this node, never reused."""
        self._unreachable: dict[Address, ActorRef] = {}
        self._plain_specs: dict[type, SpawnSpec] = {}
        self._class_names: dict[type | None, str] = {}
        self._solo = Node(self.node_id, "head", os.getpid())
        self._system_token: Any = None
        self._actor_token: Any = None
        self._batch = batch
        self._dead_letters = 0
        self._timer_generation = 0
        self._measured: dict[Cell, tuple[float, int] | None] = {}
        """The cells the metrics tick visits; for those whose figures are pending, when and at which arrival count
        they were first scheduled."""
        self._extensions: dict[object, Any] = {}
        self._measure_wakeup: trio.Event | None = None
        self._failure: ActorFailed | None = None
        self._running = False
        self._host_ended = False
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._body_scope: trio.CancelScope | None = None
        self.dispatcher: Dispatcher = None  # type: ignore[assignment]
        self.now: Callable[[], float] = trio.current_time
        self._guardian: Cell | None = None

    # -- the context manager ---------------------------------------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        if self._running or self._guardian is not None:
            raise RuntimeError(f"{self!r} can be entered only once")
        self.now = trio.lowlevel.current_clock().current_time
        self._system_token = current_system.set(self)
        # Outside any actor, say so in the caller's context rather than leave the variable unset: CPython caches
        # a context variable's value, not its absence, so every tell from the caller would look it up otherwise.
        self._actor_token = current_actor.set(None) if current_actor.get() is None else None
        self._nursery_cm = trio.open_nursery()
        host = await self._nursery_cm.__aenter__()
        # Not host.start(): in an already cancelled caller, start() would wait for the shielded host to exit.
        ready = trio.Event()
        host.start_soon(self._host, ready)
        with trio.CancelScope(shield=True):
            await ready.wait()
        nursery = self._nursery
        assert nursery is not None
        self.dispatcher = Dispatcher(self, nursery, batch=self._batch)
        spec = SpawnSpec.of(_Guardian, restart=Restart.PERMANENT, supervision=self.default_strategy)
        guardian = self._guardian = Cell(self, None, "", spec, next(self.uids))
        guardian._build()
        guardian.state = RUNNING
        nursery.start_soon(self.timer_service.run)
        nursery.start_soon(self._measure_loop)
        self._running = True
        if self.cluster is not None:
            try:
                await self.cluster.start(nursery)
            except BaseException:
                self.cluster.kill_all()
                await self.cluster.reap()
                self._running = False
                nursery.cancel_scope.cancel()
                await self._nursery_cm.__aexit__(None, None, None)
                self._leave_context()
                raise
        self._body_scope = trio.CancelScope()
        self._body_scope.__enter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: Any) -> bool:
        assert self._body_scope is not None
        assert self._nursery is not None
        suppressed = self._body_scope.__exit__(exc_type, exc, tb)
        if suppressed:
            exc_type = exc = tb = None
        try:
            if self._host_ended:  # a KeyboardInterrupt or SystemExit ended the runners: nothing can stop in order
                logger.error("actor system %r lost its runners; skipping the orderly shutdown", self.name)
            else:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self.shutdown_timeout
                    await self.guardian.terminate(None)
                    if self.cluster is not None:
                        await self.cluster.stop()
                if scope.cancelled_caught:
                    logger.error("actor system %r did not shut down within %ss; cancelling what is left",
                                 self.name, self.shutdown_timeout)
        finally:
            self._running = False
            if self.cluster is not None:
                self.cluster.kill_all()
                await self.cluster.reap()
            self._nursery.cancel_scope.cancel()
            await self._nursery_cm.__aexit__(None, None, None)
            self._leave_context()
        if self._failure is not None:
            if exc is not None and not isinstance(exc, trio.Cancelled):
                raise self._failure from exc
            raise self._failure
        return bool(suppressed)

    def _leave_context(self) -> None:
        """Undo what entering set in the caller's context."""
        current_system.reset(self._system_token)
        if self._actor_token is not None:
            current_actor.reset(self._actor_token)

    async def _host(self, ready: trio.Event) -> None:
        """Own the nursery of the runners, the timer service and the figures, shielded from the caller.

        Actors' hooks run in runner tasks: if those inherited a cancellation of the scope around
        ``async with ActorSystem()``, leaving the block that way would skip ``on_stop`` hooks. Only
        ``__aexit__`` cancels this nursery, once the tree has stopped or its shutdown ran out of time.

        The one error that ends it early is a ``KeyboardInterrupt`` or ``SystemExit`` raised in an actor: it
        ends the runners and leaves ``async with`` at once.
        """
        try:
            with trio.CancelScope(shield=True):  # before the first checkpoint: a cancelled caller cannot reach us
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    ready.set()
                    await trio.sleep_forever()
        finally:
            self._host_ended = True

    def fail(self, cell: Cell, error: BaseException) -> None:
        """A failure escalated past the top: remember it and cancel the body so that the system shuts down."""
        if self._failure is None:
            where = "the root" if cell is self._guardian else repr(cell.path)
            self._failure = ActorFailed(
                f"actor system {self.name!r} failed: {show(error)} escalated past {where}", error)
            logger.error("actor system %r failed", self.name, exc_info=error)
        if self._body_scope is not None:
            self._body_scope.cancel()

    # -- public operations -----------------------------------------------------------------------------------

    async def spawn(self, factory: Callable[..., AnyActor], *args: Any, name: str | None = None,
                    mailbox: Mailbox | None = None, restart: Restart | str = Restart.TRANSIENT,
                    supervision: Strategy | None = None, stop_timeout: float | None = None, node: object = None,
                    **kwargs: Any) -> ActorRef[AnyActor]:
        """Start a top-level actor and return its ref once its ``on_start`` has finished.

        ``factory`` is an Actor subclass or any callable returning an Actor; ``args`` and keyword arguments
        other than the spawn options go to it. Spawn options: ``name`` (unique among siblings; raises
        :class:`~runtime.NameTaken`), ``mailbox`` (a :class:`Mailbox`), ``restart`` (``"transient"`` by
        default, ``"permanent"``, ``"temporary"``) and ``supervision`` (the strategy the actor applies to its
        own children), and ``stop_timeout`` (seconds a stop waits for the message being handled before it
        cancels that handler, whose ask then raises :class:`~runtime.ActorStopped`; ``None``, the default, waits
        as long as it takes, and costs nothing per message). Raises :class:`TypeError` for a factory that is
        not callable or does not return an
        Actor, and :class:`~runtime.ActorFailed` if the factory or ``on_start`` raises (nothing is registered
        then). A cancellation point; it yields to other tasks only while ``on_start`` blocks.

        To a type checker the ref is an ``ActorRef[C]`` for a factory that makes ``C`` actors, so that
        ``ref.call(C.method, ...)`` is checked.
        """
        return await self.guardian.spawn_child(
            self.make_spec(factory, args, kwargs, name, mailbox, restart, supervision, stop_timeout, node))

    def make_spec(self, factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  name: str | None, mailbox: Mailbox | None, restart: Restart | str, supervision: Strategy | None,
                  stop_timeout: float | None, node: object = None) -> SpawnSpec:
        """``SpawnSpec.of`` for ``spawn``: the spec of a spawn of an actor class with no arguments and no options,
        the commonest spawn of all, is made once per class and shared (it is immutable)."""
        if (args or kwargs or name is not None or mailbox is not None or restart is not _TRANSIENT
                or supervision is not None or stop_timeout is not None or node is not None
                or not isinstance(factory, type)):
            return SpawnSpec.of(factory, args, kwargs, name=name, mailbox=mailbox, restart=restart,
                                supervision=supervision, stop_timeout=stop_timeout, node=node)
        spec = self._plain_specs.get(factory)
        if spec is None:
            spec = self._plain_specs[factory] = SpawnSpec.of(factory)
        return spec

    def class_name(self, cls: type | None) -> str:
        """``module.QualifiedName`` of an actor class (:func:`~runtime._figures.class_name`), made once a class
        and shared by its actors."""
        name = self._class_names.get(cls)
        if name is None:
            name = self._class_names[cls] = class_name(cls)
        return name

    def lookup(self, name: str) -> ActorRef | None:
        """The live actor at ``name`` (a path such as ``"parent/child"`` for nested actors), else ``None``."""
        cell = self._find(name)
        return None if cell is None or cell.state >= STOPPING else cell.ref

    def _find(self, path: str) -> Cell | None:
        cell: Cell | None = self.guardian
        for part in path.split("/"):
            if cell is None:
                break
            cell = cell.child(part)
        if cell is None and self.cluster is not None:  # under an actor this worker runs for a parent elsewhere
            return self.cluster.find_hosted(path)
        return cell

    async def resolve(self, node: Node | str, path: str) -> ActorRef | None:
        """The ref of the actor registered at ``path`` on ``node`` (a :class:`Node` or its name), or ``None``.

        ``lookup`` for any node: on another node it asks that node (so it waits for the answer). A node that is
        lost, or not a node of this system, has nothing registered: ``None``.
        """
        name = node.name if isinstance(node, Node) else node
        if name == self.node_id or self.cluster is None:
            await trio.lowlevel.checkpoint()
            return self.lookup(path) if name == self.node_id else None
        if name not in self.cluster.nodes and self.cluster.head is None:
            await trio.lowlevel.checkpoint()
            return None
        return await self.cluster.lookup(name, path)

    async def wait_node(self, node: str) -> Node:
        """Wait until a live node called ``node`` is part of the system (a peer joining the cluster, say) and
        return it; at once if it is. Bound the wait with ``trio.fail_after``; cancelling it changes nothing."""
        if node == self.node_id:
            await trio.lowlevel.checkpoint()
            return self.node
        if self.cluster is None:
            raise RuntimeError(f"{self!r} is a single node: no node {node!r} can join it; "
                               "give it broker= and secret= to make it a node of a cluster")
        return await self.cluster.wait_node(node)

    def ref_at(self, address: Address) -> ActorRef:
        """The ref at ``address``: the live actor's own ref, or (for an address that reaches nothing) a ref whose
        tells are dead letters and whose asks raise :class:`~runtime.ActorStopped`; the same object every time."""
        if address.node == self.node_id:
            cell = self._find(address.path) if address.path else self._guardian
            if isinstance(cell, Cell) and cell.uid == address.uid and not cell.is_stopped:
                return cell.ref
        elif self.cluster is not None:
            remote = self.cluster.resolve(address)
            if remote is not None:
                return remote
        ref = self._unreachable.get(address)
        if ref is None:
            ref = self._unreachable[address] = Unreachable(self, address).ref
        return ref


    async def stop(self, ref: ActorRef) -> None:
        """Stop ``ref`` and wait until it and its children have stopped; its name is free again on return.

        Overtakes the messages already queued, which become dead letters. Stopping a stopped actor is a no-op.
        Cancelling the wait does not cancel the stop.
        """
        if not isinstance(ref, ActorRef):
            raise TypeError(f"stop() takes an ActorRef, not {ref!r}")
        cell = ref._target
        if not isinstance(cell, Cell):
            handle = None if self.cluster is None else self.cluster.handle_of(ref)
            if handle is None:  # nothing lives at that address, or nothing here supervises it
                if not ref.is_stopped:
                    ref._target.deliver_system(Stop(None, "external"))
                await trio.lowlevel.checkpoint()
                return
            await trio.lowlevel.checkpoint_if_cancelled()
            handle.request_stop(None, "external")
            await handle.wait_stopped()
            return
        current = current_actor.get()
        if current is not None and isinstance(current._target, Cell) and current._target.is_within(cell):
            raise RuntimeError(f"{ref!r} cannot wait for its own stop from inside itself or a descendant; "
                               "call self.stop() in the actor instead")
        await trio.lowlevel.checkpoint_if_cancelled()
        cell.request_stop(None, "external")
        await cell.wait_stopped()

    def statistics(self, path: str | ActorRef | None = None, *, top: int | None = None,
                   by: str = "mailbox_length") -> SystemStatistics:
        """A frozen snapshot: dead letters, pending asks, and every live actor's figures by path.

        ``path`` (a path or a ref) keeps only that actor and its descendants, the subtree an autoscaling pool or a
        dashboard of one service looks at, and walks only that subtree. ``top=K`` keeps the ``K`` actors with the
        largest ``by`` figure (a numeric field of :class:`~runtime.ActorStatistics`: ``"mailbox_length"``,
        ``"arrival_rate"``, ``"mean_sojourn"``, ``"utilization"``, ``"restarts"``, ...), largest first. Actors on
        this system's workers are included, with the figures their node last reported (at most a second old);
        peers' are not (``await gather_statistics(nodes="all")`` asks them).
        """
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
            raise ValueError(f"statistics(top={top!r}): top must be an int of at least 1")
        if by not in RANKABLE:
            raise ValueError(f"statistics(by={by!r}): by must be one of {', '.join(sorted(RANKABLE))}")
        path = self._statistics_path(path)
        rows: dict[str, Any] = {}
        now = self.now()
        if top is not None and by == "mailbox_length":
            # Ranked by what each cell knows as it is: only the top K are captured (in the same instant, so the
            # snapshot is the one a capture of every actor would have given).
            cells: dict[str, Any] = {}
            self._reader(path).read(cells, now, -1, capture=False)
            chosen = cells.items() if len(cells) <= top else heapq.nlargest(top, cells.items(), key=_queued)
            rows = {at: cell.captured(now) for at, cell in chosen}
        else:
            self._reader(path).read(rows, now, -1)
        stats = self._snapshot(path, StatisticsRows(rows, now, self.node_id))
        return stats if top is None else stats.top(top, by)

    @overload
    async def gather_statistics(self, path: str | ActorRef | None = None, *,
                                nodes: Literal["system"] = "system") -> SystemStatistics: ...

    @overload
    async def gather_statistics(self, path: str | ActorRef | None = None, *,
                                nodes: Literal["all"]) -> ClusterStatistics: ...

    async def gather_statistics(self, path: str | ActorRef | None = None, *,
                                nodes: Literal["system", "all"] = "system") -> SystemStatistics:
        """:meth:`statistics` read in slices, with a checkpoint every ``STATISTICS_SLICE`` actors, so that a
        large system keeps handling messages while it is read (the metrics endpoint reads it this way).

        Each actor's figures are of one instant, as in :meth:`statistics`; different actors' are of instants up
        to the whole read apart, as on any scrape. An actor that stops during the read is left out, one spawned
        during it may be. Cancelling it abandons the read; nothing else is affected.

        ``nodes="all"`` adds the actors of every live peer on the broker (each peer reads its own figures and
        sends them), keyed ``path@peer``, and returns a :class:`~runtime.ClusterStatistics`. Peers are asked
        together, and one that has not answered within the silence limit (the heartbeat interval times
        ``dead_after``) is left out and named in ``missing`` with why, rather than waited for.
        """
        if nodes not in ("system", "all"):
            raise ValueError(f"gather_statistics(nodes={nodes!r}): nodes must be 'system' (this system: this node "
                             "and its workers) or 'all' (its peers too)")
        path = self._statistics_path(path)
        if nodes == "all":
            peers: tuple[dict[str, Any], dict[str, str]] = ({}, {})
            if self.cluster is not None:
                peers = await self.cluster.peer_statistics(path)
            ours = await self.gather_statistics(path)
            everyone: dict[str, Any] = dict(ours.actors.rows()) if isinstance(ours.actors, StatisticsRows) \
                else dict(ours.actors)
            everyone.update(peers[0])
            return ClusterStatistics(dead_letters=ours.dead_letters, actors=StatisticsRows(everyone),
                                     pending_asks=ours.pending_asks, missing=peers[1])
        node = self.node_id
        rows: dict[str, Any] = {}
        reader = self._reader(path)
        taken = STATISTICS_SLICE
        while taken == STATISTICS_SLICE:
            # Each slice is of its own instant, which its captures carry (see Captured).
            now = self.now()
            instant = (now,)
            captured: dict[str, Any] = {}
            taken = reader.read(captured, now, STATISTICS_SLICE)
            rows.update((at, value + instant) for at, value in captured.items())
            await trio.lowlevel.checkpoint()
        return self._snapshot(path, StatisticsRows(rows, self.now(), node))

    def _statistics_path(self, path: str | ActorRef | None) -> str | None:
        if isinstance(path, ActorRef):
            return path.path
        if path is not None and not isinstance(path, str):
            raise TypeError(f"statistics(path={path!r}) takes a path or an ActorRef")
        return path

    def _reader(self, path: str | None) -> _TreeReader:
        """A reader of the live local actors at and under ``path`` (all of them for ``None``)."""
        if path is None:
            roots: list[Any] = self._guardian.children if self._guardian is not None else []
            return _TreeReader("", roots)
        found = self._find(path) if path else None
        return _TreeReader(path.rpartition("/")[0] + "/" if "/" in path else "", [] if found is None else [found])

    def _snapshot(self, path: str | None, actors: StatisticsRows) -> SystemStatistics:
        """The statistics of the local ``actors`` and of the actors under ``path`` on other nodes."""
        rows = actors._rows
        if self.cluster is not None:
            within = None if path is None else (path, path + "/")
            for figures in self.cluster.remote_statistics.values():
                if within is None:
                    rows.update(figures)
                else:
                    rows.update((key, value) for key, value in figures.items()
                                if key == within[0] or key.startswith(within[1]))
        return SystemStatistics(dead_letters=self._dead_letters, actors=actors, pending_asks=len(self.correlations))

    def consume(self, queue: ActorRef, *, prefetch: int = 10) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """Take a queue's deliveries in plain trio code: ``async with system.consume(queue, prefetch=N) as
        deliveries: async for delivery in deliveries: ...; delivery.ack()``.

        The block is a consumer of ``queue`` (a ``Queue`` actor, embedded or broker-backed) holding at most
        ``prefetch`` unsettled deliveries; settle each with ``ack()``, ``nack(requeue=...)`` or ``reject()``. When
        the block exits, however it exits (an error, a cancellation, a ``break``), the deliveries it did not
        settle go back to the queue for other consumers. The iteration ends when the queue stops.
        """
        if not _QUEUE_CONSUMERS:
            raise RuntimeError("no queue protocol is installed: import actors, whose Queue provides it")
        return _QUEUE_CONSUMERS[-1](self, queue, prefetch)

    def extension(self, key: object, factory: Callable[[], T]) -> T:
        """Per-system state for code built on the runtime, made by ``factory()`` on first use under ``key``.

        The built-in exchanges and queues keep their shared directory here, so that state lives on the system
        and goes away with it.
        """
        try:
            return self._extensions[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._extensions[key] = factory()
            return value

    async def start_service(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Start ``async_fn(*args)`` in the system's nursery as ``nursery.start`` does, and return what it passed
        to ``task_status.started()``.

        For engine services that actors share (a broker connection, say): the task outlives the actor that
        started it, and is cancelled when the system closes, after every actor has stopped. The service should
        end on its own once no actor needs it.
        """
        if self._nursery is None or not self._running:
            raise RuntimeError(f"{self!r} is not running; open it with `async with` first")
        return await self._nursery.start(async_fn, *args)

    @property
    def top_level(self) -> list[ActorRef]:
        """The live top-level actors, in start order."""
        return [cell.ref for cell in self.guardian.children]

    def __repr__(self) -> str:
        state = "running" if self._running else "closed"
        count = 0 if self._guardian is None else len(self._guardian.children)
        return f"<ActorSystem {self.name!r} {state} top_level={count} dead_letters={self._dead_letters}>"

    # -- services for cells ----------------------------------------------------------------------------------

    @property
    def guardian(self) -> Cell:
        """The root cell; raises :class:`RuntimeError` outside ``async with``."""
        guardian = self._guardian
        if guardian is None or not self._running:
            raise RuntimeError(f"{self!r} is not running; use it inside 'async with ActorSystem() as system:'")
        return guardian

    def dead_letter(self, message: object, sender: ActorRef | None, recipient: ActorRef | None,
                    reason: str) -> None:
        """Count an undeliverable message and publish it as a :class:`DeadLetter` (a worker's, on the head)."""
        cluster = self.cluster
        if cluster is not None and cluster.head is not None:
            if not isinstance(message, DeadLetter):  # the head counts and publishes it
                cluster.send(cluster.head, Published(DeadLetter(message, sender, recipient, reason)))
            return
        self._dead_letters += 1
        if self.events and not isinstance(message, DeadLetter):
            self.events.publish(DeadLetter(message, sender, recipient, reason))

    def publish(self, event: object) -> None:
        """Publish ``event`` on the event stream (a dead letter is counted too); a worker sends it to the head."""
        if isinstance(event, DeadLetter):
            self._dead_letters += 1
        cluster = self.cluster
        if cluster is not None and cluster.head is not None:
            cluster.send(cluster.head, Published(event))
        elif self.events:
            self.events.publish(event)

    def lifecycle(self, ref: ActorRef, kind: LifecycleKind, error: BaseException | None) -> None:
        """Publish a :class:`LifecycleEvent` if anyone listens."""
        if self._guardian is not None and ref is self._guardian.ref:
            return
        if self.cluster is not None and self.cluster.head is not None:
            self.publish(LifecycleEvent(ref, kind, error))
        elif self.events:
            self.events.publish(LifecycleEvent(ref, kind, error))

    @property
    def running(self) -> bool:
        """Whether the system is open (inside ``async with``)."""
        return self._running

    @property
    def node(self) -> Node:
        """The node this code runs on."""
        if self.cluster is None:
            return self._solo
        return self.cluster.nodes[self.node_id]

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node of the system, the lost ones included (``alive=False``): this one first, then the workers or
        the peers in the order they joined."""
        if self.cluster is None:
            return (self._solo,)
        return tuple(self.cluster.nodes.values())

    def node_of(self, node_id: str) -> Node:
        """The :class:`Node` whose id is ``node_id`` (an unknown one shows as a lost peer)."""
        if node_id == self.node_id:
            return self.node
        node = None if self.cluster is None else self.cluster.nodes.get(node_id)
        return node if node is not None else Node(node_id, "peer", 0, alive=False)

    def _end_body(self) -> None:
        """End the body of ``async with`` (a worker whose head is gone shuts down this way)."""
        if self._body_scope is not None:
            self._body_scope.cancel()

    def next_timer_generation(self) -> int:
        """A number that tells one start of a timer from every other."""
        self._timer_generation += 1
        return self._timer_generation

    def expire_at(self, future: Future[Any], timeout: float, request: object) -> None:
        """Fail ``future`` with :class:`AskTimeout` after ``timeout`` seconds unless answered first."""
        from ._exceptions import AskTimeout

        def expire() -> None:
            if not future.done():
                future.set_exception(AskTimeout(
                    f"{future._target!r} did not answer {show(request)} within {timeout}s"
                    f" (request #{future.correlation_id})"))

        self.timer_service.call_at(trio.current_time() + timeout, expire)

    def measure(self, cell: Cell, arrivals: int, *, pending: bool = True) -> None:
        """Keep figures for ``cell``: when it is first scheduled, and when it is scheduled again after parking.

        The first time, the figures are *pending* (:data:`~runtime._figures.PENDING`), made by the next metrics
        tick, unless ``pending`` is false: a timed message (``Cell._stamp``) needs them at once.
        """
        if not self.metrics.enabled:
            cell.figures = FIGURES_OFF
            return
        figures = cell.figures
        if figures is None:
            if pending:
                cell.figures = PENDING
                self._measured[cell] = (self.now(), arrivals)
            else:
                cell.figures = Figures(self.now(), arrivals, self.metrics)
                self._measured[cell] = None
        elif figures is PENDING:  # and a timed message needs them now: it is measured already
            cell.figures = self.made_figures(cell)
            return
        else:
            figures.resume(self.now(), arrivals)
            self._measured[cell] = None
        if self._measure_wakeup is not None:
            self._measure_wakeup.set()

    def made_figures(self, cell: Cell) -> Figures:
        """The figures of ``cell``, pending until now, as they would have been made when it was first scheduled."""
        measured = self._measured
        since, arrivals = measured[cell]  # type: ignore[misc]
        measured[cell] = None
        return Figures(since, arrivals, self.metrics)

    def forget(self, cell: Cell) -> None:
        """A cell stopped: stop keeping its figures, and stop finding it for other nodes."""
        self._measured.pop(cell, None)
        figures = cell.figures
        if figures.__class__ is Figures:  # (a parked actor stopped in place: its capture says it runs)
            figures.parked_row = None
        if self.cluster is not None:
            self.cluster.forget_local(cell.uid)

    async def _measure_loop(self) -> None:
        """Once per metrics tick, have every measured actor choose which of its next messages are timed, and
        park those that have been quiet for a whole window."""
        tick = self.metrics.tick
        measured = self._measured
        ticks = 1
        due: float | None = None
        while True:
            if not measured:
                self._measure_wakeup = trio.Event()
                await self._measure_wakeup.wait()
                self._measure_wakeup = None
            now = self.now()
            if due is None:
                due = now + tick
            elif due <= now:  # a pass that took longer than planned: the next instant of the same grid
                due += math.ceil((now - due) / tick + 1e-9) * tick
            await trio.sleep_until(due)
            # In slices, so that a tick over many busy actors never holds the loop for long.
            cells = list(measured)
            began = self.now()
            for start in range(0, len(cells), STATISTICS_SLICE):
                if start:
                    await trio.lowlevel.checkpoint()
                now = self.now()
                for cell in cells[start:start + STATISTICS_SLICE]:
                    if cell in measured and not cell.sample_figures(now, ticks):  # (it may have stopped meanwhile)
                        del measured[cell]
            # A pass over very many actors (a million told one message each) takes longer than a tick: then tick
            # less often, so that the tick keeps to TICK_SHARE of the loop, and count each visit as the ticks it
            # stands for (an actor is parked after as many idle ticks either way).
            ticks = max(1, math.ceil((self.now() - began) / (tick * TICK_SHARE)))
            due += tick * ticks


def _queued(item: tuple[str, Cell]) -> int:
    return item[1].mailbox_length


class _TreeReader:
    """Captures actors' figures (:data:`~runtime._figures.Captured`) by path, depth first in start order, a slice
    at a time.

    It keeps a stack of iterators over lists of siblings, each with its parent's path: nothing is built for a
    sibling before the read reaches it (a system may have 100k top-level actors), and a cell with children puts
    its siblings' iterator back under theirs, to be taken up where it stopped. Children are listed when their
    parent is reached. The walk and the reading are one loop, so that each cell is visited once, while it is in
    the processor's cache: at 100k actors, a read is bound by memory more than by instructions (which is also why
    a parked actor's capture is kept: a read of it touches the cell, its figures and the capture, and makes
    nothing).

    Python's collector stays on: a row holds only atoms, so the young collections that the rows' allocations
    start stop tracking them while they are still in the cache, and they never reach an older generation (at
    100k actors that is 15% faster than pausing the collector and leaving all the rows to one collection after
    the read, and starts no full collection).
    """

    __slots__ = ("_stack",)

    def __init__(self, prefix: str, roots: list[Any]) -> None:
        self._stack: list[tuple[str, Iterator[Any]]] = [(prefix, iter(roots))]

    def read(self, rows: dict[str, Any], now: float, limit: int, *, capture: bool = True) -> int:
        """Add the :data:`~runtime._figures.Captured` figures of up to ``limit`` more actors (all the rest for
        ``-1``) to ``rows``, as of ``now`` (with ``capture=False``, the cells themselves, to capture some of them
        later in the same instant); return how many actors were visited (fewer than ``limit`` once the read is
        complete).

        An actor that stopped since the read reached its parent is left out.
        """
        stack = self._stack
        taken = 0
        while stack:
            prefix, siblings = stack.pop()
            for cell in siblings:
                if not cell.local:  # a child on another node: its figures are kept there
                    continue
                at = prefix + cell.name
                if cell.state != STOPPED:
                    rows[at] = cell.captured(now) if capture else cell
                taken += 1
                children = cell._children
                if children:
                    stack.append((prefix, siblings))
                    stack.append((at + "/", iter(list(children.values()))))
                    break
                if taken == limit:
                    stack.append((prefix, siblings))
                    return taken
            else:
                continue
            if taken == limit:
                return taken
        return taken


_MAX_NAME = 100


def _broker_settings(name: object, broker: object, secret: object, node_name: str | None,
                     heartbeat: float, backlog: int) -> BrokerSettings | None:
    """The settings of a node on a broker, from ``ActorSystem``'s arguments (``None`` without ``broker=``), each
    refused with an error that names it."""
    if broker is None:
        if secret is not None:
            raise ValueError("secret= is given without broker=: a secret signs the messages of a cluster on a broker; "
                             "pass broker='amqp://...' too, or leave secret= out")
        return None
    if secret is None:
        shown = hide_password(broker) if isinstance(broker, str) else broker
        raise ValueError(f"broker={shown!r} needs secret= (bytes, at least 16, or the path of a file holding "
                         "them): every message between the nodes of a cluster is signed with it")
    for what, value in (("name", name), ("node_name", node_name)):
        if value is not None and (not isinstance(value, str) or not value or len(value.encode()) > _MAX_NAME):
            raise ValueError(f"{what}={value!r} must be a non-empty string of at most {_MAX_NAME} bytes on a "
                             "broker: it names the cluster's queues")
    return BrokerSettings(broker, secret, heartbeat=heartbeat, backlog=backlog)  # type: ignore[arg-type]
