"""`goto-secure-mode=nopin` end to end: the real daemon, the lab's two ports (spec §7.1, §7.3)."""

from __future__ import annotations

from provd.wpi.model import Reason, ReplyStatus
from tests.integration.secure.conftest import RigFactory
from tests.integration.secure.flows import (
    CLEAN_UP,
    bootstrap_scenario,
    nopin_write,
    opened_on,
    reply_to,
    wait_mode,
    wait_opened,
)
from tests.integration.secure.secrets_check import key_in_secure_store

READ_MAC = {"action": "ReadItems", "items": ["mac-addr"]}


def test_nopin_bootstrap_switches_to_mutual_tls_on_the_secure_port(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(nopin_write(), secure_steps=(READ_MAC, CLEAN_UP)))
    lab, phone = r.lab, r.phone
    [secure] = wait_opened(lab, "secure", Reason.START_UP)
    assert phone.wait_interaction(Reason.START_UP, count=2) == "completed"
    assert wait_mode(phone, "secure mode") == "secure mode"

    write = reply_to(lab, 1, "WriteItems")
    assert (write.channel, write.status, write.items) == ("default", ReplyStatus.ACCEPTED, ())
    subject = lab.material.client_subject
    assert lab.client_subjects == [subject]  # one connection, the phone's certificate
    assert lab.conductor.interactions[secure - 1].client == subject
    assert key_in_secure_store(phone, lab.material)

    # The next start-up goes straight to the secure port, with the client certificate.
    default_connections = lab.listener.connections if lab.listener else -1
    phone.stop()
    phone.start()
    wait_opened(lab, "secure", Reason.START_UP, count=2)
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    assert lab.client_subjects == [subject, subject]
    assert lab.listener is not None and lab.listener.connections == default_connections
    assert opened_on(lab, "default") == [1]


def test_nopin_takes_the_pem_bundle_form_of_the_client_certificate(rig: RigFactory) -> None:
    """spec §7.1 [B]: certificate, chain and key as PEM instead of PKCS#12."""
    write = nopin_write("{dls-client-certificate:pem}")
    r = rig(bootstrap_scenario(write, secure_steps=(READ_MAC, CLEAN_UP)))
    wait_opened(r.lab, "secure", Reason.START_UP)
    assert wait_mode(r.phone, "secure mode") == "secure mode"
    assert r.lab.client_subjects == [r.lab.material.client_subject]


def test_a_client_certificate_expiring_soon_is_warned_about(rig: RigFactory) -> None:
    """The lab's client certificate is valid for a year: warn 400 days ahead (spec §7.4)."""
    write = nopin_write()
    r = rig(
        bootstrap_scenario(write, secure_steps=(READ_MAC, CLEAN_UP)),
        settings={"tls.cert-expiry-warn-days": 400},
    )
    assert wait_mode(r.phone, "secure mode") == "secure mode"
    [warning] = r.phone.status()["warnings"]
    assert warning.startswith(f"client certificate {r.lab.material.client_subject} expires on")
    shown = r.phone.provctl("status")
    assert warning in shown.stdout, shown.stdout
