"""The ``actors`` command: ``run`` a supervised service, watch one with ``top``, measure the runtime with ``bench``.

``actors run module:factory`` exits with 0 after a clean shutdown, 1 when the system failed (or its shutdown
had to be forced), and 2 for a bad command line or target. Logs go to stderr through :mod:`logging`; the
library itself only ever attaches a ``NullHandler``, so configuring a handler is this command's job.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import logging
import os
import signal
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import attrs
import click
import trio

from runtime import ActorFailed, ActorSystem

from ._metrics import DEFAULT_TOP, serve_metrics

__all__ = ["main"]

logger = logging.getLogger("actors.cli")


class _BadTarget(Exception):
    """The ``module:factory`` target, or what its factory returned, cannot be run; ``str()`` is one line.

    ``__cause__`` is the underlying error, if any; ``actors run --debug`` prints its traceback.
    """


# -- loading the target --------------------------------------------------------------------------------------

@attrs.frozen
class _TopLevel:
    """One top-level actor to spawn: ``system.spawn(factory, *args, **options, **kwargs)``."""

    factory: Callable[..., Any]
    """The actor class or factory."""
    args: tuple[Any, ...] = ()
    """Positional arguments for the factory."""
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    """Keyword arguments for the factory."""
    options: dict[str, Any] = attrs.field(factory=dict)
    """Spawn options given by the spec: ``name``, ``restart``, ``mailbox``, ``supervision``."""

    def describe(self) -> str:
        """A short description for messages: the name if it has one, else the factory."""
        name = self.options.get("name")
        return repr(name) if name is not None else getattr(self.factory, "__qualname__", repr(self.factory))


@attrs.frozen
class _Service:
    """What ``actors run`` starts in a fresh system: an async ``main(system)``, or top-level actors in order."""

    target: str
    """The ``module:factory`` text it came from."""
    main: Callable[[ActorSystem], Awaitable[object]] | None = None
    """The async factory, called with the system."""
    actors: tuple[_TopLevel, ...] = ()
    """The top-level actors the sync factory asked for, in start order."""

    async def start(self, system: ActorSystem) -> None:
        """Run ``main(system)`` or spawn the top-level actors one after the other.

        Raises :class:`_BadTarget` if spawning refuses a spec (a factory that does not build an actor).
        """
        if self.main is not None:
            await self.main(system)
            return
        for actor in self.actors:
            try:
                await system.spawn(actor.factory, *actor.args, **{**actor.kwargs, **actor.options})
            except TypeError as exc:
                raise _BadTarget(f"{self.target}: cannot spawn {actor.describe()}: {exc}") from exc


def _load_target(text: str) -> _Service:
    """Import ``module:factory`` and say what to run; raises :class:`_BadTarget` if it cannot be run.

    The factory (a dotted attribute path is allowed after the colon) is either an async function, which will be
    called with the system, or a function called now, with no arguments, that returns the top-level actors:
    a list of child specs (objects with ``factory``, ``args``, ``kwargs`` and ``name``, and optionally
    ``restart``, ``mailbox`` and ``supervision``, such as ``ChildSpec``), ``(factory, *args)`` tuples, or bare
    actor classes. The current directory is importable, as with ``python -m``.
    """
    module_name, colon, attribute = text.partition(":")
    if not colon or not module_name or not attribute:
        raise _BadTarget(f"expected MODULE:FACTORY such as 'examples.service:main', got {text!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise _BadTarget(f"cannot import {module_name!r}: no module named {exc.name!r}") from exc
        raise _BadTarget(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise _BadTarget(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    factory: Any = module
    for part in attribute.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError as exc:
            raise _BadTarget(f"{module_name!r} has no attribute {attribute!r}") from exc
    if not callable(factory):
        raise _BadTarget(f"{text} is {factory!r} (a {type(factory).__name__}), not a function")

    if inspect.iscoroutinefunction(factory) or inspect.iscoroutinefunction(type(factory).__call__):
        _check_signature(text, factory, 1, "an async factory is called with the system: async def main(system)")
        return _Service(text, main=factory)

    _check_signature(text, factory, 0, "a factory that returns top-level specs is called with no arguments")
    try:
        returned = factory()
    except Exception as exc:
        raise _BadTarget(f"{text}() raised {type(exc).__name__}: {exc}") from exc
    return _Service(text, actors=_top_level(text, returned))


def _check_signature(text: str, factory: Callable[..., Any], count: int, hint: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or extension without a signature: the call will tell
    try:
        signature.bind(*range(count))
    except TypeError as exc:
        raise _BadTarget(f"{text} cannot be called like that ({exc}); {hint}") from exc


def _top_level(text: str, returned: object) -> tuple[_TopLevel, ...]:
    if isinstance(returned, str | bytes) or not isinstance(returned, Sequence):
        raise _BadTarget(f"{text}() returned {returned!r}; expected a list of child specs, or use "
                        "'async def main(system)' to start the service yourself")
    return tuple(_one_top_level(text, index, item) for index, item in enumerate(returned))


def _one_top_level(text: str, index: int, item: object) -> _TopLevel:
    if all(hasattr(item, field) for field in ("factory", "args", "kwargs", "name")):
        spec: Any = item
        options = {key: value for key in ("name", "restart", "mailbox", "supervision")
                   if (value := getattr(spec, key, None)) is not None}
        actor = _TopLevel(spec.factory, tuple(spec.args), dict(spec.kwargs), options)
    elif isinstance(item, tuple) and item and callable(item[0]):
        actor = _TopLevel(item[0], item[1:])
    elif callable(item) and not isinstance(item, tuple):
        actor = _TopLevel(item)
    else:
        raise _BadTarget(f"{text}() returned {item!r} at position {index}, which is not a child spec; "
                        "give ChildSpec(factory, *args, name=...) or a (factory, *args) tuple")
    if not callable(actor.factory):
        raise _BadTarget(f"{text}(): the factory of child spec {index}, {actor.factory!r}, is not callable")
    return actor


# -- running it ----------------------------------------------------------------------------------------------

@attrs.frozen
class _RunOptions:
    """The options of ``actors run``."""

    name: str
    """The system's name."""
    metrics_host: str = "127.0.0.1"
    """Where the metrics server binds."""
    metrics_port: int | None = None
    """The metrics server's port; ``None`` for no server."""
    metrics_top: int | None = DEFAULT_TOP
    """Actors with per-actor series on the metrics page; ``None`` for all."""
    shutdown_timeout: float = 10.0
    """Seconds a graceful shutdown may take before what is left is cancelled."""
    debug: bool = False
    """Show tracebacks."""
    workers: int = 0
    """Worker processes to start (``ActorSystem(workers=N)``)."""


async def _serve(service: _Service, options: _RunOptions) -> bool:
    """Run ``service`` in a fresh :class:`ActorSystem` until SIGINT or SIGTERM, then shut it down in order.

    Returns whether the shutdown was clean: ``False`` if it took longer than ``options.shutdown_timeout`` and the
    system cancelled the actors still stopping.

    Must run in the main thread (it installs signal handlers). The first signal cancels the service's body and
    the system stops gracefully (children before parents, siblings in reverse start order, within
    ``options.shutdown_timeout``); a second signal forces it by raising :class:`KeyboardInterrupt` in the main
    task, which cancels the actors still stopping. Raises :class:`_BadTarget` if the metrics port cannot be
    bound or a spec cannot be spawned, and what ``async with ActorSystem()`` raises if the system failed.
    """
    async with trio.open_nursery() as guard:
        stopping = trio.CancelScope()
        await guard.start(_watch_signals, stopping)
        async with ActorSystem(options.name, shutdown_timeout=options.shutdown_timeout,
                               workers=options.workers) as system:
            with stopping:
                async with trio.open_nursery() as nursery:
                    where = ""
                    if options.metrics_port is not None:
                        try:
                            url = await nursery.start(partial(
                                serve_metrics, system, options.metrics_host, options.metrics_port,
                                top=options.metrics_top))
                        except OSError as exc:
                            hint = "choose another --metrics-port" if exc.errno == errno.EADDRINUSE else \
                                "check --metrics-host and --metrics-port"
                            raise _BadTarget(f"{exc.strerror or exc} ({hint})") from exc
                        where = f"; metrics at {url}"
                    logger.info("starting %s as system %r%s", service.target, options.name, where)
                    await service.start(system)
                    logger.info("running %r (top-level actors: %d); stop it with Ctrl-C or SIGTERM",
                                options.name, len(system.top_level))
                    await trio.sleep_forever()
            shutdown_began = trio.current_time()
        guard.cancel_scope.cancel()
    # ActorSystem logs, but does not raise, when its shutdown ran out of time and it cancelled what was left;
    # its deadline is shutdown_timeout from a moment just after shutdown_began.
    if trio.current_time() - shutdown_began >= options.shutdown_timeout:
        logger.error("system %r did not stop cleanly: its shutdown took longer than %ss", options.name,
                     options.shutdown_timeout)
        return False
    logger.info("system %r stopped cleanly", options.name)
    return True


@trio.lowlevel.enable_ki_protection
async def _watch_signals(stopping: trio.CancelScope, *,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Cancel ``stopping`` at the first SIGINT/SIGTERM; at the second, force the shutdown.

    ``ActorSystem`` shuts down under a shield (so that cancelling its caller cannot skip ``on_stop`` hooks),
    which only a :class:`KeyboardInterrupt` in the main task goes through. So the second signal closes the
    receiver, which puts trio's own SIGINT handler back, and raises SIGINT: as this task is protected from
    KeyboardInterrupt, trio delivers it to the main task, where the shutdown is waiting.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        first = await anext(signals)
        logger.info("received %s: shutting down gracefully (send it again to force)", signal.Signals(first).name)
        stopping.cancel()
        second = await anext(signals)
    logger.warning("received %s again: forcing the shutdown, cancelling the actors still stopping",
                   signal.Signals(second).name)
    signal.raise_signal(signal.SIGINT)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _run_service(service: _Service, options: _RunOptions) -> int:
    """Run :func:`_serve` with ``trio.run`` and return the exit status (0, 1 or 2), logging why it is not 0."""
    previous = signal.getsignal(signal.SIGINT)
    # trio turns a forced shutdown into KeyboardInterrupt only if SIGINT has Python's default handler when the
    # run starts; it may be ignored here if we were started in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        clean = trio.run(_serve, service, options)
    except BaseException as exc:
        return _exit_status(exc, options)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0 if clean else 1


def _exit_status(exc: BaseException, options: _RunOptions) -> int:
    leaves = list(_leaves(exc))
    bad = [leaf for leaf in leaves if isinstance(leaf, _BadTarget)]
    if bad and len(bad) == len(leaves):
        _print_bad_target("run", bad[0], debug=options.debug)
        return 2
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        logger.error("system %r did not stop cleanly: its shutdown was forced", options.name)
        return 1
    failures = [leaf for leaf in leaves if isinstance(leaf, ActorFailed)]
    if failures and len(failures) == len(leaves):
        # The runtime has logged the escalated failure with its traceback already.
        logger.error("system %r failed: %s", options.name, failures[0],
                     exc_info=failures[0] if options.debug else None)
        return 1
    logger.error("system %r failed", options.name, exc_info=exc)
    return 1


def _print_bad_target(command: str, exc: BaseException, *, debug: bool) -> None:
    if debug and exc.__cause__ is not None:
        traceback.print_exception(exc.__cause__, file=sys.stderr)
    click.echo(f"actors {command}: error: {exc}", err=True)


def _configure_logging(debug: bool) -> Callable[[], None]:
    """Send log records to stderr; returns the function that undoes it."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(old_level)

    return undo


# -- the commands --------------------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trio-actors", prog_name="actors")
def main() -> None:
    """trio-actors: run a supervised actor service, watch a running one, benchmark the runtime."""


@main.command("run")
@click.argument("target", metavar="MODULE:FACTORY")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (0 picks a free port).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="Address the metrics server binds.")
@click.option("--metrics-top", default=str(DEFAULT_TOP), show_default=True, metavar="K|all",
              help="Actors with per-actor series on the metrics page (the longest mailboxes); 'all' for every one.")
@click.option("--name", default=None, metavar="NAME",
              help="The actor system's name (default: the last part of the module's name).")
@click.option("--shutdown-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, metavar="SECONDS",
              help="How long a graceful shutdown may take before the actors left are cancelled.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Worker processes to start; actors spawned with node=\"spread\" run there.")
@click.option("--debug", is_flag=True, help="Debug logging, and tracebacks for a bad target.")
@click.pass_context
def run_command(ctx: click.Context, target: str, metrics_port: int | None, metrics_host: str, metrics_top: str,
                name: str | None, shutdown_timeout: float, workers: int, debug: bool) -> None:
    """Run a long-lived supervised service until SIGINT or SIGTERM.

    MODULE:FACTORY names either an async function, called with the actor system
    (async def main(system): await system.spawn(...)), or a function returning the
    top-level actors to start in order (ChildSpec objects or (factory, *args) tuples).

    The first SIGINT/SIGTERM shuts the system down gracefully, children before parents;
    a second one forces it. Exit status: 0 after a clean shutdown, 1 if the system
    failed or did not stop cleanly, 2 for a bad command line or target.
    """
    top: int | None = None
    if metrics_top != "all":
        try:
            top = int(metrics_top)
        except ValueError:
            top = 0
        if top < 1:
            raise click.BadParameter(f"expected a number of actors (1 or more) or 'all', got {metrics_top!r}",
                                     param_hint="'--metrics-top'")
    undo_logging = _configure_logging(debug)
    try:
        try:
            service = _load_target(target)
        except _BadTarget as exc:
            _print_bad_target("run", exc, debug=debug)
            ctx.exit(2)
        options = _RunOptions(name=name or target.partition(":")[0].rpartition(".")[2],
                             metrics_host=metrics_host, metrics_port=metrics_port, metrics_top=top,
                             shutdown_timeout=shutdown_timeout, debug=debug, workers=workers)
        status = _run_service(service, options)
    finally:
        undo_logging()
    ctx.exit(status)


@main.command("top")
@click.option("--url", required=True, metavar="URL",
              help="The metrics page of a running system, e.g. http://127.0.0.1:9464/metrics.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True, metavar="SECONDS",
              help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one table and exit (1 if the URL cannot be reached).")
@click.pass_context
def top_command(ctx: click.Context, url: str, interval: float, once: bool) -> None:
    """Show a running system's supervision tree and queue figures, live.

    One row per actor, indented by depth: state, mailbox length, arrival rate λ,
    service rate μ, utilization ρ, mean wait W and restarts. Saturated actors
    (ρ >= 0.9) and growing mailboxes are highlighted. Ctrl-C quits.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"expected an http:// URL such as http://127.0.0.1:9464/metrics, got {url!r}",
                                 param_hint="'--url'")
    from rich.console import Console  # imported here: only top needs rich

    from . import _top

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # a pipe: do not fold the table to 80 columns
    if once:
        ctx.exit(_top.show_once(url, console, Console(stderr=True, width=10_000)))
    try:
        _top.watch(url, console, interval=interval)
    except KeyboardInterrupt:
        ctx.exit(0)


_PROJECT = "trio-actors"
"""The ``[project] name`` in ``pyproject.toml`` that marks a checkout of this repository."""


def _find_harness(start: Path) -> Path | None:
    """The ``benchmarks/`` directory of the trio-actors checkout that ``start`` is in, or ``None``.

    A checkout is ``start`` or one of its parents whose ``pyproject.toml`` names the project trio-actors and
    which holds ``benchmarks/__main__.py``. The harness is not installed with the package, so outside a checkout
    there is none; and a ``benchmarks`` package of the user's own is never taken for it.
    """
    for directory in (start, *start.parents):
        harness = directory / "benchmarks"
        if (harness / "__main__.py").is_file() and _project_name(directory / "pyproject.toml") == _PROJECT:
            return harness
    return None


def _project_name(pyproject: Path) -> str | None:
    """The ``[project] name`` of ``pyproject``; ``None`` if it has none or cannot be read."""
    try:
        with pyproject.open("rb") as file:
            project = tomllib.load(file).get("project")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) else None


def _check_harness(path: Path) -> str | None:
    """Why ``path`` (from ``--harness``) cannot be run as ``python -m benchmarks``; ``None`` if it can."""
    if not (path / "__main__.py").is_file():
        if (path / "benchmarks" / "__main__.py").is_file():
            return f"{path} is not the benchmark harness; did you mean --harness {path / 'benchmarks'}?"
        return f"{path} is not the benchmark harness: it has no __main__.py"
    if path.name != "benchmarks":
        return f"{path} is not the benchmark harness: it runs as 'python -m benchmarks', so it must be named benchmarks"
    return None


@main.command("bench")
@click.option("--quick", is_flag=True, help="About 1/20 of the full sizes, for smoke runs.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Run only this benchmark (repeatable; names may also follow as arguments).")
@click.option("--repeat", type=click.IntRange(min=1), default=None, metavar="N",
              help="Runs per workload and side; the best is kept.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Where to write the results as JSON; a relative path is taken from the current directory "
                   "(default: benchmark-results.json, in the current directory).")
@click.option("--harness", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="The benchmarks/ directory of a trio-actors checkout (default: that of the checkout the "
                   "current directory is in).")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.pass_context
def bench_command(ctx: click.Context, quick: bool, only: tuple[str, ...], repeat: int | None,
                  json_path: str | None, harness: Path | None, names: tuple[str, ...]) -> NoReturn:
    """Run the benchmark harness of a trio-actors checkout and print its table.

    The harness is not installed with the package: it lives in the repository's
    benchmarks/ directory, found from the current directory (or given with --harness),
    and it measures the actors and runtime packages of that checkout. It runs in a fresh
    interpreter, so that the measurements (memory included) are not disturbed by this
    process. Exit status: the harness's, or 2 if there is no harness to run.
    """
    if harness is None:
        found = _find_harness(Path.cwd())
        if found is None:
            click.echo(f"actors bench: error: {Path.cwd()} is not in a checkout of trio-actors, and the benchmark "
                       "harness is not installed with the package; run this in a checkout, or give "
                       "--harness PATH/TO/benchmarks", err=True)
            ctx.exit(2)
        harness = found
    else:
        harness = harness.resolve()
        problem = _check_harness(harness)
        if problem is not None:
            click.echo(f"actors bench: error: {problem}", err=True)
            ctx.exit(2)
    # -P: the current directory is not put first on sys.path, so a ``benchmarks`` package there cannot stand in
    # for the harness; the harness's checkout is. The current directory stays the working directory, which is
    # where relative --json paths and the default results file go.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(harness.parent), env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-P", "-m", "benchmarks"]
    if quick:
        argv.append("--quick")
    selected = [*only, *names]
    if selected:
        argv += ["--only", *selected]
    if repeat is not None:
        argv += ["--repeat", str(repeat)]
    if json_path is not None:
        argv += ["--json", json_path]
    ctx.exit(subprocess.run(argv, env=env, check=False).returncode)


if __name__ == "__main__":
    main(prog_name="actors")
