"""The secure store on real files, and the no-secret-in-logs guarantee of provd.store."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from provd.store.errors import StoreError
from provd.store.hooks import ApplyHooks
from provd.store.items import Change, ItemStore
from provd.store.secure import MSG_SECURE_MODE_FIXED, ClientCredentials, SecureStore

KEY = b"-----BEGIN PRIVATE KEY-----\nS3CR3T-KEY-MATERIAL-c0ffee\n-----END PRIVATE KEY-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nLEAF-CERT\n-----END CERTIFICATE-----\n"
CHAIN_CA = b"-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n"
CA1 = b"-----BEGIN CERTIFICATE-----\nSERVER-CA-ONE\n-----END CERTIFICATE-----\n"
CA2 = b"-----BEGIN CERTIFICATE-----\nSERVER-CA-TWO\n-----END CERTIFICATE-----\n"
PIN = "ab" * 32


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_directory_is_created_0700_and_files_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a permissive umask must not loosen anything
    try:
        store = SecureStore(tmp_path / "secure")
        store.write("blob", b"x")
        store.write_client_credentials(KEY, CERT)
    finally:
        os.umask(old)
    assert mode(tmp_path / "secure") == 0o700
    assert sorted(p.name for p in (tmp_path / "secure").iterdir()) == ["blob", "client.pem"]
    assert all(mode(p) == 0o600 for p in (tmp_path / "secure").iterdir())


def test_looser_existing_directory_and_files_are_fixed_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "secure"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    (d / "trust-pin").write_bytes(PIN.encode())
    (d / "trust-pin").chmod(0o644)
    caplog.set_level(logging.WARNING, logger="provd.store.secure")
    store = SecureStore(d)
    assert mode(d) == 0o700
    assert mode(d / "trust-pin") == 0o600
    assert store.read_trust_pin() == PIN
    fixed = [r for r in caplog.records if getattr(r, "MESSAGE_ID", None) == MSG_SECURE_MODE_FIXED]
    assert len(fixed) == 2
    assert "0o755" in fixed[0].getMessage()


def test_write_replaces_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = SecureStore(tmp_path)
    store.write("pending-bootstrap", b"old")
    inode = (tmp_path / "pending-bootstrap").stat().st_ino
    store.write("pending-bootstrap", b"new")
    assert store.read("pending-bootstrap") == b"new"
    assert (tmp_path / "pending-bootstrap").stat().st_ino != inode  # renamed over, not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["pending-bootstrap"]


def test_temporary_file_left_by_a_crash_is_removed_and_the_old_content_kept(
    tmp_path: Path,
) -> None:
    SecureStore(tmp_path).write("client.pem", KEY + CERT)
    (tmp_path / ".client.pem.4242.tmp").write_bytes(b"half a key")  # crash mid-write
    store = SecureStore(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["client.pem"]
    assert store.read_client_credentials() == ClientCredentials(KEY, CERT)


def test_read_missing_is_none_and_delete_missing_is_quiet(tmp_path: Path) -> None:
    store = SecureStore(tmp_path)
    assert store.read("nothing") is None
    store.delete("nothing")
    store.write("x", b"1")
    store.delete("x")
    assert store.read("x") is None


@pytest.mark.parametrize("name", ["", ".hidden", "../escape", "a/b", "x" * 200, "name with space"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid secure store name"):
        SecureStore(tmp_path).write(name, b"x")


def test_wipe_removes_every_file_and_keeps_the_directory(tmp_path: Path) -> None:
    store = SecureStore(tmp_path / "s")
    store.write_client_credentials(KEY, CERT)
    store.write_trust_pin(PIN)
    store.set_pin_attempts(2)
    store.wipe()
    assert list((tmp_path / "s").iterdir()) == []
    assert mode(tmp_path / "s") == 0o700
    assert store.read_client_credentials() is None
    assert store.read_trust_pin() is None
    assert store.pin_attempts() == 0


def test_client_credentials_round_trip_key_and_chain_together(tmp_path: Path) -> None:
    store = SecureStore(tmp_path)
    assert store.read_client_credentials() is None
    store.write_client_credentials(KEY, CERT + CHAIN_CA)
    creds = SecureStore(tmp_path).read_client_credentials()
    assert creds == ClientCredentials(KEY, CERT + CHAIN_CA)
    assert b"S3CR3T" not in repr(creds).encode()


def test_server_cas_keep_their_order(tmp_path: Path) -> None:
    store = SecureStore(tmp_path)
    assert store.read_server_cas() == []
    store.write_server_cas([CA2, CA1])
    assert SecureStore(tmp_path).read_server_cas() == [CA2, CA1]


def test_pending_bootstrap_is_kept_as_received_and_discard_resets_attempts(
    tmp_path: Path,
) -> None:
    store = SecureStore(tmp_path)
    blob = bytes(range(256)) * 3
    store.write_pending_bootstrap(blob)
    store.set_pin_attempts(2)
    assert SecureStore(tmp_path).read_pending_bootstrap() == blob
    store.discard_pending_bootstrap()
    assert store.read_pending_bootstrap() is None
    assert store.pin_attempts() == 0


def test_pin_attempt_counter_survives_a_new_store_object(tmp_path: Path) -> None:
    SecureStore(tmp_path).set_pin_attempts(1)
    store = SecureStore(tmp_path)
    assert store.pin_attempts() == 1
    store.set_pin_attempts(store.pin_attempts() + 1)
    assert SecureStore(tmp_path).pin_attempts() == 2


def test_trust_pin_is_normalised_validated_and_clearable(tmp_path: Path) -> None:
    store = SecureStore(tmp_path)
    store.write_trust_pin(PIN.upper())
    assert SecureStore(tmp_path).read_trust_pin() == PIN
    with pytest.raises(ValueError):
        store.write_trust_pin("abc")
    store.clear_trust_pin()
    assert store.read_trust_pin() is None


@pytest.mark.parametrize(
    ("name", "content", "read"),
    [
        ("trust-pin", b"garbage", SecureStore.read_trust_pin),
        ("pin-attempts", b"two", SecureStore.pin_attempts),
        ("client.pem", CERT, SecureStore.read_client_credentials),
        ("server-ca.pem", b"not pem", SecureStore.read_server_cas),
    ],
)
def test_unexpected_content_fails_closed_with_store_error(
    tmp_path: Path, name: str, content: bytes, read: object
) -> None:
    store = SecureStore(tmp_path)
    store.write(name, content)
    with pytest.raises(StoreError, match="unexpected content"):
        read(store)  # type: ignore[operator]


def test_a_path_that_is_a_file_cannot_be_a_secure_store(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(StoreError):
        SecureStore(tmp_path / "f")


# -- no secret value in any log record of provd.store ------------------------------


def test_no_secret_value_reaches_a_log_record_of_the_store_code(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ["S3CR3T-KEY-MATERIAL-c0ffee", "hunter2-sip-password", PIN, "TAN-314159"]
    caplog.set_level(logging.DEBUG, logger="provd.store")

    # secure store: every accessor, a fixed mode, an unexpected content error
    secure_dir = tmp_path / "secure"
    secure_dir.mkdir(mode=0o777)
    secure_dir.chmod(0o777)
    secure = SecureStore(secure_dir)
    secure.write_client_credentials(KEY, CERT)
    secure.read_client_credentials()
    secure.write_server_cas([CA1])
    secure.write_pending_bootstrap(b"TAN-314159 encrypted blob")
    secure.read_pending_bootstrap()
    secure.write_trust_pin(PIN)
    secure.read_trust_pin()
    secure.write("pin-attempts", b"hunter2-sip-password")
    with pytest.raises(StoreError):
        secure.pin_attempts()
    secure.wipe()

    # item store: commit of secret values, a failing commit, a recovery
    state = tmp_path / "state"
    with ItemStore.open(state) as items:
        items.commit([Change("sip-pwd", None, "hunter2-sip-password")], local=True)

    def full(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        return conn

    with ItemStore.open(state, connect=full) as items, pytest.raises(StoreError):
        items.commit([Change(f"pw{i}", None, "hunter2-sip-password" * 50) for i in range(50)])
    (state / "items.db").write_bytes(b"hunter2-sip-password" * 300)
    ItemStore.open(state).close()

    # hooks: a failing hook that echoes a secret it read elsewhere
    hooks = tmp_path / "apply.d"
    hooks.mkdir()
    hook = hooks / "10-leaky"
    hook.write_text("#!/bin/sh\necho hunter2-sip-password >&2\nexit 3\n")
    hook.chmod(0o755)
    results = ApplyHooks(hooks, secret_names={"sip-pwd"}).run([("sip-pwd", None)])
    assert results[0].returncode == 3

    records = [r for r in caplog.records if r.name.startswith("provd.store")]
    assert len(records) >= 5  # the scenario did log (mode fixed, errors, recovery, hook)
    for record in records:
        text = record.getMessage() + " " + " ".join(str(v) for v in vars(record).values())
        for secret in secrets:
            assert secret not in text, (record.name, record.getMessage())
