"""Deployed files (FileDeployment, spec §6.1): kept by type under one directory.

Layout: ``root/<TYPE>/<name>``, one directory per file type (`MOH`, `PIC`, `LDAP`,
`LOGO`, `SCREENSAVER`, `RINGTONE` [G p.245], more when configured), plus a small
index ``root/.index.json`` holding each file's deployment date and time and the
status of its last deployment (the `file-deployment-*` items, [G p.245]).

Safety, spec §6.1 [B]:

- A name is ONE safe path component: not empty, not ``.`` or ``..``, no ``/``, no
  NUL nor other control character, no leading ``.`` (hidden and temporary files
  are the store's own), at most 255 bytes of UTF-8. A type must be one of the
  configured types. Both are checked before anything is downloaded (`check`).
- Size: each type has a limit (`PIC` 300 kB [G p.178], others settable) and all
  files together a quota; the file being replaced does not count against it.
- Atomic visibility: a download goes to a temporary dotfile in the type's own
  directory (same filesystem), never visible under the final name; `commit` fsyncs
  it, renames it over the final name and fsyncs the directory. Until then the
  previous file of that name is untouched; `abort` removes the temporary file.
- Nothing is written outside `root`: every directory used is checked, after
  resolving symlinks, to be `root/<TYPE>` itself.

Power cuts (issue 8's power-cut suite): the file's modification time is set to its
deployment time before the rename, and each index entry records which file it
describes (inode, size, modification time). After a crash between the rename and the
index update the entry no longer matches the file, so the file is listed as a
successful deployment dated from its modification time, which is exact, never with
the previous file's date or failed status. Temporary files left by a crash (a staged
download, the index's own) are removed when the store is opened. One writer per store
(the daemon).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from provd.store.errors import StoreError
from provd.store.fsutil import atomic_write, fsync_directory, is_temporary, remove_durably

log = logging.getLogger(__name__)

#: `file-deployment-type` values the guide lists [G p.245].
DEFAULT_FILE_TYPES = ("MOH", "PIC", "LDAP", "LOGO", "SCREENSAVER", "RINGTONE")
#: [G p.178] picture clips up to 300 kB.
DEFAULT_TYPE_LIMITS: Mapping[str, int] = {"PIC": 300 * 1024}
#: For types without a limit of their own.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024
#: NAME_MAX of Linux filesystems, in bytes.
NAME_MAX_BYTES = 255
#: Failed deployments of names that have no file are remembered up to this many.
MAX_FAILED_ENTRIES = 64

INDEX_NAME = ".index.json"
_INDEX_VERSION = 1
_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEMP_PREFIX = ".deploy-"
_TEMP_SUFFIX = ".tmp"

RefusalKind = Literal["bad-name", "bad-type", "too-large", "quota", "storage"]
FileStatus = Literal["ok", "failed"]
#: Which file an index entry describes: (inode, size, modification time in ns).
Identity = tuple[int, int, int]


def _identity(st: os.stat_result) -> Identity:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class FileRefused(StoreError):
    """The store refuses a file; `kind` says why, `message` is safe to log."""

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: RefusalKind = kind
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployedFile:
    """One entry of the index: a file on the phone, or a failed attempt at one.

    `date` is ``DD:MM:YYYY`` and `time` ``HH:MM:SS`` [G p.54]; `status` is the
    result of the last deployment of this type and name ([G p.245]: ok | failed).
    `present` says whether a file of that name is on the phone (a failed
    re-deployment keeps the previous file, spec §6.1).
    """

    type: str
    name: str
    date: str
    time: str
    status: FileStatus
    present: bool = True
    #: The file this entry describes; internal, not part of an entry's equality.
    identity: Identity | None = dataclasses.field(default=None, compare=False, repr=False)


def check_name(name: str) -> None:
    """Raise `FileRefused` ``bad-name`` unless `name` is one safe path component."""
    if not name or name in (".", ".."):
        raise FileRefused("bad-name", "empty or a directory reference")
    if "/" in name:
        raise FileRefused("bad-name", "contains '/'")
    if _CONTROL.search(name):
        raise FileRefused("bad-name", "contains NUL or a control character")
    if name.startswith("."):
        raise FileRefused("bad-name", "starts with '.'")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise FileRefused("bad-name", "not encodable as UTF-8") from None
    if len(encoded) > NAME_MAX_BYTES:
        raise FileRefused("bad-name", f"longer than {NAME_MAX_BYTES} bytes")


def _local_now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


@contextlib.contextmanager
def _storage(what: str) -> Iterator[None]:
    try:
        yield
    except FileRefused:
        raise
    except OSError as exc:
        raise FileRefused("storage", f"{what}: {exc.strerror or type(exc).__name__}") from exc


class Staging:
    """A file being received: write to `file`, then `commit` or `abort`.

    `max_bytes` is what this file may take (type limit and quota room); give it to
    the download so it stops early. `by_quota` says the quota, not the type's
    limit, set it. Use as a context manager: leaving the block without `commit`
    aborts.
    """

    def __init__(
        self,
        store: FileStore,
        type_: str,
        name: str,
        *,
        tmp: Path,
        file: BinaryIO,
        max_bytes: int,
        by_quota: bool = False,
    ) -> None:
        self._store = store
        self.type = type_
        self.name = name
        self.max_bytes = max_bytes
        self.by_quota = by_quota
        self.file = file
        self._tmp = tmp
        self._done = False

    def commit(self) -> DeployedFile:
        """Make the file visible under its name, durably; the previous one is replaced."""
        if self._done:
            raise RuntimeError("staging already finished")
        try:
            with _storage(f"committing {self.type}/{self.name}"):
                self.file.flush()
                fd = self.file.fileno()
                size = os.fstat(fd).st_size
                if size > self.max_bytes:
                    kind: RefusalKind = "quota" if self.by_quota else "too-large"
                    raise FileRefused(kind, f"{size} bytes, {self.max_bytes} allowed")
                os.fchmod(fd, 0o644)  # read by the rest of the phone (ring tones, logos)
                # Dated before it becomes visible: if the power goes before the index
                # is written, the modification time is still the deployment's time.
                when = self._store._clock()
                stamp = int(when.timestamp() * 1_000_000_000)
                os.utime(fd, ns=(stamp, stamp))
                os.fsync(fd)
                identity = _identity(os.fstat(fd))
                self.file.close()
                final = self._store._target(self.type, self.name)
                self._tmp.replace(final)
                self._done = True
                fsync_directory(final.parent)
        except BaseException:
            self.abort()
            raise
        return self._store._record(self.type, self.name, "ok", when=when, identity=identity)

    def abort(self) -> None:
        """Drop the received bytes; the previous file of that name stays as it was."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class FileStore:
    """The deployed files under `root` (spec §6.1).

    `limits` maps a type to its size limit in bytes (types not named get
    `default_limit`); `quota` bounds all files together; `types` and the types
    named in `limits` make the whitelist of file types (upper-case letters,
    digits, ``_``); `clock` gives the local time of deployments.
    """

    def __init__(
        self,
        root: Path,
        *,
        limits: Mapping[str, int] = DEFAULT_TYPE_LIMITS,
        quota: int,
        default_limit: int = DEFAULT_MAX_SIZE,
        types: Iterable[str] = DEFAULT_FILE_TYPES,
        clock: Callable[[], datetime.datetime] = _local_now,
    ) -> None:
        # A type with a limit of its own is a known type (settings name types that way).
        self.types = frozenset(types) | frozenset(limits)
        for type_ in self.types:
            if not _TYPE.fullmatch(type_):
                raise ValueError(f"not a file type: {type_!r}")
        self.quota = quota
        self._limits = dict(limits)
        self._default_limit = default_limit
        self._clock = clock
        with _storage(f"preparing {root}"):
            root.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._root = root.resolve(strict=True)
        self._index_path = self._root / INDEX_NAME
        self._index = self._load_index()
        self._remove_leftovers()

    # ------------------------------------------------------------------ checks

    def limit_for(self, type_: str) -> int:
        """The size limit of `type_`, in bytes."""
        return self._limits.get(type_, self._default_limit)

    def check(self, type_: str, name: str) -> None:
        """Raise `FileRefused` unless `type_` and `name` may be stored (before any download)."""
        if type_ not in self.types:
            raise FileRefused("bad-type", f"unknown file type {type_[:32]!r}")
        check_name(name)

    def used(self, *, excluding: tuple[str, str] | None = None) -> int:
        """Bytes taken by all deployed files, not counting `excluding` (type, name)."""
        total = 0
        for type_, name, path in self._files():
            if (type_, name) != excluding:
                with contextlib.suppress(OSError):
                    total += path.lstat().st_size
        return total

    # ------------------------------------------------------------------ changes

    def begin(self, type_: str, name: str, announced_size: int | None = None) -> Staging:
        """Start receiving `type_`/`name`; raises `FileRefused` before anything is written."""
        self.check(type_, name)
        limit = self.limit_for(type_)
        room = self.quota - self.used(excluding=(type_, name))
        if announced_size is not None and announced_size > limit:
            raise FileRefused("too-large", f"{announced_size} bytes, {type_} allows {limit}")
        if room <= 0 or (announced_size is not None and announced_size > room):
            raise FileRefused("quota", f"{max(room, 0)} bytes left of the quota")
        with _storage(f"staging {type_}/{name}"):
            directory = self._directory(type_, create=True)
            fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=directory)
            file = os.fdopen(fd, "w+b")
        return Staging(
            self,
            type_,
            name,
            tmp=Path(tmp),
            file=file,
            max_bytes=min(limit, room),
            by_quota=room < limit,
        )

    def delete(self, type_: str, name: str) -> bool:
        """Remove `type_`/`name` durably; False when there was no such file."""
        self.check(type_, name)
        with _storage(f"deleting {type_}/{name}"):
            directory = self._directory(type_, create=False)
            existed = directory is not None and remove_durably(directory / name)
            if self._index.pop((type_, name), None) is not None:
                self._save_index()
        return existed

    def record_failure(self, type_: str, name: str) -> DeployedFile:
        """Remember that deploying `type_`/`name` failed (its previous file, if any, stays)."""
        self.check(type_, name)
        try:
            identity: Identity | None = _identity(self.path_of(type_, name).lstat())
        except OSError:
            identity = None  # no previous file: the entry stands alone
        return self._record(type_, name, "failed", when=self._clock(), identity=identity)

    def wipe(self) -> None:
        """Remove every deployed file and the index (factory reset, spec §6.3)."""
        with _storage("wiping deployed files"):
            for type_ in sorted(self.types):
                directory = self._directory(type_, create=False)
                if directory is None:
                    continue
                for entry in directory.iterdir():
                    if entry.is_file() or entry.is_symlink():
                        entry.unlink()
                fsync_directory(directory)
            self._index.clear()
            remove_durably(self._index_path)

    # ------------------------------------------------------------------ reading

    def path_of(self, type_: str, name: str) -> Path:
        """Where `type_`/`name` is (or would be) kept."""
        self.check(type_, name)
        return self._root / type_ / name

    def list(self) -> builtins.list[DeployedFile]:
        """The deployed files and failed attempts, by type and name."""
        present = {(type_, name): path for type_, name, path in self._files()}
        entries: dict[tuple[str, str], DeployedFile] = {}
        for (type_, name), path in present.items():
            try:
                st = path.lstat()
            except OSError:
                continue
            known = self._index.get((type_, name))
            if known is not None and known.identity in (None, _identity(st)):
                entries[(type_, name)] = dataclasses.replace(known, present=True)
                continue
            # Renamed into place but not (yet) indexed when the power went: the entry, if
            # any, describes the file this one replaced.
            when = datetime.datetime.fromtimestamp(st.st_mtime).astimezone()
            entries[(type_, name)] = _entry(type_, name, when, "ok", present=True)
        for key, known in self._index.items():
            if key not in present and known.status == "failed":
                entries[key] = dataclasses.replace(known, present=False)
        return [entries[key] for key in sorted(entries)]

    # ------------------------------------------------------------------ internals

    def _directory(self, type_: str, *, create: bool) -> Path | None:
        """`root/<type_>`, checked to be a real directory right there."""
        directory = self._root / type_
        if create:
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o755)
        try:
            st = directory.lstat()
        except FileNotFoundError:
            if create:
                raise
            return None
        if not stat.S_ISDIR(st.st_mode) or directory.resolve() != self._root / type_:
            raise FileRefused("storage", f"{type_} is not a directory under the files root")
        return directory

    def _target(self, type_: str, name: str) -> Path:
        directory = self._directory(type_, create=True)
        assert directory is not None
        target = directory / name
        # check_name makes this hold; keep it checked where the rename happens.
        if target.parent != self._root / type_ or target.name != name:
            raise FileRefused("bad-name", "does not stay inside its type directory")
        return target

    def _files(self) -> Iterator[tuple[str, str, Path]]:
        for type_ in sorted(self.types):
            try:
                directory = self._directory(type_, create=False)
            except FileRefused:
                continue
            if directory is None:
                continue
            with os.scandir(directory) as it:
                for entry in it:
                    if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                        yield type_, entry.name, Path(entry.path)

    def _record(
        self,
        type_: str,
        name: str,
        status: FileStatus,
        *,
        when: datetime.datetime,
        identity: Identity | None,
    ) -> DeployedFile:
        entry = _entry(type_, name, when, status, present=status == "ok", identity=identity)
        self._index.pop((type_, name), None)  # re-inserted last: the index is in recency order
        self._index[(type_, name)] = entry
        self._prune_failures()
        with _storage("writing the file index"):
            self._save_index()
        return entry

    def _prune_failures(self) -> None:
        present = {(t, n) for t, n, _ in self._files()}
        orphans = [k for k, e in self._index.items() if e.status == "failed" and k not in present]
        for key in orphans[: max(0, len(orphans) - MAX_FAILED_ENTRIES)]:
            del self._index[key]

    def _save_index(self) -> None:
        files = [
            {"type": e.type, "name": e.name, "date": e.date, "time": e.time, "status": e.status}
            | ({"file": list(e.identity)} if e.identity is not None else {})
            for e in self._index.values()
        ]
        data = json.dumps({"version": _INDEX_VERSION, "files": files}, ensure_ascii=False)
        atomic_write(self._index_path, data.encode("utf-8"), mode=0o644)

    def _load_index(self) -> dict[tuple[str, str], DeployedFile]:
        try:
            data = json.loads(self._index_path.read_bytes())
            entries = {}
            for raw in data["files"]:
                entry = DeployedFile(
                    type=str(raw["type"]),
                    name=str(raw["name"]),
                    date=str(raw["date"]),
                    time=str(raw["time"]),
                    status="failed" if raw["status"] == "failed" else "ok",
                    identity=_load_identity(raw.get("file")),
                )
                self.check(entry.type, entry.name)
                entries[(entry.type, entry.name)] = entry
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, FileRefused) as exc:
            # The files themselves are intact; they are listed with their mtime.
            log.warning("file index %s unreadable, rebuilt: %s", self._index_path, exc)
            return {}
        return entries

    def _remove_leftovers(self) -> None:
        for entry in self._root.iterdir():
            if is_temporary(entry.name):  # the index's own, from atomic_write
                log.info("removing an unfinished index write %s", entry.name)
                with contextlib.suppress(OSError):
                    entry.unlink()
        for type_ in sorted(self.types):
            try:
                directory = self._directory(type_, create=False)
            except FileRefused:
                log.warning("files root: %s is not a directory; not used", type_)
                continue
            if directory is None:
                continue
            for entry in directory.iterdir():
                if entry.name.startswith(_TEMP_PREFIX) and entry.name.endswith(_TEMP_SUFFIX):
                    log.info("removing an unfinished download %s/%s", type_, entry.name)
                    with contextlib.suppress(OSError):
                        entry.unlink()


def _entry(
    type_: str,
    name: str,
    when: datetime.datetime,
    status: FileStatus,
    *,
    present: bool,
    identity: Identity | None = None,
) -> DeployedFile:
    # [G p.54] 10:06:2008 and 15:35:52
    return DeployedFile(
        type=type_,
        name=name,
        date=when.strftime("%d:%m:%Y"),
        time=when.strftime("%H:%M:%S"),
        status=status,
        present=present,
        identity=identity,
    )


def _load_identity(raw: object) -> Identity | None:
    # Entries written before identities were kept have none: they are trusted as before.
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 3 and all(type(v) is int for v in raw)):
        raise ValueError("bad file identity")
    return (raw[0], raw[1], raw[2])
