"""Privileged steps: request files, the unprivileged check, the shipped steps and units."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from provd.service.device import read_description, write_description
from provd.service.privileged import INSTALL, REBOOT, PrivilegedSteps, StepError

ROOT = Path(__file__).resolve().parents[3]
INSTALL_STEP = ROOT / "libexec" / "provd-install-step"
REBOOT_STEP = ROOT / "libexec" / "provd-reboot-step"
UNITS = ("provd-reboot.path", "provd-reboot.service", "provd-install.path", "provd-install.service")
WHEN = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def recorder(directory: Path, name: str, *, exit_code: int = 0, output: str = "") -> Path:
    """An executable that appends its arguments to `<name>.log` and exits `exit_code`."""
    script = directory / name
    log = directory / f"{name}.log"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nprintf \'%s\' \'{output}\'\nexit {exit_code}\n'
    )
    script.chmod(0o755)
    return script


def recorded(script: Path) -> list[str]:
    log = script.with_name(script.name + ".log")
    return log.read_text().splitlines() if log.exists() else []


def steps(tmp_path: Path, step: Path | None = None, **kw: float) -> PrivilegedSteps:
    return PrivilegedSteps(
        tmp_path / "run" / "requests",
        install_step=[str(step)] if step else [],
        clock=lambda: WHEN,
        new_id=lambda: "0123456789abcdef",
        **kw,
    )


# --------------------------------------------------------------------------- requests


def test_reboot_request_holds_what_when_and_who(tmp_path: Path) -> None:
    path = steps(tmp_path).request_reboot(reason="Restart", requested_by="AB15234DE14F")

    assert path == tmp_path / "run" / "requests" / REBOOT
    assert json.loads(path.read_text()) == {
        "what": "reboot",
        "id": "0123456789abcdef",
        "when": "2024-05-06T07:08:09Z",
        "requested_by": "AB15234DE14F",
        "reason": "Restart",
    }
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == [REBOOT]


def test_factory_reset_asks_for_a_factory_reset_reboot(tmp_path: Path) -> None:
    path = steps(tmp_path).request_reboot(reason="FactoryReset", factory_reset=True)
    assert json.loads(path.read_text())["what"] == "factory-reset-reboot"


def test_a_request_replaces_the_file_by_rename_never_in_place(tmp_path: Path) -> None:
    # The path unit starts on the name's appearance: the file must appear complete.
    s = steps(tmp_path)
    first = s.request_reboot(reason="one")
    inode = first.stat().st_ino
    keep_open = first.open()  # the old inode stays alive, so it cannot be reused

    second = s.request_reboot(reason="two")

    assert second.stat().st_ino != inode
    assert json.loads(keep_open.read())["reason"] == "one"
    keep_open.close()
    assert json.loads(second.read_text())["reason"] == "two"


def test_install_request_names_image_version_and_reboot(tmp_path: Path) -> None:
    image = tmp_path / "staging" / "fw.img"
    s = steps(tmp_path)

    path = s.request_install(
        image, software_version="V1 R4.9.0", software_type="Siemens SIP", requested_by="N1"
    )

    assert path.name == INSTALL
    assert json.loads(path.read_text()) == {
        "what": "install",
        "id": "0123456789abcdef",
        "when": "2024-05-06T07:08:09Z",
        "requested_by": "N1",
        "image": str(image),
        "software_version": "V1 R4.9.0",
        "software_type": "Siemens SIP",
        "reboot_after": True,
    }
    assert s.pending() == [INSTALL]


@pytest.mark.parametrize("version", ['1"; rm -rf /', "V1\nR2", "", "x" * 65])
def test_install_with_a_version_the_step_would_refuse_is_not_requested(
    tmp_path: Path, version: str
) -> None:
    s = steps(tmp_path)
    with pytest.raises(StepError):
        s.request_install(tmp_path / "fw.img", software_version=version)
    assert s.pending() == []


# --------------------------------------------------------------------------- the check step


def test_check_runs_the_install_step_with_check_and_the_image(tmp_path: Path) -> None:
    step = recorder(tmp_path, "step", output="bundle ok")
    result = steps(tmp_path, step).check_image(tmp_path / "fw.img")

    assert result.ok and result.detail == "bundle ok"
    assert recorded(step) == [f"check {tmp_path / 'fw.img'}"]


def test_check_failing_step_is_not_ok_with_its_output(tmp_path: Path) -> None:
    step = recorder(tmp_path, "step", exit_code=1, output="signature invalid")
    result = steps(tmp_path, step).check_image(tmp_path / "fw.img")

    assert not result.ok
    assert "signature invalid" in result.detail and "exited 1" in result.detail


def test_check_hanging_step_is_killed_and_not_ok(tmp_path: Path) -> None:
    step = tmp_path / "hang"
    step.write_text("#!/bin/sh\nsleep 30 &\nwait\n")
    step.chmod(0o755)
    result = steps(tmp_path, step, check_timeout=0.3).check_image(tmp_path / "fw.img")
    assert not result.ok and "timed out" in result.detail


def test_check_without_a_step_is_not_ok(tmp_path: Path) -> None:
    assert not steps(tmp_path, tmp_path / "missing").check_image(tmp_path / "x").ok
    assert not steps(tmp_path).check_image(tmp_path / "x").ok


# --------------------------------------------------------------------------- provd-reboot-step


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        argv, env={**base, **env}, capture_output=True, text=True, timeout=30, check=False
    )


def test_reboot_step_takes_a_valid_request_and_reboots(tmp_path: Path) -> None:
    path = steps(tmp_path).request_reboot(reason="Restart", requested_by="N7")
    reboot = recorder(tmp_path, "reboot")

    done = run([str(REBOOT_STEP), str(path)], {"PROVD_REBOOT_COMMAND": str(reboot)})

    assert done.returncode == 0, done.stderr
    assert not path.exists()
    assert recorded(reboot) == [""]
    assert "N7" in done.stderr


def test_reboot_step_without_command_only_consumes_and_says_yes(tmp_path: Path) -> None:
    path = steps(tmp_path).request_reboot(reason="Restart")
    done = run([str(REBOOT_STEP), str(path)], {})
    assert done.returncode == 0 and not path.exists()


@pytest.mark.parametrize("content", ["not json", '{"what": "install"}', "[]"])
def test_reboot_step_removes_an_invalid_request_and_does_not_reboot(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "reboot"
    path.write_text(content)
    reboot = recorder(tmp_path, "reboot")

    done = run([str(REBOOT_STEP), str(path)], {"PROVD_REBOOT_COMMAND": str(reboot)})

    assert done.returncode == 1
    assert not path.exists()
    assert recorded(reboot) == []


# --------------------------------------------------------------------------- provd-install-step


def install_env(tmp_path: Path, installer: Path, reboot: Path) -> dict[str, str]:
    return {
        "PROVD_STAGING_DIR": str(tmp_path / "staging"),
        "PROVD_DEVICE_DESCRIPTION": str(tmp_path / "device.toml"),
        "PROVD_INSTALLER": str(installer),
        "PROVD_REBOOT_COMMAND": str(reboot),
    }


def staged(tmp_path: Path) -> Path:
    (tmp_path / "staging").mkdir(exist_ok=True)
    image = tmp_path / "staging" / "fw.img"
    image.write_bytes(b"image")
    write_description(
        tmp_path / "device.toml", {"device-type": "OpenStage 60", "software-version": "V1 R4.8.0"}
    )
    return image


def test_install_request_installs_writes_the_version_and_reboots(tmp_path: Path) -> None:
    image = staged(tmp_path)
    installer, reboot = recorder(tmp_path, "installer"), recorder(tmp_path, "reboot")
    path = steps(tmp_path).request_install(image, software_version="V1 R4.9.0")

    done = run([str(INSTALL_STEP), "request", str(path)], install_env(tmp_path, installer, reboot))

    assert done.returncode == 0, done.stderr
    assert not path.exists()
    assert recorded(installer) == [f"install {image}"]
    assert recorded(reboot) == [""]
    assert read_description(tmp_path / "device.toml") == {
        "device-type": "OpenStage 60",
        "software-version": "V1 R4.9.0",
    }


def test_failed_install_keeps_the_version_and_still_reboots(tmp_path: Path) -> None:
    image = staged(tmp_path)
    installer, reboot = recorder(tmp_path, "installer", exit_code=1), recorder(tmp_path, "reboot")
    path = steps(tmp_path).request_install(image, software_version="V1 R4.9.0")

    done = run([str(INSTALL_STEP), "request", str(path)], install_env(tmp_path, installer, reboot))

    assert done.returncode == 1
    assert read_description(tmp_path / "device.toml")["software-version"] == "V1 R4.8.0"
    assert recorded(reboot) == [""]


@pytest.mark.parametrize("where", ["outside", "symlink", "missing"])
def test_install_request_for_an_image_not_in_staging_is_refused(tmp_path: Path, where: str) -> None:
    staged(tmp_path)
    outside = tmp_path / "elsewhere.img"
    outside.write_bytes(b"evil")
    image = {
        "outside": outside,
        "symlink": tmp_path / "staging" / "link.img",
        "missing": tmp_path / "staging" / "none.img",
    }[where]
    if where == "symlink":
        image.symlink_to(outside)
    installer, reboot = recorder(tmp_path, "installer"), recorder(tmp_path, "reboot")
    path = steps(tmp_path).request_install(image, software_version="V1 R4.9.0")

    done = run([str(INSTALL_STEP), "request", str(path)], install_env(tmp_path, installer, reboot))

    assert done.returncode == 2
    assert not path.exists()
    assert recorded(installer) == []
    assert recorded(reboot) == []


def test_install_step_check_passes_the_image_to_the_installer(tmp_path: Path) -> None:
    image = staged(tmp_path)
    installer, reboot = recorder(tmp_path, "installer"), recorder(tmp_path, "reboot")
    done = run([str(INSTALL_STEP), "check", str(image)], install_env(tmp_path, installer, reboot))
    assert done.returncode == 0
    assert recorded(installer) == [f"check {image}"]


def test_install_step_without_rauc_or_swupdate_refuses(tmp_path: Path) -> None:
    if shutil.which("rauc") or shutil.which("swupdate"):
        pytest.skip("an installer is present on this machine")
    image = staged(tmp_path)
    done = run([str(INSTALL_STEP), "check", str(image)], {"PROVD_INSTALLER": "auto"})
    assert done.returncode == 3
    assert "no installer" in done.stderr


# --------------------------------------------------------------------------- units


def test_path_units_watch_the_files_the_daemon_writes() -> None:
    requests = Path("/run/provd/requests")
    for unit, name in (("provd-reboot.path", REBOOT), ("provd-install.path", INSTALL)):
        text = (ROOT / "systemd" / unit).read_text()
        assert f"PathExists={requests / name}\n" in text


def test_only_the_fixed_reboot_command_runs_privileged() -> None:
    text = (ROOT / "systemd" / "provd-reboot.service").read_text()
    assert "User=provd\n" in text
    privileged = re.findall(r"^ExecStart=\+(.*)$", text, re.MULTILINE)
    assert privileged == ["/usr/bin/systemctl --no-block reboot"]
    assert "CapabilityBoundingSet=\n" in text


def test_install_unit_has_no_network() -> None:
    text = (ROOT / "systemd" / "provd-install.service").read_text()
    assert "PrivateNetwork=yes\n" in text


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in UNITS:
        text = (ROOT / "systemd" / unit).read_text()
        # verify checks that the commands exist: point them at this tree's steps.
        text = text.replace("/usr/libexec/provd/", f"{ROOT / 'libexec'}/")
        (tmp_path / unit).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / unit) for unit in UNITS)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    complaints = [
        line for line in (done.stdout + done.stderr).splitlines() if any(u in line for u in UNITS)
    ]
    assert done.returncode == 0, done.stderr
    assert complaints == []
