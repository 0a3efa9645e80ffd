"""What provd's settings are: one frozen dataclass per `[group]`, their enums, and `Settings`.

The defaults written here are the first layer (`provd.service.settings` describes the
layering); `provd.service.settings_values` checks a value from the later layers and
`provd.service.settings_loader` builds a `Settings` from them.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: Spec §1: Default Mode port and the path real servers use [G p.12; F].
DEFAULT_SERVER_PORT = 18443
DEFAULT_SERVER_PATH = "/DeploymentService/LoginService"


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(mapping)


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

    # The monitor listens to the subsystems the rules name (provd.hw.inventory).
    rules: tuple[UdevRule, ...] = ()


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
