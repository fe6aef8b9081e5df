"""The Prometheus exporter: the collector's page matches ``system.statistics()``, and the trio HTTP server."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import trio
import trio.testing
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from actors import Actor, ActorStatistics, ActorSystem, ClassStatistics, Metrics, SystemStatistics
from actors._metrics import (
    _REQUEST_SECONDS,
    STATES,
    StatisticsCollector,
    _Page,
    _parse,
    _render,
    _Request,
    _Selection,
    _serve,
    metrics_registry,
    serve_metrics,
)


class Worker(Actor):
    """Takes 10 ms of trio time per message and answers with what it was sent."""

    async def receive(self, message: object) -> object:
        await trio.sleep(0.01)
        return message


class Parent(Actor):
    """A top-level actor with one child, so that the page has a nested path."""

    async def on_start(self) -> None:
        await self.spawn(Worker, name="child")

    async def receive(self, message: object) -> None:
        pass


FIGURES: dict[str, Callable[[ActorStatistics], float]] = {
    "actors_arrivals_total": lambda s: s.arrivals,
    "actors_handled_total": lambda s: s.handled,
    "actors_failed_total": lambda s: s.failed,
    "actors_restarts_total": lambda s: s.restarts,
    "actors_mailbox_length": lambda s: s.mailbox_length,
    "actors_mailbox_peak_length": lambda s: s.peak_mailbox_length,
    "actors_arrival_rate": lambda s: s.arrival_rate,
    "actors_service_rate": lambda s: s.service_rate,
    "actors_utilization": lambda s: s.utilization,
    "actors_mean_queue_length": lambda s: s.mean_queue_length,
    "actors_mean_wait_seconds": lambda s: s.mean_wait,
    "actors_mean_in_system": lambda s: s.mean_in_system,
    "actors_mean_sojourn_seconds": lambda s: s.mean_sojourn,
    "actors_restarts_in_window": lambda s: s.restarts_in_window,
}
QUANTILES: dict[str, Callable[[ActorStatistics], float]] = {
    "0.5": lambda s: s.handling_time_p50,
    "0.9": lambda s: s.handling_time_p90,
    "0.99": lambda s: s.handling_time_p99,
}
CLASS_FIGURES: dict[str, Callable[[ClassStatistics], float]] = {
    "actors_class_actors": lambda c: c.actors,
    "actors_class_arrivals": lambda c: c.arrivals,
    "actors_class_handled": lambda c: c.handled,
    "actors_class_failed": lambda c: c.failed,
    "actors_class_restarts": lambda c: c.restarts,
    "actors_class_mailbox_length": lambda c: c.mailbox_length,
    "actors_class_mailbox_max_length": lambda c: c.max_mailbox_length,
    "actors_class_arrival_rate": lambda c: c.arrival_rate,
    "actors_class_utilization_max": lambda c: c.max_utilization,
    "actors_class_mean_queue_length": lambda c: c.mean_queue_length,
    "actors_class_mean_in_system": lambda c: c.mean_in_system,
    "actors_class_mean_wait_seconds": lambda c: c.mean_wait,
    "actors_class_mean_sojourn_seconds": lambda c: c.mean_sojourn,
}
SYSTEM_SAMPLES = {"actors_dead_letters_total", "actors_pending_asks", "actors_live_actors", "actors_system_info"}


def samples(page: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(page):
        yield from family.samples


def check_page_matches(page: str, stats: SystemStatistics, system: str, *, values: bool = True,
                       listed: SystemStatistics | None = None) -> None:
    """Every figure of ``stats`` is on ``page`` with its exact value (or just present), and nothing else is: the
    aggregates by class of all of ``stats``, the per-actor figures of ``listed`` (default: all of ``stats``)."""
    expected: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for (cls, node), aggregate in stats.by_class().items():
        for name, read_class in CLASS_FIGURES.items():
            expected[name, frozenset({("class", cls), ("node", node)})] = float(read_class(aggregate))
    listed = stats if listed is None else listed
    expected["actors_listed_actors", frozenset()] = len(listed.actors)
    expected["actors_selected_actors", frozenset()] = len(stats.actors)
    for path, figures in listed.actors.items():
        for name, read in FIGURES.items():
            expected[name, frozenset({("actor", path)})] = float(read(figures))
        for quantile, read in QUANTILES.items():
            labels = {("actor", path), ("quantile", quantile)}
            expected["actors_handling_time_seconds", frozenset(labels)] = read(figures)
        for state in STATES:
            labels = {("actor", path), ("state", state)}
            expected["actors_state", frozenset(labels)] = 1.0 if state == figures.state else 0.0
        expected["actors_node_info", frozenset({("actor", path), ("node", figures.node)})] = 1.0
    expected["actors_dead_letters_total", frozenset()] = stats.dead_letters
    expected["actors_pending_asks", frozenset()] = stats.pending_asks
    expected["actors_live_actors", frozenset()] = len(stats.actors)
    expected["actors_system_info", frozenset({("system", system)})] = 1.0

    found = {(s.name, frozenset(s.labels.items())): s.value for s in samples(page)}
    if values:
        assert found == expected
    else:
        assert found.keys() == expected.keys()


async def test_collector_page_matches_statistics(autojump_clock: trio.testing.MockClock) -> None:
    metrics = Metrics(window=10.0, tick=0.05, sample_every=1)
    async with ActorSystem("shop", metrics=metrics) as system:
        parent = await system.spawn(Parent, name="parent")
        worker = await system.spawn(Worker, name="worker")
        for n in range(20):
            worker.tell(n)
        await trio.sleep(0.05)  # a few handled, the rest still queued
        parent.tell("hello")
        system.lookup("parent/child").tell("ping")  # type: ignore[union-attr]
        await trio.sleep(0.03)
        asking = trio.CancelScope()

        async def ask_and_wait() -> None:
            with asking:
                await worker.ask("late")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_and_wait)
            await trio.testing.wait_all_tasks_blocked()
            registry = metrics_registry(system)
            # No checkpoint between the two reads: both describe the same instant of trio's clock.
            stats = system.statistics()
            page = generate_latest(registry).decode()
            asking.cancel()

        assert set(stats.actors) == {"parent", "parent/child", "worker"}
        busy = stats.actors["worker"]
        # The figures this test compares are real measurements, not all zeros.
        assert busy.mailbox_length > 0
        assert busy.arrival_rate > 0
        assert busy.service_rate == pytest.approx(100.0)
        assert busy.utilization > 0
        assert busy.mean_wait > 0
        assert busy.mean_sojourn > busy.mean_wait
        assert busy.mean_in_system > 0
        assert busy.handling_time_p50 == pytest.approx(0.01)
        assert stats.pending_asks == 1
        check_page_matches(page, stats, "shop")
        assert '# TYPE actors_arrivals_total counter' in page
        assert '# TYPE actors_utilization gauge' in page

        # Each scrape reads afresh: a new actor and the drained mailbox show on the next page.
        await system.spawn(Worker, name="late")
        await trio.sleep(1.0)
        stats = system.statistics()
        page = generate_latest(registry).decode()
        check_page_matches(page, stats, "shop")
        assert stats.actors["worker"].mailbox_length == 0
        assert 'actors_mailbox_length{actor="late"} 0.0' in page


async def test_collector_leaves_the_global_registry_alone() -> None:
    async with ActorSystem("private") as system:
        await system.spawn(Worker, name="w")
        registry = metrics_registry(system)
        assert "actors_arrivals_total" in generate_latest(registry).decode()
    assert "actors_" not in generate_latest(REGISTRY).decode()


def test_describe_needs_no_snapshot_and_guards_names() -> None:
    def unreadable() -> SystemStatistics:
        raise AssertionError("describe() must not read statistics")

    collector = StatisticsCollector(unreadable, system="x")
    names = {family.name for family in collector.describe()}
    assert {"actors_arrivals", "actors_utilization", "actors_state", "actors_pending_asks"} <= names
    assert all(not family.samples for family in collector.describe())

    registry = CollectorRegistry()
    Gauge("actors_pending_asks", "something else", registry=registry)
    with pytest.raises(ValueError, match="actors_pending_asks"):
        registry.register(collector)


def test_collector_reports_an_unknown_state_too() -> None:
    figures = ActorStatistics(arrivals=1, handled=1, failed=0, restarts=0, mailbox_length=0,
                              peak_mailbox_length=1, arrival_rate=0.5, service_rate=2.0, utilization=0.25,
                              mean_queue_length=0.0, mean_wait=0.0, state="hibernating")
    stats = SystemStatistics(dead_letters=0, actors={"a": figures})
    registry = CollectorRegistry()
    registry.register(StatisticsCollector(lambda: stats, system="x"))
    states = {s.labels["state"]: s.value for s in samples(generate_latest(registry).decode())
              if s.name == "actors_state"}
    assert states == {**dict.fromkeys(STATES, 0.0), "hibernating": 1.0}


# -- the HTTP server ------------------------------------------------------------------------------------------

async def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` to 127.0.0.1:``port`` and read the response until the server closes."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def port_of(url: str) -> int:
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/metrics", url)
    assert match is not None, url
    return int(match[1])


async def test_serve_metrics_over_http() -> None:
    async with ActorSystem("served") as system:
        worker = await system.spawn(Worker, name="worker")
        assert await worker.ask("hi") == "hi"
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_metrics, system, "127.0.0.1", 0)
            port = port_of(url)

            status, headers, body = await http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == 200
            assert headers["content-type"].startswith("text/plain; version=0.0.4")
            assert int(headers["content-length"]) == len(body)
            page = body.decode()
            # Time has passed since the scrape, so the rates differ: check the series only.
            check_page_matches(page, system.statistics(), "served", values=False)
            assert 'actors_handled_total{actor="worker"} 1.0' in page

            # The page follows the system: a new actor shows on the next scrape.
            await system.spawn(Worker, name="second")
            _, _, body = await http(port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
            assert 'actors_live_actors 2.0' in body.decode()

            status, headers, body = await http(
                port, b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n")
            assert status == 200
            assert headers["content-type"].startswith("application/openmetrics-text")
            assert body.endswith(b"# EOF\n")

            status, headers, body = await http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
            assert (status, body) == (200, b"")
            assert int(headers["content-length"]) > 0

            status, _, body = await http(port, b"GET /other HTTP/1.1\r\n\r\n")
            assert status == 404
            assert b"/metrics" in body
            status, headers, _ = await http(port, b"POST /metrics HTTP/1.1\r\n\r\n")
            assert (status, headers["allow"]) == (405, "GET, HEAD")
            status, _, _ = await http(port, b"nonsense\r\n\r\n")
            assert status == 400
            status, _, _ = await http(port, b"GET /metrics HTTP/1.1\r\n" + b"X-Long: y\r\n" * 4000 + b"\r\n")
            assert status == 431

            # A client that hangs up without asking does not disturb the server.
            with trio.fail_after(5):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(b"GET /met")
                await stream.aclose()
            status, _, _ = await http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert status == 200

            nursery.cancel_scope.cancel()

        # Cancelled: the port is closed.
        with trio.fail_after(5), pytest.raises(OSError, match=rf"connect to 127\.0\.0\.1:{port}"):
            await trio.open_tcp_stream("127.0.0.1", port)


async def test_serve_metrics_reports_a_port_in_use() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    try:
        async with ActorSystem("busy") as system, trio.open_nursery() as nursery:
            with pytest.raises(OSError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}: .*in use"):
                await nursery.start(serve_metrics, system, "127.0.0.1", port)
    finally:
        await listeners[0].aclose()


async def test_a_failing_read_or_render_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(path: str | None) -> SystemStatistics:
        raise RuntimeError("figures unavailable")

    request = _parse(b"GET /metrics HTTP/1.1", _Selection())
    assert isinstance(request, _Request)
    response = await _Page(broken, "x").render(request)
    assert response.startswith(b"HTTP/1.1 500 ")
    assert b"figures unavailable" in response

    def unrenderable() -> SystemStatistics:
        raise RuntimeError("cannot say")

    registry = CollectorRegistry()
    registry.register(StatisticsCollector(unrenderable, system="x"))
    response = _render(registry, request)
    assert response.startswith(b"HTTP/1.1 500 ")
    assert b"cannot say" in response
    assert len([r for r in caplog.records if r.name == "actors"]) == 2


def test_rates_are_finite_numbers_on_the_page() -> None:
    figures = ActorStatistics(arrivals=3, handled=3, failed=0, restarts=0, mailbox_length=0,
                              peak_mailbox_length=1, arrival_rate=1 / 3, service_rate=1e6, utilization=1 / 3e6,
                              mean_queue_length=0.0, mean_wait=1e-7)
    registry = CollectorRegistry()
    registry.register(StatisticsCollector(lambda: SystemStatistics(dead_letters=0, actors={"a": figures})))
    values = {s.name: s.value for s in samples(generate_latest(registry).decode()) if s.labels.get("actor") == "a"}
    assert values["actors_arrival_rate"] == 1 / 3  # exact: the page carries the float's full repr
    assert values["actors_mean_wait_seconds"] == 1e-7
    assert all(math.isfinite(v) for v in values.values())


# -- bounding the connections --------------------------------------------------------------------------------

GET = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


class MemoryListener(trio.abc.Listener[trio.abc.HalfCloseableStream]):
    """A listener whose connections are in-memory stream pairs, opened by :meth:`connect`."""

    def __init__(self) -> None:
        self._incoming, self._accepting = trio.open_memory_channel[trio.abc.HalfCloseableStream](math.inf)

    def connect(self) -> trio.abc.HalfCloseableStream:
        """A new connection: the server accepts its other end."""
        client, server = trio.testing.memory_stream_pair()
        self._incoming.send_nowait(server)
        return client

    async def accept(self) -> trio.abc.HalfCloseableStream:
        return await self._accepting.receive()

    async def aclose(self) -> None:
        self._accepting.close()
        await trio.lowlevel.checkpoint()


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    """Mock time that moves only when the test jumps it, so that every deadline fires when the test says."""
    return trio.testing.MockClock()


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The warnings logged on the ``"actors"`` logger so far."""
    caplog.set_level(logging.WARNING, logger="actors")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "actors" and r.levelno == logging.WARNING]


def start_server(nursery: trio.Nursery, max_connections: int) -> MemoryListener:
    """Serve an empty system's page on a :class:`MemoryListener` in ``nursery``."""
    async def read(path: str | None) -> SystemStatistics:
        await trio.lowlevel.checkpoint()
        return SystemStatistics(dead_letters=0, actors={})

    listener = MemoryListener()
    nursery.start_soon(partial(_serve, _Page(read, "memory"), [listener], max_connections=max_connections))
    return listener


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response
    return int(response.split()[1])


async def scrape(stream: trio.abc.HalfCloseableStream) -> int:
    """Send a request on ``stream``, read the answer to the end, hang up, and return the status."""
    await stream.send_all(GET)
    response = await read_all(stream)
    await stream.aclose()
    await trio.testing.wait_all_tasks_blocked()  # the server has seen the hang-up and freed the slot
    return status_of(response)


async def test_connections_over_the_limit_are_answered_503_at_once(
        mock_clock: trio.testing.MockClock, warnings: Callable[[], list[str]]) -> None:
    async with trio.open_nursery() as nursery:
        listener = start_server(nursery, max_connections=3)
        held = [listener.connect() for _ in range(3)]
        await trio.testing.wait_all_tasks_blocked()

        # The three hold every slot without sending a byte; the next two do not wait for one.
        for _ in range(2):
            extra = listener.connect()
            await trio.testing.wait_all_tasks_blocked()
            response = await read_all(extra)
            assert status_of(response) == 503
            assert b"\r\nRetry-After: 1\r\n" in response
            assert response.endswith(b"already serving max_connections=3 connections; try again later\n")
            await extra.aclose()
        assert len(warnings()) == 2
        assert all(message.startswith("metrics server: answered 503 to ") for message in warnings())
        assert all(message.endswith(": already serving max_connections=3 connections") for message in warnings())

        # The connections holding the slots are answered, and the slots they free serve new connections.
        assert [await scrape(client) for client in held] == [200, 200, 200]
        assert [await scrape(listener.connect()) for _ in range(5)] == [200] * 5
        assert len(warnings()) == 2
        assert mock_clock.current_time() == 0.0  # no deadline had to fire for any of it
        nursery.cancel_scope.cancel()


async def test_a_slow_client_holds_its_slot_until_the_deadline_only(
        mock_clock: trio.testing.MockClock, warnings: Callable[[], list[str]]) -> None:
    async with trio.open_nursery() as nursery:
        listener = start_server(nursery, max_connections=1)
        slow = listener.connect()
        await slow.send_all(b"GET /metr")  # and nothing more
        await trio.testing.wait_all_tasks_blocked()

        mock_clock.jump(_REQUEST_SECONDS - 0.001)
        await trio.testing.wait_all_tasks_blocked()
        assert await scrape(listener.connect()) == 503

        mock_clock.jump(0.002)
        await trio.testing.wait_all_tasks_blocked()
        assert await read_all(slow) == b""  # closed without an answer: the request never came
        assert warnings()[-1].startswith("metrics server: closed the connection from ")
        assert warnings()[-1].endswith(f"within {_REQUEST_SECONDS:g}s")
        assert await scrape(listener.connect()) == 200
        nursery.cancel_scope.cancel()


async def test_refusals_are_bounded_too_and_cancelling_closes_everything(
        mock_clock: trio.testing.MockClock, warnings: Callable[[], list[str]]) -> None:
    async with trio.open_nursery() as server:
        listener = start_server(server, max_connections=1)
        holder = listener.connect()
        await trio.testing.wait_all_tasks_blocked()
        # A refused client that neither reads nor hangs up keeps the one refusal slot for up to a second...
        lingering = listener.connect()
        await trio.testing.wait_all_tasks_blocked()
        # ... so the next one is closed at once, unanswered.
        assert await read_all(listener.connect()) == b""
        assert warnings()[-1].startswith("metrics server: closed the connection from ")
        assert warnings()[-1].endswith(" unanswered: already serving max_connections=1 connections and refusing "
                                       "as many")
        assert status_of(await read_all(lingering)) == 503

        # At the end of the second the refusal slot is free again, and the server still serves.
        mock_clock.jump(1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert await scrape(listener.connect()) == 503
        assert await scrape(holder) == 200

        # Cancelling the server closes a connection waiting for its request and one being refused.
        waiting = listener.connect()
        refused = listener.connect()
        await trio.testing.wait_all_tasks_blocked()
        server.cancel_scope.cancel()
    assert await read_all(waiting) == b""
    assert status_of(await read_all(refused)) == 503
    assert len(warnings()) == 4


async def test_serve_metrics_bounds_its_connections_over_tcp(warnings: Callable[[], list[str]]) -> None:
    async with ActorSystem("bounded") as system, trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_metrics, system, "127.0.0.1", 0, max_connections=1))
        port = port_of(url)
        with trio.fail_after(5):
            holder = await trio.open_tcp_stream("127.0.0.1", port)
        await trio.testing.wait_all_tasks_blocked()

        status, headers, body = await http(port, GET)
        assert (status, headers["retry-after"]) == (503, "1")
        assert b"max_connections=1" in body
        assert re.fullmatch(r"metrics server: answered 503 to 127\.0\.0\.1:\d+: already serving max_connections=1 "
                            r"connections", warnings()[-1])

        with trio.fail_after(5):
            await holder.send_all(GET)
            assert status_of(await read_all(holder)) == 200
            await holder.aclose()
        await trio.testing.wait_all_tasks_blocked()
        status, _, body = await http(port, GET)
        assert status == 200
        assert b'actors_system_info{system="bounded"} 1.0' in body
        nursery.cancel_scope.cancel()


async def test_serve_metrics_needs_room_for_one_connection() -> None:
    async with ActorSystem("none") as system, trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="max_connections must be at least 1, got 0"):
            await nursery.start(partial(serve_metrics, system, max_connections=0))


async def test_the_page_lists_the_top_k_actors_and_aggregates_them_all() -> None:
    async with ActorSystem("many") as system:
        gate = trio.Event()

        class Held(Actor):
            async def receive(self, message: object) -> None:
                await gate.wait()

        for n in range(130):
            ref = await system.spawn(Held, name=f"w{n}")
            for _ in range(n % 7):
                ref.tell("x")  # the first is being handled, the rest wait: n % 7 - 1 queued
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_metrics, system, "127.0.0.1", 0)
            port = port_of(url)

            async def page(query: str = "") -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
                status, _, body = await http(port, f"GET /metrics{query} HTTP/1.1\r\n\r\n".encode())
                assert status == 200, body
                return {(s.name, frozenset(s.labels.items())): s.value for s in samples(body.decode())}

            def listed(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
                return {dict(labels)["actor"]: value for (name, labels), value in found.items()
                        if name == "actors_mailbox_length"}

            held = f"{Held.__module__}.{Held.__qualname__}"
            found = await page()
            assert len(listed(found)) == 100  # DEFAULT_TOP, the longest mailboxes
            assert min(listed(found).values()) >= max(
                n % 7 - 1 for n in range(130) if f"w{n}" not in listed(found))
            assert found["actors_live_actors", frozenset()] == 130
            assert found["actors_listed_actors", frozenset()] == 100
            assert found["actors_class_actors", frozenset({("class", held), ("node", system.node_id)})] == 130
            assert found["actors_class_mailbox_length", frozenset({("class", held), ("node", system.node_id)})] == \
                sum(max(0, n % 7 - 1) for n in range(130))

            found = await page("?top=3&by=mailbox_length")
            assert set(listed(found).values()) == {5.0}
            found = await page("?top=all")
            assert len(listed(found)) == 130
            found = await page("?match=w12&top=all")
            assert set(listed(found)) == {"w12", *(f"w{n}" for n in range(120, 130))}
            assert found["actors_selected_actors", frozenset()] == 11
            assert found["actors_live_actors", frozenset()] == 130
            found = await page("?path=w5")
            assert set(listed(found)) == {"w5"}
            assert found["actors_live_actors", frozenset()] == 1

            for query, complaint in (("?top=0", b"top=0 must be an int of at least 1"),
                                     ("?top=many", b"invalid literal"), ("?by=colour", b"by='colour' must be")):
                status, _, body = await http(port, f"GET /metrics{query} HTTP/1.1\r\n\r\n".encode())
                assert status == 400
                assert complaint in body
            gate.set()
            nursery.cancel_scope.cancel()


def test_collector_options_are_checked() -> None:
    with pytest.raises(ValueError, match="top=0 must be an int of at least 1, or None for every actor"):
        StatisticsCollector(lambda: SystemStatistics(0, {}), top=0)
    with pytest.raises(ValueError, match="by='colour' must be one of"):
        StatisticsCollector(lambda: SystemStatistics(0, {}), by="colour")
    assert repr(StatisticsCollector(lambda: SystemStatistics(0, {}), top=None)) == \
        "<StatisticsCollector system='app' every actor>"
