"""provd.ui: the PIN prompt on a display and keypad, behind one small interface.

`provd.ui.base` holds the interface (`UiDriver`, `PinPrompt`, the result events, `Key`);
`make_driver` / `UiConfig` choose a driver: `console`, `evdev`, `socket`, `scripted`,
`none` (see `docs/ui-drivers.md`).
"""

from __future__ import annotations

from provd.ui.base import (
    Key,
    PinCancelled,
    PinEntered,
    PinPrompt,
    PinResult,
    PinTimedOut,
    ResultCallback,
    UiDriver,
    UiError,
)
from provd.ui.factory import DRIVER_NAMES, UiConfig, make_driver

__all__ = [
    "DRIVER_NAMES",
    "Key",
    "PinCancelled",
    "PinEntered",
    "PinPrompt",
    "PinResult",
    "PinTimedOut",
    "ResultCallback",
    "UiConfig",
    "UiDriver",
    "UiError",
    "make_driver",
]
