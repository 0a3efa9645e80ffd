"""FileDeployment and SoftwareDeployment end to end: real FTP (pyftpdlib) and real HTTPS
servers on 127.0.0.1, the phone's session and codec, real files, the shipped install step.

Issue 6, "done when": a single file ok; indexed deploy and delete in one message;
failures (cut mid-file, 404, larger than announced or allowed, over quota, a name with
`/`, `..` or NUL) each give status `failed`, leave the previous file of that name
untouched and write nothing outside the files directory; SoftwareDeployment `normal`
while busy → busy, `immediate` while busy → accepted, a cut download is never
installed, and after the recorded install and reboot the new `software-version`.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provd.lab.fileserver import FileBehaviour, FtpFileServer, HttpsFileServer
from provd.lab.pki import LabPKI
from provd.service.deploy import Deployer, DownloadPolicy, SoftwareAnswer
from provd.service.device import read_description, write_description
from provd.service.privileged import PrivilegedSteps
from provd.store.files import FileStore
from provd.transport.tls import TrustPolicy
from provd.wpi.codec import emit_dls, parse_workpoint
from provd.wpi.events import ActionRequested, InteractionEnded
from provd.wpi.model import DLSMessage, Item, Reason, ReplyStatus, WorkpointMessage
from provd.wpi.session import PhoneSession
from tests.certs import make_ca, make_leaf
from tests.fileservers import snapshot

ROOT = Path(__file__).resolve().parents[2]
INSTALL_STEP = ROOT / "libexec" / "provd-install-step"
NONCE = "E5BFC5E2FBCE6CD3D20DC9AD975C0355"
BASIC = (
    Item(name="mac-addr", value="00:01:E3:25:EA:13"),
    Item(name="software-version", value="V1 R4.8.0"),
)
WHEN = datetime.datetime(2008, 6, 10, 15, 35, 52)
PREVIOUS = b"the previous file"
IMAGE = bytes(range(256)) * 800  # 204 800 bytes


@dataclass
class Lab:
    """The phone's directories, both file servers and a deployer wired to them."""

    tmp: Path
    phone: Path
    ftp: FtpFileServer
    https: HttpsFileServer
    busy: list[bool]
    deployer: Deployer

    def files_dir(self) -> Path:
        return self.phone / "files"

    def ftp_items(self, name: str, *, index: int | None = None, **extra: str) -> list[Item]:
        values = {
            **self.ftp.values(name, path="/media/"),
            **{k.replace("_", "-"): v for k, v in extra.items()},
        }
        return [Item(name=k, value=v, index=index) for k, v in values.items()]

    def https_items(self, path: str, *, index: int | None = None, **extra: str) -> list[Item]:
        values = {
            "file-https-base-url": self.https.url_for(path),
            **{k.replace("_", "-"): v for k, v in extra.items()},
        }
        return [Item(name=k, value=v, index=index) for k, v in values.items()]

    def previous(self, type_: str, name: str) -> Path:
        """A file deployed before the test's deployment."""
        with self.deployer.files.begin(type_, name) as staging:
            staging.file.write(PREVIOUS)
            staging.commit()
        return self.files_dir() / type_ / name


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    ca = make_ca()
    cert = make_leaf(ca)
    served = tmp_path / "served"
    (served / "media").mkdir(parents=True)
    phone = tmp_path / "phone"
    phone.mkdir()
    write_description(phone / "device.toml", {"software-version": "V1 R4.8.0"})
    step = tmp_path / "check-step"
    step.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/check-step.log"\nexit 0\n')
    step.chmod(0o755)
    busy = [False]

    def trust_for(host: str, port: int) -> TrustPolicy:
        # spec §6.1 [B]: another host than the provisioning server → its CAs.
        return TrustPolicy.from_ca_pem(ca.cert_pem)

    files = FileStore(
        phone / "files", limits={"PIC": 300 * 1024}, quota=2 << 20, clock=lambda: WHEN
    )
    deployer = Deployer(
        files=files,
        downloads=DownloadPolicy(
            https_trust_for=trust_for, attempts=2, sleep=lambda s: None, timeout=5.0
        ),
        steps=PrivilegedSteps(phone / "run" / "requests", install_step=[str(step)]),
        staging_dir=phone / "staging",
        is_busy=lambda: busy[0],
        clock=lambda: WHEN,
    )
    with FtpFileServer(served) as ftp, HttpsFileServer(pki=LabPKI(ca, cert)) as https:
        yield Lab(tmp_path, phone, ftp, https, busy, deployer)


def session_for(action: str, items: list[Item]) -> tuple[PhoneSession, ActionRequested]:
    session = PhoneSession(reason=Reason.SOLICITED, nonce=NONCE, items=BASIC)
    session.start()
    event = session.receive(emit_dls(DLSMessage(nonce=NONCE, action=action, items=tuple(items))))
    assert isinstance(event, ActionRequested), event
    return session, event


def file_deployment(lab: Lab, items: list[Item]) -> WorkpointMessage:
    """One FileDeployment through the phone's session; the phone's answer, parsed."""
    session, event = session_for("FileDeployment", items)
    answer = lab.deployer.file_deployment(event.items, basic_items=BASIC)
    return parse_workpoint(session.send(answer))


def deployment_items(message: WorkpointMessage) -> dict[int | None, dict[str, str]]:
    found: dict[int | None, dict[str, str]] = {}
    for item in message.items or ():
        if item.name.startswith("file-deployment-"):
            found.setdefault(item.index, {})[item.name.removeprefix("file-deployment-")] = (
                item.value
            )
    return found


# --------------------------------------------------------------------------- FileDeployment ok


def test_single_https_file_is_deployed_and_reported_without_index(lab: Lab) -> None:
    lab.https.put("/media/ringtone-phone.wav", b"RIFF" * 5000)
    message = file_deployment(
        lab, lab.https_items("/media/ringtone-phone.wav", file_type="RINGTONE", file_username="dls")
    )

    assert message.reason is Reason.STATUS
    assert message.items is not None and message.items[:2] == BASIC
    assert deployment_items(message) == {
        None: {
            "date": "10:06:2008",
            "time": "15:35:52",
            "name": "ringtone-phone.wav",
            "type": "RINGTONE",
            "status": "ok",
        }
    }
    assert (lab.files_dir() / "RINGTONE" / "ringtone-phone.wav").read_bytes() == b"RIFF" * 5000


def test_indexed_deploy_and_delete_in_one_message(lab: Lab) -> None:
    (lab.ftp.root / "media" / "Logo for OpenStage 80.png").write_bytes(b"PNG" * 100)
    lab.https.put("/media/hold.wav", b"MOH" * 100)
    old = lab.previous("RINGTONE", "old.wav")
    items = [
        *lab.ftp_items(
            "Logo for OpenStage 80.png", index=1, file_type="LOGO", file_action="deploy"
        ),
        *lab.https_items("/media/", index=2, file_name="hold.wav", file_type="MOH"),
        Item(name="file-name", value="old.wav", index=3),
        Item(name="file-type", value="RINGTONE", index=3),
        Item(name="file-action", value="delete", index=3),
    ]

    message = file_deployment(lab, items)

    reported = deployment_items(message)
    assert {i: (r["name"], r["type"], r["status"]) for i, r in reported.items()} == {
        1: ("Logo for OpenStage 80.png", "LOGO", "ok"),
        2: ("hold.wav", "MOH", "ok"),
        3: ("old.wav", "RINGTONE", "ok"),
    }
    assert (lab.files_dir() / "LOGO" / "Logo for OpenStage 80.png").read_bytes() == b"PNG" * 100
    assert (lab.files_dir() / "MOH" / "hold.wav").read_bytes() == b"MOH" * 100
    assert not old.exists()
    # ReadAllItems now reports both deployed files [G p.245]
    names = {f.name for f in lab.deployer.files.list()}
    assert names == {"Logo for OpenStage 80.png", "hold.wav"}


def test_one_failing_index_does_not_stop_the_others(lab: Lab) -> None:
    (lab.ftp.root / "media" / "a.png").write_bytes(b"a")
    items = [
        *lab.https_items("/media/none.png", index=1, file_type="LOGO"),
        *lab.ftp_items("a.png", index=2, file_type="LOGO"),
    ]
    reported = deployment_items(file_deployment(lab, items))
    assert {i: r["status"] for i, r in reported.items()} == {1: "failed", 2: "ok"}


# --------------------------------------------------------------------------- failures


Setup = Callable[[Lab], list[Item]]


def ftp_cut(lab: Lab) -> list[Item]:
    (lab.ftp.root / "media" / "logo.png").write_bytes(IMAGE)
    lab.ftp.misbehave("/media/logo.png", FileBehaviour(cut_after=50_000))
    return lab.ftp_items("logo.png", file_type="LOGO")


def https_cut(lab: Lab) -> list[Item]:
    lab.https.put("/media/logo.png", IMAGE)
    lab.https.misbehave("/media/logo.png", FileBehaviour(cut_after=50_000))
    return lab.https_items("/media/logo.png", file_type="LOGO")


def https_404(lab: Lab) -> list[Item]:
    return lab.https_items("/media/logo.png", file_type="LOGO")


def ftp_550(lab: Lab) -> list[Item]:
    return lab.ftp_items("logo.png", file_type="LOGO")


def larger_than_announced(lab: Lab) -> list[Item]:
    (lab.ftp.root / "media" / "logo.png").write_bytes(IMAGE)
    lab.ftp.misbehave("/media/logo.png", FileBehaviour(announce=1000))
    return lab.ftp_items("logo.png", file_type="LOGO")


def picture_over_300_kb(lab: Lab) -> list[Item]:
    lab.https.put("/media/logo.png", b"J" * (300 * 1024 + 1))
    return lab.https_items("/media/logo.png", file_type="PIC")


def over_quota(lab: Lab) -> list[Item]:
    # 500 bytes of the quota left besides the previous logo.png, which does not count
    big = lab.previous("MOH", "big.wav")
    big.write_bytes(b"m" * ((2 << 20) - len(PREVIOUS) - 500))
    (lab.ftp.root / "media" / "logo.png").write_bytes(b"x" * 1000)
    return lab.ftp_items("logo.png", file_type="LOGO")


#: case → (file type, setup, what the logged reason starts with)
FAILURES: dict[str, tuple[str, Setup, str]] = {
    "ftp-cut-mid-file": ("LOGO", ftp_cut, "download closed"),
    "https-cut-mid-file": ("LOGO", https_cut, "download closed"),
    "https-404": ("LOGO", https_404, "download not-found"),
    "ftp-550": ("LOGO", ftp_550, "download not-found"),
    "ftp-larger-than-announced": ("LOGO", larger_than_announced, "download protocol"),
    "picture-over-300-kB": ("PIC", picture_over_300_kb, "download too-large"),
    "over-quota": ("LOGO", over_quota, "quota"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failed_download_reports_failed_and_keeps_the_previous_file(lab: Lab, case: str) -> None:
    type_, setup, reason = FAILURES[case]
    previous = lab.previous(type_, "logo.png")
    items = setup(lab)
    outside = snapshot(lab.tmp, skip=lab.files_dir())
    before = snapshot(lab.files_dir())

    (result,) = lab.deployer.perform_file_deployment(items).results
    reported = deployment_items(file_deployment(lab, items))

    assert result.status == "failed"
    assert result.reason is not None and result.reason.startswith(reason), result.reason

    assert reported[None]["status"] == "failed"
    assert reported[None]["name"] == "logo.png"
    assert previous.read_bytes() == PREVIOUS
    assert snapshot(lab.tmp, skip=lab.files_dir()) == outside
    after = snapshot(lab.files_dir())
    assert {k: v for k, v in after.items() if k != ".index.json"} == {
        k: v for k, v in before.items() if k != ".index.json"
    }


@pytest.mark.parametrize("name", ["../logo.png", "media/logo.png", "..", "a\x00b.png"])
def test_unsafe_names_report_failed_and_write_nothing(lab: Lab, name: str) -> None:
    lab.https.put("/media/logo.png", b"evil")
    previous = lab.previous("LOGO", "logo.png")
    everything = snapshot(lab.tmp)
    # The codec cannot carry a NUL: the server's message names a harmless file and the
    # deployer is handed the hostile items, as a parser bug upstream would hand them.
    session, _ = session_for("FileDeployment", lab.https_items("/media/", file_type="LOGO"))
    items = lab.https_items("/media/", file_name=name, file_type="LOGO")

    answer = lab.deployer.file_deployment(items, basic_items=BASIC)
    reported = deployment_items(parse_workpoint(session.send(answer)))

    assert reported[None]["status"] == "failed"
    assert lab.https.requests == []  # refused before any download
    assert previous.read_bytes() == PREVIOUS
    assert snapshot(lab.tmp) == everything


def test_file_deployment_while_busy_is_busy_and_changes_nothing(lab: Lab) -> None:
    lab.https.put("/media/logo.png", b"new")
    previous = lab.previous("LOGO", "logo.png")
    lab.busy[0] = True
    session, event = session_for(
        "FileDeployment", lab.https_items("/media/logo.png", file_type="LOGO")
    )

    reply = parse_workpoint(
        session.send(lab.deployer.file_deployment(event.items, basic_items=BASIC))
    )

    assert (reply.reason, reply.status, reply.items) == (Reason.REPLY_TO, ReplyStatus.BUSY, None)
    assert previous.read_bytes() == PREVIOUS
    assert lab.https.requests == []


# --------------------------------------------------------------------------- SoftwareDeployment


def software(lab: Lab, items: list[Item]) -> tuple[PhoneSession, SoftwareAnswer, WorkpointMessage]:
    session, event = session_for("SoftwareDeployment", items)
    answer = lab.deployer.software_deployment(event.items, requested_by=event.message.nonce)
    return session, answer, parse_workpoint(session.send(answer.reply))


def sw_items(lab: Lab, priority: str) -> list[Item]:
    lab.https.put("/OS/SIP/OS_80_SIP_V1_R4_9_0.img", IMAGE)
    return lab.https_items(
        "/OS/SIP/OS_80_SIP_V1_R4_9_0.img",
        file_type="APP",
        file_sw_type="Siemens SIP",
        file_sw_version="1.4.9.0",
        file_priority=priority,
    )


def run_install_unit(lab: Lab, installer: Path, reboot: Path) -> subprocess.CompletedProcess[str]:
    """What provd-install.path does when the request appears: run the install step."""
    return subprocess.run(
        [str(INSTALL_STEP), "request", str(lab.phone / "run" / "requests" / "install")],
        env={
            "PATH": "/usr/bin:/bin",
            "PROVD_STAGING_DIR": str(lab.phone / "staging"),
            "PROVD_DEVICE_DESCRIPTION": str(lab.phone / "device.toml"),
            "PROVD_INSTALLER": str(installer),
            "PROVD_REBOOT_COMMAND": str(reboot),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def recorder(directory: Path, name: str) -> Path:
    script = directory / name
    script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{directory}/steps.log"\n')
    script.chmod(0o755)
    return script


def test_normal_software_deployment_while_busy_is_busy(lab: Lab) -> None:
    lab.busy[0] = True
    _, answer, reply = software(lab, sw_items(lab, "normal"))

    assert (reply.action, reply.status, reply.items) == (
        "SoftwareDeployment",
        ReplyStatus.BUSY,
        None,
    )
    assert answer.pending is None
    assert lab.https.requests == []


def test_immediate_while_busy_is_accepted_installed_after_cleanup_and_reported(lab: Lab) -> None:
    lab.busy[0] = True
    session, answer, reply = software(lab, sw_items(lab, "immediate"))

    assert (reply.action, reply.status) == ("SoftwareDeployment", ReplyStatus.ACCEPTED)
    assert answer.pending is not None
    staged = lab.phone / "staging" / "OS_80_SIP_V1_R4_9_0.img"
    assert staged.read_bytes() == IMAGE
    assert (lab.tmp / "check-step.log").read_text() == f"check {staged}\n"
    assert not (lab.phone / "run" / "requests" / "install").exists()  # not before CleanUp

    ended = session.receive(emit_dls(DLSMessage(nonce=NONCE, action="CleanUp")))
    assert isinstance(ended, InteractionEnded)
    assert lab.deployer.install(answer.pending)

    installer, reboot = recorder(lab.tmp, "installer"), recorder(lab.tmp, "reboot")
    done = run_install_unit(lab, installer, reboot)
    assert done.returncode == 0, done.stderr
    assert (lab.tmp / "steps.log").read_text().splitlines() == [
        f"installer install {staged}",
        "reboot ",
    ]
    # the next start-up reads the device description the install step rewrote
    assert read_description(lab.phone / "device.toml")["software-version"] == "V1 R4.9.0"


def test_download_cut_every_time_is_failed_and_never_installed(lab: Lab) -> None:
    items = sw_items(lab, "immediate")
    lab.https.misbehave("/OS/SIP/OS_80_SIP_V1_R4_9_0.img", FileBehaviour(cut_after=100_000))

    _, answer, reply = software(lab, items)

    assert reply.status is ReplyStatus.FAILED
    assert answer.pending is None
    assert list((lab.phone / "staging").iterdir()) == []
    assert not (lab.tmp / "check-step.log").exists()
    assert not (lab.phone / "run" / "requests").exists()
    assert read_description(lab.phone / "device.toml")["software-version"] == "V1 R4.8.0"


def test_download_cut_once_resumes_and_stages_the_whole_image(lab: Lab) -> None:
    items = sw_items(lab, "immediate")
    lab.https.misbehave("/OS/SIP/OS_80_SIP_V1_R4_9_0.img", FileBehaviour(cut_after=100_000, cuts=1))

    _, answer, reply = software(lab, items)

    assert reply.status is ReplyStatus.ACCEPTED
    assert answer.pending is not None and answer.pending.image.read_bytes() == IMAGE
    assert [r.range for r in lab.https.requests] == [None, "bytes=100000-"]


def test_ftp_image_cut_mid_file_is_never_checked(lab: Lab) -> None:
    (lab.ftp.root / "media" / "fw.img").write_bytes(IMAGE)
    lab.ftp.misbehave("/media/fw.img", FileBehaviour(cut_after=100_000))
    items = lab.ftp_items("fw.img", file_sw_version="1.4.9.0")

    _, answer, reply = software(lab, items)

    assert reply.status is ReplyStatus.FAILED and answer.pending is None
    assert list((lab.phone / "staging").iterdir()) == []
    assert not (lab.tmp / "check-step.log").exists()
