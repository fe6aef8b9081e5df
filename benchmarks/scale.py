"""The figures at scale: ``system.statistics()`` and a metrics scrape at 1k, 10k and 100k actors, and what keeping
the figures costs a message, side by side in one run: ``python -m benchmarks.scale [--sizes 1000 10000 100000]``.

Every actor is sent one message first, so that each one has figures: ``statistics()`` and a scrape are timed then,
while most of them still have the pending figures of a first message (the tick makes theirs in its share of the
loop), and ``statistics()`` again once every one of them has been parked (quiet since), the state of a large system
of mostly idle actors. A scrape is one HTTP GET of the page that :func:`actors.serve_metrics` serves (its default
options), by a client in the same trio loop; while it runs, a task that sleeps 1 ms at a time records how late it
woke at worst, which is how long the loop (and so message handling) did not run while the scrape was served: right
after the first messages, that includes the collector's passes over the figures the tick makes meanwhile; a
second scrape once every actor is parked ("settled") shows the scrape's own share. The counting rows
are :mod:`benchmarks.figures`: counting with figures on against the same build with them off, runs alternated, best
of each.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from typing import Any

import trio

from actors import Actor, ActorSystem
from actors._metrics import serve_metrics

from . import figures


class Idle(Actor):
    """Does nothing with what it receives."""

    async def receive(self, message: Any) -> None:
        return None


async def _get(url: str) -> tuple[float, int, int]:
    """Seconds, body bytes and HTTP status of one GET of ``url``."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    start = time.perf_counter()
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(f"GET /metrics HTTP/1.1\r\nHost: {host_port}\r\nAccept: text/plain\r\n\r\n".encode())
        data = bytearray()
        with trio.move_on_after(30):
            while chunk := await stream.receive_some(1 << 20):
                data += chunk
    seconds = time.perf_counter() - start
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return seconds, len(body), status


async def _watch_stalls(worst: list[float]) -> None:
    """Sleep 1 ms at a time and keep the worst lateness in ``worst[0]``."""
    while True:
        before = time.perf_counter()
        await trio.sleep(0.001)
        worst[0] = max(worst[0], time.perf_counter() - before - 0.001)


async def _at_size(actors: int, repeat: int) -> dict[str, float]:
    async with ActorSystem(name="bench-scale") as system:
        refs = []
        for i in range(actors):
            refs.append(await system.spawn(Idle, name=f"a{i}"))
        for ref in refs:
            ref.tell("hello")
        await trio.sleep(0.3)  # handled, and sampled by a tick or so
        gc.collect()
        best_stats = _best_statistics(system, actors, repeat)
        start = time.perf_counter()
        system.statistics(top=20, by="mailbox_length")
        top_seconds = time.perf_counter() - start
        best_scrape, size, status, stall = await _scrapes(system, repeat)
        for _ in range(240):  # (the engine's view: wait, a minute at most, until the tick has parked every actor)
            if not system._measured:
                break
            await trio.sleep(0.25)
        gc.collect()
        best_parked = _best_statistics(system, actors, repeat)
        _, _, _, settled_stall = await _scrapes(system, repeat)
    return {"statistics_ms": best_stats * 1e3, "parked_ms": best_parked * 1e3, "top20_ms": top_seconds * 1e3,
            "scrape_ms": best_scrape * 1e3, "scrape_bytes": size, "status": status, "stall_ms": stall * 1e3,
            "settled_stall_ms": settled_stall * 1e3}


async def _scrapes(system: ActorSystem, repeat: int) -> tuple[float, int, int, float]:
    """``repeat`` scrapes of a metrics endpoint on ``system``: the best seconds, the body's bytes, the HTTP status,
    and the worst lateness of a task sleeping 1 ms at a time meanwhile."""
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_metrics, system)
        worst = [0.0]
        nursery.start_soon(_watch_stalls, worst)
        await trio.sleep(0.01)
        best_scrape, size, status = float("inf"), 0, 0
        for _ in range(repeat):
            seconds, size, status = await _get(url)
            best_scrape = min(best_scrape, seconds)
        nursery.cancel_scope.cancel()
    return best_scrape, size, status, worst[0]


def _best_statistics(system: ActorSystem, actors: int, repeat: int) -> float:
    """The best seconds of ``repeat`` calls of ``system.statistics()`` (of at least ``actors`` actors)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        stats = system.statistics()
        best = min(best, time.perf_counter() - start)
    assert len(stats.actors) >= actors
    return best


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="statistics() calls and scrapes per size; best kept")
    parser.add_argument("--quick", action="store_true", help="a shorter counting run")
    args = parser.parse_args(argv)
    print(f"{'actors':>8} {'statistics()':>13} {'top=20':>9} {'parked':>9} {'scrape':>10} {'scrape size':>12} "
          f"{'status':>6} {'worst stall':>12} {'settled':>9}")
    for size in args.sizes:
        row = trio.run(_at_size, size, args.repeat)
        print(f"{size:>8,} {row['statistics_ms']:>10.1f} ms {row['top20_ms']:>6.1f} ms {row['parked_ms']:>6.1f} ms "
              f"{row['scrape_ms']:>7.0f} ms {row['scrape_bytes'] / 1e6:>9.2f} MB {row['status']:>6} "
              f"{row['stall_ms']:>9.1f} ms {row['settled_stall_ms']:>6.1f} ms", flush=True)
    counting = figures.run(quick=args.quick)
    print(f"counting, figures on:  {counting['counting_figures_on_per_s']:>12,.0f} messages/s")
    print(f"counting, figures off: {counting['counting_figures_off_per_s']:>12,.0f} messages/s")
    print(f"figures cost:          {counting['figures_overhead_percent']:>11.1f} % (on vs off, same build, "
          "alternated, best of 5)")


if __name__ == "__main__":
    main()
