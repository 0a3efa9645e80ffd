"""A real systemd-journald for one scenario of suite 6, and what it captured.

The tests' private journald (`tests/journald.py`, read it first): inside a private mount
namespace (the suite re-runs itself under `unshare --mount`), a fresh tmpfs covers /run,
so journald's sockets are private, and a directory of the scenario covers /var/log, so
the journal files land there. Used here with two choices, both for the evidence:

- one journald per scenario, each with its own journal directory: a scenario's scan
  searches exactly what that scenario logged;
- `Compress=no`: journald compresses large fields (XZ/LZ4/ZSTD) in its files, and a
  byte-wise search of a compressed field would find nothing whatever it held. With
  compression off, every field of every entry is in the raw files as written.

After the scenario journald is synced and stopped, then read back twice: all fields of
all entries (`journalctl --directory=... -o json --all`, binary fields decoded to their
bytes) and the raw journal files' bytes.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.journald import JOURNALD_CONF
from tests.journald import private_journald as _tests_journald

#: The tests' configuration, plus no compression (see the module's docstring).
CONF = JOURNALD_CONF + "Compress=no\nSeal=no\n"


def private_journald(var_log: Path, notify_path: Path) -> contextlib.AbstractContextManager[None]:
    """The tests' private journald (tests/journald.py) with compression off."""
    return _tests_journald(var_log, notify_path, conf=CONF, unmount=True)


@dataclass
class Journal:
    """What one scenario's journald captured."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    json_text: bytes = b""  # journalctl's output as printed
    fields: bytes = b""  # every field of every entry as NAME=value, values decoded
    files: bytes = b""  # the raw journal files, concatenated
    file_count: int = 0

    def provd_entries(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("SYSLOG_IDENTIFIER") == "provd"]


def plant(text: str) -> None:
    """Log `text` to this namespace's journald (a control: it must be found again)."""
    # By module name, as provd does: the repository's systemd/ directory (unit files)
    # would otherwise look to mypy like a namespace package shadowing python-systemd.
    journal = importlib.import_module("systemd.journal")
    journal.send(text, SYSLOG_IDENTIFIER="provd-proof")


def _field_bytes(name: str, value: Any) -> list[bytes]:
    """One field as `NAME=value` lines: journalctl's JSON writes a binary value as a list
    of byte values, a field given several times as a list of values."""
    if value is None:
        return [f"{name}=".encode()]
    if isinstance(value, str):
        return [f"{name}={value}".encode("utf-8", "surrogateescape")]
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return [name.encode() + b"=" + bytes(value)]
    if isinstance(value, list):
        return [line for v in value for line in _field_bytes(name, v)]
    return [f"{name}={value}".encode()]


def read_journal(journal_dir: Path) -> Journal:
    """Every entry with all its fields, and the raw files, of the journal in `journal_dir`."""
    out = subprocess.run(
        ["journalctl", f"--directory={journal_dir}", "-o", "json", "--all", "--no-pager"],
        capture_output=True,
        check=True,
    ).stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    lines = [line for entry in entries for k, v in entry.items() for line in _field_bytes(k, v)]
    files = sorted(p for p in journal_dir.rglob("*") if p.is_file() and ".journal" in p.name)
    return Journal(
        entries=entries,
        json_text=out,
        fields=b"\n".join(lines),
        files=b"".join(p.read_bytes() for p in files),
        file_count=len(files),
    )
