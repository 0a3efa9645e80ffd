"""The real daemon logging to a REAL systemd-journald, read back with journalctl.

The technique of `test_journald.py`, shared in `tests/journald.py`: a child process in a
private mount namespace (`unshare --mount`) covers /run with a fresh tmpfs (so journald's
sockets are private) and /var/log with a directory of tmp_path (so the journal files land
there), and starts `systemd-journald`. The child then runs `provd run` as systemd would:
`INVOCATION_ID` set and journald's socket present, so provd logs through `JournalHandler`
(see `provd.service.journal.under_journal`). The lab server runs in this test's process (the
network is shared). The phone starts up, the server writes three passwords, a password is
changed locally and reported, provd is stopped; journald is synced and stopped.

The test reads the journal from outside with `journalctl --directory=... -o json` and checks
the structured fields field support relies on, and that no secret is anywhere: not in
journalctl's output, not in the raw journal files.

Needs root (mounts) and systemd's journald binary; skipped, saying why, otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.journald import (
    ROOT,
    child_main,
    die_with_parent,
    journal_entries,
    private_journald,
    run_child,
    wait_ready,
    why_not_runnable,
)

MAC = "00:01:E3:25:EA:13"
SERVER_SECRETS = {
    "user-pwd": "Us3r-Journal-71",
    "admin-pwd": "Adm1n-Journal-42",
    "file-pwd": "F1le-Journal-93",
}
LOCAL_SECRET = "L0cal-Journal-55"
SCENARIO = {
    "interaction": [
        {
            "reason": "start-up",
            "step": [
                {"action": "ReadAllItems"},
                {"action": "WriteItems", "items": SERVER_SECRETS},
                {"action": "ReadItems", "items": list(SERVER_SECRETS)},
                {"action": "CleanUp"},
            ],
        },
        {"step": [{"action": "CleanUp"}]},
    ]
}


def test_the_daemon_logs_interactions_to_journald_with_fields_and_no_secret(
    tmp_path: Path,
) -> None:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    from provd.lab.server import LabServer
    from provd.service.journal import MessageId

    var_log = tmp_path / "var-log"
    (var_log / "journal").mkdir(parents=True)
    state = tmp_path / "state"
    sockets = Path(tempfile.mkdtemp(prefix="pdj-"))
    try:
        with LabServer(_scenario()) as lab:
            config = tmp_path / "provd.toml"
            config.write_text(_settings(lab.url, state, sockets), encoding="utf-8")
            child = run_child(__file__, str(var_log), str(config), str(sockets))
            assert child.returncode == 0, child.stdout + child.stderr
            report = json.loads(child.stdout.strip().splitlines()[-1])
            sent_by_phone = b"".join(r.body for r in lab.transcript if r.from_phone)
            lab_url = lab.url
    finally:
        shutil.rmtree(sockets, ignore_errors=True)

    assert report["exit"] == 0
    # Under journald nothing goes to stderr (a log line there would say "INFO provd...").
    assert not re.search(r"\b(INFO|WARNING|ERROR) provd\.", report["stderr"]), report["stderr"]

    journal_dir = var_log / "journal"
    entries = [e for e in journal_entries(journal_dir) if e.get("SYSLOG_IDENTIFIER") == "provd"]
    events = [e["PROVD_EVENT"] for e in entries if "PROVD_EVENT" in e]
    assert events[0] == "started", [e["MESSAGE"] for e in entries]
    assert events[-1] == "stopping", [e["MESSAGE"] for e in entries]
    assert not [e for e in entries if int(e["PRIORITY"]) <= 4], "no warning or error expected"

    completed = [e for e in entries if e.get("MESSAGE_ID") == MessageId.INTERACTION_COMPLETED]
    [start_up] = [e for e in completed if e["PROVD_REASON"] == "start-up"]
    assert start_up["PROVD_RESULT"] == "ok"
    assert re.fullmatch(r"[0-9A-F]{32}", start_up["PROVD_NONCE"])
    assert start_up["PROVD_SERVER"] == lab_url
    assert start_up["PROVD_ACTIONS"] == "ReadAllItems WriteItems ReadItems"
    assert start_up["PRIORITY"] == "6"
    assert start_up["PROVD_EVENT"] == "interaction-completed"
    [started] = [
        e
        for e in entries
        if e.get("MESSAGE_ID") == MessageId.INTERACTION_STARTED
        and e.get("PROVD_NONCE") == start_up["PROVD_NONCE"]
    ]
    assert started["PROVD_REASON"] == "start-up"
    [local] = [e for e in completed if e["PROVD_REASON"] == "local-changes"]
    assert local["PROVD_RESULT"] == "ok"

    [write] = [
        e
        for e in entries
        if e.get("MESSAGE_ID") == MessageId.ACTION_PERFORMED and e["PROVD_ACTION"] == "WriteItems"
    ]
    assert write["PROVD_NONCE"] == start_up["PROVD_NONCE"]
    assert "user-pwd=[redacted]" in write["PROVD_ITEMS"]
    assert "admin-pwd=[redacted]" in write["PROVD_ITEMS"]

    # Field support finds the event by its MESSAGE_ID, as the catalog says.
    found = journal_entries(journal_dir, f"MESSAGE_ID={MessageId.INTERACTION_COMPLETED.value}")
    assert {e["PROVD_REASON"] for e in found} == {"start-up", "local-changes"}

    # No secret anywhere: not in any field of any entry, not in the journal files' bytes,
    # not in what the phone sent the server.
    everything = json.dumps(journal_entries(journal_dir))
    raw = b"".join(path.read_bytes() for path in journal_dir.rglob("*.journal"))
    for secret in [*SERVER_SECRETS.values(), LOCAL_SECRET]:
        assert secret not in everything, secret
        assert secret.encode() not in raw, secret
        assert secret not in report["stderr"], secret
        assert secret.encode() not in sent_by_phone, secret


def _scenario() -> Any:
    from provd.lab.scenario import Scenario

    return Scenario.from_dict(SCENARIO)


def _settings(url: str, state: Path, sockets: Path) -> str:
    return f"""\
[server]
url = {json.dumps(url)}
[paths]
state-dir = {json.dumps(str(state))}
runtime-dir = {json.dumps(str(sockets / "run"))}
catalog = {json.dumps(str(ROOT / "config" / "items.toml"))}
catalog-dropins = {json.dumps(str(ROOT / "config" / "items.d"))}
apply-dir = {json.dumps(str(state.parent / "apply.d"))}
[contact-me]
listen = "127.0.0.1"
port = 0
[device]
mac-addr = "{MAC}"
ip-address = "127.0.0.1"
device-type = "OpenStage 60"
software-version = "V3 R5.1.0"
description-file = ""
[changes]
debounce = 0.2
[log]
level = "debug"
"""


# --- the child, run as `unshare --mount python3 test_journald_daemon.py ...` -----------------


def _poll(control: Path, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
    from provd.service.control import request

    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = request(control, {"cmd": "status"}, timeout=5)
            if predicate(answer):
                return answer
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"provd did not get there: {control}")
        time.sleep(0.05)


def _run_provd(config: Path, sockets: Path) -> dict[str, Any]:
    from provd.service.control import request

    notify_path = sockets / "notify.sock"
    control = sockets / "run" / "control.sock"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "INVOCATION_ID": uuid.uuid4().hex,  # systemd started us: log to the journal
        "NOTIFY_SOCKET": str(notify_path),
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        provd = subprocess.Popen(
            [sys.executable, "-m", "provd", "run", "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - the child has no threads
        )
        wait_ready(notify)
        _poll(control, lambda s: (s["last_contact"] or "").endswith(" ok") and not s["running"])
        answer = request(control, {"cmd": "set", "items": {"user-pwd": LOCAL_SECRET}})
        assert answer["ok"], answer
        _poll(control, lambda s: s["local_changes_pending"] == 0 and not s["running"])
        provd.send_signal(signal.SIGTERM)
        _, stderr = provd.communicate(timeout=30)
    return {"exit": provd.returncode, "stderr": stderr.decode("utf-8", "replace")}


def _child(var_log: Path, config: Path, sockets: Path) -> int:
    with private_journald(var_log, sockets / "journald-notify.sock"):
        report = _run_provd(config, sockets)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    child_main(_child, sys.argv[1:])
