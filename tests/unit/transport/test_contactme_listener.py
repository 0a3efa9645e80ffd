"""The contact-me listener over real loopback sockets, driven by a real `selectors` loop."""

from __future__ import annotations

import http.client
import queue
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from provd.transport.contactme import (
    MAX_HEAD,
    ContactMeListener,
    ContactMeRequest,
    ListenError,
)
from provd.wpi.contactme import CONTACT_PATH, MAX_BODY
from provd.wpi.model import Reason
from provd.wpi.triggers import TriggerQueue

FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
WAIT = 5.0  # how long a test waits for something that should happen at once


class Clock:
    """A clock the test moves by hand (the listener's timeouts)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loop:
    """The daemon's loop in small: one thread, one selector, the listener's fds in it."""

    def __init__(self, *, host: str = "127.0.0.1", **options: object) -> None:
        self.selector = selectors.DefaultSelector()
        self.contacts: queue.Queue[ContactMeRequest] = queue.Queue()
        self.clock = Clock()
        self.listener = ContactMeListener(
            self.selector,
            self.contacts.put,
            host=host,
            port=0,
            clock=self.clock,
            **options,  # type: ignore[arg-type]
        )
        self.max_open = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, mask in self.selector.select(0.02):
                key.data(mask)
                self.max_open = max(self.max_open, self.listener.open_connections)
            self.listener.tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.listener.close()
        self.selector.close()

    @property
    def port(self) -> int:
        return self.listener.address[1]

    def contacts_now(self) -> list[ContactMeRequest]:
        """Every contact reported so far, once the loop has handled all earlier requests.

        A last good request is the barrier: the loop handles connections in order, so
        once its contact is reported every earlier request has been decided.
        """
        host = self.listener.address[0]
        connection = http.client.HTTPConnection(host, self.port, timeout=WAIT)
        try:
            connection.connect()
            assert connection.sock is not None
            barrier = connection.sock.getsockname()[1]
            connection.request("GET", f"{CONTACT_PATH}?ContactMe=true")
            assert connection.getresponse().status == 204
        finally:
            connection.close()
        seen: list[ContactMeRequest] = []
        while True:
            contact = self.contacts.get(timeout=WAIT)
            if contact.peer[1] == barrier:
                return seen
            seen.append(contact)


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.stop()


@pytest.fixture
def make_loop() -> Iterator[Callable[..., Loop]]:
    loops: list[Loop] = []

    def make(**options: object) -> Loop:
        loops.append(Loop(**options))  # type: ignore[arg-type]
        return loops[-1]

    yield make
    for running in loops:
        running.stop()


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = response.read()


def request(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    chunked: bool = False,
) -> Answer:
    connection = http.client.HTTPConnection(host, port, timeout=WAIT)
    try:
        connection.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
        return Answer(connection.getresponse())
    finally:
        connection.close()


def raw(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """Send `data` on a fresh connection and read until the listener closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def closed_by_listener(sock: socket.socket) -> bool:
    """Whether the listener closed `sock` without an answer (an end, or a reset)."""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:  # closed with our bytes unread
        return True


# --------------------------------------------------------------------------- answers


def test_post_is_answered_204_with_empty_body_and_queues_one_contact(loop: Loop) -> None:
    answer = request(loop.port, "POST", CONTACT_PATH, b"ContactMe=true", FORM)
    assert answer.status == 204
    assert answer.headers["content-length"] == "0"
    assert answer.headers["server"] == "provd"
    assert answer.headers["connection"] == "close"
    assert answer.body == b""
    contact = loop.contacts.get(timeout=WAIT)
    assert contact.peer[0] == "127.0.0.1"
    assert contact.redirect is None
    assert loop.contacts_now() == []


def test_get_with_query_string_queues_one_contact(loop: Loop) -> None:
    assert request(loop.port, "GET", f"{CONTACT_PATH}?ContactMe=true").status == 204
    assert len(loop.contacts_now()) == 1


def test_contact_me_false_is_answered_204_and_queues_nothing(loop: Loop) -> None:
    answer = request(loop.port, "POST", CONTACT_PATH, b"ContactMe=false", FORM)
    assert answer.status == 204
    assert loop.contacts_now() == []


@pytest.mark.parametrize(
    ("method", "target", "body", "status"),
    [
        ("POST", "/", b"ContactMe=true", 404),
        ("GET", "/contact_dls.html/ContactDLS/?ContactMe=true", None, 404),
        ("PUT", CONTACT_PATH, b"ContactMe=true", 405),
        ("DELETE", f"{CONTACT_PATH}?ContactMe=true", None, 405),
        ("POST", CONTACT_PATH, b"ContactMe=true&pad=" + b"x" * MAX_BODY, 413),
    ],
    ids=["post-root", "get-trailing-slash", "put", "delete", "body-over-4-kib"],
)
def test_refused_requests_get_their_status_and_queue_nothing(
    loop: Loop, method: str, target: str, body: bytes | None, status: int
) -> None:
    answer = request(loop.port, method, target, body, FORM)
    assert answer.status == status
    assert answer.headers["content-length"] == "0"
    assert loop.contacts_now() == []


def test_chunked_body_over_4_kib_is_answered_413(loop: Loop) -> None:
    body = iter([b"ContactMe=true&pad=", b"x" * 3000, b"x" * 3000])
    answer = request(loop.port, "POST", CONTACT_PATH, body, FORM, chunked=True)  # type: ignore[arg-type]
    assert answer.status == 413
    assert loop.contacts_now() == []


def test_chunked_body_within_4_kib_is_taken(loop: Loop) -> None:
    body = iter([b"ContactMe=", b"true"])
    answer = request(loop.port, "POST", CONTACT_PATH, body, FORM, chunked=True)  # type: ignore[arg-type]
    assert answer.status == 204
    assert len(loop.contacts_now()) == 1


def test_expect_100_continue_gets_continue_then_204(loop: Loop) -> None:
    with socket.create_connection(("127.0.0.1", loop.port), timeout=WAIT) as sock:
        sock.sendall(
            b"POST /contact_dls.html/ContactDLS HTTP/1.1\r\nHost: phone\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 14\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"ContactMe=true")
        assert sock.recv(4096).startswith(b"HTTP/1.1 204 No Content\r\n")
    assert len(loop.contacts_now()) == 1


# --------------------------------------------------------------------------- redirect


def test_redirect_to_an_address_not_allowed_is_not_reported(make_loop: Callable[..., Loop]) -> None:
    loop = make_loop(allow_redirect=["192.0.2.10"])
    target = f"{CONTACT_PATH}?ContactMe=true&dls_ip_addr=198.51.100.66&dls_ip_port=18443"
    assert request(loop.port, "GET", target).status == 204
    [contact] = loop.contacts_now()
    assert contact.redirect is None


def test_redirect_to_an_allowed_address_is_reported(make_loop: Callable[..., Loop]) -> None:
    loop = make_loop(allow_redirect=["192.0.2.10"])
    body = b"ContactMe=true&dls_ip_addr=192.0.2.10&dls_ip_port=10443"
    assert request(loop.port, "POST", CONTACT_PATH, body, FORM).status == 204
    [contact] = loop.contacts_now()
    assert contact.redirect == ("192.0.2.10", 10443)


def test_redirect_is_not_reported_in_secure_mode(make_loop: Callable[..., Loop]) -> None:
    loop = make_loop(allow_redirect=["192.0.2.10"], secure_mode=lambda: True)
    target = f"{CONTACT_PATH}?ContactMe=true&dls_ip_addr=192.0.2.10"
    assert request(loop.port, "GET", target).status == 204
    [contact] = loop.contacts_now()
    assert contact.redirect is None


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS hello
        b"GARBAGE GARBAGE GARBAGE\r\n\r\n",
        b"GET /contact_dls.html/ContactDLS HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        b"POST /contact_dls.html/ContactDLS HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        b"GET /contact_dls.html/ContactDLS?ContactMe=true\xff HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /contact_dls.html/ContactDLS?ContactMe=true HTTP/1.1\r\nHost: a\r\nX: "
        + b"a" * (MAX_HEAD + 100)
        + b"\r\n\r\n",
        # urlsplit refuses this target ("Invalid IPv6 URL"): a 404, not a crash.
        b"GET //[ HTTP/1.1\r\nHost: a\r\n\r\n",
        # h11 0.14's int() fails on a Content-Length of 5,000 digits.
        b"POST /contact_dls.html/ContactDLS HTTP/1.1\r\nHost: a\r\nContent-Length: "
        + b"9" * 5000
        + b"\r\n\r\n",
    ],
    ids=[
        "tls-hello",
        "garbage",
        "bad-header",
        "bad-length",
        "non-ascii-target",
        "long-header",
        "unsplittable-target",
        "huge-length",
    ],
)
def test_malformed_request_gets_4xx_and_changes_nothing(loop: Loop, data: bytes) -> None:
    answer = raw(loop.port, data)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:80]
    assert loop.contacts_now() == []


def test_oversized_head_is_answered_431(loop: Loop) -> None:
    head = b"GET /contact_dls.html/ContactDLS?ContactMe=true HTTP/1.1\r\nX: " + b"a" * 20_000
    assert raw(loop.port, head, half_close=False).startswith(b"HTTP/1.1 431 ")
    assert loop.contacts_now() == []


def test_request_cut_short_changes_nothing(loop: Loop) -> None:
    answer = raw(loop.port, b"POST /contact_dls.html/ContactDLS HTTP/1.1\r\nContent-Length: 14")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
    assert loop.contacts_now() == []


# --------------------------------------------------------------------------- floods


def test_burst_of_1000_contact_mes_gets_1000_answers_of_204(loop: Loop) -> None:
    def one(i: int) -> int:
        body = b"ContactMe=true" if i % 2 else None
        target = CONTACT_PATH if i % 2 else f"{CONTACT_PATH}?ContactMe=true"
        return request(loop.port, "POST" if i % 2 else "GET", target, body, FORM).status

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(one, range(1000)))
    assert statuses.count(204) == 1000
    contacts = loop.contacts_now()
    assert len(contacts) == 1000
    assert loop.listener.stats.answered[204] >= 1000

    # The daemon queues them all; the queue makes one solicited interaction of them.
    triggers = TriggerQueue(uniform=lambda low, high: low, contact_gap=300.0)
    for i, contact in enumerate(contacts):
        triggers.contact_me(i * 0.001, contact.redirect)
    started = triggers.take(1.0)
    assert started is not None and started.reason is Reason.SOLICITED
    assert triggers.take(1.0) is None
    assert triggers.pending == ()


def test_flood_of_half_open_connections_never_passes_the_cap(
    make_loop: Callable[..., Loop],
) -> None:
    loop = make_loop(max_connections=16)
    sockets = []
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", loop.port), timeout=WAIT)
            sock.sendall(b"POST /contact_dls.html/ContactDLS HTTP/1.1\r\nHost: a\r\n")
            sockets.append(sock)
        # The listener still answers: the oldest half-open connections made room.
        assert request(loop.port, "GET", f"{CONTACT_PATH}?ContactMe=true").status == 204
        assert loop.contacts_now() != []
        assert closed_by_listener(sockets[0])  # the oldest was closed to make room
    finally:
        for sock in sockets:
            sock.close()
    assert 0 < loop.max_open <= 16
    assert loop.listener.stats.evicted >= 100 - 16


def test_a_waiting_contact_me_is_served_not_dropped_when_a_burst_needs_room() -> None:
    # Issue 8's contact-me abuse suite: idle connections churning in bursts pushed a
    # real server's complete request out unread. One accept turn is driven by hand here.
    selector = selectors.DefaultSelector()
    contacts: list[ContactMeRequest] = []
    listener = ContactMeListener(
        selector, contacts.append, host="127.0.0.1", port=0, max_connections=4
    )
    port = listener.address[1]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(4)]
    try:
        listener.on_readable()  # the four idle ones are open: the cap is reached
        real = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        real.sendall(f"GET {CONTACT_PATH}?ContactMe=true HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        # Loopback delivers within sendall: the request now waits in the kernel.
        idle += [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(8)]

        listener.on_readable()  # one turn: the real request, then eight more idle ones

        with real:
            assert real.recv(4096).startswith(b"HTTP/1.1 204 ")
        assert len(contacts) == 1
        assert listener.open_connections <= 4
    finally:
        for sock in idle:
            sock.close()
        listener.close()
        selector.close()


def test_connection_that_stays_quiet_is_dropped_after_the_timeout(loop: Loop) -> None:
    with socket.create_connection(("127.0.0.1", loop.port), timeout=WAIT) as sock:
        sock.sendall(b"GET /contact_dls.html/ContactDLS?ContactMe=true HTTP/1.1\r\n")
        loop.contacts_now()  # the loop has taken the connection in
        assert loop.listener.open_connections == 1
        loop.clock.now += 5.1
        assert closed_by_listener(sock)  # unanswered
    assert loop.listener.stats.timed_out == 1
    assert loop.contacts_now() == []


# --------------------------------------------------------------------------- addresses


def test_listener_on_every_address_takes_ipv4(make_loop: Callable[..., Loop]) -> None:
    loop = make_loop(host="")
    assert request(loop.port, "GET", f"{CONTACT_PATH}?ContactMe=true").status == 204
    assert (
        loop.contacts.get(timeout=WAIT).peer[0] == "127.0.0.1"
    )  # shown as IPv4, not ::ffff:127.0.0.1


def test_listener_on_ipv6_loopback(make_loop: Callable[..., Loop]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        loop = make_loop(host="::1")
    except ListenError:
        pytest.skip("no IPv6 loopback here")
    assert loop.listener.address[0] == "::1"
    answer = request(loop.port, "GET", f"{CONTACT_PATH}?ContactMe=true", host="::1")
    assert answer.status == 204
    assert loop.contacts.get(timeout=WAIT).peer[0] == "::1"


def test_address_in_use_is_a_listen_error(loop: Loop) -> None:
    with (
        selectors.DefaultSelector() as selector,
        pytest.raises(ListenError, match=r"cannot listen on 127\.0\.0\.1 port"),
    ):
        ContactMeListener(selector, lambda c: None, host="127.0.0.1", port=loop.port)
