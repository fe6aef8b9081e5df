"""Actors and checks that several test modules share."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from actors import Actor, ActorFailed, ActorRef, ActorSystem
from runtime._cell import Cell

PLACES = ["local", "local-runner", "worker"]
"""Where the parametrized behaviour suites run the actor under test: in this process (where an ask to an idle
actor whose handler never suspends is handled in the asker's own task), in this process with every message
handled by a runner task, and on a worker process."""


@pytest.fixture(params=PLACES)
async def setting(request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[ActorSystem, Any]]:
    """A system and the ``node=`` to spawn the actor under test with, at each of :data:`PLACES` in turn (import
    it into a test module to run the module's tests at every place)."""
    if request.param == "local-runner":
        monkeypatch.setattr(Cell, "claim", lambda self, message: False)
    worker = request.param == "worker"
    async with ActorSystem(workers=1 if worker else 0) as system:
        yield system, ("spread" if worker else None)


class Server(Actor):
    """Serves each job by sleeping for its service time on trio's clock."""

    async def receive(self, message: Any) -> Any:
        await trio.sleep(message)


async def poisson_load(target: ActorRef, arrival_rate: float, service_rate: float, until: float,
                       rng: random.Random) -> None:
    """Poisson arrivals at ``arrival_rate`` of jobs with Exp(``service_rate``) service times, until ``until``."""
    while trio.current_time() < until:
        await trio.sleep(rng.expovariate(arrival_rate))
        target.tell(rng.expovariate(service_rate))


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


async def kill_during_ask(ref: ActorRef, pid: int) -> tuple[ActorFailed, float]:
    """Leave an ask of ``"hang"`` pending on ``ref`` (an actor that never answers it, but answers ``"sync"``),
    ``kill -9`` the process ``pid``, and return how the ask failed and the seconds from the kill to the failure."""
    failures: list[ActorFailed] = []
    async with trio.open_nursery() as nursery:

        async def ask() -> None:
            try:
                await ref.ask("hang")
            except ActorFailed as exc:
                failures.append(exc)

        nursery.start_soon(ask)
        with trio.fail_after(5):
            await ref.ask("sync")  # the hanging ask is there before the kill
        os.kill(pid, signal.SIGKILL)
        killed = trio.current_time()
    [failure] = failures
    return failure, trio.current_time() - killed
