"""`provctl` and the control socket (docs/control-protocol.md) against the real daemon."""

from __future__ import annotations

import json
import os
import socket

import pytest

from provd.wpi.model import Reason
from tests.integration.daemon.harness import PhoneFactory, StartedFactory, wait_until

NOBODY = 65534


def test_provctl_prints_for_people_and_json_for_scripts(started: StartedFactory) -> None:
    lab, phone = started("basic")

    human = phone.provctl("status")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].startswith("default mode, idle, last contact ")
    assert f"  server: {lab.url}" in lines
    assert f"  trust pin: {lab.server_pin}" in lines

    machine = phone.provctl("--json", "status")
    assert machine.returncode == 0
    answer = json.loads(machine.stdout)
    assert answer["ok"] is True
    assert answer["mode"] == "default mode"
    assert answer["contact_me_port"] == phone.contact_me_port
    assert answer["pending"] == []

    got = phone.provctl("get", "sntp-addr", "e164")
    assert sorted(got.stdout.splitlines()) == ["e164 = 49897223290", "sntp-addr = ntp.example.com"]
    got_json = json.loads(phone.provctl("--json", "get", "sntp-addr").stdout)
    assert got_json == {"errors": {}, "items": {"sntp-addr": "ntp.example.com"}, "ok": True}
    unknown = phone.provctl("get", "no-such-item")
    assert unknown.returncode == 1
    assert unknown.stdout.strip() == "no-such-item: unknown item"


def test_provctl_commands_change_the_daemon(started: StartedFactory) -> None:
    lab, phone = started("basic")
    assert phone.provctl("reset-pin").stdout.strip() == "ok"
    assert phone.status()["trust_pin"] is None
    changed = phone.provctl("set", "sntp-addr=time.example.com", "ldap-server-address[2]=l.ex")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "2 item(s) changed"
    rejected = phone.provctl("set", "sntp-tz-offset=99999")
    assert rejected.returncode == 1
    assert "sntp-tz-offset: invalid data" in rejected.stdout
    assert phone.provctl("set", "oops").returncode != 0

    assert phone.provctl("busy", "on").stdout.strip() == "ok"
    assert phone.status()["busy"] is True
    assert phone.provctl("busy", "off").stdout.strip() == "ok"
    assert phone.status()["busy"] is False

    mark = phone.mark()
    assert phone.provctl("contact").stdout.strip() == "ok"
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"
    bad_reason = phone.provctl("contact", "--reason", "reply-to")
    assert bad_reason.returncode == 1
    assert bad_reason.stdout.startswith("error: ")

    # The next interaction pinned the key again (trust on first use, spec §7.4).
    assert phone.status()["trust_pin"] == lab.server_pin


def test_factory_reset_needs_yes_and_then_wipes_and_requests_a_reboot(
    started: StartedFactory,
) -> None:
    _lab, phone = started("basic")
    refused = phone.provctl("factory-reset")
    assert refused.returncode != 0
    assert "--yes" in refused.stderr
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}
    assert phone.ctl("factory-reset") == {
        "ok": False,
        "error": 'factory reset needs "confirm": true',
    }

    done = phone.provctl("factory-reset", "--yes")
    assert done.returncode == 0, done.stderr
    wait_until((phone.requests_dir / "reboot").exists)
    request = json.loads((phone.requests_dir / "reboot").read_text())
    assert request["what"] == "factory-reset-reboot"
    assert phone.get("sntp-addr").get("sntp-addr", "") == ""
    assert phone.status()["trust_pin"] is None


def test_the_control_socket_refuses_what_is_not_a_command(started: StartedFactory) -> None:
    _lab, phone = started("basic")
    assert phone.ctl("nope") == {"ok": False, "error": "unknown command 'nope'"}
    # The test hook exists only with PROVD_DEBUG_COMMANDS=1.
    assert phone.ctl("debug-freeze", seconds=5)["ok"] is False
    assert phone.ctl("busy", on="yes") == {"ok": False, "error": "'on' is true or false"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(phone.control_socket))
        # Several requests on one connection, a bad one among them.
        sock.sendall(b'not json\n{"cmd": "status"}\n["cmd"]\n')
        buffer = b""
        while buffer.count(b"\n") < 3:
            buffer += sock.recv(65536)
    answers = [json.loads(line) for line in buffer.splitlines()]
    assert answers[0]["ok"] is False
    assert answers[0]["error"].startswith("bad request")
    assert answers[1]["ok"] is True
    assert answers[2]["ok"] is False
    assert phone.running


def test_provctl_says_when_provd_is_not_running(phones: PhoneFactory) -> None:
    phone = phones("")  # never started
    done = phone.provctl("status")
    assert done.returncode == 69
    assert "provd is not running?" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to an unprivileged user: needs root")
def test_provctl_is_refused_without_permission_on_the_socket(started: StartedFactory) -> None:
    _lab, phone = started("basic")
    phone.sockdir.chmod(0o755)  # the directory is open; only the socket's mode decides
    assert phone.control_socket.stat().st_mode & 0o777 == 0o660
    refused = phone.provctl("status", user=NOBODY)
    assert refused.returncode == 77
    assert "permission denied" in refused.stderr
    assert refused.stdout == ""

    phone.control_socket.chmod(0o666)
    allowed = phone.provctl("--json", "status", user=NOBODY)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["ok"] is True

    phone.control_socket.chmod(0o000)
    assert phone.provctl("status", user=NOBODY).returncode == 77
