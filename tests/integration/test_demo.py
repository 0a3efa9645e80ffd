"""`make demo`: the real daemon against the lab server, told one line per message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(*args: str, encoding: str = "utf-8") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": encoding}
    return subprocess.run(
        [sys.executable, "-m", "provd.service.demo", "--non-interactive", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding=encoding,
        env=env,
        timeout=120,
        check=False,
    )


def test_demo_tells_start_up_contact_me_local_change_and_pin_bootstrap() -> None:
    done = run_demo()
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    lines = out.splitlines()
    assert any(line.startswith("== provd runs (pid ") and "READY=1" in line for line in lines)
    # issue 2's story: start-up, ReadAllItems, WriteItems with one item rejected, CleanUp
    assert "#1 phone → server  start-up  14 items (mac-addr 00:01:E3:25:EA:13)" in out
    assert "#1 server → phone  ReadAllItems" in out
    assert "1 rejected: socketed-headset-mode=unknown item" in out
    # issue 4's: a contact-me from the server, a local change reported back
    assert ": answered 204" in out
    assert "#2 phone → server  solicited" in out
    assert "#3 phone → server  local-changes" in out
    # issue 5's: a PIN bootstrap, then mutual TLS on the secure port with the TAN
    assert "#4 phone → server  reply-to WriteItems accepted  all items taken" in out
    secure = [line for line in lines if line.startswith("#5 ")]
    assert secure and all(line.endswith("[secure]") for line in secure)
    assert any("TAN matches" in line for line in secure)
    assert "== provctl status: secure mode, idle" in out
    assert "== provd stopped on SIGTERM: exit status 0" in out
    assert lines[-1].startswith("== demo OK: 5 interactions")
    # The PIN typed is shown to the person running the demo, and nowhere in provd's log.
    assert "1234321" in out


def test_demo_with_xml_prints_the_documents() -> None:
    done = run_demo("--xml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert '<?xml version="1.0" encoding="utf-8"?>' in done.stdout
    assert "<Action>ReadAllItems</Action>" in done.stdout


def test_demo_on_an_ascii_terminal_uses_ascii_arrows() -> None:
    done = run_demo(encoding="ascii")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "#1 phone -> server  start-up" in done.stdout
    assert "→" not in done.stdout
