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
    expires: float | None = None
    """When it expires, in wall-clock seconds (``time.time()``), fixed when it was published; ``None`` for
    never, or for a message stored before deadlines were (its TTL then counts from the restore)."""


@attrs.define
class PendingWrites:
    """Changes to store in one transaction: inserts, then updates, then deletes (each in order)."""

    inserts: list[tuple[Any, ...]] = attrs.Factory(list)
    """Rows ``(seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered, expires)``."""
    updates: list[tuple[int, int, int]] = attrs.Factory(list)
    """``(returns, redelivered, seq)`` of messages delivered (``redelivered`` is 1 from the first delivery on:
    after a crash they come back flagged) or that came back."""
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
    redelivered INTEGER NOT NULL,
    expires REAL
)
"""

_COLUMNS: Final = "seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered, expires"



class SQLiteStore:
    """A :class:`Store` in one SQLite database file: WAL mode, ``synchronous=FULL``, one table of messages.

    ``storage`` is the database file, or an existing directory in which the file is ``<queue>.sqlite3``.

    A new database is made under a temporary name and renamed into place once its table exists, so a crash
    while it is made never leaves a half-made file where the queue looks. Hence a file that is there and
    empty (zero bytes) is damage, not a new queue: :meth:`open` refuses it, as it refuses a directory where
    the file should be and a directory that does not exist, each with a :class:`~runtime.StorageError` naming
    the path, rather than starting the queue empty.
    """

    __slots__ = ("_db", "_queue", "path")

    def __init__(self, storage: str | os.PathLike[str], queue: str) -> None:
        self.path = Path(storage)
        """The database file (once open; until then ``storage`` as given)."""
        self._queue = queue
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open the database, creating the file and its table if needed (see the class docstring)."""
        path = self.path
        try:
            if path.is_dir():  # here, on the worker thread: it asks the file system
                path = self.path = path / f"{self._queue}.sqlite3"
                if path.is_dir():
                    raise StorageError(f"the queue database {str(path)!r} is a directory, not a database file; "
                                       "move it away or give the queue another storage")
            if not path.parent.is_dir():
                raise StorageError(f"cannot open the queue database {str(path)!r}: the directory "
                                   f"{str(path.parent)!r} does not exist")
            if path.exists():
                if path.stat().st_size == 0:
                    raise StorageError(f"the queue database {str(path)!r} is empty (0 bytes): a truncated file, "
                                       "not a queue database; remove it to start the queue empty")
            else:
                self._create(path)
        except OSError as exc:
            raise StorageError(f"cannot open the queue database {str(path)!r}: {exc}") from exc
        self._db = self._connect(path)

    def _connect(self, path: Path) -> sqlite3.Connection:
        """Connect to the database at ``path``, in WAL mode, with the table (added columns included)."""
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the queue database {str(path)!r}: {exc}") from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
            if "expires" not in columns:  # a database made before deadlines were stored
                db.execute("ALTER TABLE messages ADD COLUMN expires REAL")
        except sqlite3.Error as exc:
            db.close()
            raise StorageError(f"cannot open the queue database {str(path)!r}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return db

    def _create(self, path: Path) -> None:
        """Make a new database at ``path``: built under a temporary name, then renamed into place (atomic)."""
        building = path.with_name(f"{path.name}.new-{os.getpid()}")
        for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)
        self._connect(building).close()
        os.replace(building, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power loss
        finally:
            os.close(directory)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError(f"the queue database {str(self.path)!r} is not open")
        return self._db

    def load(self) -> list[StoredMessage]:
        """Every stored message, in seq order (unpickled here, on the caller's thread)."""
        db = self._connection()
        try:
            rows = db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY seq").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the queue database {str(self.path)!r}: {exc}") from exc
        loaded = []
        for seq, exchange, routing_key, payload, persistent, ttl, returns, redelivered, expires in rows:
            try:
                stored = pickle.loads(payload)
            except Exception as exc:
                raise StorageError(f"message {seq} in the queue database {str(self.path)!r} cannot be "
                                   f"unpickled: {exc!r}") from exc
            cc, bcc = (stored[2], stored[3]) if len(stored) > 2 else ((), ())
            loaded.append(StoredMessage(seq, exchange, routing_key, stored[0], stored[1], bool(persistent), ttl,
                                        returns, bool(redelivered), cc, bcc, expires))
        return loaded

    def write(self, batch: PendingWrites) -> None:
        """Apply ``batch`` in one transaction."""
        db = self._connection()
        try:
            db.execute("BEGIN")
            try:
                if batch.inserts:
                    db.executemany(f"INSERT OR REPLACE INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   batch.inserts)
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
