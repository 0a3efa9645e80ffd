"""Issue 6: no step needs a capability in the daemon's own unit. The daemon's unit grants
none; what needs root is done by the privileged units, which watch exactly the request
files the daemon writes, and read images from exactly the daemon's staging directory."""

from __future__ import annotations

from pathlib import Path

from provd.service.settings_model import ControlSettings, DeviceSettings, PathSettings
from tests.integration.deploy.deployment import ROOT

SYSTEMD = ROOT / "systemd"


def directives(unit: str) -> list[tuple[str, str]]:
    """(key, value) of every assignment in a unit file, in order (comments left out)."""
    found = []
    for raw in (SYSTEMD / unit).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.append((key.strip(), value.strip()))
    return found


def values(unit: str, key: str) -> list[str]:
    return [value for k, value in directives(unit) if k == key]


def test_the_daemons_unit_grants_no_capability_and_runs_unprivileged() -> None:
    unit = "provd.service"
    # An empty CapabilityBoundingSet= drops every capability; no later line adds any back.
    assert values(unit, "CapabilityBoundingSet") == [""]
    assert all(value == "" for value in values(unit, "AmbientCapabilities"))
    assert values(unit, "User") == ["provd"]
    assert values(unit, "NoNewPrivileges") == ["yes"]
    # No command of the daemon's unit runs with full privileges ("+") or as root ("!").
    for key in ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop"):
        assert not any(v.lstrip("-@:").startswith(("+", "!")) for v in values(unit, key)), key
    assert values(unit, "ProtectSystem") == ["strict"]


def test_the_daemon_writes_only_its_state_and_runtime_directories() -> None:
    # ProtectSystem=strict leaves StateDirectory= and RuntimeDirectory= writable, nothing else.
    unit = "provd.service"
    assert values(unit, "StateDirectory") == ["provd"]
    assert values(unit, "RuntimeDirectory") == ["provd"]
    state, runtime = Path("/var/lib/provd"), Path("/run/provd")
    paths = PathSettings()
    assert paths.state_dir == state
    for written in (paths.secure_dir, paths.files_dir, paths.staging_dir):
        assert written.is_relative_to(state), written
    assert paths.runtime_dir == runtime
    assert ControlSettings().socket.is_relative_to(runtime)


def test_the_privileged_units_watch_the_requests_the_daemon_writes() -> None:
    requests = PathSettings().runtime_dir / "requests"  # PrivilegedSteps(runtime/requests)
    for name in ("reboot", "install"):
        path_unit = f"provd-{name}.path"
        assert values(path_unit, "PathExists") == [str(requests / name)]
        assert values(path_unit, "Unit") == [f"provd-{name}.service"]
    reboot = values("provd-reboot.service", "ExecStart")
    assert reboot[0].endswith(f"provd-reboot-step {requests / 'reboot'}")
    assert reboot[1] == "+/usr/bin/systemctl --no-block reboot"  # the one root command, fixed
    assert values("provd-reboot.service", "User") == ["provd"]
    assert values("provd-reboot.service", "CapabilityBoundingSet") == [""]
    install = values("provd-install.service", "ExecStart")
    assert install == [f"/usr/libexec/provd/provd-install-step request {requests / 'install'}"]
    # The install step takes images only from the daemon's staging directory.
    environment = values("provd-install.service", "Environment")
    assert f"PROVD_STAGING_DIR={PathSettings().staging_dir}" in environment
    # ... and writes the new software-version where the daemon reads it (spec §6.2).
    description = DeviceSettings().description_file
    assert f"PROVD_DEVICE_DESCRIPTION={description}" in environment
