"""Nodes: the head's worker processes, peers on a broker, the links to them, and what crosses those links.

``ActorSystem(workers=N)`` starts N workers: fresh interpreters (``python -m runtime._worker_main``, never
``fork``) with the head's ``sys.path`` and working directory, each one trio loop with its own dispatcher. The head
and each worker share a ``socketpair``: the child's end is inherited through ``pass_fds`` (stdin, stdout and
stderr stay the worker's own), the head writes a fresh per-system secret as the link's first bytes, and both ends
then prove they hold it (:mod:`runtime._link`) before any frame is decoded. Worker-to-worker traffic is relayed by
the head.

``ActorSystem(name, broker=url, secret=...)`` makes the system a node of the cluster ``name`` on a RabbitMQ broker
instead (:mod:`runtime._broker`): every other node of that cluster is a *peer*, reached through a
:class:`~runtime._broker.PeerLink`, which has the shape of a link, so the code below serves both. Peers are not
restarted by each other.

:class:`Cluster` is one system's side of all that: its nodes, links, refs to remote actors, remote spawns and
the loss of a node, which fails every actor there with :class:`~runtime.NodeDown`.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from ._address import Address
from ._broker import BrokerHub, BrokerSettings, PeerLink
from ._envelope import WATCH_MARK, ChildFailed, Rebuilt, Stop
from ._exceptions import (
    ActorError,
    ActorFailed,
    ActorStopped,
    LinkClosed,
    MailboxFull,
    NodeDown,
    SerializationError,
)
from ._figures import Metrics, StatisticsRows, SystemStatistics
from ._futures import ERROR, Future
from ._link import Link, LinkOptions, RawSocketStream
from ._mailbox import Mailbox
from ._messages import Terminated
from ._ref import ActorRef
from ._remote import (
    ANSWER,
    DELIVER,
    DELIVER_SYSTEM,
    SEND,
    AddressReply,
    ChildStopped,
    LookupRequest,
    NodeNews,
    NodeStatistics,
    Published,
    RemoteChild,
    RemoteParent,
    RemoteTarget,
    SpawnRequest,
    StatisticsReply,
    StatisticsRequest,
)
from ._show import show
from ._spawn import SpawnSpec
from ._supervision import RestartWindow

if TYPE_CHECKING:
    from ._cell import Cell
    from ._system import ActorSystem

__all__ = ["Cluster", "ClusterStatistics", "Node", "NodeKind", "NodeUp"]

logger = logging.getLogger("actors")

NodeKind = Literal["head", "worker", "peer"]

_SECRET_BYTES = 32


@attrs.frozen
class Node:
    """One node of a system: the head (the process that opened ``async with ActorSystem()``), a worker, or a peer
(another system of the same cluster on a broker)."""

    name: str
    """Its name, unique for the life of the system (a replacement worker gets a new one)."""
    kind: NodeKind
    """``"head"``, ``"worker"`` or ``"peer"``."""
    pid: int
    """Its process id."""
    alive: bool = True
    """``False`` once the node is lost."""
    head: str | None = None
    """For a worker, the name of the head it works for (this system's or a peer's); ``None`` for a head."""


@attrs.frozen
class NodeUp:
    """Published on the event stream when a worker has started and its link is up, or a peer has joined."""

    node: Node
    """The new node."""


@attrs.frozen
class ClusterStatistics(SystemStatistics):
    """The figures of a system and of its peers' actors: ``await system.gather_statistics(nodes="all")``.

    A peer's actors are keyed ``path@peer`` (their paths are the peer's own, and may be this system's too); each
    one's ``node`` is the node it runs on (the peer, or one of its workers). ``dead_letters`` and
    ``pending_asks`` are this system's.
    """

    missing: Mapping[str, str] = attrs.field(factory=dict)
    """The live peers whose figures are not in the snapshot, each with why: no answer in time, or lost meanwhile."""


class _Worker:
    """The head's handle on one worker process."""

    __slots__ = ("actors", "link", "node", "process")

    def __init__(self, node: Node, process: trio.Process, link: Link) -> None:
        self.node = node
        self.process = process
        self.link = link
        self.actors = 0


class Cluster:
    """One system's view of its nodes: links, remote refs, remote spawns, relaying, and lost nodes."""

    def __init__(self, system: ActorSystem, *, workers: int, head: str | None = None,
                 link: Link | None = None, broker: BrokerSettings | None = None) -> None:
        self.system = system
        self.head = head
        """The head's node id, on a worker; ``None`` on the head itself."""
        self.nodes: dict[str, Node] = {}
        self.links: dict[str, Link | PeerLink] = {}
        self.hub: BrokerHub | None = None
        """This node on the broker, when the system was given ``broker=``."""
        if broker is not None:
            self.hub = BrokerHub(system, broker, on_peer=self._peer_up, on_refused=self._refused)
        self.remote_refs: dict[Address, ActorRef] = {}
        self.remote_children: dict[str, set[RemoteChild]] = {}
        self.hosted: dict[int, Cell] = {}
        """On a worker: the actors it runs for parents elsewhere, by uid."""
        self.remote_statistics: dict[str, dict[str, Any]] = {}
        """On the head: each worker's latest figures of its actors, by path (at most a reporting period old)."""
        self._local: dict[int, ActorRef] = {}
        """Refs of this node's live actors that other nodes address, by uid, so that a message finds its actor
        without a walk down the tree (a dict of ints: no Python-level hash or equality on the way); an actor leaves
        it when it stops (:meth:`forget_local`)."""
        self._workers: dict[str, _Worker] = {}
        self._processes: list[trio.Process] = []
        self._killed = False
        self._wanted = workers
        self._secret = os.urandom(_SECRET_BYTES)
        self._names = itertools.count(1)
        self._requests = itertools.count(1)
        self._waiting: dict[int, tuple[str, trio.Event, list[Any]]] = {}
        """Requests to other nodes (spawns, look-ups, figures) waiting for their reply, by request id."""
        self._window = RestartWindow(max(3, workers), 5.0)
        self._nursery: trio.Nursery | None = None
        kind: NodeKind = "head" if head is None else "worker"
        self.nodes[system.node_id] = Node(system.node_id, kind, os.getpid(), head=head)
        self._stopping = False
        self._replacing = 0
        self._joined = trio.Event()
        self._changed = trio.Event()
        """Set (and replaced) whenever a node joins or is lost."""
        if link is not None and head is not None:
            self.links[head] = link
            self.nodes[head] = Node(head, "head", os.getppid())

    # -- the head: starting and stopping workers ---------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the workers (on the head) or serve the link to the head (on a worker)."""
        self._nursery = nursery
        if self.hub is not None:
            await self.hub.start(nursery)
        if self.head is not None:
            nursery.start_soon(self._serve, self.head, self.links[self.head], None)
            nursery.start_soon(self._report_statistics, self.head)
            return
        async with trio.open_nursery() as starting:
            for _ in range(self._wanted):
                starting.start_soon(self._start_worker)

    async def _start_worker(self) -> None:
        system = self.system
        assert self._nursery is not None
        node_id = f"{system.node_id}.w{next(self._names)}"
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "runtime._worker_main", "--fd", str(theirs.fileno()), "--node", node_id,
                 "--head", system.node_id, "--name", system.name, "--settings", _settings(system)],
                pass_fds=(theirs.fileno(),), cwd=os.getcwd(), env=env)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._processes.append(process)  # from now on, kill_all() reaches it whatever happens
        if self._killed:  # the system is going away while this one was starting
            process.kill()
        stream = RawSocketStream(ours)
        try:
            await stream.send_all(self._secret)
            link = await Link.connect(stream, self._secret, role="head", options=_LINK_OPTIONS,
                                      on_refused=self._refused)
        except BaseException:
            process.kill()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
                await process.wait()
            raise
        node = Node(node_id, "worker", process.pid, head=system.node_id)
        # It hears of every other node it may be sent refs to before anything else (see _tell_news).
        for other in list(self.nodes.values()):
            if other.alive and other.name != system.node_id:
                link.send(NodeNews(other, None))
        self.nodes[node_id] = node
        self.links[node_id] = link
        self._workers[node_id] = _Worker(node, process, link)
        self._nursery.start_soon(self._serve, node_id, link, process)
        system.publish(NodeUp(node))
        self._tell_news(node, None)
        self._joined.set()
        self._joined = trio.Event()

    async def stop(self) -> None:
        """On the head: close every link and wait for the workers to exit (killing those that take too long).
        On a worker: stop the actors it runs for others, newest first. On a broker: leave the cluster (publish
        what is queued for peers, then say goodbye), after the workers: what their actors sent peers on their
        way out (a ``Terminated`` for a watcher, say) is relayed before the goodbye, not dropped after it."""
        self._stopping = True
        for cell in reversed(list(self.hosted.values())):
            cell.request_stop(None, "parent")
            await cell.wait_stopped()
        for worker in list(self._workers.values()):
            with trio.move_on_after(2.0):
                await worker.link.aclose()
        for worker in list(self._workers.values()):
            with trio.move_on_after(5.0):
                await worker.process.wait()
            if worker.process.returncode is None:
                logger.error("worker %s did not exit; killing it", worker.node.name)
                worker.process.kill()
                with trio.CancelScope(shield=True):
                    await worker.process.wait()
        if self.hub is not None:
            await self.hub.aclose()

    def kill_all(self) -> None:
        """Kill every worker process still running, and any that a start still under way opens after this (the
        head is going away); :meth:`reap` then waits for them."""
        self._killed = True
        self._stopping = True
        for process in self._processes:
            if process.returncode is None:
                process.kill()

    async def reap(self) -> None:
        """Wait for every worker process to be gone, killing any still running (shielded, and bounded: a process
        that outlives a SIGKILL for seconds is logged, not waited for)."""
        with trio.CancelScope(shield=True):
            for process in list(self._processes):
                if process.returncode is None:
                    process.kill()
                with trio.move_on_after(5.0):
                    await process.wait()
                if process.returncode is None:  # pragma: no cover - the kernel did not deliver the kill
                    logger.error("worker process %d did not exit after SIGKILL", process.pid)

    # -- placement -----------------------------------------------------------------------------------------

    def place(self, where: object) -> str:
        """The node id that ``node=`` names: a :class:`Node`, a node's name, or ``"spread"``."""
        if where == "spread":
            live = [worker for worker in self._workers.values() if worker.node.alive]
            if not live:
                return self.system.node_id
            return min(live, key=lambda worker: worker.actors).node.name
        name = where.name if isinstance(where, Node) else where
        node = self.nodes.get(name) if isinstance(name, str) else None
        if node is None:
            raise ValueError(f"node={show(where)} is not a node of this system; its nodes are "
                             f"{', '.join(sorted(self.nodes))}")
        if not node.alive:
            raise ActorStopped(f"node {node.name} is down; nothing can be spawned there")
        if node.name != self.system.node_id and node.name not in self.links:
            raise ValueError(f"node={show(where)} is a worker of {node.head}, reached through it: only "
                             f"{node.head} spawns actors there")
        return node.name

    # -- sending ---------------------------------------------------------------------------------------------

    def resolve(self, address: Address) -> ActorRef | None:
        """The ref for an address on another node this system can reach, else ``None``."""
        ref = self.remote_refs.get(address)
        if ref is not None:
            return ref
        node = self.nodes.get(address.node)
        if node is None and self.head is None and self.hub is None:
            return None  # the head knows every node there is
        # On a broker, a node not heard from yet may still join: its ref works from then on.
        target = RemoteTarget(self.system, address)
        if node is not None and not node.alive:
            target.stopped = NodeDown(node, "lost")
        self.remote_refs[address] = target.ref
        return target.ref

    def send(self, node_id: str, item: Any) -> None:
        """Send ``item`` towards ``node_id`` (a worker reaches every other node through the head)."""
        link = self.links.get(node_id)
        if link is None:
            link = self._route(node_id)
            if link is None:
                self._undeliverable(item, f"node {node_id} is not reachable")
                return
        try:
            link.send(item)
        except LinkClosed as exc:
            self._undeliverable(item, str(exc))

    def _route(self, node_id: str) -> Link | PeerLink | None:
        """The link towards a node this one has none to: its head for a peer's worker; the head for anything
        else, on a worker."""
        if self.head is not None:
            return self.links.get(self.head)
        node = self.nodes.get(node_id)
        return None if node is None or node.head is None else self.links.get(node.head)

    def _undeliverable(self, item: Any, why: str) -> None:
        system = self.system
        cls = item.__class__
        if cls is tuple and item[0] == DELIVER:
            _, address, message, sender, correlation, reply_to = item
            if correlation is not None:
                self._answer(reply_to, correlation, True, ActorStopped(
                    f"{address} is unreachable ({why}); {show(message)} was not delivered"))
            else:
                system.dead_letter(message, sender, system.ref_at(address), f"unreachable: {why}")
        elif cls is SpawnRequest:
            self._replied(AddressReply(item.request, None, ActorStopped(f"cannot spawn there: {why}")))
        elif cls is LookupRequest:  # nothing can be found on a node that cannot be reached
            self._reply(item.asker, AddressReply(item.request, None, None, item.asker))
        elif cls is StatisticsRequest:
            self._reply(item.asker, AddressReply(item.request, None, ActorStopped(f"node {item.node} is not "
                                                                                   f"reachable: {why}"), item.asker))

    def _reply(self, asker: str, reply: AddressReply | StatisticsReply) -> None:
        """Hand ``reply`` to the request waiting for it here, or send it on to the asker's node."""
        if asker == self.system.node_id:
            self._replied(reply)
        else:
            self.send(asker, reply)

    def _answer(self, node: str | None, correlation: int, failed: bool, value: Any) -> None:
        if node is None:
            return
        if node == self.system.node_id:
            table = self.system.correlations
            if failed:
                table.fail(correlation, value)
            else:
                table.answer(correlation, value)
            return
        self.send(node, (ANSWER, node, correlation, failed, value))

    def _refused(self, item: Any, error: ActorError) -> None:
        """A link would not send ``item``: it does not pickle (a :class:`SerializationError`), or a broker node's
        backlog is full (a ``BacklogFull``). The ask, send or spawn it belonged to fails, a tell is a dead letter."""
        system = self.system
        cls = item.__class__
        if cls is tuple and item[0] in (DELIVER, SEND):
            _, address, message, sender, correlation, reply_to = item
            problem: ActorError = error
            reason = f"not sent: {error}"
            if isinstance(error, SerializationError):
                problem = SerializationError(f"{show(message)} for {address} cannot be sent to another node: {error}")
                reason = f"not serializable: {error}"
            if correlation is not None:
                self._answer(reply_to, correlation, True, problem)
            else:
                system.dead_letter(message, sender, system.ref_at(address), reason)
        elif cls is tuple and item[0] == ANSWER:
            _, node, correlation, _, value = item
            self.send(node, (ANSWER, node, correlation, True, SerializationError(
                f"the answer {show(value)} cannot be sent to the asker's node: {error}")))
        elif cls is SpawnRequest:
            self._replied(AddressReply(item.request, None, SerializationError(
                f"{show(item.spec.factory)} and its arguments cannot be sent to another node: {error}")))
        else:
            logger.error("could not send %s to another node: %s", show(item), error)

    # -- receiving -------------------------------------------------------------------------------------------

    async def _serve(self, node_id: str, link: Link | PeerLink, process: trio.Process | None) -> None:
        """Run one link: take the peer's batches until it closes; then the node is lost (or has left)."""
        assert self._nursery is not None
        reason = "its link closed"
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(link.run, on_batch=functools.partial(self._take, node_id)))
                if process is not None and isinstance(link, Link):
                    nursery.start_soon(self._watch_process, process, link)
                await link.wait_closed()
                if isinstance(link, PeerLink):
                    reason = str(link.reason)
                elif link.error is not None:  # a broken link: the node is lost
                    reason = f"its link broke: {link.error}"
                nursery.cancel_scope.cancel()
        finally:
            if self.links.get(node_id, link) is link:  # else a new incarnation of the peer took its place
                self._node_down(node_id, reason)

    def _peer_up(self, link: PeerLink) -> None:
        """A peer joined the cluster (or came back under the same name): it is a node from now on."""
        assert self._nursery is not None
        name = link.name
        previous = self.links.get(name)
        if previous is not None:  # its previous incarnation is lost first (said why, if its link knows)
            ended = previous.reason if isinstance(previous, PeerLink) else None
            self._node_down(name, "it started again" if ended is None else str(ended))
        node = Node(name, "peer", link.pid)
        self._joined_node(node)
        self.links[name] = link
        self._nursery.start_soon(self._serve, name, link, None)
        logger.info("node %s: peer %s joined", self.system.node_id, name)
        for worker in self._workers.values():  # it reaches them through this node
            if worker.node.alive:
                link.send(NodeNews(worker.node, None))
        self._tell_news(node, None)

    def _joined_node(self, node: Node) -> None:
        """``node`` is part of the system from now on (a node of that name before it is lost for good)."""
        # Refs to a previous incarnation's actors stay lost; addresses of the new one must not find them.
        for address in [address for address in self.remote_refs if address.node == node.name]:
            del self.remote_refs[address]
        self.nodes[node.name] = node
        if self.head is None:  # (a worker's head publishes it)
            self.system.publish(NodeUp(node))
        self._changed.set()
        self._changed = trio.Event()

    def _tell_news(self, node: Node, reason: str | None) -> None:
        """On a head: tell the nodes that reach ``node`` through this one that it joined (``reason`` is ``None``)
        or was lost. Workers hear of every node; peers hear of this node's workers (of other nodes, they hear from
        those nodes' heads)."""
        if self.head is not None:
            return
        news = NodeNews(node, reason)
        own = node.name in self._workers
        for name, link in list(self.links.items()):
            if name == node.name or (isinstance(link, PeerLink) and not own):
                continue
            try:
                link.send(news)
            except LinkClosed:  # it is being lost too
                pass

    def _news(self, from_node: str, news: NodeNews) -> None:
        """News of a node reached through ``from_node``: a worker of that peer, or (on a worker) any node its
        head knows."""
        node = news.node
        name = node.name
        known = self.nodes.get(name)
        if self.head is None:
            if name == self.system.node_id or name in self.links \
                    or (known is not None and known.head != from_node):
                logger.error("node %s: peer %s announced node %s, which is not its worker here; ignored",
                             self.system.node_id, from_node, name)
                return
            node = attrs.evolve(node, kind="peer", head=from_node)
        if news.reason is not None:
            self._node_down(name, news.reason)
        elif known is None or not known.alive:
            self._joined_node(node)
            self._tell_news(node, None)

    async def wait_node(self, name: str) -> Node:
        """Wait until a live node called ``name`` is part of the system; return it."""
        while True:
            node = self.nodes.get(name)
            if node is not None and node.alive:
                await trio.lowlevel.checkpoint()
                return node
            await self._changed.wait()

    def _take(self, node_id: str, batch: list[Any]) -> None:
        """A batch from node ``node_id``, taken in the link reader's turn."""
        for item in batch:
            try:
                self._receive(node_id, item)
            except Exception:  # a bug must not cost the node its link: say it and go on
                logger.exception("node %s: handling %s from %s failed", self.system.node_id, show(item), node_id)

    async def _watch_process(self, process: trio.Process, link: Link) -> None:
        await process.wait()
        if link.state == "open":
            with trio.move_on_after(0.1):  # let what it flushed before it died arrive
                await link.wait_closed()
            await link.aclose()

    def _receive(self, from_node: str, item: Any) -> None:
        system = self.system
        cls = item.__class__
        if cls is tuple:
            kind = item[0]
            if kind == DELIVER:
                if item[1].node != system.node_id:
                    self.send(item[1].node, item)
                else:
                    self._deliver(item)
            elif kind == DELIVER_SYSTEM:
                _, address, message = item
                if address.node != system.node_id:
                    self.send(address.node, item)
                    return
                target = self._local_ref(address)._target
                if message.__class__ is Stop and hasattr(target, "request_stop"):
                    target.request_stop(message.reason, message.origin)
                else:
                    target.deliver_system(message)
            elif kind == ANSWER:
                _, node, correlation, failed, value = item
                self._answer(node, correlation, failed, value)
            elif kind == SEND:
                if item[1].node != system.node_id:
                    self.send(item[1].node, item)
                else:
                    assert self._nursery is not None
                    self._nursery.start_soon(self._send, item)
        elif cls is SpawnRequest:
            assert self._nursery is not None
            self._nursery.start_soon(self._host_spawn, from_node, item)
        elif cls is AddressReply or cls is StatisticsReply:
            if item.to and item.to != system.node_id:  # on its way back to a node reached through this one
                self.send(item.to, item)
            else:
                self._replied(item)
        elif cls is LookupRequest:
            if item.node != system.node_id:
                self.send(item.node, item)
            else:
                found = system.lookup(item.path)
                self._reply(item.asker, AddressReply(
                    item.request, None if found is None else found.address, None, item.asker))
        elif cls is StatisticsRequest:
            if item.node != system.node_id:
                self.send(item.node, item)
            else:
                assert self._nursery is not None
                self._nursery.start_soon(self._answer_statistics, item)
        elif cls is NodeNews:
            self._news(from_node, item)
        elif cls is ChildStopped:
            self._child_stopped(item)
        elif cls is Published:
            system.publish(item.event)
        elif cls is NodeStatistics:
            self.remote_statistics[from_node] = item.actors
        else:  # pragma: no cover - a peer of another version
            logger.error("node %s sent %s, which this node does not understand", from_node, show(item))

    def _local_ref(self, address: Address) -> ActorRef:
        """The ref for an address on this node (see ``_local``)."""
        ref = self._local.get(address.uid)
        if ref is None:
            ref = self.system.ref_at(address)
            if not ref.is_stopped:
                self._local[address.uid] = ref
        return ref

    def forget_local(self, uid: int) -> None:
        """The actor ``uid`` of this node stopped: messages for it now find that it is gone."""
        self._local.pop(uid, None)

    def _deliver(self, item: tuple[Any, ...]) -> None:
        system = self.system
        _, address, message, sender, correlation, reply_to = item
        ref = self._local.get(address.uid) or self._local_ref(address)
        target = ref._target
        if correlation is None:
            mark = None
            if message.__class__ is Terminated:
                watched = message.ref._target
                if isinstance(watched, RemoteTarget):
                    watched.watchers.discard(ref)
                mark = WATCH_MARK
            try:
                target.deliver(message, sender, mark)
            except MailboxFull as exc:  # overflow="fail": the teller is on another node, so it is a dead letter
                system.dead_letter(message, sender, ref, f"overflow: {exc}")
            return
        future = system.correlations.new_future(system, ref, _RemoteAsk)
        future.answers(self, reply_to, correlation)
        try:
            target.deliver(message, sender, future.correlation_id)
        except MailboxFull as exc:
            future.set_exception(exc)

    async def _send(self, item: tuple[Any, ...]) -> None:
        """A ``send`` from another node: wait for room in the mailbox, then answer the sender."""
        _, address, message, sender, correlation, reply_to = item
        try:
            await self._local_ref(address)._target.send(message, sender)
        except Exception as exc:
            self._answer(reply_to, correlation, True, exc)
        else:
            self._answer(reply_to, correlation, False, None)

    # -- spawning on another node ----------------------------------------------------------------------------

    async def _request(self, node_id: str, make: Callable[[int], Any]) -> AddressReply | StatisticsReply:
        """Send node ``node_id`` the request ``make(request id)`` and wait for its reply (a lost node answers with
        an :class:`AddressReply` whose error is ``ActorFailed`` caused by ``NodeDown``). Cancelling the wait
        forgets the request; a reply that comes later is dropped."""
        request = next(self._requests)
        done = trio.Event()
        box: list[AddressReply | StatisticsReply] = []
        self._waiting[request] = (node_id, done, box)
        try:
            self.send(node_id, make(request))
            await done.wait()
        finally:
            self._waiting.pop(request, None)
        return box[0]

    async def _ask_node(self, node_id: str, make: Callable[[int], Any]) -> Address | None:
        """Send node ``node_id`` the request ``make(request id)`` and wait for its :class:`AddressReply`; raise the
        error it carries (a lost node fails it with ``ActorFailed`` caused by ``NodeDown``)."""
        reply = await self._request(node_id, make)
        assert isinstance(reply, AddressReply)
        if reply.error is not None:
            raise reply.error
        return reply.address

    async def lookup(self, node_id: str, path: str) -> ActorRef | None:
        """The ref of the actor registered at ``path`` on node ``node_id``, or ``None``."""
        node = self.nodes.get(node_id)
        if node is not None and not node.alive:
            await trio.lowlevel.checkpoint()
            return None
        try:
            address = await self._ask_node(
                node_id, lambda request: LookupRequest(request, path, node_id, self.system.node_id))
        except ActorFailed:  # the node was lost meanwhile: nothing is there
            return None
        return None if address is None else self.system.ref_at(address)

    async def spawn(self, parent: Cell, name: str, spec: SpawnSpec, node_id: str) -> ActorRef:
        """Start ``spec`` as ``parent``'s child ``name`` on node ``node_id``; return its ref once it runs there."""
        address = await self._ask_node(
            node_id, lambda request: SpawnRequest(request, parent.address, name, spec._replace(node=None)))
        assert address is not None
        ref = self.system.ref_at(address)
        target = ref._target
        if isinstance(target, RemoteTarget) and isinstance(spec.factory, type):
            target.actor_class = spec.factory
        handle = RemoteChild(ref, spec, parent)
        parent.adopt(name, handle)
        self._place_child(handle, node_id)
        return ref

    def _replied(self, reply: AddressReply | StatisticsReply) -> None:
        waiting = self._waiting.pop(reply.request, None)
        if waiting is not None:
            waiting[2].append(reply)
            waiting[1].set()

    async def _host_spawn(self, from_node: str, request: SpawnRequest) -> None:
        """On a worker: start an actor whose parent lives on ``from_node``."""
        from ._cell import Cell

        system = self.system
        parent = RemoteParent(system, request.parent)
        cell = Cell(system, parent, request.name, request.spec, next(system.uids))  # type: ignore[arg-type]
        self.hosted[cell.uid] = cell
        try:
            await cell.start()
        except Exception as exc:
            self.hosted.pop(cell.uid, None)
            self.send(from_node, AddressReply(request.request, None, exc))
            return
        self.send(from_node, AddressReply(request.request, cell.address, None))

    def handle_of(self, ref: ActorRef) -> RemoteChild | None:
        """The handle a parent on this node keeps on the remote actor ``ref``, if one does."""
        for handles in self.remote_children.values():
            for handle in handles:
                if handle.ref is ref:
                    return handle
        return None

    async def _report_statistics(self, head: str) -> None:
        """On a worker: send the head the figures of the actors it runs (and their descendants), once a second."""
        from ._cell import Cell

        period = max(1.0, self.system.metrics.tick)
        while True:
            await trio.sleep(period)
            actors: dict[str, Any] = {}
            stack: list[Any] = list(self.hosted.values())
            while stack:
                cell = stack.pop()
                if isinstance(cell, Cell):
                    actors[cell.path] = cell.statistics()
                    stack.extend(cell.children)
            self.send(head, NodeStatistics(actors))

    async def _answer_statistics(self, request: StatisticsRequest) -> None:
        """A peer asks for this system's figures: read them in slices, as a scrape does, and send them back."""
        try:
            statistics = await self.system.gather_statistics(request.path)
        except Exception as exc:  # a path that is not one: the asker says the figures are missing, and why
            self._reply(request.asker, AddressReply(request.request, None, exc, request.asker))
            return
        actors = statistics.actors
        rows = dict(actors.rows()) if isinstance(actors, StatisticsRows) else dict(actors)
        self._reply(request.asker, StatisticsReply(request.request, rows, request.asker))

    async def peer_statistics(self, path: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        """The figures of the actors at and under ``path`` of every live peer, keyed ``path@peer``, and why each
        live peer's are missing: one that does not answer within the silence limit (its heartbeat interval times
        ``dead_after``: past it, a peer that said nothing is lost anyway) is left out rather than waited for."""
        me = self.system.node_id
        hub = self.hub
        limit = hub.settings.heartbeat * hub.settings.dead_after if hub is not None else _LINK_OPTIONS.silence_limit
        rows: dict[str, Any] = {}
        missing: dict[str, str] = {}

        async def ask(name: str) -> None:
            with trio.move_on_after(limit):
                reply = await self._request(name, lambda request: StatisticsRequest(request, path, name, me))
                if isinstance(reply, StatisticsReply):
                    for at, row in reply.rows.items():
                        rows[f"{at}@{name}"] = row
                else:
                    missing[name] = str(reply.error)
                return
            missing[name] = f"no answer within {limit:g} s"

        peers = [node.name for node in self.nodes.values() if node.kind == "peer" and node.head is None and node.alive]
        async with trio.open_nursery() as nursery:
            for name in peers:
                nursery.start_soon(ask, name)
        return rows, missing

    def find_hosted(self, path: str) -> Cell | None:
        """The local actor at ``path`` under one of the hosted actors, if any."""
        for root in self.hosted.values():
            if path == root.path:
                return root
            if path.startswith(root.path + "/"):
                cell: Cell | None = root
                for part in path[len(root.path) + 1:].split("/"):
                    cell = None if cell is None else cell.child(part)
                return cell
        return None

    def child_stopped(self, child: Cell, parent: RemoteParent) -> None:
        """A hosted actor stopped for good: forget it, and tell its parent's node."""
        self.hosted.pop(child.uid, None)
        self.send(parent.address.node, ChildStopped(child.address, parent.address))

    def _child_stopped(self, item: ChildStopped) -> None:
        parent_ref = self.system.ref_at(item.parent)
        parent = parent_ref._target
        handle = parent.child(item.child.name) if hasattr(parent, "child") else None
        if isinstance(handle, RemoteChild) and handle.ref.address == item.child:
            self.forget_child(handle)

    def respawn(self, handle: RemoteChild, delay: float, then: Rebuilt | None) -> None:
        """Start a child whose node was lost again on a live node, behind the same ref; ``then`` goes to its
        parent once it runs (or fails to start, which is a failure of the child like any other)."""
        assert self._nursery is not None
        self._nursery.start_soon(self._respawn, handle, delay, then)

    async def _respawn(self, handle: RemoteChild, delay: float, then: Rebuilt | None) -> None:
        parent = handle.parent
        reason = handle.ref._target.stopped  # type: ignore[attr-defined]
        await trio.sleep(delay)
        try:
            while self._replacing and not any(worker.node.alive for worker in self._workers.values()):
                await self._joined.wait()  # a replacement worker is on its way: run it there
            node_id = self.place("spread")
            if node_id == self.system.node_id:
                raise ActorStopped("no live worker is left to run it")
            address = await self._ask_node(node_id, lambda request: SpawnRequest(
                request, parent.address, handle.name, handle.spec._replace(node=None)))
            assert address is not None
        except Exception as exc:
            if then is not None:
                parent.deliver_system(then)
            parent.deliver_system(ChildFailed(handle.ref, exc, handle.current))
            return
        target = RemoteTarget(self.system, address)
        target.ref = handle.ref
        handle.ref._target = target  # the same ref, now reaching the fresh actor
        self.remote_refs[address] = handle.ref
        handle.current = 0  # a fresh actor in a fresh process counts its restarts from 0
        self._place_child(handle, node_id)
        self.system.lifecycle(handle.ref, "restarted", reason)
        if then is not None:
            parent.deliver_system(then)

    def _place_child(self, handle: RemoteChild, node_id: str) -> None:
        """Count ``handle``'s actor as running on ``node_id`` (for ``"spread"``, and for losing that node)."""
        handle.node = node_id
        self.remote_children.setdefault(node_id, set()).add(handle)
        worker = self._workers.get(node_id)
        if worker is not None:
            worker.actors += 1

    def forget_child(self, handle: RemoteChild) -> None:
        """A remote child is gone for good: its parent forgets it, and its node counts it no more."""
        self.remote_children.get(handle.node, set()).discard(handle)
        worker = self._workers.get(handle.node)
        if worker is not None:
            worker.actors -= 1
        handle.parent.child_stopped(handle)
        handle.stopped()

    # -- losing a node ---------------------------------------------------------------------------------------

    def _node_down(self, node_id: str, reason: str) -> None:
        system = self.system
        node = self.nodes.get(node_id)
        if node is None or not node.alive:
            return
        node = self.nodes[node_id] = attrs.evolve(node, alive=False)
        self.links.pop(node_id, None)
        self._changed.set()
        self._changed = trio.Event()
        self.remote_statistics.pop(node_id, None)
        worker = self._workers.get(node_id)
        if worker is not None:
            worker.node = node
        down = NodeDown(node, reason)
        # A worker reaches every other node through its head: losing the head loses them all.
        everything = node_id == self.head
        lost = (lambda _: True) if everything else (lambda other: other == node_id)
        for future in system.correlations.pending():
            target = future._target
            if target is not None and isinstance(target._target, RemoteTarget) \
                    and lost(target._target.address.node):
                future.set_exception(ActorFailed(f"{target!r} was lost with its node {node_id}", down))
        for address, ref in list(self.remote_refs.items()):
            if lost(address.node):
                ref._target.lost(down)  # type: ignore[attr-defined]
        for request, (target_node, _, _) in list(self._waiting.items()):
            if lost(target_node):
                self._replied(AddressReply(request, None, ActorFailed(f"node {node_id} was lost", down)))
        if everything:  # a worker without its head has nothing left to do
            if not self._stopping:
                logger.info("the head is gone (%s); stopping", reason)
            system._end_body()
            return
        if not self._stopping and worker is not None:
            logger.error("worker %s is lost: %s", node_id, reason)
        if self.head is None:  # (a worker's head publishes it)
            system.publish(down)
        self._tell_news(node, reason)
        for handle in self.remote_children.pop(node_id, set()):
            handle.lost(down)
        # The nodes reached through it (a peer's workers) are lost with it.
        for other in list(self.nodes.values()):
            if other.alive and other.head == node_id and other.name != self.system.node_id:
                self._node_down(other.name, f"its head {node_id} was lost: {reason}")
        if worker is not None and not self._stopping and system.running \
                and self._window.allow(trio.current_time()):
            assert self._nursery is not None
            self._replacing += 1  # counted from now, so that restarts of its actors wait for it
            self._nursery.start_soon(self._replace_worker)

    async def _replace_worker(self) -> None:
        try:
            await self._start_worker()
        except Exception:
            if not self._stopping:  # a system closing kills the worker it was starting: not worth a word
                logger.exception("a replacement worker could not be started")
        finally:
            self._replacing -= 1
            self._joined.set()
            self._joined = trio.Event()


_LINK_OPTIONS = LinkOptions(heartbeat=1.0, dead_after=5, handshake_timeout=30.0)


# -- the worker process --------------------------------------------------------------------------------------


class _RemoteAsk(Future[Any]):
    """An ask from another node, in this node's correlation table under an ID of its own: resolving it sends the
    answer (or the error) back to the asker's node, with the asker's correlation ID."""

    __slots__ = ("_asked", "_cluster", "_node")

    def answers(self, cluster: Cluster, node: str | None, asked: int) -> None:
        self._cluster = cluster
        self._node = node
        self._asked = asked

    def _resolve(self, state: int, value: Any) -> bool:
        if not super()._resolve(state, value):
            return False
        self._cluster._answer(self._node, self._asked, state == ERROR, value)
        return True


def _settings(system: ActorSystem) -> str:
    """What a worker's system takes from the head's (no secret: the command line is public): the queue figures'
    settings and the default mailbox, as JSON."""
    return json.dumps({"metrics": attrs.asdict(system.metrics), "mailbox": attrs.asdict(system.default_mailbox)})


async def _worker(fd: int, node_id: str, head: str, name: str, settings: str) -> None:
    from ._system import ActorSystem

    sock = socket.socket(fileno=fd)
    stream = RawSocketStream(sock)
    secret = bytearray()
    while len(secret) < _SECRET_BYTES:
        chunk = await stream.receive_some(_SECRET_BYTES - len(secret))
        if not chunk:
            return
        secret += chunk
    clusters: list[Cluster] = []

    def refused(item: Any, error: SerializationError) -> None:  # an answer or a tell that does not pickle
        clusters[0]._refused(item, error)

    link = await Link.connect(stream, bytes(secret), role="worker", options=_LINK_OPTIONS, on_refused=refused)
    given = json.loads(settings)
    async with ActorSystem(name, node_name=node_id, metrics=Metrics(**given["metrics"]),
                           mailbox=Mailbox(**given["mailbox"]), _head=(head, link)) as system:
        assert system.cluster is not None
        clusters.append(system.cluster)
        await trio.sleep_forever()  # until the head goes away, which ends the body


def main(argv: Sequence[str] | None = None) -> int:
    """The worker process: ``python -m runtime._worker_main --fd N --node ID --head ID --name NAME --settings JSON``."""
    parser = argparse.ArgumentParser(prog="python -m runtime._worker_main", description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--head", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"[{args.node}] %(levelname)s %(name)s: %(message)s")
    try:
        trio.run(_worker, args.fd, args.node, args.head, args.name, args.settings)
    except KeyboardInterrupt:  # pragma: no cover - the head is being interrupted too
        return 130
    return 0

