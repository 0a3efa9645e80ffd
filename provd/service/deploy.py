"""FileDeployment and SoftwareDeployment: what the phone does and answers (spec §6.1, §6.2).

`Deployer` wires the pieces that live in the adapters — the downloads
(`provd.transport.download`), the deployed files (`provd.store.files`) — with
the privileged steps (`provd.service.privileged`). It never raises for what the
server or the network does: each file ends `ok` or `failed` with a reason for
the log.

FileDeployment (spec §6.1): single (items without `index`) or indexed (one file
per index, `file-action` deploy | delete, each handled on its own). While busy
it is answered `busy` like WriteItems (spec §4.3 [B]). Afterwards the phone
POSTs `status` with one set of `file-deployment-*` items per file, indexed as
the request was (spec §6.1 [B]).

SoftwareDeployment (spec §6.2 [B]): `normal` while busy → `busy`; else the image
is downloaded to the staging directory after a space check, under a temporary
name (a cut download resumes; a half image is never renamed nor checked), the
installer checks it, the reply is `accepted` or `failed`; after the server's
`CleanUp` the daemon calls `install`, which asks the privileged install step to
install and reboot.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from provd.service.journal import MessageId, log_event
from provd.service.privileged import VERSION_PATTERN, PrivilegedSteps, StepError
from provd.store.errors import StoreError
from provd.store.files import FileRefused, FileStore, check_name
from provd.store.fsutil import fsync_directory
from provd.transport.download import (
    DownloadError,
    FileSource,
    TrustFor,
    fetch_complete,
    fetch_to_file,
)
from provd.wpi.events import Reply, StatusReport
from provd.wpi.model import Item, ItemStatus, ReplyStatus
from provd.wpi.xmltext import is_xml_text

log = logging.getLogger(__name__)


FileAction = Literal["deploy", "delete"]
_PARTIAL = ".image.partial"  # a dotfile: never a name the server's file could get
_DEFAULT_IMAGE = "image"
_SW_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadPolicy:
    """How downloads run: whom to trust (spec §6.1 [B]), timeouts, attempts."""

    https_trust_for: TrustFor
    connect_timeout: float = 10.0
    timeout: float = 30.0
    attempts: int = 3
    retry_delay: float = 2.0
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True, slots=True, kw_only=True)
class FileResult:
    """One file handled: `index` as in the request, `reason` why it failed (for the log)."""

    index: int | None
    action: FileAction | str
    type: str
    name: str
    status: Literal["ok", "failed"]
    date: str
    time: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileDeploymentOutcome:
    """Every file of one FileDeployment, in index order; `indexed` as the request was."""

    results: tuple[FileResult, ...]
    indexed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingInstall:
    """An accepted image, to install after the server's CleanUp (spec §6.2 [B])."""

    image: Path
    software_version: str
    software_type: str = ""
    requested_by: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftwareAnswer:
    """The reply to SoftwareDeployment, and the install to request after CleanUp."""

    reply: Reply
    pending: PendingInstall | None = None
    reason: str | None = None


# --------------------------------------------------------------------------- pure parts


def group_file_items(items: Sequence[Item]) -> tuple[bool, list[tuple[int | None, dict[str, str]]]]:
    """(indexed, [(index, values by item name)]) of a FileDeployment's items.

    Single when no item has an index. Indexed: one entry per index, in order; an
    item without index in an indexed message applies to every index that lacks it.
    Items the codec marked (a malformed index) are left out.
    """
    usable = [item for item in items if item.status is None]
    if not any(item.index is not None for item in usable):
        values: dict[str, str] = {}
        for item in usable:
            values.setdefault(item.name, item.value)
        return False, ([(None, values)] if values else [])
    common: dict[str, str] = {}
    per_index: dict[int, dict[str, str]] = {}
    for item in usable:
        if item.index is None:
            common.setdefault(item.name, item.value)
        else:
            per_index.setdefault(item.index, {}).setdefault(item.name, item.value)
    return True, [(index, {**common, **per_index[index]}) for index in sorted(per_index)]


def status_items(outcome: FileDeploymentOutcome, indexed: bool | None = None) -> list[Item]:
    """The `file-deployment-*` items of the `status` report [G p.54], spec §6.1 [B].

    With the request's index when the request was indexed (`indexed`, by default
    as the outcome says), without one when it was not.
    """
    use_index = outcome.indexed if indexed is None else indexed
    items: list[Item] = []
    for result in outcome.results:
        index = result.index if use_index else None
        items += _deployment_items(
            result.date, result.time, result.name, result.type, result.status, index=index
        )
    return items


def read_all_file_items(files: FileStore) -> list[Item]:
    """Deployed files as indexed `file-deployment-*` items for ReadAllItems [G p.245]."""
    items: list[Item] = []
    for number, entry in enumerate(files.list(), start=1):
        items += _deployment_items(
            entry.date, entry.time, entry.name, entry.type, entry.status, index=number
        )
    return items


def software_version_of(file_sw_version: str) -> str:
    """The `software-version` a `file-sw-version` stands for: ``1.4.9.0`` → ``V1 R4.9.0``.

    [G p.57] deploys `file-sw-version` 1.4.9.0, which phones report as
    `software-version` ``V1 R4.9.0``; other forms are kept as they are.
    """
    value = file_sw_version.strip()
    match = _SW_VERSION.fullmatch(value)
    if match is None:
        return value
    major, minor, fix, build = match.groups()
    return f"V{major} R{minor}.{fix}.{build}"


def _deployment_items(
    date: str, time_: str, name: str, type_: str, status: str, *, index: int | None
) -> list[Item]:
    return [
        Item(name="file-deployment-date", value=date, index=index),
        Item(name="file-deployment-time", value=time_, index=index),
        Item(name="file-deployment-name", value=_printable(name), index=index),
        Item(name="file-deployment-type", value=_printable(type_), index=index),
        Item(name="file-deployment-status", value=status, index=index),
    ]


def _printable(value: str) -> str:
    # A refused name (with a NUL, say) is reported as received, minus what XML cannot carry.
    if is_xml_text(value) and "\n" not in value and "\r" not in value:
        return value
    return "".join(c if c.isprintable() and is_xml_text(c) else "?" for c in value)


def _local_now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _no_announcement(results: Sequence[FileResult]) -> None:
    return None


# --------------------------------------------------------------------------- the deployer


class Deployer:
    """Performs FileDeployment and SoftwareDeployment (spec §6.1, §6.2).

    `is_busy` says whether a call is active (spec §4.3); `announce` is told of the
    files that changed (the daemon runs the apply hooks, spec §8.2); `clock` gives
    the local time for failed deployments' date and time.
    """

    def __init__(
        self,
        *,
        files: FileStore,
        downloads: DownloadPolicy,
        steps: PrivilegedSteps,
        staging_dir: Path,
        is_busy: Callable[[], bool],
        software_max_size: int = 512 * 1024 * 1024,
        space_reserve: int = 8 * 1024 * 1024,
        announce: Callable[[Sequence[FileResult]], None] = _no_announcement,
        clock: Callable[[], datetime.datetime] = _local_now,
        free_bytes: Callable[[Path], int] = _free_bytes,
    ) -> None:
        self.files = files
        self._downloads = downloads
        self._steps = steps
        self._staging = staging_dir
        self._is_busy = is_busy
        self._software_max = software_max_size
        self._reserve = space_reserve
        self._announce = announce
        self._clock = clock
        self._free_bytes = free_bytes

    # ------------------------------------------------------------------ FileDeployment

    def file_deployment(
        self, items: Sequence[Item], *, basic_items: Sequence[Item]
    ) -> Reply | StatusReport:
        """The whole answer: `busy` while in a call, else perform and report `status`."""
        if self._is_busy():
            # spec §4.3 [B]: FileDeployment is treated like WriteItems.
            return Reply(status=ReplyStatus.BUSY, items=None)
        outcome = self.perform_file_deployment(items)
        return StatusReport(items=(*basic_items, *status_items(outcome)))

    def perform_file_deployment(self, items: Sequence[Item]) -> FileDeploymentOutcome:
        """Deploy or delete every file of the message, each on its own."""
        indexed, entries = group_file_items(items)
        results = tuple(self._one_file(index, values) for index, values in entries)
        changed = [r for r in results if r.status == "ok"]
        if changed:
            try:
                self._announce(changed)
            except Exception:
                log.exception("announcing deployed files failed")
        return FileDeploymentOutcome(results=results, indexed=indexed)

    def _one_file(self, index: int | None, values: dict[str, str]) -> FileResult:
        action = values.get("file-action", "").strip().lower() or "deploy"
        type_ = values.get("file-type", "").strip().upper()
        name = values.get("file-name", "").strip()
        try:
            if action == "delete":
                if not name and values.get("file-https-base-url"):
                    name = FileSource.from_values(values).name
                existed = self.files.delete(type_, name)
                if not existed:
                    log.info("file %s/%s to delete was not deployed", type_, name)
                return self._done(index, "delete", type_, name, None)
            if action != "deploy":
                return self._failed(index, action, type_, name, "file-action is not deploy|delete")
            source = FileSource.from_values(values)
            name = source.name
            self.files.check(type_, name)  # spec §6.1 [B]: before any download
            with self.files.begin(type_, name) as staging:
                d = self._downloads
                try:
                    fetch_complete(
                        source,
                        staging.file,
                        max_bytes=staging.max_bytes,
                        https_trust_for=d.https_trust_for,
                        attempts=d.attempts,
                        retry_delay=d.retry_delay,
                        sleep=d.sleep,
                        connect_timeout=d.connect_timeout,
                        timeout=d.timeout,
                    )
                except DownloadError as exc:
                    if exc.kind == "too-large" and staging.by_quota:
                        raise FileRefused("quota", exc.message) from None
                    raise
                entry = staging.commit()
            return self._done(index, "deploy", type_, name, (entry.date, entry.time))
        except DownloadError as exc:
            reason = f"download {exc.kind}: {exc.message}"
        except FileRefused as exc:
            reason = f"{exc.kind}: {exc.message}"
        except StoreError as exc:
            reason = f"storage: {exc}"
        except OSError as exc:  # the staging file (a full disk)
            reason = f"storage: {exc.strerror or type(exc).__name__}"
        return self._failed(index, action, type_, name, reason)

    def _done(
        self,
        index: int | None,
        action: FileAction,
        type_: str,
        name: str,
        when: tuple[str, str] | None,
    ) -> FileResult:
        date, time_ = when or self._now()
        log_event(
            log,
            MessageId.FILE_DEPLOYED,
            "file %s/%s: %s ok",
            type_,
            name,
            action,
            file_type=type_,
            file_name=name,
            file_action=action,
        )
        return FileResult(
            index=index, action=action, type=type_, name=name, status="ok", date=date, time=time_
        )

    def _failed(
        self, index: int | None, action: str, type_: str, name: str, reason: str
    ) -> FileResult:
        date, time_ = self._now()
        if action == "deploy":
            # Remembered for ReadAllItems when type and name are sound; the previous
            # file of that name, if any, stays (spec §6.1 [B]).
            with contextlib.suppress(StoreError):
                entry = self.files.record_failure(type_, name)
                date, time_ = entry.date, entry.time
        log_event(
            log,
            MessageId.FILE_DEPLOY_FAILED,
            "file %r/%r: %s failed: %s",
            type_,
            name,
            action,
            reason,
            level=logging.WARNING,
            file_type=type_,
            file_name=name,
            file_action=action,
            error=reason,
        )
        return FileResult(
            index=index,
            action=action,
            type=type_,
            name=name,
            status="failed",
            date=date,
            time=time_,
            reason=reason,
        )

    def _now(self) -> tuple[str, str]:
        now = self._clock()
        return now.strftime("%d:%m:%Y"), now.strftime("%H:%M:%S")

    # ------------------------------------------------------------------ SoftwareDeployment

    def software_deployment(
        self, items: Sequence[Item], *, requested_by: str = ""
    ) -> SoftwareAnswer:
        """Stage and check the image; the reply, and what to install after CleanUp."""
        values: dict[str, str] = {}
        for item in items:
            if item.status is None:
                values.setdefault(item.name, item.value)
        priority = values.get("file-priority", "").strip().lower() or "immediate"
        # [3P] some servers send 0 (normal) and 1 (immediate)
        priority = {"0": "normal", "1": "immediate"}.get(priority, priority)
        if priority not in ("normal", "immediate"):
            bad = Item(name="file-priority", status=ItemStatus.INVALID_DATA)
            return self._sw_failed("file-priority is not normal|immediate", (bad,))
        if priority == "normal" and self._is_busy():
            # [G p.56] normal: only when idle
            return SoftwareAnswer(reply=Reply(status=ReplyStatus.BUSY, items=None), reason="busy")
        version = software_version_of(values.get("file-sw-version", ""))
        if version and not VERSION_PATTERN.fullmatch(version):
            bad = Item(name="file-sw-version", status=ItemStatus.INVALID_DATA)
            return self._sw_failed("file-sw-version has unexpected characters", (bad,))
        if "install" in self._steps.pending():
            return self._sw_failed("an install is already waiting to run")
        try:
            source = FileSource.from_values(values)
            image = self._stage(source)
        except DownloadError as exc:
            return self._sw_failed(f"download {exc.kind}: {exc.message}")
        except OSError as exc:
            return self._sw_failed(f"staging: {exc.strerror or exc}")
        check = self._steps.check_image(image)
        if not check.ok:
            with contextlib.suppress(OSError):
                image.unlink()
            return self._sw_failed(f"installer check refused the image: {check.detail}")
        log_event(
            log,
            MessageId.SOFTWARE_STAGED,
            "software image %s staged and checked; installing after CleanUp",
            image.name,
            software_version=version,
        )
        pending = PendingInstall(
            image=image,
            software_version=version,
            software_type=values.get("file-sw-type", "").strip(),
            requested_by=requested_by,
        )
        return SoftwareAnswer(reply=Reply(status=ReplyStatus.ACCEPTED, items=()), pending=pending)

    def install(self, pending: PendingInstall) -> bool:
        """After CleanUp: ask the privileged step to install and reboot (spec §6.2 [B])."""
        try:
            self._steps.request_install(
                pending.image,
                software_version=pending.software_version,
                software_type=pending.software_type,
                requested_by=pending.requested_by,
            )
        except StepError as exc:
            log_event(
                log,
                MessageId.SOFTWARE_DEPLOY_FAILED,
                "software install not requested: %s",
                exc,
                level=logging.ERROR,
                error=f"install not requested: {exc}",
            )
            return False
        return True

    def _stage(self, source: FileSource) -> Path:
        """Download the image completely under a temporary name, then rename it."""
        self._staging.mkdir(mode=0o750, parents=True, exist_ok=True)
        for old in self._staging.iterdir():  # one image at a time
            if old.is_file() or old.is_symlink():
                old.unlink()
        room = self._free_bytes(self._staging) - self._reserve
        max_bytes = min(self._software_max, room)
        if max_bytes <= 0:
            raise DownloadError("too-large", f"no space to stage an image ({room} bytes free)")
        name = source.name
        try:
            check_name(name)
        except FileRefused:
            name = _DEFAULT_IMAGE
        partial = self._staging / _PARTIAL
        d = self._downloads
        try:
            fetch_to_file(
                source,
                partial,
                max_bytes=max_bytes,
                https_trust_for=d.https_trust_for,
                attempts=d.attempts,
                retry_delay=d.retry_delay,
                sleep=d.sleep,
                connect_timeout=d.connect_timeout,
                timeout=d.timeout,
            )
        except BaseException:
            # spec §6.2 [B]: a half image is never handed to the installer
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        image = self._staging / name
        partial.replace(image)
        fsync_directory(self._staging)
        return image

    def _sw_failed(self, reason: str, items: tuple[Item, ...] = ()) -> SoftwareAnswer:
        log_event(
            log,
            MessageId.SOFTWARE_DEPLOY_FAILED,
            "SoftwareDeployment failed: %s",
            reason,
            level=logging.WARNING,
            error=reason,
        )
        return SoftwareAnswer(reply=Reply(status=ReplyStatus.FAILED, items=items), reason=reason)
