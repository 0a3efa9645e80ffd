"""The `evdev` driver: a keypad that is a Linux input device, and a text display with it.

The keypad is found with pyudev: an input device node (`/dev/input/eventN`) whose udev
properties say `ID_INPUT_KEY=1` and whose name (the `NAME` property udev puts on the
parent `inputN` device, or the `name` attribute) matches a settable glob
(`ui.evdev.name-match`). Its node yields `struct input_event` records::

    struct input_event {
        struct timeval time;   /* two C longs: seconds, microseconds */
        __u16 type;            /* EV_KEY = 1 */
        __u16 code;            /* KEY_0 = 11, KEY_KP0 = 82, KEY_ENTER = 28, ... */
        __s32 value;           /* 0 release, 1 press, 2 autorepeat */
    };

read here with `struct.Struct("@llHHi")`: 24 bytes on 64-bit Linux. On 32-bit Linux the
kernel keeps this 16-byte layout even for programs built with a 64-bit `time_t` (it then
declares the two fields `__kernel_ulong_t`), so `@llHHi` still matches; only the time
fields would read negative after 2038, and provd ignores them.

Only presses (value 1) of keys in the keymap count. Autorepeats (value 2) are ignored on
purpose: a held digit must not type itself several times into a PIN the user cannot see.
While a prompt is pending the device is grabbed (`EVIOCGRAB`) so the digits reach no
other reader (the phone's dialer, a console).
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import logging
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import pyudev

from provd.ui.base import Key, PinPrompt, PinResult, ResultCallback, UiError
from provd.ui.display import TextDisplay
from provd.ui.entry import render_lines
from provd.ui.prompting import Clock, PromptDriver

log = logging.getLogger(__name__)

INPUT_EVENT = struct.Struct("@llHHi")
"""`struct input_event` in the machine's native layout (see the module docstring)."""

EV_KEY = 0x01
KEY_RELEASE, KEY_PRESS, KEY_REPEAT = 0, 1, 2
EVIOCGRAB = 0x40044590  # _IOW('E', 0x90, int), linux/input.h

#: Key codes of linux/input-event-codes.h that settings may name instead of a number.
KEY_CODES: Mapping[str, int] = MappingProxyType(
    {
        "KEY_ESC": 1,
        **{f"KEY_{d}": 2 + (d - 1) % 10 for d in range(10)},  # KEY_1 = 2 ... KEY_0 = 11
        "KEY_BACKSPACE": 14,
        "KEY_ENTER": 28,
        "KEY_KPASTERISK": 55,
        **{f"KEY_KP{d}": code for d, code in enumerate((82, 79, 80, 81, 75, 76, 77, 71, 72, 73))},
        "KEY_KPENTER": 96,
        "KEY_DELETE": 111,
        "KEY_BACK": 158,
        "KEY_EXIT": 174,
        "KEY_CANCEL": 0xDF,
        "KEY_OK": 0x160,
        "KEY_CLEAR": 0x163,
        **{f"KEY_NUMERIC_{d}": 0x200 + d for d in range(10)},
        "KEY_NUMERIC_STAR": 0x20A,
        "KEY_NUMERIC_POUND": 0x20B,
    }
)

_DEFAULT_NAMES: dict[str, Key] = {
    **{f"KEY_{d}": Key(str(d)) for d in range(10)},
    **{f"KEY_KP{d}": Key(str(d)) for d in range(10)},
    # Phone keypads report KEY_NUMERIC_* ("used by phones, remote controls", input-event-codes.h).
    **{f"KEY_NUMERIC_{d}": Key(str(d)) for d in range(10)},
    "KEY_NUMERIC_STAR": Key.STAR,
    "KEY_NUMERIC_POUND": Key.HASH,
    "KEY_KPASTERISK": Key.STAR,
    "KEY_ENTER": Key.OK,
    "KEY_KPENTER": Key.OK,
    "KEY_OK": Key.OK,
    "KEY_BACKSPACE": Key.BACKSPACE,
    "KEY_ESC": Key.CANCEL,
    "KEY_CANCEL": Key.CANCEL,
}

DEFAULT_KEYMAP: Mapping[int, Key] = MappingProxyType(
    {KEY_CODES[name]: key for name, key in _DEFAULT_NAMES.items()}
)
"""Key code -> provd key: main-row and keypad digits, Enter/OK, Backspace, Esc/Cancel."""

_UNMAP = {"", "none", "ignore"}


def parse_keymap(
    overrides: Mapping[Any, Any] | None, *, base: Mapping[int, Key] = DEFAULT_KEYMAP
) -> dict[int, Key]:
    """`base` with the settings' `ui.evdev.keymap` applied: key code -> key name.

    A code is a number (`28`, `"28"`, `"0x160"`) or a `KEY_*` name of `KEY_CODES`; a key
    name is one `Key.from_name` takes, or `"ignore"` to drop the code from the map.
    """
    keymap = dict(base)
    for raw_code, raw_name in (overrides or {}).items():
        code = _parse_code(raw_code)
        name = str(raw_name)
        if name.strip().lower() in _UNMAP:
            keymap.pop(code, None)
        else:
            keymap[code] = Key.from_name(name)
    return keymap


def _parse_code(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        code = raw
    else:
        text = str(raw).strip()
        if text.upper() in KEY_CODES:
            return KEY_CODES[text.upper()]
        try:
            code = int(text, 0)
        except ValueError:
            raise UiError(f"ui.evdev.keymap: unknown key code {text!r}") from None
    if not 0 <= code <= 0x2FF:  # KEY_MAX
        raise UiError(f"ui.evdev.keymap: key code {code} out of range")
    return code


@dataclass(frozen=True, slots=True)
class InputEvent:
    """One `struct input_event`."""

    sec: int
    usec: int
    type: int
    code: int
    value: int


class InputEventReader:
    """Splits bytes into `InputEvent`s, keeping a partial record for the next read."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[InputEvent]:
        self._buffer += data
        whole = len(self._buffer) - len(self._buffer) % INPUT_EVENT.size
        events = [InputEvent(*fields) for fields in INPUT_EVENT.iter_unpack(self._buffer[:whole])]
        del self._buffer[:whole]
        return events

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record waiting for the rest."""
        return len(self._buffer)


# --------------------------------------------------------------------------- discovery


class KeypadDevice(Protocol):
    """What provd reads of a pyudev `Device` of subsystem `input`."""

    @property
    def device_node(self) -> str | None: ...

    @property
    def properties(self) -> Mapping[str, str]: ...

    @property
    def parent(self) -> KeypadDevice | None: ...


def device_name(device: KeypadDevice) -> str:
    """The input device's name: udev's `NAME` property (kept on the parent `inputN`
    device, with quotes), else the parent's `name` sysfs attribute."""
    for candidate in (device, device.parent):
        if candidate is None:
            continue
        name = candidate.properties.get("NAME")
        if name:
            return str(name).strip().strip('"')
    attributes: Any = getattr(device.parent, "attributes", None)
    if attributes is not None:
        try:
            return str(attributes.asstring("name")).strip()
        except (KeyError, AttributeError, UnicodeDecodeError):
            pass
    return ""


def find_keypad(devices: Iterable[KeypadDevice], name_match: str = "*") -> str | None:
    """The device node of the first keypad among `devices`: an `eventN` node with
    `ID_INPUT_KEY=1` whose name matches the glob `name_match` (case-sensitive).
    Nodes are compared in numeric order, so the choice is the same at every start."""
    found: list[tuple[int, str]] = []
    for device in devices:
        node = device.device_node
        if not node or not node.rsplit("/", 1)[-1].startswith("event"):
            continue
        if device.properties.get("ID_INPUT_KEY") != "1":
            continue
        if not fnmatch.fnmatchcase(device_name(device), name_match):
            continue
        number = re.search(r"(\d+)$", node)
        found.append((int(number.group(1)) if number else 0, node))
    return min(found)[1] if found else None


def udev_input_devices() -> Iterable[KeypadDevice]:
    """The input devices udev knows of now (pyudev's objects stay inside this module)."""
    try:
        context = pyudev.Context()
        return list(context.list_devices(subsystem="input"))
    except OSError as exc:  # no udev database (a container, a chroot)
        raise UiError(f"cannot list input devices: {exc}") from None


# --------------------------------------------------------------------------- the driver


class EvdevDriver(PromptDriver):
    """Keys from an evdev node (or any fd carrying `input_event`s), screens to a
    `TextDisplay` (optional)."""

    name = "evdev"

    def __init__(
        self,
        on_result: ResultCallback,
        *,
        device: str | None = None,
        fd: int | None = None,
        name_match: str = "*",
        keymap: Mapping[Any, Any] | None = None,
        display: TextDisplay | str | None = None,
        grab: bool = True,
        devices: Callable[[], Iterable[KeypadDevice]] = udev_input_devices,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(on_result, clock=clock)
        self.keymap = parse_keymap(keymap)
        self.display = TextDisplay(display) if isinstance(display, str) else display
        self._grab = grab
        self._grabbed = False
        self._reader = InputEventReader()
        self._owns_fd = fd is None
        if fd is None:
            if device is None:
                device = find_keypad(devices(), name_match)
                if device is None:
                    raise UiError(f"no keypad (ID_INPUT_KEY=1, name matching {name_match!r})")
            try:
                fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                raise UiError(f"cannot open keypad {device}: {exc.strerror}") from None
        self.device = device
        self._fd: int | None = fd
        log.info("keypad: %s", device or f"fd {fd}")

    def __repr__(self) -> str:
        return f"EvdevDriver(device={self.device!r}, fd={self._fd})"

    def filenos(self) -> tuple[int, ...]:
        return () if self._fd is None else (self._fd,)

    def on_readable(self, fd: int) -> None:
        if fd != self._fd:
            return
        try:
            data = os.read(fd, INPUT_EVENT.size * 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ENODEV: unplugged
            self._lost(f"keypad read failed: {exc.strerror}")
        if not data:
            self._lost("keypad closed")
        self.press_keys(self.keys_of(self._reader.feed(data)))

    def keys_of(self, events: Iterable[InputEvent]) -> list[Key]:
        """The provd keys among `events`: presses of mapped keys. EV_SYN, EV_MSC scan
        codes, releases and autorepeats are no keys."""
        return [
            self.keymap[event.code]
            for event in events
            if event.type == EV_KEY and event.value == KEY_PRESS and event.code in self.keymap
        ]

    def close(self) -> None:
        super().close()
        if self._fd is not None and self._owns_fd:
            os.close(self._fd)
        self._fd = None

    # ------------------------------------------------------------------ drawing

    def _draw_prompt(self, prompt: PinPrompt, masked: str) -> None:
        self._set_grab(True)
        if self.display is not None:
            self.display.show(render_lines(prompt, masked))

    def _draw_field(self, prompt: PinPrompt, masked: str) -> None:
        if self.display is not None:
            self.display.show(render_lines(prompt, masked))

    def _draw_message(self, text: str) -> None:
        if self.display is not None:
            self.display.show([text])

    def _prompt_closed(self, result: PinResult | None) -> None:
        self._set_grab(False)
        if self.display is not None:
            self.display.show([])

    def _set_grab(self, on: bool) -> None:
        if not self._grab or self._fd is None or on == self._grabbed:
            return
        self._grabbed = on
        try:
            fcntl.ioctl(self._fd, EVIOCGRAB, 1 if on else 0)
        except OSError as exc:
            # Not an evdev node (a pipe in tests: ENOTTY). EBUSY: another process holds the
            # grab, so the digits may reach it too; worth a warning.
            if exc.errno not in (errno.ENOTTY, errno.EINVAL):
                log.warning("keypad %s: grab failed: %s", self.device, exc.strerror)
