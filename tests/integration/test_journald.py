"""provd's events in a REAL systemd-journald, read back with journalctl.

There is no systemd as PID 1 on a build machine, but journald runs on its own: this test
starts `systemd-journald` inside a private mount namespace (`unshare --mount`), where a fresh
tmpfs covers /run (so journald's sockets, /run/systemd/journal/socket included, are private)
and a directory of tmp_path covers /var/log (so the journal files land in the test's
directory). The child process — this file run as a script — waits for journald's READY=1
on a notify socket, logs events through `setup_logging(to_journal=True)` (python-systemd's
`JournalHandler` sending to that socket), asks `journalctl --sync` to write them, stops
journald, and renders `journalctl -x` with provd's catalog installed in the namespace. The
test then reads the journal files from outside with `journalctl --directory=... -o json` and
checks MESSAGE_ID, the PROVD_* fields, the catalog's explanations, and that no secret is
anywhere: not in journalctl's output, not in the raw journal files.

The namespace and journald runner is `tests.journald`, shared with `test_journald_daemon.py`.
Needs root (mounts) and systemd's journald binary; skipped, saying why, otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.journald import (
    ROOT,
    child_main,
    journal_entries,
    journal_json,
    private_journald,
    run_child,
    why_not_runnable,
)

IDENTIFIER = "provd-journald-test"
NONCE = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
SERVER = "https://dls.lab:18443/DeploymentService/LoginService"


def test_events_reach_a_real_journald_with_fields_and_without_secrets(tmp_path: Path) -> None:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    var_log = tmp_path / "var-log"
    (var_log / "journal").mkdir(parents=True)
    child = run_child(__file__, str(var_log))
    assert child.returncode == 0, child.stderr
    secrets: list[str] = json.loads(child.stdout.strip().splitlines()[-1])

    journal_dir = var_log / "journal"
    out = journal_json(journal_dir)
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    ours = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == IDENTIFIER]
    by_event = {e["PROVD_EVENT"]: e for e in ours if "PROVD_EVENT" in e}

    # Everything logged arrived, in order.
    assert [e["MESSAGE"].splitlines()[0] for e in ours] == [
        "provd started",
        "interaction started for start-up",
        "WriteItems: accepted",
        "PIN for TAN check",
        "bootstrap failed",
        "interaction failed",
    ]
    from provd.service.journal import MessageId

    started = by_event["interaction-started"]
    assert started["MESSAGE_ID"] == MessageId.INTERACTION_STARTED.value
    assert started["PROVD_REASON"] == "start-up"
    assert started["PROVD_NONCE"] == NONCE
    assert started["PROVD_SERVER"] == SERVER
    assert started["PRIORITY"] == "6"

    action = by_event["action-performed"]
    assert action["MESSAGE_ID"] == MessageId.ACTION_PERFORMED.value
    assert action["PROVD_ACTION"] == "WriteItems"
    assert action["PROVD_RESULT"] == "accepted"
    assert action["PROVD_ITEMS"] == (
        'e164="4989722", user-pwd=[redacted], dls-client-certificate=[redacted], '
        'ldap-server[2]="ldap.lab"'
    )

    failed = by_event["interaction-failed"]
    assert failed["MESSAGE_ID"] == MessageId.INTERACTION_FAILED.value
    assert failed["PRIORITY"] == "4"
    assert failed["PROVD_ERROR"] == "connection refused"

    [exception] = [e for e in ours if "EXCEPTION_TEXT" in e]
    assert exception["EXCEPTION_TEXT"].endswith("ValueError: wrong PIN [redacted]")
    assert "EXCEPTION_INFO" not in exception

    # Field support finds an event by its MESSAGE_ID, as the catalog says.
    matched = journal_entries(journal_dir, f"MESSAGE_ID={MessageId.ACTION_PERFORMED.value}")
    assert [e["PROVD_EVENT"] for e in matched] == ["action-performed"]

    # `journalctl -x` explains each event from provd.catalog, with the entry's fields filled in.
    explained = (var_log / "explained.txt").read_text()
    assert "Subject: Provisioning interaction started" in explained
    assert "Defined-By: provd" in explained
    assert f"carries nonce {NONCE}" in " ".join(explained.split())
    assert "Subject: Server action performed" in explained

    # No secret anywhere: journalctl's views of every entry, and the journal files' bytes.
    assert len(secrets) == 5
    raw = b"".join(path.read_bytes() for path in journal_dir.rglob("*.journal"))
    for secret in secrets:
        assert out.count(secret) == 0, secret
        assert explained.count(secret) == 0, secret
        assert raw.count(secret.encode()) == 0, secret


# --- the child, run as `unshare --mount python3 test_journald.py <var-log dir>` ---------------


def _log_events() -> list[str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from provd.service.journal import REDACTOR, MessageId, log_event, setup_logging
    from provd.wpi.model import Item

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    pin, password, cert_blob = "70315492", "hunter2-ftp", "MIIKcertificatePKCS12blob+/="
    setup_logging(to_journal=True, level="debug", identifier=IDENTIFIER)
    REDACTOR.add_secret(pin)
    log = logging.getLogger("provd.service.daemon")
    log_event(log, MessageId.STARTED, "provd started", server=SERVER)
    log_event(
        log,
        MessageId.INTERACTION_STARTED,
        "interaction started for %s",
        "start-up",
        reason="start-up",
        nonce=NONCE,
        server=SERVER,
    )
    log_event(
        log,
        MessageId.ACTION_PERFORMED,
        "WriteItems: %s",
        "accepted",
        action="WriteItems",
        result="accepted",
        nonce=NONCE,
        items=[
            Item(name="e164", value="4989722"),
            Item(name="user-pwd", value=password),
            Item(name="dls-client-certificate", value=cert_blob),
            Item(name="ldap-server", value="ldap.lab", index=2),
        ],
    )
    log.debug("PIN for TAN check", extra={"PROVD_DETAIL": f"pin={pin} key={pem}"})
    try:
        raise ValueError(f"wrong PIN {pin}")
    except ValueError:
        log.exception("bootstrap failed")
    log_event(
        log,
        MessageId.INTERACTION_FAILED,
        "interaction failed",
        level=logging.WARNING,
        reason="start-up",
        nonce=NONCE,
        error="connection refused",
    )
    return [pin, password, cert_blob, pem.splitlines()[1], pem.splitlines()[2]]


def _explain(out: Path) -> None:
    """What field support sees with `journalctl -x`: our catalog, installed in the namespace.

    journalctl reads the catalog database from /var/lib/systemd/catalog/database whatever
    --root or --directory say, so provd's catalog is installed over a private tmpfs there.
    """
    catalog = Path("/run/provd-catalog")
    catalog.mkdir()
    shutil.copy(ROOT / "systemd" / "provd.catalog", catalog / "provd.catalog")
    subprocess.run(["mount", "--bind", str(catalog), "/usr/lib/systemd/catalog"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/var/lib/systemd"], check=True)
    subprocess.run(["journalctl", "--update-catalog"], check=True)
    explained = subprocess.run(
        [
            "journalctl",
            "-x",
            "--no-pager",
            "--directory=/var/log/journal",
            f"SYSLOG_IDENTIFIER={IDENTIFIER}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    out.write_text(explained)


def _child(var_log: Path) -> int:
    with private_journald(var_log, Path("/run/provd-test-notify")):
        secrets = _log_events()
    _explain(var_log / "explained.txt")
    print(json.dumps(secrets))
    return 0


if __name__ == "__main__":
    child_main(_child, sys.argv[1:])
