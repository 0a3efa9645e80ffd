"""Journal events of the exchange and of contact-me: refused documents, nonce mismatches and
refused redirects get their own MESSAGE_IDs (systemd/provd.catalog explains them)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from provd.service.contactlog import ContactMeLog
from provd.service.daemon import Daemon
from provd.service.exchange import _JournalObserver
from provd.service.journal import MessageId
from provd.transport.contactme import ContactMeRequest
from provd.wpi.codec import emit_dls
from provd.wpi.events import DocumentRefused
from provd.wpi.model import Action, DLSMessage, Reason
from provd.wpi.nonce import NonceCheck
from provd.wpi.session import PhoneSession, SessionConfig

NONCE = "9A6439F4E323CDB19283E40459828B56"
OTHER = "00000000000000000000000000000001"


def events(caplog: pytest.LogCaptureFixture, member: MessageId) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "MESSAGE_ID", None) == member.value]


def exchange_one(caplog: pytest.LogCaptureFixture, body: bytes, check: NonceCheck) -> None:
    """A real session receives `body` as the server's first response; the observer sees it."""
    session = PhoneSession(
        reason=Reason.START_UP, nonce=NONCE, items=(), config=SessionConfig(nonce_check=check)
    )
    session.start()
    event = session.receive(body)
    with caplog.at_level(logging.DEBUG, logger="provd.service.exchange"):
        _JournalObserver(NONCE).received(200, body, event)


def test_a_broken_server_document_is_logged_as_refused(caplog: pytest.LogCaptureFixture) -> None:
    exchange_one(caplog, b"<DLSMessage><Message", NonceCheck.STRICT)
    [refused] = events(caplog, MessageId.DOCUMENT_REFUSED)
    assert refused.levelno == logging.WARNING
    assert vars(refused)["PROVD_NONCE"] == NONCE
    assert vars(refused)["PROVD_ERROR"].startswith("invalid document")
    assert vars(refused)["PROVD_EVENT"] == "document-refused"
    assert events(caplog, MessageId.NONCE_MISMATCH) == []


def test_another_nonce_refused_by_the_strict_check_is_a_nonce_mismatch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = emit_dls(DLSMessage(nonce=OTHER, action=Action.READ_ALL_ITEMS.value))
    exchange_one(caplog, body, NonceCheck.STRICT)
    [mismatch] = events(caplog, MessageId.NONCE_MISMATCH)
    assert mismatch.levelno == logging.WARNING
    assert (vars(mismatch)["PROVD_NONCE"], vars(mismatch)["PROVD_ERROR"]) == (
        NONCE,
        "invalid nonce",
    )
    assert events(caplog, MessageId.DOCUMENT_REFUSED) == []


def test_another_nonce_let_through_by_the_warn_check_is_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = emit_dls(DLSMessage(nonce=OTHER, action=Action.READ_ALL_ITEMS.value))
    exchange_one(caplog, body, NonceCheck.WARN)
    [mismatch] = events(caplog, MessageId.NONCE_MISMATCH)
    assert "nonce-check=warn" in vars(mismatch)["PROVD_ERROR"]
    assert events(caplog, MessageId.DOCUMENT_REFUSED) == []


def test_a_good_document_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    body = emit_dls(DLSMessage(nonce=NONCE, action=Action.READ_ALL_ITEMS.value))
    exchange_one(caplog, body, NonceCheck.STRICT)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_refused_event_from_any_source_names_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = DocumentRefused(reason="invalid document: not XML", answer=b"")
    with caplog.at_level(logging.INFO, logger="provd.service.exchange"):
        _JournalObserver(NONCE).received(200, b"x", event)
    [refused] = events(caplog, MessageId.DOCUMENT_REFUSED)
    assert refused.getMessage() == (
        "server document refused (invalid document: not XML); ending the interaction with clean-up"
    )


class Triggers:
    """Stands in for the daemon's trigger queue: records the contact-me it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Any]] = []

    def contact_me(self, now: float, redirect: Any) -> None:
        self.calls.append((now, redirect))


def contact_me(caplog: pytest.LogCaptureFixture, request: ContactMeRequest) -> Triggers:
    triggers = Triggers()
    contact_log = ContactMeLog(lambda delay, callback: None)
    daemon: Any = SimpleNamespace(triggers=triggers, clock=lambda: 5.0, contact_log=contact_log)
    with caplog.at_level(logging.INFO, logger="provd.service.contactlog"):
        Daemon.on_contact_me(daemon, request)
    return triggers


@pytest.mark.parametrize("why", ["not in allow-redirect", "Secure Mode", "bad port"])
def test_a_refused_redirect_is_logged_with_its_sender(
    caplog: pytest.LogCaptureFixture, why: str
) -> None:
    reason = f"redirect to '198.51.100.9' ignored: {why}"
    request = ContactMeRequest(
        peer=("192.0.2.7", 40000), redirect=None, reason=reason, redirect_refused=True
    )
    triggers = contact_me(caplog, request)
    assert len(events(caplog, MessageId.CONTACT_ME_RECEIVED)) == 1
    [refused] = events(caplog, MessageId.CONTACT_ME_REDIRECT_REFUSED)
    assert refused.levelno == logging.WARNING
    assert vars(refused)["PROVD_PEER"] == "192.0.2.7"
    assert vars(refused)["PROVD_ERROR"] == reason
    assert triggers.calls == [(5.0, None)]  # the configured server is still contacted


@pytest.mark.parametrize(
    ("redirect", "reason"),
    [
        (None, "solicited interaction requested"),
        (("198.51.100.9", 443), "solicited interaction requested, redirected to 198.51.100.9:443"),
    ],
)
def test_a_contact_me_without_a_refused_redirect_logs_no_refusal(
    caplog: pytest.LogCaptureFixture, redirect: tuple[str, int] | None, reason: str
) -> None:
    request = ContactMeRequest(peer=("192.0.2.7", 40000), redirect=redirect, reason=reason)
    triggers = contact_me(caplog, request)
    assert len(events(caplog, MessageId.CONTACT_ME_RECEIVED)) == 1
    assert events(caplog, MessageId.CONTACT_ME_REDIRECT_REFUSED) == []
    assert triggers.calls == [(5.0, redirect)]
