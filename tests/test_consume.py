"""Queues for plain trio code: ``async with system.consume(queue, prefetch=N) as deliveries``."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors import ActorSystem, Get, GetStatistics, Publish, Queue


async def fill(system: ActorSystem, count: int, **options: object) -> object:
    queue = await system.spawn(Queue, name="jobs", **options)
    for n in range(count):
        queue.tell(Publish("", n))
    return queue


async def test_a_block_consumes_with_acks_and_keeps_to_its_prefetch(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        queue = await fill(system, 10)
        taken = []
        async with system.consume(queue, prefetch=3) as deliveries:
            async for delivery in deliveries:
                stats = await queue.ask(GetStatistics())
                assert stats.unacked <= 3  # never more than the prefetch window out at once
                taken.append(delivery.body)
                delivery.ack()
                if len(taken) == 10:
                    break
        assert taken == list(range(10))
        stats = await queue.ask(GetStatistics())
        assert (stats.ready, stats.unacked, stats.consumers) == (0, 0, 0)


async def test_what_the_block_did_not_settle_goes_back_when_it_fails(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        queue = await fill(system, 5)

        async def run_jobs() -> None:
            async with system.consume(queue, prefetch=2) as deliveries:
                async for delivery in deliveries:
                    if delivery.body == 0:
                        delivery.ack()
                        continue
                    raise RuntimeError("the job runner broke")  # holding delivery 1 (and maybe 2) unsettled

        with pytest.raises(RuntimeError, match="the job runner broke"):
            await run_jobs()
        left = []
        while (delivery := await queue.ask(Get(auto_ack=True))) is not None:
            left.append((delivery.body, delivery.redelivered))
        assert sorted(body for body, _ in left) == [1, 2, 3, 4]  # 0 was acked; nothing is lost
        assert (1, True) in left  # the one it held came back as a redelivery


async def test_a_cancelled_block_gives_back_and_nack_requeues(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        queue = await fill(system, 3)
        with trio.move_on_after(5):
            async with system.consume(queue, prefetch=1) as deliveries:
                first = await deliveries.receive()
                first.nack(requeue=True)
                again = await deliveries.receive()
                assert (again.body, again.redelivered) == (first.body, True)
                await trio.sleep_forever()  # cancelled here, holding it
        stats = await queue.ask(GetStatistics())
        assert (stats.ready, stats.unacked, stats.consumers) == (3, 0, 0)


async def test_the_iteration_ends_when_the_queue_stops(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorSystem() as system:
        queue = await fill(system, 1)
        async with system.consume(queue) as deliveries:
            async for delivery in deliveries:
                delivery.ack()
                await system.stop(queue)
        with pytest.raises(ValueError, match=r"consume\(prefetch=0\): prefetch must be an int of at least 1"):
            async with system.consume(queue, prefetch=0):
                pass
        with pytest.raises(TypeError, match="consume\\(\\) takes the ref of a Queue, not 'jobs'"):
            async with system.consume("jobs"):  # type: ignore[arg-type]
                pass
