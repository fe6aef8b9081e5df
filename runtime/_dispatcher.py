"""The dispatcher: a pool of runner tasks that run actor cells which have work.

An actor does not own a trio task. When a message reaches an idle actor, its cell joins the ready queue; a runner
takes it and handles a batch of its messages. When the batch ends, the same runner moves straight on to the next
ready cell, so a message passed from one actor to another costs no scheduler round trip. Every ``batch`` messages a
runner passes one checkpoint, which keeps other trio tasks running.

A runner is woken from the idle pool only when a cell becomes ready and no wake-up is already on its way; a
runner that takes a cell while others are still waiting wakes one more. So when an actor's handler blocks (it
awaits an ask, a sleep, I/O), the cells queued behind it get their own runner and nothing starves. Idle runners
beyond ``max_idle`` exit; all of them live in the system's nursery.
"""

from __future__ import annotations

import contextvars
from collections import deque
from typing import TYPE_CHECKING, Any

import outcome
import trio

if TYPE_CHECKING:
    from ._cell import Cell
    from ._ref import ActorRef
    from ._system import ActorSystem

__all__ = ["Dispatcher", "current_actor", "current_system"]

current_actor: contextvars.ContextVar[ActorRef | None] = contextvars.ContextVar("current_actor", default=None)
"""The ref of the actor whose code the current task is running, if any: the sender of the tells it makes."""

current_system: contextvars.ContextVar[ActorSystem | None] = contextvars.ContextVar("current_system", default=None)
"""The actor system the current task runs in, if any: where a ref that is unpickled resolves its address."""


class Dispatcher:
    """Runs ready cells on a pool of runner tasks in ``nursery``."""

    __slots__ = ("_batch", "_idle", "_max_idle", "_nursery", "_ready", "_runners", "_system", "_waking")

    def __init__(self, system: ActorSystem, nursery: trio.Nursery, *, batch: int = 256, max_idle: int = 16) -> None:
        self._system = system
        self._nursery = nursery
        self._ready: deque[Cell] = deque()
        self._idle: list[trio.lowlevel.Task] = []
        self._waking = False
        self._batch = batch
        self._max_idle = max_idle
        self._runners = 0

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
