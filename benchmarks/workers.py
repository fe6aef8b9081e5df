"""Worker processes: tells and asks from the head to an actor on a worker, against the in-process floor.

``remote_tell_per_s``: the head tells an actor on a worker ``messages`` small messages, then asks it once (so
every message was handled); ``floor_tell_per_s`` is a raw trio task and memory channel doing the same work in one
process, and ``remote_tell_vs_floor`` their ratio. ``remote_ask_p50_us`` / ``p99``: one ask at a time.
``pipelined_asks_per_s``: 64 asks in flight at once (``local_pipelined_asks_per_s``: the same against an actor in
the head's own process, the ceiling of the head's side). ``bare_round_trip_p50_us``: the floor under an ask, a
100-byte round trip between two trio processes over a socketpair with nothing else on the way.
``kill_to_failed_ask_ms``: from ``kill -9`` of the worker to the pending ask failing with ``NodeDown``;
``kill_to_replacement_up_ms`` / ``..._answers_ms``: to the replacement worker's ``NodeUp``, and to an actor
spawned there answering. ``cpu_speedup_2_workers``: a pool
of two actors doing about 5 ms of pure-Python work per message, spread over two workers, against the same pool
in one process.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import statistics
import sys
import time
from typing import Any

import trio

from actors import Actor, ActorFailed, ActorSystem, NodeUp


class _OnEvent(Actor):
    """Sets ``event`` when it receives an event (subscribed to ``NodeUp``)."""

    def __init__(self, event: trio.Event) -> None:
        self.event = event

    async def receive(self, message: Any) -> Any:
        self.event.set()


class Sink(Actor):
    """Counts what it is told; answers an ask with the count."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message == "get":
            return self.count
        if message == "hang":
            await trio.sleep_forever()
        self.count += 1
        return None


async def _floor_tell(messages: int) -> float:
    send, receive = trio.open_memory_channel[Any](messages + 1)
    done = trio.Event()

    async def consumer() -> None:
        count = 0
        async for message in receive:
            if message == "get":
                done.set()
                return
            count += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        start = time.perf_counter()
        for i in range(messages):
            send.send_nowait(i)
        send.send_nowait("get")
        await done.wait()
        return messages / (time.perf_counter() - start)


_ECHO = """
import socket, sys, trio
async def echo(fd):
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    while True:
        await trio.lowlevel.wait_readable(sock)
        data = sock.recv(65536)
        if not data:
            return
        sock.send(data)
trio.run(echo, int(sys.argv[1]))
"""


async def _bare_round_trip(count: int) -> float:
    """The p50 of a 100-byte round trip between two trio processes over a socketpair, with nothing else on the way:
    the floor under a cross-process ask (two wake-ups of a process, two reads, two writes)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    async with trio.open_nursery() as nursery:
        process = await nursery.start(functools.partial(
            trio.run_process, [sys.executable, "-c", _ECHO, str(theirs.fileno())], pass_fds=(theirs.fileno(),)))
        theirs.close()
        ours.setblocking(False)
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            ours.send(bytes(100))
            received = 0
            while received < 100:
                await trio.lowlevel.wait_readable(ours)
                received += len(ours.recv(65536))
            latencies.append(time.perf_counter() - started)
        ours.close()
        await process.wait()
    return statistics.median(latencies)


async def _pipelined(sink: Any, asks: int) -> float:
    """Asks a second with 64 askers, each waiting for its answer before it asks again."""

    async def asker(count: int) -> None:
        for _ in range(count):
            await sink.ask("get")

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(64):
            nursery.start_soon(asker, asks // 64)
    return (asks // 64 * 64) / (time.perf_counter() - start)


async def _local_pipelined(asks: int) -> float:
    """The same 64 askers against an actor in their own process: the ceiling of the head's side of an ask."""
    async with ActorSystem() as system:
        return await _pipelined(await system.spawn(Sink), asks)


async def _remote(messages: int, asks: int) -> dict[str, float]:
    async with ActorSystem(workers=1) as system:
        sink = await system.spawn(Sink, node="spread")
        await sink.ask("get")
        start = time.perf_counter()
        for i in range(messages):
            sink.tell(i)
        assert await sink.ask("get") == messages
        tell_rate = messages / (time.perf_counter() - start)
        latencies = []
        for _ in range(asks):
            started = time.perf_counter()
            await sink.ask("get")
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        pipelined_rate = await _pipelined(sink, asks * 4)
        joined = trio.Event()
        watcher = await system.spawn(_OnEvent, joined)
        system.events.subscribe(watcher, NodeUp)
        killed_at = 0.0

        async def kill() -> None:
            nonlocal killed_at
            await trio.sleep(0.2)
            killed_at = time.perf_counter()
            os.kill(sink.node.pid, signal.SIGKILL)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill)
            try:
                await sink.ask("hang")
            except ActorFailed:
                failed_after = time.perf_counter() - killed_at
        await joined.wait()
        replaced_after = time.perf_counter() - killed_at
        replacement = await system.spawn(Sink, node="spread")  # the only live worker now
        await replacement.ask("get")
        answered_after = time.perf_counter() - killed_at
        return {
            "remote_tell_per_s": tell_rate,
            "remote_ask_p50_us": statistics.median(latencies) * 1e6,
            "remote_ask_p99_us": latencies[int(len(latencies) * 0.99) - 1] * 1e6,
            "pipelined_asks_per_s": pipelined_rate,
            "kill_to_failed_ask_ms": failed_after * 1e3,
            "kill_to_replacement_up_ms": replaced_after * 1e3,
            "kill_to_replacement_answers_ms": answered_after * 1e3,
        }


class Busy(Actor):
    """About ``work`` units of pure-Python work per message (a unit is one trial division)."""

    async def receive(self, message: Any) -> Any:
        total = 0
        for n in range(message):
            total += n % 7
        return total


async def _cpu(messages: int, work: int, workers: int) -> float:
    from actors import Pool

    async with ActorSystem(workers=workers) as system:
        pool = await system.spawn(Pool, Busy, size=2, spread=workers > 0)
        for _ in range(4):
            await pool.ask(work)
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(messages):
                nursery.start_soon(pool.ask, work)
        return time.perf_counter() - start


def _work_for(milliseconds: float) -> int:
    units = 100_000
    start = time.perf_counter()
    total = 0
    for n in range(units):
        total += n % 7
    per_unit = (time.perf_counter() - start) / units
    return max(1, int(milliseconds / 1e3 / per_unit))


def run(quick: bool = False) -> dict[str, float]:
    """The figures above, best of three runs (the kill figure from the last)."""
    messages = 20_000 if quick else 200_000
    asks = 200 if quick else 2_000
    floor = max(trio.run(_floor_tell, messages) for _ in range(3))
    runs = [trio.run(_remote, messages, asks) for _ in range(1 if quick else 3)]
    figures = {
        "floor_tell_per_s": floor,
        "remote_tell_per_s": max(run["remote_tell_per_s"] for run in runs),
        "remote_ask_p50_us": min(run["remote_ask_p50_us"] for run in runs),
        "remote_ask_p99_us": min(run["remote_ask_p99_us"] for run in runs),
        "pipelined_asks_per_s": max(run["pipelined_asks_per_s"] for run in runs),
        "kill_to_failed_ask_ms": runs[-1]["kill_to_failed_ask_ms"],
        "kill_to_replacement_up_ms": runs[-1]["kill_to_replacement_up_ms"],
        "kill_to_replacement_answers_ms": runs[-1]["kill_to_replacement_answers_ms"],
    }
    figures["remote_tell_vs_floor"] = figures["remote_tell_per_s"] / floor
    figures["local_pipelined_asks_per_s"] = max(trio.run(_local_pipelined, asks * 4) for _ in range(3))
    figures["bare_round_trip_p50_us"] = min(trio.run(_bare_round_trip, asks) for _ in range(3)) * 1e6
    work = _work_for(5.0)
    cpu_messages = 40 if quick else 200
    alone = min(trio.run(_cpu, cpu_messages, work, 0) for _ in range(2))
    spread = min(trio.run(_cpu, cpu_messages, work, 2) for _ in range(2))
    figures["cpu_speedup_2_workers"] = alone / spread
    return figures


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:,.2f}")
