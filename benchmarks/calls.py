"""Typed calls against asks of the same work, side by side in one run.

A counter answers ``ask(("add", n))`` from its ``receive`` (a ``match``, as the README's first example does) and
``call(Counter.add, n)`` from its method; the driver task alternates batches of each on the same actor, so drift
and noise hit both. ``ask_us`` and ``call_us`` are the best batch's time per request; ``call_vs_ask`` is their
ratio (the goal: at most 1.10). ``tell_us``/``cast_us``/``cast_vs_tell`` are the same for the tell forms (a batch
of tells, then one ask so that every one was handled).
"""

from __future__ import annotations

import time
from typing import Any

import trio

from actors import Actor, ActorSystem


class Counter(Actor):
    """The same work two ways: ``("add", n)`` through ``receive``, and :meth:`add`."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        match message:
            case ("add", n):
                self.count += n
                return self.count
            case "get":
                return self.count
        return None

    async def add(self, n: int) -> int:
        """Add ``n``; answer the new count."""
        self.count += n
        return self.count


async def _measure(batch: int, rounds: int) -> dict[str, float]:
    async with ActorSystem(name="bench-calls") as system:
        counter = await system.spawn(Counter)
        add = Counter.add

        async def asks() -> None:
            for _ in range(batch):
                await counter.ask(("add", 1))

        async def calls() -> None:
            for _ in range(batch):
                await counter.call(add, 1)

        async def tells() -> None:
            for _ in range(batch):
                counter.tell(("add", 1))
            await counter.ask("get")

        async def casts() -> None:
            for _ in range(batch):
                counter.cast(add, 1)
            await counter.ask("get")

        kinds = {"ask": asks, "call": calls, "tell": tells, "cast": casts}
        best = dict.fromkeys(kinds, float("inf"))
        for kind in kinds.values():  # warm-up: every path taken and its checks remembered
            await kind()
        for _ in range(rounds):
            for name, kind in kinds.items():
                start = time.perf_counter()
                await kind()
                best[name] = min(best[name], time.perf_counter() - start)
        expected = batch * (4 + 4 * rounds)
        count = await counter.ask("get")
        if count != expected:
            raise RuntimeError(f"the counter counted {count}, expected {expected}")
    figures = {f"{name}_us": seconds / batch * 1e6 for name, seconds in best.items()}
    figures["call_vs_ask"] = figures["call_us"] / figures["ask_us"]
    figures["cast_vs_tell"] = figures["cast_us"] / figures["tell_us"]
    return figures


def run(quick: bool = False) -> dict[str, float]:
    """Per-request times of asks, calls, tells and casts (best batch of many), and the two ratios."""
    return trio.run(_measure, 500 if quick else 2_000, 10 if quick else 60)


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:,.3f}")
