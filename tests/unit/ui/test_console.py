"""The console driver on a real pseudo-terminal: the test types on the master side."""

from __future__ import annotations

import os
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from provd.ui.base import Key, PinCancelled, PinEntered, PinPrompt, PinTimedOut, UiError
from provd.ui.console import ConsoleDriver, decode_keys

from .harness import PATIENCE, FakeClock, Loop, Results, read_all

PROMPT = PinPrompt(title="Secure Mode", message="Enter the PIN", attempts_left=2, timeout=60.0)


@dataclass
class Terminal:
    """The person at the terminal: types on the pty master and reads what it shows."""

    master: int
    slave: int
    driver: ConsoleDriver
    loop: Loop
    results: Results
    clock: FakeClock
    output: str = ""
    original_mode: list[object] = field(default_factory=list)

    def read_until(self, done: Callable[[str], bool]) -> str:
        give_up = time.monotonic() + PATIENCE
        while not done(self.output) and time.monotonic() < give_up:
            self.loop.turn(0.02)
            self.output += read_all(self.master).decode()
        return self.output

    def wait_for(self, text: str) -> None:
        self.read_until(lambda out: text in out)
        assert text in self.output

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait_result(self) -> None:
        self.loop.run_until(lambda: bool(self.results.seen))
        self.output += read_all(self.master).decode()

    def finish_output(self) -> str:
        """All output so far: a marker message flushes everything before it."""
        self.driver.show_message("end-of-test")
        self.wait_for("end-of-test")
        return self.output


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    results, clock = Results(), FakeClock()
    driver = ConsoleDriver(results, input_fd=slave, output_fd=slave, clock=clock)
    loop = Loop(driver)
    term = Terminal(master, slave, driver, loop, results, clock)
    term.original_mode = termios.tcgetattr(slave)
    yield term
    loop.close()
    driver.close()
    os.close(slave)
    os.close(master)


def test_typed_digits_backspace_and_enter_give_the_pin(terminal: Terminal) -> None:
    terminal.driver.show_prompt(PROMPT)
    terminal.wait_for("PIN:    (attempts left: 2)")
    terminal.type(b"56")
    terminal.wait_for("PIN: **   (attempts left: 2)")
    terminal.type(b"9\x7f")
    terminal.type(b"78")
    terminal.wait_for("PIN: ****   (attempts left: 2)")
    terminal.type(b"\r")
    terminal.wait_result()
    assert terminal.results.seen == [PinEntered(pin="5678")]


def test_output_shows_title_masked_field_and_attempts_but_never_the_digits(
    terminal: Terminal,
) -> None:
    terminal.driver.show_prompt(PROMPT)
    terminal.type(b"5678\x08")
    terminal.wait_for("PIN: ***   (attempts left: 2)")
    terminal.type(b"5\r")
    terminal.wait_result()
    assert terminal.results.seen == [PinEntered(pin="5675")]
    output = terminal.finish_output()
    assert "Secure Mode" in output
    assert "Enter the PIN" in output
    assert "PIN: ****   (attempts left: 2)" in output
    assert not set("5678") & set(output), output  # no echo, no digit drawn


def test_echo_is_off_while_prompting_and_the_mode_is_restored_after(terminal: Terminal) -> None:
    terminal.driver.show_prompt(PROMPT)
    lflag = termios.tcgetattr(terminal.slave)[3]
    assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
    terminal.type(b"1\r")
    terminal.wait_result()
    assert termios.tcgetattr(terminal.slave) == terminal.original_mode


@pytest.mark.parametrize("key", [b"\x1b", b"\x03", b"q"], ids=["esc", "ctrl-c", "q"])
def test_escape_ctrl_c_and_q_cancel(terminal: Terminal, key: bytes) -> None:
    terminal.driver.show_prompt(PROMPT)
    terminal.type(b"12")
    terminal.wait_for("PIN: **")
    terminal.type(key)
    terminal.wait_result()
    assert terminal.results.seen == [PinCancelled()]
    assert termios.tcgetattr(terminal.slave) == terminal.original_mode


def test_arrow_keys_are_no_keys_and_keypad_sequences_are_digits(terminal: Terminal) -> None:
    terminal.driver.show_prompt(PROMPT)
    terminal.type(b"1\x1b[A\x1b[1;5C\x1bOr\x1bOM")  # 1, up, ctrl-right, keypad 2, keypad Enter
    terminal.wait_result()
    assert terminal.results.seen == [PinEntered(pin="12")]


def test_input_typed_before_the_prompt_is_dropped(terminal: Terminal) -> None:
    terminal.type(b"999\n")
    terminal.wait_for("999")  # echoed: the line is in the terminal's queue
    terminal.loop.drain()
    terminal.loop.turn(0.05)
    terminal.driver.show_prompt(PROMPT)
    terminal.type(b"4\r")
    terminal.wait_result()
    assert terminal.results.seen == [PinEntered(pin="4")]


def test_prompt_times_out_on_the_injected_clock(terminal: Terminal) -> None:
    terminal.driver.show_prompt(PROMPT)
    terminal.driver.tick(terminal.clock.advance(59.0))
    assert terminal.results.seen == []
    terminal.driver.tick(terminal.clock.advance(1.0))
    assert terminal.results.seen == [PinTimedOut()]
    assert termios.tcgetattr(terminal.slave) == terminal.original_mode


def test_message_while_prompting_keeps_the_field(terminal: Terminal) -> None:
    terminal.driver.show_prompt(PROMPT)
    terminal.type(b"3")
    terminal.wait_for("PIN: *   (attempts left: 2)")
    terminal.driver.show_message("Wrong PIN")
    redrawn = "Wrong PIN\r\n\r\x1b[KPIN: *   (attempts left: 2)"
    terminal.read_until(lambda out: out.endswith(redrawn))
    assert terminal.output.endswith(redrawn)


def test_hang_up_cancels_the_prompt_and_raises(terminal: Terminal) -> None:
    terminal.driver.show_prompt(PROMPT)
    os.close(terminal.master)
    terminal.master = os.open(os.devnull, os.O_RDONLY)  # for the fixture to close
    with pytest.raises(UiError, match="console"):
        terminal.loop.turn(1.0)
    assert terminal.results.seen == [PinCancelled()]


def test_closing_while_prompting_restores_the_terminal(terminal: Terminal) -> None:
    terminal.driver.show_prompt(PROMPT)
    terminal.driver.close()
    assert termios.tcgetattr(terminal.slave) == terminal.original_mode
    assert terminal.driver.filenos() == ()


def test_pipes_instead_of_a_terminal_work_without_mode_changes() -> None:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.set_blocking(out_r, False)
    results = Results()
    driver = ConsoleDriver(results, input_fd=in_r, output_fd=out_w)
    loop = Loop(driver)
    try:
        driver.show_prompt(PinPrompt(title="PIN please", attempts_left=3))
        os.write(in_w, b"42\x7f1\n")
        loop.drain()
        assert results.seen == [PinEntered(pin="41")]
        output = read_all(out_r).decode()
        assert "\x1b" not in output
        assert "PIN: **   (attempts left: 3)" in output
        assert not set("42") & set(output.replace("attempts left: 3", ""))
    finally:
        loop.close()
        driver.close()
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)


@pytest.mark.parametrize(
    ("data", "keys"),
    [
        (b"09*#", [Key.DIGIT_0, Key.DIGIT_9, Key.STAR, Key.HASH]),
        (b"\x7f\x08\r\n", [Key.BACKSPACE, Key.BACKSPACE, Key.OK, Key.OK]),
        (b"\x1b", [Key.CANCEL]),
        (b"\x1b[D", []),
        (b"\x1bOp\x1bOy", [Key.DIGIT_0, Key.DIGIT_9]),
        (b"abc 5", [Key.DIGIT_5]),
        (b"\x1bx", [Key.CANCEL]),
    ],
)
def test_terminal_bytes_decode_to_keys(data: bytes, keys: list[Key]) -> None:
    assert decode_keys(data) == keys
