"""The phones of suite 3 (bench/proof/tls.py): real daemons, each with its lab server.

`default_rig` is a Default Mode phone trusting a CA file or on first use (spec §7.4);
`secure_rig` one bootstrapped into Secure Mode with a PIN (spec §7.2, §7.3), as
tests/integration/secure does. Every lab answers the first call with a plain `CleanUp`
and every later one with `evil_write`; `state` is what a bad server must not change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.proof.daemons import phone
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer, Listener
from provd.wpi.model import Reason
from tests.integration.daemon.harness import Phone
from tests.integration.secure.flows import (
    CLEAN_UP,
    PIN,
    READ_TAN,
    pin_write,
    type_pin,
    wait_mode,
    wait_opened,
    wait_prompt,
)
from tests.integration.secure.secrets_check import MATERIAL_ITEMS, Secrets, secure_dir

SETTINGS: dict[str, Any] = {
    "log.level": "debug",  # the secrets scan reads every line the daemon can write
    "retry.m": 600.0,  # no retry of a failed call runs into the next case
    "retry.cap": 900.0,
}
EVIL_HOST = "evil.example.com"


@dataclass
class Rig:
    """One phone and its lab; `channel` is the port the bad servers take over."""

    name: str
    lab: LabServer
    phone: Phone
    channel: str
    password: str
    workdir: Path

    @property
    def listener(self) -> Listener:
        found = self.lab.secure_listener if self.channel == "secure" else self.lab.listener
        assert found is not None
        return found


@dataclass(frozen=True)
class State:
    """What a bad server must not change."""

    items: Mapping[str, Any]
    trust_pin: str | None
    mode: str
    secure_files: Mapping[str, bytes]
    password_stored: bool
    default_connections: int


def evil_write(password: str) -> dict[str, Any]:
    """What every bad server answers: the published attack's kind of write."""
    return {"action": "WriteItems", "items": {"sntp-addr": EVIL_HOST, "admin-pwd": password}}


@contextmanager
def default_rig(name: str, workdir: Path, password: str, *, trust: str) -> Iterator[Rig]:
    """A Default Mode phone (`trust` `ca` or `pin`) whose first call gets a plain CleanUp."""
    scenario = {
        "interaction": [
            {"contact": 1, "step": [CLEAN_UP]},
            {"step": [evil_write(password), CLEAN_UP]},
        ]
    }
    settings = dict(SETTINGS)
    with ExitStack() as stack:
        lab = LabServer(Scenario.from_dict(scenario)).start()
        stack.callback(lab.stop)
        if trust == "ca":
            ca_file = workdir / f"{name}-ca.pem"
            ca_file.write_bytes(lab.ca_pem)
            settings |= {"tls.default-trust": "ca", "tls.ca-file": ca_file}
        made = stack.enter_context(phone(workdir / name, lab, settings=settings))
        made.start()
        yield Rig(name, lab, made, "default", password, workdir)


@contextmanager
def secure_rig(workdir: Path, password: str) -> Iterator[Rig]:
    """A phone bootstrapped into Secure Mode with a PIN (spec §7.2, §7.3)."""
    scenario = {
        "secure": {"pin": PIN, "wrong-tan": "clean-up"},
        "interaction": [
            {"contact": 1, "step": [pin_write(), CLEAN_UP]},
            {"channel": "secure", "reason": "start-up", "step": [READ_TAN, CLEAN_UP]},
            {"channel": "secure", "step": [evil_write(password), CLEAN_UP]},
            {"step": [CLEAN_UP]},
        ],
    }
    settings = {**SETTINGS, "ui.driver": "socket", "ui.timeout": 60.0}
    with ExitStack() as stack:
        lab = LabServer(Scenario.from_dict(scenario)).start()
        stack.callback(lab.stop)
        made = stack.enter_context(phone(workdir / "secure", lab, settings=settings))
        made.start()
        type_pin(made, wait_prompt(made), PIN)
        yield Rig("secure", lab, made, "secure", password, workdir)


def control(rig: Rig) -> str:
    """The phone talks to the good server: '' when it does, else what went wrong."""
    made = rig.phone
    if made.wait_interaction(Reason.START_UP) != "completed":
        return "its start-up with the good server failed"
    if rig.channel == "secure":
        wait_opened(rig.lab, "secure", Reason.START_UP)
        if made.wait_interaction(Reason.START_UP, count=2) != "completed":
            return "its first Secure Mode start-up failed"
        if wait_mode(made, "secure mode") != "secure mode":
            return "not in Secure Mode after the bootstrap"
    elif rig.name == "pin":
        made.wait_log(r"pinned the key of")
        if made.status()["trust_pin"] != rig.lab.server_pin:
            return "the good server's key was not pinned"
    return ""


def state(rig: Rig) -> State:
    status = rig.phone.status()
    folder = secure_dir(rig.phone)
    files = {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert rig.lab.listener is not None
    return State(
        items=rig.phone.ctl("get")["items"],
        trust_pin=status["trust_pin"],
        mode=status["mode"],
        secure_files=files,
        password_stored=password_stored(rig),
        default_connections=rig.lab.listener.connections if rig.channel == "secure" else 0,
    )


def password_stored(rig: Rig) -> bool:
    """Whether the password the bad servers write is anywhere in the phone's state."""
    needle = rig.password.encode()
    root = rig.phone.state_dir
    return any(needle in p.read_bytes() for p in root.rglob("*") if p.is_file())


def differences(before: State, after: State) -> list[str]:
    changed = []
    if before.items != after.items:
        keys = sorted(k for k in {*before.items, *after.items}
                      if before.items.get(k) != after.items.get(k))  # fmt: skip
        changed.append(f"items {', '.join(keys)}")
    if before.trust_pin != after.trust_pin:
        changed.append("the trust pin")
    if before.mode != after.mode:
        changed.append(f"the mode ({before.mode} → {after.mode})")
    if before.secure_files != after.secure_files:
        changed.append("the secure store")
    if after.password_stored and not before.password_stored:
        changed.append("the written password is stored")
    if after.default_connections != before.default_connections:
        changed.append("the default port was contacted (fallback)")
    return changed


def good_again(rig: Rig) -> str:
    """The control after the cases: the good server's write is applied ('' if so)."""
    mark = rig.phone.mark()
    rig.phone.ctl("contact")
    if rig.phone.wait_interaction(Reason.SOLICITED, after=mark) != "completed":
        return "the good server's call failed"
    if rig.phone.get("sntp-addr").get("sntp-addr") != EVIL_HOST:
        return "its write was not applied"
    if not password_stored(rig):
        return "the written password is not in the phone's state (the check would miss it)"
    return ""


def secrets_of(rig: Rig) -> dict[str, str | bytes]:
    """The written password, and for Secure Mode the PIN, TAN and key material."""
    found: dict[str, str | bytes] = {"admin-pwd": rig.password}
    if rig.channel == "secure":
        secrets = Secrets()
        secrets.add_material(rig.lab.material)
        for name in MATERIAL_ITEMS:
            sent = [i.value for r in rig.lab.transcript if not r.from_phone
                    for i in r.items if i.name == name]  # fmt: skip
            secrets.add_item_values(name, sent)
        found.update(secrets.values)
    return found
