"""A text display sink: screens of short lines written to a device node, FIFO or file.

Phones with a character display (an HD44780-style LCD driven by the Linux auxdisplay
`charlcd` driver, `/dev/lcd`) take plain text: `charlcd` clears the screen and homes the
cursor on a form feed (`\\f`, 0x0c) and moves to the next line on `\\n`. So each screen is
written as ``"\\f" + "\\n".join(lines)``: the form feed, not ``"\\x1b[LI"`` (which
re-initialises the controller, slow and needless between screens). No `\\n` follows the
last line: on `charlcd` it would wrap to the first row and blank it.

The same bytes go to a FIFO, where a phone's own display process reads one screen per
form feed. A regular file (or a path that does not exist yet) is rewritten with the
current screen as its whole content, one line each, which is what tests and a web UI
want to read.

A display that cannot take the screen right now (a FIFO with no reader, `/dev/lcd` held
open by another process) is skipped: the keypad works regardless, and the next screen
tries again.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

CLEAR = "\f"
"""`charlcd`: clear the display and home the cursor."""

# Busy or nobody listening: try again with the next screen, quietly.
_TRANSIENT = {errno.ENXIO, errno.EBUSY, errno.EAGAIN, errno.EINTR}


class TextDisplay:
    """Writes whole screens to `path` (see the module docstring for the format)."""

    def __init__(self, path: str | os.PathLike[str], *, encoding: str = "utf-8") -> None:
        self.path = Path(path)
        self.encoding = encoding
        self._last_error: int | None = None

    def __repr__(self) -> str:
        return f"TextDisplay({str(self.path)!r})"

    def show(self, lines: Sequence[str]) -> None:
        """Replace what the display shows with `lines`."""
        text = "\n".join(line.replace("\n", " ").replace("\f", " ") for line in lines)
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG
        except OSError as exc:
            self._failed(exc)
            return
        try:
            if stat.S_ISREG(mode):
                self._rewrite_file((text + "\n").encode(self.encoding, "replace"))
            else:
                self._write_stream((CLEAR + text).encode(self.encoding, "replace"))
        except OSError as exc:
            self._failed(exc)
            return
        self._last_error = None

    def _rewrite_file(self, data: bytes) -> None:
        # Write a temporary file and rename it over, so a reader never sees half a screen.
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        tmp.replace(self.path)

    def _write_stream(self, data: bytes) -> None:
        # Non-blocking: opening a FIFO with no reader fails (ENXIO) instead of hanging the
        # daemon's loop; /dev/lcd refuses a second opener (EBUSY) and any reader (EPERM).
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(self.path, flags)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)

    def _failed(self, exc: OSError) -> None:
        if exc.errno in _TRANSIENT:
            log.debug("display %s not ready: %s", self.path, exc.strerror)
            return
        if exc.errno != self._last_error:  # once per kind of failure, not per key
            log.warning("display %s cannot be written: %s", self.path, exc.strerror)
        self._last_error = exc.errno


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
