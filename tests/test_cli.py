"""The ``actors`` command line: ``run`` (targets, metrics, signals, exit statuses), ``top`` and ``bench``.

Bad targets go through click's CliRunner in this process; everything that runs a service, handles signals or
serves a port runs the real command in a subprocess. Those are the only tests here that wait in real time, and
every wait is bounded.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

from actors import ActorStatistics, SystemStatistics
from actors._metrics import StatisticsCollector
from actors._top import TREE, Snapshot, TopError, View, parse_keys, parse_metrics, render, watch
from actors.cli import main

REPO = Path(__file__).resolve().parents[1]
WAIT = 10.0
"""Seconds any one wait on a subprocess may take before the test fails."""

SERVICES = {
    # Many actors, a few of them busy: for actors top in a terminal.
    "many_service": """
        import trio
        from actors import Actor

        class Idle(Actor):
            async def receive(self, message):
                await trio.sleep(3600)  # keeps the rest of its mailbox waiting

        async def main(system):
            refs = [await system.spawn(Idle, name=f"w{n:04}") for n in range(3000)]
            for n in (7, 1234, 2999):
                for _ in range(n % 50 + 2):
                    refs[n].tell("job")
            await trio.sleep_forever()
    """,
    # A service that never finishes stopping: its on_stop hangs.
    "hang_service": """
        import trio
        from actors import Actor

        class Stuck(Actor):
            async def receive(self, message):
                pass

            async def on_stop(self):
                await trio.sleep_forever()

        async def main(system):
            await system.spawn(Stuck, name="stuck")
    """,
    # A top-level actor that fails 10 ms after every start: the 4th failure within 5 s exceeds the default
    # restart intensity and escalates past the top of the tree.
    "boom_service": """
        from actors import Actor

        class Boom(Actor):
            async def on_start(self):
                self.timers.start_single("boom", 0.01, "boom")

            async def receive(self, message):
                raise RuntimeError("boom")

        def specs():
            return [(Boom,)]
    """,
    # Top-level actors given as duck-typed specs, a tuple and a bare class, started in order.
    "spec_service": """
        import logging
        from dataclasses import dataclass, field
        from actors import Actor

        log = logging.getLogger("spec_service")

        @dataclass
        class Spec:
            factory: object
            args: tuple = ()
            kwargs: dict = field(default_factory=dict)
            name: str | None = None
            restart: str = "permanent"

        class Named(Actor):
            def __init__(self, label, *, greeting="hello"):
                self.label = label
                self.greeting = greeting

            async def on_start(self):
                log.info("started %s %s", self.label, self.greeting)

            async def receive(self, message):
                pass

        class Plain(Actor):
            async def on_start(self):
                log.info("started plain")

            async def receive(self, message):
                pass

        def specs():
            return [Spec(Named, ("first",), {"greeting": "hi"}, name="first"), (Named, "second"), Plain]
    """,
    "crash_service": """
        async def main(system):
            raise RuntimeError("main crashed on purpose")
    """,
    "value_target": "VALUE = 42\n",
    "broken_on_import": "raise RuntimeError('broken on import')\n",
    "syntax_error": "def main(:\n",
    "sync_targets": """
        def returns_number():
            return 42

        def returns_bad_item():
            return [1]

        def takes_an_argument(x):
            return []

        def raises():
            raise KeyError("no config")

        async def main_without_system():
            pass

        class NotAnActor:
            pass

        def returns_a_non_actor():
            return [NotAnActor]
    """,
}


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory of service modules, importable in this process and as the subprocesses' working directory."""
    for name, source in SERVICES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    yield tmp_path
    for name in SERVICES:
        sys.modules.pop(name, None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        body: bytes = response.read()
    return body.decode()


def wait_for_page(url: str, process: subprocess.Popen[str]) -> str:
    """Poll ``url`` until it answers (the service is up), within :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return get(url)
        except urllib.error.URLError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def actors(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``python -m actors.cli ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "actors.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


class Running:
    """``python -m actors.cli ARGS`` running in the background, its stderr collected line by line."""

    def __init__(self, *args: str, cwd: Path = REPO) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "actors.cli", *args], cwd=cwd,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for(self, text: str) -> str:
        """The first stderr line containing ``text``, waiting up to :data:`WAIT` seconds for it."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                for line in self._lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    raise AssertionError(f"no line with {text!r} on stderr:\n{''.join(self._lines)}")
                self._changed.wait(remaining)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self) -> tuple[int, str]:
        """The exit status, within :data:`WAIT` seconds, and the whole of stderr."""
        status = self.process.wait(WAIT)
        self._reader.join(WAIT)
        return status, "".join(self._lines)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)
        self._reader.join(WAIT)
        assert self.process.stderr is not None
        self.process.stderr.close()


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- bad targets and command lines ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("target", "complaint"),
    [
        ("examples.service", "expected MODULE:FACTORY"),
        (":main", "expected MODULE:FACTORY"),
        ("examples.service:", "expected MODULE:FACTORY"),
        ("no_such_module_here:main", "cannot import 'no_such_module_here': no module named 'no_such_module_here'"),
        ("examples.no_such_service:main", "no module named 'examples.no_such_service'"),
        ("broken_on_import:main", "cannot import 'broken_on_import': RuntimeError: broken on import"),
        ("syntax_error:main", "cannot import 'syntax_error': SyntaxError"),
        ("examples.service:nope", "'examples.service' has no attribute 'nope'"),
        ("examples.service:main.nope", "'examples.service' has no attribute 'main.nope'"),
        ("value_target:VALUE", "value_target:VALUE is 42 (a int), not a function"),
        ("sync_targets:returns_number", "returned 42; expected a list of child specs"),
        ("sync_targets:returns_bad_item", "returned 1 at position 0, which is not a child spec"),
        ("sync_targets:takes_an_argument", "called with no arguments"),
        ("sync_targets:raises", "sync_targets:raises() raised KeyError"),
        ("sync_targets:main_without_system", "async def main(system)"),
    ],
)
def test_bad_target_exits_2_with_one_line(services: Path, target: str, complaint: str) -> None:
    result = CliRunner().invoke(main, ["run", target], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert line.startswith("actors run: error: ")
    assert complaint in line
    assert result.stdout == ""


def test_debug_shows_the_traceback_of_a_bad_target(services: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--debug", "broken_on_import:main"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert 'broken_on_import.py", line 1' in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "actors run: error: cannot import 'broken_on_import': RuntimeError: broken on import")


def test_bad_target_from_the_real_command(services: Path) -> None:
    done = actors("run", "no_such_module_here:main", cwd=services)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        "actors run: error: cannot import 'no_such_module_here': no module named 'no_such_module_here'")

    script = Path(sys.executable).with_name("actors")
    if script.exists():  # the console script declared in pyproject.toml
        done = subprocess.run([str(script), "run", "value_target:VALUE"], cwd=services, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 2
        assert "not a function" in one_line(done.stderr)


def test_spec_whose_factory_is_not_an_actor_exits_2(services: Path) -> None:
    done = actors("run", "sync_targets:returns_a_non_actor", cwd=services)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("actors run: error: sync_targets:returns_a_non_actor: cannot spawn NotAnActor")


@pytest.mark.parametrize(
    "argv",
    [["run"], ["run", "examples.service:main", "--metrics-port", "http"], ["run", "a:b", "--no-such-option"],
     ["top"], ["top", "--url", "ftp://127.0.0.1/metrics"], ["top", "--url", "127.0.0.1:9464"], ["nonsense"]],
)
def test_bad_command_line_exits_2(argv: list[str]) -> None:
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    for command in ("run", "top", "bench"):
        assert f"  {command} " in result.stdout


# -- running a service ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_metrics_and_stops_cleanly_on_a_signal(signum: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with Running("run", "examples.service:main", "--metrics-port", str(port)) as service:
        page = wait_for_page(url, service.process)
        assert 'actors_arrivals_total{actor="ticker"}' in page
        assert 'actors_state{actor="ticker/counter",state="running"} 1.0' in page
        assert 'actors_system_info{system="service"} 1.0' in page
        assert url in service.wait_for("metrics at")
        service.signal(signum)
        status, stderr = service.wait()
    assert status == 0, stderr
    assert f"received {signal.Signals(signum).name}: shutting down gracefully" in stderr
    # The ticker's on_stop ran, after its child had stopped, and the system reported a clean stop.
    assert "ticker stopping after" in stderr
    assert stderr.strip().splitlines()[-1].endswith("system 'service' stopped cleanly")


def test_top_once_shows_the_running_tree() -> None:
    with Running("run", "examples.service:main", "--metrics-port", "0", "--name", "demo") as service:
        url = service.wait_for("metrics at").split("metrics at ")[1].strip()
        wait_for_page(url, service.process)
        done = actors("top", "--once", "--url", url)
        service.signal(signal.SIGTERM)
        status, _ = service.wait()
    assert status == 0
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert "system 'demo'" in lines[0]
    ticker = next(line for line in lines if " ticker " in line)
    counter = next(line for line in lines if "ticker/counter" in line)
    assert "running" in ticker
    assert "running" in counter
    # The child is indented one level deeper than its parent.
    assert counter.index("ticker/counter") == ticker.index("ticker") + 2
    for header in ("actor", "state", "mailbox", "λ/s", "μ/s", "ρ", "W", "restarts"):
        assert header in done.stdout


def test_top_once_against_a_dead_url_exits_1_with_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    done = actors("top", "--once", "--url", url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert one_line(done.stderr).startswith(f"actors top: cannot reach {url}: ")


def test_spec_list_starts_top_level_actors_in_order(services: Path) -> None:
    with Running("run", "spec_service:specs", "--metrics-port", "0", cwd=services) as service:
        url = service.wait_for("metrics at").split("metrics at ")[1].strip()
        service.wait_for("top-level actors: 3")
        page = get(url)
        service.signal(signal.SIGTERM)
        status, stderr = service.wait()
    assert status == 0, stderr
    assert 'actors_state{actor="first",state="running"} 1.0' in page
    assert stderr.index("started first hi") < stderr.index("started second hello") < stderr.index("started plain")


def test_metrics_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = actors("run", "examples.service:main", "--metrics-port", str(port))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line == (f"actors run: error: cannot serve metrics on 127.0.0.1:{port}: Address already in use "
                    "(choose another --metrics-port)")


def test_escalated_failure_exits_1(services: Path) -> None:
    with Running("run", "boom_service:specs", cwd=services) as service:
        status, stderr = service.wait()
    assert status == 1
    assert "restart intensity 3 within 5.0s exceeded" in stderr
    assert stderr.strip().splitlines()[-1].endswith(
        "system 'boom_service' failed: actor system 'boom_service' failed: RuntimeError('boom') escalated past "
        "the root")


def test_crashing_main_exits_1_with_its_traceback(services: Path) -> None:
    with Running("run", "crash_service:main", cwd=services) as service:
        status, stderr = service.wait()
    assert status == 1
    assert "system 'crash_service' failed" in stderr
    assert "Traceback" in stderr
    assert "RuntimeError: main crashed on purpose" in stderr


def test_second_signal_forces_the_shutdown(services: Path) -> None:
    # The shutdown would wait 60 s for the stuck on_stop: only the second signal can end it within WAIT.
    with Running("run", "hang_service:main", "--shutdown-timeout", "60", cwd=services) as service:
        service.wait_for("running 'hang_service'")
        service.signal(signal.SIGTERM)
        service.wait_for("shutting down gracefully")
        service.signal(signal.SIGINT)
        status, stderr = service.wait()
    assert status == 1
    assert "received SIGINT again: forcing the shutdown" in stderr
    assert stderr.strip().splitlines()[-1].endswith(
        "system 'hang_service' did not stop cleanly: its shutdown was forced")


def test_shutdown_running_out_of_time_exits_1(services: Path) -> None:
    with Running("run", "hang_service:main", "--shutdown-timeout", "0.2", cwd=services) as service:
        service.wait_for("running 'hang_service'")
        service.signal(signal.SIGTERM)
        status, stderr = service.wait()
    assert status == 1
    assert "did not shut down within 0.2s" in stderr
    assert stderr.strip().splitlines()[-1].endswith(
        "system 'hang_service' did not stop cleanly: its shutdown took longer than 0.2s")


# -- top, in this process ------------------------------------------------------------------------------------

def figures(*, mailbox: int = 0, utilization: float = 0.1, state: str = "running",
            restarts: int = 0) -> ActorStatistics:
    return ActorStatistics(arrivals=100, handled=90, failed=1, restarts=restarts, mailbox_length=mailbox,
                           peak_mailbox_length=12, arrival_rate=25.0, service_rate=25.0 / utilization,
                           utilization=utilization, mean_queue_length=1.5, mean_wait=0.0042, state=state,
                           mean_sojourn=0.0042 + 1 / (25.0 / utilization))


def page(stats: SystemStatistics) -> str:
    registry = CollectorRegistry()
    registry.register(StatisticsCollector(lambda: stats, system="shop"))
    return generate_latest(registry).decode()


def test_top_reads_the_exporters_page() -> None:
    stats = SystemStatistics(dead_letters=3, pending_asks=2, actors={
        "api": figures(restarts=2),
        "api/worker": figures(mailbox=5, utilization=0.95, state="restarting"),
        "db": figures(),
    })
    snapshot = parse_metrics(page(stats) + "# TYPE other_metric gauge\nother_metric 1.0\n")
    assert snapshot.system == "shop"
    assert (snapshot.dead_letters, snapshot.pending_asks) == (3, 2)
    assert list(snapshot.actors) == ["api", "api/worker", "db"]
    worker = snapshot.actors["api/worker"]
    assert (worker.depth, worker.state, worker.mailbox_length, worker.restarts) == (1, "restarting", 5, 0)
    assert (worker.arrival_rate, worker.utilization, worker.mean_wait) == (25.0, 0.95, 0.0042)
    assert worker.service_rate == pytest.approx(25.0 / 0.95)
    assert snapshot.actors["api"].restarts == 2


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("<html><body>Not here</body></html>\n", "not in the Prometheus text format"),
     ("# TYPE up gauge\nup 1.0\n", "no actor metrics")],
)
def test_top_refuses_a_page_that_is_not_an_actor_systems(text: str, complaint: str) -> None:
    with pytest.raises(TopError, match=complaint):
        parse_metrics(text)


def rendered(snapshot: Snapshot, previous: Snapshot | None = None) -> str:
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system="standard")
    console.print(render(snapshot, previous))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def line_with(output: str, text: str) -> str:
    return next(line for line in output.splitlines() if text in line)


def test_top_highlights_saturated_actors_and_growing_mailboxes() -> None:
    before = parse_metrics(page(SystemStatistics(dead_letters=0, actors={
        "calm": figures(mailbox=3), "hot": figures(mailbox=3, utilization=0.9)})))
    after = parse_metrics(page(SystemStatistics(dead_letters=0, actors={
        "calm": figures(mailbox=3), "hot": figures(mailbox=7, utilization=0.9), "new": figures(mailbox=9)})))

    first = rendered(before)
    assert "↑" not in first  # nothing to compare with yet
    assert "0.90 !" in line_with(first, "hot")
    assert "!" not in line_with(first, "calm")
    assert "saturated (ρ ≥ 0.9)" in first

    second = rendered(after, before)
    hot = line_with(second, "hot")
    assert "7 ↑" in hot
    assert re.search(r"\x1b\[1;31m *0\.90 !", hot)  # bold red
    assert re.search(r"\x1b\[1;33m *7 ↑", hot)  # bold yellow
    assert "↑" not in line_with(second, "calm")  # same length as before
    assert "↑" not in line_with(second, " new ")  # no earlier length to compare with
    assert "mailbox growing" in second
    assert "8.2ms" in line_with(second, "calm")  # W: the wait and the handling time


def test_top_live_says_when_the_url_is_dead_and_keeps_trying() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    console = Console(file=io.StringIO(), width=200, force_terminal=True)
    watch(url, console, interval=0.01, refreshes=3)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"cannot reach {url}: " in output
    assert "retrying every 0.01s" in output


def test_top_view_sorts_scrolls_and_filters_as_data() -> None:
    stats = SystemStatistics(dead_letters=0, actors={
        f"w{n}": figures(mailbox=n % 5, restarts=n % 3, utilization=0.01 * (n + 1)) for n in range(40)})
    snapshot = parse_metrics(page(stats))
    view = View()
    assert view.query("http://h:1/metrics", 10) == "http://h:1/metrics?top=11&by=mailbox_length"
    assert [row.mailbox_length for row in view.rows(snapshot, 3)] == [4, 4, 4]

    view = view.key("r", rows=10, total=40)  # ρ, largest first
    assert view is not None
    assert view.sort == "utilization"
    assert [row.path for row in view.rows(snapshot, 2)] == ["w39", "w38"]
    view = view.key("pgdn", rows=10, total=40)
    assert view is not None
    assert view.offset == 10
    assert view.query("http://h:1/metrics?x=1", 10) == "http://h:1/metrics?x=1&top=21&by=utilization"
    assert [row.path for row in view.rows(snapshot, 2)] == ["w29", "w28"]
    view = view.key("end", rows=10, total=40)
    assert view is not None
    assert view.offset == 30
    view = view.key("down", rows=10, total=40)
    assert view is not None
    assert view.offset == 30  # not past the end
    view = view.key(">", rows=10, total=40)  # the next column: W
    assert view is not None
    assert (view.sort, view.offset) == ("mean_sojourn", 0)

    for key in ("/", "w", "3", "backspace", "1", "enter"):
        view = view.key(key, rows=10, total=40)
        assert view is not None
    assert (view.filter, view.editing) == ("w1", None)
    assert "&match=w1" in view.query("http://h:1/metrics", 10)
    assert {row.path for row in view.rows(snapshot, 40)} == {"w1", *(f"w1{n}" for n in range(10))}
    view = view.key("esc", rows=10, total=40)
    assert view is not None
    assert view.filter == ""
    view = view.key("t", rows=10, total=40)
    assert view is not None
    assert view.sort == TREE
    assert view.query("http://h:1/metrics", 5) == "http://h:1/metrics?top=6&by=mailbox_length"
    assert view.key("q", rows=10, total=40) is None

    assert parse_keys(b"\x1b[Ar\x1b[6~/\xc3\xa9\r\x1b[99zq") == ["up", "r", "pgdn", "/", "é", "enter", "q"]


def test_top_shows_a_lost_system_as_disconnected_not_live() -> None:
    snapshot = parse_metrics(page(SystemStatistics(dead_letters=0, actors={"calm": figures(mailbox=3)})))
    output = rendered_with(render(snapshot, view=View(), rows=5,
                                  disconnected="since 12:00:01: cannot reach it"))
    assert "DISCONNECTED since 12:00:01: cannot reach it" in output
    assert "calm" in output


def rendered_with(table: object) -> str:
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    console.print(table)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


class Tmux:
    """A tmux server of our own (its own socket), one window of a fixed size running one command."""

    def __init__(self, command: list[str], *, width: int = 140, height: int = 30) -> None:
        self.socket = f"actors-top-{os.getpid()}-{time.monotonic_ns()}"
        # Without LINES and COLUMNS from our environment, which would override the window's size.
        command = ["env", "-u", "LINES", "-u", "COLUMNS", *command]
        self.run("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), shlex.join(command))

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=WAIT,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "top", *keys)

    def wait_for(self, text: str) -> str:
        """The screen once it shows ``text``, within :data:`WAIT` seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed {text!r}:\n{screen}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=WAIT, check=False)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI installs it)")
def test_top_in_a_real_terminal_sorts_scrolls_filters_and_sees_the_system_go(services: Path) -> None:
    with Running("run", "many_service:main", "--metrics-port", "0", "--name", "many", cwd=services) as service:
        url = service.wait_for("metrics at").split("metrics at ")[1].strip()
        wait_for_page(url, service.process)
        tmux = Tmux([sys.executable, "-m", "actors.cli", "top", "--url", url, "--interval", "0.3"])
        try:
            screen = tmux.wait_for("rows 1-20 of 3,000 (3,000 actors)")
            first = [line for line in screen.splitlines() if line.strip().startswith("w")]
            assert first[0].split()[0] == "w2999"  # the longest mailbox first: 2999 % 50 + 2 - 1 = 50 queued
            assert "mailbox ▼" in screen
            assert len(first) == 30 - 10  # as many rows as fit, no more

            tmux.keys("PageDown")
            screen = tmux.wait_for("rows 21-40 of 3,000")
            assert "w2999" not in screen

            tmux.keys("Home", "t")  # tree order
            screen = tmux.wait_for("actor ▲")
            rows = [line.split()[0] for line in screen.splitlines() if line.strip().startswith("w")]
            assert rows == sorted(rows)

            tmux.keys("/", "w123", "Enter")
            screen = tmux.wait_for("matching 'w123'")
            rows = [line.split()[0] for line in screen.splitlines() if line.strip().startswith("w")]
            assert rows
            assert all("w123" in row for row in rows)
            assert "rows 1-10 of 10 matching 'w123' (3,000 actors)" in screen  # w1230 to w1239

            tmux.keys("Escape", "x")  # no filter, by restarts
            tmux.wait_for("restarts ▼")

            service.process.kill()  # the system goes away
            service.process.wait(WAIT)
            screen = tmux.wait_for("DISCONNECTED since")
            assert "the figures below are the last ones received" in screen

            tmux.keys("q")
            deadline = time.monotonic() + WAIT
            while "top" in subprocess.run(["tmux", "-L", tmux.socket, "list-sessions"], capture_output=True,
                                          text=True, timeout=WAIT, check=False).stdout:
                assert time.monotonic() < deadline, "q did not quit"
                time.sleep(0.05)
        finally:
            tmux.close()


# -- bench ---------------------------------------------------------------------------------------------------

ARGV_HARNESS = "import json, sys\nprint(json.dumps(sys.argv[1:]))\nsys.exit(3)\n"
"""A stand-in for the harness: prints the arguments it was given and exits with 3."""


def make_harness(directory: Path, main: str = ARGV_HARNESS) -> Path:
    """``directory/benchmarks``, a package whose ``__main__`` is ``main``."""
    harness = directory / "benchmarks"
    harness.mkdir(parents=True)
    (harness / "__init__.py").write_text("")
    (harness / "__main__.py").write_text(main)
    return harness


def make_checkout(directory: Path, project: str = "trio-actors") -> Path:
    """``directory`` made to look like a checkout of ``project``: a pyproject.toml and a stand-in harness."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(f'[project]\nname = "{project}"\n')
    return make_harness(directory)


def test_bench_passes_its_options_to_the_harness_of_the_checkout(tmp_path: Path) -> None:
    make_checkout(tmp_path)
    inside = tmp_path / "examples" / "deeper"
    inside.mkdir(parents=True)
    done = actors("bench", "--quick", "--only", "pingpong", "counting", "--repeat", "2", "--json", "out.json",
                  cwd=inside)
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout) == ["--quick", "--only", "pingpong", "counting", "--repeat", "2",
                                       "--json", "out.json"]
    done = actors("bench", cwd=tmp_path)
    assert json.loads(done.stdout) == []


def test_bench_outside_a_checkout_exits_2_without_running_anything(tmp_path: Path) -> None:
    # A user's project with a benchmarks package of its own (and a pyproject.toml of its own) is not a checkout.
    make_checkout(tmp_path, project="someone-else")
    (tmp_path / "benchmarks" / "__main__.py").write_text("open('ran', 'w').close()\n")
    done = actors("bench", "--quick", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"actors bench: error: {tmp_path} is not in a checkout of trio-actors")
    assert "--harness" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ran").exists()


def test_bench_runs_the_harness_given_and_not_a_benchmarks_package_in_the_current_directory(tmp_path: Path) -> None:
    elsewhere = make_harness(tmp_path / "elsewhere")
    project = tmp_path / "project"
    make_harness(project, main="import sys\nprint('the user project ran')\nsys.exit(7)\n")
    done = actors("bench", "--harness", str(elsewhere), "--repeat", "1", cwd=project)
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout) == ["--repeat", "1"]
    # Relative to the current directory, like any path on a command line.
    done = actors("bench", "--harness", "../elsewhere/benchmarks", cwd=project)
    assert (done.returncode, done.stdout.strip()) == (3, "[]")


@pytest.mark.parametrize(("given", "message"), [
    ("checkout", "is not the benchmark harness; did you mean --harness {tmp}/checkout/benchmarks?"),
    ("empty", "{tmp}/empty is not the benchmark harness: it has no __main__.py"),
    ("checkout/renamed", "must be named benchmarks"),
])
def test_bench_refuses_a_harness_that_is_not_one(tmp_path: Path, given: str, message: str) -> None:
    make_checkout(tmp_path / "checkout")
    (tmp_path / "empty").mkdir()
    (tmp_path / "checkout" / "benchmarks").rename(tmp_path / "checkout" / "renamed")
    make_harness(tmp_path / "checkout")
    done = actors("bench", "--harness", str(tmp_path / given), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("actors bench: error: ")
    assert message.format(tmp=tmp_path) in done.stderr


def test_bench_runs_the_real_harness_from_inside_the_checkout(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = actors("bench", "--quick", "--only", "pingpong", "--repeat", "1", "--json", str(results),
                  cwd=REPO / "examples")
    assert done.returncode == 0, done.stderr
    assert "pingpong" in done.stdout
    assert "round trips/s" in done.stdout
    assert f"results written to {results}" in done.stdout
    assert json.loads(results.read_text())["workloads"]["pingpong"]["errors"] == {}


def test_bench_writes_its_results_in_the_current_directory_or_where_asked(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    harness = str(REPO / "benchmarks")
    before = {path for path in REPO.rglob("*.json") if ".venv" not in path.parts}

    done = actors("bench", "--harness", harness, "--quick", "--only", "pingpong", "--repeat", "1", cwd=work)
    assert done.returncode == 0, done.stderr
    default = work / "benchmark-results.json"
    assert f"results written to {default}" in done.stdout
    assert json.loads(default.read_text())["workloads"]["pingpong"]["errors"] == {}

    done = actors("bench", "--harness", harness, "--quick", "--only", "pingpong", "--repeat", "1",
                  "--json", "out/pingpong.json", cwd=work)
    assert done.returncode == 0, done.stderr
    assert json.loads((work / "out" / "pingpong.json").read_text())["settings"]["quick"] is True

    # Nothing was written next to the harness (or anywhere else in the checkout).
    assert {path for path in REPO.rglob("*.json") if ".venv" not in path.parts} == before


def test_run_with_workers_starts_them_and_stops_them_with_the_service() -> None:
    with Running("run", "examples.service:main", "--metrics-port", "0", "--workers", "1") as service:
        url = service.wait_for("metrics at").split("metrics at ")[1].strip()
        page = wait_for_page(url, service.process)
        service.signal(signal.SIGTERM)
        status, stderr = service.wait()
    assert status == 0, stderr
    assert 'actors_node_info{actor="ticker"' in page
    assert stderr.strip().splitlines()[-1].endswith("system 'service' stopped cleanly")


def test_run_metrics_top_sets_how_many_actors_the_page_lists(services: Path) -> None:
    with Running("run", "many_service:main", "--metrics-port", "0", "--metrics-top", "5",
                 cwd=services) as service:
        url = service.wait_for("metrics at").split("metrics at ")[1].strip()
        wait_for_page(url, service.process)
        deadline = time.monotonic() + WAIT
        while "actors_live_actors 3000.0" not in (text := get(url)):  # all spawned
            assert time.monotonic() < deadline, text[-500:]
            time.sleep(0.05)
        assert "actors_listed_actors 5.0" in text
        assert len({line.split('"')[1] for line in text.splitlines()
                    if line.startswith("actors_mailbox_length{")}) == 5
        service.process.kill()
    done = actors("run", "examples.service:main", "--metrics-top", "none")
    assert done.returncode == 2
    assert "expected a number of actors (1 or more) or 'all', got 'none'" in done.stderr
