"""Run the real provd daemon against the lab server, and watch it as systemd would.

`Phone` writes a settings file into a test directory and starts the daemon as a separate
process (`python -m provd run --config ...`), with:

- `NOTIFY_SOCKET` naming a real `AF_UNIX` datagram socket (`NotifySocket`) that the test
  reads, so `READY=1`, `STATUS=`, `WATCHDOG=1` and `STOPPING=1` are observed exactly as
  systemd would receive them;
- its stderr captured line by line (`LogCapture`): outside systemd provd logs there;
- the control socket in a short private directory (an `AF_UNIX` path is at most 107
  bytes), reached with `ctl()` (the JSON-lines protocol, in process) or `provctl()` (the
  real command in a child process).

The lab server (`provd.lab.LabServer`) runs in the test's own process over loopback TLS;
its transcript is what the phone really sent. Nothing here patches provd: every
observation goes through a socket, a file or a process status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from provd.lab.contactme import send_contact_me
from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from provd.service.control import request as control_request
from provd.wpi.model import Reason
from tests.integration.daemon.watch import WAIT, LogCapture, Notice, NotifySocket

ROOT = Path(__file__).resolve().parents[3]
MAC = "00:01:E3:25:EA:13"
DEVICE_TYPE = "OpenStage 60"
SOFTWARE_VERSION = "V3 R5.1.0"

#: The settings every test phone starts from (dotted keys, as `--set` writes them).
BASE_SETTINGS: dict[str, Any] = {
    "contact-me.listen": "127.0.0.1",
    "contact-me.port": 0,
    "device.mac-addr": MAC,
    "device.ip-address": "127.0.0.1",
    "device.device-type": DEVICE_TYPE,
    "device.software-version": SOFTWARE_VERSION,
    "device.description-file": "",
    "changes.debounce": 0.3,
    "timeouts.connect": 3.0,
    "timeouts.response": 10.0,
}


# --------------------------------------------------------------------------- settings files


def toml_value(value: Any) -> str:
    """One TOML value (the settings hold strings, numbers, booleans, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def settings_toml(settings: Mapping[str, Any]) -> str:
    """A settings file from dotted keys: ``{"server.url": "x"}`` → ``[server]\\nurl = "x"``."""
    groups: dict[str, dict[str, Any]] = {}
    for dotted, value in settings.items():
        group, _, key = dotted.partition(".")
        groups.setdefault(group, {})[key] = value
    lines: list[str] = []
    for group, table in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the phone


class Phone:
    """One provd daemon process with its own state, runtime directory and notify socket.

    `settings` (dotted keys) are written to `<workdir>/provd.toml` over `BASE_SETTINGS`;
    `overrides` are passed as `--set` flags (they win over the file and its drop-ins).
    """

    def __init__(
        self,
        workdir: Path,
        sockdir: Path,
        *,
        server_url: str,
        settings: Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.sockdir = sockdir
        self.state_dir = workdir / "state"
        self.runtime_dir = sockdir / "run"
        self.config_file = workdir / "provd.toml"
        self.dropin_dir = workdir / "provd.toml.d"
        self.apply_dir = workdir / "apply.d"
        self.apply_dir.mkdir(parents=True, exist_ok=True)
        self.settings: dict[str, Any] = {
            "server.url": server_url,
            "paths.state-dir": self.state_dir,
            "paths.runtime-dir": self.runtime_dir,
            "paths.catalog": ROOT / "config" / "items.toml",
            "paths.catalog-dropins": ROOT / "config" / "items.d",
            "paths.apply-dir": self.apply_dir,
            **BASE_SETTINGS,
            **(settings or {}),
        }
        self.overrides = list(overrides)
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.notify: NotifySocket | None = None
        self.log: LogCapture | None = None
        self.runs: list[str] = []  # the logs of earlier runs of this phone
        self.write_settings()

    # ------------------------------------------------------------------ files

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / "control.sock"

    @property
    def requests_dir(self) -> Path:
        """Where the daemon asks the privileged units for a reboot (issue 6)."""
        return self.runtime_dir / "requests"

    def write_settings(self) -> None:
        self.config_file.write_text(settings_toml(self.settings), encoding="utf-8")

    def dropin(self, name: str, text: str) -> Path:
        """Write a drop-in settings file `<config>.d/<name>`."""
        self.dropin_dir.mkdir(exist_ok=True)
        path = self.dropin_dir / name
        path.write_text(text, encoding="utf-8")
        return path

    # ------------------------------------------------------------------ life cycle

    def start(self, *, ready: bool = True, env: Mapping[str, str] | None = None) -> Phone:
        """Start the daemon; with `ready`, wait for `READY=1`."""
        assert self.process is None or self.process.poll() is not None, "already running"
        if self.log is not None:
            self.runs.append(self.log.text)
        if self.notify is not None:
            self.notify.close()
        self.notify = NotifySocket(self.sockdir / "notify.sock")
        child_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID")
            and not k.startswith("JOURNAL_")
        }
        child_env.update(
            {
                "PYTHONPATH": str(ROOT),
                "PYTHONDONTWRITEBYTECODE": "1",
                "NOTIFY_SOCKET": str(self.notify.path),
                **self.extra_env,
                **(env or {}),
            }
        )
        args = [sys.executable, "-m", "provd", "run", "--config", str(self.config_file)]
        for override in self.overrides:
            args += ["--set", override]
        self.process = subprocess.Popen(
            args,
            cwd=self.workdir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        self.log = LogCapture(self.process.stderr)
        if ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = WAIT) -> Notice:
        assert self.notify is not None
        try:
            return self.notify.wait_for(lambda n: n.has("READY=1"), timeout)
        except TimeoutError:
            raise AssertionError(f"no READY=1; daemon log:\n{self.logtext()}") from None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = WAIT) -> int:
        """SIGTERM, then wait for the exit status (SIGKILL after `timeout`)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self.log is not None:
            self.log.join()
        return code

    def kill(self) -> None:
        """SIGKILL: a power cut for the process (the store must survive it)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        if self.log is not None:
            self.log.join()

    def close(self) -> None:
        if self.running:
            self.stop()
        if self.notify is not None:
            self.notify.close()

    def logtext(self) -> str:
        earlier = [f"--- earlier run ---\n{text}" for text in self.runs]
        return "\n".join([*earlier, self.log.text if self.log else ""])

    # ------------------------------------------------------------------ talking to it

    def ctl(self, cmd: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """One request on the control socket (docs/control-protocol.md)."""
        return control_request(self.control_socket, {"cmd": cmd, **fields}, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.ctl("status")

    def get(self, *names: str) -> dict[str, str]:
        """Values of the named items (`provctl get`); an item without a value is absent."""
        answer = self.ctl("get", items=list(names))
        values: dict[str, str] = answer["items"]
        return values

    def provctl(
        self, *args: str, user: int | None = None, timeout: float = WAIT
    ) -> subprocess.CompletedProcess[str]:
        """The real `provctl` command, in a child process (as user and group `user` if given)."""
        code = "import sys; from provd.cli import provctl_main; sys.exit(provctl_main())"
        return subprocess.run(
            [sys.executable, "-c", code, "--socket", str(self.control_socket), *args],
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            # An unprivileged user keeps no group of ours (root's group owns the socket).
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )

    @property
    def contact_me_port(self) -> int:
        port: int = self.status()["contact_me_port"]
        return port

    @property
    def contact_me_url(self) -> str:
        return f"http://127.0.0.1:{self.contact_me_port}/contact_dls.html/ContactDLS"

    def contact_me(self, **fields: Any) -> int:
        """Send one contact-me as a provisioning server does; the HTTP status."""
        return send_contact_me(self.contact_me_url, **fields)

    # ------------------------------------------------------------------ waiting

    def mark(self) -> int:
        assert self.log is not None
        return self.log.mark()

    def wait_log(
        self, pattern: str, timeout: float = WAIT, after: int = 0, count: int = 1
    ) -> re.Match[str]:
        assert self.log is not None
        return self.log.wait_for(pattern, timeout, after, count)

    def matching_log(self, pattern: str, after: int = 0) -> list[re.Match[str]]:
        """The log lines from index `after` on that match `pattern`, as matches."""
        assert self.log is not None
        return self.log.matching(pattern, after)

    def wait_interaction(
        self, reason: Reason | str, after: int = 0, timeout: float = WAIT, count: int = 1
    ) -> str:
        """Wait for the `count`-th end of a `reason` interaction; "completed" or "failed"."""
        value = reason.value if isinstance(reason, Reason) else reason
        match = self.wait_log(
            rf"\b{re.escape(value)} interaction (completed|failed)", timeout, after, count
        )
        return match.group(1)


# --------------------------------------------------------------------------- fixtures and helpers


class LabFactory(Protocol):
    def __call__(
        self,
        scenario: Scenario | str | Mapping[str, Any] = "basic",
        *,
        port: int = 0,
        pki: LabPKI | None = None,
    ) -> LabServer: ...


class PhoneFactory(Protocol):
    def __call__(
        self,
        server: LabServer | str,
        *,
        settings: Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Phone: ...


class StartedFactory(Protocol):
    def __call__(
        self,
        scenario: Scenario | str | Mapping[str, Any] = "basic",
        *,
        settings: Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> tuple[LabServer, Phone]: ...


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, step: float = 0.02) -> None:
    """Poll `predicate` until it holds (AssertionError after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


def short_tempdir() -> Path:
    """A private directory with a short path, for `AF_UNIX` sockets (108-byte limit)."""
    return Path(tempfile.mkdtemp(prefix="pd-"))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
