"""Routing-table benchmark: topic publish rate against the number of bindings, and the ``#`` trap.

``run()`` returns:

- ``topic_binds_per_s``: bindings added per second while building the 10,000-binding table;
- ``topic_10k_publishes_per_s`` / ``topic_10_publishes_per_s``: ``TopicTable.match`` calls per second on the
  same realistic four-word keys, against 10,000 and against 10 mixed ``*``/``#`` bindings;
- ``topic_10k_vs_10_ratio``: the first rate over the second. Near 1 means the cost of a publish follows the
  key, not the number of bindings;
- ``topic_10k_states_per_publish`` / ``topic_10_states_per_publish``: the mean number of (trie node, word
  index) states a match expands (``TopicTable.match_steps``), which is what the cost follows: the key's words
  plus the partial matches that the bindings share with it, never a scan of the bindings;
- ``pathological_max_ms_per_publish``: the slowest mean time of one match of a 31-word key against a binding
  with 6, 7 or 8 ``#`` words (RabbitMQ 3.10 takes seconds to minutes here; a memoised walk, microseconds).

Deterministic: the bindings and keys come from a seeded :class:`random.Random`. ``quick=True`` uses fewer
publishes and repetitions so it runs in well under a second.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

if not __package__:  # Run as a script (python benchmarks/routing.py): make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime._routing import TopicTable, split_words

__all__ = ["run"]

_SEED = 20240917
_REGIONS = [f"region{i}" for i in range(8)]
_SERVICES = [f"svc{i}" for i in range(2_000)]
_ENTITIES = ["order", "payment", "invoice", "user", "cart", "shipment", "refund", "stock", "review", "coupon"]
_EVENTS = ["created", "updated", "deleted", "failed", "retried", "expired", "approved", "rejected"]


def _topic_bindings(count: int, rng: random.Random) -> list[str]:
    """``count`` binding patterns as a real system might have: subscriptions to one service's events, with
    ``*`` and ``#`` in various places. Every shape is present however small ``count`` is, and a key matches
    only a handful of the 10,000, so the rates compare the cost of finding matches, not of building sets."""
    shapes = [
        "*.{service}.{entity}.*",
        "*.{service}.#",
        "{region}.{service}.*.{event}",
        "#.{service}.{entity}.#",
        "#.{service}.*.{event}",
        "{region}.{service}.#",
        "*.{service}.*.*",
        "#.{service}.#",
        "{region}.*.{entity}.{event}.#",
        "*.*.{entity}.{event}.{service}",
    ]
    patterns: list[str] = []
    for index in range(count):
        shape = shapes[index % len(shapes)]
        patterns.append(
            shape.format(
                region=rng.choice(_REGIONS),
                service=rng.choice(_SERVICES),
                entity=rng.choice(_ENTITIES),
                event=rng.choice(_EVENTS),
            )
        )
    return patterns


def _routing_keys(count: int, rng: random.Random) -> list[str]:
    """Four-word keys: region.service.entity.event."""
    return [
        f"{rng.choice(_REGIONS)}.{rng.choice(_SERVICES)}.{rng.choice(_ENTITIES)}.{rng.choice(_EVENTS)}"
        for _ in range(count)
    ]


def _publish_rate(table: TopicTable[int], keys: list[str]) -> float:
    """``match`` calls per second over ``keys``."""
    match = table.match
    start = time.perf_counter()
    for key in keys:
        match(key)
    return len(keys) / (time.perf_counter() - start)


def _best_rates(tables: list[TopicTable[int]], keys: list[str], rounds: int) -> list[float]:
    """The best of ``rounds`` publish rates for each table, measured in alternation to share any noise."""
    best = [0.0] * len(tables)
    for _ in range(rounds):
        for index, table in enumerate(tables):
            best[index] = max(best[index], _publish_rate(table, keys))
    return best


def _pathological_ms(repeats: int) -> float:
    """Slowest mean milliseconds per match of a 31-word key against bindings with 6, 7 and 8 ``#`` words."""
    keys = [".".join(["a"] * 31), ".".join(["a", "b"] * 15 + ["a"])]
    assert all(len(split_words(key)) == 31 for key in keys)
    worst = 0.0
    for hashes in (6, 7, 8):
        patterns = [
            ".".join(["#"] * hashes),  # matches everything
            ".".join(["#", "a"] * (hashes - 1) + ["#", "z"]),  # can never match: full backtracking
            ".".join(["#", "*"] * hashes),  # at least `hashes` words, any of them
        ]
        for pattern in patterns:
            table: TopicTable[int] = TopicTable()
            table.bind(pattern, None, 0)
            for key in keys:
                start = time.perf_counter()
                for _ in range(repeats):
                    table.match(key)
                worst = max(worst, (time.perf_counter() - start) * 1000 / repeats)
    return worst


def run(quick: bool = False) -> dict[str, float]:
    """Measure topic routing; see the module docstring for the figures returned."""
    rng = random.Random(_SEED)
    publishes = 2_000 if quick else 100_000
    rounds = 2 if quick else 3
    repeats = 3 if quick else 100
    keys = _routing_keys(publishes, rng)

    big: TopicTable[int] = TopicTable()
    big_patterns = _topic_bindings(10_000, rng)
    start = time.perf_counter()
    for destination, pattern in enumerate(big_patterns):
        big.bind(pattern, None, destination)
    binds_per_s = len(big_patterns) / (time.perf_counter() - start)

    small: TopicTable[int] = TopicTable()
    for destination, pattern in enumerate(_topic_bindings(10, rng)):
        small.bind(pattern, None, destination)

    rate_big, rate_small = _best_rates([big, small], keys, rounds)
    sample = keys[:1_000]
    return {
        "topic_binds_per_s": binds_per_s,
        "topic_10k_publishes_per_s": rate_big,
        "topic_10_publishes_per_s": rate_small,
        "topic_10k_vs_10_ratio": rate_big / rate_small,
        "topic_10k_states_per_publish": sum(map(big.match_steps, sample)) / len(sample),
        "topic_10_states_per_publish": sum(map(small.match_steps, sample)) / len(sample),
        "pathological_max_ms_per_publish": _pathological_ms(repeats),
    }


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv[1:]).items():
        print(f"{name}: {value:,.4g}")
