"""Actors and checks that several test modules share."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors import Actor
from runtime._cell import Cell

PLACES = ["local", "local-runner", "worker"]
"""Where the parametrized behaviour suites run the actor under test: in this process (where an ask to an idle
actor whose handler never suspends is handled in the asker's own task), in this process with every message
handled by a runner task, and on a worker process."""


def place(where: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str | None]:
    """``(workers, node)`` for a system and a spawn at ``where`` (one of :data:`PLACES`)."""
    if where == "local-runner":
        monkeypatch.setattr(Cell, "claim", lambda self, message: False)
    return (1, "spread") if where == "worker" else (0, None)


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
