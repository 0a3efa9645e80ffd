"""Inventory from udev (spec §3.5): rules, the start-up scan, hot-plug events.

This kernel has no udevd to send events, so the monitor is the one fake here, at the
hardware border: a real socket pair gives it the file descriptor the event loop waits
on, and it hands out the devices a test queues, as pyudev's `Monitor.poll` would.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from provd.hw.inventory import InventoryMonitor, InventoryRule, translate

KEY_MODULE = InventoryRule(item="key-modules", subsystem="usb", match={"ID_MODEL": "KeyModule*"})
HEADSET = InventoryRule(item="headset", subsystem="sound", match={"ID_BUS": "usb"})


@dataclass
class Device:
    sys_path: str
    subsystem: str | None
    properties: Mapping[str, str] = field(default_factory=dict)
    action: str | None = None


class Monitor:
    """pyudev.Monitor's surface over a real descriptor: readable while devices wait."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._queue: list[Device] = []
        self.started = False

    def fileno(self) -> int:
        return self._r.fileno()

    def start(self) -> None:
        self.started = True

    def send(self, device: Device) -> None:
        self._queue.append(device)
        self._w.send(b"!")

    def poll(self, timeout: float = 0) -> Device | None:
        if not self._queue:
            return None
        self._r.recv(1)
        return self._queue.pop(0)

    def close(self) -> None:
        self._r.close()
        self._w.close()


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    made = Monitor()
    yield made
    made.close()


def key_module(n: int, action: str | None = None) -> Device:
    return Device(f"/sys/devices/usb1/1-{n}", "usb", {"ID_MODEL": f"KeyModule{n}"}, action)


def test_a_rule_matches_its_subsystem_and_every_glob() -> None:
    assert KEY_MODULE.matches("usb", {"ID_MODEL": "KeyModule16", "OTHER": "x"})
    assert not KEY_MODULE.matches("usb", {"ID_MODEL": "Mouse"})
    assert not KEY_MODULE.matches("usb", {})
    assert not KEY_MODULE.matches("sound", {"ID_MODEL": "KeyModule16"})


def test_translate_gives_one_event_per_matching_rule_and_none_otherwise() -> None:
    (event,) = translate(key_module(1, "add"), [KEY_MODULE, HEADSET])
    assert (event.action, event.item, event.sys_path) == (
        "add",
        "key-modules",
        "/sys/devices/usb1/1-1",
    )
    assert translate(Device("/sys/x", "usb", {"ID_MODEL": "Mouse"}, "add"), [KEY_MODULE]) == []
    assert translate(Device("/sys/x", None, {}, None), [KEY_MODULE]) == []


def test_scan_counts_what_is_plugged_in_at_start(monitor: Monitor) -> None:
    plugged = {
        "usb": [key_module(1), key_module(2), Device("/sys/m", "usb", {"ID_MODEL": "Mouse"})]
    }

    def enumerate_devices(subsystem: str) -> Iterable[Device]:
        return plugged.get(subsystem, [])

    inventory = InventoryMonitor(
        [KEY_MODULE, HEADSET], monitor=monitor, enumerate_devices=enumerate_devices
    )

    assert inventory.scan() == {"key-modules": 2, "headset": 0}


def test_hot_plug_events_change_the_counts_and_a_device_counts_once(monitor: Monitor) -> None:
    inventory = InventoryMonitor([KEY_MODULE], monitor=monitor, enumerate_devices=lambda s: [])
    inventory.start()
    assert monitor.started

    for device in (key_module(1, "add"), key_module(2, "add"), key_module(1, "change")):
        monitor.send(device)
    events = inventory.on_readable()
    assert [(e.action, e.sys_path[-3:]) for e in events] == [
        ("add", "1-1"),
        ("add", "1-2"),
        ("change", "1-1"),
    ]
    assert inventory.counts() == {"key-modules": 2}

    monitor.send(key_module(2, "remove"))
    monitor.send(Device("/sys/m", "usb", {"ID_MODEL": "Mouse"}, "add"))
    assert [e.action for e in inventory.on_readable()] == ["remove"]
    assert inventory.counts() == {"key-modules": 1}
    assert inventory.on_readable() == []  # drained: nothing waits on the descriptor


def test_the_descriptor_in_the_loop_is_the_monitor_s(monitor: Monitor) -> None:
    inventory = InventoryMonitor([KEY_MODULE], monitor=monitor, enumerate_devices=lambda s: [])
    assert inventory.fileno() == monitor.fileno()
