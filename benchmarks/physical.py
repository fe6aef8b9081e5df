"""How close the runtime is to what CPython itself allows: ``python -m benchmarks.physical [--million N]``.

Two floors, each measured beside the runtime doing the same thing in the same run, best of ``--repeat``:

- **A Python-level tell**: a method call that appends the message to a deque, then a loop that pops each
  message and drives a handler's coroutine to its end (``coroutine.send(None)``) — no envelope, no sender, no
  figures, no supervision. Beside it, the runtime's ``counting`` workload (tells from outside any actor, then one
  ask), per message.
- **A Python-level spawn**: for each actor, an object with as many fields as a cell, a one-field ref to it, an
  instance of an empty class, a fresh name and a dict entry under it, with the garbage collector on as in any
  program. Beside it, ``system.spawn`` of an idle actor, one by one, to the same count. The objects the collector
  tracks, and their fields, are most of what a million of anything costs in CPython.
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import trio

from actors import ActorRef, ActorSystem
from runtime._cell import Cell

from . import core
from ._harness import expect_equal

_CELL_FIELDS = len(Cell.__slots__) + sum(len(getattr(base, "__slots__", ())) for base in Cell.__mro__[1:])


class _Inbox:
    """The least a mailbox can be: a deque behind one method."""

    __slots__ = ("queue",)

    def __init__(self) -> None:
        self.queue: deque[Any] = deque()

    def tell(self, message: Any) -> None:
        self.queue.append(message)


async def _handler(state: list[int], message: Any) -> None:
    if message == "inc":
        state[0] += 1


def tell_floor(messages: int) -> float:
    """Seconds for ``messages`` bare tells, each then handled by driving ``_handler``'s coroutine."""
    inbox = _Inbox()
    state = [0]
    start = time.perf_counter()
    tell = inbox.tell
    for _ in range(messages):
        tell("inc")
    pop = inbox.queue.popleft
    while inbox.queue:
        coroutine = _handler(state, pop())
        try:
            coroutine.send(None)
        except StopIteration:
            pass
    seconds = time.perf_counter() - start
    expect_equal("floor count", state[0], messages)
    return seconds


def _cell_class() -> type:
    names = tuple(f"f{i}" for i in range(_CELL_FIELDS))
    body = "".join(f"    self.{name} = None\n" for name in names[2:])
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self, parent, name):\n    self.f0 = parent\n    self.f1 = name\n{body}", namespace)
    return type("BareCell", (), {"__slots__": names, "__init__": namespace["__init__"]})


class _BareRef:
    __slots__ = ("target",)

    def __init__(self, target: Any) -> None:
        self.target = target


class _BareActor:
    pass


def spawn_floor(count: int) -> float:
    """Seconds to make ``count`` bare actors (cell-sized object, ref, instance, name, dict entry), GC on."""
    cell_class = _cell_class()
    children: dict[str, Any] = {}
    live: list[_BareRef] = []
    start = time.perf_counter()
    for made in range(count):
        name = f"${made}"
        cell = cell_class(None, name)
        cell.f2 = ref = _BareRef(cell)
        cell.f3 = _BareActor()
        children[name] = cell
        live.append(ref)
    seconds = time.perf_counter() - start
    expect_equal("bare actors", len(children), count)
    return seconds


async def _spawn(count: int) -> float:
    live: list[ActorRef] = []
    async with ActorSystem(name="bench-physical") as system:
        seconds, _, _ = await core._spawn_idle(system, count, live)
    return seconds


def run(messages: int = 200_000, actors: int = 1_000_000, repeat: int = 3) -> dict[str, float]:
    """Best of ``repeat`` of each side: ns a tell, seconds to spawn ``actors``, and their ratios to the floors."""
    tell_s = floor_tell_s = spawn_s = floor_spawn_s = float("inf")
    for _ in range(repeat):
        floor_tell_s = min(floor_tell_s, tell_floor(messages))
        tell_s = min(tell_s, trio.run(core.counting, messages))
        floor_spawn_s = min(floor_spawn_s, spawn_floor(actors))
        spawn_s = min(spawn_s, trio.run(_spawn, actors))
    return {
        "tell_ns": tell_s / messages * 1e9,
        "floor_tell_ns": floor_tell_s / messages * 1e9,
        "tell_vs_floor": tell_s / floor_tell_s,
        "spawn_s": spawn_s,
        "floor_spawn_s": floor_spawn_s,
        "spawn_vs_floor": spawn_s / floor_spawn_s,
        "cell_fields": _CELL_FIELDS,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print the two rows."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.physical", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--million", type=int, default=1_000_000, help="actors spawned on each side")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    row = run(args.messages, args.million, args.repeat)
    print(f"tell:  {row['tell_ns']:8.0f} ns a message; bare deque + coroutine {row['floor_tell_ns']:6.0f} ns "
          f"({row['tell_vs_floor']:.2f}x)")
    print(f"spawn: {row['spawn_s']:8.2f} s for {args.million:,}; bare objects ({row['cell_fields']:.0f}-field cell) "
          f"{row['floor_spawn_s']:6.2f} s ({row['spawn_vs_floor']:.2f}x)")


if __name__ == "__main__":
    main()
