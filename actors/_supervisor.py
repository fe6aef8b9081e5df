"""Declarative supervision trees: :class:`ChildSpec`, :class:`Supervisor` and :class:`DynamicSupervisor`.

Both supervisors are ordinary actors, written the way an application writes one: their children are spawned with
``self.spawn`` and supervised by the runtime under the strategy given as the supervisor's own ``supervision=``
spawn option (``OneForOne``, ``OneForAll``, ``RestForOne``, with restart intensity and backoff). What the
supervisors add is OTP's declarative start-up: children described by specs, started in order, with an all-or-nothing
start.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from runtime import ActorBase, ActorFailed, ActorRef, Mailbox, NameTaken, Reply, Restart, SpawnSpec, Strategy

from ._actor import Actor

__all__ = [
    "ChildSpec",
    "CountChildren",
    "DynamicSupervisor",
    "StartChild",
    "StopChild",
    "Supervisor",
    "WhichChildren",
]

C = TypeVar("C", bound=ActorBase)


@attrs.frozen(init=False)
class ChildSpec(Generic[C]):
    """How to start one supervised child: ``ChildSpec(Db, "postgres://...", name="db", restart="permanent")``.

    ``factory`` and ``args`` (plus keyword arguments other than the options) are what ``spawn`` receives; the
    options are ``spawn``'s: ``name`` (unique among the supervisor's children; ``None`` for a generated one),
    ``restart``, ``mailbox``, ``supervision`` (the strategy the child applies to its own children, for a child
    that is itself a supervisor) and ``stop_timeout`` (OTP's shutdown time: how long a stop waits for the message
    being handled before cancelling it). ``restart`` defaults to ``"permanent"``, as in OTP: the child is
    restarted after a failure and also when it stops itself, but never when its supervisor or ``system.stop``
    stops it. It holds one :class:`~actors.SpawnSpec`, which validates all of that. To a type checker it is a
    ``ChildSpec[Db]``, and the refs of the children started from it are ``ActorRef[Db]``.

    Raises :class:`TypeError` for a factory that is not callable or a mailbox/supervision of the wrong type, and
    :class:`ValueError` naming a restart type that does not exist.
    """

    spec: SpawnSpec = attrs.field(hash=False)
    """The spawn spec the child is started from."""

    def __init__(self, factory: Callable[..., C], /, *args: Any, name: str | None = None,
                 restart: Restart | str = "permanent", mailbox: Mailbox | None = None,
                 supervision: Strategy | None = None, stop_timeout: float | None = None, **kwargs: Any) -> None:
        self.__attrs_init__(SpawnSpec.of(factory, args, types.MappingProxyType(kwargs), name=name, restart=restart,
                                         mailbox=mailbox, supervision=supervision, stop_timeout=stop_timeout))

    @property
    def factory(self) -> Callable[..., C]:
        """An Actor subclass or any callable returning an Actor."""
        return self.spec.factory

    @property
    def args(self) -> tuple[Any, ...]:
        """Positional arguments for the factory."""
        return self.spec.args

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """Keyword arguments for the factory (read-only)."""
        return self.spec.kwargs

    @property
    def name(self) -> str | None:
        """The child's name under its supervisor; ``None`` for a generated one."""
        return self.spec.name

    @property
    def restart(self) -> Restart:
        """When the child is restarted: ``Restart.PERMANENT`` (default), ``TRANSIENT`` or ``TEMPORARY``."""
        return self.spec.restart

    @property
    def mailbox(self) -> Mailbox | None:
        """The child's mailbox; ``None`` for the system's default."""
        return self.spec.mailbox

    @property
    def supervision(self) -> Strategy | None:
        """The strategy the child applies to its own children; ``None`` for the system's default."""
        return self.spec.supervision

    @property
    def stop_timeout(self) -> float | None:
        """Seconds a stop waits for the message being handled before cancelling it; ``None`` waits for ever."""
        return self.spec.stop_timeout

    async def start_under(self, supervisor: Actor, *extra_args: Any, name: str | None = None,
                          **extra_kwargs: Any) -> ActorRef[C]:
        """Spawn this child under ``supervisor`` (from inside it), ``extra_args`` appended to :attr:`args`.

        ``name`` overrides :attr:`name`; ``extra_kwargs`` override :attr:`kwargs`. Same errors as ``spawn``.
        """
        spec = self.spec
        if extra_args or extra_kwargs:
            spec = spec._replace(args=spec.args + extra_args, kwargs={**spec.kwargs, **extra_kwargs})
        if name is not None:
            spec = spec.renamed(name)
        return await supervisor.spawn_spec(spec)


@attrs.frozen
class WhichChildren:
    """Ask a supervisor for its live children: the answer is a list of their refs, in start order."""


@attrs.frozen
class CountChildren:
    """Ask a supervisor how many children it has in each state: ``{"running": 3, "restarting": 1}``."""


@attrs.frozen(init=False)
class StartChild:
    """Ask a :class:`DynamicSupervisor` to start one more child from its template: ``StartChild(conn)``.

    ``args`` are appended to the template's positional arguments (OTP's ``start_child(Sup, ExtraArgs)``),
    ``kwargs`` override the template's keyword arguments, and ``name`` names the child (generated if ``None``).
    The ask answers the new child's ref once its ``on_start`` has finished; if the child cannot start, the ask
    raises what ``spawn`` would have raised (:class:`ActorFailed`, :class:`NameTaken`, ...) and the
    supervisor keeps running.
    """

    args: tuple[Any, ...]
    """Positional arguments appended to the template's."""
    name: str | None
    """The new child's name; ``None`` for a generated one."""
    kwargs: Mapping[str, Any] = attrs.field(hash=False)
    """Keyword arguments that override the template's (read-only)."""

    def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
        self.__attrs_init__(args, name, types.MappingProxyType(dict(kwargs)))


@attrs.frozen
class StopChild:
    """Ask a :class:`DynamicSupervisor` to stop one of its children for good (it is not restarted).

    The ask answers ``None`` once the child and its own children have stopped. A ref that is not a live child
    of this supervisor makes the ask raise :class:`ValueError`.
    """

    ref: ActorRef
    """The child to stop."""


class _ChildrenQueries(Actor):
    """What both supervisors answer: :class:`WhichChildren` and :class:`CountChildren`."""

    _accepts: tuple[str, ...] = ("WhichChildren()", "CountChildren()")

    def _query(self, message: object) -> Any:
        if isinstance(message, WhichChildren):
            return self.children
        if isinstance(message, CountChildren):
            return dict(self.system.statistics().actors[self.ref.path].children)
        return Reply.error(TypeError(
            f"{type(self).__name__} {self.ref.path!r} does not handle {message!r}; it takes "
            f"{', '.join(self._accepts)}"))


class Supervisor(_ChildrenQueries):
    """A ready actor that starts a list of children in order and supervises them (OTP's supervisor).

    ``await system.spawn(Supervisor, [ChildSpec(Db, name="db"), ChildSpec(Api, name="api")],
    supervision=RestForOne())`` starts ``db`` and then ``api`` in its ``on_start``; ``spawn`` returns once the
    last child has started. The strategy is the supervisor's ``supervision=`` spawn option (default: the system's
    default strategy). If a child fails to start, the children started before it are stopped in reverse start
    order, later ones are never started, and the supervisor's ``spawn`` fails with :class:`ActorFailed` (its
    ``.cause`` is the child's :class:`ActorFailed`, whose ``.cause`` is the original error); nothing stays
    registered.

    When the supervisor itself is restarted (its restart intensity was exceeded and its parent restarted it), it
    starts its children again from their specs: they are new actors with new refs. It answers
    :class:`WhichChildren` and :class:`CountChildren`; anything else is refused (the ask raises ``TypeError``).
    """

    def __init__(self, children: Iterable[ChildSpec[Any]]) -> None:
        specs = tuple(children)
        names: set[str] = set()
        for spec in specs:
            if not isinstance(spec, ChildSpec):
                raise TypeError(f"Supervisor takes a list of ChildSpec, not {spec!r}")
            if spec.name is not None:
                if spec.name in names:
                    raise ValueError(f"two children of a Supervisor are named {spec.name!r}; names must be unique")
                names.add(spec.name)
        self.specs = specs
        """The children's specs, in start order."""

    async def on_start(self) -> None:
        """Start the children in order; on a failure, stop those already started (reverse order) and raise."""
        started: list[ActorRef] = []
        try:
            for spec in self.specs:
                started.append(await spec.start_under(self))
        except Exception:
            # All or nothing, also when this runs as on_restart (where the runtime would leave them running).
            for ref in reversed(started):
                await self.system.stop(ref)
            raise

    async def receive(self, message: Any) -> Any:
        """Answer :class:`WhichChildren` and :class:`CountChildren`."""
        return self._query(message)


class DynamicSupervisor(_ChildrenQueries, Generic[C]):
    """A supervisor of children started on demand from one template (OTP's ``simple_one_for_one``).

    ``sup = await system.spawn(DynamicSupervisor, ChildSpec(Connection, restart="temporary"))`` starts with no
    children; ``await sup.ask(StartChild(socket))`` starts ``Connection(socket)`` and answers its ref;
    ``await sup.ask(StopChild(ref))`` stops one; :class:`WhichChildren` and :class:`CountChildren` list and count
    them (to a type checker, ``DynamicSupervisor[Connection]``; ``StartChild`` answers an ``ActorRef[Connection]``).
    The template must have no name (each child gets the name given to :class:`StartChild`, or a generated
    one). The children are supervised with the supervisor's ``supervision=`` spawn option.

    As in OTP, the children are lost if the supervisor itself is restarted: the fresh instance starts with none.
    Bad requests (a child that fails to start, a duplicate name, a ref that is not a child) make the ask raise
    and leave the supervisor running.
    """

    _accepts = ("StartChild(...)", "StopChild(ref)", "WhichChildren()", "CountChildren()")

    def __init__(self, template: ChildSpec[C]) -> None:
        if not isinstance(template, ChildSpec):
            raise TypeError(f"DynamicSupervisor takes one ChildSpec as its template, not {template!r}")
        if template.name is not None:
            raise ValueError(f"the template of a DynamicSupervisor must have no name (got {template.name!r}); "
                             "name each child with StartChild(..., name=...)")
        self.template = template
        """What every child is started from."""

    async def receive(self, message: Any) -> Any:
        """Handle :class:`StartChild`, :class:`StopChild`, :class:`WhichChildren` and :class:`CountChildren`."""
        if isinstance(message, StartChild):
            try:
                return await self.template.start_under(self, *message.args, name=message.name, **message.kwargs)
            except (ActorFailed, NameTaken, TypeError, ValueError) as exc:
                return Reply.error(exc)
        if isinstance(message, StopChild):
            if message.ref not in self.children:
                return Reply.error(ValueError(
                    f"{message.ref!r} is not a live child of {self.ref!r}; StopChild takes one of WhichChildren()"))
            await self.system.stop(message.ref)
            return None
        return self._query(message)
