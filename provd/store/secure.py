"""The secure store: secret material in an owner-only directory (spec §7, §8.2).

One file per secret in a directory of mode 0700, each file 0600, every write
an atomic durable replace (`fsutil.atomic_write`): after a power cut a file
holds its old content or its new one. What lives here, with typed accessors:

- the client key with its certificate chain (one PEM bundle, so key and
  certificate are always replaced together) — spec §7.1, §7.2;
- the server CA certificates (`dls-server-ca`, in index order) — spec §7.4;
- the pending bootstrap material, kept as received (still encrypted in the
  PIN variant) until it is committed or discarded — spec §7.3 step 1;
- the PIN attempt counter, durable so a restart does not reset it — §7.3 step 3;
- the trust pin, the SHA-256 of the pinned server's SubjectPublicKeyInfo — §7.4.

Contents never reach a log, not even at debug level: records name the file only.
A typed accessor that finds a file with unexpected content raises `StoreError`
rather than answer "none": no pin would re-pin any server, no counter would
grant fresh PIN attempts. The caller fails closed (refuses, discards).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from provd.store.errors import StoreError
from provd.store.fsutil import atomic_write, fsync_directory, is_temporary

log = logging.getLogger(__name__)

#: journald MESSAGE_IDs (each explained in systemd/provd.catalog).
MSG_SECURE_MODE_FIXED = "071299654631466389c183a1ebbf3aea"
MSG_SECURE_UNREADABLE = "3cf5b79b7550439aac647fd085172e16"

CLIENT_CREDENTIALS = "client.pem"
SERVER_CAS = "server-ca.pem"
PENDING_BOOTSTRAP = "pending-bootstrap"
PIN_ATTEMPTS = "pin-attempts"
TRUST_PIN = "trust-pin"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PIN = re.compile(r"[0-9a-f]{64}")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """The phone's private key (PEM) and its certificate chain (PEM, leaf first)."""

    key_pem: bytes
    chain_pem: bytes

    def __repr__(self) -> str:  # a repr in a traceback or log must not show the key
        return f"ClientCredentials(key_pem=<{len(self.key_pem)} bytes>, chain=...)"


@contextlib.contextmanager
def _storage(what: str, name: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        # strerror only: an OSError's str() is safe too, but keep the form fixed.
        raise StoreError(f"secure store: {what} {name} failed: {exc.strerror}") from exc


class SecureStore:
    """Secret files in `directory`, which is created (or tightened) to mode 0700."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        with _storage("preparing", str(directory)):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = directory.lstat()
            if not stat.S_ISDIR(st.st_mode):
                raise StoreError(f"secure store: {directory} is not a directory")
            if st.st_uid != os.geteuid():
                os.chown(directory, os.geteuid(), os.getegid())
                self._fixed(directory, "owner", st.st_uid)
            if stat.S_IMODE(st.st_mode) != 0o700:
                directory.chmod(0o700)
                self._fixed(directory, "mode", stat.S_IMODE(st.st_mode))
            for entry in os.scandir(directory):
                path = Path(entry.path)
                if is_temporary(entry.name):  # left by a write a crash interrupted
                    path.unlink()
                elif entry.is_file(follow_symlinks=False):
                    mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                    if mode & 0o177:
                        path.chmod(0o600)
                        self._fixed(path, "mode", mode)
            fsync_directory(directory)

    @staticmethod
    def _fixed(path: Path, what: str, was: int) -> None:
        shown = f"{was:#o}" if what == "mode" else str(was)
        log.warning(
            "secure store: %s of %s was %s, fixed to owner-only",
            what,
            path,
            shown,
            extra={
                "MESSAGE_ID": MSG_SECURE_MODE_FIXED,
                "PROVD_EVENT": "secure-store-mode-fixed",
                "PROVD_PATH": str(path),
            },
        )

    @property
    def directory(self) -> Path:
        """The directory this store keeps its files in."""
        return self._dir

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"invalid secure store name {name!r}")
        return self._dir / name

    # -- raw files ---------------------------------------------------------

    def write(self, name: str, data: bytes) -> None:
        """Replace the file `name` with `data`, atomically and durably, mode 0600."""
        path = self._path(name)
        with _storage("writing", name):
            atomic_write(path, data, mode=0o600)
        log.debug("secure store: %s written", name)

    def read(self, name: str) -> bytes | None:
        """The content of `name`, or None if there is none."""
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"secure store: reading {name} failed: {exc.strerror}") from exc
        with _storage("reading", name), os.fdopen(fd, "rb") as f:
            return f.read()

    def delete(self, name: str) -> None:
        """Remove `name` durably (no error if it is absent)."""
        path = self._path(name)
        with _storage("deleting", name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            fsync_directory(self._dir)
        log.debug("secure store: %s deleted", name)

    def wipe(self) -> None:
        """Factory reset: remove every file of the store (the directory stays)."""
        with _storage("wiping", str(self._dir)):
            for entry in os.scandir(self._dir):
                if not entry.is_dir(follow_symlinks=False):
                    Path(entry.path).unlink()
            fsync_directory(self._dir)
        log.info("secure store: wiped")

    # -- typed accessors ---------------------------------------------------

    def write_client_credentials(self, key_pem: bytes, chain_pem: bytes) -> None:
        """Keep the client key and its certificate chain, replaced together."""
        self.write(CLIENT_CREDENTIALS, key_pem.rstrip(b"\n") + b"\n" + chain_pem)

    def read_client_credentials(self) -> ClientCredentials | None:
        """The client key and chain, or None if there are none."""
        data = self.read(CLIENT_CREDENTIALS)
        if data is None:
            return None
        keys: list[bytes] = []
        certs: list[bytes] = []
        for block in _PEM_BLOCK.finditer(data):
            label = block.group(1)
            (keys if label.endswith(b"PRIVATE KEY") else certs).append(block.group(0))
        if len(keys) != 1 or not certs:
            self._unreadable(CLIENT_CREDENTIALS)
        return ClientCredentials(keys[0], b"".join(certs))

    def write_server_cas(self, cas_pem: Sequence[bytes]) -> None:
        """Keep the server CA certificates (PEM each), in index order."""
        self.write(SERVER_CAS, b"".join(ca.rstrip(b"\n") + b"\n" for ca in cas_pem))

    def read_server_cas(self) -> list[bytes]:
        """The server CA certificates in index order (empty if none)."""
        data = self.read(SERVER_CAS)
        if data is None:
            return []
        cas = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
        if not cas:
            self._unreadable(SERVER_CAS)
        return cas

    def write_pending_bootstrap(self, data: bytes) -> None:
        """Keep bootstrap material as received, until committed or discarded (§7.3)."""
        self.write(PENDING_BOOTSTRAP, data)

    def read_pending_bootstrap(self) -> bytes | None:
        """The pending bootstrap material, or None."""
        return self.read(PENDING_BOOTSTRAP)

    def discard_pending_bootstrap(self) -> None:
        """Drop the pending bootstrap material and its PIN attempt count."""
        self.delete(PENDING_BOOTSTRAP)
        self.delete(PIN_ATTEMPTS)

    def pin_attempts(self) -> int:
        """Wrong PINs entered so far for the pending bootstrap (0 if none)."""
        data = self.read(PIN_ATTEMPTS)
        if data is None:
            return 0
        text = data.decode("ascii", "replace").strip()
        if not text.isdigit():
            self._unreadable(PIN_ATTEMPTS)
        return int(text)

    def set_pin_attempts(self, count: int) -> None:
        """Persist the number of wrong PINs entered (spec §7.3 step 3)."""
        if count < 0:
            raise ValueError("negative PIN attempt count")
        self.write(PIN_ATTEMPTS, f"{count}\n".encode("ascii"))

    def read_trust_pin(self) -> str | None:
        """The pinned server key's SPKI SHA-256 (lowercase hex), or None (spec §7.4)."""
        data = self.read(TRUST_PIN)
        if data is None:
            return None
        text = data.decode("ascii", "replace").strip()
        if not _PIN.fullmatch(text):
            self._unreadable(TRUST_PIN)  # never None here: that would re-pin any server
        return text

    def write_trust_pin(self, spki_sha256_hex: str) -> None:
        """Pin a server key: 64 hex digits of the SHA-256 of its SubjectPublicKeyInfo."""
        pin = spki_sha256_hex.strip().lower()
        if not _PIN.fullmatch(pin):
            raise ValueError("a trust pin is 64 hex digits")
        self.write(TRUST_PIN, f"{pin}\n".encode("ascii"))

    def clear_trust_pin(self) -> None:
        """Forget the pinned key (factory reset or explicit local reset, spec §7.4)."""
        self.delete(TRUST_PIN)

    @staticmethod
    def _unreadable(name: str) -> NoReturn:
        log.error(
            "secure store: %s has unexpected content",
            name,
            extra={
                "MESSAGE_ID": MSG_SECURE_UNREADABLE,
                "PROVD_EVENT": "secure-store-unreadable",
                "PROVD_SECURE_FILE": name,
            },
        )
        raise StoreError(f"secure store: {name} has unexpected content")
