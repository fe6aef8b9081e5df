"""Routing tables: where a publish goes, for each exchange kind, by AMQP 0-9-1 / RabbitMQ rules.

A routing table holds one exchange's bindings and answers "which destinations does this message reach?". It
is plain synchronous data: no trio, no actors. The Exchange actor owns one table, changes it when it handles
``Bind``/``Unbind`` and asks it where each ``Publish`` goes, so a binding change takes effect for the very
next publish and the routing rules can be unit-tested without a scheduler.

A destination is any hashable value (an ``ActorRef`` in practice), compared with ``==`` and ``hash``; a table
never looks inside it. A binding's identity is (key, arguments, destination), as in RabbitMQ: binding the same
triple twice is a no-op, while the same key and destination with other arguments is a second binding. Matching
returns a *set*, so a destination reached through several bindings still gets exactly one copy.

Keys are checked at the boundary (a ``str`` of at most :data:`MAX_KEY_BYTES` UTF-8 bytes) for every kind,
before anything changes, so bad input raises :class:`ValueError` and leaves the table as it was.
"""

from __future__ import annotations

import decimal
from collections.abc import Hashable, Mapping
from typing import ClassVar, Final, Generic, Protocol, TypeVar, runtime_checkable

import attrs

__all__ = [
    "EXCHANGE_KINDS",
    "MAX_KEY_BYTES",
    "X_MATCH_MODES",
    "DirectTable",
    "FanoutTable",
    "HeadersTable",
    "RoutingStatistics",
    "RoutingTable",
    "TopicTable",
    "make_table",
    "split_words",
    "validate_key",
]

D = TypeVar("D", bound=Hashable)

MAX_KEY_BYTES: Final = 255
"""The longest routing or binding key, in UTF-8 bytes: an AMQP shortstr cannot carry more."""

EXCHANGE_KINDS: Final = ("direct", "fanout", "topic", "headers")
"""The exchange kinds :func:`make_table` knows."""

X_MATCH_MODES: Final = ("all", "any", "all-with-x", "any-with-x")
"""The valid values of a headers binding's ``x-match`` argument (case-sensitive)."""

_SHOW_LIMIT: Final = 40


def _show(value: object) -> str:
    """``repr(value)``, cut short for error messages so that a 300-byte key does not flood them.

    Never raises: a value whose ``repr`` fails (it raises, or recurses too deep) is shown by its type.
    """
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__} object (repr failed)>"
    if len(text) <= _SHOW_LIMIT:
        return text
    if isinstance(value, str | bytes):
        # Keep the closing quote so the value still reads as a literal.
        return text[: _SHOW_LIMIT - 1] + "…" + text[-1]
    return text[:_SHOW_LIMIT] + "…"


def validate_key(value: object, *, what: str = "routing key") -> str:
    """Return ``value`` if it is a valid routing or binding key, else raise :class:`ValueError`.

    A key is a ``str`` whose UTF-8 encoding is at most :data:`MAX_KEY_BYTES` bytes (an AMQP shortstr); any
    characters are allowed, but a lone surrogate cannot be encoded and is refused. ``what`` names the key in
    the message (``"routing key"``, ``"binding key"``), which states the value and the rule it breaks.
    """
    if not isinstance(value, str):
        raise ValueError(f"{what} {_show(value)} is a {type(value).__name__}; it must be a str")
    if value.isascii():  # O(1) in CPython: one byte per character, no encoding needed.
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(
                f"{what} {_show(value)} cannot be encoded as UTF-8 (it contains a lone surrogate)"
            ) from None
    if size > MAX_KEY_BYTES:
        raise ValueError(f"{what} {_show(value)} is {size} bytes in UTF-8; the limit is {MAX_KEY_BYTES}")
    return value


def split_words(key: str) -> tuple[str, ...]:
    """Split a topic key into its words: on ``.``, keeping empty words.

    ``"a..b"`` is ``("a", "", "b")`` and ``"."`` is ``("", "")``, but the empty key ``""`` has *zero* words,
    not one empty word (so ``*`` does not match it while ``#`` does), as in RabbitMQ.
    """
    return tuple(key.split(".")) if key else ()


# --- Binding arguments: a hashable, type-strict canonical form ----------------------------------------------

_FROZEN_TYPES: Final = "None, bool, int, float, str, bytes, Decimal, list, tuple, dict or a hashable value"

MAX_VALUE_DEPTH: Final = 100
"""How deep lists and tables may nest in a header value or a binding argument (the top level is depth 1)."""

_NAN: Final = ("float", "nan")
"""The frozen form of every float NaN: NaN matches NaN (see :func:`_freeze`)."""


@attrs.define(eq=False)
class _Unequal:
    """The frozen form of an unhashable header value of an unknown type: equal to nothing but itself."""


class _Opaque:
    """The frozen form of a hashable value of another type: its hash taken once, its ``==`` never raising.

    The value's own ``__hash__`` and ``__eq__`` are user code: taking the hash once, when the value is frozen,
    and treating an ``__eq__`` that raises as "not equal" keeps every later dict and set operation on frozen
    forms (binding, unbinding, matching) from failing half-way.
    """

    __slots__ = ("_hash", "value")

    def __init__(self, value: object, hash_: int) -> None:
        self.value = value
        self._hash = hash_

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not _Opaque:
            return NotImplemented
        assert isinstance(other, _Opaque)
        mine, theirs = self.value, other.value
        if mine is theirs:
            return True
        if type(mine) is not type(theirs) or self._hash != other._hash:
            return False
        try:
            return bool(mine == theirs)
        except Exception:
            return False

    def __repr__(self) -> str:
        return f"_Opaque({_show(self.value)})"


class _Refused(Exception):
    """Raised inside :func:`_freeze_value`: the value that cannot be frozen and why (made a ValueError there)."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


def _freeze(value: object, *, lenient: bool = False, what: str = "argument value") -> Hashable:
    """Return a hashable form of ``value`` that is equal for two values iff they are equal by AMQP rules.

    This is the one definition of equality for binding arguments (binding identity) and header values
    (headers matching), following RabbitMQ 3.13 and later: every integer width is one integer, but a bool is
    never an int and an int never a float; ``str`` and ``bytes`` are both binaries, equal when their UTF-8
    bytes are; lists compare element-wise in order and tables key by key, with the same strict rule; decimals
    compare as (sign, digits, exponent), so ``Decimal("1.0") != Decimal("1")``. Other hashable values compare
    by type and ``==``.

    NaN: every float NaN is one value here, equal to itself (a NaN header matches a NaN binding, whatever
    objects they are), as two NaNs read off the wire would be the same field value; ``Decimal("NaN")``
    likewise compares by its digits. Python's ``nan != nan`` would make such a binding match nothing, or match
    only when the very same object is published, which depends on object identity.

    Odd values are refused with :class:`ValueError` naming the value (``what`` names its role), never with
    whatever they raise: a list or table that contains itself, one nested more than :data:`MAX_VALUE_DEPTH`
    deep, a mapping that cannot be read (its ``items()`` raises), an object whose ``__hash__`` raises something
    other than :class:`TypeError`, or an unhashable object of another type. With ``lenient`` (message headers
    matched against a binding) an unhashable object of another type instead becomes a value equal to nothing.
    """
    try:
        return _freeze_value(value, lenient, 1, set())
    except _Refused as exc:
        where = "" if exc.value is value else f": value {_show(exc.value)}"
        raise ValueError(f"{what} {_show(value)}{where} {exc.reason}; use {_FROZEN_TYPES}") from None
    except Exception as exc:
        raise ValueError(f"{what} {_show(value)} cannot be read: {exc!r}; use {_FROZEN_TYPES}") from exc


def _freeze_value(value: object, lenient: bool, depth: int, path: set[int]) -> Hashable:
    """:func:`_freeze` without the translation of errors; ``path`` holds the ids of the enclosing containers."""
    if value is None:
        return ("none",)
    if isinstance(value, bool):
        return ("bool", bool(value))
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        number = float(value)
        return _NAN if number != number else ("float", number)
    if isinstance(value, str):
        return ("binary", str.encode(value, "utf-8", "surrogatepass"))
    if isinstance(value, bytes | bytearray | memoryview):
        return ("binary", bytes(value))
    if isinstance(value, decimal.Decimal):
        return ("decimal", tuple(decimal.Decimal.as_tuple(value)))
    if isinstance(value, list | tuple | Mapping):
        if depth > MAX_VALUE_DEPTH:
            raise _Refused(value, f"is nested more than {MAX_VALUE_DEPTH} levels deep")
        key = id(value)
        if key in path:
            raise _Refused(value, f"contains itself (a {type(value).__name__} that refers to itself cannot be matched)")
        path.add(key)
        try:
            if isinstance(value, Mapping):
                items = list(value.items())
                return ("table", frozenset((_freeze_value(k, lenient, depth + 1, path),
                                            _freeze_value(v, lenient, depth + 1, path)) for k, v in items))
            return ("array", tuple([_freeze_value(item, lenient, depth + 1, path) for item in list(value)]))
        finally:
            path.discard(key)
    try:
        hash_ = hash(value)
    except TypeError:
        if lenient:
            return _Unequal()
        raise _Refused(value, f"of type {type(value).__name__} is unhashable") from None
    return ("other", type(value), _Opaque(value, hash_))


_NO_ARGUMENTS: Final = _freeze({})


def _freeze_arguments(arguments: _Arguments) -> Hashable:
    """The identity of a binding's arguments; ``None`` and ``{}`` are the same (an empty AMQP table)."""
    if arguments is None:
        return _NO_ARGUMENTS
    if not isinstance(arguments, Mapping):
        raise ValueError(
            f"binding arguments {_show(arguments)} are a {type(arguments).__name__}; "
            "they must be a mapping or None"
        )
    return _freeze(arguments, what="binding arguments")


def _check_headers(headers: object) -> Mapping[str, object]:
    """A message's headers as a mapping (``None`` is an empty table); anything else raises ValueError."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ValueError(
            f"headers {_show(headers)} are a {type(headers).__name__}; they must be a mapping or None"
        )
    return headers


# --- The common interface -----------------------------------------------------------------------------------


@attrs.frozen
class RoutingStatistics:
    """A snapshot of a routing table's size, from :meth:`RoutingTable.statistics`."""

    kind: str
    """The exchange kind: ``"direct"``, ``"fanout"``, ``"topic"`` or ``"headers"``."""
    bindings: int
    """How many bindings the table holds (identity: key, arguments, destination)."""
    destinations: int
    """How many distinct destinations have at least one binding."""
    trie_nodes: int = 0
    """Topic tables: the number of nodes in the word trie, root included (0 for the other kinds)."""


@runtime_checkable
class RoutingTable(Protocol[D]):
    """The bindings of one exchange, and the rule that maps a message to the destinations it reaches.

    Every operation is synchronous and takes effect immediately. Invalid keys, arguments or headers raise
    :class:`ValueError` naming the value and the rule, before anything changes.
    """

    @property
    def kind(self) -> str:
        """The exchange kind this table implements."""
        ...

    def bind(self, key: str, arguments: _Arguments, destination: D) -> bool:
        """Add the binding (key, arguments, destination); ``False`` if it already existed (idempotent)."""
        ...

    def unbind(self, key: str, arguments: _Arguments, destination: D) -> bool:
        """Remove the binding (key, arguments, destination); ``False`` if there was none (never an error)."""
        ...

    def match(self, routing_key: str, headers: Mapping[str, object] | None = None) -> set[D]:
        """The destinations this message reaches: a new set, one entry per destination however many
        bindings match."""
        ...

    def destinations(self) -> set[D]:
        """Every destination with at least one binding (a new set)."""
        ...

    def remove_destination(self, destination: D) -> int:
        """Drop every binding to ``destination`` (say, when it stopped); return how many there were."""
        ...

    def statistics(self) -> RoutingStatistics:
        """A snapshot of the table's size."""
        ...

    def __len__(self) -> int:
        """The number of bindings."""
        ...


_Arguments = Mapping[str, object] | None
"""Binding arguments as callers pass them (``None`` is an empty table)."""

_Identity = tuple[str, Hashable]
"""A binding's identity without its destination: (key, frozen arguments)."""


@attrs.define(eq=False, repr=False)
class _Table(Generic[D]):
    """Binding bookkeeping shared by every kind: identity, idempotence, removal of a destination.

    Subclasses keep their own index for matching and implement :meth:`_insert`, :meth:`_remove` and
    :meth:`match`; this class guarantees that ``_insert`` only sees new bindings and ``_remove`` only existing
    ones, and that validation happens before either is called.
    """

    KIND: ClassVar[str] = ""

    _bindings: dict[D, set[_Identity]] = attrs.field(init=False, factory=dict)
    """Destination -> identities of its bindings (the source of truth for identity and removal)."""
    _count: int = attrs.field(init=False, default=0)
    """Total number of bindings, i.e. the sum of the sizes of the sets in ``_bindings``."""

    @property
    def kind(self) -> str:
        """The exchange kind this table implements."""
        return self.KIND

    def bind(self, key: str, arguments: _Arguments, destination: D) -> bool:
        """Add the binding (``key``, ``arguments``, ``destination``) and return ``True``.

        Re-binding an identical triple changes nothing and returns ``False``. ``arguments=None`` is the same
        as ``{}``. Raises :class:`ValueError` for an invalid key or arguments, before anything changes.
        """
        key = validate_key(key, what="binding key")
        frozen = _freeze_arguments(arguments)
        try:
            compiled = self._check_arguments(arguments)
        except ValueError:
            raise
        except Exception as exc:  # a mapping that read once and fails the second time
            raise ValueError(f"binding arguments {_show(arguments)} cannot be read: {exc!r}") from exc
        identity = (key, frozen)
        owned = self._bindings.get(destination)
        if owned is not None and identity in owned:
            return False
        self._insert(key, compiled, frozen, destination)
        if owned is None:
            self._bindings[destination] = {identity}
        else:
            owned.add(identity)
        self._count += 1
        return True

    def unbind(self, key: str, arguments: _Arguments, destination: D) -> bool:
        """Remove the binding (``key``, ``arguments``, ``destination``) and return ``True``.

        Returns ``False`` if there is no such binding: unbinding is not an error, as in AMQP. Invalid keys or
        arguments still raise :class:`ValueError`.
        """
        key = validate_key(key, what="binding key")
        identity = (key, _freeze_arguments(arguments))
        owned = self._bindings.get(destination)
        if owned is None or identity not in owned:
            return False
        self._remove(key, identity[1], destination)
        owned.discard(identity)
        if not owned:
            del self._bindings[destination]
        self._count -= 1
        return True

    def remove_destination(self, destination: D) -> int:
        """Drop every binding to ``destination`` and return how many there were (0 if it had none)."""
        owned = self._bindings.pop(destination, None)
        if owned is None:
            return 0
        for key, frozen in owned:
            self._remove(key, frozen, destination)
        self._count -= len(owned)
        return len(owned)

    def destinations(self) -> set[D]:
        """Every destination with at least one binding, as a new set."""
        return set(self._bindings)

    def statistics(self) -> RoutingStatistics:
        """A snapshot of the table's size."""
        return RoutingStatistics(kind=self.KIND, bindings=self._count, destinations=len(self._bindings))

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} kind={self.KIND!r} bindings={self._count}"
            f" destinations={len(self._bindings)}>"
        )

    def match(self, routing_key: str, headers: Mapping[str, object] | None = None) -> set[D]:
        """The destinations a message with this routing key and these headers reaches, as a new set."""
        raise NotImplementedError

    def _check_arguments(self, arguments: _Arguments) -> object:
        """Raise :class:`ValueError` if ``arguments`` are invalid for this kind (called before any change).

        Returns what :meth:`_insert` needs of them (compiled once, so that they are read once).
        """
        return None

    def _insert(self, key: str, compiled: object, frozen: Hashable, destination: D) -> None:
        """Index a binding that does not exist yet (``compiled``: what :meth:`_check_arguments` returned)."""
        raise NotImplementedError

    def _remove(self, key: str, frozen: Hashable, destination: D) -> None:
        """Un-index a binding that exists."""
        raise NotImplementedError


def _add_one(counts: dict[D, int], destination: D) -> None:
    counts[destination] = counts.get(destination, 0) + 1


def _drop_one(counts: dict[D, int], destination: D) -> None:
    left = counts[destination] - 1
    if left:
        counts[destination] = left
    else:
        del counts[destination]


# --- Direct and fanout --------------------------------------------------------------------------------------


@attrs.define(eq=False, repr=False)
class DirectTable(_Table[D]):
    """A direct exchange: a message reaches the destinations whose binding key equals its routing key.

    Equality is exact (case-sensitive, no normalisation: NFC ``é`` is not NFD ``é``); ``.``, ``*`` and ``#``
    are ordinary characters and ``""`` an ordinary key. Matching is one dict lookup.
    """

    KIND: ClassVar[str] = "direct"

    _routes: dict[str, dict[D, int]] = attrs.field(init=False, factory=dict)
    """Binding key -> destination -> number of bindings (with different arguments) for that pair."""

    def match(self, routing_key: str, headers: Mapping[str, object] | None = None) -> set[D]:
        """The destinations bound with exactly ``routing_key``; ``headers`` are validated but not used."""
        validate_key(routing_key)
        _check_headers(headers)
        found = self._routes.get(routing_key)
        return set(found) if found else set()

    def _insert(self, key: str, compiled: object, frozen: Hashable, destination: D) -> None:
        counts = self._routes.get(key)
        if counts is None:
            counts = self._routes[key] = {}
        _add_one(counts, destination)

    def _remove(self, key: str, frozen: Hashable, destination: D) -> None:
        counts = self._routes[key]
        _drop_one(counts, destination)
        if not counts:
            del self._routes[key]


@attrs.define(eq=False, repr=False)
class FanoutTable(_Table[D]):
    """A fanout exchange: a message reaches every bound destination; keys and headers are ignored.

    Keys are still validated, on bind and on match. With no bindings a message reaches nothing.
    """

    KIND: ClassVar[str] = "fanout"

    def match(self, routing_key: str, headers: Mapping[str, object] | None = None) -> set[D]:
        """Every bound destination; ``routing_key`` and ``headers`` are validated but not used."""
        validate_key(routing_key)
        _check_headers(headers)
        return set(self._bindings)

    def _insert(self, key: str, compiled: object, frozen: Hashable, destination: D) -> None:
        pass  # The base class's destination index is all a fanout needs.

    def _remove(self, key: str, frozen: Hashable, destination: D) -> None:
        pass


# --- Topic --------------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class _Node(Generic[D]):
    """A trie node: the bindings whose pattern is the word path from the root to here.

    ``*`` and ``#`` have their own edges; ``literals`` never holds those two words, so a ``*`` or ``#`` word
    in a routing key is only ever matched by wildcards, never by a literal edge.
    """

    is_hash: bool = False
    """The edge into this node is ``#`` (so the node may absorb further words)."""
    literals: dict[str, _Node[D]] = attrs.Factory(dict)
    star: _Node[D] | None = None
    hash_child: _Node[D] | None = None
    destinations: dict[D, int] = attrs.Factory(dict)
    """Destination -> number of bindings ending here (same key, different arguments)."""

    def is_empty(self) -> bool:
        """No binding ends here and no pattern passes through: the node can be pruned."""
        return not self.destinations and not self.literals and self.star is None and self.hash_child is None


@attrs.define(eq=False, repr=False)
class TopicTable(_Table[D]):
    """A topic exchange: binding keys are patterns over the ``.``-separated words of the routing key.

    In a binding key the whole word ``*`` matches exactly one word (possibly empty) and the whole word ``#``
    matches zero or more words, anywhere and any number of times; within a longer word (``a*``, ``##``) they
    are literal, and in a routing key they are always literal. See :func:`split_words` for what a word is.

    Bindings live in a trie over pattern words. Matching walks it one routing-key word at a time, keeping the
    set of trie nodes reached after each word: each (node, word index) state is expanded at most once, so a
    match costs O(states) <= O(trie nodes x words) whatever the number of ``#`` words (no exponential
    backtracking, unlike RabbitMQ 3.x), and in practice grows with the key's length and the few patterns that
    share its prefixes, not with the number of bindings. Empty nodes are pruned on unbind.
    """

    KIND: ClassVar[str] = "topic"

    _root: _Node[D] = attrs.field(init=False, factory=_Node)
    _nodes: int = attrs.field(init=False, default=1)
    """Trie nodes, root included."""

    def match(self, routing_key: str, headers: Mapping[str, object] | None = None) -> set[D]:
        """The destinations with at least one binding pattern that matches ``routing_key``.

        ``headers`` are validated but not used.
        """
        validate_key(routing_key)
        _check_headers(headers)
        return self._walk(split_words(routing_key))[0]

    def match_steps(self, routing_key: str) -> int:
        """How many (trie node, word index) states :meth:`match` expands for ``routing_key``.

        A diagnostic for the cost of a match: it runs the same walk, and is at most
        ``statistics().trie_nodes * (len(split_words(routing_key)) + 1)``.
        """
        validate_key(routing_key)
        return self._walk(split_words(routing_key))[1]

    def statistics(self) -> RoutingStatistics:
        """A snapshot of the table's size, including the number of trie nodes."""
        return attrs.evolve(super().statistics(), trie_nodes=self._nodes)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" nodes={self._nodes}>"

    def _walk(self, words: tuple[str, ...]) -> tuple[set[D], int]:
        """Match ``words`` against the trie: the destinations found, and the number of states expanded.

        The states at word index ``i`` are the trie nodes whose pattern prefix matches ``words[:i]``. Each
        (node, index) state is expanded once. Only a ``#`` node can be reached twice at one index (once by
        its own self-loop, once from its parent matching zero words; or from several such paths), because
        every other node has a single incoming edge that consumes a word; so the memo only has to record
        ``#`` nodes.
        """
        found: set[D] = set()
        steps = 0
        last = len(words)
        frontier: list[_Node[D]] = [self._root]
        for index in range(last + 1):
            following: list[_Node[D]] = []
            word = words[index] if index < last else ""
            expanded_hashes: set[_Node[D]] | None = None  # the memo, created on first use
            stack = frontier
            while stack:
                node = stack.pop()
                if node.is_hash:
                    if expanded_hashes is None:
                        expanded_hashes = {node}
                    elif node in expanded_hashes:
                        continue
                    else:
                        expanded_hashes.add(node)
                steps += 1
                if node.hash_child is not None:
                    stack.append(node.hash_child)  # '#' matching zero words: same index.
                if index == last:
                    if node.destinations:
                        found.update(node.destinations)
                    continue
                child = node.literals.get(word)
                if child is not None:
                    following.append(child)
                if node.star is not None:
                    following.append(node.star)
                if node.is_hash:
                    following.append(node)  # '#' absorbing one more word.
            if not following:
                break
            frontier = following
        return found, steps

    def _insert(self, key: str, compiled: object, frozen: Hashable, destination: D) -> None:
        node = self._root
        for word in split_words(key):
            if word == "#":
                child = node.hash_child
                if child is None:
                    child = node.hash_child = _Node(is_hash=True)
                    self._nodes += 1
            elif word == "*":
                child = node.star
                if child is None:
                    child = node.star = _Node()
                    self._nodes += 1
            else:
                child = node.literals.get(word)
                if child is None:
                    child = node.literals[word] = _Node()
                    self._nodes += 1
            node = child
        _add_one(node.destinations, destination)

    def _remove(self, key: str, frozen: Hashable, destination: D) -> None:
        path: list[tuple[_Node[D], str]] = []
        node = self._root
        for word in split_words(key):
            path.append((node, word))
            child = node.hash_child if word == "#" else node.star if word == "*" else node.literals.get(word)
            assert child is not None, "an existing binding's path is always in the trie"
            node = child
        _drop_one(node.destinations, destination)
        # Prune from the leaf up, so that the trie only holds paths that lead to a binding.
        while path and node.is_empty():
            parent, word = path.pop()
            if word == "#":
                parent.hash_child = None
            elif word == "*":
                parent.star = None
            else:
                del parent.literals[word]
            self._nodes -= 1
            node = parent


# --- Headers ------------------------------------------------------------------------------------------------


@attrs.frozen
class _HeadersSpec:
    """A headers binding's arguments, compiled: which headers to test and how to combine the results."""

    match_all: bool
    """``all``/``all-with-x`` (every test must pass) versus ``any``/``any-with-x`` (one is enough)."""
    tests: tuple[tuple[str, Hashable | None], ...]
    """(header name, frozen expected value), or (name, ``None``) for a presence test."""

    @classmethod
    def parse(cls, arguments: _Arguments) -> _HeadersSpec:
        """Compile binding arguments; an invalid ``x-match`` or a non-str name raises :class:`ValueError`."""
        items = [] if arguments is None else list(arguments.items())
        mode: object = "all"
        for name, value in items:
            if not isinstance(name, str):
                raise ValueError(f"header name {_show(name)} is a {type(name).__name__}; it must be a str")
            if str.__eq__(name, "x-match"):
                mode = value
        if not isinstance(mode, str) or mode not in X_MATCH_MODES:
            valid = ", ".join(repr(name) for name in X_MATCH_MODES)
            raise ValueError(f"x-match {_show(mode)} is not valid; use one of {valid} (case-sensitive)")
        with_x = mode.endswith("-with-x")
        tests: list[tuple[str, Hashable | None]] = []
        for name, value in items:
            name = str.__str__(name)  # a str subclass with its own __eq__ or __hash__ must not reach the specs
            if name == "x-match" or (not with_x and name.startswith("x-")):
                continue
            tests.append((name, None if value is None else _freeze(value, what=f"binding argument {name!r}")))
        return cls(match_all=mode.startswith("all"), tests=tuple(tests))

    def matches(self, headers: Mapping[str, object], frozen: dict[str, Hashable]) -> bool:
        """Whether a message with ``headers`` matches; ``frozen`` caches frozen header values per match."""
        if self.match_all:
            return all(self._passes(name, expected, headers, frozen) for name, expected in self.tests)
        return any(self._passes(name, expected, headers, frozen) for name, expected in self.tests)

    @staticmethod
    def _passes(
        name: str, expected: Hashable | None, headers: Mapping[str, object], frozen: dict[str, Hashable]
    ) -> bool:
        if name not in headers:
            return False
        if expected is None:
            return True  # A void binding value only asks for the header to be present, whatever its value.
        actual = frozen.get(name)
        if actual is None:
            actual = frozen[name] = _freeze(headers[name], lenient=True, what=f"header {name!r}")
        return actual == expected


@attrs.define(eq=False)
class _HeadersEntry(Generic[D]):
    """The destinations of every binding that shares one compiled spec (evaluated once per match)."""

    spec: _HeadersSpec
    destinations: dict[D, int] = attrs.Factory(dict)
    """Destination -> number of bindings (differing only in binding key) with this spec."""


@attrs.define(eq=False, repr=False)
class HeadersTable(_Table[D]):
    """A headers exchange: binding arguments are a match spec over the message headers; keys are ignored.

    ``x-match`` selects the mode: ``all`` (the default) or ``any`` compare the arguments whose names do not
    start with ``x-``; ``all-with-x`` and ``any-with-x`` compare every argument except ``x-match`` itself. An
    argument whose value is ``None`` only requires the header to be present; any other value requires an equal
    header by strict typed equality, as RabbitMQ 3.13 and later: ``True`` is not ``1``, ``1`` is not ``1.0``,
    ``"1"`` is not ``1``, ``str`` and ``bytes`` with the same UTF-8 bytes are equal, lists compare in order
    and dicts by key, with the same rule; every float NaN is one value (a NaN header matches a NaN binding).
    With nothing to compare, ``all`` matches every message and ``any``
    none. A message without headers is treated as having an empty table. Another ``x-match`` value (``"ALL"``,
    ``""``, a non-str) is refused at bind with :class:`ValueError`.

    Matching evaluates each distinct spec once, so its cost is linear in the number of distinct specs.
    """

    KIND: ClassVar[str] = "headers"

    _specs: dict[Hashable, _HeadersEntry[D]] = attrs.field(init=False, factory=dict)
    """Frozen arguments -> compiled spec and the destinations bound with it."""

    def match(self, routing_key: str, headers: Mapping[str, object] | None = None) -> set[D]:
        """The destinations bound with a spec that ``headers`` match; ``routing_key`` is only validated.

        A header value that a binding compares and that cannot be compared (see :func:`_freeze`), or headers
        that cannot be read, raise :class:`ValueError` naming them; nothing changes.
        """
        validate_key(routing_key)
        table = _check_headers(headers)
        frozen: dict[str, Hashable] = {}
        found: set[D] = set()
        try:
            for entry in self._specs.values():
                if entry.spec.matches(table, frozen):
                    found.update(entry.destinations)
        except ValueError:
            raise
        except Exception as exc:  # a mapping whose lookups raise: refused like any bad header
            raise ValueError(f"headers {_show(headers)} cannot be read: {exc!r}") from exc
        return found

    def _check_arguments(self, arguments: _Arguments) -> _HeadersSpec:
        return _HeadersSpec.parse(arguments)

    def _insert(self, key: str, compiled: object, frozen: Hashable, destination: D) -> None:
        entry = self._specs.get(frozen)
        if entry is None:
            assert isinstance(compiled, _HeadersSpec)
            entry = self._specs[frozen] = _HeadersEntry(compiled)
        _add_one(entry.destinations, destination)

    def _remove(self, key: str, frozen: Hashable, destination: D) -> None:
        entry = self._specs[frozen]
        _drop_one(entry.destinations, destination)
        if not entry.destinations:
            del self._specs[frozen]


def make_table(kind: str) -> RoutingTable[D]:
    """Return an empty routing table for an exchange of ``kind``: one of :data:`EXCHANGE_KINDS`.

    An unknown kind (names are case-sensitive) raises :class:`ValueError` naming it and the valid ones.
    """
    if kind == "direct":
        return DirectTable()
    if kind == "fanout":
        return FanoutTable()
    if kind == "topic":
        return TopicTable()
    if kind == "headers":
        return HeadersTable()
    valid = ", ".join(repr(name) for name in EXCHANGE_KINDS)
    raise ValueError(f"exchange kind {_show(kind)} is not known; use one of {valid}")
