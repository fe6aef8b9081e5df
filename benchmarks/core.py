"""Every workload on the actor runtime, written with the public :mod:`actors` API only.

These mirror :mod:`benchmarks.floor` one for one: the same messages, the same logic per message, actors set up
and the system shut down untimed, the results checked (see :class:`benchmarks._harness.Side`). The driver is
the task that opened the :class:`~actors.ActorSystem`; its tells come from outside any actor (no sender).
"""

from __future__ import annotations

import gc
import time
from typing import Any

import trio

from actors import Actor, ActorRef, ActorSystem

from ._harness import WARMUP_ACTORS, WARMUP_ASKS, SpawnSample, Tally, expect_equal, rss_bytes

# -- pingpong ------------------------------------------------------------------------------------------------


class Ping(Actor):
    """Asked ``("run", pong, rounds)``: plays that many round trips with ``pong``, then answers ``rounds``."""

    def __init__(self) -> None:
        self.partner: Any = None  # ActorRef of pong, once running
        self.requester: Any = None  # the deferred reply to the driver's ask
        self.rounds = self.rounds_left = 0

    async def receive(self, message: Any) -> Any:
        if message == "pong":
            self.rounds_left -= 1
            if self.rounds_left > 0:
                self.partner.tell("ping")
            else:
                self.requester.tell(self.rounds)
        else:  # ("run", pong, rounds)
            _, self.partner, self.rounds = message
            self.rounds_left = self.rounds
            self.requester = self.defer_reply()
            self.partner.tell("ping")
        return None


class Pong(Actor):
    """Answers every message by telling ``"pong"`` to its sender."""

    async def receive(self, message: Any) -> Any:
        self.sender.tell("pong")  # type: ignore[union-attr]
        return None


async def pingpong(round_trips: int) -> float:
    """Seconds for ``round_trips`` ping/pong exchanges; the driver asks ping, answered after the last pong."""
    async with ActorSystem(name="bench-pingpong") as system:
        ping = await system.spawn(Ping, name="ping")
        pong = await system.spawn(Pong, name="pong")
        start = time.perf_counter()
        answer = await ping.ask(("run", pong, round_trips))
        seconds = time.perf_counter() - start
    expect_equal("pingpong answer", answer, round_trips)
    return seconds


# -- counting ------------------------------------------------------------------------------------------------


class Counter(Actor):
    """Counts ``"inc"`` messages; answers any other message with the count."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message == "inc":
            self.count += 1
            return None
        return self.count  # "get"


async def counting(messages: int) -> float:
    """Seconds to tell one counter ``messages`` increments and ask it for the count."""
    async with ActorSystem(name="bench-counting") as system:
        counter = await system.spawn(Counter, name="counter")
        start = time.perf_counter()
        for _ in range(messages):
            counter.tell("inc")
        count = await counter.ask("get")
        seconds = time.perf_counter() - start
    expect_equal("counter", count, messages)
    return seconds


# -- fan-in --------------------------------------------------------------------------------------------------


class Producer(Actor):
    """Told ``(consumer, count)``: tells ``consumer`` the items ``0 .. count - 1``."""

    async def receive(self, message: Any) -> Any:
        consumer, count = message
        for item in range(count):
            consumer.tell(item)
        return None


class Consumer(Actor):
    """Counts items (ints); asked ``("wait", target)``, answers the count once it has reached ``target``."""

    def __init__(self) -> None:
        self.count = self.target = 0
        self.waiting: ActorRef | None = None

    async def receive(self, message: Any) -> Any:
        if type(message) is int:  # an item
            self.count += 1
            if self.waiting is not None and self.count >= self.target:
                self.waiting.tell(self.count)
                self.waiting = None
            return None
        _, self.target = message  # ("wait", target)
        if self.count >= self.target:
            return self.count
        self.waiting = self.defer_reply()
        return None


async def fan_in(producers: int, per_producer: int) -> float:
    """Seconds for ``producers`` actors, started by a tell each, to tell ``per_producer`` items to one."""
    total = producers * per_producer
    async with ActorSystem(name="bench-fan-in") as system:
        consumer = await system.spawn(Consumer, name="consumer")
        senders = [await system.spawn(Producer, name=f"producer-{i}") for i in range(producers)]
        start = time.perf_counter()
        for producer in senders:
            producer.tell((consumer, per_producer))
        count = await consumer.ask(("wait", total))
        seconds = time.perf_counter() - start
    expect_equal("consumer count", count, total)
    return seconds


# -- ask latency ---------------------------------------------------------------------------------------------


class Echo(Actor):
    """Answers every message with the message itself."""

    async def receive(self, message: Any) -> Any:
        return message


async def ask_latency(asks: int) -> list[float]:
    """Seconds taken by each of ``asks`` sequential asks from the driver task to an echo actor."""
    samples: list[float] = []
    wrong: list[tuple[int, Any]] = []
    async with ActorSystem(name="bench-ask") as system:
        echo = await system.spawn(Echo, name="echo")
        for i in range(WARMUP_ASKS):
            await echo.ask(i)
        for i in range(asks):
            start = time.perf_counter()
            answer = await echo.ask(i)
            samples.append(time.perf_counter() - start)
            if answer != i:
                wrong.append((i, answer))
    expect_equal("wrong echoes (sent, answered)", wrong[:3], [])
    return samples


# -- spawn ---------------------------------------------------------------------------------------------------


class Idle(Actor):
    """Never does anything: the cost of an actor that merely exists."""

    async def receive(self, message: Any) -> Any:
        return None


async def _spawn_idle(system: ActorSystem, count: int, live: list[ActorRef]) -> tuple[float, int, int]:
    """Spawn ``WARMUP_ACTORS``, then ``count`` unnamed idle actors one by one, into ``live``: the seconds the
    ``count`` took, and the RSS before and after them (each after a full collection)."""
    for _ in range(WARMUP_ACTORS):
        live.append(await system.spawn(Idle))
    gc.collect()
    rss_before = rss_bytes()
    start = time.perf_counter()
    for _ in range(count):
        live.append(await system.spawn(Idle))
    seconds = time.perf_counter() - start
    gc.collect()
    return seconds, rss_before, rss_bytes()


async def spawn(count: int) -> SpawnSample:
    """Spawn ``count`` unnamed idle actors one by one; measure time, and RSS with all of them alive."""
    live: list[ActorRef] = []
    async with ActorSystem(name="bench-spawn") as system:
        seconds, rss_before, rss_after = await _spawn_idle(system, count, live)
    expect_equal("live actors", len(live), WARMUP_ACTORS + count)
    return SpawnSample(count=count, seconds=seconds, rss_before=rss_before, rss_after=rss_after)


# -- threadring ----------------------------------------------------------------------------------------------


class RingMember(Actor):
    """Passes the token ``(hops left, reply)`` to its successor; at zero, answers the driver's deferred ask.

    Asked ``("link", successor)`` to join the ring, ``("start", hops)`` to start the token.
    """

    def __init__(self) -> None:
        self.successor: Any = None  # ActorRef, once linked

    async def receive(self, message: Any) -> Any:
        first, second = message
        if type(first) is int:  # the token
            hops_left, requester = first, second
        elif first == "start":
            hops_left, requester = second, self.defer_reply()
        else:  # ("link", successor)
            self.successor = second
            return None
        if hops_left > 0:
            self.successor.tell((hops_left - 1, requester))
        else:
            requester.tell("done")
        return None


async def threadring(members: int, hops: int) -> float:
    """Seconds to pass a token ``hops`` times around a ring of ``members`` actors."""
    async with ActorSystem(name="bench-threadring") as system:
        ring = [await system.spawn(RingMember, name=f"member-{i}") for i in range(members)]
        for index, member in enumerate(ring):
            await member.ask(("link", ring[(index + 1) % members]))
        start = time.perf_counter()
        answer = await ring[0].ask(("start", hops))
        seconds = time.perf_counter() - start
    expect_equal("threadring answer", answer, "done")
    return seconds


# -- million -------------------------------------------------------------------------------------------------


async def million(count: int) -> dict[str, float]:
    """Spawn ``count`` unnamed idle actors one by one, then leave the system: seconds for each, RSS an actor."""
    live: list[ActorRef] = []
    async with ActorSystem(name="bench-million") as system:
        spawn_s, rss_before, rss_after = await _spawn_idle(system, count, live)
        start = time.perf_counter()
    shutdown_s = time.perf_counter() - start
    expect_equal("actors stopped", sum(ref.is_stopped for ref in live), WARMUP_ACTORS + count)
    return {"spawn_s": spawn_s, "shutdown_s": shutdown_s, "bytes_per_actor": (rss_after - rss_before) / count}


# -- broadcast -----------------------------------------------------------------------------------------------


class Receiver(Actor):
    """Counts itself into every :class:`Tally` it is sent."""

    async def receive(self, message: Any) -> Any:
        message.hit()
        return None


async def broadcast(count: int) -> float:
    """Seconds for one message told to each of ``count`` idle actors (spawned, never sent anything) to be handled."""
    async with ActorSystem(name="bench-broadcast") as system:
        refs = [await system.spawn(Receiver) for _ in range(count)]
        done = trio.Event()
        tally = Tally(count, done)
        gc.collect()
        start = time.perf_counter()
        for ref in refs:
            ref.tell(tally)
        await done.wait()
        seconds = time.perf_counter() - start
    expect_equal("receivers counted", tally.count, count)
    return seconds
