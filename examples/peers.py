"""Two nodes of one cluster on RabbitMQ: one serves a greeter, the other finds it by name and asks it.

Every system opened with the same name, broker and secret is a node of that cluster; refs to actors on other
nodes work as local ones do, through the broker. Both nodes run in one process here; on two machines (or in two
terminals) run ``python -m examples.peers serve`` on one and ``python -m examples.peers visit`` on the other,
with the same ``TRIO_ACTORS_BROKER`` (default ``amqp://guest:guest@127.0.0.1:5672/``) and the same secret in
``TRIO_ACTORS_SECRET_FILE`` (a file of at least 16 random bytes; keep it private).

Run it with ``python -m examples.peers`` (a RabbitMQ broker must be running: ``scripts/broker start``).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import trio

from actors import Actor, ActorSystem, NodeDown

BROKER = os.environ.get("TRIO_ACTORS_BROKER", "amqp://guest:guest@127.0.0.1:5672/")
SECRET = os.environ.get("TRIO_ACTORS_SECRET_FILE") or b"only for this demo: use a file!!"
CLUSTER = "greetings"


class Greeter(Actor):
    """Answers a name with a greeting that says which node it runs on."""

    async def receive(self, message: Any) -> Any:
        return f"hello {message}, from node {self.system.node.name}"


class Farewell(Actor):
    """Sets ``gone`` when the node ``visitor`` leaves the cluster (it listens to ``NodeDown`` events)."""

    def __init__(self, visitor: str, gone: trio.Event) -> None:
        self.visitor = visitor
        self.gone = gone

    async def receive(self, message: Any) -> Any:
        if isinstance(message, NodeDown) and message.node.name == self.visitor:
            self.gone.set()


async def serve(*, cluster: str = CLUSTER, broker: str = BROKER, secret: bytes | str = SECRET) -> None:
    """Node ``server``: run a greeter until the node ``visitor`` has come and gone."""
    async with ActorSystem(cluster, broker=broker, secret=secret, node_name="server") as system:
        gone = trio.Event()
        farewell = await system.spawn(Farewell, "visitor", gone)
        system.events.subscribe(farewell, NodeDown)
        await system.spawn(Greeter, name="greeter")
        print("server: greeter ready")
        await gone.wait()
        print("server: the visitor left")


async def visit(*, cluster: str = CLUSTER, broker: str = BROKER, secret: bytes | str = SECRET) -> str:
    """Node ``visitor``: find the server's greeter, ask it, and leave."""
    async with ActorSystem(cluster, broker=broker, secret=secret, node_name="visitor") as system:
        with trio.fail_after(30):
            await system.wait_node("server")
            greeter = await system.resolve("server", "greeter")
            while greeter is None:  # the server may not have started its greeter yet
                await trio.sleep(0.1)
                greeter = await system.resolve("server", "greeter")
            answer: str = await greeter.ask("visitor")
        print(f"visitor: {answer}")
        return answer


async def main(cluster: str = CLUSTER) -> str:
    """Both nodes in one process (as two machines would run them); returns the greeting the visitor got."""
    answers: list[str] = []

    async def visitor() -> None:
        answers.append(await visit(cluster=cluster))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(serve, cluster=cluster))
        nursery.start_soon(visitor)
    return answers[0]


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else "both"
    if role == "serve":
        trio.run(serve)
    elif role == "visit":
        trio.run(visit)
    else:
        trio.run(main)
