"""Deployer and the pure parts of deploy: grouping, status items, ReadAllItems, versions.

Real files in tmp dirs and a real FTP server (pyftpdlib) where bytes move; the
full matrix over FTP and HTTPS is in tests/integration/test_deploy_ftp_https.py.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from provd.lab.fileserver import FtpFileServer
from provd.service.deploy import (
    Deployer,
    DownloadPolicy,
    FileDeploymentOutcome,
    FileResult,
    group_file_items,
    read_all_file_items,
    software_version_of,
    status_items,
)
from provd.service.privileged import PrivilegedSteps
from provd.store.files import FileStore
from provd.transport.tls import TrustPolicy
from provd.wpi.events import Reply, StatusReport
from provd.wpi.model import Item, ItemStatus, ReplyStatus

WHEN = datetime.datetime(2008, 6, 10, 15, 35, 52)
BASIC = (Item(name="mac-addr", value="00:01:E3:25:EA:13"),)


def no_tls(host: str, port: int) -> TrustPolicy:
    raise AssertionError(f"no HTTPS download expected ({host}:{port})")


class Busy:
    def __init__(self, busy: bool = False) -> None:
        self.busy = busy

    def __call__(self) -> bool:
        return self.busy


def make(
    tmp_path: Path,
    *,
    busy: bool = False,
    free: int = 1 << 30,
    check_exit: int = 0,
    announced: list[list[FileResult]] | None = None,
) -> Deployer:
    step = tmp_path / "install-step"
    step.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/install-step.log"\nexit {check_exit}\n')
    step.chmod(0o755)
    return Deployer(
        files=FileStore(tmp_path / "files", quota=1 << 20, clock=lambda: WHEN),
        downloads=DownloadPolicy(https_trust_for=no_tls, sleep=lambda s: None),
        steps=PrivilegedSteps(tmp_path / "requests", install_step=[str(step)]),
        staging_dir=tmp_path / "staging",
        is_busy=Busy(busy),
        clock=lambda: WHEN,
        free_bytes=lambda path: free,
        announce=(lambda results: announced.append(list(results)))
        if announced is not None
        else (lambda results: None),
    )


def ftp_items(
    srv: FtpFileServer, name: str, *, index: int | None = None, **extra: str
) -> list[Item]:
    values = {
        **srv.values(name, path="/media"),
        **{k.replace("_", "-"): v for k, v in extra.items()},
    }
    return [Item(name=k, value=v, index=index) for k, v in values.items()]


@pytest.fixture
def served(tmp_path: Path) -> Path:
    (tmp_path / "served" / "media").mkdir(parents=True)
    return tmp_path / "served"


# --------------------------------------------------------------------------- grouping


def test_items_without_index_are_one_single_file() -> None:
    indexed, entries = group_file_items(
        [Item(name="file-name", value="a.wav"), Item(name="file-type", value="RINGTONE")]
    )
    assert indexed is False
    assert entries == [(None, {"file-name": "a.wav", "file-type": "RINGTONE"})]


def test_indexed_items_are_one_file_per_index_in_order_with_shared_items() -> None:
    indexed, entries = group_file_items(
        [
            Item(name="file-name", value="b.wav", index=7),
            Item(name="file-server", value="dls"),
            Item(name="file-name", value="a.png", index=2),
            Item(name="file-server", value="other", index=2),
            Item(name="file-name", value="bad", index=None, status=ItemStatus.INVALID_INDEX),
        ]
    )
    assert indexed is True
    assert entries == [
        (2, {"file-name": "a.png", "file-server": "other"}),
        (7, {"file-name": "b.wav", "file-server": "dls"}),
    ]


def test_no_items_is_no_file() -> None:
    assert group_file_items([]) == (False, [])


# --------------------------------------------------------------------------- status items


def result(index: int | None, name: str, status: str = "ok") -> FileResult:
    return FileResult(
        index=index,
        action="deploy",
        type="LOGO",
        name=name,
        status="ok" if status == "ok" else "failed",
        date="10:06:2008",
        time="15:35:52",
    )


def test_status_of_a_single_file_has_no_index_in_the_guides_order() -> None:
    outcome = FileDeploymentOutcome(results=(result(None, "a.png"),), indexed=False)
    assert status_items(outcome) == [
        Item(name="file-deployment-date", value="10:06:2008"),
        Item(name="file-deployment-time", value="15:35:52"),
        Item(name="file-deployment-name", value="a.png"),
        Item(name="file-deployment-type", value="LOGO"),
        Item(name="file-deployment-status", value="ok"),
    ]


def test_status_of_an_indexed_request_carries_the_requests_indices() -> None:
    outcome = FileDeploymentOutcome(
        results=(result(3, "a.png"), result(9, "b.png", "failed")), indexed=True
    )
    items = status_items(outcome)
    assert {(i.name, i.index) for i in items if i.name == "file-deployment-name"} == {
        ("file-deployment-name", 3),
        ("file-deployment-name", 9),
    }
    assert Item(name="file-deployment-status", value="failed", index=9) in items
    assert all(i.index is None for i in status_items(outcome, indexed=False))


def test_a_name_xml_cannot_carry_is_reported_with_question_marks() -> None:
    outcome = FileDeploymentOutcome(results=(result(None, "a\x00b/c"),), indexed=False)
    names = [i.value for i in status_items(outcome) if i.name == "file-deployment-name"]
    assert names == ["a?b/c"]


def test_read_all_reports_deployed_files_indexed_from_one(tmp_path: Path) -> None:
    files = FileStore(tmp_path / "files", quota=1000, clock=lambda: WHEN)
    for type_, name in (("RINGTONE", "r.wav"), ("LOGO", "l.png")):
        with files.begin(type_, name) as staging:
            staging.file.write(b"x")
            staging.commit()

    items = read_all_file_items(files)

    assert [(i.name, i.value, i.index) for i in items if i.name == "file-deployment-name"] == [
        ("file-deployment-name", "l.png", 1),
        ("file-deployment-name", "r.wav", 2),
    ]
    assert len(items) == 10


@pytest.mark.parametrize(
    ("given", "reported"),
    [("1.4.9.0", "V1 R4.9.0"), ("3.5.12.0", "V3 R5.12.0"), ("V3 R5.1.0", "V3 R5.1.0"), ("", "")],
)
def test_file_sw_version_becomes_the_software_version_form(given: str, reported: str) -> None:
    assert software_version_of(given) == reported


# --------------------------------------------------------------------------- FileDeployment


def test_file_deployment_while_busy_is_answered_busy_and_changes_nothing(tmp_path: Path) -> None:
    deployer = make(tmp_path, busy=True)
    items = [
        Item(name="file-https-base-url", value="https://127.0.0.1:1/a.png"),
        Item(name="file-type", value="LOGO"),
    ]
    answer = deployer.file_deployment(items, basic_items=BASIC)
    assert answer == Reply(status=ReplyStatus.BUSY, items=None)
    assert deployer.files.list() == []


@pytest.mark.parametrize("name", ["../evil.png", "a/b.png", ".."])
def test_unsafe_name_fails_before_any_download(tmp_path: Path, name: str) -> None:
    deployer = make(tmp_path)  # no_tls fails the test if a download starts
    items = [
        Item(name="file-https-base-url", value="https://127.0.0.1:1/media/"),
        Item(name="file-name", value=name),
        Item(name="file-type", value="LOGO"),
    ]
    answer = deployer.file_deployment(items, basic_items=BASIC)

    assert isinstance(answer, StatusReport)
    assert answer.items[0] == BASIC[0]
    assert Item(name="file-deployment-status", value="failed") in answer.items
    assert Item(name="file-deployment-name", value=name) in answer.items
    assert not (tmp_path / "evil.png").exists()


def test_ftp_file_is_deployed_and_announced(tmp_path: Path, served: Path) -> None:
    (served / "media" / "ring.wav").write_bytes(b"RIFF" * 1000)
    announced: list[list[FileResult]] = []
    deployer = make(tmp_path, announced=announced)
    with FtpFileServer(served) as srv:
        outcome = deployer.perform_file_deployment(ftp_items(srv, "ring.wav", file_type="RINGTONE"))

    (res,) = outcome.results
    assert (res.status, res.name, res.type, res.index) == ("ok", "ring.wav", "RINGTONE", None)
    assert (tmp_path / "files" / "RINGTONE" / "ring.wav").read_bytes() == b"RIFF" * 1000
    assert [[r.name for r in batch] for batch in announced] == [["ring.wav"]]


def test_unknown_action_and_missing_type_fail_each_on_their_own(
    tmp_path: Path, served: Path
) -> None:
    (served / "media" / "ring.wav").write_bytes(b"RIFF")
    deployer = make(tmp_path)
    with FtpFileServer(served) as srv:
        items = [
            *ftp_items(srv, "ring.wav", index=1, file_type="RINGTONE", file_action="copy"),
            *ftp_items(srv, "ring.wav", index=2),
            *ftp_items(srv, "ring.wav", index=3, file_type="ringtone"),
        ]
        outcome = deployer.perform_file_deployment(items)

    assert [(r.index, r.status) for r in outcome.results] == [
        (1, "failed"),
        (2, "failed"),
        (3, "ok"),
    ]
    assert outcome.results[0].reason == "file-action is not deploy|delete"
    assert outcome.results[1].reason is not None and "bad-type" in outcome.results[1].reason


def test_delete_removes_a_deployed_file(tmp_path: Path) -> None:
    deployer = make(tmp_path)
    with deployer.files.begin("LOGO", "l.png") as staging:
        staging.file.write(b"x")
        staging.commit()

    outcome = deployer.perform_file_deployment(
        [
            Item(name="file-name", value="l.png"),
            Item(name="file-type", value="LOGO"),
            Item(name="file-action", value="delete"),
        ]
    )

    assert [r.status for r in outcome.results] == ["ok"]
    assert deployer.files.list() == []


# --------------------------------------------------------------------------- SoftwareDeployment


def sw_items(srv: FtpFileServer, *, priority: str = "immediate") -> list[Item]:
    return ftp_items(
        srv,
        "OS_80_SIP_V1_R4_9_0.img",
        file_type="APP",
        file_sw_type="Siemens SIP",
        file_sw_version="1.4.9.0",
        file_priority=priority,
    )


def test_normal_software_deployment_while_busy_is_busy(tmp_path: Path, served: Path) -> None:
    deployer = make(tmp_path, busy=True)
    with FtpFileServer(served) as srv:
        answer = deployer.software_deployment(sw_items(srv, priority="normal"))
        retrs = [arg for cmd, arg in srv.commands if cmd == "RETR"]
    assert answer.reply == Reply(status=ReplyStatus.BUSY, items=None)
    assert answer.pending is None
    assert retrs == []


def test_unknown_priority_is_failed_with_the_item_invalid(tmp_path: Path) -> None:
    answer = make(tmp_path).software_deployment([Item(name="file-priority", value="soon")])
    assert answer.reply == Reply(
        status=ReplyStatus.FAILED,
        items=(Item(name="file-priority", status=ItemStatus.INVALID_DATA),),
    )


def test_no_space_in_staging_fails_before_downloading(tmp_path: Path, served: Path) -> None:
    (served / "media" / "OS_80_SIP_V1_R4_9_0.img").write_bytes(b"i" * 100)
    deployer = make(tmp_path, free=1024)
    with FtpFileServer(served) as srv:
        answer = deployer.software_deployment(sw_items(srv))
        retrs = [arg for cmd, arg in srv.commands if cmd == "RETR"]
    assert answer.reply.status is ReplyStatus.FAILED
    assert retrs == []


def test_image_the_check_refuses_is_failed_and_removed(tmp_path: Path, served: Path) -> None:
    (served / "media" / "OS_80_SIP_V1_R4_9_0.img").write_bytes(b"i" * 100)
    deployer = make(tmp_path, check_exit=1)
    with FtpFileServer(served) as srv:
        answer = deployer.software_deployment(sw_items(srv))
    assert answer.reply.status is ReplyStatus.FAILED and answer.pending is None
    assert list((tmp_path / "staging").iterdir()) == []


def test_accepted_image_is_installed_after_cleanup_through_a_request(
    tmp_path: Path, served: Path
) -> None:
    (served / "media" / "OS_80_SIP_V1_R4_9_0.img").write_bytes(b"i" * 100)
    deployer = make(tmp_path)
    with FtpFileServer(served) as srv:
        answer = deployer.software_deployment(sw_items(srv), requested_by="N1")

    assert answer.reply == Reply(status=ReplyStatus.ACCEPTED, items=())
    assert answer.pending is not None
    image = tmp_path / "staging" / "OS_80_SIP_V1_R4_9_0.img"
    assert answer.pending.image == image and image.read_bytes() == b"i" * 100
    assert (tmp_path / "install-step.log").read_text() == f"check {image}\n"
    assert not (tmp_path / "requests" / "install").exists()  # not before CleanUp

    assert deployer.install(answer.pending) is True
    assert (tmp_path / "requests" / "install").exists()


def test_second_software_deployment_while_an_install_waits_fails(
    tmp_path: Path, served: Path
) -> None:
    (served / "media" / "OS_80_SIP_V1_R4_9_0.img").write_bytes(b"i" * 100)
    deployer = make(tmp_path)
    with FtpFileServer(served) as srv:
        first = deployer.software_deployment(sw_items(srv))
        assert first.pending is not None
        deployer.install(first.pending)
        second = deployer.software_deployment(sw_items(srv))
    assert second.reply.status is ReplyStatus.FAILED
    assert first.pending.image.exists()
