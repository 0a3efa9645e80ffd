"""SoftwareDeployment (spec §6.2) through the real daemon: busy and priority, a cut
download never installed, and the whole way from the server's action through the
shipped install step to the next start-up reporting the new `software-version`."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from provd.wpi.model import Reason, ReplyStatus
from tests.fileservers import FileBehaviour, deploy_scenario, recorded, recorder, snapshot
from tests.integration.deploy.deployment import (
    CLEAN_UP,
    NEW_VERSION,
    OLD_VERSION,
    SLOW,
    Rig,
    by_contact,
    item_values,
    items,
    opened,
    phone_records,
    read_request,
    request,
    server_records,
    settle,
    solicit,
    staging_dir,
)

IMAGE = bytes(range(256)) * 1200  # 307 200 bytes
IMAGE_SHA256 = hashlib.sha256(IMAGE).hexdigest()


def software(rig: Rig, priority: str, *, path: str = "/firmware/phone.img") -> dict[str, Any]:
    rig.servers.serve(path, IMAGE)
    values = {
        **rig.servers.https.values(path),
        "file-sw-type": "Siemens SIP",
        "file-sw-version": "1.4.9.0",  # [G p.57]
        "file-priority": priority,
    }
    return {"action": "SoftwareDeployment", "items": items(values)}


def staged(rig: Rig) -> list[str]:
    return [line.split()[0] for line in recorded(rig.installer_log)]


def test_normal_priority_during_a_call_is_answered_busy_and_nothing_is_fetched(
    rig: Rig,
) -> None:
    lab, phone = rig.start(by_contact(CLEAN_UP, [software(rig, "normal"), *CLEAN_UP]))
    done = phone.provctl("busy", "on")  # the telephony stack: a call started
    assert done.returncode == 0, done.stderr
    number = solicit(phone, lab)

    reply = phone_records(lab, number)[1]
    assert (reply.reason, reply.action, reply.status) == (
        Reason.REPLY_TO,
        "SoftwareDeployment",
        ReplyStatus.BUSY,
    )
    assert b"ItemList" not in reply.body  # [G p.46, p.76]
    assert rig.servers.https.requests == []
    assert staged(rig) == []  # the installer was not asked
    assert not request(phone, "install").exists()
    assert list(staging_dir(phone).glob("*")) == []


def test_immediate_priority_during_a_call_is_accepted_and_installed_after_clean_up(
    rig: Rig,
) -> None:
    # [G p.57] the guide's example, over FTP, with priority immediate [G p.177].
    rig.servers.serve("/OS/SIP/HI/OS_80_SIP_V1_R4_9_0.img", IMAGE)
    values = {
        **rig.servers.ftp.values("OS_80_SIP_V1_R4_9_0.img", path="/OS/SIP/HI"),
        "file-type": "APP",
        "file-sw-type": "Siemens SIP",
        "file-sw-version": "1.4.9.0",
        "file-priority": "immediate",
    }
    step = {"action": "SoftwareDeployment", "items": items(values)}
    lab, phone = rig.start(by_contact(CLEAN_UP, [step, *CLEAN_UP]))
    assert phone.ctl("busy", on=True)["busy"] is True
    number = solicit(phone, lab)

    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("SoftwareDeployment", ReplyStatus.ACCEPTED)
    assert [r.action for r in server_records(lab, number)] == ["SoftwareDeployment", "CleanUp"]
    install = read_request(phone, "install")
    image = staging_dir(phone) / "OS_80_SIP_V1_R4_9_0.img"
    assert install["what"] == "install"
    assert install["image"] == str(image)
    assert (install["software_version"], install["software_type"]) == (NEW_VERSION, "Siemens SIP")
    assert image.read_bytes() == IMAGE
    # spec §6.2 [B]: the installer checked the image before the reply.
    assert recorded(rig.installer_log) == [f"check {image} sha256={IMAGE_SHA256}"]


def test_an_image_the_installer_refuses_is_answered_failed_and_dropped(rig: Rig) -> None:
    refusing = recorder(rig.tmp / "refusing-installer", rig.installer_log, exit_code=1)
    lab, phone = rig.start(
        by_contact(CLEAN_UP, [software(rig, "immediate"), *CLEAN_UP]),
        env={"PROVD_INSTALLER": str(refusing)},
    )
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("SoftwareDeployment", ReplyStatus.FAILED)
    assert staged(rig) == ["check"]
    assert list(staging_dir(phone).iterdir()) == []
    time.sleep(0.2)
    assert not request(phone, "install").exists()


def test_an_image_over_the_size_limit_is_refused(rig: Rig) -> None:
    lab, phone = rig.start(
        by_contact(CLEAN_UP, [software(rig, "immediate"), *CLEAN_UP]),
        settings={"files.software-max-size": 100 * 1024},
    )
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("SoftwareDeployment", ReplyStatus.FAILED)
    assert staged(rig) == []
    assert list(staging_dir(phone).iterdir()) == []
    time.sleep(0.2)
    assert not request(phone, "install").exists()


def test_an_image_with_a_hostile_name_stays_in_the_staging_directory(rig: Rig) -> None:
    url = rig.servers.https.put("/fw/../../../escaped.img", IMAGE)
    assert url.endswith("/fw/../../../escaped.img")
    values = {
        "file-https-base-url": rig.servers.https.url + "/fw/..%2F..%2F..%2Fescaped.img",
        "file-sw-version": "1.4.9.0",
    }
    step = {"action": "SoftwareDeployment", "items": items(values)}
    lab, phone = rig.start(by_contact(CLEAN_UP, [step, *CLEAN_UP]))
    before = snapshot(phone.workdir, skip=staging_dir(phone))
    number = solicit(phone, lab)

    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("SoftwareDeployment", ReplyStatus.ACCEPTED)
    staged_files = list(staging_dir(phone).iterdir())
    assert len(staged_files) == 1 and staged_files[0].read_bytes() == IMAGE
    assert read_request(phone, "install")["image"] == str(staged_files[0])
    assert snapshot(phone.workdir, skip=staging_dir(phone)) == before
    assert not any(rig.tmp.rglob("escaped.img"))


def test_a_cut_download_is_never_checked_nor_installed(rig: Rig) -> None:
    step = software(rig, "immediate")
    rig.servers.misbehave("/firmware/phone.img", FileBehaviour(cut_after=50_000))
    lab, phone = rig.start(by_contact(CLEAN_UP, [step, *CLEAN_UP]))
    number = solicit(phone, lab, timeout=SLOW)

    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("SoftwareDeployment", ReplyStatus.FAILED)
    assert len(rig.servers.https.requests) == 3  # three attempts, each cut
    time.sleep(0.2)
    assert not request(phone, "install").exists()
    assert recorded(rig.installer_log) == []  # not even checked
    assert sorted(p.name for p in staging_dir(phone).iterdir()) == []  # no half image kept
    assert phone.status()["running"] is None


def test_an_installed_image_is_reported_by_the_next_start_up(rig: Rig) -> None:
    servers = rig.servers
    servers.serve("/firmware/phone.img", IMAGE)
    # The network drops the download once: the phone resumes it (spec §6.2 [B]).
    servers.misbehave("/firmware/phone.img", FileBehaviour(cut_after=100_000, cuts=1))
    lab, phone = rig.start(deploy_scenario("deploy-software", servers.placeholders()))
    assert item_values(phone_records(lab, 1)[0].items)["software-version"] == OLD_VERSION

    number = solicit(phone, lab, timeout=SLOW)
    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("SoftwareDeployment", ReplyStatus.ACCEPTED)
    assert [r.range for r in servers.https.requests] == [None, "bytes=100000-"]

    # After the CleanUp: the request for the privileged install unit.
    path = request(phone, "install")
    install = read_request(phone, "install")
    image = staging_dir(phone) / "phone.img"
    assert (install["image"], install["software_version"]) == (str(image), NEW_VERSION)
    assert install["reboot_after"] is True
    assert (
        install["requested_by"]
        == phone_records(lab, number)[0].body.split(b'nonce="')[1][:32].decode()
    )

    # provd-install.service would start now: the shipped step, as root, by hand here.
    done = rig.run_install_step(phone, path)
    assert done.returncode == 0, done.stderr
    assert not path.exists()  # the request was taken
    assert recorded(rig.installer_log) == [
        f"check {image} sha256={IMAGE_SHA256}",
        f"install {image} sha256={IMAGE_SHA256}",  # the whole image, byte for byte
    ]
    assert recorded(rig.reboot_log) == [""]  # rebooted once, after the install
    assert f'software-version = "{NEW_VERSION}"' in rig.description.read_text()

    # The reboot: the daemon starts again and its start-up reports the new version.
    assert phone.stop() == 0
    phone.start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    settle(phone)
    start_ups = opened(lab, Reason.START_UP)
    assert len(start_ups) == 2
    records = phone_records(lab, start_ups[-1])
    assert item_values(records[0].items)["software-version"] == NEW_VERSION
    assert item_values(records[1].items) == {"software-version": NEW_VERSION}


def test_a_failed_install_still_reboots_and_the_next_start_up_reports_the_old_version(
    rig: Rig,
) -> None:
    # An installer whose check passes and whose install fails (a broken slot, say).
    installer = rig.tmp / "failing-installer"
    installer.write_text(f'#!/bin/sh\necho "$1" >> \'{rig.installer_log}\'\n[ "$1" = check ]\n')
    installer.chmod(0o755)
    lab, phone = rig.start(
        by_contact(CLEAN_UP, [software(rig, "immediate"), *CLEAN_UP]),
        env={"PROVD_INSTALLER": str(installer)},
    )
    solicit(phone, lab)
    path = request(phone, "install")
    assert read_request(phone, "install")["software_version"] == NEW_VERSION
    done = rig.run_install_step(phone, path, installer=installer)
    assert done.returncode == 1
    assert recorded(rig.installer_log) == ["check", "install"]
    assert recorded(rig.reboot_log) == [""]  # spec §6.2 [B]: rebooted all the same
    assert f'software-version = "{OLD_VERSION}"' in rig.description.read_text()

    assert phone.stop() == 0
    phone.start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    settle(phone)
    number = opened(lab, Reason.START_UP)[-1]
    assert item_values(phone_records(lab, number)[0].items)["software-version"] == OLD_VERSION
