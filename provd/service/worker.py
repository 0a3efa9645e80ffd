"""One worker thread for blocking work (an HTTPS interaction, a download).

Jobs run one at a time, in order. A finished job's result is handed back to
the event loop through a socketpair, whose read end the loop watches, so the
completion callback runs on the loop's thread (STYLE.md: blocking work runs in
a worker and reports back as an event).
"""

from __future__ import annotations

import collections
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    run: Callable[[], Any]
    done: Callable[[Any, BaseException | None], None]


class Worker:
    """A single background thread; `fileno()` becomes readable when a job ends."""

    def __init__(self, name: str = "provd-worker") -> None:
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._finished: collections.deque[tuple[_Job, Any, BaseException | None]] = (
            collections.deque()
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._running = 0
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self._wake_r.fileno()

    @property
    def busy(self) -> bool:
        """True while a job is queued or running."""
        return self._running > 0

    def submit(
        self, run: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Run `run()` in the worker; `done(result, error)` later runs on the loop."""
        self._running += 1
        self._jobs.put(_Job(run, done))

    def _main(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                result, error = job.run(), None
            except BaseException as exc:  # reported to the loop, never lost
                result, error = None, exc
            self._finished.append((job, result, error))
            try:
                self._wake_w.send(b"!")
            except OSError:  # the loop has gone away
                return

    def on_readable(self) -> None:
        """Run the completion callbacks of finished jobs (on the loop's thread)."""
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._finished:
            job, result, error = self._finished.popleft()
            self._running -= 1
            job.done(result, error)

    def stop(self, timeout: float) -> bool:
        """Ask the thread to end after its current job; True if it ended in time."""
        self._jobs.put(None)
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if not alive:
            self._wake_r.close()
            self._wake_w.close()
        return not alive
