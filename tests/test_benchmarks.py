"""Smoke test of the benchmark harness: every workload, on the trio floor and on the runtime, at tiny sizes.

The figures themselves are not checked (timings in a test are noise), only that each one was measured and is a
finite positive number, that the ratios and targets were computed, and that the results survive JSON. The
runtime side needs :mod:`actors`; until it imports, its cases fail with the harness's one-line reason.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest

from benchmarks import _harness

TINY = _harness.Sizes(
    pingpong=20,
    counting=100,
    fan_in_producers=3,
    fan_in_per_producer=10,
    ask_latency=20,
    # Enough actors for their memory to show in RSS (page-granular) on both sides; still well under a second.
    spawn_small=2_000,
    spawn_large=3_000,
    ring_members=5,
    ring_hops=50,
    million=3_000,
    broadcast=2_000,
)
WORKLOAD_NAMES = [workload.name for workload in _harness.WORKLOADS]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """One run of every workload on both sides (routing excluded: it is another module's business)."""
    table = io.StringIO()
    outcome = _harness.run(
        only=WORKLOAD_NAMES,
        repeat=1,
        sizes=TINY,
        deadline=60.0,
        stream=table,
        progress=io.StringIO(),
    )
    outcome["_table"] = table.getvalue()
    return outcome


WORKLOAD_SIDES = [(workload.name, side) for workload in _harness.WORKLOADS for side in workload.sides]


@pytest.mark.parametrize(("name", "side"), WORKLOAD_SIDES)
def test_workload_figures_are_positive_numbers(results: dict[str, Any], name: str, side: str) -> None:
    result = results["workloads"][name]
    assert side not in result["errors"], result["errors"][side]
    workload = next(w for w in _harness.WORKLOADS if w.name == name)
    figures = result[side]
    assert set(figures) == {figure.key for figure in workload.figures}
    for key, value in figures.items():
        assert isinstance(value, float), (key, value)
        assert math.isfinite(value), (key, value)
        assert value > 0, (key, value)


@pytest.mark.parametrize("name", WORKLOAD_NAMES)
def test_ratios_and_targets_are_computed(results: dict[str, Any], name: str) -> None:
    result = results["workloads"][name]
    assert not result["errors"], result["errors"]
    for key, ratio in result["ratios"].items():
        assert ratio == pytest.approx(result["core"][key] / result["floor"][key])
    workload = next(w for w in _harness.WORKLOADS if w.name == name)
    if "asyncio" in workload.sides:
        assert set(result["asyncio_ratios"]) == {figure.key for figure in workload.figures}
        for key, ratio in result["asyncio_ratios"].items():
            assert ratio == pytest.approx(result["asyncio"][key] / result["floor"][key])
    else:
        assert result["asyncio"] is None
        assert result["asyncio_ratios"] == {}
    assert result["targets"]
    for target in result["targets"]:
        assert isinstance(target["value"], float)
        assert isinstance(target["met"], bool)


def test_results_round_trip_through_json_and_print_a_row_per_workload(results: dict[str, Any]) -> None:
    assert json.loads(json.dumps(results)) == results
    assert results["machine"]["trio"]
    assert results["settings"]["sizes"]["pingpong"] == TINY.pingpong
    table = results["_table"]
    for name in WORKLOAD_NAMES:
        assert name in table
    assert "raw asyncio" in table
    assert "asyncio ratio" in table


def test_the_asyncio_side_covers_the_savina_workloads_and_the_many_actor_ones_have_floor_and_runtime_only() -> None:
    sides = {workload.name: workload.sides for workload in _harness.WORKLOADS}
    for name in ("pingpong", "counting", "fan_in", "ask_latency", "spawn_10k", "spawn_100k", "threadring"):
        assert sides[name] == ("floor", "core", "asyncio")
    assert sides["million"] == sides["broadcast"] == ("floor", "core")
    assert {"million", "broadcast"} <= set(_harness.selectable_names())


def test_a_million_idle_actors_shut_down_and_are_measured_in_the_probe() -> None:
    """The probe's million sample: every actor spawned is stopped on leaving the system, and the figures add up."""
    sample = _harness.probe_in_subprocess("core", "million", 1_000, deadline=60.0)
    assert set(sample) == {"spawn_s", "shutdown_s", "bytes_per_actor"}
    assert sample["spawn_s"] > 0
    assert sample["shutdown_s"] > 0


def test_runtime_side_is_available(results: dict[str, Any]) -> None:
    assert results["core_error"] is None
    assert results["ok"]


def test_select_expands_groups_and_rejects_unknown_names() -> None:
    chosen, extras = _harness.select(["spawn", "counting"])
    assert [w.name for w in chosen] == ["counting", "spawn_10k", "spawn_100k"]
    assert extras == []
    assert _harness.select(["routing", "figures"]) == ([], ["routing", "figures"])
    with pytest.raises(ValueError, match="'nope'"):
        _harness.select(["nope"])


def test_best_keeps_each_figure_in_its_own_direction() -> None:
    figures = (_harness.Figure("rate", "rate/s"), _harness.Figure("cost", "µs", higher_is_better=False))
    samples = [{"rate": 1.0, "cost": 5.0}, {"rate": 3.0, "cost": 7.0}, {"rate": 2.0, "cost": 4.0}]
    assert _harness.best(figures, samples) == {"rate": 3.0, "cost": 4.0}


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert _harness.percentile(samples, 50) == 50.0
    assert _harness.percentile(samples, 99) == 99.0
    assert _harness.percentile([3.0], 99) == 3.0


def test_targets_compare_in_their_direction() -> None:
    at_least = _harness.Target("rate", at_least=True, threshold=10.0)
    at_most = _harness.Target("bytes", at_least=False, threshold=1024, of_ratio=False, unit=" B")
    assert at_least.met(10.0)
    assert not at_least.met(9.9)
    assert at_most.met(1024)
    assert not at_most.met(1025)
    assert at_most.describe() == "≤ 1024 B"


def test_scaled_sizes_keep_the_shape() -> None:
    quick = _harness.FULL_SIZES.scaled(20)
    assert quick.pingpong == 1_000
    assert quick.fan_in_producers == _harness.FULL_SIZES.fan_in_producers
    assert quick.ring_members == _harness.FULL_SIZES.ring_members
    assert _harness.FULL_SIZES.scaled(10**9).counting == 1


def test_the_calls_benchmark_measures_every_figure() -> None:
    """``benchmarks/calls.py`` (quick sizes) reports finite, positive figures; their values are noise here."""
    from benchmarks import calls

    figures = calls.run(quick=True)
    assert set(figures) == {"ask_us", "call_us", "tell_us", "cast_us", "call_vs_ask", "cast_vs_tell"}
    assert all(0 < value < float("inf") for value in figures.values())


def test_the_physical_floors_are_measured_beside_the_runtime() -> None:
    """``benchmarks/physical.py`` at tiny sizes: both floors and both runtime figures, and a bare cell with as
    many fields as the runtime's."""
    from benchmarks import physical
    from runtime._cell import Cell

    row = physical.run(messages=2_000, actors=500, repeat=1)
    assert set(row) == {"tell_ns", "floor_tell_ns", "tell_vs_floor", "spawn_s", "floor_spawn_s", "spawn_vs_floor",
                        "cell_fields"}
    assert all(0 < value < float("inf") for value in row.values())
    cell_class = physical._cell_class()
    assert len(cell_class.__slots__) == row["cell_fields"] > len(Cell.__slots__)


def test_the_scale_benchmark_reads_and_scrapes_at_a_small_size() -> None:
    """``benchmarks/scale.py`` at 50 actors: every figure measured, the scrape answered, before and once parked."""
    import trio

    from benchmarks import scale

    row = trio.run(scale._at_size, 50, 1)
    assert set(row) == {"statistics_ms", "parked_ms", "top20_ms", "scrape_ms", "scrape_bytes", "status", "stall_ms",
                        "settled_stall_ms"}
    assert row["status"] == 200
    assert row["scrape_bytes"] > 0
    assert all(0 <= value < float("inf") for value in row.values())
