"""`goto-secure-mode=pin` end to end, the PIN typed via the `socket` driver (spec §7.2, §7.3)."""

from __future__ import annotations

from provd.lab.pki import LabPKI
from provd.wpi.model import Reason, ReplyStatus
from tests.integration.secure.conftest import RigFactory
from tests.integration.secure.flows import (
    PIN,
    WRONG_PINS,
    bootstrap_scenario,
    pending_prompt,
    pin_write,
    reply_to,
    type_pin,
    wait_mode,
    wait_opened,
    wait_prompt,
)
from tests.integration.secure.secrets_check import key_in_secure_store


def test_pin_bootstrap_asks_for_the_pin_and_the_lab_reads_the_matching_tan(
    rig: RigFactory,
) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=3)))
    lab, phone = r.lab, r.phone
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    write = reply_to(lab, 1, "WriteItems")
    assert (write.status, write.items) == (ReplyStatus.ACCEPTED, ())

    prompt = wait_prompt(phone)
    assert prompt["attempts_left"] == 3
    assert wait_mode(phone, "default mode, PIN entry pending") == (
        "default mode, PIN entry pending (3 attempts left)"
    )
    type_pin(phone, prompt, PIN)

    [secure] = wait_opened(lab, "secure", Reason.START_UP)
    assert phone.wait_interaction(Reason.START_UP, count=2) == "completed"
    assert wait_mode(phone, "secure mode") == "secure mode"
    [check] = lab.tan_checks
    assert (check.interaction, check.channel, check.matched) == (secure, "secure", True)
    assert lab.conductor.interactions[secure - 1].client == lab.material.client_subject
    assert pending_prompt(phone) is None
    assert key_in_secure_store(phone, lab.material)
    # spec §7.3 step 4: the TAN only during the bootstrap; empty at any other time.
    assert phone.ctl("get", items=["bootstrapping-tan"])["items"] == {"bootstrapping-tan": ""}


def test_a_wrong_pin_costs_an_attempt_and_the_right_one_then_switches(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=3)))
    lab, phone = r.lab, r.phone
    r.secrets.add_pin(WRONG_PINS[0])
    first = wait_prompt(phone)
    assert first["attempts_left"] == 3
    type_pin(phone, first, WRONG_PINS[0])

    second = wait_prompt(phone, after=first["id"])
    assert second["attempts_left"] == 2
    assert wait_mode(phone, "default mode") == "default mode, PIN entry pending (2 attempts left)"
    assert phone.wait_log(r"wrong PIN \(1 of 3 attempts used\)")
    assert lab.conductor.interactions[-1].number == 1  # nothing went to the server
    # A dialog left open from the first prompt cannot answer the second; the refusal
    # does not repeat the PIN (the secrets check reads the log after the test).
    stale = phone.ctl("pin-answer", id=first["id"], pin=PIN)
    assert stale == {"ok": False, "error": "that PIN prompt is no longer pending"}
    still = pending_prompt(phone)
    assert still is not None and still["id"] == second["id"]
    type_pin(phone, second, PIN)

    wait_opened(lab, "secure", Reason.START_UP)
    assert wait_mode(phone, "secure mode") == "secure mode"
    assert [c.matched for c in lab.tan_checks] == [True]


def test_a_restart_before_the_secure_start_up_asks_for_the_pin_again(rig: RigFactory) -> None:
    """The decrypted key lives in memory only (spec §7.4): a restart between the PIN and
    the first secure interaction asks again, with the attempts as they were."""
    r = rig(bootstrap_scenario(pin_write(retries=3)))
    lab, phone = r.lab, r.phone
    r.secrets.add_pin(WRONG_PINS[0])
    first = wait_prompt(phone)
    type_pin(phone, first, WRONG_PINS[0])
    second = wait_prompt(phone, after=first["id"])
    lab.restart_secure(LabPKI.create())  # the secure start-up will fail its handshake
    type_pin(phone, second, PIN)
    assert phone.wait_interaction(Reason.START_UP, count=2) == "failed"
    assert wait_mode(phone, "default") == "default mode, switching to secure mode"

    phone.stop()
    lab.restart_secure()
    phone.start()
    again = wait_prompt(phone)
    assert again["attempts_left"] == 2
    type_pin(phone, again, PIN)
    [secure] = wait_opened(lab, "secure", Reason.START_UP)
    assert wait_mode(phone, "secure mode") == "secure mode"
    assert [(c.interaction, c.matched) for c in lab.tan_checks] == [(secure, True)]
