"""DCMP polling in the daemon (spec §4.2 [G p.15, p.24; F]).

Every `poll.interval` seconds a GET to `<poll-url>contact-me?device-id=<mac>` runs
in the worker; 202 queues a `solicited` interaction. The items `dcmp-url` and
`dcmp-interval`, when the server has set them, win over the settings. Any
interaction restarts the timer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from provd.service.journal import MessageId, log_event
from provd.service.loop import Timer
from provd.transport.poll import PollResult, poll
from provd.wpi.model import Reason

if TYPE_CHECKING:
    from provd.service.daemon import Daemon

log = logging.getLogger(__name__)


class Poller:
    """The poll timer of one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        #: When the next poll is due (the daemon's monotonic clock), or None.
        self.next_poll: float | None = None
        self._timer: Timer | None = None

    def settings(self) -> tuple[str, float]:
        """Poll URL and interval: the items `dcmp-url`/`dcmp-interval` win over settings."""
        daemon = self.daemon
        url = daemon.store.get("dcmp-url") or daemon.settings.poll.url
        interval_text = daemon.store.get("dcmp-interval")
        interval = daemon.settings.poll.interval
        if interval_text and interval_text.isdigit() and int(interval_text) > 0:
            interval = float(interval_text)
        return url, interval

    def restart(self) -> None:
        """Any interaction restarts the poll timer (spec §4.2)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        url, interval = self.settings()
        if not url or self.daemon.stopping:
            self.next_poll = None
            return
        self.next_poll = self.daemon.clock() + interval
        self._timer = self.daemon.loop.call_at(self.next_poll, self._poll)

    def _poll(self) -> None:
        self._timer = None
        daemon = self.daemon
        url, _ = self.settings()
        mac, _ = daemon.network()
        if daemon.exchange is not None or daemon.worker.busy or not url or not mac:
            self.restart()
            return
        timeout = daemon.settings.timeouts.connect
        daemon.worker.submit(lambda: poll(url, mac, timeout=timeout), self._polled)

    def _polled(self, result: Any, error: BaseException | None) -> None:
        if isinstance(result, PollResult):
            log_event(
                log,
                MessageId.POLL_RESULT,
                "poll: %s",
                "interaction requested (202)" if result.solicited else (result.error or "nothing"),
                level=logging.INFO if result.ok else logging.WARNING,
                status=result.status,
            )
            if result.solicited:
                self.daemon.triggers.add(Reason.SOLICITED, self.daemon.clock())
        self.restart()
