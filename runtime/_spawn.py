"""The spawn spec: the one description of what to start and how, validated once where it is made."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ._mailbox import Mailbox
from ._supervision import Restart, Strategy
from ._timers import positive_seconds

__all__ = ["SPAWN_OPTIONS", "SpawnSpec", "check_arguments", "stray_arguments"]

SPAWN_OPTIONS = ("name", "mailbox", "restart", "supervision", "stop_timeout", "node")
"""The keyword arguments of ``spawn`` that are options, not the factory's arguments."""

_NO_KWARGS: Mapping[str, Any] = {}


def _check_name(name: object) -> None:
    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        raise ValueError(f"actor name {name!r} must be a non-empty string without '/'")


class SpawnSpec(NamedTuple):
    """What to start and how: the factory, its arguments and the spawn options.

    Every way to start an actor (``system.spawn``, ``Actor.spawn``, ``ChildSpec``, ``Pool``) makes one with
    :meth:`of`, which validates the options; nothing validates them again. A spec is an immutable value that
    pickles whenever its factory and arguments do (cloudpickle takes lambdas and closures), so it can be shipped to
    the node that will run the actor. It is a named tuple rather than an attrs class because it is made on every
    spawn: it costs less than half as much to build.
    """

    factory: Callable[..., Any]
    """An Actor subclass or any callable returning an Actor."""
    args: tuple[Any, ...]
    """Positional arguments for the factory."""
    kwargs: Mapping[str, Any]
    """Keyword arguments for the factory (never mutated)."""
    name: str | None
    """The name among its siblings; ``None`` for a generated one."""
    mailbox: Mailbox | None
    """The mailbox's bound; ``None`` for the system's default."""
    restart: Restart
    """When the parent restarts it: ``TRANSIENT`` (after a failure), ``PERMANENT`` or ``TEMPORARY``."""
    supervision: Strategy | None
    """The strategy it applies to its own children; ``None`` for the system's default."""
    stop_timeout: float | None
    """Seconds a stop waits for the handler running at the time before cancelling it; ``None`` waits."""
    node: object
    """Placement: ``None`` (the parent's node), a ``Node`` or its name, or ``"spread"`` (the live worker with the
    fewest actors)."""

    @classmethod
    def of(cls, factory: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None,
           *, name: str | None = None, mailbox: Mailbox | None = None, restart: Restart | str = Restart.TRANSIENT,
           supervision: Strategy | None = None, stop_timeout: float | None = None,
           node: object = None) -> SpawnSpec:
        """A validated spec. Raises :class:`TypeError` for a factory that is not callable or an option of the wrong
        type, :class:`ValueError` for a bad name, restart type, stop timeout or placement, each naming the value."""
        if not callable(factory):
            raise TypeError(f"spawn() needs an Actor subclass or a callable returning an Actor, not {factory!r}")
        _check_name(name)
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox={mailbox!r} must be a Mailbox")
        if supervision is not None and not isinstance(supervision, Strategy):
            raise TypeError(f"supervision={supervision!r} must be a strategy such as OneForOne()")
        if stop_timeout is not None:
            stop_timeout = positive_seconds("stop_timeout", stop_timeout)
        if node is not None and not isinstance(node, str) and not isinstance(getattr(node, "name", None), str):
            raise TypeError(f"node={node!r} must be None, a Node, a node's name or \"spread\"")
        restart = restart if restart.__class__ is Restart else Restart.coerce(restart)
        return cls(factory, args, _NO_KWARGS if not kwargs else kwargs, name, mailbox, restart,
                   supervision, stop_timeout, node)

    def renamed(self, name: str | None) -> SpawnSpec:
        """The same spec under another name (checked like any name)."""
        _check_name(name)
        return self._replace(name=name)


def check_arguments(factory: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: Mapping[str, Any]) -> TypeError | None:
    """When ``factory(*args, **kwargs)`` raised :class:`TypeError`: a clearer one if the arguments do not fit the
    factory's signature (a misspelled spawn option, an argument it does not take), else ``None``.

    Called only after a factory raised, so a spawn that works pays nothing for it.
    """
    is_class = isinstance(factory, type)
    try:  # a class's own __init__: inspect.signature(cls) would report ActorBase.__new__'s (*args, **kwargs)
        signature = inspect.signature(factory.__init__ if is_class else factory)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*((None, *args) if is_class else args), **kwargs)
    except TypeError as exc:
        options = ", ".join(SPAWN_OPTIONS)
        return TypeError(f"{factory!r} does not take the arguments it was given: {exc} (spawn's own options are "
                         f"{options})")
    return None


def stray_arguments(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TypeError:
    """The :class:`TypeError` for arguments given to an actor class that defines no ``__init__`` (which
    ``ActorBase.__new__`` would otherwise take without a word)."""
    given = [repr(arg) for arg in args] + [f"{key}={value!r}" for key, value in kwargs.items()]
    options = ", ".join(SPAWN_OPTIONS)
    return TypeError(f"{factory!r} takes no arguments, but was given {', '.join(given)} (spawn's own options are "
                     f"{options})")
