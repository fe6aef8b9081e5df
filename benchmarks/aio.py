"""The raw-asyncio baseline of every workload it makes sense for: what a user would write instead of an actor library.

Each "actor" is one asyncio task owning an unbounded :class:`asyncio.Queue`, its mailbox; a message travels as
``(message, sender)``, as on the trio floor. A tell is ``put_nowait``; the actor loop is ``await inbox.get()``. An
ask puts ``(message, future)`` with a fresh :class:`asyncio.Future` from the running loop and awaits the future;
the actor answers it with ``set_result``. Each actor knows whether what it answers was asked (a future) or told
(another actor's queue), so no reply goes through a type check.

The functions mirror :mod:`benchmarks.floor` one for one (same messages, same logic per message), set their
tasks up and tear them down untimed, and check their results. The harness runs each in its own
``asyncio.run``, interleaved with the trio floor and the runtime (see :class:`benchmarks._harness.Side`).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Coroutine
from typing import Any, TypeAlias

from ._harness import WARMUP_ACTORS, WARMUP_ASKS, SpawnSample, expect_equal, rss_bytes

Inbox: TypeAlias = "asyncio.Queue[tuple[Any, Any]]"
"""An actor's mailbox, and its address: whoever holds it can ``put_nowait((message, sender))``."""


class _Actors:
    """The tasks of one workload: started with :meth:`start`, cancelled (and awaited) by :meth:`close`."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, behaviour: Any, *args: Any) -> Inbox:
        """Open a mailbox and start ``behaviour(inbox, *args)`` as a task; return the mailbox."""
        inbox: Inbox = asyncio.Queue()
        self.tasks.append(asyncio.create_task(behaviour(inbox, *args)))
        return inbox

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def settle() -> None:
    """Let every task started so far reach its first ``await inbox.get()``.

    ``create_task`` schedules each task's first step with ``call_soon``, in order; a ``sleep(0)`` queues this
    task's own wake-up behind all of them.
    """
    await asyncio.sleep(0)


async def ask(inbox: Inbox, message: Any) -> Any:
    """Put ``message`` with a fresh future as the sender, and wait for the answer."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    inbox.put_nowait((message, future))
    return await future


# -- pingpong ------------------------------------------------------------------------------------------------


async def _ping(inbox: Inbox) -> None:
    partner: Any = None
    requester: Any = None
    rounds = rounds_left = 0
    get = inbox.get
    while True:
        message, sender = await get()
        if message == "pong":
            rounds_left -= 1
            if rounds_left > 0:
                partner.put_nowait(("ping", inbox))
            else:
                requester.set_result(rounds)
        else:  # ("run", pong, rounds), asked by the driver: answered after the last pong
            _, partner, rounds = message
            rounds_left = rounds
            requester = sender
            partner.put_nowait(("ping", inbox))


async def _pong(inbox: Inbox) -> None:
    get = inbox.get
    while True:
        _message, sender = await get()
        sender.put_nowait(("pong", inbox))


async def pingpong(round_trips: int) -> float:
    """Seconds for ``round_trips`` ping/pong exchanges; the driver asks ping, answered after the last pong."""
    actors = _Actors()
    ping = actors.start(_ping)
    pong = actors.start(_pong)
    await settle()
    start = time.perf_counter()
    answer = await ask(ping, ("run", pong, round_trips))
    seconds = time.perf_counter() - start
    await actors.close()
    expect_equal("pingpong answer", answer, round_trips)
    return seconds


# -- counting ------------------------------------------------------------------------------------------------


async def _counter(inbox: Inbox) -> None:
    count = 0
    get = inbox.get
    while True:
        message, sender = await get()
        if message == "inc":
            count += 1
        else:  # "get"
            sender.set_result(count)


async def counting(messages: int) -> float:
    """Seconds to tell one counter ``messages`` increments and ask it for the count."""
    actors = _Actors()
    counter = actors.start(_counter)
    await settle()
    start = time.perf_counter()
    put = counter.put_nowait
    for _ in range(messages):
        put(("inc", None))
    count = await ask(counter, "get")
    seconds = time.perf_counter() - start
    await actors.close()
    expect_equal("counter", count, messages)
    return seconds


# -- fan-in --------------------------------------------------------------------------------------------------


async def _producer(inbox: Inbox) -> None:
    while True:
        (consumer, count), _sender = await inbox.get()
        put = consumer.put_nowait
        for item in range(count):
            put((item, inbox))


async def _consumer(inbox: Inbox) -> None:
    count = target = 0
    waiting: Any = None
    get = inbox.get
    while True:
        message, sender = await get()
        if type(message) is int:  # an item
            count += 1
            if waiting is not None and count >= target:
                waiting.set_result(count)
                waiting = None
        else:  # ("wait", target), asked by the driver: answered once that many items have arrived
            _, target = message
            if count >= target:
                sender.set_result(count)
            else:
                waiting = sender


async def fan_in(producers: int, per_producer: int) -> float:
    """Seconds for ``producers`` actors, started by a tell each, to tell ``per_producer`` items to one."""
    total = producers * per_producer
    actors = _Actors()
    consumer = actors.start(_consumer)
    senders = [actors.start(_producer) for _ in range(producers)]
    await settle()
    start = time.perf_counter()
    for producer in senders:
        producer.put_nowait(((consumer, per_producer), None))
    count = await ask(consumer, ("wait", total))
    seconds = time.perf_counter() - start
    await actors.close()
    expect_equal("consumer count", count, total)
    return seconds


# -- ask latency ---------------------------------------------------------------------------------------------


async def _echo(inbox: Inbox) -> None:
    get = inbox.get
    while True:
        message, sender = await get()
        sender.set_result(message)


async def ask_latency(asks: int) -> list[float]:
    """Seconds taken by each of ``asks`` sequential asks from the driver task to an echo actor."""
    samples: list[float] = []
    wrong: list[tuple[int, Any]] = []
    actors = _Actors()
    echo = actors.start(_echo)
    await settle()
    for i in range(WARMUP_ASKS):
        await ask(echo, i)
    for i in range(asks):
        start = time.perf_counter()
        answer = await ask(echo, i)
        samples.append(time.perf_counter() - start)
        if answer != i:
            wrong.append((i, answer))
    await actors.close()
    expect_equal("wrong echoes (sent, answered)", wrong[:3], [])
    return samples


# -- spawn ---------------------------------------------------------------------------------------------------


async def _idle(inbox: Inbox) -> None:
    get = inbox.get
    while True:
        await get()


async def spawn(count: int) -> SpawnSample:
    """Start ``count`` idle actors (a task and a queue each); measure time, and RSS with all alive."""
    actors = _Actors()
    live = [actors.start(_idle) for _ in range(WARMUP_ACTORS)]
    await settle()
    gc.collect()
    rss_before = rss_bytes()
    start = time.perf_counter()
    for _ in range(count):
        live.append(actors.start(_idle))
    await settle()
    seconds = time.perf_counter() - start
    gc.collect()
    rss_after = rss_bytes()
    await actors.close()
    expect_equal("live actors", len(live), WARMUP_ACTORS + count)
    return SpawnSample(count=count, seconds=seconds, rss_before=rss_before, rss_after=rss_after)


# -- threadring ----------------------------------------------------------------------------------------------


async def _ring_member(inbox: Inbox, successor: Inbox) -> None:
    get = inbox.get
    put = successor.put_nowait
    while True:
        (first, second), sender = await get()
        if type(first) is int:  # the token: (hops left, the driver's future)
            hops_left, requester = first, second
        else:  # ("start", hops), asked by the driver
            hops_left, requester = second, sender
        if hops_left > 0:
            put(((hops_left - 1, requester), inbox))
        else:
            requester.set_result("done")


async def threadring(members: int, hops: int) -> float:
    """Seconds to pass a token ``hops`` times around a ring of ``members`` actors."""
    mailboxes: list[Inbox] = [asyncio.Queue() for _ in range(members)]
    tasks = [
        asyncio.create_task(_ring_member(inbox, mailboxes[(index + 1) % members]))
        for index, inbox in enumerate(mailboxes)
    ]
    await settle()
    start = time.perf_counter()
    answer = await ask(mailboxes[0], ("start", hops))
    seconds = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    expect_equal("threadring answer", answer, "done")
    return seconds


def run(coroutine: Coroutine[Any, Any, Any], deadline: float) -> Any:
    """``asyncio.run(coroutine)`` in a fresh event loop, raising :class:`TimeoutError` after ``deadline`` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine, deadline)

    return asyncio.run(bounded())
