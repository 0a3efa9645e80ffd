"""Apply hooks run as real processes from a real directory (spec §8.2)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from provd.store.hooks import MSG_HOOK_FAILED, ApplyHooks, HookResult

CHANGED: list[tuple[str, int | None]] = [("sntp-addr", None), ("dls-server-ca", 0), ("key", 12)]


def make_hook(directory: Path, name: str, body: str, *, executable: bool = True) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755 if executable else 0o644)
    return path


def recorder(directory: Path, name: str, log: Path) -> Path:
    """A hook that appends its name, its stdin and its PROVD_CHANGED to `log`."""
    return make_hook(
        directory,
        name,
        f'{{ echo "== {name}"; cat; echo "env=$PROVD_CHANGED"; }} >> "{log}"\n',
    )


def test_hooks_run_in_lexical_order_and_are_told_names_on_stdin_and_env(tmp_path: Path) -> None:
    hooks, out = tmp_path / "apply.d", tmp_path / "out"
    for name in ["20-b", "10-a", "99-z", "3-c"]:
        recorder(hooks, name, out)
    results = ApplyHooks(hooks).run(CHANGED)
    assert [r.hook.name for r in results] == ["10-a", "20-b", "3-c", "99-z"]
    assert all(r.ok for r in results)
    block = "sntp-addr\ndls-server-ca[0]\nkey[12]\nenv=sntp-addr dls-server-ca[0] key[12]\n"
    assert out.read_text() == "".join(f"== {n}\n{block}" for n in ["10-a", "20-b", "3-c", "99-z"])


def test_each_changed_name_is_told_once(tmp_path: Path) -> None:
    hooks, out = tmp_path / "apply.d", tmp_path / "out"
    recorder(hooks, "10-a", out)
    ApplyHooks(hooks).run([("a", None), ("a", None), ("b", 1), ("b", 1)])
    assert out.read_text() == "== 10-a\na\nb[1]\nenv=a b[1]\n"


def test_non_executables_backups_dpkg_leftovers_dotfiles_and_dirs_are_skipped(
    tmp_path: Path,
) -> None:
    hooks, out = tmp_path / "apply.d", tmp_path / "out"
    recorder(hooks, "10-run", out)
    make_hook(hooks, "20-not-executable", f'echo bad >> "{out}"\n', executable=False)
    for name in ["10-run~", "10-run.dpkg-old", "10-run.dpkg-dist", ".10-hidden"]:
        make_hook(hooks, name, f'echo bad >> "{out}"\n')
    (hooks / "30-dir").mkdir()
    (hooks / "40-dangling").symlink_to(tmp_path / "nowhere")
    assert [p.name for p in ApplyHooks(hooks).hooks()] == ["10-run"]
    ApplyHooks(hooks).run(CHANGED)
    assert "bad" not in out.read_text()


def test_symlinked_hook_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    target = recorder(tmp_path / "lib", "real", out)
    (tmp_path / "apply.d").mkdir()
    (tmp_path / "apply.d" / "50-link").symlink_to(target)
    assert [r.ok for r in ApplyHooks(tmp_path / "apply.d").run(CHANGED)] == [True]
    assert out.read_text().startswith("== real\n")


def test_missing_directory_or_nothing_changed_runs_nothing(tmp_path: Path) -> None:
    assert ApplyHooks(tmp_path / "absent").run(CHANGED) == []
    recorder(tmp_path / "apply.d", "10-a", tmp_path / "out")
    assert ApplyHooks(tmp_path / "apply.d").run([]) == []
    assert not (tmp_path / "out").exists()


def test_failing_hook_is_logged_with_its_output_and_the_next_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hooks, out = tmp_path / "apply.d", tmp_path / "out"
    make_hook(hooks, "10-fails", "echo 'cannot reload sntp' >&2\nexit 7\n")
    make_hook(hooks, "20-killed", "kill -TERM $$\n")
    recorder(hooks, "30-next", out)
    caplog.set_level(logging.WARNING, logger="provd.store.hooks")
    results = ApplyHooks(hooks).run(CHANGED)
    assert results == [
        HookResult(hooks / "10-fails", 7),
        HookResult(hooks / "20-killed", -15),
        HookResult(hooks / "30-next", 0),
    ]
    assert out.read_text().startswith("== 30-next\n")
    failed = [r for r in caplog.records if getattr(r, "MESSAGE_ID", None) == MSG_HOOK_FAILED]
    assert [r.levelno for r in failed] == [logging.WARNING, logging.WARNING]
    assert "10-fails exited with status 7" in failed[0].getMessage()
    assert "cannot reload sntp" in failed[0].getMessage()
    assert "died of signal 15" in failed[1].getMessage()


def test_hook_that_cannot_start_is_logged_and_the_next_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hooks, out = tmp_path / "apply.d", tmp_path / "out"
    hooks.mkdir()
    bad = hooks / "10-no-interpreter"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    recorder(hooks, "20-next", out)
    caplog.set_level(logging.WARNING, logger="provd.store.hooks")
    results = ApplyHooks(hooks).run(CHANGED)
    assert results[0].returncode is None
    assert results[0].error is not None
    assert results[1].ok
    assert "could not start" in caplog.text


def test_timed_out_hook_and_its_children_are_killed_and_the_next_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hooks, out, pids = tmp_path / "apply.d", tmp_path / "out", tmp_path / "pids"
    make_hook(hooks, "10-hangs", f'sleep 300 &\necho $! > "{pids}"\nsleep 300\n')
    recorder(hooks, "20-next", out)
    caplog.set_level(logging.WARNING, logger="provd.store.hooks")
    results = ApplyHooks(hooks, timeout=0.5).run(CHANGED)
    assert results[0] == HookResult(hooks / "10-hangs", None, timed_out=True)
    assert results[1].ok
    assert "timed out" in caplog.text
    child = int(pids.read_text())
    assert not _alive(child), "the hook's background child survived the group kill"


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie awaiting its reaper counts as dead)."""
    for _ in range(500):  # the kill is synchronous; reaping by init may lag a moment
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in {"Z", "X"}:
            return False
        os.sched_yield()
    return True


def test_secret_item_values_are_never_passed_and_output_is_withheld(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hooks, out = tmp_path / "apply.d", tmp_path / "out"
    make_hook(hooks, "10-env", f'env > "{out}"\necho leaked-output >&2\nexit 1\n')
    caplog.set_level(logging.DEBUG, logger="provd.store.hooks")
    ApplyHooks(hooks, secret_names={"sip-pwd"}).run([("sip-pwd", None), ("e164", None)])
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["PROVD_CHANGED"] == "sip-pwd e164"
    assert "leaked-output" not in caplog.text
    assert "output withheld" in caplog.text


def test_a_very_long_change_list_goes_whole_on_stdin_and_flags_the_env(tmp_path: Path) -> None:
    hooks, out = tmp_path / "apply.d", tmp_path / "out"
    make_hook(hooks, "10-a", f'cat > "{out}"\necho "$PROVD_CHANGED_TRUNCATED" >> "{out}"\n')
    changed: list[tuple[str, int | None]] = [(f"item-with-a-long-name-{i}", i) for i in range(5000)]
    assert ApplyHooks(hooks).run(changed)[0].ok
    lines = out.read_text().splitlines()
    assert len(lines) == 5001
    assert lines[0] == "item-with-a-long-name-0[0]"
    assert lines[-1] == "1"
