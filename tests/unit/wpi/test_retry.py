"""The retry wait of spec §3.1 and the contact gap of spec §4.1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provd.wpi.retry import RetryPolicy, contact_due, within_contact_gap

# spec §3.1 [B]: m = 10 s, k = 2000, cap 15 min; n stops growing once the upper bound would
# pass the cap (10·2^7 = 1280 > 900), so every failure from the 6th on waits 320-640 s.
EXPECTED_BANDS = [
    (10.0, 20.0),
    (20.0, 40.0),
    (40.0, 80.0),
    (80.0, 160.0),
    (160.0, 320.0),
    (320.0, 640.0),
    (320.0, 640.0),
    (320.0, 640.0),
    (320.0, 640.0),
    (320.0, 640.0),
    (320.0, 640.0),
    (320.0, 640.0),
]


class Draws:
    """An injected uniform source: answers a fixed fraction of the band and records each call."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return low + self.fraction * (high - low)


def test_default_policy_is_the_spec_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(minimum=10.0, multiplier=2000.0, cap=900.0)


def test_bands_for_twelve_failures_follow_the_spec_and_stop_growing_under_the_cap() -> None:
    policy = RetryPolicy(minimum=10, multiplier=2000, cap=900)
    assert [policy.band(n) for n in range(1, 13)] == EXPECTED_BANDS
    assert policy.last_step == 6


def test_waits_for_twelve_failures_are_drawn_within_each_band() -> None:
    policy = RetryPolicy()
    draws = Draws(0.25)
    waits = [policy.wait(n, draws) for n in range(1, 13)]
    assert draws.calls == EXPECTED_BANDS
    assert waits == [low + 0.25 * (high - low) for low, high in EXPECTED_BANDS]
    assert waits[:3] == [12.5, 25.0, 50.0]


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_wait_reaches_both_ends_of_the_band(fraction: float) -> None:
    waits = [RetryPolicy().wait(n, Draws(fraction)) for n in range(1, 13)]
    assert waits == [band[int(fraction)] for band in EXPECTED_BANDS]


def test_no_failure_means_no_wait_and_no_draw() -> None:
    draws = Draws(0.5)
    assert RetryPolicy().band(0) == (0.0, 0.0)
    assert RetryPolicy().wait(0, draws) == 0.0
    assert draws.calls == []


def test_a_faulty_random_source_is_clamped_into_the_band() -> None:
    policy = RetryPolicy()
    assert policy.wait(3, lambda low, high: -5.0) == 40.0
    assert policy.wait(3, lambda low, high: 1e9) == 80.0


def test_other_settings_give_their_own_bands() -> None:
    policy = RetryPolicy(minimum=5, multiplier=3000, cap=200)
    # 5·3^3 = 135 fits, 5·3^4 = 405 does not
    assert [policy.band(n) for n in range(1, 6)] == [
        (5.0, 15.0),
        (15.0, 45.0),
        (45.0, 135.0),
        (45.0, 135.0),
        (45.0, 135.0),
    ]


def test_first_band_above_the_cap_is_cut_to_the_cap() -> None:
    policy = RetryPolicy(minimum=600, multiplier=2000, cap=900)
    assert policy.band(1) == (600.0, 900.0)
    assert policy.band(7) == (600.0, 900.0)


def test_multiplier_of_1000_gives_a_constant_wait() -> None:
    policy = RetryPolicy(minimum=30, multiplier=1000, cap=900)
    assert {policy.band(n) for n in range(1, 50)} == {(30.0, 30.0)}


@pytest.mark.parametrize(
    ("minimum", "multiplier", "cap"),
    [(0, 2000, 900), (-1, 2000, 900), (10, 999, 900), (10, 2000, 5)],
)
def test_settings_that_make_no_band_are_refused(
    minimum: float, multiplier: float, cap: float
) -> None:
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy(minimum=minimum, multiplier=multiplier, cap=cap)


def test_negative_failure_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy().band(-1)


@given(
    minimum=st.floats(min_value=0.5, max_value=120),
    multiplier=st.floats(min_value=1000, max_value=5000),
    extra=st.floats(min_value=0, max_value=3600),
    failures=st.integers(min_value=1, max_value=200),
    fraction=st.floats(min_value=0, max_value=1),
)
def test_every_wait_lies_within_its_band_and_never_passes_the_cap(
    minimum: float, multiplier: float, extra: float, failures: int, fraction: float
) -> None:
    policy = RetryPolicy(minimum=minimum, multiplier=multiplier, cap=minimum + extra)
    low, high = policy.band(failures)
    wait = policy.wait(failures, Draws(fraction))
    assert minimum <= low <= wait <= high <= policy.cap
    assert policy.band(failures + 1)[0] >= low  # never shrinks


def test_contact_me_outside_the_gap_is_due_at_once() -> None:
    assert contact_due(1000.0, None, 300.0) == 1000.0
    assert contact_due(1000.0, 700.0, 300.0) == 1000.0
    assert not within_contact_gap(1000.0, 700.0, 300.0)


def test_contact_me_within_the_gap_is_due_at_its_end() -> None:
    assert within_contact_gap(1000.0, 750.0, 300.0)
    assert contact_due(1000.0, 750.0, 300.0) == 1050.0
    assert contact_due(750.0, 750.0, 300.0) == 1050.0


def test_contact_gap_of_zero_holds_nothing() -> None:
    assert contact_due(10.0, 10.0, 0.0) == 10.0
