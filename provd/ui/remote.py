"""The `socket` driver: the phone's own UI process draws the PIN dialog.

provd does not draw anything here and owns no socket: the prompt waits in this driver
for the phone's GUI (or any client of the local control interface) to fetch it and
answer, with two control commands the daemon's control server routes to the handlers
below (`docs/ui-drivers.md`)::

    -> {"cmd": "pin-prompt"}
    <- {"ok": true, "prompt": {"id": 3, "title": "Secure Mode", "message": "",
        "attempts_left": 2, "min_length": 4, "max_length": 32, "expires_in": 117.5}}
    -> {"cmd": "pin-answer", "id": 3, "pin": "1234567"}     (or "cancel": true)
    <- {"ok": true}

So a GUI in any language returns the PIN without Python. The PIN travels only over the
control socket, whose file permissions limit it to the `provd` group; it is never echoed
in an answer or an error. An answer naming an `id` that is no longer pending is refused,
so a dialog left open from an earlier prompt cannot answer a later one. The prompt times
out like the others (`expires_in` says when; the deadline is from when it was shown).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from provd.ui.base import PinCancelled, PinEntered, PinPrompt, ResultCallback
from provd.ui.prompting import Clock, PromptDriver

log = logging.getLogger(__name__)


class SocketDriver(PromptDriver):
    """Keeps the pending prompt for `pending()` and takes the PIN from `answer()`."""

    name = "socket"

    def __init__(self, on_result: ResultCallback, *, clock: Clock = time.monotonic) -> None:
        super().__init__(on_result, clock=clock)
        self._prompt_id = 0
        self.last_message: str | None = None

    def show_prompt(self, prompt: PinPrompt) -> None:
        self._prompt_id += 1
        super().show_prompt(prompt)

    def _draw_message(self, text: str) -> None:
        self.last_message = text

    # ------------------------------------------------------------------ control commands

    def pending(self) -> dict[str, Any] | None:
        """`pin-prompt`: the pending prompt as a JSON-able dict, or None."""
        self.tick(self._clock())  # an expired prompt is no longer pending
        prompt = self.prompt
        if prompt is None:
            return None
        deadline = self.next_deadline()
        expires_in = None if deadline is None else round(max(0.0, deadline - self._clock()), 1)
        return {
            "prompt": {
                "id": self._prompt_id,
                "title": prompt.title,
                "message": prompt.message,
                "attempts_left": prompt.attempts_left,
                "min_length": prompt.min_length,
                "max_length": prompt.max_length,
                "expires_in": expires_in,
            }
        }

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """`pin-answer`: ``{"pin": "..."}`` or ``{"cancel": true}``, optionally with the
        prompt's ``"id"``. Returns the control answer: ``{"ok": true}`` or
        ``{"ok": false, "error": ...}``; the error never contains the PIN."""
        self.tick(self._clock())
        prompt = self.prompt
        if prompt is None:
            return _refused("no PIN prompt pending")
        wanted = request.get("id", self._prompt_id)
        if type(wanted) is not int or wanted != self._prompt_id:
            return _refused("that PIN prompt is no longer pending")
        cancel = request.get("cancel", False)
        has_pin = "pin" in request
        if cancel is not False and cancel is not True:
            return _refused("'cancel' must be true or false")
        if cancel and has_pin:
            return _refused("give either 'pin' or 'cancel', not both")
        if cancel:
            self._finish(PinCancelled())
            return {"ok": True}
        if not has_pin:
            return _refused("give 'pin' or 'cancel'")
        problem = _pin_problem(request["pin"], prompt)
        if problem is not None:
            return _refused(problem)
        self._finish(PinEntered(pin=request["pin"]))
        return {"ok": True}


def _pin_problem(pin: object, prompt: PinPrompt) -> str | None:
    """Why `pin` cannot be the answer (the text describes it, never repeats it)."""
    if not isinstance(pin, str):
        return "'pin' must be a string"
    if not prompt.min_length <= len(pin) <= prompt.max_length:
        return f"'pin' must have {prompt.min_length} to {prompt.max_length} characters"
    if not pin.isascii() or not pin.isprintable() or pin != pin.strip():
        return "'pin' must be printable ASCII without surrounding spaces"
    return None


def _refused(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}
