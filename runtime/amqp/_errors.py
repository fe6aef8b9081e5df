"""The errors of the AMQP client: one family under :class:`AMQPError`, itself an :class:`~runtime.ActorError`."""

from __future__ import annotations

from .._exceptions import ActorError, NotAuthorized

__all__ = [
    "AMQPError",
    "AccessRefused",
    "ChannelClosed",
    "ConnectionLost",
    "ConsumerCancelled",
    "NotFound",
    "PreconditionFailed",
    "ProtocolError",
    "PublishNacked",
    "Unroutable",
    "error_for",
]

REPLY_SUCCESS = 200
CONNECTION_FORCED = 320
NO_ROUTE = 312
ACCESS_REFUSED = 403
NOT_FOUND = 404
PRECONDITION_FAILED = 406
NOT_ALLOWED = 530


class AMQPError(ActorError):
    """Base class of the errors of the AMQP client.

    Raised as such when the broker closes a channel or the connection with a reply code that has no subclass
    here; :attr:`reply_code` and :attr:`reply_text` are the broker's (``0`` and ``""`` when the error did not come
    from the broker).
    """

    def __init__(self, message: str, reply_code: int = 0, reply_text: str = "") -> None:
        super().__init__(message, reply_code, reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text

    def __str__(self) -> str:
        return str(self.args[0])


class ConnectionLost(AMQPError):
    """The connection to the broker is gone: the socket or its TLS layer failed or hit EOF, the broker could not be
    reached, the broker fell silent for longer than two heartbeats, or the broker closed the connection
    (``320 CONNECTION_FORCED`` when an operator closed it).

    Without reconnection, raised by every operation on the connection and its channels from then on. With it,
    raised by what was in flight when the connection was lost (a publish awaiting its confirm, a method awaiting
    its reply, the settling of a delivery received on the lost connection); later operations wait for the new
    connection. ``__cause__`` carries the OS, SSL or trio error when there is one.
    """


class ConsumerCancelled(AMQPError):
    """The broker cancelled a consumer (a ``basic.cancel`` it sent, announced by the ``consumer_cancel_notify``
    capability): its queue was deleted, or the node holding the queue went away.

    Raised by the consumer's iteration once the deliveries that came before the cancel are read; the channel
    stays open. :attr:`consumer_tag` and :attr:`queue` name the consumer.
    """

    def __init__(self, message: str, reply_code: int = 0, reply_text: str = "", *, consumer_tag: str = "",
                 queue: str = "") -> None:
        super().__init__(message, reply_code, reply_text)
        self.consumer_tag = consumer_tag
        self.queue = queue

    def __reduce__(self) -> tuple[object, ...]:
        return (_consumer_cancelled, (self.args, self.consumer_tag, self.queue))


def _consumer_cancelled(args: tuple[str, int, str], consumer_tag: str, queue: str) -> ConsumerCancelled:
    return ConsumerCancelled(*args, consumer_tag=consumer_tag, queue=queue)


class ChannelClosed(AMQPError):
    """An operation on a channel (or its consumer) that this side closed, or on a connection this side closed."""


class ProtocolError(AMQPError):
    """The broker sent bytes that are not AMQP 0-9-1 as expected: a malformed or oversized frame, a method out of
    sequence. The connection is closed; ``__cause__`` carries pamqp's error when there is one."""


class AccessRefused(AMQPError, NotAuthorized):
    """The broker refused the operation for lack of permission (``403 ACCESS_REFUSED``: a failed login, a resource
    the user may not configure, write or read; ``530 NOT_ALLOWED``: a virtual host the user may not open).

    It is a :class:`~runtime.NotAuthorized`; the message is the broker's reply text, which names the user, the
    virtual host and the resource.
    """


class NotFound(AMQPError):
    """The broker closed the channel with ``404 NOT_FOUND``: the exchange or queue named does not exist."""


class PreconditionFailed(AMQPError):
    """The broker closed the channel with ``406 PRECONDITION_FAILED``: a redeclaration with different properties
    or arguments, an unknown delivery tag, an invalid argument."""


class Unroutable(AMQPError):
    """A ``mandatory`` publish reached no queue and the broker returned it (``312 NO_ROUTE``).

    Raised by ``Channel.basic_publish`` once the broker has confirmed the publish; :attr:`exchange` and
    :attr:`routing_key` name where it was published.
    """

    def __init__(self, message: str, reply_code: int = NO_ROUTE, reply_text: str = "NO_ROUTE", *,
                 exchange: str = "", routing_key: str = "") -> None:
        super().__init__(message, reply_code, reply_text)
        self.exchange = exchange
        self.routing_key = routing_key

    def __reduce__(self) -> tuple[object, ...]:
        return (_unroutable, (self.args, self.exchange, self.routing_key))


def _unroutable(args: tuple[str, int, str], exchange: str, routing_key: str) -> Unroutable:
    return Unroutable(*args, exchange=exchange, routing_key=routing_key)


class PublishNacked(AMQPError):
    """The broker refused a publish in confirm mode (``basic.nack``): a target queue rejected it (an overflow
    policy of ``reject-publish``) or the broker failed internally. The message may have reached other queues."""


_BY_CODE: dict[int, type[AMQPError]] = {
    ACCESS_REFUSED: AccessRefused,
    NOT_ALLOWED: AccessRefused,
    NOT_FOUND: NotFound,
    PRECONDITION_FAILED: PreconditionFailed,
}


def error_for(reply_code: int, reply_text: str, *, where: str, connection: bool = False) -> AMQPError:
    """The exception for a Channel.Close or Connection.Close from the broker: a decision, no I/O.

    ``where`` names the channel or connection; a connection closed with a code that has no class of its own
    becomes :class:`ConnectionLost`.
    """
    cls = _BY_CODE.get(reply_code, ConnectionLost if connection else AMQPError)
    return cls(f"{where} closed by the broker: {reply_code} {reply_text}", reply_code, reply_text)
