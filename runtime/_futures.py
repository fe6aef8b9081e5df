"""Futures for request/response, and the correlation table that holds the pending ones.

A :class:`Future` is resolved at most once; the first answer wins and later ones become dead letters. It needs no
channel: waiting parks the task directly and resolving reschedules it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

import outcome
import trio

from ._exceptions import ActorError

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["Correlations", "Future", "FutureCancelled"]

logger = logging.getLogger("actors")

T = TypeVar("T")

_PENDING, _VALUE, _ERROR = 0, 1, 2
ERROR = _ERROR
"""A future's state once it holds an exception (for subclasses that act on being resolved)."""
F = TypeVar("F", bound="Future[Any]")


class FutureCancelled(ActorError):
    """The future was cancelled with :meth:`Future.cancel` before it was answered."""


class _Owner(Protocol):
    """What a future needs from the system that made it."""

    def dead_letter(self, message: object, sender: ActorRef | None, recipient: ActorRef | None,
                    reason: str) -> None: ...


class Correlations:
    """The table of pending requests: correlation ID -> :class:`Future`.

    IDs are integers from a counter. An envelope carries only the ID; the actor that answers resolves the request
    here by that ID (:meth:`answer`, :meth:`fail`), so an answer needs nothing but the asker's node and the ID. A
    future leaves the table as soon as it is resolved, cancelled or abandoned, so the table's length is the number
    of requests still waiting for an answer, and an answer that finds no entry came too late.
    """

    __slots__ = ("_next", "_pending")

    def __init__(self) -> None:
        self._pending: dict[int, Future[Any]] = {}
        self._next = 0

    @overload
    def new_future(self, owner: _Owner, target: ActorRef) -> Future[Any]: ...

    @overload
    def new_future(self, owner: _Owner, target: ActorRef, kind: type[F]) -> F: ...

    def new_future(self, owner: _Owner, target: ActorRef, kind: type[Future[Any]] | None = None) -> Future[Any]:
        """A pending future with a fresh correlation ID, registered: the start of every request. ``kind`` is a
        subclass of :class:`Future` to make instead."""
        self._next = correlation_id = self._next + 1
        future = (Future if kind is None else kind)(correlation_id, owner, self, target)
        self._pending[correlation_id] = future
        return future

    def answer(self, correlation_id: int, value: Any) -> bool:
        """Resolve the pending request ``correlation_id`` with ``value``; ``False`` if it is no longer pending."""
        future = self._pending.get(correlation_id)
        return future is not None and future._resolve(_VALUE, value)

    def fail(self, correlation_id: int, exception: BaseException) -> bool:
        """Resolve the pending request ``correlation_id`` with ``exception``; ``False`` if it is no longer pending."""
        future = self._pending.get(correlation_id)
        return future is not None and future._resolve(_ERROR, exception)

    def when_done(self, correlation_id: int, fn: Callable[[int], object]) -> None:
        """Call ``fn(correlation_id)`` once that request is resolved; at once if it is no longer pending."""
        future = self._pending.get(correlation_id)
        if future is None:
            fn(correlation_id)
        else:
            future.add_done_callback(lambda _: fn(correlation_id))

    def pending(self) -> list[Future[Any]]:
        """The requests still waiting for an answer (a copy)."""
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    def __repr__(self) -> str:
        return f"<Correlations pending={len(self._pending)}>"


class Future(Generic[T]):
    """The eventual answer to a request, identified by :attr:`correlation_id`.

    ``await future`` waits for it (cancelling the wait leaves the future pending for others); ``result()`` and
    ``exception()`` read it once it is done; ``add_done_callback(fn)`` calls ``fn(future)`` in the system's trio
    thread when it resolves (at once if it already has). An exception raised by a callback is logged with its
    traceback on the ``"actors"`` logger and does not stop the other callbacks.
    """

    __slots__ = ("_callbacks", "_owner", "_state", "_table", "_target", "_value", "_waiters", "correlation_id")

    def __init__(self, correlation_id: int, owner: _Owner | None = None, table: Correlations | None = None,
                 target: ActorRef | None = None) -> None:
        self.correlation_id = correlation_id
        """The request's correlation ID: unique within its system."""
        self._state = _PENDING
        self._value: Any = None
        self._waiters: list[trio.lowlevel.Task] | None = None
        self._callbacks: list[Callable[[Future[T]], object]] | None = None
        self._owner = owner
        self._table = table
        self._target = target

    # -- reading ------------------------------------------------------------------------------------------

    def done(self) -> bool:
        """Whether the future has a result or an exception (cancelled counts as done)."""
        return self._state != _PENDING

    def result(self) -> T:
        """Return the result, or raise the exception the future resolved with.

        Raises :class:`RuntimeError` if it is not done yet: ``await`` it instead.
        """
        if self._state == _VALUE:
            return self._value  # type: ignore[no-any-return]
        if self._state == _ERROR:
            raise self._value
        raise RuntimeError(f"{self!r} is not done yet; await it instead of calling result()")

    def exception(self) -> BaseException | None:
        """Return the exception the future resolved with, ``None`` if it has a value.

        Raises :class:`RuntimeError` if it is not done yet.
        """
        if self._state == _PENDING:
            raise RuntimeError(f"{self!r} is not done yet; await it instead of calling exception()")
        return self._value if self._state == _ERROR else None

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait().__await__()

    async def _wait(self) -> T:
        if self._state == _PENDING:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._state == _PENDING:
                task = trio.lowlevel.current_task()
                if self._waiters is None:
                    self._waiters = [task]
                else:
                    self._waiters.append(task)

                def abort(_: Any) -> trio.lowlevel.Abort:
                    if self._waiters is not None and task in self._waiters:
                        self._waiters.remove(task)
                    return trio.lowlevel.Abort.SUCCEEDED

                await trio.lowlevel.wait_task_rescheduled(abort)
                return self.result()
        await trio.lowlevel.checkpoint()
        return self.result()

    def _abandon(self, _: Any) -> trio.lowlevel.Abort:
        """The abort function of a single waiter that owns the future (an ask): it just stops waiting."""
        self._waiters = None
        return trio.lowlevel.Abort.SUCCEEDED

    # -- resolving ----------------------------------------------------------------------------------------

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call ``fn(self)`` once the future is done; at once if it already is."""
        if self._state != _PENDING:
            self._run_callback(fn)
        elif self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

    def cancel(self) -> bool:
        """Give up on the answer: waiters raise :class:`FutureCancelled`; a later reply is a dead letter.

        Returns ``False`` if the future was already done.
        """
        return self._resolve(_ERROR, FutureCancelled(f"{self!r} was cancelled"))

    def set_result(self, value: T) -> bool:
        """Resolve with ``value``. Returns ``False`` (and records a dead letter) if already done."""
        return self._resolve(_VALUE, value)

    def set_exception(self, exception: BaseException) -> bool:
        """Resolve with ``exception``. Returns ``False`` (and records a dead letter) if already done."""
        return self._resolve(_ERROR, exception)

    def _resolve(self, state: int, value: Any) -> bool:
        if self._state != _PENDING:
            if not isinstance(value, FutureCancelled) and self._owner is not None:
                self._owner.dead_letter(value, None, self._target, "late reply")
            return False
        self._state = state
        self._value = value
        if self._table is not None:
            self._table._pending.pop(self.correlation_id, None)  # the table's entry goes with its answer
        waiters = self._waiters
        if waiters is not None:
            self._waiters = None
            for task in waiters:
                trio.lowlevel.reschedule(task, outcome.Value(None))
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
            for fn in callbacks:
                self._run_callback(fn)
        return True

    def _run_callback(self, fn: Callable[[Future[T]], object]) -> None:
        try:
            fn(self)
        except Exception:
            logger.exception("done-callback %r of %r raised", fn, self)

    def __repr__(self) -> str:
        state = ("pending", "done", "failed")[self._state]
        target = f" to {self._target!r}" if self._target is not None else ""
        return f"<Future #{self.correlation_id}{target} {state}>"
