"""The transport's one error type, and the translation of foreign errors into it.

Everything the network, OpenSSL or `http.client` can raise is turned into a
`TransportError` at the border (STYLE.md), with a `kind` the daemon's retry
logic can branch on and a message that is safe to log: it names hosts, ports,
OpenSSL reason strings and certificate problems, never key material.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # imported where used: the daemon is READY before its first exchange
    from OpenSSL import SSL

TransportErrorKind = Literal["connect", "tls", "timeout", "http", "closed", "too-large"]
"""What went wrong, for the caller to branch on.

- ``connect``: no connection (refused, unreachable, DNS, or no TLS handshake within the
  connect timeout);
- ``tls``: the TLS layer refused (handshake failure, certificate not trusted, name
  mismatch, pinned key mismatch, an alert);
- ``timeout``: the server did not answer within the response timeout;
- ``http``: the server's HTTP was unreadable (bad status line, bad chunking, headers too long);
- ``closed``: the server closed or reset the connection in the middle of an exchange;
- ``too-large``: a body was larger than the caller allows.
"""

Phase = Literal["connect", "exchange"]


class TransportError(Exception):
    """A failed HTTPS exchange; `kind` says what failed, `message` is safe to log."""

    def __init__(
        self, kind: TransportErrorKind, message: str, *, peer_spki_sha256: str | None = None
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: TransportErrorKind = kind
        self.message = message
        # The key the server presented, for a pin mismatch: field support wants to
        # see which key showed up. A public-key hash is not a secret.
        self.peer_spki_sha256 = peer_spki_sha256


def describe_ssl_error(exc: SSL.Error) -> str:
    """OpenSSL's reason strings of `exc`, joined (``"certificate verify failed"``)."""
    reasons: list[str] = []
    for arg in exc.args:
        if isinstance(arg, list):
            # pyOpenSSL gives [(library, function, reason), ...]
            reasons.extend(str(entry[2]) for entry in arg if isinstance(entry, tuple) and entry)
        elif arg not in (None, -1):
            reasons.append(str(arg))
    return ", ".join(r for r in reasons if r) or type(exc).__name__


def is_unexpected_eof(exc: SSL.Error) -> bool:
    """Whether `exc` says the peer closed TCP without a TLS close_notify.

    OpenSSL 1.1 reports that as ``SysCallError(-1, "Unexpected EOF")``; OpenSSL 3
    as an SSL error with the reason ``unexpected eof while reading``.
    """
    from OpenSSL import SSL  # noqa: PLC0415

    if isinstance(exc, SSL.SysCallError):
        return bool(exc.args) and exc.args[0] == -1
    return "unexpected eof" in describe_ssl_error(exc).lower()


def translate(exc: BaseException, *, phase: Phase, where: str) -> TransportError:
    """Translate a foreign exception raised while connecting to or talking with `where`.

    `where` is ``host:port``. A `TransportError` passes through unchanged.
    """
    import http.client  # noqa: PLC0415

    from OpenSSL import SSL  # noqa: PLC0415

    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, SSL.Error):
        if phase == "exchange" and is_unexpected_eof(exc):
            return TransportError("closed", f"{where} closed the connection")
        return TransportError("tls", f"TLS with {where} failed: {describe_ssl_error(exc)}")
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        if phase == "connect":
            return TransportError("connect", f"connecting to {where} timed out")
        return TransportError("timeout", f"{where} did not answer in time")
    if isinstance(exc, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return TransportError("closed", f"{where} closed the connection: {type(exc).__name__}")
    if isinstance(exc, http.client.HTTPException):
        return TransportError("http", f"unreadable HTTP from {where}: {type(exc).__name__}")
    if isinstance(exc, socket.gaierror):
        return TransportError("connect", f"cannot resolve {where}: {exc.strerror}")
    if isinstance(exc, OSError):
        if phase == "connect":
            return TransportError("connect", f"cannot connect to {where}: {_os_reason(exc)}")
        return TransportError("closed", f"connection to {where} failed: {_os_reason(exc)}")
    raise TypeError(f"not a transport error: {type(exc).__name__}") from exc


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None and exc.errno in errno.errorcode:
        return f"{errno.errorcode[exc.errno]} ({exc.strerror})"
    return exc.strerror or type(exc).__name__
