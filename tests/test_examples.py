"""Every program in ``examples/`` runs to completion (in virtual time where it waits on trio's clock)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid
from pathlib import Path

import pytest
import trio
import trio.testing
from amqp_support import broker as broker

import examples
from runtime.amqp import open_connection

EXAMPLES = sorted(info.name for info in pkgutil.iter_modules(examples.__path__) if not info.name.startswith("_"))


def test_every_example_is_covered() -> None:
    assert {"hello", "demo", "service", "supervision", "work_queue", "calls"} <= set(EXAMPLES)


async def test_hello_prints_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import hello

    assert await hello.main() == 15
    assert "the counter says 15" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_has_a_documented_main(name: str) -> None:
    module = importlib.import_module(f"examples.{name}")
    assert module.__doc__, f"examples/{name}.py needs a module docstring for readers"
    assert callable(getattr(module, "main", None)), f"examples/{name}.py needs a main()"




async def test_the_demo_runs_the_whole_platform(autojump_clock: trio.testing.MockClock,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from examples import demo

    result = await demo.main(3.0)
    out = capsys.readouterr().out
    assert result["routed"] > 1000  # about 300 orders a second, each routed when created and when paid
    assert result["acked"] >= result["routed"] * 0.9
    assert result["restarts"] >= 1  # the card processor timed out and the payment worker was restarted
    assert result["redelivered"] >= 1  # what the failed worker had not acknowledged went to another
    assert result["reasons"].get("rejected", 0) >= 1  # bad orders were rejected into the dead-letter queue
    assert sum(result["reasons"].values()) == result["dead-lettered"]
    assert "summary:" in out
    assert "L = λW?" in out
    assert " NO " not in out


async def test_supervision_restarts_the_api_with_the_database(autojump_clock: trio.testing.MockClock,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from examples import supervision

    log = await supervision.main()
    assert log == ["database: connected", "api: ready", "database: connected", "api: ready"]
    out = capsys.readouterr().out
    assert "row for 'user 2'" in out  # asked while both restarted: answered by the fresh instances
    assert "'app/database': 1, 'app/api': 1" in out


async def test_work_queue_spreads_retries_and_dead_letters(autojump_clock: trio.testing.MockClock) -> None:
    from examples import work_queue

    result = await work_queue.main()
    assert sum(result["done"].values()) == result["acked"] == 30
    assert len(result["done"]) == 3  # competing consumers: every worker got work
    assert result["redelivered"] == 3  # the three flaky jobs, each retried once
    assert (result["dead"], result["reason"]) == ("malformed", "rejected")


async def test_cpu_bound_counts_the_same_primes_in_one_process_and_on_workers(
        capsys: pytest.CaptureFixture[str]) -> None:
    from examples import cpu_bound

    assert await cpu_bound.main(limit=20_000) == 2262
    out = capsys.readouterr().out
    assert "2262 primes below 20,000" in out
    assert "on 2 worker processes" in out


async def test_the_demo_runs_its_packers_on_a_worker_process(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import demo

    result = await demo.main(1.5, workers=1)  # in real time: worker links wait on real sockets
    out = capsys.readouterr().out
    assert result["packer_nodes"] != ["the head"]
    assert result["packer_nodes"][0].startswith("worker ")
    assert result["routed"] > 100
    assert result["acked"] >= result["routed"] * 0.5  # acks from the worker reached the queues (real time: slack)
    assert "packers run on worker" in out


async def test_peers_greet_each_other_through_the_broker(broker: str, capsys: pytest.CaptureFixture[str]) -> None:
    from examples import peers

    with trio.fail_after(60):  # real time: the nodes meet on the broker
        answer = await peers.main(cluster=f"test-example-{uuid.uuid4().hex[:8]}")
    assert answer == "hello visitor, from node server"
    out = capsys.readouterr().out
    assert "server: the visitor left" in out


@pytest.mark.deadline(60)
async def test_broker_orders_runs_on_rabbitmq(broker: str, capsys: pytest.CaptureFixture[str]) -> None:
    from examples import broker_orders

    prefix = f"test.example.{uuid.uuid4().hex[:8]}"
    try:
        result = await broker_orders.main(broker, prefix)  # in real time: the broker's clock
    finally:
        with trio.fail_after(10):
            async with open_connection(broker) as connection:
                channel = await connection.channel()
                for queue in ("new-orders", "failed-orders"):
                    await channel.queue_delete(f"{prefix}.{queue}")
                for exchange in ("orders", "dead-letters"):
                    await channel.exchange_delete(f"{prefix}.{exchange}")
    assert result["confirmed"] == 10
    assert result["done"] == list(range(10))
    assert result["unrouted"] == 0
    assert (result["failed"], result["reason"], result["queue"]) == ({"id": 99}, "rejected", f"{prefix}.new-orders")
    assert "10 orders confirmed" in capsys.readouterr().out


EXPECTED_SHOPPING = [
    "reserved 2 apples, 3 left",
    "reserved 2 apples, 1 left",
    "refused: only 1 apples left",
    "stock: {'apples': 1, 'pears': 2}",
]


async def test_calls_shop_at_an_inventory(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import calls

    assert await calls.main() == EXPECTED_SHOPPING
    assert "refused: only 1 apples left" in capsys.readouterr().out


@pytest.mark.deadline(60)
async def test_calls_shop_the_same_on_a_worker_process() -> None:
    from examples import calls

    assert await calls.main(workers=1) == EXPECTED_SHOPPING


def test_the_readmes_first_program_runs() -> None:
    """The README's first example, as it is printed (it calls ``trio.run`` itself)."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    match = re.search(r"## A first program.*?```python\n(.*?)```", text, re.DOTALL)
    assert match is not None
    exec(compile(match[1], "README.md", "exec"), {"__name__": "readme"})
