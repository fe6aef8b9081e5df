"""What broker-backed exchanges and queues stand on: one AMQP connection per broker URL per system, an ordered
publisher with confirms, and the body and property codec of the open boundary.

A :class:`BrokerLink` is a connection (``runtime.amqp``, reconnecting with backoff) whose tasks live in the
system's nursery; the actors that use a URL share its link, which is opened by the first of them and closed
gracefully when the last lets it go. A :class:`Publisher` publishes in order on a confirm channel without
waiting for one confirm before the next publish: each publish is confirmed on its own task, and the outcome is
handed to a callback. Bodies and properties are translated here, in plain code: ``bytes`` travel as they are,
``str`` as UTF-8, anything else as JSON; pickle is never used.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
import trio

from ._exceptions import NotAuthorized, SerializationError
from ._show import show
from .amqp import (
    AccessRefused,
    AMQPError,
    Channel,
    Connection,
    Delivery,
    Properties,
    PublishNacked,
    Reconnect,
    Unroutable,
    hide_password,
)

__all__ = [
    "PROPERTY_NAMES",
    "AMQPDelivery",
    "BrokerLink",
    "PublishOutcome",
    "Publisher",
    "amqp_properties",
    "broker_link",
    "check_table",
    "decode_body",
    "delivery_headers",
    "encode_body",
]

logger = logging.getLogger("actors")

OCTET_STREAM: Final = "application/octet-stream"
TEXT_PLAIN: Final = "text/plain"
APPLICATION_JSON: Final = "application/json"

PROPERTY_NAMES: Final = ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id",
                         "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id")
"""The AMQP basic properties as a :class:`Delivery`'s ``headers`` carries them (``type`` is AMQP's message type).

On publish, headers of these names set the properties instead of going into the AMQP headers table, except
``content_type`` (set by the body's type; kept only for a ``bytes`` body), ``delivery_mode`` (set by
``persistent``) and ``expiration`` (set by ``ttl``).
"""

AMQPDelivery = Delivery
"""A message as the broker delivered it (``runtime.amqp.Delivery``): bytes, properties, tag; ``ack()``/``nack()``."""

_SETTABLE: Final = ("content_encoding", "priority", "correlation_id", "reply_to", "message_id", "timestamp",
                    "type", "user_id", "app_id")
_INT64: Final = 1 << 63
_MAX_DEPTH: Final = 32


# --- bodies and properties ----------------------------------------------------------------------------------


def encode_body(body: object) -> tuple[bytes, str]:
    """``body`` as bytes and its content type: ``bytes`` (and ``bytearray``, ``memoryview``) as they are
    (``application/octet-stream``), ``str`` as UTF-8 (``text/plain``), anything else as JSON
    (``application/json``).

    Raises :class:`SerializationError` naming the value when JSON cannot encode it (an object JSON does not
    know, a float NaN or infinity, a dict with keys other than str, int, float, bool or None); pickle is never
    tried.
    """
    cls = body.__class__
    if cls is bytes:
        return body, OCTET_STREAM  # type: ignore[return-value]
    if cls is str:
        return body.encode(), TEXT_PLAIN  # type: ignore[attr-defined]
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), OCTET_STREAM
    if isinstance(body, str):
        return str.encode(body), TEXT_PLAIN
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        error = SerializationError(
            f"body {show(body, 80)} cannot travel through the broker: it is not bytes, str nor JSON-serializable "
            f"({exc}); encode it yourself (to bytes or a JSON-compatible value)")
        raise error from exc
    return text.encode(), APPLICATION_JSON


def decode_body(data: bytes, content_type: str | None, content_encoding: str | None = None) -> Any:
    """A delivered body by its content type: JSON for ``application/json`` (and ``*+json``), ``str`` for
    ``text/*`` (in the ``charset`` it names, UTF-8 by default), the bytes as they are for anything else, and for
    a body with a ``content_encoding`` (compressed, say), which is left to the application.

    Raises :class:`SerializationError` when the body is not what its content type says (invalid JSON, bytes
    that are not in the charset).
    """
    if not content_type or content_encoding:
        return data
    mime, _, parameters = content_type.partition(";")
    mime = mime.strip().lower()
    charset = "utf-8"
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        if mime == APPLICATION_JSON or mime.endswith("+json"):
            return json.loads(data.decode(charset))
        if mime.startswith("text/"):
            return data.decode(charset)
    except (UnicodeDecodeError, LookupError, ValueError) as exc:
        error = SerializationError(f"a body of {len(data)} bytes is not the {content_type!r} it says it is: {exc}")
        raise error from exc
    return data


def _check_value(name: str, value: object, depth: int = 0) -> None:
    """Refuse a header value an AMQP table cannot carry, naming it."""
    if depth > _MAX_DEPTH:
        raise SerializationError(f"header {name!r} is nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, str | bytes | bool | float | decimal.Decimal | datetime.datetime):
        return
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise SerializationError(f"header {name!r}={show(value, 60)} does not fit an AMQP long (64 bits)")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(name, item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(f"header {name!r} holds a table with the key {show(key, 60)}, not a str")
            _check_value(name, item, depth + 1)
        return
    raise SerializationError(
        f"header {name!r}={show(value, 60)} cannot travel in an AMQP table: use str, bytes, int, float, bool, "
        "None, Decimal, datetime, or lists and dicts of them")


def check_table(table: Mapping[str, Any] | None, what: str) -> dict[str, Any] | None:
    """``table`` as a dict an AMQP table can carry (``None`` for none), or :class:`SerializationError` naming the
    value it cannot carry (``what`` says whose table it is)."""
    if table is None:
        return None
    try:
        for name, value in table.items():
            if not isinstance(name, str):
                raise SerializationError(f"the key {show(name, 60)} is not a str")
            _check_value(name, value)
    except SerializationError as exc:
        raise SerializationError(f"{what}: {exc}") from None
    return dict(table)


def amqp_properties(content_type: str, headers: Mapping[str, Any] | None, *, persistent: bool = False,
                    ttl: float | None = None) -> Properties:
    """The AMQP properties of a publish: ``content_type`` from its body, ``delivery_mode`` 2 when
    ``persistent``, ``expiration`` from ``ttl`` (seconds, rounded to whole milliseconds), the properties named
    in ``headers`` (see :data:`PROPERTY_NAMES`) and the other headers as the headers table.

    Raises :class:`SerializationError` naming a header that an AMQP table cannot carry, or a property of the
    wrong type.
    """
    table: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for name, value in (headers or {}).items():
        if name in _SETTABLE:
            settings[name] = value
        elif name == "content_type":
            if content_type == OCTET_STREAM and isinstance(value, str):
                content_type = value  # bytes the application encoded itself, labelled by it
        elif name in PROPERTY_NAMES:
            continue  # delivery_mode, expiration: set by persistent and ttl
        else:
            _check_value(name, value)
            table[name] = value
    timestamp = settings.pop("timestamp", None)
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        timestamp = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    elif timestamp is not None and not isinstance(timestamp, datetime.datetime):
        raise SerializationError(f"header 'timestamp'={show(timestamp, 60)} must be a datetime or seconds since "
                                 "the epoch")
    priority = settings.pop("priority", None)
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)
                                 or not 0 <= priority <= 255):
        raise SerializationError(f"header 'priority'={show(priority, 60)} must be an int from 0 to 255")
    for name, value in settings.items():
        if not isinstance(value, str):
            raise SerializationError(f"header {name!r}={show(value, 60)} is an AMQP property: it must be a str")
    expiration = None
    if ttl is not None:
        expiration = str(max(0, math.ceil(ttl * 1000)))
    return Properties(content_type=content_type, content_encoding=settings.get("content_encoding"),
                      headers=table or None, delivery_mode=2 if persistent else None, priority=priority,
                      correlation_id=settings.get("correlation_id"), reply_to=settings.get("reply_to"),
                      expiration=expiration, message_id=settings.get("message_id"), timestamp=timestamp,
                      message_type=settings.get("type"), user_id=settings.get("user_id"),
                      app_id=settings.get("app_id"))


def delivery_headers(properties: Properties) -> dict[str, Any]:
    """A delivery's headers: its AMQP headers table, with the properties that are set under their names
    (:data:`PROPERTY_NAMES`) beside it."""
    headers: dict[str, Any] = dict(properties.headers or {})
    for name in PROPERTY_NAMES:
        value = getattr(properties, "message_type" if name == "type" else name, None)
        if value is not None and value != "":
            headers[name] = value
    return headers


# --- the link -----------------------------------------------------------------------------------------------


HEARTBEAT: Final = 5
"""The AMQP heartbeat interval (seconds) a system's broker connection asks for, unless its URL says otherwise
(``?heartbeat=N``; ``0`` for none). The client finds a connection lost after two intervals with nothing from the
broker, and the broker after two without anything from the client: a connection frozen without a socket error
(a NAT or firewall that drops its state, a peer host that vanished, a proxy that stalls) is so found in about
10 s, where RabbitMQ's own proposal (60 s) would take two minutes. RabbitMQ advises against values under 5 s,
which give false positives on loaded hosts and networks; a false one costs a reconnection, which a node rides
out unseen within its silence limit."""


@attrs.define(eq=False, repr=False)
class BrokerLink:
    """One connection to a broker shared by everything of a system that uses the same URL: the node's hub (a
    system opened with ``broker=``) and the broker-backed exchanges and queues, each on channels of its own.

    Made by :func:`broker_link`, which opens it for the first user; each user calls :meth:`release` once (the
    actors in ``on_stop``, the hub when it leaves the cluster), and the last release closes it gracefully. Its
    tasks (the connection's, the publishers', the consumers') run in a nursery inside the system's nursery, so
    none outlives the system. The connection asks for a :data:`HEARTBEAT` of 5 s, is reconnected with backoff
    when it is lost, and the topology declared through it (by the hub and the actors alike) is declared again.
    """

    url: str
    """The broker's URL (with its password: not for display; see :attr:`where`)."""
    user: str
    """The user it logs in as."""
    vhost: str
    """Its virtual host."""
    reconnect: Reconnect = attrs.field(factory=Reconnect)
    """How the connection is opened again when it is lost."""
    name: str = ""
    """The name the connection gives itself to the broker (its tools show it)."""
    _connection: Connection | None = None
    _nursery: trio.Nursery | None = None
    _users: int = 0
    _ready: trio.Event = attrs.field(factory=trio.Event)
    _error: BaseException | None = None
    _released: trio.Event = attrs.field(factory=trio.Event)
    _closed: trio.Event = attrs.field(factory=trio.Event)

    @classmethod
    def of(cls, url: str, *, reconnect: Reconnect | None = None, name: str | None = None) -> BrokerLink:
        """A link for ``url``, not opened yet; raises :class:`ValueError` for a URL that is not ``amqp(s)://``."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"broker={hide_password(url)!r} is not an amqp:// or amqps:// URL")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        user = urllib.parse.unquote(parts.username or "guest")
        return cls(url, user, urllib.parse.unquote(path) or "/", reconnect or Reconnect(),
                   name or f"trio-actors ({user})")

    @property
    def where(self) -> str:
        """The URL without the password."""
        return hide_password(self.url)

    @property
    def connection(self) -> Connection:
        """The open connection."""
        assert self._connection is not None, f"{self!r} is not open"
        return self._connection

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open" if self._connection is not None else "opening"
        return f"<BrokerLink {self.where} {state} users={self._users}>"

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                try:
                    self._connection = await Connection.open(self.url, nursery, reconnect=self.reconnect,
                                                             name=self.name, heartbeat=HEARTBEAT)
                except AccessRefused as exc:
                    error = NotAuthorized(f"the broker {self.where} refused user {self.user!r} on virtual host "
                                          f"{self.vhost!r}: {exc.reply_text or exc}")
                    error.__cause__ = exc
                except (AMQPError, ValueError) as exc:  # unreachable, or a URL the client cannot use
                    error = exc
                else:
                    self._nursery = nursery
                    task_status.started()
                    await self._released.wait()
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        await self._connection.close()
                    nursery.cancel_scope.cancel()
        finally:
            self._closed.set()
        if error is not None:  # raised here, not in the nursery, so that the opener gets it as itself
            raise error

    async def channel(self) -> Channel:
        """A new channel on the connection."""
        return await self.connection.channel()

    def start_soon(self, async_fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``async_fn(*args)`` in the link's nursery: cancelled when the link closes."""
        assert self._nursery is not None, f"{self!r} is not open"
        self._nursery.start_soon(async_fn, *args)

    async def start(self, async_fn: Callable[..., Awaitable[object]], *args: object) -> Any:
        """``nursery.start(async_fn, *args)`` in the link's nursery."""
        assert self._nursery is not None, f"{self!r} is not open"
        return await self._nursery.start(async_fn, *args)

    async def wait_closed(self) -> None:
        """Wait until the link is closed (after the last :meth:`release`, or when it could not open)."""
        await self._closed.wait()

    def release(self) -> None:
        """Let the link go; the last user's release closes it (gracefully, in its own task)."""
        self._users -= 1
        if self._users <= 0:
            self._released.set()

    def refused(self, error: AccessRefused, action: str) -> NotAuthorized:
        """The :class:`NotAuthorized` for an operation the broker refused: names the user, the virtual host and
        (through ``action`` and the broker's words) the resource. Raise it ``from error``."""
        return NotAuthorized(f"user {self.user!r} may not {action} in virtual host {self.vhost!r} on "
                             f"{self.where}: the broker said {error.reply_text or error}")


@attrs.define(eq=False)
class _Links:
    """A system's links, by URL."""

    by_url: dict[str, BrokerLink] = attrs.field(factory=dict)


async def broker_link(system: Any, url: str, *, reconnect: Reconnect | None = None,
                      name: str | None = None) -> BrokerLink:
    """The system's link to ``url``, opened if it is the first user; call :meth:`BrokerLink.release` once.

    ``reconnect`` and ``name`` apply when this call opens the connection (a node's hub opens it first, with its
    own backoff and name); a later user shares the connection as it is. Raises :class:`NotAuthorized` when the
    broker refuses the login or the virtual host, :class:`~runtime.amqp.ConnectionLost` when it cannot be reached,
    :class:`ValueError` for a bad URL.
    """
    links: _Links = system.extension(_Links, _Links)
    link = links.by_url.get(url)
    if link is None or link._released.is_set():
        link = links.by_url[url] = BrokerLink.of(url, reconnect=reconnect, name=name)
        link._users += 1
        try:
            await system.start_service(link._run)
        except BaseException as exc:
            link._error = exc
            if links.by_url.get(url) is link:
                del links.by_url[url]
            raise
        finally:
            link._ready.set()
        return link
    link._users += 1
    await link._ready.wait()
    if link._error is not None:
        link._users -= 1
        raise link._error
    return link


# --- publishing ---------------------------------------------------------------------------------------------


class PublishOutcome(enum.Enum):
    """What the broker made of a confirmed publish."""

    ROUTED = "routed"
    """Acked, and it reached at least one queue."""
    UNROUTABLE = "unroutable"
    """Acked after a return: it reached no queue (the publish is always ``mandatory``, to know it)."""
    REFUSED = "refused"
    """Nacked: a queue refused it (``overflow="reject_publish"`` and full), or the broker failed."""


@attrs.frozen
class _Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    properties: Properties
    done: Callable[[PublishOutcome | BaseException], None]


@attrs.define(eq=False, repr=False)
class Publisher:
    """Publishes in order on a confirm channel of ``link``, many publishes awaiting their confirms at once.

    :meth:`publish` is a plain call: it queues the message; a task of the link's sends the messages in the
    order they were queued, each on a task of its own that waits for its confirm and calls its ``done`` with a
    :class:`PublishOutcome` or the error (:class:`NotAuthorized` for a publish the broker refused for lack of
    permission; ``runtime.amqp.NotFound`` for a missing exchange; ``ConnectionLost`` when the connection was lost
    before the confirm: it may or may not have been published). A channel the broker closed is replaced for the
    next publish. Every publish is ``mandatory``, so that one that reached no queue is known.
    """

    _link: BrokerLink
    _what: str
    """What publishes, for errors: ``"exchange 'x'"``."""
    _send: trio.MemorySendChannel[_Outgoing] | None = None
    _channel: Channel | None = None
    _done: trio.Event = attrs.field(factory=trio.Event)
    in_flight: int = 0
    """Publishes queued or awaiting their confirm."""

    def __repr__(self) -> str:
        return f"<Publisher for {self._what} on {self._link.where} in_flight={self.in_flight}>"

    async def start(self) -> None:
        """Start the publishing task (in the link's nursery)."""
        send, receive = trio.open_memory_channel[_Outgoing](math.inf)
        self._send = send
        await self._link.start(self._run, receive)

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: Properties,
                done: Callable[[PublishOutcome | BaseException], None]) -> None:
        """Queue a publish; ``done`` is called with its outcome, from a task of the link's."""
        assert self._send is not None, f"{self!r} was not started"
        self.in_flight += 1
        self._send.send_nowait(_Outgoing(exchange, routing_key, body, properties, done))

    async def aclose(self) -> None:
        """Take no more publishes and wait until those queued are confirmed (or failed)."""
        if self._send is not None:
            self._send.close()
            await self._done.wait()
        else:
            await trio.lowlevel.checkpoint()

    async def _open(self) -> Channel:
        channel = self._channel
        if channel is None or not channel.statistics().open:
            channel = self._channel = await self._link.channel()
            await channel.confirm_select()
        return channel

    async def _run(self, receive: trio.MemoryReceiveChannel[_Outgoing],
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                async with receive:
                    async for item in receive:
                        try:
                            channel = await self._open()
                        except AMQPError as exc:
                            self._finish(item, self._translate(exc, item))
                            continue
                        # start() returns once the child has written its frames (it runs until its first wait,
                        # the confirm): so messages go out in the order they were queued.
                        await nursery.start(self._one, channel, item)
            if self._channel is not None:
                await self._channel.close()
        finally:
            self._done.set()

    async def _one(self, channel: Channel, item: _Outgoing,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        outcome: PublishOutcome | BaseException
        try:
            await channel.basic_publish(item.exchange, item.routing_key, item.body, properties=item.properties,
                                        mandatory=True)
        except Unroutable:
            outcome = PublishOutcome.UNROUTABLE
        except PublishNacked:
            outcome = PublishOutcome.REFUSED
        except AMQPError as exc:
            outcome = self._translate(exc, item)
        except Exception as exc:  # the codec refused a property: the publish was not sent
            outcome = SerializationError(f"{self._what} could not encode a message for the broker: {exc!r}")
            outcome.__cause__ = exc
        else:
            outcome = PublishOutcome.ROUTED
        self._finish(item, outcome)

    def _translate(self, error: AMQPError, item: _Outgoing) -> BaseException:
        if isinstance(error, AccessRefused):
            refused = self._link.refused(error, f"publish to exchange {item.exchange!r}")
            refused.__cause__ = error
            return refused
        return error

    def _finish(self, item: _Outgoing, outcome: PublishOutcome | BaseException) -> None:
        self.in_flight -= 1
        try:
            item.done(outcome)
        except Exception:
            logger.exception("%r: a publish callback failed", self)
