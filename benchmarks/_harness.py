"""Running, timing and reporting of the benchmark workloads.

A workload is measured on up to three *sides*: ``"floor"`` (:mod:`benchmarks.floor`, raw trio), ``"core"``
(:mod:`benchmarks.core`, the actor runtime) and ``"asyncio"`` (:mod:`benchmarks.aio`, raw asyncio: tasks,
``asyncio.Queue`` and futures, what a user would write instead of an actor library). The modules export the same
async functions, listed by :class:`Side`; each call is one sample and runs in its own ``trio.run`` (``asyncio.run``
for the asyncio side; the spawn, million and broadcast workloads in a fresh subprocess, so that RSS grows from a
clean baseline and a million actors leave nothing behind). The sides of one repetition run one after the other,
so that drift hits all of them. The harness repeats every workload, keeps the best figure of the repetitions
(machines are shared and noisy: the best run is the one least disturbed), computes runtime / floor and asyncio /
floor ratios, checks the runtime's against the targets, prints a table and returns everything as a JSON-ready
dict.

The floors of ``million`` and ``broadcast``, where the runtime's actors own no task, are defined with them (see
:mod:`benchmarks.floor`): a mailbox (a memory channel pair) and a record per actor in a registry, closed and
unregistered one by one at shutdown; and one ``send_nowait`` to each of N tasks blocked on their own channel.

Wall time is taken with :func:`time.perf_counter` rather than trio's clock: these are real-time measurements
of real runs, never under a ``MockClock``, and ``perf_counter`` has the finest resolution for single asks.
"""

from __future__ import annotations

import datetime
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TextIO, TypeVar, cast

import attrs
import trio

T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_JSON_PATH = Path("benchmark-results.json")
"""Where ``python -m benchmarks`` writes its results unless told otherwise: relative, so in the current directory,
never next to the code (which may be read-only, or somebody else's checkout)."""

TIMES = "\N{MULTIPLICATION SIGN}"

SIDES = ("floor", "core", "asyncio")
"""The implementations of the workloads, in the order they run and are printed; a workload may have fewer
(:attr:`Workload.sides`)."""

SIDE_LABELS = {"floor": "trio floor", "core": "actors", "asyncio": "raw asyncio"}
_SIDE_MODULES = {"floor": "benchmarks.floor", "core": "benchmarks.core", "asyncio": "benchmarks.aio"}

DEFAULT_DEADLINE = 300.0
"""Seconds one sample may take before it is abandoned as hung (a lost reply must not hang the harness)."""

WARMUP_ASKS = 100
"""Asks sent before the latency samples are taken, on both sides."""

WARMUP_ACTORS = 100
"""Idle actors spawned before the RSS baseline is read, on both sides: they load the code paths and fill the
allocator's first pools, so that the baseline is not taken from a cold process."""


class WorkloadError(Exception):
    """Raised when a workload's run is invalid (a wrong count, a lost reply, a deadline passed).

    Its timing means nothing, so the harness reports the error instead of a figure.
    """


def expect_equal(what: str, got: object, expected: object) -> None:
    """Raise :class:`WorkloadError` naming ``what`` unless ``got == expected``."""
    if got != expected:
        raise WorkloadError(f"{what}: expected {expected!r}, got {got!r}")


@attrs.frozen
class SpawnSample:
    """One run of the spawn workload, as measured inside its process."""

    count: int
    """Idle actors spawned (and still alive when ``rss_after`` was read)."""
    seconds: float
    """Wall time to spawn them all, sequentially, each one started."""
    rss_before: int
    """Resident set size in bytes after the warm-up actors, before the first timed spawn."""
    rss_after: int
    """Resident set size in bytes with all ``count`` actors alive and referenced."""


class Tally:
    """What the broadcast workload sends every receiver, on both sides: each counts itself in, and the last one to
    do so sets ``done`` (a ``trio.Event``), which the driver waits for."""

    __slots__ = ("count", "done", "target")

    def __init__(self, target: int, done: trio.Event) -> None:
        self.count = 0
        self.target = target
        self.done = done

    def hit(self) -> None:
        """Count one receiver in."""
        self.count += 1
        if self.count == self.target:
            self.done.set()


class Side(Protocol):
    """What :mod:`benchmarks.floor` and :mod:`benchmarks.core` both export: one async function per workload.

    Each sets its actors up untimed, times the workload itself, checks the result (raising
    :class:`WorkloadError`) and tears down untimed.
    """

    async def pingpong(self, round_trips: int) -> float:
        """Seconds for ``round_trips`` ping/pong exchanges between two actors."""
        ...

    async def counting(self, messages: int) -> float:
        """Seconds to tell one counter ``messages`` increments and ask it for the count."""
        ...

    async def fan_in(self, producers: int, per_producer: int) -> float:
        """Seconds for ``producers`` actors to each tell ``per_producer`` messages to one consumer."""
        ...

    async def ask_latency(self, asks: int) -> list[float]:
        """Seconds taken by each of ``asks`` sequential asks to an echo actor."""
        ...

    async def spawn(self, count: int) -> SpawnSample:
        """Spawn ``count`` idle actors sequentially and measure time and RSS."""
        ...

    async def threadring(self, members: int, hops: int) -> float:
        """Seconds to pass a token ``hops`` times around a ring of ``members`` actors."""
        ...


class ManySide(Protocol):
    """What :mod:`benchmarks.floor` and :mod:`benchmarks.core` export for the ``million`` and ``broadcast``
    workloads, which have no raw-asyncio side."""

    async def million(self, count: int) -> dict[str, float]:
        """Spawn ``count`` idle actors, then shut them all down: seconds for each, and RSS bytes an actor."""
        ...

    async def broadcast(self, count: int) -> float:
        """Seconds for one message told to each of ``count`` idle actors to be handled by all of them."""
        ...


@attrs.frozen
class Sizes:
    """How big each workload is. The defaults are the full (Savina-style) sizes."""

    pingpong: int = 20_000
    """Round trips between the ping and the pong actor."""
    counting: int = 200_000
    """Increments told to the counter."""
    fan_in_producers: int = 8
    """Producer actors telling the one consumer."""
    fan_in_per_producer: int = 25_000
    """Messages each producer tells."""
    ask_latency: int = 10_000
    """Sequential asks timed one by one."""
    spawn_small: int = 10_000
    """Idle actors in the ``spawn_10k`` workload."""
    spawn_large: int = 100_000
    """Idle actors in the ``spawn_100k`` workload."""
    ring_members: int = 100
    """Actors in the thread ring."""
    ring_hops: int = 100_000
    """Times the token is passed on."""
    million: int = 1_000_000
    """Idle actors spawned, and then shut down, in the ``million`` workload."""
    broadcast: int = 1_000_000
    """Idle actors each told one message in the ``broadcast`` workload."""

    def scaled(self, divisor: int) -> Sizes:
        """These sizes with every count divided by ``divisor`` (at least 1).

        The shape of the fan-in (number of producers) and of the ring (number of members) is kept.
        """
        counts = {
            field.name: max(1, getattr(self, field.name) // divisor)
            for field in attrs.fields(Sizes)
            if field.name not in ("fan_in_producers", "ring_members")
        }
        return attrs.evolve(self, **counts)


FULL_SIZES = Sizes()
QUICK_SIZES = FULL_SIZES.scaled(20)
"""``--quick``: about 1/20 of the work, for smoke runs; the figures are noisier."""


# -- Workload descriptions ----------------------------------------------------------------------------------


@attrs.frozen
class Figure:
    """One reported number of a workload."""

    key: str
    """Name in the JSON results (``"round_trips_per_s"``)."""
    label: str
    """Name in the printed table (``"round trips/s"``)."""
    higher_is_better: bool = True
    decimals: int = 0


@attrs.frozen
class Target:
    """A goal for one figure: either its runtime / floor ratio or its absolute runtime value."""

    figure: str
    """Key of the :class:`Figure` it applies to."""
    at_least: bool
    """True for ``value >= threshold``, False for ``value <= threshold``."""
    threshold: float
    of_ratio: bool = True
    """True: compared with the ratio to the floor. False: with the runtime's own figure."""
    unit: str = TIMES

    def describe(self) -> str:
        """The target as printed: ``"≥ 10x"`` (with a multiplication sign), ``"≤ 1024 B"``."""
        sign = "≥" if self.at_least else "≤"
        return f"{sign} {self.threshold:g}{self.unit}"

    def met(self, value: float) -> bool:
        """Whether ``value`` (a ratio or an absolute figure, per :attr:`of_ratio`) meets the target."""
        return value >= self.threshold if self.at_least else value <= self.threshold


Measure = Callable[[str, Sizes, float], dict[str, float]]
"""Measure one sample of a workload: ``(side, sizes, deadline) -> {figure key: value}``."""


@attrs.frozen
class Workload:
    """A benchmark: what it reports, the targets it is held to, and how to measure one sample of it."""

    name: str
    summary: str
    figures: tuple[Figure, ...]
    targets: tuple[Target, ...]
    measure: Measure
    size: Callable[[Sizes], str]
    """Describes the work done at given sizes, e.g. ``"20,000 round trips"``."""
    group: str | None = None
    """A name that selects this workload together with others (``--only spawn``)."""
    sides: tuple[str, ...] = SIDES
    """The sides it is measured on, in :data:`SIDES` order; always the floor and the runtime."""


def load_side(side: str) -> Side:
    """Import the module implementing ``side`` (``"floor"`` or ``"core"``).

    Importing ``"core"`` imports :mod:`actors`; whatever that raises propagates.
    """
    try:
        module_name = _SIDE_MODULES[side]
    except KeyError:
        raise ValueError(f"unknown side {side!r}; expected one of {', '.join(SIDES)}") from None
    return cast(Side, importlib.import_module(module_name))


def run_in_trio(fn: Callable[..., Awaitable[T]], deadline: float, *args: object) -> T:
    """Run ``fn(*args)`` in a fresh ``trio.run``, failing with :class:`WorkloadError` after ``deadline``
    seconds.

    A full garbage collection first, so that one sample's garbage is not collected during the next.
    """

    async def bounded() -> T:
        try:
            with trio.fail_after(deadline):
                return await fn(*args)
        except trio.TooSlowError as exc:
            raise WorkloadError(f"did not finish within {deadline:g} s (a lost message or reply?)") from exc

    gc.collect()
    return trio.run(bounded)


def rss_bytes() -> int:
    """This process's resident set size in bytes.

    Read from ``/proc/self/statm`` (current RSS) where it exists; elsewhere from ``getrusage``, which gives
    the peak RSS, a fair stand-in while memory only grows, as it does while spawning.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux/BSD kilobytes
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def run_side(side: str, function: str, deadline: float, *args: object) -> Any:
    """Run ``side``'s workload ``function(*args)`` in a fresh event loop: ``asyncio.run`` for the asyncio side,
    ``trio.run`` for the others; either fails with :class:`WorkloadError` after ``deadline`` seconds."""
    fn = getattr(load_side(side), function)
    if side != "asyncio":
        return run_in_trio(fn, deadline, *args)
    from . import aio

    gc.collect()
    try:
        return aio.run(fn(*args), deadline)
    except TimeoutError as exc:
        raise WorkloadError(f"did not finish within {deadline:g} s (a lost message or reply?)") from exc


def probe_in_subprocess(side: str, workload: str, count: int, deadline: float) -> dict[str, Any]:
    """Run ``side``'s ``workload`` (``spawn``, ``million`` or ``broadcast``) for ``count`` actors in a fresh process
    (:mod:`._spawn_probe`) and return what it printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_DIR.parent), env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        "-P",  # not the current directory first: a ``benchmarks`` package there must not shadow this one
        "-m",
        "benchmarks._spawn_probe",
        side,
        workload,
        str(count),
        "--deadline",
        f"{deadline:g}",
    ]
    grace = 60.0  # interpreter start-up and the teardown of every actor, neither of which the deadline covers
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=deadline + grace, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WorkloadError(
            f"{workload} probe ({side}, {count} actors) did not exit within {deadline + grace:g} s"
        ) from exc
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines() or ["(no output on stderr)"]
        raise WorkloadError(
            f"{workload} probe ({side}, {count} actors) exited with status {completed.returncode}: {lines[-1]}"
        )
    try:
        sample = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise WorkloadError(
            f"{workload} probe ({side}, {count} actors) printed no sample: {completed.stdout!r}"
        ) from exc
    if not isinstance(sample, dict):
        raise WorkloadError(f"{workload} probe ({side}, {count} actors) printed {sample!r}, not a sample")
    return sample


def spawn_in_subprocess(side: str, count: int, deadline: float) -> SpawnSample:
    """Run the spawn workload of ``side`` for ``count`` actors in a fresh process (:mod:`._spawn_probe`)."""
    try:
        return SpawnSample(**probe_in_subprocess(side, "spawn", count, deadline))
    except TypeError as exc:
        raise WorkloadError(f"spawn probe ({side}, {count} actors) printed no spawn sample: {exc}") from exc


def _measure_pingpong(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
    seconds = run_side(side, "pingpong", deadline, sizes.pingpong)
    return {"round_trips_per_s": sizes.pingpong / seconds}


def _measure_counting(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
    seconds = run_side(side, "counting", deadline, sizes.counting)
    return {"messages_per_s": sizes.counting / seconds}


def _measure_fan_in(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
    seconds = run_side(side, "fan_in", deadline, sizes.fan_in_producers, sizes.fan_in_per_producer)
    return {"messages_per_s": sizes.fan_in_producers * sizes.fan_in_per_producer / seconds}


def _measure_ask_latency(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
    samples = run_side(side, "ask_latency", deadline, sizes.ask_latency)
    expect_equal("ask latency samples", len(samples), sizes.ask_latency)
    return {"median_us": percentile(samples, 50) * 1e6, "p99_us": percentile(samples, 99) * 1e6}


def _measure_threadring(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
    seconds = run_side(side, "threadring", deadline, sizes.ring_members, sizes.ring_hops)
    return {"hops_per_s": sizes.ring_hops / seconds}


def _spawn_measure(count_of: Callable[[Sizes], int]) -> Measure:
    def measure(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
        count = count_of(sizes)
        sample = spawn_in_subprocess(side, count, deadline)
        return {
            "actors_per_s": count / sample.seconds,
            "bytes_per_actor": (sample.rss_after - sample.rss_before) / count,
        }

    return measure


def _measure_million(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
    count = sizes.million
    sample = probe_in_subprocess(side, "million", count, deadline)
    spawn_s, shutdown_s = float(sample["spawn_s"]), float(sample["shutdown_s"])
    return {
        "spawn_us": spawn_s / count * 1e6,
        "bytes_per_actor": float(sample["bytes_per_actor"]),
        "shutdown_us": shutdown_s / count * 1e6,
        "spawn_s": spawn_s,
        "shutdown_s": shutdown_s,
        "shutdown_vs_spawn": shutdown_s / spawn_s,
    }


def _measure_broadcast(side: str, sizes: Sizes, deadline: float) -> dict[str, float]:
    count = sizes.broadcast
    sample = probe_in_subprocess(side, "broadcast", count, deadline)
    return {"messages_per_s": count / float(sample["seconds"])}


def percentile(samples: Sequence[float], percent: float) -> float:
    """The nearest-rank ``percent``-th percentile of ``samples`` (the median for 50)."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


_SPAWN_FIGURES = (
    Figure("actors_per_s", "actors/s"),
    Figure("bytes_per_actor", "RSS bytes/actor", higher_is_better=False),
)
_SPAWN_TARGETS = (
    Target("actors_per_s", at_least=True, threshold=5.0),
    Target("bytes_per_actor", at_least=False, threshold=1024, of_ratio=False, unit=" B"),
)

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "pingpong",
        "two actors exchange messages; the driver asks ping to run and ping answers after the last pong",
        (Figure("round_trips_per_s", "round trips/s"),),
        (Target("round_trips_per_s", at_least=True, threshold=1.0),),
        _measure_pingpong,
        lambda s: f"{s.pingpong:,} round trips",
    ),
    Workload(
        "counting",
        "the driver tells one counter actor n increments, then asks it for the count",
        (Figure("messages_per_s", "messages/s"),),
        (Target("messages_per_s", at_least=True, threshold=10.0),),
        _measure_counting,
        lambda s: f"{s.counting:,} messages",
    ),
    Workload(
        "fan_in",
        "producer actors, each started by a tell, tell one consumer; it answers a deferred ask at the total",
        (Figure("messages_per_s", "messages/s"),),
        (Target("messages_per_s", at_least=True, threshold=10.0),),
        _measure_fan_in,
        lambda s: f"{s.fan_in_producers}{TIMES}{s.fan_in_per_producer:,} messages",
    ),
    Workload(
        "ask_latency",
        "sequential asks from the driver task to an echo actor, each timed",
        (
            Figure("median_us", "median µs", higher_is_better=False, decimals=1),
            Figure("p99_us", "p99 µs", higher_is_better=False, decimals=1),
        ),
        (Target("median_us", at_least=False, threshold=0.7),),
        _measure_ask_latency,
        lambda s: f"{s.ask_latency:,} asks",
    ),
    Workload(
        "spawn_10k",
        "idle actors spawned one after another by the driver, all kept alive; in a fresh process",
        _SPAWN_FIGURES,
        _SPAWN_TARGETS,
        _spawn_measure(lambda s: s.spawn_small),
        lambda s: f"{s.spawn_small:,} actors",
        group="spawn",
    ),
    Workload(
        "spawn_100k",
        "idle actors spawned one after another by the driver, all kept alive; in a fresh process",
        _SPAWN_FIGURES,
        _SPAWN_TARGETS,
        _spawn_measure(lambda s: s.spawn_large),
        lambda s: f"{s.spawn_large:,} actors",
        group="spawn",
    ),
    Workload(
        "threadring",
        "a token passed around a ring of actors; the actor that sees it reach zero answers the driver",
        (Figure("hops_per_s", "hops/s"),),
        (Target("hops_per_s", at_least=True, threshold=1.0),),
        _measure_threadring,
        lambda s: f"{s.ring_members} actors, {s.ring_hops:,} hops",
    ),
    Workload(
        "million",
        "idle actors spawned one after another (each started), then all shut down by leaving the system; in a "
        "fresh process. Floor: a memory channel pair and a record in a registry per actor, closed and "
        "unregistered one by one in reverse order",
        (
            Figure("spawn_us", "spawn µs/actor", higher_is_better=False, decimals=2),
            Figure("bytes_per_actor", "RSS bytes/actor", higher_is_better=False),
            Figure("shutdown_us", "shutdown µs/actor", higher_is_better=False, decimals=2),
            Figure("spawn_s", "spawn s", higher_is_better=False, decimals=2),
            Figure("shutdown_s", "shutdown s", higher_is_better=False, decimals=2),
            Figure("shutdown_vs_spawn", "shutdown / spawn", higher_is_better=False, decimals=2),
        ),
        (
            Target("spawn_us", at_least=False, threshold=4.0, of_ratio=False, unit=" µs"),
            Target("bytes_per_actor", at_least=False, threshold=1024, of_ratio=False, unit=" B"),
            Target("shutdown_s", at_least=False, threshold=10.0, of_ratio=False, unit=" s"),
            Target("shutdown_vs_spawn", at_least=False, threshold=1.0, of_ratio=False, unit=""),
        ),
        _measure_million,
        lambda s: f"{s.million:,} actors",
        sides=("floor", "core"),
    ),
    Workload(
        "broadcast",
        "one message told to each of N idle (never scheduled) actors, timed until every one has handled it; in a "
        "fresh process. Floor: one send_nowait to each of N tasks blocked on their own memory channel",
        (Figure("messages_per_s", "messages/s"),),
        (Target("messages_per_s", at_least=True, threshold=1.5),),
        _measure_broadcast,
        lambda s: f"{s.broadcast:,} actors",
        sides=("floor", "core"),
    ),
)

EXTRAS = ("routing", "exchange", "supervision", "figures", "link", "workers", "calls")
"""Runtime-only benchmark modules (``benchmarks/<name>.py``), each with ``run(quick) -> dict[str, float]``:
routing tables, the exchange and queue actors, restarts under failure, the cost of the queue figures, the link,
worker processes, and typed calls against asks (``call_vs_ask``)."""


def selectable_names() -> list[str]:
    """Every name ``--only`` accepts: the workloads, their groups, and the extras."""
    names = [workload.name for workload in WORKLOADS]
    groups = {workload.group for workload in WORKLOADS if workload.group is not None}
    return [*names, *sorted(groups), *EXTRAS]


def select(only: Iterable[str] | None) -> tuple[list[Workload], list[str]]:
    """The workloads selected by ``only`` (all when None) in their usual order, and the extras selected."""
    if only is None:
        return list(WORKLOADS), list(EXTRAS)
    wanted = set(only)
    unknown = sorted(wanted - set(selectable_names()))
    if unknown:
        raise ValueError(
            f"unknown benchmark {', '.join(map(repr, unknown))}; choose from {', '.join(selectable_names())}"
        )
    chosen = [w for w in WORKLOADS if w.name in wanted or (w.group is not None and w.group in wanted)]
    return chosen, [name for name in EXTRAS if name in wanted]


def best(figures: Sequence[Figure], samples: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The best value of each figure over ``samples``, each figure independently (highest or lowest)."""
    return {
        figure.key: (max if figure.higher_is_better else min)(sample[figure.key] for sample in samples)
        for figure in figures
    }


def one_line(exc: BaseException) -> str:
    """``"ExcType: message"`` on one line, descending into single-exception groups to the real error."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- Running -------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """The Python and trio versions and the machine the figures were measured on."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "trio": trio.__version__,
        "attrs": attrs.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def _check_core() -> str | None:
    """None if the runtime side imports, else the one-line reason it does not."""
    try:
        load_side("core")
    except Exception as exc:  # a runtime being written may fail to import in any way; report it, don't crash
        return one_line(exc)
    return None


def _measure_workload(
    workload: Workload, sides: Sequence[str], sizes: Sizes, repeat: int, deadline: float
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Best figures per side and one-line errors per side. Repetitions alternate sides, so drift hits both."""
    samples: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    errors: dict[str, str] = {}
    for _ in range(repeat):
        for side in sides:
            if side not in workload.sides or side in errors:
                continue  # a failed side would likely fail (or hang until the deadline) again
            try:
                samples[side].append(workload.measure(side, sizes, deadline))
            except Exception as exc:  # recorded and reported: the other side's figures are still worth having
                errors[side] = one_line(exc)
    figures = {
        side: best(workload.figures, runs) for side, runs in samples.items() if runs and side not in errors
    }
    return figures, errors


def _workload_result(
    workload: Workload, sizes: Sizes, figures: Mapping[str, dict[str, float]], errors: Mapping[str, str]
) -> dict[str, Any]:
    floor, core, raw = figures.get("floor"), figures.get("core"), figures.get("asyncio")
    ratios = {key: core[key] / floor[key] for key in floor if floor[key]} if floor and core else {}
    asyncio_ratios = {key: raw[key] / floor[key] for key in floor if floor[key]} if floor and raw else {}
    targets = []
    for target in workload.targets:
        value = ratios.get(target.figure) if target.of_ratio else (core or {}).get(target.figure)
        targets.append(
            {
                "figure": target.figure,
                "target": target.describe(),
                "of": "ratio" if target.of_ratio else "actors",
                "value": value,
                "met": None if value is None else target.met(value),
            }
        )
    return {
        "summary": workload.summary,
        "size": workload.size(sizes),
        "sides": list(workload.sides),
        "floor": floor,
        "core": core,
        "asyncio": raw,
        "ratios": ratios,
        "asyncio_ratios": asyncio_ratios,
        "targets": targets,
        "errors": dict(errors),
    }


def _run_extra(name: str, quick: bool) -> dict[str, Any] | None:
    """Figures of ``benchmarks/<name>.py``'s ``run(quick)``; None when that module does not exist."""
    if importlib.util.find_spec(f"{__package__}.{name}") is None:
        return None
    try:
        module: ModuleType = importlib.import_module(f"{__package__}.{name}")
        figures = module.run(quick)
        return {"figures": {str(key): float(value) for key, value in figures.items()}, "error": None}
    except Exception as exc:  # a failed extra is reported on one line; the others still run
        return {"figures": None, "error": one_line(exc)}


def run(
    quick: bool = False,
    only: list[str] | None = None,
    repeat: int = 3,
    *,
    sizes: Sizes | None = None,
    deadline: float = DEFAULT_DEADLINE,
    stream: TextIO | None = None,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Run the benchmarks, print their tables and return the results as a JSON-ready dict.

    ``quick`` uses :data:`QUICK_SIZES` (about 1/20 of the work) unless ``sizes`` is given; ``only`` names
    workloads, groups (``"spawn"``) or extras (see :func:`selectable_names`); each workload runs
    ``repeat`` times per side and the best figure is kept. A sample taking longer than ``deadline`` seconds
    fails. Tables go to ``stream`` (default stdout), one line per finished workload to ``progress`` (default
    stderr).

    If the runtime does not import, or a workload fails on one side, the error is reported on one line (in the
    table and under ``"errors"``) and the other figures are still measured. Nothing here raises for a failed
    workload: check ``results["ok"]``.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    stream = sys.stdout if stream is None else stream
    progress = sys.stderr if progress is None else progress
    workloads, extras = select(only)
    sizes = sizes if sizes is not None else (QUICK_SIZES if quick else FULL_SIZES)
    core_error = _check_core() if workloads else None
    sides = SIDES if core_error is None else tuple(side for side in SIDES if side != "core")
    if core_error is not None:
        print(
            f"actors runtime unavailable, measuring the floor only: {core_error}", file=progress, flush=True
        )

    results: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {"quick": quick, "repeat": repeat, "deadline_s": deadline, "sizes": attrs.asdict(sizes)},
        "core_error": core_error,
        "workloads": {},
        "extras": {},
    }
    for workload in workloads:
        figures, errors = _measure_workload(workload, sides, sizes, repeat, deadline)
        if core_error is not None:
            errors["core"] = f"not run: {core_error}"
        result = _workload_result(workload, sizes, figures, errors)
        results["workloads"][workload.name] = result
        print(_progress_line(workload, result), file=progress, flush=True)
    for name in extras:
        extra = _run_extra(name, quick)
        if extra is not None:
            results["extras"][name] = extra
            print(f"{name}: {'done' if extra['error'] is None else extra['error']}", file=progress, flush=True)
    results["ok"] = core_error is None and not any(r["errors"] for r in results["workloads"].values())
    if any(extra["error"] is not None for extra in results["extras"].values()):
        results["ok"] = False

    _print_tables(results, workloads, stream)
    return results


def write_json(results: Mapping[str, Any], path: Path) -> None:
    """Write ``results`` (as returned by :func:`run`) to ``path`` as indented UTF-8 JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- Printing ------------------------------------------------------------------------------------------------

_MISSING = "—"
_ASCII_FALLBACK = str.maketrans({"✓": "ok", "✗": "NO", "≥": ">=", "≤": "<=", TIMES: "x", "µ": "u", "—": "-"})


def _format(value: float | None, decimals: int = 0) -> str:
    return _MISSING if value is None else f"{value:,.{decimals}f}"


def _format_any(value: float) -> str:
    """A figure of unknown kind: thousands separators when big, four significant digits when small."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _progress_line(workload: Workload, result: Mapping[str, Any]) -> str:
    parts = []
    for side in workload.sides:
        if side in result["errors"]:
            not_run = result["errors"][side].startswith("not run")
            parts.append(f"{SIDE_LABELS[side]} {'not run' if not_run else 'failed'}")
        elif result.get(side) is not None:
            first = workload.figures[0]
            parts.append(
                f"{SIDE_LABELS[side]} {_format(result[side][first.key], first.decimals)} {first.label}"
            )
    return f"{workload.name} ({result['size']}): " + "; ".join(parts)


def _render(rows: Sequence[Sequence[str]], right_aligned: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in right_aligned else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _print_tables(results: Mapping[str, Any], workloads: Sequence[Workload], stream: TextIO) -> None:
    machine = results["machine"]
    lines = [
        f"Python {machine['python']}, trio {machine['trio']}, {machine['platform']}, {machine['cpus']} CPUs; "
        f"best of {results['settings']['repeat']}{' (quick sizes)' if results['settings']['quick'] else ''}; "
        "ratio: actors / trio floor; asyncio ratio: raw asyncio / trio floor",
        "",
    ]
    if results["core_error"] is not None:
        lines += [f"actors runtime unavailable: {results['core_error']}", ""]

    rows: list[list[str]] = [
        ["workload", "size", "figure", "trio floor", "actors", "raw asyncio", "ratio", "asyncio ratio", "target"]
    ]
    errors: list[str] = []
    for workload in workloads:
        result = results["workloads"][workload.name]
        for index, figure in enumerate(workload.figures):
            floor = (result["floor"] or {}).get(figure.key)
            core = (result["core"] or {}).get(figure.key)
            raw = (result["asyncio"] or {}).get(figure.key)
            ratio = result["ratios"].get(figure.key)
            raw_ratio = result["asyncio_ratios"].get(figure.key)
            verdicts = [
                f"{t['target']} {_MISSING if t['met'] is None else ('✓' if t['met'] else '✗')}"
                for t in result["targets"]
                if t["figure"] == figure.key
            ]
            rows.append(
                [
                    workload.name if index == 0 else "",
                    result["size"] if index == 0 else "",
                    figure.label,
                    _format(floor, figure.decimals),
                    _format(core, figure.decimals),
                    _format(raw, figure.decimals),
                    _MISSING if ratio is None else f"{ratio:.2f}{TIMES}",
                    _MISSING if raw_ratio is None else f"{raw_ratio:.2f}{TIMES}",
                    ", ".join(verdicts),
                ]
            )
        for side, message in result["errors"].items():
            if results["core_error"] is None or side != "core":
                errors.append(f"{workload.name} ({SIDE_LABELS[side]}): {message}")
    if workloads:
        lines += _render(rows, right_aligned={3, 4, 5, 6, 7})
    if errors:
        lines += ["", "errors:", *(f"  {error}" for error in errors)]

    for name, extra in results["extras"].items():
        if lines:
            lines.append("")
        if extra["error"] is not None:
            lines.append(f"{name} benchmarks failed: {extra['error']}")
        elif extra["figures"]:
            extra_rows = [[name, "value"]]
            extra_rows += [[figure, _format_any(value)] for figure, value in extra["figures"].items()]
            lines += _render(extra_rows, right_aligned={1})
        else:
            lines.append(f"{name} benchmarks reported no figures")

    text = "\n".join(lines) + "\n"
    try:
        text.encode(stream.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError, AttributeError):
        text = text.translate(_ASCII_FALLBACK)
    stream.write(text)
    stream.flush()
