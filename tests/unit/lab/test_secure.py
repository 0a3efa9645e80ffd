"""The lab's Secure Mode: material the phone's parser takes, placeholders, the TAN check,
and the secure listener that requires a client certificate (spec §7)."""

from __future__ import annotations

import datetime
import io
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.lab.cli import main as lab_main
from provd.lab.conductor import Conductor
from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario, ScenarioError, Step, load_scenario, script
from provd.lab.secure import (
    WRONG_TAN,
    BootstrapMaterial,
    PlaceholderError,
    pem_body_lines,
    placeholders,
)
from provd.lab.server import LabServer
from provd.lab.transcript import Transcript
from provd.transport.credentials import (
    CLIENT_CERTIFICATE,
    SECURE_MODE_DATA,
    SERVER_CA,
    InvalidMaterial,
    WrongPin,
    check_pin_material,
    parse_nopin,
    parse_pin,
)
from provd.wpi.codec import emit_workpoint, parse_dls
from provd.wpi.model import Action, Item, Reason, ReplyStatus, WorkpointMessage

PIN = "2468135"  # password 2468, TAN 135


@pytest.fixture(scope="module")
def material() -> BootstrapMaterial:
    return BootstrapMaterial.create(LabPKI.create(), pin=PIN)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --------------------------------------------------------------------------- material


def test_pin_material_opens_with_the_password_part_and_holds_the_lab_ca(
    material: BootstrapMaterial,
) -> None:
    data = material.value("secure-mode-data")
    check_pin_material(data)  # what the phone checks before the PIN
    creds = parse_pin(data, "2468", now())
    assert creds.certificate == material.client.cert
    assert creds.server_cas == (material.server_ca.cert,)
    assert creds.chain == (material.client_ca.cert,)
    assert (material.password, material.tan) == ("2468", "135")
    with pytest.raises(WrongPin):
        parse_pin(data, "2469", now())


def test_nopin_material_parses_with_the_server_ca_item(material: BootstrapMaterial) -> None:
    creds = parse_nopin(
        material.value("dls-client-certificate"), [material.value("dls-server-ca")], now()
    )
    assert creds.subject == material.client_subject == "CN=provd lab phone,O=provd lab"
    assert creds.server_cas == (material.server_ca.cert,)
    pem = parse_nopin(
        material.value("dls-client-certificate", "pem"), [material.value("dls-server-ca")], now()
    )
    assert pem.certificate == material.client.cert


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("corrupt", "is not valid Base64"),
        ("truncated", "is not a PKCS#12 archive"),
        ("expired", "client certificate expired"),
        ("mismatched", "matches its private key"),
        ("pem-mismatched", "does not match"),
    ],
)
def test_broken_client_certificates_are_refused_by_the_phones_parser(
    material: BootstrapMaterial, variant: str, reason: str
) -> None:
    with pytest.raises(InvalidMaterial) as refused:
        parse_nopin(
            material.value("dls-client-certificate", variant),
            [material.value("dls-server-ca")],
            now(),
        )
    assert refused.value.item_names == (CLIENT_CERTIFICATE,)
    assert reason in refused.value.reason


def test_broken_server_ca_is_refused(material: BootstrapMaterial) -> None:
    with pytest.raises(InvalidMaterial) as refused:
        parse_nopin(
            material.value("dls-client-certificate"),
            [material.value("dls-server-ca", "corrupt")],
            now(),
        )
    assert refused.value.item_keys == ((SERVER_CA, 0),)


@pytest.mark.parametrize("variant", ["corrupt", "truncated"])
def test_broken_pin_material_is_refused_before_the_pin(
    material: BootstrapMaterial, variant: str
) -> None:
    with pytest.raises(InvalidMaterial) as refused:
        check_pin_material(material.value("secure-mode-data", variant))
    assert refused.value.item_names == (SECURE_MODE_DATA,)


@pytest.mark.parametrize(
    ("variant", "reason"),
    [("expired", "expired"), ("mismatched", "matches its private key"), ("no-ca", "dls-server-ca")],
)
def test_pin_material_broken_inside_shows_once_opened(
    material: BootstrapMaterial, variant: str, reason: str
) -> None:
    data = material.value("secure-mode-data", variant)
    check_pin_material(data)  # looks fine from outside
    with pytest.raises(InvalidMaterial) as refused:
        parse_pin(data, material.password, now())
    assert reason in refused.value.reason


def test_other_ca_variants_name_a_ca_that_did_not_issue_the_server_certificate(
    material: BootstrapMaterial,
) -> None:
    creds = parse_pin(material.value("secure-mode-data", "other-ca"), material.password, now())
    assert creds.server_cas[0].subject != material.server_ca.cert.subject
    other = material.value("dls-server-ca", "other")
    assert other != material.value("dls-server-ca") and "BEGIN CERTIFICATE" in other


def test_values_are_made_once(material: BootstrapMaterial) -> None:
    assert material.value("secure-mode-data", "expired") == material.value(
        "secure-mode-data", "expired"
    )


def test_a_pin_without_room_for_a_password_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 3"):
        BootstrapMaterial.create(LabPKI.create(), pin="123")


def test_pem_body_lines_are_the_base64_lines(material: BootstrapMaterial) -> None:
    lines = pem_body_lines(material.client.key_pem)
    assert lines and all("-----" not in line for line in lines)


# --------------------------------------------------------------------------- placeholders


def test_placeholders_expand_and_other_braces_stay(material: BootstrapMaterial) -> None:
    text = 'port {secure-port}, json {"a": 1}, {unknown}'
    assert material.expand(text, secure_port=18444) == 'port 18444, json {"a": 1}, {unknown}'
    assert material.expand("{dls-server-ca}") == material.server_ca.cert_pem.decode()
    assert placeholders("{secure-mode-data:expired} {x:y}") == [("secure-mode-data", "expired")]


def test_an_unknown_variant_is_refused_when_the_scenario_loads() -> None:
    with pytest.raises(PlaceholderError, match="no variant 'rotten'"):
        placeholders("{secure-mode-data:rotten}")
    data = {
        "interaction": [{"step": [{"action": "WriteItems", "items": {"x": "{dls-server-ca:y}"}}]}]
    }
    with pytest.raises(ScenarioError, match=r"items\.x: \{dls-server-ca:y\}"):
        Scenario.from_dict(data)


def test_secure_port_without_a_secure_listener_is_an_error(material: BootstrapMaterial) -> None:
    with pytest.raises(PlaceholderError, match="no secure listener"):
        material.expand("{secure-port}")


# --------------------------------------------------------------------------- scenarios


def test_the_secure_table_and_channels_are_read() -> None:
    scenario = Scenario.from_dict(
        {
            "secure": {"pin": "99887766", "wrong-tan": "ignore", "client-name": "desk 12"},
            "interaction": [
                {"channel": "secure", "reason": "start-up", "step": [{"action": "ReadItems"}]},
                {"reason": "start-up", "step": [{"action": "ReadAllItems"}]},
            ],
        }
    )
    assert (scenario.secure.pin, scenario.secure.wrong_tan) == ("99887766", "ignore")
    assert scenario.secure.client_name == "desk 12"
    assert scenario.uses_secure_mode
    secure = scenario.script_for(1, Reason.START_UP, "secure")
    default = scenario.script_for(1, Reason.START_UP, "default")
    assert secure is not None and secure.steps[0].action == "ReadItems"
    assert default is not None and default.steps[0].action == "ReadAllItems"
    assert not load_scenario("demo").uses_secure_mode


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"secure": {"pin": "123"}}, "secure.pin"),
        ({"secure": {"wrong-tan": "shrug"}}, "secure.wrong-tan"),
        ({"secure": {"pim": "1234"}}, "unknown key 'pim'"),
        ({"interaction": [{"channel": "sideways"}]}, "channel"),
    ],
)
def test_mistakes_in_secure_settings_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_dict(data)


@pytest.mark.parametrize("name", ["secure-nopin", "secure-pin", "secure-broken"])
def test_shipped_secure_scenarios_load_and_expand(name: str, material: BootstrapMaterial) -> None:
    scenario = load_scenario(name)
    assert scenario.uses_secure_mode
    for one in scenario.scripts:
        for step in one.steps:
            for item in step.items:
                assert "{" not in material.expand(item.value, secure_port=18444)


# --------------------------------------------------------------------------- the TAN check


def _conductor(material: BootstrapMaterial, wrong_tan: str = "clean-up") -> Conductor:
    scenario = Scenario(
        scripts=(
            script(
                Step(action="ReadAllItems"),
                Step(action="ReadItems", items=(Item(name="bootstrapping-tan"),)),
                Step(action="WriteItems", items=(Item(name="sntp-addr", value="x"),)),
                reason=Reason.START_UP,
            ),
        ),
        secure=Scenario.from_dict({"secure": {"pin": PIN, "wrong-tan": wrong_tan}}).secure,
    )
    return Conductor(scenario, Transcript(), material=material, cookie_source=lambda: "C")


def _post(conductor: Conductor, message: WorkpointMessage) -> tuple[str | None, list[Item]]:
    answer = conductor.handle(emit_workpoint(message), "C", channel="secure", client="CN=x")
    document = parse_dls(answer.body)
    return document.action, list(document.items)


def _exchange(conductor: Conductor, tan: str) -> tuple[str | None, list[Item]]:
    nonce = "A" * 32
    _post(conductor, WorkpointMessage(nonce=nonce, reason=Reason.START_UP, items=()))
    all_items = (Item(name="bootstrapping-tan", value=""), Item(name="e164", value="1"))
    reply = WorkpointMessage(
        nonce=nonce,
        reason=Reason.REPLY_TO,
        action=Action.READ_ALL_ITEMS,
        status=ReplyStatus.ACCEPTED,
        items=all_items,
    )
    action, _ = _post(conductor, reply)
    assert action == "ReadItems"  # ReadAllItems shows an empty TAN: not a TAN check
    reply = WorkpointMessage(
        nonce=nonce,
        reason=Reason.REPLY_TO,
        action=Action.READ_ITEMS,
        status=ReplyStatus.ACCEPTED,
        items=(Item(name="bootstrapping-tan", value=tan),),
    )
    return _post(conductor, reply)


def test_the_right_tan_lets_the_script_go_on(material: BootstrapMaterial) -> None:
    conductor = _conductor(material)
    action, _ = _exchange(conductor, "135")
    assert action == "WriteItems"
    [check] = conductor.tan_checks
    assert (check.interaction, check.channel, check.matched) == (1, "secure", True)
    first = conductor.transcript.records()[0]
    assert first.channel == "secure" and "client certificate CN=x" in first.note
    assert conductor.interactions[0].client == "CN=x"


def test_a_wrong_tan_is_answered_clean_up_wrong_tan(material: BootstrapMaterial) -> None:
    conductor = _conductor(material)
    action, items = _exchange(conductor, "999")
    assert action == "CleanUp"
    assert [(i.name, i.value) for i in items] == [("cleanup-reason", WRONG_TAN)]
    assert [c.matched for c in conductor.tan_checks] == [False]
    assert "TAN does not match" in conductor.transcript.records()[-2].note


def test_wrong_tan_ignore_goes_on_with_the_script(material: BootstrapMaterial) -> None:
    action, _ = _exchange(_conductor(material, "ignore"), "999")
    assert action == "WriteItems"


# --------------------------------------------------------------------------- the listener


@pytest.fixture(scope="module")
def lab() -> Iterator[LabServer]:
    with LabServer("secure-pin", pin=PIN) as server:
        yield server


def _client_context(lab: LabServer, tmp_path: Path, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=lab.ca_pem.decode())
    if with_cert:
        client = lab.material.client
        (tmp_path / "c.pem").write_bytes(client.chain_pem)
        (tmp_path / "c.key").write_bytes(client.key_pem)
        context.load_cert_chain(tmp_path / "c.pem", tmp_path / "c.key")
    return context


def _talk(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return tls.recv(100)


def test_the_secure_port_verifies_and_records_the_client_certificate(
    lab: LabServer, tmp_path: Path
) -> None:
    assert lab.secure_port != lab.port and lab.secure_url.endswith(lab.path)
    assert _talk(_client_context(lab, tmp_path, with_cert=True), lab.secure_port).startswith(
        b"HTTP/1.1 404"
    )
    assert lab.client_subjects[-1] == lab.material.client_subject


def test_the_secure_port_refuses_a_client_without_a_certificate(
    lab: LabServer, tmp_path: Path
) -> None:
    before = len(lab.secure_handshake_errors)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _talk(_client_context(lab, tmp_path, with_cert=False), lab.secure_port)
    # The lab's connection thread records it, possibly a moment after the client saw it.
    deadline = time.monotonic() + 5
    while len(lab.secure_handshake_errors) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(lab.secure_handshake_errors) == before + 1


def test_the_default_port_asks_no_client_certificate(lab: LabServer, tmp_path: Path) -> None:
    before = lab.listener.connections if lab.listener else 0
    assert _talk(_client_context(lab, tmp_path, with_cert=False), lab.port).startswith(b"HTTP")
    assert lab.listener is not None and lab.listener.connections == before + 1


def test_restart_secure_keeps_the_port_and_changes_the_certificate(tmp_path: Path) -> None:
    with LabServer("secure-nopin") as lab:
        port = lab.secure_port
        lab.restart_secure(LabPKI.create())
        assert lab.secure_port == port
        with pytest.raises(ssl.SSLCertVerificationError):
            _talk(_client_context(lab, tmp_path, with_cert=True), port)
        lab.restart_secure()
        assert _talk(_client_context(lab, tmp_path, with_cert=True), port).startswith(b"HTTP")


def test_a_lab_without_a_secure_port(tmp_path: Path) -> None:
    with LabServer("basic", secure_port=None) as lab:
        assert lab.secure_listener is None and lab.client_subjects == []
        with pytest.raises(RuntimeError):
            lab.secure_port  # noqa: B018
    with pytest.raises(ScenarioError, match="needs the secure listener"):
        LabServer("secure-pin", secure_port=None)


# --------------------------------------------------------------------------- the command


def test_the_command_refuses_a_short_pin() -> None:
    assert lab_main(["serve", "--scenario", "secure-pin", "--pin", "12"], out=io.StringIO()) == 2
