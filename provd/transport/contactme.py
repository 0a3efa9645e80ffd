"""The contact-me listener: a non-blocking HTTP endpoint inside the daemon's `selectors` loop.

The server asks the phone to call back with a plain-HTTP request to port 8085
[G p.14-15]. The listener accepts connections, feeds their bytes to h11, lets
`provd.wpi.contactme` decide the answer, answers at once (spec §4.1: 204 before
any other work), closes the connection, and only then reports the contact-me
through `on_contact`. It never blocks and never touches the XML channel.

**The loop's side.** The listener registers every socket it owns (the listening
socket and each connection) in the selector it is given, with ``data`` set to a
callable taking the ready event mask. The loop runs::

    for key, mask in selector.select(timeout):
        key.data(mask)

and calls `tick(now)` on each turn so that stale connections are dropped; the
loop's timeout should not pass `next_deadline()`.

**Floods** (spec §4.1 [B]: "survives floods with bounded memory"):

- at most `max_connections` connections (default 256) are open at once; a new one
  beyond that closes the oldest, so half-open connections cannot lock out the server.
  Under a flood each connection so lives for `max_connections` accepts: at 256, a real
  server whose first bytes are tens of milliseconds behind its connect still gets in
  while 300 slowloris sockets churn (at 64 the proof's abuse suite lost one now and
  then). Memory stays bounded: each holds at most 8 KiB of head.
  Before closing, the oldest few are looked at: one whose request already waits in the
  kernel is served instead (a complete contact-me is answered and closed), so a churn
  of idle connections cannot push a real server's request out unread (issue 8);
- h11 buffers at most 8 KiB of request head (beyond: 431); a body over 4 KiB is
  answered 413 without being read; no connection reads more than 64 KiB in all;
- every connection has `timeout` seconds (default 5) from its accept to be answered
  and closed, whether it is idle or trickling bytes;
- malformed HTTP is answered with h11's status hint (400, or 431) and closed.
"""

from __future__ import annotations

import contextlib
import errno
import http
import ipaddress
import itertools
import logging
import selectors
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import h11

from provd.wpi.contactme import MAX_BODY, ContactMeDecision, decide, precheck, split_target

log = logging.getLogger(__name__)

#: The contact-me port of the guide [G p.14].
DEFAULT_PORT = 8085
#: The most bytes of a request head h11 may buffer (beyond that: 431).
MAX_HEAD = 8192
#: The most bytes read from one connection, answered or not: head, body, and what a
#: client sends after the answer.
MAX_READ = 64 * 1024

_RECV = 4096
#: Accepts per loop turn, far below the default cap: a connection accepted in one turn
#: cannot become the oldest (the one dropped to make room) before later turns have read
#: it, even while a flood fills every turn with new connections.
_ACCEPTS_PER_TURN = 16
#: How many of the oldest connections are looked at for a waiting request before one
#: is dropped to make room (bounded: the cost of an accept stays constant).
_SERVE_BEFORE_EVICTING = 8
_HEADERS = [("Content-Length", "0"), ("Server", "provd"), ("Connection", "close")]

#: A selector callback: called by the loop with the ready event mask.
Handler = Callable[[int], None]


class ListenError(Exception):
    """The listener could not bind or listen; `message` names the address and the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactMeRequest:
    """A contact-me that asks for a `solicited` interaction (spec §4.1).

    `peer` is who sent it; `redirect` the allowed ``(address, port)`` to call
    instead of the configured server, or None; `reason` a note for the log.
    """

    peer: tuple[str, int]
    redirect: tuple[str, int] | None
    reason: str
    redirect_refused: bool = False


@dataclass(slots=True)
class ListenerStats:
    """Counters since the listener opened (for `provctl status` and the bench)."""

    accepted: int = 0
    answered: dict[int, int] = field(default_factory=dict)
    contacts: int = 0
    evicted: int = 0
    timed_out: int = 0

    @property
    def answers(self) -> int:
        """All answers sent, whatever their status."""
        return sum(self.answered.values())


@dataclass(slots=True, eq=False)
class _Connection:
    sock: socket.socket
    peer: tuple[str, int]
    deadline: float
    http: h11.Connection
    method: str = ""
    path: str = ""
    query: str = ""
    content_type: str | None = None
    body: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    read: int = 0
    answered: bool = False
    writing: bool = False  # registered for EVENT_WRITE
    lingering: bool = False


class ContactMeListener:
    """The contact-me endpoint: listens on `host`:`port` and reports through `on_contact`.

    `host` ``""`` listens on every address, IPv6 and IPv4 where the system allows
    (falling back to IPv4 alone); port 0 takes a free port (see `address`).
    `allow_redirect` and `secure_mode` feed the redirect policy of spec §4.1 and may
    be changed while running (a settings reload, a switch to Secure Mode).
    `on_contact` must not block: the daemon queues the request and returns.
    Raises `ListenError` if the address cannot be bound.
    """

    def __init__(
        self,
        selector: selectors.BaseSelector,
        on_contact: Callable[[ContactMeRequest], None],
        *,
        host: str = "",
        port: int = DEFAULT_PORT,
        allow_redirect: Iterable[str] = (),
        secure_mode: Callable[[], bool] = lambda: False,
        max_connections: int = 256,
        timeout: float = 5.0,
        backlog: int = 128,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.allow_redirect: frozenset[str] = frozenset(allow_redirect)
        self.secure_mode = secure_mode
        self.stats = ListenerStats()
        self._selector = selector
        self._on_contact = on_contact
        self._max = max_connections
        self._timeout = timeout
        self._clock = clock
        self._connections: OrderedDict[int, _Connection] = OrderedDict()
        self._accept_failing = False
        self._sock = _bind(host, port, backlog)
        self._selector.register(self._sock, selectors.EVENT_READ, self._on_listener_event)
        log.info(
            "contact-me listener on %s port %d",
            *self.address,
            extra={"PROVD_LISTEN": f"{self.address[0]}:{self.address[1]}"},
        )

    # ------------------------------------------------------------------ the loop's API

    @property
    def address(self) -> tuple[str, int]:
        """The bound address and port."""
        name = self._sock.getsockname()
        return (str(name[0]), int(name[1]))

    @property
    def open_connections(self) -> int:
        """How many connections are open now (never more than `max_connections`)."""
        return len(self._connections)

    def fileno(self) -> int:
        """The listening socket's descriptor."""
        return self._sock.fileno()

    def on_readable(self) -> None:
        """Accept what connections are waiting (the listening socket is readable)."""
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE, ENOBUFS and the like: make room and let the next turn retry.
                # Logged once per episode, not on every turn of the loop.
                if not self._accept_failing:
                    reason = errno.errorcode.get(exc.errno or 0, str(exc))
                    log.warning("contact-me listener cannot accept: %s", reason)
                self._accept_failing = True
                if self._connections:
                    self._make_room(len(self._connections) - 1)
                return
            self._accept_failing = False
            self._admit(sock, addr)

    def tick(self, now: float | None = None) -> None:
        """Drop connections that outlived their `timeout` (call once per loop turn)."""
        now = self._clock() if now is None else now
        while self._connections:
            conn = next(iter(self._connections.values()))
            if conn.deadline > now:
                break  # ordered by accept time, so by deadline
            self.stats.timed_out += 1
            log.debug("contact-me connection from %s timed out", _show(conn.peer))
            self._close(conn)

    def next_deadline(self) -> float | None:
        """When `tick` will next have something to do, or None."""
        for conn in self._connections.values():
            return conn.deadline
        return None

    def close(self) -> None:
        """Stop listening and drop every connection."""
        for conn in list(self._connections.values()):
            self._close(conn)
        self._selector.unregister(self._sock)
        self._sock.close()

    # ------------------------------------------------------------------ connections

    def _on_listener_event(self, mask: int) -> None:
        self.on_readable()

    def _admit(
        self, sock: socket.socket, addr: tuple[str, int] | tuple[str, int, int, int]
    ) -> None:
        sock.setblocking(False)
        if len(self._connections) >= self._max:
            self._make_room(self._max - 1)
        conn = _Connection(
            sock=sock,
            peer=_peer(addr),
            deadline=self._clock() + self._timeout,
            http=h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD),
        )
        self._connections[sock.fileno()] = conn
        self.stats.accepted += 1
        self._selector.register(sock, selectors.EVENT_READ, lambda mask: self._on_event(conn, mask))

    def _make_room(self, most: int) -> None:
        """Leave at most `most` connections open: serve the oldest whose request is
        waiting, then drop the oldest."""
        for conn in list(itertools.islice(self._connections.values(), _SERVE_BEFORE_EVICTING)):
            if len(self._connections) <= most:
                return
            if self._is_open(conn) and not conn.answered and _has_bytes_waiting(conn.sock):
                self._on_event(conn, selectors.EVENT_READ)
        while len(self._connections) > most:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        conn = next(iter(self._connections.values()))
        self.stats.evicted += 1
        log.debug("contact-me connection from %s dropped: too many open", _show(conn.peer))
        self._close(conn)

    def _on_event(self, conn: _Connection, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                self._flush(conn)
            if mask & selectors.EVENT_READ and self._is_open(conn):
                self._read(conn)
        except Exception:
            # Whatever one unauthenticated request does, it must not take the daemon's
            # loop down: drop that connection and go on.
            log.exception("contact-me connection from %s dropped", _show(conn.peer))
            self._close(conn)

    def _read(self, conn: _Connection) -> None:
        size = _RECV
        if conn.http.their_state is h11.IDLE and not conn.answered:
            # Until the head is complete, never hand h11 more than MAX_HEAD + 1 bytes, so a
            # head over 8 KiB is refused (431) even when it arrives in one piece.
            size = min(_RECV, MAX_HEAD + 1 - conn.read)
            if size <= 0:
                self._answer(conn, ContactMeDecision(status=431, reason="request head over 8 KiB"))
                return
        try:
            data = conn.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.read += len(data)
        if conn.lingering or conn.answered:
            # The answer is out: what the client still sends is dropped, EOF closes.
            if not data or conn.read > MAX_READ:
                self._close(conn)
            return
        if conn.read > MAX_READ:
            self._close(conn)
            return
        conn.http.receive_data(data)
        self._process(conn)

    def _process(self, conn: _Connection) -> None:
        """Take h11's events until the request is complete, refused, or needs more bytes."""
        while not conn.answered:
            try:
                event = conn.http.next_event()
            except h11.RemoteProtocolError as exc:
                self._answer(conn, ContactMeDecision(status=exc.error_status_hint, reason=str(exc)))
                return
            except ValueError:
                # h11 0.14 lets int() fail on a Content-Length of thousands of digits.
                self._answer(conn, ContactMeDecision(status=400, reason="malformed request head"))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._on_request(conn, event)
            elif isinstance(event, h11.Data):
                conn.body += event.data
                if len(conn.body) > MAX_BODY:
                    self._answer(conn, ContactMeDecision(status=413, reason="body over 4 KiB"))
            elif isinstance(event, h11.EndOfMessage):
                decision = decide(
                    conn.method,
                    conn.path,
                    conn.query,
                    conn.content_type,
                    bytes(conn.body),
                    allow_redirect=self.allow_redirect,
                    secure_mode=self.secure_mode(),
                )
                self._answer(conn, decision)
            elif isinstance(event, h11.ConnectionClosed):
                self._close(conn)
                return

    def _on_request(self, conn: _Connection, request: h11.Request) -> None:
        try:
            target = request.target.decode("ascii")
        except UnicodeDecodeError:
            self._answer(conn, ContactMeDecision(status=400, reason="request target not ASCII"))
            return
        conn.method = request.method.decode("ascii", "replace")
        conn.path, conn.query = split_target(target)
        length: int | None = None
        for name, value in request.headers:
            if name == b"content-length":
                length = int(value)  # h11 has checked it is a number
            elif name == b"content-type":
                conn.content_type = value.decode("latin-1")
        refused = precheck(conn.method, conn.path, length)
        if refused is not None:
            self._answer(conn, refused)
        elif conn.http.they_are_waiting_for_100_continue:
            _queue(conn, h11.InformationalResponse(status_code=100, headers=[]))
            self._flush(conn)

    def _answer(self, conn: _Connection, decision: ContactMeDecision) -> None:
        """Send the answer of `decision`, then report a contact-me (spec §4.1: answer first)."""
        conn.answered = True
        status = decision.status
        phrase = http.HTTPStatus(status).phrase.encode("ascii")
        try:
            _queue(conn, h11.Response(status_code=status, headers=_HEADERS, reason=phrase))
            _queue(conn, h11.EndOfMessage())
        except h11.LocalProtocolError:
            # h11 refuses to answer in this state (a response already started): just close.
            self._close(conn)
            return
        self.stats.answered[status] = self.stats.answered.get(status, 0) + 1
        log.debug(
            "contact-me from %s answered %d: %s",
            _show(conn.peer),
            status,
            decision.reason,
            extra={"PROVD_PEER": _show(conn.peer), "PROVD_HTTP_STATUS": status},
        )
        self._flush(conn)
        if decision.solicited:
            self.stats.contacts += 1
            request = ContactMeRequest(
                peer=conn.peer,
                redirect=decision.redirect,
                redirect_refused=decision.redirect_refused,
                reason=decision.reason,
            )
            try:
                self._on_contact(request)
            except Exception:
                # A bug in the daemon's queueing must not take the listener down with it.
                log.exception("contact-me callback failed")

    def _is_open(self, conn: _Connection) -> bool:
        return self._connections.get(conn.sock.fileno()) is conn

    def _flush(self, conn: _Connection) -> None:
        """Send what is queued; once the answer is out, close (or half-close and linger)."""
        if not self._is_open(conn):
            return
        try:
            sent = conn.sock.send(conn.out) if conn.out else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        del conn.out[:sent]
        if conn.out or conn.writing:
            # Wait for room in the socket buffer while bytes are left, and stop waiting
            # once they are out (a writable socket would wake the loop for ever).
            conn.writing = bool(conn.out)
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.writing else 0)
            self._selector.modify(conn.sock, mask, lambda m: self._on_event(conn, m))
        if conn.out or not conn.answered:
            return
        leftover, _closed = conn.http.trailing_data
        # The request was read to its end (h11 says MUST_CLOSE once our answer carries
        # `Connection: close`) and nothing follows it: close now.
        if conn.http.their_state in (h11.DONE, h11.MUST_CLOSE) and not leftover:
            self._close(conn)
            return
        # The client may still be sending (a refused body, pipelined bytes): closing now
        # would reset the connection and could destroy the answer before it is read.
        # Half-close, drop what arrives, and close on EOF or at the deadline.
        conn.lingering = True
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if not self._is_open(conn):
            return
        del self._connections[conn.sock.fileno()]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()


def _has_bytes_waiting(sock: socket.socket) -> bool:
    """Whether reading `sock` now would return something (bytes, EOF or an error)."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return True


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening, non-blocking socket on `host`:`port` (dual-stack for ``""`` / ``"::"``)."""
    where = f"{host or '*'} port {port}"
    try:
        if host in ("", "::"):
            try:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            except OSError:
                if host == "::":
                    raise
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                address: tuple[Any, ...] = ("0.0.0.0", port)  # noqa: S104
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                address = ("::", port, 0, 0)
        else:
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
            )
            family, kind, proto, _name, address = infos[0]
            sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve {where}: {exc.strerror}") from exc
    except OSError as exc:
        raise ListenError(f"cannot listen on {where}: {exc.strerror}") from exc
    return sock


def _queue(conn: _Connection, event: h11.Event) -> None:
    """Serialize `event` with h11 into the connection's outgoing bytes."""
    data = conn.http.send(event)
    if data:
        conn.out += data


def _peer(addr: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    """``(address, port)`` of a peer, an IPv4-mapped IPv6 address shown as IPv4."""
    host = addr[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (host, addr[1])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        host = str(ip.ipv4_mapped)
    return (host, addr[1])


def _show(peer: tuple[str, int]) -> str:
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
