"""A REAL systemd-journald in a private mount namespace, for the journald integration tests.

There is no systemd as PID 1 on a build machine, but journald runs on its own. A test
re-runs its own file as a child under `unshare --mount` (`run_child`); the child covers
/run with a fresh tmpfs (so journald's sockets, /run/systemd/journal/socket included, are
private) and /var/log with a directory of the test's tmp_path (so the journal files land
there), then starts `systemd-journald` and waits for its READY=1 (`private_journald`).
The test reads the journal files from outside with `journal_entries`.

Needs root (mounts) and systemd's journald binary: `why_not_runnable` says why not.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JOURNALD_CANDIDATES = (
    Path("/lib/systemd/systemd-journald"),
    Path("/usr/lib/systemd/systemd-journald"),
)
JOURNALD_CONF = """\
[Journal]
Storage=persistent
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
RateLimitIntervalSec=0
"""


def journald_binary() -> Path | None:
    """The systemd-journald executable, or None where systemd's journald is not installed."""
    return next((path for path in JOURNALD_CANDIDATES if path.exists()), None)


def why_not_runnable() -> str | None:
    """The reason a private journald cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: mounts a private /run and /var/log in a mount namespace"
    if journald_binary() is None:
        return (
            "systemd-journald is not installed (" + ", ".join(map(str, JOURNALD_CANDIDATES)) + ")"
        )
    for tool in ("unshare", "mount", "journalctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/etc/machine-id").is_file():
        return "/etc/machine-id is missing: journald names its journal directory after it"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.strip()}"
    return None


def run_child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `script` (a test file, as `python3 script args...`) in a private mount namespace.

    The child inherits no systemd environment (no NOTIFY_SOCKET, INVOCATION_ID, ...), so
    only what it sets up itself decides where it logs.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "WATCHDOG_USEC"):
        env.pop(name, None)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def journal_json(journal_dir: Path, *matches: str) -> str:
    """journalctl's JSON output (one entry a line) for the journal files in `journal_dir`,
    filtered by journalctl `matches` (``MESSAGE_ID=...``)."""
    return subprocess.run(
        # --all: fields over 4 KiB would otherwise come out as null.
        ["journalctl", f"--directory={journal_dir}", "-o", "json", "--all", "--no-pager", *matches],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def journal_entries(journal_dir: Path, *matches: str) -> list[dict[str, Any]]:
    """The entries `journal_json` prints, parsed."""
    out = journal_json(journal_dir, *matches)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# --- in the child, inside the namespace ---------------------------------------------------


def die_with_parent() -> None:
    """A `preexec_fn`: the process is killed when its parent dies.

    PR_SET_PDEATHSIG: journald (and whatever the child starts) must not outlive the child
    if the test is interrupted.
    """
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


@contextlib.contextmanager
def private_journald(
    var_log: Path, notify_path: Path, *, conf: str = JOURNALD_CONF, unmount: bool = False
) -> Iterator[None]:
    """journald running in this (private) namespace, writing into `var_log`/journal.

    Mounts a tmpfs over /run and `var_log` over /var/log, starts journald with `conf`
    and waits for its READY=1 on `notify_path`; on exit asks `journalctl --sync` to
    write what was logged (unless the body failed) and stops journald. The mounts stay
    (the journal is read through them afterwards) unless `unmount`: then a process may
    run several in turn (the proof's secrets suite runs one per scenario).
    """
    (var_log / "journal").mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    try:
        _mount("--bind", str(var_log), "/var/log")
        try:
            journald = _start_journald(notify_path, conf)
            try:
                yield
                subprocess.run(["journalctl", "--sync"], check=True, capture_output=True)
            finally:
                journald.terminate()
                journald.wait(timeout=60)
        finally:
            if unmount:
                subprocess.run(["umount", "/var/log"], check=False, capture_output=True)
    finally:
        if unmount:
            subprocess.run(["umount", "/run"], check=False, capture_output=True)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def wait_ready(notify: socket.socket) -> None:
    """Read sd_notify datagrams from the bound socket `notify` until one says READY=1."""
    while b"READY=1" not in notify.recv(4096).split(b"\n"):
        pass


def _start_journald(notify_path: Path, conf: str) -> subprocess.Popen[bytes]:
    journal_run = Path("/run/systemd/journal")
    journal_run.mkdir(parents=True)
    # journald writes to /var/log/journal (not /run/log) once it believes the flush is done.
    (journal_run / "flushed").touch()
    conf_dir = Path("/run/systemd/journald.conf.d")
    conf_dir.mkdir()
    (conf_dir / "provd-test.conf").write_text(conf)
    binary = journald_binary()
    assert binary is not None, "systemd-journald is not installed (see why_not_runnable)"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(60)  # a safety net against a hung journald, not a measurement
        journald = subprocess.Popen(
            [str(binary)],
            env={"NOTIFY_SOCKET": str(notify_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            preexec_fn=die_with_parent,  # noqa: PLW1509 - the child has no threads
        )
        try:
            wait_ready(notify)
        except BaseException:
            journald.kill()
            journald.wait()
            raise
    notify_path.unlink()
    return journald


def child_main(child: Callable[..., int], argv: Sequence[str]) -> None:
    """The `__main__` of a journald test file: `child(*paths)` with the arguments as paths."""
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
    sys.exit(child(*(Path(arg) for arg in argv)))
