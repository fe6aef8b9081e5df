"""The dispatcher: a pool of runner tasks that run actor cells which have work.

An actor does not own a trio task. When a message reaches an idle actor, its cell joins the ready queue; a runner
takes it and handles a batch of its messages. When the batch ends, the same runner moves straight on to the next
ready cell, so a message passed from one actor to another costs no scheduler round trip. Every ``batch`` messages a
runner passes one checkpoint, which keeps other trio tasks running.

A runner is woken from the idle pool only when a cell becomes ready and no wake-up is already on its way; a
runner that takes a cell while others are still waiting wakes one more. So when an actor's handler blocks (it
awaits an ask, a sleep, I/O), the cells queued behind it get their own runner and nothing starves. Idle runners
beyond ``max_idle`` exit; all of them live in the system's nursery.

An ask to an idle local actor whose handler can never suspend (its code has no ``await``) skips the runners: the
asker's task handles that one message itself (:meth:`Dispatcher.run_here`), so the round trip costs no pass
through trio's scheduler. Such a handler cannot be cancelled midway, because it has no checkpoint, so running it in
the asker's task keeps every semantic of the runner's. The asker passes one schedule point every ``batch`` such
asks, as a runner does every ``batch`` messages.
"""

from __future__ import annotations

import contextvars
import dis
from collections import deque
from types import CodeType
from typing import TYPE_CHECKING, Any

import outcome
import trio

if TYPE_CHECKING:
    from ._cell import Cell
    from ._ref import ActorRef
    from ._system import ActorSystem

__all__ = ["Dispatcher", "current_actor", "current_system", "never_suspends"]

current_actor: contextvars.ContextVar[ActorRef | None] = contextvars.ContextVar("current_actor", default=None)
"""The ref of the actor whose code the current task is running, if any: the sender of the tells it makes."""

current_system: contextvars.ContextVar[ActorSystem | None] = contextvars.ContextVar("current_system", default=None)
"""The actor system the current task runs in, if any: where a ref that is unpickled resolves its address."""


_set_actor = current_actor.set
_reset_actor = current_actor.reset
_get_system = current_system.get

_never_suspends: dict[CodeType, bool] = {}


def never_suspends(handler: object) -> bool:
    """Whether ``handler`` is an ``async def`` function (or a method of one) whose own code has no ``await``,
    ``async for`` or ``async with``: its coroutine then runs to its end at the first step, without ever yielding to
    trio, so it cannot be suspended or cancelled midway. Remembered by code object."""
    code = getattr(handler, "__code__", None)  # a function (getattr with a default that misses costs an exception)
    if code is None:
        code = getattr(getattr(handler, "__func__", None), "__code__", None)  # a bound method
    if code is None or not code.co_flags & _COROUTINE:
        return False
    answer = _never_suspends.get(code)
    if answer is None:
        # Every way a coroutine suspends in its own frame compiles to a YIELD_VALUE (await, async for, async
        # with; an await inside a comprehension makes the comprehension awaited); calls to plain functions
        # cannot suspend it.
        answer = _never_suspends[code] = not any(op.opname == "YIELD_VALUE" for op in dis.get_instructions(code))
    return answer


_COROUTINE = 0x80  # inspect.CO_COROUTINE


async def _raise(error: BaseException) -> None:
    raise error


class Dispatcher:
    """Runs ready cells on a pool of runner tasks in ``nursery``."""

    __slots__ = ("_batch", "_credit", "_idle", "_max_idle", "_nursery", "_ready", "_runners", "_system", "_waking")

    def __init__(self, system: ActorSystem, nursery: trio.Nursery, *, batch: int = 256, max_idle: int = 16) -> None:
        self._system = system
        self._nursery = nursery
        self._ready: deque[Cell] = deque()
        self._idle: list[trio.lowlevel.Task] = []
        self._waking = False
        self._batch = batch
        self._max_idle = max_idle
        self._runners = 0
        self._credit = batch

    def schedule(self, cell: Cell) -> None:
        """Queue ``cell`` to run. The caller has marked it scheduled, so it is queued at most once."""
        self._ready.append(cell)
        if not self._waking:
            self._wake()

    def _wake(self) -> None:
        self._waking = True
        if self._idle:
            trio.lowlevel.reschedule(self._idle.pop(), outcome.Value(None))
        else:
            self._runners += 1
            self._nursery.start_soon(self._runner)

    def run_here(self, cell: Cell) -> bool:
        """Handle the one message queued for ``cell``, which the caller claimed (``Cell.claim``), in the calling
        task, as the cell's actor; then hand the cell to a runner if more work came meanwhile. Returns whether the
        caller is due a schedule point (one every ``batch`` messages handled here)."""
        ref = cell.ref
        system = self._system
        token = _set_actor(ref)
        system_token = current_system.set(system) if _get_system() is not system else None
        try:
            run = cell.run(1)
            try:
                run.send(None)
            except StopIteration:
                pass
            else:  # claim() let in a handler that can suspend: a broken invariant, never a silent hang
                run.close()
                raise RuntimeError(f"{cell!r} suspended in a handler run by its asker")
        except BaseException as exc:
            # What would end a runner (a KeyboardInterrupt, say) ends the system as it would from a runner; the
            # asker's future stays pending, and the system's end cancels the wait.
            self._nursery.start_soon(_raise, exc)
        finally:
            _reset_actor(token)
            if system_token is not None:
                current_system.reset(system_token)
            if cell.has_work():
                self.schedule(cell)
            else:
                cell.scheduled = False
        self._credit -= 1
        if self._credit:
            return False
        self._credit = self._batch
        return True

    @property
    def runners(self) -> int:
        """Runner tasks alive now, busy or idle."""
        return self._runners

    async def _runner(self) -> None:
        task = trio.lowlevel.current_task()
        ready = self._ready
        idle = self._idle
        batch = self._batch
        set_current = current_actor.set
        current_system.set(self._system)
        budget = batch
        cell: Cell | None = None
        self._waking = False

        def abort(_: Any) -> trio.lowlevel.Abort:
            idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        try:
            while True:
                if ready:
                    cell = ready.popleft()
                    if ready and not self._waking:
                        self._wake()
                    set_current(cell.ref)  # the only code this task runs is a cell's, always right after this
                    budget -= await cell.run(budget)
                    if cell.has_work():
                        ready.append(cell)
                    else:
                        cell.scheduled = False
                    if budget <= 0:
                        await trio.lowlevel.checkpoint()
                        budget = batch
                else:
                    if len(idle) >= self._max_idle:
                        return
                    cell = None  # an idle runner must not keep the last actor it ran alive
                    idle.append(task)
                    await trio.lowlevel.wait_task_rescheduled(abort)
                    self._waking = False
                    budget = batch
        finally:
            self._runners -= 1

    def __repr__(self) -> str:
        return f"<Dispatcher runners={self._runners} idle={len(self._idle)} ready={len(self._ready)}>"
