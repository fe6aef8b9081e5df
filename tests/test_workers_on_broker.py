"""A node of a cluster on the broker that runs worker processes: its peers reach the actors on its workers
through it (asks, tells, watches, look-ups), those actors reach the peers, and the loss of a worker, or of the
whole node, is ``NodeDown`` on the peers; ``gather_statistics(nodes="all")`` brings the peers' figures.

These tests need the broker of ``scripts/broker`` (skipped without one) and start worker processes; they wait
in real time, every wait bounded.
"""

from __future__ import annotations

import os
import pathlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from amqp_support import broker as broker  # the session's RabbitMQ (skips without one)
from helpers import kill_during_ask
from test_peers import HEARTBEAT, SECRET, Watcher, cluster_name, peer_process, until

from actors import (
    Actor,
    ActorRef,
    ActorStopped,
    ActorSystem,
    ClusterStatistics,
    LifecycleEvent,
    NodeDown,
    NodeUp,
    SystemStatistics,
    Terminated,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(90)


class Echo(Actor):
    """Answers ``"pid"`` with its process id, ``"nodes"`` with the nodes its system knows, asks ``ref`` for
    ``("ask", ref, x)`` and answers with what it got, tells ``ref`` x for ``("tell", ref, x)``; never answers
    ``"hang"``; echoes the rest with its ref."""

    async def receive(self, message: Any) -> Any:
        match message:
            case "pid":
                return os.getpid()
            case "nodes":
                return {node.name: (node.kind, node.head, node.alive) for node in self.system.nodes}
            case "hang":
                await trio.sleep_forever()
            case ("ask", ActorRef() as ref, value):
                return await ref.ask(value)
            case ("tell", ActorRef() as ref, value):
                ref.tell(value)
                return None
        return ("echo", message, self.ref)


@asynccontextmanager
async def cluster_of(url: str, *, workers: int) -> AsyncIterator[tuple[ActorSystem, ActorSystem]]:
    """Node ``a`` with ``workers`` worker processes and node ``b``, a plain peer, each knowing the other and
    ``b`` knowing ``a``'s workers."""
    cluster = cluster_name()
    async with ActorSystem(cluster, broker=url, secret=SECRET, node_name="a", workers=workers,
                           _heartbeat=HEARTBEAT) as a, \
            ActorSystem(cluster, broker=url, secret=SECRET, node_name="b", _heartbeat=HEARTBEAT) as b:
        with trio.fail_after(20):
            await a.wait_node("b")
            await b.wait_node("a")
            for index in range(1, workers + 1):
                await b.wait_node(f"a.w{index}")
        yield a, b


async def test_a_peer_asks_an_actor_on_a_nodes_worker_and_that_actor_asks_back(broker: str) -> None:
    async with cluster_of(broker, workers=1) as (a, b):
        worker = next(node for node in a.nodes if node.kind == "worker")
        assert (worker.name, worker.head) == ("a.w1", "a")
        seen = {node.name: node for node in b.nodes}
        assert set(seen) == {"a", "b", "a.w1"}
        assert (seen["a.w1"].kind, seen["a.w1"].head, seen["a.w1"].pid) == ("peer", "a", worker.pid)
        assert (seen["a"].kind, seen["a"].head) == ("peer", None)
        await a.spawn(Echo, name="echo", node="spread")
        await b.spawn(Echo, name="local")
        probe = await Probe.spawn(b)
        with trio.fail_after(10):
            ref = await b.resolve("a", "echo")  # the head knows its workers' actors by path
            assert ref is not None
            assert ref.node == seen["a.w1"]
            assert await b.resolve("a.w1", "echo") is ref  # asked of the worker itself, through the head
            assert await b.resolve("a.w1", "nobody") is None
            assert await ref.ask("pid") == worker.pid
            assert await ref.ask("hi") == ("echo", "hi", ref)
            for i in range(50):  # order is kept per sender and receiver, through the head both ways
                ref.tell(("tell", probe.ref, i))
            for i in range(50):
                await probe.expect(i)
            # The worker's actor reaches b's actors: a ref in a message, and an ask through the head both ways.
            local = b.lookup("local")
            assert local is not None
            answer = await ref.ask(("ask", local, "from a worker"))
            assert answer == ("echo", "from a worker", local)
            assert answer[2] is local  # b's ref came back to b as the same ref
            # The worker knows the cluster: its head's peers and their workers, and its siblings.
            known = await ref.ask("nodes")
            assert known["b"] == ("peer", None, True)
            assert known["a"] == ("head", None, True)
            assert known["a.w1"] == ("worker", "a", True)
            with pytest.raises(ValueError, match=r"'a\.w1' is a worker of a"):
                await b.spawn(Echo, node="a.w1")


async def test_killing_a_worker_is_node_down_on_the_peer_and_the_restarted_actor_is_reachable(broker: str) -> None:
    async with cluster_of(broker, workers=1) as (a, b):
        events = await Probe.spawn(b)
        b.events.subscribe(events.ref, NodeUp, NodeDown)
        restarts = await Probe.spawn(a)
        a.events.subscribe(restarts.ref, LifecycleEvent)
        supervised = await a.spawn(Echo, name="echo", node="spread")
        probe = await Probe.spawn(b)
        watcher = await b.spawn(Watcher, probe.ref)
        with trio.fail_after(10):
            ref = await b.resolve("a", "echo")
            assert ref is not None
            lost = ref.node
            assert lost.name == "a.w1"
            await watcher.ask(ref)
        failure, seconds = await kill_during_ask(ref, lost.pid)
        assert seconds < 2.0  # a saw its worker go and told b at once
        assert isinstance(failure.cause, NodeDown)  # type: ignore[attr-defined]
        assert failure.cause.node.name == "a.w1"  # type: ignore[attr-defined]
        with trio.fail_after(5):
            terminated = await probe.expect(Terminated)
            down = await events.expect(NodeDown)
        assert terminated.ref is ref
        assert isinstance(terminated.reason, NodeDown)
        assert (down.node.name, down.node.kind, down.node.head, down.node.alive) == ("a.w1", "peer", "a", False)
        assert [node.alive for node in b.nodes if node.name == "a"] == [True]  # only the worker was lost
        # a's guardian restarts the actor on a replacement worker, behind the same ref on a.
        with trio.fail_after(20):
            while not (event := await restarts.expect(LifecycleEvent)).kind == "restarted":
                assert event.ref is supervised
            assert event.ref is supervised
            up = await events.expect(NodeUp)
        assert (up.node.name, up.node.head) == ("a.w2", "a")
        with pytest.raises(ActorStopped, match=r"node a\.w1 is down"):
            await ref.ask("after")  # the ref to the lost actor stays down
        with trio.fail_after(10):
            fresh = await b.resolve("a", "echo")
            assert fresh is not None
            assert fresh.node.name == "a.w2"
            assert await fresh.ask("pid") == up.node.pid
            await watcher.ask(fresh)


async def test_a_node_that_leaves_takes_its_workers_with_it(broker: str) -> None:
    cluster = cluster_name()
    async with ActorSystem(cluster, broker=broker, secret=SECRET, node_name="b", _heartbeat=HEARTBEAT) as b:
        events = await Probe.spawn(b)
        b.events.subscribe(events.ref, NodeUp, NodeDown)
        probe = await Probe.spawn(b)
        watcher = await b.spawn(Watcher, probe.ref)
        async with ActorSystem(cluster, broker=broker, secret=SECRET, node_name="a", workers=1,
                               _heartbeat=HEARTBEAT) as a:
            await a.spawn(Echo, name="echo", node="spread")
            with trio.fail_after(20):
                ups = {(await events.expect(NodeUp)).node.name for _ in range(2)}
                assert ups == {"a", "a.w1"}
                ref = await b.resolve("a", "echo")
                assert ref is not None
                await watcher.ask(ref)
                await ref.ask("sync")
        with trio.fail_after(5):
            downs = {(await events.expect(NodeDown)).node.name for _ in range(2)}
            terminated = await probe.expect(Terminated)
        assert downs == {"a", "a.w1"}
        assert terminated.ref is ref
        assert not any(node.alive for node in b.nodes if node.name in ("a", "a.w1"))
        assert await b.resolve("a.w1", "echo") is None


async def test_statistics_of_all_nodes_bring_the_peers_figures(broker: str) -> None:
    async with cluster_of(broker, workers=1) as (a, b):
        ref = await a.spawn(Echo, name="echo", node="spread")
        await a.spawn(Echo, name="here")
        await b.spawn(Echo, name="here")
        with trio.fail_after(10):
            await ref.ask("warm")
            await until(lambda: "echo" in a.statistics().actors)  # the worker's report reached a

            everyone = await b.gather_statistics(nodes="all")
        assert isinstance(everyone, ClusterStatistics)
        assert everyone.missing == {}
        assert everyone.actors["here"].node == "b"
        assert everyone.actors["here@a"].node == "a"
        assert everyone.actors["echo@a"].node == "a.w1"
        assert everyone.actors["echo@a"].handled >= 1
        assert {"here", "here@a", "echo@a"} <= set(everyone.actors)
        assert any(node == "a.w1" for _, node in everyone.by_class())
        # A path narrows every node's part; the default stays this system's own.
        narrowed = await b.gather_statistics("echo", nodes="all")
        assert set(narrowed.actors) == {"echo@a"}
        assert "here@a" not in b.statistics().actors
        own = await b.gather_statistics()
        assert type(own) is SystemStatistics
        assert set(own.actors) == {"here"}
        with pytest.raises(ValueError, match="nodes='every'"):
            await b.gather_statistics(nodes="every")  # type: ignore[call-overload]


async def test_a_read_of_every_nodes_figures_can_be_cancelled(broker: str) -> None:
    async with cluster_of(broker, workers=0) as (a, b):
        await a.spawn(Echo, name="there")
        with trio.move_on_after(0) as scope:  # cancelled while it waits for a's answer
            await b.gather_statistics(nodes="all")
        assert scope.cancelled_caught
        with trio.fail_after(10):  # a's late answer finds nothing waiting for it; the next read is whole
            everyone = await b.gather_statistics(nodes="all")
        assert set(everyone.actors) == {"there@a"}
        assert everyone.missing == {}


async def test_statistics_of_all_nodes_without_peers_are_this_systems() -> None:
    async with ActorSystem() as system:
        await system.spawn(Echo, name="one")
        everyone = await system.gather_statistics(nodes="all")
        assert set(everyone.actors) == {"one"}
        assert everyone.missing == {}


# -- two processes ----------------------------------------------------------------------------------------------


class Greeter(Actor):
    async def receive(self, message: Any) -> Any:
        return f"greetings, {message.rpartition(' ')[2]}"


async def test_a_node_with_a_worker_in_another_process(broker: str, tmp_path: pathlib.Path) -> None:
    """The test's system is the plain peer ``b``; node ``a`` runs in a process of its own with one worker, where
    its ``echo`` lives (and which it restarts there). ``a``'s worker asks ``b``'s greeter first."""
    cluster = cluster_name()
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    async with ActorSystem(cluster, broker=broker, secret=SECRET, node_name="b", _heartbeat=HEARTBEAT) as b:
        await b.spawn(Greeter, name="greeter")
        events = await Probe.spawn(b)
        b.events.subscribe(events.ref, NodeUp, NodeDown)
        probe = await Probe.spawn(b)
        watcher = await b.spawn(Watcher, probe.ref)
        async with peer_process(broker, cluster, "a", str(secret_file), str(HEARTBEAT), "b", "1") as (process,
                                                                                                    next_line):
            with trio.fail_after(30):
                assert await next_line() == "greetings, a"
                assert await next_line() == "ready"
                worker = await b.wait_node("a.w1")
                assert (worker.kind, worker.head) == ("peer", "a")
                assert worker.pid != process.pid
                ref = await b.resolve("a", "echo")
                assert ref is not None
                assert ref.node == worker
                assert await ref.ask("pid") == worker.pid
                assert await ref.ask(probe.ref) == ("echo", probe.ref, ref)
                await watcher.ask(ref)
                statistics = await b.gather_statistics(nodes="all")
                while "echo@a" not in statistics.actors:  # until the worker has reported to its head (1 s)
                    await trio.sleep(0.1)
                    statistics = await b.gather_statistics(nodes="all")
                assert statistics.missing == {}
                assert statistics.actors["echo@a"].node == "a.w1"
            failure, _ = await kill_during_ask(ref, worker.pid)
            assert isinstance(failure.cause, NodeDown)  # type: ignore[attr-defined]
            assert failure.cause.node.name == "a.w1"  # type: ignore[attr-defined]
            with trio.fail_after(5):
                terminated = await probe.expect(Terminated)
            assert terminated.ref is ref
            assert isinstance(terminated.reason, NodeDown)
            with trio.fail_after(20):
                replacement = await b.wait_node("a.w2")
                fresh = None
                while fresh is None or fresh.node != replacement:  # until a's guardian restarted it there
                    await trio.sleep(0.05)
                    fresh = await b.resolve("a", "echo")
                assert await fresh.ask("pid") == replacement.pid
            # A peer that stops answering (its process stopped) is named as missing, not waited for.
            os.kill(process.pid, signal.SIGSTOP)
            try:
                with trio.fail_after(5):
                    stalled = await b.gather_statistics(nodes="all")
                assert set(stalled.missing) == {"a"}
                assert "echo@a" not in stalled.actors
                assert "greeter" in stalled.actors
            finally:
                os.kill(process.pid, signal.SIGCONT)
