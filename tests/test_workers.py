"""Worker processes: actors placed on other nodes, messages and refs across, supervision, and a lost node.

These tests start real worker processes (fresh interpreters), so they wait in real time for those to start;
every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    LifecycleEvent,
    NodeDown,
    NodeUp,
    SerializationError,
    Terminated,
)
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)


class Worker(Actor):
    """Counts, answers its pid, fails on request, tells a given ref who it is."""

    def __init__(self, start: int = 0) -> None:
        self.count = start

    async def receive(self, message: Any) -> Any:
        match message:
            case "pid":
                return os.getpid()
            case "count":
                self.count += 1
                return self.count
            case "boom":
                raise ValueError("boom")
            case ("boom", ref):  # the other fails too, before anyone can hear of this failure
                ref.tell("boom")
                raise ValueError("boom")
            case ("introduce", ref):
                ref.tell(("hello from", self.ref, os.getpid()))
                return None
            case ("slow", seconds):
                await trio.sleep(seconds)
                return "done"
            case _:
                return message


def worker_node(system: ActorSystem, index: int = 0) -> Any:
    return [node for node in system.nodes if node.kind == "worker" and node.alive][index]


async def test_an_actor_on_a_worker_runs_in_that_process() -> None:
    async with ActorSystem(workers=1) as system:
        kinds = [node.kind for node in system.nodes]
        assert kinds == ["head", "worker"]
        assert system.node.kind == "head"
        worker = worker_node(system)
        ref = await system.spawn(Worker, 41, node=worker, name="w")
        assert ref.node == worker
        assert ref.path == "w"
        assert await ref.ask("pid") == worker.pid != os.getpid()
        assert await ref.ask("count") == 42
        ref.tell("count")
        assert await ref.ask("count") == 44  # in order per sender, tells included
        assert system.lookup("w") is ref


async def test_refs_and_messages_cross_nodes_and_come_back_as_the_same_refs() -> None:
    async with ActorSystem(workers=1) as system:
        remote = await system.spawn(Worker, node="spread")
        probe = await Probe.spawn(system)
        await remote.ask(("introduce", probe.ref))
        greeting = await probe.expect(lambda message: message[0] == "hello from")
        assert greeting[1] is remote  # the same object: equal and the same hash
        assert greeting[2] == remote.node.pid


async def test_a_lambda_factory_with_a_closure_runs_on_a_worker() -> None:
    offset = 1000
    async with ActorSystem(workers=1) as system:
        ref = await system.spawn(lambda: Worker(offset), node="spread")
        assert await ref.ask("count") == 1001


async def test_a_failure_on_a_worker_is_supervised_from_the_head() -> None:
    async with ActorSystem(workers=1) as system:
        ref = await system.spawn(Worker, 10, node="spread", name="w")
        assert await ref.ask("count") == 11
        with pytest.raises(ActorFailed) as excinfo:
            await ref.ask("boom")
        assert isinstance(excinfo.value.cause, ValueError)
        assert await ref.ask("count") == 11  # a fresh instance behind the same ref


async def test_a_child_of_an_actor_can_live_on_a_worker_and_its_parent_stops_it() -> None:
    log: list[str] = []

    class Parent(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "spawn":
                return await self.spawn(Worker, node="spread", name="kid")
            return [ref.name for ref in self.children]

    async with ActorSystem(workers=1) as system:
        parent = await system.spawn(Parent, name="parent")
        kid = await parent.ask("spawn")
        assert kid.path == "parent/kid"
        assert kid.node.kind == "worker"
        assert await parent.ask("names") == ["kid"]
        assert await kid.ask("pid") == kid.node.pid
        await system.stop(parent)  # stops the child on the worker first
        log.append("stopped")
    assert log == ["stopped"]


async def test_stopping_a_remote_actor_waits_for_it_and_frees_its_name() -> None:
    async with ActorSystem(workers=1) as system:
        ref = await system.spawn(Worker, node="spread", name="w")
        letters = await Probe.dead_letters(system)
        await system.stop(ref)
        assert system.lookup("w") is None
        ref.tell("anyone?")  # the worker has no actor there any more: a dead letter, on the head's stream
        letter = await letters.expect(DeadLetter)
        assert letter.message == "anyone?"
        again = await system.spawn(Worker, node="spread", name="w")
        assert await again.ask("count") == 1


async def test_a_message_that_cannot_be_pickled_is_refused_clearly() -> None:
    async with ActorSystem(workers=1) as system:
        ref = await system.spawn(Worker, node="spread")
        with pytest.raises(SerializationError, match="cannot be sent to another node"):
            await ref.ask(threading.Lock())
        letters = await Probe.dead_letters(system)
        ref.tell(threading.Lock())
        assert "not serializable" in (await letters.expect(DeadLetter)).reason
        with trio.fail_after(10), pytest.raises(SerializationError, match="cannot be sent to another node"):
            await ref.send(threading.Lock())  # a send fails too, instead of waiting for an answer that never comes
        assert await ref.ask("still fine") == "still fine"


async def test_a_failed_spawn_on_a_worker_fails_the_spawn() -> None:
    class Broken(Actor):
        async def on_start(self) -> None:
            raise RuntimeError("no start")

        async def receive(self, message: Any) -> Any:  # pragma: no cover - never starts
            return message

    async with ActorSystem(workers=1) as system:
        with pytest.raises(ActorFailed) as excinfo:
            await system.spawn(Broken, node="spread", name="broken")
        assert isinstance(excinfo.value.cause, RuntimeError)
        assert system.lookup("broken") is None


async def test_a_killed_worker_fails_its_actors_and_is_replaced() -> None:
    async with ActorSystem(workers=1) as system:
        events = await Probe.spawn(system)
        system.events.subscribe(events.ref, NodeDown, NodeUp, LifecycleEvent)
        ref = await system.spawn(Worker, node="spread", name="w")
        lost = ref.node
        async with trio.open_nursery() as nursery:
            asked = trio.Event()

            async def ask_and_fail() -> None:
                asked.set()
                with pytest.raises(ActorFailed) as excinfo:
                    await ref.ask(("slow", 30.0))
                assert isinstance(excinfo.value.cause, NodeDown)
                assert excinfo.value.cause.node.name == lost.name

            nursery.start_soon(ask_and_fail)
            await asked.wait()
            await trio.sleep(0.05)
            start = trio.current_time()
            os.kill(lost.pid, signal.SIGKILL)
        assert trio.current_time() - start < 1.0  # the pending ask failed at once
        down = await events.expect(NodeDown)
        assert down.node.name == lost.name
        assert not down.node.alive
        await events.expect(lambda e: isinstance(e, LifecycleEvent) and e.ref is ref and e.kind == "failed")
        up = await events.expect(NodeUp)
        assert up.node.name != lost.name  # a replacement is a new node
        # The supervisor restarts the actor there, behind the same ref.
        restarted = await events.expect(lambda e: isinstance(e, LifecycleEvent) and e.kind == "restarted")
        assert restarted.ref is ref
        assert isinstance(restarted.error, NodeDown)
        assert ref.node == up.node
        assert await ref.ask("pid") == up.node.pid
        assert [node.alive for node in system.nodes if node.name == lost.name] == [False]


async def test_a_watcher_of_an_actor_on_a_lost_node_gets_terminated_with_node_down() -> None:
    class Watcher(Actor):
        def __init__(self, probe: Any) -> None:
            self.probe = probe

        async def receive(self, message: Any) -> Any:
            if isinstance(message, Terminated):
                self.probe.tell(message)
            else:
                self.watch(message)

    async with ActorSystem(workers=1) as system:
        ref = await system.spawn(Worker, node="spread", restart="temporary")
        probe = await Probe.spawn(system)
        watcher = await system.spawn(Watcher, probe.ref)
        await watcher.ask(ref)  # it watches from now on
        os.kill(ref.node.pid, signal.SIGKILL)
        terminated = await probe.expect(Terminated)
        assert terminated.ref is ref
        assert isinstance(terminated.reason, NodeDown)


def test_no_worker_outlives_its_system() -> None:
    pids: list[int] = []

    async def run() -> None:
        async with ActorSystem(workers=2) as system:
            pids.extend(node.pid for node in system.nodes if node.kind == "worker")
            await system.spawn(Worker, node="spread")

    trio.run(run)
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_no_worker_outlives_a_cancelled_head() -> None:
    pids: list[int] = []

    async def run() -> None:
        with trio.move_on_after(30):
            async with ActorSystem(workers=1) as system:
                pids.extend(node.pid for node in system.nodes if node.kind == "worker")
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trio.run(run)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize(("options", "error"), [
    ({"workers": -1}, ValueError), ({"workers": True}, ValueError), ({"workers": "2"}, ValueError),
])
def test_bad_worker_counts_are_refused(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="workers="):
        ActorSystem(**options)


async def test_placement_names_a_node_of_the_system(actor_system: ActorSystem) -> None:
    with pytest.raises(ValueError, match="one node"):
        await actor_system.spawn(Worker, node="spread")
    async with ActorSystem(workers=1) as system:
        with pytest.raises(ValueError, match="not a node of this system"):
            await system.spawn(Worker, node="elsewhere")
        with pytest.raises(TypeError, match="node="):
            await system.spawn(Worker, node=42)
        local = await system.spawn(Worker, node=system.node)
        assert await local.ask("pid") == os.getpid()


async def test_a_spread_pool_places_its_routees_over_the_workers() -> None:
    from actors import GetRoutees, Pool

    async with ActorSystem(workers=2) as system:
        pool = await system.spawn(Pool, Worker, size=4, spread=True, name="pool")
        routees = await pool.ask(GetRoutees())
        nodes = [ref.node.name for ref in routees]
        workers = sorted(node.name for node in system.nodes if node.kind == "worker")
        assert sorted(set(nodes)) == workers
        assert sorted(nodes.count(name) for name in workers) == [2, 2]
        pids = {await pool.ask("pid") for _ in range(4)}  # round robin over all four
        assert pids == {node.pid for node in system.nodes if node.kind == "worker"}


async def test_statistics_cover_the_actors_of_every_node() -> None:
    class Parent(Actor):
        async def on_start(self) -> None:
            await self.spawn(Worker, name="kid")

        async def receive(self, message: Any) -> Any:
            return message

    async with ActorSystem(workers=1) as system:
        local = await system.spawn(Worker, name="local")
        remote = await system.spawn(Parent, node="spread", name="remote")
        await local.ask("count")
        await remote.ask("hello")
        figures = system.statistics().actors
        for _ in range(50):  # a worker reports its figures once a second
            if "remote/kid" in figures:
                break
            await trio.sleep(0.1)
            figures = system.statistics().actors
        assert figures["local"].node == system.node.name
        assert figures["remote"].node == remote.node.name
        assert figures["remote/kid"].node == remote.node.name
        assert figures["remote"].handled == 1


async def test_a_group_restart_spans_nodes() -> None:
    class Parent(Actor):
        async def on_start(self) -> None:
            await self.spawn(Worker, 100, name="local")
            await self.spawn(Worker, 200, name="remote", node="spread")

        async def receive(self, message: Any) -> Any:
            return {ref.name: ref for ref in self.children}

    from actors import OneForAll

    async with ActorSystem(workers=1) as system:
        parent = await system.spawn(Parent, name="p", supervision=OneForAll(max_restarts=5))
        children = await parent.ask("children")
        local, remote = children["local"], children["remote"]
        assert remote.node.kind == "worker"
        assert (await local.ask("count"), await remote.ask("count")) == (101, 201)
        with pytest.raises(ActorFailed):
            await remote.ask("boom")  # the remote child fails: both are restarted, in order
        assert await parent.ask("children") == children  # the same refs
        assert (await local.ask("count"), await remote.ask("count")) == (101, 201)
        with pytest.raises(ActorFailed):
            await local.ask("boom")  # and the other way round
        assert (await local.ask("count"), await remote.ask("count")) == (101, 201)


async def test_the_metrics_page_and_top_show_each_actors_node() -> None:
    from prometheus_client import generate_latest
    from rich.console import Console

    from actors._metrics import metrics_registry
    from actors._top import parse_metrics, render

    async with ActorSystem(workers=1) as system:
        await system.spawn(Worker, name="here")
        remote = await system.spawn(Worker, node="spread", name="there")
        await remote.ask("count")
        for _ in range(50):  # a worker reports its figures once a second
            if "there" in system.statistics().actors:
                break
            await trio.sleep(0.1)
        snapshot = parse_metrics(generate_latest(metrics_registry(system)).decode())
    assert snapshot.actors["here"].node == system.node.name
    assert snapshot.actors["there"].node == remote.node.name
    console = Console(width=200, record=True)
    console.print(render(snapshot))
    text = console.export_text()
    assert "node" in text.splitlines()[2]
    assert remote.node.name.rpartition(".")[2] in text


async def test_a_reply_that_cannot_be_pickled_fails_the_ask_and_not_the_actor() -> None:
    class Answering(Actor):
        def __init__(self) -> None:
            self.handled = 0

        async def receive(self, message: Any) -> Any:
            self.handled += 1
            if message == "lock":
                return threading.Lock()
            return self.handled

    async with ActorSystem(workers=1) as system:
        ref = await system.spawn(Answering, node="spread", name="a")
        assert await ref.ask("first") == 1
        with pytest.raises(SerializationError, match="answer"):
            await ref.ask("lock")
        assert await ref.ask("after") == 3  # the same instance: a restart would have counted from 1 again


@pytest.mark.deadline(120)
async def test_a_hung_worker_is_found_by_its_silence() -> None:
    async with ActorSystem(workers=1) as system:
        events = await Probe.spawn(system)
        system.events.subscribe(events.ref, NodeDown)
        ref = await system.spawn(Worker, node="spread", restart="temporary")
        hung = ref.node
        os.kill(hung.pid, signal.SIGSTOP)  # alive, but it says nothing any more
        try:
            with trio.fail_after(30):
                down = await events.expect(NodeDown)
        finally:
            os.kill(hung.pid, signal.SIGCONT)
        assert down.node.name == hung.name
        assert "silent" in down.reason or "heartbeat" in down.reason or "dead" in down.reason
        with pytest.raises(ActorStopped):
            await ref.ask("anyone?")


async def test_a_tell_from_another_node_to_a_full_mailbox_is_a_dead_letter_not_a_lost_node() -> None:
    from actors import Mailbox

    class Gated(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "wait":
                await trio.sleep(1000)
            return message

    class Teller(Actor):
        async def receive(self, message: Any) -> Any:
            for value in message[1]:
                message[0].tell(value)

    async with ActorSystem(workers=1) as system:
        letters = await Probe.dead_letters(system)
        gated = await system.spawn(Gated, mailbox=Mailbox(capacity=1, overflow="fail"), stop_timeout=0.1)
        gated.tell("wait")
        teller = await system.spawn(Teller, node="spread")
        await teller.ask((gated, ["fills it", "overflows"]))
        letter = await letters.expect(DeadLetter)
        assert letter.message == "overflows"
        assert letter.reason.startswith("overflow")
        assert all(node.alive for node in system.nodes)
        assert await teller.ask((gated, [])) is None  # the worker and its link are fine


async def test_actors_on_two_workers_talk_through_the_head() -> None:
    class Asker(Actor):
        async def receive(self, message: Any) -> Any:
            other, question = message
            return ("asked", await other.ask(question), os.getpid())

    async with ActorSystem(workers=2) as system:
        first, second = [node for node in system.nodes if node.kind == "worker"]
        asker = await system.spawn(Asker, node=first)
        answerer = await system.spawn(Worker, node=second)
        reply = await asker.ask((answerer, "pid"))
        assert reply == ("asked", second.pid, first.pid)
        probe = await Probe.spawn(system)
        await answerer.ask(("introduce", probe.ref))
        assert (await probe.expect(lambda m: m[0] == "hello from"))[1] is answerer


async def test_resolve_finds_an_actor_by_path_on_any_node() -> None:
    class Finder(Actor):
        async def receive(self, message: Any) -> Any:
            node, path = message
            return await self.system.resolve(node, path)

    async with ActorSystem(workers=1) as system:
        worker = worker_node(system)
        here = await system.spawn(Worker, name="here")
        there = await system.spawn(Worker, node=worker, name="there")
        assert await system.resolve(system.node, "here") is here
        assert await system.resolve(worker, "there") is there  # asked of the worker, the same ref back
        assert await system.resolve(worker.name, "nobody") is None
        assert await system.resolve("no-such-node", "here") is None
        finder = await system.spawn(Finder, node=worker)
        assert await finder.ask((system.node, "here")) is here  # from the worker, asked of the head
        assert system.lookup("there") is there


async def test_send_waits_for_room_in_a_bounded_mailbox_on_another_node() -> None:
    from actors import Mailbox

    class Slow(Actor):
        def __init__(self, probe: ActorRef) -> None:
            self.probe = probe

        async def receive(self, message: Any) -> Any:
            await trio.sleep(0.02)
            self.probe.tell(message)

    async with ActorSystem(workers=1) as system:
        probe = await Probe.spawn(system)
        slow = await system.spawn(Slow, probe.ref, node="spread", mailbox=Mailbox(capacity=2, overflow="fail"))
        for n in range(10):  # a tell this fast would overflow the mailbox; send waits for room each time
            await slow.send(n)
        for n in range(10):
            await probe.expect(n)
        letters = await Probe.dead_letters(system)
        await system.stop(slow)
        await slow.send("after the stop")  # nothing there any more: a dead letter, as for a local actor
        assert (await letters.expect(DeadLetter)).message == "after the stop"


def test_workers_exit_when_their_head_is_killed(tmp_path: Any) -> None:
    import subprocess
    import sys
    import time

    script = tmp_path / "head.py"
    script.write_text(
        "import trio\n"
        "from actors import ActorSystem\n"
        "async def main():\n"
        "    async with ActorSystem(workers=1) as system:\n"
        "        print([node.pid for node in system.nodes if node.kind == 'worker'][0], flush=True)\n"
        "        await trio.sleep_forever()\n"
        "trio.run(main)\n")
    head = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert head.stdout is not None
        worker = int(head.stdout.readline())
        head.kill()  # SIGKILL: no shutdown at all
        head.wait(timeout=10)
        for _ in range(200):  # the worker sees its link end and exits by itself
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail(f"worker {worker} outlived its killed head by 10 s")
    finally:
        if head.poll() is None:
            head.kill()
            head.wait(timeout=10)
        if head.stdout is not None:
            head.stdout.close()


async def test_two_remote_children_failing_at_once_restart_their_group_once() -> None:
    from actors import OneForAll

    class Parent(Actor):
        async def on_start(self) -> None:
            for name in ("a", "b"):
                await self.spawn(Worker, name=name, node="spread")

        async def receive(self, message: Any) -> Any:
            return [ref for ref in self.children]

    class Recorder(Actor):
        def __init__(self) -> None:
            self.kinds: list[tuple[str, str]] = []

        async def receive(self, message: Any) -> Any:
            if isinstance(message, LifecycleEvent):
                self.kinds.append((message.ref.name, message.kind))
                return None
            return list(self.kinds)

    async with ActorSystem(workers=1) as system:
        parent = await system.spawn(Parent, name="p", supervision=OneForAll(max_restarts=10))
        a, b = await parent.ask("children")
        await a.ask("count")
        await b.ask("count")
        recorder = await system.spawn(Recorder)
        system.events.subscribe(recorder, LifecycleEvent)
        a.tell(("boom", b))  # both fail before the parent acts; b's report is stale once the group restart ran
        await trio.sleep(1.0)  # long enough for a second, stale group restart to show
        kinds = await recorder.ask("kinds")
        assert sorted(kind for kind in kinds if kind[1] == "restarted") == [("a", "restarted"), ("b", "restarted")]
        assert await a.ask("count") == 1  # fresh instances, restarted once
        assert await b.ask("count") == 1


async def test_workers_take_the_heads_figures_settings_and_default_mailbox() -> None:
    from actors import Mailbox, Metrics

    class Settings(Actor):
        async def receive(self, message: Any) -> Any:
            return self.system.metrics, self.system.default_mailbox

    metrics = Metrics(window=10.0, buckets=5, tick=0.05, sample_every=1)
    mailbox = Mailbox(capacity=50, overflow="drop_old")
    async with ActorSystem(workers=1, metrics=metrics, mailbox=mailbox) as system:
        remote = await system.spawn(Settings, node="spread")
        assert await remote.ask("settings") == (metrics, mailbox)


class Holder(Actor):
    """Asks what it is told to; or tells a probe it holds and never answers."""

    async def receive(self, message: Any) -> Any:
        match message:
            case ("ask", ref, value):
                try:
                    return await ref.ask(value)
                except ActorFailed as exc:
                    return ("failed", exc.cause)
            case ("hold", probe):
                probe.tell("holding")
                await trio.sleep_forever()
            case "nodes":
                return {node.name: (node.kind, node.alive) for node in self.system.nodes}
        return None


async def test_an_ask_between_workers_fails_when_the_asked_ones_worker_is_lost() -> None:
    async with ActorSystem(workers=2) as system:
        first, second = worker_node(system, 0), worker_node(system, 1)
        asker = await system.spawn(Holder, node=first, restart="temporary")
        held = await system.spawn(Holder, node=second, restart="temporary")
        probe = await Probe.spawn(system)
        known = await asker.ask("nodes")
        assert known[second.name] == ("worker", True)  # a worker knows its siblings
        async with trio.open_nursery() as nursery:
            answers: list[Any] = []

            async def ask() -> None:
                answers.append(await asker.ask(("ask", held, ("hold", probe.ref))))

            nursery.start_soon(ask)
            await probe.expect("holding")  # the ask from the first worker is with the actor on the second
            os.kill(second.pid, signal.SIGKILL)
        [(failed, cause)] = answers
        assert failed == "failed"
        assert isinstance(cause, NodeDown)
        assert cause.node.name == second.name
        assert (await asker.ask("nodes"))[second.name] == ("worker", False)
