"""The DCMP poller: ask the polling server whether the provisioning server wants the phone.

For phones behind NAT the server cannot send contact-me, so the phone asks every
`poll-interval` seconds with a plain-HTTP GET of
``<poll-url>contact-me?device-id=<mac-addr>`` [G p.15, p.24; F]. ``202 Accepted``
means jobs are waiting (queue a `solicited` interaction), ``200`` means nothing is;
anything else, and any network error, is logged by the caller and the next poll
comes at the next interval (spec §4.2).

`poll` blocks for at most about twice `timeout` (connect, then the answer); the
daemon calls it from a worker and gets a `PollResult` back. It raises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from provd.transport.errors import translate

#: Default timeout of the connect and of the answer, seconds: a poll is cheap and frequent.
DEFAULT_TIMEOUT = 10.0
_MAX_BODY = 4096  # the answer's body means nothing: read a little so the socket closes cleanly


@dataclass(frozen=True, slots=True, kw_only=True)
class PollResult:
    """The answer to one poll.

    `solicited` is True for ``202`` (queue a `solicited` interaction). `status` is the
    HTTP status when one arrived. `error` is None for ``200`` and ``202``, else a
    short reason safe to log (the URL holds only the poll URL and the MAC address).
    """

    solicited: bool
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the poll got a meaningful answer (``200`` or ``202``)."""
        return self.error is None


def poll_url(base: str, mac: str) -> str:
    """``<base>contact-me?device-id=<mac>`` (spec §4.2).

    `base` is the configured poll URL; a missing final ``/`` is added. The MAC is
    percent-encoded as a query value, except for its colons, which RFC 3986 allows
    in a query and which the guide's example shows as they are
    (``device-id=12:34:56:78:9a:bc`` [G p.15]).
    """
    if not base.endswith("/"):
        base += "/"
    return f"{base}contact-me?device-id={quote(mac, safe=':')}"


def poll(base: str, mac: str, *, timeout: float = DEFAULT_TIMEOUT) -> PollResult:
    """GET the poll URL for `mac` under `base` and say what the answer means."""
    import http.client  # noqa: PLC0415 - the daemon is READY before its first poll (issue 8)

    url = poll_url(base, mac)
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return PollResult(solicited=False, error=f"poll URL must be http://host/...: {base!r}")
    try:
        port = parts.port or 80
    except ValueError:
        return PollResult(solicited=False, error=f"poll URL has a bad port: {base!r}")
    where = f"{parts.hostname}:{port}"
    target = f"{parts.path}?{parts.query}"
    connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    try:
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            return PollResult(
                solicited=False, error=translate(exc, phase="connect", where=where).message
            )
        try:
            connection.request(
                "GET", target, headers={"User-Agent": "provd", "Connection": "close"}
            )
            response = connection.getresponse()
            response.read(_MAX_BODY)
        except (OSError, http.client.HTTPException) as exc:
            return PollResult(
                solicited=False, error=translate(exc, phase="exchange", where=where).message
            )
    finally:
        connection.close()
    status = response.status
    if status == 202:
        return PollResult(solicited=True, status=status)
    if status == 200:
        return PollResult(solicited=False, status=status)
    return PollResult(solicited=False, status=status, error=f"{where} answered HTTP {status}")
