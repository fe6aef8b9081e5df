"""``mypy --strict`` checks typed calls end to end: spawn gives ``ActorRef[C]``, and ``call``/``cast`` check that the
method belongs to ``C`` (or a base), the arguments, and the result's type.

Small programs are written to a temporary directory and checked in one mypy run (its cache there too). A line
that must be reported ends with ``# E``; every other line must be clean, so the exact lines are asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = '''\
from __future__ import annotations

from typing import Any

import trio

from actors import Actor, ActorRef, ActorSystem, ChildSpec, DynamicSupervisor, Pool


class Counter(Actor):
    def __init__(self, start: int = 0) -> None:
        self.count = start

    async def add(self, n: int, *, times: int = 1) -> int:
        self.count += n * times
        return self.count

    async def name(self) -> str:
        return "counter"

    def sync_get(self) -> int:
        return self.count


class Doubler(Counter):
    pass


class Other(Actor):
    async def add(self, n: int) -> int:
        return n
'''

PROGRAMS = {
    "correct": '''
async def main(system: ActorSystem) -> None:
    counter = await system.spawn(Counter, 1)
    total: int = await counter.call(Counter.add, 5)
    total += await counter.call(Counter.add, 1, times=2)
    counter.cast(Counter.add, 2)
    label: str = await counter.call(Counter.name)
    doubler = await system.spawn(Doubler)
    await doubler.call(Counter.add, 1)
    typed: ActorRef[Counter] = doubler
    bare: ActorRef = counter
    await bare.call(Other.add, 1)
    bare.tell("anything")
    pool = await system.spawn(Pool[Counter], Counter, size=2)
    await pool.call(Counter.add, 1)
    routees: list[ActorRef[Counter]] = await pool.ask("routees")
    spec = ChildSpec(Counter, 0, name="c")
    sup = await system.spawn(DynamicSupervisor[Counter], ChildSpec(Counter))
    print(total, label, typed, routees, spec, sup)


class Caller(Actor):
    async def ping(self) -> int:
        own: ActorRef[Caller] = self.ref
        child = await self.spawn(Counter)
        return await child.call(Counter.add, 1) + len(str(own))
''',
    "foreign": '''
async def main(system: ActorSystem) -> None:
    counter = await system.spawn(Counter)
    await counter.call(Other.add, 1)  # E
    counter.cast(Other.add, 1)  # E
    other = await system.spawn(Other)
    await other.call(Counter.add, 1)  # E
''',
    "arguments": '''
async def main(system: ActorSystem) -> None:
    counter = await system.spawn(Counter)
    await counter.call(Counter.add, "5")  # E
    await counter.call(Counter.add)  # E
    await counter.call(Counter.add, 1, 2)  # E
    await counter.call(Counter.add, 1, times="2")  # E
    await counter.call(Counter.add, 1, twice=True)  # E
    counter.cast(Counter.add, 1.5)  # E
''',
    "result": '''
async def main(system: ActorSystem) -> None:
    counter = await system.spawn(Counter)
    text: str = await counter.call(Counter.add, 1)  # E
    (await counter.call(Counter.name)).bit_length()  # E
    number: int = await counter.call(Counter.name)  # E
    fine: str = await counter.call(Counter.name)
    print(text, number, fine)
''',
    "not_methods": '''
async def main(system: ActorSystem) -> None:
    counter = await system.spawn(Counter)
    await counter.call(Counter.sync_get)  # E
    await counter.call(lambda actor: actor.count)  # E
''',
    "pools": '''
async def main(system: ActorSystem) -> None:
    pool = await system.spawn(Pool[Counter], Counter, size=2)
    await pool.call(Other.add, 1)  # E
    await pool.call(Counter.add, "1")  # E
''',
}

_REPORTED = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+): error: ")


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, set[int]], str]:
    """The lines mypy reports errors on, per program (one run over all of them), and its whole output."""
    directory = tmp_path_factory.mktemp("typing")
    for name, body in PROGRAMS.items():
        (directory / f"{name}.py").write_text(PRELUDE + textwrap.dedent(body), encoding="utf-8")
    environment = {**os.environ, "MYPYPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
         "--hide-error-context", "--no-pretty", "--cache-dir", str(directory / ".mypy_cache"),
         *sorted(f"{name}.py" for name in PROGRAMS)],
        cwd=directory, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr + completed.stdout
    lines: dict[str, set[int]] = {name: set() for name in PROGRAMS}
    for line in completed.stdout.splitlines():
        match = _REPORTED.match(line)
        if match:
            lines[Path(match["file"]).stem].add(int(match["line"]))
    return lines, completed.stdout


def _marked(name: str) -> set[int]:
    text = PRELUDE + textwrap.dedent(PROGRAMS[name])
    return {number for number, line in enumerate(text.splitlines(), 1) if line.rstrip().endswith("# E")}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_mypy_reports_exactly_the_marked_lines(reported: tuple[dict[str, set[int]], str], name: str) -> None:
    lines, output = reported
    assert lines[name] == _marked(name), output


def test_every_wrong_program_has_errors_to_find() -> None:
    assert not _marked("correct")
    assert all(_marked(name) for name in PROGRAMS if name != "correct")
