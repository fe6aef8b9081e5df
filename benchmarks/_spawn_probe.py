"""Run one sample of a many-actor workload in this (fresh) process and print it as one JSON line on stdout.

``python -m benchmarks._spawn_probe floor|core|asyncio spawn|million|broadcast COUNT [--deadline SECONDS]``. The
harness starts one process per sample so that every RSS baseline is that of a clean interpreter, not of one that
already ran other workloads, and so that a million actors (or tasks) leave nothing behind in the harness.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from ._harness import DEFAULT_DEADLINE, SIDES, run_side

WORKLOADS = ("spawn", "million", "broadcast")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the sample, print it. Errors propagate: a traceback, a non-zero status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._spawn_probe", description=__doc__)
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("count", type=int)
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE)
    args = parser.parse_args(argv)
    sample: Any = run_side(args.side, args.workload, args.deadline, args.count)
    if attrs.has(type(sample)):
        sample = attrs.asdict(sample)
    elif not isinstance(sample, dict):
        sample = {"seconds": sample}
    print(json.dumps(sample), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
