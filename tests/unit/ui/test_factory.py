"""Choosing a driver by name and from the `[ui]` settings table."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from provd.ui.base import DEFAULT_TIMEOUT, PinEntered, UiDriver, UiError
from provd.ui.console import ConsoleDriver
from provd.ui.factory import DRIVER_NAMES, UiConfig, make_driver
from provd.ui.keypad import EvdevDriver
from provd.ui.remote import SocketDriver
from provd.ui.scripted import NoneDriver, ScriptedDriver

from .harness import Loop, Results, tap


def test_every_driver_name_makes_a_driver_of_the_interface() -> None:
    read_fd, write_fd = os.pipe()
    try:
        options: dict[str, dict[str, Any]] = {
            "console": {"input_fd": read_fd, "output_fd": write_fd},
            "evdev": {"fd": read_fd},
        }
        for name in DRIVER_NAMES:
            driver = make_driver(name, Results(), **options.get(name, {}))
            assert isinstance(driver, UiDriver)
            assert driver.name == name
            driver.close()
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_unknown_driver_and_unknown_option_are_ui_errors() -> None:
    with pytest.raises(UiError, match="unknown UI driver 'lcd'"):
        make_driver("lcd", Results())
    with pytest.raises(UiError, match="takes no option name_match"):
        make_driver("socket", Results(), name_match="*")


def test_settings_table_configures_the_evdev_driver(tmp_path: Path) -> None:
    node = tmp_path / "event0"
    os.mkfifo(node)
    screen = tmp_path / "screen"
    settings = UiConfig.from_mapping(
        tomllib.loads(
            f"""
            driver = "evdev"
            timeout = 45
            [evdev]
            name-match = "Phone*"
            device = "{node}"
            keymap = {{ "59" = "ok" }}
            [display]
            path = "{screen}"
            """
        )
    )
    assert settings.options == {
        "name_match": "Phone*",
        "device": str(node),
        "keymap": {"59": "ok"},
        "display": str(screen),
    }
    results = Results()
    driver = settings.make(results)
    assert isinstance(driver, EvdevDriver)
    writer = os.open(node, os.O_WRONLY | os.O_NONBLOCK)
    loop = Loop(driver)
    try:
        prompt = settings.prompt(title="Secure Mode", attempts_left=1)
        assert prompt.timeout == 45.0
        driver.show_prompt(prompt)
        assert screen.read_text() == "Secure Mode\nPIN: \nattempts left: 1\n"
        os.write(writer, tap(2) + tap(59))  # KEY_1, then KEY_F1 mapped to OK
        loop.run_until(lambda: bool(results.seen))
        assert results.seen == [PinEntered(pin="1")]
    finally:
        loop.close()
        driver.close()
        os.close(writer)


def test_default_settings_use_the_socket_driver_and_the_default_timeout() -> None:
    settings = UiConfig.from_mapping({})
    assert settings.driver == "socket"
    assert settings.timeout == DEFAULT_TIMEOUT
    assert isinstance(settings.make(Results()), SocketDriver)


def test_timeout_zero_means_no_timeout() -> None:
    assert UiConfig.from_mapping({"timeout": 0}).prompt(title="x").timeout is None


def test_console_tty_setting_opens_that_terminal() -> None:
    master, slave = os.openpty()
    try:
        settings = UiConfig.from_mapping(
            {"driver": "console", "console": {"tty": os.ttyname(slave)}}
        )
        driver = settings.make(Results())
        assert isinstance(driver, ConsoleDriver)
        assert driver.filenos() and driver.filenos() != (slave,)
        driver.close()
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"driver": "gui"}, "ui.driver"),
        ({"timeout": "soon"}, "ui.timeout"),
        ({"timeout": True}, "ui.timeout"),
        ({"timeout": -1}, "ui.timeout"),
        ({"driver": "evdev", "evdev": "x"}, "ui.evdev"),
        ({"driver": "evdev", "evdev": {"keymap": 3}}, "ui.evdev.keymap"),
    ],
)
def test_bad_settings_are_refused(table: dict[str, object], message: str) -> None:
    with pytest.raises(UiError, match=message):
        UiConfig.from_mapping(table)


def test_scripted_and_none_drivers_from_make_driver() -> None:
    scripted = make_driver("scripted", Results(), script=["12"])
    assert isinstance(scripted, ScriptedDriver)
    assert scripted.remaining == 1
    scripted.close()
    none = make_driver("none", Results())
    assert isinstance(none, NoneDriver)
    none.close()
