"""The daemon's one event loop: file descriptors and timers on `selectors`.

Everything that can wake provd — the contact-me listener and its connections,
the control socket, the udev monitor, the worker's completion pipe, signals,
the keypad — is a readable file descriptor with a callback. Timers are
deadlines on an injected monotonic clock. The loop runs callbacks on its own
thread only, so they share state without locks.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True, slots=True)
class Timer:
    """A pending call at `deadline`; `cancel()` it to drop it."""

    deadline: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    """File descriptors and timers; `run_once()` is one healthy turn."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._selector = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        self._seq = itertools.count()

    @property
    def selector(self) -> selectors.BaseSelector:
        """The selector itself, for adapters that register their own sockets with a
        `callback(mask)` as the key's data (the contact-me listener does)."""
        return self._selector

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call `callback` whenever `fd` is readable."""
        self._selector.register(fd, selectors.EVENT_READ, lambda _mask: callback())

    def remove_reader(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(deadline, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.clock() + max(0.0, delay), callback)

    def _next_timeout(self, cap: float) -> float:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return cap
        return max(0.0, min(cap, self._timers[0].deadline - self.clock()))

    def run_once(self, max_wait: float = 1.0) -> None:
        """Wait for at most `max_wait` seconds, then run what is ready."""
        for key, mask in self._selector.select(self._next_timeout(max_wait)):
            callback: Callable[[int], None] = key.data
            callback(mask)
        now = self.clock()
        while self._timers and (self._timers[0].cancelled or self._timers[0].deadline <= now):
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()

    def close(self) -> None:
        self._selector.close()
