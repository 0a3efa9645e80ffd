"""Foreign errors become TransportError at the border, with a kind and a loggable message."""

from __future__ import annotations

import errno
import http.client
import socket

import pytest
from OpenSSL import SSL

from provd.transport.errors import TransportError, translate

WHERE = "dls.example:18443"


@pytest.mark.parametrize(
    ("exc", "phase", "kind"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connect", "connect"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "connect", "connect"),
        (TimeoutError("timed out"), "connect", "connect"),
        (TimeoutError("timed out"), "exchange", "timeout"),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "exchange", "closed"),
        (http.client.RemoteDisconnected("closed"), "exchange", "closed"),
        (http.client.IncompleteRead(b"abc", 10), "exchange", "closed"),
        (http.client.BadStatusLine("HTTP/9 nonsense"), "exchange", "http"),
        (http.client.LineTooLong("header line"), "exchange", "http"),
        (SSL.Error([("SSL routines", "", "tlsv1 alert unknown ca")]), "exchange", "tls"),
        (SSL.Error([("SSL routines", "", "unexpected eof while reading")]), "exchange", "closed"),
        (SSL.SysCallError(-1, "Unexpected EOF"), "exchange", "closed"),
    ],
)
def test_foreign_errors_are_translated_by_kind(exc: BaseException, phase: str, kind: str) -> None:
    err = translate(exc, phase=phase, where=WHERE)  # type: ignore[arg-type]

    assert isinstance(err, TransportError)
    assert err.kind == kind
    assert WHERE in err.message
    assert str(err) == f"{kind}: {err.message}"


def test_openssl_reason_is_in_the_message() -> None:
    err = translate(
        SSL.Error([("SSL routines", "", "tlsv1 alert unknown ca")]), phase="connect", where=WHERE
    )

    assert err.message == f"TLS with {WHERE} failed: tlsv1 alert unknown ca"


def test_transport_error_passes_through_unchanged() -> None:
    original = TransportError("too-large", "response over 10 bytes")

    assert translate(original, phase="exchange", where=WHERE) is original


def test_unrelated_exception_is_not_swallowed() -> None:
    with pytest.raises(TypeError):
        translate(KeyError("x"), phase="exchange", where=WHERE)
