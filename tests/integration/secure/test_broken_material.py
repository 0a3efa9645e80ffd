"""Broken bootstrap material is refused at once: `invalid data`, nothing kept (spec §7.3 step 1)."""

from __future__ import annotations

from typing import Any

import pytest

from provd.wpi.model import Reason, ReplyStatus
from tests.integration.secure.conftest import RigFactory
from tests.integration.secure.flows import (
    PIN,
    bootstrap_scenario,
    nopin_write,
    opened_on,
    pending_prompt,
    pin_write,
    reply_to,
    statuses,
    type_pin,
    wait_mode,
    wait_opened,
    wait_prompt,
)
from tests.integration.secure.secrets_check import secure_dir

#: What is left in the secure store of a phone that has not bootstrapped.
NOTHING_PENDING = {"pending-bootstrap", "pending-credentials.json", "client.pem", "server-ca.pem"}

BROKEN: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "nopin-corrupt-base64": (
        nopin_write("{dls-client-certificate:corrupt}"),
        {"dls-client-certificate": "invalid data"},
    ),
    "nopin-truncated-archive": (
        nopin_write("{dls-client-certificate:truncated}"),
        {"dls-client-certificate": "invalid data"},
    ),
    "nopin-expired-certificate": (
        nopin_write("{dls-client-certificate:expired}"),
        {"dls-client-certificate": "invalid data"},
    ),
    "nopin-key-not-matching": (
        nopin_write("{dls-client-certificate:mismatched}"),
        {"dls-client-certificate": "invalid data"},
    ),
    "nopin-pem-key-not-matching": (
        nopin_write("{dls-client-certificate:pem-mismatched}"),
        {"dls-client-certificate": "invalid data"},
    ),
    "nopin-corrupt-server-ca": (
        nopin_write(ca="{dls-server-ca:corrupt}"),
        {"dls-server-ca[0]": "invalid data"},
    ),
    "pin-corrupt-base64": (
        pin_write("{secure-mode-data:corrupt}"),
        {"secure-mode-data": "invalid data"},
    ),
    "pin-truncated-archive": (
        pin_write("{secure-mode-data:truncated}"),
        {"secure-mode-data": "invalid data"},
    ),
}


def _bootstrap_refused(rig: RigFactory, write: dict[str, Any]) -> tuple[Any, Any]:
    r = rig(bootstrap_scenario(write))
    assert r.phone.wait_interaction(Reason.START_UP) == "completed"
    return r, reply_to(r.lab, 1, "WriteItems")


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_material_is_answered_invalid_data_and_nothing_is_kept(
    rig: RigFactory, case: str
) -> None:
    write, expected = BROKEN[case]
    r, reply = _bootstrap_refused(rig, write)
    assert reply.status is ReplyStatus.FAILED
    assert statuses(reply.items) == expected
    assert wait_mode(r.phone, "default") == "default mode"
    assert pending_prompt(r.phone) is None
    assert {p.name for p in secure_dir(r.phone).iterdir()} & NOTHING_PENDING == set()
    # Still Default Mode: the next interaction goes to the default port.
    assert r.phone.ctl("contact")["ok"]
    wait_opened(r.lab, "default", Reason.SOLICITED)
    assert opened_on(r.lab, "secure") == []


def test_nopin_without_a_server_ca_is_answered_failed(rig: RigFactory) -> None:
    r, reply = _bootstrap_refused(rig, nopin_write(ca=None))
    assert wait_mode(r.phone, "default") == "default mode"
    assert reply.status is ReplyStatus.FAILED  # spec §7.3 step 1
    assert "invalid data" in statuses(reply.items).values()


def test_pin_material_that_is_expired_inside_is_discarded_once_opened(rig: RigFactory) -> None:
    """The certificate is inside the encrypted archive: only the PIN shows it expired;
    the bootstrap is then discarded and the phone starts up again in Default Mode."""
    r = rig(bootstrap_scenario(pin_write("{secure-mode-data:expired}")))
    lab, phone = r.lab, r.phone
    write = reply_to(lab, 1, "WriteItems") if phone.wait_interaction(Reason.START_UP) else None
    assert write is not None and statuses(write.items) == {}
    type_pin(phone, wait_prompt(phone), PIN)
    wait_opened(lab, "default", Reason.START_UP, count=2)
    assert wait_mode(phone, "default mode") == "default mode"
    assert phone.wait_log(r"bootstrap material unusable after the PIN: .*expired")
    assert opened_on(lab, "secure") == []
    assert {p.name for p in secure_dir(phone).iterdir()} & NOTHING_PENDING == set()


def test_secure_mode_data_without_goto_secure_mode_is_an_unexpected_item(rig: RigFactory) -> None:
    """spec §3.3 [B]: `secure-mode-data` belongs with `goto-secure-mode=pin` only."""
    write = {"action": "WriteItems", "items": {"secure-mode-data": "{secure-mode-data}"}}
    r, reply = _bootstrap_refused(rig, write)
    assert statuses(reply.items) == {"secure-mode-data": "unexpected item"}
    assert wait_mode(r.phone, "default") == "default mode"
    assert pending_prompt(r.phone) is None
    assert {p.name for p in secure_dir(r.phone).iterdir()} & NOTHING_PENDING == set()


def test_secure_mode_data_beside_goto_nopin_is_refused_alone(rig: RigFactory) -> None:
    """The stray item is `unexpected item`; the valid nopin bootstrap goes ahead."""
    items = [*nopin_write()["items"], {"name": "secure-mode-data", "value": "{secure-mode-data}"}]
    r, reply = _bootstrap_refused(rig, {"action": "WriteItems", "items": items})
    assert statuses(reply.items) == {"secure-mode-data": "unexpected item"}
    wait_opened(r.lab, "secure", Reason.START_UP)
