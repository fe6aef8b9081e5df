"""Forwarding, refusals of told messages, and asked PoisonPills."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorSystem, DeadLetter, Mailbox, MailboxFull, PoisonPill, Reply
from actors.testing import Probe

pytestmark = pytest.mark.deadline(60)  # a forward that loses its sender fails here instead of hanging


class Doubler(Actor):
    async def receive(self, message: Any) -> Any:
        if message == "who":
            return self.sender
        return message * 2


class Front(Actor):
    """Forwards everything to ``back``; its own return value must not answer a forwarded ask."""

    def __init__(self, back: Any) -> None:
        self.back = back

    async def receive(self, message: Any) -> Any:
        self.forward(self.back, message)
        return "the front's return value"


async def test_forward_hands_the_ask_to_the_target(actor_system: ActorSystem) -> None:
    back = await actor_system.spawn(Doubler)
    front = await actor_system.spawn(Front, back)
    assert await front.ask(21) == 42
    assert actor_system.statistics().dead_letters == 0


async def test_forward_keeps_the_original_sender_of_a_tell(actor_system: ActorSystem) -> None:
    probe = await Probe.spawn(actor_system)

    class Echo(Actor):
        async def receive(self, message: Any) -> Any:
            self.sender.tell(("echo", message))  # type: ignore[union-attr]

    back = await actor_system.spawn(Echo)
    front = await actor_system.spawn(Front, back)

    class Relay(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "go":
                front.tell(5)
            else:
                probe.ref.tell(message)

    relay = await actor_system.spawn(Relay)
    relay.tell("go")
    assert await probe.expect(("echo", 5)) == ("echo", 5)


async def test_forward_to_a_full_fail_mailbox_leaves_the_ask_with_the_forwarder(actor_system: ActorSystem) -> None:
    gate = trio.Event()

    class Slow(Actor):
        async def receive(self, message: Any) -> Any:
            await gate.wait()
            return message

    class Guarded(Actor):
        def __init__(self, back: Any) -> None:
            self.back = back

        async def receive(self, message: Any) -> Any:
            try:
                self.forward(self.back, message)
            except MailboxFull as exc:
                return Reply.error(exc)
            return None

    slow = await actor_system.spawn(Slow, mailbox=Mailbox(capacity=1))
    guarded = await actor_system.spawn(Guarded, slow)
    slow.tell("busy")
    await trio.testing.wait_all_tasks_blocked()  # "busy" is being handled, so it does not count
    slow.tell("queued")  # fills the mailbox
    try:
        with pytest.raises(MailboxFull):
            await guarded.ask("one too many")
        assert not guarded.is_stopped
    finally:
        gate.set()


async def test_reply_error_for_a_told_message_is_a_dead_letter(actor_system: ActorSystem) -> None:
    class Picky(Actor):
        async def receive(self, message: Any) -> Any:
            return Reply.error(ValueError(f"cannot take {message!r}"))

    dead = await Probe.dead_letters(actor_system)
    picky = await actor_system.spawn(Picky, name="picky")
    picky.tell("junk")
    letter = await dead.expect(DeadLetter)
    assert letter.message == "junk"
    assert letter.recipient is picky
    assert "cannot take 'junk'" in letter.reason
    with pytest.raises(ValueError, match="cannot take 'asked'"):
        await picky.ask("asked")
    assert not picky.is_stopped


async def test_an_asked_poison_pill_is_answered_and_stops_the_actor(actor_system: ActorSystem) -> None:
    doubler = await actor_system.spawn(Doubler)
    doubler.tell(1)
    with trio.fail_after(5):
        assert await doubler.ask(PoisonPill()) is None
    await trio.testing.wait_all_tasks_blocked()
    assert doubler.is_stopped


async def test_a_stopping_parent_gets_no_dead_letter_for_its_watched_children(actor_system: ActorSystem) -> None:
    class Parent(Actor):
        async def on_start(self) -> None:
            for _ in range(3):
                self.watch(await self.spawn(Doubler))

        async def receive(self, message: Any) -> Any:
            return None

    parent = await actor_system.spawn(Parent)
    await actor_system.stop(parent)
    assert actor_system.statistics().dead_letters == 0


async def test_an_actor_asking_itself_is_told_at_once_instead_of_hanging(actor_system: ActorSystem) -> None:
    class Narcissus(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "reflect":
                return await self.ref.ask("mirror")
            return message

    narcissus = await actor_system.spawn(Narcissus)
    with pytest.raises(Exception, match="asked itself 'mirror'") as info, trio.fail_after(5):
        await narcissus.ask("reflect")
    assert isinstance(info.value.__cause__, RuntimeError)
