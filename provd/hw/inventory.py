"""Hot-plug inventory from udev: key modules, side cars, adaptors, headsets.

A pyudev netlink monitor's file descriptor sits in the daemon's event loop;
each readable event is matched against the inventory rules (settings) and
translated at this border into provd's own `HardwareEvent`, so nothing else
in provd sees a pyudev `Device` (STYLE.md). The daemon turns the counts into
inventory items and, after the debounce, an `inventory-changes` interaction
(spec §3.5).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryRule:
    """Devices of `subsystem` whose udev properties match every glob in
    `match` are counted in the inventory item `item` (e.g. `key-modules`)."""

    item: str
    subsystem: str
    match: Mapping[str, str] = field(default_factory=dict)

    def matches(self, subsystem: str, properties: Mapping[str, str]) -> bool:
        if subsystem != self.subsystem:
            return False
        return all(
            fnmatch.fnmatchcase(properties.get(key, ""), pattern)
            for key, pattern in self.match.items()
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareEvent:
    """A device that an inventory rule cares about came, went or changed."""

    action: str  # "add" | "remove" | "change" | "bind" | "unbind"
    item: str
    sys_path: str
    properties: Mapping[str, str]


class UdevDevice(Protocol):
    """What provd reads of a pyudev Device."""

    @property
    def action(self) -> str | None: ...

    @property
    def subsystem(self) -> str | None: ...

    @property
    def sys_path(self) -> str: ...

    @property
    def properties(self) -> Mapping[str, str]: ...


def translate(device: UdevDevice, rules: Sequence[InventoryRule]) -> list[HardwareEvent]:
    """The provd events for one udev device event (none when no rule matches)."""
    subsystem = device.subsystem or ""
    props = {str(k): str(v) for k, v in dict(device.properties).items()}
    return [
        HardwareEvent(
            action=device.action or "change",
            item=rule.item,
            sys_path=device.sys_path,
            properties=props,
        )
        for rule in rules
        if rule.matches(subsystem, props)
    ]


class InventoryMonitor:
    """Watches udev; `fileno()` goes in the event loop, `on_readable()` drains it.

    `present` tracks the matching devices per inventory item, seeded by
    `scan()` at start, so the item values are counts that survive nothing but
    the hardware itself.
    """

    def __init__(
        self,
        rules: Sequence[InventoryRule],
        *,
        monitor: Any = None,
        enumerate_devices: Callable[[str], Iterable[UdevDevice]] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        if monitor is None or enumerate_devices is None:
            # Imported only when there are inventory rules (none by default, issue 8).
            import pyudev  # noqa: PLC0415

            context = pyudev.Context()
            if monitor is None:
                monitor = pyudev.Monitor.from_netlink(context)
                for subsystem in sorted({rule.subsystem for rule in self.rules}):
                    monitor.filter_by(subsystem)
            if enumerate_devices is None:

                def enumerate_devices(subsystem: str) -> Iterable[UdevDevice]:
                    return context.list_devices(subsystem=subsystem)  # type: ignore[no-any-return]

        self._monitor = monitor
        self._enumerate = enumerate_devices
        self.present: dict[str, set[str]] = {rule.item: set() for rule in self.rules}

    def fileno(self) -> int:
        return int(self._monitor.fileno())

    def start(self) -> None:
        self._monitor.start()

    def scan(self) -> dict[str, int]:
        """Count what is plugged in now (at start-up)."""
        for rule in self.rules:
            for device in self._enumerate(rule.subsystem):
                for event in translate(device, (rule,)):
                    self.present[event.item].add(event.sys_path)
        return self.counts()

    def counts(self) -> dict[str, int]:
        return {item: len(paths) for item, paths in self.present.items()}

    def on_readable(self) -> list[HardwareEvent]:
        """Every pending udev event, translated; updates `present`."""
        events: list[HardwareEvent] = []
        while True:
            device = self._monitor.poll(timeout=0)
            if device is None:
                break
            for event in translate(device, self.rules):
                paths = self.present.setdefault(event.item, set())
                if event.action in ("remove", "unbind"):
                    paths.discard(event.sys_path)
                else:
                    paths.add(event.sys_path)
                events.append(event)
        if events:
            log.info("hardware changed: %s", ", ".join(f"{e.action} {e.item}" for e in events))
        return events
