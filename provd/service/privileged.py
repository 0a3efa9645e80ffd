"""Privileged steps outside the daemon: reboot and firmware install (spec §6.2, §6.3).

provd runs unprivileged (``User=provd``, no capabilities). What needs root is
done by small systemd units that provd triggers by writing a *request file*
(docs/privileged-steps.md has the whole contract):

- ``<requests>/reboot`` → ``provd-reboot.path`` starts ``provd-reboot.service``: the
  request is read and removed (as provd), then ``systemctl reboot`` runs.
- ``<requests>/install`` → ``provd-install.path`` starts ``provd-install.service``:
  ``provd-install-step request <file>`` (root, no network) installs the staged
  image, writes the new `software-version` into the device description and
  reboots — also after a failed install, so the server sees the `start-up` with
  the unchanged version it waits for (spec §6.2 [B], [G p.56]).

A request is one JSON object written atomically (temporary file, fsync, rename:
the path unit never sees half a request): ``what`` (``reboot``,
``factory-reset-reboot`` or ``install``), ``id`` (random, to find the request in
the journal), ``when`` (UTC, ISO 8601), ``requested_by`` (the server message's
nonce), and per kind ``reason``, or ``image``, ``software_version``,
``software_type``, ``reboot_after``. The privileged side trusts nothing in it
beyond data: the image must lie in its own staging directory, the version is
checked against a narrow character set.

The installer's *check* step (spec §6.2: check before answering) runs here,
unprivileged and synchronously: ``<install-step> check <image>`` with a timeout.
It must therefore not need root — RAUC's ``rauc info`` and SWUpdate's
``swupdate -c`` do not.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from provd.service.journal import MessageId, log_event
from provd.store.fsutil import atomic_write

log = logging.getLogger(__name__)

REBOOT = "reboot"
INSTALL = "install"
RequestKind = Literal["reboot", "factory-reset-reboot", "install"]

#: What the privileged install step accepts as a version (it writes it into a file).
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}")
_OUTPUT_TAIL = 1024


class StepError(Exception):
    """A request could not be written (the step will not run); `message` is safe to log."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The installer's verdict on a staged image: `ok`, and its output's tail for the log."""

    ok: bool
    detail: str


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_id() -> str:
    return secrets.token_hex(8)


class PrivilegedSteps:
    """Requests for the privileged units, and the unprivileged image check.

    `requests_dir` is the directory the path units watch (``/run/provd/requests``);
    `install_step` the command of the installer hook, called with ``check <image>``.
    """

    def __init__(
        self,
        requests_dir: Path,
        *,
        install_step: Sequence[str],
        check_timeout: float = 300.0,
        clock: Callable[[], datetime.datetime] = _utc_now,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.requests_dir = requests_dir
        self._install_step = tuple(install_step)
        self._check_timeout = check_timeout
        self._clock = clock
        self._new_id = new_id

    # ------------------------------------------------------------------ requests

    def request_reboot(
        self, *, reason: str, requested_by: str = "", factory_reset: bool = False
    ) -> Path:
        """Ask ``provd-reboot.service`` to reboot (Restart, factory reset: spec §6.3)."""
        what: RequestKind = "factory-reset-reboot" if factory_reset else "reboot"
        return self._write(REBOOT, what, requested_by, {"reason": reason})

    def request_install(
        self,
        image: Path,
        *,
        software_version: str,
        software_type: str = "",
        requested_by: str = "",
        reboot_after: bool = True,
    ) -> Path:
        """Ask ``provd-install.service`` to install `image`, then reboot (spec §6.2).

        `software_version` is what `start-up` reports afterwards; it must match
        `VERSION_PATTERN` (else `StepError`, and nothing is requested).
        """
        if not VERSION_PATTERN.fullmatch(software_version):
            raise StepError("software version has characters the install step refuses")
        fields = {
            "image": str(image),
            "software_version": software_version,
            "software_type": software_type,
            "reboot_after": reboot_after,
        }
        return self._write(INSTALL, "install", requested_by, fields)

    def pending(self) -> list[str]:
        """The requests written and not yet taken by their unit (``reboot``, ``install``)."""
        return [name for name in (REBOOT, INSTALL) if (self.requests_dir / name).exists()]

    def _write(
        self, file: str, what: RequestKind, requested_by: str, fields: dict[str, Any]
    ) -> Path:
        request_id = self._new_id()
        request = {
            "what": what,
            "id": request_id,
            "when": self._clock().astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requested_by": requested_by,
            **fields,
        }
        path = self.requests_dir / file
        try:
            self.requests_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # 0640: the reboot step reads it as provd, the install step as root.
            atomic_write(path, json.dumps(request, sort_keys=True).encode() + b"\n", mode=0o640)
        except OSError as exc:
            raise StepError(f"cannot write the {file} request: {exc.strerror}") from exc
        log_event(
            log,
            MessageId.PRIVILEGED_STEP_REQUESTED,
            "requested %s (request %s)",
            what,
            request_id,
            request=what,
            request_id=request_id,
        )
        return path

    # ------------------------------------------------------------------ check

    def check_image(self, image: Path) -> CheckResult:
        """Run ``<install step> check <image>`` unprivileged; ok when it exits 0 in time."""
        if not self._install_step:
            return CheckResult(False, "no install step configured")
        argv = [*self._install_step, "check", str(image)]
        with tempfile.TemporaryFile() as output:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    start_new_session=True,  # a timeout kills the step's whole group
                )
            except OSError as exc:
                return self._failed(f"install step did not start: {exc.strerror}")
            try:
                code = proc.wait(timeout=self._check_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return self._failed(f"install step check timed out after {self._check_timeout}s")
            output.seek(0)
            tail = output.read()[-_OUTPUT_TAIL:].decode("utf-8", "replace").strip()
        if code != 0:
            return self._failed(f"install step check exited {code}: {tail}")
        return CheckResult(True, tail)

    def _failed(self, detail: str) -> CheckResult:
        log_event(
            log,
            MessageId.IMAGE_CHECK_FAILED,
            "image check failed: %s",
            detail,
            level=logging.WARNING,
            error=detail,
        )
        return CheckResult(False, detail)
