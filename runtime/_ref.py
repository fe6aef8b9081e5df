"""Actor references: the only way to reach an actor. Cheap, hashable, and valid across restarts."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from ._dispatcher import current_cell
from ._exceptions import ActorError, ActorStopped, SerializationError
from ._futures import Future
from ._lifecycle import STOPPED
from ._timers import positive_seconds

if TYPE_CHECKING:
    from ._cell import Cell

__all__ = ["ActorRef", "ReplyRef"]

_current = current_cell.get


class ActorRef:
    """A handle on an actor: ``tell`` it, ``send`` to it, ``ask`` it, or ``request`` an answer.

    A ref stays the same object for the actor's whole life, restarts included, so refs compare and hash by
    identity. A ref outlives its actor: telling a stopped actor makes a dead letter, asking it raises
    :class:`~runtime.ActorStopped`.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def name(self) -> str:
        """The actor's name among its siblings."""
        return self._cell.name

    @property
    def path(self) -> str:
        """Its names from the top of the tree, joined by ``/``; what ``system.lookup`` takes."""
        return self._cell.path

    @property
    def mailbox_length(self) -> int:
        """Messages queued for the actor now, not counting the one it is handling."""
        return self._cell.mailbox_length

    @property
    def is_stopped(self) -> bool:
        """Whether the actor has stopped for good."""
        return self._cell.state == STOPPED

    def tell(self, message: Any) -> None:
        """Queue ``message`` for the actor; never blocks and never yields.

        Inside an actor, the receiver's ``self.sender`` is that actor. On a full bounded mailbox the mailbox's
        overflow policy applies (``"fail"`` raises :class:`~runtime.MailboxFull`). A stopped actor's messages
        become dead letters; ``tell`` does not raise for them.
        """
        # The fast path of Cell.put, inlined: this is the per-message cost of every tell.
        cell = self._cell
        if cell._slow:
            cell._put_slow(message, _current(), None)
            return
        n = cell._arrivals = cell._arrivals + 1
        cell._queue.append((message, _current(), None, None if n & cell._mask else cell.system.now()))  # type: ignore[union-attr]
        if not cell.scheduled:
            cell.schedule()

    async def send(self, message: Any) -> None:
        """Like :meth:`tell`, but wait for room in a bounded mailbox instead of applying its overflow policy.

        Always a checkpoint. Cancelling the wait leaves the message unsent. Raises :class:`ActorStopped` if the
        actor stops while we wait.
        """
        # Yield first: the check for room and the put below must have no checkpoint between them, or
        # another sender could take the room and the put would apply the overflow policy after all.
        await trio.lowlevel.checkpoint()
        cell = self._cell
        cap = cell._capacity
        if cap is not None and cell._queue is not None and len(cell._queue) >= cap:
            while not self.is_stopped and cell._queue is not None and len(cell._queue) >= cap:
                await _wait_for_room(cell)
            if self.is_stopped:
                raise ActorStopped(f"{self!r} stopped while {message!r} waited for room in its mailbox")
        cell.put(message, _current(), None)

    def request(self, message: Any, *, timeout: float | None = None) -> Future[Any]:
        """Send ``message`` as a request and return its :class:`Future` at once (for callbacks).

        ``timeout`` is the future's expiry, in seconds of trio's clock: it then fails with
        :class:`~runtime.AskTimeout`. The actor's return value, ``Reply.error(exc)`` or a deferred reply
        resolves it; so do the actor failing (:class:`~runtime.ActorFailed`) or stopping first
        (:class:`~runtime.ActorStopped`).
        """
        system = self._cell.system
        if timeout is not None:
            timeout = positive_seconds("timeout", timeout)
        future = self._send_request(message, _current())
        if timeout is not None and not future._state:
            system.expire_at(future, timeout, message)
        return future

    def _send_request(self, message: Any, sender: Cell | None) -> Future[Any]:
        cell = self._cell
        system = cell.system
        future = system.correlations.new_future(system, self)
        try:
            cell.put(message, sender, future)
        except BaseException:
            future.cancel()
            raise
        return future

    async def ask(self, message: Any) -> Any:
        """Send ``message`` and wait for the answer: the actor's return value.

        Takes no timeout: wrap it in ``trio.fail_after``/``move_on_after``; cancelling it removes the pending
        request, and a reply that comes later becomes a dead letter. Raises :class:`~runtime.ActorFailed` (with
        ``.cause``) if the actor failed while handling it, :class:`~runtime.ActorStopped` if it is or becomes
        stopped before answering, and whatever the actor answered with ``Reply.error(exc)``. An actor asking
        itself raises :class:`RuntimeError` at once: it could never answer.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        sender = _current()
        if sender is self._cell:
            raise RuntimeError(f"{self!r} asked itself {message!r}: it cannot answer while it waits, so the ask "
                               "would never end; call the method directly, or tell and handle the answer later")
        future = self._send_request(message, sender)
        if future._state:  # refused at once: a stopped actor or a full mailbox
            await trio.lowlevel.cancel_shielded_checkpoint()
            return future.result()
        future._waiters = [trio.lowlevel.current_task()]
        try:
            await trio.lowlevel.wait_task_rescheduled(future._abandon)
        finally:
            if not future._state:
                future.cancel()
        return future.result()

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.path!r}>"

    def __reduce__(self) -> NoReturn:
        raise SerializationError(f"{self!r} cannot be pickled: refs cross processes only inside a system")


async def _wait_for_room(cell: Cell) -> None:
    """Park the current task until the cell takes a message out of its mailbox (or stops)."""
    task = trio.lowlevel.current_task()
    if cell._putters is None:
        cell._putters = deque()
    putters = cell._putters
    putters.append(task)

    def abort(_: Any) -> trio.lowlevel.Abort:
        if task in putters:
            putters.remove(task)
        return trio.lowlevel.Abort.SUCCEEDED

    await trio.lowlevel.wait_task_rescheduled(abort)


class ReplyRef(ActorRef):
    """The ref that answers one ask: ``self.sender`` during an ask, or what ``self.defer_reply()`` returns.

    ``tell(value)`` answers the ask with ``value``; ``fail(exc)`` makes the ask raise ``exc``. The first answer
    wins; later ones are dead letters.
    """

    __slots__ = ("_future",)

    def __init__(self, cell: Cell, future: Future[Any]) -> None:
        super().__init__(cell)
        self._future = future

    @property
    def correlation_id(self) -> int:
        """The correlation ID of the ask this ref answers."""
        return self._future.correlation_id

    def tell(self, message: Any) -> None:
        """Answer the ask with ``message``."""
        self._future.set_result(message)

    def fail(self, exception: BaseException) -> None:
        """Answer the ask with an exception for the asker to raise."""
        if not isinstance(exception, BaseException):
            raise TypeError(f"fail() takes an exception, not {exception!r}")
        self._future.set_exception(exception)

    async def send(self, message: Any) -> None:
        """Answer the ask with ``message`` (a reply never waits for room)."""
        await trio.lowlevel.checkpoint()
        self.tell(message)

    def request(self, message: Any, *, timeout: float | None = None) -> NoReturn:
        """A reply ref cannot be asked."""
        raise ActorError(f"{self!r} answers an ask; it cannot be asked itself")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplyRef) and other._future is self._future

    def __hash__(self) -> int:
        return hash(self._future)

    def __repr__(self) -> str:
        return f"<ReplyRef #{self._future.correlation_id} for {self._cell.path!r}>"


