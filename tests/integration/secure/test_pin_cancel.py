"""Cancel keeps the material; the prompt comes back on request or at start-up (spec §7.3 step 3)."""

from __future__ import annotations

from provd.wpi.model import Reason
from tests.integration.secure.conftest import RigFactory
from tests.integration.secure.flows import (
    PIN,
    bootstrap_scenario,
    cancel,
    opened_on,
    pending_prompt,
    pin_write,
    type_pin,
    wait_mode,
    wait_opened,
    wait_prompt,
)


def test_cancel_then_the_pin_command_shows_the_prompt_again(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=3)))
    lab, phone = r.lab, r.phone
    prompt = wait_prompt(phone)
    cancel(phone, prompt)
    assert pending_prompt(phone) is None
    # Nothing consumed, nothing discarded, nothing sent.
    assert wait_mode(phone, "default") == "default mode, PIN entry pending (3 attempts left)"
    assert opened_on(lab, "secure") == [] and len(lab.conductor.interactions) == 1

    assert phone.ctl("pin") == {"ok": True}
    again = wait_prompt(phone, after=prompt["id"])
    assert again["attempts_left"] == 3
    assert phone.ctl("pin")["ok"] is False  # already shown
    type_pin(phone, again, PIN)
    wait_opened(lab, "secure", Reason.START_UP)
    assert wait_mode(phone, "secure mode") == "secure mode"
    assert [c.matched for c in lab.tan_checks] == [True]


def test_cancel_then_the_prompt_comes_back_at_the_next_start_up(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=3)))
    lab, phone = r.lab, r.phone
    cancel(phone, wait_prompt(phone))
    assert pending_prompt(phone) is None
    phone.stop()
    phone.start()
    prompt = wait_prompt(phone)
    assert prompt["attempts_left"] == 3
    type_pin(phone, prompt, PIN)
    wait_opened(lab, "secure", Reason.START_UP)
    assert wait_mode(phone, "secure mode") == "secure mode"
    assert [c.matched for c in lab.tan_checks] == [True]


def test_a_prompt_nobody_answers_times_out_like_a_cancel(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(pin_write(retries=3)), settings={"ui.timeout": 0.3})
    lab, phone = r.lab, r.phone
    prompt = wait_prompt(phone)
    assert phone.wait_log(r"PIN prompt on socket ended: PinTimedOut")
    assert pending_prompt(phone) is None
    assert wait_mode(phone, "default") == "default mode, PIN entry pending (3 attempts left)"
    assert phone.ctl("pin") == {"ok": True}
    again = wait_prompt(phone, after=prompt["id"])
    type_pin(phone, again, PIN)
    wait_opened(lab, "secure", Reason.START_UP)
    assert wait_mode(phone, "secure mode") == "secure mode"
