"""provd's settings: defaults in code, then the settings file, its drop-ins, then `--set`.

Layering (STYLE.md "The daemon"), later wins, tables merged key by key:

1. the built-in defaults: the frozen dataclasses of `provd.service.settings_model`;
2. the settings file, normally `/etc/provd/provd.toml`;
3. drop-ins `*.toml` in its `.d` directory (`/etc/provd/provd.toml.d/`), in lexical order;
4. `--set group.key=value` flags, in order; the value is read as a TOML value when it is one
   (`18085`, `true`, `["a", "b"]`) and as a plain string otherwise (`https://dls:18443`).

Every setting is documented in the shipped `config/provd.toml`; a test keeps the two in step.
Items are never settings: they are data in the item store (spec §8).

Decisions:

- `server.url` has no default host: with it empty provd runs (contact-me, local interface,
  status) but contacts no server, and `provd check-config` says so. A bare host, `host:port` or
  a URL without port or path is completed with port 18443 and path
  `/DeploymentService/LoginService` (spec §1 [B]).
- Relative paths under `[paths]` are relative to `paths.state-dir`; the control and UI sockets
  are relative to `paths.runtime-dir`. Moving `state-dir` (a test, a lab) moves what lies under
  it. Every other path must be absolute.
- Errors name the file and line of the value at fault (tomllib gives the line of a syntax error;
  for the others the key's line is looked up in the file's text).

This module is the entry point. The settings themselves (dataclasses and enums) are in
`settings_model`, the checks of one value in `settings_values`, and reading the layers and
building `Settings` from them in `settings_loader`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from provd.service.settings_loader import Layers, Problem, apply_override, build, read_file, schema
from provd.service.settings_model import DefaultTrust, Settings, UdevRule

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_DROPIN_DIR",
    "Problem",
    "Settings",
    "SettingsError",
    "check_settings",
    "default_dropin_dir",
    "load_settings",
    "setting_keys",
    "to_tables",
]

DEFAULT_CONFIG_FILE = Path("/etc/provd/provd.toml")
DEFAULT_DROPIN_DIR = Path("/etc/provd/provd.toml.d")


def default_dropin_dir(config_file: Path) -> Path:
    """The drop-in directory that belongs to `config_file` (`provd.toml` → `provd.toml.d`)."""
    return config_file.with_name(config_file.name + ".d")


class SettingsError(ValueError):
    """The settings do not load; `problems` lists everything found, the first is the message."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        first = str(self.problems[0]) if self.problems else "invalid settings"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))

    @property
    def file(self) -> str | None:
        return self.problems[0].file if self.problems else None

    @property
    def line(self) -> int | None:
        return self.problems[0].line if self.problems else None


def load_settings(
    config_file: Path | None,
    dropin_dir: Path | None,
    overrides: Sequence[str] = (),
    *,
    missing_ok: bool = False,
) -> Settings:
    """Layer defaults, `config_file`, `dropin_dir/*.toml` (lexical order) and `--set` overrides.

    A missing `config_file` is an error unless `missing_ok`; a missing `dropin_dir` is fine.
    Raises `SettingsError` listing every problem found, each with file and line where known.
    """
    layers = Layers()
    if config_file is not None and not (missing_ok and not config_file.exists()):
        read_file(layers, config_file)
    if dropin_dir is not None and dropin_dir.is_dir():
        for path in sorted(dropin_dir.glob("*.toml"), key=lambda p: p.name):
            if not path.name.startswith("."):  # editors' lock and backup files
                read_file(layers, path)
    for arg in overrides:
        apply_override(layers, arg)
    settings = build(layers)
    if layers.problems:
        raise SettingsError(layers.problems)
    return settings


def check_settings(
    config_file: Path | None,
    dropin_dir: Path | None,
    overrides: Sequence[str] = (),
    *,
    missing_ok: bool = False,
) -> list[str]:
    """`provd check-config`: every problem, one line each, starting `error:` or `warning:`.

    An empty list means the settings load and nothing looks wrong; any `error:` line means
    `load_settings` would refuse them.
    """
    try:
        settings = load_settings(config_file, dropin_dir, overrides, missing_ok=missing_ok)
    except SettingsError as exc:
        return [f"error: {problem}" for problem in exc.problems]
    warnings: list[str] = []
    if not settings.server.configured:
        warnings.append("server.url: no server configured: provd will contact no server")
    if settings.tls.default_trust is DefaultTrust.ANY:
        warnings.append("tls.default-trust: 'any' accepts every server certificate (labs only)")
    if settings.tls.ca_file is not None and not settings.tls.ca_file.is_file():
        warnings.append(f"tls.ca-file: {settings.tls.ca_file} is not a readable file")
    if settings.poll.url and not settings.poll.url.endswith("/"):
        warnings.append(
            "poll.url: does not end with '/'; provd appends 'contact-me?device-id=...' (spec §4.2)"
        )
    if settings.contact_me.allow_redirect:
        warnings.append(
            "contact-me.allow-redirect: contact-me may redirect the phone to "
            + ", ".join(settings.contact_me.allow_redirect)
            + " (spec §4.1; advisory OBSO-2312-01)"
        )
    if not settings.device.interface and not settings.device.mac_addr:
        warnings.append("device: neither interface nor mac-addr is set: mac-addr will be failed")
    return [f"warning: {w}" for w in warnings]


def setting_keys() -> tuple[str, ...]:
    """Every setting as `group.key`, in declaration order."""
    known = schema()
    return tuple(f"{group}.{key}" for group in known.groups for key in known.group_keys[group])


def to_tables(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings as TOML-shaped tables (paths as strings, None as ""), for check-config."""
    known = schema()
    out: dict[str, dict[str, Any]] = {}
    for group, (attr, _) in known.groups.items():
        section = getattr(settings, attr)
        out[group] = {
            key: _plain(getattr(section, name))
            for key, (name, _) in known.group_keys[group].items()
        }
    return out


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, UdevRule):
        return {"item": value.item, "subsystem": value.subsystem, "match": dict(value.match)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
