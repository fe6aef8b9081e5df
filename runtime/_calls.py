"""Typed calls: an actor's public ``async def`` method run as one message, by name.

``await ref.call(Counter.add, 5)`` sends a :class:`Call` (the method's owner and name, and the arguments) as an
ask; ``ref.cast(Counter.add, 5)`` tells it. The function object never travels: a call is a small picklable value,
so it crosses nodes like any message, and the receiving cell looks the method up on its current instance. Both
ends check: the caller, against the class the ref was spawned with when it is known, so that a wrong call raises
at the call site; the receiver, always, against the actor it runs, and a call it refuses is answered like a
``Reply.error`` (the actor is not failed).

The checks are done once per (class, function) on the calling side and once per (class, owner, name) on the
receiving side, then remembered in the system's :class:`Methods`, so a call costs two dict lookups more than an
ask.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable, Mapping
from types import FunctionType
from typing import Any, Final

from ._dispatcher import never_suspends
from ._messages import Reply
from ._show import show

__all__ = ["Call", "Methods", "owner_key"]


def owner_key(cls: type) -> str:
    """How a call names the class that defines its method: ``"module:QualName"``, the same in every process."""
    return f"{cls.__module__}:{cls.__qualname__}"


class Call(tuple[str, str, tuple[Any, ...], Mapping[str, Any]]):
    """The message a typed call travels as: run the method ``name`` defined by ``owner`` with the arguments.

    Made by ``ActorRef.call``/``cast``, which check the method first. Handled by the receiving cell itself, not by
    ``receive``: it looks ``name`` up on the actor's class, checks that the class is or derives from ``owner`` and
    that the method is a public ``async def``, and awaits it. The return value answers the ask, as ``receive``'s
    does; ``Reply.error(exc)`` works the same.

    An immutable tuple ``(owner, name, args, kwargs)`` rather than an attrs value: it is made once per call, and
    a frozen attrs instance costs five times as much to make (measured: about 1 µs against 0.2 µs, a tenth of a
    local ask), for the same immutability. It pickles by its fields.
    """

    __slots__ = ()

    def __new__(cls, owner: str, name: str, args: tuple[Any, ...] = (),
                kwargs: Mapping[str, Any] | None = None) -> Call:
        return tuple.__new__(cls, (owner, name, args, {} if kwargs is None else kwargs))

    def __getnewargs__(self) -> tuple[str, str, tuple[Any, ...], Mapping[str, Any]]:
        return (self[0], self[1], self[2], self[3])

    @property
    def owner(self) -> str:
        """The class that defines the method, as :func:`owner_key` names it (``"module:QualName"``)."""
        return self[0]

    @property
    def name(self) -> str:
        """The method's name."""
        return self[1]

    @property
    def args(self) -> tuple[Any, ...]:
        """Positional arguments, after ``self``."""
        return self[2]

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """Keyword arguments."""
        return self[3]

    @property
    def method(self) -> str:
        """``Owner.name``, as the caller wrote it."""
        return f"{self[0].rpartition(':')[2]}.{self[1]}"

    def __repr__(self) -> str:
        arguments = [show(arg, 60) for arg in self[2]]
        arguments.extend(f"{key}={show(value, 60)}" for key, value in self[3].items())
        return f"<call {self.method}({', '.join(arguments)})>"


_RESERVED_NOTE = "it belongs to the actor's own API"


def _uncallable(cls: type) -> frozenset[str]:
    names: frozenset[str] = getattr(cls, "_uncallable", frozenset())
    return names


def _forwards(cls: type) -> bool:
    from ._cell import CallForwarder  # the cell module imports this one

    return issubclass(cls, CallForwarder)


def _check_function(method: object) -> types.FunctionType:
    """The function behind ``method`` if it can be a public async method at all, else :class:`TypeError`."""
    if not isinstance(method, types.FunctionType):
        raise TypeError(f"call() and cast() take a public async method of the actor's class, such as "
                        f"Counter.add; {show(method)} is not one")
    qualname = method.__qualname__
    owner = qualname.rpartition(".")[0]
    if not owner or owner.endswith("<locals>") or method.__name__ == "<lambda>":
        raise TypeError(f"{qualname} is a plain function, not a method of an actor class; call() and cast() "
                        "take a public async method, such as Counter.add")
    if method.__name__.startswith("_"):
        raise TypeError(f"{qualname} is private (its name starts with '_'); only public methods can be called")
    if not inspect.iscoroutinefunction(method):
        raise TypeError(f"{qualname} is not an async method; call() and cast() run 'async def' methods only")
    return method


def _head(cls: type | None, method: object) -> tuple[str, str]:
    """The (owner, name) a call of ``method`` travels with, checked against the actor class ``cls`` if known."""
    function = _check_function(method)
    name = function.__name__
    if cls is None or _forwards(cls):
        # The class is not known here (or hands calls on): the function's own class names it, and the actor
        # that finally runs the call checks the rest.
        return f"{function.__module__}:{function.__qualname__.rpartition('.')[0]}", name
    if name in _uncallable(cls):
        raise TypeError(f"{function.__qualname__} cannot be called: {_RESERVED_NOTE} (tell or ask it messages)")
    for base in cls.__mro__:
        if base.__dict__.get(name) is function:
            return owner_key(base), name
    raise TypeError(f"{function.__qualname__} is not a method of {cls.__qualname__} or of a base class of it; "
                    f"the actor is a {cls.__qualname__}")


def _body(cls: type, owner: str, name: str) -> types.FunctionType | TypeError:
    """The function that runs a call of ``owner``'s ``name`` on an instance of ``cls``, or why it cannot."""
    method = f"{owner.rpartition(':')[2]}.{name}"
    if name.startswith("_"):
        return TypeError(f"{method} is private (its name starts with '_'); only public methods can be called")
    if name in _uncallable(cls):
        return TypeError(f"{method} cannot be called: {_RESERVED_NOTE} (tell or ask it messages)")
    if not any(owner_key(base) == owner and name in base.__dict__ for base in cls.__mro__):
        return TypeError(f"{method} is not a method of {cls.__qualname__} or of a base class of it; the actor "
                         f"is a {cls.__qualname__}")
    found = next(base.__dict__[name] for base in cls.__mro__ if name in base.__dict__)
    if not isinstance(found, types.FunctionType) or not inspect.iscoroutinefunction(found):
        return TypeError(f"{cls.__qualname__}.{name} is not an async method; call() and cast() run 'async def' "
                         "methods only")
    return found


_new = tuple.__new__
_FORWARD: Final = TypeError("forwarded")
"""What :meth:`Methods.run` remembers for a class that forwards calls (a router)."""


async def _refuse(error: TypeError) -> Reply:
    return Reply.error(error)


class Methods:
    """What a system has learnt about which functions can be called on which actor classes.

    Both checks of a call (the caller's and the receiver's) are pure functions of classes and functions, so each
    is made once and remembered here. The per-call path is one dict lookup on each side, keyed by what is at
    hand without building a key (the function; the class, then the method's name), and checked against the
    rest (the class; the owner); a miss falls back to the full table. It lives on the system, like every other
    table, and holds only classes and functions the system has called.
    """

    __slots__ = ("_bodies", "_heads", "by_class", "by_function")

    def __init__(self) -> None:
        self._heads: dict[tuple[type | None, object], tuple[str, str]] = {}
        """(class or None, function) -> (owner, name), every pair checked so far."""
        self.by_function: dict[object, tuple[type | None, str, str]] = {}
        """function -> (class, owner, name) for the class it was last called on (``ActorRef.call`` reads it)."""
        self._bodies: dict[tuple[type, str, str], FunctionType | TypeError] = {}
        """(class, owner, name) -> the function to run, or why it cannot be run."""
        self.by_class: dict[type, dict[str, tuple[str, FunctionType | TypeError, bool]]] = {}
        """class -> name -> (owner, what ``_bodies`` holds, whether that function can never suspend) for the owner
        last called by that name (the cell's run loop and ``Cell.claim`` read it)."""

    def call(self, cls: type | None, method: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Call:
        """The :class:`Call` of ``method`` with the arguments, for an actor of class ``cls`` (``None``: unknown).

        Raises :class:`TypeError` naming ``method`` if it is not a public async method of ``cls`` or of a base of
        it (a lambda, a plain function, a private or sync method, a method of another class).
        """
        try:
            entry = self.by_function.get(method)
        except TypeError:  # an unhashable value: certainly not a method
            _check_function(method)
            raise
        if entry is None or entry[0] is not cls:
            entry = self.learn_head(cls, method)
        return _new(Call, (entry[1], entry[2], args, kwargs))

    def learn_head(self, cls: type | None, method: object) -> tuple[type | None, str, str]:
        """Check ``method`` for class ``cls`` (:class:`TypeError` if it cannot be called) and remember it in
        :attr:`by_function`: the slow path of :meth:`call`."""
        try:
            head = self._heads.get((cls, method))
        except TypeError:
            _check_function(method)
            raise
        if head is None:
            head = self._heads[(cls, method)] = _head(cls, method)
        entry = self.by_function[method] = (cls, head[0], head[1])
        return entry

    def run(self, instance: object, call: Call, handler: Callable[[Any], Any]) -> Awaitable[Any]:
        """Start ``call`` on ``instance``: the method's coroutine, or one that answers the refusal.

        The cell's run loop inlines the fast path (a known class, owner and name that resolve to a function) and
        comes here for the rest.

        A refused call (the class does not have that public async method) answers ``Reply.error(TypeError)``:
        an ask raises it, a cast becomes a dead letter; the actor is not failed. An actor that forwards calls
        (a router) gets the call as a message: ``handler(call)``.
        """
        cls = instance.__class__
        owner, name, args, kwargs = call
        names = self.by_class.get(cls)
        entry = None if names is None else names.get(name)
        if entry is None or entry[0] != owner:
            entry = self._learn_body(cls, owner, name)
        body = entry[1]
        if body.__class__ is not FunctionType:
            return handler(call) if body is _FORWARD else _refuse(body)  # type: ignore[arg-type]
        return body(instance, *args, **kwargs)  # type: ignore[no-any-return]

    def _learn_body(self, cls: type, owner: str, name: str) -> tuple[str, FunctionType | TypeError, bool]:
        body = self._bodies.get((cls, owner, name))
        if body is None:
            body = self._bodies[(cls, owner, name)] = _FORWARD if _forwards(cls) else _body(cls, owner, name)
        entry = self.by_class.setdefault(cls, {})[name] = (owner, body, never_suspends(body))
        return entry
