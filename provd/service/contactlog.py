"""The journal lines of contact-me requests, bounded during a flood.

One line per contact-me is what field support wants (spec §4.1: who asked, and whether a
redirect was refused), but a flood of 20,000 requests a minute would write 20,000 lines,
and journald's rate limit would then drop the lines that matter, provd's own included
(issue 8, contact-me abuse). So each minute the first `burst` contact-mes are logged one
by one, and the first `refused_burst` that asked for a refused redirect (an attack
signal, spec §4.1 [B], with a budget of its own); the rest are counted, and one warning
at the end of the minute says how many were not logged, how many of them asked for a
refused redirect, and from how many peers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from provd.service.journal import MessageId, log_event
from provd.transport.contactme import ContactMeRequest

log = logging.getLogger(__name__)

#: Contact-mes logged one by one per window; the rest are summed up.
BURST = 20
#: Contact-mes with a refused redirect logged one by one per window.
REFUSED_BURST = 50
#: The window, in seconds.
WINDOW = 60.0
#: Peers remembered per window for the summary (bounded memory under a flood).
MAX_PEERS = 1024


@dataclass
class _Held:
    requests: int = 0
    redirects_refused: int = 0
    peers: set[str] = field(default_factory=set)


class ContactMeLog:
    """Logs contact-mes; `schedule(delay, callback)` arranges the end-of-window summary."""

    def __init__(
        self,
        schedule: Callable[[float, Callable[[], None]], object],
        *,
        burst: int = BURST,
        refused_burst: int = REFUSED_BURST,
        window: float = WINDOW,
    ) -> None:
        self._schedule = schedule
        self._burst = burst
        self._refused_burst = refused_burst
        self._window = window
        self._started: float | None = None
        self._logged = 0
        self._logged_refused = 0
        self._held = _Held()

    def received(self, request: ContactMeRequest, now: float) -> None:
        """Log `request` (or count it, past the window's budget)."""
        if self._started is None or now >= self._started + self._window:
            self._started, self._logged, self._logged_refused = now, 0, 0
        if request.redirect_refused and self._logged_refused < self._refused_burst:
            self._logged_refused += 1
            _log_one(request)
            return
        if not request.redirect_refused and self._logged < self._burst:
            self._logged += 1
            _log_one(request)
            return
        held = self._held
        if not held.requests:
            self._schedule(self._started + self._window - now, self.summarise)
        held.requests += 1
        held.redirects_refused += request.redirect_refused
        if len(held.peers) < MAX_PEERS:
            held.peers.add(request.peer[0])

    def summarise(self) -> None:
        """The one line for what the budget held back (called at the window's end)."""
        held, self._held = self._held, _Held()
        if not held.requests:
            return
        peers = f"{len(held.peers)}{'+' if len(held.peers) >= MAX_PEERS else ''}"
        log_event(
            log,
            MessageId.CONTACT_ME_FLOOD,
            "%d more contact-mes in %.0f s not logged one by one (%d with a refused"
            " redirect) from %s peers",
            held.requests,
            self._window,
            held.redirects_refused,
            peers,
            level=logging.WARNING,
            suppressed=held.requests,
            redirects_refused=held.redirects_refused,
            peers=peers,
        )


def _log_one(request: ContactMeRequest) -> None:
    log_event(
        log,
        MessageId.CONTACT_ME_RECEIVED,
        "contact-me from %s: %s",
        request.peer[0],
        request.reason,
        peer=request.peer[0],
        redirect=f"{request.redirect[0]}:{request.redirect[1]}" if request.redirect else None,
    )
    # A refused dls_ip_addr is how phones were taken over (spec §4.1 [B]): say so.
    if request.redirect_refused:
        log_event(
            log,
            MessageId.CONTACT_ME_REDIRECT_REFUSED,
            "contact-me from %s: %s; contacting the configured server",
            request.peer[0],
            request.reason,
            level=logging.WARNING,
            peer=request.peer[0],
            error=request.reason,
        )
