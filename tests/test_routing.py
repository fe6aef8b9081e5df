"""Routing tables (``runtime._routing``): AMQP 0-9-1 / RabbitMQ routing rules, kind by kind.

The topic rows follow the edge cases verified against a real RabbitMQ (design/reference/amqp.md section 4.3);
a property test compares the trie with the textbook memoised matcher of section 4.2.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Callable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime._routing import (
    EXCHANGE_KINDS,
    MAX_KEY_BYTES,
    MAX_VALUE_DEPTH,
    X_MATCH_MODES,
    DirectTable,
    FanoutTable,
    HeadersTable,
    RoutingStatistics,
    RoutingTable,
    TopicTable,
    make_table,
    split_words,
    validate_key,
)

ALL_TABLES: list[Callable[[], RoutingTable[str]]] = [DirectTable, FanoutTable, TopicTable, HeadersTable]
LONGEST_KEY = ".".join(["a"] * 128)  # 255 bytes: the longest valid key.


def topic_matches(pattern: str, key: str) -> bool:
    table: TopicTable[str] = TopicTable()
    table.bind(pattern, None, "q")
    return table.match(key) == {"q"}


# --- keys and words -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", ()),
        ("a", ("a",)),
        ("a.b", ("a", "b")),
        ("a..b", ("a", "", "b")),
        (".a", ("", "a")),
        ("a.", ("a", "")),
        (".", ("", "")),
        ("..", ("", "", "")),
        ("*.#", ("*", "#")),
    ],
)
def test_split_words_keeps_empty_words_but_the_empty_key_has_none(key: str, words: tuple[str, ...]) -> None:
    assert split_words(key) == words


def test_validate_key_accepts_up_to_255_utf8_bytes() -> None:
    assert MAX_KEY_BYTES == 255
    assert validate_key(LONGEST_KEY) == LONGEST_KEY
    assert validate_key("") == ""
    two_byte = "é" * 127 + "a"  # 255 bytes in 128 characters
    assert validate_key(two_byte) == two_byte


@pytest.mark.parametrize(
    ("value", "size"),
    [("a" * 256, 256), ("a" * 300, 300), ("é" * 128, 256), ("€" * 86, 258)],
)
def test_validate_key_rejects_too_long_keys_naming_value_and_limit(value: str, size: int) -> None:
    expected = rf"^routing key '{value[:5]}.*…' is {size} bytes in UTF-8; the limit is 255$"
    with pytest.raises(ValueError, match=expected):
        validate_key(value)


def test_validate_key_names_what_the_key_is() -> None:
    with pytest.raises(ValueError, match=r"^binding key 'aaa.*' is 256 bytes"):
        validate_key("a" * 256, what="binding key")


@pytest.mark.parametrize("value", [None, 5, b"a.b", ["a"], 1.5])
def test_validate_key_rejects_non_str_naming_value_and_type(value: object) -> None:
    with pytest.raises(ValueError, match="must be a str") as info:
        validate_key(value)
    assert repr(value) in str(info.value)
    assert type(value).__name__ in str(info.value)


def test_validate_key_rejects_a_lone_surrogate() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        validate_key("a\ud800b")


# --- topic: the verified edge cases -------------------------------------------------------------------------

TOPIC_ROWS = [
    # (binding, routing key, matches)
    ("#", "", True),
    ("#.#", "", True),
    ("#.#.#", "", True),
    ("*", "", False),
    ("", "", True),
    ("", ".", False),
    ("*.*", ".", True),
    ("*", ".", False),
    ("a.#", "a", True),
    ("a.#", "a.", True),
    ("a.#", "ab", False),
    ("#.a", "a", True),
    ("#.a.#", "a", True),
    ("*.#", "", False),
    ("#.*", "", False),
    ("#.*.#", "x", True),
    ("a.*", "a", False),
    ("a.*", "a.", True),
    ("a.*.b", "a..b", True),
    ("a.#.b", "a..b", True),
    ("a.#.b", "a.b", True),
    ("a.b", "a..b", False),
    (".a", ".a", True),
    ("*.a", ".a", True),
    ("#.a", ".a", True),
    ("a", ".a", False),
    ("a", "a.", False),
    ("A.b", "a.b", False),
    ("a*", "ab", False),
    ("#a", "ab", False),
    ("##", "ab", False),
    ("a*", "a*", True),
    ("##", "##", True),
    ("simply#carrots", "simply#carrots", True),
    ("simply#carrots", "simply.carrots", False),
    ("*.*.*", "a..", True),
    ("#", LONGEST_KEY, True),
    ("a.#", LONGEST_KEY, True),
    ("*.#", LONGEST_KEY, True),
    # Wildcards in the routing key are literal.
    ("*", "*", True),
    ("#", "*", True),
    ("a", "*", False),
    ("a", "#", False),
    ("*", "#.#", False),
    ("a.b", "a.*", False),
]


@pytest.mark.parametrize(("binding", "key", "expected"), TOPIC_ROWS)
def test_topic_edge_cases(binding: str, key: str, expected: bool) -> None:
    assert topic_matches(binding, key) is expected


def test_topic_edge_cases_with_every_binding_in_one_table() -> None:
    table: TopicTable[str] = TopicTable()
    for binding, _, _ in TOPIC_ROWS:
        table.bind(binding, None, binding)
    for binding, key, expected in TOPIC_ROWS:
        assert (binding in table.match(key)) is expected, (binding, key)


def test_topic_overlap_example() -> None:
    table: TopicTable[str] = TopicTable()
    for pattern in ["a.b", "a.b.#", "a.b.c", "a.b.*", "a.b.d", "a.*.*", "a.*.#", "*.b.c"]:
        assert table.bind(pattern, None, pattern)
    assert table.match("a.b.c") == {"a.b.#", "a.b.c", "a.b.*", "a.*.*", "a.*.#", "*.b.c"}
    assert table.match("a.b") == {"a.b", "a.b.#", "a.*.#"}


def test_topic_one_copy_per_destination_however_many_patterns_match() -> None:
    table: TopicTable[str] = TopicTable()
    for pattern in ["#", "a.#", "a.b", "*.b", "#.b"]:
        table.bind(pattern, None, "q")
    table.bind("a.b", None, "other")
    assert table.match("a.b") == {"q", "other"}
    assert table.match("z") == {"q"}


def test_topic_binding_changes_take_effect_for_the_next_match() -> None:
    table: TopicTable[str] = TopicTable()
    assert table.match("a.b") == set()
    table.bind("a.*", None, "q")
    assert table.match("a.b") == {"q"}
    table.unbind("a.*", None, "q")
    assert table.match("a.b") == set()


def test_topic_unbind_prunes_empty_trie_nodes() -> None:
    table: TopicTable[str] = TopicTable()
    assert table.statistics().trie_nodes == 1  # the root
    table.bind("a.b.c", None, "q1")
    table.bind("a.b.d", None, "q2")
    table.bind("a.#.*", None, "q3")
    assert table.statistics().trie_nodes == 7  # root, a, b, c, d, #, *
    table.unbind("a.b.c", None, "q1")
    assert table.statistics().trie_nodes == 6
    assert table.match("a.b.d") == {"q2", "q3"}
    table.remove_destination("q3")
    assert table.statistics().trie_nodes == 4
    table.unbind("a.b.d", None, "q2")
    assert table.statistics().trie_nodes == 1
    assert len(table) == 0


def test_topic_binding_on_an_inner_node_survives_pruning_below_it() -> None:
    table: TopicTable[str] = TopicTable()
    table.bind("a", None, "q1")
    table.bind("a.b", None, "q2")
    table.unbind("a.b", None, "q2")
    assert table.statistics().trie_nodes == 2
    assert table.match("a") == {"q1"}
    table.bind("", None, "root")
    table.unbind("a", None, "q1")
    assert table.statistics().trie_nodes == 1
    assert table.match("") == {"root"}


# --- topic: the trie agrees with the reference matcher ------------------------------------------------------


def reference_topic_match(pattern: str, key: str) -> bool:
    """amqp.md 4.2: the classic two-sequence match, memoised, on words as in 4.1."""
    p = pattern.split(".") if pattern else []
    w = key.split(".") if key else []

    @functools.cache
    def m(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(w)
        if p[i] == "#":
            return m(i + 1, j) or (j < len(w) and m(i, j + 1))
        return j < len(w) and (p[i] == "*" or p[i] == w[j]) and m(i + 1, j + 1)

    return m(0, 0)


patterns = st.lists(st.sampled_from(["", "*", "#", "a", "b", "a*"]), max_size=6).map(".".join)
keys = st.lists(st.sampled_from(["", "a", "b", "c", "*", "#", "a*"]), max_size=7).map(".".join)


@settings(max_examples=400, deadline=None)
@given(
    bindings=st.lists(st.tuples(patterns, st.sampled_from(["q0", "q1", "q2", "q3"])), min_size=1, max_size=8),
    probes=st.lists(keys, min_size=1, max_size=6),
    unbind_mask=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_topic_table_agrees_with_reference_matcher(
    bindings: list[tuple[str, str]], probes: list[str], unbind_mask: list[bool]
) -> None:
    table: TopicTable[str] = TopicTable()
    for pattern, destination in bindings:
        table.bind(pattern, None, destination)

    def check(live: set[tuple[str, str]]) -> None:
        for key in probes:
            expected = {dest for pattern, dest in live if reference_topic_match(pattern, key)}
            assert table.match(key) == expected, key

    live = set(bindings)
    assert len(table) == len(live)
    check(live)
    # Unbinding some of them: the rest still route exactly as before.
    for (pattern, destination), drop in zip(bindings, unbind_mask, strict=False):
        if drop and (pattern, destination) in live:
            assert table.unbind(pattern, None, destination)
            live.discard((pattern, destination))
    assert len(table) == len(live)
    check(live)


# --- topic: cost is bounded ---------------------------------------------------------------------------------

LONG_KEY = ".".join(["a"] * 31)


@pytest.mark.parametrize(
    "pattern",
    [
        "#.#",
        "#.#.#.#",
        "#.#.#.#.#.#.#.#",
        "#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.b",  # 8 '#' that can never match: worst case for backtracking
        "a.#.#.*.#.#.*.#.#.#.#.a",
    ],
)
def test_topic_match_expands_each_node_and_index_at_most_once(pattern: str) -> None:
    table: TopicTable[str] = TopicTable()
    table.bind(pattern, None, "q")
    words = len(split_words(LONG_KEY))
    nodes = table.statistics().trie_nodes
    steps = table.match_steps(LONG_KEY)
    # Without the memo the walk would revisit states once per path through the '#'s: C(31 + k, k) of them.
    assert steps <= nodes * (words + 1)
    assert table.match(LONG_KEY) == ({"q"} if reference_topic_match(pattern, LONG_KEY) else set())


def test_topic_match_cost_does_not_grow_with_unrelated_bindings() -> None:
    def steps_with(services: int) -> int:
        table: TopicTable[int] = TopicTable()
        for i in range(services):
            table.bind(f"svc{i}.*.created", None, i)
            table.bind(f"svc{i}.eu.#", None, i)
            table.bind(f"*.svc{i}.#", None, i)
        assert table.match("svc7.eu.created") == {7}
        return table.match_steps("svc7.eu.created")

    assert steps_with(10) == steps_with(2000)


# --- direct and fanout --------------------------------------------------------------------------------------


def test_direct_matches_byte_exact_keys() -> None:
    table: DirectTable[str] = DirectTable()
    table.bind("orders.new", None, "q1")
    table.bind("orders.new", None, "q2")
    table.bind("", None, "empty")
    table.bind("a.*", None, "literal")
    table.bind("caf\u00e9", None, "nfc")
    assert table.match("orders.new") == {"q1", "q2"}
    assert table.match("Orders.new") == set()
    assert table.match("orders.new ") == set()
    assert table.match("orders") == set()
    assert table.match("") == {"empty"}
    assert table.match("a.b") == set()
    assert table.match("a.*") == {"literal"}
    assert table.match("cafe\u0301") == set()  # NFD is not NFC
    assert table.match("caf\u00e9") == {"nfc"}


def test_fanout_reaches_every_destination_whatever_the_key() -> None:
    table: FanoutTable[str] = FanoutTable()
    assert table.match("x") == set()
    table.bind("", None, "q1")
    table.bind("ignored", None, "q2")
    table.bind("other", None, "q2")
    assert table.match("x") == {"q1", "q2"}
    assert table.match("", {"h": 1}) == {"q1", "q2"}
    assert len(table) == 3


# --- behaviour shared by every kind -------------------------------------------------------------------------


def bind_matching(table: RoutingTable[str], destination: str, key: str = "k") -> None:
    """A binding that ``table.match("k", {"h": 1})`` reaches, whatever the kind."""
    assert table.bind(key if table.kind != "topic" else "#", {"h": 1}, destination)


@pytest.mark.parametrize("factory", ALL_TABLES)
def test_bind_is_idempotent_and_unbind_of_a_missing_binding_is_false(
    factory: Callable[[], RoutingTable[str]],
) -> None:
    table = factory()
    assert table.bind("k", None, "q")
    assert not table.bind("k", None, "q")
    assert not table.bind("k", {}, "q")  # None and {} are the same empty table
    assert len(table) == 1
    assert table.unbind("k", {}, "q")
    assert not table.unbind("k", None, "q")
    assert not table.unbind("never", None, "q")
    assert not table.unbind("k", None, "stranger")
    assert len(table) == 0
    assert table.destinations() == set()


@pytest.mark.parametrize("factory", ALL_TABLES)
def test_binding_identity_includes_arguments_and_key(factory: Callable[[], RoutingTable[str]]) -> None:
    table = factory()
    table.bind("k", {"h": 1}, "q")
    assert table.bind("k", {"h": 1, "x-extra": "y"}, "q")  # other arguments: a second binding
    assert table.bind("k", {"h": True}, "q")  # True is not 1
    assert table.bind("k", {"h": 1.0}, "q")  # 1.0 is not 1
    assert not table.bind("k", {"h": 1}, "q")
    assert len(table) == 4
    assert table.match("k", {"h": 1}) == {"q"}  # still one copy
    assert table.unbind("k", {"h": 1, "x-extra": "y"}, "q")
    assert table.unbind("k", {"h": 1}, "q")
    assert len(table) == 2


@pytest.mark.parametrize("factory", ALL_TABLES)
def test_match_returns_a_fresh_set_with_one_entry_per_destination(
    factory: Callable[[], RoutingTable[str]],
) -> None:
    table = factory()
    bind_matching(table, "q", key="k")
    table.bind("k", {"h": 1, "x-again": 1}, "q")
    table.bind("k" if table.kind != "topic" else "k.#", {"h": 1}, "q")
    bind_matching(table, "r", key="k")
    result = table.match("k", {"h": 1})
    assert result == {"q", "r"}
    assert isinstance(result, set)
    result.clear()
    assert table.match("k", {"h": 1}) == {"q", "r"}
    table.destinations().clear()
    assert table.destinations() == {"q", "r"}


@pytest.mark.parametrize("factory", ALL_TABLES)
def test_remove_destination_drops_all_its_bindings(factory: Callable[[], RoutingTable[str]]) -> None:
    table = factory()
    table.bind("k", {"h": 1}, "q")
    table.bind("k", {"h": 1, "x-other": 2}, "q")
    table.bind("#", {"h": 1}, "q")
    table.bind("k", {"h": 1}, "r")
    table.bind("#", {"h": 1}, "r")
    assert len(table) == 5
    assert table.remove_destination("q") == 3
    assert table.remove_destination("q") == 0
    assert table.remove_destination("unknown") == 0
    assert len(table) == 2
    assert table.destinations() == {"r"}
    assert table.match("k", {"h": 1}) == {"r"}
    assert table.bind("k", {"h": 1}, "q")  # can be bound again afterwards
    assert table.match("k", {"h": 1}) == {"q", "r"}


@pytest.mark.parametrize("factory", ALL_TABLES)
def test_statistics_and_repr_show_kind_and_counts(factory: Callable[[], RoutingTable[str]]) -> None:
    table = factory()
    table.bind("a", None, "q")
    table.bind("b", None, "q")
    table.bind("a", None, "r")
    stats = table.statistics()
    assert (stats.kind, stats.bindings, stats.destinations) == (table.kind, 3, 2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.bindings = 0  # type: ignore[misc]
    assert f"kind={table.kind!r}" in repr(table)
    assert "bindings=3" in repr(table)
    assert "destinations=2" in repr(table)


def test_topic_statistics_count_trie_nodes() -> None:
    table: TopicTable[str] = TopicTable()
    table.bind("a.*.#", None, "q")
    assert table.statistics() == RoutingStatistics(kind="topic", bindings=1, destinations=1, trie_nodes=4)
    assert "nodes=4" in repr(table)


@pytest.mark.parametrize("kind", EXCHANGE_KINDS)
def test_make_table_builds_an_empty_table_of_that_kind(kind: str) -> None:
    table: RoutingTable[str] = make_table(kind)
    assert isinstance(table, RoutingTable)
    assert table.kind == kind
    assert len(table) == 0
    assert table.match("k") == set()


@pytest.mark.parametrize("kind", ["Topic", "x-delayed", "", "match"])
def test_make_table_rejects_unknown_kinds_naming_them(kind: str) -> None:
    with pytest.raises(ValueError, match="'direct', 'fanout', 'topic', 'headers'") as info:
        make_table(kind)
    assert repr(kind) in str(info.value)


# --- validation leaves the table unchanged ------------------------------------------------------------------


@pytest.mark.parametrize("factory", ALL_TABLES)
@pytest.mark.parametrize("bad_key", ["a" * 256, "é" * 128, 42, None])
def test_bad_keys_raise_value_error_and_change_nothing(
    factory: Callable[[], RoutingTable[str]], bad_key: object
) -> None:
    table = factory()
    table.bind("k", None, "q")
    before = (len(table), table.statistics(), table.destinations())
    with pytest.raises(ValueError, match=r"^binding key"):
        table.bind(bad_key, None, "r")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^binding key"):
        table.unbind(bad_key, None, "q")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^routing key"):
        table.match(bad_key)  # type: ignore[arg-type]
    assert (len(table), table.statistics(), table.destinations()) == before


@pytest.mark.parametrize("factory", ALL_TABLES)
def test_malformed_arguments_and_headers_raise_value_error(factory: Callable[[], RoutingTable[str]]) -> None:
    table = factory()
    with pytest.raises(ValueError, match=r"binding arguments \['h'\] are a list"):
        table.bind("k", ["h"], "q")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"value \{1\} of type set is unhashable"):
        table.bind("k", {"h": {1}}, "q")
    with pytest.raises(ValueError, match=r"headers 'h=1' are a str"):
        table.match("k", "h=1")  # type: ignore[arg-type]
    assert len(table) == 0


# --- headers ------------------------------------------------------------------------------------------------


def headers_match(arguments: dict[str, object], headers: dict[str, object] | None) -> bool:
    table: HeadersTable[str] = HeadersTable()
    table.bind("", arguments, "q")
    return table.match("", headers) == {"q"}


HEADERS_ROWS = [
    # (binding arguments, message headers, matches)
    # all (default) and any
    ({"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, True),
    ({"a": 1, "b": 2}, {"a": 1}, False),
    ({"x-match": "all", "a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ({"x-match": "any", "a": 1, "b": 2}, {"a": 1, "b": 3}, True),
    ({"x-match": "any", "a": 1, "b": 2}, {"a": 0, "c": 2}, False),
    # names are case-sensitive
    ({"a": 1}, {"A": 1}, False),
    # x- arguments are ignored by all/any...
    ({"x-match": "all", "a": 1, "x-foo": "bar"}, {"a": 1}, True),
    ({"x-match": "any", "x-foo": "bar"}, {"x-foo": "bar"}, False),
    # ...and compared by the -with-x modes, x-match itself excepted
    ({"x-match": "all-with-x", "a": 1, "x-foo": "bar"}, {"a": 1}, False),
    ({"x-match": "all-with-x", "a": 1, "x-foo": "bar"}, {"a": 1, "x-foo": "bar"}, True),
    ({"x-match": "any-with-x", "x-first-death-reason": "expired"}, {"x-first-death-reason": "expired"}, True),
    ({"x-match": "any-with-x", "x-first-death-reason": "expired"}, {"x-first-death-reason": "maxlen"}, False),
    ({"x-match": "all-with-x"}, {}, True),
    ({"x-match": "any-with-x"}, {"x-match": "any-with-x"}, False),
    # nothing to compare: all matches everything, any nothing
    ({}, {}, True),
    ({}, None, True),
    ({"x-match": "all", "x-foo": "bar"}, None, True),
    ({"x-match": "any", "x-foo": "bar"}, {"x-foo": "bar"}, False),
    ({"x-match": "any"}, {"a": 1}, False),
    # no headers behaves like an empty table
    ({"a": 1}, None, False),
    ({"x-match": "any", "a": None}, None, False),
    # None in the binding is a presence test
    ({"a": None}, {"a": None}, True),
    ({"a": None}, {"a": False}, True),
    ({"a": None}, {"a": ""}, True),
    ({"a": None}, {"a": 0}, True),
    ({"a": None}, {"b": 1}, False),
    ({"x-match": "any", "a": None, "b": 1}, {"a": "anything"}, True),
    # a void header never equals a concrete value
    ({"a": 0}, {"a": None}, False),
    ({"a": ""}, {"a": None}, False),
    # bool is never an int
    ({"a": True}, {"a": 1}, False),
    ({"a": 1}, {"a": True}, False),
    ({"a": False}, {"a": 0}, False),
    ({"a": 0}, {"a": False}, False),
    ({"a": True}, {"a": True}, True),
    # int is never a float (RabbitMQ >= 3.13)
    ({"a": 1}, {"a": 1.0}, False),
    ({"a": 1.0}, {"a": 1}, False),
    ({"a": 1.5}, {"a": 1.5}, True),
    ({"a": 2**40}, {"a": 2**40}, True),
    # no coercion between strings, numbers and bools
    ({"a": "1"}, {"a": 1}, False),
    ({"a": 1}, {"a": "1"}, False),
    ({"a": "true"}, {"a": True}, False),
    # str and bytes are both binaries: equal when the UTF-8 bytes are
    ({"a": "café"}, {"a": "café".encode()}, True),
    ({"a": b"abc"}, {"a": "abc"}, True),
    ({"a": b"abc"}, {"a": bytearray(b"abc")}, True),
    ({"a": "abc"}, {"a": b"abd"}, False),
    ({"a": "ABC"}, {"a": "abc"}, False),
    # arrays: element-wise, in order, strict
    ({"a": [1, "x", b"y"]}, {"a": [1, b"x", "y"]}, True),
    ({"a": [1, 2]}, {"a": (1, 2)}, True),
    ({"a": [1, 2]}, {"a": [2, 1]}, False),
    ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
    ({"a": [1]}, {"a": [True]}, False),
    ({"a": [1]}, {"a": [1.0]}, False),
    ({"a": [[1, "x"]]}, {"a": [[1, b"x"]]}, True),
    ({"a": []}, {"a": []}, True),
    ({"a": [1]}, {"a": 1}, False),
    # tables: structural, strict
    ({"a": {"k": 1, "l": "v"}}, {"a": {"l": b"v", "k": 1}}, True),
    ({"a": {"k": 1}}, {"a": {"k": True}}, False),
    ({"a": {"k": 1}}, {"a": {"k": 1, "extra": 2}}, False),
    ({"a": {"k": [1, {"n": None}]}}, {"a": {"k": [1, {"n": None}]}}, True),
    # decimals compare by digits and scale
    ({"a": decimal.Decimal("1.0")}, {"a": decimal.Decimal("1.0")}, True),
    ({"a": decimal.Decimal("1.0")}, {"a": decimal.Decimal("1")}, False),
    ({"a": decimal.Decimal("1")}, {"a": 1}, False),
    # an unhashable header value of another type equals nothing, and does not raise
    ({"a": 1}, {"a": {1}}, False),
    ({"a": None}, {"a": {1}}, True),
]


@pytest.mark.parametrize(("arguments", "headers", "expected"), HEADERS_ROWS)
def test_headers_rules(
    arguments: dict[str, object], headers: dict[str, object] | None, expected: bool
) -> None:
    assert headers_match(arguments, headers) is expected


def test_headers_ignore_the_routing_key_and_evaluate_each_binding() -> None:
    table: HeadersTable[str] = HeadersTable()
    table.bind("ignored", {"format": "pdf", "type": "report"}, "pdf-reports")
    table.bind("ignored", {"x-match": "any", "format": "pdf", "type": "log"}, "pdf-or-log")
    table.bind("", {"format": "pdf", "type": "report"}, "also-reports")
    table.bind("other", {"format": "pdf", "type": "report"}, "pdf-reports")  # second binding, same spec
    assert table.match("whatever", {"format": "pdf", "type": "report"}) == {
        "pdf-reports",
        "pdf-or-log",
        "also-reports",
    }
    assert table.match("", {"type": "log"}) == {"pdf-or-log"}
    assert table.match("", {"format": "zip"}) == set()
    assert table.unbind("ignored", {"format": "pdf", "type": "report"}, "pdf-reports")
    # The binding with key "other" remains.
    assert "pdf-reports" in table.match("", {"format": "pdf", "type": "report"})
    assert table.unbind("other", {"format": "pdf", "type": "report"}, "pdf-reports")
    assert "pdf-reports" not in table.match("", {"format": "pdf", "type": "report"})


@pytest.mark.parametrize("mode", X_MATCH_MODES)
def test_every_valid_x_match_mode_is_accepted(mode: str) -> None:
    table: HeadersTable[str] = HeadersTable()
    assert table.bind("", {"x-match": mode, "a": 1}, "q")
    assert table.match("", {"a": 1}) == {"q"}


@pytest.mark.parametrize(
    "mode", ["ALL", "Any", "", "all or any", "all-with-X", "none", 1, None, b"all", True]
)
def test_invalid_x_match_is_refused_at_bind_and_changes_nothing(mode: object) -> None:
    table: HeadersTable[str] = HeadersTable()
    table.bind("", {"a": 1}, "q")
    with pytest.raises(ValueError, match="'all', 'any', 'all-with-x', 'any-with-x'") as info:
        table.bind("", {"x-match": mode, "a": 1}, "r")
    assert f"x-match {mode!r} is not valid" in str(info.value)
    assert len(table) == 1
    assert table.destinations() == {"q"}
    assert table.match("", {"a": 1}) == {"q"}


def test_headers_binding_names_must_be_strings() -> None:
    table: HeadersTable[str] = HeadersTable()
    with pytest.raises(ValueError, match="header name 1 is a int"):
        table.bind("", {1: "a"}, "q")  # type: ignore[dict-item]
    assert len(table) == 0


def test_error_messages_truncate_long_values() -> None:
    with pytest.raises(ValueError, match="routing key") as info:
        validate_key("b" * 1000)
    message = str(info.value)
    assert "bbbb" in message
    assert "…'" in message
    assert len(message) < 120


# --- exact costs, short messages, values of other types ------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "key", "steps"),
    [
        ([], "a.b", 1),  # the root alone: nothing leads on from it
        (["a.b"], "a.b", 3),  # root, a, b
        (["a.b", "a.*"], "a.b", 4),  # root, a, then b and * at the last index
        (["a.b"], "x.y", 1),  # no literal edge for 'x': the walk stops after the root
        (["#"], "a.b", 4),  # root, then the '#' node once at each of the three indexes
        (["#.#"], "a", 5),  # the second '#' is reached twice at index 1 and expanded once
    ],
)
def test_topic_match_steps_count_each_expanded_state(patterns: list[str], key: str, steps: int) -> None:
    table: TopicTable[str] = TopicTable()
    for pattern in patterns:
        table.bind(pattern, None, pattern)
    assert table.match_steps(key) == steps


def test_the_cost_of_a_match_is_the_states_near_the_key_only() -> None:
    table: TopicTable[int] = TopicTable()
    for i in range(50):
        table.bind(f"svc{i}.*.created", None, i)
    # root, svc7, its '*', then 'created': the other 49 services are never visited
    assert table.match_steps("svc7.eu.created") == 4


def test_long_values_are_cut_short_in_messages_keeping_a_literal_readable() -> None:
    with pytest.raises(ValueError, match=r"^routing key ") as info:
        validate_key(list(range(30)))
    text = repr(list(range(30)))[:40]
    assert str(info.value) == f"routing key {text}… is a list; it must be a str"
    with pytest.raises(ValueError, match=r"^routing key ") as info:
        validate_key("k" * 300)
    assert str(info.value) == f"routing key '{'k' * 38}…' is 300 bytes in UTF-8; the limit is {MAX_KEY_BYTES}"
    with pytest.raises(ValueError, match=r"^routing key ") as info:
        validate_key(b"b" * 100)
    assert str(info.value) == f"routing key b'{'b' * 37}…' is a bytes; it must be a str"
    just = "j" * 38  # its repr is exactly 40 characters: shown whole
    with pytest.raises(ValueError, match=r"^exchange kind ") as info:
        make_table(just)
    assert f"exchange kind '{just}' is not known" in str(info.value)


class Opaque:
    """A hashable header value of a type the AMQP rules do not know: compared by type and ``==``."""

    def __init__(self, value: int, *, raises: bool = False) -> None:
        self.value = value
        self.raises = raises

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        if self.raises:
            raise RuntimeError("no comparison")
        return isinstance(other, Opaque) and other.value == self.value


class OtherOpaque(Opaque):
    pass


def test_header_values_of_other_hashable_types_compare_by_type_and_equality() -> None:
    table: HeadersTable[str] = HeadersTable()
    table.bind("", {"when": Opaque(1)}, "q")
    assert table.match("", {"when": Opaque(1)}) == {"q"}
    assert table.match("", {"when": Opaque(2)}) == set()  # another value
    assert table.match("", {"when": OtherOpaque(1)}) == set()  # equal by ==, but another type
    assert table.match("", {"when": frozenset({1})}) == set()
    touchy = Opaque(5, raises=True)
    table.bind("", {"touchy": touchy}, "t")
    assert table.match("", {"touchy": touchy}) == {"t"}  # the same object: equal without asking it
    assert table.match("", {"touchy": Opaque(5, raises=True)}) == set()  # an __eq__ that raises: not equal
    assert table.match("", {"when": Opaque(1), "touchy": Opaque(6)}) == {"q"}  # other hash: never compared


def test_binding_arguments_of_other_hashable_types_identify_the_binding() -> None:
    table: DirectTable[str] = DirectTable()
    assert table.bind("k", {"tag": Opaque(1)}, "q")
    assert not table.bind("k", {"tag": Opaque(1)}, "q")  # the same binding again
    assert table.bind("k", {"tag": OtherOpaque(1)}, "q")  # another type: another binding
    assert table.bind("k", {"tag": Opaque(2)}, "q")
    assert len(table) == 3
    assert table.unbind("k", {"tag": Opaque(2)}, "q")
    assert table.match("k") == {"q"}


def test_the_headers_index_forgets_a_spec_with_its_last_binding() -> None:
    loop: list[object] = []
    loop.append(loop)  # a header that cannot be compared: matching raises if a binding compares it
    table: HeadersTable[str] = HeadersTable()
    table.bind("a", {"h": 1}, "q")
    table.bind("b", {"h": 1}, "q")
    table.bind("", {"other": 1}, "r")
    with pytest.raises(ValueError, match="contains itself"):
        table.match("", {"h": loop})
    table.unbind("a", {"h": 1}, "q")
    with pytest.raises(ValueError, match="contains itself"):  # one binding with that spec is left
        table.match("", {"h": loop})
    table.unbind("b", {"h": 1}, "q")
    assert table.match("", {"h": loop}) == set()  # no binding compares 'h' any more
    table.remove_destination("r")
    assert table.match("", {"other": 1}) == set()


def nest(levels: int, wrap: Callable[[object], object]) -> object:
    value: object = 0
    for _ in range(levels):
        value = wrap(value)
    return value


@pytest.mark.parametrize(
    "arguments",
    [
        lambda levels: {"h": nest(levels - 1, lambda v: [v])},
        lambda levels: {"h": nest(levels - 1, lambda v: {"k": v})},
        lambda levels: {nest(levels - 1, lambda v: (v,)): 1},
    ],
    ids=["list", "table value", "table key"],
)
def test_arguments_may_nest_exactly_max_value_depth_levels(arguments: Callable[[int], dict[object, object]]) -> None:
    table: DirectTable[str] = DirectTable()
    # The arguments table itself is the first level.
    assert table.bind("k", arguments(MAX_VALUE_DEPTH), "q")
    with pytest.raises(ValueError, match=f"nested more than {MAX_VALUE_DEPTH} levels deep"):
        table.bind("k", arguments(MAX_VALUE_DEPTH + 1), "q")


class SameToAll:
    """A hashable value that says it equals anything: only its hash tells two apart."""

    def __init__(self, hash_: int) -> None:
        self.hash_ = hash_

    def __hash__(self) -> int:
        return self.hash_

    def __eq__(self, other: object) -> bool:
        return True


@pytest.mark.parametrize(("bound", "sent"), [(1, 2), (2, 1)])
def test_values_with_other_hashes_are_unequal_whatever_their_eq_says(bound: int, sent: int) -> None:
    table: HeadersTable[str] = HeadersTable()
    table.bind("", {"h": SameToAll(bound)}, "q")
    assert table.match("", {"h": SameToAll(sent)}) == set()
    assert table.match("", {"h": SameToAll(bound)}) == {"q"}


def test_only_topic_tables_count_trie_nodes() -> None:
    for factory in (DirectTable, FanoutTable, HeadersTable):
        table: RoutingTable[str] = factory()
        table.bind("a.b", None, "q")
        assert table.statistics().trie_nodes == 0
    assert RoutingStatistics("direct", 0, 0).trie_nodes == 0


@pytest.mark.parametrize(
    ("factory", "field"),
    [(DirectTable, "bindings"), (DirectTable, "count"), (DirectTable, "routes"), (TopicTable, "root"),
     (TopicTable, "nodes"), (HeadersTable, "specs")],
)
def test_a_table_is_made_empty_and_takes_no_state(factory: Callable[..., RoutingTable[str]], field: str) -> None:
    with pytest.raises(TypeError, match=field):
        factory(**{field: None})
    assert len(factory()) == 0
