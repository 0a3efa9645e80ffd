"""The one small interface between the daemon and whatever asks the user for the PIN.

Spec §7.3 step 3: in the PIN variant of the Secure Mode bootstrap the phone asks its user
for the PIN on its own display and keypad, telling how many attempts are left; the user
may cancel (the prompt comes back later), and a prompt nobody answers times out.

A driver fits the daemon's single `selectors` loop (STYLE.md): it exposes the file
descriptors to watch (`filenos()`), the loop calls `on_readable(fd)` when one is readable
and `tick(now)` at `next_deadline()`. The driver reports the outcome of a prompt through
the callback it was made with, as one of provd's own events: `PinEntered`, `PinCancelled`
or `PinTimedOut`. Results are delivered only from `on_readable`, `tick` or (the socket
driver) its `answer` handler, never from inside `show_prompt`, so the daemon is never
re-entered while it is still showing a prompt.

The PIN is a secret (spec §7.2: password + TAN): it is never logged, never put into an
exception's text, and `repr(PinEntered(...))` redacts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

DEFAULT_TIMEOUT = 120.0
"""Seconds a prompt waits for the next key before it times out (setting `ui.timeout`)."""

DEFAULT_MAX_LENGTH = 32
"""Longest PIN the entry field takes: the password part and the 3-character TAN (spec §7.2)."""


class UiError(Exception):
    """A UI driver cannot work (no device, the device went away, bad settings).

    The message names devices, paths and settings, never a key the user typed.
    """


class Key(StrEnum):
    """provd's own keys; every driver translates its input into these."""

    DIGIT_0 = "0"
    DIGIT_1 = "1"
    DIGIT_2 = "2"
    DIGIT_3 = "3"
    DIGIT_4 = "4"
    DIGIT_5 = "5"
    DIGIT_6 = "6"
    DIGIT_7 = "7"
    DIGIT_8 = "8"
    DIGIT_9 = "9"
    STAR = "*"
    HASH = "#"
    BACKSPACE = "backspace"
    OK = "ok"
    CANCEL = "cancel"

    @property
    def char(self) -> str | None:
        """The character this key types into the PIN, or None for a control key."""
        return self.value if len(self.value) == 1 else None

    @classmethod
    def from_name(cls, name: str) -> Key:
        """The key called `name` in settings: a digit, `*`, `#`, or one of `star`, `hash`,
        `backspace`, `ok` (alias `enter`), `cancel` (alias `esc`); case-insensitive."""
        wanted = _KEY_ALIASES.get(name.strip().lower(), name.strip().lower())
        try:
            return cls(wanted)
        except ValueError:
            raise UiError(f"unknown key name {name!r}") from None


_KEY_ALIASES = {"star": "*", "hash": "#", "pound": "#", "enter": "ok", "esc": "cancel"}

DIGIT_KEYS: tuple[Key, ...] = tuple(Key(str(d)) for d in range(10))


@dataclass(frozen=True, slots=True, kw_only=True)
class PinPrompt:
    """What the daemon asks the user: `title` and `message` (plain text), the attempts
    left (spec §7.3: "attempts left: n"; None when not to be shown), the length limits of
    the entry field, and the inactivity timeout in seconds (None: wait for ever)."""

    title: str
    message: str = ""
    attempts_left: int | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    min_length: int = 1
    timeout: float | None = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_length < 1 or not 1 <= self.min_length <= self.max_length:
            raise ValueError("PinPrompt needs 1 <= min_length <= max_length")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("PinPrompt.timeout must be positive or None")
        if self.attempts_left is not None and self.attempts_left < 0:
            raise ValueError("PinPrompt.attempts_left must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class PinEntered:
    """The user typed a PIN and confirmed it. `repr` and `str` never show it."""

    pin: str = field(repr=False)

    def __repr__(self) -> str:
        return "PinEntered(pin=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, kw_only=True)
class PinCancelled:
    """The user cancelled (or no UI can ask): the prompt comes back later (spec §7.3)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PinTimedOut:
    """Nobody answered within the prompt's timeout; like a cancel, it uses no attempt."""


PinResult = PinEntered | PinCancelled | PinTimedOut
ResultCallback = Callable[[PinResult], None]


@runtime_checkable
class UiDriver(Protocol):
    """What the daemon needs of a display/keypad driver.

    Wiring, in the daemon's loop::

        for fd in driver.filenos():
            loop.add_reader(fd, functools.partial(driver.on_readable, fd))
        # and after every turn, or on a timer at driver.next_deadline():
        driver.tick(loop.clock())

    `on_readable` raises `UiError` when its input is gone for good (a keypad unplugged, the
    terminal hung up): the daemon then removes the driver's fds and calls `close()`. A
    prompt pending at that moment has already been answered `PinCancelled`.
    """

    name: str

    def filenos(self) -> tuple[int, ...]:
        """The file descriptors to watch for reading (may be empty)."""
        ...

    def show_prompt(self, prompt: PinPrompt) -> None:
        """Ask for a PIN, replacing any prompt still pending (which then gets no result)."""
        ...

    def show_message(self, text: str) -> None:
        """Show a line of text (e.g. "Wrong PIN", "Secure Mode active")."""
        ...

    def withdraw(self) -> None:
        """Take the pending prompt away without a result (the daemon no longer needs it)."""
        ...

    def on_readable(self, fd: int) -> None:
        """Read what `fd` has; may deliver a result through the callback."""
        ...

    def tick(self, now: float) -> None:
        """Time out the pending prompt if its deadline is at or before `now`."""
        ...

    def next_deadline(self) -> float | None:
        """When the pending prompt times out (the driver's clock), or None."""
        ...

    @property
    def prompting(self) -> bool:
        """Whether a prompt is pending."""
        ...

    def close(self) -> None:
        """Release the driver's devices and file descriptors; restores terminals."""
        ...
