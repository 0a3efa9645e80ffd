"""The evdev keypad driver, driven through a real pipe carrying real `input_event`s."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from provd.ui.base import Key, PinCancelled, PinEntered, PinPrompt, PinTimedOut, UiError
from provd.ui.keypad import (
    DEFAULT_KEYMAP,
    EV_KEY,
    INPUT_EVENT,
    EvdevDriver,
    InputEventReader,
    device_name,
    find_keypad,
    parse_keymap,
)

from .harness import FakeClock, Loop, Results, key_event, syn, tap

KEY_ESC, KEY_BACKSPACE, KEY_ENTER, KEY_KPENTER, KEY_CANCEL, KEY_OK = 1, 14, 28, 96, 0xDF, 0x160
MAIN_DIGIT = {d: 11 if d == 0 else d + 1 for d in range(10)}  # KEY_0 = 11, KEY_1 = 2 ...
KEYPAD_DIGIT = dict(enumerate((82, 79, 80, 81, 75, 76, 77, 71, 72, 73)))  # KEY_KP0 ... KEY_KP9
EV_REL = 0x02
PROMPT = PinPrompt(title="Secure Mode", attempts_left=2, timeout=30.0)


@dataclass
class Keypad:
    """A driver reading a pipe, the pipe's write end, the loop, the display file."""

    driver: EvdevDriver
    write_fd: int
    loop: Loop
    results: Results
    clock: FakeClock
    display: Path
    screens: list[str] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        """Write events and let the loop read them; keep the screen they leave."""
        os.write(self.write_fd, data)
        self.loop.drain()
        self.screens.append(self.display.read_text() if self.display.exists() else "")

    def type_digits(self, digits: str, table: Mapping[int, int] = MAIN_DIGIT) -> None:
        for d in digits:
            self.send(tap(table[int(d)]))


@pytest.fixture
def keypad(tmp_path: Path) -> Iterator[Keypad]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    results, clock = Results(), FakeClock()
    display = tmp_path / "display.txt"
    driver = EvdevDriver(results, fd=read_fd, display=str(display), clock=clock)
    loop = Loop(driver)
    yield Keypad(driver, write_fd, loop, results, clock, display)
    loop.close()
    driver.close()
    os.close(read_fd)
    os.close(write_fd)


def test_main_row_digits_and_enter_give_the_pin(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    keypad.type_digits("1234567890")
    keypad.send(tap(KEY_ENTER))
    assert keypad.results.seen == [PinEntered(pin="1234567890")]


def test_keypad_digits_and_keypad_enter_give_the_pin(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    keypad.type_digits("0123456789", KEYPAD_DIGIT)
    keypad.send(tap(KEY_KPENTER))
    assert keypad.results.seen == [PinEntered(pin="0123456789")]


def test_phone_numeric_keys_and_key_ok_give_the_pin(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    keypad.type_digits("907", {d: 0x200 + d for d in range(10)})
    keypad.send(tap(0x20A) + tap(0x20B) + tap(KEY_OK))  # KEY_NUMERIC_STAR, _POUND
    assert keypad.results.seen == [PinEntered(pin="907*#")]


def test_display_shows_the_masked_field_and_never_the_digits(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    keypad.screens.append(keypad.display.read_text())
    keypad.type_digits("5678")
    assert keypad.screens[0] == "Secure Mode\nPIN: \nattempts left: 2\n"
    assert keypad.screens[-1] == "Secure Mode\nPIN: ****\nattempts left: 2\n"
    keypad.send(tap(KEY_ENTER))
    assert keypad.results.seen == [PinEntered(pin="5678")]
    assert keypad.screens[-1] == "\n"  # cleared when the prompt ended
    for screen in keypad.screens:
        assert not set("5678") & set(screen), screen


def test_backspace_deletes_the_last_digit(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    keypad.type_digits("12")
    keypad.send(tap(KEY_BACKSPACE))
    assert "PIN: *\n" in keypad.screens[-1]
    keypad.type_digits("3")
    keypad.send(tap(KEY_ENTER))
    assert keypad.results.seen == [PinEntered(pin="13")]


@pytest.mark.parametrize("code", [KEY_ESC, KEY_CANCEL])
def test_escape_and_cancel_keys_cancel_the_prompt(keypad: Keypad, code: int) -> None:
    keypad.driver.show_prompt(PROMPT)
    keypad.type_digits("44")
    keypad.send(tap(code))
    assert keypad.results.seen == [PinCancelled()]
    assert not keypad.driver.prompting


def test_ok_on_an_empty_field_does_nothing(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    keypad.send(tap(KEY_ENTER))
    assert keypad.results.seen == []
    assert keypad.driver.prompting


def test_prompt_times_out_after_the_timeout_without_a_key(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    assert keypad.driver.next_deadline() == keypad.clock.now + 30.0
    keypad.driver.tick(keypad.clock.advance(29.0))
    assert keypad.results.seen == []
    keypad.type_digits("1")  # a key restarts the timeout
    keypad.driver.tick(keypad.clock.advance(29.0))
    assert keypad.results.seen == []
    keypad.driver.tick(keypad.clock.advance(1.0))
    assert keypad.results.seen == [PinTimedOut()]
    assert keypad.driver.next_deadline() is None
    keypad.driver.tick(keypad.clock.advance(100.0))
    assert keypad.results.seen == [PinTimedOut()]


def test_events_other_than_key_presses_are_ignored(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    noise = (
        INPUT_EVENT.pack(1, 0, EV_REL, MAIN_DIGIT[7], 1)  # same code, another type
        + INPUT_EVENT.pack(1, 0, 0x04, 0x04, MAIN_DIGIT[7])  # EV_MSC scan code
        + syn()
        + key_event(MAIN_DIGIT[8], 0)  # a release
        + key_event(0x1D, 1)  # KEY_LEFTCTRL: not in the keymap
    )
    keypad.send(noise)
    assert keypad.screens[-1] == "Secure Mode\nPIN: \nattempts left: 2\n"
    keypad.type_digits("3")
    keypad.send(tap(KEY_ENTER))
    assert keypad.results.seen == [PinEntered(pin="3")]


def test_releases_and_autorepeats_type_nothing(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    held = key_event(MAIN_DIGIT[6], 1) + key_event(MAIN_DIGIT[6], 2) * 5
    keypad.send(held + key_event(MAIN_DIGIT[6], 0) + tap(KEY_ENTER))
    assert keypad.results.seen == [PinEntered(pin="6")]


def test_records_split_across_reads_are_put_back_together(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    stream = tap(MAIN_DIGIT[2]) + tap(MAIN_DIGIT[9]) + tap(KEY_ENTER)
    enter_pressed = 2 * len(tap(0)) + 2 * INPUT_EVENT.size  # the end of Enter's press record
    cuts = [0, 1, 7, 24, 25, 50, 71, 72, 100, enter_pressed - 1, enter_pressed, len(stream)]
    for start, end in itertools.pairwise(cuts):
        keypad.send(stream[start:end])
        if end < enter_pressed:
            assert keypad.results.seen == []
            assert keypad.driver.prompting
    assert keypad.results.seen == [PinEntered(pin="29")]


def test_keys_pressed_while_no_prompt_is_shown_are_dropped(keypad: Keypad) -> None:
    keypad.type_digits("111")
    keypad.driver.show_prompt(PROMPT)
    keypad.type_digits("2")
    keypad.send(tap(KEY_ENTER))
    assert keypad.results.seen == [PinEntered(pin="2")]


def test_keys_after_ok_in_the_same_read_do_not_reach_the_next_prompt(keypad: Keypad) -> None:
    def ask_again(result: object) -> None:
        keypad.results.seen.append(result)  # type: ignore[arg-type]
        keypad.driver.show_prompt(PROMPT)

    keypad.driver._on_result = ask_again
    keypad.driver.show_prompt(PROMPT)
    keypad.send(tap(MAIN_DIGIT[1]) + tap(KEY_ENTER) + tap(MAIN_DIGIT[2]) + tap(KEY_ENTER))
    assert keypad.results.seen == [PinEntered(pin="1")]
    assert keypad.driver.prompting
    assert keypad.screens[-1] == "Secure Mode\nPIN: \nattempts left: 2\n"


def test_writer_gone_cancels_the_prompt_and_raises(keypad: Keypad) -> None:
    keypad.driver.show_prompt(PROMPT)
    os.close(keypad.write_fd)
    keypad.write_fd = os.open(os.devnull, os.O_WRONLY)  # for the fixture to close
    with pytest.raises(UiError, match="keypad closed"):
        keypad.loop.turn(1.0)
    assert keypad.results.seen == [PinCancelled()]


def test_settings_keymap_overrides_the_defaults(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    results = Results()
    keymap = {"59": "ok", "KEY_ENTER": "ignore", "0x160": "backspace", 30: "star"}
    driver = EvdevDriver(results, fd=read_fd, keymap=keymap)
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        stream = tap(MAIN_DIGIT[4]) + tap(MAIN_DIGIT[5]) + tap(KEY_OK)  # 4, 5, backspace
        stream += tap(30) + tap(KEY_ENTER)  # star; Enter now does nothing
        os.write(write_fd, stream)
        loop.drain()
        assert results.seen == []
        os.write(write_fd, tap(59))  # KEY_F1, mapped to OK
        loop.drain()
        assert results.seen == [PinEntered(pin="4*")]
    finally:
        loop.close()
        driver.close()
        os.close(read_fd)
        os.close(write_fd)


def test_default_keymap_covers_digits_enter_backspace_and_cancel() -> None:
    for d in range(10):
        assert DEFAULT_KEYMAP[MAIN_DIGIT[d]] is Key(str(d))
        assert DEFAULT_KEYMAP[KEYPAD_DIGIT[d]] is Key(str(d))
    assert {DEFAULT_KEYMAP[c] for c in (KEY_ENTER, KEY_KPENTER, KEY_OK)} == {Key.OK}
    assert DEFAULT_KEYMAP[KEY_BACKSPACE] is Key.BACKSPACE
    assert {DEFAULT_KEYMAP[c] for c in (KEY_ESC, KEY_CANCEL)} == {Key.CANCEL}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"KEY_NOPE": "ok"}, "unknown key code"),
        ({"0x300": "ok"}, "out of range"),
        ({-1: "ok"}, "out of range"),
        ({"28": "launch"}, "unknown key name"),
    ],
)
def test_bad_keymap_settings_are_refused(overrides: dict[Any, str], message: str) -> None:
    with pytest.raises(UiError, match=message):
        parse_keymap(overrides)


def test_reader_keeps_a_partial_record() -> None:
    reader = InputEventReader()
    record = key_event(MAIN_DIGIT[1])
    assert reader.feed(record[:10]) == []
    assert reader.pending == 10
    (event,) = reader.feed(record[10:])
    assert (event.type, event.code, event.value) == (EV_KEY, MAIN_DIGIT[1], 1)
    assert reader.pending == 0


# --------------------------------------------------------------------------- discovery


@dataclass
class FakeAttributes:
    values: dict[str, str]

    def asstring(self, name: str) -> str:
        return self.values[name]


@dataclass
class FakeDevice:
    """Shaped like a pyudev Device of subsystem `input`."""

    device_node: str | None
    properties: dict[str, str]
    parent: FakeDevice | None = None
    attributes: FakeAttributes | None = None


def event_node(n: int, name: str, *, key: bool = True, node: str | None = None) -> FakeDevice:
    parent = FakeDevice(None, {"NAME": f'"{name}"', "PRODUCT": "19/0/0/0"})
    props = {"DEVNAME": f"/dev/input/event{n}"} | ({"ID_INPUT_KEY": "1"} if key else {})
    return FakeDevice(node or f"/dev/input/event{n}", props, parent)


def test_finds_the_key_device_whose_name_matches() -> None:
    devices = [
        event_node(0, "Power Button"),
        event_node(1, "ImExPS/2 Mouse", key=False),
        event_node(4, "Phone Keypad"),
        FakeDevice("/dev/input/mouse0", {"ID_INPUT_KEY": "1"}),
    ]
    assert find_keypad(devices, "*Keypad*") == "/dev/input/event4"
    assert find_keypad(devices, "*Mouse*") is None  # no ID_INPUT_KEY
    assert find_keypad(devices, "*keypad*") is None  # case-sensitive


def test_first_match_is_by_node_number() -> None:
    devices = [event_node(10, "Keypad B"), event_node(2, "Keypad A"), event_node(7, "Other")]
    assert find_keypad(devices, "Keypad*") == "/dev/input/event2"
    assert find_keypad(devices) == "/dev/input/event2"


def test_device_name_comes_from_udev_name_property_or_sysfs_attribute() -> None:
    assert device_name(event_node(3, "Matrix Keypad")) == "Matrix Keypad"
    bare = FakeDevice(
        "/dev/input/event5",
        {"ID_INPUT_KEY": "1"},
        FakeDevice(None, {}, attributes=FakeAttributes({"name": "gpio-keys\n"})),
    )
    assert device_name(bare) == "gpio-keys"
    assert find_keypad([bare], "gpio-*") == "/dev/input/event5"


def test_driver_opens_the_discovered_node_and_reads_its_events(tmp_path: Path) -> None:
    node = tmp_path / "event3"
    os.mkfifo(node)  # stands in for /dev/input/event3: a real node carrying real records
    devices = [event_node(0, "Power Button"), event_node(3, "Phone Keypad", node=str(node))]
    results = Results()
    driver = EvdevDriver(results, name_match="Phone*", devices=lambda: devices)
    assert driver.device == str(node)
    writer = os.open(node, os.O_WRONLY | os.O_NONBLOCK)
    loop = Loop(driver)
    try:
        driver.show_prompt(PROMPT)
        os.write(writer, tap(MAIN_DIGIT[8]) + tap(KEY_ENTER))
        loop.run_until(lambda: bool(results.seen))
        assert results.seen == [PinEntered(pin="8")]
    finally:
        loop.close()
        driver.close()
        os.close(writer)


def test_no_matching_keypad_is_a_ui_error() -> None:
    with pytest.raises(UiError, match="no keypad"):
        EvdevDriver(Results(), name_match="Keypad*", devices=lambda: [event_node(0, "Mouse")])


def test_unopenable_keypad_node_is_a_ui_error(tmp_path: Path) -> None:
    with pytest.raises(UiError, match="cannot open keypad"):
        EvdevDriver(Results(), device=str(tmp_path / "missing"))
