"""One interaction as the daemon runs it, in the worker thread.

`Exchange` builds the session (nonce, basic items), opens the HTTPS channel,
runs `run_interaction` with `Actions.perform` answering the server, and
returns an `Outcome` that the event loop acts on (retry, pin the key, clear
the local-changes queue, reboot). Everything it logs goes through the
redacting journal handler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from provd.service.journal import MessageId, log_event
from provd.store.book import CatalogBook
from provd.store.hooks import ApplyHooks
from provd.transport.errors import TransportError
from provd.wpi.events import ActionRequested, DocumentRefused, PhoneAnswer, PhoneEvent, Reply
from provd.wpi.model import Action, Item, ItemStatus, Reason, ReplyStatus
from provd.wpi.respond import answer_item_action, answer_write

if TYPE_CHECKING:
    # The HTTPS, TLS and XML stack is imported by the first interaction, after READY=1:
    # the daemon's start-up needs none of it (issue 8, start to READY vs the import floor).
    from provd.service.interaction import InteractionResult, Response
    from provd.transport.https import HttpsChannel
    from provd.transport.tls import TrustPolicy
    from provd.wpi.session import PhoneSession, SessionConfig

log = logging.getLogger(__name__)

#: [G p.51] the factory-reset password, the same on every interface.
FACTORY_RESET_PASSWORD = "124816"  # noqa: S105 - a protocol constant, public in the guide


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where an interaction goes and how the server is trusted."""

    url: str
    trust: TrustPolicy
    secure: bool = False


@dataclass(slots=True, kw_only=True)
class Effects:
    """What the actions of an interaction leave for the loop to do afterwards."""

    restart: str | None = None  # "reboot" | "factory-reset"
    read_all_done: bool = False
    changed: list[tuple[str, int | None]] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Outcome:
    """How an interaction went, for the loop."""

    reason: Reason
    nonce: str
    server: str
    result: InteractionResult
    effects: Effects
    peer_spki_sha256: str | None = None
    error: TransportError | None = None
    seconds: float = 0.0
    endpoint_secure: bool = False


ActionHandler = Callable[[ActionRequested, Effects], PhoneAnswer | None]


class Actions:
    """Performs the server's actions (spec §3.3) for one interaction."""

    def __init__(
        self,
        book: CatalogBook,
        hooks: ApplyHooks | None,
        *,
        busy: Callable[[], bool],
        handlers: dict[Action, ActionHandler] | None = None,
        read_all_extra: Callable[[], Sequence[Item]] | None = None,
    ) -> None:
        self.book = book
        self.hooks = hooks
        self.busy = busy
        #: Handlers for the deployment and secure-mode actions, plugged in by the daemon.
        self.handlers = dict(handlers or {})
        #: Items ReadAllItems reports besides the book's: the deployed files [G p.245].
        self.read_all_extra = read_all_extra
        self.effects = Effects()

    def perform(self, event: ActionRequested, session: PhoneSession) -> PhoneAnswer | None:
        action = event.action
        handler = self.handlers.get(action)
        if handler is not None:
            answer = handler(event, self.effects)
        elif action in (Action.READ_ALL_ITEMS, Action.READ_ITEMS, Action.WRITE_ITEMS):
            answer = self._items(event)
        elif action is Action.RESTART:
            answer = self._restart(event)
        else:
            # An action this phone has no handler for (deployment off): failed [B].
            answer = Reply(status=ReplyStatus.FAILED, items=())
        log_event(
            log,
            MessageId.ACTION_PERFORMED,
            "%s → %s",
            action.value,
            _answer_text(answer),
            action=action.value,
            nonce=session.nonce,
            items=event.items if action is Action.WRITE_ITEMS else None,
            result=_answer_text(answer),
        )
        return answer

    def _items(self, event: ActionRequested) -> Reply:
        if event.action is Action.WRITE_ITEMS:
            reply, outcome = answer_write(event, self.book, busy=self.busy())
            if outcome is None:
                return reply
            if outcome.rejected:
                log_event(
                    log,
                    MessageId.ITEM_WRITE_REJECTED,
                    "WriteItems: %d of %d items rejected",
                    len(outcome.rejected),
                    len(event.items),
                    level=logging.WARNING,
                    action=event.action.value,
                    items=outcome.rejected,
                )
            if outcome.changed:
                self.effects.changed.extend(outcome.changed)
                if self.hooks is not None:
                    self.hooks.run(outcome.changed)
            return reply
        reply = answer_item_action(event, self.book, busy=self.busy())
        if event.action is Action.READ_ALL_ITEMS:
            self.effects.read_all_done = True
            if self.read_all_extra is not None and reply.items is not None:
                reply = Reply(status=reply.status, items=(*reply.items, *self.read_all_extra()))
        return reply

    def _restart(self, event: ActionRequested) -> Reply | None:
        kind = (event.message.value("restart-type") or "").strip()
        if not kind:
            self.effects.restart = "reboot"
            return None  # [G p.50] no answer: the phone restarts
        password = event.message.value("restart-password")
        if kind == "FactoryReset" and password == FACTORY_RESET_PASSWORD:
            self.effects.restart = "factory-reset"
            return None
        # spec §6.3 [B]: wrong or missing password (or an unknown restart-type):
        # failed, restart-password invalid data, nothing done.
        bad = Item(name="restart-password", status=ItemStatus.INVALID_DATA)
        if kind != "FactoryReset":
            bad = Item(name="restart-type", status=ItemStatus.INVALID_DATA)
        return Reply(status=ReplyStatus.FAILED, items=(bad,))


def _answer_text(answer: PhoneAnswer | None) -> str:
    if answer is None:
        return "no answer (restart)"
    if isinstance(answer, Reply):
        count = "no ItemList" if answer.items is None else f"{len(answer.items)} items"
        return f"{answer.status.value}, {count}"
    return type(answer).__name__


class _Deadline:
    """A Poster that refuses to go on past the interaction's deadline or after `abandon()`."""

    def __init__(self, channel: HttpsChannel, seconds: float, clock: Callable[[], float]) -> None:
        self._channel = channel
        self._clock = clock
        self._deadline = clock() + seconds
        self._seconds = seconds
        self.abandoned = threading.Event()
        #: The last transport failure, so the Outcome can say what failed.
        self.last_error: TransportError | None = None

    def post(self, body: bytes) -> Response:
        try:
            if self.abandoned.is_set():
                raise TransportError("closed", "interaction abandoned: provd is stopping")
            if self._clock() > self._deadline:
                raise TransportError("timeout", f"interaction longer than {self._seconds:.0f} s")
            return self._channel.post(body)
        except TransportError as exc:
            self.last_error = exc
            raise


class _JournalObserver:
    """Every document that crosses the wire, one debug line each (journal field support), and
    a warning for each server document the phone refuses or whose nonce does not match."""

    def __init__(self, nonce: str) -> None:
        self._nonce = nonce

    def sent(self, body: bytes) -> None:
        if log.isEnabledFor(logging.DEBUG):
            from provd.wpi.summary import summarize  # noqa: PLC0415

            log.debug("→ %s", summarize(body), extra={"PROVD_NONCE": self._nonce})

    def received(self, status: int, body: bytes, event: PhoneEvent | None) -> None:
        if log.isEnabledFor(logging.DEBUG):
            from provd.wpi.summary import summarize  # noqa: PLC0415

            text = summarize(body) if body.strip() else "(empty)"
            log.debug("← HTTP %d %s", status, text, extra={"PROVD_NONCE": self._nonce})
        if isinstance(event, DocumentRefused):
            from provd.wpi.session import INVALID_NONCE  # noqa: PLC0415

            # spec §2.4: another nonce is refused like a broken document (nonce-check=strict),
            # but has its own id: it may be a server answering another phone's interaction.
            nonce = event.reason == INVALID_NONCE
            log_event(
                log,
                MessageId.NONCE_MISMATCH if nonce else MessageId.DOCUMENT_REFUSED,
                "server document refused (%s); ending the interaction with clean-up",
                event.reason,
                level=logging.WARNING,
                nonce=self._nonce,
                error=event.reason,
            )
            return
        for warning in getattr(event, "warnings", ()):
            if not warning.startswith("nonce mismatch"):
                log.warning("%s", warning, extra={"PROVD_NONCE": self._nonce})
                continue
            # nonce-check=warn: the mismatch is only reported, the interaction goes on.
            log_event(
                log,
                MessageId.NONCE_MISMATCH,
                "%s",
                warning,
                level=logging.WARNING,
                nonce=self._nonce,
                error=warning,
            )


class Exchange:
    """Runs one interaction; built on the loop, `run()` in the worker."""

    def __init__(
        self,
        *,
        reason: Reason,
        nonce: str,
        items: Sequence[Item],
        endpoint: Endpoint,
        actions: Actions,
        config: SessionConfig,
        connect_timeout: float,
        response_timeout: float,
        interaction_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reason = reason
        self.nonce = nonce
        self.endpoint = endpoint
        self.actions = actions
        from provd.wpi.session import PhoneSession  # noqa: PLC0415

        self._session = PhoneSession(reason=reason, nonce=nonce, items=items, config=config)
        self._connect_timeout = connect_timeout
        self._response_timeout = response_timeout
        self._interaction_timeout = interaction_timeout
        self._clock = clock
        self._poster: _Deadline | None = None
        self._channel: HttpsChannel | None = None
        self._lock = threading.Lock()
        self._abandoned = False

    def abandon(self) -> None:
        """Stop the interaction in flight (SIGTERM): called from the loop's thread."""
        with self._lock:
            self._abandoned = True
            if self._poster is not None:
                self._poster.abandoned.set()
            if self._channel is not None:
                # Wake the worker blocked in recv(); it then closes the channel.
                self._channel.interrupt()

    def run(self) -> Outcome:
        from provd.service.interaction import run_interaction  # noqa: PLC0415
        from provd.transport.https import HttpsChannel  # noqa: PLC0415

        started = self._clock()
        channel = HttpsChannel(
            self.endpoint.url,
            trust=self.endpoint.trust,
            connect_timeout=self._connect_timeout,
            response_timeout=self._response_timeout,
        )
        poster = _Deadline(channel, self._interaction_timeout, self._clock)
        with self._lock:
            self._channel, self._poster = channel, poster
            if self._abandoned:
                poster.abandoned.set()
        try:
            result = run_interaction(
                self._session, poster, self.actions.perform, _JournalObserver(self.nonce)
            )
        finally:
            spki = channel.peer_spki_sha256
            channel.close()
        return Outcome(
            reason=self.reason,
            nonce=self.nonce,
            server=self.endpoint.url,
            result=result,
            effects=self.actions.effects,
            peer_spki_sha256=spki,
            error=poster.last_error,
            endpoint_secure=self.endpoint.secure,
            seconds=self._clock() - started,
        )
