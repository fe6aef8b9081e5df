"""Supervision benchmarks: restart latency, and throughput when one message in ten crashes its actor.

``restart_latency_median_us``: from telling a message that makes an actor raise to the fresh instance having
handled the next message, less one plain ask round trip measured the same way (OneForOne, no backoff).
``crash_heavy_vs_crash_free_ratio``: messages/s with 10% of messages failing (each failure restarts the actor)
over messages/s with none failing; 1.0 would mean failures cost nothing.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import trio

from actors import Actor, ActorSystem, OneForOne

_UNLIMITED = OneForOne(max_restarts=10**9, within=1.0)


class Fragile(Actor):
    """Counts messages; raises on ``"boom"``."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        if message == "count":
            return self.count
        self.count += 1
        return None


async def _restart_latency(samples: int) -> float:
    async with ActorSystem(supervision=_UNLIMITED) as system:
        actor = await system.spawn(Fragile)
        plain: list[float] = []
        restart: list[float] = []
        for _ in range(samples):
            start = time.perf_counter()
            await actor.ask("ping")
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            actor.tell("boom")
            await actor.ask("ping")
            restart.append(time.perf_counter() - start)
    return max(0.0, statistics.median(restart) - statistics.median(plain))


async def _throughput(messages: int, crash_every: int | None) -> float:
    async with ActorSystem(supervision=_UNLIMITED) as system:
        actor = await system.spawn(Fragile)
        start = time.perf_counter()
        for n in range(messages):
            actor.tell("boom" if crash_every and n % crash_every == 0 else "work")
        await actor.ask("count")
        return messages / (time.perf_counter() - start)


def run(quick: bool = False) -> dict[str, float]:
    """Measure restart latency and the crash-heavy throughput ratio (best of three runs each)."""
    samples, messages = (200, 2_000) if quick else (2_000, 20_000)
    log = logging.getLogger("actors")
    level = log.level
    log.setLevel(logging.CRITICAL)  # every failure is logged with its traceback; not what is measured here
    try:
        latency = min(trio.run(_restart_latency, samples) for _ in range(3))
        crash_free = max(trio.run(_throughput, messages, None) for _ in range(3))
        crash_heavy = max(trio.run(_throughput, messages, 10) for _ in range(3))
    finally:
        log.setLevel(level)
    return {
        "restart_latency_median_us": latency * 1e6,
        "crash_free_messages_per_s": crash_free,
        "crash_heavy_messages_per_s": crash_heavy,
        "crash_heavy_vs_crash_free_ratio": crash_heavy / crash_free,
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:,.3f}")
