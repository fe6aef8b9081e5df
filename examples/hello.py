"""The first program: one actor with private state, told and asked from outside.

Run it with ``python -m examples.hello``.
"""

from __future__ import annotations

from typing import Any

import trio

from actors import Actor, ActorSystem


class Counter(Actor):
    """Keeps a count; ``("add", n)`` adds to it, ``"get"`` answers it."""

    def __init__(self, start: int = 0) -> None:
        self.count = start  # private: only this actor's own messages touch it

    async def receive(self, message: Any) -> Any:
        match message:
            case ("add", n):
                self.count += n
            case "get":
                return self.count  # the return value answers an ask


async def main() -> int:
    async with ActorSystem() as system:  # embedded and in-process: no broker, no configuration
        counter = await system.spawn(Counter, 10, name="counter")
        counter.tell(("add", 5))  # fire and forget: never blocks
        total: int = await counter.ask("get")  # request/response; wrap it in trio.fail_after to bound it
        print(f"the counter says {total}")
        return total


if __name__ == "__main__":
    trio.run(main)
