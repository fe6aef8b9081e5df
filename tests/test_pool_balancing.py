"""The balancing pool (``Pool(..., routing="balancing")``): one queue that every routee takes from when it is free.

First its figures under virtual time, against the M/M/c queue Erlang C describes; then each guarantee a pool
gives (sender, asks, calls, broadcast, resize, supervision, autoscale), with a shared queue in front.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Server, poisson_load

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    Autoscale,
    ClassStatistics,
    DeadLetter,
    GetRoutees,
    Metrics,
    PoisonPill,
    Pool,
    PoolResized,
    erlang_c_wait,
)
from actors._pool import Broadcast, Resize
from actors.testing import Probe

pytestmark = pytest.mark.deadline(100_000)


SERVER = f"{Server.__module__}.{Server.__qualname__}"


class Worker(Actor):
    """Sleeps for ``(name, seconds)`` jobs and logs ``(name, routee, start, end)``; answers with its own name."""

    def __init__(self, log: list[tuple[Any, str, float, float]]) -> None:
        self.log = log

    async def receive(self, message: Any) -> Any:
        name, seconds = message
        if name == "boom":
            raise ValueError("boom")
        start = trio.current_time()
        await trio.sleep(seconds)
        self.log.append((name, self.ref.name, start, trio.current_time()))
        return self.ref.name

    async def double(self, value: int) -> tuple[str, int]:
        """A method to call through the pool."""
        return self.ref.name, 2 * value


def give(pool: ActorRef, jobs: range, seconds: float) -> None:
    """Tell ``pool`` the job ``(n, seconds)`` for each ``n`` in ``jobs``."""
    for n in jobs:
        pool.tell((n, seconds))


class Echo(Actor):
    """Answers an ask with its own name; told ``"who"``, tells its sender who it is and who the sender is; told
    anything else, notes the sender in ``senders``."""

    def __init__(self, senders: list[Any]) -> None:
        self.senders = senders

    async def receive(self, message: Any) -> Any:
        sender = self.sender
        if message == "who":
            assert sender is not None
            sender.tell((self.ref.name, sender))
        elif message != "ask":
            self.senders.append(sender)
        return self.ref.name


class Collector(Actor):
    """Keeps what it is told."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)


# -- the figures: an M/M/c queue -----------------------------------------------------------------------------


MMC_RUNS = [
    pytest.param(1, 2, id="seed-1"),
    pytest.param(2, 10, id="seed-2-long", marks=pytest.mark.slow),
    pytest.param(3, 10, id="seed-3-long", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("seed", "windows"), MMC_RUNS)
async def test_a_balancing_pool_is_an_mmc_queue_at_the_default_settings(
        autojump_clock: trio.testing.MockClock, seed: int, windows: int) -> None:
    """c = 4, μ = 200/s, ρ = 0.8, at the default figures (a 60 s window, one message in 32 timed), read once a
    window: L = λW to 5% on the routees' class in every window, and W over the windows within 10% of Erlang C's
    Wq + 1/μ. A routee never holds more than the message it handles, and the pool's own row counts the arrivals.

    W's own spread (the run's, not the measurement's) is about 6% over two windows and 3% over ten; measured, over
    ten windows, W is 1.00, 0.995 and 0.99 of Erlang C's prediction for seeds 1, 2 and 3.
    """
    service_rate, size = 200.0, 4
    arrival_rate = 0.8 * size * service_rate
    rng = random.Random(seed)
    seen: list[ClassStatistics] = []
    async with ActorSystem(seed=seed) as system:
        pool = await system.spawn(Pool, Server, size=size, routing="balancing", name="pool")
        start = trio.current_time()
        for window in range(1, windows + 1):
            await poisson_load(pool, arrival_rate, service_rate, start + 60.0 * window, rng)
            stats = system.statistics()
            seen.append(stats.by_class()[SERVER, system.node_id])
            assert stats.actors["pool"].arrival_rate == pytest.approx(arrival_rate, rel=0.05)
            for n in range(1, size + 1):
                routee = stats.actors[f"pool/routee-{n}"]
                assert routee.peak_mailbox_length == 1  # one message at a time: the others wait in the pool
                assert routee.mean_in_system == pytest.approx(routee.arrival_rate * routee.mean_sojourn, rel=0.05)
    for aggregate in seen:
        assert aggregate.actors == size
        assert aggregate.arrival_rate == pytest.approx(arrival_rate, rel=0.05)
        assert aggregate.mean_in_system == pytest.approx(aggregate.arrival_rate * aggregate.mean_sojourn, rel=0.05)
        assert aggregate.mean_queue_length == pytest.approx(aggregate.arrival_rate * aggregate.mean_wait, rel=0.05)
    weights = sum(s.arrival_rate for s in seen)
    sojourn = sum(s.arrival_rate * s.mean_sojourn for s in seen) / weights
    wait = sum(s.arrival_rate * s.mean_wait for s in seen) / weights
    predicted_wait = erlang_c_wait(arrival_rate, service_rate, size)
    assert sojourn == pytest.approx(predicted_wait + 1 / service_rate, rel=0.10)
    assert wait == pytest.approx(predicted_wait, rel=0.25)  # Wq alone varies more: it is the smaller part


# -- the shared queue ----------------------------------------------------------------------------------------


async def test_no_message_waits_while_a_routee_is_free(autojump_clock: trio.testing.MockClock) -> None:
    """A long job holds one routee; the short ones behind it all go to the other, as it frees (round robin
    would have put every second one behind the long job)."""
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=2, routing="balancing")
        pool.tell(("long", 10.0))
        give(pool, range(5), 1.0)
        await trio.sleep(1.5)
        assert "waiting=3" in repr(pool._target.instance)  # type: ignore[union-attr]
        await trio.sleep(20.0)
    long = [entry for entry in log if entry[0] == "long"]
    short = [entry for entry in log if entry[0] != "long"]
    assert [(s, e) for _, _, s, e in long] == [(0.0, 10.0)]
    assert [(name, start, end) for name, _, start, end in short] == [(n, float(n), n + 1.0) for n in range(5)]
    assert {routee for _, routee, _, _ in short} != {long[0][1]}


async def test_a_message_goes_to_an_idle_routee_at_once_and_in_order(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=3, routing="balancing")
        for n in range(3):
            pool.tell((n, 5.0))
            await trio.sleep(1.0)  # each finds an idle routee
        give(pool, range(3, 9), 1.0)  # all busy: these wait, in order
        await trio.sleep(30.0)
    starts = {name: start for name, _, start, _ in log}
    assert [starts[n] for n in range(3)] == [0.0, 1.0, 2.0]
    assert [starts[n] for n in range(3, 9)] == [5.0, 6.0, 6.0, 7.0, 7.0, 7.0]  # as routees free, first come first
    assert len({routee for _, routee, _, _ in log}) == 3


# -- what a pool keeps -----------------------------------------------------------------------------------------


async def test_the_sender_is_kept_and_asks_are_answered_by_the_routee(
        autojump_clock: trio.testing.MockClock) -> None:
    senders: list[Any] = []
    replies: list[Any] = []

    class Teller(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "go":
                pool.tell("who")  # told by this actor: the routee sees it as the sender
            else:
                replies.append(message)

    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Echo, senders, size=3, routing="balancing")
        names = {ref.name for ref in await pool.ask(GetRoutees())}
        teller = await system.spawn(Teller)
        teller.tell("go")
        pool.tell("from outside")
        assert await pool.ask("ask") in names  # the routee's return value answers the ask
        await trio.testing.wait_all_tasks_blocked()
        assert len(replies) == 1
        name, sender = replies[0]
        assert name in names
        assert sender == teller
        assert senders == [None]  # told from outside any actor


async def test_a_told_message_keeps_its_sender_and_an_ask_is_answered_by_whichever_routee_took_it(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=2, routing="balancing")
        async with trio.open_nursery() as nursery:
            answers: dict[int, str] = {}

            async def ask(n: int) -> None:
                answers[n] = await pool.ask((n, 1.0 + n))

            for n in range(4):
                nursery.start_soon(ask, n)
        handled_by = {name: routee for name, routee, _, _ in log}
        assert answers == handled_by
        assert set(answers.values()) == {"routee-1", "routee-2"}


async def test_method_calls_are_balanced_like_messages(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        pool = await system.spawn(Pool[Worker], Worker, [], size=2, routing="balancing")
        results = [await pool.call(Worker.double, n) for n in range(4)]
        assert [value for _, value in results] == [0, 2, 4, 6]
        assert {name for name, _ in results} <= {"routee-1", "routee-2"}


async def test_a_broadcast_reaches_every_routee(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Echo, [], size=3, routing="balancing")
        routees = await pool.ask(GetRoutees())
        assert await pool.ask(Broadcast("ask")) == [ref.name for ref in routees]  # each routee's own answer


async def test_broadcast_poison_pill_works_off_the_shared_queue_first(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=2, routing="balancing")
        probe = await Probe.spawn(system)
        await probe.watch(pool)
        give(pool, range(6), 1.0)
        pool.tell(Broadcast(PoisonPill()))
        with trio.fail_after(10):
            await probe.expect_terminated(pool)
        assert trio.current_time() == 3.0  # two routees, six one-second jobs: the pills came last
        assert system.statistics().dead_letters == 0
    assert sorted(name for name, _, _, _ in log) == list(range(6))


async def test_resizing_down_leaves_no_message_behind(autojump_clock: trio.testing.MockClock) -> None:
    """A removed routee takes nothing new and finishes the message it holds; what waits goes to the others."""
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=4, routing="balancing")
        give(pool, range(12), 2.0)
        await trio.sleep(1.0)  # four held, eight waiting
        assert len(await pool.ask(Resize(2))) == 2
        await trio.sleep(30.0)
        assert system.statistics().dead_letters == 0
        assert len(await pool.ask(GetRoutees())) == 2
    assert sorted(name for name, _, _, _ in log) == list(range(12))
    removed = [entry for entry in log if entry[1] in {"routee-3", "routee-4"}]
    assert len(removed) == 2
    assert all(start == 0.0 for _, _, start, _ in removed)  # only what they held


async def test_resizing_up_puts_the_new_routees_to_work_on_what_waits(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=1, routing="balancing")
        give(pool, range(4), 4.0)
        await trio.sleep(1.0)
        await pool.ask(Resize(4))
        await trio.sleep(10.0)
    assert sorted((name, start) for name, _, start, _ in log) == [(0, 0.0), (1, 1.0), (2, 1.0), (3, 1.0)]


async def test_a_failing_routee_is_restarted_and_the_others_go_on(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=2, routing="balancing")
        give(pool, range(3), 1.0)
        with pytest.raises(ActorFailed):
            await pool.ask(("boom", 0.0))
        give(pool, range(3, 8), 1.0)
        await trio.sleep(20.0)
        stats = system.statistics()
        assert sum(stats.actors[f"{pool.path}/routee-{n}"].restarts for n in (1, 2)) == 1
        assert len(await pool.ask(GetRoutees())) == 2
    assert sorted(name for name, _, _, _ in log) == list(range(8))
    assert {routee for _, routee, _, _ in log} == {"routee-1", "routee-2"}  # the restarted one works again


async def test_stopping_the_pool_refuses_what_still_waits(autojump_clock: trio.testing.MockClock) -> None:
    dead: list[DeadLetter] = []
    async with ActorSystem() as system:
        system.events.subscribe(await system.spawn(Collector, dead), DeadLetter)
        pool = await system.spawn(Pool, Worker, [], size=1, routing="balancing")
        pool.tell(("held", 5.0))
        pool.tell(("waiting", 1.0))
        async with trio.open_nursery() as nursery:
            failures: list[BaseException] = []

            async def ask() -> None:
                try:
                    await pool.ask(("asked", 1.0))
                except ActorStopped as exc:
                    failures.append(exc)

            nursery.start_soon(ask)
            await trio.sleep(1.0)
            await system.stop(pool)
        assert len(failures) == 1
        assert "was not handled" in str(failures[0])
        await trio.testing.wait_all_tasks_blocked()
    assert [d.message for d in dead if d.recipient == pool] == [("waiting", 1.0), ("asked", 1.0)]


async def test_a_cancelled_ask_leaves_the_queue_consistent(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[Any, str, float, float]] = []
    async with ActorSystem() as system:
        pool = await system.spawn(Pool, Worker, log, size=1, routing="balancing")
        pool.tell(("first", 5.0))
        with trio.move_on_after(1.0):
            await pool.ask(("cancelled", 1.0))
        assert await pool.ask(("after", 1.0)) == "routee-1"  # the cancelled one is still handled, in order
    assert [name for name, _, _, _ in log] == ["first", "cancelled", "after"]


async def test_balancing_cannot_spread_its_routees() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed, match="cannot spread=True"):
            await system.spawn(Pool, Worker, [], size=2, routing="balancing", spread=True)


# -- autoscale -----------------------------------------------------------------------------------------------


async def test_an_autoscaled_balancing_pool_follows_the_mmc_size(autojump_clock: trio.testing.MockClock) -> None:
    """The autoscaler reads λ at the pool and μ at the routees: both are the same with a shared queue, so a
    balancing pool sizes itself to what Erlang C predicts, up and back down."""
    service_rate = 10.0
    policy = Autoscale(min=1, max=12, target_wait=0.02, interval=2.0, cooldown=20.0)
    rng = random.Random(2027)
    events: list[Any] = []
    async with ActorSystem(metrics=Metrics(window=20.0, buckets=10)) as system:
        system.events.subscribe(await system.spawn(Collector, events), PoolResized)
        pool = await system.spawn(Pool, Server, autoscale=policy, routing="balancing", name="pool")
        for rate in (20.0, 60.0, 20.0):
            sizes = []
            start = trio.current_time()
            next_look = start + 60.0
            while trio.current_time() - start < 90.0:
                await trio.sleep(rng.expovariate(rate))
                pool.tell(rng.expovariate(service_rate))
                if trio.current_time() >= next_look:
                    sizes.append(len(await pool.ask(GetRoutees())))
                    next_look += 1.0
            wanted = policy.size_for(rate, service_rate)[0]  # by Erlang C's wait: 4, then 8, then 4 again
            assert sizes
            assert all(abs(size - wanted) <= 1 for size in sizes), (rate, wanted, sizes)
            stats = system.statistics().by_class()[SERVER, system.node_id]
            assert stats.actors == wanted
            # The wait the routees measured in the shared queue over the last 20 s meets the target that the
            # size was chosen for (Erlang C predicts 9 ms at 4 routees and 20/s, 18 ms at 8 and 60/s).
            assert stats.mean_wait <= policy.target_wait
    assert any(e.size > e.previous for e in events)
    assert any(e.size < e.previous for e in events)
