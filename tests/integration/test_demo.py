"""`python -m provd.service.demo` (what `make demo` runs) tells the story of issue 2 and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STORY = [
    "phone → server  start-up  14 items (mac-addr 00:01:E3:25:EA:13)",
    "server → phone  ReadAllItems",
    "phone → server  reply-to ReadAllItems accepted  ",
    "server → phone  WriteItems  3 items",
    "phone → server  reply-to WriteItems accepted  1 rejected: socketed-headset-mode=unknown item",
    "server → phone  CleanUp",
]


def _demo(*args: str, encoding: str = "utf-8") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": encoding}
    return subprocess.run(
        [sys.executable, "-m", "provd.service.demo", "--non-interactive", *args],
        capture_output=True,
        text=True,
        encoding=encoding,
        env=env,
        cwd=ROOT,
        timeout=30,
        check=False,
    )


def _story_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("phone →", "server →"))]


def test_demo_prints_the_story_one_line_per_message_and_exits_0() -> None:
    done = _demo()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = _story_lines(done.stdout)
    assert len(lines) == len(STORY)
    for line, expected in zip(lines, STORY, strict=True):
        assert line.startswith(expected), (line, expected)
    assert lines[2].endswith(" items")
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("demo ok: 3 phone messages, actions ReadAllItems, WriteItems;")
    assert "server key pinned" in summary
    assert "<WorkpointMessage" not in done.stdout
    assert done.stderr == ""


def test_demo_with_xml_prints_each_document_under_its_line() -> None:
    done = _demo("--xml")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count("    <WorkpointMessage ") == 3
    assert out.count("    <DLSMessage ") == 3
    assert '    <Item name="socketed-headset-mode" status="unknown item"/>' in out
    # Each document follows the line that announces it.
    assert out.index("server → phone  WriteItems") < out.index("<Action>WriteItems</Action>")


def test_demo_on_an_ascii_terminal_uses_ascii_arrows() -> None:
    done = _demo(encoding="ascii")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "phone -> server  start-up" in done.stdout
    assert "server -> phone  CleanUp" in done.stdout


def test_demo_fails_with_a_non_zero_status_when_the_story_goes_wrong(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[interaction]]\n[[interaction.step]]\nstatus = 500\n")
    done = _demo("--scenario", str(broken))
    assert done.returncode == 1
    assert "server → phone  HTTP 500" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "demo FAILED: HTTP 500"
