"""The router's input checks: what exchanges, queues and transactions refuse, and the words they refuse it with.

Each check returns or raises a :class:`ValueError` that names the offending value and the rule it breaks; the
actor that received the message answers an ask with it (``Reply.error``) and keeps running, unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from runtime import ActorRef, ReplyRef, validate_key
from runtime import show as _show

from ._router_messages import Enqueue, EnqueueCC, Publish, Subscribe

__all__ = ["check_count", "check_ref", "check_ttl", "enqueue_error", "publish_error", "show"]

_SHOW_LIMIT: Final = 60


def show(value: object) -> str:
    """``repr(value)`` cut short for error messages; never raises (``runtime.show``, at this module's length)."""
    return _show(value, _SHOW_LIMIT)


def check_ttl(what: str, value: object) -> float | None:
    """``value`` as seconds if it is ``None`` or a finite number >= 0, else raise :class:`ValueError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}={show(value)} must be None or a number of seconds, zero or more")
    return float(value)


def check_count(what: str, value: object) -> int | None:
    """``value`` if it is ``None`` or an int >= 0 (not a bool), else raise :class:`ValueError`."""
    if value is None:
        return None
    if not isinstance(value, int) or value.__class__ is bool or value < 0:
        raise ValueError(f"{what}={show(value)} must be None or an int, 0 or more")
    return value


def check_ref(what: str, value: object, *, optional: bool = False) -> ActorRef | None:
    """``value`` if it is an actor's ref (not a reply ref), else raise :class:`ValueError`."""
    if value is None and optional:
        return None
    if not isinstance(value, ActorRef) or isinstance(value, ReplyRef):
        rule = "an ActorRef or None" if optional else "an ActorRef"
        raise ValueError(f"{what} {show(value)} must be {rule} (the ref of a spawned actor)")
    return value


def check_subscribe(message: Subscribe) -> ActorRef:
    """The consumer of a well-formed ``message``, else raise :class:`ValueError` naming what is wrong."""
    ref = check_ref("Subscribe consumer", message.consumer)
    prefetch = message.prefetch
    if prefetch.__class__ is not int or prefetch < 0:
        raise ValueError(f"Subscribe prefetch={show(prefetch)} must be an int, 0 (no limit) or more")
    if message.auto_ack.__class__ is not bool:
        raise ValueError(f"Subscribe auto_ack={show(message.auto_ack)} must be True or False")
    assert ref is not None
    return ref


def publish_error(publish: Publish, what: str = "Publish") -> ValueError | None:
    """The :class:`ValueError` that refuses ``publish``, or ``None`` if it is well formed."""
    if publish.__class__ is not Publish:
        return ValueError(f"{what} must be a Publish, not {show(publish)}")
    try:
        validate_key(publish.routing_key)
        check_ttl("ttl", publish.ttl)
    except ValueError as exc:
        return exc
    headers: object = publish.headers
    if headers is not None:
        if not isinstance(headers, Mapping):
            return ValueError(f"headers {show(headers)} must be a mapping or None")
        try:
            if not all(isinstance(name, str) for name in headers):
                return ValueError(f"header names in {show(headers)} must all be str")
            if "CC" in headers or "BCC" in headers:
                error = _sender_keys_error(headers)
                if error is not None:
                    return error
        except Exception as exc:  # a mapping whose iteration or lookups raise
            return ValueError(f"headers {show(headers)} cannot be read: {exc!r}")
    mandatory: object = publish.mandatory
    if mandatory.__class__ is not bool:
        return ValueError(f"mandatory={show(mandatory)} must be True or False")
    persistent: object = publish.persistent
    if persistent.__class__ is not bool:
        return ValueError(f"persistent={show(persistent)} must be True or False")
    return None


_SENDER_KEYS: Final = ("CC", "BCC")


def _sender_keys_error(headers: Mapping[str, Any]) -> ValueError | None:
    """The :class:`ValueError` that refuses a ``CC`` or ``BCC`` header, or ``None`` if both are well formed.

    Each must be a list (or tuple: an AMQP array either way) of routing keys, each a valid key. A str is
    refused rather than taken as a list of one-character keys.
    """
    for name in _SENDER_KEYS:
        if name not in headers:
            continue
        keys = headers[name]
        if not isinstance(keys, list | tuple):
            return ValueError(f"header {name}={show(keys)} must be a list of routing keys (str), as "
                              "sender-selected distribution requires")
        for key in keys:
            try:
                validate_key(key, what=f"{name} routing key")
            except ValueError as exc:
                return ValueError(f"header {name}={show(keys)}: {exc}")
    return None


def enqueue_error(message: object) -> ValueError | None:
    """The :class:`ValueError` that refuses an :class:`Enqueue`, or ``None`` if it is well formed."""
    cls = message.__class__
    if cls is not Enqueue and cls is not EnqueueCC:
        return ValueError(f"{show(message)} is not an Enqueue")
    assert isinstance(message, Enqueue)
    exchange: object = message.exchange
    if exchange.__class__ is not str:
        return ValueError(f"Enqueue exchange {show(exchange)} must be the name of an exchange (a str)")
    if cls is EnqueueCC:
        for name, keys in (("cc", message.cc), ("bcc", message.bcc)):
            if keys.__class__ is not tuple or not all(key.__class__ is str for key in keys):
                return ValueError(f"Enqueue {name}={show(keys)} must be a tuple of routing keys (str)")
    return publish_error(message.publish, "Enqueue publish")
