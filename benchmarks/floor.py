"""The raw-trio floor of every workload: what the same work costs with nothing but tasks and memory channels.

Each "actor" is one trio task owning an unbounded memory channel, its mailbox. A message travels as an
:data:`Envelope`, ``(message, sender)``, where ``sender`` is the send channel of the telling actor (or None).
A tell is ``send_nowait``; the actor loop is ``async for message, sender in inbox``. An ask opens a fresh
reply channel of capacity 1 per request, sends ``(message, reply_send)`` and awaits
``reply_receive.receive()``: the reply channel plays the sender, so "answer the sender" is the same code for
tells and asks, as in the runtime.

The functions mirror :mod:`benchmarks.core` one for one (same messages, same logic per message), set their
actors up and tear them down untimed, and check their results (see :class:`benchmarks._harness.Side`).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import attrs
import trio
import trio.testing

from ._harness import WARMUP_ACTORS, WARMUP_ASKS, SpawnSample, Tally, expect_equal, rss_bytes

Envelope: TypeAlias = "tuple[Any, Any]"
"""``(message, sender)``: what travels through a floor mailbox; ``sender`` is an :data:`Address` or None."""
Address: TypeAlias = "trio.MemorySendChannel[Envelope]"
"""The floor's ActorRef: the send side of an actor's mailbox."""
Inbox: TypeAlias = "trio.MemoryReceiveChannel[Envelope]"
"""The receive side of an actor's mailbox, owned by the actor's task."""
Behaviour: TypeAlias = "Callable[..., Awaitable[None]]"
"""An actor task: ``behaviour(inbox, me, *args)``."""


def start_actor(nursery: trio.Nursery, behaviour: Behaviour, *args: Any) -> Address:
    """Open a mailbox and start ``behaviour(inbox, me, *args)`` as a task; return its address.

    The task starts at the nursery's next scheduling round, as ``start_soon`` does; see :func:`settle`.
    """
    address, inbox = trio.open_memory_channel[Envelope](math.inf)
    nursery.start_soon(behaviour, inbox, address, *args)
    return address


async def settle() -> None:
    """Wait until every started actor task is blocked in its ``async for``: they are all running."""
    await trio.testing.wait_all_tasks_blocked()


async def ask(address: Address, message: Any) -> Any:
    """Send ``message`` to ``address`` with a fresh reply channel as the sender, and wait for the answer."""
    reply_send, reply_receive = trio.open_memory_channel[Envelope](1)
    address.send_nowait((message, reply_send))
    answer, _ = await reply_receive.receive()
    return answer


# -- pingpong ------------------------------------------------------------------------------------------------


async def _ping(inbox: Inbox, me: Address) -> None:
    partner: Any = None
    requester: Any = None
    rounds = rounds_left = 0
    async for message, sender in inbox:
        if message == "pong":
            rounds_left -= 1
            if rounds_left > 0:
                partner.send_nowait(("ping", me))
            else:
                requester.send_nowait((rounds, me))
        else:  # ("run", pong, rounds), asked by the driver: answered after the last pong
            _, partner, rounds = message
            rounds_left = rounds
            requester = sender
            partner.send_nowait(("ping", me))


async def _pong(inbox: Inbox, me: Address) -> None:
    async for _message, sender in inbox:
        sender.send_nowait(("pong", me))


async def pingpong(round_trips: int) -> float:
    """Seconds for ``round_trips`` ping/pong exchanges; the driver asks ping, answered after the last pong."""
    async with trio.open_nursery() as nursery:
        ping = start_actor(nursery, _ping)
        pong = start_actor(nursery, _pong)
        await settle()
        start = time.perf_counter()
        answer = await ask(ping, ("run", pong, round_trips))
        seconds = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    expect_equal("pingpong answer", answer, round_trips)
    return seconds


# -- counting ------------------------------------------------------------------------------------------------


async def _counter(inbox: Inbox, me: Address) -> None:
    count = 0
    async for message, sender in inbox:
        if message == "inc":
            count += 1
        else:  # "get"
            sender.send_nowait((count, me))


async def counting(messages: int) -> float:
    """Seconds to tell one counter ``messages`` increments and ask it for the count."""
    async with trio.open_nursery() as nursery:
        counter = start_actor(nursery, _counter)
        await settle()
        start = time.perf_counter()
        for _ in range(messages):
            counter.send_nowait(("inc", None))
        count = await ask(counter, "get")
        seconds = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    expect_equal("counter", count, messages)
    return seconds


# -- fan-in --------------------------------------------------------------------------------------------------


async def _producer(inbox: Inbox, me: Address) -> None:
    async for message, _sender in inbox:
        consumer, count = message
        for item in range(count):
            consumer.send_nowait((item, me))


async def _consumer(inbox: Inbox, me: Address) -> None:
    count = target = 0
    waiting: Any = None
    async for message, sender in inbox:
        if type(message) is int:  # an item
            count += 1
            if waiting is not None and count >= target:
                waiting.send_nowait((count, me))
                waiting = None
        else:  # ("wait", target), asked by the driver: answered once that many items have arrived
            _, target = message
            if count >= target:
                sender.send_nowait((count, me))
            else:
                waiting = sender


async def fan_in(producers: int, per_producer: int) -> float:
    """Seconds for ``producers`` actors, started by a tell each, to tell ``per_producer`` items to one."""
    total = producers * per_producer
    async with trio.open_nursery() as nursery:
        consumer = start_actor(nursery, _consumer)
        senders = [start_actor(nursery, _producer) for _ in range(producers)]
        await settle()
        start = time.perf_counter()
        for producer in senders:
            producer.send_nowait(((consumer, per_producer), None))
        count = await ask(consumer, ("wait", total))
        seconds = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    expect_equal("consumer count", count, total)
    return seconds


# -- ask latency ---------------------------------------------------------------------------------------------


async def _echo(inbox: Inbox, me: Address) -> None:
    async for message, sender in inbox:
        sender.send_nowait((message, me))


async def ask_latency(asks: int) -> list[float]:
    """Seconds taken by each of ``asks`` sequential asks from the driver task to an echo actor."""
    samples: list[float] = []
    wrong: list[tuple[int, Any]] = []
    async with trio.open_nursery() as nursery:
        echo = start_actor(nursery, _echo)
        await settle()
        for i in range(WARMUP_ASKS):
            await ask(echo, i)
        for i in range(asks):
            start = time.perf_counter()
            answer = await ask(echo, i)
            samples.append(time.perf_counter() - start)
            if answer != i:
                wrong.append((i, answer))
        nursery.cancel_scope.cancel()
    expect_equal("wrong echoes (sent, answered)", wrong[:3], [])
    return samples


# -- spawn ---------------------------------------------------------------------------------------------------


async def _idle(inbox: Inbox, me: Address) -> None:
    async for _envelope in inbox:
        pass


async def spawn(count: int) -> SpawnSample:
    """Start ``count`` idle actors (a task and a mailbox each); measure time, and RSS with all alive."""
    live: list[Address] = []
    async with trio.open_nursery() as nursery:
        live.extend(start_actor(nursery, _idle) for _ in range(WARMUP_ACTORS))
        await settle()
        gc.collect()
        rss_before = rss_bytes()
        start = time.perf_counter()
        for _ in range(count):
            live.append(start_actor(nursery, _idle))
        await settle()
        seconds = time.perf_counter() - start
        gc.collect()
        rss_after = rss_bytes()
        nursery.cancel_scope.cancel()
    expect_equal("live actors", len(live), WARMUP_ACTORS + count)
    return SpawnSample(count=count, seconds=seconds, rss_before=rss_before, rss_after=rss_after)


# -- threadring ----------------------------------------------------------------------------------------------


async def _ring_member(inbox: Inbox, me: Address, successor: Address) -> None:
    async for message, sender in inbox:
        first, second = message
        if type(first) is int:  # the token: (hops left, the driver's reply channel)
            hops_left, requester = first, second
        else:  # ("start", hops), asked by the driver
            hops_left, requester = second, sender
        if hops_left > 0:
            successor.send_nowait(((hops_left - 1, requester), me))
        else:
            requester.send_nowait(("done", me))


async def threadring(members: int, hops: int) -> float:
    """Seconds to pass a token ``hops`` times around a ring of ``members`` actors."""
    mailboxes = [trio.open_memory_channel[Envelope](math.inf) for _ in range(members)]
    async with trio.open_nursery() as nursery:
        for index, (address, inbox) in enumerate(mailboxes):
            successor = mailboxes[(index + 1) % members][0]
            nursery.start_soon(_ring_member, inbox, address, successor)
        await settle()
        start = time.perf_counter()
        answer = await ask(mailboxes[0][0], ("start", hops))
        seconds = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    expect_equal("threadring answer", answer, "done")
    return seconds


# -- million -------------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class Record:
    """What a registry keeps for one idle actor that owns no task: its name, its parent, its mailbox."""

    name: str
    parent: Record | None
    address: Address
    inbox: Inbox


async def million(count: int) -> dict[str, float]:
    """Make ``count`` idle actors as records with a mailbox each in a registry, then close and unregister them
    one by one, last first: seconds for each, and RSS bytes an actor."""
    registry: dict[str, Record] = {}
    root = Record("", None, *trio.open_memory_channel[Envelope](math.inf))
    made = 0

    def make() -> None:
        nonlocal made
        made += 1
        name = f"${made}"
        registry[name] = Record(name, root, *trio.open_memory_channel[Envelope](math.inf))

    for _ in range(WARMUP_ACTORS):
        make()
    gc.collect()
    rss_before = rss_bytes()
    start = time.perf_counter()
    for _ in range(count):
        make()
    await trio.lowlevel.checkpoint()
    spawn_s = time.perf_counter() - start
    gc.collect()
    rss_after = rss_bytes()
    start = time.perf_counter()
    for record in reversed(list(registry.values())):
        record.address.close()
        record.inbox.close()
        del registry[record.name]
    await trio.lowlevel.checkpoint()
    shutdown_s = time.perf_counter() - start
    expect_equal("records left", len(registry), 0)
    return {"spawn_s": spawn_s, "shutdown_s": shutdown_s, "bytes_per_actor": (rss_after - rss_before) / count}


# -- broadcast -----------------------------------------------------------------------------------------------


async def _receiver(inbox: Inbox, me: Address) -> None:
    async for message, _sender in inbox:
        message.hit()


async def broadcast(count: int) -> float:
    """Seconds for one message sent to each of ``count`` tasks blocked on their own channel to be handled."""
    async with trio.open_nursery() as nursery:
        mailboxes = [start_actor(nursery, _receiver) for _ in range(count)]
        await settle()
        tally = Tally(count, trio.Event())
        gc.collect()
        start = time.perf_counter()
        for address in mailboxes:
            address.send_nowait((tally, None))
        await tally.done.wait()
        seconds = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    expect_equal("receivers counted", tally.count, count)
    return seconds
