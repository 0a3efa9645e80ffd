"""Drivers that need no person: `scripted` (tests, CI demos) and `none` (no UI at all).

`ScriptedDriver` answers each prompt with the next entry of its script, typed as keys
through a real pipe: `show_prompt` writes the keys into the pipe, and the daemon's loop
reads them back through `on_readable` like keys from a keypad, so the code under test
runs exactly as with the `evdev` or `console` drivers. A script entry is

- a string: its characters typed, then OK (``"1234567"``);
- a sequence of `Key`s, typed as they are (``[Key.DIGIT_1, Key.BACKSPACE, Key.CANCEL]``);
- `CANCEL`: the user cancels;
- `NO_ANSWER`: nothing typed; the prompt times out (drive `tick` with the test's clock).

When the script runs out, prompts get no answer. What the driver was asked to show is
recorded (`prompts`, `messages`, `screens` with the masked field only) for assertions.

`NoneDriver` is for phones without display or keypad: every prompt is answered
`PinCancelled` at once (through the same pipe, on the next loop turn), so the pending
material stays and the PIN must come through the `socket` driver instead (spec §7.3:
cancel, then entry on request).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Iterable, Sequence

from provd.ui.base import Key, PinPrompt, ResultCallback, UiError
from provd.ui.entry import render_field
from provd.ui.prompting import Clock, PromptDriver

CANCEL: tuple[Key, ...] = (Key.CANCEL,)
NO_ANSWER: tuple[Key, ...] = ()

ScriptEntry = str | Sequence[Key]

_KEYS = list(Key)  # one byte per key on the pipe: its position here


def keys_for(entry: ScriptEntry) -> tuple[Key, ...]:
    """The keys one script entry types (see the module docstring)."""
    if isinstance(entry, str):
        keys = []
        for char in entry:
            try:
                key = Key(char)
            except ValueError:
                # Says where, not what: a script may hold a real test PIN.
                raise UiError("a scripted PIN may hold only digits, '*' and '#'") from None
            keys.append(key)
        return (*keys, Key.OK)
    return tuple(Key(key) for key in entry)


class ScriptedDriver(PromptDriver):
    """Types the script's answers through a pipe; see the module docstring."""

    name = "scripted"

    def __init__(
        self,
        on_result: ResultCallback,
        script: Iterable[ScriptEntry] = (),
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(on_result, clock=clock)
        self._script: deque[tuple[Key, ...]] = deque(keys_for(entry) for entry in script)
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._read_fd: int | None = read_fd
        self._write_fd: int | None = write_fd
        self.prompts: list[PinPrompt] = []
        self.messages: list[str] = []
        self.screens: list[str] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(remaining={len(self._script)})"

    @property
    def remaining(self) -> int:
        """Script entries not used yet."""
        return len(self._script)

    def add(self, *entries: ScriptEntry) -> None:
        """Append to the script."""
        self._script.extend(keys_for(entry) for entry in entries)

    def feed(self, keys: Iterable[Key]) -> None:
        """Type `keys` now (into the pipe), outside the script."""
        data = bytes(_KEYS.index(Key(key)) for key in keys)
        if data and self._write_fd is not None:
            os.write(self._write_fd, data)

    def filenos(self) -> tuple[int, ...]:
        return () if self._read_fd is None else (self._read_fd,)

    def on_readable(self, fd: int) -> None:
        if fd != self._read_fd:
            return
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        self.press_keys(_KEYS[byte] for byte in data if byte < len(_KEYS))

    def close(self) -> None:
        super().close()
        for fd in (self._read_fd, self._write_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._write_fd = None

    def _next_answer(self) -> tuple[Key, ...]:
        return self._script.popleft() if self._script else NO_ANSWER

    def _draw_prompt(self, prompt: PinPrompt, masked: str) -> None:
        self.prompts.append(prompt)
        self._draw_field(prompt, masked)
        self.feed(self._next_answer())

    def _draw_field(self, prompt: PinPrompt, masked: str) -> None:
        self.screens.append(render_field(masked, prompt.attempts_left))

    def _draw_message(self, text: str) -> None:
        self.messages.append(text)


class NoneDriver(ScriptedDriver):
    """No display, no keypad: every prompt is cancelled on the next loop turn."""

    name = "none"

    def __init__(self, on_result: ResultCallback, *, clock: Clock = time.monotonic) -> None:
        super().__init__(on_result, clock=clock)

    def _next_answer(self) -> tuple[Key, ...]:
        return CANCEL
