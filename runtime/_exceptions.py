"""The error tree: every error the runtime raises on purpose derives from :class:`ActorError`.

All classes are picklable (they round-trip through :mod:`pickle` with their message and fields), so they can
cross process boundaries. Following trio, "you closed it" (:class:`ActorStopped`) is kept apart from "it broke"
(:class:`ActorFailed`, whose :attr:`~ActorFailed.cause` and ``__cause__`` carry the original exception).
"""

from __future__ import annotations

import trio

__all__ = [
    "ActorError",
    "ActorFailed",
    "ActorStopped",
    "AskTimeout",
    "MailboxFull",
    "NameTaken",
    "NotAuthorized",
    "SerializationError",
    "StorageError",
    "Unroutable",
]


class ActorError(Exception):
    """Base class of every error the actor runtime raises deliberately."""


class ActorFailed(ActorError):
    """An actor raised while handling a message, starting, or restarting.

    Raised by ``ask`` when the target failed while handling the asked message, by ``spawn`` when the factory or
    ``on_start`` raised, and from ``async with ActorSystem()`` when a failure escalated past the top of the tree.
    :attr:`cause` (also ``__cause__``) is the original exception.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message, cause)
        self.cause = cause
        self.__cause__ = cause

    def __str__(self) -> str:
        return str(self.args[0])


class ActorStopped(ActorError):
    """The target actor is stopped, or stopped before it answered an ask.

    An ask never hangs on a dead actor: it fails with this error instead.
    """


class AskTimeout(ActorError, trio.TooSlowError):
    """A :class:`Future` created by ``request(..., timeout=...)`` expired before it was answered.

    It is a :class:`trio.TooSlowError`, so code that handles trio timeouts handles this too.
    """


class MailboxFull(ActorError):
    """A bounded mailbox with the ``"fail"`` overflow policy refused a message because it was full."""


class NameTaken(ActorError):
    """``spawn`` was given a name that a live sibling already has."""


class Unroutable(ActorError):
    """A mandatory publish reached no destination (alternate exchanges included)."""


class SerializationError(ActorError):
    """A message or reply could not be encoded or decoded for another process."""


class StorageError(ActorError):
    """A durable queue's store could not open, read or write its database.

    Raised (as the cause of the failure, or the error of a publish confirm) when SQLite refuses the database
    file (a path that is a directory, a missing folder, a corrupt or locked file) or when a stored message
    cannot be unpickled. The message names the database path; ``__cause__`` carries the original
    :mod:`sqlite3` or :mod:`pickle` error.
    """


class NotAuthorized(ActorError):
    """A principal tried an operation on an exchange or queue that its permissions do not allow."""
