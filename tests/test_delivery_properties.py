"""Delivery guarantees under generated workloads: per-sender order, nothing lost, every ask answered.

Hypothesis draws a small network of actors and a script of what each one does with the messages it gets: tell
on, ask on, block for a while on trio's clock, or fail now and then (and be restarted). Whatever the script, at
the end:

- every message an actor received from one sender came in the order that sender sent them (per-pair FIFO);
- every told message was handled, or dropped as the failing message of a restart, or is a dead letter;
- every ask ended: answered, or raised ``ActorFailed``/``ActorStopped``; none hangs (asks are kept acyclic:
  two actors asking each other wait for ever in any actor system);
- the system closes with no task left behind.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import trio
import trio.testing
from helpers import all_tasks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import Actor, ActorFailed, ActorRef, ActorStopped, ActorSystem, DeadLetter, OneForOne

STEPS = st.lists(
    st.tuples(
        st.sampled_from(["tell", "ask", "block", "fail", "none"]),
        st.integers(min_value=0, max_value=4),  # which peer
        st.integers(min_value=1, max_value=3),  # how long to block, in virtual ms
    ),
    min_size=1,
    max_size=6,
)


class Ledger:
    def __init__(self) -> None:
        self.received: dict[tuple[str, str], list[int]] = defaultdict(list)
        """(sender, receiver) -> the sequence numbers received, in arrival order."""
        self.sent: Counter[str] = Counter()
        self.handled: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.asks_started = 0
        self.asks_ended = 0
        self.next_seq: Counter[tuple[str, str]] = Counter()


class Node(Actor):
    """Follows its script for every message: the script step is chosen by the message's hop count."""

    def __init__(self, name: str, script: list[tuple[str, int, int]], ledger: Ledger, peers: list[Any]) -> None:
        self.name = name
        self.script = script
        self.ledger = ledger
        self.peers = peers

    def _send(self, peer: ActorRef, hops: int) -> tuple[str, int, int]:
        key = (self.name, peer.name)
        seq = self.ledger.next_seq[key]
        self.ledger.next_seq[key] += 1
        self.ledger.sent[peer.name] += 1
        return (self.name, seq, hops)

    async def receive(self, message: Any) -> Any:
        sender, seq, hops = message
        self.ledger.received[(sender, self.name)].append(seq)
        action, peer_index, block = self.script[hops % len(self.script)]
        peer = self.peers[peer_index % len(self.peers)]
        if hops < 6:
            if action == "tell":
                peer.tell(self._send(peer, hops + 1))
            elif action == "ask" and self.peers.index(peer) > self.peers.index(self.ref):
                # asks go only to later peers: two actors asking each other would wait for ever in any actor
                # system (neither can answer while it waits), so the generated networks keep asks acyclic
                self.ledger.asks_started += 1
                try:
                    with trio.fail_after(60):
                        await peer.ask(self._send(peer, hops + 1))
                except (ActorFailed, ActorStopped):
                    pass
                finally:
                    self.ledger.asks_ended += 1
            elif action == "block":
                await trio.sleep(block / 1000)
            elif action == "fail" and seq % 3 == 0:
                self.ledger.failed[self.name] += 1
                raise RuntimeError(f"{self.name} fails on {message!r}")
        self.ledger.handled[self.name] += 1
        return hops


class DeadLetters(Actor):
    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    async def receive(self, message: Any) -> None:
        if isinstance(message, DeadLetter) and message.recipient is not None:
            self.counts[message.recipient.name] += 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts=st.lists(STEPS, min_size=2, max_size=5), bursts=st.lists(st.integers(0, 4), min_size=1, max_size=12))
def test_per_sender_order_and_nothing_lost(scripts: list[list[tuple[str, int, int]]], bursts: list[int]) -> None:
    ledger = Ledger()
    dead: Counter[str] = Counter()

    async def main() -> None:
        before = all_tasks()
        async with ActorSystem(supervision=OneForOne(max_restarts=10_000, within=1.0)) as system:
            system.events.subscribe(await system.spawn(DeadLetters, dead, name="dead"), DeadLetter)
            peers: list[Any] = []
            for index, script in enumerate(scripts):
                peers.append(await system.spawn(Node, f"n{index}", script, ledger, peers, name=f"n{index}"))
            for target in bursts:  # the outside world tells each burst target a first message
                peer = peers[target % len(peers)]
                key = ("outside", peer.name)
                ledger.sent[peer.name] += 1
                peer.tell(("outside", ledger.next_seq[key], 0))
                ledger.next_seq[key] += 1
            with trio.fail_after(600):
                await trio.testing.wait_all_tasks_blocked()
                while True:  # let blocked handlers (virtual sleeps) finish, until nothing is queued
                    await trio.sleep(1.0)
                    stats = system.statistics().actors
                    if all(s.mailbox_length == 0 for s in stats.values()):
                        await trio.testing.wait_all_tasks_blocked()
                        if all(s.mailbox_length == 0 for s in system.statistics().actors.values()):
                            break
        assert all_tasks() == before  # no runner, timer or figures task outlives the system

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    for (sender, receiver), seqs in ledger.received.items():
        assert seqs == sorted(seqs), f"{sender} -> {receiver} arrived out of order: {seqs}"
        assert len(seqs) == len(set(seqs)), f"{sender} -> {receiver} delivered twice: {seqs}"
    for name, sent in ledger.sent.items():
        # every message sent to a node was handled, or was the failing message of a restart, or is a dead letter
        assert ledger.handled[name] + ledger.failed[name] + dead[name] == sent, (
            name, sent, ledger.handled[name], ledger.failed[name], dead[name])
    assert ledger.asks_started == ledger.asks_ended
