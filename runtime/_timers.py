"""Timers on trio's clock: one heap per system, serviced by one task, so a timer costs no task of its own.

An actor's :class:`Timers` are keyed, and periodic ones keep a fixed rate. Starting a timer under a key that is
active replaces it; cancelling, a restart and a stop cancel it. A tick already queued in the mailbox when its timer
is replaced or cancelled is discarded when it comes up, so a message from an earlier incarnation of a timer is never
received.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from ._cell import Cell

__all__ = ["TimerService", "Timers", "positive_seconds"]


def positive_seconds(name: str, value: object) -> float:
    """``value`` as a float if it is a positive number of seconds, else ``ValueError`` naming ``name`` and it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name}={value!r} must be a positive number of seconds")
    return float(value)


def _check_delay(what: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value < 0 \
            or (positive and value == 0) or math.isinf(value):
        rule = "a positive number of seconds" if positive else "a number of seconds, zero or more"
        raise ValueError(f"timer {what}={value!r} must be {rule}")
    return float(value)


class TimerService:
    """Calls functions at deadlines of trio's clock; works under ``MockClock`` like any trio sleep."""

    __slots__ = ("_heap", "_scope", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._scope: trio.CancelScope | None = None

    def call_at(self, deadline: float, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` in the service task once trio's clock reaches ``deadline``."""
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, fn, args))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def __len__(self) -> int:
        return len(self._heap)

    async def run(self) -> None:
        """Serve the heap until cancelled."""
        heap = self._heap
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, fn, args = heapq.heappop(heap)
                fn(*args)


class TimerTick:
    """The mark on a queued timer message: which key and which start of it sent the message."""

    __slots__ = ("generation", "key", "single")

    def __init__(self, key: object, generation: int, single: bool) -> None:
        self.key = key
        self.generation = generation
        self.single = single


class Timers:
    """An actor's timers: ``self.timers.start_single(key, delay, message)`` and friends.

    All are cancelled when the actor restarts or stops. Intervals and delays are seconds of trio's clock.
    """

    __slots__ = ("_active", "_cell")

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._active: dict[object, int] = {}

    def start_single(self, key: object, delay: float, message: object) -> None:
        """Send ``message`` to this actor once, ``delay`` seconds from now (replacing a timer under ``key``)."""
        self._start(key, _check_delay("delay", delay, positive=False), message, None)

    def start_periodic(self, key: object, interval: float, message: object) -> None:
        """Send ``message`` every ``interval`` seconds until cancelled (replacing a timer under ``key``)."""
        interval = _check_delay("interval", interval, positive=True)
        self._start(key, interval, message, interval)

    def cancel(self, key: object) -> None:
        """Cancel the timer under ``key``; a tick of it that is already queued is discarded. No error if none."""
        self._active.pop(key, None)

    def cancel_all(self) -> None:
        """Cancel every timer of this actor."""
        self._active.clear()

    def is_active(self, key: object) -> bool:
        """Whether a timer under ``key`` is running (a single timer stays active until its message is handled)."""
        return key in self._active

    def __len__(self) -> int:
        return len(self._active)

    def __repr__(self) -> str:
        return f"<Timers of {self._cell.path!r} active={list(self._active)!r}>"

    def _start(self, key: object, delay: float, message: object, interval: float | None) -> None:
        system = self._cell.system
        generation = system.next_timer_generation()
        self._active[key] = generation
        deadline = trio.current_time() + delay
        system.timer_service.call_at(deadline, self._fire, key, generation, message, interval, deadline)

    def _fire(self, key: object, generation: int, message: object, interval: float | None, deadline: float) -> None:
        """Queue one tick. A periodic timer keeps a fixed rate: the next deadline is this one plus the interval,
        whenever this tick was actually served, so ticks never drift behind (as OTP's ``send_interval``)."""
        if self._active.get(key) != generation:
            return
        self._cell.deliver(message, None, TimerTick(key, generation, interval is None))
        if interval is not None:
            deadline += interval
            self._cell.system.timer_service.call_at(deadline, self._fire, key, generation, message, interval,
                                                    deadline)

    def deliverable(self, tick: TimerTick) -> bool:
        """Whether a queued tick is still current; a single timer's tick also ends that timer."""
        key = tick.key
        if self._active.get(key) != tick.generation:
            return False
        if tick.single:
            del self._active[key]
        return True
