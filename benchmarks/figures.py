"""The cost of the queue figures: the counting workload with figures on and with them switched off.

Counters (arrivals, handled, lengths) are always kept; ``Metrics(enabled=False)`` drops the sampled timestamps
and the length ticks. ``figures_overhead_percent`` is how much slower counting is with figures on.
"""

from __future__ import annotations

import time

import trio

from actors import ActorSystem, Metrics

from .core import Counter


async def _counting(messages: int, metrics: Metrics) -> float:
    async with ActorSystem(metrics=metrics) as system:
        counter = await system.spawn(Counter)
        start = time.perf_counter()
        for _ in range(messages):
            counter.tell("inc")
        await counter.ask("get")
        return messages / (time.perf_counter() - start)


def run(quick: bool = False) -> dict[str, float]:
    """Counting messages/s with figures on and off (best of five, alternating), and the overhead."""
    messages = 20_000 if quick else 200_000
    on: list[float] = []
    off: list[float] = []
    for _ in range(5):
        on.append(trio.run(_counting, messages, Metrics()))
        off.append(trio.run(_counting, messages, Metrics(enabled=False)))
    return {
        "counting_figures_on_per_s": max(on),
        "counting_figures_off_per_s": max(off),
        "figures_overhead_percent": (max(off) / max(on) - 1.0) * 100.0,
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:,.2f}")
