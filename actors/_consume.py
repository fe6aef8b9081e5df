"""Queues for plain trio code: ``async with system.consume(queue, prefetch=N) as deliveries`` (the Queue module
installs it).

The block is served by a small bridge actor, a consumer of the queue like any other: it puts each
:class:`~actors.Delivery` it is sent into a trio memory channel that the block iterates. Stopping the bridge when the
block exits is what gives back what the block did not settle, since a queue requeues the unsettled deliveries of a
consumer that stops. The channel needs no bound of its own: the queue never sends more than ``prefetch``
unsettled deliveries.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from runtime import ActorRef, ActorSystem, Terminated

from ._actor import Actor
from ._router_checks import show
from ._router_messages import Delivery, Subscribe

__all__ = ["consume"]


class _Bridge(Actor):
    """Hands the deliveries it is sent to the consuming block; ends the block's iteration when the queue stops."""

    def __init__(self, queue: ActorRef, channel: trio.MemorySendChannel[Delivery]) -> None:
        self._queue = queue
        self._channel = channel

    async def on_start(self) -> None:
        self.watch(self._queue)

    async def receive(self, message: Any) -> None:
        if isinstance(message, Delivery):
            try:
                self._channel.send_nowait(message)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the block has ended: this bridge is being stopped, which gives the delivery back
        elif isinstance(message, Terminated) and message.ref == self._queue:
            self._channel.close()

    async def on_stop(self) -> None:
        self._channel.close()


@asynccontextmanager
async def consume(system: ActorSystem, queue: ActorRef, prefetch: int = 10) -> AsyncIterator[AsyncIterator[Delivery]]:
    """What :meth:`ActorSystem.consume` does for the built-in :class:`~actors.Queue` (see there)."""
    if not isinstance(queue, ActorRef):
        raise TypeError(f"consume() takes the ref of a Queue, not {show(queue)}")
    if prefetch.__class__ is not int or prefetch < 1:
        raise ValueError(f"consume(prefetch={show(prefetch)}): prefetch must be an int of at least 1")
    send, receive = trio.open_memory_channel[Delivery](math.inf)
    bridge = await system.spawn(_Bridge, queue, send)
    try:
        await queue.ask(Subscribe(bridge, prefetch))
        async with receive:
            yield receive
    finally:
        with trio.CancelScope(shield=True):  # whatever ended the block, the unsettled deliveries go back
            await system.stop(bridge)

