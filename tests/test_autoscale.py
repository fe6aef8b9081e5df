"""Pools that size themselves: Erlang C, the Autoscale policy, and a pool following a Poisson load in virtual time."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorSystem, Autoscale, GetRoutees, Metrics, Pool, PoolResized, erlang_c_wait


class Server(Actor):
    """Serves each job by sleeping for its service time on trio's clock."""

    async def receive(self, message: Any) -> Any:
        await trio.sleep(message)


class Recorder(Actor):
    """Keeps every event it is sent."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)


# -- Erlang C and the policy, without a scheduler ------------------------------------------------------------


def test_erlang_c_matches_mm1_and_a_known_mmc_value() -> None:
    # M/M/1: Wq = ρ / (μ - λ).
    assert erlang_c_wait(8.0, 10.0, 1) == pytest.approx(0.8 / 2.0)
    # M/M/2 with λ = 2, μ = 1.5 (A = 4/3): P(wait) = 0.5333..., Wq = P / (cμ - λ) = 0.5333 / 1.
    assert erlang_c_wait(2.0, 1.5, 2) == pytest.approx(8 / 15)
    assert erlang_c_wait(0.0, 1.0, 3) == 0.0
    assert erlang_c_wait(3.0, 1.0, 3) == math.inf  # λ = cμ: the queue grows without bound
    assert erlang_c_wait(300.0, 1.0, 400) < erlang_c_wait(300.0, 1.0, 350) < 1e-3  # no overflow at large c
    with pytest.raises(ValueError, match="servers=0 must be at least 1"):
        erlang_c_wait(1.0, 1.0, 0)


def test_the_policy_wants_the_smallest_size_that_meets_its_target() -> None:
    by_utilization = Autoscale(min=1, max=16, target_utilization=0.8)
    assert by_utilization.size_for(20.0, 10.0)[0] == 3  # 20 / (3 * 10) = 0.67 <= 0.8 < 20 / 20
    assert by_utilization.size_for(0.0, 10.0)[0] == 1
    assert by_utilization.size_for(1000.0, 10.0)[0] == 16  # nothing meets it: max
    by_wait = Autoscale(min=2, max=16, target_wait=0.01)
    size, wait = by_wait.size_for(20.0, 10.0)
    assert wait <= 0.01 < erlang_c_wait(20.0, 10.0, size - 1)
    assert Autoscale(min=4, max=16).size_for(1.0, 10.0)[0] == 4  # never under min


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min": 0}, "Autoscale min=0 must be an integer of 1 or more"),
    ({"min": 4, "max": 2}, "Autoscale max=2 must be at least min=4"),
    ({"target_wait": 0}, "Autoscale target_wait=0 must be a positive, finite number"),
    ({"target_utilization": 1.5}, r"Autoscale target_utilization=1.5 must be a number in \(0, 1\]"),
    ({"interval": float("nan")}, "Autoscale interval=nan must be a positive, finite number"),
    ({"cooldown": -1}, "Autoscale cooldown=-1 must be a finite number of seconds, 0 or more"),
    ({"max": True}, "Autoscale max=True must be an integer of 1 or more"),
])
def test_bad_autoscale_arguments_are_refused_naming_them(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Autoscale(**kwargs)


# -- A pool following its load ---------------------------------------------------------------------------------


async def test_an_autoscaled_pool_follows_the_mmc_prediction_as_the_load_steps_up_and_down(
        autojump_clock: trio.testing.MockClock) -> None:
    service_rate = 10.0
    policy = Autoscale(min=1, max=12, target_utilization=0.8, interval=2.0, cooldown=20.0)
    rng = random.Random(2026)
    events: list[Any] = []
    async with ActorSystem(metrics=Metrics(window=20.0, buckets=10)) as system:
        recorder = await system.spawn(Recorder, events)
        system.events.subscribe(recorder, PoolResized)
        pool = await system.spawn(Pool, Server, autoscale=policy, name="pool")
        assert len(await pool.ask(GetRoutees())) == 1  # min, until μ is measured

        async def load(rate: float, seconds: float) -> list[int]:
            """Poisson arrivals at ``rate`` for ``seconds``; the pool's size at each second of the last third."""
            sizes = []
            start = trio.current_time()
            next_look = start + seconds * 2 / 3
            while trio.current_time() - start < seconds:
                await trio.sleep(rng.expovariate(rate))
                pool.tell(rng.expovariate(service_rate))
                if trio.current_time() >= next_look:
                    sizes.append(len(await pool.ask(GetRoutees())))
                    next_look += 1.0
            return sizes

        for rate in (20.0, 60.0, 20.0):
            sizes = await load(rate, 90.0)
            wanted = policy.size_for(rate, service_rate)[0]  # 3, then 8, then 3 again
            assert sizes
            assert all(abs(size - wanted) <= 1 for size in sizes), (rate, wanted, sizes)
        await trio.testing.wait_all_tasks_blocked()
    grown = [e for e in events if e.size > e.previous]
    shrunk = [e for e in events if e.size < e.previous]
    assert grown
    assert shrunk
    assert all(e.pool == pool for e in events)
    assert all(word in events[0].reason for word in ("λ=", "μ=", "predict a mean wait of"))


async def test_it_shrinks_only_after_the_cooldown(autojump_clock: trio.testing.MockClock) -> None:
    policy = Autoscale(min=1, max=8, interval=1.0, cooldown=15.0)
    shrunk = trio.Event()
    shrunk_at: list[float] = []

    class OnShrink(Actor):
        async def receive(self, message: Any) -> Any:
            if message.size == policy.min:  # back to min: under load it wants about 4
                shrunk_at.append(trio.current_time())
                shrunk.set()

    async with ActorSystem(metrics=Metrics(window=5.0, buckets=5)) as system:
        system.events.subscribe(await system.spawn(OnShrink), PoolResized)
        pool = await system.spawn(Pool, Server, autoscale=policy, name="pool")
        rng = random.Random(5)
        start = trio.current_time()
        while trio.current_time() - start < 30.0:  # about 4 routees' worth of work
            await trio.sleep(rng.expovariate(30.0))
            pool.tell(rng.expovariate(10.0))
        assert len(await pool.ask(GetRoutees())) >= 3
        assert not shrunk.is_set()  # it may have shrunk a little under load, never to min
        quiet_from = trio.current_time()
        await shrunk.wait()  # no load: it wants 1 at once, and waits out the cooldown first
        assert shrunk_at[0] - quiet_from >= policy.cooldown
        assert shrunk_at[0] - quiet_from <= policy.cooldown + 5.0 + 2 * policy.interval  # the window, two ticks
        assert len(await pool.ask(GetRoutees())) == 1


async def test_no_message_is_lost_when_the_pool_shrinks(autojump_clock: trio.testing.MockClock) -> None:
    done: list[int] = []

    class Slow(Actor):
        async def receive(self, message: Any) -> Any:
            await trio.sleep(0.05)
            done.append(message)

    policy = Autoscale(min=1, max=6, interval=0.5, cooldown=1.0)
    async with ActorSystem(metrics=Metrics(window=2.0, buckets=4)) as system:
        pool = await system.spawn(Pool, Slow, autoscale=policy)
        sent = 0
        for _ in range(400):  # a burst that grows the pool
            pool.tell(sent)
            sent += 1
            await trio.sleep(0.01)
        grown = len(await pool.ask(GetRoutees()))
        await trio.sleep(30.0)  # idle: it shrinks back while the routees drain
        assert grown > 1
        assert len(await pool.ask(GetRoutees())) == 1
    assert sorted(done) == list(range(sent))
