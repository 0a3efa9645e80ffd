"""`python3 -m provd.service.demo` (`make demo`): provd's main job, told in the terminal.

The lab provisioning server runs on loopback (HTTPS with certificates it makes
at start); the real daemon runs as `provd run` with a settings file in a
temporary directory, a real `NOTIFY_SOCKET` and the shipped item catalog. The
story, one line per message:

1. provd starts up and registers: the server reads all items and writes three,
   one of which the phone does not know;
2. the server sends a contact-me: a solicited interaction reads two items;
3. the user changes an item on the phone (`provctl set`): a local-changes report;
4. the server bootstraps Secure Mode with a PIN, which the person types at the
   prompt (or the demo answers it with `--non-interactive`); the phone switches
   to mutual TLS on the secure port and proves the PIN with the TAN;
5. `provctl status`, then provd stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from provd.lab.scenario import ScenarioError, load_scenario
from provd.lab.server import LabServer
from provd.lab.story import arrows_for, record_line
from provd.lab.transcript import Record
from provd.service.control import request

#: The catalog shipped in the source tree; an installed package has it under /usr/share.
TREE_CATALOG = Path(__file__).resolve().parents[2] / "config" / "items.toml"
INSTALLED_CATALOG = Path("/usr/share/provd/items.toml")
DEMO_PIN = "1234321"  # password "1234", TAN "321" [G p.67-68]
MAC = "00:01:E3:25:EA:13"


class DemoFailed(Exception):
    """A step of the story did not happen."""


class Teller:
    """Prints the story: lab records as they happen, narration in between."""

    def __init__(self, out: TextIO, *, xml: bool) -> None:
        self.out = out
        self.xml = xml
        self.labels = arrows_for(getattr(out, "encoding", None))
        self._lock = threading.Lock()

    def record(self, record: Record) -> None:
        with self._lock:
            channel = "  [secure]" if record.channel == "secure" else ""
            print(record_line(record, labels=self.labels) + channel, file=self.out, flush=True)
            if self.xml and record.body.strip():
                print(record.body.decode("utf-8", "replace"), file=self.out, flush=True)

    def say(self, text: str) -> None:
        with self._lock:
            print(f"== {text}", file=self.out, flush=True)


def _catalog() -> Path:
    return TREE_CATALOG if TREE_CATALOG.exists() else INSTALLED_CATALOG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_settings(directory: Path, lab: LabServer, *, interactive: bool) -> Path:
    """The demo phone's provd.toml (every path inside `directory`)."""
    config = directory / "provd.toml"
    config.write_text(
        f"""# The demo phone: everything on loopback, everything in {directory.name}/.
[server]
url = "{lab.url}"
secure-port = {lab.secure_port}

[paths]
state-dir = "{directory / "state"}"
runtime-dir = "{directory / "run"}"
catalog = "{_catalog()}"
catalog-dropins = "{directory / "items.d"}"
apply-dir = "{directory / "apply.d"}"

[contact-me]
listen = "127.0.0.1"
port = {_free_port()}
# A demo's second contact-me comes seconds after the first: no 300-s contact gap here.
contact-gap = 0.5

[changes]
debounce = 1.0

[device]
mac-addr = "{MAC}"
ip-address = "127.0.0.1"
device-type = "OpenStage 60"
software-type = "Siemens SIP"
software-version = "V3 R5.31.0"
part-number = "S30817-S7403-A101-015"

[ui]
driver = "{"console" if interactive else "socket"}"
timeout = 300
""",
        encoding="utf-8",
    )
    return config


class NotifySocket:
    """A real sd_notify socket, as systemd gives a Type=notify service."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_for(self, key: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            lines = data.splitlines()
            if any(line.startswith(key) for line in lines):
                return data
        raise DemoFailed(f"provd did not send {key} within {timeout:.0f} s")

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def running_provd(
    config: Path, notify: NotifySocket, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"}
    env.pop("JOURNAL_STREAM", None)
    env.pop("INVOCATION_ID", None)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "provd", "run", "--config", str(config)],
            env=env,
            stderr=log_file,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise DemoFailed(f"timed out waiting for {what}")


def _ended(lab: LabServer, interaction: int) -> Callable[[], bool]:
    def done() -> bool:
        return any(
            r.interaction == interaction and not r.from_phone and r.action == "CleanUp"
            for r in lab.transcript
        )

    return done


def tell(out: TextIO, *, xml: bool, interactive: bool, pin: str) -> int:
    teller = Teller(out, xml=xml)
    scenario = load_scenario("daemon-demo")
    with (
        tempfile.TemporaryDirectory(prefix="provd-demo-") as tmp,
        LabServer(scenario, pin=pin, on_record=teller.record) as lab,
    ):
        directory = Path(tmp)
        config = write_settings(directory, lab, interactive=interactive)
        control = directory / "run" / "control.sock"
        notify = NotifySocket(directory / "notify.sock")
        teller.say(f"lab server at {lab.url}, Secure Mode on port {lab.secure_port}")
        started = time.monotonic()
        try:
            with running_provd(config, notify, directory / "provd.log") as process:
                ready = notify.wait_for("READY=1", 15)
                status = next(
                    (line[7:] for line in ready.splitlines() if line.startswith("STATUS=")), ""
                )
                teller.say(
                    f"provd runs (pid {process.pid}): READY=1 after "
                    f"{time.monotonic() - started:.2f} s: {status}"
                )
                _wait(_ended(lab, 1), 15, "the start-up interaction")
                port = int(request(control, {"cmd": "status"})["contact_me_port"])
                url = f"http://127.0.0.1:{port}/contact_dls.html/ContactDLS"
                answer = lab.contact_me(url)
                teller.say(f"the server sends a contact-me to {url}: answered {answer}")
                _wait(_ended(lab, 2), 15, "the solicited interaction")
                teller.say("the user changes e164 on the phone: provctl set e164=4989722123")
                changed = request(control, {"cmd": "set", "items": {"e164": "4989722123"}})
                if not changed.get("ok"):
                    raise DemoFailed(f"provctl set failed: {changed}")
                _wait(_ended(lab, 3), 15, "the local-changes report")
                _secure_bootstrap(teller, lab, control, url, interactive=interactive, pin=pin)
                final = request(control, {"cmd": "status"})
                teller.say(f"provctl status: {final['status']}")
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=12)
                teller.say(f"provd stopped on SIGTERM: exit status {code}")
                if code != 0:
                    raise DemoFailed(f"provd exited {code}")
        except (DemoFailed, OSError) as exc:
            teller.say(f"demo FAILED: {exc}")
            log = directory / "provd.log"
            if log.exists():
                print(log.read_text(errors="replace")[-4000:], file=out)
            return 1
        finally:
            notify.close()
        interactions = len({r.interaction for r in lab.transcript if r.interaction})
        teller.say(f"demo OK: {interactions} interactions, {len(lab.transcript)} messages")
    return 0


def _secure_bootstrap(
    teller: Teller, lab: LabServer, control: Path, url: str, *, interactive: bool, pin: str
) -> None:
    teller.say("the server bootstraps Secure Mode with a PIN (contact-me, then WriteItems)")
    if interactive:
        teller.say(f"when the phone asks, type the PIN {pin} and Enter (try a wrong one first)")
    lab.contact_me(url)
    _wait(_ended(lab, 4), 15, "the bootstrap interaction")
    if not interactive:
        _wait(lambda: _prompt_pending(control), 15, "the PIN prompt")
        teller.say(f"the phone's GUI answers the PIN prompt (--non-interactive: {pin})")
        answer = request(control, {"cmd": "pin-answer", "pin": pin})
        if not answer.get("ok"):
            raise DemoFailed(f"pin-answer refused: {answer}")
    _wait(_ended(lab, 5), 300 if interactive else 15, "the start-up on the secure port")
    mode = request(control, {"cmd": "status"})["mode"]
    if mode != "secure mode":
        raise DemoFailed(f"the phone is in {mode!r}, not in Secure Mode")


def _prompt_pending(control: Path) -> bool:
    answer: dict[str, Any] = request(control, {"cmd": "pin-prompt"})
    return bool(answer.get("ok") and answer.get("prompt"))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m provd.service.demo",
        description="A provisioning run of the real daemon against the lab server.",
    )
    parser.add_argument("--xml", action="store_true", help="also print every document")
    parser.add_argument(
        "--non-interactive",
        action="store_true",
        help="answer the PIN prompt through the control socket (CI); default when "
        "standard input is not a terminal",
    )
    parser.add_argument("--pin", default=DEMO_PIN, help=f"the bootstrap PIN ({DEMO_PIN})")
    args = parser.parse_args(argv)
    interactive = not args.non_interactive and sys.stdin.isatty()
    try:
        return tell(out or sys.stdout, xml=args.xml, interactive=interactive, pin=args.pin)
    except ScenarioError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
