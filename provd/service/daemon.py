"""The provd daemon: one event loop that keeps the phone in step with its server.

Wiring only (STYLE.md): the protocol core decides, the adapters do, this
module connects them. The loop owns the state and runs every callback; an
interaction runs in the worker and comes back as an `Outcome`. Provisioning
problems never stop the phone: they are logged, shown in `STATUS=` and retried.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from provd.hw.inventory import HardwareEvent, InventoryMonitor, InventoryRule
from provd.service import commands, reports
from provd.service.contactlog import ContactMeLog
from provd.service.deployment import Deployment
from provd.service.device import read_description, read_network
from provd.service.exchange import Actions, Endpoint, Exchange, Outcome
from provd.service.journal import MessageId, Redactor, log_event, setup_logging
from provd.service.loop import EventLoop
from provd.service.notify import Notifier
from provd.service.pinflow import PinFlow
from provd.service.polling import Poller
from provd.service.privileged import PrivilegedSteps, StepError
from provd.service.secure_mode import SecureMode
from provd.service.settings import Settings, default_dropin_dir, load_settings
from provd.service.settings_model import DefaultTrust
from provd.service.worker import Worker
from provd.store.book import CatalogBook
from provd.store.catalog import load_catalog
from provd.store.errors import StoreError
from provd.store.files import FileStore
from provd.store.hooks import ApplyHooks
from provd.store.items import Change, ItemStore
from provd.store.secure import SecureStore
from provd.transport.contactme import ContactMeListener, ContactMeRequest
from provd.wpi.basic import basic_items, contact_me_uri, local_changes_items
from provd.wpi.model import Action, Item, Reason
from provd.wpi.nonce import NonceCheck, new_nonce
from provd.wpi.retry import RetryPolicy
from provd.wpi.triggers import Started, TriggerQueue

if TYPE_CHECKING:
    from provd.transport.tls import TrustPolicy

log = logging.getLogger(__name__)

#: spec §3.1 / issue: SIGTERM ends or abandons the interaction within 10 s.
STOP_GRACE = 8.0
FAILURES_KEY = "retry.failures"


class Daemon:
    """provd's main job. `run()` returns the process exit status."""

    def __init__(
        self,
        settings: Settings,
        *,
        reload_settings: Callable[[], Settings] | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        uniform: Callable[[float, float], float] = random.uniform,
        notifier: Notifier | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self._reload = reload_settings
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.wall = wall
        self.random_bytes = random_bytes
        self.uniform = uniform
        self.notifier = notifier or Notifier(self.env)
        self.redactor = redactor
        self.loop = EventLoop(clock)
        self.contact_log = ContactMeLog(self.loop.call_later)
        self.worker = Worker()
        self.stopping = False
        self.busy = False
        self.exchange: Exchange | None = None
        self.started: Started | None = None
        self.last_contact: str | None = None
        self.last_error: str | None = None
        self._signal_r, self._signal_w = socket.socketpair()
        self.debug_commands = self.env.get("PROVD_DEBUG_COMMANDS") == "1"
        self.pending_seq_at_start = 0
        self.triggers = self._make_triggers()
        self.pin = PinFlow(self)
        self.poller = Poller(self)

    # ------------------------------------------------------------------ setup

    def _make_triggers(self) -> TriggerQueue:
        retry = self.settings.retry
        return TriggerQueue(
            uniform=self.uniform,
            policy=RetryPolicy(minimum=retry.m, multiplier=retry.k, cap=retry.cap),
            contact_gap=self.settings.contact_me.contact_gap,
        )

    def _open(self) -> None:
        paths = self.settings.paths
        self.store = ItemStore.open(paths.state_dir)
        # A store moved aside is logged by the store itself (STORE_RECOVERED).
        self.secure = SecureStore(paths.secure_dir)
        self.secure_mode = SecureMode(
            self.secure,
            wall=self.wall,
            redactor=self.redactor,
            name_check=self.settings.tls.name_check,
        )
        dropins = paths.catalog_dropins if paths.catalog_dropins.is_dir() else None
        self.catalog = load_catalog(paths.catalog, dropins)
        if self.redactor is not None:
            self.redactor.add_secret_items(spec.name for spec in self.catalog if spec.secret)
        self.book = CatalogBook(
            self.catalog,
            self.store,
            dynamic=self.live_values,
            dhcp_locked=self.settings.items.dhcp_locked,
            special=self.secure_mode.special_items,
        )
        self.hooks = ApplyHooks(
            paths.apply_dir,
            timeout=self.settings.hooks.timeout,
            secret_names=[spec.name for spec in self.catalog if spec.secret],
        )
        files = self.settings.files
        self.files = FileStore(
            paths.files_dir,
            limits=dict(files.type_limits),
            quota=files.quota,
            default_limit=files.max_size,
        )
        self.steps = PrivilegedSteps(
            paths.runtime_dir / "requests", install_step=self.settings.hooks.installer_command
        )
        self.deployment = Deployment(self)
        contact = self.settings.contact_me
        self.listener = ContactMeListener(
            self.loop.selector,
            self.on_contact_me,
            host=contact.listen,
            port=contact.port,
            allow_redirect=contact.allow_redirect,
            secure_mode=lambda: self.secure_mode.secure_now,
            clock=self.clock,
        )
        self.control = commands.open_control(self)
        self.inventory: InventoryMonitor | None = None
        rules = [
            InventoryRule(item=r.item, subsystem=r.subsystem, match=dict(r.match))
            for r in self.settings.udev.rules
        ]
        if rules:
            try:
                self.inventory = InventoryMonitor(rules)
                self.inventory.start()
                self._apply_inventory(self.inventory.scan(), announce=False)
                self.loop.add_reader(self.inventory.fileno(), self.on_hardware)
            except Exception as exc:  # no udev in this environment: inventory is optional
                log.warning("udev monitor unavailable, no inventory-changes: %s", exc)
                self.inventory = None
        self.loop.add_reader(self.worker.fileno(), self.worker.on_readable)
        self.loop.add_reader(self._signal_r.fileno(), self._on_signal_fd)

    def _install_signals(self) -> None:
        self._signal_r.setblocking(False)
        self._signal_w.setblocking(False)
        signal.set_wakeup_fd(self._signal_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: None)  # the wakeup fd carries the number

    # ------------------------------------------------------------------ values

    def network(self) -> tuple[str | None, str | None]:
        """The MAC and the current address, read again for every interaction (spec §3.2)."""
        device = self.settings.device
        identity = read_network(
            device.interface or None,
            mac_addr=device.mac_addr or None,
            address=device.ip_address or None,
        )
        return identity.mac_addr, identity.address

    def live_values(self) -> dict[str, str]:
        """Items the phone knows rather than stores: identity and runtime values."""
        device = self.settings.device
        values = read_description(device.description_file)
        explicit = {
            "device-type": device.device_type,
            "related-device-type": device.related_device_type,
            "software-type": device.software_type,
            "related-software-type": device.related_software_type,
            "software-version": device.software_version,
            "related-software-version": device.related_software_version,
            "part-number": device.part_number,
        }
        values.update({name: value for name, value in explicit.items() if value})
        for name, twin in (
            ("related-device-type", "device-type"),
            ("related-software-type", "software-type"),
            ("related-software-version", "software-version"),
        ):
            if name not in values and twin in values:
                values[name] = values[twin]
        mac, address = self.network()
        if mac:
            values["mac-addr"] = mac
        if address:
            with contextlib.suppress(ValueError):
                values["contact-me-uri"] = contact_me_uri(address, self.listener.address[1])
                values["ipaddress"] = address
        if device.e164 and self.store.get("e164") is None:
            values["e164"] = device.e164
        values.update(self.secure_mode.live_values())
        return values

    def first_items(self, extra: Sequence[Item] = ()) -> list[Item]:
        """The basic items of a first message (spec §3.2), in the catalog's `basic`
        order (an integrator's drop-in may change it), then `extra`."""
        names = [spec.name for spec in self.catalog.basic_items()]
        return basic_items(self.book.values_of(names), extra, names)

    def trust_policy(self) -> TrustPolicy:
        # TLS (pyOpenSSL, cryptography) and the XML codec are imported by the first
        # interaction, after READY=1: start-up needs neither (issue 8, start to READY).
        from provd.transport.tls import TrustPolicy  # noqa: PLC0415

        tls = self.settings.tls
        if tls.default_trust is DefaultTrust.ANY:
            return TrustPolicy.accept_any()
        if tls.default_trust is DefaultTrust.CA and tls.ca_file is not None:
            return TrustPolicy.from_ca_file(tls.ca_file, check_name=tls.name_check)
        return TrustPolicy.pinned(self.secure.read_trust_pin())

    def endpoint(self, redirect: tuple[str, int] | None) -> Endpoint:
        secure = self.secure_mode.endpoint(self.settings.server.url)
        if secure is not None:
            return secure  # spec §4.1, §7.3: never redirected, never the default port
        url = self.settings.server.url
        if redirect is not None:
            parts = urlsplit(url)
            host = f"[{redirect[0]}]" if ":" in redirect[0] else redirect[0]
            url = urlunsplit(("https", f"{host}:{redirect[1]}", parts.path, "", ""))
        return Endpoint(url=url, trust=self.trust_policy())

    def actions(self) -> Actions:
        """The action handlers of one interaction."""
        deployment = self.deployment
        return Actions(
            self.book,
            self.hooks,
            busy=lambda: self.busy,
            handlers={
                Action.FILE_DEPLOYMENT: deployment.file_deployment,
                Action.SOFTWARE_DEPLOYMENT: deployment.software_deployment,
            },
            read_all_extra=deployment.read_all_items,
        )

    # ------------------------------------------------------------------ interactions

    def maybe_start(self) -> None:
        """Start the interaction that is due, if the worker is free."""
        if self.stopping or self.exchange is not None or self.worker.busy:
            return
        if not self.settings.server.url:
            return
        if self.secure_mode.cleanup_due:
            self.pin.start_cleanup()
            return
        started = self.triggers.take(self.clock())
        if started is None:
            return
        from provd.wpi.codec import Limits  # noqa: PLC0415
        from provd.wpi.session import SessionConfig  # noqa: PLC0415

        self.started = started
        extra: list[Item] = []
        if started.reason is Reason.LOCAL_CHANGES:
            extra = local_changes_items(reports.changed_items(self))
        elif started.reason is Reason.INVENTORY_CHANGES:
            extra = reports.inventory_items(self)
        nonce = new_nonce(self.random_bytes)
        protocol = self.settings.protocol
        timeouts = self.settings.timeouts
        endpoint = self.endpoint(started.redirect)
        self.exchange = Exchange(
            reason=started.reason,
            nonce=nonce,
            items=self.first_items(extra),
            endpoint=endpoint,
            actions=self.actions(),
            config=SessionConfig(
                max_message=protocol.max_message,
                nonce_check=NonceCheck(protocol.nonce_check.value),
                limits=Limits(max_body=protocol.max_body),
            ),
            connect_timeout=timeouts.connect,
            response_timeout=timeouts.response,
            interaction_timeout=timeouts.interaction,
            clock=self.clock,
        )
        self.pending_seq_at_start = reports.pending_seq(self)
        log_event(
            log,
            MessageId.INTERACTION_STARTED,
            "%s interaction started with %s",
            started.reason.value,
            endpoint.url,
            reason=started.reason.value,
            nonce=nonce,
            server=endpoint.url,
            retry=started.retry or None,
        )
        self.update_status()
        self.worker.submit(self.exchange.run, self._interaction_done)

    def _interaction_done(self, outcome: Any, error: BaseException | None) -> None:
        self.exchange = None
        started, self.started = self.started, None
        assert started is not None
        if error is not None or not isinstance(outcome, Outcome):
            log_event(
                log,
                MessageId.INTERACTION_FAILED,
                "%s interaction failed: internal error %r",
                started.reason.value,
                error,
                level=logging.ERROR,
                exc_info=error,
                reason=started.reason.value,
                result="failed",
                error=f"internal error: {error!r}",
            )
            self._finish(started, ok=False, failure=f"internal error: {error!r}")
            return
        reports.interaction_outcome(self, outcome)
        ok = outcome.result.ok
        self._finish(started, ok=ok, failure=outcome.result.failure, outcome=outcome)
        try:
            steps = self.secure_mode.after_interaction(
                secure=outcome.endpoint_secure,
                ok=ok,
                cleanup_reason=outcome.result.cleanup_reason,
            )
        except Exception as exc:  # the secure store failed: stay where we are, say so
            log.error("secure mode bookkeeping failed: %s", exc)
            return
        self.pin.steps(steps)

    def _finish(
        self, started: Started, *, ok: bool, failure: str | None, outcome: Outcome | None = None
    ) -> None:
        now = self.clock()
        try:
            failures = 0 if ok else int(self.store.meta_get(FAILURES_KEY) or 0) + 1
            self.store.meta_set(FAILURES_KEY, str(failures) if failures else None)
        except (StoreError, ValueError) as exc:
            # The phone goes on; the retry band then restarts from its first step.
            log.error("could not record the failure count: %s", exc)
            failures = 0 if ok else 1
        send_solicited = bool(outcome and outcome.result.send_solicited)
        hold = self.triggers.finished(
            started.reason, ok, now, failures, send_solicited=send_solicited
        )
        self.last_contact = f"{self.wall().astimezone().strftime('%H:%M:%S')} " + (
            "ok" if ok else "failed"
        )
        self.last_error = None if ok else failure
        retried = started.reason is not Reason.SOLICITED or self.triggers.send_solicited
        if not ok and hold is not None and retried:
            log_event(
                log,
                MessageId.RETRY_SCHEDULED,
                "%s failed (%s); next attempt in %.0f s",
                started.reason.value,
                failure,
                hold - now,
                level=logging.WARNING,
                reason=started.reason.value,
                failures=failures,
                wait=round(hold - now, 1),
            )
        if ok and self.store.pending_local_changes():
            self.triggers.add(Reason.LOCAL_CHANGES, now)
        self.poller.restart()
        if outcome is not None and ok:
            pending = outcome.effects.extra.get("pending_install")
            if pending is not None:
                # spec §6.2 [B]: install after the CleanUp; the install unit reboots, so a
                # Restart in the same interaction must not race it with a reboot of its own.
                self.deployment.install(pending)
            elif outcome.effects.restart is not None:
                reports.restart(self, outcome.effects.restart)
        self.update_status()

    # ------------------------------------------------------------------ events

    def on_contact_me(self, request: ContactMeRequest) -> None:
        now = self.clock()
        self.contact_log.received(request, now)
        self.triggers.contact_me(now, request.redirect)

    def on_hardware(self) -> None:
        assert self.inventory is not None
        events: list[HardwareEvent] = self.inventory.on_readable()
        if events:
            self._apply_inventory(self.inventory.counts(), announce=True)

    def _apply_inventory(self, counts: Mapping[str, int], *, announce: bool) -> None:
        changes = [
            Change(item, None, str(count))
            for item, count in counts.items()
            if self.store.get(item) != str(count)
        ]
        if not changes:
            return
        self.store.commit(changes)
        if announce:
            log_event(
                log,
                MessageId.INVENTORY_CHANGED,
                "inventory changed: %s",
                ", ".join(f"{c.name}={c.value}" for c in changes),
            )
            self.triggers.add(
                Reason.INVENTORY_CHANGES, self.clock(), delay=self.settings.changes.debounce
            )

    def local_change(self, items: list[Item]) -> dict[str, Any]:
        """A change through the local interface (spec §3.5)."""
        outcome = self.book.write(items, local=True)
        if outcome.changed:
            log_event(
                log,
                MessageId.LOCAL_CHANGES_QUEUED,
                "%d items changed locally; report in %.0f s",
                len(outcome.changed),
                self.settings.changes.debounce,
                items=[f"{n}" if i is None else f"{n}[{i}]" for n, i in outcome.changed],
            )
            self.triggers.add(
                Reason.LOCAL_CHANGES, self.clock(), delay=self.settings.changes.debounce
            )
            changed = list(outcome.changed)
            self.worker.submit(lambda: self.hooks.run(changed), lambda *_: None)
        return {
            "ok": not outcome.rejected and not outcome.failed,
            "changed": len(outcome.changed),
            "rejected": {
                (i.name if i.index is None else f"{i.name}[{i.index}]"): str(i.status)
                for i in outcome.rejected
            },
        }

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.triggers.set_busy(busy)
        self.update_status()

    # ------------------------------------------------------------------ signals & status

    def _on_signal_fd(self) -> None:
        try:
            data = self._signal_r.recv(64)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.request_stop()
            elif signum == signal.SIGHUP:
                self.reload()

    def request_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log_event(log, MessageId.STOPPING, "stopping")
        self.notifier.stopping("stopping")
        if self.exchange is not None:
            self.exchange.abandon()

    def reload(self) -> None:
        if self._reload is None:
            return
        self.notifier.reloading("reloading settings")
        try:
            new = self._reload()
        except Exception as exc:
            log_event(
                log,
                MessageId.SETTINGS_REJECTED,
                "settings not reloaded, keeping the running ones: %s",
                exc,
                level=logging.ERROR,
            )
        else:
            self.settings = new
            self.triggers.reconfigure(
                policy=RetryPolicy(minimum=new.retry.m, multiplier=new.retry.k, cap=new.retry.cap),
                contact_gap=new.contact_me.contact_gap,
            )
            self.book.dhcp_locked = new.items.dhcp_locked
            self.listener.allow_redirect = frozenset(new.contact_me.allow_redirect)
            logging.getLogger().setLevel(new.log.level.value.upper())
            log_event(log, MessageId.SETTINGS_RELOADED, "settings reloaded")
            self.poller.restart()
        self.notifier.ready(self.status_line())

    def mode(self) -> str:
        return self.secure_mode.mode_text()

    def warnings(self) -> list[str]:
        """Lines `provctl status` shows under the status (certificate expiry, ...)."""
        return self.secure_mode.warnings(self.settings.tls.cert_expiry_warn_days)

    def request_reboot(self, kind: str) -> None:
        """Hand the reboot to the privileged unit (issue 6: no capability in provd)."""
        try:
            self.steps.request_reboot(reason=kind, factory_reset=kind == "factory-reset")
        except (OSError, StepError) as exc:
            # The phone goes on unrebooted; the server sees no start-up and may retry.
            log.error("could not request the %s: %s", kind, exc)

    def status_line(self) -> str:
        """One human line for `STATUS=` (issue: "default mode, idle, last contact ... ok")."""
        if self.stopping:
            state = "stopping"
        elif self.started is not None:
            state = f"{self.started.reason.value} interaction running"
        elif not self.settings.server.url:
            state = "no server configured"
        else:
            state = "busy (in a call)" if self.busy else "idle"
        parts = [self.mode(), state]
        if self.last_contact:
            parts.append(f"last contact {self.last_contact}")
        pending = [r.value for r in self.triggers.pending]
        if pending:
            parts.append("pending " + "+".join(pending))
        next_contact = self.next_contact_in()
        if next_contact and self.started is None:
            parts.append(f"next contact in {next_contact:.0f} s")
        if self.poller.next_poll is not None:
            at = self.wall().astimezone().timestamp() + (self.poller.next_poll - self.clock())
            parts.append("next poll " + datetime.fromtimestamp(at).strftime("%H:%M"))
        return ", ".join(parts)

    def next_contact_in(self) -> float | None:
        """Seconds until the next interaction is due (a retry, a debounced report), if any."""
        when = self.triggers.when_due()
        return None if when is None else round(max(0.0, when - self.clock()), 1)

    def update_status(self) -> None:
        self.notifier.status(self.status_line())

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        self._open()
        self._install_signals()
        if self.settings.tls.default_trust is DefaultTrust.ANY:
            log_event(
                log,
                MessageId.TRUST_ANY,
                "default-trust is 'any': the server's certificate is not checked",
                level=logging.WARNING,
            )
        log_event(
            log,
            MessageId.STARTED,
            "provd started: server %s, contact-me on port %d",
            self.settings.server.url or "(none configured)",
            self.listener.address[1],
            server=self.settings.server.url or None,
        )
        self.triggers.add(Reason.START_UP, self.clock())
        for warning in self.warnings():
            log_event(log, MessageId.CERTIFICATE_EXPIRING, "%s", warning, level=logging.WARNING)
        if self.secure_mode.prompt_due:
            self.pin.show_prompt()  # spec §7.3 step 3: the prompt comes back at start-up
        self.poller.restart()
        self.notifier.ready(self.status_line())
        interval = self.notifier.watchdog_interval()
        next_ping = self.clock()
        while not (self.stopping and self.exchange is None):
            wait = 1.0
            when = self.triggers.when_due()
            if when is not None:
                wait = min(wait, max(0.0, when - self.clock()))
            deadline = self.listener.next_deadline()
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - self.clock()))
            if interval is not None:
                wait = min(wait, max(0.0, next_ping - self.clock()))
            ui_deadline = self.pin.next_deadline()
            if ui_deadline is not None:
                wait = min(wait, max(0.0, ui_deadline - self.clock()))
            self.loop.run_once(wait)
            self.listener.tick(self.clock())
            self.pin.tick(self.clock())
            self.maybe_start()
            if interval is not None and self.clock() >= next_ping:
                # Pinged only here, after a healthy turn of the loop (STYLE.md).
                self.notifier.watchdog()
                next_ping = self.clock() + interval
            if self.stopping and self.exchange is not None:
                self._wait_for_exchange()
        return self._shutdown()

    def _wait_for_exchange(self) -> None:
        """SIGTERM during an interaction: give the worker STOP_GRACE seconds to end it."""
        deadline = self.clock() + STOP_GRACE
        while self.exchange is not None and self.clock() < deadline:
            self.loop.run_once(0.2)
        if self.exchange is not None:
            log.warning("interaction did not end within %.0f s; abandoned", STOP_GRACE)
            self.exchange = None

    def _shutdown(self) -> int:
        self.worker.stop(timeout=1.0)
        self.listener.close()
        self.control.close()
        self.store.close()
        self.loop.close()
        signal.set_wakeup_fd(-1)
        return 0


def main(config_file: Path, overrides: list[str]) -> int:
    """`provd run`: load settings, set up logging, run the daemon."""
    dropins = default_dropin_dir(config_file)
    settings = load_settings(config_file, dropins, overrides, missing_ok=True)
    redactor = Redactor()
    setup_logging(level=settings.log.level.value, redactor=redactor)
    daemon = Daemon(
        settings,
        reload_settings=lambda: load_settings(config_file, dropins, overrides, missing_ok=True),
        redactor=redactor,
    )
    return daemon.run()
