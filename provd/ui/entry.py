"""The PIN entry field every driver shares: a pure editor, and how it is drawn masked.

`PinEntry` takes provd `Key`s: characters append up to the prompt's `max_length`,
BACKSPACE deletes the last one, OK submits once `min_length` (at least one) characters
are in, CANCEL cancels. It knows nothing of devices or time. What is drawn is only ever
the mask (`****`): the typed characters never reach a display, a terminal or a log
(spec §7.2: the PIN is the password and the TAN).
"""

from __future__ import annotations

from enum import Enum

from provd.ui.base import DEFAULT_MAX_LENGTH, Key, PinPrompt

MASK = "*"


class EntryOutcome(Enum):
    """What one key did to the entry."""

    UNCHANGED = "unchanged"  # nothing (full, empty, or OK before min_length)
    EDITED = "edited"  # a character added or deleted: redraw
    SUBMITTED = "submitted"  # OK with enough characters: `take()` the PIN
    CANCELLED = "cancelled"


class PinEntry:
    """The characters typed so far; `repr` shows only how many."""

    __slots__ = ("_chars", "max_length", "min_length")

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH, min_length: int = 1) -> None:
        if max_length < 1 or not 1 <= min_length <= max_length:
            raise ValueError("PinEntry needs 1 <= min_length <= max_length")
        self.max_length = max_length
        self.min_length = min_length
        # A bytearray can be overwritten when done; a str could not.
        self._chars = bytearray()

    @classmethod
    def for_prompt(cls, prompt: PinPrompt) -> PinEntry:
        return cls(max_length=prompt.max_length, min_length=prompt.min_length)

    def __repr__(self) -> str:
        return f"PinEntry(length={len(self._chars)}, max_length={self.max_length})"

    def __len__(self) -> int:
        return len(self._chars)

    def press(self, key: Key) -> EntryOutcome:
        """Apply one key."""
        char = key.char
        if char is not None:
            if len(self._chars) >= self.max_length:
                return EntryOutcome.UNCHANGED
            self._chars.append(ord(char))
            return EntryOutcome.EDITED
        if key is Key.BACKSPACE:
            if not self._chars:
                return EntryOutcome.UNCHANGED
            self._chars[-1] = 0
            del self._chars[-1]
            return EntryOutcome.EDITED
        if key is Key.OK:
            if len(self._chars) < self.min_length:
                return EntryOutcome.UNCHANGED
            return EntryOutcome.SUBMITTED
        return EntryOutcome.CANCELLED

    def masked(self) -> str:
        """One mask character per typed character, never the characters."""
        return MASK * len(self._chars)

    def take(self) -> str:
        """The PIN typed so far, clearing the entry."""
        pin = self._chars.decode("ascii")
        self.clear()
        return pin

    def clear(self) -> None:
        """Forget what was typed (overwriting it first)."""
        self._chars[:] = bytes(len(self._chars))
        self._chars.clear()


def render_field(masked: str, attempts_left: int | None) -> str:
    """The entry line: ``PIN: ****   (attempts left: 2)`` (spec §7.3)."""
    field = f"PIN: {masked}"
    if attempts_left is not None:
        field += f"   (attempts left: {attempts_left})"
    return field


def render_lines(prompt: PinPrompt, masked: str) -> list[str]:
    """The prompt as short lines for a small character display: the title, the message
    (if any), the masked field and the attempts left (spec §7.3)."""
    lines = [prompt.title]
    if prompt.message:
        lines.append(prompt.message)
    lines.append(f"PIN: {masked}")
    if prompt.attempts_left is not None:
        lines.append(f"attempts left: {prompt.attempts_left}")
    return lines
