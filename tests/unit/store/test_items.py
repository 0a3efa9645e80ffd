"""The item store on real files: transactions, local-changes queue, recovery, migration."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from provd.store.errors import StoreError
from provd.store.itemdb import SCHEMA_VERSION
from provd.store.items import (
    DB_NAME,
    MSG_STORE_RECOVERED,
    Change,
    ItemStore,
    PendingChange,
    Row,
)

FIXED_NOW = datetime(2026, 11, 29, 12, 3, 4, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED_NOW


def at(when: datetime) -> Callable[[], datetime]:
    return lambda: when


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ItemStore]:
    s = ItemStore.open(tmp_path)
    yield s
    s.close()


def snapshot(path: Path) -> tuple[list[Row], list[PendingChange], bool]:
    with ItemStore.open(path) as s:
        return s.rows(), s.pending_local_changes(), s.configuration_changed()


# -- basic operations --------------------------------------------------------


def test_commit_then_get_returns_values_of_scalar_and_indexed_items(store: ItemStore) -> None:
    store.commit([Change("e164", None, "4711"), Change("dls-server-ca", 0, "A")])
    assert store.get("e164") == "4711"
    assert store.get("dls-server-ca", 0) == "A"
    assert store.get("dls-server-ca") is None
    assert store.get("dls-server-ca", 1) is None
    assert store.get("unknown") is None


def test_rows_are_sorted_by_name_then_index_with_scalar_first(store: ItemStore) -> None:
    store.commit(
        [
            Change("b", 2, "b2"),
            Change("b", None, "b"),
            Change("a", None, "a"),
            Change("b", 0, "b0"),
            Change("b", 10, "b10"),
        ]
    )
    assert store.rows() == [
        Row("a", None, "a"),
        Row("b", None, "b"),
        Row("b", 0, "b0"),
        Row("b", 2, "b2"),
        Row("b", 10, "b10"),
    ]


def test_a_change_with_value_none_deletes_and_a_later_change_overwrites(
    store: ItemStore,
) -> None:
    store.commit([Change("x", None, "1"), Change("y", 3, "2")])
    store.commit([Change("x", None, None), Change("y", 3, "22"), Change("gone", None, None)])
    assert store.rows() == [Row("y", 3, "22")]


def test_empty_value_is_stored_and_distinct_from_absent(store: ItemStore) -> None:
    store.commit([Change("x", None, "")])
    assert store.get("x") == ""
    assert store.rows() == [Row("x", None, "")]


def test_committed_items_survive_reopen(tmp_path: Path) -> None:
    with ItemStore.open(tmp_path) as s:
        s.commit([Change("sntp-addr", None, "10.0.0.1")])
    with ItemStore.open(tmp_path) as s:
        assert s.get("sntp-addr") == "10.0.0.1"
        assert s.recovered_from is None


def test_negative_index_is_refused_before_reaching_the_store() -> None:
    with pytest.raises(ValueError, match="negative index"):
        Change("x", -1, "v")


def test_second_open_of_the_same_directory_is_refused_while_the_first_is_open(
    tmp_path: Path,
) -> None:
    with ItemStore.open(tmp_path), pytest.raises(StoreError, match="in use"):
        ItemStore.open(tmp_path)
    ItemStore.open(tmp_path).close()  # released on close


def test_use_after_close_raises_store_error(tmp_path: Path) -> None:
    s = ItemStore.open(tmp_path)
    s.close()
    with pytest.raises(StoreError):
        s.rows()


# -- local changes and the configuration-changed flag (spec §3.2, §3.5) --------


def test_local_commit_queues_keys_and_sets_flag_persistently(tmp_path: Path) -> None:
    with ItemStore.open(tmp_path) as s:
        assert not s.configuration_changed()
        s.commit([Change("e164", None, "1")])  # from the server: not queued
        assert s.pending_local_changes() == []
        assert not s.configuration_changed()
        s.commit([Change("e164", None, "2"), Change("key", 3, "k")], local=True)
    _, pending, flag = snapshot(tmp_path)
    assert [(p.name, p.index) for p in pending] == [("e164", None), ("key", 3)]
    assert pending[0].seq < pending[1].seq
    assert flag


def test_a_key_changed_twice_is_queued_once_with_the_newer_seq(store: ItemStore) -> None:
    store.commit([Change("a", None, "1")], local=True)
    store.commit([Change("b", None, "1")], local=True)
    first = store.pending_local_changes()
    store.commit([Change("a", None, "2")], local=True)
    pending = store.pending_local_changes()
    assert [(p.name, p.index) for p in pending] == [("b", None), ("a", None)]
    assert pending[-1].seq > max(p.seq for p in first)


def test_acknowledge_drops_only_entries_up_to_seq_and_survives_reopen(tmp_path: Path) -> None:
    with ItemStore.open(tmp_path) as s:
        s.commit([Change("a", None, "1")], local=True)
        reported = s.pending_local_changes()
        # changed again while the report was on its way: must stay queued
        s.commit([Change("a", None, "2"), Change("b", None, "1")], local=True)
        s.acknowledge_local_changes(reported[-1].seq)
    _, pending, flag = snapshot(tmp_path)
    assert [(p.name, p.index) for p in pending] == [("a", None), ("b", None)]
    assert flag  # acknowledging does not clear the flag by itself


def test_seq_is_never_reused_after_the_queue_was_emptied(tmp_path: Path) -> None:
    with ItemStore.open(tmp_path) as s:
        s.commit([Change("a", None, "1")], local=True)
        old = s.pending_local_changes()[-1].seq
        s.acknowledge_local_changes(old)
        assert s.pending_local_changes() == []
    with ItemStore.open(tmp_path) as s:
        s.commit([Change("b", None, "1")], local=True)
        assert s.pending_local_changes()[0].seq > old


def test_clear_configuration_changed_persists(tmp_path: Path) -> None:
    with ItemStore.open(tmp_path) as s:
        s.commit([Change("a", None, "1")], local=True)
        s.clear_configuration_changed()
    _, pending, flag = snapshot(tmp_path)
    assert not flag
    assert len(pending) == 1  # the queue is separate from the flag


# -- meta and wipe -------------------------------------------------------------


def test_meta_set_get_remove_persist(tmp_path: Path) -> None:
    with ItemStore.open(tmp_path) as s:
        assert s.meta_get("retry-failures") is None
        s.meta_set("retry-failures", "3")
        s.meta_set("default-trust", "pin")
        s.meta_set("default-trust", None)
    with ItemStore.open(tmp_path) as s:
        assert s.meta_get("retry-failures") == "3"
        assert s.meta_get("default-trust") is None
        assert s.rows() == []  # meta is not items


def test_wipe_removes_items_queue_flag_and_meta_and_keeps_a_usable_store(
    tmp_path: Path,
) -> None:
    with ItemStore.open(tmp_path) as s:
        s.commit([Change("a", None, "secret-ish"), Change("b", 1, "x")], local=True)
        s.meta_set("k", "v")
        s.wipe()
        assert s.rows() == []
        s.commit([Change("c", None, "after")])
    with ItemStore.open(tmp_path) as s:
        assert s.rows() == [Row("c", None, "after")]
        assert s.pending_local_changes() == []
        assert not s.configuration_changed()
        assert s.meta_get("k") is None
    # the WAL carrying the old values was truncated and the file no longer holds them
    assert b"secret-ish" not in (tmp_path / DB_NAME).read_bytes()


# -- schema version and migration ----------------------------------------------


def test_fresh_store_is_at_the_current_schema_version_in_wal_mode(tmp_path: Path) -> None:
    ItemStore.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert not (tmp_path / "items.db.new").exists()


def test_a_version_0_file_is_migrated_to_1_not_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A version-0 file: a valid SQLite database without provd's schema, as SQLite
    # leaves it when the first migration never committed.
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE scratch (x)")
    conn.execute("DROP TABLE scratch")
    conn.commit()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    caplog.set_level(logging.INFO, logger="provd.store.items")
    with ItemStore.open(tmp_path) as s:
        assert s.recovered_from is None
        s.commit([Change("a", None, "1")])
        assert s.get("a") == "1"
    assert "migrated from version 0 to 1" in caplog.text
    assert not list(tmp_path.glob("*.corrupt-*"))
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


# -- corrupt stores are moved aside ----------------------------------------------


def _populated(tmp_path: Path, n: int = 300) -> Path:
    with ItemStore.open(tmp_path) as s:
        s.commit([Change(f"item-{i}", None, "v" * 60) for i in range(n)])
    return tmp_path / DB_NAME


def _assert_recovered(tmp_path: Path, corrupt: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="provd.store.items")
    with ItemStore.open(tmp_path, clock=fixed_clock) as s:
        aside = tmp_path / "items.db.corrupt-20261129T120304Z"
        assert s.recovered_from == aside
        assert aside.read_bytes() == corrupt  # kept for field analysis, untouched
        assert s.rows() == []
        s.commit([Change("a", None, "works")])
    with ItemStore.open(tmp_path) as s:  # the fresh store is a proper one
        assert s.recovered_from is None
        assert s.rows() == [Row("a", None, "works")]
    records = [r for r in caplog.records if getattr(r, "MESSAGE_ID", None) == MSG_STORE_RECOVERED]
    assert len(records) == 1
    assert records[0].levelno >= logging.WARNING


def test_store_of_random_bytes_is_moved_aside_and_a_fresh_one_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = random.Random(3).randbytes(40_000)
    (tmp_path / DB_NAME).write_bytes(garbage)
    _assert_recovered(tmp_path, garbage, caplog)


def test_truncated_store_is_moved_aside_and_a_fresh_one_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _populated(tmp_path)
    data = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(data)
    _assert_recovered(tmp_path, data, caplog)


def test_zero_length_store_is_moved_aside_and_a_fresh_one_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _populated(tmp_path)
    (tmp_path / DB_NAME).write_bytes(b"")
    _assert_recovered(tmp_path, b"", caplog)


def test_store_with_a_page_overwritten_by_garbage_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _populated(tmp_path)
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 2 + 512] = random.Random(5).randbytes(512)
    path.write_bytes(bytes(data))
    _assert_recovered(tmp_path, bytes(data), caplog)


def test_foreign_sqlite_database_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    foreign = (tmp_path / DB_NAME).read_bytes()
    _assert_recovered(tmp_path, foreign, caplog)


def test_store_with_wrong_schema_at_version_1_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ItemStore.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute("DROP TABLE meta")
    conn.execute("CREATE TABLE meta (other TEXT)")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    _assert_recovered(tmp_path, (tmp_path / DB_NAME).read_bytes(), caplog)


def test_store_from_a_newer_release_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ItemStore.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    _assert_recovered(tmp_path, (tmp_path / DB_NAME).read_bytes(), caplog)


def test_corrupt_store_is_moved_aside_with_its_wal_and_shm(tmp_path: Path) -> None:
    garbage = random.Random(4).randbytes(8192)
    (tmp_path / DB_NAME).write_bytes(garbage)
    (tmp_path / "items.db-wal").write_bytes(b"wal bytes")
    (tmp_path / "items.db-shm").write_bytes(b"shm bytes")
    with ItemStore.open(tmp_path, clock=fixed_clock) as s:
        aside = s.recovered_from
    assert aside is not None
    assert Path(f"{aside}-wal").read_bytes() == b"wal bytes"  # evidence kept as found
    assert Path(f"{aside}-shm").exists()  # (an index SQLite rebuilds: content not kept)
    assert not (tmp_path / "items.db-wal").exists()


def test_repeated_recoveries_keep_only_the_newest_three_aside(tmp_path: Path) -> None:
    for n in range(5):
        (tmp_path / DB_NAME).write_bytes(b"garbage %d" % n * 100)
        ItemStore.open(tmp_path, clock=at(datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC))).close()
    kept = sorted(p.name for p in tmp_path.glob("items.db.corrupt-*"))
    assert kept == [
        "items.db.corrupt-20260101T000002Z",
        "items.db.corrupt-20260101T000003Z",
        "items.db.corrupt-20260101T000004Z",
    ]


def test_two_recoveries_in_the_same_second_keep_both(tmp_path: Path) -> None:
    for n in range(2):
        (tmp_path / DB_NAME).write_bytes(b"garbage %d" % n * 100)
        ItemStore.open(tmp_path, clock=fixed_clock).close()
    assert len(list(tmp_path.glob("items.db.corrupt-*"))) == 2


# -- storage failures in the middle of a commit ------------------------------------


def _state(tmp_path: Path) -> tuple[list[Row], list[PendingChange], bool]:
    return snapshot(tmp_path)


def _seeded(tmp_path: Path) -> tuple[list[Row], list[PendingChange], bool]:
    with ItemStore.open(tmp_path) as s:
        s.commit([Change(f"old-{i}", None, "before") for i in range(20)])
        s.commit([Change("local", None, "1")], local=True)
        s.clear_configuration_changed()
    return _state(tmp_path)


def test_io_error_raised_by_sqlite_mid_statement_rolls_back_everything(tmp_path: Path) -> None:
    before = _seeded(tmp_path)

    def connect(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path)
        # A failure inside SQLite itself, after 50 rows of the statement went in.
        conn.execute(
            "CREATE TEMP TRIGGER inject BEFORE INSERT ON main.items WHEN NEW.name = 'new-50'"
            " BEGIN SELECT RAISE(FAIL, 'disk I/O error (injected)'); END"
        )
        return conn

    with ItemStore.open(tmp_path, connect=connect) as s:
        changes = [Change(f"new-{i}", None, "after") for i in range(100)]
        changes += [Change("old-3", None, None), Change("old-4", None, "after")]
        with pytest.raises(StoreError, match="injected"):
            s.commit(changes, local=True)
        assert s.get("new-0") is None  # nothing visible even to the same connection
        assert s.get("old-3") == "before"
    assert _state(tmp_path) == before


class FailingConnection(sqlite3.Connection):
    """Raises SQLite's I/O error when a statement containing `fail_on` runs."""

    fail_on: str | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.fail_on is not None and self.fail_on in sql:
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.fail_on is not None and self.fail_on in sql:
            raise sqlite3.OperationalError("disk I/O error")
        return super().executemany(sql, *args)


@pytest.mark.parametrize(
    "fail_on",
    ["DELETE FROM items", "INSERT INTO local_changes", "INSERT INTO flags", "COMMIT"],
)
def test_io_error_at_any_step_of_a_commit_changes_nothing(tmp_path: Path, fail_on: str) -> None:
    before = _seeded(tmp_path)
    conns: list[FailingConnection] = []

    def connect(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, factory=FailingConnection)
        conns.append(conn)
        return conn

    with ItemStore.open(tmp_path, connect=connect) as s:
        conns[-1].fail_on = fail_on
        with pytest.raises(StoreError, match="disk I/O error"):
            s.commit(
                [
                    Change("new", 1, "after"),
                    Change("old-1", None, "after"),
                    Change("old-2", None, None),
                ],
                local=True,
            )
        conns[-1].fail_on = None
        s.commit([Change("next", None, "works")])  # the store stays usable
        assert s.get("old-1") == "before"
    rows, pending, flag = _state(tmp_path)
    assert (rows, pending, flag) == (
        sorted(
            [*before[0], Row("next", None, "works")],
            key=lambda r: (r.name, -1 if r.index is None else r.index),
        ),
        before[1],
        before[2],
    )


def test_full_disk_mid_commit_raises_store_error_and_commits_nothing(tmp_path: Path) -> None:
    before = _seeded(tmp_path)

    def connect(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path)
        # No page may be added beyond what the file has now: SQLITE_FULL, as on a
        # full filesystem.
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    with ItemStore.open(tmp_path, connect=connect) as s:
        big = [Change(f"big-{i}", None, "x" * 1000) for i in range(200)]
        with pytest.raises(StoreError, match="full"):
            s.commit([Change("old-1", None, "after"), *big], local=True)
        assert s.get("old-1") == "before"
    assert _state(tmp_path) == before


def test_store_error_message_carries_no_item_value(tmp_path: Path) -> None:
    _seeded(tmp_path)

    def connect(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    with ItemStore.open(tmp_path, connect=connect) as s, pytest.raises(StoreError) as info:
        s.commit([Change(f"pw-{i}", None, "hunter2" * 200) for i in range(100)])
    assert "hunter2" not in str(info.value)


def test_open_fails_with_store_error_when_the_state_dir_cannot_be_created(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreError):
        ItemStore.open(blocker / "state")


def test_a_fresh_store_leaves_only_the_database_and_its_lock_file(tmp_path: Path) -> None:
    # The build file was renamed into place and the WAL checkpointed away on close.
    ItemStore.open(tmp_path).close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["items.db", "items.db.lock"]


def test_stored_values_maps_name_and_index_to_value(store: ItemStore) -> None:
    store.commit(
        [
            Change("sntp-addr", None, "time.example.com"),
            Change("ldap-server-address", 1, "ldap1"),
            Change("ldap-server-address", 2, "ldap2"),
        ]
    )
    store.commit([Change("ldap-server-address", 2, None)])
    assert store.stored_values() == {
        ("sntp-addr", None): "time.example.com",
        ("ldap-server-address", 1): "ldap1",
    }
