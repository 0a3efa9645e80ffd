"""Secure Mode bootstrap sequencing (spec §7), pure.

Who does what:
- this module decides, from facts the daemon reports, what the phone does
  next: which port and credentials the next interaction uses, whether to ask
  for the PIN, when to tell the server `password retries exceeded`, when to
  commit or discard;
- adapters do the work: the TLS layer parses and checks the PKCS#12 material,
  the secure store keeps it (and the attempt counter, persisted so a restart
  does not reset it), the UI asks for the PIN.

The PIN is `<password><TAN>`, the TAN being its last three characters
[G p.67-68]; `split_pin` is the one place that cuts it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

#: [G p.67] example 3; used when the server sends no `max-pin-retries`.
DEFAULT_MAX_PIN_RETRIES = 3
DEFAULT_SECURE_PORT = 18444
TAN_LENGTH = 3
#: [G p.83] the phone's cleanup-reason when the PIN retries are used up.
RETRIES_EXCEEDED = "password retries exceeded"
#: [G p.31] the server's cleanup-reason for a wrong TAN.
WRONG_TAN = "wrong TAN from device"


class Variant(Enum):
    """`goto-secure-mode` [G p.64, p.67]."""

    NOPIN = "nopin"
    PIN = "pin"


class Phase(Enum):
    """Where the bootstrap stands."""

    DEFAULT = "default"  # Default Mode, nothing pending
    AWAIT_PIN = "await pin"  # PIN variant: material pending, the user must type the PIN
    SWITCHING = "switching"  # credentials usable: next interaction is start-up on the secure port
    SECURE = "secure"  # committed: every interaction is mutual TLS on the secure port


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapState:
    """The persisted part of the bootstrap (the TAN is kept only in memory)."""

    phase: Phase = Phase.DEFAULT
    variant: Variant | None = None
    secure_port: int = DEFAULT_SECURE_PORT
    max_attempts: int = DEFAULT_MAX_PIN_RETRIES
    attempts_used: int = 0

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.attempts_used)

    @property
    def uses_secure_port(self) -> bool:
        """Whether the next interaction goes to the secure port with the client certificate."""
        return self.phase in (Phase.SWITCHING, Phase.SECURE)


class Step(Enum):
    """What the daemon must do after a transition."""

    NOTHING = "nothing"
    STORE_PENDING = "store the pending material"
    PROMPT_PIN = "ask for the PIN"
    START_UP_SECURE = "open start-up on the secure port"
    SEND_RETRIES_EXCEEDED = "discard the material and send clean-up on the default port"
    COMMIT = "make the pending credentials the phone's"
    DISCARD = "discard the pending material, back to Default Mode"


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    state: BootstrapState
    steps: tuple[Step, ...]


def split_pin(pin: str) -> tuple[str, str]:
    """`(password, tan)`: the PIN without its last 3 characters, and those 3.

    Raises ValueError for a PIN too short to hold a TAN and a password.
    """
    if len(pin) <= TAN_LENGTH:
        raise ValueError(f"a PIN needs more than {TAN_LENGTH} characters (password + TAN)")
    return pin[:-TAN_LENGTH], pin[-TAN_LENGTH:]


def material_accepted(
    state: BootstrapState, variant: Variant, *, secure_port: int | None, max_retries: int | None
) -> Transition:
    """A WriteItems with `goto-secure-mode` carried valid material (spec §7.3 step 1).

    Nothing switches yet: the server still has to answer our reply with CleanUp.
    A new bootstrap received in Secure Mode starts over (spec §7.3 step 5).
    """
    new = BootstrapState(
        phase=Phase.AWAIT_PIN if variant is Variant.PIN else Phase.SWITCHING,
        variant=variant,
        secure_port=secure_port or DEFAULT_SECURE_PORT,
        max_attempts=max_retries if max_retries and max_retries > 0 else DEFAULT_MAX_PIN_RETRIES,
        attempts_used=0,
    )
    return Transition(state=new, steps=(Step.STORE_PENDING,))


def interaction_ended(state: BootstrapState) -> Transition:
    """The interaction that delivered the material ended with CleanUp (step 2-3)."""
    if state.phase is Phase.AWAIT_PIN:
        return Transition(state=state, steps=(Step.PROMPT_PIN,))
    if state.phase is Phase.SWITCHING:
        return Transition(state=state, steps=(Step.START_UP_SECURE,))
    return Transition(state=state, steps=(Step.NOTHING,))


def pin_checked(state: BootstrapState, *, decrypted: bool) -> Transition:
    """The user typed a PIN; `decrypted` says whether its password part opened
    the material (a wrong password fails the PKCS#12 integrity check)."""
    if state.phase is not Phase.AWAIT_PIN:
        return Transition(state=state, steps=(Step.NOTHING,))
    if decrypted:
        return Transition(
            state=replace(state, phase=Phase.SWITCHING), steps=(Step.START_UP_SECURE,)
        )
    used = replace(state, attempts_used=state.attempts_used + 1)
    if used.attempts_left == 0:
        # spec §7.3 step 3 [G p.83]
        return Transition(state=BootstrapState(), steps=(Step.SEND_RETRIES_EXCEEDED,))
    return Transition(state=used, steps=(Step.PROMPT_PIN,))


def pin_cancelled(state: BootstrapState) -> Transition:
    """Cancel: the material stays; the prompt returns at the next start-up or
    on request through the local interface (spec §7.3 step 3)."""
    return Transition(state=state, steps=(Step.NOTHING,))


def secure_interaction_ended(
    state: BootstrapState, *, completed: bool, cleanup_reason: str | None
) -> Transition:
    """An interaction on the secure port ended (spec §7.3 step 4)."""
    if state.phase is not Phase.SWITCHING:
        return Transition(state=state, steps=(Step.NOTHING,))
    if cleanup_reason is not None and cleanup_reason.strip().lower() == WRONG_TAN.lower():
        return Transition(state=BootstrapState(), steps=(Step.DISCARD,))
    if completed:
        return Transition(state=replace(state, phase=Phase.SECURE), steps=(Step.COMMIT,))
    # Not completed (network, TLS): stay pending; the normal retry applies.
    return Transition(state=state, steps=(Step.NOTHING,))


def factory_reset(state: BootstrapState) -> Transition:
    """Factory reset leaves Secure Mode (spec §6.3, §7.3 step 5)."""
    return Transition(state=BootstrapState(), steps=(Step.DISCARD,))
