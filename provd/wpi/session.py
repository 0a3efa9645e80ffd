"""The phone's side of one interaction (spec §2-§5), as a pure state machine.

A `PhoneSession` knows nothing of sockets or storage. The caller loops::

    body = session.start()
    while session.state is not State.DONE:
        response = post(body)                    # the caller's transport
        event = session.receive(response)        # b"" for an empty 200 or a 204
        match event:
            case InteractionEnded():  break
            case ActionRequested():   body = session.send(perform(event))
            case AutoAnswer() | DocumentRefused(): body = event.answer

and on a transport error calls `session.abort()`. The sequencing rules live in
`provd.wpi.states.TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provd.wpi.codec import DEFAULT_LIMITS, DocumentError, Limits, emit_workpoint, parse_dls
from provd.wpi.errors import LocalProtocolError
from provd.wpi.events import (
    ActionRequested,
    AutoAnswer,
    DocumentRefused,
    Ending,
    InteractionEnded,
    NextFragment,
    PhoneAnswer,
    PhoneCleanUp,
    PhoneEvent,
    Reply,
    StatusReport,
    UnknownAction,
)
from provd.wpi.fragment import DEFAULT_MAX_MESSAGE, split_items
from provd.wpi.model import (
    Action,
    DLSMessage,
    Fragment,
    Item,
    Reason,
    ReplyStatus,
    WorkpointMessage,
)
from provd.wpi.nonce import NonceCheck, nonce_matches
from provd.wpi.states import TRANSITIONS, Input, State

#: The `cleanup-reason` texts of spec §3.4.
INVALID_DOCUMENT = "invalid document"
INVALID_NONCE = "invalid nonce"

_READS = (Action.READ_ALL_ITEMS, Action.READ_ITEMS)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Settings that shape a session (spec §2.3, §2.4, §5)."""

    max_message: int = DEFAULT_MAX_MESSAGE
    nonce_check: NonceCheck = NonceCheck.STRICT
    limits: Limits = DEFAULT_LIMITS


class PhoneSession:
    """One interaction, opened by the phone with `reason` (spec §3.1)."""

    def __init__(
        self,
        *,
        reason: Reason,
        nonce: str,
        items: Sequence[Item],
        config: SessionConfig | None = None,
    ) -> None:
        if reason is Reason.REPLY_TO:
            raise LocalProtocolError("an interaction cannot open with reply-to")
        self.reason = reason
        self.nonce = nonce.upper()
        self.config = config or SessionConfig()
        self.state = State.READY
        #: Why the phone ended the interaction itself, if it did because of an
        #: error (a refused document, a nonce mismatch, or the caller's reason).
        self.failure: str | None = None
        self._first_items = tuple(items)
        self._action: str | None = None  # the action being answered
        self._pending: list[tuple[Item, ...]] = []  # fragments not yet sent
        self._fragment_total = 0
        self._reply_template: WorkpointMessage | None = None

    # ------------------------------------------------------------------ helpers

    def _move(self, given: Input) -> None:
        try:
            self.state = TRANSITIONS[(self.state, given)]
        except KeyError:
            raise LocalProtocolError(
                f"{given.value} is not allowed in state {self.state.value}"
            ) from None

    def _message(
        self,
        reason: Reason,
        items: tuple[Item, ...] | None,
        *,
        action: str | None = None,
        status: ReplyStatus | None = None,
        fragment: Fragment | None = None,
    ) -> WorkpointMessage:
        return WorkpointMessage(
            nonce=self.nonce,
            reason=reason,
            items=items,
            action=action,
            status=status,
            fragment=fragment,
        )

    def _clean_up_body(self, cleanup_reason: str) -> bytes:
        # [G p.83] clean-up: no attributes, maxItems -1, fragment final.
        item = Item(name="cleanup-reason", value=cleanup_reason)
        return emit_workpoint(self._message(Reason.CLEAN_UP, (item,), fragment=Fragment.FINAL))

    # ------------------------------------------------------------------ API

    @property
    def action(self) -> str | None:
        """The server action being answered, if any."""
        return self._action

    @property
    def succeeded(self) -> bool:
        """True once the interaction ended as the protocol intends."""
        return self.state is State.DONE and self.failure is None

    def start(self) -> bytes:
        """The first message: the reason and the items given (spec §2.1, §3.2)."""
        if self.reason is Reason.CLEAN_UP:
            # A clean-up opened by the phone (spec §7.3: PIN retries exceeded).
            self._move(Input.START_CLEAN_UP)
            message = self._message(self.reason, self._first_items, fragment=Fragment.FINAL)
        else:
            self._move(Input.START)
            message = self._message(self.reason, self._first_items)
        return emit_workpoint(message)

    def receive(self, body: bytes) -> PhoneEvent:
        """Turn the server's response body into one event. Never raises for
        anything the server sent; raises LocalProtocolError when no response
        is due."""
        if self.state is State.CLOSING:
            # spec §3.4: the response to the phone's clean-up is ignored.
            self._move(Input.GOT_ANY)
            return InteractionEnded(ending=Ending.EMPTY)
        if self.state is not State.AWAITING_SERVER:
            raise LocalProtocolError(f"no response is due in state {self.state.value}")
        if not body.strip():
            # [F] an empty 200 or a 204 ends the interaction like CleanUp.
            self._move(Input.GOT_END)
            return InteractionEnded(ending=Ending.EMPTY)
        try:
            message = parse_dls(body, self.config.limits)
        except DocumentError as exc:
            return self._refuse(f"{INVALID_DOCUMENT}: {exc.reason}", INVALID_DOCUMENT)
        warnings: tuple[str, ...] = ()
        if not nonce_matches(self.nonce, message.nonce):
            if self.config.nonce_check is NonceCheck.STRICT:
                return self._refuse(INVALID_NONCE, INVALID_NONCE)
            warnings = (f"nonce mismatch ignored (nonce-check=warn): got {message.nonce[:40]}",)
        return self._dispatch(message, warnings)

    def _refuse(self, reason: str, cleanup_reason: str) -> DocumentRefused:
        self._move(Input.GOT_BAD)
        self.failure = reason
        self._pending = []
        return DocumentRefused(reason=reason, answer=self._clean_up_body(cleanup_reason))

    def _dispatch(self, message: DLSMessage, warnings: tuple[str, ...]) -> PhoneEvent:
        action = message.known_action
        if action is Action.GET_NEXT_FRAGMENT:
            return self._next_fragment(warnings)
        # spec §5: any other action abandons the fragments not yet sent.
        self._pending = []
        if action is Action.CLEAN_UP:
            self._move(Input.GOT_END)
            self._action = None
            send_solicited = (message.value("send-solicited") or "").lower() == "true"
            return InteractionEnded(
                ending=Ending.CLEAN_UP,
                items=message.items,
                send_solicited=send_solicited,
                cleanup_reason=message.value("cleanup-reason"),
                warnings=warnings,
            )
        if action is None:
            self._move(Input.GOT_AUTO)
            self._action = None
            # spec §3.3 [B]: reply-to, action = the name received, status failed.
            answer = emit_workpoint(
                self._message(
                    Reason.REPLY_TO,
                    (),
                    action=message.action,
                    status=ReplyStatus.FAILED,
                    fragment=Fragment.FINAL,
                )
            )
            return UnknownAction(
                answer=answer,
                note=f"unknown action {message.action[:40]!r} answered failed",
                action=message.action,
                warnings=warnings,
            )
        self._move(Input.GOT_ACTION)
        self._action = action.value
        return ActionRequested(action=action, message=message, warnings=warnings)

    def _next_fragment(self, warnings: tuple[str, ...]) -> AutoAnswer:
        self._move(Input.GOT_AUTO)
        template = self._reply_template
        if not self._pending or template is None:
            # Nothing left to send: the request is out of place.
            answer = emit_workpoint(
                self._message(
                    Reason.REPLY_TO,
                    (),
                    action=Action.GET_NEXT_FRAGMENT.value,
                    status=ReplyStatus.FAILED,
                    fragment=Fragment.FINAL,
                )
            )
            return AutoAnswer(
                answer=answer, note="GetNextFragment with no fragment pending", warnings=warnings
            )
        items = self._pending.pop(0)
        fragment = Fragment.NEXT if self._pending else Fragment.FINAL
        number = self._fragment_total - len(self._pending)
        answer = emit_workpoint(
            WorkpointMessage(
                nonce=self.nonce,
                reason=Reason.REPLY_TO,
                items=items,
                action=template.action,
                status=template.status,
                fragment=fragment,
            )
        )
        return NextFragment(
            answer=answer,
            note=f"fragment {number} of {self._fragment_total}",
            number=number,
            total=self._fragment_total,
            warnings=warnings,
        )

    def send(self, answer: PhoneAnswer) -> bytes:
        """The phone's document answering the action in progress."""
        if isinstance(answer, PhoneCleanUp):
            self._move(Input.SEND_CLEAN_UP)
            self.failure = answer.reason
            return self._clean_up_body(answer.reason)
        if self.state is not State.ACTING or self._action is None:
            raise LocalProtocolError(f"nothing to answer in state {self.state.value}")
        if isinstance(answer, StatusReport):
            if self._action != Action.FILE_DEPLOYMENT.value:
                raise LocalProtocolError("a status report answers FileDeployment only")
            self._move(Input.SEND_REPLY)
            # spec §6.1: reason status, no attributes, like a first message.
            return emit_workpoint(self._message(Reason.STATUS, answer.items))
        return self._reply(answer)

    def _reply(self, reply: Reply) -> bytes:
        action = self._action
        assert action is not None
        template = self._message(
            Reason.REPLY_TO, (), action=action, status=reply.status, fragment=Fragment.FINAL
        )
        self._move(Input.SEND_REPLY)
        if reply.items is None or action not in _READS or reply.status is not ReplyStatus.ACCEPTED:
            return emit_workpoint(
                self._message(
                    Reason.REPLY_TO,
                    reply.items,
                    action=action,
                    status=reply.status,
                    fragment=Fragment.FINAL,
                )
            )
        fragments = split_items(template, reply.items, self.config.max_message)
        first, self._pending = fragments[0], list(fragments[1:])
        self._fragment_total = len(fragments)
        self._reply_template = template
        fragment = Fragment.NEXT if self._pending else Fragment.FINAL
        return emit_workpoint(
            self._message(
                Reason.REPLY_TO, first, action=action, status=reply.status, fragment=fragment
            )
        )

    def close(self) -> None:
        """End the interaction without answering (after `Restart`, spec §3.3)."""
        self._move(Input.CLOSE)
        self._action = None

    def abort(self, reason: str) -> None:
        """The transport failed; the interaction is over and failed."""
        self._move(Input.ABORT)  # raises first if the session cannot be aborted
        self.failure = reason
        self._pending = []
