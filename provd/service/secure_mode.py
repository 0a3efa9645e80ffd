"""Secure Mode in the daemon: the bootstrap's adapters around `provd.wpi.bootstrap` (spec §7).

- The server's WriteItems with `goto-secure-mode` reaches `special_items` (in the
  worker, through CatalogBook): the material is checked and kept as *pending*
  in the secure store (the PIN variant's archive still encrypted, as received).
- When that interaction has ended, `after_interaction` asks for the PIN or
  queues the `start-up` on the secure port.
- The PIN goes through the UI driver to `on_pin`; the TAN is kept in memory only,
  answered to `ReadItems bootstrapping-tan` during the switch.
- The first completed interaction on the secure port commits: the credentials
  become the phone's, and every later interaction is mutual TLS on the secure
  port, the server verified against `dls-server-ca` only (§7.4).

The state (`BootstrapState`) and the attempt counter are persisted in the
secure store, so a restart neither resets the counter nor forgets the mode.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from provd.service.exchange import Endpoint
from provd.service.journal import MessageId, Redactor, log_event
from provd.store.errors import StoreError
from provd.store.secure import SecureStore
from provd.ui.base import PinCancelled, PinEntered, PinPrompt, PinResult, PinTimedOut
from provd.wpi.bootstrap import (
    RETRIES_EXCEEDED,
    BootstrapState,
    Phase,
    Step,
    Transition,
    Variant,
    factory_reset,
    interaction_ended,
    material_accepted,
    pin_cancelled,
    pin_checked,
    secure_interaction_ended,
    split_pin,
)
from provd.wpi.model import Item, ItemStatus

if TYPE_CHECKING:
    # The certificate parsing (cryptography) is imported where Secure Mode material is
    # handled: a phone in Default Mode never needs it, and start-up never does (issue 8).
    from provd.transport.credentials import ClientCredentials

log = logging.getLogger(__name__)

STATE_FILE = "bootstrap-state.json"
PENDING_NOPIN = "pending-credentials.json"
CLEANUP_DUE = "retries-exceeded-unreported"
GOTO = "goto-secure-mode"

Key = tuple[str, int | None]


class SecureMode:
    """The bootstrap's state and material; one per daemon."""

    def __init__(
        self,
        store: SecureStore,
        *,
        wall: Callable[[], datetime],
        redactor: Redactor | None = None,
        name_check: bool = False,
    ) -> None:
        self.store = store
        self.wall = wall
        self.redactor = redactor
        self.name_check = name_check
        self.state = self._load_state()
        self.tan: str | None = None
        self._switch_credentials: ClientCredentials | None = None
        self.committed: ClientCredentials | None = None
        #: Set when the phone must tell the server `password retries exceeded`;
        #: persisted, so a restart before it was delivered does not lose it.
        self.cleanup_due = self._flag(CLEANUP_DUE)
        #: Set when the daemon should (re)show the PIN prompt.
        self.prompt_due = self.state.phase is Phase.AWAIT_PIN
        if self.state.phase is Phase.SECURE:
            self.committed = self._load_committed()
            if self._pending_left():
                self._discard_pending()  # a power cut ended the commit before this
        if self.state.phase is Phase.SWITCHING:
            self._switch_credentials = self._load_pending_nopin()
            if self._switch_credentials is None:
                # The PIN variant's decrypted key lived in memory only: ask again.
                self._set(replace(self.state, phase=Phase.AWAIT_PIN))
                self.prompt_due = True

    # ------------------------------------------------------------------ persistence

    def _flag(self, name: str) -> bool:
        try:
            return self.store.read(name) is not None
        except StoreError:
            return False

    def set_cleanup_due(self, due: bool) -> None:
        """Whether the `password retries exceeded` clean-up still has to reach the server."""
        self.cleanup_due = due
        if due:
            self.store.write(CLEANUP_DUE, b"1")
        else:
            self.store.delete(CLEANUP_DUE)

    def _load_state(self) -> BootstrapState:
        try:
            raw = self.store.read(STATE_FILE)
        except StoreError as exc:
            log.error("secure mode state unreadable, staying in Default Mode: %s", exc)
            return BootstrapState()
        if raw is None:
            return BootstrapState()
        try:
            data = json.loads(raw)
            return BootstrapState(
                phase=Phase(data["phase"]),
                variant=Variant(data["variant"]) if data.get("variant") else None,
                secure_port=int(data["secure_port"]),
                max_attempts=int(data["max_attempts"]),
                attempts_used=int(data["attempts_used"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.error("secure mode state malformed, staying in Default Mode: %s", exc)
            return BootstrapState()

    def _set(self, state: BootstrapState) -> None:
        self.state = state
        data = asdict(state)
        data["phase"] = state.phase.value
        data["variant"] = state.variant.value if state.variant else None
        self.store.write(STATE_FILE, json.dumps(data, sort_keys=True).encode())

    def _load_committed(self) -> ClientCredentials | None:
        from provd.transport.credentials import CredentialsError, load_stored  # noqa: PLC0415

        stored = self.store.read_client_credentials()
        if stored is None:
            log.error("Secure Mode committed but no client credentials stored")
            return None
        try:
            return load_stored(stored.key_pem, stored.chain_pem, self.store.read_server_cas())
        except CredentialsError as exc:
            log.error("stored Secure Mode credentials unusable: %s", exc)
            return None

    def _load_pending_nopin(self) -> ClientCredentials | None:
        from provd.transport.credentials import CredentialsError, load_stored  # noqa: PLC0415

        raw = self.store.read(PENDING_NOPIN)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return load_stored(
                data["key"].encode(),
                data["chain"].encode(),
                [ca.encode() for ca in data["cas"]],
            )
        except (ValueError, KeyError, CredentialsError) as exc:
            log.error("pending Secure Mode credentials unusable: %s", exc)
            return None

    def _pending_left(self) -> bool:
        try:
            return self.store.read_pending_bootstrap() is not None or self._flag(PENDING_NOPIN)
        except StoreError:
            return True  # unreadable: discarding is the way out

    def _discard_pending(self) -> None:
        self.store.discard_pending_bootstrap()
        self.store.delete(PENDING_NOPIN)
        self._switch_credentials = None
        self.tan = None

    # ------------------------------------------------------------------ the server's WriteItems

    def special_items(self, items: Sequence[Item]) -> Mapping[Key, ItemStatus]:
        """CatalogBook's special handler: the bootstrap items of one WriteItems."""
        from provd.transport.credentials import (  # noqa: PLC0415
            CLIENT_CERTIFICATE,
            SECURE_MODE_DATA,
            SERVER_CA,
            InvalidMaterial,
            check_pin_material,
            parse_nopin,
        )

        values = {item.name: item.value for item in items if item.index is None}
        cas = {item.index or 0: item.value for item in items if item.name == SERVER_CA}
        goto = values.get(GOTO)
        if goto is None:
            # §7: the material belongs with goto-secure-mode, nowhere else.
            return {item.key: ItemStatus.UNEXPECTED_ITEM for item in items}
        variant = Variant(goto)
        now = self.wall()
        port = _int(values.get("dls-secure-port"))
        retries = _int(values.get("max-pin-retries"))
        try:
            if variant is Variant.NOPIN:
                creds = parse_nopin(values.get(CLIENT_CERTIFICATE, ""), cas, now)
                pending = {
                    "key": creds.key_pem().decode(),
                    "chain": creds.chain_pem().decode(),
                    "cas": [ca.decode() for ca in creds.server_cas_pem()],
                }
                self.store.write(PENDING_NOPIN, json.dumps(pending).encode())
                self._switch_credentials = creds
            else:
                data = values.get(SECURE_MODE_DATA, "")
                check_pin_material(data)
                self.store.write_pending_bootstrap(data.encode())
                self.store.set_pin_attempts(0)
        except InvalidMaterial as exc:
            log_event(
                log,
                MessageId.SECURE_PENDING,
                "Secure Mode material refused: %s",
                exc.reason,
                level=logging.WARNING,
                items=list(exc.item_names),
            )
            bad = set(exc.item_keys or ()) | {(n, None) for n in exc.item_names}
            refused = {
                item.key: ItemStatus.INVALID_DATA
                for item in items
                if item.key in bad or (item.name, None) in bad
            }
            if not refused and {name for name, _ in bad} == {SERVER_CA}:
                # No dls-server-ca at all: no item to mark, yet the bootstrap is what
                # the phone cannot take (spec §7.3 step 1). Other offending items that
                # are not here were refused by validation already.
                refused = {(GOTO, None): ItemStatus.INVALID_DATA}
            return refused
        transition = material_accepted(self.state, variant, secure_port=port, max_retries=retries)
        self._set(transition.state)
        log_event(
            log,
            MessageId.SECURE_PENDING,
            "Secure Mode bootstrap (%s) accepted; switching after this interaction",
            variant.value,
            variant=variant.value,
        )
        return {}

    # ------------------------------------------------------------------ after interactions

    def after_interaction(
        self, *, secure: bool, ok: bool, cleanup_reason: str | None
    ) -> tuple[Step, ...]:
        """What the bootstrap wants once an interaction has ended."""
        if secure:
            transition = secure_interaction_ended(
                self.state, completed=ok, cleanup_reason=cleanup_reason
            )
        elif ok:
            transition = interaction_ended(self.state)
        else:
            return ()
        return self._apply(transition)

    def _apply(self, transition: Transition) -> tuple[Step, ...]:
        steps = transition.steps
        if Step.COMMIT in steps:
            creds = self._switch_credentials
            assert creds is not None
            self.store.write_client_credentials(creds.key_pem(), creds.chain_pem())
            self.store.write_server_cas(list(creds.server_cas_pem()))
            # The state before the material goes: a power cut in between leaves Secure
            # Mode committed with a harmless leftover (dropped at the next start), never
            # a switch with nothing left to switch with (issue 8's power-cut finding).
            self._set(transition.state)
            self._discard_pending()
            self.committed = creds
            log_event(
                log,
                MessageId.SECURE_COMMITTED,
                "Secure Mode committed: mutual TLS on port %d from now on (client %s)",
                transition.state.secure_port,
                creds.subject,
            )
        if Step.DISCARD in steps:
            self._discard_pending()
            log_event(
                log,
                MessageId.SECURE_TAN_WRONG,
                "Secure Mode bootstrap discarded; back to Default Mode",
                level=logging.WARNING,
            )
        if Step.SEND_RETRIES_EXCEEDED in steps:
            self._discard_pending()
            self.set_cleanup_due(True)
            log_event(
                log,
                MessageId.SECURE_RETRIES_EXCEEDED,
                "PIN retries exceeded: material discarded, telling the server",
                level=logging.WARNING,
            )
        self._set(transition.state)
        self.prompt_due = Step.PROMPT_PIN in steps
        return steps

    # ------------------------------------------------------------------ the PIN

    def prompt(self, timeout: float | None) -> PinPrompt:
        return PinPrompt(
            title="Secure provisioning",
            message="Enter the PIN from your administrator",
            attempts_left=self.state.attempts_left,
            min_length=4,
            timeout=timeout,
        )

    def on_pin(self, result: PinResult) -> tuple[Step, ...]:
        """The UI's answer to the PIN prompt."""
        if isinstance(result, PinCancelled | PinTimedOut):
            self.prompt_due = False  # back at the next start-up or on request
            return self._apply(pin_cancelled(self.state))
        assert isinstance(result, PinEntered)
        pin = result.pin
        if self.redactor is not None:
            self.redactor.add_secret(pin)
        try:
            password, tan = split_pin(pin)
        except ValueError:
            password, tan = pin, ""
        if self.redactor is not None:
            self.redactor.add_secret(password)
            if tan:
                self.redactor.add_secret(tan)
        pending = self.store.read_pending_bootstrap()
        if pending is None:
            log.error("PIN entered but no bootstrap material is pending")
            return ()
        from provd.transport import credentials  # noqa: PLC0415

        try:
            creds = credentials.parse_pin(pending.decode(), password, self.wall())
        except credentials.WrongPin:
            self.store.set_pin_attempts(self.state.attempts_used + 1)
            log_event(
                log,
                MessageId.SECURE_PIN_WRONG,
                "wrong PIN (%d of %d attempts used)",
                self.state.attempts_used + 1,
                self.state.max_attempts,
                level=logging.WARNING,
            )
            return self._apply(pin_checked(self.state, decrypted=False))
        except credentials.InvalidMaterial as exc:
            log.error("bootstrap material unusable after the PIN: %s; discarded", exc.reason)
            self._discard_pending()
            self._set(BootstrapState())
            return (Step.DISCARD,)
        self.tan = tan
        self._switch_credentials = creds
        return self._apply(pin_checked(self.state, decrypted=True))

    # ------------------------------------------------------------------ connections

    @property
    def secure_now(self) -> bool:
        """Whether interactions use the secure port now (switching or committed)."""
        return self.state.uses_secure_port

    def endpoint(self, default_url: str) -> Endpoint | None:
        """The secure endpoint, or None for Default Mode."""
        if not self.state.uses_secure_port:
            return None
        creds = self._switch_credentials if self.state.phase is Phase.SWITCHING else self.committed
        if creds is None:
            return None
        parts = urlsplit(default_url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        url = urlunsplit(("https", f"{netloc}:{self.state.secure_port}", parts.path, "", ""))
        return Endpoint(
            url=url, trust=creds.to_trust_policy(check_name=self.name_check), secure=True
        )

    def mode_text(self) -> str:
        phase = self.state.phase
        if phase is Phase.SECURE:
            return "secure mode"
        if phase is Phase.AWAIT_PIN:
            return f"default mode, PIN entry pending ({self.state.attempts_left} attempts left)"
        if phase is Phase.SWITCHING:
            return "default mode, switching to secure mode"
        return "default mode"

    def live_values(self) -> dict[str, str]:
        # spec §7.3 step 4: the TAN only during the bootstrap; empty at any other time.
        return {"bootstrapping-tan": self.tan or ""}

    def warnings(self, warn_days: int) -> list[str]:
        if self.committed is None:
            return []
        from provd.transport.credentials import expiry_warning  # noqa: PLC0415

        text = expiry_warning(self.committed, self.wall(), warn_days)
        return [text] if text else []

    def reset(self) -> None:
        """Factory reset: leave Secure Mode (the secure store is wiped by the caller)."""
        self._switch_credentials = None
        self.committed = None
        self.tan = None
        self.cleanup_due = False  # the secure store, with the flag, is wiped by the caller
        self.prompt_due = False
        self.state = factory_reset(self.state).state


def _int(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text)


__all__ = ["RETRIES_EXCEEDED", "SecureMode"]
