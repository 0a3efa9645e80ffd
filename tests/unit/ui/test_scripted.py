"""The scripted and none drivers: answers typed through a real pipe in a selectors loop."""

from __future__ import annotations

import pytest

from provd.ui.base import Key, PinCancelled, PinEntered, PinPrompt, PinResult, PinTimedOut, UiError
from provd.ui.scripted import CANCEL, NO_ANSWER, NoneDriver, ScriptedDriver

from .harness import FakeClock, Loop, Results

PROMPT = PinPrompt(title="Secure Mode", attempts_left=3, timeout=60.0)


def test_each_prompt_gets_the_next_scripted_answer_through_the_pipe() -> None:
    clock = FakeClock()
    results = Results()
    driver = ScriptedDriver(
        results,
        ["111999", [Key.DIGIT_4, Key.BACKSPACE, Key.DIGIT_2, Key.OK], CANCEL, NO_ANSWER],
        clock=clock,
    )
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        assert results.seen == []  # nothing from inside show_prompt: the loop delivers
        loop.drain()
        driver.show_prompt(PROMPT)
        loop.drain()
        driver.show_prompt(PROMPT)
        loop.drain()
        driver.show_prompt(PROMPT)
        loop.drain()
        driver.tick(clock.advance(60.0))
        assert results.seen == [
            PinEntered(pin="111999"),
            PinEntered(pin="2"),
            PinCancelled(),
            PinTimedOut(),
        ]
        assert driver.remaining == 0
        assert len(driver.prompts) == 4
        assert "PIN: ******   (attempts left: 3)" in driver.screens
        assert all("1" not in screen.replace("(attempts left: 3)", "") for screen in driver.screens)
    finally:
        loop.close()
        driver.close()


def test_a_wrong_pin_then_the_right_one() -> None:
    results = Results()
    driver = ScriptedDriver(results, ["000000"])
    loop = Loop(driver)

    def check(result: PinResult) -> None:
        results(result)
        if result == PinEntered(pin="000000"):
            driver.show_message("Wrong PIN")
            driver.add("123456")
            driver.show_prompt(PinPrompt(title="Secure Mode", attempts_left=2))

    driver._on_result = check
    try:
        driver.show_prompt(PROMPT)
        loop.drain()
        assert results.seen == [PinEntered(pin="000000"), PinEntered(pin="123456")]
        assert driver.messages == ["Wrong PIN"]
        assert [p.attempts_left for p in driver.prompts] == [3, 2]
    finally:
        loop.close()
        driver.close()


def test_keys_fed_by_hand_reach_the_prompt() -> None:
    results = Results()
    driver = ScriptedDriver(results)
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        driver.feed([Key.DIGIT_7, Key.OK])
        loop.drain()
        assert results.seen == [PinEntered(pin="7")]
    finally:
        loop.close()
        driver.close()


def test_a_script_pin_with_letters_is_refused_without_showing_it() -> None:
    with pytest.raises(UiError) as caught:
        ScriptedDriver(Results(), ["12ab34"])
    assert "12ab34" not in str(caught.value)


def test_the_none_driver_cancels_every_prompt_on_the_next_loop_turn() -> None:
    results = Results()
    driver = NoneDriver(results)
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        assert results.seen == []
        loop.drain()
        driver.show_prompt(PROMPT)
        loop.drain()
        assert results.seen == [PinCancelled(), PinCancelled()]
        assert driver.name == "none"
    finally:
        loop.close()
        driver.close()


def test_withdrawn_prompt_gets_no_result() -> None:
    results = Results()
    driver = ScriptedDriver(results, ["1234"])
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        driver.withdraw()
        loop.drain()
        assert results.seen == []
        assert not driver.prompting
    finally:
        loop.close()
        driver.close()
