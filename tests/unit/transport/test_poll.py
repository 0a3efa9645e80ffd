"""The DCMP poller (spec §4.2) against a real HTTP server on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from provd.transport.poll import PollResult, poll, poll_url

MAC = "12:34:56:78:9a:bc"


class PollServer(ThreadingHTTPServer):
    """Answers every GET with `status` and records the request targets."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.targets: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/dcmp/"


class _Handler(BaseHTTPRequestHandler):
    server: PollServer

    def do_GET(self) -> None:
        self.server.targets.append(self.path)
        body = b"pending" if self.server.status == 202 else b""
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[PollServer]:
    running = PollServer()
    thread = threading.Thread(target=running.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join(5)


def test_poll_url_appends_contact_me_and_the_mac_with_its_colons() -> None:
    # [G p.15]: http://provisioning.mycompany.com/dcmp/contact-me?device-id=12:34:56:78:9a:bc
    assert poll_url("http://provisioning.mycompany.com/dcmp/", MAC) == (
        "http://provisioning.mycompany.com/dcmp/contact-me?device-id=12:34:56:78:9a:bc"
    )


def test_poll_url_adds_a_missing_slash() -> None:
    assert poll_url("http://dcmp:8080/dcmp", MAC) == (
        "http://dcmp:8080/dcmp/contact-me?device-id=12:34:56:78:9a:bc"
    )


def test_poll_url_percent_encodes_what_a_query_value_cannot_hold() -> None:
    assert poll_url("http://h/", "a b&c=d#e") == "http://h/contact-me?device-id=a%20b%26c%3Dd%23e"


def test_answer_202_asks_for_a_solicited_interaction(server: PollServer) -> None:
    server.status = 202
    result = poll(server.base, MAC)
    assert result == PollResult(solicited=True, status=202)
    assert result.ok
    assert server.targets == ["/dcmp/contact-me?device-id=12:34:56:78:9a:bc"]


def test_answer_200_means_nothing_pending(server: PollServer) -> None:
    server.status = 200
    result = poll(server.base, MAC)
    assert result == PollResult(solicited=False, status=200)
    assert result.ok


@pytest.mark.parametrize("status", [500, 404, 204, 301])
def test_any_other_answer_is_an_error_and_asks_for_nothing(server: PollServer, status: int) -> None:
    server.status = status
    result = poll(server.base, MAC)
    assert not result.solicited
    assert result.status == status
    assert result.error is not None and f"HTTP {status}" in result.error


def test_closed_port_is_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = poll(f"http://127.0.0.1:{port}/dcmp/", MAC, timeout=2.0)
    assert not result.solicited
    assert result.status is None
    assert result.error is not None and "cannot connect" in result.error


def test_server_that_never_answers_is_an_error_after_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result = poll(f"http://127.0.0.1:{port}/", MAC, timeout=0.2)
    assert not result.solicited
    assert result.error is not None and "did not answer in time" in result.error


def test_server_that_answers_garbage_is_an_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def answer_garbage() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        result = poll(f"http://127.0.0.1:{port}/", MAC, timeout=2.0)
        thread.join(5)
    assert not result.solicited
    assert result.error is not None


@pytest.mark.parametrize("base", ["https://dcmp.example/", "ftp://dcmp/", "dcmp/", "http://h:x/"])
def test_poll_url_that_is_not_plain_http_is_an_error_without_network(base: str) -> None:
    result = poll(base, MAC)
    assert not result.solicited
    assert result.error is not None
