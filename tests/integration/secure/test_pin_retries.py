"""PIN attempts: persisted across a daemon restart, and used up (spec §7.3 step 3, §3.4)."""

from __future__ import annotations

from provd.lab.server import LabServer
from provd.wpi.model import Reason
from tests.integration.daemon.harness import Phone
from tests.integration.secure.conftest import RigFactory
from tests.integration.secure.flows import (
    PIN,
    WRONG_PINS,
    bootstrap_scenario,
    opened_on,
    pending_prompt,
    pin_write,
    type_pin,
    wait_mode,
    wait_opened,
    wait_prompt,
)
from tests.integration.secure.secrets_check import secure_dir, value_chunks

RETRIES_EXCEEDED = "password retries exceeded"


def material_in_secure_store(phone: Phone, lab: LabServer) -> list[str]:
    """Files of the secure store holding a piece of `secure-mode-data` or the key."""
    sent = lab.material.value("secure-mode-data")
    pieces = [*value_chunks("data", sent).values(), lab.material.client.key_pem.splitlines()[1]]
    return [
        path.name
        for path in secure_dir(phone).iterdir()
        if path.is_file() and any(piece in path.read_bytes() for piece in pieces)
    ]


def test_retries_survive_a_restart_and_when_used_up_the_server_is_told(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=3)))
    lab, phone = r.lab, r.phone
    for wrong in WRONG_PINS:
        r.secrets.add_pin(wrong)
    first = wait_prompt(phone)
    assert first["attempts_left"] == 3
    assert material_in_secure_store(phone, lab) == ["pending-bootstrap"]
    type_pin(phone, first, WRONG_PINS[0])
    assert wait_prompt(phone, after=first["id"])["attempts_left"] == 2

    # A restart between two wrong attempts does not give the attempt back.
    phone.stop()
    phone.start()
    again = wait_prompt(phone)  # spec §7.3: the prompt comes back at start-up
    assert again["attempts_left"] == 2
    assert wait_mode(phone, "default") == "default mode, PIN entry pending (2 attempts left)"
    wait_opened(lab, "default", Reason.START_UP, count=2)  # the restart's start-up: CleanUp
    type_pin(phone, again, WRONG_PINS[1])
    last = wait_prompt(phone, after=again["id"])
    assert last["attempts_left"] == 1
    type_pin(phone, last, WRONG_PINS[2])

    # [G p.83] spec §3.4: the phone's own clean-up, on the default port.
    [cleanup] = wait_opened(lab, "default", Reason.CLEAN_UP)
    record = lab.wait_for(lambda rec: rec.interaction == cleanup and rec.from_phone)
    assert (record.channel, record.action, record.status) == ("default", None, None)
    assert [(i.name, i.value) for i in record.items] == [("cleanup-reason", RETRIES_EXCEEDED)]
    assert wait_mode(phone, "default mode") == "default mode"
    assert pending_prompt(phone) is None
    assert material_in_secure_store(phone, lab) == []
    assert phone.ctl("pin") == {"ok": False, "error": "no Secure Mode PIN entry is pending"}
    assert lab.secure_listener is not None and lab.secure_listener.connections == 0

    # Still Default Mode: the next interaction goes to the default port.
    assert phone.ctl("contact")["ok"]
    wait_opened(lab, "default", Reason.SOLICITED)
    assert opened_on(lab, "secure") == []


def test_max_pin_retries_one_means_one_wrong_pin_ends_the_bootstrap(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=1)))
    lab, phone = r.lab, r.phone
    r.secrets.add_pin(WRONG_PINS[0])
    prompt = wait_prompt(phone)
    assert prompt["attempts_left"] == 1
    type_pin(phone, prompt, WRONG_PINS[0])
    wait_opened(lab, "default", Reason.CLEAN_UP)
    assert wait_mode(phone, "default mode") == "default mode"
    # The right PIN now finds nothing to open.
    assert pending_prompt(phone) is None
    assert PIN not in phone.logtext()
