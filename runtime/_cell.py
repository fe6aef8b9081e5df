"""The actor cell: everything one actor owns, and the loop that runs it.

A cell owns the actor instance, the spawn spec that rebuilds it on restart, a two-lane mailbox (its base class),
its children in start order, its watchers, its timers and its figures. It never owns a task: a dispatcher runner
calls :meth:`Cell.run` while the cell has work. A cell is the local :class:`~runtime._address.Target` of its ref.

Lifecycle transitions (stop, restart, supervision of children) run in the cell's own runner, between two messages,
when it takes a system message. So an actor's hooks never run concurrently with its ``receive``. The parent's
decisions come from :func:`runtime._supervision.plan_restart`; the cell performs them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from types import FunctionType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Self, TypeVar

import outcome
import trio

from ._address import Address
from ._calls import Call
from ._dispatcher import current_actor, never_suspends
from ._envelope import (
    NO_ITEM,
    WATCH_MARK,
    ChildExited,
    ChildFailed,
    Envelope,
    Halt,
    Halted,
    QueueItem,
    Rebuild,
    Rebuilt,
    Reincarnate,
    Resume,
    Stop,
    StopOrigin,
    SystemMessage,
    Unwatch,
    Watch,
    open_item,
)
from ._exceptions import ActorFailed, ActorStopped, MailboxFull, NameTaken
from ._figures import PENDING, ActorStatistics, Captured, Figures, expand, from_row
from ._lease import Lease
from ._lifecycle import RESTARTING, RUNNING, STARTING, STATE_NAMES, STOPPED, STOPPING, SUSPENDED
from ._mailbox import MailboxQueue
from ._messages import PoisonPill, Reply, Terminated
from ._ref import ActorRef, ReplyRef
from ._show import show
from ._spawn import SpawnSpec, check_arguments, stray_arguments
from ._supervision import Restart, RestartPlan, RestartWindow, Strategy, plan_restart
from ._timers import Timers, TimerTick

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._balancing import SharedQueue
    from ._futures import Correlations
    from ._system import ActorSystem

__all__ = ["ActorBase", "CallForwarder", "Cell"]

logger = logging.getLogger("actors")


class _Constructing(threading.local):
    """Which cell's factory is running in this thread: set around the call, read by ``ActorBase.__new__``.

    A factory never yields (it is a plain call), so nothing else runs in this thread while it is set, and a
    thread-local attribute costs a tenth of a context variable's set and reset, which a spawn paid every time.
    """

    cell: Cell | None = None


_constructing = _Constructing()


class ActorBase:
    """The behaviour the engine runs: ``receive`` and the lifecycle hooks, with their defaults.

    ``__new__`` binds the instance to the cell that is constructing it, so an actor's ``__init__`` needs no
    ``super().__init__()`` call and can already use its context.
    """

    _cell: Cell | None

    _uncallable: ClassVar[frozenset[str]] = frozenset({"receive", "on_start", "on_stop", "on_restart"})
    """Public methods that ``ActorRef.call`` refuses: the engine's hooks, which are not the actor's own API."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = super().__new__(cls)
        self._cell = _constructing.cell
        return self

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value answers an ask. Override it."""
        raise NotImplementedError(f"{type(self).__qualname__} does not define receive()")

    async def on_start(self) -> None:
        """Called before the first message; spawn children here."""

    async def on_stop(self) -> None:
        """Called after the last message, once the children are stopped."""

    async def on_restart(self, error: BaseException | None) -> None:
        """Called on the fresh instance after a restart, with the error that caused it. Default: ``on_start()``."""
        await self.on_start()


_DEFAULT_ON_START = ActorBase.on_start
_DEFAULT_ON_STOP = ActorBase.on_stop

W = TypeVar("W", bound=ActorBase)


class CallForwarder(ActorBase, Generic[W]):
    """An actor that hands the method calls it is sent on to actors of class ``W`` (a router, such as a pool).

    Calls reach its ``receive`` as messages (:class:`~runtime.Call` values) instead of running its own methods,
    and the actor that finally runs one checks it. To a type checker, ``ActorRef[CallForwarder[W]].call`` takes
    ``W``'s methods.
    """


_DROP = object()
_KILLED = object()

STOP_SLICE = 256
"""Children a parent stops in its own runner (see ``Cell._stop_children``) between two checkpoints."""


def _ends_the_runner(error: BaseException) -> bool:
    """Whether a ``BaseException`` out of an actor's code must propagate instead of failing that actor.

    ``KeyboardInterrupt`` and ``SystemExit`` end the system. A ``trio.Cancelled`` (or a group holding one) is
    the runtime's own cancellation only while the runner's scope is cancelled (the system is shutting down);
    anything else, a stray ``Cancelled`` the actor raised itself included, is a failure of that actor.
    """
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return True
    if trio.current_effective_deadline() != -math.inf:
        return False
    if isinstance(error, trio.Cancelled):
        return True
    return isinstance(error, BaseExceptionGroup) and error.split(trio.Cancelled)[0] is not None


class _Seldom:
    """The part of a cell that few actors use: watchers, timers, a stash, leases, replies held for later,
    restarts and failures, what a stop or a group restart waits on. A cell reads the shared, empty
    ``_NONE_YET`` until it first writes one (``Cell._own``), so that an actor using none of it costs neither the
    fields nor the collector's visits to them."""

    __slots__ = ("backoff_count", "failed", "handler_scope", "handling", "last_restart", "leases", "open_replies",
                 "restarts", "scope", "stash", "stopped_lot", "sys_waiter", "timers", "watchers", "watching")

    def __init__(self) -> None:
        self.watchers: set[ActorRef] | None = None
        self.watching: set[ActorRef] | None = None
        self.timers: Timers | None = None
        self.stash: list[Envelope] | None = None
        self.open_replies: set[int] | None = None
        self.leases: set[Lease] | None = None
        self.handler_scope: trio.CancelScope | None = None
        """The cancel scope of the handler running under a ``stop_timeout``."""
        self.handling = 0
        """Handlers started under a ``stop_timeout``, to tell which one a stop's deadline is about."""
        self.stopped_lot: trio.lowlevel.ParkingLot | None = None
        self.sys_waiter: trio.lowlevel.Task | None = None
        """The task waiting on the system lane for a group restart step's acknowledgement."""
        self.scope: trio.CancelScope | None = None
        """The cancel scope of a backoff before a restart, which a stop cancels."""
        self.failed = 0
        self.restarts = 0
        self.backoff_count = 0
        self.last_restart = -math.inf


class _SharedSeldom(_Seldom):
    """The one ``_Seldom`` that every cell reads until it has its own: written, it would be every cell's."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"the shared defaults of every cell cannot be set ({name}={value!r})")


_NONE_YET: Final[_Seldom] = _Seldom()
_NONE_YET.__class__ = _SharedSeldom


class Cell(MailboxQueue):
    """One actor: its instance, mailbox, children, watchers, timers, figures and supervision state."""

    local: ClassVar[bool] = True
    """A cell runs here; a parent's handle on a child on another node (``RemoteChild``) says ``False``."""

    __slots__ = (
        "_children", "_deferred", "_env", "_handled", "_handler", "_inline", "_rare", "actor_class", "class_name",
        "figures", "instance", "name",
        "parent", "ref", "spec", "state", "system", "uid", "window",
    )

    def __init__(self, system: ActorSystem, parent: Cell | None, name: str, spec: SpawnSpec, uid: int) -> None:
        MailboxQueue.__init__(self, spec.mailbox or system.default_mailbox, system.sample_mask)
        self.system = system
        self.parent = parent
        self.name = name
        self.spec = spec
        self.uid = uid
        self.ref = ActorRef(self)
        self.window: RestartWindow | None = None
        self.instance: Any = None
        factory = spec.factory
        self.actor_class: type | None = factory if isinstance(factory, type) else None
        """The class of the actor's instance once built (before that, the factory's if it is a class)."""
        self.class_name = system.class_name(self.actor_class)
        """Its ``module.QualifiedName``, for the statistics (named once a class, not at every read)."""
        self._handler: Callable[[Any], Any] | None = None
        self._inline = False
        """Whether an asker may run this actor's next message in its own task (see ``claim``)."""
        self.state = STARTING
        self._children: dict[str, Any] | None = None
        """Children by name: cells, or handles on children that run on another node."""
        self._rare = _NONE_YET
        """What few actors use (watchers, timers, a stash, ...): shared defaults until ``_own()`` is first called."""
        self._env: QueueItem = NO_ITEM
        self._deferred = False
        self._handled = 0
        self.figures: Any = None
        """The queue figures (:class:`~runtime._figures.Figures`), made when the system first measures the cell."""

    def _own(self) -> _Seldom:
        """This cell's own :class:`_Seldom`, made on the first write."""
        rare = self._rare
        if rare is _NONE_YET:
            rare = self._rare = _Seldom()
        return rare

    @property
    def backoff_count(self) -> int:
        """Consecutive restarts within the backoff's reset time (see ``plan_restart``)."""
        return self._rare.backoff_count

    @backoff_count.setter
    def backoff_count(self, value: int) -> None:
        self._own().backoff_count = value

    @property
    def last_restart(self) -> float:
        """When this actor was last restarted with a backoff (``-inf`` before that)."""
        return self._rare.last_restart

    @last_restart.setter
    def last_restart(self, value: float) -> None:
        self._own().last_restart = value

    # -- identity --------------------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The slash-separated names from the top of the tree down to this actor."""
        parent = self.parent
        if parent is None or parent.parent is None:
            return self.name
        return f"{parent.path}/{self.name}"

    @property
    def address(self) -> Address:
        """Where this actor lives: the system's node, its uid and its path."""
        return Address(self.system.node_id, self.uid, self.path)

    @property
    def is_stopped(self) -> bool:
        """Whether the actor has stopped for good."""
        return self.state == STOPPED

    @property
    def restart(self) -> Restart:
        """Its restart type, from its spawn spec."""
        return self.spec.restart

    @property
    def strategy(self) -> Strategy:
        """The strategy it applies to its children."""
        return self.spec.supervision or self.system.default_strategy

    @property
    def children(self) -> list[Any]:
        """Live children, in start order (cells, or handles on children on another node)."""
        return [] if self._children is None else list(self._children.values())

    def child(self, name: str) -> Cell | None:
        """The live child called ``name``, if any."""
        children = self._children
        return None if children is None else children.get(name)

    def is_within(self, other: Cell) -> bool:
        """Whether this cell is ``other`` or one of its descendants."""
        cell: Cell | None = self
        while cell is not None:
            if cell is other:
                return True
            cell = cell.parent
        return False

    def describe(self) -> str:
        """The state an actor's ``repr`` shows: lifecycle state, queue, children, restarts."""
        restarts = f" restarts={self._rare.restarts}" if self._rare.restarts else ""
        return (f"{self.path!r} {STATE_NAMES[self.state]} queued={self.mailbox_length}"
                f" children={0 if self._children is None else len(self._children)}{restarts}")

    def __repr__(self) -> str:
        return f"<Cell {self.describe()}>"

    # -- the mailbox's hooks and the target protocol ---------------------------------------------------------

    def _accepting(self) -> bool:
        return self.state < STOPPING

    def _stamp(self) -> tuple[float, int]:
        # With its arrival number, the figures weigh a timed message by the arrivals since the previous one.
        if not self.figures:  # none yet, or pending: the timed message will need them (never so with figures off)
            self.system.measure(self, self._arrivals, pending=False)
        return self.system.now(), self._arrivals

    def _ready(self) -> None:
        """Hand the cell to the dispatcher (the caller checked it is not scheduled yet)."""
        self._take()
        self.system.dispatcher.schedule(self)

    def _take(self) -> None:
        """Mark the cell as taken by a runner (or an asker), and keep its figures if it was parked."""
        self.scheduled = True
        figures = self.figures
        if figures is None or not figures.active:
            self.system.measure(self, self._arrivals)

    def claim(self, message: Any) -> bool:
        """Take the cell for an asker to handle ``message`` in its own task (``Dispatcher.run_here``), if that is
        the same as a runner handling it next: the actor is running and idle (nothing queued, not with a runner),
        has no stop timeout to enforce, and the code that will handle ``message`` can never suspend. (The mailbox's
        bound does not matter: it is empty.)"""
        if self.scheduled or not self._inline or self.state != RUNNING or self._sysq or self._queue:
            return False
        if message.__class__ is Call:  # Methods.never_suspends, inlined: a call's own per-message cost
            names = self.system.methods.by_class.get(self.actor_class)  # type: ignore[arg-type]
            entry = None if names is None else names.get(message[1])
            if entry is None or not entry[2] or entry[0] != message[0]:
                return False
        self._take()
        return True

    def _set_handler(self, handler: Callable[[Any], Any] | None) -> None:
        """Handle the next messages with ``handler``; ``None`` is the instance's own ``receive``, which the actor's
        first run calls through its class and later runs bind once (so an actor sent one message holds no bound
        method)."""
        self._handler = handler
        if handler is None and self.instance is not None:
            handler = self.instance.__class__.receive
        self._inline = self.spec.stop_timeout is None and never_suspends(handler)

    def _receiver(self) -> Callable[[Any], Any]:
        """The handler of the next message (see ``_set_handler``)."""
        handler = self._handler
        if handler is None:
            handler = self._handler = self.instance.receive
        return handler

    def _undeliverable(self, message: Any, sender: ActorRef | None, mark: Any, reason: str) -> None:
        """Record a dead letter, and fail the ask waiting on it so that it never hangs.

        What the runtime queued itself (a ``Terminated`` for a watcher, a timer tick, a message under an ended
        lease) is dropped without a dead letter when the actor has stopped: nobody lost anything.
        """
        if mark.__class__ is int:
            if reason == "overflow":
                error: Exception = MailboxFull(f"{self.ref!r} dropped {show(message)} from its full mailbox")
            else:
                error = ActorStopped(f"{self.ref!r} is stopped; {show(message)} was not delivered")
            self.system.correlations.fail(mark, error)
        elif reason == "stopped" and mark is not None and (
                mark is WATCH_MARK or mark.__class__ is TimerTick or (mark.__class__ is Lease and mark.revoked)):
            return
        self.system.dead_letter(message, sender, self.ref, reason)

    def deliver_leased(self, message: Any, sender: ActorRef | None, lease: Lease) -> None:
        """Queue ``message`` under ``lease``, which ends if this actor fails (see :class:`~runtime.Lease`)."""
        rare = self._own()
        if rare.leases is None:
            rare.leases = set()
        rare.leases.add(lease)
        self.deliver(message, sender, lease)

    def deliver_system(self, message: SystemMessage) -> None:
        """Queue a system message; a stopped actor answers it at once (see :meth:`_refuse_system`)."""
        if self.state == STOPPED:
            self._refuse_system(message)
            return
        self.put_system(message)
        waiter = self._rare.sys_waiter
        if waiter is not None:
            self._rare.sys_waiter = None
            trio.lowlevel.reschedule(waiter, outcome.Value(None))

    def _refuse_system(self, message: SystemMessage) -> None:
        """Answer a system message this actor will never handle: a watcher gets ``Terminated`` at once, a parent
        waiting for a group restart step gets its acknowledgement; the rest have nothing left to act on."""
        cls = message.__class__
        if cls is Watch:
            message.watcher._target.deliver(Terminated(self.ref, None), None, WATCH_MARK)  # type: ignore[union-attr]
        elif cls is Halt and self.parent is not None:
            self.parent.deliver_system(Halted(self.ref))
        elif cls is Rebuild and self.parent is not None:
            self.parent.deliver_system(Rebuilt(self.ref, self._rare.restarts))

    def has_work(self) -> bool:
        """Whether a runner should call :meth:`run` again."""
        state = self.state
        if state == STARTING:
            return False
        if self._sysq:
            return True
        if state != RUNNING:
            return False
        if self._queue:
            return True
        return self._single is not NO_ITEM

    # -- the loop --------------------------------------------------------------------------------------------

    async def run(self, budget: int) -> int:
        """Handle up to ``budget`` messages, system messages first; return how many were taken (at least 1).

        This is the per-message path: everything in the loop body runs once per message, so it keeps to local
        variables and one check of the system lane; rarer work (system messages, runtime-marked messages,
        failures, sampled figures) leaves the straight line.
        """
        state = self.state
        if state == STARTING or (state != RUNNING and not self._sysq):
            return 1
        taken = 0
        skipped = 0
        q = self._queue or self.open_queue()
        peak = self._peak
        arrived = -1  # the arrival count when the queue's length was last looked at (-1: never)
        bounded = self._capacity is not None
        killable = self.spec.stop_timeout is not None
        poison = PoisonPill
        call = Call
        while taken < budget:
            if self._sysq is not None:  # (a test for None is one step; the truth of None is a call)
                if self._sysq:
                    taken += 1
                    skipped += 1
                    await self._system_message(self._sysq.popleft())
                    if self.state != RUNNING and not self._sysq:
                        break
                    q = self._queue or self.open_queue()
                    continue
                self._sysq = None
            if not q:
                break
            if self._arrivals != arrived:  # (else the queue is shorter than when last looked at)
                arrived = self._arrivals
                if len(q) > peak:
                    peak = len(q)
            env = q.popleft()
            taken += 1
            if bounded and self._putters:
                self._putters.unpark()
            if env.__class__ is tuple:
                message, self._from, mark, stamp = env
                if mark is not None and mark.__class__ is not int:
                    message = self._unwrap(message, mark)
                    if message is _DROP:
                        skipped += 1
                        continue
                    mark = None
                    env = (message, env[1], None, stamp)
            else:  # from the sender of the envelope before it, not an ask, not timed: queued by itself
                message = env
                mark = stamp = None
            cls = message.__class__
            if cls is poison:
                skipped += 1
                self.request_stop(None, "self")
                if mark is not None:
                    self.system.correlations.answer(mark, None)  # the pill is accepted: the actor stops after it
                continue
            self._env = env
            if stamp is not None:
                started = self.system.now()
            try:
                if killable:
                    result = await self._handle_killable(message, mark)
                    if result is _KILLED:
                        skipped += 1
                        continue
                elif cls is call:
                    # Methods.run's fast path, inlined: a method this class has run before, by the same owner.
                    # (The table is looked up here, not before the loop: a run without calls pays nothing.)
                    owner, method, args, kwargs = message
                    instance = self.instance
                    methods = self.system.methods
                    names = methods.by_class.get(instance.__class__)
                    entry = None if names is None else names.get(method)
                    if entry is not None and entry[0] == owner and entry[1].__class__ is FunctionType:
                        if kwargs or len(args) > 1:
                            result = await entry[1](instance, *args, **kwargs)
                        elif args:  # a plain call costs a third less than a starred one (no new tuple)
                            result = await entry[1](instance, args[0])
                        else:
                            result = await entry[1](instance)
                    else:
                        result = await methods.run(instance, message, self._receiver())
                else:
                    handler = self._handler
                    if handler is not None:
                        result = await handler(message)
                    elif self._handled:
                        result = await self._receiver()(message)
                    else:  # its first run: no bound method for it yet
                        instance = self.instance
                        result = await instance.__class__.receive(instance, message)
            except BaseException as exc:
                if not isinstance(exc, Exception) and _ends_the_runner(exc):
                    raise
                skipped += 1
                self._own().failed += 1
                self._deferred = False
                self._fail(exc, message, mark)
                break
            if mark is not None:
                self._answer(mark, result)
            elif result is not None and result.__class__ is Reply:
                self._refused(message, open_item(env, self._from)[1], result)
            if stamp is not None:
                self.figures.add_sample(stamp, started, self.system.now(), self._arrivals)
        if not self._handled and not q:
            # The end of its first run, with nothing queued: an actor sent one message (as each of a million may
            # be) gives its queue back, so that it keeps none; the next message made to wait keeps one for good.
            self._queue = None
            self.slow = True
        self._handled += taken - skipped
        self._env = NO_ITEM
        if peak > self._peak:
            self._peak = peak
        return taken or 1

    async def _handle_killable(self, message: Any, mark: int | None) -> Any:
        """Handle one message inside a cancel scope that a stop cancels once ``stop_timeout`` has passed.

        A cancelled handler is not a failure: its ask raises :class:`ActorStopped`, the message does not count as
        handled (``_KILLED`` tells ``run`` so), and the stop goes on.
        """
        rare = self._own()
        rare.handling += 1
        with trio.CancelScope() as scope:
            rare.handler_scope = scope
            try:
                if message.__class__ is Call:
                    return await self.system.methods.run(self.instance, message, self._receiver())
                return await self._receiver()(message)
            finally:
                rare.handler_scope = None
        error = ActorStopped(f"{self.ref!r} was stopped and did not finish {show(message)} within "
                             f"stop_timeout={self.spec.stop_timeout}s; its handler was cancelled")
        if mark is not None:
            self.system.correlations.fail(mark, error)
        logger.warning("%s", error)
        return _KILLED

    def _kill_if_stuck(self, handling: int) -> None:
        """The stop timeout passed: cancel the handler if it is still the one that was running at the stop."""
        scope = self._rare.handler_scope
        if scope is not None and self._rare.handling == handling and self.state < STOPPED:
            scope.cancel()

    def _answer(self, correlation_id: int, result: Any) -> None:
        """Answer the ask being handled with the handler's return value (unless it was deferred)."""
        if self._deferred:
            self._deferred = False
            return
        table = self.system.correlations
        if result.__class__ is Reply:
            answered = table.fail(correlation_id, result.exception)
            result = result.exception
        else:
            answered = table.answer(correlation_id, result)
        if not answered and result is not None:  # answered already through self.sender, or the asker is gone
            self.system.dead_letter(result, self.ref, None, "late reply")

    def _refused(self, message: Any, sender: ActorRef | None, reply: Reply) -> None:
        """A told message answered with ``Reply.error``: nobody waits for the error, so it is a dead letter."""
        self.system.dead_letter(message, sender, self.ref, f"refused: {show(reply.exception)}")

    def _unwrap(self, message: Any, mark: Any) -> Any:
        """Open a runtime-marked message: drop a revoked lease's message, a stale timer tick or an unwatched
        ``Terminated``."""
        if mark.__class__ is Lease:
            return _DROP if mark.revoked else message
        if mark is WATCH_MARK:
            watching = self._rare.watching
            target = message.ref
            if watching is None or target not in watching:
                return _DROP
            watching.discard(target)
            return message
        timers = self._rare.timers
        if timers is None or not timers.deliverable(mark):
            return _DROP
        return message

    # -- the actor's context ---------------------------------------------------------------------------------

    def _current_env(self, what: str) -> Envelope:
        env = self._env
        if env is NO_ITEM or current_actor.get() is not self.ref:
            raise RuntimeError(f"{what} works only inside the actor's own receive(), while it handles a message")
        return open_item(env, self._from)

    @property
    def sender(self) -> ActorRef | None:
        """The current message's sender: an actor's ref, a reply ref during an ask, or ``None``."""
        env: Envelope = self._env
        if env.__class__ is not tuple:  # between messages, or a message queued by itself
            return None if env is NO_ITEM else self._from
        mark = env[2]
        if mark.__class__ is int and not self._deferred:
            return ReplyRef(self, mark, self.system.correlations)
        return env[1]

    def defer_reply(self) -> ActorRef:
        """Take over answering the current ask: the return value no longer answers it."""
        mark = self._current_env("defer_reply()")[2]
        if mark.__class__ is not int:
            raise RuntimeError(f"{self.ref!r}: defer_reply() needs an ask being handled; this message was told")
        if self._deferred:
            raise RuntimeError(f"{self.ref!r}: the current ask was already deferred or stashed")
        self._deferred = True
        self._hold_reply(mark)
        return ReplyRef(self, mark, self.system.correlations)

    def _hold_reply(self, correlation_id: int) -> None:
        """Remember an ask this actor answers later, to fail it if the actor restarts or stops first."""
        rare = self._own()
        replies = rare.open_replies
        if replies is None:
            replies = rare.open_replies = set()
        replies.add(correlation_id)
        self.system.correlations.when_done(correlation_id, replies.discard)

    def forward(self, target: ActorRef | SharedQueue, message: Any) -> None:
        """Send ``message`` to ``target`` as if the current message's sender had sent it, ask included.

        The target's ``self.sender`` is the original sender; if the current message is an ask, the target's
        answer answers it, and this actor's return value no longer does. ``target`` may be a
        :class:`~runtime.SharedQueue`: then its first free member is the target.
        """
        env = self._current_env("forward()")
        mark = env[2] if env[2].__class__ is int and not self._deferred else None
        target._target.deliver(message, env[1], mark)  # a full "fail" mailbox raises here, leaving the ask ours
        if mark is not None:
            self._deferred = True

    def stash(self) -> None:
        """Keep the current message (and its pending ask, if any) aside until :meth:`unstash_all`."""
        env = self._env = self._current_env("stash()")  # the envelope itself, so that a second stash() sees it
        rare = self._own()
        if self._deferred or (rare.stash and rare.stash[-1] is env):
            raise RuntimeError(f"{self.ref!r}: the current message was already stashed or its reply deferred")
        if rare.stash is None:
            rare.stash = []
        rare.stash.append(env)
        if env[2] is not None:
            self._deferred = True

    def unstash_all(self) -> None:
        """Put the stashed messages back, in order, ahead of everything queued after them."""
        stash = self._rare.stash
        if not stash:
            return
        self._rare.stash = None
        q = self.open_queue()
        if not isinstance(q, deque):
            q = self._queue = deque()
        if not q:
            self._last = stash[-1][1]  # the sender of the item now queued last
        else:
            self._seal_head(q, self._from)  # its sender was that of the envelope taken out before it
        q.extendleft(reversed(stash))
        if len(q) > self._peak:  # (the run loop looks at the length again only when a message arrives)
            self._peak = len(q)
        if not self.scheduled and self.state != STARTING:
            self._ready()

    def become(self, handler: Callable[[Any], Any]) -> None:
        """Handle the next messages with ``handler`` instead of ``receive``."""
        if not callable(handler):
            raise TypeError(f"become() takes an async function of one message, not {show(handler)}")
        self._set_handler(handler)

    def unbecome(self) -> None:
        """Go back to ``receive``."""
        self._set_handler(None)

    def watch(self, target: ActorRef) -> None:
        """Get ``Terminated(target)`` when ``target`` stops for good (at once if it already has).

        The watch travels to the target as a system message, so it works the same for any target.
        """
        rare = self._own()
        if rare.watching is None:
            rare.watching = set()
        if target in rare.watching:
            return
        rare.watching.add(target)
        target._target.deliver_system(Watch(self.ref))

    def unwatch(self, target: ActorRef) -> None:
        """Stop watching ``target``; a ``Terminated`` already queued for it is discarded."""
        watching = self._rare.watching
        if watching is None or target not in watching:
            return
        watching.discard(target)
        target._target.deliver_system(Unwatch(self.ref))

    @property
    def timers(self) -> Timers:
        """The actor's timers (created on first use)."""
        rare = self._own()
        if rare.timers is None:
            rare.timers = Timers(self)
        return rare.timers

    # -- spawning --------------------------------------------------------------------------------------------

    def reserve_name(self, name: str | None) -> str:
        """Check that ``name`` is free among the live children, or make a fresh one for ``None``."""
        if name is None:
            self.system.auto_names += 1
            return f"${self.system.auto_names}"
        children = self._children
        if children is not None and name in children:
            where = "at the top level" if self.parent is None else f"under {self.ref!r}"
            raise NameTaken(f"an actor named {name!r} already exists {where}")
        return name

    async def spawn_child(self, spec: SpawnSpec, *, shared: SharedQueue | None = None) -> ActorRef:
        """Create, register and start a child from a validated spec; returns once its ``on_start`` has finished.

        With ``shared``, the child is a member of that :class:`~runtime.SharedQueue`, on this node.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.state >= STOPPING:
            raise ActorStopped(f"{self.ref!r} is stopping; it cannot spawn {spec.factory!r}")
        name = self.reserve_name(spec.name)
        if spec.node is not None:
            if shared is not None:
                raise ValueError(f"node={show(spec.node)}: a member of a shared queue runs in the queue's process")
            cluster = self.system.cluster
            if cluster is None:
                raise ValueError(f"node={show(spec.node)}: this system runs on one node (ActorSystem(workers=N) "
                                 "starts worker nodes)")
            node = cluster.place(spec.node)
            if node != self.system.node_id:
                return await cluster.spawn(self, name, spec, node)
        uid = next(self.system.uids)
        cell = Cell(self.system, self, name, spec, uid) if shared is None else shared.member(self, name, spec, uid)
        cell._build()
        self.adopt(name, cell)
        if not cell._started_at_once():
            try:
                await cell._start_hook(None)
            except BaseException:
                self.child_stopped(cell)
                raise
        if shared is not None:
            shared.offer(cell)
        return cell.ref

    def is_current(self, incarnation: int) -> bool:
        """Whether a failure report of this actor's ``incarnation`` is about the incarnation running now."""
        return self._rare.restarts == incarnation

    def rebuilt(self, incarnation: int) -> None:
        """A group restart rebuilt this actor (``incarnation`` is what it reported; a cell knows its own)."""

    def adopt(self, name: str, child: Any) -> None:
        """Register ``child`` (a cell, or a handle on a child on another node) under ``name``."""
        if self._children is None:
            self._children = {}
        self._children[name] = child

    def child_stopped(self, child: Any) -> None:
        """``child`` stopped for good (or never started): forget it, which frees its name."""
        children = self._children
        name: str = child.name
        if children is not None and children.get(name) is child:
            del children[name]

    async def start(self) -> None:
        """Run a fresh cell's ``on_start`` (the instance is built); it is running when this returns."""
        if self.instance is None:
            self._build()
        if not self._started_at_once():
            await self._start_hook(None)

    def _started_at_once(self) -> bool:
        """Go running now if the built actor has no ``on_start`` of its own; ``False`` if it has one to run (then
        ``_start_hook`` runs it; a spawn awaits that, and only that)."""
        if type(self.instance).on_start is not _DEFAULT_ON_START:
            return False
        self.state = RUNNING
        if self.system.events:
            self.system.lifecycle(self.ref, "started", None)
        return True

    def _build(self) -> None:
        """Make a fresh instance from the spec; raises ``ActorFailed``/``TypeError`` as ``spawn`` documents."""
        spec = self.spec
        outer = _constructing.cell
        _constructing.cell = self
        try:
            instance = spec.factory(*spec.args, **spec.kwargs)
        except BaseException as exc:
            if not isinstance(exc, Exception) and _ends_the_runner(exc):
                raise
            clearer = check_arguments(spec.factory, spec.args, spec.kwargs) if isinstance(exc, TypeError) else None
            if clearer is not None:
                raise clearer from exc
            raise ActorFailed(f"{show(spec.factory)} raised while building actor {self.path!r}: {show(exc)}",
                              exc) from exc
        finally:
            _constructing.cell = outer
        if not isinstance(instance, ActorBase):
            raise TypeError(f"{show(spec.factory)} returned {show(instance)}, which is not an Actor")
        if (spec.args or spec.kwargs) and instance.__class__ is spec.factory and \
                instance.__class__.__init__ is object.__init__:  # ActorBase.__new__ took them silently
            raise stray_arguments(spec.factory, spec.args, spec.kwargs)
        instance._cell = self
        self.instance = instance
        if instance.__class__ is not self.actor_class:
            self.actor_class = instance.__class__
            self.class_name = self.system.class_name(self.actor_class)
        self._set_handler(None)

    async def _start_hook(self, error: BaseException | None) -> None:
        """Run ``on_start`` (first start) or ``on_restart(error)`` inline, as this actor, then go running.

        ``spawn_child`` calls it only for an actor that overrides ``on_start``; restarts always call it.
        """
        instance = self.instance
        restarting = self.state != STARTING
        token = current_actor.set(self.ref)
        try:
            if restarting:
                await instance.on_restart(error)
            else:
                await instance.on_start()
        except BaseException as exc:
            if not restarting:
                await self._abort_start()
                if isinstance(exc, Exception) or not _ends_the_runner(exc):
                    raise ActorFailed(f"actor {self.path!r} failed in on_start: {show(exc)}", exc) from exc
            raise
        finally:
            current_actor.reset(token)
        if self.state in (STARTING, RESTARTING):
            self.state = RUNNING
        self.system.lifecycle(self.ref, "restarted" if restarting else "started", error)
        if self.has_work() and not self.scheduled:
            self._ready()

    async def _abort_start(self) -> None:
        """Undo a failed first start: stop the children it made; nothing stays registered."""
        with trio.CancelScope(shield=True):
            await self._stop_children()
        self.state = STOPPED
        self.slow = True
        self._drain_dead("failed to start")
        self._notify_watchers(None)
        self.system.forget(self)  # a message told during on_start made the system measure this cell

    # -- system messages -------------------------------------------------------------------------------------

    async def _system_message(self, message: SystemMessage) -> None:
        self._env = NO_ITEM
        cls = message.__class__
        if cls is Stop:
            await self._on_stop_request(message.reason, message.origin, message.deadline)  # type: ignore[union-attr]
        elif cls is ChildFailed:
            await self._supervise(message.child, message.incarnation, message.error,  # type: ignore[union-attr]
                                  failed=True)
        elif cls is ChildExited:
            await self._supervise(message.child, message.incarnation, None, failed=False)  # type: ignore[union-attr]
        elif cls is Resume:
            if self.state == SUSPENDED:
                self.state = RUNNING
        elif cls is Reincarnate:
            await self._restart(message.error, message.delay)  # type: ignore[union-attr]
        elif cls is Halt:
            if self.state < STOPPING:
                self.state = RESTARTING
                await self._stop_incarnation(message.error)  # type: ignore[union-attr]
            self._acknowledge(Halted)
        elif cls is Rebuild:
            if self.state == RESTARTING:
                await self._new_incarnation(message.error)  # type: ignore[union-attr]
            self._acknowledge(Rebuilt)
        else:
            self._note_watch(message)
        # Halted or Rebuilt that nobody waits for any more (the parent gave up its plan): nothing to do.

    def _note_watch(self, message: SystemMessage) -> bool:
        """Take a ``Watch`` or ``Unwatch`` into the watcher set; ``False`` for any other system message."""
        cls = message.__class__
        if cls is Watch:
            rare = self._own()
            if rare.watchers is None:
                rare.watchers = set()
            rare.watchers.add(message.watcher)  # type: ignore[union-attr]
            return True
        if cls is Unwatch:
            if self._rare.watchers is not None:
                self._rare.watchers.discard(message.watcher)  # type: ignore[union-attr]
            return True
        return False

    def _acknowledge(self, kind: type[Halted] | type[Rebuilt]) -> None:
        if self.parent is not None:
            self.parent.deliver_system(Halted(self.ref) if kind is Halted else Rebuilt(self.ref, self._rare.restarts))

    async def _await_acknowledgement(self, kind: type[Halted] | type[Rebuilt], child: ActorRef) -> Any:
        """Wait on the system lane for ``kind(child)``; other system messages keep their order for afterwards.

        This is how a parent performs a group restart step by step, as an OTP supervisor does it synchronously.
        """
        kept: list[SystemMessage] = []
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            if self._rare.sys_waiter is task:
                self._rare.sys_waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        try:
            while True:
                sysq = self._sysq
                while sysq:
                    message = sysq.popleft()
                    if message.__class__ is kind and message.child is child:
                        return message
                    kept.append(message)
                self._own().sys_waiter = task
                await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            if kept:
                if self._sysq is None:
                    self._sysq = deque()
                self._sysq.extendleft(reversed(kept))

    def request_stop(self, reason: BaseException | None, origin: StopOrigin) -> None:
        """Ask the cell to stop after its current message (``origin``: "self", "parent" or "external")."""
        if self.state >= STOPPING:
            return
        stop_timeout = self.spec.stop_timeout
        deadline = math.inf if stop_timeout is None else trio.current_time() + stop_timeout
        self.deliver_system(Stop(reason, origin, deadline))
        rare = self._rare
        if rare.scope is not None:
            rare.scope.cancel()
        if rare.handler_scope is not None and stop_timeout is not None:
            self.system.timer_service.call_at(deadline, self._kill_if_stuck, rare.handling)

    async def _on_stop_request(self, reason: BaseException | None, origin: StopOrigin, deadline: float) -> None:
        if self.state >= STOPPING:
            return
        parent = self.parent
        if (origin == "self" and self.restart is Restart.PERMANENT and parent is not None
                and parent.state < STOPPING and self.state == RUNNING):
            self.state = SUSPENDED
            parent.deliver_system(ChildExited(self.ref, self._rare.restarts))
            return
        await self.terminate(reason, deadline)

    def _fail(self, error: BaseException, message: Any, mark: int | None) -> None:
        """The handler raised: suspend, let the parent decide, and fail the ask. The parent hears first, so that
        an asker who learns of the failure finds the supervisor already acting on it (the two may be on other
        nodes, and arrive in separate frames)."""
        self.report_failure(error)
        if mark is not None:
            self.system.correlations.fail(
                mark, ActorFailed(f"{self.ref!r} failed while handling {show(message)}: {show(error)}", error))

    def report_failure(self, error: BaseException) -> None:
        """Suspend this actor and hand ``error`` to its supervisor (the system, at the top).

        Every lease this actor was told messages under ends now: their senders take that work back, including
        what they tell it under those leases before they hear of the failure.
        """
        self.state = SUSPENDED
        leases = self._rare.leases
        if leases:
            self._rare.leases = None
            for lease in leases:
                lease.recipient_failed(self.ref, error)
        self.system.lifecycle(self.ref, "failed", error)
        parent = self.parent
        if parent is None:
            self.system.fail(self, error)
        else:
            parent.deliver_system(ChildFailed(self.ref, error, self._rare.restarts))

    # -- supervision (this cell as the parent) ---------------------------------------------------------------

    async def _supervise(self, child_ref: ActorRef, incarnation: int, error: BaseException | None, *,
                         failed: bool) -> None:
        """Decide about a child that failed or exited (:func:`plan_restart`), then carry the plan out.

        A report from an incarnation that has since been replaced (a group restart ran in between) is stale.
        """
        children = self._children
        if children is None:
            return
        child: Any = children.get(child_ref.name)
        if (child is None or child.ref is not child_ref or child.state >= STOPPING or self.state >= STOPPING
                or not child.is_current(incarnation)):
            return
        strategy = self.strategy
        if self.window is None:
            self.window = strategy.new_window()
        now = self.system.now()
        plan = plan_restart(strategy, list(children.values()), child, error, failed=failed, window=self.window,
                            now=now, rng=self.system.random)
        if failed:
            logger.error("actor %r failed; %s decides %s", child.path, type(strategy).__name__,
                         plan.directive.value, exc_info=plan.error)
        action = plan.action
        if action == "resume":
            child.deliver_system(Resume())
        elif action == "stop":
            child.request_stop(plan.error, "parent")
        elif action == "escalate":
            assert plan.error is not None
            self.report_failure(plan.error)
        elif action == "give_up":
            logger.error("actor %r: restart intensity %d within %ss exceeded; stopping its children",
                         self.path, strategy.max_restarts, strategy.within)
            await self._stop_children()
            assert plan.error is not None
            self.report_failure(plan.error)
        else:
            if strategy.backoff is not None:
                child.backoff_count = plan.backoff_count
                child.last_restart = now
            await self._restart_children(plan)

    async def _restart_children(self, plan: RestartPlan[Cell]) -> None:
        """Perform a restart plan: one child restarts on its own; a group is halted, backed off and rebuilt here,
        step by step, each step acknowledged by the child before the next."""
        error = plan.error
        if plan.alone:
            plan.halt[0].deliver_system(Reincarnate(error, plan.delay))
            return
        for sibling in plan.halt:
            sibling.deliver_system(Halt(error))
            await self._await_acknowledgement(Halted, sibling.ref)
        if not await self._back_off(plan.delay):
            return
        for sibling in plan.rebuild:
            if sibling.state != RESTARTING:
                continue
            if sibling in plan.stop:
                sibling.request_stop(None, "parent")
                continue
            sibling.deliver_system(Rebuild(error))
            rebuilt = await self._await_acknowledgement(Rebuilt, sibling.ref)
            sibling.rebuilt(rebuilt.incarnation)

    # -- this cell restarting and stopping -------------------------------------------------------------------

    async def _restart(self, error: BaseException | None, delay: float) -> None:
        if self.state >= STOPPING:
            return
        self.state = RESTARTING
        await self._stop_incarnation(error)
        if await self._back_off(delay):
            await self._new_incarnation(error)

    async def _back_off(self, delay: float) -> bool:
        """Wait ``delay`` seconds before a restart; ``False`` if a stop request cut the wait short.

        ``request_stop`` cancels ``_scope``, so a stop never waits out a backoff.
        """
        if delay > 0:
            rare = self._own()
            with trio.CancelScope() as rare.scope:
                await trio.sleep(delay)
            rare.scope = None
        return not (self._sysq and any(message.__class__ is Stop for message in self._sysq))

    async def _stop_incarnation(self, error: BaseException | None) -> None:
        """End the current instance: timers, children (reverse start order), ``on_stop``, stash, replies.

        The fresh instance starts with a fresh restart-intensity window for its own children, as in OTP.
        """
        self.window = None
        if self._rare.timers is not None:
            self._rare.timers.cancel_all()
        await self._stop_children()
        stop_timeout = self.spec.stop_timeout
        await self._run_on_stop(math.inf if stop_timeout is None else trio.current_time() + stop_timeout)
        self._set_handler(None)
        cause = ActorFailed(f"{self.ref!r} was restarted before it answered", error)
        self._fail_open_replies(cause)
        stash = self._rare.stash
        if stash:
            self._rare.stash = None
            for message, sender, mark, _ in stash:
                self._undeliverable(message, sender, mark, "stash cleared by restart")

    async def _new_incarnation(self, error: BaseException | None) -> None:
        try:
            self._build()
            await self._start_hook(error)
        except BaseException as exc:
            if not isinstance(exc, Exception) and _ends_the_runner(exc):
                raise
            self.instance = None
            cause = exc.cause if isinstance(exc, ActorFailed) and exc.cause is not None else exc
            self.report_failure(cause)
            return
        self._own().restarts += 1

    async def _run_on_stop(self, deadline: float) -> None:
        """Run ``on_stop``, cancelled at ``deadline`` (the stop timeout's end); what it raises is logged."""
        instance = self.instance
        if instance is None:
            return
        self.instance = None
        if type(instance).on_stop is _DEFAULT_ON_STOP:
            return
        try:
            with trio.CancelScope(deadline=deadline) as scope:
                await instance.on_stop()
        except BaseException as exc:
            if not isinstance(exc, Exception) and _ends_the_runner(exc):
                raise
            logger.error("on_stop of actor %r raised %s", self.path, show(exc), exc_info=exc)
            return
        if scope.cancelled_caught:
            logger.warning("on_stop of actor %r did not finish within stop_timeout=%ss; it was cancelled",
                           self.path, self.spec.stop_timeout)

    async def _stop_children(self) -> None:
        """Stop every child in reverse start order, each subtree finished before the next begins.

        A child that is idle and has no ``on_stop`` of its own is stopped right here, in this cell's runner, with
        no round trip through its mailbox and a runner of its own (:meth:`_stops_here`); the others are sent
        ``Stop`` and waited for. This runner passes a checkpoint every ``STOP_SLICE`` children stopped here, so
        that stopping a million children keeps other tasks running and a deadline can cut it short.
        """
        children = self._children
        here = 0
        while children:
            # A snapshot, walked from the end: taking the last entry of a dict that its earlier deletions left
            # holes in would cost a scan of those holes every time (quadratic over a large family).
            for child in reversed(list(children.values())):
                name = child.name
                if name not in children or children[name] is not child:
                    continue  # it stopped on its own meanwhile
                if child.local and child._stops_here():
                    await child._stop_here()  # which unregistered it
                    here += 1
                    if here % STOP_SLICE == 0:
                        await trio.lowlevel.checkpoint()
                else:
                    child.request_stop(None, "parent")
                    await child.wait_stopped()
                    self.child_stopped(child)  # a no-op: its stop unregistered it

    def _stops_here(self) -> bool:
        """Whether the parent may stop this child in its own runner: no runner has it (so it is not handling a
        message, backing off or waiting for acknowledgements), it has started, it is not stopping yet, and no
        ``on_stop`` of its own has to run as this actor, in its own runner."""
        if self.scheduled or self.state == STARTING or self.state >= STOPPING:
            return False
        instance = self.instance
        return instance is None or type(instance).on_stop is _DEFAULT_ON_STOP

    async def _stop_here(self) -> None:
        """Stop this idle child from its parent's runner, as ``Stop(None, "parent")`` would have in its own.

        It is marked scheduled meanwhile, so that no runner takes it while it stops (its grandchildren may make
        it wait): a cell is with at most one runner. What reaches its system lane meanwhile is answered when it
        has stopped, as for any stopped actor.
        """
        stop_timeout = self.spec.stop_timeout
        self.scheduled = True
        try:
            await self.terminate(None, math.inf if stop_timeout is None else trio.current_time() + stop_timeout)
        finally:
            self.scheduled = False

    async def terminate(self, reason: BaseException | None, deadline: float = math.inf) -> None:
        """Stop for good: children first, then ``on_stop``, then dead letters, watchers and the parent.

        ``deadline`` (from ``stop_timeout``, as OTP's shutdown time) bounds all of it: children still stopping
        then are left to finish on their own, and ``on_stop`` is cancelled.
        """
        if self.state >= STOPPING:
            return
        was = self.state
        self.state = STOPPING
        self.slow = True
        if self._rare.timers is not None:
            self._rare.timers.cancel_all()
        if self._children:
            with trio.CancelScope(deadline=deadline) as scope:
                await self._stop_children()
            if scope.cancelled_caught:
                logger.warning("actor %r: its children did not stop within stop_timeout=%ss; they go on stopping "
                               "on their own", self.path, self.spec.stop_timeout)
                for child in self.children:
                    child.request_stop(None, "parent")
        if was != RESTARTING:
            await self._run_on_stop(deadline)
        self.state = STOPPED
        self._set_handler(None)
        self._drain_dead("stopped before it answered")
        if self.parent is not None:
            self.parent.child_stopped(self)
        self._notify_watchers(reason)
        rare = self._rare  # what is set in it is this cell's own (the shared defaults are all empty)
        watching = rare.watching
        if watching:
            rare.watching = None
            unwatch = Unwatch(self.ref)
            for target in watching:
                target._target.deliver_system(unwatch)
        self.system.lifecycle(self.ref, "stopped", reason)
        self.system.forget(self)
        lot = rare.stopped_lot
        if lot is not None:
            rare.stopped_lot = None
            lot.unpark_all()

    def _notify_watchers(self, reason: BaseException | None) -> None:
        watchers = self._rare.watchers
        if watchers:
            self._rare.watchers = None
            terminated = Terminated(self.ref, reason)
            for watcher in watchers:  # a watcher that is stopping itself drops it without a dead letter
                watcher._target.deliver(terminated, None, WATCH_MARK)

    def _drain_dead(self, why: str) -> None:
        """Turn everything still queued into dead letters, in order, and release whoever waits on us.

        Leased messages are not dead letters: their leases end here, and their senders (who watch this actor if
        they need to know) take them back. Pending watches are taken, so that they get the right ``Terminated``.
        """
        rare = self._rare  # what is set in it is this cell's own (the shared defaults are all empty)
        leases = rare.leases
        if leases:
            rare.leases = None
            for lease in leases:
                lease.revoke()
        if rare.open_replies:  # the error is made only for someone to fail: a million stops make none
            self._fail_open_replies(ActorStopped(f"{self.ref!r} {why}"))
        q = self.open_queue()
        if q:
            self._queue = None
            for message, sender, mark, _ in self._open_all(q):
                self._undeliverable(message, sender, mark, "stopped")
        stash = rare.stash
        if stash:
            rare.stash = None
            for message, sender, mark, _ in stash:
                self._undeliverable(message, sender, mark, "stopped")
        sysq = self._sysq
        if sysq:
            self._sysq = None
            for message in sysq:
                if not self._note_watch(message):
                    self._refuse_system(message)
        putters = self._putters
        if putters is not None:
            self._putters = None
            putters.unpark_all()

    def _fail_open_replies(self, cause: BaseException) -> None:
        replies = self._rare.open_replies
        if replies:
            self._rare.open_replies = None
            table: Correlations = self.system.correlations
            for correlation_id in list(replies):
                table.fail(correlation_id, cause)

    async def wait_stopped(self) -> None:
        """Wait until this actor has stopped for good; a checkpoint even if it already has."""
        if self.state == STOPPED:
            await trio.lowlevel.checkpoint()
            return
        rare = self._own()
        if rare.stopped_lot is None:
            rare.stopped_lot = trio.lowlevel.ParkingLot()
        await rare.stopped_lot.park()

    # -- figures ---------------------------------------------------------------------------------------------

    def sample_figures(self, now: float, ticks: int = 1) -> bool:
        """One metrics tick: choose which of the next messages are timed, and park an actor that is quiet.

        ``ticks`` is how many tick intervals this visit stands for (more than one when the system ticks less often
        because it measures more actors than a tick can visit in its share of the loop).

        Returns ``False`` once the actor has been idle at ``Figures.idle_limit`` ticks in a row: it is *parked* (the
        tick stops visiting it) and gives back its empty queue, as an actor that was never sent anything has none;
        the next message has the system measure it again.
        """
        length = self.mailbox_length
        figures = self.figures
        if figures is PENDING:  # this is its first tick
            figures = self.figures = self.system.made_figures(self)
        arrivals = self._arrivals
        # Until the next tick, time every message of a quiet actor (so it still gets exact figures), else one in
        # ``sample_every``; each timed message stands for the arrivals since the previous one. (Timing "the next
        # message after a tick" instead sampled a message that had seen no arrival since the tick, so a shorter
        # queue than the average: W came out short.)
        self.set_mask(figures.timing_mask(now, arrivals, self.system.sample_mask))
        if length or self.scheduled:
            figures.idle_ticks = 0
            return True
        figures.idle_ticks += ticks
        if figures.idle_ticks < figures.idle_limit:
            return True
        figures.park(now, arrivals)
        self._queue = None  # (empty: the single message, if any, would have been counted)
        self.slow = True
        return False

    def statistics(self) -> ActorStatistics:
        """A frozen :class:`~runtime.ActorStatistics` of this actor now."""
        now = self.system.now()
        return from_row(expand(self.captured(now), now, self.system.node_id))

    def captured(self, now: float) -> Captured:
        """This actor's figures now as a :data:`~runtime._figures.Captured`: its numbers, captured without
        building anything (``statistics()`` of a large system calls this for every actor). A parked actor's is
        made once and kept while it stays parked, unless it has children or a restart window, which change on
        their own."""
        figures = self.figures
        arrivals = self._arrivals
        children = self._children
        window = self.window
        parked = False
        if figures.__class__ is Figures:  # measured (pending and off figures are false, but asking them is a call)
            # (Nothing but a runner's or an asker's turn changes a parked actor, and taking it resumes its figures;
            # a parent stopping it in place marks it scheduled instead.)
            if not figures.active and not self.scheduled and not children and window is None:
                row: Captured | None = figures.parked_row
                if row is not None and row[0] == arrivals and figures.still_parked(row, now):
                    return row
                parked = True
            sums = figures.sums(now)
        else:
            sums = None
        length = self.mailbox_length
        peak = self._peak
        by_state: dict[str, int] | None = None
        if children:
            by_state = {}
            for child in children.values():
                state = STATE_NAMES[child.state]
                by_state[state] = by_state.get(state, 0) + 1
        # The run loop updates the peak as it takes messages: while the actor is busy, the queue may be longer
        # than any length seen so far.
        rare = self._rare
        row = (arrivals, self._handled, rare.failed, rare.restarts, length, peak if peak > length else length,
               STATE_NAMES[self.state], by_state, 0 if window is None else window.count(now), self.class_name, sums)
        if parked:
            figures.parked_row = row
        return row
