"""Actor references: the only way to reach an actor. Cheap, hashable, valid across restarts, and picklable.

A ref holds a target (see :class:`~runtime._address.Target`): a local cell, or :class:`Unreachable` for an
address that resolves to nothing. Everything a ref does goes through the target protocol, except the inlined
fast path of :meth:`ActorRef.tell`, which appends straight to a local cell's queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Generic, NoReturn, ParamSpec, overload

import trio
from typing_extensions import TypeVar

from ._address import Address
from ._calls import Call
from ._dispatcher import current_actor, current_system
from ._envelope import WATCH_MARK, SystemMessage, Watch
from ._exceptions import ActorError, ActorStopped, MailboxFull, SerializationError
from ._futures import Correlations, Future
from ._messages import Terminated
from ._show import show
from ._timers import positive_seconds

if TYPE_CHECKING:
    from ._address import Target
    from ._cell import ActorBase, CallForwarder
    from ._node import Node
    from ._system import ActorSystem

__all__ = ["ActorRef", "AddressTarget", "ReplyRef", "Unreachable"]

_current = current_actor.get
_new_tuple = tuple.__new__

A_co = TypeVar("A_co", bound="ActorBase", covariant=True, default=Any)
"""The actor class behind a ref, for a type checker; a bare ``ActorRef`` is ``ActorRef[Any]``."""
P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W", bound="ActorBase")


class ActorRef(Generic[A_co]):
    """A handle on an actor: ``tell`` it, ``send`` to it, ``ask`` it, ``request`` an answer, or ``call`` a method.

    A ref stays the same object for the actor's whole life, restarts included, so refs compare and hash by
    identity. A ref outlives its actor: telling a stopped actor makes a dead letter, asking it raises
    :class:`~runtime.ActorStopped`. A ref pickles (with :mod:`pickle` or cloudpickle) to its
    :class:`~runtime.Address`, and unpickles inside a running system to the same ref object while the actor lives.

    To a type checker a ref is generic in its actor class: ``spawn(Counter)`` gives an ``ActorRef[Counter]``,
    whose :meth:`call` and :meth:`cast` accept only ``Counter``'s methods (and its bases'), with their
    arguments, and give the method's result type. At run time the parameter is erased: every ref is an
    ``ActorRef``.
    """

    __slots__ = ("_target",)

    def __init__(self, target: Target) -> None:
        self._target = target

    @property
    def address(self) -> Address:
        """Where the actor lives: its node, its id on that node, and its path."""
        return self._target.address

    @property
    def node(self) -> Node:
        """The :class:`~runtime.Node` the actor lives on."""
        target = self._target
        return target.system.node_of(target.address.node)

    @property
    def name(self) -> str:
        """The actor's name among its siblings."""
        return self._target.name

    @property
    def path(self) -> str:
        """Its names from the top of the tree, joined by ``/``; what ``system.lookup`` takes."""
        return self._target.path

    @property
    def mailbox_length(self) -> int:
        """Messages queued for the actor now, not counting the one it is handling."""
        return self._target.mailbox_length

    @property
    def is_stopped(self) -> bool:
        """Whether the actor has stopped for good."""
        return self._target.is_stopped

    def tell(self, message: Any) -> None:
        """Queue ``message`` for the actor; never blocks and never yields.

        Inside an actor, the receiver's ``self.sender`` is that actor. On a full bounded mailbox the mailbox's
        overflow policy applies (``"fail"`` raises :class:`~runtime.MailboxFull`). A stopped actor's messages
        become dead letters; ``tell`` does not raise for them.
        """
        # The one copy of the fast path, inlined because it is the per-message cost of every tell: while ``slow`` is
        # False the target is a running local cell with an unbounded queue, and the envelope goes straight in; a
        # message from the sender of the item queued last, not timed, goes in by itself (see runtime._envelope).
        cell: Any = self._target
        if cell.slow:
            cell.deliver(message, _current(), None)
            return
        n = cell._arrivals = cell._arrivals + 1
        sender = _current()
        if message.__class__ is not tuple and sender is cell._last and n != cell._due:
            cell._queue.append(message)
        else:
            cell._queue.append((message, sender, None, None if n != cell._due else cell._timed()))
            cell._last = sender
        if not cell.scheduled:
            cell._ready()

    async def send(self, message: Any) -> None:
        """Like :meth:`tell`, but wait for room in a bounded mailbox instead of applying its overflow policy.

        Always a checkpoint. Cancelling the wait leaves the message unsent (for an actor on another node, the
        message may already be on its way). Raises :class:`ActorStopped` if the actor stops while we wait. For an
        actor on another node, the send returns once that node has put the message in the mailbox.
        """
        await self._target.send(message, _current())

    def request(self, message: Any, *, timeout: float | None = None) -> Future[Any]:
        """Send ``message`` as a request and return its :class:`Future` at once (for callbacks).

        ``timeout`` is the future's expiry, in seconds of trio's clock: it then fails with
        :class:`~runtime.AskTimeout`. The actor's return value, ``Reply.error(exc)`` or a deferred reply
        resolves it; so do the actor failing (:class:`~runtime.ActorFailed`) or stopping first
        (:class:`~runtime.ActorStopped`).

        ``request`` never raises for the delivery itself: a request the actor cannot take comes back as a future
        that is already done with the error. A full mailbox fails it with :class:`~runtime.MailboxFull` whatever
        the overflow policy (``"fail"`` raises nothing; ``"drop_new"`` also makes the request a dead letter;
        ``"drop_old"`` queues it and drops the oldest message instead), and a stopped actor with
        :class:`~runtime.ActorStopped`. ``ask`` raises what the future holds.
        """
        if timeout is not None:
            timeout = positive_seconds("timeout", timeout)
        future = self._send_request(message, _current())
        if timeout is not None and not future._state:
            self._target.system.expire_at(future, timeout, message)
        return future

    def _send_request(self, message: Any, sender: ActorRef | None) -> Future[Any]:
        """Register a request in this node's correlation table and deliver it with its correlation ID."""
        target = self._target
        system = target.system
        future = system.correlations.new_future(system, self)
        try:
            target.deliver(message, sender, future.correlation_id)
        except MailboxFull as exc:  # overflow="fail": refused at once, like every other refusal of a request
            future.set_exception(exc)
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
        if sender is self:
            raise RuntimeError(f"{self!r} asked itself {show(message)}: it cannot answer while it waits, so the ask "
                               "would never end; call the method directly, or tell and handle the answer later")
        target = self._target
        if target.claim(message):
            # An idle local actor whose handler cannot suspend: handle the ask here, as a runner would.
            try:
                future = self._send_request(message, sender)
            finally:  # the claimed cell is released whatever happened
                due = target.system.dispatcher.run_here(target)  # type: ignore[arg-type]  # claimed: a cell
            if due:
                await trio.lowlevel.cancel_shielded_checkpoint()
            if future._state:
                return future.result()
        else:
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

    @overload
    def call(self: ActorRef[CallForwarder[W]], method: Callable[Concatenate[W, P], Awaitable[R]], /,
             *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]: ...

    @overload
    def call(self, method: Callable[Concatenate[A_co, P], Awaitable[R]], /, *args: P.args,
             **kwargs: P.kwargs) -> Coroutine[Any, Any, R]: ...

    def call(self, method: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Run the actor's public ``async def`` method ``method`` as one message and return its result.

        ``await counter.call(Counter.add, 5)`` runs ``add(5)`` on the actor's current instance, in order with
        every other message from this sender, one message at a time as ``receive`` is. The method travels by name
        (a ``Call`` value), so a call crosses nodes like any message. It is an :meth:`ask` underneath and
        ends the same way: cancellation and ``trio.fail_after`` as for ``ask``, :class:`~runtime.ActorFailed`
        (with ``.cause``) if the method raised, :class:`~runtime.ActorStopped` if the actor is or becomes
        stopped first, and whatever the method answered with ``Reply.error(exc)``.

        Raises :class:`TypeError` naming ``method`` at once, before anything is sent (on the call itself, before
        the ``await``), if it is not a public (no leading underscore) ``async def`` method of the actor's class
        or of a base of it (checked against the class the ref was spawned with when this node knows it; the
        receiving actor always checks too, and refuses a call it cannot run with ``TypeError`` without failing).

        It returns the ``ask``'s own coroutine rather than wrapping it in another: a call then costs one ask and
        the check (two dict lookups), nothing per resumption.
        """
        target = self._target
        cls = target.actor_class
        methods = target.system.methods
        try:
            entry = methods.by_function.get(method)  # Methods.call's fast path, inlined (the check is remembered)
        except TypeError:  # unhashable: not a method, and learn_head says so
            entry = None
        if entry is None or entry[0] is not cls:
            entry = methods.learn_head(cls, method)
        return self.ask(_new_tuple(Call, (entry[1], entry[2], args, kwargs)))

    @overload
    def cast(self: ActorRef[CallForwarder[W]], method: Callable[Concatenate[W, P], Awaitable[object]], /,
             *args: P.args, **kwargs: P.kwargs) -> None: ...

    @overload
    def cast(self, method: Callable[Concatenate[A_co, P], Awaitable[object]], /, *args: P.args,
             **kwargs: P.kwargs) -> None: ...

    def cast(self, method: Callable[..., Awaitable[object]], /, *args: Any, **kwargs: Any) -> None:
        """Like :meth:`call`, but as a :meth:`tell`: queue the method call and return at once; never blocks.

        Checked as :meth:`call` is (:class:`TypeError` at once). What the method returns is dropped; if it raises,
        the actor fails as for a told message; a call the actor refuses becomes a dead letter.
        """
        target = self._target
        self.tell(target.system.methods.call(target.actor_class, method, args, kwargs))

    def __repr__(self) -> str:
        return f"<ActorRef {self._target.path!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_resolve, (self._target.address,))


def _resolve(address: Address) -> ActorRef:
    """Unpickle a ref: the ref at ``address`` in the system that is running the current task."""
    system = current_system.get()
    if system is None:
        raise SerializationError(f"a ref to {address} can be unpickled only inside a running ActorSystem")
    return system.ref_at(address)


class AddressTarget:
    """What the targets known only by their address share (an actor elsewhere, or nowhere): no mailbox here, no
    room to wait for, a lease that means nothing here, and one way to refuse a message."""

    __slots__ = ("address", "ref", "system")

    slow = True
    mailbox_length = 0
    actor_class: type | None = None
    """The actor's class, when this node knows it (see ``ActorRef.call``)."""

    def __init__(self, system: ActorSystem, address: Address) -> None:
        self.system = system
        self.address = address
        self.ref = ActorRef(self)

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def path(self) -> str:
        return self.address.path

    async def send(self, message: Any, sender: ActorRef | None) -> None:
        await trio.lowlevel.checkpoint()
        self.deliver(message, sender, None)

    @property
    def is_stopped(self) -> bool:
        raise NotImplementedError

    def deliver(self, message: Any, sender: ActorRef | None, mark: Any) -> None:
        raise NotImplementedError

    def deliver_system(self, message: SystemMessage) -> None:
        raise NotImplementedError

    def claim(self, message: Any) -> bool:
        """Never: only a local cell's messages can be handled in the asker's task."""
        return False

    def deliver_leased(self, message: Any, sender: ActorRef | None, lease: Any) -> None:
        """Leases stay on their node: a message told under one to another node is a plain tell."""
        self.deliver(message, sender, None)

    def _refuse(self, message: Any, sender: ActorRef | None, mark: Any, why: str, reason: str) -> None:
        """Dead-letter ``message`` with ``reason``, and fail its ask (``mark``) with ``ActorStopped`` saying ``why``."""
        if mark.__class__ is int:
            self.system.correlations.fail(
                mark, ActorStopped(f"{self.ref!r} {why}; {show(message)} was not delivered"))
        self.system.dead_letter(message, sender, self.ref, reason)


class Unreachable(AddressTarget):
    """The target of a ref whose address resolves to no live actor: tells are dead letters, asks raise
    :class:`~runtime.ActorStopped`, and a watch gets ``Terminated`` at once."""

    __slots__ = ()

    @property
    def is_stopped(self) -> bool:
        return True

    def deliver(self, message: Any, sender: ActorRef | None, mark: Any) -> None:
        self._refuse(message, sender, mark, "is unreachable", "unreachable")

    def deliver_system(self, message: SystemMessage) -> None:
        if message.__class__ is Watch:
            message.watcher._target.deliver(Terminated(self.ref, None), None, WATCH_MARK)

    def __repr__(self) -> str:
        return f"<Unreachable {self.address}>"


class ReplyRef(ActorRef[Any]):
    """The ref that answers one ask: ``self.sender`` during an ask, or what ``self.defer_reply()`` returns.

    It stands for (the asker's node, the correlation ID). ``tell(value)`` answers the ask with ``value``;
    ``fail(exc)`` makes the ask raise ``exc``. The first answer wins; later ones are dead letters.
    """

    __slots__ = ("_table", "correlation_id")

    def __init__(self, replier: Target, correlation_id: int, table: Correlations) -> None:
        super().__init__(replier)
        self.correlation_id = correlation_id
        """The correlation ID of the ask this ref answers."""
        self._table = table

    def tell(self, message: Any) -> None:
        """Answer the ask with ``message``."""
        if not self._table.answer(self.correlation_id, message):
            self._late(message)

    def fail(self, exception: BaseException) -> None:
        """Answer the ask with an exception for the asker to raise."""
        if not isinstance(exception, BaseException):
            raise TypeError(f"fail() takes an exception, not {show(exception)}")
        if not self._table.fail(self.correlation_id, exception):
            self._late(exception)

    def _late(self, value: object) -> None:
        self._target.system.dead_letter(value, None, self._target.ref, "late reply")

    async def send(self, message: Any) -> None:
        """Answer the ask with ``message`` (a reply never waits for room)."""
        await trio.lowlevel.checkpoint()
        self.tell(message)

    def request(self, message: Any, *, timeout: float | None = None) -> NoReturn:
        """A reply ref cannot be asked."""
        raise ActorError(f"{self!r} answers an ask; it cannot be asked itself")

    def cast(self, method: Callable[..., Awaitable[object]], /, *args: Any, **kwargs: Any) -> NoReturn:
        """A reply ref runs no methods: it answers one ask (``tell`` it the answer)."""
        raise ActorError(f"{self!r} answers an ask; it runs no methods")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ReplyRef) and other.correlation_id == self.correlation_id
                and other._table is self._table)

    def __hash__(self) -> int:
        return hash(self.correlation_id)

    def __repr__(self) -> str:
        return f"<ReplyRef #{self.correlation_id} for {self._target.path!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_resolve_reply, (self._target.system.node_id, self.correlation_id, self._target.address))


def _resolve_reply(node: str, correlation_id: int, replier: Address) -> ReplyRef:
    """Unpickle a reply ref: on the asker's node it answers through that node's correlation table."""
    system = current_system.get()
    if system is None or system.node_id != node:
        raise SerializationError(f"the reply ref for ask #{correlation_id} of node {node} can be unpickled only "
                                 "on that node")
    return ReplyRef(system.ref_at(replier)._target, correlation_id, system.correlations)
