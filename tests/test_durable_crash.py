"""A durable queue killed with SIGKILL at random points loses no confirmed message and resurrects no acked one.

Each run starts ``durable_crash_child.py`` on the same store, reads what it reports as durable (see its
docstring), and kills it with ``kill -9`` after a random number of confirms, while it is publishing, getting,
settling and writing. Then the store is read back and checked against everything reported so far:

- every confirmed message that was not acked is in the store (0 confirmed messages lost);
- no acked message is (0 acked messages resurrected);
- every message that was delivered (held unacked, or nacked and requeued) is flagged ``redelivered``.

The next run restores from what the kill left. A few runs go with every test run; ``-m slow`` runs more.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import attrs
import pytest

from runtime import SQLiteStore

CHILD = Path(__file__).with_name("durable_crash_child.py")


@attrs.define
class Ledger:
    """What the child reported as durable, over every run so far."""

    confirmed: set[int] = attrs.Factory(set)
    acked: set[int] = attrs.Factory(set)
    delivered: set[int] = attrs.Factory(set)
    """Delivered (held, or nacked and requeued) and not acked since."""
    acking: set[int] = attrs.Factory(set)
    """Acked, but not reported stored yet: in the store or not, either is right."""
    next: int = 0
    """The first number the next run publishes: past every number a run before may have published (a kill
    can come after a publish was stored and before its confirm was reported)."""

    def read(self, line: str) -> None:
        words = line.split()
        if words[0] == "T":
            self.acking.add(int(words[1]))
            return
        assert words[0] == "C", line
        number = int(words[1])
        self.confirmed.add(number)
        self.next = max(self.next, (number // 1_000_000 + 1) * 1_000_000)
        for word in words[2:]:
            body = int(word[1:])
            if word[0] == "A":
                self.acked.add(body)
                self.acking.discard(body)
                self.delivered.discard(body)
            else:
                self.delivered.add(body)


@attrs.frozen
class Outcome:
    """One run's check of the store against the ledger."""

    lost: set[int]
    resurrected: set[int]
    unflagged: set[int]
    stored: int


def run_once(storage: Path, ledger: Ledger, rng: random.Random) -> Outcome:
    """Start the child, kill it with SIGKILL after a random number of confirms, and check the store."""
    confirms = rng.randint(2, 40)
    errors = storage.with_name(f"{storage.name}.stderr")
    with errors.open("w") as stderr, subprocess.Popen(
            [sys.executable, str(CHILD), str(storage), str(ledger.next), str(rng.getrandbits(32))],
            stdout=subprocess.PIPE, stderr=stderr, text=True) as child:
        watchdog = threading.Timer(60, child.kill)  # a child that hangs fails the test instead of blocking it
        watchdog.start()
        try:
            assert child.stdout is not None
            seen = 0
            while seen < confirms:
                line = child.stdout.readline()
                if not line.endswith("\n"):
                    child.wait()
                    pytest.fail(f"the child ended early: {line!r}; stderr: {errors.read_text()}")
                ledger.read(line)
                seen += line.startswith("C")
            os.kill(child.pid, signal.SIGKILL)
            rest = child.stdout.read()  # what readline() buffered already, then the rest until the pipe closes
            child.wait()
        finally:
            watchdog.cancel()
    assert child.returncode == -signal.SIGKILL
    for line in rest.splitlines(keepends=True):
        if line.endswith("\n"):  # a line cut by the kill was never reported
            ledger.read(line)
    store = SQLiteStore(storage, "jobs")
    store.open()
    try:
        rows = {row.body: row for row in store.load()}
    finally:
        store.close()
    return Outcome(lost=(ledger.confirmed - ledger.acked - ledger.acking) - rows.keys(),
                   resurrected=ledger.acked & rows.keys(),
                   unflagged={body for body in ledger.delivered & rows.keys() if not rows[body].redelivered},
                   stored=len(rows))


def crash_runs(storage: Path, runs: int, seed: int) -> list[Outcome]:
    """``runs`` kills on one store; each outcome must be clean."""
    ledger = Ledger()
    rng = random.Random(seed)
    outcomes = []
    for _ in range(runs):
        outcome = run_once(storage, ledger, rng)
        assert (outcome.lost, outcome.resurrected, outcome.unflagged) == (set(), set(), set()), outcome
        outcomes.append(outcome)
    assert ledger.acked, "the runs acked messages"
    assert ledger.delivered, "the runs held messages"
    return outcomes


def test_kill_9_loses_nothing_confirmed_and_resurrects_nothing_acked(tmp_path: Path) -> None:
    crash_runs(tmp_path, runs=2, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_kill_9_many_times(tmp_path: Path, seed: int) -> None:
    """12 kills per seed (36 in all)."""
    crash_runs(tmp_path, runs=12, seed=seed)


if __name__ == "__main__":  # python tests/test_durable_crash.py [runs] [seed]: a report, for the benchmark log
    import tempfile

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as directory:
        done = crash_runs(Path(directory), runs, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(f"{len(done)} kill -9 runs: 0 confirmed lost, 0 acked resurrected, every unacked delivery flagged "
          f"(store held {[outcome.stored for outcome in done]} messages after each kill)")
