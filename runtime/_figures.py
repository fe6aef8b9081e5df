"""Queue figures for every actor: arrival rate λ, service rate μ, utilization ρ, and the two pairs Lq/Wq (waiting)
and L/W (in the system: waiting or in service).

- λ: messages queued per second; μ: 1 / mean handling time; ρ = λ / μ.
- Lq: time-average number of messages waiting (the mailbox's length); Wq: mean seconds from enqueue to the start
  of handling.
- L: time-average number waiting or in service (the mailbox's length, plus one while a handler runs); W: mean
  seconds from enqueue to the end of handling (the sojourn).

The per-message cost is a counter increment. No clock is read per message: one message in ``sample_every`` is
stamped when it is queued (and, after each metrics tick, the next one to arrive), and its wait, handling time and
sojourn are measured from that stamp. The mailbox's length and whether a handler is running are sampled by the
system's metrics tick at a fixed period, which gives the time averages Lq and L independently of the message
samples, so Little's law (Lq = λWq, L = λW) is a real check on the figures rather than an identity: it holds to
sampling noise because both sides count the same messages over the same window.

Figures cover a sliding window made of buckets; a bucket older than the window is dropped whole.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

__all__ = ["FIGURES_OFF", "RANKABLE", "ActorStatistics", "ClassStatistics", "Figures", "Metrics", "PendingFigures",
           "Row",
           "StatisticsRows", "SystemStatistics", "class_name", "from_row"]


@attrs.frozen
class Metrics:
    """How the runtime measures queues: ``ActorSystem(metrics=Metrics(window=60.0))``."""

    window: float = 60.0
    """Seconds of trio's clock that rates and means cover."""
    buckets: int = 12
    """How many pieces the window is kept in; the window slides by one piece at a time."""
    tick: float = 0.25
    """Seconds between two samples of every measured mailbox's length."""
    sample_every: int = 32
    """One message in this many is timestamped to measure waits and handling times (a power of two)."""
    enabled: bool = True
    """``False`` keeps only the counters (arrivals, handled, failed, restarts, lengths): no timestamps, no ticks,
    so rates and means read 0. For measuring what the figures cost."""

    def __attrs_post_init__(self) -> None:
        if not self.window > 0 or not self.tick > 0:
            raise ValueError(f"Metrics window={self.window!r} and tick={self.tick!r} must be positive")
        if isinstance(self.buckets, bool) or not isinstance(self.buckets, int) or self.buckets < 1:
            raise ValueError(f"Metrics buckets={self.buckets!r} must be an integer of 1 or more")
        n = self.sample_every
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n & (n - 1):
            raise ValueError(f"Metrics sample_every={n!r} must be a power of two (1, 2, 4, ...)")


@attrs.frozen
class ActorStatistics:
    """One actor's figures at one moment (see ``system.statistics()``)."""

    arrivals: int
    """Messages queued for it since it was spawned."""
    handled: int
    """Messages whose handling finished without an exception."""
    failed: int
    """Messages whose handling raised."""
    restarts: int
    """Times it was restarted."""
    mailbox_length: int
    """Messages queued now (not counting the one being handled)."""
    peak_mailbox_length: int
    """The longest its mailbox has been."""
    arrival_rate: float
    """λ: messages queued per second over the window."""
    service_rate: float
    """μ: messages handled per busy second (1 / mean handling time) over the window; 0 if none measured."""
    utilization: float
    """ρ = λ / μ; 0 when μ is unknown."""
    mean_queue_length: float
    """Lq: time-averaged number of messages waiting (the mailbox's length) over the window."""
    mean_wait: float
    """Wq: mean seconds from enqueue to the start of handling over the window."""
    handling_time_p50: float = 0.0
    """Median handling time of the sampled recent messages, in seconds."""
    handling_time_p90: float = 0.0
    """90th percentile handling time, in seconds."""
    handling_time_p99: float = 0.0
    """99th percentile handling time, in seconds."""
    state: str = "running"
    """``"starting"``, ``"running"``, ``"suspended"``, ``"restarting"``, ``"stopping"`` or ``"stopped"``."""
    children: Mapping[str, int] = attrs.field(factory=dict)
    """Its children counted by state."""
    restarts_in_window: int = 0
    """Restarts its supervisor counted against the restart intensity, within the strategy's window."""
    node: str = ""
    """The name of the node the actor runs on."""
    mean_in_system: float = 0.0
    """L: time-averaged number of messages waiting or in service over the window."""
    mean_sojourn: float = 0.0
    """W: mean seconds from enqueue to the end of handling over the window."""
    actor_class: str = ""
    """The actor's class, as ``module.QualifiedName`` (empty if unknown)."""


_FIELDS: Final = tuple(field.name for field in attrs.fields(ActorStatistics))
_INDEX: Final = {name: index for index, name in enumerate(_FIELDS)}
RANKABLE: Final = frozenset(
    field.name for field in attrs.fields(ActorStatistics) if field.type in (int, float, "int", "float"))
"""The figures actors can be ranked by (``statistics(by=...)``, :meth:`SystemStatistics.top`)."""
_CLASS = _INDEX["actor_class"]
_CHILDREN = _INDEX["children"]


def class_name(cls: type | None) -> str:
    """``module.QualifiedName`` of an actor class, as :attr:`ActorStatistics.actor_class` shows it."""
    return "" if cls is None else f"{cls.__module__}.{cls.__qualname__}"


Row = tuple[Any, ...]
"""An actor's figures as captured: the values of :class:`ActorStatistics`' fields in their order, except that
``children`` is ``None`` rather than an empty dict for an actor without children. Rows are many, so they hold only
numbers, strings and ``None``: Python's garbage collector then stops tracking them after its first look, and a
snapshot of a large system does not make later collections longer."""


class StatisticsRows(Mapping[str, ActorStatistics]):
    """The actors of a :class:`SystemStatistics`: a read-only mapping of path to :class:`ActorStatistics`.

    Every number is captured when the snapshot is taken (a tuple an actor), and an :class:`ActorStatistics` is
    built from them the first time it is looked up: the values are those of the moment of the snapshot whenever
    they are read, but a snapshot of 100k actors of which a dashboard reads ten builds ten. Aggregates
    (:meth:`SystemStatistics.by_class`) and rankings (:meth:`SystemStatistics.top`) read the captured numbers
    and build nothing.
    """

    __slots__ = ("_rows",)

    def __init__(self, rows: dict[str, Row | ActorStatistics]) -> None:
        self._rows = rows

    def __getitem__(self, path: str) -> ActorStatistics:
        value = self._rows[path]
        if isinstance(value, tuple):
            value = self._rows[path] = from_row(value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, path: object) -> bool:
        return path in self._rows

    def rows(self) -> Iterator[tuple[str, Row]]:
        """``(path, row)`` for every actor, without building :class:`ActorStatistics` (see :data:`Row`)."""
        for path, value in self._rows.items():
            yield path, value if isinstance(value, tuple) else _as_row(value)

    def __repr__(self) -> str:
        return f"<StatisticsRows of {len(self._rows)} actors>"

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self.items()),)


def from_row(row: Row) -> ActorStatistics:
    """The :class:`ActorStatistics` of a captured :data:`Row` (whose children are ``None`` for none)."""
    children = row[_CHILDREN]
    if children is None:
        row = (*row[:_CHILDREN], {}, *row[_CHILDREN + 1:])
    return ActorStatistics(*row)


def _as_row(stats: ActorStatistics) -> Row:
    """The row of an :class:`ActorStatistics` already built."""
    return tuple(getattr(stats, name) for name in _FIELDS)


def _rows(actors: Mapping[str, ActorStatistics]) -> Iterator[tuple[str, Row]]:
    if isinstance(actors, StatisticsRows):
        return actors.rows()
    return ((path, _as_row(stats)) for path, stats in actors.items())


@attrs.frozen
class ClassStatistics:
    """The figures of all the live actors of one class on one node (:meth:`SystemStatistics.by_class`).

    Counts and lengths are sums over those actors; λ, Lq and L are sums too (the class seen as one queueing
    system), so Little's law holds on the class as on each actor: the waits are λ-weighted means.
    """

    actor_class: str
    """``module.QualifiedName``."""
    node: str
    """The node they run on."""
    actors: int
    """How many there are."""
    arrivals: int
    """Messages queued for them since each was spawned (actors that stopped no longer count)."""
    handled: int
    """Messages they handled without an exception."""
    failed: int
    """Messages whose handling raised."""
    restarts: int
    """Restarts of these actors."""
    mailbox_length: int
    """Messages queued now, all of them."""
    max_mailbox_length: int
    """The longest mailbox among them now."""
    arrival_rate: float
    """Σλ: messages queued per second over the window."""
    max_utilization: float
    """The largest ρ among them."""
    mean_queue_length: float
    """ΣLq: time-averaged number of messages waiting."""
    mean_in_system: float
    """ΣL: time-averaged number of messages waiting or in service."""
    mean_wait: float
    """Wq averaged over their messages (weighted by λ)."""
    mean_sojourn: float
    """W averaged over their messages (weighted by λ)."""


_ARRIVALS, _HANDLED, _FAILED, _RESTARTS, _LENGTH = (_INDEX[name] for name in (
    "arrivals", "handled", "failed", "restarts", "mailbox_length"))
_LAMBDA, _RHO, _LQ, _WQ, _L, _W, _NODE = (_INDEX[name] for name in (
    "arrival_rate", "utilization", "mean_queue_length", "mean_wait", "mean_in_system", "mean_sojourn", "node"))


@attrs.frozen
class SystemStatistics:
    """The whole system's figures: ``system.statistics()``."""

    dead_letters: int
    """Messages that could not be delivered, since the system started."""
    actors: Mapping[str, ActorStatistics]
    """Each live actor's path mapped to its figures."""
    pending_asks: int = 0
    """Requests still waiting for an answer."""

    def top(self, k: int, by: str = "mailbox_length") -> SystemStatistics:
        """The same snapshot keeping only the ``k`` actors with the largest ``by`` figure, largest first."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"top({k!r}): k must be an int of at least 1")
        if by not in RANKABLE:
            raise ValueError(f"top(by={by!r}): by must be one of {', '.join(sorted(RANKABLE))}")
        if len(self.actors) <= k:
            return self
        index = _INDEX[by]
        ranked = heapq.nlargest(k, _rows(self.actors), key=lambda item: item[1][index])
        if isinstance(self.actors, StatisticsRows):
            actors: Mapping[str, ActorStatistics] = StatisticsRows(dict(ranked))
        else:
            actors = {path: self.actors[path] for path, _ in ranked}
        return attrs.evolve(self, actors=actors)

    def matching(self, text: str) -> SystemStatistics:
        """The same snapshot keeping only the actors whose path contains ``text``."""
        if isinstance(self.actors, StatisticsRows):
            actors: Mapping[str, ActorStatistics] = StatisticsRows(
                {path: row for path, row in self.actors.rows() if text in path})
        else:
            actors = {path: stats for path, stats in self.actors.items() if text in path}
        return attrs.evolve(self, actors=actors)

    def by_class(self) -> dict[tuple[str, str], ClassStatistics]:
        """The actors' figures summed by ``(class, node)`` (see :class:`ClassStatistics`), built from the numbers
        the snapshot captured: cheap even when it holds every actor of a large system."""
        sums: dict[tuple[str, str], list[Any]] = {}
        for _, row in _rows(self.actors):
            key = (row[_CLASS], row[_NODE])
            acc = sums.get(key)
            if acc is None:
                acc = sums[key] = [0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
            lam = row[_LAMBDA]
            acc[0] += 1
            acc[1] += row[_ARRIVALS]
            acc[2] += row[_HANDLED]
            acc[3] += row[_FAILED]
            acc[4] += row[_RESTARTS]
            length = row[_LENGTH]
            acc[5] += length
            if length > acc[6]:
                acc[6] = length
            acc[7] += lam
            if row[_RHO] > acc[8]:
                acc[8] = row[_RHO]
            acc[9] += row[_LQ]
            acc[10] += row[_L]
            acc[11] += lam * row[_WQ]
            acc[12] += lam * row[_W]
        result = {}
        for (name, node), acc in sums.items():
            lam = acc[7]
            result[name, node] = ClassStatistics(
                actor_class=name, node=node, actors=acc[0], arrivals=acc[1], handled=acc[2], failed=acc[3],
                restarts=acc[4], mailbox_length=acc[5], max_mailbox_length=acc[6], arrival_rate=lam,
                max_utilization=acc[8], mean_queue_length=acc[9], mean_in_system=acc[10],
                mean_wait=acc[11] / lam if lam > 0 else 0.0, mean_sojourn=acc[12] / lam if lam > 0 else 0.0)
        return result


class _Off:
    """The figures of an actor in a system with ``Metrics(enabled=False)``: nothing to keep."""

    active = True

    def __bool__(self) -> bool:
        return False


FIGURES_OFF = _Off()


class PendingFigures:
    """The figures of an actor that has been scheduled but not yet visited by a metrics tick: when and at which
    arrival count it was first scheduled, from which that tick makes its :class:`Figures`.

    So the first message to an idle actor (one to each of a million, say) makes one small object, not a whole set
    of figures with its buckets: the tick makes those, within its share of the loop. A timed message before that
    has them made at once; until then, its statistics read as zeros.
    """

    __slots__ = ("arrivals", "since")

    active = True
    """Like measured figures: the actor is with the tick already."""

    def __init__(self, since: float, arrivals: int) -> None:
        self.since = since
        self.arrivals = arrivals

    def __bool__(self) -> bool:
        return False

    def made(self, metrics: Metrics) -> Figures:
        """The actor's figures, as they would have been made when it was first scheduled."""
        return Figures(self.since, self.arrivals, metrics)


class _Bucket:
    __slots__ = ("arrivals0", "busy_n", "len_n", "len_sum", "service_n", "service_sum", "start", "wait_n", "wait_sum")

    def __init__(self, start: float, arrivals0: int) -> None:
        self.start = start
        self.arrivals0 = arrivals0
        self.len_sum = 0
        self.len_n = 0
        self.busy_n = 0
        """Ticks that found a handler running (the one message in service)."""
        self.wait_sum = 0.0
        self.wait_n = 0
        self.service_sum = 0.0
        self.service_n = 0


_ZEROS: Final = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


PARK_AFTER_TICKS: Final = 2
"""Consecutive metrics ticks that find an actor idle (empty mailbox, no handler running) before it is parked.

Short, so that the tick visits only the actors that have been busy lately: after one message to each of a million
idle actors, a tick that went on visiting every one of them for a whole window (60 s by default) would take longer
than the interval between ticks."""


class Figures:
    """The sampled measurements of one actor, kept in window buckets. Made by the first metrics tick after it was
    first sent a message (see :class:`PendingFigures`).

    Besides the buckets it keeps their running sums: a sample is added to its bucket and to the sums, and a
    bucket that leaves the window (noticed by the next sample, or by the next read) is subtracted from them. So
    :meth:`rates` costs the same whatever the window's shape: ``statistics()`` of a large system reads sums, it
    does not add buckets up.

    An actor whose mailbox stays empty for a whole window is *parked*: the metrics tick stops visiting it (so
    a system with many quiet actors costs the tick nothing for them) and it drops its empty mailbox queue. When
    it is scheduled again it resumes, and the idle stretch counts as zero-length samples, so λ and L stay right.
    """

    __slots__ = ("_buckets", "_busy_n", "_horizon", "_len_n", "_len_sum", "_percentiles", "_service_n", "_service_sum",
                 "_span", "_tick", "_wait_n", "_wait_sum", "_window", "active", "idle_ticks", "parked_at",
                 "recent_service", "ticked_arrivals")

    def __init__(self, now: float, arrivals: int, metrics: Metrics) -> None:
        self._window = metrics.window
        self._span = metrics.window / metrics.buckets
        self._horizon = self._window + self._span
        """A bucket that started longer ago than this has left the window."""
        self._tick = metrics.tick
        self._buckets: deque[_Bucket] = deque([_Bucket(now, arrivals)])
        # The sums of the buckets' fields (see the class docstring).
        self._len_sum = self._len_n = self._busy_n = self._wait_n = self._service_n = 0
        self._wait_sum = self._service_sum = 0.0
        self.recent_service: deque[float] | None = None
        """The handling times of the last 256 sampled messages; made with the first (an actor that is sent one
        message, as most of a million may be, never needs it)."""
        self._percentiles: tuple[float, float, float] | None = (0.0, 0.0, 0.0)
        """The percentiles of ``recent_service``; ``None`` once a sample has changed it."""
        self.active = True
        """Whether the metrics tick visits this actor (False once parked)."""
        self.idle_ticks = 0
        """Consecutive ticks that found the mailbox empty and the actor idle."""
        self.parked_at = now
        self.ticked_arrivals = arrivals
        """The actor's arrival count at the last metrics tick."""

    @property
    def idle_limit(self) -> int:
        """Consecutive ticks that found the actor idle after which it is parked: :data:`PARK_AFTER_TICKS`, or a
        whole window if that is shorter. Parking loses nothing: the ticks it skips would each have seen an empty
        mailbox, and :meth:`rates` (while parked) and :meth:`resume` count them as such."""
        return max(1, min(PARK_AFTER_TICKS, int(self._window / self._tick)))

    def park(self, now: float) -> None:
        """Stop being visited by the tick until :meth:`resume`."""
        self.active = False
        self.parked_at = now

    def resume(self, now: float, arrivals: int) -> None:
        """Visited again: the time parked (within the window) counts as ticks that saw an empty mailbox."""
        idle = min(now - self.parked_at, self._window)
        if idle > 0:
            # Nothing arrived while it was parked but what resumes it (already counted in ``arrivals``): the
            # stretch starts at the count the parking tick saw.
            bucket = _Bucket(now - idle, self.ticked_arrivals)
            bucket.len_n = int(idle / self._tick)
            self._expire(now)
            self._buckets.append(bucket)
            self._len_n += bucket.len_n
        self.active = True
        self.idle_ticks = 0
        self.ticked_arrivals = arrivals

    def _expire(self, now: float) -> None:
        """Drop the buckets that have left the window ending at ``now``, and take them out of the sums."""
        buckets = self._buckets
        oldest = now - self._horizon
        while buckets and buckets[0].start < oldest:
            b = buckets.popleft()
            self._len_sum -= b.len_sum
            self._len_n -= b.len_n
            self._busy_n -= b.busy_n
            self._wait_sum -= b.wait_sum
            self._wait_n -= b.wait_n
            self._service_sum -= b.service_sum
            self._service_n -= b.service_n
        if not buckets:  # exact zeros, whatever rounding the subtractions left in the float sums
            self._wait_sum = self._service_sum = 0.0

    def _current(self, now: float, arrivals: int) -> _Bucket:
        buckets = self._buckets
        if buckets:
            last = buckets[-1]
            if now - last.start < self._span:
                return last
        last = _Bucket(now, arrivals)
        buckets.append(last)
        self._expire(now)
        return last

    def sample_length(self, now: float, length: int, busy: bool, arrivals: int, ticks: int = 1) -> None:
        """Record what one metrics tick saw: the mailbox's length, and whether a handler was running; the sample
        stands for ``ticks`` tick intervals (the system ticks less often when it measures very many actors)."""
        bucket = self._current(now, arrivals)
        weighed = length * ticks
        bucket.len_sum += weighed
        bucket.len_n += ticks
        self._len_sum += weighed
        self._len_n += ticks
        if busy:
            bucket.busy_n += ticks
            self._busy_n += ticks

    def add_sample(self, stamp: tuple[float, int], started: float, finished: float, arrivals: int) -> None:
        """Record one sampled message: its wait (queued to started) and its handling time (started to finished),
        weighed by the number of arrivals it stands for. ``stamp`` is ``(queued, weight)``.

        A sampled message whose handling raised is not recorded.
        """
        queued, weight = stamp
        bucket = self._current(finished, arrivals)
        wait = weight * (started - queued)
        bucket.wait_sum += wait
        bucket.wait_n += weight
        self._wait_sum += wait
        self._wait_n += weight
        seconds = finished - started
        service = weight * seconds
        bucket.service_sum += service
        bucket.service_n += weight
        self._service_sum += service
        self._service_n += weight
        recent = self.recent_service
        if recent is None:
            recent = self.recent_service = deque(maxlen=256)
        recent.append(seconds)
        self._percentiles = None

    def rates(self, now: float, arrivals: int) -> tuple[float, float, float, float, float, float, float]:
        """``(λ, μ, ρ, Lq, Wq, L, W)`` over the window ending at ``now``: a read of the running sums."""
        buckets = self._buckets
        if not buckets:
            return _ZEROS
        first = buckets[0]
        if first.start < now - self._horizon:
            self._expire(now)
            if not buckets:
                return _ZEROS
            first = buckets[0]
        span = now - first.start
        lam = (arrivals - first.arrivals0) / span if span > 0 else 0.0
        service_sum = self._service_sum
        mu = self._service_n / service_sum if service_sum > 0 else 0.0
        rho = lam / mu if mu > 0 else 0.0
        len_n = self._len_n
        if not self.active:  # the ticks skipped since it was parked, each of which would have seen it idle
            len_n += int(min(now - self.parked_at, self._window) / self._tick)
        if len_n:
            waiting = self._len_sum / len_n
            in_system = (self._len_sum + self._busy_n) / len_n
        else:
            waiting = in_system = 0.0
        wait_n = self._wait_n
        if wait_n:
            wait = self._wait_sum / wait_n
            # The sampled messages' sojourns are their waits plus their handling times (summed over the same ones).
            sojourn = (self._wait_sum + service_sum) / wait_n
        else:
            wait = sojourn = 0.0
        return lam, mu, rho, waiting, wait, in_system, sojourn

    def percentiles(self) -> tuple[float, float, float]:
        """Handling-time p50, p90 and p99 of the recent sampled messages (sorted again only after a new sample)."""
        cached = self._percentiles
        if cached is not None:
            return cached
        data = sorted(self.recent_service or ())
        if not data:
            cached = (0.0, 0.0, 0.0)
        else:
            last = len(data) - 1
            n = len(data)
            cached = (data[min(last, n // 2)], data[min(last, int(0.9 * n))], data[min(last, int(0.99 * n))])
        self._percentiles = cached
        return cached
