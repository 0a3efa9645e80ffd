"""When to try again: the retry wait after failed interactions and the contact gap.

Both rules are arithmetic on values passed in: no clock and no random source of
their own. The daemon passes `random.uniform` and its monotonic clock's readings.

Retry (spec §3.1 [B]): after the n-th failure in a row, wait a time drawn
uniformly between m·(k/1000)^(n−1) and m·(k/1000)^n seconds — the randomized band
of the TR-069 session retry policy (TR-069 §3.2.1.1), which spreads a fleet of
phones out after a server outage. n stops growing once the band's upper bound
would pass the cap, so the longest band is the last one that fits under it.
With the defaults (m = 10 s, k = 2000, cap 15 min) the bands are 10-20, 20-40,
40-80, 80-160, 160-320, then 320-640 s for every later failure.

Contact gap (spec §4.1 [B]): a contact-me that arrives within `contact-gap` seconds
(default 300 [F]) of the start of the last `solicited` interaction is not dropped
but deferred to the end of the gap; the queue keeps at most one such interaction
pending (`provd.wpi.triggers`). The gap is measured from the start because it
bounds how often the phone *answers* contact-me, which is what protects both the
phone and the server from a flood [G p.14; F: admin manual "Contact gap"].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

#: A random draw between two bounds (`random.uniform` in production).
Uniform = Callable[[float, float], float]

#: Defaults of spec §3.1 [B].
DEFAULT_MINIMUM = 10.0
DEFAULT_MULTIPLIER = 2000.0
DEFAULT_CAP = 15 * 60.0
#: Default contact gap, seconds (spec §4.1 [F]).
DEFAULT_CONTACT_GAP = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """The retry wait of spec §3.1: `minimum` (m, seconds), `multiplier` (k), `cap` (seconds).

    Raises ValueError for values that make no band: m must be positive and at
    most the cap, and k at least 1000 (k = 1000 gives a constant band [m, m]).
    """

    minimum: float = DEFAULT_MINIMUM
    multiplier: float = DEFAULT_MULTIPLIER
    cap: float = DEFAULT_CAP

    def __post_init__(self) -> None:
        if not self.minimum > 0:
            raise ValueError(f"retry minimum must be positive, not {self.minimum}")
        if not self.multiplier >= 1000:
            raise ValueError(f"retry multiplier must be at least 1000, not {self.multiplier}")
        if not self.cap >= self.minimum:
            raise ValueError(f"retry cap {self.cap} is below the minimum {self.minimum}")

    @property
    def ratio(self) -> float:
        """k/1000, the growth of the band from one failure to the next."""
        return self.multiplier / 1000.0

    @property
    def last_step(self) -> int:
        """The largest n whose band fits under the cap (at least 1)."""
        m, r = self.minimum, self.ratio
        if r == 1.0 or m * r > self.cap:
            return 1
        # The largest n with m·r^n <= cap, from logarithms (a k just above 1000 allows
        # millions of steps), then nudged past rounding so the comparison itself decides.
        n = max(1, math.floor(math.log(self.cap / m) / math.log(r)))
        while m * r ** (n + 1) <= self.cap:
            n += 1
        while n > 1 and m * r**n > self.cap:
            n -= 1
        return n

    def band(self, failures: int) -> tuple[float, float]:
        """The (low, high) bounds of the wait after `failures` failures in a row.

        No failure, no wait: ``band(0) == (0.0, 0.0)``. If even the first band's
        upper bound passes the cap (m·k/1000 > cap), that bound is cut to the cap.
        """
        if failures < 0:
            raise ValueError(f"failures cannot be negative: {failures}")
        if failures == 0:
            return (0.0, 0.0)
        n = min(failures, self.last_step)
        low = self.minimum * self.ratio ** (n - 1)
        high = min(self.minimum * self.ratio**n, self.cap)
        return (low, high)

    def wait(self, failures: int, uniform: Uniform) -> float:
        """The wait after `failures` failures: `uniform` drawn within `band(failures)`.

        The draw is clamped into the band, so a faulty source cannot make the
        phone hammer the server or fall silent.
        """
        low, high = self.band(failures)
        if high == 0.0:
            return 0.0
        return min(max(uniform(low, high), low), high)


def within_contact_gap(now: float, last_solicited: float | None, gap: float) -> bool:
    """Whether a contact-me at `now` falls within `gap` seconds of the last solicited start."""
    return last_solicited is not None and now < last_solicited + gap


def contact_due(now: float, last_solicited: float | None, gap: float) -> float:
    """When a `solicited` interaction asked for by a contact-me at `now` may start.

    At once, unless it falls within the contact gap of the last `solicited`
    interaction's start (`last_solicited`, None if there was none): then at the
    end of that gap (spec §4.1 [B]).
    """
    if within_contact_gap(now, last_solicited, gap):
        assert last_solicited is not None
        return last_solicited + gap
    return now
