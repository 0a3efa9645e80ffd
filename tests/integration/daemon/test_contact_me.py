"""Contact-me (spec §4.1) and DCMP polling (spec §4.2) against the real daemon."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from provd.lab.contactme import send_contact_me
from provd.wpi.model import Reason
from tests.integration.daemon.harness import (
    MAC,
    LabFactory,
    PhoneFactory,
    StartedFactory,
    wait_until,
)
from tests.integration.daemon.lab import ConnectionRecorder, opened

PATH = "/contact_dls.html/ContactDLS"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def recorder() -> Iterator[ConnectionRecorder]:
    listener = ConnectionRecorder()
    yield listener
    listener.close()


def test_a_burst_of_1000_contact_me_gets_1000_answers_and_one_interaction(
    started: StartedFactory,
) -> None:
    lab, phone = started("basic")
    url = phone.contact_me_url
    mark = phone.mark()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: send_contact_me(url, timeout=10), range(1000)))
    assert statuses == [204] * 1000
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"
    time.sleep(0.5)
    # The first contact-me opened one interaction; the contact gap (300 s by default)
    # coalesced the other 999 into at most one pending interaction (spec §4.1 [B]).
    assert opened(lab, Reason.SOLICITED) == [2]
    assert phone.status()["pending"] == ["solicited"]
    assert phone.running


def test_a_redirect_to_an_address_not_allowed_is_never_contacted(
    started: StartedFactory, recorder: ConnectionRecorder
) -> None:
    lab, phone = started("basic")
    mark = phone.mark()
    assert phone.contact_me(dls_ip_addr="127.0.0.1", dls_ip_port=recorder.port) == 204
    # The contact-me still asks for an interaction, with the configured server.
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"
    assert opened(lab, Reason.SOLICITED) == [2]
    assert recorder.peers == []
    assert phone.matching_log("not in allow-redirect", after=mark)


def test_an_allowed_host_on_another_port_is_not_contacted(
    started: StartedFactory, recorder: ConnectionRecorder
) -> None:
    lab, phone = started("basic", settings={"contact-me.allow-redirect": ["127.0.0.1:1"]})
    mark = phone.mark()
    assert phone.contact_me(dls_ip_addr="127.0.0.1", dls_ip_port=recorder.port) == 204
    phone.wait_interaction(Reason.SOLICITED, after=mark, timeout=15)
    assert recorder.peers == []
    assert opened(lab, Reason.SOLICITED) == [2]


def test_a_redirect_to_an_allowed_server_is_followed(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    other = labs("basic", pki=lab.pki)  # the same server key: the pin holds
    phone = phones(lab, settings={"contact-me.allow-redirect": ["127.0.0.1"]}).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    mark = phone.mark()
    assert phone.contact_me(dls_ip_addr="127.0.0.1", dls_ip_port=other.port) == 204
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"
    assert opened(other, Reason.SOLICITED) == [1]
    assert opened(lab, Reason.SOLICITED) == []


def raw_request(port: int, data: bytes) -> bytes:
    """Send `data` as is, return what comes back until the phone closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


def status_of(port: int, method: str, path: str, body: bytes | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=FORM)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_malformed_contact_me_requests_get_4xx_and_change_nothing(
    started: StartedFactory,
) -> None:
    lab, phone = started("basic")
    port = phone.contact_me_port
    assert status_of(port, "POST", "/cgi-bin/ContactDLS", b"ContactMe=true") == 404
    assert status_of(port, "PUT", PATH, b"ContactMe=true") == 405
    assert status_of(port, "DELETE", PATH) == 405
    assert status_of(port, "POST", PATH, b"ContactMe=true&pad=" + b"x" * 5120) == 413
    assert raw_request(port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    conflicting = b"Host: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    answer = raw_request(port, b"POST " + PATH.encode() + b" HTTP/1.1\r\n" + conflicting)
    assert answer.startswith(b"HTTP/1.1 400")
    # Well-formed but not asking for anything: 204 and nothing queued (spec §4.1 [B]).
    assert status_of(port, "POST", PATH, b"ContactMe=false") == 204
    time.sleep(0.5)
    assert opened(lab) == [1]
    status = phone.status()
    assert status["pending"] == []
    assert status["running"] is None


class PollServer:
    """A DCMP polling server: answers `answers` in turn (the last one for ever)."""

    def __init__(self, answers: list[int]) -> None:
        self.paths: list[str] = []
        self.answers = answers
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                status = outer.answers[min(len(outer.paths), len(outer.answers)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/dcmp/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(("answer", "interactions"), [(202, 1), (200, 0)])
def test_a_poll_answered_202_opens_a_solicited_interaction_and_200_none(
    labs: LabFactory, phones: PhoneFactory, answer: int, interactions: int
) -> None:
    poller = PollServer([answer, 200])
    try:
        lab = labs("basic")
        phone = phones(lab, settings={"poll.url": poller.url, "poll.interval": 0.3}).start()
        assert phone.wait_interaction(Reason.START_UP) == "completed"
        wait_until(lambda: len(poller.paths) >= 3)
        if interactions:
            phone.wait_interaction(Reason.SOLICITED)
        assert len(opened(lab, Reason.SOLICITED)) == interactions
        assert poller.paths[0] == f"/dcmp/contact-me?device-id={MAC}"
        assert phone.status()["next_poll_in"] is not None
    finally:
        poller.close()


def test_the_server_can_set_the_poll_url_and_interval_as_items(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    poller = PollServer([202, 200])
    try:
        lab = labs(
            {
                "interaction": [
                    {
                        "reason": "start-up",
                        "step": [
                            {
                                "action": "WriteItems",
                                "items": {"dcmp-url": poller.url, "dcmp-interval": 1},
                            },
                            {"action": "CleanUp"},
                        ],
                    },
                    {"step": [{"action": "CleanUp"}]},
                ]
            }
        )
        phone = phones(lab).start()  # polling off in the settings
        assert phone.wait_interaction(Reason.START_UP) == "completed"
        assert phone.wait_interaction(Reason.SOLICITED) == "completed"
        assert poller.paths[0] == f"/dcmp/contact-me?device-id={MAC}"
        assert 0 < phone.status()["next_poll_in"] <= 1.0
    finally:
        poller.close()
