"""provd's systemd units as systemd reads them, and the package that ships them.

- `systemd-analyze verify` prints nothing for any unit of `systemd/`. verify wants the
  programs of `ExecStart=` to exist, so it runs against a scratch root (`--root`) holding the
  host's units, ours in /etc/systemd/system and a stub for every program they name.
- `systemd-analyze security --offline=true` rates provd.service at most 1.5 (issue 7).
- The package installs every unit, and the pieces that must agree do: the version in
  debian/changelog and pyproject.toml, the user in the unit and in debian/provd.sysusers,
  the man pages the units name and those in man/.

The systemd-analyze tests are skipped, saying why, where systemd-analyze is missing.
`make security` (e2e/unit-check) prints the full report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "systemd"
UNITS = sorted(
    p for p in UNIT_DIR.iterdir() if p.suffix in {".service", ".socket", ".path", ".timer"}
)
MAX_EXPOSURE = 1.5
HOST_UNITS = Path("/usr/lib/systemd/system")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze", path="/usr/bin:/bin")

needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None or not HOST_UNITS.is_dir(),
    reason="systemd-analyze and the host's units (package systemd) are not installed",
)

# ExecStart=-/usr/bin/x args → /usr/bin/x (the -@:+!| prefixes of systemd.service(5)).
_EXEC = re.compile(r"^\s*Exec\w*=[-@:+!|]*(/\S+)", re.MULTILINE)
_SCORE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def _directives(unit: Path, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit.read_text(encoding="utf-8"), re.MULTILINE)


def _scratch_root(root: Path) -> list[str]:
    """A root with the host's units, ours, and stubs for our programs; our unit names."""
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    for link in ("lib", "bin", "sbin"):
        (root / link).symlink_to("usr/lib" if link == "lib" else "usr/bin")
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, etc / unit.name)
        for program in _EXEC.findall(unit.read_text(encoding="utf-8")):
            stub = root / program.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            if not stub.exists():
                stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
                stub.chmod(0o755)
    return [unit.name for unit in UNITS]


@needs_analyze
def test_systemd_analyze_verify_finds_nothing_to_say_about_any_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    names = _scratch_root(tmp_path)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={tmp_path}", "--man=no", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_analyze
def test_verify_in_the_scratch_root_does_report_an_unknown_directive(tmp_path: Path) -> None:
    # The check above can fail: a misspelt directive is reported.
    assert SYSTEMD_ANALYZE is not None
    _scratch_root(tmp_path)
    unit = tmp_path / "etc/systemd/system/provd.service"
    unit.write_text(
        unit.read_text(encoding="utf-8").replace("ProtectClock=", "ProtectClok="),
        encoding="utf-8",
    )
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={tmp_path}", "--man=no", "provd.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "ProtectClok" in done.stderr


@needs_analyze
def test_provd_service_exposure_is_at_most_1_5() -> None:
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", UNIT_DIR / "provd.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = _SCORE.search(done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, done.stdout


def test_provd_service_keeps_the_hardening_the_issue_asks_for() -> None:
    unit = UNIT_DIR / "provd.service"
    single = {
        "Type": "notify",
        "User": "provd",
        "Group": "provd",
        "ProtectSystem": "strict",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "NoNewPrivileges": "yes",
        "StateDirectory": "provd",
        "RuntimeDirectory": "provd",
        "DevicePolicy": "closed",
        "DeviceAllow": "char-input r",
        "ConditionPathExists": "!/etc/provd/disabled",
        "Restart": "on-failure",
    }
    for key, value in single.items():
        assert _directives(unit, key) == [value], key
    assert _directives(unit, "WatchdogSec"), "no watchdog"
    assert "@system-service" in _directives(unit, "SystemCallFilter")


def test_the_package_installs_every_unit_and_the_catalog() -> None:
    install = (ROOT / "debian/provd.install").read_text(encoding="utf-8").split()
    for unit in UNITS:
        assert f"systemd/{unit.name}" in install, unit.name
    assert "systemd/provd.catalog" in install


def test_the_unit_runs_as_the_user_the_package_creates() -> None:
    sysusers = (ROOT / "debian/provd.sysusers").read_text(encoding="utf-8")
    entries = [line.split() for line in sysusers.splitlines() if line.startswith("u ")]
    assert [entry[1] for entry in entries] == _directives(UNIT_DIR / "provd.service", "User")


def test_every_provd_man_page_a_unit_names_is_in_man() -> None:
    for unit in UNITS:
        for docs in _directives(unit, "Documentation"):
            for page, section in re.findall(r"man:(prov[\w.-]*)\((\d)\)", docs):
                assert (ROOT / "man" / f"{page}.{section}").is_file(), f"{unit.name}: {page}"


def test_debian_changelog_and_pyproject_agree_on_the_version() -> None:
    changelog = (ROOT / "debian/changelog").read_text(encoding="utf-8").splitlines()[0]
    match = re.match(r"provd \(([^)]+)\)", changelog)
    assert match is not None, changelog
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert match.group(1) == project["version"]
