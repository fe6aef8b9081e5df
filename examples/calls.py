"""Typed calls: an inventory actor whose work is all methods, called through its ref and checked by mypy.

``await ref.call(Inventory.reserve, "apples", 3)`` runs ``reserve`` as one message and returns its result (an
``int``, to mypy too); ``ref.cast(Inventory.restock, ...)`` is the tell form. A refusal is ``Reply.error``: the
call raises, the actor keeps its stock. The same calls work on an actor on a worker process
(``spawn(..., node="spread")`` in an ``ActorSystem(workers=1)``): a call travels by the method's name.

Run it with ``python -m examples.calls``.
"""

from __future__ import annotations

import trio

from actors import Actor, ActorFailed, ActorRef, ActorSystem, Reply


class Inventory(Actor):
    """Stock per item. No ``receive``: every request is a method call."""

    def __init__(self) -> None:
        self.stock: dict[str, int] = {}

    async def restock(self, item: str, quantity: int) -> None:
        """Add ``quantity`` of ``item``."""
        self.stock[item] = self.stock.get(item, 0) + quantity

    async def reserve(self, item: str, quantity: int) -> int:
        """Take ``quantity`` of ``item``; answer what is left, or refuse (the caller gets ``ValueError``)."""
        left = self.stock.get(item, 0) - quantity
        if left < 0:
            return Reply.error(ValueError(f"only {self.stock.get(item, 0)} {item} left"))  # type: ignore[return-value]
        self.stock[item] = left
        return left

    async def audit(self) -> dict[str, int]:
        """A copy of the whole stock."""
        if any(quantity < 0 for quantity in self.stock.values()):
            raise AssertionError("negative stock")  # a bug fails the actor, and the call with ActorFailed
        return dict(self.stock)


async def shop(inventory: ActorRef[Inventory]) -> list[str]:
    """Restock, reserve until refused, and audit: what happened, line by line."""
    log: list[str] = []
    inventory.cast(Inventory.restock, "apples", 5)  # fire and forget, in order with the calls below
    inventory.cast(Inventory.restock, "pears", 2)
    for _ in range(3):
        try:
            left = await inventory.call(Inventory.reserve, "apples", 2)
        except ValueError as exc:
            log.append(f"refused: {exc}")
        else:
            log.append(f"reserved 2 apples, {left} left")
    try:
        stock = await inventory.call(Inventory.audit)
    except ActorFailed as exc:
        log.append(f"audit failed: {exc.cause}")
    else:
        log.append(f"stock: {stock}")
    return log


async def main(workers: int = 0) -> list[str]:
    """Shop at an inventory in this process, or on a worker process with ``workers=1``."""
    async with ActorSystem(workers=workers) as system:
        inventory = await system.spawn(Inventory, name="inventory", node="spread" if workers else None)
        log = await shop(inventory)
    for line in log:
        print(line)
    return log


if __name__ == "__main__":
    trio.run(main)
