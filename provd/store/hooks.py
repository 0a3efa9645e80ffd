"""Apply hooks: tell the rest of the phone which items changed (spec §8.2).

After each committed change provd runs every hook in its `apply.d` directory
(`ApplyHooks.run`). The contract a hook author relies on:

- Which files run: executable regular files (symlinks followed) directly in the
  directory, in lexical (C locale, code point) order of their names. Skipped:
  dotfiles, backup files `*~`, and dpkg leftovers `*.dpkg-*`
  (`.dpkg-old`, `.dpkg-dist`, `.dpkg-new`, `.dpkg-tmp`).
- What a hook is told — names only, never a value (not even of a non-secret
  item; a hook that needs values reads them through provd's local interface):
  * stdin: one changed item per line, `name` for a scalar item and
    `name[index]` for an indexed one, each once, in commit order;
  * env `PROVD_CHANGED`: the same tokens separated by single spaces. Should the
    list pass 64 KiB (beyond what an environment variable safely holds) it is
    empty and `PROVD_CHANGED_TRUNCATED=1`; stdin always holds the full list.
  The hook inherits provd's environment otherwise, runs with the working
  directory `/`, in a session (process group) of its own.
- Time: each hook gets `timeout` seconds (default 30); then its whole process
  group is killed with SIGKILL. Processes a hook leaves behind after it exits
  in time are not waited for.
- Failure: a hook that cannot start, exits non-zero, dies of a signal or times
  out is logged as a warning (MESSAGE_ID `MSG_HOOK_FAILED`) and the next hook
  still runs. The items stay committed; `run` never raises.
- Output: stdout and stderr go to an anonymous temporary file (no pipe, so a
  chatty hook cannot block). The last KiB of a failed hook's output is logged,
  except when a secret item (`secret_names`) is among the changes: then the
  output is withheld, since a hook handling a secret item might echo it.

Hooks run synchronously; the daemon calls `run` from a worker, not its loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import subprocess
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_SERVICE_ONLY = frozenset(
    {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"}
)

#: journald MESSAGE_IDs (each explained in systemd/provd.catalog).
MSG_HOOK_FAILED = "489e6e57c1cf448ab26c7f7c7b6e7896"
MSG_HOOK_RAN = "5e77e79fee084816beed654afd27708c"

_ENV_LIMIT = 64 * 1024
_OUTPUT_TAIL = 1024


@dataclass(frozen=True, slots=True)
class HookResult:
    """What became of one hook: `returncode` None if it did not start or timed out
    (negative: killed by that signal), `error` why it did not start."""

    hook: Path
    returncode: int | None
    timed_out: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The hook ran to completion and exited 0."""
        return self.returncode == 0


def change_token(name: str, index: int | None) -> str:
    """How a changed item is named to hooks: `name` or `name[index]`."""
    return name if index is None else f"{name}[{index}]"


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.endswith("~") or ".dpkg-" in name


class ApplyHooks:
    """The hooks of `directory` (which need not exist: then there are none)."""

    def __init__(
        self, directory: Path, *, timeout: float = 30.0, secret_names: Collection[str] = ()
    ) -> None:
        self._dir = directory
        self._timeout = timeout
        self._secret = frozenset(secret_names)

    def hooks(self) -> list[Path]:
        """The hooks that would run, in order."""
        try:
            names = sorted(p.name for p in self._dir.iterdir())
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if _skipped(name):
                continue
            path = self._dir / name
            try:
                if not stat.S_ISREG(path.stat().st_mode):
                    continue
            except OSError:  # a dangling symlink
                continue
            if os.access(path, os.X_OK):
                found.append(path)
        return found

    def run(self, changed: Sequence[tuple[str, int | None]]) -> list[HookResult]:
        """Run every hook, telling it the names of `changed`; never raises.

        Nothing changed, nothing runs (an empty list).
        """
        tokens = list(dict.fromkeys(change_token(n, i) for n, i in changed))
        if not tokens:
            return []
        try:
            hooks = self.hooks()
        except OSError as exc:
            log.warning(
                "apply hooks: cannot list %s: %s",
                self._dir,
                exc.strerror,
                extra={"MESSAGE_ID": MSG_HOOK_FAILED, "PROVD_EVENT": "hook-failed"},
            )
            return []
        # A hook must not talk to systemd as if it were provd (sd_notify, watchdog).
        env = {k: v for k, v in os.environ.items() if k not in _SERVICE_ONLY}
        joined = " ".join(tokens)
        if len(joined) > _ENV_LIMIT:
            env["PROVD_CHANGED"] = ""
            env["PROVD_CHANGED_TRUNCATED"] = "1"
        else:
            env["PROVD_CHANGED"] = joined
            env.pop("PROVD_CHANGED_TRUNCATED", None)
        stdin = "".join(f"{t}\n" for t in tokens).encode()
        secret = any(name in self._secret for name, _ in changed)
        results = []
        for hook in hooks:
            try:
                result, output = self._run_one(hook, stdin, env)
            except Exception as exc:  # a hook must never break the caller
                result, output = HookResult(hook, None, error=f"{type(exc).__name__}"), b""
            self._report(result, output, len(tokens), withhold=secret)
            results.append(result)
        return results

    def _run_one(self, hook: Path, stdin: bytes, env: dict[str, str]) -> tuple[HookResult, bytes]:
        """Run one hook; its result and the tail of its output."""
        with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out:
            inp.write(stdin)
            inp.seek(0)
            try:
                proc = subprocess.Popen(
                    [str(hook)],
                    stdin=inp,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd="/",
                    start_new_session=True,  # its own process group, killed as a whole
                )
            except OSError as exc:
                return HookResult(hook, None, error=exc.strerror or str(exc)), b""
            try:
                proc.wait(timeout=self._timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return HookResult(hook, None, timed_out=True), _tail(out)
            return HookResult(hook, proc.returncode), _tail(out)

    def _report(self, result: HookResult, output: bytes, count: int, *, withhold: bool) -> None:
        if result.ok:
            log.debug(
                "apply hook %s done (%d changed items)",
                result.hook.name,
                count,
                extra={
                    "MESSAGE_ID": MSG_HOOK_RAN,
                    "PROVD_EVENT": "hook-ran",
                    "PROVD_HOOK": str(result.hook),
                },
            )
            return
        if result.error is not None:
            what = f"could not start: {result.error}"
        elif result.timed_out:
            what = f"timed out after {self._timeout:g} s and was killed"
        elif result.returncode is not None and result.returncode < 0:
            what = f"died of signal {-result.returncode}"
        else:
            what = f"exited with status {result.returncode}"
        if withhold:
            shown = "(output withheld: secret items changed)"
        else:
            shown = output.decode("utf-8", "replace").strip() or "(no output)"
        log.warning(
            "apply hook %s %s; the items stay committed; output: %s",
            result.hook.name,
            what,
            shown,
            extra={
                "MESSAGE_ID": MSG_HOOK_FAILED,
                "PROVD_EVENT": "hook-failed",
                "PROVD_HOOK": str(result.hook),
            },
        )


def _tail(out: IO[bytes]) -> bytes:
    size = out.seek(0, os.SEEK_END)
    out.seek(max(0, size - _OUTPUT_TAIL))
    return out.read()
