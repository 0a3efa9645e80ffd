"""A wrong TAN: CleanUp `wrong TAN from device`, the phone goes back (spec §7.3 step 4)."""

from __future__ import annotations

from provd.wpi.model import Reason
from tests.integration.secure.conftest import RigFactory
from tests.integration.secure.flows import (
    PIN,
    bootstrap_scenario,
    opened_on,
    pin_write,
    type_pin,
    wait_mode,
    wait_opened,
    wait_prompt,
)
from tests.integration.secure.secrets_check import key_in_secure_store

#: The password part opens the archive; the TAN part is not the lab's.
RIGHT_PASSWORD_WRONG_TAN = PIN[:-3] + "#0*"


def test_a_wrong_tan_sends_the_phone_back_to_default_mode(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=3)))
    lab, phone = r.lab, r.phone
    r.secrets.add_pin(RIGHT_PASSWORD_WRONG_TAN)
    type_pin(phone, wait_prompt(phone), RIGHT_PASSWORD_WRONG_TAN)

    [secure] = wait_opened(lab, "secure", Reason.START_UP)
    [check] = lab.tan_checks
    assert (check.interaction, check.matched) == (secure, False)
    cleanup = lab.wait_for(lambda rec: rec.interaction == secure and rec.action == "CleanUp")
    assert [(i.name, i.value) for i in cleanup.items] == [
        ("cleanup-reason", "wrong TAN from device")
    ]
    # Back in Default Mode: a new start-up on the default port, the material gone.
    wait_opened(lab, "default", Reason.START_UP, count=2)
    assert wait_mode(phone, "default mode") == "default mode"
    assert phone.wait_interaction(Reason.START_UP, count=3) == "completed"
    assert not key_in_secure_store(phone, lab.material)
    assert phone.ctl("pin")["ok"] is False
    assert opened_on(lab, "secure") == [secure]
