"""Choosing and configuring a UI driver: `make_driver(name, on_result, **options)`, and
the `[ui]` settings table read into `UiConfig` (`docs/ui-drivers.md`).

Settings (TOML, layered by the daemon like all settings)::

    [ui]
    driver = "evdev"            # console | evdev | socket | scripted | none
    timeout = 120               # seconds without a key before a prompt times out; 0: never
    [ui.evdev]
    name-match = "*Keypad*"     # glob on the input device's name
    device = "/dev/input/event3"  # optional: skip discovery
    keymap = { "0x160" = "ok", "KEY_DELETE" = "backspace", "KEY_ESC" = "ignore" }
    [ui.display]
    path = "/dev/lcd"           # a charlcd node, a FIFO or a file (evdev driver)
    [ui.console]
    tty = "/dev/ttyS0"          # optional: default stdin/stdout
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provd.ui.base import DEFAULT_TIMEOUT, PinPrompt, ResultCallback, UiDriver, UiError
from provd.ui.console import ConsoleDriver
from provd.ui.keypad import EvdevDriver
from provd.ui.prompting import Clock
from provd.ui.remote import SocketDriver
from provd.ui.scripted import NoneDriver, ScriptedDriver

DEFAULT_DRIVER = "socket"

_Maker = Callable[..., UiDriver]

# Each driver's options (snake_case; settings may spell them with dashes).
_DRIVERS: dict[str, tuple[_Maker, frozenset[str]]] = {
    "console": (ConsoleDriver, frozenset({"input_fd", "output_fd", "tty"})),
    "evdev": (
        EvdevDriver,
        frozenset({"device", "fd", "name_match", "keymap", "display", "grab", "devices"}),
    ),
    "socket": (SocketDriver, frozenset()),
    "scripted": (ScriptedDriver, frozenset({"script"})),
    "none": (NoneDriver, frozenset()),
}
DRIVER_NAMES: tuple[str, ...] = tuple(_DRIVERS)


def make_driver(
    name: str, on_result: ResultCallback, /, *, clock: Clock = time.monotonic, **options: Any
) -> UiDriver:
    """A driver by name (`DRIVER_NAMES`), reporting results to `on_result`.

    Options per driver: console `input_fd`, `output_fd`, `tty`; evdev `device`, `fd`,
    `name_match`, `keymap`, `display` (a path or a `TextDisplay`), `grab`, `devices`;
    scripted `script`. Raises `UiError` for an unknown driver or option, no device, or a
    bad keymap.
    """
    try:
        maker, allowed = _DRIVERS[name]
    except KeyError:
        known = ", ".join(DRIVER_NAMES)
        raise UiError(f"unknown UI driver {name!r} (known: {known})") from None
    given = {key.replace("-", "_"): value for key, value in options.items()}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise UiError(f"UI driver {name!r} takes no option {', '.join(unknown)}")
    return maker(on_result, clock=clock, **given)


@dataclass(frozen=True, slots=True, kw_only=True)
class UiConfig:
    """The `[ui]` settings table, checked."""

    driver: str = DEFAULT_DRIVER
    timeout: float | None = DEFAULT_TIMEOUT
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> UiConfig:
        """Read the `[ui]` table (nested dicts, as `tomllib` gives them)."""
        driver = str(table.get("driver", DEFAULT_DRIVER))
        if driver not in _DRIVERS:
            raise UiError(f"ui.driver: unknown driver {driver!r}")
        raw_timeout = table.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(raw_timeout, bool) or not isinstance(raw_timeout, int | float):
            raise UiError("ui.timeout: a number of seconds")
        if raw_timeout < 0:
            raise UiError("ui.timeout: must not be negative")
        options: dict[str, Any] = {}
        if driver == "evdev":
            evdev = _table(table, "evdev")
            for key in ("name-match", "device"):
                if key in evdev:
                    options[key.replace("-", "_")] = str(evdev[key])
            if "keymap" in evdev:
                options["keymap"] = dict(_table(evdev, "keymap", "ui.evdev."))
            display = _table(table, "display")
            if "path" in display:
                options["display"] = str(display["path"])
        elif driver == "console":
            console = _table(table, "console")
            if "tty" in console:
                options["tty"] = str(console["tty"])
        return cls(driver=driver, timeout=float(raw_timeout) or None, options=options)

    def make(self, on_result: ResultCallback, *, clock: Clock = time.monotonic) -> UiDriver:
        """The configured driver."""
        return make_driver(self.driver, on_result, clock=clock, **self.options)

    def prompt(self, *, title: str, **fields: Any) -> PinPrompt:
        """A `PinPrompt` with this configuration's timeout (`fields` as `PinPrompt`)."""
        return PinPrompt(title=title, timeout=self.timeout, **fields)


def _table(parent: Mapping[str, Any], key: str, prefix: str = "ui.") -> Mapping[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, Mapping):
        raise UiError(f"{prefix}{key}: a table")
    return value
