"""systemd service notifications (sd_notify) over the `NOTIFY_SOCKET` datagram socket.

Written with the socket module rather than `systemd.daemon.notify` so that the environment is
a parameter (tests and the daemon's children see exactly what they are given) and the
protocol is visible: one `AF_UNIX` datagram of newline-separated `KEY=value` lines to the
path in `NOTIFY_SOCKET`, or to the abstract address when it starts with `@`
(sd_notify(3)). Without `NOTIFY_SOCKET` every call is a no-op, so provd runs the same in a
terminal. A failed send is logged and never raised: notification problems must not stop the
phone (STYLE.md).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Talks to the service manager named by `env["NOTIFY_SOCKET"]` (default os.environ).

    `pid` is the process the watchdog settings must name (default os.getpid());
    `monotonic_usec` is the clock `reloading()` reports (default CLOCK_MONOTONIC).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        monotonic_usec: Callable[[], int] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._env = dict(env)
        self._pid = os.getpid() if pid is None else pid
        self._clock = monotonic_usec or (lambda: time.monotonic_ns() // 1000)
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to notify."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """`READY=1`: start-up is finished (store open, listener bound)."""
        return self.send("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """`STATUS=`: one human line for `systemctl status`."""
        return self.send(*_status(text))

    def watchdog(self) -> bool:
        """`WATCHDOG=1`: the main loop is alive (send from the loop, never a side thread)."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """`STOPPING=1`: shutdown has begun."""
        return self.send("STOPPING=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """`RELOADING=1` with `MONOTONIC_USEC` (systemd ≥ 253 Type=notify-reload wants it);
        send `ready()` when the reload is done."""
        return self.send("RELOADING=1", f"MONOTONIC_USEC={self._clock()}", *_status(status))

    def watchdog_interval(self) -> float | None:
        """Seconds between `watchdog()` calls: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
        advises; None when no watchdog is set or `WATCHDOG_PID` names another process."""
        watchdog_pid = self._env.get("WATCHDOG_PID", "")
        if watchdog_pid:
            try:
                if int(watchdog_pid) != self._pid:
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 2 / 1_000_000 if usec > 0 else None

    def send(self, *lines: str) -> bool:
        """Send one notification; True if it was delivered, False if off or failed."""
        if self._address is None:
            return False
        payload = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block the main loop on a manager that is not reading: a full queue is
            # EAGAIN, logged, and the next turn tries again.
            self._sock.sendto(payload, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            # Logged once per failure streak: a missing manager must not flood the journal.
            if not self._warned:
                log.warning("cannot notify the service manager: %s", exc)
                self._warned = True
            return False
        self._warned = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _address(value: str) -> str | None:
    """`/path` as is, `@name` as the abstract address `\\0name`; anything else (empty, vsock:)
    is not supported here and turns notification off."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value:
        log.warning("NOTIFY_SOCKET %r is not a unix socket address; not notifying", value)
    return None


def _status(text: str | None) -> tuple[str, ...]:
    # STATUS= is one line: a newline would start a new assignment.
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)
