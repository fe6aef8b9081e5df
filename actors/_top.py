"""``actors top``: a running system's supervision tree and queue figures, live in the terminal.

It scrapes the Prometheus page that ``actors run --metrics-port`` serves (see :mod:`actors._metrics`), parses it
with prometheus_client's parser, and shows one row per actor in tree order: its path indented by depth, its
state, mailbox length, λ, μ, ρ, W and restarts. Saturated actors (ρ ≥ 0.9) and mailboxes longer than at the
previous refresh are highlighted, with a marker as well as a colour so that they show without colours too.

This is a plain synchronous polling loop: it runs no actors, and its only clock is the refresh interval.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping

import attrs
from prometheus_client.parser import text_string_to_metric_families
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import _metrics as m

__all__ = ["ActorRow", "Snapshot", "TopError", "fetch", "parse_metrics", "render", "show_once", "watch"]

SATURATED = 0.9
"""Utilization from which an actor is shown as saturated."""
GROWING_MARK = "↑"
SATURATED_MARK = "!"


class TopError(Exception):
    """The metrics page could not be fetched or is not an actor system's page; ``str()`` is one line."""


@attrs.frozen
class ActorRow:
    """One actor's figures as read from the metrics page."""

    path: str
    """Slash-separated names from the top of the tree."""
    state: str = "?"
    """The state it reported; ``"?"`` if the page had none."""
    mailbox_length: int = 0
    """Messages queued."""
    arrival_rate: float = 0.0
    """λ, messages per second."""
    service_rate: float = 0.0
    """μ, messages per busy second."""
    utilization: float = 0.0
    """ρ = λ / μ."""
    mean_wait: float = 0.0
    """W, seconds."""
    restarts: int = 0
    """Times it was restarted."""
    node: str = ""
    """The node it runs on (its process: the head or a worker)."""

    @property
    def depth(self) -> int:
        """0 for a top-level actor, 1 for its children, and so on."""
        return self.path.count("/")


@attrs.frozen
class Snapshot:
    """What one scrape said: the system's name and counters and every actor in tree order."""

    actors: Mapping[str, ActorRow]
    """Each actor's path mapped to its row, parents before their children."""
    system: str | None = None
    """The system's name, if the page gave it."""
    dead_letters: int = 0
    """Undeliverable messages since the system started."""
    pending_asks: int = 0
    """Asks waiting for an answer."""


_FIELDS = {
    m.MAILBOX_LENGTH: "mailbox_length",
    m.ARRIVAL_RATE: "arrival_rate",
    m.SERVICE_RATE: "service_rate",
    m.UTILIZATION: "utilization",
    m.MEAN_WAIT: "mean_wait",
    m.RESTARTS: "restarts",
}


def parse_metrics(text: str) -> Snapshot:
    """Read a Prometheus text page into a :class:`Snapshot`; raises :class:`TopError` if it is not one.

    Samples other than the actor system's are ignored, so a page that also carries other exporters' metrics
    is fine.
    """
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise TopError(f"the page is not in the Prometheus text format: {exc}") from exc
    values: dict[str, dict[str, float]] = {}  # in the order the page lists the actors: tree order
    states: dict[str, str] = {}
    nodes: dict[str, str] = {}
    system: str | None = None
    dead_letters = pending_asks = 0
    seen_actor_metrics = False
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == m.SYSTEM_INFO:
                system = labels.get("system")
            elif name == m.DEAD_LETTERS:
                dead_letters = int(value)
            elif name == m.PENDING_ASKS:
                pending_asks = int(value)
            elif name == m.LIVE_ACTORS:
                seen_actor_metrics = True
            elif name == m.NODE_INFO and "actor" in labels:
                nodes[labels["actor"]] = labels.get("node", "")
            elif "actor" in labels and (name in _FIELDS or name == m.STATE):
                seen_actor_metrics = True
                row = values.setdefault(labels["actor"], {})
                if name != m.STATE:
                    row[_FIELDS[name]] = value
                elif value == 1.0:
                    states[labels["actor"]] = labels.get("state", "?")
    if not seen_actor_metrics:
        raise TopError("the page has no actor metrics; is this the URL that 'actors run --metrics-port' serves?")
    actors = {
        path: ActorRow(
            path, state=states.get(path, "?"), mailbox_length=int(row.get("mailbox_length", 0)),
            arrival_rate=row.get("arrival_rate", 0.0), service_rate=row.get("service_rate", 0.0),
            utilization=row.get("utilization", 0.0), mean_wait=row.get("mean_wait", 0.0),
            restarts=int(row.get("restarts", 0)), node=nodes.get(path, ""))
        for path, row in values.items()
    }
    return Snapshot(actors=actors, system=system, dead_letters=dead_letters, pending_asks=pending_asks)


def fetch(url: str, *, timeout: float) -> str:
    """The page at ``url``; raises :class:`TopError` with a one-line reason if it cannot be fetched."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise TopError(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise TopError(f"cannot reach {url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:
        raise TopError(f"cannot reach {url}: {exc}") from exc
    return body.decode("utf-8", errors="replace")


def _seconds(value: float) -> str:
    if value <= 0:
        return "0"
    if value < 1e-3:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.2f}s"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def render(snapshot: Snapshot, previous: Snapshot | None = None, *, source: str = "") -> Table:
    """The table of ``snapshot``; mailboxes longer than in ``previous`` are marked as growing."""
    title = "actors top" + (f" — system {snapshot.system!r}" if snapshot.system else "")
    if source:
        title += f" — {source}"
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", caption_justify="left")
    table.add_column("actor", no_wrap=True, overflow="fold")
    several_nodes = len({row.node for row in snapshot.actors.values()}) > 1
    if several_nodes:
        table.add_column("node", no_wrap=True)
    table.add_column("state")
    for header in ("mailbox", "λ/s", "μ/s", "ρ", "W", "restarts"):
        table.add_column(header, justify="right", no_wrap=True)
    before = {} if previous is None else previous.actors
    any_growing = any_saturated = False
    for row in snapshot.actors.values():
        earlier = before.get(row.path)
        growing = earlier is not None and row.mailbox_length > earlier.mailbox_length
        saturated = row.utilization >= SATURATED
        any_growing |= growing
        any_saturated |= saturated
        table.add_row(
            Text("  " * row.depth + row.path, style="bold red" if saturated else ""),
            *((Text(row.node.rpartition(".")[2] or row.node),) if several_nodes else ()),
            Text(row.state, style="" if row.state == "running" else "yellow"),
            Text(f"{row.mailbox_length:,}" + (f" {GROWING_MARK}" if growing else ""),
                 style="bold yellow" if growing else ""),
            _rate(row.arrival_rate),
            _rate(row.service_rate),
            Text(f"{row.utilization:.2f}" + (f" {SATURATED_MARK}" if saturated else ""),
                 style="bold red" if saturated else ""),
            _seconds(row.mean_wait),
            Text(str(row.restarts), style="yellow" if row.restarts else ""),
        )
    caption = [f"{len(snapshot.actors)} actors · dead letters {snapshot.dead_letters:,} · "
               f"pending asks {snapshot.pending_asks:,}"]
    if any_saturated:
        caption.append(f"{SATURATED_MARK} saturated (ρ ≥ {SATURATED})")
    if any_growing:
        caption.append(f"{GROWING_MARK} mailbox growing")
    table.caption = "\n".join(caption)
    return table


def show_once(url: str, console: Console, error_console: Console, *, timeout: float = 5.0) -> int:
    """Print one table of the system at ``url``; 0 if it was shown, 1 (with a one-line error) if not."""
    try:
        snapshot = parse_metrics(fetch(url, timeout=timeout))
    except TopError as exc:
        error_console.print(f"actors top: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    console.print(render(snapshot, source=url))
    return 0


def watch(url: str, console: Console, *, interval: float, refreshes: int | None = None) -> None:
    """Refresh the table of the system at ``url`` every ``interval`` seconds until interrupted.

    When the page cannot be fetched it says so on one line (above the last table, if any) and tries again at
    the next refresh. Ctrl-C ends it with :class:`KeyboardInterrupt`; ``refreshes`` ends it after that many.
    """
    previous: Snapshot | None = None
    last_table: Table | None = None
    timeout = max(2.0, interval)
    done = 0
    with Live(console=console, auto_refresh=False) as live:
        while True:
            shown: RenderableType
            try:
                snapshot = parse_metrics(fetch(url, timeout=timeout))
            except TopError as exc:
                line = Text(f"{exc}; retrying every {interval:g}s", style="bold red")
                shown = line if last_table is None else Group(line, last_table)
            else:
                shown = last_table = render(snapshot, previous, source=url)
                previous = snapshot
            live.update(shown, refresh=True)
            done += 1
            if refreshes is not None and done >= refreshes:
                return
            time.sleep(interval)
