"""The error tree: every error the runtime raises on purpose derives from :class:`ActorError`.

All classes are picklable (they round-trip through :mod:`pickle` with their message and fields), so they can
cross process boundaries. Following trio, "you closed it" (:class:`ActorStopped`) is kept apart from "it broke"
(:class:`ActorFailed`, whose :attr:`~ActorFailed.cause` and ``__cause__`` carry the original exception).
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = [
    "ActorError",
    "ActorFailed",
    "ActorStopped",
    "AskTimeout",
    "AuthenticationFailed",
    "BacklogFull",
    "FrameError",
    "LinkClosed",
    "LinkError",
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


class BacklogFull(ActorError):
    """A node on a broker refused a tell or an ask to a peer: it already holds its backlog (``BrokerSettings.backlog``)
    of messages for its peers that the broker has not confirmed, because the broker is away or slow.

    The message was not sent: an ask raises this error, a tell becomes a dead letter saying so. A ``send`` is not
    refused (its sender waits for the answer anyway), nor is the runtime's own traffic (answers, watches, spawns).
    """


class NameTaken(ActorError):
    """``spawn`` was given a name that a live sibling already has, or a node of a cluster on a broker was given a
    node name that a live node of that cluster already has."""


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


class LinkError(ActorError):
    """Base class of the errors of a link between two nodes (:class:`~runtime.Link`).

    A link that meets one of these is closed; :attr:`Link.error <runtime.Link.error>` keeps the one that closed
    it, and ``receive`` raises it once the batches that arrived before it are taken.
    """


class LinkClosed(LinkError):
    """The link is closed: this side closed it, the peer said goodbye or hung up, or the peer fell silent.

    Raised by ``Link.send`` and ``Link.receive`` on a closed link, and by ``Link.connect`` when the peer hangs up
    during the handshake. A hang-up without a goodbye (EOF, a connection reset, a write to a dead peer) and a
    peer silent for longer than the heartbeat policy allows are the failures a lost node shows; ``__cause__``
    carries the OS or trio error when there is one.
    """


class FrameError(LinkError):
    """A frame from the peer is malformed, over the size limit, or out of sequence (replayed, reordered, lost).

    Raised by the frame decoder before the payload is unpickled (a frame over the limit before its payload is
    even read); the link that received it is closed. The message names the frame's sequence number and size.
    """


class AuthenticationFailed(LinkError):
    """The peer did not prove it holds the shared secret, or a frame's tag does not verify.

    Raised by ``Link.connect`` when the handshake fails (a wrong secret, a wrong role, not a link peer at all, or
    no answer within the handshake timeout), and by the frame decoder for a frame whose HMAC tag does not match:
    nothing from such a peer is unpickled, and the link is closed.
    """


class NodeDown(ActorError):
    """A node of the system was lost: its worker process died or its link broke; for a peer on a broker, it left,
    fell silent, or this node rejoined the cluster as a new incarnation (it was cut off from the broker for longer
    than the silence limit, or a peer found it lost).

    It is the ``.cause`` of the :class:`ActorFailed` that pending asks to actors on that node raise, the
    ``reason`` of the ``Terminated`` their watchers get, and the failure their supervisors decide on (an actor
    that is restarted starts again on a live node). It is also published on the event stream. :attr:`node` is the
    lost node (a ``Node``), :attr:`reason` says how it was lost.
    """

    def __init__(self, node: Any, reason: str = "lost") -> None:
        super().__init__(node, reason)
        self.node = node
        self.reason = reason

    def __str__(self) -> str:
        return f"node {getattr(self.node, 'name', self.node)} is down: {self.reason}"
