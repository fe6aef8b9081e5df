"""The :class:`Actor` base class that applications subclass, with the context an actor reaches through ``self``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

from runtime import ActorBase, ActorRef, Mailbox, Restart, SpawnSpec, Strategy, Timers

if TYPE_CHECKING:
    from runtime import ActorSystem, Cell

__all__ = ["Actor"]

AnyActor = TypeVar("AnyActor", bound=ActorBase)


class Actor(ActorBase):
    """Subclass this and define ``async def receive(self, message)``, public ``async def`` methods, or both.

    An actor has a private mailbox and handles one message at a time, in arrival order per sender. ``receive``'s
    return value answers an ask (``return Reply.error(exc)`` makes the ask raise ``exc`` without failing the
    actor); for a tell it is ignored. ``__init__`` takes the application's own arguments and needs no
    ``super().__init__()`` call.

    A public ``async def`` method (no leading underscore) is also a message: ``await ref.call(Counter.add, 5)``
    runs it on the actor, one message at a time with the rest, and answers its return value, as ``receive``'s
    answers an ask; ``ref.cast(Counter.add, 5)`` is the tell form. Calls never reach ``receive``, so an actor
    whose work is all methods needs none. The methods of this class (``spawn``, the hooks, ...) cannot be called.

    Optional async hooks: ``on_start()`` (before the first message; spawn children here), ``on_stop()`` (after
    the last, once the children are stopped) and ``on_restart(error)`` (on the fresh instance after a restart;
    by default it calls ``on_start()``). A restart builds a fresh instance from the same factory and arguments:
    the state is reset; the ref and the mailbox are kept.

    Inside an actor, ``self`` gives its context: :attr:`ref`, :attr:`sender`, :attr:`system`, :attr:`parent`,
    :attr:`children`, :meth:`spawn` (and :meth:`spawn_spec`), :meth:`stop`, :meth:`watch`/:meth:`unwatch`,
    :attr:`timers`, :meth:`stash`/:meth:`unstash_all`, :meth:`become`/:meth:`unbecome` and :meth:`defer_reply`.
    All but the two spawns are plain calls.
    """

    @property
    def _context(self) -> Cell:
        cell = self._cell
        if cell is None:
            raise RuntimeError(
                f"{type(self).__qualname__} is not running in an actor system; create actors with "
                f"'await system.spawn({type(self).__qualname__}, ...)' and use self.ref, self.spawn(), ... "
                "inside their methods")
        return cell

    @property
    def ref(self) -> ActorRef[Self]:
        """This actor's own ref (the same across restarts)."""
        return self._context.ref

    @property
    def sender(self) -> ActorRef | None:
        """Who sent the current message: the telling actor's ref, ``None`` for a tell from outside any actor.

        During an ask it is a reply ref: telling it answers the ask.
        """
        return self._context.sender

    @property
    def system(self) -> ActorSystem:
        """The system this actor runs in."""
        return self._context.system

    @property
    def parent(self) -> ActorRef | None:
        """The supervising parent's ref; ``None`` for a top-level actor."""
        parent = self._context.parent
        return None if parent is None or parent.parent is None else parent.ref

    @property
    def children(self) -> list[ActorRef]:
        """The live children, in start order."""
        return [child.ref for child in self._context.children]

    @property
    def timers(self) -> Timers:
        """Lifecycle-bound timers: ``start_single``, ``start_periodic``, ``cancel`` (cancelled on restart and stop)."""
        return self._context.timers

    async def spawn(self, factory: Callable[..., AnyActor], *args: Any, name: str | None = None,
                    mailbox: Mailbox | None = None, restart: Restart | str = Restart.TRANSIENT,
                    supervision: Strategy | None = None, stop_timeout: float | None = None, node: object = None,
                    **kwargs: Any) -> ActorRef[AnyActor]:
        """Start a child supervised by this actor; same options, errors and ref type as ``system.spawn``."""
        context = self._context
        return await context.spawn_child(
            context.system.make_spec(factory, args, kwargs, name, mailbox, restart, supervision, stop_timeout, node))

    async def spawn_spec(self, spec: SpawnSpec) -> ActorRef:
        """Start a child from a :class:`SpawnSpec` (made with ``SpawnSpec.of``); same errors as :meth:`spawn`."""
        if not isinstance(spec, SpawnSpec):
            raise TypeError(f"spawn_spec() takes a SpawnSpec, not {spec!r}")
        return await self._context.spawn_child(spec)

    def stop(self) -> None:
        """Stop this actor once the current message is handled; messages still queued become dead letters."""
        self._context.request_stop(None, "self")

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated(ref, reason)`` when ``ref`` stops for good (at once if it already has)."""
        if not isinstance(ref, ActorRef):
            raise TypeError(f"watch() takes an ActorRef, not {ref!r}")
        self._context.watch(ref)

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching ``ref``; a ``Terminated`` for it that is already queued is discarded."""
        if not isinstance(ref, ActorRef):
            raise TypeError(f"unwatch() takes an ActorRef, not {ref!r}")
        self._context.unwatch(ref)

    def forward(self, ref: ActorRef, message: Any) -> None:
        """Send ``message`` on to ``ref`` keeping the current sender, and the pending ask if there is one.

        ``ref`` sees the original sender as its ``self.sender`` and its answer goes straight to the asker, so a
        router can hand work on without waiting for it. This actor's return value then answers nothing.
        """
        if not isinstance(ref, ActorRef):
            raise TypeError(f"forward() takes an ActorRef, not {ref!r}")
        self._context.forward(ref, message)

    def stash(self) -> None:
        """Set the current message aside (with its pending ask) until :meth:`unstash_all`.

        A restart clears the stash (its messages become dead letters) unless it was unstashed first.
        """
        self._context.stash()

    def unstash_all(self) -> None:
        """Put the stashed messages back, in order, ahead of everything queued after them."""
        self._context.unstash_all()

    def become(self, handler: Callable[[Any], Awaitable[Any]]) -> None:
        """Handle the next messages with ``handler`` (an ``async def handler(message)``) until :meth:`unbecome`.

        A restart restores ``receive``.
        """
        self._context.become(handler)

    def unbecome(self) -> None:
        """Go back to handling messages with ``receive``."""
        self._context.unbecome()

    def defer_reply(self) -> ActorRef:
        """Answer the current ask later: returns a reply ref (``tell(value)`` / ``fail(exc)``).

        The return value of ``receive`` then no longer answers the ask. If the actor stops or restarts before
        answering, the ask raises instead of hanging.
        """
        return self._context.defer_reply()

    def __repr__(self) -> str:
        cell = self._cell
        where = "not spawned" if cell is None else cell.describe()
        return f"<{type(self).__qualname__} {where}>"


# The public methods of the base classes are the actor's API, not its own methods: calls refuse them.
Actor._uncallable = ActorBase._uncallable | frozenset(name for name in vars(Actor) if not name.startswith("_"))


