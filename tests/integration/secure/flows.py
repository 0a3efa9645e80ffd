"""Scenarios and phone-side steps shared by the Secure Mode tests.

Scenarios are the lab's TOML structure as Python data. The bootstrap is answered on
the *first* contact only (`contact = 1`), so a later start-up on the default port (after
a restart, a wrong TAN, retries exceeded) gets a plain `CleanUp` and shows whether the
phone stayed in, or went back to, Default Mode.
"""

from __future__ import annotations

import time
from typing import Any

from provd.lab.server import LabServer
from provd.lab.transcript import Record
from provd.wpi.model import Item, Reason
from tests.integration.daemon.harness import Phone

#: Every wait ends as soon as its event arrives; this only bounds a failure.
WAIT = 10.0

#: Keypad PINs (digits, `*`, `#`) whose parts match nothing else by chance: a TAN of
#: three digits would match milliseconds and ports in a log, one with `*` or `#` cannot
#: occur in Base64, hex or a timestamp. This one: password `73918264`, TAN `*5#`.
PIN = "73918264*5#"
WRONG_PINS = ("40527316#8*", "61849203*#7", "58203917#*2")

CLEAN_UP: dict[str, Any] = {"action": "CleanUp"}
READ_TAN: dict[str, Any] = {"action": "ReadItems", "items": ["bootstrapping-tan", "mac-addr"]}


def pin_write(
    data: str = "{secure-mode-data}", *, retries: int | None = 3, port: bool = True
) -> dict[str, Any]:
    """WriteItems with `goto-secure-mode=pin` (spec §7.2)."""
    items: list[dict[str, Any]] = [
        {"name": "goto-secure-mode", "value": "pin"},
        {"name": "secure-mode-data", "value": data},
    ]
    if retries is not None:
        items.append({"name": "max-pin-retries", "value": str(retries)})
    if port:
        items.append({"name": "dls-secure-port", "value": "{secure-port}"})
    return {"action": "WriteItems", "items": items}


def nopin_write(
    certificate: str = "{dls-client-certificate}",
    ca: str | None = "{dls-server-ca}",
) -> dict[str, Any]:
    """WriteItems with `goto-secure-mode=nopin` (spec §7.1)."""
    items: list[dict[str, Any]] = [
        {"name": "goto-secure-mode", "value": "nopin"},
        {"name": "dls-client-certificate", "value": certificate},
        {"name": "dls-secure-port", "value": "{secure-port}"},
    ]
    if ca is not None:
        items.append({"name": "dls-server-ca", "index": 0, "value": ca})
    return {"action": "WriteItems", "items": items}


def bootstrap_scenario(
    write: dict[str, Any],
    *,
    pin: str = PIN,
    secure_steps: tuple[dict[str, Any], ...] = (READ_TAN, CLEAN_UP),
    wrong_tan: str = "clean-up",
) -> dict[str, Any]:
    """Contact 1 bootstraps; start-ups on the secure port run `secure_steps`."""
    return {
        "secure": {"pin": pin, "wrong-tan": wrong_tan},
        "interaction": [
            {"contact": 1, "step": [write, CLEAN_UP]},
            {"channel": "secure", "reason": "start-up", "step": list(secure_steps)},
            {"step": [CLEAN_UP]},
        ],
    }


# --------------------------------------------------------------------------- the phone


def mode(phone: Phone) -> str:
    text: str = phone.status()["mode"]
    return text


def wait_mode(phone: Phone, prefix: str, timeout: float = WAIT) -> str:
    """Wait until `provctl status`'s mode starts with `prefix`; return it."""
    deadline = time.monotonic() + timeout
    while True:
        current = mode(phone)
        if current.startswith(prefix):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"mode is {current!r}, not {prefix!r}...\n{phone.logtext()}")
        time.sleep(0.02)


def pending_prompt(phone: Phone) -> dict[str, Any] | None:
    """The prompt the `socket` driver holds for the GUI (`pin-prompt`), or None."""
    answer = phone.ctl("pin-prompt")
    assert answer["ok"], answer
    prompt: dict[str, Any] | None = answer.get("prompt")
    return prompt


def wait_prompt(phone: Phone, *, after: int = 0, timeout: float = WAIT) -> dict[str, Any]:
    """Wait for a PIN prompt with an id above `after` (a new prompt, not the last one)."""
    deadline = time.monotonic() + timeout
    while True:
        prompt = pending_prompt(phone)
        if prompt is not None and prompt["id"] > after:
            return prompt
        if time.monotonic() > deadline:
            raise AssertionError(f"no new PIN prompt (last: {prompt})\n{phone.logtext()}")
        time.sleep(0.02)


def type_pin(phone: Phone, prompt: dict[str, Any], pin: str) -> None:
    """The GUI's answer to `prompt` (`pin-answer`)."""
    answer = phone.ctl("pin-answer", id=prompt["id"], pin=pin)
    assert answer == {"ok": True}, answer


def cancel(phone: Phone, prompt: dict[str, Any]) -> None:
    answer = phone.ctl("pin-answer", id=prompt["id"], cancel=True)
    assert answer == {"ok": True}, answer


# --------------------------------------------------------------------------- the lab


def wait_handshake_error(lab: LabServer, *, before: int = 0, timeout: float = WAIT) -> str:
    """The secure port's next failed handshake (recorded by the lab's connection thread,
    which may be a moment behind the phone's side)."""
    deadline = time.monotonic() + timeout
    while len(errors := lab.secure_handshake_errors) <= before:
        if time.monotonic() > deadline:
            raise AssertionError("no failed handshake on the secure port")
        time.sleep(0.02)
    return errors[before]


def phone_messages(lab: LabServer, *, channel: str | None = None) -> list[Record]:
    return [r for r in lab.transcript if r.from_phone and (channel is None or r.channel == channel)]


def opened_on(lab: LabServer, channel: str, reason: Reason | None = None) -> list[int]:
    """Numbers of the interactions opened on `channel` (with `reason`)."""
    return [
        i.number
        for i in lab.conductor.interactions
        if i.number > 0 and i.channel == channel and (reason is None or i.reason is reason)
    ]


def wait_opened(
    lab: LabServer, channel: str, reason: Reason, count: int = 1, timeout: float = WAIT
) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(found := opened_on(lab, channel, reason)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} {reason.value} on {channel}? {lab.transcript}")
        time.sleep(0.02)
    return found


def reply_to(lab: LabServer, interaction: int, action: str) -> Record:
    """The phone's reply to `action` in `interaction`."""
    for record in lab.transcript:
        if record.interaction == interaction and record.from_phone and record.action == action:
            return record
    raise AssertionError(f"no reply to {action} in interaction {interaction}")


def statuses(items: tuple[Item, ...]) -> dict[str, str]:
    return {
        (i.name if i.index is None else f"{i.name}[{i.index}]"): str(i.status)
        for i in items
        if i.status is not None
    }
