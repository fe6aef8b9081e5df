"""Command line of the benchmark harness: ``python -m benchmarks [--quick] [--only NAME ...] [--repeat N]``.

Prints the tables and writes the results as JSON: to ``--json PATH``, by default ``benchmark-results.json`` in
the current directory (never next to the harness itself). The exit status is 0 when every selected benchmark ran on
both sides (whether or not it met its target), 1 when something could not be measured (the runtime does not
import, a workload failed or hung), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._harness import DEFAULT_JSON_PATH, run, selectable_names, write_json

__all__ = ["main", "run"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks selected by ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the actor runtime against the raw-trio floor (Savina-style workloads).",
    )
    parser.add_argument("--quick", action="store_true", help="about 1/20 of the full sizes, for smoke runs")
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        choices=selectable_names(),
        metavar="NAME",
        help=f"run only these benchmarks: {', '.join(selectable_names())}",
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=3,
        metavar="N",
        help="runs per workload and side; the best is kept",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON_PATH,
        metavar="PATH",
        help=f"where to write the results (default: {DEFAULT_JSON_PATH}, in the current directory)",
    )
    args = parser.parse_args(argv)
    results = run(quick=args.quick, only=args.only, repeat=args.repeat)
    write_json(results, args.json)
    print(f"\nresults written to {args.json.resolve()}")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
