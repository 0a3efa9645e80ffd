"""FileDeployment that fails (spec §6.1 [B]), through the real daemon and the lab's file
servers: every failure is reported `failed` in the `status` message, leaves the previous
file of that name untouched, and writes nothing outside the files directory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from provd.lab.server import LabServer
from tests.fileservers import FileBehaviour, FileServers, recorded
from tests.integration.daemon.harness import Phone
from tests.integration.deploy.deployment import (
    CLEAN_UP,
    SLOW,
    Rig,
    by_contact,
    deploy,
    deployed,
    deployments,
    files_dir,
    hidden_in_files_dir,
    outside_files,
    settle,
    solicit,
    status_report,
)

PREVIOUS = b"the ring tone deployed before " * 100  # 3 000 bytes
NEW = bytes(range(256)) * 400  # 102 400 bytes
SMALL_PIC = b"small picture"
BIG_PIC = bytes(400 * 1024)  # over PIC's 300 kB [G p.178]


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One failing deployment: its source, how the servers misbehave, what may be fetched."""

    source: Callable[[FileServers], Mapping[str, str]]
    type: str = "RINGTONE"
    name: str = "ring.wav"  # as the status report names it
    misbehave: Mapping[str, FileBehaviour] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    fetched: bool = True  # False: refused before any download


def ftp_new(name: str = "ring.wav", path: str = "/new") -> Callable[[FileServers], dict[str, str]]:
    return lambda s: s.ftp.values(name, path=path)


def https_url(path: str) -> Callable[[FileServers], dict[str, str]]:
    # The whole URL: the file is named after its last segment, percent-decoded [G p.53].
    return lambda s: {"file-https-base-url": s.https.url + path}


FAST_CASES = {
    # 404 / 550: the server does not have the file.
    "https-404": Case(source=https_url("/missing/ring.wav")),
    "ftp-550": Case(source=ftp_new(path="/missing")),
    # The server refuses: a wrong FTP password (530), an HTTPS 403.
    "ftp-wrong-password": Case(
        source=lambda s: {**s.ftp.values("ring.wav", path="/new"), "file-pwd": "wrong"},
        fetched=False,
    ),
    "https-forbidden": Case(
        source=https_url("/new/ring.wav"),
        misbehave={"/new/ring.wav": FileBehaviour(status=403)},
        fetched=False,
    ),
    # Larger than announced: FTP SIZE says less than the server sends.
    "ftp-more-than-announced": Case(
        source=ftp_new(), misbehave={"/new/ring.wav": FileBehaviour(announce=1000)}
    ),
    # Larger than allowed: PIC is limited to 300 kB [G p.178], refused on the announced size.
    "https-larger-than-allowed": Case(source=https_url("/new/pic.png"), type="PIC", name="pic.png"),
    "ftp-larger-than-allowed": Case(source=ftp_new("pic.png"), type="PIC", name="pic.png"),
    # Larger than announced and than allowed: a server that hides the size does not help.
    "ftp-size-hidden-larger-than-allowed": Case(
        source=ftp_new("pic.png"),
        type="PIC",
        name="pic.png",
        misbehave={"/new/pic.png": FileBehaviour(announce=100)},
    ),
    # Over the quota of all files together (the file it replaces does not count).
    "ftp-over-quota": Case(source=ftp_new(), settings={"files.quota": 64 * 1024}),
    "https-over-quota": Case(
        source=https_url("/new/ring.wav"), settings={"files.quota": 64 * 1024}
    ),
    # Hostile names: refused before anything is fetched.
    "ftp-name-with-slash": Case(source=ftp_new("sub/ring.wav"), name="sub/ring.wav", fetched=False),
    "ftp-name-dot-dot": Case(source=ftp_new(".."), name="..", fetched=False),
    "ftp-name-climbing-out": Case(
        source=ftp_new("../../../ring.wav"), name="../../../ring.wav", fetched=False
    ),
    "https-name-with-encoded-slashes": Case(
        source=https_url("/new/..%2F..%2F..%2Fring.wav"), name="../../../ring.wav", fetched=False
    ),
    "https-name-dot-dot": Case(source=https_url("/new/%2E%2E"), name="..", fetched=False),
    # A NUL cannot travel in XML; it arrives percent-encoded in the URL's last segment.
    # A deletion that would climb out of the files directory.
    "delete-climbing-out": Case(
        source=lambda s: {"file-action": "delete", "file-name": "../../secure/trust-pin"},
        name="../../secure/trust-pin",
        fetched=False,
    ),
    # Hostile types: only the configured ones, checked before anything is fetched.
    "type-climbing-out": Case(source=ftp_new(), type="../../RINGTONE", fetched=False),
    "unknown-type": Case(source=ftp_new(), type="FIRMWARE", fetched=False),
    "https-name-with-nul": Case(
        source=https_url("/new/ring.wav%00.png"), name="ring.wav?.png", fetched=False
    ),
}

# A connection cut mid-file, every time (the daemon tries three times, 2 s and 4 s apart),
# and an HTTPS server that announces more than it sends.
CUT_CASES = {
    "ftp-cut-mid-file": Case(
        source=ftp_new(path="/cut-ftp"),
        misbehave={"/cut-ftp/ring.wav": FileBehaviour(cut_after=20_000)},
    ),
    "https-cut-mid-file": Case(
        source=https_url("/cut-https/ring.wav"),
        misbehave={"/cut-https/ring.wav": FileBehaviour(cut_after=20_000)},
    ),
    "https-announces-more-than-it-sends": Case(
        source=https_url("/short/ring.wav"),
        misbehave={"/short/ring.wav": FileBehaviour(announce=len(NEW) + 5000)},
    ),
}


def prepare(rig: Rig, case: Case) -> tuple[LabServer, Phone]:
    """A phone whose start-up deployed the previous ring tone and picture; the failing
    deployment is the next (solicited) interaction."""
    servers = rig.servers
    servers.serve("/media/ring.wav", PREVIOUS)
    servers.serve("/media/pic.png", SMALL_PIC)
    servers.serve("/new/ring.wav", NEW)
    servers.serve("/new/pic.png", BIG_PIC)
    for directory in ("/cut-ftp", "/cut-https", "/short"):
        servers.serve(f"{directory}/ring.wav", NEW)
    for path, behaviour in case.misbehave.items():
        servers.misbehave(path, behaviour)
    first = [
        deploy(
            {**servers.ftp.values("ring.wav", path="/media"), "file-type": "RINGTONE"},
            {**servers.ftp.values("pic.png", path="/media"), "file-type": "PIC"},
            indexed=True,
        ),
        *CLEAN_UP,
    ]
    failing = [deploy({**case.source(servers), "file-type": case.type}), *CLEAN_UP]
    lab, phone = rig.start(by_contact(first, failing), settings=case.settings)
    assert deployed(phone) == {"PIC/pic.png": SMALL_PIC, "RINGTONE/ring.wav": PREVIOUS}
    return lab, phone


def fetches(servers: FileServers) -> int:
    return sum(servers.ftp.retrieved(p) + servers.https.retrieved(p) for p in _NEW_PATHS)


_NEW_PATHS = ("/new/ring.wav", "/new/pic.png", "/missing/ring.wav")


def check_failed(
    rig: Rig, case: Case, run: Callable[[], int], phone: Phone, lab: LabServer
) -> None:
    before = outside_files(phone)
    files_before = deployed(phone)
    hooks_before = recorded(rig.hook_log)

    number = run()

    result = deployments(status_report(lab, number))
    assert list(result) == [None]
    assert (result[None]["status"], result[None]["type"]) == ("failed", case.type)
    assert result[None]["name"] == case.name
    # The previous file of that name is untouched, and so is every other file.
    assert deployed(phone) == files_before
    assert hidden_in_files_dir(phone) == []  # no temporary left behind
    # Nothing was written outside the files directory (state, runtime, work directory).
    assert outside_files(phone) == before
    # A failure changes nothing: the apply hooks are not run.
    assert recorded(rig.hook_log) == hooks_before
    if not case.fetched:
        assert fetches(rig.servers) == 0, "a refused name must be refused before downloading"


@pytest.mark.parametrize("name", FAST_CASES)
def test_a_failed_deployment_is_reported_and_changes_nothing(rig: Rig, name: str) -> None:
    case = FAST_CASES[name]
    lab, phone = prepare(rig, case)
    check_failed(rig, case, lambda: solicit(phone, lab), phone, lab)


def test_cut_downloads_are_retried_then_failed_and_never_used(rig: Rig) -> None:
    # The three cases run at once on three phones: each spends ~6 s in the daemon's
    # retry waits. Every phone has its own lab server and state; the file servers are shared.
    started = {name: prepare(rig, case) for name, case in CUT_CASES.items()}
    numbers: dict[str, int] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        lab, phone = started[name]
        try:
            numbers[name] = solicit(phone, lab, timeout=SLOW)
        except BaseException as exc:
            errors.append(exc)

    snapshots = {name: (outside_files(p), deployed(p)) for name, (_, p) in started.items()}
    threads = [threading.Thread(target=run, args=(name,)) for name in CUT_CASES]
    for thread in threads:
        thread.start()
    # spec §6.1 [B]: while the phone downloads and retries, the previous file stays what
    # the rest of the phone sees; the bytes received so far are never visible.
    samples = 0
    while any(thread.is_alive() for thread in threads):
        for name, (_, phone) in started.items():
            assert deployed(phone) == snapshots[name][1], name
        samples += 1
        time.sleep(0.05)
    for thread in threads:
        thread.join(SLOW + 5)
    assert not errors, errors
    assert samples > 20

    for name in CUT_CASES:
        lab, phone = started[name]
        result = deployments(status_report(lab, numbers[name]))
        assert (result[None]["status"], result[None]["name"]) == ("failed", "ring.wav"), name
        assert deployed(phone) == snapshots[name][1], name
        assert hidden_in_files_dir(phone) == [], name
        assert outside_files(phone) == snapshots[name][0], name
    # Three attempts each, resuming where the file stopped, then the phone gave up.
    assert rig.servers.ftp.retrieved("/cut-ftp/ring.wav") == 3
    assert [c for c in rig.servers.ftp.commands if c[0] == "REST"] == [
        ("REST", "20000"),
        ("REST", "40000"),
    ]
    https = rig.servers.https.requests
    assert [r.range for r in https if r.path == "/cut-https/ring.wav"] == [
        None,
        "bytes=20000-",
        "bytes=40000-",
    ]
    assert [r.range for r in https if r.path == "/short/ring.wav"] == [
        None,
        f"bytes={len(NEW)}-",
        f"bytes={len(NEW)}-",
    ]


def test_a_download_cut_by_a_power_loss_leaves_the_previous_file_and_no_leftover(
    rig: Rig,
) -> None:
    case = CUT_CASES["ftp-cut-mid-file"]
    _, phone = prepare(rig, case)
    before = deployed(phone)
    mark = phone.mark()
    assert phone.ctl("contact")["ok"]
    # The first attempt broke off; the phone waits before it resumes: the power goes.
    phone.wait_log(r"attempt 1 of 3; resuming", after=mark)
    (partial,) = hidden_in_files_dir(phone)
    assert partial.startswith("RINGTONE/.")  # received so far, under a hidden name only
    assert (files_dir(phone) / partial).stat().st_size <= 20_000  # (some may be buffered)
    assert deployed(phone) == before
    phone.kill()

    phone.start()
    assert phone.wait_interaction("start-up", after=0) == "completed"
    settle(phone)
    assert hidden_in_files_dir(phone) == []  # the unfinished download is gone
    assert deployed(phone) == before
