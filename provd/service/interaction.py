"""Run one interaction: a `PhoneSession` over a transport, actions performed by a callback.

This is the only place where the protocol core meets the network. It does no
logging of its own: every message goes to an `observer`, which the daemon
turns into journal entries and the demo into terminal lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from provd.transport.errors import TransportError
from provd.wpi.events import (
    ActionRequested,
    AutoAnswer,
    DocumentRefused,
    InteractionEnded,
    PhoneAnswer,
    PhoneEvent,
)
from provd.wpi.session import PhoneSession
from provd.wpi.states import State


class Response(Protocol):
    """What the runner needs of an HTTP response."""

    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...


class Poster(Protocol):
    """A transport for one interaction: POST a phone document, get the server's response."""

    def post(self, body: bytes) -> Response: ...


#: Performs an action and returns the answer, or None when the interaction
#: ends without one (Restart).
Perform = Callable[[ActionRequested, PhoneSession], PhoneAnswer | None]


class Observer(Protocol):
    """Told of every document that crosses the wire and every event."""

    def sent(self, body: bytes) -> None: ...

    def received(self, status: int, body: bytes, event: PhoneEvent | None) -> None: ...


class NullObserver:
    """An observer that ignores everything."""

    def sent(self, body: bytes) -> None:
        return None

    def received(self, status: int, body: bytes, event: PhoneEvent | None) -> None:
        return None


@dataclass(slots=True)
class InteractionResult:
    """How an interaction went."""

    ok: bool
    failure: str | None = None
    send_solicited: bool = False
    cleanup_reason: str | None = None
    actions: list[str] = field(default_factory=list)
    messages_sent: int = 0
    restart_requested: bool = False


def run_interaction(
    session: PhoneSession,
    poster: Poster,
    perform: Perform,
    observer: Observer | None = None,
) -> InteractionResult:
    """Drive `session` to its end. Never raises for anything the server or the
    network does; the result says what happened."""
    seen = observer or NullObserver()
    result = InteractionResult(ok=False)
    body = session.start()
    while True:
        seen.sent(body)
        result.messages_sent += 1
        try:
            response = poster.post(body)
        except TransportError as exc:
            if session.state is State.CLOSING:
                # spec §3.4: the response to the phone's clean-up is ignored.
                session.receive(b"")
                break
            session.abort(f"{exc.kind}: {exc.message}")
            seen.received(0, b"", None)
            break
        status = response.status
        if status not in (200, 204) and session.state is not State.CLOSING:
            # spec §2.3 [F]: HTTP 404 or 500 ends the interaction as failed.
            seen.received(status, response.body, None)
            session.abort(f"HTTP {status}")
            break
        event = session.receive(b"" if status == 204 else response.body)
        seen.received(status, response.body, event)
        if isinstance(event, InteractionEnded):
            result.send_solicited = event.send_solicited
            result.cleanup_reason = event.cleanup_reason
            break
        if isinstance(event, AutoAnswer | DocumentRefused):
            body = event.answer
            continue
        result.actions.append(event.action.value)
        answer = perform(event, session)
        if answer is None:
            session.close()
            result.restart_requested = True
            break
        body = session.send(answer)
    result.ok = session.succeeded
    result.failure = session.failure
    return result
