"""The fuzz target of suite 2: one input is one whole interaction of a `PhoneSession`.

An input is a control byte followed by the server's documents, separated by `SEPARATOR`
(a NUL never stands in a document provd accepts, so a document cannot hide one). Every
document goes through the codec on its own (`parse_dls`), then the session receives them in
order, answering each action the way the daemon does (provd.service.exchange): item actions
from an in-memory `ItemBook`, `Restart` by closing, deployments by a status or a failure.

What counts as *unhandled* (read from the code, provd/wpi/codec.py, session.py, errors.py):

- `parse_dls` documents one refusal, `DocumentError` (a `RemoteProtocolError` whose `reason`
  is non-empty). Anything else escaping it is unhandled.
- `PhoneSession.receive` documents that it never raises for anything the server sent: a
  refused document is a `DocumentRefused` event, an unknown action an `UnknownAction`. Its
  only documented exception, `LocalProtocolError`, is for a call its state table does not
  allow (no response due), and `send`/`close` raise it likewise; the driver below only makes
  allowed calls, so through the session *every* exception is unhandled.

Besides exceptions, `WrongAnswer` marks a broken promise: a phone document provd's own
server-side parser refuses, a refusal that is not a `clean-up`, or an interaction that does
not end.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from provd.wpi.codec import DocumentError, parse_dls, parse_workpoint
from provd.wpi.events import (
    ActionRequested,
    AutoAnswer,
    DocumentRefused,
    InteractionEnded,
    PhoneAnswer,
    PhoneCleanUp,
    Reply,
    StatusReport,
)
from provd.wpi.model import Action, DLSMessage, Item, ItemStatus, Reason, ReplyStatus
from provd.wpi.nonce import NonceCheck
from provd.wpi.respond import answer_item_action
from provd.wpi.session import PhoneSession, SessionConfig
from provd.wpi.states import State
from tests.unit.wpi.itembook import MemoryBook

#: The phone's nonce in every fuzzed interaction; the seeds carry it.
NONCE = "9A6439F4E323CDB19283E40459828B56"
#: Between two server documents of one input.
SEPARATOR = b"\x00NEXT\x00"
#: What an interaction may open with (reply-to cannot open one).
OPENING = (
    Reason.SOLICITED,
    Reason.START_UP,
    Reason.LOCAL_CHANGES,
    Reason.INVENTORY_CHANGES,
    Reason.STATUS,
    Reason.SOLICITED,
    Reason.CLEAN_UP,
    Reason.START_UP,
)
#: `max-message` choices: the guide's 50 kB, and sizes that force fragments (even below
#: the envelope's own size, where every item goes alone).
MAX_MESSAGE = (50_000, 2_000, 400, 1)
#: spec §6.3: the factory-reset password, public in the guide (provd.service.exchange).
FACTORY_RESET_PASSWORD = "124816"

_VALUES: dict[tuple[str, int | None], str] = {
    ("device-type", None): "OpenStage 60",
    ("mac-addr", None): "00:1a:e8:00:00:01",
    ("e164", None): "3301",
    ("sntp-addr", None): "192.0.2.1",
    ("user-pwd", None): "fuzz-user-password",
    ("ldap-server-address", 1): "ldap1.example.net",
    ("ldap-server-address", 2): "ldap2.example.net",
    # Enough bytes (about 2.6 kB) to be answered in fragments at max-message 2,000 and 400.
    **{(f"fill-{n:02d}", None): f"value {n} " + "x" * (100 + n * 37 % 200) for n in range(12)},
}


_BOOK = MemoryBook(values=_VALUES)
_CHECKED_OPENINGS: set[bytes] = set()


def _book(storage_fails: bool) -> MemoryBook:
    """A fresh book with the same items (a copy: building one checks every value)."""
    book = copy.copy(_BOOK)
    book.values = dict(_BOOK.values)
    book.commits, book.written = [], []
    book.storage_fails = storage_fails
    return book


class WrongAnswer(AssertionError):
    """The session answered, but not as it promises (a wrong answer, not a crash)."""


@dataclass(frozen=True, slots=True)
class Control:
    """How one interaction is set up, from the input's first byte."""

    reason: Reason
    nonce_check: NonceCheck
    busy: bool
    storage_fails: bool
    max_message: int

    @classmethod
    def from_byte(cls, byte: int) -> Control:
        return cls(
            reason=OPENING[byte & 7],
            nonce_check=NonceCheck.WARN if byte & 8 else NonceCheck.STRICT,
            busy=bool(byte & 16),
            storage_fails=bool(byte & 32),
            max_message=MAX_MESSAGE[byte >> 6],
        )

    def to_byte(self) -> int:
        return (
            OPENING.index(self.reason)
            | (8 if self.nonce_check is NonceCheck.WARN else 0)
            | (16 if self.busy else 0)
            | (32 if self.storage_fails else 0)
            | (MAX_MESSAGE.index(self.max_message) << 6)
        )


def encode(control: Control, documents: Sequence[bytes]) -> bytes:
    """One fuzz input: the control byte, then the documents."""
    return bytes([control.to_byte()]) + SEPARATOR.join(documents)


def decode(data: bytes) -> tuple[Control, list[bytes]]:
    """The inverse of `encode`, total: any bytes are an interaction."""
    if not data:
        return Control.from_byte(0), []
    return Control.from_byte(data[0]), data[1:].split(SEPARATOR)


def check_codec(document: bytes) -> DLSMessage | None:
    """`parse_dls` either parses or refuses with a DocumentError that has a reason."""
    try:
        message = parse_dls(document)
    except DocumentError as refusal:
        if not refusal.reason:
            raise WrongAnswer("DocumentError without a reason") from None
        return None
    if not isinstance(message, DLSMessage) or not message.nonce or not message.action:
        raise WrongAnswer(f"parse_dls returned {message!r}")
    return message


def _check_answer(body: bytes, reason: Reason | None = None) -> None:
    try:
        answer = parse_workpoint(body)
    except DocumentError as refusal:
        raise WrongAnswer(f"provd's own answer refused: {refusal.reason}") from None
    if answer.nonce != NONCE:
        raise WrongAnswer(f"answer carries nonce {answer.nonce[:40]!r}")
    if reason is not None and answer.reason is not reason:
        raise WrongAnswer(f"answer is {answer.reason.value}, expected {reason.value}")


def _perform(event: ActionRequested, book: MemoryBook, control: Control) -> PhoneAnswer | None:
    """The daemon's answer to an action (provd.service.exchange.Actions.perform)."""
    action = event.action
    if action in (Action.READ_ALL_ITEMS, Action.READ_ITEMS, Action.WRITE_ITEMS):
        return answer_item_action(event, book, busy=control.busy)
    if action is Action.RESTART:
        kind = (event.message.value("restart-type") or "").strip()
        password = event.message.value("restart-password")
        if not kind or (kind == "FactoryReset" and password == FACTORY_RESET_PASSWORD):
            return None  # the phone restarts: no answer [G p.50]
        bad = Item(name="restart-type", status=ItemStatus.INVALID_DATA)
        return Reply(status=ReplyStatus.FAILED, items=(bad,))
    if action is Action.FILE_DEPLOYMENT:
        status = Item(name="file-deployment-status", value="failed")
        return StatusReport(items=(status, *event.items[:3]))
    if control.busy:
        return PhoneCleanUp(reason="software deployment refused")
    return Reply(status=ReplyStatus.FAILED, items=())


def run_interaction(control: Control, documents: Sequence[bytes]) -> list[str]:
    """Drive one whole interaction; return the names of the events the session gave.

    Raises whatever provd raises (every exception is unhandled, see the module's
    docstring), or WrongAnswer.
    """
    book = _book(control.storage_fails)
    config = SessionConfig(max_message=control.max_message, nonce_check=control.nonce_check)
    first = (Item(name="e164", value="3301"), Item(name="device-type", value="OpenStage 60"))
    session = PhoneSession(reason=control.reason, nonce=NONCE, items=first, config=config)
    opening = session.start()
    if opening not in _CHECKED_OPENINGS:  # the same bytes for every input with this set-up
        _check_answer(opening, control.reason)
        _CHECKED_OPENINGS.add(opening)
    events: list[str] = []
    # After the server's documents, an empty 200 (spec §2.3 [F]) ends what is still open.
    for document in (*documents, b""):
        if session.state is State.DONE:
            break
        closing = session.state is State.CLOSING
        if closing:
            check_codec(document)  # the session ignores it (spec §3.4); the codec does not
        event = session.receive(document)
        events.append(type(event).__name__)
        if isinstance(event, InteractionEnded):
            break
        if closing:
            raise WrongAnswer(f"the response to a clean-up gave {type(event).__name__}")
        if isinstance(event, DocumentRefused):
            if not event.reason or session.state is not State.CLOSING:
                raise WrongAnswer("a refusal without a reason, or not closing")
            _check_answer(event.answer, Reason.CLEAN_UP)
            continue
        if isinstance(event, AutoAnswer):
            _check_answer(event.answer, Reason.REPLY_TO)
            continue
        answer = _perform(event, book, control)
        if answer is None:
            session.close()
            break
        expected = {StatusReport: Reason.STATUS, PhoneCleanUp: Reason.CLEAN_UP}
        _check_answer(session.send(answer), expected.get(type(answer), Reason.REPLY_TO))
    if session.state is not State.DONE:
        raise WrongAnswer(f"interaction did not end: state {session.state.value}")
    # The session parsed what it received; the codec alone sees what it never received.
    for document in documents[len(events) :]:
        check_codec(document)
    return events


def run_input(data: bytes) -> list[str]:
    """The fuzz target over raw bytes: `decode`, then `run_interaction`."""
    control, documents = decode(data)
    return run_interaction(control, documents)
