"""The PIN side of Secure Mode in the daemon: the prompt, the answer, the retries' report.

`PinFlow` owns the UI driver, created the first time a prompt is due (so a phone
that never bootstraps never loads a keypad driver), turns the user's answer into
the bootstrap's next steps, and delivers the phone's own `clean-up` when the PIN
retries are used up (spec §7.3 step 3 [G p.83]). Everything runs on the loop's
thread; the clean-up interaction runs in the worker like any other.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from provd.service import reports
from provd.service.exchange import Actions, Exchange, Outcome
from provd.service.journal import MessageId, log_event
from provd.wpi.bootstrap import RETRIES_EXCEEDED, Step
from provd.wpi.model import Item, Reason
from provd.wpi.nonce import new_nonce
from provd.wpi.retry import RetryPolicy

if TYPE_CHECKING:
    from provd.service.daemon import Daemon
    from provd.ui.base import PinResult, UiDriver
    from provd.wpi.session import SessionConfig

log = logging.getLogger(__name__)


class PinFlow:
    """The PIN prompt and what follows it, for one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.ui: UiDriver | None = None
        self._failed = False  # the driver could not be made: do not try on every turn

    # ------------------------------------------------------------------ the driver

    def driver(self) -> UiDriver | None:
        """The UI driver, made on first use."""
        if self.ui is None and not self._failed:
            from provd.ui.factory import make_driver  # noqa: PLC0415 - only when a PIN is due

            daemon = self.daemon
            ui = daemon.settings.ui
            try:
                driver = make_driver(
                    ui.driver.value, self.on_pin, clock=daemon.clock, **ui.options()
                )
            except Exception as exc:  # no keypad, bad keymap: the PIN can come via socket
                log.error("UI driver %s unavailable: %s", ui.driver.value, exc)
                self._failed = True
                return None
            for fd in driver.filenos():
                daemon.loop.add_reader(fd, functools.partial(self._readable, fd))
            self.ui = driver
        return self.ui

    def _readable(self, fd: int) -> None:
        if self.ui is None:
            return
        try:
            self.ui.on_readable(fd)
        except Exception as exc:
            log.error("UI input lost: %s", exc)
            self.close()
            self._failed = True

    def next_deadline(self) -> float | None:
        return None if self.ui is None else self.ui.next_deadline()

    def tick(self, now: float) -> None:
        if self.ui is not None:
            self.ui.tick(now)

    def close(self) -> None:
        if self.ui is not None:
            for fd in self.ui.filenos():
                self.daemon.loop.remove_reader(fd)
            self.ui.close()
            self.ui = None

    # ------------------------------------------------------------------ the socket driver

    def pending(self) -> dict[str, Any]:
        """`pin-prompt`: the prompt waiting for the phone's GUI (socket driver)."""
        driver = self.ui
        if driver is None:
            if self.daemon.settings.ui.driver.value != "socket":
                return {"ok": False, "error": "the UI driver is not 'socket'"}
            return {"ok": True, "prompt": None}
        pending = getattr(driver, "pending", None)
        if pending is None:
            return {"ok": False, "error": "the UI driver is not 'socket'"}
        return {"ok": True, **(pending() or {"prompt": None})}

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """`pin-answer`: the GUI's answer (`pin` or `cancel`)."""
        answer = getattr(self.ui, "answer", None)
        if answer is None:
            return {"ok": False, "error": "no PIN prompt is shown"}
        result: dict[str, Any] = answer(request)
        return result

    # ------------------------------------------------------------------ the prompt

    def show_prompt(self) -> bool:
        """Ask for the PIN on the phone's display (or hand it to the GUI, socket driver)."""
        driver = self.driver()
        if driver is None or driver.prompting:
            return False
        daemon = self.daemon
        daemon.secure_mode.prompt_due = False
        timeout = daemon.settings.ui.timeout or None
        driver.show_prompt(daemon.secure_mode.prompt(timeout))
        log_event(
            log,
            MessageId.SECURE_PIN_PROMPT,
            "asking for the Secure Mode PIN (%d attempts left)",
            daemon.secure_mode.state.attempts_left,
        )
        daemon.update_status()
        return True

    def on_pin(self, result: PinResult) -> None:
        self.steps(self.daemon.secure_mode.on_pin(result))

    def steps(self, steps: tuple[Step, ...]) -> None:
        """Do what the bootstrap asks after an interaction or a PIN."""
        daemon = self.daemon
        if Step.START_UP_SECURE in steps or Step.DISCARD in steps:
            # A new start-up: on the secure port, or back on the default one.
            daemon.triggers.add(Reason.START_UP, daemon.clock())
        if Step.PROMPT_PIN in steps:
            self.show_prompt()
        daemon.update_status()

    # ------------------------------------------------------------------ retries exceeded

    def start_cleanup(self) -> None:
        """spec §7.3 step 3 [G p.83]: tell the server on the default port that the PIN
        retries are used up; persisted and tried again until the server has it."""
        daemon = self.daemon
        timeouts = daemon.settings.timeouts
        exchange = Exchange(
            reason=Reason.CLEAN_UP,
            nonce=new_nonce(daemon.random_bytes),
            items=[Item(name="cleanup-reason", value=RETRIES_EXCEEDED)],
            endpoint=daemon.endpoint(None),
            actions=Actions(daemon.book, None, busy=lambda: daemon.busy),
            config=_session_config(),
            connect_timeout=timeouts.connect,
            response_timeout=timeouts.response,
            interaction_timeout=timeouts.interaction,
            clock=daemon.clock,
        )
        daemon.exchange = exchange
        daemon.worker.submit(exchange.run, self._cleanup_done)

    def _cleanup_done(self, outcome: Any, error: BaseException | None) -> None:
        daemon = self.daemon
        daemon.exchange = None
        if isinstance(outcome, Outcome):
            reports.interaction_outcome(daemon, outcome)
        if isinstance(outcome, Outcome) and outcome.result.ok:
            daemon.secure_mode.set_cleanup_due(False)
        else:
            # Kept (and persisted): tried again after the retry wait.
            daemon.secure_mode.cleanup_due = False
            retry = daemon.settings.retry
            wait = RetryPolicy(minimum=retry.m, multiplier=retry.k, cap=retry.cap).wait(
                1, daemon.uniform
            )
            daemon.loop.call_later(wait, self._cleanup_again)
        daemon.update_status()

    def _cleanup_again(self) -> None:
        self.daemon.secure_mode.cleanup_due = True


def _session_config() -> SessionConfig:
    # The XML codec is imported by the first interaction, after READY=1 (issue 8).
    from provd.wpi.session import SessionConfig  # noqa: PLC0415

    return SessionConfig()
