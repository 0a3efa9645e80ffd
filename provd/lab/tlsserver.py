"""HTTPS for the lab: a threading HTTP server whose connections speak TLS.

One class for both of the lab's HTTPS ports (the provisioning server's `Listener` and the
file server's `HttpsFileServer`): each handshake runs in the connection's own thread, so
a client that stalls it blocks nobody else; failed handshakes, verified client
certificates and the open connections are recorded; `stop` also ends idle keep-alive
connections, whose handler threads would otherwise wait out their timeout.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509

logger = logging.getLogger(__name__)

#: Seconds a client has for its TLS handshake.
HANDSHAKE_TIMEOUT = 10.0


class TlsHttpServer(ThreadingHTTPServer):
    """`handler` over TLS with `context` on `address` (IPv6 when the host has a colon).

    `name` tells the lab's log lines and threads apart. `nodelay` sets TCP_NODELAY: an
    answer's head and body go in two sends, and without it the body waits for the
    client's delayed ACK. `context` may be replaced between connections (tests swap in
    a misbehaving certificate at the same address).
    """

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
        *,
        name: str,
        nodelay: bool = False,
    ) -> None:
        self.context = context
        self.name = name
        self.handshake_errors: list[str] = []
        #: TCP connections accepted (a failed handshake counts too).
        self.connections = 0
        #: Subjects (RFC 4514) of the client certificates verified, one per connection.
        self.client_subjects: list[str] = []
        self._nodelay = nodelay
        self._open: set[ssl.SSLSocket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def server_bind(self) -> None:
        if self._nodelay:  # inherited by the accepted sockets on Linux
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # HTTPServer.server_bind looks the host name up (getfqdn): slow without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # In the connection's own thread: a stalled handshake blocks nobody else.
        with self._lock:
            self.connections += 1
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("lab %s: handshake failed: %s", self.name, exc)
            with self._lock:
                self.handshake_errors.append(f"{client_address[0]}: {exc}")
            return
        subject = client_subject(tls)
        with self._lock:
            if subject is not None:
                self.client_subjects.append(subject)
            self._open.add(tls)
        try:
            super().finish_request(tls, client_address)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("lab %s: connection from %s ended: %s", self.name, client_address[0], exc)
        finally:
            with self._lock:
                self._open.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def start(self) -> None:
        """Serve in a background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"lab-{self.name}",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop serving and end every connection; idempotent."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5.0)
            self._thread = None
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            # Wake handler threads blocked on an idle keep-alive connection.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()


def client_subject(connection: object) -> str | None:
    """The subject (RFC 4514) of the client certificate a TLS connection verified."""
    if not isinstance(connection, ssl.SSLSocket):
        return None
    try:
        der = connection.getpeercert(binary_form=True)
    except (ValueError, OSError):
        return None
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
