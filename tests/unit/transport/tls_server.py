"""A scriptable HTTPS server on 127.0.0.1 for the transport tests.

Built from the standard library (`ssl`, `http.server`), independent of the
pyOpenSSL client under test. Each request is recorded as a `Seen` and answered
with the `Reply` that the test's `respond` function returns.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from tests.certs import Issued

LOGIN_PATH = "/DeploymentService/LoginService"


@dataclass
class Reply:
    """How the server answers one request."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False
    close_after: bool = False  # close the connection after this reply without saying so
    close_notify: bool = False  # with close_after: send a TLS close_notify first (as Java does)
    hang: bool = False  # read the request, never answer
    announce: int | None = None  # Content-Length to announce instead of the body's length
    drip: float = 0.0  # send the body a byte per TLS record, this many seconds apart


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: int  # 1 for the first TLS connection accepted, 2 for the next, ...
    tls_version: str | None
    client_cn: str | None


def echo(seen: Seen) -> Reply:
    """The default answer: 200 with the request body prefixed by ``echo:``."""
    return Reply(body=b"echo:" + seen.body, headers=[("Content-Type", "text/xml")])


class TlsHttpServer:
    """An HTTPS server in a thread; use as a context manager."""

    def __init__(
        self,
        cert: Issued,
        *,
        respond: Callable[[Seen], Reply] = echo,
        client_ca: Issued | None = None,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
        ciphers: str | None = None,
    ) -> None:
        self.respond = respond
        self.seen: list[Seen] = []
        self.handshake_errors: list[str] = []
        self.connections = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._options: dict[str, Any] = {
            "client_ca": client_ca,
            "min_version": min_version,
            "max_version": max_version,
            "ciphers": ciphers,
        }
        self.context = self.make_context(cert)
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def make_context(self, cert: Issued) -> ssl.SSLContext:
        """A server context presenting `cert` with this server's options."""
        assert cert.cert_path is not None and cert.key_path is not None, "write the cert first"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self._options["ciphers"]:
            ctx.set_ciphers(self._options["ciphers"])
        if self._options["min_version"]:
            ctx.minimum_version = self._options["min_version"]
        if self._options["max_version"]:
            ctx.maximum_version = self._options["max_version"]
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
        client_ca: Issued | None = self._options["client_ca"]
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=client_ca.cert_pem.decode())
        return ctx

    def present(self, cert: Issued) -> None:
        """Present `cert` on connections accepted from now on."""
        self.context = self.make_context(cert)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = LOGIN_PATH, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def __enter__(self) -> TlsHttpServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _accepted(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: TlsHttpServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the request's own thread, so a client that never
        # finishes it cannot stall the accept loop.
        request.settimeout(5)
        try:
            tls = self.owner.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.owner.handshake_errors.append(str(exc))
            return
        try:
            number = self.owner._accepted()
            _Handler(tls, client_address, self, number)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up are part of the tests


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def __init__(self, request: Any, client_address: Any, server: _Server, number: int = 0) -> None:
        self.number = number
        super().__init__(request, client_address, server)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        conn: ssl.SSLSocket = self.connection
        peer: Any = conn.getpeercert() or {}
        names = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
        client_cn = names[0] if names else None
        seen = Seen(
            self.command,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            self.number,
            conn.version(),
            client_cn,
        )
        owner._record(seen)
        reply = owner.respond(seen)
        if reply.hang:
            owner.released.wait(10)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif reply.status not in (204, 304):
            announced = reply.announce if reply.announce is not None else len(reply.body)
            self.send_header("Content-Length", str(announced))
        self.end_headers()
        if reply.chunked:
            for i in range(0, len(reply.body), 7):
                part = reply.body[i : i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif reply.drip:
            for i in range(len(reply.body)):
                self.wfile.write(reply.body[i : i + 1])
                self.wfile.flush()
                if owner.released.wait(reply.drip):
                    break
        elif reply.status not in (204, 304):
            self.wfile.write(reply.body)
        self.wfile.flush()
        if reply.close_after:
            self.close_connection = True
            if reply.close_notify:
                conn.settimeout(0.0)  # send close_notify, do not wait for the client's
                with contextlib.suppress(ssl.SSLError, OSError):
                    conn.unwrap()


def silent_listener() -> socket.socket:
    """A TCP socket on 127.0.0.1 that listens and never accepts nor answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock
