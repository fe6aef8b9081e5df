"""Benchmarks of the actor runtime against the raw-trio floor.

Every workload (pingpong, counting, fan-in, ask latency, spawn, threadring) exists twice: in
:mod:`benchmarks.floor`, written with nothing but trio tasks and memory channels, and in
:mod:`benchmarks.core`, written on the public :mod:`actors` API. The harness runs both, keeps the best of a
few repetitions, and reports the runtime's figures as ratios of the floor's, next to the targets they must
meet.

Run it with ``python -m benchmarks`` (``--help`` for the options).
"""
