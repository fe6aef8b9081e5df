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

from collections import deque
from collections.abc import Mapping

import attrs

__all__ = ["FIGURES_OFF", "ActorStatistics", "Figures", "Metrics", "SystemStatistics"]


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


@attrs.frozen
class SystemStatistics:
    """The whole system's figures: ``system.statistics()``."""

    dead_letters: int
    """Messages that could not be delivered, since the system started."""
    actors: Mapping[str, ActorStatistics]
    """Each live actor's path mapped to its figures."""
    pending_asks: int = 0
    """Requests still waiting for an answer."""


class _Off:
    """The figures of an actor in a system with ``Metrics(enabled=False)``: nothing to keep."""

    active = True

    def __bool__(self) -> bool:
        return False


FIGURES_OFF = _Off()


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


class Figures:
    """The sampled measurements of one actor, kept in window buckets. Created when it is first sent a message.

    An actor whose mailbox stays empty for a whole window is *parked*: the metrics tick stops visiting it (so
    a system with many quiet actors costs the tick nothing for them) and it drops its empty mailbox queue. When
    it is scheduled again it resumes, and the idle stretch counts as zero-length samples, so λ and L stay right.
    """

    __slots__ = ("_buckets", "_span", "_tick", "_window", "active", "idle_ticks", "parked_at", "recent_service",
                 "ticked_arrivals")

    def __init__(self, now: float, arrivals: int, metrics: Metrics) -> None:
        self._window = metrics.window
        self._span = metrics.window / metrics.buckets
        self._tick = metrics.tick
        self._buckets: deque[_Bucket] = deque([_Bucket(now, arrivals)])
        self.recent_service: deque[float] = deque(maxlen=256)
        self.active = True
        """Whether the metrics tick visits this actor (False once parked)."""
        self.idle_ticks = 0
        """Consecutive ticks that found the mailbox empty and the actor idle."""
        self.parked_at = now
        self.ticked_arrivals = arrivals
        """The actor's arrival count at the last metrics tick."""

    @property
    def idle_limit(self) -> int:
        """Ticks of idleness after which the actor is parked: a whole window."""
        return max(1, int(self._window / self._tick))

    def park(self, now: float) -> None:
        """Stop being visited by the tick until :meth:`resume`."""
        self.active = False
        self.parked_at = now

    def resume(self, now: float, arrivals: int) -> None:
        """Visited again: the time parked (within the window) counts as ticks that saw an empty mailbox."""
        idle = min(now - self.parked_at, self._window)
        if idle > 0:
            bucket = _Bucket(now - idle, arrivals)
            bucket.len_n = int(idle / self._tick)
            self._buckets.append(bucket)
        self.active = True
        self.idle_ticks = 0
        self.ticked_arrivals = arrivals

    def _current(self, now: float, arrivals: int) -> _Bucket:
        buckets = self._buckets
        last = buckets[-1]
        if now - last.start >= self._span:
            last = _Bucket(now, arrivals)
            buckets.append(last)
            while now - buckets[0].start > self._window + self._span:
                buckets.popleft()
        return last

    def sample_length(self, now: float, length: int, busy: bool, arrivals: int) -> None:
        """Record what one metrics tick saw: the mailbox's length, and whether a handler was running."""
        bucket = self._current(now, arrivals)
        bucket.len_sum += length
        bucket.len_n += 1
        if busy:
            bucket.busy_n += 1

    def add_sample(self, stamp: tuple[float, int], started: float, finished: float, arrivals: int) -> None:
        """Record one sampled message: its wait (queued to started) and its handling time (started to finished),
        weighed by the number of arrivals it stands for. ``stamp`` is ``(queued, weight)``.

        A sampled message whose handling raised is not recorded.
        """
        queued, weight = stamp
        bucket = self._current(finished, arrivals)
        bucket.wait_sum += weight * (started - queued)
        bucket.wait_n += weight
        seconds = finished - started
        bucket.service_sum += weight * seconds
        bucket.service_n += weight
        self.recent_service.append(seconds)

    def rates(self, now: float, arrivals: int) -> tuple[float, float, float, float, float, float, float]:
        """``(λ, μ, ρ, Lq, Wq, L, W)`` over the window ending at ``now``."""
        oldest = now - self._window - self._span
        first: _Bucket | None = None
        service_sum = wait_sum = 0.0
        service_n = wait_n = len_sum = len_n = busy_n = 0
        for b in self._buckets:  # one pass: statistics() runs this for every actor of a system
            if b.start < oldest:
                continue
            if first is None:
                first = b
            service_sum += b.service_sum
            service_n += b.service_n
            wait_sum += b.wait_sum
            wait_n += b.wait_n
            len_sum += b.len_sum
            len_n += b.len_n
            busy_n += b.busy_n
        if first is None:
            return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        span = now - first.start
        lam = (arrivals - first.arrivals0) / span if span > 0 else 0.0
        mu = service_n / service_sum if service_sum > 0 else 0.0
        rho = lam / mu if mu > 0 else 0.0
        waiting = len_sum / len_n if len_n else 0.0
        in_system = (len_sum + busy_n) / len_n if len_n else 0.0
        wait = wait_sum / wait_n if wait_n else 0.0
        # The sampled messages' sojourns are their waits plus their handling times (both summed over the same ones).
        sojourn = (wait_sum + service_sum) / wait_n if wait_n else 0.0
        return lam, mu, rho, waiting, wait, in_system, sojourn

    def percentiles(self) -> tuple[float, float, float]:
        """Handling-time p50, p90 and p99 of the recent sampled messages."""
        data = sorted(self.recent_service)
        if not data:
            return 0.0, 0.0, 0.0
        last = len(data) - 1
        return tuple(data[min(last, int(q * len(data)))] for q in (0.5, 0.9, 0.99))  # type: ignore[return-value]
