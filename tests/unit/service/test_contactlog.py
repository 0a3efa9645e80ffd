"""Contact-me journal lines stay bounded in a flood, and nothing is hidden (issue 8)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from provd.service.contactlog import ContactMeLog
from provd.service.journal import MessageId
from provd.transport.contactme import ContactMeRequest


class Timers:
    """The loop's call_later, run by hand."""

    def __init__(self) -> None:
        self.due: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.due.append((delay, callback))

    def run(self) -> None:
        due, self.due = self.due, []
        for _, callback in due:
            callback()


def request(n: int, *, refused: bool = False) -> ContactMeRequest:
    return ContactMeRequest(
        peer=(f"10.0.{n // 250}.{n % 250}", 40000 + n),
        redirect=None,
        reason="dls_ip_addr not allowed" if refused else "ContactMe=true",
        redirect_refused=refused,
    )


def ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [getattr(r, "MESSAGE_ID", "") for r in caplog.records]


def test_a_few_contact_mes_are_each_logged_and_nothing_is_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timers = Timers()
    contact_log = ContactMeLog(timers, burst=5, window=60.0)
    with caplog.at_level(logging.INFO):
        for n in range(5):
            contact_log.received(request(n), now=100.0 + n)

    assert ids(caplog) == [MessageId.CONTACT_ME_RECEIVED.value] * 5
    assert timers.due == []


def test_a_flood_logs_the_burst_then_one_summary_with_the_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timers = Timers()
    contact_log = ContactMeLog(timers, burst=5, refused_burst=2, window=60.0)
    with caplog.at_level(logging.INFO):
        for n in range(1000):
            contact_log.received(request(n, refused=n % 4 == 0), now=100.0 + n * 0.01)
        assert len(timers.due) == 1  # one summary, at the end of the window
        delay, _ = timers.due[0]
        assert delay == pytest.approx(60.0 - 7 * 0.01)  # the first held: request 7
        timers.run()

    received = ids(caplog).count(MessageId.CONTACT_ME_RECEIVED.value)
    refused = ids(caplog).count(MessageId.CONTACT_ME_REDIRECT_REFUSED.value)
    flood = MessageId.CONTACT_ME_FLOOD.value
    (summary,) = [vars(r) for r in caplog.records if getattr(r, "MESSAGE_ID", "") == flood]
    # One by one: the first five plain ones and the first two refused (requests 0 and 4).
    assert (received, refused) == (5 + 2, 2)
    assert summary["levelno"] == logging.WARNING
    assert summary["PROVD_SUPPRESSED"] == 1000 - 7
    assert summary["PROVD_REDIRECTS_REFUSED"] == 250 - 2
    assert summary["PROVD_PEERS"] == "993"


def test_the_next_window_logs_one_by_one_again(caplog: pytest.LogCaptureFixture) -> None:
    timers = Timers()
    contact_log = ContactMeLog(timers, burst=2, window=10.0)
    with caplog.at_level(logging.INFO):
        for n in range(4):
            contact_log.received(request(n), now=0.0)
        timers.run()
        contact_log.received(request(9), now=10.0)

    assert ids(caplog) == [
        MessageId.CONTACT_ME_RECEIVED.value,
        MessageId.CONTACT_ME_RECEIVED.value,
        MessageId.CONTACT_ME_FLOOD.value,
        MessageId.CONTACT_ME_RECEIVED.value,
    ]
