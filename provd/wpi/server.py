"""The server's side of one interaction, on the same codec (spec §2, §5).

The lab server and the tests speak to the phone through this class, so the
phone is tested against a peer built from the protocol core rather than from
hand-written XML. The server echoes the nonce of the phone's latest message,
as every public server does (spec §2.4 [F]), and reassembles fragments (§5).
"""

from __future__ import annotations

from collections.abc import Sequence

from provd.wpi.codec import DEFAULT_LIMITS, DocumentError, Limits, emit_dls, parse_workpoint
from provd.wpi.errors import LocalProtocolError
from provd.wpi.events import (
    DocumentRefused,
    FragmentReceived,
    PhoneMessageReceived,
    ServerEvent,
)
from provd.wpi.model import Action, DLSMessage, Fragment, Item


class ServerSession:
    """One interaction seen from the provisioning server."""

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.nonce: str | None = None
        self.ended = False
        self._parts: list[Item] = []
        self._fragments = 0

    def receive(self, body: bytes) -> ServerEvent:
        """Turn a phone document into one event; never raises for its content."""
        if self.ended:
            raise LocalProtocolError("the interaction has ended")
        try:
            message = parse_workpoint(body, self.limits)
        except DocumentError as exc:
            return DocumentRefused(reason=exc.reason, answer=b"")
        self.nonce = message.nonce
        if message.fragment is Fragment.NEXT:
            self._parts.extend(message.items or ())
            self._fragments += 1
            return FragmentReceived(message=message, number=self._fragments)
        items = tuple(self._parts) + tuple(message.items or ())
        fragments = self._fragments + 1
        self._parts, self._fragments = [], 0
        return PhoneMessageReceived(message=message, items=items, fragments=fragments)

    def send(
        self, action: str | Action, items: Sequence[Item] = (), *, nonce: str | None = None
    ) -> bytes:
        """The server document for `action`, echoing the phone's nonce unless
        `nonce` is given (tests use that to send a wrong one)."""
        echo = nonce if nonce is not None else self.nonce
        if echo is None:
            raise LocalProtocolError("no phone message received yet: no nonce to echo")
        name = action.value if isinstance(action, Action) else action
        if name == Action.CLEAN_UP.value:
            self.ended = True
        return emit_dls(DLSMessage(nonce=echo, action=name, items=tuple(items)))
