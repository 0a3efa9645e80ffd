"""What the daemon does around an interaction: the items it reports and the
bookkeeping after it (spec §3.2, §3.5, §6.3, §7.4).

Functions of the daemon's state, kept out of `daemon.py` so that the loop
stays readable; all run on the loop's thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from provd.service.exchange import Outcome
from provd.service.journal import MessageId, log_event
from provd.store.errors import StoreError
from provd.store.itemspec import Access
from provd.wpi.model import Item, Reason

if TYPE_CHECKING:
    from provd.service.daemon import Daemon

log = logging.getLogger(__name__)


def pending_seq(daemon: Daemon) -> int:
    """The newest queued local change now: what a successful report acknowledges."""
    pending = daemon.store.pending_local_changes()
    return max((p.seq for p in pending), default=0)


def changed_items(daemon: Daemon) -> list[Item]:
    """The locally changed items with their current values (spec §3.5 [G p.40]).

    Write-only items are named without a value: the server learns that the
    user changed a password, never the password. (The queue holds each key once.)
    """
    pending = daemon.store.pending_local_changes()
    scalars = daemon.book.values_of(c.name for c in pending if c.index is None)
    items: list[Item] = []
    for change in pending:
        spec = daemon.catalog.get(change.name)
        if spec is None:
            continue
        if spec.access is Access.WO or spec.secret:
            items.append(Item(name=change.name, index=change.index))
            continue
        if change.index is None:
            value = scalars.get(change.name)
        else:
            value = daemon.book.value_of(change.name, change.index)
        items.append(Item(name=change.name, index=change.index, value=value or ""))
    return items


def inventory_items(daemon: Daemon) -> list[Item]:
    """The inventory items (spec §3.5 [G p.28; F]) with their values."""
    items = []
    for spec in daemon.catalog.inventory_items():
        value = daemon.book.value_of(spec.name)
        if value is not None:
            items.append(Item(name=spec.name, value=value))
    return items


def interaction_outcome(daemon: Daemon, outcome: Outcome) -> None:
    """Log the outcome and do what a successful interaction settles."""
    result = outcome.result
    error = outcome.error
    if error is not None and error.peer_spki_sha256 is not None:
        log_event(
            log,
            MessageId.TRUST_PIN_MISMATCH,
            "server %s presented key %s, not the pinned one: refused "
            "(reset with 'provctl reset-pin' if the server really changed)",
            outcome.server,
            error.peer_spki_sha256,
            level=logging.ERROR,
            server=outcome.server,
            nonce=outcome.nonce,
        )
    elif error is not None and error.kind == "tls":
        log_event(
            log,
            MessageId.TLS_FAILURE,
            "TLS with %s failed: %s",
            outcome.server,
            error.message,
            level=logging.ERROR,
            server=outcome.server,
            nonce=outcome.nonce,
        )
    if result.ok:
        log_event(
            log,
            MessageId.INTERACTION_COMPLETED,
            "%s interaction completed in %.1f s (%s)",
            outcome.reason.value,
            outcome.seconds,
            ", ".join(result.actions) or "no actions",
            reason=outcome.reason.value,
            nonce=outcome.nonce,
            server=outcome.server,
            actions=" ".join(result.actions) or None,
            result="ok",
            send_solicited="true" if result.send_solicited else None,
            cleanup_reason=result.cleanup_reason,
        )
        _settle(daemon, outcome)
    else:
        log_event(
            log,
            MessageId.INTERACTION_FAILED,
            "%s interaction failed: %s",
            outcome.reason.value,
            result.failure,
            level=logging.WARNING,
            reason=outcome.reason.value,
            nonce=outcome.nonce,
            server=outcome.server,
            actions=" ".join(result.actions) or None,
            result="failed",
            error=result.failure,
        )


def _settle(daemon: Daemon, outcome: Outcome) -> None:
    try:
        # spec §7.4: the key of the first server that completes an interaction is pinned.
        if (
            outcome.peer_spki_sha256
            and daemon.settings.tls.default_trust.value == "pin"
            and daemon.secure.read_trust_pin() is None
        ):
            daemon.secure.write_trust_pin(outcome.peer_spki_sha256)
            log_event(
                log,
                MessageId.TRUST_PINNED,
                "pinned the key of %s: %s",
                outcome.server,
                outcome.peer_spki_sha256,
                server=outcome.server,
            )
        # spec §3.2/§3.5: the server has the local changes once it received the
        # report or read all items.
        reported = outcome.reason is Reason.LOCAL_CHANGES or outcome.effects.read_all_done
        if reported and daemon.pending_seq_at_start:
            daemon.store.acknowledge_local_changes(daemon.pending_seq_at_start)
        if reported and not daemon.store.pending_local_changes():
            daemon.store.clear_configuration_changed()
    except StoreError as exc:
        log.error("could not record the interaction's result: %s", exc)


def restart(daemon: Daemon, kind: str) -> None:
    """Restart or factory reset after the interaction ended (spec §6.3)."""
    if kind == "factory-reset":
        log_event(log, MessageId.FACTORY_RESET, "factory reset ordered by the server")
        factory_reset(daemon)
    else:
        log_event(log, MessageId.RESTART, "restart ordered by the server")
    daemon.request_reboot(kind)


def factory_reset(daemon: Daemon) -> None:
    """Wipe provisioned items, the secure store (trust pin and Secure Mode with it)."""
    try:
        daemon.store.wipe()
        daemon.secure.wipe()
        daemon.secure_mode.reset()
        daemon.files.wipe()
        # A staged firmware image is the old configuration's too.
        staging = daemon.settings.paths.staging_dir
        if staging.is_dir():
            for leftover in staging.iterdir():
                if leftover.is_file() or leftover.is_symlink():
                    leftover.unlink()
    except StoreError as exc:
        log.error("factory reset incomplete: %s", exc)
