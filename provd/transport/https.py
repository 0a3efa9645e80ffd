"""The phone's HTTPS client: one `HttpsChannel` per interaction.

spec §1 [B]: HTTP/1.1 POSTs over TLS, ``Content-Length`` always sent, chunked
responses accepted, one cookie jar per interaction (the original DLS sets
``JSESSIONID; Path=/DeploymentService; Secure`` and wants it back), keep-alive
while the server allows it, and a transparent reconnect with the same cookies when
the server closed the kept-alive connection between two messages. HTTP itself is
the standard library's `http.client`, running over a pyOpenSSL connection (`tls`).

Timeouts (§3.1 [B]): connecting (TCP and TLS handshake together) is bounded by
`connect_timeout`; each later read or write by `response_timeout`, and a POST's whole
answer (sending the request, the head and the body) by `response_timeout` too, so a
server dripping its answer a byte at a time cannot hold the phone. A download is
bounded per read only (a large file on a slow line is legitimate). The whole
interaction's limit belongs to the caller. HTTP statuses are not errors here:
404, 500, an empty 200 or a 204 come back as `HttpResponse` and the caller applies
§2.3. Failures raise `TransportError`.
"""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import logging
import socket
import time
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, cast
from urllib.parse import urlsplit

from OpenSSL import SSL

from provd import __version__
from provd.transport.errors import TransportError, translate
from provd.transport.tls import TrustPolicy, handshake, make_context
from provd.transport.tlssocket import TlsSocket

log = logging.getLogger(__name__)

USER_AGENT = f"provd/{__version__}"
DEFAULT_MAX_BODY = 1 << 20  # spec §2.3 [B] max-body default
_READ_SIZE = 65536
_DRAIN_LIMIT = 65536  # an error page longer than this is not worth keeping the connection for

# Raised when the server has quietly closed a kept-alive connection (spec §1 [B]).
_STALE = (http.client.RemoteDisconnected, ConnectionError)
# Everything else the exchange may raise; translated at the border.
_FOREIGN = (OSError, SSL.Error, http.client.HTTPException)


@dataclass(frozen=True)
class HttpResponse:
    """One complete HTTP response."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return _header(self.headers, name)


@dataclass(frozen=True)
class Download:
    """The outcome of `HttpsChannel.get`; the body went to the caller's sink."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    received: int  # bytes written to the sink by this call
    resumed: bool  # the server honoured the Range request (206): the bytes were appended

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return _header(self.headers, name)


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


class _Connection(http.client.HTTPConnection):
    """`http.client` over the channel's TLS: only connecting is ours."""

    def __init__(self, channel: HttpsChannel, host: str, port: int) -> None:
        super().__init__(host, port)
        self._channel = channel

    def connect(self) -> None:
        # http.client only needs sendall/makefile/close of its socket.
        self.sock = cast(socket.socket, self._channel._open())


class HttpsChannel:
    """The HTTPS exchanges of one interaction with one server.

    ``HttpsChannel("https://dls:18443/DeploymentService/LoginService",
    trust=TrustPolicy.pinned(pin))``; `post` each message, then `close` (or use it as a
    context manager). Cookies live as long as the channel. In mode ``pin`` without a
    pin, the first key seen is required for the rest of the channel's life.
    """

    def __init__(
        self,
        url: str,
        *,
        trust: TrustPolicy,
        connect_timeout: float = 10.0,
        response_timeout: float = 30.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"not an https URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = f"[{self._host}]" if ":" in self._host else self._host
        self._origin = f"https://{netloc}:{self._port}"
        self._where = f"{netloc}:{self._port}"
        self._trust = trust
        self._connect_timeout = connect_timeout
        self._response_timeout = response_timeout
        self._user_agent = user_agent
        self._context: SSL.Context | None = None
        self._conn: _Connection | None = None
        self._jar = http.cookiejar.CookieJar()
        self._peer_spki: str | None = None
        self.connections = 0
        """How many TLS connections this channel has opened (1 unless it reconnected)."""

    @property
    def url(self) -> str:
        """The URL the channel POSTs to."""
        return self._origin + self._path

    @property
    def peer_spki_sha256(self) -> str | None:
        """The server key's SHA-256 SPKI hash from the last connection (None before one)."""
        return self._peer_spki

    def post(
        self, body: bytes, content_type: str = "text/xml", *, max_body: int = DEFAULT_MAX_BODY
    ) -> HttpResponse:
        """POST `body` to the channel's URL and return the whole response.

        A response body over `max_body` bytes raises `TransportError` ``too-large``.
        """
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        resp = self._exchange("POST", self._path, body, headers, window=self._response_timeout)
        try:
            if resp.length is not None and resp.length > max_body:
                raise TransportError("too-large", f"response of {resp.length} bytes announced")
            chunks: list[bytes] = []
            total = 0
            while chunk := self._read(resp):
                total += len(chunk)
                if total > max_body:
                    raise TransportError("too-large", f"response over {max_body} bytes")
                chunks.append(chunk)
            if resp.length:
                # http.client's read(n) just stops at EOF: bytes still owed mean
                # the server cut the response short (truncated body).
                raise TransportError(
                    "closed", f"response cut short: {resp.length} of its bytes missing"
                )
        except TransportError:
            self._drop(resp)
            raise
        resp.close()
        if self._conn is not None and self._conn.sock is not None:
            cast(TlsSocket, self._conn.sock).set_deadline(None)  # kept alive: no bound left
        log.debug(
            "POST %s: %d %s, %d bytes",
            self._where,
            resp.status,
            resp.reason,
            total,
            extra={"PROVD_SERVER": self._where},
        )
        return HttpResponse(resp.status, resp.reason, resp.getheaders(), b"".join(chunks))

    def get(self, url_or_path: str, *, max_bytes: int, sink: BinaryIO, offset: int = 0) -> Download:
        """GET a file into `sink`, streaming; for FileDeployment over HTTPS (spec §6.1).

        `url_or_path` is a path on this channel's server or a URL of the same origin
        (another server needs its own channel, with the trust §6.1 asks for).
        With `offset` > 0 a ``Range`` is asked for; on 206 the bytes are appended, on
        200 `sink` is rewound and truncated (it must be seekable then) and the whole
        file is written. More than `max_bytes` in all raises `TransportError`
        ``too-large``. A status other than 200/206 writes nothing and comes back as is.
        Errors of `sink` itself propagate unchanged.
        """
        target = self._target(url_or_path)
        headers = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        resp = self._exchange("GET", target, None, headers)
        try:
            result = self._stream(resp, max_bytes=max_bytes, sink=sink, offset=offset)
        except BaseException:
            self._drop(resp)
            raise
        resp.close()
        return result

    def close(self) -> None:
        """Close the connection and forget the cookies (the interaction is over)."""
        self._drop(None)
        self._jar.clear()

    def __enter__(self) -> HttpsChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> TlsSocket:
        """Open a TCP connection and run the TLS handshake (called by `_Connection`)."""
        if self._context is None:
            self._context = make_context(self._trust)
        deadline = time.monotonic() + self._connect_timeout
        try:
            raw = socket.create_connection((self._host, self._port), timeout=self._connect_timeout)
        except OSError as exc:
            raise translate(exc, phase="connect", where=self._where) from None
        with contextlib.suppress(OSError):  # only latency is at stake
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        expected = None
        if self._trust.mode == "pin":
            # TOFU within the channel too: a reconnect must meet the same key.
            expected = self._trust.pin or self._peer_spki
        tls = handshake(
            raw,
            self._context,
            self._trust,
            self._host,
            self._port,
            timeout=max(0.0, deadline - time.monotonic()),
            expected_spki=expected,
        )
        tls.settimeout(self._response_timeout)
        self._peer_spki = tls.peer_spki_sha256
        self.connections += 1
        return tls

    def _exchange(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        *,
        window: float | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request and read the response head, reconnecting once if stale.

        `window`: seconds for the whole answer from now (the connection's setup aside)."""
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = _Connection(self, self._host, self._port)
            conn = self._conn
            reused = conn.sock is not None
            # Only a carrier for the cookie jar; the URL is always our own https origin.
            request = urllib.request.Request(self._origin + target, method=method)  # noqa: S310
            self._jar.add_cookie_header(request)
            all_headers = {"User-Agent": self._user_agent, **headers}
            cookie = request.get_header("Cookie")
            if cookie:
                all_headers["Cookie"] = cookie
            try:
                if conn.sock is None:
                    conn.connect()
                cast(TlsSocket, conn.sock).set_deadline(
                    None if window is None else time.monotonic() + window
                )
                conn.request(method, target, body=body, headers=all_headers)
                resp = conn.getresponse()
            except TransportError:
                self._drop(None)
                raise
            except _STALE as exc:
                self._drop(None)
                if reused and attempt == 1:
                    # spec §1 [B]: the server closed the kept-alive connection between
                    # two messages; nothing of the answer was read, so send again.
                    log.info(
                        "%s closed the kept-alive connection; reconnecting",
                        self._where,
                        extra={"PROVD_SERVER": self._where},
                    )
                    continue
                raise translate(exc, phase="exchange", where=self._where) from None
            except _FOREIGN as exc:
                self._drop(None)
                raise translate(exc, phase="exchange", where=self._where) from None
            self._jar.extract_cookies(resp, request)
            return resp
        raise AssertionError("unreachable")

    def _read(self, resp: http.client.HTTPResponse, size: int = _READ_SIZE) -> bytes:
        try:
            return resp.read(size)
        except _FOREIGN as exc:
            raise translate(exc, phase="exchange", where=self._where) from None

    def _stream(
        self, resp: http.client.HTTPResponse, *, max_bytes: int, sink: BinaryIO, offset: int
    ) -> Download:
        headers = resp.getheaders()
        if resp.status == 206 and offset > 0:
            _check_content_range(resp.getheader("Content-Range"), offset, self._where)
            start, resumed = offset, True
        elif resp.status == 200:
            if offset > 0:
                sink.seek(0)  # the server ignored the Range: take the whole file
                sink.truncate()
            start, resumed = 0, False
        else:
            self._drain(resp)
            return Download(resp.status, resp.reason, headers, 0, False)
        if resp.length is not None and start + resp.length > max_bytes:
            raise TransportError("too-large", f"file of {start + resp.length} bytes announced")
        received = 0
        while chunk := self._read(resp):
            received += len(chunk)
            if start + received > max_bytes:
                raise TransportError("too-large", f"file over {max_bytes} bytes")
            sink.write(chunk)
        return Download(resp.status, resp.reason, headers, received, resumed)

    def _drain(self, resp: http.client.HTTPResponse) -> None:
        # Read a short error body so the connection stays usable; drop a long one.
        if len(self._read(resp, _DRAIN_LIMIT + 1)) > _DRAIN_LIMIT or not resp.isclosed():
            self._drop(resp)

    def _target(self, url_or_path: str) -> str:
        if url_or_path.startswith("/"):
            return url_or_path
        parts = urlsplit(url_or_path)
        if (parts.scheme, parts.hostname, parts.port or 443) != ("https", self._host, self._port):
            raise ValueError(f"{url_or_path!r} is not on {self._origin}; open a channel for it")
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def interrupt(self) -> None:
        """Make an exchange blocked in another thread fail at once (provd is stopping)."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if isinstance(sock, TlsSocket):
            sock.interrupt()

    def _drop(self, resp: http.client.HTTPResponse | None) -> None:
        """Close the connection (state unknown after an error, or the caller is done)."""
        if resp is not None:
            resp.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _check_content_range(value: str | None, offset: int, where: str) -> None:
    # "bytes 100-199/200": the server must resume exactly where the file stops.
    unit, _, rest = (value or "").partition(" ")
    first = rest.partition("-")[0]
    if unit != "bytes" or not first.isdigit() or int(first) != offset:
        raise TransportError("http", f"{where} answered a Range with Content-Range {value!r}")
