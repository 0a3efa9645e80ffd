"""The two kinds of protocol error (after h11).

`LocalProtocolError` is ours: the caller used the core wrongly (a bug).
`RemoteProtocolError` is theirs: the server sent something the protocol does
not allow; it carries the reason to log. Neither escapes a session's
`receive`: remote problems come back as a `Refused` event with the answer the
phone must send.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of provd's protocol errors."""


class LocalProtocolError(ProtocolError):
    """The core was called in a way its state does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
