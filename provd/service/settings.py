"""provd's settings: defaults in code, then the settings file, its drop-ins, then `--set`.

Layering (STYLE.md "The daemon"), later wins, tables merged key by key:

1. the built-in defaults: the frozen dataclasses below;
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
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_CONFIG_FILE = Path("/etc/provd/provd.toml")
DEFAULT_DROPIN_DIR = Path("/etc/provd/provd.toml.d")
#: Spec §1: Default Mode port and the path real servers use [G p.12; F].
DEFAULT_SERVER_PORT = 18443
DEFAULT_SERVER_PATH = "/DeploymentService/LoginService"


def default_dropin_dir(config_file: Path) -> Path:
    """The drop-in directory that belongs to `config_file` (`provd.toml` → `provd.toml.d`)."""
    return config_file.with_name(config_file.name + ".d")


# --- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the settings, located as well as it can be."""

    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.file and self.line:
            where = f"{self.file}:{self.line}"
        parts = [p for p in (where, self.key) if p]
        return ": ".join([*parts, self.message])


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


class _Invalid(Exception):
    """A value check failed; the builder adds where."""


# --- value checks (each returns the value to keep, or raises _Invalid) ------------------------

Check = Callable[[Any], Any]


def _range(low: float, high: float | None = None) -> Check:
    def check(value: Any) -> Any:
        if value < low or (high is not None and value > high):
            raise _Invalid(f"must be {low}..{high}" if high is not None else f"must be ≥ {low}")
        return value

    return check


def _positive(value: Any) -> Any:
    if not value > 0:
        raise _Invalid("must be greater than 0")
    return value


_port = _range(1, 65535)
_listen_port = _range(0, 65535)  # 0: any free port (tests, labs)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _Invalid(f"{value!r} is not an IP address") from None


def _ip_or_empty(value: str) -> str:
    return _ip(value) if value else value


def _mac_or_empty(value: str) -> str:
    if value and not re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", value):
        raise _Invalid(f"{value!r} is not a MAC address like 00:1A:E8:12:34:56")
    return value


def _e164_or_empty(value: str) -> str:
    if value and not re.fullmatch(r"\+?[0-9]{1,32}", value):
        raise _Invalid(f"{value!r} is not a telephone number (digits, optional leading +)")
    return value


def _server_url(value: str) -> str:
    """Complete and check the server URL (spec §1 [B]); "" means no server configured."""
    if not value:
        return value
    text = value if "://" in value else "https://" + value
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _Invalid(f"{value!r} is not a URL: {exc}") from None
    if parts.scheme != "https":
        raise _Invalid(f"{value!r}: the XML channel is HTTPS only (spec §1)")
    if not parts.hostname or parts.username or parts.password:
        raise _Invalid(f"{value!r} needs a host and no user name or password")
    if port == 0:
        raise _Invalid(f"{value!r}: port must be 1..65535")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{port or DEFAULT_SERVER_PORT}"
    path = parts.path if parts.path not in ("", "/") else DEFAULT_SERVER_PATH
    return urlunsplit(("https", netloc, path, parts.query, ""))


def _poll_url(value: str) -> str:
    if not value:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _Invalid(f"{value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"{value!r} must be an http:// or https:// URL with a host (spec §4.2)")
    return value


def split_host_port(target: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address → (host, port or None)."""
    target = target.strip()
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:
        host, port_text = target, ""
    if not host or (port_text and not port_text.isdigit()):
        raise ValueError(f"{target!r} is not host, host:port or [address]:port")
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{target!r}: port must be 1..65535")
    return host.lower(), port


def _redirect_targets(value: tuple[str, ...]) -> tuple[str, ...]:
    for target in value:
        try:
            split_host_port(target)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
    return value


def _item_names(value: tuple[str, ...]) -> tuple[str, ...]:
    for name in value:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise _Invalid(f"{name!r} is not an item name")
    return value


def _command(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not arg for arg in value):
        raise _Invalid("a command is a list of non-empty strings")
    return value


def _sizes(value: Mapping[str, int]) -> Mapping[str, int]:
    for name, size in value.items():
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise _Invalid(f"size of {name!r} must be a positive integer")
    return value


def _subtable(table: Mapping[str, Any], keys: Mapping[str, type]) -> Mapping[str, Any]:
    for key, value in table.items():
        if key not in keys:
            raise _Invalid(_unknown("key", key, keys) + f" (known: {', '.join(keys)})")
        if not isinstance(value, keys[key]):
            raise _Invalid(f"{key} must be {_TYPE_NAMES.get(keys[key], 'a table')}")
        if isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
            raise _Invalid(f"{key} maps names to strings")
    return table


# --- the settings -----------------------------------------------------------------------------


class DefaultTrust(StrEnum):
    """Spec §7.4 [B]: how the server is trusted in Default Mode."""

    PIN = "pin"
    CA = "ca"
    ANY = "any"


class NonceCheck(StrEnum):
    """Spec §2.4 [B]."""

    STRICT = "strict"
    WARN = "warn"


class UiDriver(StrEnum):
    """Which display/keypad driver asks for the Secure-Mode PIN (spec §7.2)."""

    CONSOLE = "console"
    EVDEV = "evdev"
    SOCKET = "socket"
    NONE = "none"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """The provisioning server (spec §1)."""

    url: str = ""
    secure_port: int = 18444

    @property
    def configured(self) -> bool:
        return bool(self.url)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or DEFAULT_SERVER_PORT


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """Spec §7.4 [B]."""

    default_trust: DefaultTrust = DefaultTrust.PIN
    ca_file: Path | None = None
    name_check: bool = False
    cert_expiry_warn_days: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactMeSettings:
    """Spec §4.1."""

    listen: str = "0.0.0.0"  # noqa: S104 - the server must reach the phone
    port: int = 8085
    contact_gap: float = 300.0
    allow_redirect: tuple[str, ...] = ()

    def redirect_allowed(self, host: str, port: int | None) -> bool:
        """Whether a contact-me may send the phone to `host`:`port` (spec §4.1 [B])."""
        host = _canonical_host(host)
        for target in self.allow_redirect:
            allowed_host, allowed_port = split_host_port(target)
            if _canonical_host(allowed_host) == host and allowed_port in (None, port):
                return True
        return False


def _canonical_host(host: str) -> str:
    host = host.strip().strip("[]").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


@dataclass(frozen=True, slots=True, kw_only=True)
class PollSettings:
    """Spec §4.2: DCMP polling; an empty url turns it off."""

    url: str = ""
    interval: float = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySettings:
    """Spec §3.1 [B]: m seconds, k per mille, cap seconds."""

    m: float = 10.0
    k: float = 2000.0
    cap: float = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutSettings:
    """Spec §3.1 [B], seconds."""

    connect: float = 10.0
    response: float = 30.0
    interaction: float = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolSettings:
    """Spec §2.4 and §5."""

    nonce_check: NonceCheck = NonceCheck.STRICT
    max_message: int = 50000
    max_body: int = 1048576


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeSettings:
    """Spec §3.5: debounce of local and inventory changes, seconds."""

    debounce: float = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PathSettings:
    """Where provd keeps things (spec §6.1, §8)."""

    state_dir: Path = Path("/var/lib/provd")
    secure_dir: Path = Path("/var/lib/provd/secure")
    files_dir: Path = Path("/var/lib/provd/files")
    staging_dir: Path = Path("/var/lib/provd/staging")
    runtime_dir: Path = Path("/run/provd")
    catalog: Path = Path("/usr/share/provd/items.toml")
    catalog_dropins: Path = Path("/etc/provd/items.d")
    apply_dir: Path = Path("/etc/provd/apply.d")


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlSettings:
    """The local control interface (`provctl` and the phone's other components)."""

    socket: Path = Path("/run/provd/control.sock")
    group: str = "provd"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSettings:
    """Spec §6.1 [B]: limits for deployed files, bytes."""

    max_size: int = 16 * 1024 * 1024
    # [G p.178] pictures up to 300 kB
    type_limits: Mapping[str, int] = field(default_factory=lambda: _frozen({"PIC": 300 * 1024}))
    quota: int = 64 * 1024 * 1024
    software_max_size: int = 512 * 1024 * 1024


#: Explicit identity settings → the item each one stands for (spec §3.2).
IDENTITY_SETTINGS = (
    "device-type",
    "related-device-type",
    "software-type",
    "related-software-type",
    "software-version",
    "related-software-version",
    "part-number",
    "e164",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSettings:
    """What the phone is and where it is (spec §3.2); empty means "not set here"."""

    interface: str = ""
    mac_addr: str = ""
    ip_address: str = ""
    device_type: str = ""
    related_device_type: str = ""
    software_type: str = ""
    related_software_type: str = ""
    software_version: str = ""
    related_software_version: str = ""
    part_number: str = ""
    e164: str = ""
    description_file: Path | None = Path("/etc/provd/device.toml")

    def identity(self) -> dict[str, str]:
        """The identity items set explicitly here, by item name."""
        values = {name: getattr(self, name.replace("-", "_")) for name in IDENTITY_SETTINGS}
        return {name: value for name, value in values.items() if value}


@dataclass(frozen=True, slots=True, kw_only=True)
class UiSettings:
    """The display and keypad for the Secure-Mode PIN prompt (spec §7.2), as `provd.ui` reads
    them (docs/ui-drivers.md): `[ui]` with the sub-tables `[ui.evdev]`, `[ui.display]` and
    `[ui.console]`."""

    driver: UiDriver = UiDriver.SOCKET
    timeout: float = 120.0  # 0: a prompt never times out
    evdev: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    display: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    console: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))

    def options(self) -> dict[str, Any]:
        """The driver's options for `provd.ui.make_driver` (snake_case keywords)."""
        options: dict[str, Any] = {}
        if self.driver is UiDriver.EVDEV:
            for key in ("name-match", "device"):
                if key in self.evdev:
                    options[key.replace("-", "_")] = self.evdev[key]
            if "keymap" in self.evdev:
                options["keymap"] = dict(self.evdev["keymap"])
            if "path" in self.display:
                options["display"] = self.display["path"]
        elif self.driver is UiDriver.CONSOLE and "tty" in self.console:
            options["tty"] = self.console["tty"]
        return options


@dataclass(frozen=True, slots=True, kw_only=True)
class HookSettings:
    """External commands: reboot (spec §6.2, §6.3), software installer (§6.2), apply hooks (§8)."""

    timeout: float = 30.0
    # The reboot itself is the privileged provd-reboot unit's (docs/privileged-steps.md):
    # provd holds no capability, so there is no reboot command to set here.
    installer_command: tuple[str, ...] = ("/usr/libexec/provd/provd-install-step",)


@dataclass(frozen=True, slots=True, kw_only=True)
class UdevRule:
    """Count devices of `subsystem` whose udev properties match every glob of `match` in the
    inventory item `item` (spec §3.5)."""

    item: str
    subsystem: str
    match: Mapping[str, str] = field(default_factory=lambda: _frozen({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class UdevSettings:
    """Hot-plug inventory (spec §3.5); no rules, no inventory changes."""

    subsystems: tuple[str, ...] = ()
    rules: tuple[UdevRule, ...] = ()

    def monitored_subsystems(self) -> tuple[str, ...]:
        """`subsystems`, or when empty the subsystems the rules name."""
        return self.subsystems or tuple(sorted({rule.subsystem for rule in self.rules}))


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemSettings:
    """Item policy that is the phone's, not the server's (spec §3.3)."""

    dhcp_locked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: LogLevel = LogLevel.INFO


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """All of provd's settings; `sources` names what was read, in order (not compared)."""

    server: ServerSettings = field(default_factory=ServerSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    contact_me: ContactMeSettings = field(default_factory=ContactMeSettings)
    poll: PollSettings = field(default_factory=PollSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    changes: ChangeSettings = field(default_factory=ChangeSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    files: FileSettings = field(default_factory=FileSettings)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    udev: UdevSettings = field(default_factory=UdevSettings)
    items: ItemSettings = field(default_factory=ItemSettings)
    log: LogSettings = field(default_factory=LogSettings)
    sources: tuple[str, ...] = field(default=(), compare=False)


#: Value checks beyond the type, by setting.
_CHECKS: dict[str, Check] = {
    "server.url": _server_url,
    "server.secure-port": _port,
    "tls.cert-expiry-warn-days": _range(0),
    "contact-me.listen": _ip,
    "contact-me.port": _listen_port,
    "contact-me.contact-gap": _range(0),
    "contact-me.allow-redirect": _redirect_targets,
    "poll.url": _poll_url,
    "poll.interval": _positive,
    "retry.m": _positive,
    "retry.k": _range(1000),
    "retry.cap": _positive,
    "timeouts.connect": _positive,
    "timeouts.response": _positive,
    "timeouts.interaction": _positive,
    "protocol.max-message": _range(1024),
    "protocol.max-body": _range(4096),
    "changes.debounce": _range(0),
    "files.max-size": _positive,
    "files.type-limits": _sizes,
    "files.quota": _positive,
    "files.software-max-size": _positive,
    "device.mac-addr": _mac_or_empty,
    "device.ip-address": _ip_or_empty,
    "device.e164": _e164_or_empty,
    "hooks.timeout": _positive,
    "hooks.reboot-command": _command,
    "hooks.installer-command": _command,
    "items.dhcp-locked": _item_names,
    "ui.timeout": _range(0),
    "ui.evdev": lambda table: _subtable(table, {"name-match": str, "device": str, "keymap": dict}),
    "ui.display": lambda table: _subtable(table, {"path": str}),
    "ui.console": lambda table: _subtable(table, {"tty": str}),
}

#: Paths that follow another path: unset, or relative, they lie under it.
_BASES: dict[str, str] = {
    "paths.secure-dir": "paths.state-dir",
    "paths.files-dir": "paths.state-dir",
    "paths.staging-dir": "paths.state-dir",
    "control.socket": "paths.runtime-dir",
}


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(mapping)


def _toml_key(name: str) -> str:
    return name.replace("_", "-")


#: group key → (attribute, dataclass), in declaration order.
_GROUPS: dict[str, tuple[str, type[Any]]] = {
    _toml_key(f.name): (f.name, typing.get_type_hints(Settings)[f.name])
    for f in fields(Settings)
    if f.name != "sources"
}


def _group_fields(cls: type[Any]) -> dict[str, tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return {_toml_key(f.name): (f.name, hints[f.name]) for f in fields(cls)}


_FIELDS = {group: _group_fields(cls) for group, (_, cls) in _GROUPS.items()}


def setting_keys() -> tuple[str, ...]:
    """Every setting as `group.key`, in declaration order."""
    return tuple(f"{group}.{key}" for group in _GROUPS for key in _FIELDS[group])


def to_tables(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings as TOML-shaped tables (paths as strings, None as ""), for check-config."""
    out: dict[str, dict[str, Any]] = {}
    for group, (attr, _) in _GROUPS.items():
        section = getattr(settings, attr)
        out[group] = {
            key: _plain(getattr(section, name)) for key, (name, _) in _FIELDS[group].items()
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


# --- loading ----------------------------------------------------------------------------------

#: Where a raw value came from: file (or "--set ..."), line.
_Origin = tuple[str, int | None]


@dataclass
class _Layers:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, _Origin] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def set(self, group: str, key: str, value: Any, origin: _Origin) -> None:
        table = self.values.setdefault(group, {})
        table[key] = _merged(table[key], value) if key in table else value
        self.origin[f"{group}.{key}"] = origin

    def problem(self, message: str, origin: _Origin | None, key: str | None = None) -> None:
        file, line = origin if origin else (None, None)
        self.problems.append(Problem(message, file=file, line=line, key=key))


def _merged(old: Any, new: Any) -> Any:
    """Tables merge key by key at every depth (`[ui.evdev]` in a drop-in keeps the file's
    other `[ui.evdev]` keys); anything else, lists included, is replaced."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: _merged(old[k], v) if k in old else v for k, v in new.items()}}
    return new


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
    layers = _Layers()
    if config_file is not None and not (missing_ok and not config_file.exists()):
        _read_file(layers, config_file)
    if dropin_dir is not None and dropin_dir.is_dir():
        for path in sorted(dropin_dir.glob("*.toml"), key=lambda p: p.name):
            if not path.name.startswith("."):  # editors' lock and backup files
                _read_file(layers, path)
    for arg in overrides:
        _apply_override(layers, arg)
    settings = _build(layers)
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


def _read_file(layers: _Layers, path: Path) -> None:
    name = str(path)
    layers.sources.append(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        layers.problem("no such settings file", (name, None))
        return
    except (OSError, UnicodeDecodeError) as exc:
        layers.problem(f"cannot read: {exc}", (name, None))
        return
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        line = int(found.group(1)) if found else None
        layers.problem(f"TOML syntax: {message}", (name, line))
        return
    lines = _key_lines(text)
    for group, table in data.items():
        where: _Origin = (name, lines.get(group))
        if group not in _GROUPS:
            layers.problem(_unknown("setting group", group, _GROUPS), where, f"[{group}]")
            continue
        if not isinstance(table, dict):
            layers.problem("must be a table of settings", where, group)
            continue
        for key, value in table.items():
            dotted = f"{group}.{key}"
            at: _Origin = (name, lines.get(dotted, lines.get(group)))
            if key not in _FIELDS[group]:
                layers.problem(_unknown("setting", key, _FIELDS[group]), at, dotted)
                continue
            layers.set(group, key, value, at)


def _apply_override(layers: _Layers, arg: str) -> None:
    origin: _Origin = (f"--set {arg}", None)
    if "--set" not in layers.sources:
        layers.sources.append("--set")
    dotted, sep, text = arg.partition("=")
    group, dot, key = dotted.strip().partition(".")
    if not sep or not dot:
        layers.problem("expected group.key=value, e.g. contact-me.port=18085", origin)
        return
    if group not in _GROUPS:
        layers.problem(_unknown("setting group", group, _GROUPS), origin)
        return
    if key not in _FIELDS[group]:
        layers.problem(_unknown("setting", key, _FIELDS[group]), origin)
        return
    layers.set(group, key, _override_value(text, _FIELDS[group][key][1]), origin)


def _override_value(text: str, hint: Any) -> Any:
    """A TOML value when `text` is one, else the string; shaped for string and list settings."""
    try:
        value: Any = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    if _is_stringish(hint) and not isinstance(value, str):
        return text  # `device.e164=4989700` is a string setting, not the integer
    if typing.get_origin(hint) is tuple and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _is_stringish(hint: Any) -> bool:
    if hint in (str, Path) or hint == (Path | None):
        return True
    return isinstance(hint, type) and issubclass(hint, StrEnum)


def _unknown(what: str, name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _key_lines(text: str) -> dict[str, int]:
    """`group` and `group.key` → first line (1-based) where the file sets them.

    A line scanner, not a parser: it runs after tomllib accepted the text, and only has to
    point a person at the right line. Multi-line strings are skipped.
    """
    lines: dict[str, int] = {}
    table = ""
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if line.count(in_string) % 2:
                in_string = None
            continue
        header = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.\-\s]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            table = re.sub(r"\s*\.\s*", ".", header.group(1))
            lines.setdefault(table, number)
            continue
        key = re.match(r"\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=(.*)$", line)
        if key:
            dotted = re.sub(r"\s*\.\s*", ".", key.group(1))
            full = f"{table}.{dotted}" if table else dotted
            lines.setdefault(full, number)
            if not table and "." in dotted:
                lines.setdefault(dotted.split(".")[0], number)
            for quote in ('"""', "'''"):
                if key.group(2).count(quote) % 2:
                    in_string = quote
    return lines


def _build(layers: _Layers) -> Settings:
    # The paths others rest on are settled first.
    keys = sorted(_DEFAULTS, key=lambda dotted: dotted not in _BASES.values())
    values: dict[str, Any] = {}
    for dotted in keys:
        default = _DEFAULTS[dotted]
        base = _BASES.get(dotted)
        raw = layers.values.get(dotted.partition(".")[0], {})
        key = dotted.partition(".")[2]
        # Unset, a path that follows its base moves with it: <state-dir>/secure.
        values[dotted] = values[base] / default.relative_to(_DEFAULTS[base]) if base else default
        if key not in raw:
            continue
        try:
            value = _convert(_HINTS[dotted], raw[key])
            if isinstance(value, Path) and not value.is_absolute():
                if base is None:
                    raise _Invalid(f"{str(value)!r} must be an absolute path")
                value = values[base] / value
            check = _CHECKS.get(dotted)
            values[dotted] = check(value) if check else value
        except _Invalid as exc:
            layers.problem(str(exc), layers.origin.get(dotted), dotted)
    groups = {
        attr: cls(**{name: values[f"{group}.{key}"] for key, (name, _) in _FIELDS[group].items()})
        for group, (attr, cls) in _GROUPS.items()
    }
    settings = Settings(**groups, sources=tuple(layers.sources))
    _cross_checks(settings, layers)
    return settings


def _default_of(cls: type[Any], name: str) -> Any:
    spec = next(f for f in fields(cls) if f.name == name)
    if spec.default is not MISSING:
        return spec.default
    assert spec.default_factory is not MISSING
    return spec.default_factory()


#: Every setting's default and type, by `group.key`.
_DEFAULTS = {
    f"{group}.{key}": _default_of(cls, name)
    for group, (_, cls) in _GROUPS.items()
    for key, (name, _) in _FIELDS[group].items()
}
_HINTS = {f"{group}.{key}": hint for group in _GROUPS for key, (_, hint) in _FIELDS[group].items()}


def _cross_checks(settings: Settings, layers: _Layers) -> None:
    if settings.tls.default_trust is DefaultTrust.CA and settings.tls.ca_file is None:
        origin = layers.origin.get("tls.default-trust")
        layers.problem("'ca' needs tls.ca-file (spec §7.4)", origin, "tls.default-trust")
    if settings.retry.cap < settings.retry.m:
        origin = layers.origin.get("retry.cap", layers.origin.get("retry.m"))
        layers.problem("cap must not be below m (spec §3.1)", origin, "retry.cap")


_SCALARS: dict[Any, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str,),
}
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _convert(hint: Any, value: Any) -> Any:
    """A raw TOML value → the dataclass field's type, or `_Invalid` saying what was expected."""
    if hint in _SCALARS:
        accepted = _SCALARS[hint]
        if isinstance(value, bool) != (hint is bool) or not isinstance(value, accepted):
            raise _Invalid(f"must be {_TYPE_NAMES[hint]}, not {_describe(value)}")
        return float(typing.cast(float, value)) if hint is float else value
    if hint is Path or hint == (Path | None):
        if not isinstance(value, str):
            raise _Invalid(f"must be a path (a string), not {_describe(value)}")
        if not value:
            if hint is Path:
                raise _Invalid("must not be empty")
            return None
        return Path(value)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        choices = [member.value for member in hint]
        if value not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}, not {value!r}")
        return hint(value)
    if hint is Any:
        return value
    if hint is UdevRule:
        return _udev_rule(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise _Invalid(f"must be a list, not {_describe(value)}")
        return tuple(_convert(args[0], element) for element in value)
    if origin is Mapping:
        if not isinstance(value, dict):
            raise _Invalid(f"must be a table, not {_describe(value)}")
        return types.MappingProxyType({str(k): _convert(args[1], v) for k, v in value.items()})
    raise AssertionError(f"no conversion for {hint!r}")


def _udev_rule(value: Any) -> UdevRule:
    if not isinstance(value, dict):
        raise _Invalid(f"a rule is a table {{item, subsystem, match}}, not {_describe(value)}")
    unknown = set(value) - {"item", "subsystem", "match"}
    if unknown or "item" not in value or "subsystem" not in value:
        raise _Invalid("a rule has keys item, subsystem and optionally match")
    match = _convert(Mapping[str, str], value.get("match", {}))
    return UdevRule(
        item=_convert(str, value["item"]), subsystem=_convert(str, value["subsystem"]), match=match
    )


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"
