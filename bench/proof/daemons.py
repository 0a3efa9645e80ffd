"""Real daemons for the proof suites: the tests' `Phone` harness, and what a scenario leaves.

The suites drive the same `provd run` process the integration tests do
(`tests/integration/daemon/harness.py`: real notify socket, control socket, stderr log
capture) against the same lab server. `phone_texts` gathers what a field engineer or an
attacker could read after a scenario, for `Report.scan` (suite 6):

- the daemon's log stream, every run of it (outside systemd provd logs to stderr with its
  journal fields written out; suite 6 also runs under a real journald);
- its `STATUS=` and other notifications;
- `provctl status` in both forms (only while the daemon runs: call before stopping it);
- the documents the phone sent (when a lab is given): what the server side saw;
- every file under the runtime directory, and (with `state_files`) every file under the
  state directory outside the secure store and the item store. The item store holds
  the server's passwords by design (spec §8.1), so it is searched only for key material
  and the PIN, by passing it in `state_files` mode `"all"`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from provd.lab.server import LabServer
from tests.integration.daemon.harness import Phone, remove_tree, short_tempdir


@contextlib.contextmanager
def phone(
    workdir: Path,
    server: LabServer | str,
    *,
    settings: Mapping[str, Any] | None = None,
    overrides: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Phone]:
    """A prepared (not started) daemon in `workdir`, stopped and cleaned up on exit."""
    url = server.url if isinstance(server, LabServer) else server
    workdir.mkdir(parents=True, exist_ok=True)
    sockdir = short_tempdir()
    made = Phone(workdir, sockdir, server_url=url, settings=settings, overrides=overrides, env=env)
    try:
        yield made
    finally:
        made.close()
        remove_tree(sockdir)


def _files(root: Path, skip: tuple[Path, ...]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        if path.is_file() and not path.is_symlink():
            found[f"file {path.relative_to(root.parent)}"] = path.read_bytes()
    return found


def phone_texts(
    made: Phone,
    lab: LabServer | None = None,
    *,
    status: bool = True,
    state_files: Literal["none", "outside-stores", "all-but-secure"] = "outside-stores",
) -> dict[str, bytes]:
    """What a scenario left readable (see the module's docstring), by place."""
    texts: dict[str, bytes] = {"the daemon's log": made.logtext().encode()}
    if made.notify is not None:
        notices = "\n".join("\n".join(n.lines) for n in made.notify.notices())
        texts["the notifications"] = notices.encode()
    if status and made.running:
        for args in (("status",), ("--json", "status")):
            shown = made.provctl(*args)
            texts[f"provctl {' '.join(args)}"] = (shown.stdout + shown.stderr).encode()
    if lab is not None:
        texts["the phone's documents"] = b"\n".join(r.body for r in lab.transcript if r.from_phone)
    texts.update(_files(made.runtime_dir, ()))
    if state_files != "none":
        secure = Path(made.settings.get("paths.secure-dir", made.state_dir / "secure"))
        skip: tuple[Path, ...] = (secure,)
        if state_files == "outside-stores":
            skip += tuple(made.state_dir.glob("items.db*"))
        texts.update(_files(made.state_dir, skip))
    return texts
