"""stop_timeout: how long a stop waits for the message being handled before it cancels that handler (OTP's
shutdown time). Opt-in per actor; without it a stop waits for the current message, as Akka does."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorStopped, ActorSystem, ChildSpec, Supervisor

pytestmark = pytest.mark.deadline(600)


class Stuck(Actor):
    """Sleeps ``seconds`` of trio's clock on every message; records its hooks."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def receive(self, message: Any) -> Any:
        await trio.sleep(message)
        self.log.append(f"finished {message}")
        return message

    async def on_stop(self) -> None:
        self.log.append("on_stop")


async def test_a_stuck_handler_is_cancelled_after_the_stop_timeout(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        stuck = await system.spawn(Stuck, log, name="stuck", stop_timeout=2.0)
        request = stuck.request(3600)
        await trio.testing.wait_all_tasks_blocked()
        before = trio.current_time()
        await system.stop(stuck)
        assert trio.current_time() - before == pytest.approx(2.0)
        with pytest.raises(ActorStopped, match=re.escape("stop_timeout=2.0")):
            request.result()
        assert log == ["on_stop"]  # the handler never finished; the stop still ran on_stop
        assert system.statistics().dead_letters == 0


async def test_without_a_stop_timeout_a_stop_waits_for_the_message(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        patient = await system.spawn(Stuck, log)
        request = patient.request(30)
        await trio.testing.wait_all_tasks_blocked()
        before = trio.current_time()
        await system.stop(patient)
        assert trio.current_time() - before == pytest.approx(30.0)
        assert request.result() == 30
        assert log == ["finished 30", "on_stop"]


async def test_a_handler_that_ends_in_time_is_not_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        quick = await system.spawn(Stuck, log, stop_timeout=5.0)
        request = quick.request(1)
        await trio.testing.wait_all_tasks_blocked()
        await system.stop(quick)
        assert request.result() == 1
        assert log == ["finished 1", "on_stop"]


async def test_the_system_shutdown_cancels_stuck_children_after_their_timeouts(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        await system.spawn(Supervisor, [ChildSpec(Stuck, log, name="a", stop_timeout=1.0),
                                        ChildSpec(Stuck, log, name="b", stop_timeout=1.0)], name="sup")
        for path in ("sup/a", "sup/b"):
            system.lookup(path).tell(3600)  # type: ignore[union-attr]
        await trio.testing.wait_all_tasks_blocked()
        closing = trio.current_time()
    assert trio.current_time() - closing == pytest.approx(2.0)  # b, then a, each cut short after 1 s
    assert log == ["on_stop", "on_stop"]


@pytest.mark.parametrize("bad", [0, -1.0, "5", True])
async def test_bad_stop_timeouts_are_refused(actor_system: ActorSystem, bad: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"stop_timeout={bad!r}")):
        await actor_system.spawn(Stuck, [], stop_timeout=bad)
    with pytest.raises(ValueError, match=re.escape(f"stop_timeout={bad!r}")):
        ChildSpec(Stuck, [], stop_timeout=bad)
