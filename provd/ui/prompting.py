"""What every driver does alike: keep the pending prompt, its entry field and deadline,
turn keys into results, time out, and report through the callback.

A driver subclasses `PromptDriver` and draws (`_draw_prompt`, `_draw_field`,
`_draw_message`, `_prompt_closed`); its input side calls `press(key)`. The deadline is
an inactivity timeout (spec §7.3: the prompt "times out"): it restarts with every key,
so a slow typist is not cut off halfway through a long PIN.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import NoReturn

from provd.ui.base import (
    Key,
    PinCancelled,
    PinEntered,
    PinPrompt,
    PinResult,
    PinTimedOut,
    ResultCallback,
    UiError,
)
from provd.ui.entry import EntryOutcome, PinEntry

log = logging.getLogger(__name__)

#: journald MESSAGE_IDs, one per kind of event (each explained in systemd/provd.catalog).
#: A prompt being shown is the service's event (MessageId.SECURE_PIN_PROMPT, logged by the
#: caller), so the driver notes it at debug level only: one event, one id.
MSG_PIN_RESULT = "f92dfd8122bc49cab661b4e75df0ab59"
MSG_UI_LOST = "68be1f4a051746a1800b9461a50c9062"

Clock = Callable[[], float]


class PromptDriver:
    """The shared half of a driver (see `provd.ui.base.UiDriver`)."""

    name = "prompt"

    def __init__(self, on_result: ResultCallback, *, clock: Clock = time.monotonic) -> None:
        self._on_result = on_result
        self._clock = clock
        self._prompt: PinPrompt | None = None
        self._entry: PinEntry | None = None
        self._deadline: float | None = None
        self._generation = 0  # changes whenever a prompt starts or ends

    # ------------------------------------------------------------------ the interface

    @property
    def prompting(self) -> bool:
        return self._prompt is not None

    @property
    def prompt(self) -> PinPrompt | None:
        """The pending prompt, if any."""
        return self._prompt

    def filenos(self) -> tuple[int, ...]:
        return ()

    def show_prompt(self, prompt: PinPrompt) -> None:
        if self._entry is not None:
            self._entry.clear()
        self._prompt = prompt
        self._entry = PinEntry.for_prompt(prompt)
        self._generation += 1
        self._restart_timer()
        log.debug(
            "PIN prompt shown on %s (attempts left: %s)",
            self.name,
            "-" if prompt.attempts_left is None else prompt.attempts_left,
            extra={"PROVD_UI_DRIVER": self.name},
        )
        self._draw_prompt(prompt, self._entry.masked())

    def show_message(self, text: str) -> None:
        self._draw_message(text)

    def withdraw(self) -> None:
        if self._prompt is not None:
            self._reset()
            self._prompt_closed(None)

    def on_readable(self, fd: int) -> None:
        """Drivers with file descriptors override this."""

    def tick(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline:
            self._finish(PinTimedOut())

    def next_deadline(self) -> float | None:
        return self._deadline

    def close(self) -> None:
        self.withdraw()

    # ------------------------------------------------------------------ for the drivers

    def press(self, key: Key) -> None:
        """One key from the driver's input. Keys while no prompt is pending are dropped:
        nothing typed ahead may end up in a PIN."""
        if self._prompt is None or self._entry is None:
            return
        self._restart_timer()
        outcome = self._entry.press(key)
        if outcome is EntryOutcome.EDITED:
            self._draw_field(self._prompt, self._entry.masked())
        elif outcome is EntryOutcome.SUBMITTED:
            self._finish(PinEntered(pin=self._entry.take()))
        elif outcome is EntryOutcome.CANCELLED:
            self._finish(PinCancelled())

    def press_keys(self, keys: Iterable[Key]) -> None:
        """Keys of one read, in order, for the prompt pending when they arrived: once it
        ends, the rest are dropped (a CR LF's LF, keys typed past OK must not reach the next
        prompt, which the result callback may already have shown)."""
        generation = self._generation
        for key in keys:
            if self._prompt is None or self._generation != generation:
                return
            self.press(key)

    def _finish(self, result: PinResult) -> None:
        """End the pending prompt with `result`. State is reset before the callback runs,
        so the callback may show the next prompt at once (a wrong PIN: ask again)."""
        if self._prompt is None:
            return
        self._reset()
        log.info(
            "PIN prompt on %s ended: %s",
            self.name,
            type(result).__name__,  # the class name only: PinEntered carries the PIN
            extra={
                "MESSAGE_ID": MSG_PIN_RESULT,
                "PROVD_EVENT": "pin-prompt-ended",
                "PROVD_UI_DRIVER": self.name,
                "PROVD_UI_RESULT": type(result).__name__,
            },
        )
        self._prompt_closed(result)
        self._on_result(result)

    def _lost(self, reason: str) -> NoReturn:
        """The input is gone for good: cancel a pending prompt, then raise for the daemon."""
        log.warning(
            "UI %s lost: %s",
            self.name,
            reason,
            extra={
                "MESSAGE_ID": MSG_UI_LOST,
                "PROVD_EVENT": "ui-lost",
                "PROVD_UI_DRIVER": self.name,
            },
        )
        self._finish(PinCancelled())
        raise UiError(f"{self.name}: {reason}")

    def _restart_timer(self) -> None:
        timeout = self._prompt.timeout if self._prompt is not None else None
        self._deadline = None if timeout is None else self._clock() + timeout

    def _reset(self) -> None:
        if self._entry is not None:
            self._entry.clear()
        self._prompt = None
        self._entry = None
        self._deadline = None
        self._generation += 1

    # ------------------------------------------------------------------ drawing hooks

    def _draw_prompt(self, prompt: PinPrompt, masked: str) -> None:
        """Draw a new prompt with its (empty) masked field."""

    def _draw_field(self, prompt: PinPrompt, masked: str) -> None:
        """Redraw after a key changed the field; by default the whole prompt."""
        self._draw_prompt(prompt, masked)

    def _draw_message(self, text: str) -> None:
        """Show a line of text."""

    def _prompt_closed(self, result: PinResult | None) -> None:
        """The prompt is over (`None`: withdrawn); restore what showing it changed."""
