"""A node of a cluster on the broker in a process of its own, for ``tests/test_peers.py`` and the benchmark.

``python tests/peer_node.py URL CLUSTER NODE SECRET_FILE HEARTBEAT OTHER [WORKERS]`` opens the node (with
``WORKERS`` worker processes, 0 by default), spawns ``echo`` (on a worker if there is one; it answers ``"pid"``
with its pid, never answers ``"hang"``, and echoes anything else with its own ref), waits for
the node ``OTHER``, resolves and asks that node's ``greeter``, prints the answer and then ``ready``, and runs until
it is killed or its stdin closes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import trio

from actors import Actor, ActorSystem


class Echo(Actor):
    """Answers ``"pid"`` with its pid, never answers ``"hang"``, echoes the rest with its own ref."""

    async def receive(self, message: Any) -> Any:
        if message == "pid":
            return os.getpid()
        if message == "hang":
            await trio.sleep_forever()
        return ("echo", message, self.ref)


async def main(url: str, cluster: str, node: str, secret_file: str, heartbeat: float, other: str,
               workers: int) -> None:
    async with ActorSystem(cluster, broker=url, secret=secret_file, node_name=node, workers=workers,
                           _heartbeat=heartbeat) as system:
        await system.spawn(Echo, name="echo", node="spread")
        with trio.fail_after(20):
            await system.wait_node(other)
            greeter = await system.resolve(other, "greeter")
            assert greeter is not None
            print(await greeter.ask(f"hello from {node}"), flush=True)
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the test closes stdin


if __name__ == "__main__":
    url, cluster, node, secret_file, heartbeat, other = sys.argv[1:7]
    workers = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    trio.run(main, url, cluster, node, secret_file, float(heartbeat), other, workers)
