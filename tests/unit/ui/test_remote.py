"""The socket driver: the prompt for the phone's own UI via `pin-prompt` / `pin-answer`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provd.ui.base import PinCancelled, PinEntered, PinPrompt, PinTimedOut
from provd.ui.remote import SocketDriver

from .harness import FakeClock, Results

PROMPT = PinPrompt(
    title="Secure Mode", message="Enter PIN", attempts_left=2, min_length=4, timeout=60.0
)


def make() -> tuple[SocketDriver, Results, FakeClock]:
    results, clock = Results(), FakeClock()
    return SocketDriver(results, clock=clock), results, clock


def test_pending_prompt_is_a_json_able_dict() -> None:
    driver, _, clock = make()
    assert driver.pending() is None
    driver.show_prompt(PROMPT)
    clock.advance(2.5)
    pending = driver.pending()
    assert pending == {
        "prompt": {
            "id": 1,
            "title": "Secure Mode",
            "message": "Enter PIN",
            "attempts_left": 2,
            "min_length": 4,
            "max_length": 32,
            "expires_in": 57.5,
        }
    }
    assert json.loads(json.dumps(pending)) == pending
    assert driver.filenos() == ()


def test_answer_with_a_pin_ends_the_prompt() -> None:
    driver, results, _ = make()
    driver.show_prompt(PROMPT)
    assert driver.answer({"cmd": "pin-answer", "id": 1, "pin": "1234567"}) == {"ok": True}
    assert results.seen == [PinEntered(pin="1234567")]
    assert driver.pending() is None


def test_answer_with_cancel_cancels() -> None:
    driver, results, _ = make()
    driver.show_prompt(PROMPT)
    assert driver.answer({"cancel": True}) == {"ok": True}
    assert results.seen == [PinCancelled()]


def test_answer_without_a_pending_prompt_is_an_error() -> None:
    driver, results, _ = make()
    assert driver.answer({"pin": "1234"}) == {"ok": False, "error": "no PIN prompt pending"}
    assert results.seen == []


def test_answer_for_an_earlier_prompt_is_refused() -> None:
    driver, results, _ = make()
    driver.show_prompt(PROMPT)
    driver.show_prompt(PROMPT)  # asked again: id 2
    answer = driver.answer({"id": 1, "pin": "1234"})
    assert answer == {"ok": False, "error": "that PIN prompt is no longer pending"}
    assert driver.answer({"id": True, "pin": "1234"})["ok"] is False
    assert results.seen == []
    assert driver.answer({"id": 2, "pin": "1234"}) == {"ok": True}


@pytest.mark.parametrize(
    "request_",
    [
        {"pin": 1234},
        {"pin": "123"},  # shorter than min_length
        {"pin": "1" * 33},
        {"pin": "12\n34"},
        {"pin": " 1234"},
        {"pin": "12345", "cancel": True},
        {"cancel": "yes"},
        {},
    ],
)
def test_malformed_answers_are_refused_without_echoing_the_pin(request_: dict[str, Any]) -> None:
    driver, results, _ = make()
    driver.show_prompt(PROMPT)
    answer = driver.answer(request_)
    assert answer["ok"] is False
    pin = request_.get("pin")
    if isinstance(pin, str):
        assert pin.strip() not in answer["error"]
    assert results.seen == []
    assert driver.prompting  # still waiting for a good answer


def test_prompt_times_out_and_then_takes_no_answer() -> None:
    driver, results, clock = make()
    driver.show_prompt(PROMPT)
    driver.tick(clock.advance(59.0))
    assert results.seen == []
    clock.advance(1.0)  # expired, before the loop's tick: the handlers notice
    assert driver.pending() is None
    assert results.seen == [PinTimedOut()]
    assert driver.answer({"pin": "1234"})["ok"] is False


def test_messages_are_kept_for_the_ui_process() -> None:
    driver, _, _ = make()
    driver.show_message("Wrong PIN")
    assert driver.last_message == "Wrong PIN"
