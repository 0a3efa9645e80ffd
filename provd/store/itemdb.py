"""The SQLite file under the item store: schema, migrations, the checks at open, recovery.

`provd.store.items.ItemStore.open` decides; this module does the file work:

- At start the file gets `PRAGMA integrity_check` and a schema check
  (`open_existing`). A file that fails them (random bytes, truncated, zero length, a
  foreign or newer schema, unreadable blocks) raises `Unusable`, and the store moves
  it aside with its `-wal`/`-shm` files (`move_aside`: `items.db.corrupt-<UTC stamp>`,
  the newest three kept for field analysis) and builds a fresh one: provd never
  refuses to start because of its own data (issue 3).
- A fresh store is built beside the target and renamed into place once its schema is
  committed (`build_fresh`), so `items.db` never exists half-created and a
  zero-length `items.db` always means lost data.
- Schema version in `PRAGMA user_version`; `_MIGRATIONS[n]` takes a file from
  version n to n+1, each step in its own transaction.
- The connection gets the durability settings `provd.store.items` explains (WAL,
  `synchronous=FULL`).

No logging here: the caller reports migrations (`on_migrated`) and recoveries.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from provd.store.fsutil import fsync_directory

_ASIDE_INFIX = ".corrupt-"
_KEEP_ASIDE = 3
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

#: 'prov' in PRAGMA application_id marks a file as a provd item store.
APPLICATION_ID = 0x70726F76

#: _MIGRATIONS[n] brings a file from user_version n to n+1. Version 0 is the
#: empty database SQLite creates; never edit a released step, append one.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"PRAGMA application_id = {APPLICATION_ID}",
        "CREATE TABLE items (name TEXT NOT NULL, idx INTEGER NOT NULL,"
        " value TEXT NOT NULL, PRIMARY KEY (name, idx)) WITHOUT ROWID",
        # AUTOINCREMENT: a seq is never reused, so a late acknowledgement of an old
        # report cannot drop a change queued after it.
        "CREATE TABLE local_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL, idx INTEGER NOT NULL)",
        "CREATE INDEX local_changes_key ON local_changes (name, idx)",
        "CREATE TABLE flags (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
#: The tables of the current schema and their columns, in order.
SCHEMA: dict[str, tuple[str, ...]] = {
    "items": ("name", "idx", "value"),
    "local_changes": ("seq", "name", "idx"),
    "flags": ("name", "value"),
    "meta": ("key", "value"),
}

#: SQLite primary result codes that mean "the file's content is unusable": IOERR
#: (unreadable blocks), CORRUPT, FORMAT, NOTADB. FULL, BUSY, READONLY, CANTOPEN are
#: the environment's fault: moving a good store aside would not help.
_DATA_ERRORS = frozenset({10, 11, 24, 26})

#: Opens a SQLite connection for a path.
Connect = Callable[[str], sqlite3.Connection]
#: Told (from_version, to_version) after each committed migration step.
OnMigrated = Callable[[int, int], None]


class Unusable(Exception):
    """The file's own content is unusable (leads to moving it aside)."""


def open_existing(path: Path, connect: Connect, *, on_migrated: OnMigrated) -> sqlite3.Connection:
    """Check, connect, configure and migrate; `Unusable` if the file's content is
    bad, `sqlite3.Error`/`OSError` if the environment is."""
    if path.stat().st_size == 0:
        raise Unusable("zero-length file")
    checked = _inspect(path)
    conn = connect(str(path))
    try:
        conn.isolation_level = None  # transactions are explicit
        conn.execute("PRAGMA busy_timeout = 5000")
        with _data_errors():
            if not checked:
                _check(conn)
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = FAST")
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute("PRAGMA cell_size_check = ON")
            _migrate(conn, on_migrated)
            _check_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _inspect(path: Path) -> bool:
    """Check the file through a read-only connection, which leaves a bad file and
    its WAL as found for field analysis (a read-write one deletes the WAL on close).
    False if that needs writing (a hot rollback journal): check read-write then."""
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        with _data_errors():
            _check(conn)
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY:
            return False
        raise
    finally:
        conn.close()
    return True


@contextlib.contextmanager
def _data_errors() -> Iterator[None]:
    """SQLite errors that blame the file's content become `Unusable`."""
    try:
        yield
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode & 0xFF in _DATA_ERRORS:
            raise Unusable(f"{exc.sqlite_errorname}: {exc}") from exc
        raise


def _check(conn: sqlite3.Connection) -> None:
    """Integrity, version, owner and (at the current version) schema of the file."""
    result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
    if result != ["ok"]:
        raise Unusable("integrity check: " + "; ".join(result))
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise Unusable(f"schema version {version} is newer than {SCHEMA_VERSION}")
    if version == 0:
        tables = conn.execute(
            "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
        ).fetchone()[0]
        if tables or app_id not in (0, APPLICATION_ID):
            raise Unusable("not a provd item store (version 0 with content)")
    elif app_id != APPLICATION_ID:
        raise Unusable(f"not a provd item store (application_id {app_id:#x})")
    if version == SCHEMA_VERSION:
        _check_schema(conn)


def _check_schema(conn: sqlite3.Connection) -> None:
    for table, columns in SCHEMA.items():
        found = tuple(str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            raise Unusable(f"table {table} has columns {found}, expected {columns}")


def _migrate(conn: sqlite3.Connection, on_migrated: OnMigrated) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if exc.sqlite_errorcode == sqlite3.SQLITE_ERROR:  # the file is not what step expects
                raise Unusable(f"migration to version {step + 1}: {exc}") from exc
            raise
        on_migrated(step, step + 1)


def build_fresh(build: Path, path: Path, connect: Connect, *, on_migrated: OnMigrated) -> None:
    """Create an empty current-schema store at `build`, then rename it to `path`."""
    conn = connect(str(build))
    try:
        conn.isolation_level = None
        conn.execute("PRAGMA synchronous = FULL")  # rollback journal here: fsyncs the file
        _migrate(conn, on_migrated)
        # WAL from birth: `items.db` never needs a rollback journal (which a
        # read-only check could not replay); a clean close leaves no -wal behind.
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
    finally:
        conn.close()
    build.replace(path)
    fsync_directory(path.parent)


def remove_set(path: Path) -> None:
    """Remove the database file `path` and its side files (WAL, shared memory, journal)."""
    for suffix in ("", *_SIDE_SUFFIXES):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def move_aside(path: Path, now: datetime) -> Path:
    """Rename the unusable store and its side files aside; keep the newest few.

    Returns where the store went (`items.db.corrupt-<UTC stamp>`).
    """
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}{_ASIDE_INFIX}{stamp}")
    n = 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}{_ASIDE_INFIX}{stamp}.{n}")
    path.replace(aside)
    for suffix in _SIDE_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").replace(f"{aside}{suffix}")
    old = sorted(
        p
        for p in path.parent.glob(f"{path.name}{_ASIDE_INFIX}*")
        if not p.name.endswith(_SIDE_SUFFIXES)
    )
    for stale in old[:-_KEEP_ASIDE]:
        remove_set(stale)
    fsync_directory(path.parent)
    return aside
