"""Odd values as header values and binding arguments: the exchange refuses them, it never fails.

Contract: a value the exchange cannot compare (a list or dict that contains itself, an object whose
``__hash__`` raises, a mapping whose ``items()`` raises, a value nested deeper than the recursion limit) makes
the ask raise :class:`ValueError` naming it; the exchange keeps running with its bindings and figures as they
were. NaN: every float NaN is one value, so a NaN header matches a NaN binding.
"""

from __future__ import annotations

import decimal
import math
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from actors import ActorRef, ActorSystem, Bind, Exchange, ExchangeStatistics, GetStatistics, Publish, Queue, Unbind

pytestmark = pytest.mark.deadline(60)


class BadHash:
    """Hashing raises something other than TypeError."""

    def __hash__(self) -> int:
        raise RuntimeError("no hash for you")

    def __eq__(self, other: object) -> bool:
        return other is self


class BadEq:
    """Hashes fine; comparing raises."""

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparison for you")


class BadItems(Mapping[str, Any]):
    """A mapping whose every read raises."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("unreadable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("unreadable")

    def __len__(self) -> int:
        return 1

    def items(self) -> Any:
        raise RuntimeError("unreadable")


class BadRepr:
    """Even its repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __hash__(self) -> int:
        raise ValueError("no hash either")


def self_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def self_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["me"] = value
    return value


def deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


TOO_DEEP = sys.getrecursionlimit() + 100


async def headers_exchange(system: ActorSystem) -> tuple[ActorRef, ActorRef]:
    exchange = await system.spawn(Exchange, "headers", name="h")
    queue = await system.spawn(Queue, name="q")
    await exchange.ask(Bind(queue, arguments={"x-match": "any", "k": "v", "n": 1}))
    return exchange, queue


async def still_works(exchange: ActorRef, before: ExchangeStatistics) -> None:
    """The exchange is running, its figures as they were, and it still routes."""
    assert not exchange.is_stopped
    assert await exchange.ask(GetStatistics()) == before
    assert await exchange.ask(Publish("", "ok", {"k": "v"})) == 1


@pytest.mark.parametrize(("name", "make"), [
    ("self-referential list", self_list),
    ("self-referential dict", self_dict),
    ("object whose __hash__ raises", BadHash),
    ("mapping whose items() raises", BadItems),
    ("value nested deeper than the recursion limit", lambda: deep(TOO_DEEP)),
    ("object whose repr and hash raise", BadRepr),
])
async def test_an_odd_binding_argument_is_refused(autojump_clock: MockClock, actor_system: ActorSystem,
                                                  name: str, make: Any) -> None:
    exchange, queue = await headers_exchange(actor_system)
    before = await exchange.ask(GetStatistics())
    with pytest.raises(ValueError, match=r"binding argument"):
        await exchange.ask(Bind(queue, arguments={"k": make()}))
    with pytest.raises(ValueError, match=r"binding argument"):
        await exchange.ask(Unbind(queue, arguments={"k": make()}))
    await still_works(exchange, before)


async def test_binding_arguments_that_cannot_be_read_are_refused(autojump_clock: MockClock,
                                                                 actor_system: ActorSystem) -> None:
    exchange, queue = await headers_exchange(actor_system)
    before = await exchange.ask(GetStatistics())
    with pytest.raises(ValueError, match=r"binding arguments <.*BadItems obj.*cannot be read"):
        await exchange.ask(Bind(queue, arguments=BadItems()))
    await still_works(exchange, before)


@pytest.mark.parametrize(("name", "make"), [
    ("self-referential list", self_list),
    ("self-referential dict", self_dict),
    ("object whose __hash__ raises", BadHash),
    ("mapping whose items() raises", BadItems),
    ("value nested deeper than the recursion limit", lambda: deep(TOO_DEEP)),
    ("object whose repr and hash raise", BadRepr),
])
async def test_an_odd_header_value_is_refused(autojump_clock: MockClock, actor_system: ActorSystem, name: str,
                                              make: Any) -> None:
    exchange, _ = await headers_exchange(actor_system)
    before = await exchange.ask(GetStatistics())
    with pytest.raises(ValueError, match=r"header 'k'"):
        await exchange.ask(Publish("", "body", {"k": make()}))
    exchange.tell(Publish("", "body", {"k": make()}))  # a tell: a dead letter, not a failure
    await still_works(exchange, before)


async def test_headers_that_cannot_be_read_are_refused_by_every_kind(autojump_clock: MockClock,
                                                                    actor_system: ActorSystem) -> None:
    for kind in ("direct", "fanout", "topic", "headers"):
        exchange = await actor_system.spawn(Exchange, kind)
        before = await exchange.ask(GetStatistics())
        with pytest.raises(ValueError, match=r"headers <.*BadItems object.*cannot be read"):
            await exchange.ask(Publish("k", "body", BadItems()))
        assert await exchange.ask(GetStatistics()) == before


async def test_a_comparison_that_raises_is_not_equal(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "headers")
    queue = await actor_system.spawn(Queue)
    bound, other = BadEq(), BadEq()
    assert await exchange.ask(Bind(queue, arguments={"k": bound})) is True
    assert await exchange.ask(Bind(queue, arguments={"k": other})) is True  # equal hash, not equal
    assert await exchange.ask(Publish("", "same object", {"k": bound})) == 1
    assert await exchange.ask(Publish("", "another one", {"k": BadEq()})) == 0
    assert (await exchange.ask(GetStatistics())).bindings == 2


async def test_a_nan_header_matches_a_nan_binding(autojump_clock: MockClock, actor_system: ActorSystem) -> None:
    exchange = await actor_system.spawn(Exchange, "headers")
    queue = await actor_system.spawn(Queue)
    await exchange.ask(Bind(queue, arguments={"x": float("nan"), "d": decimal.Decimal("NaN")}))
    assert await exchange.ask(Publish("", "b", {"x": float("nan"), "d": decimal.Decimal("NaN")})) == 1
    assert await exchange.ask(Publish("", "b", {"x": math.inf, "d": decimal.Decimal("NaN")})) == 0
    # Binding NaN twice is one binding: NaN is one value.
    assert await exchange.ask(Bind(queue, arguments={"x": float("nan"), "d": decimal.Decimal("NaN")})) is False


# --- Fuzz ----------------------------------------------------------------------------------------------------

ODD = st.sampled_from([self_list, self_dict, BadHash, BadEq, BadItems, BadRepr, lambda: deep(TOO_DEEP),
                       lambda: deep(150), lambda: {1, 2}, lambda: float("nan"), object])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                    st.binary(max_size=5), st.decimals(allow_nan=True), ODD.map(lambda make: make()))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                      max_leaves=8)
NAMES = st.sampled_from(["k", "n", "x-k", "CC", "x-match"])


async def _fuzz_one(kind: str, arguments: dict[str, Any], headers: dict[str, Any]) -> None:
    async with ActorSystem(name="fuzz") as system:
        exchange = await system.spawn(Exchange, kind, name="e")
        queue = await system.spawn(Queue, name="q")
        await exchange.ask(Bind(queue, "k", {"k": 1}))
        before = await exchange.ask(GetStatistics())
        try:
            await exchange.ask(Bind(queue, "k", arguments))
        except ValueError:
            assert await exchange.ask(GetStatistics()) == before
        before = await exchange.ask(GetStatistics())
        try:
            await exchange.ask(Publish("k", "body", headers))
        except ValueError:
            assert await exchange.ask(GetStatistics()) == before
        exchange.tell(Publish("k", "told", headers))
        await trio.testing.wait_all_tasks_blocked()
        assert not exchange.is_stopped
        assert await exchange.ask(Publish("k", "plain", {"k": 1})) == 1


@settings(deadline=None, max_examples=50)
@given(kind=st.sampled_from(["headers", "headers", "topic", "direct"]),
       arguments=st.dictionaries(NAMES, VALUES, max_size=3), headers=st.dictionaries(NAMES, VALUES, max_size=3))
def test_fuzz_odd_values_are_refused_never_fatal(kind: str, arguments: dict[str, Any],
                                                 headers: dict[str, Any]) -> None:
    """Whatever the values, the exchange answers (or refuses with ValueError) and keeps running."""
    trio.run(_fuzz_one, kind, arguments, headers, clock=MockClock(autojump_threshold=0))
