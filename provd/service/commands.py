"""The control commands of the local interface (docs/control-protocol.md).

Each command is a function of the daemon and the request object, returning
the answer object; all run on the loop's thread. Item names in requests are
`name` or `name[index]`.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from provd.service import reports
from provd.service.control import ControlServer
from provd.service.journal import MessageId, log_event
from provd.store.errors import StoreError
from provd.wpi.model import Item, Reason

if TYPE_CHECKING:
    from provd.service.daemon import Daemon

log = logging.getLogger(__name__)

Command = Callable[["Daemon", dict[str, Any]], dict[str, Any]]
_KEY = re.compile(r"^(?P<name>[^\[\]]+)(?:\[(?P<index>\d+)\])?$")


def open_control(daemon: Daemon) -> ControlServer:
    """Bind the control socket: mode 0660, group `control.group` when it exists."""
    path = daemon.settings.control.socket
    path.parent.mkdir(parents=True, exist_ok=True)
    server = ControlServer(path, lambda request: dispatch(daemon, request), daemon.loop)
    with contextlib.suppress(KeyError, PermissionError, OSError):
        gid = grp.getgrnam(daemon.settings.control.group).gr_gid
        if path.stat().st_gid != gid:
            os.chown(path, -1, gid)
    return server


def dispatch(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    command = COMMANDS.get(str(request.get("cmd")))
    if command is None:
        if request.get("cmd") == "debug-freeze" and daemon.debug_commands:
            return _freeze(daemon, request)
        return {"ok": False, "error": f"unknown command {request.get('cmd')!r}"}
    return command(daemon, request)


def _key(text: str) -> tuple[str, int | None]:
    match = _KEY.match(text.strip())
    if match is None:
        raise ValueError(f"not an item name: {text!r}")
    index = match.group("index")
    return match.group("name"), None if index is None else int(index)


def _label(name: str, index: int | None) -> str:
    return name if index is None else f"{name}[{index}]"


def status(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """Mode, state, last and next contact, last error, pending reasons."""
    running = daemon.started
    return {
        "ok": True,
        "status": daemon.status_line(),
        "mode": daemon.mode(),
        "server": daemon.settings.server.url,
        "busy": daemon.busy,
        "running": running.reason.value if running else None,
        "pending": [r.value for r in daemon.triggers.pending],
        "send_solicited": daemon.triggers.send_solicited,
        "last_contact": daemon.last_contact,
        "last_error": daemon.last_error,
        "next_contact_in": daemon.next_contact_in(),
        "next_poll_in": None
        if daemon.poller.next_poll is None
        else round(daemon.poller.next_poll - daemon.clock(), 1),
        "trust_pin": daemon.secure.read_trust_pin(),
        "local_changes_pending": len(daemon.store.pending_local_changes()),
        "contact_me_port": daemon.listener.address[1],
        "warnings": daemon.warnings(),
    }


def get(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """Values of the named items (all readable ones without names)."""
    names = request.get("items")
    if not names:
        items = daemon.book.read_all()
    else:
        if not isinstance(names, list):
            return {"ok": False, "error": "'items' is a list of names"}
        try:
            keys = [_key(str(n)) for n in names]
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        items = daemon.book.read([Item(name=n, index=i) for n, i in keys])
    values = {_label(i.name, i.index): i.value for i in items if i.status is None}
    errors = {_label(i.name, i.index): str(i.status) for i in items if i.status is not None}
    return {"ok": not errors, "items": values, "errors": errors}


def set_items(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """A local change (spec §3.5): validated like a server write, reported later."""
    values = request.get("items")
    if not isinstance(values, dict) or not values:
        return {"ok": False, "error": "'items' is an object of name: value"}
    try:
        items = [
            Item(name=name, index=index, value=str(value))
            for (name, index), value in ((_key(str(k)), v) for k, v in values.items())
        ]
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
    # Validation is the book's, as for a server write: a read-only item comes back
    # in "rejected" as "read only" and the valid ones are committed.
    return daemon.local_change(items)


def busy(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """The telephony stack says a call started (`on`) or ended (spec §4.3)."""
    on = request.get("on")
    if not isinstance(on, bool):
        return {"ok": False, "error": "'on' is true or false"}
    daemon.set_busy(on)
    return {"ok": True, "busy": on}


def contact(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """Open an interaction now (default `solicited`)."""
    reason_text = str(request.get("reason", Reason.SOLICITED.value))
    try:
        reason = Reason(reason_text)
    except ValueError:
        return {"ok": False, "error": f"not a reason: {reason_text!r}"}
    if reason in (Reason.REPLY_TO, Reason.CLEAN_UP):
        return {"ok": False, "error": f"{reason.value} does not open an interaction"}
    daemon.triggers.add(reason, daemon.clock())
    return {"ok": True, "queued": reason.value}


def reset_pin(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """Forget the pinned server key: the next server is trusted on first use (§7.4)."""
    try:
        daemon.secure.clear_trust_pin()
    except StoreError as exc:
        return {"ok": False, "error": str(exc)}
    log_event(log, MessageId.TRUST_PIN_RESET, "trust pin reset through the local interface")
    return {"ok": True}


def factory_reset(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """Factory reset from the phone's menu: same as the server's (spec §6.3)."""
    if request.get("confirm") is not True:
        return {"ok": False, "error": 'factory reset needs "confirm": true'}
    log_event(log, MessageId.FACTORY_RESET, "factory reset through the local interface")
    reports.factory_reset(daemon)
    daemon.request_reboot("factory-reset")
    return {"ok": True}


def pin(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """Show the Secure Mode PIN prompt again after a cancel (spec §7.3 step 3)."""
    if daemon.secure_mode.state.phase.value != "await pin":
        return {"ok": False, "error": "no Secure Mode PIN entry is pending"}
    if not daemon.pin.show_prompt():
        return {"ok": False, "error": "the prompt is already shown, or no UI driver works"}
    return {"ok": True}


def pin_prompt(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """The socket UI driver: the pending prompt for the phone's GUI to draw."""
    return daemon.pin.pending()


def pin_answer(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """The socket UI driver: the GUI's answer (`pin` or `cancel`)."""
    return daemon.pin.answer(request)


def _freeze(daemon: Daemon, request: dict[str, Any]) -> dict[str, Any]:
    """Test hook (PROVD_DEBUG_COMMANDS=1 only): block the main loop, as a hang would."""
    seconds = float(request.get("seconds", 5))
    log.warning("debug-freeze: main loop blocked for %.1f s", seconds)
    time.sleep(min(seconds, 120.0))
    return {"ok": True}


COMMANDS: dict[str, Command] = {
    "status": status,
    "get": get,
    "set": set_items,
    "busy": busy,
    "contact": contact,
    "reset-pin": reset_pin,
    "factory-reset": factory_reset,
    "pin": pin,
    "pin-prompt": pin_prompt,
    "pin-answer": pin_answer,
}
