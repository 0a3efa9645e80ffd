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

Needs root (mounts) and systemd's journald binary; skipped, saying why, otherwise.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOURNALD_CANDIDATES = (
    Path("/lib/systemd/systemd-journald"),
    Path("/usr/lib/systemd/systemd-journald"),
)
IDENTIFIER = "provd-journald-test"
NONCE = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
SERVER = "https://dls.lab:18443/DeploymentService/LoginService"

JOURNALD_CONF = """\
[Journal]
Storage=persistent
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
RateLimitIntervalSec=0
"""


def journald_binary() -> Path | None:
    return next((path for path in JOURNALD_CANDIDATES if path.exists()), None)


def why_not_runnable() -> str | None:
    """The reason a private journald cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: mounts a private /run and /var/log in a mount namespace"
    if journald_binary() is None:
        return (
            "systemd-journald is not installed (" + ", ".join(map(str, JOURNALD_CANDIDATES)) + ")"
        )
    for tool in ("unshare", "mount", "journalctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/etc/machine-id").is_file():
        return "/etc/machine-id is missing: journald names its journal directory after it"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.strip()}"
    return None


def test_events_reach_a_real_journald_with_fields_and_without_secrets(tmp_path: Path) -> None:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    var_log = tmp_path / "var-log"
    (var_log / "journal").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NOTIFY_SOCKET", None)
    child = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, __file__, str(var_log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    secrets: list[str] = json.loads(child.stdout.strip().splitlines()[-1])

    journal_dir = var_log / "journal"
    out = subprocess.run(
        ["journalctl", f"--directory={journal_dir}", "-o", "json", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
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
    matched = subprocess.run(
        [
            "journalctl",
            f"--directory={journal_dir}",
            "-o",
            "json",
            f"MESSAGE_ID={MessageId.ACTION_PERFORMED.value}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert [json.loads(line)["PROVD_EVENT"] for line in matched] == ["action-performed"]

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


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: journald must not outlive the child if the test is interrupted.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _start_journald() -> subprocess.Popen[bytes]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"], check=True)
    journal_run = Path("/run/systemd/journal")
    journal_run.mkdir(parents=True)
    # journald writes to /var/log/journal (not /run/log) once it believes the flush is done.
    (journal_run / "flushed").touch()
    conf_dir = Path("/run/systemd/journald.conf.d")
    conf_dir.mkdir()
    (conf_dir / "provd-test.conf").write_text(JOURNALD_CONF)
    notify_path = "/run/provd-test-notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(60)  # a safety net against a hung journald, not a measurement
        binary = journald_binary()
        assert binary is not None
        journald = subprocess.Popen(
            [str(binary)],
            env={"NOTIFY_SOCKET": notify_path, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the child has no threads
        )
        while b"READY=1" not in notify.recv(4096).split(b"\n"):
            pass
    return journald


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
    subprocess.run(["mount", "--bind", str(var_log), "/var/log"], check=True)
    journald = _start_journald()
    try:
        secrets = _log_events()
        subprocess.run(["journalctl", "--sync"], check=True)
    finally:
        journald.terminate()
        journald.wait(timeout=60)
    _explain(var_log / "explained.txt")
    print(json.dumps(secrets))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
    sys.exit(_child(Path(sys.argv[1])))
