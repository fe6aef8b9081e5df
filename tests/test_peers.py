"""Nodes that meet on RabbitMQ: two systems of one cluster tell, ask, watch and resolve each other through the
broker; a peer that leaves or dies is ``NodeDown``; a message that is not signed with the cluster's secret is
never decoded.

These tests need the broker of ``scripts/broker`` (the ``broker`` fixture of ``test_amqp_client.py``: skipped
without one, failed under ``CI=true``). They wait in real time for the broker, every wait bounded; heartbeats
are short (0.2 s) so that a lost peer is found within a second.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from amqp_support import Proxy, TLSBroker, broker_sockets, close_named_connections
from amqp_support import broker as broker  # the session's RabbitMQ (skips without one)
from amqp_support import tls_broker as tls_broker  # its TLS listener
from helpers import kill_during_ask

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    BacklogFull,
    Bind,
    Delivery,
    Exchange,
    NameTaken,
    NodeDown,
    NodeUp,
    NotAuthorized,
    Publish,
    Queue,
    Subscribe,
    Terminated,
)
from actors.testing import Probe
from runtime._broker import (
    BrokerHub,
    BrokerSettings,
    Checked,
    check_message,
    inbox_name,
    load_secret,
    signature,
    signing_key,
)
from runtime._broker_router import HEARTBEAT as HEARTBEAT_AMQP
from runtime.amqp import Properties, open_connection

pytestmark = pytest.mark.deadline(60)

SECRET = b"a cluster secret, 32 bytes long."
HEARTBEAT = 0.2
HERE = pathlib.Path(__file__).resolve().parent


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds: what the broker delivers shows in counts, with no event to wait on, so
    this looks every 10 ms (bound it with ``trio.fail_after``)."""
    for _ in range(10_000):
        if predicate():
            return
        await trio.sleep(0.01)
    raise AssertionError("the condition never held")  # pragma: no cover


async def read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> str:
    """The next line from ``stream`` (what follows it stays in ``buffer``)."""
    while b"\n" not in buffer:
        data = await stream.receive_some()
        if not data:
            raise EOFError(f"the stream ended; it said {bytes(buffer)!r}")
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


@asynccontextmanager
async def peer_process(*args: str) -> AsyncIterator[tuple[trio.Process, Callable[[], Awaitable[str]]]]:
    """``tests/peer_node.py args...`` as an OS process of its own: the process, and a reader of the next line it
    prints. It is killed and reaped on the way out, whatever happened."""
    process = await trio.lowlevel.open_process(
        [sys.executable, str(HERE / "peer_node.py"), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    stdout = process.stdout
    assert stdout is not None
    buffer = bytearray()

    async def next_line() -> str:
        return await read_line(stdout, buffer)

    try:
        yield process, next_line
    finally:
        process.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                await trio.aclose_forcefully(stream)


def cluster_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def node(url: str, cluster: str, name: str, secret: bytes = SECRET,
               heartbeat: float = HEARTBEAT) -> AsyncIterator[ActorSystem]:
    async with ActorSystem(cluster, broker=url, secret=secret, node_name=name, _heartbeat=heartbeat) as system:
        yield system


@pytest.fixture
async def proxy(broker: str) -> AsyncIterator[Proxy]:
    """A proxy in front of the broker: a node connected through it can be cut off without touching others."""
    async with trio.open_nursery() as nursery:
        proxy = Proxy()
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()


def hub_of(system: ActorSystem) -> BrokerHub:
    assert system.cluster is not None
    assert system.cluster.hub is not None
    return system.cluster.hub


@asynccontextmanager
async def pair(url: str) -> AsyncIterator[tuple[ActorSystem, ActorSystem]]:
    """Two nodes ``a`` and ``b`` of a fresh cluster, each knowing the other."""
    cluster = cluster_name()
    async with node(url, cluster, "a") as a, node(url, cluster, "b") as b:
        with trio.fail_after(10):
            await a.wait_node("b")
            await b.wait_node("a")
        yield a, b


class Echo(Actor):
    """Echoes with its own ref; ``("tell", ref, x)`` tells ``ref`` x; ``"hang"`` and ``"never"`` never answer."""

    async def receive(self, message: Any) -> Any:
        match message:
            case ("tell", ActorRef() as ref, value):
                ref.tell(value)
                return None
            case "hang":
                await trio.sleep_forever()
            case "never":  # an ask never answered that does not hold the actor (nor its system's shutdown) up
                self.defer_reply()
                return None
            case "boom":
                raise ValueError("boom")
        return ("echo", message, self.ref)


class Watcher(Actor):
    """Watches the ref it is asked with; passes ``Terminated`` on to ``probe``."""

    def __init__(self, probe: ActorRef) -> None:
        self.probe = probe

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Terminated):
            self.probe.tell(message)
        else:
            self.watch(message)


# -- two nodes in one process ----------------------------------------------------------------------------------


async def test_two_nodes_find_each_other_as_peers(broker: str) -> None:
    async with pair(broker) as (a, b):
        assert a.node.name == "a"
        peers = {n.name: n for n in a.nodes if n.kind == "peer"}
        assert set(peers) == {"b"}
        assert peers["b"].alive
        assert peers["b"].pid == os.getpid()
        assert [n.name for n in b.nodes if n.kind == "peer"] == ["a"]


async def test_tell_ask_and_resolve_across_peers(broker: str) -> None:
    async with pair(broker) as (a, b):
        await b.spawn(Echo, name="echo")
        probe = await Probe.spawn(a)
        with trio.fail_after(10):
            ref = await a.resolve("b", "echo")
            assert ref is not None
            assert ref.node.name == "b"
            assert await a.resolve("b", "echo") is ref  # the same ref each time
            assert await a.resolve("b", "nobody") is None
            assert await a.resolve("c", "echo") is None  # not a node of the cluster
            answer = await ref.ask("hi")
            assert answer == ("echo", "hi", ref)
            assert answer[2] is ref  # a ref in a reply comes back as the same ref
            ref.tell(("tell", probe.ref, "told"))  # a ref inside a message crosses and works there
            assert await probe.expect("told") == "told"
            for i in range(100):  # order is kept per sender and receiver
                ref.tell(("tell", probe.ref, i))
            for i in range(100):
                await probe.expect(i)


async def test_an_actor_failing_on_a_peer_fails_the_ask(broker: str) -> None:
    async with pair(broker) as (a, b):
        await b.spawn(Echo, name="echo")
        with trio.fail_after(10):
            ref = await a.resolve("b", "echo")
            assert ref is not None
            with pytest.raises(ActorFailed) as excinfo:
                await ref.ask("boom")
            assert isinstance(excinfo.value.cause, ValueError)
            assert await ref.ask(1) == ("echo", 1, ref)  # restarted by its supervisor on b


async def test_watch_and_stop_across_peers(broker: str) -> None:
    async with pair(broker) as (a, b):
        await b.spawn(Echo, name="echo")
        probe = await Probe.spawn(a)
        watcher = await a.spawn(Watcher, probe.ref)
        with trio.fail_after(10):
            ref = await a.resolve("b", "echo")
            assert ref is not None
            await watcher.ask(ref)
            await ref.ask("sync")  # the Watch went before this ask, on the same path
            await b.stop(b.lookup("echo"))  # type: ignore[arg-type]
            terminated = await probe.expect(Terminated)
            assert terminated.ref is ref
            assert not isinstance(terminated.reason, NodeDown)


async def test_a_peer_that_leaves_in_order_is_node_down_and_its_actors_stopped(broker: str) -> None:
    cluster = cluster_name()
    async with node(broker, cluster, "a") as a:
        events = await Probe.spawn(a)
        a.events.subscribe(events.ref, NodeUp, NodeDown)
        probe = await Probe.spawn(a)
        watcher = await a.spawn(Watcher, probe.ref)
        failures: list[BaseException] = []
        async with trio.open_nursery() as nursery:
            async with node(broker, cluster, "b") as b:
                await b.spawn(Echo, name="echo", stop_timeout=0.1)
                with trio.fail_after(10):
                    up = await events.expect(NodeUp)
                    assert (up.node.name, up.node.kind) == ("b", "peer")
                    ref = await a.resolve("b", "echo")
                    assert ref is not None
                    await watcher.ask(ref)

                async def ask() -> None:
                    try:
                        await ref.ask("hang")
                    except (ActorFailed, ActorStopped) as exc:
                        failures.append(exc)

                nursery.start_soon(ask)
                await ref.ask("sync")  # the hanging ask is on its way before b leaves
            with trio.fail_after(5):
                down = await events.expect(NodeDown)
        assert (down.node.name, down.node.alive, down.reason) == ("b", False, "peer b left the cluster")
        [failure] = failures
        assert isinstance(failure, ActorStopped)  # b stopped its actor, which answered as it stopped
        with trio.fail_after(5):
            terminated = await probe.expect(Terminated)
        assert terminated.ref is ref
        assert [n.alive for n in a.nodes if n.name == "b"] == [False]
        assert await a.resolve("b", "echo") is None
        with pytest.raises(ActorStopped, match="node b is down"):
            await ref.ask("after")


async def test_a_peer_that_vanishes_fails_pending_asks_and_fires_watchers(broker: str, proxy: Proxy) -> None:
    cluster = cluster_name()
    async with node(broker, cluster, "a") as a, node(proxy.url(), cluster, "b") as b:
        events = await Probe.spawn(a)
        a.events.subscribe(events.ref, NodeDown)
        probe = await Probe.spawn(a)
        watcher = await a.spawn(Watcher, probe.ref)
        await b.spawn(Echo, name="echo")
        with trio.fail_after(10):
            await a.wait_node("b")
            ref = await a.resolve("b", "echo")
            assert ref is not None
            await watcher.ask(ref)
        failures: list[BaseException] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                try:
                    await ref.ask("never")
                except ActorFailed as exc:
                    failures.append(exc)

            nursery.start_soon(ask)
            await ref.ask("sync")
            # b's broker connection is cut for good (as when its machine goes away): no goodbye, only silence.
            proxy.refusing = True
            proxy.cut()
            start = trio.current_time()
        assert trio.current_time() - start < 3.0  # found silent within a few heartbeats
        [failure] = failures
        assert isinstance(failure.cause, NodeDown)  # type: ignore[attr-defined]
        assert failure.cause.node.name == "b"  # type: ignore[attr-defined]
        with trio.fail_after(5):
            down = await events.expect(NodeDown)
            terminated = await probe.expect(Terminated)
        assert down.node.name == "b"
        assert "fell silent" in down.reason
        assert terminated.ref is ref
        assert isinstance(terminated.reason, NodeDown)
        assert hub_of(b).statistics().reconnects == 0  # still trying to come back


async def test_a_peer_found_lost_is_told_so_and_its_asks_do_not_hang(broker: str) -> None:
    async with pair(broker) as (a, b):
        await a.spawn(Echo, name="echo")
        with trio.fail_after(10):
            ref = await b.resolve("a", "echo")
            assert ref is not None
            assert a.cluster is not None
            assert a.cluster.hub is not None
            incarnation = hub_of(b).statistics().incarnation
            a.cluster.hub.peers["b"].last_seen -= 100  # as if b had stalled: a's next beat finds it lost
            await until(lambda: not next(n for n in a.nodes if n.name == "b").alive)
            # b still counts on a; a drops what b sends and tells b it is out, so b's ask fails and b rejoins.
            with pytest.raises((ActorFailed, ActorStopped)) as excinfo:
                await ref.ask("hang")
            cause = excinfo.value.cause if isinstance(excinfo.value, ActorFailed) else excinfo.value
            # b learns it is out either before the ask leaves (its link to a is broken) or after (a is down to it)
            assert "node a is down" in str(cause) or "the link to peer a is broken" in str(cause), cause
            await until(lambda: any(n.alive for n in a.nodes if n.name == "b")
                        and any(n.alive for n in b.nodes if n.name == "a"))
            statistics = hub_of(b).statistics()
            assert (statistics.rejoins, statistics.incarnation != incarnation) == (1, True)
            with pytest.raises((ActorFailed, ActorStopped)):
                await ref.ask("again")  # a ref from before the rejoin stays down
            fresh = await b.resolve("a", "echo")
            assert fresh is not None
            assert (await fresh.ask("again"))[:2] == ("echo", "again")


async def test_node_connections_ask_for_a_short_heartbeat_unless_the_url_says(broker: str) -> None:
    cluster = cluster_name()
    async with node(broker, cluster, "a") as a, node(broker + "?heartbeat=2", cluster, "b") as b:
        assert hub_of(a).connection.statistics().heartbeat == HEARTBEAT_AMQP
        assert hub_of(b).connection.statistics().heartbeat == 2


async def test_a_frozen_connection_is_found_in_seconds_and_the_node_rejoins(broker: str, proxy: Proxy) -> None:
    """a's connection freezes without a socket error (nothing passes either way, nothing is closed): b finds a
    silent; a's client finds its connection silent after two AMQP heartbeats (1 s here) and opens another, and a,
    found lost meanwhile, rejoins as a new incarnation: its pending ask fails with NodeDown instead of hanging, and
    both sides see each other come up again through a's new connection."""
    cluster = cluster_name()
    async with node(proxy.url() + "?heartbeat=1", cluster, "a") as a, node(broker, cluster, "b") as b:
        await b.spawn(Echo, name="echo")
        with trio.fail_after(10):
            await a.wait_node("b")
            await b.wait_node("a")
            on_b = await a.resolve("b", "echo")
        assert on_b is not None
        a_events = await Probe.spawn(a)
        a.events.subscribe(a_events.ref, NodeDown)
        a.events.subscribe(a_events.ref, NodeUp)
        b_events = await Probe.spawn(b)
        b.events.subscribe(b_events.ref, NodeDown)
        b.events.subscribe(b_events.ref, NodeUp)
        hub = hub_of(a)
        assert hub.connection.statistics().heartbeat == 1
        failure: list[BaseException] = []

        async def ask() -> None:
            try:
                await on_b.ask("never")
            except (ActorFailed, ActorStopped) as exc:
                failure.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            assert (await on_b.ask("sync"))[0] == "echo"
            proxy.freeze()
            frozen = trio.current_time()
            with trio.fail_after(10):
                down = await b_events.expect(NodeDown)
                assert (down.node.name, "fell silent" in down.reason) == ("a", True)
                down = await a_events.expect(NodeDown)  # cut off too long, or told so by b once back
                assert (down.node.name, "rejoins the cluster as a new incarnation" in down.reason) == ("b", True)
                await until(lambda: bool(failure))
            # Two heartbeats of 1 s, a beat of 0.2 s, the time to come back: seconds, not the minute or two that
            # RabbitMQ's own 60 s heartbeat would take.
            assert trio.current_time() - frozen < 8  # (2 s and a few beats, with room for a loaded machine)
            cause = failure[0].cause if isinstance(failure[0], ActorFailed) else failure[0]
            assert isinstance(cause, NodeDown)
            with trio.fail_after(15):
                await b_events.expect(lambda event: isinstance(event, NodeUp) and event.node.name == "a")
                await a_events.expect(lambda event: isinstance(event, NodeUp) and event.node.name == "b")
            statistics = hub.statistics()
            assert (statistics.reconnects, statistics.rejoins) == (1, 1)
            fresh = await a.resolve("b", "echo")
            assert fresh is not None
            assert (await fresh.ask("after"))[:2] == ("echo", "after")


async def test_a_node_and_its_broker_backed_router_share_one_connection_and_both_survive_its_loss(
        broker: str) -> None:
    """The hub and the broker-backed exchanges and queues of a system use one connection (channels of their own);
    closed by an operator, it is opened again once, and the node (same incarnation) and the router (exchange,
    queue, binding, consumer declared again) both go on."""
    prefix = f"test.shared.{uuid.uuid4().hex[:8]}."
    before = broker_sockets()
    try:
        async with pair(broker) as (a, b):
            await b.spawn(Echo, name="echo")
            exchange = await a.spawn(Exchange, "direct", name=prefix + "x", broker=True)
            queue = await a.spawn(Queue, name=prefix + "q", broker=True)
            await exchange.ask(Bind(queue, "k"))
            consumer = await Probe.spawn(a)
            await queue.ask(Subscribe(consumer.ref, auto_ack=True))
            assert broker_sockets() - before == 2  # a's and b's, not three: a's router has none of its own
            hub = hub_of(a)
            assert hub.connection.statistics().open_channels >= 4  # the hub's two, the exchange's, the queue's...
            incarnation = hub.statistics().incarnation
            assert await close_named_connections(hub.connection_name, "test: closed by an operator") == 1
            with trio.fail_after(15):
                await until(lambda: hub.statistics().reconnects == 1)
                await hub.connection.wait_connected()
                assert await exchange.ask(Publish("k", "after")) == 1
                delivery = await consumer.expect(Delivery)
                assert delivery.body == "after"
                on_b = await a.resolve("b", "echo")
                assert on_b is not None
                assert (await on_b.ask("after"))[:2] == ("echo", "after")
            assert broker_sockets() - before == 2
            statistics = hub.statistics()
            assert (statistics.rejoins, statistics.incarnation) == (0, incarnation)
        assert broker_sockets() == before  # closed with the last of its users
    finally:
        with trio.fail_after(10):
            async with open_connection(broker) as connection, await connection.channel() as channel:
                await channel.queue_delete(prefix + "q")
                await channel.exchange_delete(prefix + "x")


async def test_nodes_meet_over_amqps(tls_broker: TLSBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    """``broker="amqps://..."``: the node's connection (and its router's) is TLS, verified against the default
    trust store, here pointed at the test CA the way an operator would (``SSL_CERT_FILE``)."""
    monkeypatch.setenv("SSL_CERT_FILE", tls_broker.ca)
    async with pair(tls_broker.url) as (a, b):
        await b.spawn(Echo, name="echo")
        with trio.fail_after(10):
            ref = await a.resolve("b", "echo")
            assert ref is not None
            assert (await ref.ask("over tls"))[:2] == ("echo", "over tls")
        assert "amqps://" in repr(hub_of(a).connection)


async def test_a_node_name_taken_in_the_cluster_is_refused(broker: str) -> None:
    cluster = cluster_name()
    async with node(broker, cluster, "a"):
        with pytest.raises(NameTaken, match="'a' is taken"):
            async with node(broker, cluster, "a"):
                pass  # pragma: no cover


async def test_a_refused_login_is_not_authorized(broker: str) -> None:
    url = broker.replace("guest:guest", "guest:wrong-password")
    with pytest.raises(NotAuthorized):
        async with node(url, cluster_name(), "a"):
            pass  # pragma: no cover


async def test_waiting_for_a_node_can_be_cancelled(broker: str) -> None:
    async with node(broker, cluster_name(), "a") as a:
        with trio.move_on_after(0.3) as scope:
            await a.wait_node("nobody")
        assert scope.cancelled_caught
        assert [n.name for n in a.nodes] == ["a"]
        assert await a.wait_node("a") == a.node


# -- a lost broker connection ---------------------------------------------------------------------------------


class Recorder(Actor):
    """Records what it is told, in order; answers ``"get"`` with the record, and ``("later", x)`` with ``x`` a
    tenth of a second later (while its asker's broker is away, in the tests below)."""

    def __init__(self) -> None:
        self.record: list[Any] = []

    async def receive(self, message: Any) -> Any:
        match message:
            case "get":
                return list(self.record)
            case ("later", value):
                await trio.sleep(0.1)
                return value
        self.record.append(message)
        return None


@pytest.mark.parametrize("how", ["cut", "freeze, then cut"])
async def test_a_short_outage_loses_nothing_and_peers_see_no_change(broker: str, proxy: Proxy, how: str) -> None:
    """a's connection is lost for less than the silence limit (0.2 s, against 1.5 s) with tells and asks in
    flight each way: a reconnects as the same incarnation, publishes again what the broker had not confirmed, and
    every tell arrives once, in order."""
    cluster = cluster_name()
    async with node(proxy.url(), cluster, "a", heartbeat=0.5) as a, node(broker, cluster, "b", heartbeat=0.5) as b:
        down = await Probe.spawn(b)
        b.events.subscribe(down.ref, NodeDown)
        await b.spawn(Recorder, name="recorder")
        with trio.fail_after(10):
            await a.wait_node("b")
            recorder = await a.resolve("b", "recorder")
        assert recorder is not None
        hub = hub_of(a)
        incarnation = hub.statistics().incarnation
        answers: list[Any] = []
        sent = 0

        def tell(count: int) -> None:
            nonlocal sent
            for value in range(sent, sent + count):
                recorder.tell(value)
            sent += count

        async def ask(value: Any) -> None:
            answers.append(await recorder.ask(("later", value)))

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                tell(500)
                await recorder.ask("get")  # these arrived
                nursery.start_soon(ask, "asked before")  # answered while a is away
                if how == "freeze, then cut":
                    proxy.freeze()  # what a publishes now is written and never confirmed
                tell(500)
                await trio.sleep(0.05)
                proxy.refusing = True
                proxy.cut()
                await trio.sleep(0.01)
                tell(500)  # while a is away
                nursery.start_soon(ask, "asked while away")
                await trio.sleep(0.2)
                proxy.refusing = False
            record = await recorder.ask("get")
        assert record == list(range(sent))  # every tell, once, in order
        assert sorted(answers) == ["asked before", "asked while away"]
        statistics = hub.statistics()
        assert (statistics.reconnects, statistics.rejoins, statistics.incarnation) == (1, 0, incarnation)
        if how == "freeze, then cut":
            assert statistics.republished > 0
        assert statistics.unconfirmed < 3  # the last beats, say
        assert [n.alive for n in b.nodes if n.name == "a"] == [True]
        await down.expect_no_message(0.1)  # b saw no change


async def test_past_its_backlog_a_node_refuses_tells_and_asks_to_peers_and_loses_none_it_took(
        broker: str, proxy: Proxy) -> None:
    """While a's broker is away, a holds what it sends to peers up to its backlog (10 here): past it, a tell is a
    dead letter and an ask fails with BacklogFull, both saying why, while a send waits; once the broker is back,
    every message a took arrives, once, in order, and the backlog has room again."""
    cluster = cluster_name()
    async with ActorSystem(cluster, broker=proxy.url(), secret=SECRET, node_name="a", _heartbeat=1.0,
                           _backlog=10) as a, node(broker, cluster, "b", heartbeat=1.0) as b:
        await b.spawn(Recorder, name="recorder")
        with trio.fail_after(10):
            await a.wait_node("b")
            recorder = await a.resolve("b", "recorder")
        assert recorder is not None
        dead = await Probe.dead_letters(a)
        hub = hub_of(a)
        with trio.fail_after(10):
            await recorder.ask("get")
            await until(lambda: hub.statistics().held == 0)
        proxy.refusing = True
        proxy.cut()
        with trio.fail_after(10):
            await until(lambda: not hub.connection.connected)
        for value in range(10):
            recorder.tell(value)
        assert hub.statistics().held == 10
        recorder.tell("one too many")
        refused = await dead.expect(lambda letter: letter.message == "one too many")
        assert "not sent" in refused.reason
        assert "backlog=10" in refused.reason
        with pytest.raises(BacklogFull, match=r"'get' for .* on peer b was not sent: node a holds 10 messages"):
            await recorder.ask("get")
        sent = trio.Event()

        async def send() -> None:
            await recorder.send("sent")  # not refused: it waits for the broker, as its sender does
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await trio.testing.wait_all_tasks_blocked()
            statistics = hub.statistics()
            assert (statistics.held, statistics.refused, sent.is_set()) == (11, 2, False)
            proxy.refusing = False
            with trio.fail_after(10):
                await sent.wait()
        with trio.fail_after(10):
            assert await recorder.ask("get") == [*range(10), "sent"]
            await until(lambda: hub.statistics().held == 0)
        statistics = hub.statistics()
        assert (statistics.reconnects, statistics.rejoins, statistics.refused) == (1, 0, 2)
        await dead.expect_no_message(0.1)


async def test_after_a_long_outage_the_node_rejoins_as_a_new_incarnation(broker: str, proxy: Proxy) -> None:
    """a's connection is lost for longer than the silence limit: b finds a lost (its asks fail, its watchers fire),
    and a, cut off as long, rejoins as a new incarnation (its own pending asks fail at once); when a comes back,
    both see the other come up again, and refs from before stay down."""
    cluster = cluster_name()
    async with node(proxy.url(), cluster, "a") as a, node(broker, cluster, "b") as b:
        probe = await Probe.spawn(b)
        watcher = await b.spawn(Watcher, probe.ref)
        for system in (a, b):
            await system.spawn(Echo, name="echo")
        with trio.fail_after(10):
            await a.wait_node("b")
            await b.wait_node("a")
            on_a = await b.resolve("a", "echo")
            on_b = await a.resolve("b", "echo")
            assert on_a is not None
            assert on_b is not None
            await watcher.ask(on_a)
        b_events = await Probe.spawn(b)
        b.events.subscribe(b_events.ref, NodeDown)
        b.events.subscribe(b_events.ref, NodeUp)
        a_events = await Probe.spawn(a)
        a.events.subscribe(a_events.ref, NodeDown)
        a.events.subscribe(a_events.ref, NodeUp)
        incarnation = hub_of(a).statistics().incarnation
        failures: dict[str, BaseException] = {}

        async def ask(name: str, ref: ActorRef) -> None:
            try:
                await ref.ask("never")
            except (ActorFailed, ActorStopped) as exc:
                failures[name] = exc

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, "b asked a", on_a)
                nursery.start_soon(ask, "a asked b", on_b)
                await on_a.ask("sync")
                await on_b.ask("sync")
                proxy.refusing = True
                proxy.cut()
                down = await b_events.expect(NodeDown)  # b finds a lost
                assert (down.node.name, "fell silent" in down.reason) == ("a", True)
                terminated = await probe.expect(Terminated)
                assert terminated.ref is on_a
                down = await a_events.expect(NodeDown)  # and a, still cut off, gives b up as well
                assert (down.node.name, "cut off" in down.reason) == ("b", True)
                await until(lambda: len(failures) == 2)
                assert hub_of(a).statistics().rejoins == 1
                proxy.refusing = False  # a comes back
                await b_events.expect(lambda event: isinstance(event, NodeUp) and event.node.name == "a")
            await a_events.expect(lambda event: isinstance(event, NodeUp) and event.node.name == "b")
        assert set(failures) == {"b asked a", "a asked b"}
        for exc in failures.values():
            cause = exc.cause if isinstance(exc, ActorFailed) else exc
            assert "is down" in str(cause)
        statistics = hub_of(a).statistics()
        assert (statistics.rejoins, statistics.incarnation != incarnation) == (1, True)
        with pytest.raises((ActorFailed, ActorStopped)):
            await on_a.ask("before")  # refs from before stay down, as for a restarted peer
        with pytest.raises((ActorFailed, ActorStopped)):
            await on_b.ask("before")
        with trio.fail_after(10):
            fresh = await b.resolve("a", "echo")
            assert fresh is not None
            assert (await fresh.ask("after"))[:2] == ("echo", "after")
            fresh_on_b = await a.resolve("b", "echo")
            assert fresh_on_b is not None
            assert (await fresh_on_b.ask("after"))[:2] == ("echo", "after")


# -- security ------------------------------------------------------------------------------------------------


class _CreatesFile:
    """Unpickling it creates a file: what an attacker would put in a batch."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (open, (str(self.path), "w"))


async def test_a_forged_batch_is_dropped_unread(broker: str, tmp_path: pathlib.Path) -> None:
    canary = tmp_path / "pwned"
    body = pickle.dumps([_CreatesFile(canary)])
    async with pair(broker) as (a, b):
        await a.spawn(Echo, name="echo")
        assert a.cluster is not None
        assert a.cluster.hub is not None
        hub = a.cluster.hub
        incarnation = b.cluster.hub._incarnation  # type: ignore[union-attr]
        forgeries = [
            ("a wrong signature", "b", "a", "00" * 32),
            ("signed with another secret", "b", "a",
             signature(signing_key(b"another secret of 32 bytes......", a.name), "batch", "b", "a",
                       f"{incarnation}.999999", body)),
            ("signed for another recipient", "b", "c",
             signature(signing_key(SECRET, a.name), "batch", "b", "c", f"{incarnation}.999999", body)),
        ]
        async with open_connection(broker) as connection:
            channel = await connection.channel()
            for _, sender, recipient, sig in forgeries:
                await channel.basic_publish("", inbox_name(a.name, "a"), body, properties=Properties(
                    message_type="batch", app_id=sender, message_id=f"{incarnation}.999999",
                    headers={"to": recipient, "sig": sig}))
            await channel.basic_publish("", inbox_name(a.name, "a"), body)  # no properties at all
        with trio.fail_after(10):
            await until(lambda: hub.statistics().dropped >= len(forgeries) + 1)
            ref = await b.resolve("a", "echo")  # the node still works, its link to b too
            assert ref is not None
            assert await ref.ask("still here") == ("echo", "still here", ref)
        assert not canary.exists()
        assert [n.alive for n in a.nodes if n.name == "b"] == [True]


async def test_a_replayed_batch_is_dropped(broker: str) -> None:
    async with pair(broker) as (a, b):
        await a.spawn(Echo, name="echo")
        assert b.cluster is not None
        assert b.cluster.hub is not None
        assert a.cluster is not None
        hub = a.cluster.hub
        assert hub is not None
        b_hub = b.cluster.hub
        key = signing_key(SECRET, a.name)
        body = pickle.dumps([])
        message_id = f"{b_hub._incarnation}.1"  # b's first message, long taken
        async with open_connection(broker) as connection:
            channel = await connection.channel()
            await channel.basic_publish("", inbox_name(a.name, "a"), body, properties=Properties(
                message_type="batch", app_id="b", message_id=message_id,
                headers={"to": "a", "sig": signature(key, "batch", "b", "a", message_id, body)}))
        with trio.fail_after(10):
            await until(lambda: hub.statistics().dropped >= 1)
        assert [n.alive for n in a.nodes if n.name == "b"] == [True]


async def test_a_node_with_the_wrong_secret_hears_nothing_and_is_heard_by_none(broker: str) -> None:
    cluster = cluster_name()
    async with node(broker, cluster, "a") as a, \
            node(broker, cluster, "intruder", secret=b"not the secret of this cluster") as intruder:
        assert a.cluster is not None
        assert a.cluster.hub is not None
        assert intruder.cluster is not None
        assert intruder.cluster.hub is not None
        with trio.fail_after(10):
            # each has dropped the other's hello and beats
            await until(lambda: a.cluster.hub.statistics().dropped >= 2  # type: ignore[union-attr]
                        and intruder.cluster.hub.statistics().dropped >= 2)  # type: ignore[union-attr]
        assert [n.name for n in a.nodes] == ["a"]
        assert [n.name for n in intruder.nodes] == ["intruder"]


def test_check_message_verifies_before_decoding() -> None:
    key = signing_key(SECRET, "c")
    body = b"payload"

    def props(**changes: Any) -> Properties:
        fields: dict[str, Any] = {"message_type": "batch", "app_id": "b", "message_id": "inc.7",
                                  "headers": {"to": "a", "sig": signature(key, "batch", "b", "a", "inc.7", body)}}
        fields.update(changes)
        return Properties(**fields)

    assert check_message(key, "a", props(), body) == Checked("batch", "b", "inc", 7)
    for bad in (props(message_type="other"), props(app_id=None), props(headers={"to": "a"}),
                props(app_id="c"), props(message_id="inc.8")):
        with pytest.raises(Exception, match=r"signature|properties"):
            check_message(key, "a", bad, body)
    with pytest.raises(Exception, match="not to 'x'"):
        check_message(key, "x", props(), body)
    with pytest.raises(Exception, match="wrong signature"):
        check_message(key, "a", props(), body + b"!")
    with pytest.raises(Exception, match="wrong signature"):
        check_message(signing_key(SECRET, "another cluster"), "a", props(), body)


# -- arguments --------------------------------------------------------------------------------------------------


URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"broker": URL}, ValueError, "needs secret="),
    ({"secret": SECRET}, ValueError, "without broker="),
    ({"broker": URL, "secret": b"short"}, ValueError, "at least 16 bytes"),
    ({"broker": URL, "secret": 12345}, TypeError, "bytes or the path"),
    ({"broker": URL, "secret": "/nonexistent/secret"}, ValueError, "'/nonexistent/secret'"),
    ({"broker": "amqps://u:hidden@host/"}, ValueError, r"broker='amqps://u:\*\*\*@host/' needs secret="),
    ({"broker": "http://u:hidden@host/", "secret": SECRET}, ValueError, r"u:\*\*\*@host"),
    ({"broker": 5672, "secret": SECRET}, TypeError, "URL string"),
    ({"broker": URL, "secret": SECRET, "node_name": "x" * 101}, ValueError, "at most 100 bytes"),
])
def test_bad_broker_arguments_are_refused_naming_them(options: dict[str, Any], error: type[Exception],
                                                      match: str) -> None:
    with pytest.raises(error, match=match) as excinfo:
        ActorSystem("c", **options)
    assert "hidden" not in str(excinfo.value)
    assert SECRET.decode() not in str(excinfo.value)


def test_the_secret_can_be_read_from_a_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    assert load_secret(str(path)) == SECRET
    assert load_secret(path) == SECRET
    settings = BrokerSettings(URL, path)
    assert settings.secret == SECRET
    assert SECRET.decode() not in repr(settings)
    system = ActorSystem("c", broker=URL, secret=path)
    assert system.node_id.endswith(f".{os.getpid()}")  # the default node name: host name and pid


# -- two processes ----------------------------------------------------------------------------------------------


class Greeter(Actor):
    async def receive(self, message: Any) -> Any:
        return f"greetings, {message.rpartition(' ')[2]}"


async def test_two_processes_ask_each_other_and_a_kill_fails_the_pending_ask(
        broker: str, tmp_path: pathlib.Path) -> None:
    cluster = cluster_name()
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    async with node(broker, cluster, "a") as a:
        await a.spawn(Greeter, name="greeter")
        probe = await Probe.spawn(a)
        watcher = await a.spawn(Watcher, probe.ref)
        async with peer_process(broker, cluster, "b", str(secret_file), str(HEARTBEAT), "a") as (process, next_line):
            with trio.fail_after(30):
                assert await next_line() == "greetings, b"  # b resolved a's actor, asked it
                assert await next_line() == "ready"
                peer = await a.wait_node("b")
                assert peer.pid == process.pid
                ref = await a.resolve("b", "echo")
                assert ref is not None
                assert await ref.ask("pid") == process.pid
                echoed = await ref.ask(probe.ref)
                assert echoed == ("echo", probe.ref, ref)
                await watcher.ask(ref)
            failure, seconds = await kill_during_ask(ref, process.pid)
            assert seconds < 3.0  # the pending ask failed within a few heartbeats
            assert isinstance(failure.cause, NodeDown)  # type: ignore[attr-defined]
            with trio.fail_after(5):
                terminated = await probe.expect(Terminated)
            assert terminated.ref is ref
            assert isinstance(terminated.reason, NodeDown)
