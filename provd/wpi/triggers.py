"""The trigger queue: which interaction the phone opens next, and when (spec §3.1, §4.1, §4.3).

The daemon's loop feeds triggers in and asks what is due; the queue owns no clock
and no timer. Times are floats from one monotonic clock, passed in by the caller.

Rules, and the decisions where the spec leaves room:

- **Reasons.** `start-up`, `local-changes`, `inventory-changes`, `status` (opened by
  the phone) and `solicited` (asked for by the server: contact-me, poll answer 202,
  or the cached `send-solicited` indication). One interaction runs at a time.
- **Coalescing.** At most one pending interaction per reason: a trigger for a reason
  that is already pending merges into it. The running interaction is not pending, so
  a change made while `local-changes` is being reported gives one more `local-changes`.
  `add(reason, now, delay=...)` makes a new entry due `delay` seconds later and
  leaves an existing entry's time alone: the debounce of spec §3.5 is a window that
  opens with the first change and takes every change made within it, so a stream of
  changes cannot postpone the report for ever.
- **A pending `start-up` absorbs the others** (spec §3.1). While `start-up` is pending,
  every other trigger is dropped, and adding `start-up` drops every other pending
  entry: the `start-up` interaction carries the basic items, the
  `configuration-changed-flag` among them, and the server reads what it needs. Nothing
  persisted is lost by this: unreported local changes stay in the store, and the
  daemon raises `local-changes` again after a successful `start-up` while the store
  still holds any (spec §3.5: a change is not forgotten until the server has received
  it). The in-memory `send-solicited` indication is not a pending interaction and is
  kept; it fires after the `start-up` like any time the phone is idle.
  An interaction that is *running* absorbs nothing: triggers that arrive while
  `start-up` runs are pending as usual (unless that `start-up` fails and is pending
  again, which absorbs them anew).
- **Priority** among the entries due at the same time: `start-up` first (nothing
  else may go before the server knows the phone), then `status` (the result of a
  deployment the server ordered and is waiting for, spec §6), then `local-changes`
  and `inventory-changes` (what the phone knows and the server does not yet: reporting
  it first means a server-driven interaction works on current data and does not
  overwrite a local change it has not seen), then `solicited` last (the server drives
  it and reads the current state anyway, so it loses nothing by going after the reports).
- **Contact gap** (spec §4.1 [B]). A contact-me within `contact_gap` seconds of the start
  of the last `solicited` interaction is not dropped: it is due at the end of the gap
  and merges into the one pending `solicited` entry (see `provd.wpi.retry`). A poll
  answer 202 is the phone's own question and is not held by the gap.
- **send-solicited** (spec §4.3). One in-memory indication; several collapse. While it
  is set and the phone is not busy (in a call), a `solicited` interaction is due. It
  is cleared only by a `solicited` interaction that was started while idle and ended
  well; if that interaction fails the indication stays and the retry wait applies.
- **Retry** (spec §3.1 [B]). After a failed interaction, every phone-opened entry waits
  until ``now + policy.wait(failures)``, `failures` being the persisted count of
  failures in a row that the daemon passes in. The failed phone-opened reason is
  pending again (a failed `start-up` absorbs the others again). A failed `solicited`
  is not retried unless `send-solicited` is set. A contact-me or poll answer 202 is
  not held by the retry wait: the server has just shown it is up. A successful
  interaction lifts the wait for everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from provd.wpi.model import Reason
from provd.wpi.retry import DEFAULT_CONTACT_GAP, RetryPolicy, Uniform, contact_due

#: The reasons that open an interaction, highest priority first (see the module docstring).
PRIORITY: tuple[Reason, ...] = (
    Reason.START_UP,
    Reason.STATUS,
    Reason.LOCAL_CHANGES,
    Reason.INVENTORY_CHANGES,
    Reason.SOLICITED,
)
#: The reasons the phone opens on its own; these are retried until they succeed.
PHONE_OPENED = frozenset(
    {Reason.START_UP, Reason.STATUS, Reason.LOCAL_CHANGES, Reason.INVENTORY_CHANGES}
)


@dataclass(slots=True, kw_only=True)
class _Entry:
    """One pending interaction."""

    due: float
    held: bool  # waits for the retry wait (phone-opened); False when the server asked
    retry: bool = False  # pending again after a failure
    redirect: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """The interaction `TriggerQueue.take` started.

    `redirect` is the allowed ``(address, port)`` a contact-me named (spec §4.1),
    None for the configured server. `retry` is True when this is a retry after a
    failure. `answers_send_solicited` is True when a success clears the
    `send-solicited` indication.
    """

    reason: Reason
    redirect: tuple[str, int] | None = None
    retry: bool = False
    answers_send_solicited: bool = False


class TriggerQueue:
    """The pending interactions of the phone and the rules that order them.

    `uniform` draws the retry wait (`random.uniform` in production); `policy` and
    `contact_gap` come from the settings.
    """

    def __init__(
        self,
        *,
        uniform: Uniform,
        policy: RetryPolicy | None = None,
        contact_gap: float = DEFAULT_CONTACT_GAP,
    ) -> None:
        self._uniform = uniform
        self._policy = policy if policy is not None else RetryPolicy()
        self._gap = contact_gap
        self._pending: dict[Reason, _Entry] = {}
        self._running: Started | None = None
        self._hold_until: float | None = None
        self._last_solicited: float | None = None
        self._indication_since: float | None = None
        self._busy = False

    def reconfigure(self, *, policy: RetryPolicy, contact_gap: float) -> None:
        """New settings (a reload): they apply to the waits computed from now on."""
        self._policy = policy
        self._gap = contact_gap

    # ------------------------------------------------------------------ triggers

    def add(self, reason: Reason, now: float, *, delay: float = 0.0) -> bool:
        """Ask for an interaction for `reason`, due `delay` seconds after `now`.

        For `solicited` this is the poll answer 202 (not held by the contact gap or the
        retry wait); use `contact_me` for a contact-me. Returns False when the trigger
        was absorbed by a pending `start-up`, True when it is pending (new or merged).
        """
        if reason not in PRIORITY:
            raise ValueError(f"{reason!s} does not open an interaction")
        if reason is Reason.START_UP:
            self._pending = {}
        elif Reason.START_UP in self._pending:
            return False
        due = now + delay
        entry = self._pending.get(reason)
        if entry is None:
            self._pending[reason] = _Entry(due=due, held=reason in PHONE_OPENED)
        elif not entry.held:
            entry.due = min(entry.due, due)
        return True

    def contact_me(self, now: float, redirect: tuple[str, int] | None = None) -> bool:
        """Ask for a `solicited` interaction for a contact-me received at `now`.

        Due at once, or at the end of the contact gap (spec §4.1 [B]). `redirect` is the
        allowed target of the request (`ContactMeDecision.redirect`); the latest
        contact-me's target is the one called. Returns as `add`.
        """
        if Reason.START_UP in self._pending:
            return False
        due = contact_due(now, self._last_solicited, self._gap)
        entry = self._pending.get(Reason.SOLICITED)
        if entry is None:
            self._pending[Reason.SOLICITED] = _Entry(due=due, held=False, redirect=redirect)
        else:
            entry.due = min(entry.due, due)
            entry.held = False
            entry.redirect = redirect
        return True

    def set_send_solicited(self, now: float) -> None:
        """Set the `send-solicited` indication of a `CleanUp` (spec §4.3); several collapse."""
        if self._indication_since is None:
            self._indication_since = now

    def set_busy(self, busy: bool) -> None:
        """The phone is busy (a call is active) or idle again (spec §4.3)."""
        self._busy = busy

    # ------------------------------------------------------------------ the loop

    def next_due(self, now: float) -> Reason | None:
        """The reason of the interaction to open at `now`, or None (nothing due, or one runs)."""
        if self._running is not None:
            return None
        for reason in self._candidates():
            due = self._due(reason)
            if due is not None and due <= now:
                return reason
        return None

    def when_due(self) -> float | None:
        """The earliest time something falls due, for the loop's timeout.

        None while an interaction runs (its end is an event of its own) or when
        nothing is pending. A time in the past means: at once.
        """
        if self._running is not None:
            return None
        times = [t for r in self._candidates() if (t := self._due(r)) is not None]
        return min(times, default=None)

    def take(self, now: float) -> Started | None:
        """Start the interaction due at `now` (see `next_due`); None if nothing is due."""
        reason = self.next_due(now)
        if reason is None:
            return None
        entry = self._pending.pop(reason, None)
        answers = reason is Reason.SOLICITED and self._indication_active()
        if reason is Reason.SOLICITED:
            self._last_solicited = now
            if entry is not None and entry.due > now:
                # The indication fired while a contact-me still waits for its gap:
                # that one stays pending.
                self._pending[reason] = entry
                entry = None
        self._running = Started(
            reason=reason,
            redirect=entry.redirect if entry is not None else None,
            # Without an entry this is the indication firing: a retry if a failure holds it.
            retry=entry.retry if entry is not None else self._hold_until is not None,
            answers_send_solicited=answers,
        )
        return self._running

    def finished(
        self, reason: Reason, ok: bool, now: float, failures: int, *, send_solicited: bool = False
    ) -> float | None:
        """The running interaction for `reason` ended, well (`ok`) or not, at `now`.

        `failures` is the persisted count of failures in a row including this one (the
        daemon resets it to 0 on success). `send_solicited` is True when the
        interaction's `CleanUp` carried ``send-solicited=true``. Returns the time until
        which phone-opened interactions now wait, or None when nothing waits.
        """
        running = self._running
        if running is None or running.reason is not reason:
            raise ValueError(f"no {reason!s} interaction is running")
        self._running = None
        if ok:
            self._hold_until = None
            if running.answers_send_solicited:
                self._indication_since = None
        else:
            self._hold_until = now + self._policy.wait(max(failures, 1), self._uniform)
            if reason in PHONE_OPENED:
                if reason is Reason.START_UP:
                    self._pending = {}
                entry = self._pending.setdefault(reason, _Entry(due=now, held=True))
                entry.retry = True
            # A failed solicited is retried only through the indication, which stays set.
        if send_solicited:
            self.set_send_solicited(now)
        return self._hold_until

    # ------------------------------------------------------------------ state

    @property
    def running(self) -> Started | None:
        """The interaction running now, if any."""
        return self._running

    @property
    def pending(self) -> tuple[Reason, ...]:
        """The pending reasons in priority order (for `STATUS=` and `provctl status`).

        While `start-up` is pending it is the only one; `send_solicited` tells whether
        the indication waits behind it.
        """
        return tuple(r for r in self._candidates() if self._due(r) is not None)

    @property
    def busy(self) -> bool:
        """Whether the phone is busy (in a call)."""
        return self._busy

    @property
    def send_solicited(self) -> bool:
        """Whether the `send-solicited` indication is set."""
        return self._indication_since is not None

    @property
    def hold_until(self) -> float | None:
        """Until when phone-opened interactions wait after a failure, or None."""
        return self._hold_until

    # ------------------------------------------------------------------ inside

    def _candidates(self) -> tuple[Reason, ...]:
        if Reason.START_UP in self._pending:
            return (Reason.START_UP,)
        return PRIORITY

    def _indication_active(self) -> bool:
        return self._indication_since is not None and not self._busy

    def _due(self, reason: Reason) -> float | None:
        """When `reason` may start, counting the retry wait; None if it is not pending."""
        times: list[float] = []
        entry = self._pending.get(reason)
        if entry is not None:
            times.append(self._held(entry.due) if entry.held else entry.due)
        if reason is Reason.SOLICITED and self._indication_active():
            assert self._indication_since is not None
            times.append(self._held(self._indication_since))
        return min(times, default=None)

    def _held(self, due: float) -> float:
        return due if self._hold_until is None else max(due, self._hold_until)
