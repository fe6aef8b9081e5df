"""Peers on RabbitMQ: tells and asks from one node of a cluster to an actor on another, through the broker.

Needs the broker of ``scripts/broker`` (``amqp://guest:guest@127.0.0.1:5672/``, or ``TRIO_ACTORS_BROKER``). Three
layouts: ``in_process``, two systems in one trio loop (one core does both ends' work); ``two_process``, the
sink's node in a process of its own (``tests/peer_node.py``), as two machines would be; and ``via_worker``, the
same with the sink on a worker process of that node (``workers=1``), which its node relays to (two hops more
each way: the peer's node to its worker and back, over the worker's link).

``tell_per_s``: node a tells an actor on node b ``messages`` small messages in bursts of ``burst`` (a checkpoint
between bursts, as an actor's handler would give), then asks it once, so every message was handled; each flush
for b is one signed AMQP message. ``ask_p50_us`` / ``ask_p99_us``: one ask at a time (four hops through the
broker: a to the broker to b and back). ``pipelined_asks_per_s``: 64 asks in flight at once.
``peer_cpu_ms_per_1000_asks`` (layouts with b in a process of its own, on Linux): the CPU time b's processes
(its node, and its worker for ``via_worker``) spent on 1000 of those pipelined asks, read from ``/proc``, so it
changes little with the other load on the machine: what the relay through b's head costs b's machine.
"""

from __future__ import annotations

import functools
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import trio

from actors import Actor, ActorRef, ActorSystem

from .workers import Sink

URL = os.environ.get("TRIO_ACTORS_BROKER", "amqp://guest:guest@127.0.0.1:5672/")
SECRET = b"the benchmark's cluster secret.."
PEER_NODE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "peer_node.py"


class Greeter(Actor):
    """What ``tests/peer_node.py`` asks on the other node when it starts."""

    async def receive(self, message: Any) -> Any:
        return f"greetings, {message}"


def _cpu_seconds(pids: list[int] | None) -> float | None:
    """The CPU time (user and system) the processes ``pids`` have spent so far, from ``/proc``; ``None`` without
    pids, or without ``/proc``."""
    if pids is None or not pathlib.Path("/proc/self/stat").exists():
        return None
    total = 0
    for pid in pids:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


async def _measure(sink: ActorRef, messages: int, burst: int, asks: int, *,
                   check_count: bool, pids: list[int] | None = None) -> dict[str, float]:
    start_count = await sink.ask("get")
    start = time.perf_counter()
    for sent in range(0, messages, burst):
        for i in range(sent, min(messages, sent + burst)):
            sink.tell(i)
        await trio.lowlevel.checkpoint()
    counted = await sink.ask("get")
    tell_rate = messages / (time.perf_counter() - start)
    if check_count:
        assert counted == start_count + messages, (counted, start_count, messages)
    latencies = []
    for _ in range(asks):
        started = time.perf_counter()
        await sink.ask("get")
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    pipelined = asks * 4

    async def asker(count: int) -> None:
        for _ in range(count):
            await sink.ask("get")

    cpu = _cpu_seconds(pids)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(64):
            nursery.start_soon(asker, pipelined // 64)
    pipelined_rate = (pipelined // 64 * 64) / (time.perf_counter() - start)
    figures = {
        "tell_per_s": tell_rate,
        "ask_p50_us": statistics.median(latencies) * 1e6,
        "ask_p99_us": latencies[int(len(latencies) * 0.99) - 1] * 1e6,
        "pipelined_asks_per_s": pipelined_rate,
    }
    cpu_after = _cpu_seconds(pids)
    if cpu is not None and cpu_after is not None:
        figures["peer_cpu_ms_per_1000_asks"] = (cpu_after - cpu) * 1e6 / (pipelined // 64 * 64)
    return figures


async def _in_process(messages: int, burst: int, asks: int) -> dict[str, float]:
    cluster = f"bench-{uuid.uuid4().hex[:8]}"
    async with ActorSystem(cluster, broker=URL, secret=SECRET, node_name="a") as a, \
            ActorSystem(cluster, broker=URL, secret=SECRET, node_name="b") as b:
        await b.spawn(Sink, name="sink")
        with trio.fail_after(10):
            await a.wait_node("b")
            sink = await a.resolve("b", "sink")
        assert sink is not None
        return await _measure(sink, messages, burst, asks, check_count=True)


async def _two_process(messages: int, burst: int, asks: int, workers: int = 0) -> dict[str, float]:
    """The sink is ``tests/peer_node.py``'s echo actor (on its worker with ``workers=1``), which answers
    anything but ``"get"`` too: a tell to it is handled as an echo whose answer nobody asked for, so the tells
    are counted by a final ask only."""
    cluster = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as directory:
        secret_file = pathlib.Path(directory) / "secret"
        secret_file.write_bytes(SECRET)
        async with ActorSystem(cluster, broker=URL, secret=SECRET, node_name="a") as a:
            await a.spawn(Greeter, name="greeter")
            process = await trio.lowlevel.open_process(
                [sys.executable, str(PEER_NODE), URL, cluster, "b", str(secret_file), "1.0", "a", str(workers)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            try:
                with trio.fail_after(30):
                    await a.wait_node("b")
                    sink = None
                    while sink is None:
                        sink = await a.resolve("b", "echo")
                        await trio.sleep(0.05)
                assert sink.node.name == ("b.w1" if workers else "b"), sink.node
                pids = [process.pid] + [node.pid for node in a.nodes if node.head == "b"]
                return await _measure(sink, messages, burst, asks, check_count=False, pids=pids)
            finally:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()


def run(quick: bool = False) -> dict[str, float]:
    """The figures above for both layouts, best of three runs (one when ``quick``)."""
    messages = 20_000 if quick else 200_000
    asks = 200 if quick else 2_000
    figures: dict[str, float] = {}
    layouts = (("in_process", _in_process), ("two_process", _two_process),
               ("via_worker", functools.partial(_two_process, workers=1)))
    for layout, measure in layouts:
        runs = [trio.run(measure, messages, 1_000, asks) for _ in range(1 if quick else 3)]
        figures[f"{layout}_tell_per_s"] = max(run["tell_per_s"] for run in runs)
        figures[f"{layout}_ask_p50_us"] = min(run["ask_p50_us"] for run in runs)
        figures[f"{layout}_ask_p99_us"] = min(run["ask_p99_us"] for run in runs)
        figures[f"{layout}_pipelined_asks_per_s"] = max(run["pipelined_asks_per_s"] for run in runs)
        if all("peer_cpu_ms_per_1000_asks" in run for run in runs):
            figures[f"{layout}_peer_cpu_ms_per_1000_asks"] = min(run["peer_cpu_ms_per_1000_asks"] for run in runs)
    return figures


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv).items():
        print(f"{name}: {value:,.2f}")
