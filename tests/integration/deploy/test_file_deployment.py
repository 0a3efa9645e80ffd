"""FileDeployment that works (spec §6.1), through the real daemon, the lab server and the
lab's real FTP and HTTPS file servers: the file lands under `<files-dir>/<TYPE>/<name>`,
the server receives the `status` report, the apply hooks are told, and ReadAllItems
reports the file."""

from __future__ import annotations

import stat

import pytest

from provd.wpi.model import Reason, ReplyStatus
from tests.fileservers import FileBehaviour, deploy_scenario, recorded
from tests.integration.deploy.deployment import (
    CLEAN_UP,
    DATE,
    SLOW,
    TIME,
    Rig,
    by_contact,
    deploy,
    deployed,
    deployments,
    files_dir,
    hidden_in_files_dir,
    item_values,
    phone_records,
    server_records,
    solicit,
    status_report,
)

RING = bytes(range(256)) * 160  # 40 960 bytes
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(5000)


@pytest.mark.parametrize("protocol", ["ftp", "https"])
def test_a_single_file_is_deployed_reported_announced_and_read_back(
    rig: Rig, protocol: str
) -> None:
    rig.servers.serve("/media/ring tone.wav", RING)
    if protocol == "ftp":
        source = rig.servers.ftp.values("ring tone.wav", path="/media")
    else:
        # [G p.53] the whole URL: the phone names the file after its last segment.
        source = rig.servers.https.values("/media/ring tone.wav")
    lab, phone = rig.start(
        by_contact(
            CLEAN_UP,
            [deploy({**source, "file-type": "RINGTONE"}), *CLEAN_UP],
            [{"action": "ReadAllItems"}, *CLEAN_UP],
        )
    )
    number = solicit(phone, lab)

    path = files_dir(phone) / "RINGTONE" / "ring tone.wav"
    assert path.read_bytes() == RING
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the rest of the phone reads it
    assert deployed(phone) == {"RINGTONE/ring tone.wav": RING}
    assert hidden_in_files_dir(phone) == []

    # [G p.54] a `status` message, no attributes, with the basic items and the result;
    # the server's CleanUp ends the interaction.
    report = status_report(lab, number)
    assert (report.action, report.status) == (None, None)
    values = item_values(report.items)
    assert values["mac-addr"] == "00:01:E3:25:EA:13"
    assert values["software-version"] == "V1 R4.8.0"
    result = deployments(report)
    assert list(result) == [None]  # spec §6.1 [B]: no index when the request had none
    assert {k: result[None][k] for k in ("name", "type", "status")} == {
        "name": "ring tone.wav",
        "type": "RINGTONE",
        "status": "ok",
    }
    assert DATE.fullmatch(result[None]["date"]) and TIME.fullmatch(result[None]["time"])
    assert [r.action for r in server_records(lab, number)] == ["FileDeployment", "CleanUp"]

    # spec §6.1: each change announced through the apply hooks, the name
    # percent-encoded so that the token holds no space.
    assert rig.hooks_told() == ["file:RINGTONE/ring%20tone.wav"]

    if protocol == "ftp":
        commands = rig.servers.ftp.commands
        assert ("TYPE", "I") in commands  # binary
        assert {"PASV", "EPSV"} & {c for c, _ in commands}  # passive
        assert "PORT" not in {c for c, _ in commands}
        assert rig.servers.ftp.password not in phone.logtext()  # secrets never reach a log
    else:
        assert [r.status for r in rig.servers.https.requests] == [200]

    # [G p.245] ReadAllItems reports the deployed file as indexed items.
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert reply.action == "ReadAllItems"
    files = deployments(reply)
    assert list(files) == [1]
    assert files[1] == {**result[None]}


def test_the_deploy_files_scenario_deploys_deletes_in_one_message_and_reads_back(
    rig: Rig,
) -> None:
    servers = rig.servers
    servers.serve("/media/ringtone.wav", RING)
    servers.serve("/media/hold.wav", RING[::-1])
    servers.serve("/media/logo.png", LOGO)
    servers.serve("/media/ring tone.wav", RING[:1000])
    lab, phone = rig.start(deploy_scenario("deploy-files", servers.placeholders()))

    # contact 1, the start-up: a ring tone over FTP.
    assert deployments(status_report(lab, 1))[None]["status"] == "ok"
    assert deployed(phone) == {"RINGTONE/ringtone.wav": RING}

    # contact 2: a logo over HTTPS.
    assert deployments(status_report(lab, solicit(phone, lab)))[None]["status"] == "ok"
    assert deployed(phone)["LOGO/logo.png"] == LOGO

    # contact 3: two files deployed and one deleted, in one message; one status report
    # with one indexed set of items per file (spec §6.1 [B]).
    number = solicit(phone, lab)
    result = deployments(status_report(lab, number))
    assert {index: (r["name"], r["type"], r["status"]) for index, r in result.items()} == {
        1: ("hold.wav", "MOH", "ok"),
        2: ("ring tone.wav", "RINGTONE", "ok"),
        3: ("ringtone.wav", "RINGTONE", "ok"),
    }
    assert deployed(phone) == {
        "LOGO/logo.png": LOGO,
        "MOH/hold.wav": RING[::-1],
        "RINGTONE/ring tone.wav": RING[:1000],
    }
    assert rig.hooks_told() == [
        "file:RINGTONE/ringtone.wav",
        "file:LOGO/logo.png",
        "file:MOH/hold.wav",
        "file:RINGTONE/ring%20tone.wav",
        "file:RINGTONE/ringtone.wav",  # the deletion
    ]

    # contact 4: ReadAllItems lists the three files left [G p.245].
    number = solicit(phone, lab)
    listed = deployments(phone_records(lab, number)[1])
    assert sorted((r["type"], r["name"], r["status"]) for r in listed.values()) == [
        ("LOGO", "logo.png", "ok"),
        ("MOH", "hold.wav", "ok"),
        ("RINGTONE", "ring tone.wav", "ok"),
    ]
    assert sorted(index or 0 for index in listed) == [1, 2, 3]


def test_https_from_a_host_the_system_store_does_not_trust_fails(rig: Rig) -> None:
    # spec §6.1 [B]: a file server other than the provisioning server must verify
    # against the system trust store (here: without the lab CA in it).
    rig.servers.serve("/media/logo.png", LOGO)
    lab, phone = rig.start(
        by_contact(
            CLEAN_UP,
            [deploy({**rig.servers.https.values("/media/logo.png"), "file-type": "LOGO"})],
        ),
        env={"SSL_CERT_FILE": str(rig.tmp / "no-such-ca.pem")},
    )
    number = solicit(phone, lab)
    assert deployments(status_report(lab, number))[None]["status"] == "failed"
    assert deployed(phone) == {}
    assert rig.servers.https.requests == []  # not one byte was asked for
    assert rig.servers.https.handshake_errors
    assert phone.matching_log(r"logo\.png.*failed")
    assert Reason.STATUS in [r.reason for r in phone_records(lab, number)]


def test_file_deployment_during_a_call_is_answered_busy_and_fetches_nothing(rig: Rig) -> None:
    # spec §4.3 [B]: FileDeployment is treated like WriteItems while busy.
    rig.servers.serve("/media/logo.png", LOGO)
    lab, phone = rig.start(
        by_contact(
            CLEAN_UP,
            [deploy({**rig.servers.https.values("/media/logo.png"), "file-type": "LOGO"})],
        )
    )
    assert phone.ctl("busy", on=True)["busy"] is True
    number = solicit(phone, lab)
    records = phone_records(lab, number)
    assert [r.reason for r in records] == [Reason.SOLICITED, Reason.REPLY_TO]
    assert (records[1].action, records[1].status) == ("FileDeployment", ReplyStatus.BUSY)
    assert b"ItemList" not in records[1].body
    assert rig.servers.https.requests == []
    assert deployed(phone) == {}
    assert rig.hooks_told() == []


def test_a_hook_reading_provd_changed_gets_a_file_name_with_a_space_whole(rig: Rig) -> None:
    # store/hooks.py: PROVD_CHANGED holds the same tokens as stdin, separated by single
    # spaces. File names may hold spaces ([G p.53]: "ringtone phone.wav").
    rig.servers.serve("/media/ring tone.wav", RING)
    source = rig.servers.https.values("/media/ring tone.wav")
    lab, phone = rig.start(by_contact(CLEAN_UP, [deploy({**source, "file-type": "RINGTONE"})]))
    solicit(phone, lab)
    told = rig.hooks_told()
    assert len(told) == 1
    (env,) = [line for line in recorded(rig.hook_log) if line.startswith("env:")]
    assert env.removeprefix("env:").split(" ") == told


def test_a_password_in_the_https_url_never_reaches_the_log(rig: Rig) -> None:
    # Secrets never reach a log (STYLE.md); a server may put credentials in the URL.
    rig.servers.serve("/media/logo.png", LOGO)
    rig.servers.misbehave("/media/logo.png", FileBehaviour(cut_after=1000, cuts=1))
    url = rig.servers.https.url.replace("https://", "https://dls:S3cret-pw@") + "/media/logo.png"
    lab, phone = rig.start(
        by_contact(CLEAN_UP, [deploy({"file-https-base-url": url, "file-type": "LOGO"})])
    )
    number = solicit(phone, lab, timeout=SLOW)
    assert deployments(status_report(lab, number))[None]["status"] == "ok"
    assert deployed(phone) == {"LOGO/logo.png": LOGO}
    assert "S3cret-pw" not in phone.logtext()
