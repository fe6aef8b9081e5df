"""Router pools: one actor in front of a set of identical child actors (its routees).

The routing decisions are plain synchronous objects (:class:`RoundRobin`, :class:`RandomRouting`,
:class:`SmallestMailbox`, :class:`ConsistentHash` over a :class:`HashRing`) that return the routee a message goes
to; the :class:`Pool` actor owns one of them and does the sending. So the rules are testable without a scheduler.
A balancing pool decides nothing: its routees take their work from one :class:`~runtime.SharedQueue`, each when
it is free.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, Literal, TypeVar

import attrs
import trio

from runtime import (
    ActorBase,
    ActorRef,
    ActorStopped,
    CallForwarder,
    Future,
    MailboxFull,
    PoisonPill,
    Reply,
    ReplyRef,
    SharedQueue,
    SpawnSpec,
    Terminated,
)

from ._actor import Actor

__all__ = ["ROUTINGS", "Autoscale", "Broadcast", "GetRoutees", "Pool", "PoolResized", "Resize", "Routing",
           "erlang_c_wait"]

T = TypeVar("T")
W = TypeVar("W", bound=ActorBase)

Routing = Literal["round_robin", "random", "smallest_mailbox", "consistent_hash", "broadcast", "balancing"]
"""The type of a :class:`Pool`'s ``routing`` option."""
ROUTINGS: Final = ("round_robin", "random", "smallest_mailbox", "consistent_hash", "broadcast", "balancing")
"""The routing logics a :class:`Pool` knows."""


# -- messages ------------------------------------------------------------------------------------------------


@attrs.frozen
class Broadcast:
    """Send ``message`` to every routee of a pool, whatever its routing: ``pool.tell(Broadcast(Reload()))``.

    ``Broadcast(PoisonPill())`` stops every routee once it has handled what is queued before it; the pool stops
    after its last routee. An ask of a broadcast answers the list of the routees' answers, in routee order (it
    raises the first failure instead, if any routee failed).
    """

    message: Any
    """What every routee receives."""


@attrs.frozen
class Resize:
    """Grow or shrink a pool to ``size`` routees (at least 1); an ask answers the new list of routees.

    New routees are started (and the ask answered) before the next message is routed. Shrinking removes the most
    recently started routees from the routing at once and stops them gracefully: each handles what is already
    queued for it, then stops.
    """

    size: int
    """The number of routees wanted."""


@attrs.frozen
class GetRoutees:
    """Ask a pool for its routees: the answer is a list of their refs, in start order.

    Management messages are handled in order with routed ones, so the answer reflects every earlier change.
    """


# -- sizing from the queue model ----------------------------------------------------------------------------


def erlang_c_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """The mean wait in queue (Wq, seconds) that queueing theory predicts for an M/M/c system (Erlang C).

    ``arrival_rate`` λ and ``service_rate`` μ (per server) are per second; ``servers`` is c. The wait is infinite
    when the servers cannot keep up (λ ≥ cμ) and 0 without arrivals. Computed through Erlang B's recurrence, which
    stays exact where the textbook sum of factorials overflows.
    """
    if servers < 1:
        raise ValueError(f"servers={servers!r} must be at least 1")
    if arrival_rate <= 0:
        return 0.0
    if service_rate <= 0 or arrival_rate >= servers * service_rate:
        return math.inf
    offered = arrival_rate / service_rate  # A, in erlangs
    blocking = 1.0  # Erlang B with 0 servers
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    waiting = servers * blocking / (servers - offered * (1 - blocking))  # Erlang C: P(an arrival waits)
    return waiting / (servers * service_rate - arrival_rate)


def _positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise ValueError(f"Autoscale {name}={value!r} must be a positive, finite number")

    return check


def _count(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Autoscale {name}={value!r} must be an integer of 1 or more")

    return check


@attrs.frozen
class Autoscale:
    """How a :class:`Pool` sizes itself from its queue figures: ``spawn(Pool, Worker, autoscale=Autoscale(max=8))``.

    Every ``interval`` seconds the pool takes its measured arrival rate λ and its routees' mean service rate μ,
    and wants the smallest size c in ``[min, max]`` whose M/M/c prediction meets the target: a predicted mean wait
    (:func:`erlang_c_wait`) of at most ``target_wait`` seconds when it is given, else a utilization λ/(cμ) of at
    most ``target_utilization``; ``max`` when none does. It grows at once, and shrinks only once it has wanted
    fewer routees for ``cooldown`` seconds. Until a routee has measured μ, it keeps ``min`` routees.
    """

    min: int = attrs.field(default=1, validator=_count("min"))
    """The fewest routees."""
    max: int = attrs.field(default=16, validator=_count("max"))
    """The most routees."""
    target_wait: float | None = attrs.field(default=None)
    """Seconds: the longest predicted mean wait in queue; ``None`` to size by utilization instead."""
    target_utilization: float = attrs.field(default=0.8)
    """The highest λ/(cμ), between 0 and 1 (used when ``target_wait`` is ``None``)."""
    interval: float = attrs.field(default=5.0, validator=_positive("interval"))
    """Seconds between two sizing decisions."""
    cooldown: float = attrs.field(default=30.0)
    """Seconds the pool must have wanted fewer routees before it shrinks."""

    def __attrs_post_init__(self) -> None:
        if self.max < self.min:
            raise ValueError(f"Autoscale max={self.max!r} must be at least min={self.min!r}")
        if self.target_wait is not None:
            _positive("target_wait")(self, None, self.target_wait)
        utilization = self.target_utilization
        if isinstance(utilization, bool) or not isinstance(utilization, int | float) or not 0 < utilization <= 1:
            raise ValueError(f"Autoscale target_utilization={utilization!r} must be a number in (0, 1]")
        cooldown = self.cooldown
        if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not 0 <= cooldown < math.inf:
            raise ValueError(f"Autoscale cooldown={cooldown!r} must be a finite number of seconds, 0 or more")

    def size_for(self, arrival_rate: float, service_rate: float) -> tuple[int, float]:
        """The size this policy wants for λ = ``arrival_rate`` and μ = ``service_rate``, and its predicted wait."""
        for servers in range(self.min, self.max + 1):
            wait = erlang_c_wait(arrival_rate, service_rate, servers)
            if self.target_wait is not None:
                if wait <= self.target_wait:
                    return servers, wait
            elif arrival_rate <= self.target_utilization * servers * service_rate:
                return servers, wait
        return self.max, erlang_c_wait(arrival_rate, service_rate, self.max)


@attrs.frozen
class PoolResized:
    """Published on the event stream each time an autoscaling pool changes its size."""

    pool: ActorRef
    """The pool."""
    size: int
    """Its new number of routees."""
    previous: int
    """Its number of routees before."""
    reason: str
    """Why: the measured λ and μ and the predicted wait at the new size."""


@attrs.frozen
class _Rescale:
    """The autoscaling pool's own periodic tick."""


_RESCALE: Final = _Rescale()


# -- routing decisions ---------------------------------------------------------------------------------------


class RoundRobin(Generic[T]):
    """Each routee in turn: n messages to n routees go one to each."""

    def __init__(self) -> None:
        self._next = 0

    def select(self, message: object, routees: Sequence[T]) -> T:
        """The routee for ``message``; ``routees`` is not empty."""
        index = self._next % len(routees)
        self._next = index + 1
        return routees[index]


class RandomRouting(Generic[T]):
    """A routee chosen uniformly at random by ``rng`` (uniform floats in [0, 1); the system's seeded one)."""

    def __init__(self, rng: Callable[[], float]) -> None:
        self._rng = rng

    def select(self, message: object, routees: Sequence[T]) -> T:
        """The routee for ``message``; ``routees`` is not empty."""
        return routees[min(int(self._rng() * len(routees)), len(routees) - 1)]


class SmallestMailbox(Generic[T]):
    """The routee with the fewest queued messages (``length(routee)``); ties are spread round-robin."""

    def __init__(self, length: Callable[[T], int]) -> None:
        self._length = length
        self._start = 0

    def select(self, message: object, routees: Sequence[T]) -> T:
        """The routee for ``message``; ``routees`` is not empty."""
        count = len(routees)
        start = self._start % count
        self._start = start + 1
        best = routees[start]
        best_length = self._length(best)
        for offset in range(1, count):
            if best_length == 0:
                break
            routee = routees[(start + offset) % count]
            length = self._length(routee)
            if length < best_length:
                best, best_length = routee, length
        return best


def key_bytes(key: object) -> bytes:
    """The bytes a consistent-hash key is hashed from: ``str`` as UTF-8, ``bytes`` as is, ``int`` in decimal.

    Raises :class:`TypeError` naming any other value: only these have a representation that is the same in
    every process (Python's ``hash()`` of a ``str`` is not).
    """
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes | bytearray):
        return bytes(key)
    if isinstance(key, int):
        return str(int(key)).encode("ascii")
    raise TypeError(f"consistent-hash key {key!r} must be a str, bytes or int; make key= return one")


def _point(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HashRing:
    """A consistent-hash ring: each node owns ``virtual_nodes`` points of a 64-bit circle.

    A key belongs to the node owning the first point at or after the key's hash (wrapping round). The hash is
    BLAKE2b, so the ring is the same in every process and every run. Adding a node moves only the keys that the new
    node takes over; removing one moves only its own keys.
    """

    def __init__(self, virtual_nodes: int = 100) -> None:
        if isinstance(virtual_nodes, bool) or not isinstance(virtual_nodes, int) or virtual_nodes < 1:
            raise ValueError(f"virtual_nodes={virtual_nodes!r} must be an integer of 1 or more")
        self.virtual_nodes = virtual_nodes
        """Points per node: more spread the keys more evenly."""
        self._ring: list[tuple[int, str]] = []
        self._points: list[int] = []
        self._nodes: set[str] = set()

    def add(self, node: str) -> None:
        """Put ``node`` on the ring (no-op if it is there)."""
        if node in self._nodes:
            return
        self._nodes.add(node)
        prefix = node.encode("utf-8", "surrogatepass") + b"\x00"
        self._ring.extend((_point(prefix + str(i).encode("ascii")), node) for i in range(self.virtual_nodes))
        self._reindex()

    def remove(self, node: str) -> None:
        """Take ``node`` off the ring (no-op if it is not there)."""
        if node not in self._nodes:
            return
        self._nodes.discard(node)
        self._ring = [entry for entry in self._ring if entry[1] != node]
        self._reindex()

    def _reindex(self) -> None:
        self._ring.sort()
        self._points = [point for point, _ in self._ring]

    def lookup(self, key: bytes) -> str:
        """The node that owns ``key``; raises :class:`LookupError` on an empty ring."""
        if not self._ring:
            raise LookupError("the hash ring has no nodes")
        index = bisect.bisect_left(self._points, _point(key))
        return self._ring[index % len(self._ring)][1]

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes on the ring."""
        return frozenset(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"<HashRing nodes={len(self._nodes)} virtual_nodes={self.virtual_nodes}>"


class ConsistentHash(Generic[T]):
    """The routee that owns ``key(message)`` on a :class:`HashRing` of the routees' ``node_id``.

    The same key goes to the same routee while the set of routees is stable. Raises what ``key`` raises, and
    :class:`TypeError` for a key that is not a ``str``, ``bytes`` or ``int``.
    """

    def __init__(self, key: Callable[[Any], object], node_id: Callable[[T], str], virtual_nodes: int = 100) -> None:
        self._key = key
        self._node_id = node_id
        self._ring = HashRing(virtual_nodes)
        self._by_node: dict[str, T] = {}

    def select(self, message: object, routees: Sequence[T]) -> T:
        """The routee for ``message``: one of those last given to :meth:`changed`, which is not empty."""
        return self._by_node[self._ring.lookup(key_bytes(self._key(message)))]

    def changed(self, routees: Sequence[T]) -> None:
        """Make the ring hold exactly ``routees``; call it whenever they change."""
        by_node = {self._node_id(routee): routee for routee in routees}
        for node in self._ring.nodes - by_node.keys():
            self._ring.remove(node)
        for node in by_node:
            self._ring.add(node)
        self._by_node = by_node


# -- forwarding ----------------------------------------------------------------------------------------------


def _mailbox_length(ref: ActorRef) -> int:
    return ref.mailbox_length


def _relay(reply: ReplyRef, future: Future[Any]) -> None:
    """Answer the original ask with what the routee answered (or raised)."""
    error = future.exception()
    if error is None:
        reply.tell(future.result())
    else:
        reply.fail(error)


class _Gather:
    """Collects every routee's answer to a broadcast ask, then answers the list (or the first failure)."""

    def __init__(self, reply: ReplyRef, count: int) -> None:
        self._reply = reply
        self._results: list[Any] = [None] * count
        self._errors: list[BaseException | None] = [None] * count
        self._pending = count

    def done(self, index: int, future: Future[Any]) -> None:
        """Record routee ``index``'s answer (a future's done-callback)."""
        error = future.exception()
        self.settle(index, None if error is not None else future.result(), error)

    def settle(self, index: int, result: Any, error: BaseException | None) -> None:
        """Record routee ``index``'s answer; once all are in, answer the ask."""
        self._results[index] = result
        self._errors[index] = error
        self._pending -= 1
        if self._pending:
            return
        first = next((error for error in self._errors if error is not None), None)
        if first is None:
            self._reply.tell(self._results)
        else:
            self._reply.fail(first)


# -- the actor -----------------------------------------------------------------------------------------------


class Pool(Actor, CallForwarder[W]):
    """A router actor whose routees are its children: ``await system.spawn(Pool, Worker, *args, size=4)``.

    ``Pool(factory, *args, size, routing="round_robin", key=None, virtual_nodes=100, spread=False, **kwargs)``
    starts ``size`` routees ``factory(*args, **kwargs)`` (named ``routee-1``, ``routee-2``, ...), each on the
    live worker with the fewest actors when ``spread`` is true (``ActorSystem(workers=N)``), and routes every
    other message to them, keeping the original sender: a routee's ``self.sender`` is whoever told the pool, and
    an ask to the pool is answered (or failed) by the routee that handled it. ``routing`` is one of :data:`ROUTINGS`:

    - ``"round_robin"``: each routee in turn;
    - ``"random"``: uniformly at random (``ActorSystem(seed=...)`` makes it reproducible);
    - ``"smallest_mailbox"``: the routee with the fewest queued messages;
    - ``"consistent_hash"``: by ``key(message)`` (a ``str``, ``bytes`` or ``int``) on a hash ring with
      ``virtual_nodes`` points per routee: the same key reaches the same routee while the routees stay the same;
    - ``"broadcast"``: every message to every routee (as if wrapped in :class:`Broadcast`);
    - ``"balancing"``: the routees share one queue, and each takes the next message only when it is free, so no
      message waits while a routee is idle (Akka's BalancingPool). It is the M/M/c queue that
      :func:`erlang_c_wait` describes: with one queue per routee (every other routing) messages wait behind a
      busy routee while another is free. The shared queue lives in the pool's process (no ``spread``) and is
      unbounded; a routee's own ``mailbox=`` bound never comes into play, as it holds one message at a time.
      Its figures are in the routees' rows: each message is timed from the moment the pool queued it to the end
      of its handling, so a routee's ``mean_wait`` is the wait in the shared queue and ``mean_sojourn`` the
      whole time in the pool, and ``system.statistics().by_class()`` of the routees' class sums them into the
      M/M/c system's λ, Lq, Wq, L and W (L = λW). The pool's own row counts only its arrivals (the λ
      ``autoscale`` reads) and the moment it takes to queue each message.

    Method calls are routed like any message: ``await pool.call(Worker.work, job)`` runs ``work`` on one routee,
    which checks the method. To a type checker a pool of ``Worker`` is a ``Pool[Worker]`` (spawn
    ``Pool[Worker]`` for a checked ref; plain ``Pool`` gives a ``Pool[Any]``, whose calls are not checked), its
    routees are ``ActorRef[Worker]``, and its ref's ``call`` takes ``Worker``'s methods.

    Management messages, handled by the pool itself and never routed: :class:`Resize`, :class:`GetRoutees`,
    :class:`Broadcast` (its payload goes to every routee) and the ``Terminated`` of its routees. ``PoisonPill``
    acts on the pool itself (it stops with its routees); ``Broadcast(PoisonPill())`` reaches the routees.

    The routees are supervised with the pool's ``supervision=`` spawn option (default: the system's default
    strategy) and are ``"transient"``: a failed routee is restarted behind the same ref, keeping its mailbox; a
    routee that stops is removed from the routing, and when the last one has stopped the pool stops too. A
    restarted pool starts ``size`` fresh routees. A message that cannot be routed (its key function raised, a full
    routee mailbox whose policy is ``"fail"``) is refused: an ask raises the error, a tell becomes a dead letter;
    the pool keeps running. When a balancing pool stops, the messages still in its shared queue are treated as a
    stopped actor's mailbox: asks fail with :class:`~actors.ActorStopped`, tells become dead letters.

    With ``autoscale=Autoscale(...)`` instead of ``size``, the pool sizes itself from its queue figures (see
    :class:`Autoscale`): it starts ``min`` routees, and publishes :class:`PoolResized` on the event stream at each
    change. A routee it removes is taken out of the routing at once and handles what it was sent before it stops,
    as with :class:`Resize`.

    A routee whose constructor takes a keyword named like an option of the pool or of ``spawn`` (``size``,
    ``routing``, ``key``, ``virtual_nodes``, ``spread``, ``autoscale``, ``name``, ...) gets it through the
    factory: ``spawn(Pool, functools.partial(Worker, size=10), size=4)``.
    """

    def __init__(self, factory: Callable[..., W], /, *args: Any, size: int | None = None,
                 routing: Routing = "round_robin", key: Callable[[Any], object] | None = None,
                 virtual_nodes: int = 100, spread: bool = False, autoscale: Autoscale | None = None,
                 **kwargs: Any) -> None:
        if autoscale is None:
            if size is None:
                raise ValueError("a Pool needs size=, its number of routees, or autoscale=Autoscale(...)")
            _check_size(size)
        elif not isinstance(autoscale, Autoscale):
            raise TypeError(f"autoscale={autoscale!r} must be an Autoscale")
        elif size is not None:
            raise ValueError(f"a Pool takes size= or autoscale=, not both (size={size!r})")
        else:
            size = autoscale.min
        if spread.__class__ is not bool:
            raise TypeError(f"spread={spread!r} must be True or False")
        if routing not in ROUTINGS:
            raise ValueError(f"routing={routing!r} is not a routing logic; use one of "
                             f"{', '.join(map(repr, ROUTINGS))}")
        if routing == "balancing" and spread:
            raise ValueError("routing='balancing' shares one queue in the pool's process; it cannot spread=True "
                             "its routees to other nodes")
        if routing == "consistent_hash" and key is None:
            raise ValueError("routing='consistent_hash' needs key=, a function from a message to its hash key")
        if key is not None and not callable(key):
            raise TypeError(f"key={key!r} must be a function from a message to its hash key")
        self.routing: Routing = routing
        """The routing logic's name."""
        self._routee = SpawnSpec.of(factory, args, kwargs, restart="transient", node="spread" if spread else None)
        self._size = size
        self._autoscale = autoscale
        self._shrink_since: float | None = None
        """When the autoscaler first wanted fewer routees than it has, in this stretch of wanting fewer."""
        self._routees: list[ActorRef[W]] = []
        self._started = 0
        self._shared = SharedQueue(self.system, self.ref) if routing == "balancing" else None
        """The balancing pool's one queue, which its routees take from."""
        self._logic: RoundRobin[ActorRef[W]] | RandomRouting[ActorRef[W]] | SmallestMailbox[ActorRef[W]] | \
            ConsistentHash[ActorRef[W]] | None
        if routing == "round_robin":
            self._logic = RoundRobin()
        elif routing == "random":
            self._logic = RandomRouting(self.system.random)
        elif routing == "smallest_mailbox":
            self._logic = SmallestMailbox(_mailbox_length)
        elif routing == "consistent_hash":
            assert key is not None
            self._logic = ConsistentHash(key, _routee_name, virtual_nodes)
        else:
            self._logic = None

    @property
    def routees(self) -> list[ActorRef[W]]:
        """The routees, in start order."""
        return list(self._routees)

    async def on_start(self) -> None:
        """Start the routees (and the autoscaler's tick)."""
        await self._grow(self._size)
        if self._autoscale is not None:
            self.timers.start_periodic(_RESCALE, self._autoscale.interval, _RESCALE)

    async def on_stop(self) -> None:
        """Refuse what is still in a balancing pool's shared queue, as a stopped actor's mailbox would."""
        if self._shared is not None:
            self._shared.close()

    async def _grow(self, size: int) -> None:
        while len(self._routees) < size:
            self._started += 1
            ref = await self._context.spawn_child(self._routee.renamed(f"routee-{self._started}"),
                                                  shared=self._shared)
            self.watch(ref)
            self._routees.append(ref)
            self._changed()

    def _changed(self) -> None:
        if isinstance(self._logic, ConsistentHash):
            self._logic.changed(self._routees)

    async def receive(self, message: Any) -> Any:
        """Route ``message``, or handle it if it is a management message."""
        if isinstance(message, Terminated):
            return self._removed(message.ref)
        if isinstance(message, GetRoutees):
            return self.routees
        if isinstance(message, Resize):
            return await self._resize(message)
        if message is _RESCALE:
            await self._rescale()
            return None
        if not self._routees:
            return Reply.error(ActorStopped(f"{self.ref!r} has no routees left; {message!r} was not routed"))
        if isinstance(message, Broadcast):
            return self._broadcast(message.message)
        if self._shared is not None:
            self._context.forward(self._shared, message)  # to the first routee that is free
            return None
        if self._logic is None:
            return self._broadcast(message)
        try:
            routee = self._logic.select(message, self._routees)
        except Exception as exc:
            return Reply.error(exc)
        self._forward(routee, message)
        return None

    def _removed(self, ref: ActorRef) -> None:
        if ref not in self._routees:
            return
        if self._shared is not None:
            self._shared.leave(ref)
        self._routees.remove(ref)
        self._changed()
        if not self._routees:
            self.stop()

    async def _resize(self, message: Resize) -> Any:
        try:
            _check_size(message.size)
        except ValueError as exc:
            return Reply.error(exc)
        if message.size < len(self._routees):
            removed = self._routees[message.size:]
            del self._routees[message.size:]
            self._changed()
            for ref in reversed(removed):
                if self._shared is not None:
                    self._shared.leave(ref)  # it takes no new work; the one message it holds, it finishes
                ref.tell(PoisonPill())
        else:
            try:
                await self._grow(message.size)
            except Exception as exc:
                return Reply.error(exc)
        return self.routees

    async def _rescale(self) -> None:
        """One autoscaling decision from the pool's and its routees' figures (see :class:`Autoscale`)."""
        policy = self._autoscale
        assert policy is not None
        me = self.ref
        figures = self.system.statistics(me).actors
        own = figures.get(me.path)
        rates = [s.service_rate for s in (figures.get(ref.path) for ref in self._routees)
                 if s is not None and s.service_rate > 0]
        current = len(self._routees)
        if own is None or not rates:  # nothing measured yet: hold at min
            wanted, wait, arrivals, service = policy.min, math.nan, 0.0, 0.0
        else:
            # The pool's own ticks arrive at it too, one per interval: they are not work for the routees.
            arrivals = max(0.0, own.arrival_rate - 1 / policy.interval)
            service = sum(rates) / len(rates)
            wanted, wait = policy.size_for(arrivals, service)
        if wanted >= current:
            self._shrink_since = None
            if wanted == current:
                return
        else:
            now = trio.current_time()
            if self._shrink_since is None:
                self._shrink_since = now
            if now - self._shrink_since < policy.cooldown:
                return
            self._shrink_since = None
        await self._resize(Resize(wanted))
        self.system.publish(PoolResized(me, len(self._routees), current, (
            f"λ={arrivals:.3g}/s μ={service:.3g}/s: {wanted} routees predict a mean wait of {wait:.3g} s")))

    def _forward(self, routee: ActorRef, message: object) -> None:
        try:
            self.forward(routee, message)
        except MailboxFull as exc:
            sender = self.sender
            if isinstance(sender, ReplyRef):
                sender.fail(exc)
            else:
                self._overflowed(message, sender, routee)

    def _broadcast(self, message: object) -> None:
        routees = self._routees
        if self._shared is not None and isinstance(message, PoisonPill):
            # One pill a routee, behind what is waiting: each routee takes one (a stopping routee takes nothing
            # more), so the shared queue is worked off first. An ask of it is answered by the first routee.
            for _ in routees:
                self._context.forward(self._shared, message)
            return
        sender = self.sender
        if not isinstance(sender, ReplyRef) or isinstance(message, PoisonPill):
            # Told (or a PoisonPill, which each routee takes; an ask of it is answered by the first routee).
            for routee in routees:
                try:
                    self.forward(routee, message)
                except MailboxFull:
                    self._overflowed(message, None if isinstance(sender, ReplyRef) else sender, routee)
            return
        reply = self.defer_reply()
        assert isinstance(reply, ReplyRef)
        gather = _Gather(reply, len(routees))
        for index, routee in enumerate(routees):
            try:
                future = routee.request(message)
            except MailboxFull as exc:
                gather.settle(index, None, exc)
            else:
                future.add_done_callback(functools.partial(gather.done, index))

    def _overflowed(self, message: object, sender: ActorRef | None, routee: ActorRef) -> None:
        """A told message met a routee's full mailbox: the teller cannot get the error, so it is a dead letter."""
        self.system.dead_letter(message, sender, routee, "overflow")

    def __repr__(self) -> str:
        where = "not spawned" if self._cell is None else repr(self._cell.path)
        scaling = "" if self._autoscale is None else " autoscaled"
        waiting = "" if self._shared is None else f" waiting={len(self._shared)}"
        return f"<Pool {where} {self.routing}{scaling} routees={len(self._routees)}{waiting}>"


def _routee_name(ref: ActorRef) -> str:
    return ref.name


def _check_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"pool size={size!r} must be an integer of 1 or more")
