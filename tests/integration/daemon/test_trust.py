"""Default trust `pin` (spec §7.4 [B]): trust on first use, refuse a changed key, reset."""

from __future__ import annotations

from provd.lab.pki import LabPKI
from provd.wpi.model import Reason
from tests.integration.daemon.harness import LabFactory, PhoneFactory
from tests.integration.daemon.lab import opened

WRITES_NEW = {
    "interaction": [
        {
            "step": [
                {"action": "WriteItems", "items": {"sntp-addr": "new.example.com"}},
                {"action": "CleanUp"},
            ]
        }
    ]
}


def test_a_server_with_another_key_is_refused_until_the_pin_is_reset(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    first = labs("basic")
    phone = phones(first).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    assert phone.status()["trust_pin"] == first.server_pin
    port = first.port
    first.stop()

    # Another server (another key) takes over the same address.
    impostor = labs(WRITES_NEW, port=port, pki=LabPKI.create())
    assert impostor.server_pin != first.server_pin
    mark = phone.mark()
    assert phone.ctl("contact")["ok"]
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "failed"
    refused = phone.wait_log(r"not the pinned one: refused", after=mark).string
    assert refused.split()[2] == "ERROR"
    assert impostor.server_pin in refused
    assert impostor.transcript == []  # not one document reached it
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}
    status = phone.status()
    assert status["trust_pin"] == first.server_pin
    assert status["last_contact"].endswith(" failed")

    # The administrator knows the server really changed: reset the pin.
    assert phone.ctl("reset-pin") == {"ok": True}
    assert phone.status()["trust_pin"] is None
    mark = phone.mark()
    assert phone.ctl("contact")["ok"]
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"
    assert opened(impostor, Reason.SOLICITED) == [1]
    assert phone.get("sntp-addr") == {"sntp-addr": "new.example.com"}
    assert phone.status()["trust_pin"] == impostor.server_pin
    assert phone.matching_log(r"pinned the key of", after=mark)
