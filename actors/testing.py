"""Helpers for testing actors: :class:`Probe`, and the pytest fixtures ``actor_system`` and ``autojump_clock``.

A probe is an actor that records what it receives, so a test can check what an actor under test sends::

    async def test_greeter(actor_system, autojump_clock):
        probe = await Probe.spawn(actor_system)
        greeter = await actor_system.spawn(Greeter, probe.ref)
        greeter.tell("hello")
        with trio.fail_after(1):
            assert await probe.expect(str) == "hello, world"
        await probe.expect_no_message(0.5)

Everything waits on trio's clock, so it runs instantly and deterministically under
``trio.testing.MockClock(autojump_threshold=0)``: a test bounded by ``trio.fail_after`` that never gets its message
fails at once with :class:`trio.TooSlowError` instead of hanging.

To use the fixtures in a project with pytest-trio, import them in ``conftest.py`` (the redundant alias marks them
as re-exported for linters)::

    from actors.testing import actor_system as actor_system
    from actors.testing import autojump_clock as autojump_clock

This module imports :mod:`pytest`; import it from tests only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from runtime import ActorRef, ActorStopped, ActorSystem, DeadLetter, Reply, ReplyRef, Terminated

from ._actor import Actor

__all__ = ["Probe", "actor_system", "autojump_clock"]


@attrs.frozen
class _Watch:
    """Tells the probe's actor to watch ``ref`` (sent by :meth:`Probe.watch`, never recorded)."""

    ref: ActorRef


@attrs.frozen
class _Forward:
    """Tells the probe's actor to tell ``message`` to ``target`` as itself (sent by :meth:`Probe.reply`)."""

    target: ActorRef
    message: object


@attrs.frozen
class _Sync:
    """Asked by :meth:`Probe.expect_no_message`: answered once the probe has taken what was queued before it."""


class _Inbox:
    """What the probe's actor has received: all of it, and what the test has not taken yet."""

    __slots__ = ("arrived", "messages", "pending")

    def __init__(self) -> None:
        self.messages: list[object] = []
        self.pending: deque[tuple[object, ActorRef | None]] = deque()
        self.arrived = trio.lowlevel.ParkingLot()

    def record(self, message: object, sender: ActorRef | None) -> None:
        self.messages.append(message)
        self.pending.append((message, sender))
        self.arrived.unpark_all()


class _ProbeActor(Actor):
    """The actor behind a :class:`Probe`: records every message, holding back the answer to asks."""

    def __init__(self, inbox: _Inbox) -> None:
        self._inbox = inbox

    async def receive(self, message: Any) -> None:
        if isinstance(message, _Watch):
            self.watch(message.ref)
            return
        if isinstance(message, _Forward):
            message.target.tell(message.message)
            return
        if isinstance(message, _Sync):
            return
        sender = self.sender
        if isinstance(sender, ReplyRef):
            sender = self.defer_reply()
        self._inbox.record(message, sender)


def _describe(expected: object) -> str:
    if isinstance(expected, type):
        return f"an instance of {expected.__qualname__}"
    if callable(expected):
        return f"a message satisfying {getattr(expected, '__qualname__', expected)!r}"
    return repr(expected)


class Probe:
    """An actor for tests that records the messages it receives, for a test to check one by one.

    Make one with ``probe = await Probe.spawn(system)``, hand :attr:`ref` to the actors under test, then check
    what arrived, in arrival order, with :meth:`expect`, :meth:`expect_no_message` and
    :meth:`expect_terminated`. An ask sent to the probe is not answered until the test calls :meth:`reply`
    (after the :meth:`expect` that took the asked message), so a test can play the part of an actor that
    answers. Every message received stays in :attr:`messages`.

    The waiting methods wait on trio's clock and have no timeout of their own: bound them with
    ``trio.fail_after``. Cancelling one consumes no message.
    """

    def __init__(self, system: ActorSystem, ref: ActorRef, inbox: _Inbox) -> None:
        """Wrap a spawned probe actor; tests use :meth:`spawn` instead."""
        self._system = system
        self._ref = ref
        self._inbox = inbox
        self._sender: ActorRef | None = None
        self._watched: set[ActorRef] = set()

    @classmethod
    async def spawn(cls, system: ActorSystem, *, name: str | None = None) -> Probe:
        """Start a probe actor at the top level of ``system`` (under ``name`` if given) and return the probe."""
        inbox = _Inbox()
        ref = await system.spawn(_ProbeActor, inbox, name=name)
        return cls(system, ref, inbox)

    @classmethod
    async def dead_letters(cls, system: ActorSystem, *, name: str | None = None) -> Probe:
        """Start a probe subscribed to :class:`~actors.DeadLetter` on ``system.events``.

        Every message that could not be delivered from then on arrives at the probe as a ``DeadLetter``.
        """
        probe = await cls.spawn(system, name=name)
        system.events.subscribe(probe.ref, DeadLetter)
        return probe

    # -- what it has received --------------------------------------------------------------------------------

    @property
    def ref(self) -> ActorRef:
        """The probe actor's ref: give it to the actors under test."""
        return self._ref

    @property
    def system(self) -> ActorSystem:
        """The system the probe runs in."""
        return self._system

    @property
    def messages(self) -> list[object]:
        """Every message received so far, in arrival order, expected or not (a copy)."""
        return list(self._inbox.messages)

    @property
    def pending(self) -> list[object]:
        """The messages received but not yet taken by an ``expect`` (a copy), oldest first."""
        return [message for message, _ in self._inbox.pending]

    @property
    def sender(self) -> ActorRef | None:
        """The sender of the last message an ``expect`` returned: an actor's ref, a reply ref for an ask, or ``None``.

        ``None`` also before the first ``expect`` and for a tell from outside any actor.
        """
        return self._sender

    # -- expectations ----------------------------------------------------------------------------------------

    async def _next(self) -> object:
        """Take the next message, waiting for it if none is there; always a checkpoint."""
        await trio.lowlevel.checkpoint()
        inbox = self._inbox
        while not inbox.pending:
            await inbox.arrived.park()
        message, self._sender = inbox.pending.popleft()
        return message

    async def expect(self, expected: object) -> Any:
        """Take the next message and check it; return it.

        ``expected`` is a type (the message must be an instance of it), a predicate (a callable other than a
        class, which must return a true value for the message), or a value (the message must equal it). To
        expect a message that is itself a function, pass ``lambda m: m is fn``.

        Waits for the next message if none has arrived yet: bound it with ``trio.fail_after``. Raises
        :class:`AssertionError` naming what was expected and what came instead; the message is consumed either
        way. Cancelling the wait consumes nothing.
        """
        message = await self._next()
        if isinstance(expected, type):
            matched = isinstance(message, expected)
        elif callable(expected):
            try:
                matched = bool(expected(message))
            except Exception as exc:
                raise AssertionError(
                    f"{self!r} expected {_describe(expected)}, but the predicate raised {exc!r} on {message!r}"
                ) from exc
        else:
            matched = message == expected
        if not matched:
            raise AssertionError(f"{self!r} expected {_describe(expected)}, got {message!r}")
        return message

    async def expect_no_message(self, seconds: float) -> None:
        """Sleep ``seconds`` on trio's clock and check that no message arrived (nor was waiting already).

        A message still queued in the probe's mailbox at the end counts as arrived. Raises
        :class:`AssertionError` naming the first message that came. Under ``MockClock`` with autojump the
        sleep takes no real time.
        """
        await trio.sleep(seconds)
        try:  # a message still queued in the probe's mailbox has arrived too
            await self._ref.ask(_Sync())
        except ActorStopped:
            pass  # nothing arrives at a stopped probe
        pending = self._inbox.pending
        if pending:
            more = f" and {len(pending) - 1} more" if len(pending) > 1 else ""
            raise AssertionError(f"{self!r} expected no message for {seconds}s, got {pending[0][0]!r}{more}")

    async def watch(self, ref: ActorRef) -> None:
        """Make the probe watch ``ref``: a :class:`~actors.Terminated` arrives once ``ref`` stops for good.

        Returns once the watch is in place (so it counts from a point in the probe's message stream).
        Watching an actor that already stopped makes the ``Terminated`` arrive at once.
        """
        if not isinstance(ref, ActorRef):
            raise TypeError(f"watch() takes an ActorRef, not {ref!r}")
        if ref in self._watched:
            await trio.lowlevel.checkpoint()
            return
        await self._ref.ask(_Watch(ref))
        self._watched.add(ref)

    async def expect_terminated(self, ref: ActorRef) -> Terminated:
        """Watch ``ref`` (if the probe does not already) and expect the next message to be its ``Terminated``.

        Returns the :class:`~actors.Terminated`, whose ``reason`` says why ``ref`` stopped. Messages that reached
        the probe before it are not skipped: take them with :meth:`expect` first.
        """
        await self.watch(ref)
        message = await self.expect(lambda m: isinstance(m, Terminated) and m.ref == ref)
        assert isinstance(message, Terminated)
        return message

    # -- answering -------------------------------------------------------------------------------------------

    def reply(self, value: object) -> None:
        """Answer the last message an ``expect`` returned: tell ``value`` to :attr:`sender`.

        For an ask, this answers it; ``probe.reply(Reply.error(exc))`` makes the ask raise ``exc``, as a
        ``return Reply.error(exc)`` from ``receive`` would. For a tell from an actor it tells that actor,
        with the probe as the sender. Raises :class:`RuntimeError` when there is nobody to answer.
        """
        sender = self._sender
        if sender is None:
            raise RuntimeError(
                f"{self!r} has nobody to reply to: the last message expected came from outside any actor"
                if self._inbox.messages else f"{self!r} has nobody to reply to: call expect() first")
        if isinstance(sender, ReplyRef):
            if isinstance(value, Reply):
                sender.fail(value.exception)
            else:
                sender.tell(value)
            return
        # The probe's actor tells it, so that the recipient sees the probe as its sender.
        self._ref.tell(_Forward(sender, value))

    def __repr__(self) -> str:
        inbox = self._inbox
        return f"<Probe {self._ref.path!r} received={len(inbox.messages)} pending={len(inbox.pending)}>"


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """A ``MockClock(autojump_threshold=0)`` for pytest-trio: request it and the test runs on mock time.

    Whenever every task is blocked, the clock jumps to the next deadline, so sleeps, timers, ``fail_after``
    and ``request(timeout=...)`` take no real time and happen in a deterministic order.
    """
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def actor_system() -> AsyncIterator[ActorSystem]:
    """A running :class:`~actors.ActorSystem` with default options, shut down gracefully after the test.

    It runs in the test's own trio run (pytest-trio), so it works with ``autojump_clock``. A failure escalated
    past the top of the tree surfaces as :class:`~actors.ActorFailed` when the fixture is torn down. For other
    options, write a fixture of the same shape: ``async with ActorSystem(...) as system: yield system``.
    """
    async with ActorSystem(name="test") as system:
        yield system
