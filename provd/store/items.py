"""The provisioned items on flash: one SQLite file with durable transactions.

spec §8.2 [B]: one `WriteItems` is one transaction; after a power cut the
store holds the whole transaction or none of it, never a mix and never a
corrupt file. How that is met:

- Journal `WAL` with `synchronous=FULL`: a commit appends the changed pages to
  `items.db-wal` and fdatasyncs that one file; the database file is only written
  at checkpoints. Measured by `bench/bench_store_io.py`: one fdatasync per
  commit, plus two per checkpoint (every ~1000 pages). The rollback journals
  (`DELETE`, `TRUNCATE`) need 4-5 syncs per commit there, and `synchronous=NORMAL`
  would lose the last commits on power loss (a WriteItems answered `accepted`
  must survive), so WAL+FULL is the cheapest setting that keeps the promise.
- One writer per store: `open` takes an exclusive `flock` on `items.db.lock`
  for the life of the `ItemStore` (a second daemon gets `StoreError`, and a
  store in use is never mistaken for a corrupt one), and every write runs in
  `BEGIN IMMEDIATE` so another SQLite connection (an operator's `sqlite3`
  shell) cannot interleave. An `ItemStore` is used from one thread.
- At start the file gets `PRAGMA integrity_check` and a schema check. A store
  that fails them (random bytes, truncated, zero length, a foreign or newer
  schema, unreadable blocks) is renamed aside with its `-wal`/`-shm` files
  (`items.db.corrupt-<UTC stamp>`, the newest three kept for field analysis),
  logged, and a fresh store is created: provd never refuses to start because
  of its own data (issue 3). `ItemStore.recovered_from` tells the caller, who
  then starts from defaults.
- A fresh store is built as `items.db.new` and renamed into place once its
  schema is committed, so `items.db` never exists half-created and a
  zero-length `items.db` always means lost data.
- Schema version in `PRAGMA user_version`, migrated step by step at open.

The file work of the last three points (checks, migrations, moving aside, the fresh
build) is in `provd.store.itemdb`; `ItemStore.open` decides and logs.

The local-changes queue and the `configuration-changed-flag` (spec §3.2, §3.5)
are written in the same transaction as the local change itself, so a change
is never committed without being queued for the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from provd.store.errors import StoreError
from provd.store.itemdb import (
    SCHEMA,
    Connect,
    Unusable,
    build_fresh,
    move_aside,
    open_existing,
    remove_set,
)

log = logging.getLogger(__name__)

DB_NAME = "items.db"
LOCK_NAME = "items.db.lock"
_BUILD_NAME = "items.db.new"

#: journald MESSAGE_IDs, one per kind of event (each explained in systemd/provd.catalog).
#: STORE_RECOVERED is also provd.service.journal.MessageId.STORE_RECOVERED: one event, one id.
MSG_STORE_RECOVERED = "4615acdf0c6745849e277b668dae67be"
MSG_STORE_COMMIT_FAILED = "bf0c7193f2d54afb9d4cde360404873b"
MSG_STORE_MIGRATED = "4a8ca855218041a89532e76af48f6631"

_SCALAR = -1  # stored index of a scalar item: NULL is not usable in a primary key
_FLAG_CHANGED = "configuration-changed"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _connect(path: str) -> sqlite3.Connection:
    # The daemon's loop thread (provctl get/set) and its worker (interactions)
    # both use the store; ItemStore serializes them with its own lock.
    return sqlite3.connect(path, check_same_thread=False)


@dataclass(frozen=True, slots=True)
class Change:
    """One change to commit: `value` None deletes the item."""

    name: str
    index: int | None
    value: str | None

    def __post_init__(self) -> None:
        if self.index is not None and self.index < 0:
            raise ValueError(f"negative index for {self.name}")


@dataclass(frozen=True, slots=True)
class Row:
    """One stored item."""

    name: str
    index: int | None
    value: str


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A local change the server has not received yet (spec §3.5)."""

    seq: int
    name: str
    index: int | None


def _idx(index: int | None) -> int:
    return _SCALAR if index is None else index


def _index(idx: int) -> int | None:
    return None if idx == _SCALAR else idx


@contextlib.contextmanager
def _storage(what: str) -> Iterator[None]:
    """Translate foreign storage errors into `StoreError` at the border."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"item store: {what} failed: {exc}") from exc


_F = TypeVar("_F", bound=Callable[..., Any])


def _serialized(method: _F) -> _F:
    """Run `method` under the store's mutex: one thread in the store at a time."""

    @functools.wraps(method)
    def wrapper(self: ItemStore, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


class ItemStore:
    """The item store of one state directory; create it with `ItemStore.open`."""

    def __init__(self, conn: sqlite3.Connection, lock_fd: int, recovered_from: Path | None) -> None:
        self._conn = conn
        self._lock_fd = lock_fd
        self._mutex = threading.RLock()
        #: Where a corrupt store was moved aside at open, or None.
        self.recovered_from = recovered_from

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        clock: Callable[[], datetime] = _utc_now,
        connect: Connect = _connect,
    ) -> ItemStore:
        """Open (creating, checking, migrating or recovering) `state_dir/items.db`.

        `clock` stamps the name of a store moved aside; `connect` opens a SQLite
        connection for a path (tests pass one that injects failures). Raises
        `StoreError` only when the environment is broken (the directory cannot
        be written, another process holds the store), never for bad content.
        """
        with _storage("creating the state directory"):
            state_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(state_dir / LOCK_NAME)
        try:
            path = state_dir / DB_NAME
            recovered_from = None
            with _storage("opening"):
                remove_set(state_dir / _BUILD_NAME)
                if path.exists():
                    try:
                        conn = open_existing(path, connect, on_migrated=_log_migrated)
                    except Unusable as exc:
                        recovered_from = move_aside(path, clock())
                        _log_recovered(path, str(exc), recovered_from)
                if not path.exists():
                    # A fresh store is built at the newest schema: nothing was migrated.
                    build_fresh(state_dir / _BUILD_NAME, path, connect, on_migrated=_log_created)
                    conn = open_existing(path, connect, on_migrated=_log_migrated)
            return cls(conn, lock_fd, recovered_from)
        except Unusable as exc:  # even the store just built fails its check: the disk is bad
            os.close(lock_fd)
            raise StoreError(f"item store: fresh store unusable: {exc}") from exc
        except BaseException:
            os.close(lock_fd)
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @_serialized
    def get(self, name: str, index: int | None = None) -> str | None:
        """The stored value of `name` (at `index`), or None if not stored."""
        with _storage("reading"):
            row = self._conn.execute(
                "SELECT value FROM items WHERE name = ? AND idx = ?", (name, _idx(index))
            ).fetchone()
        return None if row is None else str(row[0])

    @_serialized
    def rows(self) -> list[Row]:
        """Every stored item, sorted by (name, index); a scalar sorts first."""
        with _storage("reading"):
            found = self._conn.execute(
                "SELECT name, idx, value FROM items ORDER BY name, idx"
            ).fetchall()
        return [Row(name, _index(idx), value) for name, idx, value in found]

    @_serialized
    def stored_values(self) -> dict[tuple[str, int | None], str]:
        """Every stored value by (name, index): `rows()` without the objects, for a
        large WriteItems that compares its items with what is stored."""
        with _storage("reading"):
            found = self._conn.execute("SELECT name, idx, value FROM items").fetchall()
        return {(name, None if idx == _SCALAR else idx): value for name, idx, value in found}

    @_serialized
    def commit(self, changes: Sequence[Change], *, local: bool = False) -> None:
        """Apply `changes` in one durable transaction, or raise `StoreError` having
        changed nothing.

        `local=True` marks a change made through the local interface: the same
        transaction queues the keys for the next `local-changes` report and sets
        the configuration-changed flag (spec §3.2, §3.5). An empty `changes` is a
        no-op.
        """
        if not changes:
            return
        upserts = [(c.name, _idx(c.index), c.value) for c in changes if c.value is not None]
        deletes = [(c.name, _idx(c.index)) for c in changes if c.value is None]
        keys = list(dict.fromkeys((c.name, _idx(c.index)) for c in changes))

        def body(conn: sqlite3.Connection) -> None:
            if upserts:
                conn.executemany(
                    "INSERT INTO items (name, idx, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (name, idx) DO UPDATE SET value = excluded.value",
                    upserts,
                )
            if deletes:
                conn.executemany("DELETE FROM items WHERE name = ? AND idx = ?", deletes)
            if local:
                # One queue entry per key, carrying the newest seq (spec §3.5).
                conn.executemany("DELETE FROM local_changes WHERE name = ? AND idx = ?", keys)
                conn.executemany("INSERT INTO local_changes (name, idx) VALUES (?, ?)", keys)
                _set_flag(conn, _FLAG_CHANGED, True)

        self._transaction("commit", body, count=len(changes))

    @_serialized
    def pending_local_changes(self) -> list[PendingChange]:
        """The queued local changes, oldest first."""
        with _storage("reading the local-changes queue"):
            found = self._conn.execute(
                "SELECT seq, name, idx FROM local_changes ORDER BY seq"
            ).fetchall()
        return [PendingChange(seq, name, _index(idx)) for seq, name, idx in found]

    @_serialized
    def acknowledge_local_changes(self, upto_seq: int) -> None:
        """The server received the changes up to `upto_seq`: drop them from the queue.

        The configuration-changed flag is left alone; the caller clears it with
        `clear_configuration_changed` when the report completes (spec §3.2).
        """
        self._transaction(
            "acknowledging local changes",
            lambda conn: conn.execute("DELETE FROM local_changes WHERE seq <= ?", (upto_seq,)),
        )

    @_serialized
    def configuration_changed(self) -> bool:
        """The persisted `configuration-changed-flag` (spec §3.2)."""
        with _storage("reading a flag"):
            row = self._conn.execute(
                "SELECT value FROM flags WHERE name = ?", (_FLAG_CHANGED,)
            ).fetchone()
        return row is not None and bool(row[0])

    @_serialized
    def clear_configuration_changed(self) -> None:
        """The server completed `ReadAllItems` or received a `local-changes` report."""
        self._transaction("clearing a flag", lambda conn: _set_flag(conn, _FLAG_CHANGED, False))

    @_serialized
    def meta_get(self, key: str) -> str | None:
        """A small durable value of provd's own (e.g. the retry failure count)."""
        with _storage("reading meta"):
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @_serialized
    def meta_set(self, key: str, value: str | None) -> None:
        """Set (None: remove) a meta value durably."""

        def body(conn: sqlite3.Connection) -> None:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

        self._transaction("writing meta", body)

    @_serialized
    def wipe(self) -> None:
        """Factory reset: every item, the queue, the flags and meta go in one transaction.

        Afterwards the WAL is checkpointed and truncated so old values do not
        linger in it (deleted content is zeroed by `secure_delete`).
        """

        def body(conn: sqlite3.Connection) -> None:
            for table in SCHEMA:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 -- fixed table names

        self._transaction("wipe", body)
        with _storage("checkpoint after wipe"):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    @_serialized
    def close(self) -> None:
        """Close the store (checkpointing the WAL) and release the writer lock."""
        if self._lock_fd < 0:
            return
        try:
            with _storage("closing"):
                self._conn.close()
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _transaction(
        self, what: str, body: Callable[[sqlite3.Connection], object], *, count: int = 0
    ) -> None:
        """Run `body` in one `BEGIN IMMEDIATE` transaction; all or nothing."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            body(conn)
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            # SQLite may already have rolled back itself (SQLITE_FULL, IOERR).
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            log.error(
                "item store: %s of %d changes failed, nothing committed: %s",
                what,
                count,
                exc,
                extra={"MESSAGE_ID": MSG_STORE_COMMIT_FAILED, "PROVD_EVENT": "store-commit-failed"},
            )
            raise StoreError(f"item store: {what} failed: {exc}") from exc


def _set_flag(conn: sqlite3.Connection, name: str, value: bool) -> None:
    conn.execute(
        "INSERT INTO flags (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, int(value)),
    )


def _lock(path: Path) -> int:
    """Take the one-writer lock; released by the kernel if the process dies."""
    with _storage("opening the lock file"):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StoreError(f"item store: {path.parent} is in use by another process") from exc
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"item store: locking {path} failed: {exc}") from exc
    return fd


def _log_created(from_version: int, to_version: int) -> None:
    log.info("item store: created at schema version %d", to_version)


def _log_migrated(from_version: int, to_version: int) -> None:
    log.info(
        "item store: schema migrated from version %d to %d",
        from_version,
        to_version,
        extra={"MESSAGE_ID": MSG_STORE_MIGRATED, "PROVD_EVENT": "store-migrated"},
    )


def _log_recovered(path: Path, reason: str, aside: Path) -> None:
    log.error(
        "item store %s unusable (%s); moved aside to %s, starting from defaults",
        path,
        reason,
        aside.name,
        extra={
            "MESSAGE_ID": MSG_STORE_RECOVERED,
            "PROVD_EVENT": "store-recovered",
            "PROVD_STORE_PATH": str(path),
            "PROVD_STORE_ASIDE": str(aside),
        },
    )
