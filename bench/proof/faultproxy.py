"""A fault-injecting HTTPS proxy on loopback, between the phone and the lab server.

    proxy = FaultProxy(("127.0.0.1", lab.port), lab.pki).start()
    phone_url = proxy.url(lab.path)        # what the phone is configured with
    proxy.fault = Fault.RESET              # every connection from now on ...
    proxy.schedule(Fault.HTTP_500)         # ... except the next ones, in this order
    proxy.down(); proxy.up()               # refuse connections (nothing listens), then serve
    proxy.connections                      # what each connection saw, with its times

The proxy terminates TLS with the lab's own server credential (`provd.lab.pki`), so a
phone that pinned the lab's key, or trusts the lab's CA, talks to it as to the lab; it
then forwards each request to the lab over TLS and can cut or rewrite the answer
precisely, at the byte of the HTTP response it chooses. The fault is chosen when a
connection is accepted (the next scheduled one, else `fault`) and applies to the first
answer on it; later requests on a kept-alive connection are relayed unchanged.

Faults (`Fault`): `pass` relays; `reset` sends the head and half the body, then a TCP
RST; `truncate` sends the head and half the body, then closes cleanly (TLS close_notify
and FIN) before `Content-Length` is reached (an answer without a body is cut in its
head); `drip` sends the answer one byte per
`drip_interval` (each byte its own TLS record, the worst case for a per-read timeout)
until the phone gives up or `drip_limit` passes (then RST); `http-500` answers 500
without asking the lab; `empty-200` answers 200 with no body without asking the lab.
`down()` closes the listening socket, so connections are refused by the kernel (the
proxy cannot see those attempts; the phone's log can).

Threads: one accepting, one per connection. Times are `clock()` readings (monotonic).
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol

from provd.lab.pki import LabPKI

#: Bounds for a connection that stops talking (the proxy never waits for ever).
IDLE_TIMEOUT = 30.0
MAX_HEAD = 64 * 1024


class Fault(StrEnum):
    """What the proxy does to the first answer of a connection."""

    PASS = "pass"
    RESET = "reset"
    TRUNCATE = "truncate"
    DRIP = "drip"
    HTTP_500 = "http-500"
    EMPTY_200 = "empty-200"


@dataclass
class Connection:
    """What one accepted connection saw. `ended_by`: "phone" (it closed first), "proxy"
    (the fault or the relay closed it), or "error: ..." (a handshake or relay failure)."""

    number: int
    fault: Fault
    accepted: float
    requests: int = 0
    answered: float | None = None  # when the first byte of the first answer went out
    ended: float | None = None
    ended_by: str = ""
    sent: int = 0  # answer bytes sent to the phone
    statuses: list[int] = field(default_factory=list)  # the lab's answers, relayed or cut

    def end(self, by: str, clock: Callable[[], float]) -> None:
        if self.ended is None:
            self.ended = clock()
            self.ended_by = by


class _Gone(Exception):
    """The phone closed the connection."""


class FaultProxy:
    """The proxy (see the module's docstring). `pki` is the lab's: its server credential
    is presented to the phone, its CA checks the lab behind."""

    def __init__(
        self,
        upstream: tuple[str, int],
        pki: LabPKI,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        drip_interval: float = 1.0,
        drip_limit: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.host = host
        self.drip_interval = drip_interval
        self.drip_limit = drip_limit
        self.clock = clock
        #: The fault of every connection not taken by `schedule`.
        self.fault = Fault.PASS
        self._queue: list[Fault] = []
        self._connections: list[Connection] = []
        self._lock = threading.Condition()
        self._files = tempfile.TemporaryDirectory(prefix="faultproxy-")
        _, cert, key = pki.write(Path(self._files.name))
        self._server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.minimum_version = ssl.TLSVersion.TLSv1_2
        self._server.load_cert_chain(cert, key)
        self._client = ssl.create_default_context(cadata=pki.ca.cert_pem.decode("ascii"))
        self._port = port
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ control

    @property
    def port(self) -> int:
        """The port the phone connects to (kept across `down()`/`up()`)."""
        return self._port

    def url(self, path: str) -> str:
        """The server URL for the phone: the proxy's address, the lab's path."""
        return f"https://{self.host}:{self._port}{path}"

    def start(self) -> FaultProxy:
        """Listen and accept (same as `up()`)."""
        return self.up()

    def up(self) -> FaultProxy:
        """Listen on the port again (the server is back)."""
        if self._listener is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(64)
        sock.settimeout(0.05)
        self._port = int(sock.getsockname()[1])
        self._listener = sock
        self._stopping.clear()
        self._acceptor = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._acceptor.start()
        return self

    def down(self) -> None:
        """Stop listening: the phone's connections are refused until `up()`."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join()
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def stop(self) -> None:
        """Stop listening and remove the credential files (connections in flight end
        on their own: every wait is bounded)."""
        self.down()
        self._files.cleanup()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def schedule(self, *faults: Fault) -> None:
        """The faults of the next connections, one each, before `fault` applies again."""
        with self._lock:
            self._queue.extend(faults)

    @property
    def connections(self) -> list[Connection]:
        """Every connection accepted so far, in order."""
        with self._lock:
            return list(self._connections)

    def wait_connections(self, count: int, timeout: float, *, ended: bool = True) -> bool:
        """Wait until `count` connections were accepted (and, with `ended`, have ended)."""
        deadline = self.clock() + timeout
        with self._lock:
            while True:
                done = self._connections[:count]
                if len(done) >= count and (not ended or all(c.ended for c in done)):
                    return True
                remaining = deadline - self.clock()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))

    # ------------------------------------------------------------------ serving

    def _accept(self, sock: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                fault = self._queue.pop(0) if self._queue else self.fault
                record = Connection(len(self._connections) + 1, fault, self.clock())
                self._connections.append(record)
                self._lock.notify_all()
            threading.Thread(target=self._serve, args=(raw, record), daemon=True).start()

    def _serve(self, raw: socket.socket, record: Connection) -> None:
        raw.settimeout(IDLE_TIMEOUT)
        # Our answers go out in small writes; do not let Nagle hold them back.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self._server.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self._ended(record, f"error: handshake: {exc}")
            raw.close()
            return
        upstream: http.client.HTTPSConnection | None = None
        try:
            reader = tls.makefile("rb")
            while True:
                request = _read_request(reader)
                if request is None:
                    self._ended(record, "phone")
                    return
                record.requests += 1
                fault = record.fault if record.requests == 1 else Fault.PASS
                if fault is Fault.HTTP_500:
                    body = b"fault proxy: HTTP 500\n"
                    self._send(tls, record, _response(500, "Internal Server Error", body))
                    self._close(tls, record)
                    return
                if fault is Fault.EMPTY_200:
                    self._send(tls, record, _response(200, "OK", b""))
                    self._close(tls, record)
                    return
                if upstream is None:
                    host, port = self.upstream
                    upstream = http.client.HTTPSConnection(
                        host, port, context=self._client, timeout=IDLE_TIMEOUT
                    )
                answer, head_length, close = self._forward(upstream, request, record)
                body_length = len(answer) - head_length
                # Half the body; with no body to cut (a 204), half the head.
                cut = head_length + body_length // 2 if body_length >= 2 else head_length // 2
                if fault is Fault.PASS:
                    self._send(tls, record, answer)
                    if close:
                        self._close(tls, record)
                        return
                elif fault is Fault.RESET:
                    self._send(tls, record, answer[:cut])
                    time.sleep(0.1)  # let the part reach the phone before the reset
                    self._reset(tls, record)
                    return
                elif fault is Fault.TRUNCATE:
                    self._send(tls, record, answer[:cut])
                    self._close(tls, record)
                    return
                else:
                    self._drip(tls, record, answer)
                    return
        except _Gone:
            self._ended(record, "phone")
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
            self._ended(record, f"error: {exc!r}")
        finally:
            if upstream is not None:
                upstream.close()
            with contextlib.suppress(OSError):
                tls.close()

    def _forward(
        self, upstream: http.client.HTTPSConnection, request: _Request, record: Connection
    ) -> tuple[bytes, int, bool]:
        """Ask the lab; (the answer as raw HTTP bytes, the length of its head, close?)."""
        method, target, headers, body = request
        keep = {k: v for k, v in headers if k.lower() in ("content-type", "cookie", "user-agent")}
        upstream.request(method, target, body=body, headers=keep)
        resp = upstream.getresponse()
        data = resp.read()
        record.statuses.append(resp.status)
        lines = [f"HTTP/1.1 {resp.status} {resp.reason}"]
        close = resp.will_close
        for name, value in resp.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                lines.append(f"{name}: {value}")
        if resp.status != 204:
            lines.append(f"Content-Length: {len(data)}")
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + data, len(head), close

    def _send(self, tls: ssl.SSLSocket, record: Connection, data: bytes) -> None:
        if record.answered is None:
            record.answered = self.clock()
        try:
            tls.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Gone from exc
        record.sent += len(data)

    def _drip(self, tls: ssl.SSLSocket, record: Connection, data: bytes) -> None:
        deadline = self.clock() + self.drip_limit
        for at in range(len(data)):
            self._send(tls, record, data[at : at + 1])  # one TLS record per byte
            # The phone sends nothing while it waits for an answer: anything readable
            # (close_notify, FIN, RST) means it gave up.
            readable, _, _ = select.select([tls], [], [], self.drip_interval)
            if readable:
                self._ended(record, "phone")
                return
            if self.clock() >= deadline:
                self._reset(tls, record, by="proxy: drip limit")
                return
        self._ended(record, "proxy: drip complete")

    def _close(self, tls: ssl.SSLSocket, record: Connection) -> None:
        """A clean close: TLS close_notify, then FIN."""
        with contextlib.suppress(OSError, ssl.SSLError):
            tls.unwrap()
        with contextlib.suppress(OSError):
            tls.close()
        self._ended(record, "proxy")

    def _reset(self, tls: ssl.SSLSocket, record: Connection, by: str = "proxy") -> None:
        """An abortive close: SO_LINGER with a zero timeout makes close() send an RST."""
        with contextlib.suppress(OSError):
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tls.close()
        self._ended(record, by)

    def _ended(self, record: Connection, by: str) -> None:
        with self._lock:
            record.end(by, self.clock)
            self._lock.notify_all()


#: method, target, headers, body
_Request = tuple[str, str, list[tuple[str, str]], bytes]


def _read_request(reader: ReadableFile) -> _Request | None:
    """One HTTP/1.1 request with a Content-Length body; None at end of file."""
    start = reader.readline(MAX_HEAD)
    if not start:
        return None
    method, target, _ = start.decode("latin-1").split(" ", 2)
    headers: list[tuple[str, str]] = []
    size = len(start)
    while True:
        line = reader.readline(MAX_HEAD)
        size += len(line)
        if not line:
            return None
        if line in (b"\r\n", b"\n") or size > MAX_HEAD:
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    body = reader.read(length) if length else b""
    if len(body) < length:
        return None
    return method, target, headers, body


def _response(status: int, reason: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: text/plain\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ReadableFile(Protocol):
    """What `_read_request` needs of a reader (a `makefile("rb")` object)."""

    def readline(self, limit: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...
