"""A small `selectors` loop, a clock the test moves, and a result recorder: the daemon's
side of a UI driver, as the UI tests drive it through real file descriptors."""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from provd.ui.base import PinResult, UiDriver
from provd.ui.keypad import EV_KEY, INPUT_EVENT

EV_SYN = 0x00
EV_MSC = 0x04
MSC_SCAN = 0x04

# A bound on waiting for the kernel (a pty hands data over asynchronously), not a
# measurement: tests never assert on time.
PATIENCE = 5.0


@dataclass
class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Results:
    """The results a driver reported, in order."""

    seen: list[PinResult] = field(default_factory=list)

    def __call__(self, result: PinResult) -> None:
        self.seen.append(result)


class Loop:
    """The daemon's loop in miniature: the driver's fds on a selector."""

    def __init__(self, driver: UiDriver) -> None:
        self.driver = driver
        self.selector = selectors.DefaultSelector()
        for fd in driver.filenos():
            self.selector.register(fd, selectors.EVENT_READ)

    def turn(self, wait: float = 0.0) -> int:
        """One turn: every readable fd handed to the driver. Returns how many there were."""
        ready = self.selector.select(wait)
        for key, _ in ready:
            self.driver.on_readable(key.fd)
        return len(ready)

    def run_until(self, done: Callable[[], bool]) -> None:
        """Turn until `done()` (or the patience bound runs out; the caller asserts)."""
        give_up = time.monotonic() + PATIENCE
        while not done() and time.monotonic() < give_up:
            self.turn(0.05)

    def drain(self) -> None:
        """Turn until nothing is readable any more (for pipes: what was written is
        readable at once)."""
        while self.turn(0.0):
            pass

    def close(self) -> None:
        self.selector.close()


def key_event(code: int, value: int = 1, sec: int = 1700000000, usec: int = 0) -> bytes:
    """One real `struct input_event` (EV_KEY; value 1 press, 0 release, 2 repeat)."""
    return INPUT_EVENT.pack(sec, usec, EV_KEY, code, value)


def syn() -> bytes:
    return INPUT_EVENT.pack(1700000000, 0, EV_SYN, 0, 0)


def tap(code: int) -> bytes:
    """What a keyboard sends for one key tap: scan code, press, sync, release, sync."""
    return (
        INPUT_EVENT.pack(1700000000, 0, EV_MSC, MSC_SCAN, 0x70000 + code)
        + key_event(code, 1)
        + syn()
        + key_event(code, 0)
        + syn()
    )


def read_all(fd: int) -> bytes:
    """Everything readable on a non-blocking `fd` now."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
