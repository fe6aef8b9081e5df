"""CPU-bound actors spread over worker processes: counting primes in chunks, in parallel.

One Python process runs one handler at a time, so actors doing pure-Python work share one core. Spread over
worker processes (``ActorSystem(workers=N)`` and ``Pool(..., spread=True)``), the same actors use N cores;
nothing else in their code changes.

Run it with ``python -m examples.cpu_bound``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from actors import Actor, ActorSystem, Pool


def count_primes(start: int, stop: int) -> int:
    """Primes in ``[start, stop)``, by trial division: deliberately pure Python."""
    found = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
    return found


class PrimeCounter(Actor):
    """Answers ``(start, stop)`` with the number of primes in that range and the process that counted them."""

    async def receive(self, message: Any) -> Any:
        start, stop = message
        return count_primes(start, stop), os.getpid()


async def count(limit: int, *, workers: int, chunk: int = 5_000) -> tuple[int, set[int], float]:
    """Count the primes below ``limit`` with a pool of ``max(workers, 1) * 2`` counters; also say which processes
    did the work and how long it took."""
    async with ActorSystem(workers=workers) as system:
        pool = await system.spawn(Pool, PrimeCounter, size=max(workers, 1) * 2, spread=workers > 0)
        started = time.perf_counter()
        results: list[tuple[int, int]] = []

        async def ask(start: int) -> None:
            results.append(await pool.ask((start, min(start + chunk, limit))))

        async with trio.open_nursery() as nursery:
            for start in range(0, limit, chunk):
                nursery.start_soon(ask, start)
        elapsed = time.perf_counter() - started
    return sum(found for found, _ in results), {pid for _, pid in results}, elapsed


async def main(limit: int = 60_000) -> int:
    alone, _, one_process = await count(limit, workers=0)
    spread, pids, two_workers = await count(limit, workers=2)
    assert alone == spread
    print(f"{spread} primes below {limit:,}: {one_process:.2f}s in one process, "
          f"{two_workers:.2f}s on {len(pids)} worker processes")
    return spread


if __name__ == "__main__":
    trio.run(main)
