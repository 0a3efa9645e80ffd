"""The nonce rule (spec §2.4 [B]): 32 upper-case hex digits from the given random source."""

from __future__ import annotations

import re

import pytest

from provd.wpi.nonce import NONCE_BYTES, NonceCheck, new_nonce, nonce_matches


class RecordingSource:
    """A random source that returns fixed bytes and records what it was asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[int] = []

    def __call__(self, count: int) -> bytes:
        self.asked.append(count)
        return self.data


def test_new_nonce_is_32_upper_case_hex_digits_of_the_source() -> None:
    source = RecordingSource(bytes(range(0xA0, 0xB0)))
    nonce = new_nonce(source)
    assert nonce == "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"
    assert re.fullmatch(r"[0-9A-F]{32}", nonce)
    assert source.asked == [NONCE_BYTES] == [16]


def test_two_sources_give_two_nonces() -> None:
    assert new_nonce(RecordingSource(b"\x00" * 16)) != new_nonce(RecordingSource(b"\x01" * 16))


@pytest.mark.parametrize("data", [b"", b"\x00" * 15, b"\x00" * 17])
def test_a_source_of_the_wrong_length_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="wrong number of bytes"):
        new_nonce(RecordingSource(data))


@pytest.mark.parametrize(
    ("ours", "theirs", "matches"),
    [
        ("9A6439F4E323CDB19283E40459828B56", "9A6439F4E323CDB19283E40459828B56", True),
        ("9A6439F4E323CDB19283E40459828B56", "9a6439f4e323cdb19283e40459828b56", True),
        ("9A6439F4E323CDB19283E40459828B56", " 9A6439F4E323CDB19283E40459828B56\n", True),
        ("9A6439F4E323CDB19283E40459828B56", "9A6439F4E323CDB19283E40459828B57", False),
        ("9A6439F4E323CDB19283E40459828B56", "9A6439F4E323CDB19283E40459828B5", False),
        ("9A6439F4E323CDB19283E40459828B56", "", False),
    ],
)
def test_nonce_matches_case_insensitively(ours: str, theirs: str, matches: bool) -> None:
    assert nonce_matches(ours, theirs) is matches


def test_nonce_check_settings_are_the_spec_words() -> None:
    assert [check.value for check in NonceCheck] == ["strict", "warn"]
    assert NonceCheck("strict") is NonceCheck.STRICT
