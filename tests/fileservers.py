"""Shared test helpers for deployment: the lab's file servers, recorders, tree snapshots.

The file servers themselves live in `provd.lab.fileserver` (the lab uses them too);
this module adds what tests around them need, so every deployment test shares one
implementation:

- `FileServers` / `serving(root, pki)`: an FTP and an HTTPS file server over one
  served directory, started and stopped together;
- `ftp_server(root, without=...)`: the lab's FTP server lacking some FTP commands
  (``SIZE``, ``REST``), as some phone servers do; `rests(ftp)`: the ``REST`` offsets
  a client asked for;
- `recorder(path, log)`: an executable that appends its arguments (and its stdin)
  to a log file — an apply hook, an installer or a reboot command that records;
- `snapshot(tree)`: every path under a directory with its content, to prove that a
  failed deployment wrote nothing where it must not;
- `fill_placeholders(data, values)` / `deploy_scenario(name, values)`: a shipped
  `deploy-*` scenario with the file servers' addresses filled in (what
  `provd.lab.scenario` does not do yet).
"""

from __future__ import annotations

import contextlib
import stat
import tomllib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from provd.lab.fileserver import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    PLACEHOLDERS,
    FileBehaviour,
    FtpFileServer,
    HttpsFileServer,
)
from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario

__all__ = [
    "FileBehaviour",
    "FileServers",
    "deploy_scenario",
    "fill_placeholders",
    "ftp_server",
    "recorder",
    "rests",
    "serving",
    "snapshot",
]

#: SQLite files change on every interaction (meta bookkeeping): compared by name only.
_BOOKKEEPING = ("items.db", "items.db-wal", "items.db-shm", "items.db.lock")


@dataclass(frozen=True, slots=True)
class FileServers:
    """An FTP and an HTTPS file server over the same served directory."""

    root: Path
    ftp: FtpFileServer
    https: HttpsFileServer

    def placeholders(self) -> dict[str, str]:
        return {**self.ftp.placeholders(), **self.https.placeholders()}

    def serve(self, path: str, data: bytes) -> Path:
        """Put `data` at `path` (``/media/a.wav``) of the served directory, for both servers."""
        target = self.root.joinpath(*path.strip("/").split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def misbehave(self, path: str, behaviour: FileBehaviour | None) -> None:
        """The same misbehaviour for `path` on both servers."""
        self.ftp.misbehave(path, behaviour)
        self.https.misbehave(path, behaviour)


@contextlib.contextmanager
def serving(
    root: Path,
    *,
    pki: LabPKI | None = None,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
) -> Iterator[FileServers]:
    """Both file servers serving `root` (created if missing), stopped on exit."""
    root.mkdir(parents=True, exist_ok=True)
    with (
        FtpFileServer(root, user=user, password=password) as ftp,
        HttpsFileServer(pki=pki, root=root) as https,
    ):
        yield FileServers(root, ftp, https)


def ftp_server(root: Path, *, without: Collection[str] = ()) -> FtpFileServer:
    """The lab's FTP server for `root` (not started), answering the FTP commands in
    `without` (``SIZE``, ``REST``) with ``500 not understood``, as a server lacking them does.
    """
    ftp = FtpFileServer(root)
    # The lab's FtpFileServer makes a pyftpdlib handler class of its own for each server,
    # so changing that class's command table changes this server only. The lab has no
    # parameter for it; `provd.lab.fileserver` is production code this module only uses.
    handler = ftp._server.handler
    handler.proto_cmds = {c: v for c, v in handler.proto_cmds.items() if c not in without}
    return ftp


def rests(ftp: FtpFileServer) -> list[int]:
    """The offsets clients asked `ftp` to restart from (``REST``), in order."""
    return [int(arg) for cmd, arg in ftp.commands if cmd == "REST"]


def recorder(path: Path, log: Path, *, exit_code: int = 0, stdin: bool = False) -> Path:
    """An executable at `path` appending one line per call to `log`: its arguments, then
    (with `stdin`) what it read, each line prefixed ``stdin:``, and ``env:$PROVD_CHANGED``.
    Exits `exit_code`. For a file argument it also records the file's SHA-256."""
    lines = [
        "#!/bin/sh",
        f"log='{log}'",
        'line="$*"',
        'for arg in "$@"; do',
        '  if [ -f "$arg" ]; then line="$line sha256=$(sha256sum < "$arg" | cut -d" " -f1)"; fi',
        "done",
        'printf "%s\\n" "$line" >> "$log"',
    ]
    if stdin:
        lines += [
            'while IFS= read -r changed; do printf "stdin:%s\\n" "$changed" >> "$log"; done',
            'printf "env:%s\\n" "$PROVD_CHANGED" >> "$log"',
        ]
    lines.append(f"exit {exit_code}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def recorded(log: Path) -> list[str]:
    """The lines a `recorder` wrote (none when it never ran)."""
    try:
        return log.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def snapshot(tree: Path, *, skip: Path | None = None) -> dict[str, tuple[str, bytes]]:
    """Every path under `tree` (outside `skip`): its kind and mode, and a file's content.

    The item store's SQLite files are compared by name only (each interaction
    writes bookkeeping into them); everything else byte by byte.
    """
    found: dict[str, tuple[str, bytes]] = {}
    if not tree.exists():
        return found
    for path in sorted(tree.rglob("*")):
        if skip is not None and (path == skip or path.is_relative_to(skip)):
            continue
        st = path.lstat()
        kind = f"{stat.filemode(st.st_mode)}"
        content = b""
        if stat.S_ISREG(st.st_mode) and path.name not in _BOOKKEEPING:
            content = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            content = str(path.readlink()).encode()
        found[str(path.relative_to(tree))] = (kind, content)
    return found


def fill_placeholders(data: Any, values: Mapping[str, str]) -> Any:
    """`data` (parsed TOML) with every ``{name}`` in a string replaced by `values[name]`.

    Only names of `provd.lab.fileserver.PLACEHOLDERS` (and `values`) are replaced;
    other braces stay. Strings are replaced after parsing, so a value never breaks
    the TOML around it.
    """
    if isinstance(data, str):
        for name in {*PLACEHOLDERS, *values}:
            if name in values:
                data = data.replace("{" + name + "}", values[name])
        return data
    if isinstance(data, Mapping):
        return {key: fill_placeholders(value, values) for key, value in data.items()}
    if isinstance(data, list):
        return [fill_placeholders(value, values) for value in data]
    return data


def deploy_scenario(name: str, values: Mapping[str, str]) -> Scenario:
    """The shipped scenario `name` (``deploy-files``) with `values` filled in."""
    text = resources.files("provd.lab").joinpath("scenarios", f"{name}.toml").read_text("utf-8")
    data = fill_placeholders(tomllib.loads(text), values)
    missing = sorted(p for p in PLACEHOLDERS if "{" + p + "}" in repr(data))
    if missing:
        raise ValueError(f"scenario {name}: no value for {', '.join(missing)}")
    return Scenario.from_dict(data, default_name=name)
