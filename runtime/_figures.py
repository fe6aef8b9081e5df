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

import functools
import heapq
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

__all__ = [
    "FIGURES_OFF",
    "PENDING",
    "RANKABLE",
    "ActorStatistics",
    "Captured",
    "ClassStatistics",
    "Figures",
    "Metrics",
    "Row",
    "StatisticsRows",
    "Sums",
    "SystemStatistics",
    "class_name",
    "derived",
    "expand",
    "from_row",
]


@attrs.frozen
class Metrics:
    """How the runtime measures queues: ``ActorSystem(metrics=Metrics(window=60.0))``."""

    window: float = 60.0
    """Seconds of trio's clock that rates and means cover."""
    buckets: int = 12
    """How many pieces the window is kept in; the window slides by one piece at a time."""
    tick: float = 0.25
    """Seconds between two metrics ticks: each one chooses which of an actor's next messages are timed, and
    parks the actors that have been quiet for a whole window."""
    sample_every: int = 64
    """One message in this many is timed (queued, started, finished), a power of two; every message is, while an
    actor receives fewer than this many a tick on average over the window."""
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

    Every number is captured when the snapshot is taken, a tuple of atoms an actor: a :data:`Captured` for this
    node's actors (read at ``now``, unless it carries its instant, on ``node``), a :data:`Row` for those other
    nodes reported (told apart by their length). An :class:`ActorStatistics` is built from them the first time it
    is looked up: the values are those of the moment of the snapshot whenever they are read, but a snapshot of 100k
    actors of which a dashboard reads ten builds ten. Aggregates (:meth:`SystemStatistics.by_class`) and rankings
    (:meth:`SystemStatistics.top`) read the captured numbers and build nothing.
    """

    __slots__ = ("_node", "_now", "_rows")

    def __init__(self, rows: dict[str, Any], now: float = 0.0, node: str = "") -> None:
        self._rows = rows
        self._now = now
        """When the :data:`Captured` rows were captured."""
        self._node = node
        """The node they were captured on."""

    def __getitem__(self, path: str) -> ActorStatistics:
        value = self._rows[path]
        if isinstance(value, tuple):
            value = self._rows[path] = from_row(self._row(value))
        built: ActorStatistics = value
        return built

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, path: object) -> bool:
        return path in self._rows

    def _row(self, value: Captured | Row) -> Row:
        return value if len(value) == _ROW_LENGTH else expand(value, self._now, self._node)

    def rows(self) -> Iterator[tuple[str, Row]]:
        """``(path, row)`` for every actor, without building :class:`ActorStatistics` (see :data:`Row`)."""
        for path, value in self._rows.items():
            yield path, self._row(value) if isinstance(value, tuple) else _as_row(value)

    def _keeping(self, rows: dict[str, Any]) -> StatisticsRows:
        """These rows, captured when and where this snapshot's were."""
        return StatisticsRows(rows, self._now, self._node)

    def _largest(self, k: int, index: int) -> list[tuple[str, Any]]:
        """The ``k`` items of ``_rows`` with the largest figure at ``index`` of a :data:`Row`, largest first;
        figures a capture holds as they are are read from it, the others worked out for that figure alone."""
        now = self._now
        at = _CAPTURED_INDEX.get(index)
        of = _DERIVED_INDEX.get(index, 0)

        def figure(item: tuple[str, Any]) -> Any:
            value = item[1]
            if value.__class__ is not tuple:
                return getattr(value, _FIELDS[index])
            if len(value) == _ROW_LENGTH:
                return value[index]
            if at is not None:
                return value[at]
            if len(value) == _CAPTURED_LENGTH:
                return derived(value[-1], value[0], now)[of]
            return derived(value[-2], value[0], value[-1])[of]

        return heapq.nlargest(k, self._rows.items(), key=figure)

    def __repr__(self) -> str:
        return f"<StatisticsRows of {len(self._rows)} actors>"

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self.items()),)


def from_row(row: Row) -> ActorStatistics:
    """The :class:`ActorStatistics` of a :data:`Row` (whose children are ``None`` for none)."""
    children = row[_CHILDREN]
    if children is None:
        row = (*row[:_CHILDREN], {}, *row[_CHILDREN + 1:])
    return ActorStatistics(*row)


Sums = tuple[float, int, int, float, float, float, float, float]
"""A :class:`Figures`' window as captured, free of time: ``(start, arrivals0, left, wait_sum, service_sum, p50,
p90, p99)``, the first bucket's start and arrival count, the running sums and the percentiles. With the actor's
arrival count and the instant of the read, :func:`derived` makes the figures of it."""

Captured = tuple[Any, ...]
"""A local actor's figures as :meth:`ActorSystem.statistics` captures them: ``(arrivals, handled, failed,
restarts, mailbox_length, peak_mailbox_length, state, children, restarts_in_window, actor_class, sums)``, with
``children`` ``None`` for none and ``sums`` a :data:`Sums` (``None`` for an actor without figures yet).

Every number of the moment is in it, so a snapshot is of that moment whenever it is read; what is left for later
is arithmetic on them (:func:`expand`): the rates and means, which the figures divide by the window's length at the
instant of the read, and the node, the same for every local actor. So a capture holds no float made for it, and
the capture of a parked actor, which nothing changes but the passing of time, is made once and shared by every
snapshot taken while it stays parked. Like a :data:`Row`, it holds only atoms (and its sums, a tuple of atoms).

A snapshot read in slices (``gather_statistics``) has an instant a slice: each of its captures carries its own as
a twelfth item."""

_CAPTURED_LENGTH: Final = 11
_ROW_LENGTH: Final = len(_FIELDS)
_CAPTURED_INDEX: Final = {_INDEX[name]: at for at, name in enumerate((
    "arrivals", "handled", "failed", "restarts", "mailbox_length", "peak_mailbox_length", "state", "children",
    "restarts_in_window", "actor_class"))}
"""Where a :data:`Captured` holds the fields it holds as they are, by their index in a :data:`Row`."""
_DERIVED_INDEX: Final = {_INDEX[name]: at for at, name in enumerate((
    "arrival_rate", "service_rate", "utilization", "mean_queue_length", "mean_wait", "handling_time_p50",
    "handling_time_p90", "handling_time_p99", "mean_in_system", "mean_sojourn"))}
"""Where :func:`derived` puts the other figures, by their index in a :data:`Row`."""


def derived(sums: Sums | None, arrivals: int, now: float) -> tuple[float, float, float, float, float, float, float,
                                                                    float, float, float]:
    """The figures of the window ``sums`` captured, read at ``now`` with the actor's ``arrivals``: ``(λ, μ, ρ,
    Lq, Wq, p50, p90, p99, L, W)`` (see :meth:`Figures.read`, which is this on the figures' sums)."""
    if sums is None:
        return _ZEROS
    start, arrivals0, left, wait_sum, service_sum, p50, p90, p99 = sums
    span = now - start
    if span <= 0:
        return _ZEROS
    lam = (arrivals - arrivals0) / span
    in_system = wait_sum + service_sum
    if left <= 0:
        return lam, 0.0, 0.0, wait_sum / span, 0.0, p50, p90, p99, in_system / span, 0.0
    mu = left / service_sum if service_sum > 0 else 0.0  # (handling that took no time: μ is unknown)
    return (lam, mu, lam / mu if mu else 0.0, wait_sum / span, wait_sum / left, p50, p90, p99, in_system / span,
            in_system / left)


def expand(captured: Captured, now: float, node: str) -> Row:
    """The :data:`Row` of a :data:`Captured` actor, read at ``now`` (unless it carries its instant) on ``node``."""
    if len(captured) == _CAPTURED_LENGTH:
        arrivals, handled, failed, restarts, length, peak, state, children, in_window, actor_class, sums = captured
    else:
        arrivals, handled, failed, restarts, length, peak, state, children, in_window, actor_class, sums, now = \
            captured
    lam, mu, rho, lq, wq, p50, p90, p99, big_l, w = derived(sums, arrivals, now)
    return (arrivals, handled, failed, restarts, length, peak, lam, mu, rho, lq, wq, p50, p90, p99, state, children,
            in_window, node, big_l, w, actor_class)


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
        if isinstance(self.actors, StatisticsRows):
            actors: Mapping[str, ActorStatistics] = self.actors._keeping(dict(self.actors._largest(k, index)))
        else:
            ranked = heapq.nlargest(k, _rows(self.actors), key=lambda item: item[1][index])
            actors = {path: self.actors[path] for path, _ in ranked}
        return attrs.evolve(self, actors=actors)

    def matching(self, text: str) -> SystemStatistics:
        """The same snapshot keeping only the actors whose path contains ``text``."""
        if isinstance(self.actors, StatisticsRows):
            actors: Mapping[str, ActorStatistics] = self.actors._keeping(
                {path: row for path, row in self.actors._rows.items() if text in path})
        else:
            actors = {path: stats for path, stats in self.actors.items() if text in path}
        return attrs.evolve(self, actors=actors)

    def by_class(self) -> dict[tuple[str, str], ClassStatistics]:
        """The actors' figures summed by ``(class, node)`` (see :class:`ClassStatistics`), built from the numbers
        the snapshot captured: cheap even when it holds every actor of a large system."""
        totals: dict[tuple[str, str], list[Any]] = {}
        actors = self.actors
        now, here = (actors._now, actors._node) if isinstance(actors, StatisticsRows) else (0.0, "")
        for value in actors._rows.values() if isinstance(actors, StatisticsRows) else actors.values():
            if value.__class__ is tuple and len(value) != _ROW_LENGTH:  # captured on this node
                if len(value) == _CAPTURED_LENGTH:
                    arrivals, handled, failed, restarts, length, _, _, _, _, name, sums = value
                    instant = now
                else:
                    arrivals, handled, failed, restarts, length, _, _, _, _, name, sums, instant = value
                if sums is None:  # no figures yet (most actors of a system just told one message each)
                    lam = rho = lq = wq = big_l = w = 0.0
                else:
                    lam, _, rho, lq, wq, _, _, _, big_l, w = derived(sums, arrivals, instant)
                key = (name, here)
            else:
                row = value if value.__class__ is tuple else _as_row(value)
                arrivals, handled, failed, restarts, length = (
                    row[_ARRIVALS], row[_HANDLED], row[_FAILED], row[_RESTARTS], row[_LENGTH])
                lam, rho, lq, wq, big_l, w = row[_LAMBDA], row[_RHO], row[_LQ], row[_WQ], row[_L], row[_W]
                key = (row[_CLASS], row[_NODE])
            acc = totals.get(key)
            if acc is None:
                acc = totals[key] = [0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
            acc[0] += 1
            acc[1] += arrivals
            acc[2] += handled
            acc[3] += failed
            acc[4] += restarts
            acc[5] += length
            if length > acc[6]:
                acc[6] = length
            acc[7] += lam
            if rho > acc[8]:
                acc[8] = rho
            acc[9] += lq
            acc[10] += big_l
            acc[11] += lam * wq
            acc[12] += lam * w
        result = {}
        for (name, node), acc in totals.items():
            lam = acc[7]
            result[name, node] = ClassStatistics(
                actor_class=name, node=node, actors=acc[0], arrivals=acc[1], handled=acc[2], failed=acc[3],
                restarts=acc[4], mailbox_length=acc[5], max_mailbox_length=acc[6], arrival_rate=lam,
                max_utilization=acc[8], mean_queue_length=acc[9], mean_in_system=acc[10],
                mean_wait=acc[11] / lam if lam > 0 else 0.0, mean_sojourn=acc[12] / lam if lam > 0 else 0.0)
        return result


class _NoFigures:
    """What an actor's ``figures`` holds when there are none to keep yet: false, and ``active`` like measured
    figures (the actor needs no measuring again)."""

    __slots__ = ("_name",)

    active = True

    def __init__(self, name: str) -> None:
        self._name = name

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return self._name


FIGURES_OFF: Final = _NoFigures("FIGURES_OFF")
"""The figures of an actor in a system with ``Metrics(enabled=False)``: nothing to keep."""

PENDING: Final = _NoFigures("PENDING")
"""The figures of an actor that has been scheduled but not yet visited by a metrics tick. When and at which arrival
count it was first scheduled is kept by the system beside it, as a tuple of two atoms (which the collector stops
tracking), from which that tick makes its :class:`Figures`.

So the first message to an idle actor (one to each of a million, say) makes nothing that lives on: the tick makes
the figures, within its share of the loop. A timed message before that has them made at once; until then, its
statistics read as zeros."""


class _Bucket:
    __slots__ = ("arrivals0", "left", "service_sum", "start", "wait_sum")

    def __init__(self, start: float, arrivals0: int) -> None:
        self.start = start
        self.arrivals0 = arrivals0
        """The actor's arrival count when the bucket began: λ counts from there."""
        self.left = 0
        """Messages that left in this bucket, as the weighted sample counts them."""
        self.wait_sum = 0.0
        """Their weighted waits (queued to started): the area under the waiting count, credited as they left."""
        self.service_sum = 0.0
        """Their weighted handling times (started to finished): the area under the busy curve, likewise."""


_ZEROS: Final = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@functools.lru_cache(maxsize=16)
def _shape(metrics: Metrics) -> tuple[float, float]:
    """A bucket's span and the horizon past which a bucket has left the window, worked out once for every actor's
    figures: then a read of many actors touches one float for the horizon, not one an actor."""
    span = metrics.window / metrics.buckets
    return span, metrics.window + span


PARK_AFTER_TICKS: Final = 2
"""Consecutive metrics ticks that find an actor idle (empty mailbox, no handler running) before it is parked.

Short, so that the tick visits only the actors that have been busy lately: after one message to each of a million
idle actors, a tick that went on visiting every one of them for a whole window (60 s by default) would take longer
than the interval between ticks."""


class Figures:
    """The sampled measurements of one actor, kept in window buckets. Made by the first metrics tick after it was
    first sent a message (see :data:`PENDING`).

    Every figure is read off three sums over the window, all made of the same timed messages: the weighted count
    of messages that left, the weighted sum of their waits and that of their handling times. A timed message is
    credited whole to the bucket in which its handling finished, so a message in flight across a window edge
    counts in the window it left in, for L as for W: the sum of the sojourns of the messages that left in a
    window is the area under the number-in-system curve over that window, less what the messages in flight at
    its end have spent in it so far, plus what those in flight at its start had spent before it (in a steady
    state the two ends balance). So L (the area over the window's length) and λW (arrivals counted apart, over
    the same window, times the mean sojourn) agree to the difference between the arrivals and the weighted
    departures of the window, the messages in flight at its edges.

    A timed message is weighed by the arrivals it stands for: the arrivals since the previous timed message
    (one message in ``sample_every``, or every message while the actor is quiet), so a sampling rate that
    changes from tick to tick biases nothing and the weights add up to the departures.

    Besides the buckets it keeps their running sums: a sample is added to its bucket and to the sums, and a
    bucket that leaves the window (noticed by the next sample, or by the next read) is subtracted from them. So
    :meth:`read` costs the same whatever the window's shape: ``statistics()`` of a large system reads sums, it
    does not add buckets up.

    An actor whose mailbox stays empty for a whole window is *parked*: the metrics tick stops visiting it (so
    a system with many quiet actors costs the tick nothing for them) and it drops its empty mailbox queue. When
    it is scheduled again it resumes, and the idle stretch counts in the window's length, so λ and L stay right.
    """

    __slots__ = ("_arrivals0", "_buckets", "_horizon", "_left", "_percentiles", "_service_sum", "_span", "_start",
                 "_tick", "_wait_sum", "_window", "active", "idle_ticks", "last_timed", "parked_arrivals", "parked_at",
                 "parked_row", "recent_service")

    def __init__(self, now: float, arrivals: int, metrics: Metrics) -> None:
        self._window = metrics.window
        self._span, self._horizon = _shape(metrics)
        """A bucket that started longer ago than this has left the window."""
        self._tick = metrics.tick
        self._buckets: list[_Bucket] = [_Bucket(now, arrivals)]
        """Oldest first; a list (at most ``buckets`` + 1 of them), a tenth of a deque's size for an actor that had
        one message."""
        self._start = now
        self._arrivals0 = arrivals
        """The first bucket's start and arrival count, kept beside it: a read touches no bucket."""
        # The sums of the buckets' fields (see the class docstring).
        self._left = 0
        self._wait_sum = self._service_sum = 0.0
        self.recent_service: deque[float] | None = None
        """The handling times of the last 256 sampled messages; made with the first (an actor that is sent one
        message, as most of a million may be, never needs it)."""
        self._percentiles: tuple[float, float, float] | None = (0.0, 0.0, 0.0)
        """The percentiles of ``recent_service``; ``None`` once a sample has changed it."""
        self.last_timed = arrivals
        """The arrival number of the last timed message recorded: the next one stands for the arrivals since."""
        self.active = True
        """Whether the metrics tick visits this actor (False once parked)."""
        self.idle_ticks = 0
        """Consecutive ticks that found the mailbox empty and the actor idle."""
        self.parked_at = now
        self.parked_arrivals = arrivals
        self.parked_row: Captured | None = None
        """The actor's :data:`Captured` figures, kept while it is parked (see :meth:`still_parked`): every
        ``statistics()`` meanwhile shares it rather than capturing them again. Dropped when it parks or resumes."""

    @property
    def idle_limit(self) -> int:
        """Consecutive ticks that found the actor idle after which it is parked: :data:`PARK_AFTER_TICKS`, or a
        whole window if that is shorter. Parking loses nothing: the ticks it skips would each have seen an empty
        mailbox, and :meth:`rates` (while parked) and :meth:`resume` count them as such."""
        return max(1, min(PARK_AFTER_TICKS, int(self._window / self._tick)))

    def park(self, now: float, arrivals: int) -> None:
        """Stop being visited by the tick until :meth:`resume` (``arrivals``: the actor's count now)."""
        self.active = False
        self.parked_at = now
        self.parked_arrivals = arrivals
        self.parked_row = None

    def resume(self, now: float, arrivals: int) -> None:
        """Visited again: the time parked (within the window) counts in the window, with nothing in the system."""
        idle = min(now - self.parked_at, self._window)
        if idle > 0:
            self._expire(now)
            # Nothing arrived while it was parked but what resumes it (counted in ``arrivals`` already): the
            # stretch starts at the count it was parked with, so that λ counts that message too.
            self._buckets.append(_Bucket(now - idle, self.parked_arrivals))
            self._first()
        self.active = True
        self.idle_ticks = 0
        self.parked_row = None

    def timing_mask(self, now: float, arrivals: int, mask: int) -> int:
        """The mask that chooses the messages to time until the next tick: ``0`` (every one) while fewer than
        ``mask + 1`` arrive in a tick on average over the window, else ``mask`` (one in ``mask + 1``).

        The average is the window's, not the last tick's: a rate of timing that followed each tick's arrivals
        would time sparsely right after a burst, while the queue drains, and W would come out short.
        """
        if self._start < now - self._horizon:
            self._expire(now)
        if not self._buckets:
            return 0
        ticks = (now - self._start) / self._tick
        return 0 if arrivals - self._arrivals0 <= mask * (ticks if ticks > 1.0 else 1.0) else mask

    def _first(self) -> None:
        """Note the first bucket's start and arrival count (after the buckets changed at their left end)."""
        buckets = self._buckets
        if buckets:
            first = buckets[0]
            self._start = first.start
            self._arrivals0 = first.arrivals0

    def _expire(self, now: float) -> None:
        """Drop the buckets that have left the window ending at ``now``, and take them out of the sums."""
        buckets = self._buckets
        oldest = now - self._horizon
        while buckets and buckets[0].start < oldest:
            b = buckets.pop(0)
            self._left -= b.left
            self._wait_sum -= b.wait_sum
            self._service_sum -= b.service_sum
        if not buckets:  # exact zeros, whatever rounding the subtractions left in the float sums
            self._wait_sum = self._service_sum = 0.0
        self._first()

    def _current(self, now: float, arrivals: int) -> _Bucket:
        buckets = self._buckets
        if buckets:
            last = buckets[-1]
            if now - last.start < self._span:
                return last
        last = _Bucket(now, arrivals)
        buckets.append(last)
        self._expire(now)  # (which notes the first bucket, maybe this one)
        return last

    def add_sample(self, stamp: tuple[float, int], started: float, finished: float, arrivals: int) -> None:
        """Record one timed message as it leaves: its wait (queued to started) and its handling time (started to
        finished), weighed by the arrivals it stands for. ``stamp`` is ``(queued, arrival number)``.

        A timed message whose handling raised is not recorded: the next one stands for it.
        """
        queued, number = stamp
        weight = number - self.last_timed
        if weight > 0:
            self.last_timed = number
        else:  # taken out of arrival order (stashed, say): it stands for itself
            weight = 1
        bucket = self._current(finished, arrivals)
        wait = weight * (started - queued)
        seconds = finished - started
        service = weight * seconds
        bucket.left += weight
        bucket.wait_sum += wait
        bucket.service_sum += service
        self._left += weight
        self._wait_sum += wait
        self._service_sum += service
        recent = self.recent_service
        if recent is None:
            recent = self.recent_service = deque(maxlen=256)
        recent.append(seconds)
        self._percentiles = None

    def read(self, now: float, arrivals: int) -> tuple[float, float, float, float, float, float, float, float,
                                                       float, float]:
        """The figures over the window ending at ``now``, in the order of a :data:`Row`: ``(λ, μ, ρ, Lq, Wq, p50,
        p90, p99, L, W)``: :func:`derived` of :meth:`sums`.

        With ``T`` the window's length, ``n`` the weighted count of the messages that left in it, ``Σq`` and
        ``Σs`` their weighted waits and handling times: λ = arrivals in the window / T, μ = n / Σs, ρ = λ / μ,
        Lq = Σq / T, Wq = Σq / n, L = (Σq + Σs) / T, W = (Σq + Σs) / n. The percentiles are of the handling
        times of the recent timed messages (:meth:`percentiles`).
        """
        return derived(self.sums(now), arrivals, now)

    def sums(self, now: float) -> Sums | None:
        """The window ending at ``now`` as running sums, free of time (a :data:`Sums`; ``None`` once every bucket
        has left it): what ``statistics()`` captures of every actor, a read of a few slots."""
        if self._start < now - self._horizon:
            self._expire(now)
            if not self._buckets:
                return None
        p50, p90, p99 = self._percentiles or self.percentiles()
        return self._start, self._arrivals0, self._left, self._wait_sum, self._service_sum, p50, p90, p99

    def still_parked(self, captured: Captured, now: float) -> bool:
        """Whether ``captured`` (this actor's :data:`Captured`, kept in :attr:`parked_row`) is still what a read at
        ``now`` would capture: nothing changes a parked actor but the passing of time, and time changes its
        capture only when its first bucket leaves the window."""
        sums = captured[-1]
        return sums is None or not sums[0] < now - self._horizon

    def percentiles(self) -> tuple[float, float, float]:
        """Handling-time p50, p90 and p99 of the recent timed messages (sorted again only after a new sample)."""
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
