"""Restart and factory reset (spec §6.3) through the real daemon, with the reboot handed to
the privileged unit as a request file and taken by the shipped `provd-reboot-step`."""

from __future__ import annotations

import json
import stat
import time
from typing import Any

import pytest

from provd.lab.server import LabServer
from provd.wpi.model import Reason, ReplyStatus
from tests.fileservers import deploy_scenario, recorded, snapshot
from tests.integration.daemon.harness import Phone
from tests.integration.deploy.deployment import (
    CLEAN_UP,
    INDEX_FILE,
    Rig,
    by_contact,
    deploy,
    deployed,
    deployments,
    files_dir,
    item_values,
    opened,
    phone_records,
    read_request,
    request,
    settle,
    solicit,
)

RING = b"ring tone " * 500


def provisioned(rig: Rig, *then: list[dict[str, Any]]) -> tuple[LabServer, Phone]:
    """A phone whose start-up wrote an item and deployed a file (and pinned the server)."""
    rig.servers.serve("/media/ringtone.wav", RING)
    ring = {**rig.servers.ftp.values("ringtone.wav", path="/media"), "file-type": "RINGTONE"}
    first = [
        {"action": "WriteItems", "items": {"sntp-addr": "ntp.example.com"}},
        deploy(ring),
        *CLEAN_UP,
    ]
    lab, phone = rig.start(by_contact(first, *then))
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}
    assert deployed(phone) == {"RINGTONE/ringtone.wav": RING}
    assert phone.status()["trust_pin"] == lab.server_pin
    return lab, phone


def everything(phone: Phone) -> dict[str, tuple[str, bytes]]:
    """The phone's whole work directory (state included) and runtime directory."""
    run = {f"<run>/{k}": v for k, v in snapshot(phone.runtime_dir).items()}
    return {**snapshot(phone.workdir), **run}


def secure_files(phone: Phone) -> dict[str, bytes]:
    secure = phone.state_dir / "secure"
    return {p.name: p.read_bytes() for p in secure.iterdir() if p.is_file()}


@pytest.mark.parametrize("password", ["000000", None], ids=["wrong", "missing"])
def test_factory_reset_without_the_password_is_refused_and_changes_nothing(
    rig: Rig, password: str | None
) -> None:
    reset = {"restart-type": "FactoryReset"}
    if password is not None:
        reset["restart-password"] = password
    lab, phone = provisioned(rig, [{"action": "Restart", "items": reset}, *CLEAN_UP])
    before = everything(phone)
    number = solicit(phone, lab)

    # spec §6.3 [B]: reply-to Restart failed, restart-password "invalid data".
    reply = phone_records(lab, number)[1]
    assert (reply.reason, reply.action, reply.status) == (
        Reason.REPLY_TO,
        "Restart",
        ReplyStatus.FAILED,
    )
    assert [(i.name, i.value, i.status) for i in reply.items] == [
        ("restart-password", "", "invalid data")
    ]
    time.sleep(0.2)
    assert everything(phone) == before  # not one file changed, no request written
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}
    assert phone.status()["trust_pin"] == lab.server_pin
    assert deployed(phone) == {"RINGTONE/ringtone.wav": RING}


def test_restart_asks_for_a_reboot_and_changes_nothing_else(rig: Rig) -> None:
    lab, phone = provisioned(rig, [{"action": "Restart"}])
    before = everything(phone)
    number = solicit(phone, lab)

    assert len(phone_records(lab, number)) == 1  # [G p.50] no answer: the phone restarts
    reboot = read_request(phone, "reboot")
    assert (reboot["what"], reboot["reason"]) == ("reboot", "reboot")
    # docs/privileged-steps.md: the directory is provd's alone, the request 0640.
    assert stat.S_IMODE(phone.requests_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(request(phone, "reboot").stat().st_mode) == 0o640
    after = everything(phone)
    assert after.pop("<run>/requests/reboot")[0].startswith("-")
    before.pop("<run>/requests", None)
    after.pop("<run>/requests", None)
    assert after == before
    assert not request(phone, "install").exists()

    # provd-reboot.service: the step takes the request and the (recorded) reboot runs.
    done = rig.run_reboot_step(request(phone, "reboot"))
    assert done.returncode == 0, done.stderr
    assert recorded(rig.reboot_log) == [""]
    assert not request(phone, "reboot").exists()


def test_the_deploy_restart_scenario_ends_in_a_factory_reset_that_wipes_everything(
    rig: Rig,
) -> None:
    rig.servers.serve("/media/ringtone.wav", RING)
    lab, phone = rig.start(deploy_scenario("deploy-restart", rig.servers.placeholders()))
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}
    assert deployed(phone) == {"RINGTONE/ringtone.wav": RING}
    assert (files_dir(phone) / INDEX_FILE).exists()
    assert "trust-pin" in secure_files(phone)

    # contact 2: the wrong password.
    number = solicit(phone, lab)
    assert phone_records(lab, number)[1].status is ReplyStatus.FAILED
    assert not request(phone, "reboot").exists()

    # contact 3: Restart; the reboot unit takes the request.
    solicit(phone, lab)
    assert read_request(phone, "reboot")["what"] == "reboot"
    assert rig.run_reboot_step(request(phone, "reboot")).returncode == 0
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}

    # contact 4: the factory reset [G p.51].
    solicit(phone, lab)
    reboot = read_request(phone, "reboot")
    assert reboot["what"] == "factory-reset-reboot"
    # By the time the reboot is asked for, everything is wiped (spec §6.3):
    assert phone.get("sntp-addr").get("sntp-addr", "") == ""  # items back to defaults
    status = phone.status()
    assert status["trust_pin"] is None  # the trust pin
    assert status["mode"] == "default mode"
    secure = secure_files(phone)  # the secure store
    assert "trust-pin" not in secure
    assert set(secure) <= {"bootstrap-state.json"}
    if secure:
        assert json.loads(secure["bootstrap-state.json"])["phase"] == "default"
    assert deployed(phone) == {}  # the deployed files, and their index
    assert not (files_dir(phone) / INDEX_FILE).exists()
    assert not request(phone, "install").exists()
    assert rig.run_reboot_step(request(phone, "reboot")).returncode == 0
    assert recorded(rig.reboot_log) == ["", ""]

    # The reboot: a fresh start-up, the first server pinned again, nothing deployed.
    assert phone.stop() == 0
    phone.start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    settle(phone)
    number = opened(lab, Reason.START_UP)[-1]
    listing = phone_records(lab, number)[1]
    assert listing.action == "ReadAllItems"
    assert deployments(listing) == {}
    assert item_values(listing.all_items).get("sntp-addr", "") == ""
    assert phone.status()["trust_pin"] == lab.server_pin


def test_a_reboot_that_cannot_be_requested_is_logged_and_the_daemon_goes_on(rig: Rig) -> None:
    # The runtime directory is not writable as it should be (here: `requests` is a file):
    # provisioning problems never stop the phone (STYLE.md), they are logged.
    lab, phone = provisioned(rig, [{"action": "Restart"}], CLEAN_UP)
    phone.requests_dir.write_text("not a directory")
    mark = phone.mark()
    number = solicit(phone, lab)
    assert len(phone_records(lab, number)) == 1
    assert phone.wait_log(r"ERROR .*reboot", after=mark)
    assert phone.running
    assert phone.status()["ok"]
    assert solicit(phone, lab) == number + 1  # and it still talks to its server
