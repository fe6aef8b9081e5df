"""``actors top``: a running system's actors and queue figures, live in the terminal.

It scrapes the Prometheus page that ``actors run --metrics-port`` serves (see :mod:`actors._metrics`), parses it
with prometheus_client's parser, and shows one row per actor: its path, state, mailbox length, λ, μ, ρ, W and
restarts (and its node, once there are several). It never asks for every actor: each refresh asks the server for
the ``K`` actors it has room for, ranked by the column it sorts by (``?top=K&by=...&match=...``), so it stays
responsive with 100k actors. Saturated actors (ρ ≥ 0.9) and mailboxes longer than at the previous refresh are
highlighted, with a marker as well as a colour so that they show without colours too. When the page cannot be
fetched any more the view says *disconnected*, since when, and shows the last figures dimmed and dated.

The keys (:class:`View` is the state they change, kept apart from the terminal so that it is tested as data):
``m`` ``l`` ``u`` ``r`` ``w`` ``x`` sort by mailbox, λ, μ, ρ, W or restarts (``<`` and ``>`` move between
columns, ``t`` is tree order), the arrows, ``j``/``k``, PgUp/PgDn, Home/End scroll, ``/`` filters by path (Enter
applies, Esc clears), ``q`` quits.

This is a plain synchronous polling loop: it runs no actors, and its only clocks are the refresh interval and
the keyboard.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence

import attrs
from prometheus_client.parser import text_string_to_metric_families
from rich import box
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import _metrics as m

__all__ = ["COLUMNS", "ActorRow", "Snapshot", "TopError", "View", "fetch", "parse_metrics", "render", "show_once",
           "watch"]

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
    """Wq, seconds from enqueue to the start of handling."""
    mean_sojourn: float = 0.0
    """W, seconds from enqueue to the end of handling."""
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
    live_actors: int = 0
    """Actors in the system (the page lists only some of them)."""
    selected_actors: int = 0
    """Actors the listed ones were chosen from: those matching the filter."""


_FIELDS = {
    m.MAILBOX_LENGTH: "mailbox_length",
    m.ARRIVAL_RATE: "arrival_rate",
    m.SERVICE_RATE: "service_rate",
    m.UTILIZATION: "utilization",
    m.MEAN_WAIT: "mean_wait",
    m.MEAN_SOJOURN: "mean_sojourn",
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
    dead_letters = pending_asks = live = 0
    selected: int | None = None
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
                live = int(value)
            elif name == m.SELECTED_ACTORS:
                selected = int(value)
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
            mean_sojourn=row.get("mean_sojourn", 0.0), restarts=int(row.get("restarts", 0)),
            node=nodes.get(path, ""))
        for path, row in values.items()
    }
    return Snapshot(actors=actors, system=system, dead_letters=dead_letters, pending_asks=pending_asks,
                    live_actors=live, selected_actors=live if selected is None else selected)


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


@attrs.frozen
class Column:
    """A column ``actors top`` can sort by."""

    key: str
    """The key that sorts by it."""
    header: str
    """Its heading."""
    figure: str
    """The :class:`~runtime.ActorStatistics` field the server ranks by (and :class:`ActorRow`'s)."""


COLUMNS: tuple[Column, ...] = (
    Column("m", "mailbox", "mailbox_length"),
    Column("l", "λ/s", "arrival_rate"),
    Column("u", "μ/s", "service_rate"),
    Column("r", "ρ", "utilization"),
    Column("w", "W", "mean_sojourn"),
    Column("x", "restarts", "restarts"),
)
"""The sortable columns, left to right."""
TREE = "tree"
"""The sort that shows the listed actors in tree order (the server still picks them by mailbox length)."""


@attrs.frozen
class View:
    """What the operator chose: the sort, the filter, how far down they scrolled. Keys make new views."""

    sort: str = "mailbox_length"
    """A :class:`Column`'s ``figure``, or :data:`TREE`."""
    filter: str = ""
    """Only actors whose path contains this."""
    offset: int = 0
    """Rows scrolled past."""
    editing: str | None = None
    """The filter being typed (after ``/``), until Enter or Esc."""

    def query(self, url: str, rows: int) -> str:
        """``url`` asking for the actors this view shows ``rows`` of (and one more, to know there are more)."""
        parts = urllib.parse.urlsplit(url)
        params = dict(urllib.parse.parse_qsl(parts.query))
        params["top"] = str(self.offset + rows + 1)
        params["by"] = "mailbox_length" if self.sort == TREE else self.sort
        if self.filter:
            params["match"] = self.filter
        else:
            params.pop("match", None)
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(params)))

    def rows(self, snapshot: Snapshot, rows: int) -> list[ActorRow]:
        """The rows to show: sorted, then the window of ``rows`` at the offset."""
        listed = [row for row in snapshot.actors.values() if self.filter in row.path]
        if self.sort == TREE:
            listed.sort(key=lambda row: row.path.split("/"))
        else:
            listed.sort(key=lambda row: getattr(row, self.sort), reverse=True)  # stable: ties keep page order
        return listed[self.offset:self.offset + rows]

    def key(self, key: str, *, rows: int, total: int) -> View | None:
        """The view after ``key`` (see the module docstring), with ``rows`` on screen and ``total`` to scroll
        through; ``None`` to quit."""
        if self.editing is not None:
            if key == "enter":
                return attrs.evolve(self, filter=self.editing, editing=None, offset=0)
            if key == "esc":
                return attrs.evolve(self, filter="", editing=None, offset=0)
            if key == "backspace":
                return attrs.evolve(self, editing=self.editing[:-1])
            if len(key) == 1 and key.isprintable():
                return attrs.evolve(self, editing=self.editing + key)
            return self
        figures = [column.figure for column in COLUMNS]
        last = max(0, total - rows)
        moves = {"down": 1, "j": 1, "up": -1, "k": -1, "pgdn": rows, " ": rows, "pgup": -rows}
        if key in ("q", "Q"):
            return None
        if key in moves:
            return attrs.evolve(self, offset=max(0, min(last, self.offset + moves[key])))
        if key in ("home", "g"):
            return attrs.evolve(self, offset=0)
        if key in ("end", "G"):
            return attrs.evolve(self, offset=last)
        if key == "/":
            return attrs.evolve(self, editing=self.filter)
        if key == "esc":
            return attrs.evolve(self, filter="", offset=0)
        if key == "t":
            return attrs.evolve(self, sort=TREE, offset=0)
        if key in ("<", ">"):
            at = figures.index(self.sort) if self.sort in figures else 0
            at = (at + (1 if key == ">" else -1)) % len(figures)
            return attrs.evolve(self, sort=figures[at], offset=0)
        for column in COLUMNS:
            if key == column.key:
                return attrs.evolve(self, sort=column.figure, offset=0)
        return self


def render(snapshot: Snapshot, previous: Snapshot | None = None, *, source: str = "", view: View | None = None,
           rows: int | None = None, disconnected: str | None = None) -> Table:
    """The table of ``snapshot`` as ``view`` shows it (``rows`` of it; all without a ``rows``); mailboxes longer
    than in ``previous`` are marked as growing. ``disconnected`` (why, and since when) shows the figures as the
    last ones known, dimmed, rather than as live."""
    if view is None:  # the page's order: tree order when it lists every actor
        view = View(sort=TREE)
        shown = list(snapshot.actors.values())
    else:
        shown = view.rows(snapshot, len(snapshot.actors) if rows is None else rows)
    title = "actors top" + (f" — system {snapshot.system!r}" if snapshot.system else "")
    if source:
        title += f" — {source}"
    if disconnected:
        title = f"DISCONNECTED {disconnected}\n{title}"
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", caption_justify="left",
                  title_style="bold red" if disconnected else None, style="dim" if disconnected else "",
                  min_width=None if rows is None else 110)
    table.add_column("actor" + (" ▲" if view.sort == TREE else ""), no_wrap=True, overflow="fold")
    several_nodes = len({row.node for row in snapshot.actors.values()}) > 1
    if several_nodes:
        table.add_column("node", no_wrap=True)
    table.add_column("state")
    for header in ("mailbox", "λ/s", "μ/s", "ρ", "W", "restarts"):
        sorted_by = any(c.header == header and c.figure == view.sort for c in COLUMNS)
        table.add_column(header + (" ▼" if sorted_by else ""), justify="right", no_wrap=True)
    before = {} if previous is None else previous.actors
    any_growing = any_saturated = False
    dim = "dim" if disconnected else ""
    for row in shown:
        earlier = before.get(row.path)
        growing = earlier is not None and row.mailbox_length > earlier.mailbox_length
        saturated = row.utilization >= SATURATED
        any_growing |= growing
        any_saturated |= saturated
        indent = "  " * row.depth if view.sort == TREE else ""
        table.add_row(
            Text(indent + row.path, style="bold red" if saturated else ""),
            *((Text(row.node.rpartition(".")[2] or row.node),) if several_nodes else ()),
            Text(row.state, style="" if row.state == "running" else "yellow"),
            Text(f"{row.mailbox_length:,}" + (f" {GROWING_MARK}" if growing else ""),
                 style="bold yellow" if growing else ""),
            _rate(row.arrival_rate),
            _rate(row.service_rate),
            Text(f"{row.utilization:.2f}" + (f" {SATURATED_MARK}" if saturated else ""),
                 style="bold red" if saturated else ""),
            _seconds(row.mean_sojourn),
            Text(str(row.restarts), style="yellow" if row.restarts else ""),
            style=dim,
        )
    total = snapshot.live_actors or len(snapshot.actors)
    listed = f"{len(snapshot.actors)} actors" if total == len(snapshot.actors) and not view.filter else (
        f"rows {view.offset + 1 if shown else 0}-{view.offset + len(shown)} of {snapshot.selected_actors:,}"
        + (f" matching {view.filter!r}" if view.filter else "") + f" ({total:,} actors)")
    caption = [f"{listed} · dead letters {snapshot.dead_letters:,} · pending asks {snapshot.pending_asks:,}"]
    if any_saturated:
        caption.append(f"{SATURATED_MARK} saturated (ρ ≥ {SATURATED})")
    if any_growing:
        caption.append(f"{GROWING_MARK} mailbox growing")
    if view.editing is not None:
        caption.append(f"filter: {view.editing}▏ (Enter applies, Esc clears)")
    elif rows is not None:
        caption.append("sort: m l u r w x (< >), t tree · scroll: ↑ ↓ PgUp PgDn Home End · / filter · q quit")
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


_KEYS = {b"\x1b[A": "up", b"\x1b[B": "down", b"\x1b[5~": "pgup", b"\x1b[6~": "pgdn", b"\x1b[H": "home",
         b"\x1bOH": "home", b"\x1b[1~": "home", b"\x1b[F": "end", b"\x1bOF": "end", b"\x1b[4~": "end",
         b"\r": "enter", b"\n": "enter", b"\x7f": "backspace", b"\x08": "backspace", b"\x1b": "esc"}


def parse_keys(data: bytes) -> list[str]:
    """The keys in what the terminal sent: escape sequences for the arrows and the like, else characters."""
    keys = []
    text = data
    sequences = sorted((sequence for sequence in _KEYS if len(sequence) > 1 or sequence != b"\x1b"),
                       key=len, reverse=True)
    while text:
        known = next((sequence for sequence in sequences if text.startswith(sequence)), None)
        if known is not None:
            keys.append(_KEYS[known])
            text = text[len(known):]
        elif text[:2] in (b"\x1b[", b"\x1bO"):  # an escape sequence we do not know: skip it whole
            end = next((i for i in range(2, len(text)) if 0x40 <= text[i] <= 0x7e), len(text) - 1)
            text = text[end + 1:]
        elif text.startswith(b"\x1b"):
            keys.append("esc")
            text = text[1:]
        else:
            length = 1
            while length < 4 and length < len(text):  # one UTF-8 character
                try:
                    text[:length].decode()
                    break
                except UnicodeDecodeError:
                    length += 1
            keys.append(text[:length].decode(errors="replace"))
            text = text[length:]
    return keys


@contextlib.contextmanager
def _keyboard() -> Iterator[int | None]:
    """The terminal's input in cbreak mode (keys arrive one by one, unechoed), or ``None`` if it is no terminal."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _rows_on_screen(console: Console) -> int:
    """How many actor rows fit: the terminal's height less the title, headings and caption."""
    return max(1, console.size.height - 10)


def watch(url: str, console: Console, *, interval: float, refreshes: int | None = None,
          keys: Sequence[str] = ()) -> None:
    """Refresh the view of the system at ``url`` every ``interval`` seconds, and at every key, until ``q``.

    Each refresh asks for the actors the screen has room for, as the :class:`View` sorts and filters them. When
    the page cannot be fetched the view says *disconnected*, since when and why, keeps the last figures dimmed,
    and tries again at the next refresh. Ctrl-C ends it with :class:`KeyboardInterrupt`; ``refreshes`` ends it
    after that many; ``keys`` are pressed before the first refresh (for tests and scripts).
    """
    view = View()
    previous: Snapshot | None = None
    last: Snapshot | None = None
    lost_since: str | None = None
    timeout = max(2.0, interval)
    done = 0
    pending = list(keys)
    screen = console.is_terminal and refreshes is None
    with _keyboard() as fd, Live(console=console, auto_refresh=False, screen=screen) as live:
        while True:
            rows = _rows_on_screen(console)
            for key in pending:
                total = 0 if last is None else (last.selected_actors or len(last.actors))
                changed = view.key(key, rows=rows, total=total)
                if changed is None:
                    return
                view = changed
            pending = []
            shown: RenderableType
            asked = view.query(url, rows)
            try:
                snapshot = parse_metrics(fetch(asked, timeout=timeout))
            except TopError as exc:
                if lost_since is None:
                    lost_since = time.strftime("%H:%M:%S")
                reason = f"since {lost_since}: {str(exc).replace(asked, url)}; retrying every {interval:g}s"
                if last is None:
                    shown = Text(reason, style="bold red")
                else:
                    shown = render(last, source=url, view=view, rows=rows,
                                   disconnected=f"{reason} — the figures below are the last ones received")
            else:
                lost_since = None
                shown = render(snapshot, previous, source=url, view=view, rows=rows)
                previous = last = snapshot
            live.update(shown, refresh=True)
            done += 1
            if refreshes is not None and done >= refreshes:
                return
            pending = _wait_for_keys(fd, interval)


def _wait_for_keys(fd: int | None, seconds: float) -> list[str]:
    """The keys pressed within ``seconds`` (returning at the first), or ``[]`` when the time is up."""
    if fd is None:
        time.sleep(seconds)
        return []
    ready, _, _ = select.select([fd], [], [], seconds)
    if not ready:
        return []
    data = os.read(fd, 1024)
    if not data:  # the terminal went away
        return ["q"]
    return parse_keys(data)
