"""Run one spawn sample in this (fresh) process and print it as one JSON line on stdout.

``python -m benchmarks._spawn_probe floor|core COUNT [--deadline SECONDS]``. The harness starts one process
per sample so that every RSS baseline is that of a clean interpreter, not of one that already ran other
workloads.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import attrs

from ._harness import DEFAULT_DEADLINE, SIDES, load_side, run_in_trio


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the sample, print it. Errors propagate: a traceback, a non-zero status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._spawn_probe", description=__doc__)
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("count", type=int)
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE)
    args = parser.parse_args(argv)
    sample = run_in_trio(load_side(args.side).spawn, args.deadline, args.count)
    print(json.dumps(attrs.asdict(sample)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
