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
from collections.abc import Awaitable, Mapping
from typing import Any

import attrs

from ._messages import Reply
from ._show import show

__all__ = ["Call", "Methods", "owner_key"]


def owner_key(cls: type) -> str:
    """How a call names the class that defines its method: ``"module:QualName"``, the same in every process."""
    return f"{cls.__module__}:{cls.__qualname__}"


@attrs.frozen(repr=False)
class Call:
    """The message a typed call travels as: run the method ``name`` defined by ``owner`` with the arguments.

    Made by ``ActorRef.call``/``cast`` (never by hand: they check the method first). Handled by the receiving
    cell itself, not by ``receive``: it looks ``name`` up on the actor's class, checks that the class is or
    derives from ``owner`` and that the method is a public ``async def``, and awaits it. The return value answers
    the ask, as ``receive``'s does; ``Reply.error(exc)`` works the same.
    """

    owner: str
    """The class that defines the method, as :func:`owner_key` names it."""
    name: str
    """The method's name."""
    args: tuple[Any, ...]
    """Positional arguments, after ``self``."""
    kwargs: Mapping[str, Any]
    """Keyword arguments."""

    @property
    def method(self) -> str:
        """``Owner.name``, as the caller wrote it."""
        return f"{self.owner.rpartition(':')[2]}.{self.name}"

    def __repr__(self) -> str:
        arguments = [show(arg, 60) for arg in self.args]
        arguments.extend(f"{key}={show(value, 60)}" for key, value in self.kwargs.items())
        return f"<call {self.method}({', '.join(arguments)})>"


_RESERVED_NOTE = "it belongs to the actor's own API"


def _uncallable(cls: type) -> frozenset[str]:
    names: frozenset[str] = getattr(cls, "_uncallable", frozenset())
    return names


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
    if cls is None or getattr(cls, "forwards_calls", False):
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


async def _refuse(error: TypeError) -> Reply:
    return Reply.error(error)


class Methods:
    """What a system has learnt about which functions can be called on which actor classes.

    Both checks of a call (the caller's and the receiver's) are pure functions of classes and functions, so each
    is made once and remembered here: a dict lookup per call afterwards. It lives on the system, like every
    other table, and holds only classes and functions the system has run.
    """

    __slots__ = ("_bodies", "_heads")

    def __init__(self) -> None:
        self._heads: dict[tuple[type | None, object], tuple[str, str]] = {}
        self._bodies: dict[tuple[type, str, str], types.FunctionType | TypeError] = {}

    def call(self, cls: type | None, method: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Call:
        """The :class:`Call` of ``method`` with the arguments, for an actor of class ``cls`` (``None``: unknown).

        Raises :class:`TypeError` naming ``method`` if it is not a public async method of ``cls`` or of a base of
        it (a lambda, a plain function, a private or sync method, a method of another class).
        """
        try:
            head = self._heads.get((cls, method))
        except TypeError:  # an unhashable value: certainly not a method
            head = None
            _check_function(method)
        if head is None:
            head = self._heads[(cls, method)] = _head(cls, method)
        return Call(head[0], head[1], args, kwargs)

    def run(self, instance: object, call: Call) -> Awaitable[Any]:
        """Start ``call`` on ``instance``: the method's coroutine, or one that answers the refusal.

        A refused call (the class does not have that public async method) answers ``Reply.error(TypeError)``:
        an ask raises it, a cast becomes a dead letter; the actor is not failed.
        """
        cls = instance.__class__
        key = (cls, call.owner, call.name)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = _body(cls, call.owner, call.name)
        if body.__class__ is TypeError:
            return _refuse(body)
        return body(instance, *call.args, **call.kwargs)  # type: ignore[operator,no-any-return]
