"""What the AMQP client's test modules share: the broker fixture, the broker's command line, and a proxy that a
test can freeze, cut or close (and that can terminate TLS), to break a connection on purpose."""

from __future__ import annotations

import os
import pathlib
import ssl
import subprocess
import uuid

import attrs
import pytest
import trio

ROOT = pathlib.Path(__file__).resolve().parent.parent
BROKER = ROOT / "scripts" / "broker"
BROKER_PORT = 5672
URL = f"amqp://guest:guest@127.0.0.1:{BROKER_PORT}/"


def run_broker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BROKER), *args], capture_output=True, text=True, timeout=timeout, check=False)


async def broker_eval(expression: str) -> str:
    """Evaluate an Erlang expression in the broker (``rabbitmqctl eval``) and return what it printed."""
    result = await trio.run_process([str(BROKER), "ctl", "eval", expression], capture_stdout=True,
                                    capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip()


async def close_named_connections(connection_name: str, reason: str) -> int:
    """Close, as an operator would, the broker's connections whose client called itself ``connection_name``;
    return how many there were."""
    expression = (
        "Closed = [rabbit_networking:close_connection(proplists:get_value(pid, I), \"" + reason + "\") "
        "|| I <- rabbit_networking:connection_info_all([pid, client_properties]), "
        "lists:keyfind(<<\"connection_name\">>, 1, proplists:get_value(client_properties, I)) "
        "=:= {<<\"connection_name\">>, longstr, <<\"" + connection_name + "\">>}], length(Closed)."
    )
    return int(await broker_eval(expression))


@pytest.fixture(scope="session")
def broker() -> str:
    """A RabbitMQ answering on 127.0.0.1:5672 (started if need be); skips, or fails under ``CI=true``, if none."""
    try:
        result = run_broker("start", timeout=300)
        problem = None if result.returncode == 0 else f"exit status {result.returncode}: {result.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = repr(exc)
    if problem is not None:
        reason = f"no RabbitMQ broker: `scripts/broker start` failed ({problem})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return URL


TLS_PORT = 5671


@attrs.frozen
class TLSBroker:
    """The broker's own TLS listener."""

    url: str
    """Its ``amqps://`` URL, for ``localhost``."""
    ca: str
    """The path of the CA certificate that signed the listener's."""
    context: ssl.SSLContext
    """A client context that trusts that CA."""


@pytest.fixture(scope="session")
def tls_broker(broker: str) -> TLSBroker:
    """The broker's own TLS listener (``scripts/broker start`` adds it). Skips, or fails under ``CI=true``,
    without one."""
    result = run_broker("ca")
    if result.returncode != 0:
        reason = f"no TLS listener: `scripts/broker ca` failed ({result.stderr.strip()})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    ca = result.stdout.strip()
    return TLSBroker(f"amqps://guest:guest@localhost:{TLS_PORT}/", ca, ssl.create_default_context(cafile=ca))


def name(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"


@attrs.define(eq=False)
class Proxy:
    """A proxy in front of the broker, on a port of its own: plain TCP, or TLS on the client's side with
    ``ssl_context``. :meth:`freeze` stops it forwarding (one way or both) on the connections it has,
    :meth:`cut` breaks them, and while :attr:`refusing` new connections are closed at once."""

    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    refusing: bool = False
    accepted: int = 0
    """Connections accepted, refused ones included."""
    _scopes: set[trio.CancelScope] = attrs.field(factory=set)
    _frozen_up: trio.Event | None = None
    _frozen_down: trio.Event | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listener: trio.abc.Listener[trio.abc.Stream]
        tcp = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        self.port = tcp.socket.getsockname()[1]
        listener = tcp if self.ssl_context is None else trio.SSLListener(tcp, self.ssl_context)
        task_status.started()
        await trio.serve_listeners(self._handle, [listener])

    def url(self, scheme: str = "amqp") -> str:
        return f"{scheme}://guest:guest@127.0.0.1:{self.port}/"

    def freeze(self, *, up: bool = True, down: bool = True) -> None:
        """Stop forwarding on the connections open now: client to broker (``up``), broker to client (``down``)."""
        if up:
            self._frozen_up = trio.Event()
        if down:
            self._frozen_down = trio.Event()

    def cut(self) -> None:
        """Break every connection open now (the client sees its socket close)."""
        for scope in self._scopes:
            scope.cancel()

    async def _handle(self, client: trio.abc.Stream) -> None:
        self.accepted += 1
        if self.refusing:
            await trio.aclose_forcefully(client)
            return
        up, down = self._frozen_up, self._frozen_down
        try:
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                upstream = await trio.open_tcp_stream("127.0.0.1", BROKER_PORT)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, upstream, "up", up, nursery.cancel_scope)
                        nursery.start_soon(self._pump, upstream, client, "down", down, nursery.cancel_scope)
                finally:
                    await trio.aclose_forcefully(upstream)
        except trio.BrokenResourceError:
            pass  # the client hung up first
        finally:
            self._scopes.discard(scope)
            await trio.aclose_forcefully(client)

    async def _pump(self, source: trio.abc.Stream, sink: trio.abc.Stream, way: str, frozen_at_start: object,
                    scope: trio.CancelScope) -> None:
        try:
            while True:
                data = await source.receive_some(65536)
                if not data:
                    break
                frozen = self._frozen_up if way == "up" else self._frozen_down
                if frozen is not None and frozen is not frozen_at_start:
                    await frozen.wait()  # frozen for the connections that were open when freeze() was called
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


def broker_sockets() -> int:
    """How many TCP connections this process has open to the broker's port (Linux: ``/proc``), counted on the
    client's side, whatever the other tests on the same broker do."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as file:
            next(file)
            for line in file:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == BROKER_PORT and inode in inodes:
                    count += 1
    return count
