"""The lab server over real loopback TLS, with the phone's own HTTPS client and session.

Covers: a whole start-up interaction recorded in the transcript; the JSESSIONID cookie
(set once per interaction, presented back, Path and Secure); keep-alive and a server
that closes between messages; fragment reassembly through the server; hostile steps
and what the phone core answers; the contact-me sender; and the `python -m provd.lab`
command.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.lab.contactme import ContactMeError, send_contact_me
from provd.lab.scenario import Scenario, Step, script
from provd.lab.server import LabServer
from provd.lab.transcript import Record
from provd.service.interaction import InteractionResult, Perform, run_interaction
from provd.store.book import CatalogBook
from provd.store.catalog import Catalog, load_catalog
from provd.store.items import ItemStore
from provd.transport.errors import TransportError
from provd.transport.https import HttpsChannel
from provd.transport.tls import TrustPolicy
from provd.wpi.basic import BASIC_ITEMS, basic_items, contact_me_uri
from provd.wpi.events import ActionRequested, PhoneAnswer, Reply
from provd.wpi.model import Action, Item, ItemStatus, Reason, ReplyStatus
from provd.wpi.respond import answer_item_action
from provd.wpi.session import PhoneSession, SessionConfig

ROOT = Path(__file__).resolve().parents[2]


#: The lab phone's identity items, reported live (spec §3.2).
DEVICE: dict[str, str] = {
    "device-type": "OpenStage 60",
    "related-device-type": "OpenStage 60",
    "software-type": "Siemens SIP",
    "related-software-type": "Siemens SIP",
    "software-version": "V3 R5.31.0",
    "related-software-version": "V3 R5.31.0",
    "mac-addr": "00:01:E3:25:EA:13",
    "part-number": "S30817-S7403-A101-015",
    "contact-me-uri": contact_me_uri("127.0.0.1", 8085),
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT / "config" / "items.toml")


@pytest.fixture
def book(catalog: Catalog, tmp_path: Path) -> Iterator[CatalogBook]:
    with ItemStore.open(tmp_path / "state") as store:
        yield CatalogBook(catalog, store, dynamic=DEVICE)


def _perform(book: CatalogBook) -> Perform:
    def perform(event: ActionRequested, session: PhoneSession) -> PhoneAnswer:
        if event.action in (Action.READ_ALL_ITEMS, Action.READ_ITEMS, Action.WRITE_ITEMS):
            return answer_item_action(event, book, busy=False)
        return Reply(status=ReplyStatus.FAILED, items=())

    return perform


def _interact(
    lab: LabServer,
    book: CatalogBook,
    *,
    reason: Reason = Reason.START_UP,
    nonce: str = "0123456789ABCDEF0123456789ABCDEF",
    max_message: int = 50_000,
    channel: HttpsChannel | None = None,
) -> InteractionResult:
    session = PhoneSession(
        reason=reason,
        nonce=nonce,
        items=basic_items({name: book.value_of(name) for name in BASIC_ITEMS}),
        config=SessionConfig(max_message=max_message),
    )
    own = channel is None
    channel = channel or HttpsChannel(lab.url, trust=TrustPolicy.pinned(lab.server_pin))
    try:
        return run_interaction(session, channel, _perform(book))
    finally:
        if own:
            channel.close()


def _phone(records: list[Record]) -> list[Record]:
    return [r for r in records if r.from_phone]


def _server(records: list[Record]) -> list[Record]:
    return [r for r in records if not r.from_phone]


def test_start_up_read_all_write_clean_up_is_recorded_in_order(book: CatalogBook) -> None:
    with LabServer("demo") as lab:
        result = _interact(lab, book)
        records = lab.transcript
    assert result.ok and result.actions == ["ReadAllItems", "WriteItems"]
    assert [(r.direction.value, r.reason, r.action) for r in records] == [
        ("phone-to-server", Reason.START_UP, None),
        ("server-to-phone", None, "ReadAllItems"),
        ("phone-to-server", Reason.REPLY_TO, "ReadAllItems"),
        ("server-to-phone", None, "WriteItems"),
        ("phone-to-server", Reason.REPLY_TO, "WriteItems"),
        ("server-to-phone", None, "CleanUp"),
    ]
    assert {r.interaction for r in records} == {1}
    assert [r.http_status for r in _server(records)] == [200, 200, 200]
    start_up = records[0]
    assert [i.name for i in start_up.items] == list(BASIC_ITEMS)
    assert Item(name="mac-addr", value="00:01:E3:25:EA:13") in start_up.items
    read_all = records[2]
    assert read_all.status is ReplyStatus.ACCEPTED and len(read_all.items) > 20
    assert records[4].items == (Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),)
    assert b"<Action>WriteItems</Action>" in records[3].body
    assert book.value_of("ldap-server-address", 1) == "ldap.example.com"


def test_ca_trust_with_a_name_check_accepts_the_lab_certificate(book: CatalogBook) -> None:
    with LabServer("basic") as lab:
        trust = TrustPolicy.from_ca_pem(lab.ca_pem, check_name=True)
        with HttpsChannel(lab.url, trust=trust) as channel:
            assert _interact(lab, book, channel=channel).ok


def test_a_different_pin_is_refused_before_any_document(book: CatalogBook) -> None:
    with LabServer("basic") as lab:
        with HttpsChannel(lab.url, trust=TrustPolicy.pinned("0" * 64)) as channel:
            result = _interact(lab, book, channel=channel)
        assert not result.ok and result.failure is not None and "tls" in result.failure
        assert lab.transcript == []


def test_cookie_is_set_once_per_interaction_and_presented_back(book: CatalogBook) -> None:
    with LabServer("basic") as lab:
        with HttpsChannel(lab.url, trust=TrustPolicy.pinned(lab.server_pin)) as channel:
            assert _interact(lab, book, channel=channel).ok
            # One channel, one TLS connection: keep-alive across the whole interaction.
            assert channel.connections == 1
        assert _interact(lab, book, reason=Reason.LOCAL_CHANGES, nonce="F" * 32).ok
        records = lab.transcript
        first, second = (i.cookie for i in lab.conductor.interactions)
    assert first != second
    assert [r.cookie for r in _server(records)] == [True, False, False, True]
    assert [r.cookie for r in _phone(records)] == [False, True, True, False]
    assert [r.interaction for r in _phone(records)] == [1, 1, 1, 2]


def test_set_cookie_header_has_the_originals_path_and_secure_flag() -> None:
    with LabServer("basic") as lab:
        context = ssl.create_default_context(cadata=lab.ca_pem.decode())
        connection = http.client.HTTPSConnection("127.0.0.1", lab.port, context=context)
        body = (
            b'<WorkpointMessage><Message nonce="AB"><ReasonForContact>start-up'
            b"</ReasonForContact></Message></WorkpointMessage>"
        )
        connection.request("POST", "/DeploymentService/LoginService", body=body)
        response = connection.getresponse()
        response.read()
        cookie = response.getheader("Set-Cookie") or ""
        connection.request("POST", "/elsewhere", body=body)
        elsewhere = connection.getresponse()
        elsewhere.read()
        connection.close()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/xml; charset=utf-8"
    name, _, rest = cookie.partition("=")
    assert name == "JSESSIONID"
    assert rest.split("; ")[1:] == ["Path=/DeploymentService", "Secure"]
    assert elsewhere.status == 404


def test_a_server_closing_between_messages_is_followed_with_the_same_cookie(
    book: CatalogBook,
) -> None:
    scenario = Scenario(scripts=(script(Step(action="ReadAllItems", close=True), "CleanUp"),))
    with LabServer(scenario) as lab:
        with HttpsChannel(lab.url, trust=TrustPolicy.pinned(lab.server_pin)) as channel:
            assert _interact(lab, book, channel=channel).ok
            assert channel.connections == 2
        records = lab.transcript
    assert [r.cookie for r in _phone(records)] == [False, True]
    assert {r.interaction for r in records} == {1}


def test_fragmented_read_all_is_reassembled_by_the_server(book: CatalogBook) -> None:
    with LabServer(Scenario(scripts=(script("ReadAllItems"),))) as lab:
        result = _interact(lab, book, max_message=800)
        records = lab.transcript
    assert result.ok
    asks = [r for r in _server(records) if r.action == Action.GET_NEXT_FRAGMENT.value]
    replies = [r for r in _phone(records) if r.reason is Reason.REPLY_TO]
    assert len(replies) >= 3 and len(asks) == len(replies) - 1
    assert all(len(r.body) <= 800 for r in replies)
    assert replies[-1].reassembled == tuple(book.read_all())
    assert _server(records)[-1].action == "CleanUp"


def test_hostile_steps_get_the_answers_the_phone_core_prescribes(book: CatalogBook) -> None:
    with LabServer("hostile") as lab:
        results = [_interact(lab, book, nonce=f"{n:032X}") for n in range(1, 8)]
        records = lab.transcript

    def phone_last(contact: int) -> Record:
        return [r for r in _phone(records) if r.interaction == contact][-1]

    for contact in (1, 2, 3):  # DTD, wrong nonce, garbage: the phone cleans up
        assert not results[contact - 1].ok
        assert phone_last(contact).reason is Reason.CLEAN_UP
    assert phone_last(1).items == (Item(name="cleanup-reason", value="invalid document"),)
    assert phone_last(2).items == (Item(name="cleanup-reason", value="invalid nonce"),)
    assert phone_last(3).items == (Item(name="cleanup-reason", value="invalid document"),)
    assert book.value_of("sntp-addr") != "evil.example.com"
    unknown = phone_last(4)  # spec §3.3 [B]: reply-to, the name received, failed
    assert (unknown.reason, unknown.action, unknown.status) == (
        Reason.REPLY_TO,
        "SelfDestruct",
        ReplyStatus.FAILED,
    )
    assert results[3].ok
    assert results[4].ok and results[5].ok  # empty 200 and 204 end like CleanUp
    assert not results[6].ok and results[6].failure == "HTTP 500"
    assert [r.http_status for r in _server(records) if r.interaction in (5, 6, 7)] == [
        200,
        204,
        500,
    ]


def test_transcript_file_gets_one_json_line_per_record(book: CatalogBook, tmp_path: Path) -> None:
    path = tmp_path / "transcript.jsonl"
    with path.open("w", encoding="utf-8") as sink, LabServer("basic", transcript_file=sink) as lab:
        assert _interact(lab, book).ok
        count = len(lab.transcript)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == count == 6
    assert lines[0]["reason"] == "start-up" and "<WorkpointMessage" in lines[0]["body"]
    assert lines[-1]["action"] == "CleanUp"


def test_wait_for_sees_records_of_an_exchange_in_another_thread(book: CatalogBook) -> None:
    seen: list[Record] = []
    with LabServer("basic") as lab:
        waiter = threading.Thread(
            target=lambda: seen.append(lab.wait_for(lambda r: r.action == "CleanUp", timeout=10))
        )
        waiter.start()
        assert _interact(lab, book).ok
        waiter.join()
    assert [r.interaction for r in seen] == [1]


def test_stop_returns_while_a_kept_alive_connection_is_idle(book: CatalogBook) -> None:
    lab = LabServer("basic").start()
    channel = HttpsChannel(lab.url, trust=TrustPolicy.pinned(lab.server_pin))
    assert _interact(lab, book, channel=channel).ok
    lab.stop()  # must not wait for the idle connection's timeout
    with pytest.raises(TransportError):
        channel.post(b"<after/>")
    channel.close()


# --------------------------------------------------------------------------- contact-me


class _ContactMeRecorder(http.server.BaseHTTPRequestHandler):
    """A stand-in phone: records each request and answers 204 [G p.15]."""

    seen: list[tuple[str, str, str, dict[str, list[str]]]] = []

    def _record(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        fields = urllib.parse.parse_qs(query or body.decode())
        self.seen.append((self.command, path, self.headers.get("Content-Type", ""), fields))
        self.send_response(204)
        self.end_headers()

    def do_POST(self) -> None:
        self._record(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self) -> None:
        self._record(b"")

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def phone_listener() -> Iterator[tuple[str, list[tuple[str, str, str, dict[str, list[str]]]]]]:
    seen: list[tuple[str, str, str, dict[str, list[str]]]] = []
    handler = type("Recorder", (_ContactMeRecorder,), {"seen": seen})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/contact_dls.html/ContactDLS", seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_contact_me_posts_the_form_and_returns_the_status(
    phone_listener: tuple[str, list[tuple[str, str, str, dict[str, list[str]]]]],
) -> None:
    url, seen = phone_listener
    assert send_contact_me(url) == 204
    assert send_contact_me(url, dls_ip_addr="127.0.0.1", dls_ip_port=18443) == 204
    with LabServer("basic") as lab:
        assert lab.contact_me(url, method="GET") == 204
    assert seen[0] == (
        "POST",
        "/contact_dls.html/ContactDLS",
        "application/x-www-form-urlencoded; charset=utf-8",
        {"ContactMe": ["true"]},
    )
    assert seen[1][3] == {
        "ContactMe": ["true"],
        "dls_ip_addr": ["127.0.0.1"],
        "dls_ip_port": ["18443"],
    }
    assert seen[2][:2] == ("GET", "/contact_dls.html/ContactDLS")
    assert seen[2][3] == {"ContactMe": ["true"]}


def test_contact_me_to_a_bare_address_uses_the_guides_path(
    phone_listener: tuple[str, list[tuple[str, str, str, dict[str, list[str]]]]],
) -> None:
    url, seen = phone_listener
    bare = url.removesuffix("/contact_dls.html/ContactDLS").removeprefix("http://")
    assert send_contact_me(bare, fields={"ContactMe": "false"}) == 204
    assert seen[0][1:] == (
        "/contact_dls.html/ContactDLS",
        "application/x-www-form-urlencoded; charset=utf-8",
        {"ContactMe": ["false"]},
    )


def test_contact_me_to_nobody_raises() -> None:
    with LabServer("basic") as lab:  # a port that was just in use and is now closed
        port = lab.port
    with pytest.raises(ContactMeError, match=r"contact-me to 127\.0\.0\.1"):
        send_contact_me(f"http://127.0.0.1:{port}/", timeout=2)


# --------------------------------------------------------------------------- the command


def test_lab_command_serves_prints_and_stops_on_sigterm(book: CatalogBook, tmp_path: Path) -> None:
    transcript = tmp_path / "lab.jsonl"
    ca = tmp_path / "ca.pem"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "provd.lab", "serve", "--port", "0", "--scenario", "demo"]
    command += ["--transcript", str(transcript), "--ca-out", str(ca)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert process.stdout is not None
        header = [process.stdout.readline() for _ in range(4)]
        url = header[0].removeprefix("lab server: ").strip()
        pin = header[3].rpartition(": ")[2].strip()
        assert header[1].startswith("scenario: demo")
        assert header[2].startswith("CA SHA-256 fingerprint: ")
        session = PhoneSession(
            reason=Reason.START_UP,
            nonce="C" * 32,
            items=basic_items({name: book.value_of(name) for name in BASIC_ITEMS}),
        )
        trust = TrustPolicy.from_ca_pem(ca.read_bytes())
        with HttpsChannel(url, trust=trust) as channel:
            assert channel.url == url
            result = run_interaction(session, channel, _perform(book))
            assert channel.peer_spki_sha256 == pin
        assert result.ok
        lines = [process.stdout.readline().rstrip("\n") for _ in range(6)]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert lines[0].startswith("#1 phone → server  start-up  14 items")
    assert lines[1] == "#1 server → phone  ReadAllItems"
    assert lines[4] == (
        "#1 phone → server  reply-to WriteItems accepted  1 rejected: "
        "socketed-headset-mode=unknown item"
    )
    assert lines[5] == "#1 server → phone  CleanUp"
    assert len(transcript.read_text(encoding="utf-8").splitlines()) == 6


def test_lab_command_refuses_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[interaction]]\ncontact = 'one'\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "provd.lab", "serve", "--port", "0", "--scenario", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2
    assert "bad.toml: interaction[0].contact: must be a whole number" in done.stderr
