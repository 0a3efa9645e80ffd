"""What systemd would see of the daemon: its notifications and its stderr.

`NotifySocket` is a real `AF_UNIX` datagram socket bound where `NOTIFY_SOCKET` points, read
by a thread; `LogCapture` reads the daemon's stderr line by line. Both keep what arrived
with the time it arrived and let a test wait for what it expects.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: Every wait ends as soon as its event arrives; this only bounds a failure.
WAIT = 10.0


# --------------------------------------------------------------------------- notify socket


@dataclass(frozen=True, slots=True)
class Notice:
    """One datagram the daemon sent to the notify socket."""

    time: float  # time.monotonic() when the test received it
    lines: tuple[str, ...]

    def get(self, key: str) -> str | None:
        for line in self.lines:
            name, sep, value = line.partition("=")
            if sep and name == key:
                return value
        return None

    def has(self, assignment: str) -> bool:
        return assignment in self.lines


class NotifySocket:
    """A bound `AF_UNIX` datagram socket read by a thread, as systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self._notices: list[Notice] = []
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            notice = Notice(time.monotonic(), tuple(data.decode("utf-8", "replace").split("\n")))
            with self._changed:
                self._notices.append(notice)
                self._changed.notify_all()

    def notices(self) -> list[Notice]:
        with self._changed:
            return list(self._notices)

    def mark(self) -> int:
        with self._changed:
            return len(self._notices)

    def wait_for(
        self, predicate: Callable[[Notice], bool], timeout: float = WAIT, after: int = 0
    ) -> Notice:
        """The first notice from index `after` on that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for notice in self._notices[after:]:
                    if predicate(notice):
                        return notice
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [n.lines for n in self._notices[after:]][-20:]
                    raise TimeoutError(f"no matching notification within {timeout} s: {seen}")
                self._changed.wait(left)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2.0)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# --------------------------------------------------------------------------- stderr capture


class LogCapture:
    """The daemon's stderr, line by line, with the time each line arrived."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self._lines.append((time.monotonic(), line))
                self._changed.notify_all()
        stream.close()

    def join(self, timeout: float = 5.0) -> None:
        """Wait until the stream ends (the process exited)."""
        self._thread.join(timeout)

    def mark(self) -> int:
        with self._changed:
            return len(self._lines)

    @property
    def lines(self) -> list[str]:
        with self._changed:
            return [line for _, line in self._lines]

    def timed(self) -> list[tuple[float, str]]:
        with self._changed:
            return list(self._lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def matching(self, pattern: str, after: int = 0) -> list[re.Match[str]]:
        regex = re.compile(pattern)
        return [m for line in self.lines[after:] if (m := regex.search(line))]

    def wait_for(
        self, pattern: str, timeout: float = WAIT, after: int = 0, count: int = 1
    ) -> re.Match[str]:
        """The `count`-th line from index `after` on that matches `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for _, line in self._lines[after:] if (m := regex.search(line))]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(line for _, line in self._lines[after:][-30:])
                    raise TimeoutError(
                        f"no line {pattern!r} (x{count}) within {timeout} s:\n{tail}"
                    )
                self._changed.wait(left)
