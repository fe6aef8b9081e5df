"""A tiny long-running service to try ``actors run`` and ``actors top`` with.

Run it from the repository's root, with its metrics on port 9464::

    actors run examples.service:main --metrics-port 9464

then, in another terminal, watch its actors live::

    actors top --url http://127.0.0.1:9464/metrics

Stop it with Ctrl-C (or SIGTERM): the system shuts down in order (the counter before the ticker, its parent)
and the command exits with status 0.

The tree is two actors: ``ticker``, a top-level actor driven by a periodic timer, and its child
``ticker/counter``, which counts the ticks it is told about.
"""

from __future__ import annotations

import logging

from actors import Actor, ActorRef, ActorSystem

logger = logging.getLogger("examples.service")


class Counter(Actor):
    """Counts ``"tick"`` messages; ``ask("get")`` answers with the count."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: object) -> int | None:
        match message:
            case "tick":
                self.count += 1
            case "get":
                return self.count  # the return value answers an ask; for a tell it is ignored
        return None


class Ticker(Actor):
    """Every ``interval`` seconds, tells its child counter about a tick; logs the count now and then."""

    def __init__(self, interval: float = 0.2, report_every: int = 25) -> None:
        self.interval = interval
        self.report_every = report_every
        self.ticks = 0
        self.counter: ActorRef | None = None

    async def on_start(self) -> None:
        # Children are spawned in on_start: this one is supervised by the ticker and stops before it does.
        self.counter = await self.spawn(Counter, name="counter")
        # The timer sends "tick" to this actor's own mailbox. It belongs to this incarnation: a restart or a
        # stop cancels it, so no tick of a dead ticker ever arrives.
        self.timers.start_periodic("tick", self.interval, "tick")

    async def receive(self, message: object) -> None:
        if message != "tick" or self.counter is None:
            raise ValueError(f"Ticker does not understand {message!r}")
        self.counter.tell("tick")
        self.ticks += 1
        if self.ticks % self.report_every == 0:
            # ask waits for the counter's answer; the counter has handled every earlier tell by then, since
            # messages from one sender arrive in the order they were sent.
            logger.info("ticked %d times; the counter has counted %d", self.ticks, await self.counter.ask("get"))

    async def on_stop(self) -> None:
        logger.info("ticker stopping after %d ticks", self.ticks)


async def main(system: ActorSystem) -> None:
    """The entry point for ``actors run examples.service:main``: start the tree, then return.

    The service keeps running after this returns, until ``actors run`` receives SIGINT or SIGTERM.
    """
    await system.spawn(Ticker, 0.2, name="ticker")
