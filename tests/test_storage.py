"""The durable store: SQLiteStore behind the Store protocol, and StorageError at its boundary (naming the path).

The store's own tests are synchronous (a store blocks; the queue runs it on a worker thread). The queue's tests
use real threads, so they bound their waits with ``trio.fail_after`` instead of a mock clock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
import trio

from actors import (
    ActorFailed,
    ActorSystem,
    Publish,
    Queue,
    SerializationError,
    StorageError,
)
from runtime import PendingWrites, SQLiteStore, StoredMessage, encode_payload

pytestmark = pytest.mark.deadline(60)


def test_store_round_trip(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path, "jobs")
    store.open()
    assert store.path == tmp_path / "jobs.sqlite3"  # a directory holds '<queue>.sqlite3'
    batch = PendingWrites()
    batch.inserts.append((1, "ex", "k", encode_payload("one", {"h": 1}), 1, 2.5, 0, 0, 1e10))
    batch.inserts.append((2, "", "k", encode_payload("two", None, ("c",), ("b",)), 0, None, 0, 0, None))
    batch.updates.append((3, 1, 1))
    store.write(batch)
    store.write(PendingWrites(deletes=[(2,)]))
    assert store.load() == [StoredMessage(1, "ex", "k", "one", {"h": 1}, True, 2.5, 3, True, expires=1e10)]
    store.close()
    store.close()  # idempotent
    reopened = SQLiteStore(tmp_path / "jobs.sqlite3", "ignored")
    reopened.open()
    assert [message.body for message in reopened.load()] == ["one"]
    reopened.close()


def test_storage_path_that_is_a_directory_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "jobs.sqlite3").mkdir()  # where the database file should be
    store = SQLiteStore(tmp_path, "jobs")
    with pytest.raises(StorageError, match=r"jobs\.sqlite3' is a directory") as info:
        store.open()
    assert str(tmp_path) in str(info.value)


def test_a_message_that_cannot_be_unpickled_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path, "q")
    store.open()
    store.write(PendingWrites(inserts=[(7, "", "k", b"not a pickle", 0, None, 0, 0, None)]))
    with pytest.raises(StorageError, match=r"message 7 .*q\.db.*cannot be unpickled"):
        store.load()
    store.close()


def test_a_closed_store_raises_storage_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db", "q")
    with pytest.raises(StorageError, match="not open"):
        store.load()


def test_a_failed_write_stores_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db", "q")
    store.open()
    bad = PendingWrites(inserts=[(1, "", "k", b"x", 0, None, 0, 0, None), (2, None, "k", b"x", 0, None, 0, 0, None)])
    with pytest.raises(StorageError, match="cannot write"):
        store.write(bad)  # exchange NOT NULL: the second row fails the transaction
    assert store.load() == []
    store.close()


def test_unpicklable_payload_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="cannot pickle") as info:
        encode_payload(lambda: None, None)
    assert info.value.__cause__ is not None


async def test_queue_with_a_directory_for_a_database_fails_to_spawn_with_storage_error(
        actor_system: ActorSystem, tmp_path: Path) -> None:
    (tmp_path / "jobs.sqlite3").mkdir()
    with trio.fail_after(10), pytest.raises(ActorFailed) as info:
        await actor_system.spawn(Queue, name="jobs", durable=True, storage=tmp_path)
    assert isinstance(info.value.cause, StorageError)
    assert "jobs.sqlite3" in str(info.value.cause)
    assert actor_system.lookup("jobs") is None


async def test_queue_with_a_corrupt_message_fails_to_spawn_with_storage_error(
        actor_system: ActorSystem, tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with trio.fail_after(10):
        queue = await actor_system.spawn(Queue, name="jobs", durable=True, storage=path)
        assert await queue.ask(Publish("k", 1)) == 1
        await actor_system.stop(queue)

    def corrupt() -> None:
        with closing(sqlite3.connect(path)) as db:
            db.execute("UPDATE messages SET payload = ?", (b"garbage",))
            db.commit()

    await trio.to_thread.run_sync(corrupt)
    with trio.fail_after(10), pytest.raises(ActorFailed) as info:
        await actor_system.spawn(Queue, name="jobs", durable=True, storage=path)
    assert isinstance(info.value.cause, StorageError)
    assert "cannot be unpickled" in str(info.value.cause)


def test_pending_writes_are_true_while_any_kind_is_pending_and_take_empties_them() -> None:
    assert not PendingWrites()
    for kind in ("inserts", "updates", "deletes"):
        writes = PendingWrites()
        getattr(writes, kind).append((1,))
        assert writes
        batch = writes.take()
        assert getattr(batch, kind) == [(1,)]
        assert not writes
        assert getattr(writes, kind) == []


@pytest.mark.parametrize(("cc", "bcc"), [((), ()), (("c",), ()), ((), ("b",)), (("c1", "c2"), ("b",))])
def test_cc_and_bcc_keys_come_back_as_stored(tmp_path: Path, cc: tuple[str, ...], bcc: tuple[str, ...]) -> None:
    store = SQLiteStore(tmp_path / "q.db", "q")
    store.open()
    store.write(PendingWrites(inserts=[(1, "ex", "k", encode_payload(b"x", None, cc, bcc), 0, None, 0, 0, None)]))
    (message,) = store.load()
    assert (message.body, message.headers, message.cc, message.bcc) == (b"x", None, cc, bcc)
    store.close()


def test_a_database_made_before_deadlines_were_stored_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY, exchange TEXT NOT NULL, routing_key TEXT NOT "
                   "NULL, payload BLOB NOT NULL, persistent INTEGER NOT NULL, ttl REAL, returns INTEGER NOT NULL, "
                   "redelivered INTEGER NOT NULL)")
        db.execute("INSERT INTO messages VALUES (1, 'ex', 'k', ?, 1, 5.0, 0, 0)", (encode_payload("old", None),))
        db.commit()
    store = SQLiteStore(path, "q")
    store.open()
    assert store.load() == [StoredMessage(1, "ex", "k", "old", None, True, 5.0, 0, False, expires=None)]
    store.close()


def test_the_store_shows_its_path_and_whether_it_is_open(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path, "jobs")
    assert repr(store) == f"<SQLiteStore {str(tmp_path)!r} closed>"
    store.open()
    assert repr(store) == f"<SQLiteStore {str(tmp_path / 'jobs.sqlite3')!r} open>"
    store.close()
    assert repr(store) == f"<SQLiteStore {str(tmp_path / 'jobs.sqlite3')!r} closed>"


def test_a_new_database_is_renamed_into_place_leaving_nothing_else(tmp_path: Path) -> None:
    (tmp_path / f"jobs.sqlite3.new-{os.getpid()}").write_bytes(b"a leftover of a crash")
    store = SQLiteStore(tmp_path, "jobs")
    store.open()
    store.close()
    assert sorted(path.name for path in tmp_path.iterdir()
                  if not path.name.endswith(("-wal", "-shm"))) == ["jobs.sqlite3"]


def test_values_in_a_pickling_error_are_cut_short() -> None:
    with pytest.raises(SerializationError) as info:
        encode_payload(lambda: None, {"h": "x" * 100})
    text = repr({"h": "x" * 100})[:60]
    assert f"with headers {text}…:" in str(info.value)
    with pytest.raises(SerializationError) as info:
        encode_payload(lambda: None, {"h": "y" * 51})  # a repr of exactly 60 characters: shown whole
    assert f"with headers {{'h': '{'y' * 51}'}}:" in str(info.value)


def test_a_store_opened_on_one_thread_is_used_on_another(tmp_path: Path) -> None:
    # The queue runs each call on a worker thread, not always the same one.
    store = SQLiteStore(tmp_path / "q.db", "q")
    store.open()
    done: list[object] = []

    def elsewhere() -> None:
        store.write(PendingWrites(inserts=[(1, "ex", "k", encode_payload("x", None), 0, None, 0, 0, None)]))
        done.extend(store.load())
        store.close()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert [message.body for message in done] == ["x"]  # type: ignore[attr-defined]


def test_a_table_of_another_shape_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY, payload BLOB)")
        db.commit()
    store = SQLiteStore(path, "q")
    store.open()
    with pytest.raises(StorageError, match=r"^cannot read the queue database .*odd\.db.*: no such column") as info:
        store.load()
    assert isinstance(info.value.__cause__, sqlite3.Error)
    store.close()
