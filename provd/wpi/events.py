"""Events a session hands its caller, and answers the caller hands back.

Phone side: `PhoneSession.receive` turns each server document into exactly one
event. Events whose answer the protocol fixes carry that answer ready to send
(`answer`); `ActionRequested` leaves the work to the caller, who answers with
`PhoneSession.send(Reply(...))` (or `StatusReport`, `PhoneCleanUp`).

Server side: `ServerSession.receive` turns each phone document into a
`PhoneMessageReceived`, `FragmentReceived` or `DocumentRefused`.

All are frozen, slotted, keyword-only dataclasses (after h11).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from provd.wpi.model import Action, DLSMessage, Item, ReplyStatus, WorkpointMessage


class Ending(StrEnum):
    """How the server ended an interaction (spec §2.3)."""

    CLEAN_UP = "CleanUp"
    EMPTY = "empty response"  # HTTP 200 with an empty body, or 204: taken as CleanUp [F]


# --------------------------------------------------------------------------- phone side


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRequested:
    """The server asks for `action`; the caller performs it and answers."""

    action: Action
    message: DLSMessage
    warnings: tuple[str, ...] = ()

    @property
    def items(self) -> tuple[Item, ...]:
        return self.message.items


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoAnswer:
    """The session answered by itself: send `answer` and read the next response."""

    answer: bytes
    note: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NextFragment(AutoAnswer):
    """`GetNextFragment`: `answer` is the next fragment (spec §5)."""

    number: int  # 1-based number of the fragment in `answer`
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownAction(AutoAnswer):
    """An action provd does not know: `answer` is `reply-to` `failed` (spec §3.3 [B])."""

    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentRefused:
    """The server's document was refused (spec §2.3, §2.4).

    `answer` is the phone's `clean-up` (spec §3.4): send it, ignore the
    response, and the interaction is over and failed. `reason` is short and
    safe to log; it is also the `cleanup-reason` sent.
    """

    reason: str
    answer: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class InteractionEnded:
    """The server ended the interaction (`CleanUp`, or an empty response)."""

    ending: Ending
    items: tuple[Item, ...] = ()
    send_solicited: bool = False
    cleanup_reason: str | None = None
    warnings: tuple[str, ...] = ()


PhoneEvent = ActionRequested | AutoAnswer | DocumentRefused | InteractionEnded


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """`reply-to` for the action in progress.

    `items=None` sends no `ItemList` (a busy reply [G p.46]); `()` sends
    `<ItemList/>` (an accepted WriteItems [G p.48]). Accepted read replies are
    fragmented by the session when they exceed `max-message` (spec §5).
    """

    status: ReplyStatus
    items: tuple[Item, ...] | None = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    """`status` after a FileDeployment: basic and `file-deployment-*` items (spec §6.1)."""

    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneCleanUp:
    """The phone ends the interaction itself with a `cleanup-reason` (spec §3.4)."""

    reason: str


PhoneAnswer = Reply | StatusReport | PhoneCleanUp


# --------------------------------------------------------------------------- server side


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneMessageReceived:
    """A complete phone message; fragments already reassembled into `items`."""

    message: WorkpointMessage
    items: tuple[Item, ...] = field(default=())
    fragments: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class FragmentReceived:
    """A `fragment="next"` part; the server should answer `GetNextFragment`."""

    message: WorkpointMessage
    number: int


ServerEvent = PhoneMessageReceived | FragmentReceived | DocumentRefused
