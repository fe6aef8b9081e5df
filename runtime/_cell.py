"""The actor cell: everything one actor owns, and the loop that runs it.

A cell owns the actor instance, the factory and arguments that rebuild it on restart, a two-lane mailbox, its
children in start order, its watchers, its timers and its figures. It never owns a task: a dispatcher runner calls
:meth:`Cell.run` while the cell has work.

Lifecycle transitions (stop, restart, supervision of children) run in the cell's own runner, between two messages,
when it takes a system message. So an actor's hooks never run concurrently with its ``receive``.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import outcome
import trio

from ._dispatcher import current_cell
from ._exceptions import ActorFailed, ActorStopped, MailboxFull, NameTaken
from ._figures import ActorStatistics
from ._futures import Future
from ._lease import Lease
from ._lifecycle import RESTARTING, RUNNING, STARTING, STATE_NAMES, STOPPED, STOPPING, SUSPENDED
from ._mailbox import Envelope, Mailbox, MailboxQueue
from ._messages import PoisonPill, Reply, Terminated
from ._ref import ActorRef, ReplyRef
from ._supervision import Directive, Restart, RestartWindow, Strategy, should_restart
from ._timers import Timers, TimerTick, positive_seconds

if TYPE_CHECKING:
    from ._system import ActorSystem

__all__ = ["ActorBase", "Cell"]

logger = logging.getLogger("actors")


_constructing: contextvars.ContextVar[Cell | None] = contextvars.ContextVar("constructing", default=None)
"""The cell whose factory is running: set synchronously around the call, read by ``ActorBase.__new__``."""


class ActorBase:
    """The behaviour the engine runs: ``receive`` and the lifecycle hooks, with their defaults.

    ``__new__`` binds the instance to the cell that is constructing it, so an actor's ``__init__`` needs no
    ``super().__init__()`` call and can already use its context.
    """

    _cell: Cell | None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        self._cell = _constructing.get()
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


class _WatchMark:
    """Marks a queued ``Terminated`` so that ``unwatch`` can discard it before it is handled."""


WATCH_MARK = _WatchMark()
_DROP = object()
_KILLED = object()


class Cell(MailboxQueue):
    """One actor: its instance, mailbox, children, watchers, timers, figures and supervision state."""

    __slots__ = (
        "_args", "_children", "_deferred", "_env", "_factory", "_failed", "_figures", "_handled", "_handler",
        "_handler_scope", "_handling", "_kwargs", "_leases", "_mask", "_open_replies", "_restarts", "_scope",
        "_slow", "_stash", "_term_waiters", "_timers", "_watchers", "_watching", "backoff_count", "instance",
        "last_restart", "name", "parent", "ref", "restart", "scheduled", "state", "stop_timeout", "strategy",
        "system", "window",
    )

    def __init__(self, system: ActorSystem, parent: Cell | None, name: str, factory: Callable[..., Any],
                 args: tuple[Any, ...], kwargs: dict[str, Any], *, mailbox: Mailbox, restart: Restart,
                 strategy: Strategy | None) -> None:
        super().__init__(mailbox)
        self.system = system
        self.parent = parent
        self.name = name
        self.ref = ActorRef(self)
        self._factory = factory
        self._args = args
        self._kwargs = kwargs
        self.restart = restart
        self.strategy = strategy
        self.window: RestartWindow | None = None
        self.instance: Any = None
        self._handler: Callable[[Any], Any] | None = None
        self.state = STARTING
        self.scheduled = False
        self._children: dict[str, Cell] | None = None
        self._watchers: set[Cell] | None = None
        self._watching: set[Cell] | None = None
        self._timers: Timers | None = None
        self._stash: list[Envelope] | None = None
        self._env: Envelope | None = None
        self._deferred = False
        self._open_replies: set[Future[Any]] | None = None
        self._leases: set[Lease] | None = None
        self.stop_timeout: float | None = None
        """Seconds a stop waits for the message being handled before cancelling it; None waits for ever."""
        self._handler_scope: trio.CancelScope | None = None
        self._handling = 0
        self._term_waiters: list[trio.lowlevel.Task] | None = None
        self._scope: trio.CancelScope | None = None
        self._handled = 0
        self._failed = 0
        self._restarts = 0
        self._figures: Any = None
        self._mask = system.sample_mask
        self._slow = True
        self.backoff_count = 0
        self.last_restart = -math.inf

    # -- identity --------------------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The slash-separated names from the top of the tree down to this actor."""
        parent = self.parent
        if parent is None or parent.parent is None:
            return self.name
        return f"{parent.path}/{self.name}"

    @property
    def children(self) -> list[Cell]:
        """Live children, in start order."""
        return [] if self._children is None else list(self._children.values())

    def describe(self) -> str:
        """The state an actor's ``repr`` shows: lifecycle state, queue, children, restarts."""
        restarts = f" restarts={self._restarts}" if self._restarts else ""
        return (f"{self.path!r} {STATE_NAMES[self.state]} queued={self.mailbox_length}"
                f" children={0 if self._children is None else len(self._children)}{restarts}")

    def __repr__(self) -> str:
        return f"<Cell {self.describe()}>"

    # -- enqueueing ------------------------------------------------------------------------------------------

    def put(self, message: Any, sender: Cell | None, reply: Any) -> None:
        """Queue a user message; never blocks. A stopped actor turns it into a dead letter."""
        if self._slow:
            self._put_slow(message, sender, reply)
            return
        n = self._arrivals = self._arrivals + 1
        self._queue.append((message, sender, reply, None if n & self._mask else self.system.now()))  # type: ignore[union-attr]
        if not self.scheduled:
            self.schedule()

    def _put_slow(self, message: Any, sender: Cell | None, reply: Any) -> None:
        """``put`` for a stopping actor, a bounded mailbox, or the first message."""
        if self.state >= STOPPING:
            self._undeliverable(message, sender, reply, "stopped")
            return
        q = self._queue
        if q is None:
            q = self._new_queue()
        cap = self._capacity
        self._slow = cap is not None
        if cap is not None and len(q) >= cap and not self._overflowed(message, sender, reply, q, cap):
            return
        n = self._arrivals = self._arrivals + 1
        q.append((message, sender, reply, None if n & self._mask else self.system.now()))
        if not self.scheduled:
            self.schedule()

    def _overflowed(self, message: Any, sender: Cell | None, reply: Any, q: Any, cap: int) -> bool:
        """Apply the overflow policy of a full mailbox; ``True`` if the new message may still be queued."""
        policy = self._overflow
        if policy == "fail":
            raise MailboxFull(f"{self.ref!r} has a full mailbox ({cap} queued); {message!r} was not delivered")
        if policy == "drop_new":
            self._undeliverable(message, sender, reply, "overflow")
            return False
        old_message, old_sender, old_reply, _ = q.popleft()
        self._undeliverable(old_message, old_sender, old_reply, "overflow")
        return True

    def _undeliverable(self, message: Any, sender: Cell | None, reply: Any, reason: str) -> None:
        """Record a dead letter, and fail the ask waiting on it so that it never hangs."""
        if isinstance(reply, Future) and not reply.done():
            if reason == "overflow":
                reply.set_exception(MailboxFull(f"{self.ref!r} dropped {message!r} from its full mailbox"))
            else:
                reply.set_exception(ActorStopped(f"{self.ref!r} is stopped; {message!r} was not delivered"))
        self.system.dead_letter(message, None if sender is None else sender.ref, self.ref, reason)

    def put_leased(self, message: Any, sender: Cell | None, lease: Lease) -> None:
        """Queue ``message`` under ``lease``, which ends if this actor fails (see :class:`~runtime.Lease`)."""
        if self._leases is None:
            self._leases = set()
        self._leases.add(lease)
        self.put(message, sender, lease)

    def put_system(self, item: tuple[Any, ...]) -> None:
        """Queue a system message; it overtakes every user message."""
        self._put_system(item)
        if not self.scheduled:
            self.schedule()

    def schedule(self) -> None:
        """Hand the cell to the dispatcher (the caller checked it is not scheduled yet)."""
        self.scheduled = True
        figures = self._figures
        if figures is None or not figures.active:
            self.system.measure(self)
        self.system.dispatcher.schedule(self)

    def has_work(self) -> bool:
        """Whether a runner should call :meth:`run` again."""
        state = self.state
        if state == STARTING:
            return False
        if self._sysq:
            return True
        return state == RUNNING and bool(self._queue)

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
        q = self._queue or ()
        peak = self._peak
        bounded = self._capacity is not None
        killable = self.stop_timeout is not None
        future = Future
        poison = PoisonPill
        while taken < budget:
            if self._sysq:
                taken += 1
                skipped += 1
                await self._system_message(self._sysq.popleft())
                if self.state != RUNNING and not self._sysq:
                    break
                q = self._queue or ()
                continue
            length = len(q)
            if not length:
                break
            if length > peak:
                peak = length
            env = q.popleft()  # type: ignore[union-attr]
            message, _, reply, stamp = env
            taken += 1
            if bounded and self._putters:
                self._wake_putter()
            if reply is not None and reply.__class__ is not future:
                message = self._unwrap(message, reply)
                if message is _DROP:
                    skipped += 1
                    continue
                reply = None
                env = (message, env[1], None, stamp)
            if message.__class__ is poison:
                skipped += 1
                self.request_stop(None, "self")
                if reply is not None:
                    reply._resolve(1, None)  # the pill is accepted: the actor stops after it
                continue
            self._env = env
            if stamp is not None:
                started = self.system.now()
            try:
                if not killable:
                    result = await self._handler(message)  # type: ignore[misc]
                else:
                    result = await self._handle_killable(message, reply)
                    if result is _KILLED:
                        skipped += 1
                        continue
            except Exception as exc:
                skipped += 1
                self._failed += 1
                self._deferred = False
                self._fail(exc, message, reply)
                break
            if reply is not None:
                self._answer(reply, result)
            elif result is not None and result.__class__ is Reply:
                self._refused(message, env[1], result)
            if stamp is not None:
                self._figures.add_sample(stamp, started, self.system.now(), self._arrivals)
                self._mask = self.system.sample_mask  # after a tick asked for this sample (see measure loop)
        self._handled += taken - skipped
        self._env = None
        if peak > self._peak:
            self._peak = peak
        return taken or 1

    async def _handle_killable(self, message: Any, reply: Any) -> Any:
        """Handle one message inside a cancel scope that a stop cancels once ``stop_timeout`` has passed.

        A cancelled handler is not a failure: its ask raises :class:`ActorStopped`, the message does not count as
        handled (``_KILLED`` tells ``run`` so), and the stop goes on.
        """
        self._handling += 1
        with trio.CancelScope() as scope:
            self._handler_scope = scope
            try:
                return await self._handler(message)  # type: ignore[misc]
            finally:
                self._handler_scope = None
        error = ActorStopped(f"{self.ref!r} was stopped and did not finish {message!r} within "
                             f"stop_timeout={self.stop_timeout}s; its handler was cancelled")
        if reply is not None and reply.__class__ is Future:
            reply._resolve(2, error)
        logger.warning("%s", error)
        return _KILLED

    def _kill_if_stuck(self, handling: int) -> None:
        """The stop timeout passed: cancel the handler if it is still the one that was running at the stop."""
        scope = self._handler_scope
        if scope is not None and self._handling == handling and self.state < STOPPED:
            scope.cancel()

    def _answer(self, reply: Future[Any], result: Any) -> None:
        if self._deferred:
            self._deferred = False
        elif reply._state:  # answered already, through self.sender
            if result is not None:
                self.system.dead_letter(result, self.ref, None, "late reply")
        elif result.__class__ is Reply:
            reply._resolve(2, result.exception)
        else:
            reply._resolve(1, result)

    def _refused(self, message: Any, sender: Cell | None, reply: Reply) -> None:
        """A told message answered with ``Reply.error``: nobody waits for the error, so it is a dead letter."""
        self.system.dead_letter(message, None if sender is None else sender.ref, self.ref,
                                f"refused: {reply.exception!r}")

    def _unwrap(self, message: Any, mark: Any) -> Any:
        """Open a runtime-marked message: drop a revoked lease's message, a stale timer tick or an unwatched
        ``Terminated``."""
        if mark.__class__ is Lease:
            return _DROP if mark._revoked else message
        if mark is WATCH_MARK:
            watching = self._watching
            target = message.ref._cell
            if watching is None or target not in watching:
                return _DROP
            watching.discard(target)
            return message
        timers = self._timers
        if timers is None or not timers.deliverable(mark):
            return _DROP
        return message

    def _wake_putter(self) -> None:
        putters = self._putters
        assert putters is not None
        trio.lowlevel.reschedule(putters.popleft(), outcome.Value(None))

    # -- the actor's context ---------------------------------------------------------------------------------

    def _current_env(self, what: str) -> Envelope:
        env = self._env
        if env is None or current_cell.get() is not self:
            raise RuntimeError(f"{what} works only inside the actor's own receive(), while it handles a message")
        return env

    @property
    def sender(self) -> ActorRef | None:
        """The current message's sender: an actor's ref, a reply ref during an ask, or ``None``."""
        env = self._env
        if env is None:
            return None
        reply = env[2]
        if reply.__class__ is Future and not self._deferred:
            return ReplyRef(self, reply)
        sender = env[1]
        return None if sender is None else sender.ref

    def defer_reply(self) -> ActorRef:
        """Take over answering the current ask: the return value no longer answers it."""
        reply = self._current_env("defer_reply()")[2]
        if reply.__class__ is not Future:
            raise RuntimeError(f"{self.ref!r}: defer_reply() needs an ask being handled; this message was told")
        if self._deferred:
            raise RuntimeError(f"{self.ref!r}: the current ask was already deferred or stashed")
        self._deferred = True
        if self._open_replies is None:
            self._open_replies = set()
        self._open_replies.add(reply)
        reply.add_done_callback(self._open_replies.discard)
        return ReplyRef(self, reply)

    def forward(self, target: ActorRef, message: Any) -> None:
        """Send ``message`` to ``target`` as if the current message's sender had sent it, ask included.

        The target's ``self.sender`` is the original sender; if the current message is an ask, the target's
        answer answers it, and this actor's return value no longer does.
        """
        env = self._current_env("forward()")
        reply = env[2] if env[2].__class__ is Future and not self._deferred else None
        target._cell.put(message, env[1], reply)  # a full "fail" mailbox raises here, leaving the ask ours
        if reply is not None:
            self._deferred = True

    def stash(self) -> None:
        """Keep the current message (and its pending ask, if any) aside until :meth:`unstash_all`."""
        env = self._current_env("stash()")
        if self._deferred or (self._stash and self._stash[-1] is env):
            raise RuntimeError(f"{self.ref!r}: the current message was already stashed or its reply deferred")
        if self._stash is None:
            self._stash = []
        self._stash.append(env)
        if env[2] is not None:
            self._deferred = True

    def unstash_all(self) -> None:
        """Put the stashed messages back, in order, ahead of everything queued after them."""
        stash = self._stash
        if not stash:
            return
        self._stash = None
        q = self._queue
        if q is None:
            q = self._new_queue()
        q.extendleft(reversed(stash))
        if not self.scheduled and self.state != STARTING:
            self.schedule()

    def become(self, handler: Callable[[Any], Any]) -> None:
        """Handle the next messages with ``handler`` instead of ``receive``."""
        if not callable(handler):
            raise TypeError(f"become() takes an async function of one message, not {handler!r}")
        self._handler = handler

    def unbecome(self) -> None:
        """Go back to ``receive``."""
        if self.instance is not None:
            self._handler = self.instance.receive

    def watch(self, target: ActorRef) -> None:
        """Get ``Terminated(target)`` when ``target`` stops for good (at once if it already has)."""
        cell = target._cell
        if self._watching is None:
            self._watching = set()
        if cell in self._watching:
            return
        self._watching.add(cell)
        if cell.state == STOPPED:
            self.put(Terminated(target, None), None, WATCH_MARK)
            return
        if cell._watchers is None:
            cell._watchers = set()
        cell._watchers.add(self)

    def unwatch(self, target: ActorRef) -> None:
        """Stop watching ``target``; a ``Terminated`` already queued for it is discarded."""
        cell = target._cell
        if self._watching is not None:
            self._watching.discard(cell)
        if cell._watchers is not None:
            cell._watchers.discard(self)

    @property
    def timers(self) -> Timers:
        """The actor's timers (created on first use)."""
        if self._timers is None:
            self._timers = Timers(self)
        return self._timers

    # -- spawning --------------------------------------------------------------------------------------------

    def reserve_name(self, name: str | None) -> str:
        """Check or make a child name that is unique among the live children."""
        children = self._children
        if name is None:
            self.system.auto_names += 1
            return f"${self.system.auto_names}"
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"actor name {name!r} must be a non-empty string without '/'")
        if children is not None and name in children:
            where = "at the top level" if self.parent is None else f"under {self.ref!r}"
            raise NameTaken(f"an actor named {name!r} already exists {where}")
        return name

    async def spawn_child(self, factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                          name: str | None, mailbox: Mailbox | None, restart: Restart | str,
                          strategy: Strategy | None, stop_timeout: float | None = None) -> ActorRef:
        """Create, register and start a child; returns once its ``on_start`` has finished."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if not callable(factory):
            raise TypeError(f"spawn() needs an Actor subclass or a callable returning an Actor, not {factory!r}")
        if self.state >= STOPPING:
            raise ActorStopped(f"{self.ref!r} is stopping; it cannot spawn {factory!r}")
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox={mailbox!r} must be a Mailbox")
        if strategy is not None and not isinstance(strategy, Strategy):
            raise TypeError(f"supervision={strategy!r} must be a strategy such as OneForOne()")
        if stop_timeout is not None:
            stop_timeout = positive_seconds("stop_timeout", stop_timeout)
        name = self.reserve_name(name)
        cell = Cell(self.system, self, name, factory, args, kwargs,
                    mailbox=mailbox or self.system.default_mailbox, restart=Restart.coerce(restart),
                    strategy=strategy)
        cell.stop_timeout = stop_timeout
        cell._build()
        if self._children is None:
            self._children = {}
        self._children[name] = cell
        if type(cell.instance).on_start is ActorBase.on_start:
            cell.state = RUNNING
            if self.system.events:
                self.system.lifecycle(cell.ref, "started", None)
            return cell.ref
        try:
            await cell._start_hook(None)
        except BaseException:
            if self._children.get(name) is cell:
                del self._children[name]
            raise
        return cell.ref

    def _build(self) -> None:
        """Make a fresh instance from the factory; raises ``ActorFailed``/``TypeError`` as ``spawn`` documents."""
        token = _constructing.set(self)
        try:
            instance = self._factory(*self._args, **self._kwargs)
        except Exception as exc:
            raise ActorFailed(f"{self._factory!r} raised while building actor {self.path!r}: {exc!r}", exc) \
                from exc
        finally:
            _constructing.reset(token)
        if not isinstance(instance, ActorBase):
            raise TypeError(f"{self._factory!r} returned {instance!r}, which is not an Actor")
        instance._cell = self
        self.instance = instance
        self._handler = instance.receive

    async def _start_hook(self, error: BaseException | None) -> None:
        """Run ``on_start`` (first start) or ``on_restart(error)`` inline, as this actor, then go running.

        ``spawn_child`` calls it only for an actor that overrides ``on_start``; restarts always call it.
        """
        instance = self.instance
        restarting = self.state != STARTING
        token = current_cell.set(self)
        try:
            if restarting:
                await instance.on_restart(error)
            else:
                await instance.on_start()
        except Exception as exc:
            if not restarting:
                await self._abort_start()
                raise ActorFailed(f"actor {self.path!r} failed in on_start: {exc!r}", exc) from exc
            raise
        except BaseException:
            if not restarting:
                await self._abort_start()
            raise
        finally:
            current_cell.reset(token)
        if self.state in (STARTING, RESTARTING):
            self.state = RUNNING
        self.system.lifecycle(self.ref, "restarted" if restarting else "started", error)
        if self.has_work() and not self.scheduled:
            self.schedule()

    async def _abort_start(self) -> None:
        """Undo a failed first start: stop the children it made; nothing stays registered."""
        with trio.CancelScope(shield=True):
            await self._stop_children()
        self.state = STOPPED
        self._slow = True
        self._drain_dead(ActorStopped(f"{self.ref!r} failed to start"))
        self.system.forget(self)  # a message told during on_start made the system measure this cell

    # -- system messages -------------------------------------------------------------------------------------

    async def _system_message(self, item: tuple[Any, ...]) -> None:
        self._env = None
        kind = item[0]
        if kind == "stop":
            await self._on_stop_request(item[1], item[2])
        elif kind == "failed":
            await self._supervise(item[1], item[2], failed=True)
        elif kind == "exited":
            await self._supervise(item[1], None, failed=False)
        elif kind == "resume":
            if self.state == SUSPENDED:
                self.state = RUNNING
        elif kind == "restart":
            await self._restart(item[1], item[2])
        elif kind == "halt":
            if self.state < STOPPING:
                self.state = RESTARTING
                await self._stop_incarnation(item[1])
            item[2].set()
        elif kind == "start":
            if self.state == RESTARTING:
                await self._new_incarnation(item[1])
            item[2].set()
        else:  # pragma: no cover - a bug, not an input
            raise AssertionError(f"unknown system message {item!r}")

    def request_stop(self, reason: BaseException | None, origin: str) -> None:
        """Ask the cell to stop after its current message (``origin``: "self", "parent" or "external")."""
        if self.state >= STOPPING:
            return
        self.put_system(("stop", reason, origin))
        scope = self._scope
        if scope is not None:
            scope.cancel()
        if self._handler_scope is not None and self.stop_timeout is not None:
            self.system.timer_service.call_at(trio.current_time() + self.stop_timeout, self._kill_if_stuck,
                                              self._handling)

    async def _on_stop_request(self, reason: BaseException | None, origin: str) -> None:
        if self.state >= STOPPING:
            return
        parent = self.parent
        if (origin == "self" and self.restart is Restart.PERMANENT and parent is not None
                and parent.state < STOPPING and self.state == RUNNING):
            self.state = SUSPENDED
            parent.put_system(("exited", self))
            return
        await self.terminate(reason)

    def _fail(self, error: BaseException, message: Any, reply: Any) -> None:
        """The handler raised: fail the ask, suspend, and let the parent decide."""
        if isinstance(reply, Future):
            reply.set_exception(
                ActorFailed(f"{self.ref!r} failed while handling {message!r}: {error!r}", error))
        self.report_failure(error)

    def report_failure(self, error: BaseException) -> None:
        """Suspend this actor and hand ``error`` to its supervisor (the system, at the top).

        Every lease this actor was told messages under ends now: their senders take that work back, including
        what they tell it under those leases before they hear of the failure.
        """
        self.state = SUSPENDED
        leases = self._leases
        if leases:
            self._leases = None
            for lease in leases:
                lease.recipient_failed(self.ref, error)
        self.system.lifecycle(self.ref, "failed", error)
        parent = self.parent
        if parent is None:
            self.system.fail(self, error)
        else:
            parent.put_system(("failed", self, error))

    # -- supervision (this cell as the parent) ---------------------------------------------------------------

    async def _supervise(self, child: Cell, error: BaseException | None, *, failed: bool) -> None:
        children = self._children
        if children is None or children.get(child.name) is not child or child.state >= STOPPING:
            return
        if self.state >= STOPPING:
            return
        strategy = self.strategy or self.system.default_strategy
        if failed:
            assert error is not None
            directive, error = strategy.decide(error)
            logger.error("actor %r failed; %s decides %s", child.path, type(strategy).__name__,
                         directive.value, exc_info=error)
        else:
            directive = Directive.RESTART
        if directive is Directive.RESUME:
            child.put_system(("resume",))
            return
        if directive is Directive.STOP:
            child.request_stop(error, "parent")
            return
        if directive is Directive.ESCALATE:
            assert error is not None
            self.report_failure(error)
            return
        if not should_restart(child.restart, failed=failed):
            child.request_stop(error, "parent")
            return
        now = self.system.now()
        if self.window is None:
            self.window = strategy.new_window()
        if not self.window.allow(now):
            logger.error("actor %r: restart intensity %d within %ss exceeded; stopping its children",
                         self.path, strategy.max_restarts, strategy.within)
            await self._stop_children()
            self.report_failure(error if error is not None else
                                ActorFailed(f"{child.path!r} stopped itself too often"))
            return
        delay = self._backoff_delay(child, strategy, now)
        affected = strategy.affected(list(children.values()), child)
        if affected == [child]:
            child.put_system(("restart", error, delay))
            return
        for sibling in reversed(affected):
            done = trio.Event()
            sibling.put_system(("halt", error, done))
            await done.wait()
        if not await self._back_off(delay):
            return
        for sibling in affected:
            if sibling.state != RESTARTING:
                continue
            if sibling is not child and sibling.restart is Restart.TEMPORARY:
                sibling.request_stop(None, "parent")
                continue
            done = trio.Event()
            sibling.put_system(("start", error, done))
            await done.wait()

    def _backoff_delay(self, child: Cell, strategy: Strategy, now: float) -> float:
        backoff = strategy.backoff
        if backoff is None:
            return 0.0
        if now - child.last_restart >= strategy.within:
            child.backoff_count = 0
        delay = backoff.delay(child.backoff_count, self.system.random)
        child.backoff_count += 1
        child.last_restart = now
        return delay

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
            with trio.CancelScope() as self._scope:
                await trio.sleep(delay)
            self._scope = None
        return not (self._sysq and any(item[0] == "stop" for item in self._sysq))

    async def _stop_incarnation(self, error: BaseException | None) -> None:
        """End the current instance: timers, children (reverse start order), ``on_stop``, stash, replies.

        The fresh instance starts with a fresh restart-intensity window for its own children, as in OTP.
        """
        self.window = None
        if self._timers is not None:
            self._timers.cancel_all()
        await self._stop_children()
        await self._run_on_stop()
        self._handler = None
        cause = ActorFailed(f"{self.ref!r} was restarted before it answered", error)
        self._fail_open_replies(cause)
        stash = self._stash
        if stash:
            self._stash = None
            for message, sender, reply, _ in stash:
                self._undeliverable(message, sender, reply, "stash cleared by restart")

    async def _new_incarnation(self, error: BaseException | None) -> None:
        try:
            self._build()
            await self._start_hook(error)
        except Exception as exc:
            self.instance = None
            cause = exc.cause if isinstance(exc, ActorFailed) and exc.cause is not None else exc
            self.report_failure(cause)
            return
        self._restarts += 1

    async def _run_on_stop(self) -> None:
        instance = self.instance
        if instance is None:
            return
        self.instance = None
        if type(instance).on_stop is ActorBase.on_stop:
            return
        try:
            await instance.on_stop()
        except Exception:
            logger.exception("on_stop of actor %r raised", self.path)

    async def _stop_children(self) -> None:
        """Stop every child in reverse start order, each subtree finished before the next begins."""
        children = self._children
        while children:
            child = next(reversed(children.values()))
            child.request_stop(None, "parent")
            await child.wait_stopped()
            if children.get(child.name) is child:  # pragma: no cover - terminate() unregisters it
                del children[child.name]

    async def terminate(self, reason: BaseException | None) -> None:
        """Stop for good: children first, then ``on_stop``, then dead letters, watchers and the parent."""
        if self.state >= STOPPING:
            return
        was = self.state
        self.state = STOPPING
        self._slow = True
        if self._timers is not None:
            self._timers.cancel_all()
        await self._stop_children()
        if was != RESTARTING:
            await self._run_on_stop()
        self.state = STOPPED
        self._handler = None
        self._drain_dead(ActorStopped(f"{self.ref!r} stopped before it answered"))
        parent = self.parent
        if parent is not None and parent._children is not None and parent._children.get(self.name) is self:
            del parent._children[self.name]
        watchers = self._watchers
        if watchers:
            self._watchers = None
            terminated = Terminated(self.ref, reason)
            for watcher in watchers:
                if watcher.state < STOPPING:  # a watcher that is stopping itself has no use for it
                    watcher.put(terminated, None, WATCH_MARK)
        if self._watching:
            for target in self._watching:
                if target._watchers is not None:
                    target._watchers.discard(self)
            self._watching = None
        self.system.lifecycle(self.ref, "stopped", reason)
        self.system.forget(self)
        waiters = self._term_waiters
        if waiters:
            self._term_waiters = None
            for task in waiters:
                trio.lowlevel.reschedule(task, outcome.Value(None))

    def _drain_dead(self, cause: ActorStopped) -> None:
        """Turn everything still queued into dead letters, in order, and release whoever waits on us.

        Leased messages are not dead letters: their leases end here, and their senders (who watch this actor if
        they need to know) take them back.
        """
        leases = self._leases
        if leases:
            self._leases = None
            for lease in leases:
                lease.revoke()
        self._fail_open_replies(cause)
        q = self._queue
        if q:
            self._queue = None
            for message, sender, reply, _ in q:
                if reply is WATCH_MARK or isinstance(reply, TimerTick) or (isinstance(reply, Lease) and reply.revoked):
                    continue
                self._undeliverable(message, sender, reply, "stopped")
        stash = self._stash
        if stash:
            self._stash = None
            for message, sender, reply, _ in stash:
                self._undeliverable(message, sender, reply, "stopped")
        sysq = self._sysq
        if sysq:
            self._sysq = None
            for item in sysq:
                if item[0] in ("halt", "start"):
                    item[2].set()
        putters = self._putters
        if putters:
            self._putters = None
            for task in putters:
                trio.lowlevel.reschedule(task, outcome.Value(None))

    def _fail_open_replies(self, cause: BaseException) -> None:
        replies = self._open_replies
        if replies:
            self._open_replies = None
            for reply in list(replies):
                reply.set_exception(cause)

    async def wait_stopped(self) -> None:
        """Wait until this actor has stopped for good; a checkpoint even if it already has."""
        if self.state == STOPPED:
            await trio.lowlevel.checkpoint()
            return
        task = trio.lowlevel.current_task()
        if self._term_waiters is None:
            self._term_waiters = []
        self._term_waiters.append(task)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if self._term_waiters is not None and task in self._term_waiters:
                self._term_waiters.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    # -- statistics ------------------------------------------------------------------------------------------

    def statistics(self) -> ActorStatistics:
        """A frozen :class:`~runtime.ActorStatistics` of this actor now."""
        now = self.system.now()
        figures = self._figures
        if figures:
            lam, mu, rho, mean_len, mean_wait = figures.rates(now, self._arrivals)
            p50, p90, p99 = figures.percentiles()
        else:
            lam = mu = rho = mean_len = mean_wait = p50 = p90 = p99 = 0.0
        length = self.mailbox_length
        by_state: dict[str, int] = {}
        for child in self.children:
            state = STATE_NAMES[child.state]
            by_state[state] = by_state.get(state, 0) + 1
        return ActorStatistics(
            arrivals=self._arrivals, handled=self._handled, failed=self._failed, restarts=self._restarts,
            # The run loop updates the peak as it takes messages: while the actor is busy, the queue may be
            # longer than any length seen so far.
            mailbox_length=length, peak_mailbox_length=max(self._peak, length), arrival_rate=lam, service_rate=mu,
            utilization=rho, mean_queue_length=mean_len, mean_wait=mean_wait,
            handling_time_p50=p50, handling_time_p90=p90, handling_time_p99=p99,
            state=STATE_NAMES[self.state], children=by_state,
            restarts_in_window=0 if self.window is None else self.window.count(now),
        )

