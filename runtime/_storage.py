"""The durable store of a queue: a small protocol, and its SQLite implementation.

A :class:`Store` is synchronous and blocking: the ``Queue`` actor runs every call on a worker thread (one call
at a time, from a child actor that owns the store), so a store is never used by two threads at once. The queue
hands it its changes in batches (:class:`PendingWrites`, one transaction each: group commit), so a busy queue
makes few transactions.

Errors are translated at this boundary: whatever :mod:`sqlite3` raises, and a stored message that cannot be
unpickled, becomes :class:`~runtime.StorageError` naming the database path, the original error as
``__cause__``. A message that cannot be pickled is refused before it is stored, by :func:`encode_payload`,
with :class:`~runtime.SerializationError`.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from ._exceptions import SerializationError, StorageError

__all__ = ["PendingWrites", "SQLiteStore", "Store", "StoredMessage", "encode_payload"]


@attrs.frozen
class StoredMessage:
    """A message read back from a store, in the order it was published."""

    seq: int
    """Its position in the queue."""
    exchange: str
    """The name of the exchange it was published to."""
    routing_key: str
    """The routing key it was published with."""
    body: Any
    """The payload."""
    headers: Mapping[str, Any] | None
    """Its headers, without ``BCC``."""
    persistent: bool
    """AMQP delivery mode 2."""
    ttl: float | None
    """The per-message TTL it was published with."""
    returns: int
    """How many times it came back unsettled."""
    redelivered: bool
    """Whether it was delivered before."""
    cc: tuple[str, ...] = ()
    """The keys of its ``CC`` header."""
    bcc: tuple[str, ...] = ()
    """The keys of the ``BCC`` header it was published with."""


@attrs.define
class PendingWrites:
    """Changes to store in one transaction: inserts, then updates, then deletes (each in order)."""

    inserts: list[tuple[Any, ...]] = attrs.Factory(list)
    """Rows ``(seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered)``."""
    updates: list[tuple[int, int, int]] = attrs.Factory(list)
    """``(returns, redelivered, seq)`` of messages that came back."""
    deletes: list[tuple[int]] = attrs.Factory(list)
    """``(seq,)`` of messages that left the queue for good."""

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.deletes)

    def take(self) -> PendingWrites:
        """The writes pending so far, as a batch of their own; this one is empty afterwards."""
        batch = PendingWrites(self.inserts, self.updates, self.deletes)
        self.inserts, self.updates, self.deletes = [], [], []
        return batch


class Store(Protocol):
    """A queue's durable store. Every method blocks: call it on a worker thread, one call at a time."""

    def open(self) -> None:
        """Open (and create if needed) the store; :class:`~runtime.StorageError` if it cannot."""
        ...

    def load(self) -> list[StoredMessage]:
        """Every stored message, in seq order."""
        ...

    def write(self, batch: PendingWrites) -> None:
        """Apply ``batch`` in one transaction: all of it or, raising :class:`~runtime.StorageError`, none."""
        ...

    def close(self) -> None:
        """Close the store (idempotent)."""
        ...


def encode_payload(body: Any, headers: Mapping[str, Any] | None, cc: tuple[str, ...] = (),
                   bcc: tuple[str, ...] = ()) -> bytes:
    """What a store keeps of a message besides its row: body and headers, and the CC/BCC keys if any.

    Raises :class:`~runtime.SerializationError` (the pickle error as ``__cause__``) for what cannot be pickled.
    """
    stored: tuple[Any, ...] = (body, headers, cc, bcc) if cc or bcc else (body, headers)
    try:
        return pickle.dumps(stored, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise SerializationError(f"cannot pickle body {_show(body)} with headers {_show(headers)}: {exc!r}") \
            from exc


_SHOW_LIMIT: Final = 60


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[:_SHOW_LIMIT] + "…"


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    payload BLOB NOT NULL,
    persistent INTEGER NOT NULL,
    ttl REAL,
    returns INTEGER NOT NULL,
    redelivered INTEGER NOT NULL
)
"""


class SQLiteStore:
    """A :class:`Store` in one SQLite database file: WAL mode, ``synchronous=FULL``, one table of messages.

    ``storage`` is the database file, or an existing directory in which the file is ``<queue>.sqlite3``.
    """

    __slots__ = ("_db", "_queue", "path")

    def __init__(self, storage: str | os.PathLike[str], queue: str) -> None:
        self.path = Path(storage)
        """The database file (once open; until then ``storage`` as given)."""
        self._queue = queue
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open the database, creating the file and its table if needed."""
        if self.path.is_dir():  # here, on the worker thread: it asks the file system
            self.path = self.path / f"{self._queue}.sqlite3"
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the queue database {str(self.path)!r}: {exc}") from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            db.close()
            raise StorageError(f"cannot open the queue database {str(self.path)!r}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        self._db = db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError(f"the queue database {str(self.path)!r} is not open")
        return self._db

    def load(self) -> list[StoredMessage]:
        """Every stored message, in seq order (unpickled here, on the caller's thread)."""
        db = self._connection()
        try:
            rows = db.execute("SELECT seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered "
                              "FROM messages ORDER BY seq").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the queue database {str(self.path)!r}: {exc}") from exc
        loaded = []
        for seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered in rows:
            try:
                stored = pickle.loads(payload)
            except Exception as exc:
                raise StorageError(f"message {seq} in the queue database {str(self.path)!r} cannot be "
                                   f"unpickled: {exc!r}") from exc
            cc, bcc = (stored[2], stored[3]) if len(stored) > 2 else ((), ())
            loaded.append(StoredMessage(seq, exchange, routing_key, stored[0], stored[1], bool(persistent), ttl,
                                        returns, bool(redelivered), cc, bcc))
        return loaded

    def write(self, batch: PendingWrites) -> None:
        """Apply ``batch`` in one transaction."""
        db = self._connection()
        try:
            db.execute("BEGIN")
            try:
                if batch.inserts:
                    db.executemany("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch.inserts)
                if batch.updates:
                    db.executemany("UPDATE messages SET returns = ?, redelivered = ? WHERE seq = ?",
                                   batch.updates)
                if batch.deletes:
                    db.executemany("DELETE FROM messages WHERE seq = ?", batch.deletes)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write to the queue database {str(self.path)!r}: {exc}") from exc

    def close(self) -> None:
        """Close the database (idempotent)."""
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot close the queue database {str(self.path)!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<SQLiteStore {str(self.path)!r} {'open' if self._db is not None else 'closed'}>"
