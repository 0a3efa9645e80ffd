"""Retry with exponential back-off and jitter while the server is down (spec §3.1 [B])."""

from __future__ import annotations

import random
import re
from datetime import datetime

from provd.wpi.model import Reason
from provd.wpi.retry import RetryPolicy
from provd.wpi.triggers import TriggerQueue
from tests.integration.daemon.harness import LabFactory, Phone, PhoneFactory
from tests.integration.daemon.lab import free_port, opened

#: spec §3.1 defaults: m = 10 s, k = 2000, cap 15 min.
DEFAULT_BANDS = [(10, 20), (20, 40), (40, 80), (80, 160), (160, 320), (320, 640), (320, 640)]


def fail_until_due(queue: TriggerQueue, failures: int, now: float) -> tuple[float, float]:
    """Run the due start-up and fail it; (when it was taken, the time it may run again)."""
    started = queue.take(now)
    assert started is not None
    assert started.reason is Reason.START_UP
    hold = queue.finished(Reason.START_UP, False, now, failures)
    assert hold is not None
    return now, hold


def test_retry_waits_follow_the_spec_bands_with_an_injected_clock() -> None:
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return low + (high - low) * 0.75

    queue = TriggerQueue(uniform=uniform, policy=RetryPolicy())
    now = 1000.0
    queue.add(Reason.START_UP, now)
    waits = []
    for failures in range(1, len(DEFAULT_BANDS) + 1):
        taken, hold = fail_until_due(queue, failures, now)
        waits.append(hold - taken)
        # Nothing may start before the wait is over, and the start-up is due right after.
        assert queue.take(hold - 0.001) is None
        assert queue.when_due() == hold
        now = hold
    assert drawn == [(float(lo), float(hi)) for lo, hi in DEFAULT_BANDS]
    assert waits == [lo + (hi - lo) * 0.75 for lo, hi in DEFAULT_BANDS]
    # A success lifts the wait: the next failure starts again from the first band.
    started = queue.take(now)
    assert started is not None and started.retry
    assert queue.finished(Reason.START_UP, True, now, 0) is None
    queue.add(Reason.LOCAL_CHANGES, now)
    queue.take(now)
    again = queue.finished(Reason.LOCAL_CHANGES, False, now, 1)
    assert again is not None and 10 <= again - now <= 20


def test_retry_jitter_spreads_a_fleet_of_phones() -> None:
    firsts = []
    for seed in range(50):
        queue = TriggerQueue(uniform=random.Random(seed).uniform, policy=RetryPolicy())
        queue.add(Reason.START_UP, 0.0)
        _, hold = fail_until_due(queue, 1, 0.0)
        firsts.append(hold)
    assert all(10.0 <= wait <= 20.0 for wait in firsts)
    assert len({round(wait, 3) for wait in firsts}) > 40


def retries(phone: Phone, after: int = 0) -> list[tuple[int, float, float]]:
    """(failures, announced wait, when it was logged) of each retry-scheduled line."""
    assert phone.log is not None
    found = []
    for line in phone.log.lines[after:]:
        if "next attempt in" in line:
            failures = re.search(r"\bfailures=(\d+)", line)
            wait = re.search(r"\bwait=([\d.]+)", line)
            assert failures and wait, line
            found.append((int(failures.group(1)), float(wait.group(1)), logged_at(line)))
    return found


def logged_at(line: str) -> float:
    """The daemon's own time stamp of a log line (`2025-01-01 12:03:04,123 INFO ...`)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def starts(phone: Phone, reason: str = "start-up") -> list[float]:
    assert phone.log is not None
    return [logged_at(line) for line in phone.log.lines if f"{reason} interaction started" in line]


def test_the_daemon_retries_a_down_server_with_growing_jittered_waits(
    phones: PhoneFactory,
) -> None:
    # m = 0.2 s, k = 2000, cap 1.6 s: bands 0.2-0.4, 0.4-0.8, 0.8-1.6, then 0.8-1.6 again.
    settings = {"retry.m": 0.2, "retry.k": 2000.0, "retry.cap": 1.6}
    down = f"https://127.0.0.1:{free_port()}/DeploymentService/LoginService"
    phone = phones(down, settings=settings).start()
    phone.wait_log(r"next attempt in", count=5)
    scheduled = retries(phone)[:5]
    bands = [(0.2, 0.4), (0.4, 0.8), (0.8, 1.6), (0.8, 1.6), (0.8, 1.6)]
    assert [f for f, _, _ in scheduled] == [1, 2, 3, 4, 5]
    for (_, wait, _), (low, high) in zip(scheduled, bands, strict=True):
        assert low - 0.05 <= wait <= high + 0.05, (wait, low, high)
    # Each attempt came no sooner than the wait announced before it.
    attempts = starts(phone)
    for (_, wait, announced), attempt in zip(scheduled, attempts[1:], strict=False):
        assert attempt >= announced + wait - 0.06  # `wait` is rounded to 0.1 s
    status = phone.status()
    assert status["pending"] == ["start-up"]
    assert status["last_contact"].endswith(" failed")
    assert "refused" in (status["last_error"] or "")
    assert "pending start-up" in status["status"]

    # The failure count is persisted: after a restart the waits go on from the last band.
    assert phone.stop() == 0
    phone.start()
    mark = phone.mark()
    phone.wait_log(r"next attempt in", after=mark)
    [(failures, wait, _)] = retries(phone, after=mark)[:1]
    assert failures >= 6
    assert 0.75 <= wait <= 1.65


def test_a_server_answering_500_is_retried_until_it_succeeds_then_the_count_resets(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs(
        {
            "interaction": [
                {"contact": 1, "step": [{"status": 500}]},
                {"contact": 2, "step": [{"status": 500}]},
                {"contact": 4, "step": [{"status": 503}]},
                {"step": [{"action": "CleanUp"}]},
            ]
        }
    )
    phone = phones(lab, settings={"retry.m": 0.2, "retry.k": 2000.0, "retry.cap": 1.6}).start()
    assert phone.wait_interaction(Reason.START_UP, count=3) == "completed"
    assert opened(lab, Reason.START_UP) == [1, 2, 3]
    assert [f for f, _, _ in retries(phone)] == [1, 2]
    status = phone.status()
    assert status["last_error"] is None
    assert status["pending"] == []
    # After the success the next failure waits in the first band again.
    mark = phone.mark()
    phone.ctl("contact", reason="status")
    phone.wait_log(r"next attempt in", after=mark)
    [(failures, wait, _)] = retries(phone, after=mark)
    assert failures == 1
    assert 0.15 <= wait <= 0.45


def test_with_the_default_policy_the_first_retry_waits_10_to_20_s(phones: PhoneFactory) -> None:
    down = f"https://127.0.0.1:{free_port()}/DeploymentService/LoginService"
    phone = phones(down).start()
    phone.wait_log(r"next attempt in")
    [(failures, wait, _)] = retries(phone)
    assert failures == 1
    assert 10.0 <= wait <= 20.0
    assert phone.status()["pending"] == ["start-up"]


def test_status_tells_when_the_next_attempt_comes(phones: PhoneFactory) -> None:
    down = f"https://127.0.0.1:{free_port()}/DeploymentService/LoginService"
    phone = phones(down).start()
    phone.wait_log(r"next attempt in")
    next_contact = phone.status().get("next_contact_in")
    assert next_contact is not None
    assert 5.0 <= next_contact <= 20.0
