"""The device description: what the phone is, and where it is on the network.

Identity items (`device-type`, `software-version`, `part-number`, ...) come
from a small TOML file that the phone image ships and that the firmware
install step rewrites (spec §6.2: after the reboot, `start-up` reports the new
`software-version`), overridden by explicit settings. The MAC and the current
address come from the configured network interface and are read again for
every interaction, so `contact-me-uri` follows the phone's address (spec §3.2).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import socket
import struct
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Identity items a device description may carry (spec §3.2).
IDENTITY_ITEMS = (
    "device-type",
    "related-device-type",
    "software-type",
    "related-software-type",
    "software-version",
    "related-software-version",
    "part-number",
)

_SIOCGIFADDR = 0x8915


@dataclass(frozen=True, slots=True)
class NetworkIdentity:
    """The phone's MAC (upper-case, colon separated, as [G p.35]) and address."""

    mac_addr: str | None
    address: str | None


def read_description(path: Path | None) -> dict[str, str]:
    """Identity items from the device description file; missing file → empty.

    A broken file is logged and ignored: provd reports the items it cannot
    deliver as `failed` rather than refusing to start.
    """
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        log.warning("device description %s unreadable: %s", path, exc)
        return {}
    return {name: str(data[name]) for name in IDENTITY_ITEMS if name in data}


def write_description(path: Path, values: Mapping[str, str]) -> None:
    """Write a device description (used by the lab, tests and install steps)."""
    lines = [f"{name} = {_toml_string(values[name])}" for name in IDENTITY_ITEMS if name in values]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalize_mac(raw: str) -> str | None:
    """`00:01:e3:25:ea:13` → `00:01:E3:25:EA:13`; None when not a MAC."""
    parts = raw.strip().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        return None
    try:
        bytes.fromhex("".join(parts))
    except ValueError:
        return None
    return ":".join(parts).upper()


def read_network(
    interface: str | None,
    *,
    mac_addr: str | None = None,
    address: str | None = None,
    sysfs: Path = Path("/sys/class/net"),
) -> NetworkIdentity:
    """MAC and address: explicit values win, else read from `interface`."""
    mac = normalize_mac(mac_addr) if mac_addr else None
    addr = address
    if interface:
        if mac is None:
            with contextlib.suppress(OSError):
                mac = normalize_mac((sysfs / interface / "address").read_text())
        if addr is None:
            addr = _ipv4_of(interface) or _ipv6_of(interface)
    return NetworkIdentity(mac_addr=mac, address=addr)


def _ipv4_of(interface: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(
                sock.fileno(), _SIOCGIFADDR, struct.pack("256s", interface.encode()[:15])
            )
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def _ipv6_of(interface: str, proc: Path = Path("/proc/net/if_inet6")) -> str | None:
    """The first global IPv6 address of `interface`."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == interface:
            addr = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            if addr.is_global or (addr.is_private and not addr.is_link_local):
                return str(addr)
    return None
