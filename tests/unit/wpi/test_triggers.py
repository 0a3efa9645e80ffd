"""The trigger queue of spec §3.1: coalescing, start-up absorption, priority, gap, retry."""

from __future__ import annotations

import pytest

from provd.wpi.model import Reason
from provd.wpi.retry import RetryPolicy
from provd.wpi.triggers import PRIORITY, Started, TriggerQueue

GAP = 300.0


class Draws:
    """An injected uniform source: the middle of the band, every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return (low + high) / 2


def make_queue(draws: Draws | None = None) -> TriggerQueue:
    return TriggerQueue(uniform=draws or Draws(), policy=RetryPolicy(), contact_gap=GAP)


def pending(queue: TriggerQueue) -> tuple[Reason, ...]:
    # A function, not the property itself: mypy would carry a narrowed value across calls.
    return queue.pending


def indication(queue: TriggerQueue) -> bool:
    return queue.send_solicited


def run(queue: TriggerQueue, now: float, *, ok: bool = True, failures: int = 0) -> Started:
    """Start what is due at `now` and end it at once."""
    started = queue.take(now)
    assert started is not None, f"nothing due at {now}"
    queue.finished(started.reason, ok, now, failures)
    return started


def drain(queue: TriggerQueue, now: float) -> list[Reason]:
    """Run, in order, everything due at `now`."""
    order: list[Reason] = []
    while (started := queue.take(now)) is not None:
        order.append(started.reason)
        queue.finished(started.reason, True, now, 0)
    return order


# --------------------------------------------------------------------------- coalescing


def test_start_up_added_at_daemon_start_is_due_at_once() -> None:
    queue = make_queue()
    assert queue.next_due(0.0) is None
    assert queue.add(Reason.START_UP, 0.0)
    assert queue.when_due() == 0.0
    assert queue.next_due(0.0) is Reason.START_UP


def test_repeated_triggers_of_one_reason_make_one_interaction() -> None:
    queue = make_queue()
    for t in range(100):
        assert queue.add(Reason.INVENTORY_CHANGES, float(t) / 100)
    assert pending(queue) == (Reason.INVENTORY_CHANGES,)
    assert drain(queue, 1.0) == [Reason.INVENTORY_CHANGES]
    assert pending(queue) == ()


def test_trigger_during_its_own_interaction_gives_one_more() -> None:
    queue = make_queue()
    queue.add(Reason.LOCAL_CHANGES, 0.0)
    started = queue.take(0.0)
    assert started is not None
    queue.add(Reason.LOCAL_CHANGES, 1.0)
    queue.add(Reason.LOCAL_CHANGES, 2.0)
    assert queue.next_due(3.0) is None  # one interaction at a time
    assert queue.when_due() is None
    queue.finished(Reason.LOCAL_CHANGES, True, 4.0, 0)
    assert drain(queue, 4.0) == [Reason.LOCAL_CHANGES]


def test_debounce_window_opens_with_the_first_change_and_is_not_pushed_back() -> None:
    queue = make_queue()
    queue.add(Reason.LOCAL_CHANGES, 10.0, delay=5.0)
    queue.add(Reason.LOCAL_CHANGES, 14.0, delay=5.0)
    assert queue.when_due() == 15.0
    assert queue.next_due(14.9) is None
    assert queue.next_due(15.0) is Reason.LOCAL_CHANGES


def test_reasons_that_open_no_interaction_are_refused() -> None:
    with pytest.raises(ValueError, match="does not open"):
        make_queue().add(Reason.REPLY_TO, 0.0)


def test_finishing_an_interaction_that_is_not_running_is_refused() -> None:
    queue = make_queue()
    queue.add(Reason.STATUS, 0.0)
    with pytest.raises(ValueError, match="no status interaction"):
        queue.finished(Reason.STATUS, True, 0.0, 0)
    queue.take(0.0)
    with pytest.raises(ValueError, match="no local-changes"):
        queue.finished(Reason.LOCAL_CHANGES, True, 0.0, 0)


# --------------------------------------------------------------------------- start-up


def test_pending_start_up_absorbs_triggers_that_arrive_after_it() -> None:
    queue = make_queue()
    queue.add(Reason.START_UP, 0.0)
    assert not queue.add(Reason.LOCAL_CHANGES, 0.1)
    assert not queue.add(Reason.SOLICITED, 0.2)
    assert not queue.contact_me(0.3)
    assert pending(queue) == (Reason.START_UP,)
    assert drain(queue, 1.0) == [Reason.START_UP]


def test_start_up_drops_what_was_pending_before_it() -> None:
    queue = make_queue()
    queue.add(Reason.LOCAL_CHANGES, 0.0, delay=5.0)
    queue.contact_me(0.0)
    queue.add(Reason.START_UP, 1.0)
    assert pending(queue) == (Reason.START_UP,)
    assert drain(queue, 10.0) == [Reason.START_UP]


def test_running_start_up_absorbs_nothing() -> None:
    queue = make_queue()
    queue.add(Reason.START_UP, 0.0)
    queue.take(0.0)
    assert queue.add(Reason.LOCAL_CHANGES, 0.5)
    queue.finished(Reason.START_UP, True, 1.0, 0)
    assert drain(queue, 1.0) == [Reason.LOCAL_CHANGES]


def test_failed_start_up_is_pending_again_and_absorbs_what_came_while_it_ran() -> None:
    queue = make_queue()
    queue.add(Reason.START_UP, 0.0)
    queue.take(0.0)
    queue.add(Reason.INVENTORY_CHANGES, 0.5)
    queue.finished(Reason.START_UP, False, 1.0, 1)
    assert pending(queue) == (Reason.START_UP,)
    assert queue.next_due(1_000.0) is Reason.START_UP


def test_send_solicited_indication_survives_a_pending_start_up_and_fires_after_it() -> None:
    queue = make_queue()
    queue.set_send_solicited(0.0)
    queue.add(Reason.START_UP, 0.0)
    assert pending(queue) == (Reason.START_UP,)
    assert drain(queue, 1.0) == [Reason.START_UP, Reason.SOLICITED]


# --------------------------------------------------------------------------- priority


def test_priority_is_start_up_status_local_inventory_solicited() -> None:
    assert PRIORITY == (
        Reason.START_UP,
        Reason.STATUS,
        Reason.LOCAL_CHANGES,
        Reason.INVENTORY_CHANGES,
        Reason.SOLICITED,
    )
    queue = make_queue()
    queue.contact_me(0.0)
    queue.add(Reason.INVENTORY_CHANGES, 0.0)
    queue.add(Reason.LOCAL_CHANGES, 0.0)
    queue.add(Reason.STATUS, 0.0)
    assert pending(queue) == PRIORITY[1:]
    assert drain(queue, 0.0) == list(PRIORITY[1:])


def test_a_lower_reason_due_now_goes_before_a_higher_one_due_later() -> None:
    queue = make_queue()
    queue.add(Reason.LOCAL_CHANGES, 0.0, delay=5.0)
    queue.contact_me(1.0)
    assert queue.when_due() == 1.0
    assert queue.next_due(1.0) is Reason.SOLICITED


# --------------------------------------------------------------------------- contact gap


def test_burst_of_1000_contact_mes_makes_one_solicited_interaction_within_the_gap() -> None:
    # The daemon's loop, simulated: each contact-me is queued as it arrives, and whatever
    # is due is started and takes 0.5 s. The burst spans 20 s, well within the gap.
    queue = make_queue()
    started: list[tuple[float, Started]] = []
    running_until: float | None = None
    for i in range(1000):
        now = i * 0.02
        if running_until is not None and now >= running_until:
            queue.finished(Reason.SOLICITED, True, running_until, 0)
            running_until = None
        assert queue.contact_me(now)
        if (s := queue.take(now)) is not None:
            started.append((now, s))
            running_until = now + 0.5
    assert [(t, s.reason) for t, s in started] == [(0.0, Reason.SOLICITED)]
    # The contact-mes within the gap are kept as one pending interaction at its end.
    assert pending(queue) == (Reason.SOLICITED,)
    assert queue.when_due() == GAP
    assert queue.next_due(GAP - 0.001) is None
    assert drain(queue, GAP) == [Reason.SOLICITED]
    assert pending(queue) == ()


def test_contact_mes_before_the_loop_picks_one_up_coalesce_into_one() -> None:
    queue = make_queue()
    for i in range(1000):
        queue.contact_me(i / 1000)
    assert drain(queue, 1.0) == [Reason.SOLICITED]
    assert queue.when_due() is None


def test_contact_me_after_the_gap_is_due_at_once() -> None:
    queue = make_queue()
    queue.contact_me(0.0)
    run(queue, 0.0)
    queue.contact_me(GAP + 1)
    assert queue.next_due(GAP + 1) is Reason.SOLICITED


def test_poll_answer_202_is_not_held_by_the_contact_gap() -> None:
    queue = make_queue()
    queue.contact_me(0.0)
    run(queue, 0.0)
    queue.contact_me(10.0)  # deferred to the gap's end
    assert queue.when_due() == GAP
    queue.add(Reason.SOLICITED, 20.0)  # the poll said 202
    assert queue.next_due(20.0) is Reason.SOLICITED


def test_solicited_interaction_calls_the_allowed_redirect_of_the_latest_contact_me() -> None:
    queue = make_queue()
    queue.contact_me(0.0, ("192.0.2.1", 18443))
    queue.contact_me(0.1, ("192.0.2.2", 10443))
    started = run(queue, 1.0)
    assert (started.reason, started.redirect) == (Reason.SOLICITED, ("192.0.2.2", 10443))
    queue.contact_me(GAP + 5)
    assert run(queue, GAP + 5).redirect is None


# --------------------------------------------------------------------------- retry


def test_failing_local_changes_are_retried_with_the_spec_back_off_until_they_succeed() -> None:
    draws = Draws()
    queue = make_queue(draws)
    queue.add(Reason.LOCAL_CHANGES, 0.0)
    now = 0.0
    retries_at: list[float] = []
    for failures in range(1, 10):
        started = queue.take(now)
        assert started is not None and started.reason is Reason.LOCAL_CHANGES
        assert started.retry is (failures > 1)
        assert queue.finished(Reason.LOCAL_CHANGES, False, now, failures) is not None
        due = queue.when_due()
        assert due is not None
        assert queue.next_due(due - 0.001) is None
        retries_at.append(due - now)
        now = due
    bands = [(10, 20), (20, 40), (40, 80), (80, 160), (160, 320)] + [(320, 640)] * 4
    assert draws.calls == [(float(lo), float(hi)) for lo, hi in bands]
    assert retries_at == [(lo + hi) / 2 for lo, hi in bands]
    run(queue, now)  # the server is back
    assert pending(queue) == ()
    assert queue.hold_until is None


def test_the_retry_wait_holds_every_phone_opened_reason() -> None:
    queue = make_queue()
    queue.add(Reason.STATUS, 0.0)
    queue.take(0.0)
    queue.finished(Reason.STATUS, False, 0.0, 1)  # waits 15 s
    queue.add(Reason.INVENTORY_CHANGES, 1.0)
    assert queue.next_due(14.9) is None
    assert drain(queue, 15.0) == [Reason.STATUS, Reason.INVENTORY_CHANGES]


def test_failed_solicited_is_not_retried() -> None:
    queue = make_queue()
    queue.contact_me(0.0, ("192.0.2.1", 18443))
    started = run(queue, 0.0, ok=False, failures=1)
    assert started.reason is Reason.SOLICITED
    assert pending(queue) == ()
    assert queue.when_due() is None


def test_contact_me_is_not_held_by_the_retry_wait_and_its_success_lifts_the_wait() -> None:
    queue = make_queue()
    queue.add(Reason.LOCAL_CHANGES, 0.0)
    run(queue, 0.0, ok=False, failures=1)  # local-changes wait until 15 s
    queue.contact_me(1.0)
    assert queue.next_due(1.0) is Reason.SOLICITED
    run(queue, 1.0)
    assert queue.next_due(1.0) is Reason.LOCAL_CHANGES


# --------------------------------------------------------------------------- send-solicited


def test_send_solicited_fires_at_once_when_idle_and_several_collapse() -> None:
    queue = make_queue()
    queue.add(Reason.STATUS, 0.0)  # an interaction whose CleanUp asks for more
    started = queue.take(0.0)
    assert started is not None
    queue.finished(Reason.STATUS, True, 1.0, 0, send_solicited=True)
    queue.set_send_solicited(1.5)
    assert indication(queue)
    assert queue.when_due() == 1.0
    solicited = queue.take(2.0)
    assert solicited is not None and solicited.answers_send_solicited
    queue.finished(Reason.SOLICITED, True, 3.0, 0)
    assert not indication(queue)
    assert queue.take(3.0) is None


def test_send_solicited_waits_while_busy_and_fires_when_idle() -> None:
    queue = make_queue()
    queue.set_busy(True)
    queue.set_send_solicited(0.0)
    assert queue.busy
    assert queue.next_due(10.0) is None
    assert queue.when_due() is None
    queue.set_busy(False)
    assert queue.next_due(20.0) is Reason.SOLICITED


def test_solicited_run_while_busy_leaves_the_indication_set() -> None:
    queue = make_queue()
    queue.set_send_solicited(0.0)
    queue.set_busy(True)
    queue.contact_me(1.0)
    started = run(queue, 1.0)
    assert not started.answers_send_solicited
    assert indication(queue)
    queue.set_busy(False)
    assert drain(queue, 2.0) == [Reason.SOLICITED]
    assert not indication(queue)


def test_failed_solicited_is_retried_while_send_solicited_is_pending() -> None:
    draws = Draws()
    queue = make_queue(draws)
    queue.set_send_solicited(0.0)
    started = run(queue, 0.0, ok=False, failures=1)
    assert started.answers_send_solicited
    assert indication(queue)
    assert queue.when_due() == 15.0
    assert queue.next_due(14.9) is None
    retried = queue.take(15.0)
    assert retried is not None and retried.reason is Reason.SOLICITED and retried.retry
    queue.finished(Reason.SOLICITED, True, 16.0, 0)
    assert not indication(queue)
    assert pending(queue) == ()


def test_indication_firing_leaves_a_contact_me_that_waits_for_its_gap() -> None:
    queue = make_queue()
    queue.contact_me(0.0)
    run(queue, 0.0)
    queue.contact_me(5.0)  # due at the gap's end
    queue.set_send_solicited(6.0)
    assert run(queue, 6.0).answers_send_solicited
    assert pending(queue) == (Reason.SOLICITED,)
    assert queue.when_due() == GAP
