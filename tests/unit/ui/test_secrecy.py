"""The PIN never reaches a log record, a repr or an exception's text (spec §7.2; issue 5)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.ui.base import PinEntered, PinPrompt, PinResult, UiError
from provd.ui.console import ConsoleDriver
from provd.ui.entry import PinEntry
from provd.ui.keypad import EvdevDriver
from provd.ui.remote import SocketDriver
from provd.ui.scripted import ScriptedDriver

from .harness import FakeClock, Loop, Results, read_all, tap

PIN = "8064297"  # digits not in the prompt's text, so any leak shows
PROMPT = PinPrompt(title="Secure Mode", attempts_left=1, timeout=30.0)
KEY_CODE = {d: 11 if d == 0 else d + 1 for d in range(10)}


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def assert_no_pin_in(records: list[logging.LogRecord], *texts: object) -> None:
    assert records, "the drivers log what they do; nothing was captured"
    for record in records:
        fields = " ".join(f"{k}={v!r}" for k, v in vars(record).items())
        assert PIN not in record.getMessage()
        assert PIN not in fields
    for text in texts:
        assert PIN not in repr(text)
        assert PIN not in str(text)


def test_evdev_entry_leaves_no_pin_in_logs_reprs_or_the_display(
    all_logs: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    read_fd, write_fd = os.pipe()
    results = Results()
    screen = tmp_path / "screen"
    driver = EvdevDriver(results, fd=read_fd, display=str(screen), clock=FakeClock())
    loop = Loop(driver)
    screens = []
    try:
        driver.show_prompt(PROMPT)
        for digit in PIN:
            os.write(write_fd, tap(KEY_CODE[int(digit)]))
            loop.drain()
            screens.append(screen.read_text())
        os.write(write_fd, tap(28))
        loop.drain()
    finally:
        loop.close()
        driver.close()
        os.close(read_fd)
        os.close(write_fd)
    assert results.seen == [PinEntered(pin=PIN)]
    assert_no_pin_in(all_logs.records, driver, results.seen, *screens)
    assert all(digit not in "".join(screens) for digit in set(PIN))


def test_console_entry_leaves_no_pin_in_logs_or_the_terminal(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.set_blocking(out_r, False)
    results = Results()
    driver = ConsoleDriver(results, input_fd=in_r, output_fd=out_w)
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        os.write(in_w, PIN.encode() + b"\r")
        loop.drain()
        output = read_all(out_r).decode()
    finally:
        loop.close()
        driver.close()
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
    assert results.seen == [PinEntered(pin=PIN)]
    assert_no_pin_in(all_logs.records, driver, output)
    assert not set(PIN) & set(output.replace("attempts left: 1", ""))


def test_socket_answers_leave_no_pin_in_logs_or_answers(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    results = Results()
    driver = SocketDriver(results)
    driver.show_prompt(PROMPT)
    refused = driver.answer({"pin": PIN + "\x00"})
    accepted = driver.answer({"pin": PIN})
    assert results.seen == [PinEntered(pin=PIN)]
    assert_no_pin_in(all_logs.records, refused, accepted, driver.pending(), driver)


def test_reprs_of_everything_holding_a_pin_redact_it() -> None:
    entry = PinEntry()
    scripted = ScriptedDriver(Results(), [PIN])
    try:
        result: PinResult = PinEntered(pin=PIN)
        assert PIN not in repr(result) and PIN not in str(result)
        assert PIN not in f"{result}" and PIN not in repr([result]) and PIN not in str({1: result})
        assert PIN not in repr(entry)
        assert PIN not in repr(scripted)
    finally:
        scripted.close()


def test_a_lost_keypad_error_does_not_carry_the_typed_digits() -> None:
    read_fd, write_fd = os.pipe()
    results = Results()
    driver = EvdevDriver(results, fd=read_fd)
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        os.write(write_fd, b"".join(tap(KEY_CODE[int(d)]) for d in PIN))
        loop.drain()
        os.close(write_fd)
        with pytest.raises(UiError) as caught:
            loop.turn(1.0)
        assert PIN not in str(caught.value) and PIN not in repr(caught.value)
    finally:
        loop.close()
        driver.close()
        os.close(read_fd)
