"""Hot-plug events for the daemon's udev monitor, in a container that runs no udevd.

`send_udev_event` sends the message systemd-udevd would send (libudev's monitor header, then
the device's properties) on udev's netlink multicast group, through the real netlink
socket, so the daemon's pyudev monitor receives it on its file descriptor like any other
event: a fake at the hardware border, backed by a real file descriptor (STYLE.md).
"""

from __future__ import annotations

import socket
import struct


def _murmur2(data: bytes, seed: int = 0) -> int:
    """MurmurHash2, as libudev hashes a subsystem name for its socket filter."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (seed ^ len(data)) & mask
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * m) & mask
        k = ((k ^ (k >> 24)) * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & mask
    h = ((h ^ (h >> 13)) * m) & mask
    return h ^ (h >> 15)


_NETLINK_KOBJECT_UEVENT = 15
_UDEV_GROUP = 2
_UDEV_MAGIC = 0xFEEDCAFE


def send_udev_event(action: str, subsystem: str, devpath: str, seqnum: int, **props: str) -> None:
    """Announce a device on udev's netlink multicast group, as systemd-udevd does.

    This container runs no udevd, so no hot-plug event ever reaches a udev monitor; this
    sends the message udevd would send (libudev's monitor header, then the properties),
    through the real netlink socket, so the daemon's pyudev monitor receives it on its
    file descriptor like any other. Needs CAP_NET_ADMIN (root).
    """
    fields = {"ACTION": action, "DEVPATH": devpath, "SUBSYSTEM": subsystem, "SEQNUM": str(seqnum)}
    fields.update(props)
    body = b"".join(f"{k}={v}".encode() + b"\0" for k, v in fields.items())
    header = (
        b"libudev\0"
        + struct.pack(">I", _UDEV_MAGIC)
        + struct.pack("=III", 40, 40, len(body))  # header size, properties offset and length
        + struct.pack(">IIII", _murmur2(subsystem.encode()), 0, 0, 0)  # subsystem hash, ...
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_KOBJECT_UEVENT) as sock:
        sock.bind((0, 0))
        sock.sendto(header + body, (0, _UDEV_GROUP))


def udev_events_possible() -> str | None:
    """Why a synthesized udev event cannot reach a monitor here, or None."""
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by("provdprobe")
        monitor.start()
        send_udev_event("add", "provdprobe", "/devices/virtual/provdprobe/p0", 1)
        device = monitor.poll(timeout=2)
    except (OSError, ImportError) as exc:
        return f"udev netlink not usable here: {exc}"
    if device is None:
        return "a udev netlink message sent here does not reach a monitor"
    return None
