"""Supervision decisions: strategies, directives, restart types, restart intensity and backoff.

Everything here is plain synchronous code that *returns* what to do; the cell performs the awaits. That keeps the
rules unit-testable without a scheduler. Semantics follow OTP where OTP and Akka differ (a sliding restart window
whose overflow fails the supervisor), with Akka's deciders and backoff.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, Literal, NamedTuple, Protocol, TypeVar

import attrs

from ._exceptions import ActorFailed

__all__ = [
    "Backoff",
    "Directive",
    "OneForAll",
    "OneForOne",
    "RestForOne",
    "Restart",
    "RestartPlan",
    "RestartWindow",
    "Strategy",
    "default_decider",
    "plan_restart",
]

T = TypeVar("T")


class Directive(enum.Enum):
    """What a supervisor does with a child that raised."""

    RESUME = "resume"
    """Keep the instance, its state and its children; drop the failed message and go on."""
    RESTART = "restart"
    """Replace the instance by a fresh one from the same factory, behind the same ref and mailbox."""
    STOP = "stop"
    """Stop the child for good; its watchers get ``Terminated`` with the error as reason."""
    ESCALATE = "escalate"
    """Fail the supervisor itself with the same error, for its own parent to decide."""


class Restart(enum.Enum):
    """A child's restart type, with OTP's meaning."""

    PERMANENT = "permanent"
    """Always restarted: after a failure, and also when it stops itself."""
    TRANSIENT = "transient"
    """Restarted only after a failure; a normal stop is final."""
    TEMPORARY = "temporary"
    """Never restarted."""

    @classmethod
    def coerce(cls, value: Restart | str) -> Restart:
        """Accept a :class:`Restart` or its string value; raise ``ValueError`` naming anything else."""
        if value.__class__ is Restart:
            return value
        restart = _RESTARTS.get(value) if isinstance(value, str) else None
        if restart is None:
            valid = ", ".join(repr(r.value) for r in cls)
            raise ValueError(f"restart={value!r} is not a restart type; use one of {valid}")
        return restart


_RESTARTS = {r.value: r for r in Restart}


def default_decider(error: BaseException) -> Directive:
    """Restart on any failure; escalate ``KeyboardInterrupt`` and ``SystemExit``.

    A failure is whatever an actor's code raised, including a ``BaseException`` such as a stray ``trio.Cancelled``
    or a ``BaseExceptionGroup``. ``KeyboardInterrupt`` and ``SystemExit`` are not failures of one actor: they end
    the system, so they reach a decider only when one is called by hand.
    """
    return Directive.ESCALATE if isinstance(error, KeyboardInterrupt | SystemExit) else Directive.RESTART


def _check_number(name: str, value: object, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name}={value!r} must be a number")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name}={value!r} must be {'positive' if positive else 'zero or more'}")


@attrs.frozen
class Backoff:
    """Exponential restart delays: the n-th consecutive restart (n from 0) waits ``min * 2**n`` seconds,
    capped at ``max``, times a random factor in ``[1 - jitter, 1 + jitter]``.

    The count of consecutive restarts resets once the child has run for the strategy's ``within`` window
    without failing. While a restart waits, messages stay queued in the child's mailbox.
    """

    min: float
    """The first delay, in seconds."""
    max: float
    """The cap on the delay before jitter, in seconds."""
    jitter: float = 0.0
    """The relative spread of the random factor, from 0 (none) to 1."""

    def __attrs_post_init__(self) -> None:
        _check_number("Backoff min", self.min)
        _check_number("Backoff max", self.max)
        _check_number("Backoff jitter", self.jitter)
        if self.max < self.min:
            raise ValueError(f"Backoff max={self.max!r} is less than min={self.min!r}")
        if self.jitter > 1:
            raise ValueError(f"Backoff jitter={self.jitter!r} must be between 0 and 1")

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The delay before restart number ``attempt`` (0-based); ``rng`` gives uniform floats in [0, 1)."""
        base = self.max if attempt >= 64 else min(self.max, self.min * 2.0**attempt)
        if self.jitter:
            base *= 1.0 + self.jitter * (2.0 * rng() - 1.0)
        return base


Decider = Callable[[BaseException], Directive]


@attrs.frozen
class Strategy:
    """How a parent handles the failure of one of its children (base of the three OTP strategies).

    ``max_restarts`` restarts are allowed within any ``within`` seconds (a sliding window, as OTP); one more
    stops all the supervisor's children in reverse start order and fails the supervisor, which escalates to its
    own parent. ``decider`` maps the error to a :class:`Directive` (default: restart on any ``Exception``);
    a decider that raises counts as ``ESCALATE``. ``backoff`` delays restarts exponentially.
    """

    max_restarts: int = 3
    """Restarts allowed within the window; 0 means the first failure that needs a restart fails the parent."""
    within: float = 5.0
    """The window, in seconds of trio's clock."""
    decider: Decider | None = None
    """Error -> directive; ``None`` for :func:`default_decider`."""
    backoff: Backoff | None = None
    """Optional delay before each restart."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int):
            raise ValueError(f"max_restarts={self.max_restarts!r} must be an integer")
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts={self.max_restarts!r} must be zero or more")
        _check_number("within", self.within, positive=True)
        if self.decider is not None and not callable(self.decider):
            raise ValueError(f"decider={self.decider!r} must be callable")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise ValueError(f"backoff={self.backoff!r} must be a Backoff")

    def decide(self, error: BaseException) -> tuple[Directive, BaseException]:
        """Apply the decider; returns the directive and the error to act on.

        A decider that raises, or returns something that is not a :class:`Directive`, yields ``ESCALATE``
        with an error that chains both (``__cause__`` is the original failure).
        """
        decider = self.decider or default_decider
        try:
            directive: object = decider(error)
        except Exception as exc:
            exc.__cause__ = error
            return Directive.ESCALATE, exc
        if not isinstance(directive, Directive):
            bad = ValueError(f"decider {decider!r} returned {directive!r}, which is not a Directive")
            bad.__cause__ = error
            return Directive.ESCALATE, bad
        return directive, error

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        """The children (in start order) that a restart of ``failed`` stops and starts again."""
        raise NotImplementedError

    def new_window(self) -> RestartWindow:
        """A fresh restart-intensity tracker for one supervisor."""
        return RestartWindow(self.max_restarts, self.within)


@attrs.frozen
class OneForOne(Strategy):
    """Restart only the child that failed (OTP ``one_for_one``)."""

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        return [failed]


@attrs.frozen
class OneForAll(Strategy):
    """Stop every child in reverse start order, then start them all again in start order (OTP ``one_for_all``)."""

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        return list(children)


@attrs.frozen
class RestForOne(Strategy):
    """Restart the failed child and those started after it (OTP ``rest_for_one``)."""

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        index = list(children).index(failed)
        return list(children)[index:]


class RestartWindow:
    """OTP's restart intensity: at most ``max_restarts`` restarts in any ``within`` seconds.

    Each restart is recorded with its time; entries older than the window are dropped first; the restart is
    allowed while the count, including itself, stays at or under ``max_restarts``.
    """

    __slots__ = ("_times", "max_restarts", "within")

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        times = self._times
        while times and times[0] <= now - self.within:
            times.popleft()

    def allow(self, now: float) -> bool:
        """Record a restart at ``now``; ``False`` if it exceeds the intensity (then nothing is recorded)."""
        self._expire(now)
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True

    def count(self, now: float) -> int:
        """Restarts within the window ending at ``now``."""
        self._expire(now)
        return len(self._times)

    def __repr__(self) -> str:
        return f"<RestartWindow {len(self._times)}/{self.max_restarts} within {self.within}s>"


def should_restart(restart: Restart, *, failed: bool) -> bool:
    """Whether a child of this restart type is restarted after a failure (``failed``) or a normal stop."""
    if restart is Restart.PERMANENT:
        return True
    return restart is Restart.TRANSIENT and failed


class Supervised(Protocol):
    """What the restart plan reads of a child: its restart type and its backoff bookkeeping."""

    @property
    def path(self) -> str: ...

    @property
    def restart(self) -> Restart: ...

    @property
    def backoff_count(self) -> int: ...

    @property
    def last_restart(self) -> float: ...


C = TypeVar("C", bound=Supervised)

Action = Literal["resume", "stop", "escalate", "give_up", "restart"]


class RestartPlan(NamedTuple, Generic[C]):
    """What a parent does about a child that failed or exited, as a value; the parent's cell performs it.

    A named tuple rather than an attrs class: one is made on every restart, where it cost a tenth of the restart.

    ``action``: ``"resume"`` the child; ``"stop"`` it for good; ``"escalate"`` (fail the parent with ``error``);
    ``"give_up"`` (the restart intensity is exceeded: stop every child in reverse start order, then fail the
    parent with ``error``); or ``"restart"``: halt ``halt`` (in that order: reverse start order), wait ``delay``
    seconds, then go through ``rebuild`` in start order, starting each one again except those in ``stop``
    (temporary siblings, which a group restart does not bring back), which are stopped for good. A restart of the
    failed child alone has ``halt == rebuild == (child,)``.
    """

    action: Action
    directive: Directive
    """What the strategy decided (``"give_up"`` comes from a ``RESTART`` over the restart intensity)."""
    error: BaseException | None
    halt: tuple[C, ...] = ()
    stop: tuple[C, ...] = ()
    rebuild: tuple[C, ...] = ()
    delay: float = 0.0
    backoff_count: int = 0
    """The failed child's count of consecutive restarts after this one (for the next backoff)."""

    @property
    def alone(self) -> bool:
        """Whether only the failed child restarts (so it can do it on its own, without the parent waiting)."""
        return len(self.halt) == 1 and not self.stop


def plan_restart(strategy: Strategy, children: Sequence[C], child: C, error: BaseException | None, *,
                 failed: bool, window: RestartWindow, now: float,
                 rng: Callable[[], float] = random.random) -> RestartPlan[C]:
    """Decide what a parent under ``strategy`` does about ``child`` (one of ``children``, in start order).

    ``failed``: the child raised ``error``; otherwise a permanent child stopped itself and is to be restarted.
    A restart is recorded in ``window`` (the parent's restart intensity), which is the only state this touches.
    """
    if failed:
        assert error is not None
        directive, error = strategy.decide(error)
    else:
        directive = Directive.RESTART
    if directive is Directive.RESUME:
        return RestartPlan("resume", directive, error)
    if directive is Directive.ESCALATE:
        return RestartPlan("escalate", directive, error)
    if directive is Directive.STOP or not should_restart(child.restart, failed=failed):
        return RestartPlan("stop", directive, error, stop=(child,))
    if not window.allow(now):
        return RestartPlan("give_up", directive, error if error is not None else
                           ActorFailed(f"{child.path!r} stopped itself too often"))
    delay = 0.0
    count = 0
    if strategy.backoff is not None:
        count = 0 if now - child.last_restart >= strategy.within else child.backoff_count
        delay = strategy.backoff.delay(count, rng)
        count += 1
    affected = strategy.affected(children, child)
    if len(affected) == 1:  # the child alone: the commonest plan
        alone = (child,)
        return RestartPlan("restart", directive, error, alone, (), alone, delay, count)
    stop = tuple(c for c in affected if c is not child and c.restart is Restart.TEMPORARY)
    return RestartPlan("restart", directive, error, tuple(reversed(affected)), stop, tuple(affected), delay, count)
