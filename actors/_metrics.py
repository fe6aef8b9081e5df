"""Prometheus metrics of a running actor system: a collector over ``system.statistics()`` and a trio server.

:class:`StatisticsCollector` turns one :class:`~runtime.SystemStatistics` snapshot into Prometheus metric
families, read afresh on every scrape. Following Prometheus' advice on cardinality, the page always carries
aggregates by actor class and node (labelled ``class`` and ``node``: the number of actors, their counters summed,
the total and longest mailbox, Σλ, the largest ρ, ΣL and the λ-weighted W), but per-actor series (labelled
``actor="<path>"``: the counters of arrivals, handled and failed messages and restarts, the mailbox length and its
peak, the queue figures λ, μ, ρ, L and W, the handling-time quantiles and the state) only for the ``top`` actors by
one figure (100 by mailbox length unless told otherwise; ``top=None`` opts in to every actor). For the whole
system it reports the dead letters, the pending asks and the number of live actors. It lives in a
:class:`~prometheus_client.CollectorRegistry` of its own, never in prometheus_client's process-global default
registry.

:func:`serve_metrics` serves that page over HTTP from inside trio. ``system.statistics()`` reads the actors'
state without locks, so it must run in the system's trio thread: the server is a small trio task (one request
per connection, then close) rather than prometheus_client's threaded server. It reads the figures in slices
(:meth:`~runtime.ActorSystem.gather_statistics`), so that a large system keeps handling messages during a scrape,
then ranks, aggregates and renders that snapshot on a worker thread with prometheus_client's own encoders
(``text/plain`` 0.0.4, or OpenMetrics when the scraper asks for it). Query parameters choose the per-actor series
of one page: ``?top=K&by=<figure>`` (``top=all`` for every actor), ``path=<path>`` (that actor's subtree only,
aggregates included) and ``match=<text>`` (only actors whose path contains it); ``actors top`` asks this way. It
answers a bounded number of connections at once, each for a bounded time, and refuses the rest at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from runtime import RANKABLE, ActorStatistics, ActorSystem, ClassStatistics, SystemStatistics

__all__ = ["DEFAULT_TOP", "StatisticsCollector", "metrics_registry", "serve_metrics"]

logger = logging.getLogger("actors")

# Sample names as they appear on the page (counters carry their ``_total`` suffix); ``actors top`` reads them.
ARRIVALS = "actors_arrivals_total"
HANDLED = "actors_handled_total"
FAILED = "actors_failed_total"
RESTARTS = "actors_restarts_total"
MAILBOX_LENGTH = "actors_mailbox_length"
PEAK_MAILBOX_LENGTH = "actors_mailbox_peak_length"
ARRIVAL_RATE = "actors_arrival_rate"
SERVICE_RATE = "actors_service_rate"
UTILIZATION = "actors_utilization"
MEAN_QUEUE_LENGTH = "actors_mean_queue_length"
MEAN_WAIT = "actors_mean_wait_seconds"
MEAN_IN_SYSTEM = "actors_mean_in_system"
MEAN_SOJOURN = "actors_mean_sojourn_seconds"
RESTARTS_IN_WINDOW = "actors_restarts_in_window"
HANDLING_TIME = "actors_handling_time_seconds"
STATE = "actors_state"
DEAD_LETTERS = "actors_dead_letters_total"
PENDING_ASKS = "actors_pending_asks"
LIVE_ACTORS = "actors_live_actors"
SYSTEM_INFO = "actors_system_info"
NODE_INFO = "actors_node_info"
LISTED_ACTORS = "actors_listed_actors"
SELECTED_ACTORS = "actors_selected_actors"
CLASS_ACTORS = "actors_class_actors"

DEFAULT_TOP = 100
"""Actors that get per-actor series on a page unless told otherwise."""
DEFAULT_BY = "mailbox_length"
"""The figure that chooses them."""

STATES = ("starting", "running", "suspended", "restarting", "stopping", "stopped")
"""Every state an actor reports; ``actors_state`` has one series per state, 1 for the current one."""

_PER_ACTOR: tuple[tuple[str, str, str, Callable[[ActorStatistics], float]], ...] = (
    # (family name, type, help, reader); counter family names drop the ``_total`` the page shows.
    ("actors_arrivals", "counter", "Messages queued for the actor since it was spawned.", lambda s: s.arrivals),
    ("actors_handled", "counter", "Messages whose handling finished without an exception.", lambda s: s.handled),
    ("actors_failed", "counter", "Messages whose handling raised.", lambda s: s.failed),
    ("actors_restarts", "counter", "Times the actor was restarted.", lambda s: s.restarts),
    (MAILBOX_LENGTH, "gauge", "Messages queued now, not counting the one being handled.",
     lambda s: s.mailbox_length),
    (PEAK_MAILBOX_LENGTH, "gauge", "The longest the mailbox has been.", lambda s: s.peak_mailbox_length),
    (ARRIVAL_RATE, "gauge", "λ: messages queued per second over the metrics window.", lambda s: s.arrival_rate),
    (SERVICE_RATE, "gauge", "μ: messages handled per busy second over the window; 0 until measured.",
     lambda s: s.service_rate),
    (UTILIZATION, "gauge", "ρ = λ/μ over the window; 0 while μ is unknown, 1 or more when saturated.",
     lambda s: s.utilization),
    (MEAN_QUEUE_LENGTH, "gauge", "Lq: time-averaged number of messages waiting over the window.",
     lambda s: s.mean_queue_length),
    (MEAN_WAIT, "gauge", "Wq: mean seconds from enqueue to the start of handling over the window.",
     lambda s: s.mean_wait),
    (MEAN_IN_SYSTEM, "gauge", "L: time-averaged number of messages waiting or in service over the window.",
     lambda s: s.mean_in_system),
    (MEAN_SOJOURN, "gauge", "W: mean seconds from enqueue to the end of handling over the window.",
     lambda s: s.mean_sojourn),
    (RESTARTS_IN_WINDOW, "gauge", "Restarts counted against the supervisor's restart intensity right now.",
     lambda s: s.restarts_in_window),
)

_QUANTILES: tuple[tuple[str, Callable[[ActorStatistics], float]], ...] = (
    ("0.5", lambda s: s.handling_time_p50),
    ("0.9", lambda s: s.handling_time_p90),
    ("0.99", lambda s: s.handling_time_p99),
)


_PER_CLASS: tuple[tuple[str, str, Callable[[ClassStatistics], float]], ...] = (
    # (family name, help, reader); all gauges: a sum over the live actors drops when one stops.
    (CLASS_ACTORS, "Live actors of the class on the node.", lambda c: c.actors),
    ("actors_class_arrivals", "Messages queued for the live actors of the class since each was spawned.",
     lambda c: c.arrivals),
    ("actors_class_handled", "Messages the live actors of the class handled without an exception.",
     lambda c: c.handled),
    ("actors_class_failed", "Messages whose handling raised, in the live actors of the class.", lambda c: c.failed),
    ("actors_class_restarts", "Restarts of the live actors of the class.", lambda c: c.restarts),
    ("actors_class_mailbox_length", "Messages queued now in the mailboxes of the class, all of them.",
     lambda c: c.mailbox_length),
    ("actors_class_mailbox_max_length", "The longest mailbox of the class now.", lambda c: c.max_mailbox_length),
    ("actors_class_arrival_rate", "Σλ: messages queued per second for the class over the window.",
     lambda c: c.arrival_rate),
    ("actors_class_utilization_max", "The largest ρ among the actors of the class.", lambda c: c.max_utilization),
    ("actors_class_mean_queue_length", "ΣLq: time-averaged messages waiting in the class over the window.",
     lambda c: c.mean_queue_length),
    ("actors_class_mean_in_system", "ΣL: time-averaged messages waiting or in service in the class.",
     lambda c: c.mean_in_system),
    ("actors_class_mean_wait_seconds", "Wq of the class: the λ-weighted mean of its actors' Wq.",
     lambda c: c.mean_wait),
    ("actors_class_mean_sojourn_seconds", "W of the class: the λ-weighted mean of its actors' W.",
     lambda c: c.mean_sojourn),
)


@attrs.frozen
class _Selection:
    """Which actors of a snapshot get per-actor series."""

    top: int | None = DEFAULT_TOP
    """How many; ``None`` for all."""
    by: str = DEFAULT_BY
    """Ranked by which figure."""
    match: str = ""
    """Only actors whose path contains this."""

    def __attrs_post_init__(self) -> None:
        if self.top is not None and (isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1):
            raise ValueError(f"top={self.top!r} must be an int of at least 1, or None for every actor")
        if self.by not in RANKABLE:
            raise ValueError(f"by={self.by!r} must be one of {', '.join(sorted(RANKABLE))}")


class StatisticsCollector:
    """A prometheus_client collector that calls ``read()`` on every scrape and reports what it returns.

    ``read`` is usually ``system.statistics``; it is called in whatever thread scrapes the registry, so scrape
    in the system's trio thread (as :func:`serve_metrics` does), or pass a ``read`` that hops into it, e.g.
    ``lambda: trio.from_thread.run_sync(system.statistics, trio_token=token)`` from a server thread.
    ``system`` names the system in ``actors_system_info``. Per-actor series are reported for the ``top`` actors
    with the largest ``by`` figure (a field of :class:`~runtime.ActorStatistics`), or for every actor with
    ``top=None``; the aggregates by class and node cover every actor. Raises :class:`ValueError` for a ``top``
    less than 1 or an unknown ``by``.
    """

    def __init__(self, read: Callable[[], SystemStatistics], *, system: str = "app", top: int | None = DEFAULT_TOP,
                 by: str = DEFAULT_BY, match: str = "") -> None:
        self._read = read
        self._system = system
        self._selection = _Selection(top, by, match)

    def describe(self) -> list[Metric]:
        """The metric families without samples, so that a registry can refuse clashing names up front."""
        return list(_families(None, self._selection, self._system))

    def collect(self) -> list[Metric]:
        """The metric families filled from one fresh snapshot."""
        return list(_families(self._read(), self._selection, self._system))

    def __repr__(self) -> str:
        selection = self._selection
        shown = "every actor" if selection.top is None else f"top={selection.top} by={selection.by}"
        return f"<StatisticsCollector system={self._system!r} {shown}>"


def _select(stats: SystemStatistics, selection: _Selection) -> tuple[SystemStatistics, int]:
    """The actors of ``stats`` that get per-actor series, and how many they were chosen from."""
    if selection.match:
        stats = stats.matching(selection.match)
    selected = len(stats.actors)
    if selection.top is not None:
        stats = stats.top(selection.top, selection.by)
    return stats, selected


def _families(stats: SystemStatistics | None, selection: _Selection, system: str) -> Iterator[Metric]:
    """Every metric family of the page for ``stats`` (without samples for ``None``)."""
    classes = () if stats is None else tuple(stats.by_class().values())
    for name, documentation, read_class in _PER_CLASS:
        per_class = GaugeMetricFamily(name, documentation, labels=("class", "node"))
        for aggregate in classes:
            per_class.add_metric((aggregate.actor_class, aggregate.node), read_class(aggregate))
        yield per_class

    if stats is None:
        actors: tuple[tuple[str, ActorStatistics], ...] = ()
        selected = 0
    else:
        shown, selected = _select(stats, selection)
        actors = tuple(shown.actors.items())
    for name, kind, documentation, read in _PER_ACTOR:
        family: CounterMetricFamily | GaugeMetricFamily
        if kind == "counter":
            family = CounterMetricFamily(name, documentation, labels=("actor",))
        else:
            family = GaugeMetricFamily(name, documentation, labels=("actor",))
        for path, figures in actors:
            family.add_metric((path,), read(figures))
        yield family

    handling = GaugeMetricFamily(
        HANDLING_TIME, "Handling time of the recently sampled messages, by quantile, in seconds.",
        labels=("actor", "quantile"))
    for path, figures in actors:
        for quantile, read in _QUANTILES:
            handling.add_metric((path, quantile), read(figures))
    yield handling

    state = GaugeMetricFamily(STATE, "1 for the state the actor is in, 0 for the others.",
                              labels=("actor", "state"))
    for path, figures in actors:
        known = STATES if figures.state in STATES else (*STATES, figures.state)
        for name in known:
            state.add_metric((path, name), 1.0 if name == figures.state else 0.0)
    yield state

    node = InfoMetricFamily("actors_node", "The node (process) each actor runs on.", labels=("actor", "node"))
    for path, figures in actors:
        node.add_metric((path, figures.node), {})
    yield node

    dead = CounterMetricFamily("actors_dead_letters", "Messages that could not be delivered.")
    pending = GaugeMetricFamily(PENDING_ASKS, "Requests still waiting for an answer.")
    live = GaugeMetricFamily(LIVE_ACTORS, "Live actors in the system (in the subtree the page was asked for).")
    listed = GaugeMetricFamily(LISTED_ACTORS, "Actors with per-actor series on this page.")
    selected_actors = GaugeMetricFamily(
        SELECTED_ACTORS, "Actors the page's per-actor series were chosen from (those matching its filter).")
    info = InfoMetricFamily("actors_system", "The actor system these figures describe.", labels=("system",))
    if stats is not None:
        dead.add_metric((), stats.dead_letters)
        pending.add_metric((), stats.pending_asks)
        live.add_metric((), len(stats.actors))
        listed.add_metric((), len(actors))
        selected_actors.add_metric((), selected)
        info.add_metric((system,), {})
    yield from (dead, pending, live, listed, selected_actors, info)


def metrics_registry(system: ActorSystem, *, top: int | None = DEFAULT_TOP, by: str = DEFAULT_BY) -> CollectorRegistry:
    """A registry of its own holding a :class:`StatisticsCollector` over ``system`` (``top`` and ``by`` as there).

    Scraping it calls ``system.statistics()``, so scrape it only in the system's trio thread.
    """
    registry = CollectorRegistry()
    registry.register(StatisticsCollector(system.statistics, system=system.name, top=top, by=by))
    return registry


# -- the HTTP server ------------------------------------------------------------------------------------------

DEFAULT_MAX_CONNECTIONS = 64
"""Connections :func:`serve_metrics` answers at once unless told otherwise; a scraper opens one at a time."""
_MAX_HEAD = 16 * 1024
"""Bytes of request line and headers we accept; a scrape request is a few hundred."""
_REQUEST_SECONDS = 10.0
"""How long one connection may take to send its request and receive the answer: the longest it holds a slot."""
_LINGER_SECONDS = 1.0
"""How long we keep reading after the answer, so that the client sees it rather than a reset."""
_MAX_DISCARD = 1024 * 1024
"""Bytes we read and discard after the answer at most."""
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


async def serve_metrics(system: ActorSystem, host: str = "127.0.0.1", port: int = 0, *,
                        max_connections: int = DEFAULT_MAX_CONNECTIONS, top: int | None = DEFAULT_TOP,
                        by: str = DEFAULT_BY, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
                        ) -> NoReturn:
    """Serve ``system``'s metrics at ``http://host:port/metrics`` until cancelled.

    Use it with ``url = await nursery.start(serve_metrics, system, "127.0.0.1", 9464)``: ``start`` returns the
    URL once the port is bound (``port=0`` picks a free one), and raises :class:`OSError` naming the address if
    it cannot be bound (a port in use, an unknown host).

    Each scrape reads the figures in this trio thread a slice of actors at a time
    (:meth:`~runtime.ActorSystem.gather_statistics`), so message handling is never held up for long, then
    aggregates, ranks and renders them on a worker thread. The page carries the aggregates by class and node
    and per-actor series for the ``top`` actors by the ``by`` figure (``top=None``: every actor, whose page
    grows by about 1 KB an actor); a request may ask otherwise with ``?top=K`` (or ``top=all``), ``&by=``,
    ``&path=`` (a subtree) and ``&match=`` (paths containing the text), and gets ``400`` for a value it cannot
    use. Raises :class:`ValueError` for a bad ``top`` or ``by``.

    At most ``max_connections`` connections are served at once, and none for longer than 10 seconds (time to
    send the request and receive the page), so a slow or stalled client gives its slot back. A connection
    beyond the limit never waits for a slot: it is answered ``503 Service Unavailable`` (with
    ``Retry-After: 1``) without its request being read, and closed within a second; while as many connections
    again are being refused that way, a further one is closed as soon as it is accepted, unanswered. Each
    refusal is logged at warning level on the ``"actors"`` logger. So the server never holds more than
    ``2 * max_connections`` connections, whatever its clients do. Raises :class:`ValueError` if
    ``max_connections`` is less than 1. Cancelling it closes the listening socket and the open connections.
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
    page = _Page(system.gather_statistics, system.name, _Selection(top, by))
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot serve metrics on {host}:{port}: {reason}") from exc
    task_status.started(_url(listeners[0]))
    await _serve(page, listeners, max_connections=max_connections)


@attrs.frozen
class _Request:
    """A scrape, as read from its request line and headers."""

    head_only: bool
    accept: str
    selection: _Selection
    path: str | None


@attrs.frozen
class _Page:
    """What a server renders: a system's figures, read by ``read(path)``, chosen by default with ``selection``."""

    read: Callable[[str | None], Awaitable[SystemStatistics]]
    """``system.gather_statistics``, in the server."""
    system: str
    """The system's name."""
    selection: _Selection = _Selection()

    async def render(self, request: _Request) -> bytes:
        """The HTTP response to ``request``: figures read here (in slices), rendered on a worker thread."""
        try:
            stats = await self.read(request.path)
        except Exception as exc:
            logger.exception("reading the statistics for the metrics page failed")
            return _response(500, f"cannot read the figures: {exc!r}\n")
        return await trio.to_thread.run_sync(partial(_render_page, stats, request, system=self.system))


def _render_page(stats: SystemStatistics, request: _Request, *, system: str) -> bytes:
    """The response carrying ``stats`` as chosen by ``request`` (or a 500 saying why it cannot be rendered).

    Runs on a worker thread: ``stats`` is a snapshot, which it only reads.
    """
    registry = CollectorRegistry(auto_describe=False)
    selection = request.selection
    registry.register(StatisticsCollector(lambda: stats, system=system, top=selection.top, by=selection.by,
                                          match=selection.match))
    return _render(registry, request)


def _render(registry: CollectorRegistry, request: _Request) -> bytes:
    encoder, content_type = choose_encoder(request.accept)
    try:
        body = encoder(registry)
    except Exception as exc:
        logger.exception("rendering the metrics page failed")
        return _response(500, f"cannot render the metrics: {exc!r}\n")
    return _response(200, body, content_type=content_type, head_only=request.head_only)


async def _serve(page: _Page, listeners: Sequence[trio.abc.Listener[trio.abc.HalfCloseableStream]],
                 *, max_connections: int) -> NoReturn:
    """Answer the connections ``listeners`` accept, ``max_connections`` at a time, until cancelled."""
    # Two pools of the same size: one for the connections being answered, one for those being refused with a
    # 503. Neither is waited on, so nothing queues here; the kernel's listen backlog is the only queue.
    slots = trio.CapacityLimiter(max_connections)
    refusals = trio.CapacityLimiter(max_connections)
    await trio.serve_listeners(partial(_handle, page, slots, refusals), list(listeners))
    raise AssertionError("trio.serve_listeners returned")  # pragma: no cover - it only ever raises


def _url(listener: trio.SocketListener) -> str:
    address: tuple[Any, ...] = listener.socket.getsockname()
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/metrics"


def _peer(stream: trio.abc.Stream) -> str:
    """Who is at the other end of ``stream``, for log messages."""
    if isinstance(stream, trio.SocketStream):
        try:
            address: tuple[Any, ...] = stream.socket.getpeername()
        except OSError:
            return "a client that has gone"
        return f"{address[0]}:{address[1]}"
    return repr(stream)


async def _handle(page: _Page, slots: trio.CapacityLimiter, refusals: trio.CapacityLimiter,
                  stream: trio.abc.HalfCloseableStream) -> None:
    """Answer one request on ``stream`` and close it, or refuse it if all ``slots`` are taken."""
    try:
        slots.acquire_nowait()
    except trio.WouldBlock:
        await _refuse(refusals, stream, int(slots.total_tokens))
        return
    try:
        await _answer(page, stream)
    finally:
        slots.release()


async def _answer(page: _Page, stream: trio.abc.HalfCloseableStream) -> None:
    async with stream:
        answered = False
        with trio.move_on_after(_REQUEST_SECONDS) as deadline:
            try:
                head = await _read_head(stream)
                if head is None:
                    return
                request = _parse(head, page.selection)
                if isinstance(request, bytes):
                    response = request
                else:
                    response = await page.render(request)
                await stream.send_all(response)
                answered = True
                await _finish(stream)
            except trio.BrokenResourceError:
                # The scraper hung up before the answer was sent: there is no one left to tell.
                return
        if deadline.cancelled_caught and not answered:
            logger.warning("metrics server: closed the connection from %s: it had not sent its request and read "
                           "the answer within %gs", _peer(stream), _REQUEST_SECONDS)


async def _refuse(refusals: trio.CapacityLimiter, stream: trio.abc.HalfCloseableStream, limit: int) -> None:
    """Answer ``stream`` with a 503 and close it, or close it at once if ``refusals`` are all taken too."""
    try:
        refusals.acquire_nowait()
    except trio.WouldBlock:
        logger.warning("metrics server: closed the connection from %s unanswered: already serving "
                       "max_connections=%d connections and refusing as many", _peer(stream), limit)
        await stream.aclose()
        return
    try:
        logger.warning("metrics server: answered 503 to %s: already serving max_connections=%d connections",
                       _peer(stream), limit)
        async with stream:
            with trio.move_on_after(_LINGER_SECONDS):
                try:
                    await stream.send_all(_response(
                        503, f"busy: already serving max_connections={limit} connections; try again later\n",
                        extra={"Retry-After": "1"}))
                    await _finish(stream)
                except trio.BrokenResourceError:
                    return
    finally:
        refusals.release()


async def _finish(stream: trio.abc.HalfCloseableStream) -> None:
    """Say we are done sending, then read and discard what the client still sends, for a second at most.

    Closing with unread bytes (the request we did not read, a request body, an oversized header) would reset
    the connection and could destroy the answer in flight.
    """
    await stream.send_eof()
    with trio.move_on_after(_LINGER_SECONDS):
        discarded = 0
        while discarded < _MAX_DISCARD and (chunk := await stream.receive_some(65536)):
            discarded += len(chunk)


async def _read_head(stream: trio.abc.ReceiveStream) -> bytes | None:
    """The request line and headers; ``b""`` if they are too long; ``None`` if the client closed first."""
    data = b""
    while (end := _END_OF_HEAD.search(data)) is None:
        if len(data) > _MAX_HEAD:
            return b""
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        data += chunk
    return data[:end.start()]


def _parse(head: bytes, default: _Selection) -> _Request | bytes:
    """The scrape that ``head`` (request line and headers) asks for, or the complete error response."""
    if not head:
        return _response(431, "request line and headers too long\n")
    request_line, *header_lines = head.decode("latin-1").splitlines()
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _response(400, f"not an HTTP request line: {request_line[:100]!r}\n")
    method, target, _ = parts
    if method not in ("GET", "HEAD"):
        return _response(405, f"{method} is not allowed; use GET\n", extra={"Allow": "GET, HEAD"})
    url = urlsplit(target)
    if url.path != "/metrics":
        return _response(404, f"nothing at {target[:100]}; the metrics are at /metrics\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    query = {key: values[-1] for key, values in parse_qs(url.query).items()}
    try:
        top: int | None = default.top
        if "top" in query:
            top = None if query["top"] == "all" else int(query["top"])
        selection = _Selection(top, query.get("by", default.by), query.get("match", ""))
    except ValueError as exc:
        return _response(400, f"bad query {url.query[:200]!r}: {exc}; e.g. ?top=20&by=utilization&match=orders\n")
    return _Request(head_only=method == "HEAD", accept=headers.get("accept", ""), selection=selection,
                    path=query.get("path") or None)


def _response(status: int, body: str | bytes, *, content_type: str = "text/plain; charset=utf-8",
              extra: dict[str, str] | None = None, head_only: bool = False) -> bytes:
    payload = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type, "Content-Length": str(len(payload)), "Connection": "close",
               **(extra or {})}
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head_only else payload)
