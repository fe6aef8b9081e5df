"""The process ``test_durable_crash.py`` kills with SIGKILL: it publishes, gets, acks, nacks and holds, for ever.

``python durable_crash_child.py STORAGE FIRST SEED`` opens the durable queue ``jobs`` in the directory STORAGE
and loops: publish the next number (from FIRST) with a confirm, then take one message with ``Get`` and, by a
seeded coin, ack it, nack it (requeue) or hold it unacked. It prints one line per confirm, flushed, naming
what that confirm made durable:

    C <n> [A<m> | R<m> | D<m>] ...

``C n``: the publish of ``n`` was confirmed. With it come the settlements and deliveries made *before* that
publish: a durable queue writes in order, so a confirm means they are stored too (``A`` acked, ``R`` nacked and
requeued, ``D`` delivered and held unacked). The test can therefore tell what must be in the store after a
kill (confirmed and not acked), what must not (acked), and what must come back ``redelivered=True``
(delivered or requeued).

``T <m>`` is printed just before ``m`` is acked: until a confirm reports ``A<m>``, the ack may or may not have
been stored when the process is killed, so ``m`` may be in the store or not.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import trio

from actors import ActorSystem, Get, Publish, Queue


async def main(storage: Path, first: int, seed: int) -> None:
    rng = random.Random(seed)
    async with ActorSystem(name="crash") as system:
        queue = await system.spawn(Queue, name="jobs", durable=True, storage=storage)
        made: list[str] = []  # what the next confirm makes durable
        n = first
        held = []  # unacked deliveries: kept so that nothing settles them
        while True:
            confirmed = await queue.ask(Publish("k", n))
            assert confirmed == 1, confirmed
            print("C", n, *made, flush=True)
            made = []
            delivery = await queue.ask(Get())
            if delivery is not None:
                roll = rng.random()
                if roll < 0.6:
                    print("T", delivery.body, flush=True)  # before the ack: a kill may leave it stored, or not
                    delivery.ack()
                    made.append(f"A{delivery.body}")
                elif roll < 0.75:
                    delivery.nack(requeue=True)
                    made.append(f"R{delivery.body}")
                else:
                    held.append(delivery)
                    made.append(f"D{delivery.body}")
            n += 1


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
