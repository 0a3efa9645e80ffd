"""The nonce rule (spec §2.4 [B]).

The phone draws one nonce per interaction, 32 upper-case hex digits from the
OS CSPRNG, and puts it on every message of that interaction; each server
message must carry the same nonce, compared case-insensitively. The random
source is a parameter: the daemon passes `secrets.token_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

NONCE_BYTES = 16


class NonceCheck(StrEnum):
    """Setting `nonce-check` (spec §2.4)."""

    STRICT = "strict"  # a mismatch ends the interaction with a clean-up
    WARN = "warn"  # a mismatch is reported as a warning and the interaction goes on


def new_nonce(random_bytes: Callable[[int], bytes]) -> str:
    """A fresh nonce: 32 upper-case hex digits from `random_bytes(16)`."""
    raw = random_bytes(NONCE_BYTES)
    if len(raw) != NONCE_BYTES:
        raise ValueError("random source returned the wrong number of bytes")
    return raw.hex().upper()


def nonce_matches(ours: str, theirs: str) -> bool:
    """Whether a server's nonce echoes ours (case-insensitive, spec §2.4)."""
    return ours.strip().upper() == theirs.strip().upper()
