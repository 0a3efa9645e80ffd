"""The text display sink: a regular file, a FIFO, and a character device (a pty slave
standing in for /dev/lcd)."""

from __future__ import annotations

import logging
import os
import select
import time
from pathlib import Path

import pytest

from provd.ui.display import TextDisplay

from .harness import PATIENCE, read_all


def test_a_file_holds_the_current_screen_only(tmp_path: Path) -> None:
    path = tmp_path / "screen"
    display = TextDisplay(path)
    display.show(["Secure Mode", "PIN: **"])
    assert path.read_text() == "Secure Mode\nPIN: **\n"
    display.show(["PIN accepted"])
    assert path.read_text() == "PIN accepted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["screen"]  # no temporary left


def test_a_fifo_gets_one_form_feed_per_screen(tmp_path: Path) -> None:
    path = tmp_path / "lcd.fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        display = TextDisplay(path)
        display.show(["Secure Mode", "PIN: *"])
        display.show(["PIN: **"])
        assert read_all(reader) == b"\fSecure Mode\nPIN: *\fPIN: **"
    finally:
        os.close(reader)


def test_a_fifo_without_reader_is_skipped_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "lcd.fifo"
    os.mkfifo(path)
    caplog.set_level(logging.DEBUG, logger="provd.ui.display")
    TextDisplay(path).show(["nobody reads this"])
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_a_character_device_gets_form_feed_and_lines(tmp_path: Path) -> None:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    try:
        # A pty slave is a character device node, like /dev/lcd; its line discipline
        # turns \n into \r\n on the way to the master.
        display = TextDisplay(os.ttyname(slave))
        display.show(["Secure Mode", "PIN: ***"])
        data = b""
        give_up = time.monotonic() + PATIENCE
        while not data.endswith(b"***") and time.monotonic() < give_up:
            select.select([master], [], [], 0.05)
            data += read_all(master)
        assert data.replace(b"\r\n", b"\n") == b"\fSecure Mode\nPIN: ***"
    finally:
        os.close(slave)
        os.close(master)


def test_an_unwritable_display_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    display = TextDisplay(tmp_path / "missing-dir" / "screen")
    with caplog.at_level(logging.WARNING, logger="provd.ui.display"):
        display.show(["one"])
        display.show(["two"])
    assert len(caplog.records) == 1
    assert "cannot be written" in caplog.records[0].getMessage()


def test_newlines_inside_a_line_do_not_break_the_screen(tmp_path: Path) -> None:
    path = tmp_path / "screen"
    TextDisplay(path).show(["two\nlines", "page\fbreak"])
    assert path.read_text() == "two lines\npage break\n"
