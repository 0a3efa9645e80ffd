"""The PIN entry editor every driver shares, and the interface's value types."""

from __future__ import annotations

import pytest

from provd.ui.base import Key, PinCancelled, PinEntered, PinPrompt, UiError
from provd.ui.entry import EntryOutcome, PinEntry, render_field, render_lines

D = {str(d): Key(str(d)) for d in range(10)}


def type_in(entry: PinEntry, text: str) -> list[EntryOutcome]:
    return [entry.press(D[c]) for c in text]


def test_digits_append_and_ok_submits_the_pin() -> None:
    entry = PinEntry(max_length=8)
    assert type_in(entry, "4711") == [EntryOutcome.EDITED] * 4
    assert entry.press(Key.OK) is EntryOutcome.SUBMITTED
    assert entry.take() == "4711"
    assert len(entry) == 0


def test_digits_beyond_max_length_are_ignored() -> None:
    entry = PinEntry(max_length=3)
    assert type_in(entry, "1234") == [EntryOutcome.EDITED] * 3 + [EntryOutcome.UNCHANGED]
    entry.press(Key.OK)
    assert entry.take() == "123"


def test_backspace_deletes_the_last_character_and_nothing_when_empty() -> None:
    entry = PinEntry()
    type_in(entry, "12")
    assert entry.press(Key.BACKSPACE) is EntryOutcome.EDITED
    assert entry.masked() == "*"
    assert entry.press(Key.BACKSPACE) is EntryOutcome.EDITED
    assert entry.press(Key.BACKSPACE) is EntryOutcome.UNCHANGED
    type_in(entry, "9")
    entry.press(Key.OK)
    assert entry.take() == "9"


def test_ok_on_an_empty_field_does_not_submit() -> None:
    entry = PinEntry()
    assert entry.press(Key.OK) is EntryOutcome.UNCHANGED


def test_ok_before_min_length_does_not_submit() -> None:
    entry = PinEntry(min_length=4)
    type_in(entry, "123")
    assert entry.press(Key.OK) is EntryOutcome.UNCHANGED
    type_in(entry, "4")
    assert entry.press(Key.OK) is EntryOutcome.SUBMITTED


def test_cancel_cancels_whatever_was_typed() -> None:
    entry = PinEntry()
    type_in(entry, "55")
    assert entry.press(Key.CANCEL) is EntryOutcome.CANCELLED


def test_star_and_hash_are_characters_of_the_pin() -> None:
    entry = PinEntry()
    entry.press(Key.STAR)
    type_in(entry, "1")
    entry.press(Key.HASH)
    assert entry.masked() == "***"
    entry.press(Key.OK)
    assert entry.take() == "*1#"


def test_masked_rendering_shows_one_star_per_digit_and_no_digit() -> None:
    entry = PinEntry()
    type_in(entry, "9876")
    assert entry.masked() == "****"
    assert "9876" not in repr(entry)
    assert repr(entry) == "PinEntry(length=4, max_length=32)"


def test_clear_forgets_the_typed_characters() -> None:
    entry = PinEntry()
    type_in(entry, "31")
    entry.clear()
    assert entry.masked() == ""
    entry.press(Key.OK)
    assert entry.press(Key.OK) is EntryOutcome.UNCHANGED


def test_field_shows_mask_and_attempts_left() -> None:
    assert render_field("****", 2) == "PIN: ****   (attempts left: 2)"
    assert render_field("", None) == "PIN: "


def test_display_lines_hold_title_message_field_and_attempts() -> None:
    prompt = PinPrompt(title="Secure Mode", message="Enter PIN", attempts_left=1)
    assert render_lines(prompt, "***") == [
        "Secure Mode",
        "Enter PIN",
        "PIN: ***",
        "attempts left: 1",
    ]


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({}, True),
        ({"max_length": 0}, False),
        ({"min_length": 0}, False),
        ({"min_length": 5, "max_length": 4}, False),
        ({"timeout": 0}, False),
        ({"timeout": None}, True),
        ({"attempts_left": -1}, False),
    ],
)
def test_prompt_refuses_impossible_limits(fields: dict[str, object], ok: bool) -> None:
    if ok:
        PinPrompt(title="t", **fields)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match="PinPrompt"):
            PinPrompt(title="t", **fields)  # type: ignore[arg-type]


def test_pin_entered_repr_and_str_redact_the_pin() -> None:
    result = PinEntered(pin="2468013")
    assert repr(result) == "PinEntered(pin=<redacted>)"
    assert str(result) == "PinEntered(pin=<redacted>)"
    assert f"{result!r} {result}".count("2468013") == 0
    assert result == PinEntered(pin="2468013")
    assert result != PinEntered(pin="2468014")
    assert PinCancelled() == PinCancelled()


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("7", Key.DIGIT_7),
        ("OK", Key.OK),
        ("enter", Key.OK),
        ("Esc", Key.CANCEL),
        ("cancel", Key.CANCEL),
        ("backspace", Key.BACKSPACE),
        ("star", Key.STAR),
        ("#", Key.HASH),
    ],
)
def test_key_names_from_settings(name: str, key: Key) -> None:
    assert Key.from_name(name) is key


def test_unknown_key_name_is_a_ui_error() -> None:
    with pytest.raises(UiError, match="unknown key name"):
        Key.from_name("volume-up")
