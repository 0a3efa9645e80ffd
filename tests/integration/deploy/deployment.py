"""Helpers of the deployment tests: the rig, scenarios as data, what the phone left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from provd.lab.transcript import Record
from provd.wpi.model import Reason
from tests.fileservers import FileServers, recorded, recorder, snapshot
from tests.integration.daemon.harness import LabFactory, Phone, PhoneFactory, wait_until
from tests.integration.daemon.lab import (
    item_values,
    opened,
    phone_records,
    server_records,
)

__all__ = ["item_values", "opened", "phone_records", "server_records"]  # for the tests here

ROOT = Path(__file__).resolve().parents[3]
INSTALL_STEP = ROOT / "libexec" / "provd-install-step"
REBOOT_STEP = ROOT / "libexec" / "provd-reboot-step"
OLD_VERSION = "V1 R4.8.0"
#: [G p.57] file-sw-version 1.4.9.0 is reported as software-version V1 R4.9.0.
NEW_VERSION = "V1 R4.9.0"
#: Downloads that the daemon retries (3 attempts, 2 s then 4 s apart) need longer waits.
SLOW = 30.0
INDEX_FILE = ".index.json"
DATE = re.compile(r"\d\d:\d\d:\d{4}")  # [G p.54] DD:MM:YYYY
TIME = re.compile(r"\d\d:\d\d:\d\d")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rig:
    """File servers, recorders and a device description around one test's phones."""

    tmp: Path
    pki: LabPKI
    servers: FileServers
    records: Path
    ca_file: Path
    description: Path
    labs: LabFactory
    phones: PhoneFactory

    @property
    def hook_log(self) -> Path:
        return self.records / "apply-hooks.log"

    @property
    def installer_log(self) -> Path:
        return self.records / "installer.log"

    @property
    def reboot_log(self) -> Path:
        return self.records / "reboot.log"

    @property
    def installer(self) -> Path:
        """`PROVD_INSTALLER`: records `check IMAGE` and `install IMAGE` with the image's hash."""
        path = self.records / "installer"
        if not path.exists():
            recorder(path, self.installer_log)
        return path

    @property
    def reboot_command(self) -> Path:
        path = self.records / "reboot"
        if not path.exists():
            recorder(path, self.reboot_log)
        return path

    def hook(self, phone: Phone) -> Path:
        """An executable apply hook that records what it is told (stdin and PROVD_CHANGED)."""
        return recorder(phone.apply_dir / "50-record", self.hook_log, stdin=True)

    def hooks_told(self) -> list[str]:
        """What the apply hooks were told, one changed name a line (stdin)."""
        return [
            line.removeprefix("stdin:")
            for line in recorded(self.hook_log)
            if line.startswith("stdin:")
        ]

    def start(
        self,
        scenario: Scenario | Mapping[str, Any],
        *,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> tuple[LabServer, Phone]:
        """A lab server playing `scenario` and a phone that finished its start-up."""
        lab = self.labs(scenario, pki=self.pki)
        phone = self.phones(
            lab,
            settings={
                "device.software-version": "",  # read from the description
                "device.description-file": self.description,
                "hooks.installer-command": [str(INSTALL_STEP)],
                **(settings or {}),
            },
            env={
                "SSL_CERT_FILE": str(self.ca_file),  # the system store: the lab CA
                "SSL_CERT_DIR": str(self.tmp / "no-cert-dir"),
                "PROVD_INSTALLER": str(self.installer),
                **(env or {}),
            },
        )
        self.hook(phone)
        phone.start()
        assert phone.wait_interaction("start-up") == "completed", phone.logtext()
        settle(phone)
        return lab, phone

    def run_install_step(
        self, phone: Phone, request: Path, *, installer: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`provd-install-step request FILE`, as provd-install.service runs it."""
        return self._run(
            [str(INSTALL_STEP), "request", str(request)],
            {
                "PROVD_STAGING_DIR": str(staging_dir(phone)),
                "PROVD_DEVICE_DESCRIPTION": str(self.description),
                "PROVD_INSTALLER": str(installer or self.installer),
                "PROVD_REBOOT_COMMAND": str(self.reboot_command),
            },
        )

    def run_reboot_step(self, request: Path) -> subprocess.CompletedProcess[str]:
        """`provd-reboot-step FILE`, as provd-reboot.service runs it (the reboot recorded)."""
        return self._run(
            [str(REBOOT_STEP), str(request)], {"PROVD_REBOOT_COMMAND": str(self.reboot_command)}
        )

    @staticmethod
    def _run(argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


# --------------------------------------------------------------------------- scenarios


def by_contact(*scripts: list[dict[str, Any]]) -> dict[str, Any]:
    """A scenario whose n-th interaction (from 1) plays the n-th list of steps."""
    return {
        "interaction": [
            {"contact": n, "step": steps} for n, steps in enumerate(scripts, start=1) if steps
        ]
    }


def items(values: Mapping[str, str], index: int | None = None) -> list[dict[str, Any]]:
    """Scenario items from values by name, all with `index` (None: without one)."""
    return [
        {"name": name, "value": value, **({"index": index} if index is not None else {})}
        for name, value in values.items()
    ]


def deploy(*files: Mapping[str, str], indexed: bool = False) -> dict[str, Any]:
    """A FileDeployment step: one file without index, or several indexed from 1."""
    if not indexed:
        assert len(files) == 1
        return {"action": "FileDeployment", "items": items(files[0])}
    listed: list[dict[str, Any]] = []
    for number, values in enumerate(files, start=1):
        listed += items(values, number)
    return {"action": "FileDeployment", "items": listed}


CLEAN_UP: list[dict[str, Any]] = [{"action": "CleanUp"}]


# --------------------------------------------------------------------------- the phone's side


def solicit(phone: Phone, lab: LabServer, timeout: float = 10.0) -> int:
    """Open a solicited interaction (`provctl contact`), wait for its end; its number."""
    count = len(opened(lab, Reason.SOLICITED))
    mark = phone.mark()
    assert phone.ctl("contact")["ok"]
    result = phone.wait_interaction(Reason.SOLICITED, after=mark, timeout=timeout)
    assert result == "completed", phone.logtext()
    settle(phone)
    numbers = opened(lab, Reason.SOLICITED)
    assert len(numbers) == count + 1
    return numbers[-1]


def settle(phone: Phone) -> None:
    """Wait until the loop has done what follows an interaction (the log line "completed"
    comes first): a control request is answered by the loop after that work."""
    assert phone.status()["ok"]


def status_report(lab: LabServer, number: int) -> Record:
    """The phone's one `status` message in interaction `number` (spec §6.1)."""
    reports = [r for r in phone_records(lab, number) if r.reason is Reason.STATUS]
    assert len(reports) == 1, [r.reason for r in phone_records(lab, number)]
    return reports[0]


def nonce_of(lab: LabServer, number: int) -> str:
    """The nonce of interaction `number`, as the lab saw it."""
    (found,) = [i for i in lab.conductor.interactions if i.number == number]
    return str(found.session.nonce)


def deployments(record: Record) -> dict[int | None, dict[str, str]]:
    """The `file-deployment-*` items of a message by index: {index: {"name": ..., ...}}."""
    found: dict[int | None, dict[str, str]] = {}
    for item in record.all_items:
        if item.name.startswith("file-deployment-"):
            found.setdefault(item.index, {})[item.name.removeprefix("file-deployment-")] = (
                item.value
            )
    return found


def files_dir(phone: Phone) -> Path:
    return phone.state_dir / "files"


def staging_dir(phone: Phone) -> Path:
    return phone.state_dir / "staging"


def deployed(phone: Phone) -> dict[str, bytes]:
    """The deployed files the rest of the phone sees: ``TYPE/name`` → content."""
    root = files_dir(phone)
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    }


def hidden_in_files_dir(phone: Phone) -> list[str]:
    """Dotfiles under the files directory other than the index: unfinished downloads."""
    root = files_dir(phone)
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob(".*")
        if p.relative_to(root) != Path(INDEX_FILE)
    )


def outside_files(phone: Phone) -> dict[str, tuple[str, bytes]]:
    """Everything the phone has outside its files directory: work, state and runtime dirs."""
    work = snapshot(phone.workdir, skip=files_dir(phone))
    run = snapshot(phone.runtime_dir)
    return {**work, **{f"<run>/{k}": v for k, v in run.items()}}


def request(phone: Phone, name: str) -> Path:
    """The request file `name` (``reboot``, ``install``) for the privileged units."""
    return phone.requests_dir / name


def read_request(phone: Phone, name: str, timeout: float = 10.0) -> dict[str, Any]:
    path = request(phone, name)
    wait_until(path.exists, timeout=timeout)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
