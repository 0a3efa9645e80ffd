"""The `console` driver: the PIN prompt on a terminal (the demo; a serial console during
bring-up).

While a prompt is pending the input terminal is switched to a cbreak-like mode with
`termios`: no echo (the digits never appear), no line buffering, and no signal keys, so
Ctrl-C arrives as a byte and cancels the prompt instead of killing the daemon. The saved
mode is restored when the prompt ends, is withdrawn, or the driver closes. Pending input
typed before the prompt is discarded when the mode is set (`TCSAFLUSH`): nothing typed
ahead may end up in a PIN.

Keys: digits, `*`, `#`; Backspace (0x7f, 0x08); Enter (CR or LF) is OK; Esc, Ctrl-C or
`q` cancels. A lone Esc byte cancels; Esc starting a terminal escape sequence (arrow
keys: ``ESC [ ...``) is skipped, and the application-keypad sequences ``ESC O p`` ...
``ESC O y`` and ``ESC O M`` are the keypad digits and Enter.

The output shows the title, the message and the masked field on one redrawn line::

    PIN: ****   (attempts left: 2)

Input and output are file descriptors (default stdin and stdout); a path (`tty`) opens a
terminal device for both. Input that is not a terminal (a pipe in CI) works too, without
the mode switch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import termios
import time
from typing import Any

from provd.ui.base import DIGIT_KEYS, Key, PinPrompt, PinResult, ResultCallback, UiError
from provd.ui.entry import render_field
from provd.ui.prompting import Clock, PromptDriver

log = logging.getLogger(__name__)

_BYTE_KEYS: dict[int, Key] = {
    **{ord(key.value): key for key in DIGIT_KEYS},
    ord("*"): Key.STAR,
    ord("#"): Key.HASH,
    0x7F: Key.BACKSPACE,  # DEL: what Backspace sends on most terminals
    0x08: Key.BACKSPACE,  # BS: Ctrl-H, some serial terminals
    0x0D: Key.OK,
    0x0A: Key.OK,
    0x03: Key.CANCEL,  # Ctrl-C (ISIG is off while prompting)
    ord("q"): Key.CANCEL,
    ord("Q"): Key.CANCEL,
}
_ESC = 0x1B
# Application keypad mode (DECKPAM): ESC O p..y are the keypad digits 0..9, ESC O M Enter.
_SS3_KEYS: dict[int, Key] = {ord("p") + d: Key(str(d)) for d in range(10)} | {ord("M"): Key.OK}
_CLEAR_LINE = "\x1b[K"  # erase to end of line (no digit in it: the output holds no digits)
_IDLE_EOFS = 3  # empty reads in a row on an idle terminal: hung up, not Ctrl-D


def decode_keys(data: bytes) -> list[Key]:
    """The provd keys in one read from a terminal (see the module docstring)."""
    keys: list[Key] = []
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != _ESC:
            key = _BYTE_KEYS.get(byte)
            if key is not None:
                keys.append(key)
            i += 1
            continue
        follow = data[i + 1] if i + 1 < len(data) else None
        if follow == ord("[") and i + 2 < len(data):
            # CSI: parameters up to a final byte in 0x40..0x7E; the whole sequence is no key.
            j = i + 2
            while j < len(data) and not 0x40 <= data[j] <= 0x7E:
                j += 1
            i = j + 1
        elif follow == ord("O") and i + 2 < len(data):
            key = _SS3_KEYS.get(data[i + 2])
            if key is not None:
                keys.append(key)
            i += 3
        else:
            keys.append(Key.CANCEL)  # a lone Esc: the user pressed it
            i += 1
    return keys


class ConsoleDriver(PromptDriver):
    """The prompt on a terminal; see the module docstring."""

    name = "console"

    def __init__(
        self,
        on_result: ResultCallback,
        *,
        input_fd: int = 0,
        output_fd: int = 1,
        tty: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(on_result, clock=clock)
        self._owned: int | None = None
        if tty is not None:
            try:
                fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as exc:
                raise UiError(f"cannot open console {tty}: {exc.strerror}") from None
            self._owned = input_fd = output_fd = fd
        self.input_fd: int | None = input_fd
        self.output_fd = output_fd
        self._input_is_tty = os.isatty(input_fd)
        self._output_is_tty = os.isatty(output_fd)
        self._saved_mode: list[Any] | None = None
        self._field_width = 0
        self._idle_eofs = 0

    def __repr__(self) -> str:
        return f"ConsoleDriver(input_fd={self.input_fd}, output_fd={self.output_fd})"

    def filenos(self) -> tuple[int, ...]:
        return () if self.input_fd is None else (self.input_fd,)

    def on_readable(self, fd: int) -> None:
        if fd != self.input_fd:
            return
        try:
            data = os.read(fd, 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO: the terminal hung up
            self._lost(f"console read failed: {exc.strerror}")
        if not data:
            # On an idle terminal in canonical mode, Ctrl-D reads as empty; a hung-up line
            # reads empty again and again.
            self._idle_eofs += 1
            if self.prompting or not self._input_is_tty or self._idle_eofs >= _IDLE_EOFS:
                self._lost("console input closed")
            return
        self._idle_eofs = 0
        # Typed outside a prompt: dropped, never kept for the next one.
        self.press_keys(decode_keys(data))

    def close(self) -> None:
        super().close()
        self._restore_mode()
        if self._owned is not None:
            with contextlib.suppress(OSError):
                os.close(self._owned)
            self._owned = None
        self.input_fd = None

    # ------------------------------------------------------------------ drawing

    def _draw_prompt(self, prompt: PinPrompt, masked: str) -> None:
        self._enter_mode()
        head = f"\n{prompt.title}\n"
        if prompt.message:
            head += f"{prompt.message}\n"
        self._field_width = 0
        self._write(head + self._field_line(prompt, masked))

    def _draw_field(self, prompt: PinPrompt, masked: str) -> None:
        self._write(self._field_line(prompt, masked))

    def _draw_message(self, text: str) -> None:
        prompt = self.prompt
        if prompt is None:
            self._write(f"{text}\n")
            return
        # Above the field, which is then drawn again as it was.
        self._write(self._field_line(prompt, "", clear=True) + f"\r{text}\n")
        self._field_width = 0
        if self._entry is not None:
            self._write(self._field_line(prompt, self._entry.masked()))

    def _prompt_closed(self, result: PinResult | None) -> None:
        self._write("\n")
        self._field_width = 0
        self._restore_mode()

    def _field_line(self, prompt: PinPrompt, masked: str, *, clear: bool = False) -> str:
        field = "" if clear else render_field(masked, prompt.attempts_left)
        if self._output_is_tty:
            line = f"\r{_CLEAR_LINE}{field}"
        else:
            # No terminal to erase with: blank what a longer field left behind.
            line = "\r" + field + " " * max(0, self._field_width - len(field))
        self._field_width = len(field)
        return line

    def _write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8", "replace"))
        try:
            while data:
                data = data[os.write(self.output_fd, data) :]
        except OSError as exc:  # the input side notices a hang-up and reports it
            log.debug("console output failed: %s", exc.strerror)

    # ------------------------------------------------------------------ terminal mode

    def _enter_mode(self) -> None:
        if self._saved_mode is not None or not self._input_is_tty or self.input_fd is None:
            return
        try:
            self._saved_mode = termios.tcgetattr(self.input_fd)
            mode = termios.tcgetattr(self.input_fd)
            mode[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG)
            mode[3] &= ~termios.IEXTEN  # Ctrl-V must not quote the next key
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self.input_fd, termios.TCSAFLUSH, mode)
        except termios.error as exc:
            log.warning("console: cannot switch off echo: %s", exc)
            self._saved_mode = None

    def _restore_mode(self) -> None:
        if self._saved_mode is None or self.input_fd is None:
            return
        try:
            termios.tcsetattr(self.input_fd, termios.TCSADRAIN, self._saved_mode)
        except termios.error as exc:
            log.debug("console: cannot restore the terminal mode: %s", exc)
        self._saved_mode = None
