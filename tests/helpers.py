"""Actors and checks that several test modules share."""

from __future__ import annotations

from typing import Any

import trio

from actors import Actor


class Gate(Actor):
    """Blocks on an event while handling "wait" (so that messages queue up) and records what it handled."""

    def __init__(self, gate: trio.Event, handled: list[object]) -> None:
        self.gate = gate
        self.handled = handled

    async def receive(self, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        self.handled.append(message)
        return message


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task of the current trio run, found from the root task down through the nurseries."""
    tasks = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        assert task is not None
        tasks.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return tasks
