"""After the commit: only the secure port, only a server from `dls-server-ca` (spec §7.3, §7.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provd.lab.pki import LabPKI
from provd.lab.server import LabServer
from provd.wpi.model import Reason
from tests.integration.daemon.harness import Phone
from tests.integration.secure.conftest import Rig, RigFactory
from tests.integration.secure.flows import (
    CLEAN_UP,
    bootstrap_scenario,
    nopin_write,
    opened_on,
    phone_messages,
    wait_handshake_error,
    wait_mode,
    wait_opened,
)
from tests.integration.secure.secrets_check import secure_dir

READ_MAC = {"action": "ReadItems", "items": ["mac-addr"]}
#: The phone would follow a contact-me to this host in Default Mode (spec §4.1), and
#: takes one contact-me after the other (no contact gap).
REDIRECTABLE = {"contact-me.allow-redirect": ["127.0.0.1"], "contact-me.contact-gap": 0}


def committed(rig: RigFactory, settings: Mapping[str, Any] | None = None) -> Rig:
    scenario = bootstrap_scenario(nopin_write(), secure_steps=(READ_MAC, CLEAN_UP))
    r = rig(scenario, settings=settings)
    wait_opened(r.lab, "secure", Reason.START_UP)
    assert r.phone.wait_interaction(Reason.START_UP, count=2) == "completed"
    assert wait_mode(r.phone, "secure mode") == "secure mode"
    return r


def default_port_traffic(lab: LabServer) -> tuple[int, int]:
    """Connections accepted on the default port, and documents received there."""
    assert lab.listener is not None
    return lab.listener.connections, len(phone_messages(lab, channel="default"))


def snapshot(phone: Phone) -> dict[str, bytes]:
    folder = secure_dir(phone)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_after_the_commit_the_default_port_is_never_contacted_again(rig: RigFactory) -> None:
    r = committed(rig, REDIRECTABLE)
    lab, phone = r.lab, r.phone
    before = default_port_traffic(lab)
    assert before == (1, 2)  # the bootstrap: one connection, start-up and one reply

    # A contact-me, even one naming the default port as the server to call.
    assert phone.contact_me() == 204
    wait_opened(lab, "secure", Reason.SOLICITED, count=1)
    mark = phone.mark()
    phone.contact_me(dls_ip_addr="127.0.0.1", dls_ip_port=lab.port)
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"
    # A local change.
    assert phone.ctl("set", items={"sntp-addr": "ntp.secure.example"})["ok"]
    wait_opened(lab, "secure", Reason.LOCAL_CHANGES)
    # A restart.
    phone.stop()
    phone.start()
    wait_opened(lab, "secure", Reason.START_UP, count=2)
    assert phone.wait_interaction(Reason.START_UP) == "completed"

    assert default_port_traffic(lab) == before
    assert opened_on(lab, "default") == [1]
    subject = lab.material.client_subject
    assert set(lab.client_subjects) == {subject} and len(lab.client_subjects) >= 4
    assert wait_mode(phone, "secure mode") == "secure mode"


def test_a_server_certificate_not_issued_by_dls_server_ca_is_refused(rig: RigFactory) -> None:
    r = committed(rig)
    lab, phone = r.lab, r.phone
    store = snapshot(phone)
    items = phone.ctl("get")["items"]
    records = len(lab.transcript)

    lab.restart_secure(LabPKI.create())  # the same port, a certificate from another CA
    mark = phone.mark()
    assert phone.ctl("contact")["ok"]
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "failed"
    # Logged as an error, naming the server and why.
    assert phone.wait_log(
        rf"ERROR .*TLS with {lab.secure_url} failed: server certificate .* not accepted", after=mark
    )
    assert wait_handshake_error(lab)  # the handshake failed: the phone hung up
    assert len(lab.transcript) == records  # not one document reached the impostor
    assert snapshot(phone) == store
    assert phone.ctl("get")["items"] == items
    assert wait_mode(phone, "secure mode") == "secure mode"
    assert default_port_traffic(lab) == (1, 2)

    # The real server again: accepted as before.
    lab.restart_secure()
    mark = phone.mark()
    assert phone.ctl("contact")["ok"]
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"


def test_a_bootstrap_naming_another_server_ca_never_commits(rig: RigFactory) -> None:
    """`dls-server-ca` is a CA that did not issue the lab's certificate: the switch to the
    secure port fails its handshake, and the phone does not commit."""
    r = rig(
        bootstrap_scenario(
            nopin_write(ca="{dls-server-ca:other}"), secure_steps=(READ_MAC, CLEAN_UP)
        )
    )
    lab, phone = r.lab, r.phone
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    assert phone.wait_interaction(Reason.START_UP, count=2) == "failed"
    assert wait_handshake_error(lab)
    assert opened_on(lab, "secure") == []
    assert wait_mode(phone, "default") == "default mode, switching to secure mode"
    assert not (secure_dir(phone) / "client.pem").exists()
