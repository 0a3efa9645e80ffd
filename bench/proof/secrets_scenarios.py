"""The five secret-bearing scenarios of suite 6, each against the real daemon and lab servers.

Each scenario starts a lab server (and, for the deployment, an FTP server), a real
`provd run` process with debug logging, plays its interactions to their end, and returns
an `Outcome`: the secrets the daemon saw (by label, never shown), what it left readable
(`phone_texts`, taken before the daemon stops), the non-secret markers its log must hold
(the control: the interactions' nonces), and whether it reached its end state.

No step waits on the daemon's stderr: under journald it writes nothing there. Progress is
read from the control socket (`provctl status`, the PIN prompt), the lab's transcript and
the files the daemon wrote.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.proof.daemons import phone, phone_texts
from provd.lab.fileserver import FtpFileServer
from provd.lab.pki import Credential
from provd.lab.scenario import Scenario
from provd.lab.secure import TAN_ITEM
from provd.lab.server import LabServer
from provd.wpi.codec import emit_item
from provd.wpi.model import Item, Reason
from tests.integration.daemon.harness import Phone, wait_until
from tests.integration.daemon.lab import first_message, item_values, opened
from tests.integration.secure.flows import (
    CLEAN_UP,
    bootstrap_scenario,
    nopin_write,
    pin_write,
    type_pin,
    wait_mode,
    wait_opened,
    wait_prompt,
)
from tests.integration.secure.secrets_check import (
    MATERIAL_ITEMS,
    key_in_secure_store,
    key_secrets,
    value_chunks,
)

#: Every wait ends as soon as its event arrives; this only bounds a failure.
WAIT = 30.0
#: Debug logging: even debug lines are captured and searched.
SETTINGS: dict[str, Any] = {"log.level": "debug"}
SECURE_SETTINGS: dict[str, Any] = {**SETTINGS, "ui.driver": "socket", "ui.timeout": 60.0}
PROVD_LOG_LINE = re.compile(r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL) provd[.:]")

Secrets = dict[str, str | bytes]


@dataclass
class Outcome:
    """What one scenario used and left."""

    secrets: Secrets = field(default_factory=dict)
    texts: dict[str, bytes] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)  # label → non-secret value
    reached: bool = False
    failure: str = ""  # why the end state was not reached (secrets masked)
    stderr_log_lines: int = 0  # provd log lines on stderr (0 under journald)


@dataclass(frozen=True)
class Context:
    """Where a scenario runs and what it starts the daemon with."""

    workdir: Path
    rng: random.Random
    env: Mapping[str, str]  # INVOCATION_ID under journald, else nothing


@dataclass(frozen=True)
class Spec:
    slug: str
    title: str
    play: Callable[[Context], Outcome]


# --------------------------------------------------------------------------- secrets


def password(rng: random.Random, prefix: str) -> str:
    """A password no log could hold by chance (16 random letters and digits)."""
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(16))


def keypad_pin(rng: random.Random) -> str:
    """A keypad PIN whose parts cannot occur by chance: `*` and `#` occur in no timestamp,
    hex or Base64 text. Password `dddd#dddd` (the PKCS#12 password), TAN `*d#`."""
    digits = "".join(rng.choice(string.digits) for _ in range(8))
    return f"{digits[:4]}#{digits[4:]}*{rng.choice(string.digits)}#"


def pin_secrets(label: str, pin: str) -> Secrets:
    return {label: pin, f"{label}'s password part": pin[:-3], f"{label}'s TAN": pin[-3:]}


def material_secrets(credential: Credential) -> Secrets:
    return {f"phone's {label}": value for label, value in key_secrets(credential).items()}


def sent_material(lab: LabServer) -> Secrets:
    """The bootstrap items' values as the lab sent them (start, middle and end pieces)."""
    found: Secrets = {}
    for name in MATERIAL_ITEMS:
        values = [
            item.value
            for record in lab.transcript
            if not record.from_phone
            for item in record.items
            if item.name == name
        ]
        for n, value in enumerate(values):
            found.update(value_chunks(f"{name} value {n}", value))
    return found


# --------------------------------------------------------------------------- waiting


def wait_status(made: Phone, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll `provctl status` (the control socket) until `predicate` holds."""
    deadline = time.monotonic() + WAIT
    while True:
        with contextlib.suppress(OSError):
            status = made.status()
            if predicate(status):
                return status
        if time.monotonic() > deadline:
            raise AssertionError("the daemon did not get there in time")
        time.sleep(0.05)


def idle_after_ok(status: Mapping[str, Any]) -> bool:
    return bool(
        str(status.get("last_contact") or "").endswith(" ok")
        and not status["running"]
        and not status["pending"]
        and status["local_changes_pending"] == 0
    )


# --------------------------------------------------------------------------- bookkeeping


@contextlib.contextmanager
def attempt(outcome: Outcome) -> Iterator[None]:
    """Run a scenario's steps; a failure is recorded (secrets masked), not raised."""
    try:
        yield
    except Exception as exc:
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        for value in outcome.secrets.values():
            if isinstance(value, str) and value:
                text = text.replace(value, "[secret]")
        outcome.failure = text[:300]
        outcome.reached = False


def finish(outcome: Outcome, made: Phone, lab: LabServer, **texts: Any) -> None:
    """What the scenario left, while the daemon still runs; then stop it."""
    outcome.texts.update(phone_texts(made, lab, **texts))
    for interaction in lab.conductor.interactions:
        nonce = interaction.session.nonce
        if interaction.number > 0 and nonce:
            outcome.markers[f"nonce of interaction {interaction.number}"] = str(nonce)
    if made.running:
        made.stop()
    outcome.texts["the daemon's log"] = made.logtext().encode()
    outcome.stderr_log_lines = len(PROVD_LOG_LINE.findall(made.logtext()))


def started(
    ctx: Context, scenario: Mapping[str, Any], settings: Mapping[str, Any], **lab: Any
) -> tuple[LabServer, contextlib.AbstractContextManager[Phone]]:
    server = LabServer(Scenario.from_dict(scenario), **lab).start()
    return server, phone(ctx.workdir, server, settings=settings, env=ctx.env)


# --------------------------------------------------------------------------- the scenarios


def passwords_written(ctx: Context) -> Outcome:
    """(1) The server writes admin-pwd, user-pwd and file-pwd, then reads everything back."""
    values = {
        "admin-pwd": password(ctx.rng, "Adm-"),
        "user-pwd": password(ctx.rng, "Usr-"),
        "file-pwd": password(ctx.rng, "Fil-"),
    }
    out = Outcome(secrets={f"{name} written": value for name, value in values.items()})
    script = {
        "interaction": [
            {
                "reason": "start-up",
                "step": [
                    {"action": "WriteItems", "items": values},
                    {"action": "ReadAllItems"},
                    {"action": "ReadItems", "items": list(values)},
                    CLEAN_UP,
                ],
            },
            {"step": [CLEAN_UP]},
        ]
    }
    lab, made_phone = started(ctx, script, SETTINGS)
    try:
        with made_phone as made:
            with attempt(out):
                made.start()
                wait_status(made, idle_after_ok)
                replies = [r for r in lab.transcript if r.from_phone and r.interaction == 1]
                write = [r for r in replies if r.action == "WriteItems"]
                out.reached = len(write) == 1 and write[0].items == ()  # all three taken
            finish(out, made, lab)
    finally:
        lab.stop()
    return out


def password_changed_locally(ctx: Context) -> Outcome:
    """(2) A local password change (`provctl set user-pwd=...`), reported to the server."""
    secret = password(ctx.rng, "Loc-")
    out = Outcome(secrets={"user-pwd set locally": secret})
    script = {"interaction": [{"step": [CLEAN_UP]}]}
    lab, made_phone = started(ctx, script, SETTINGS)
    try:
        with made_phone as made:
            with attempt(out):
                made.start()
                wait_status(made, idle_after_ok)
                shown = made.provctl("set", f"user-pwd={secret}")
                out.texts["provctl set"] = (shown.stdout + shown.stderr).encode()
                wait_until(lambda: bool(opened(lab, Reason.LOCAL_CHANGES)))
                wait_status(made, idle_after_ok)
                report = first_message(lab, opened(lab, Reason.LOCAL_CHANGES)[0])
                # The report names the changed password without its value [B].
                named = [(i.name, i.value) for i in report.items if i.name == "user-pwd"]
                out.reached = shown.returncode == 0 and named == [("user-pwd", "")]
            finish(out, made, lab)
    finally:
        lab.stop()
    return out


def pin_bootstrap(ctx: Context) -> Outcome:
    """(3) A PIN bootstrap into Secure Mode: a wrong PIN typed first, then the right one."""
    pin, wrong = keypad_pin(ctx.rng), keypad_pin(ctx.rng)
    script = bootstrap_scenario(pin_write(retries=3), pin=pin)
    lab, made_phone = started(ctx, script, SECURE_SETTINGS)
    out = Outcome(
        secrets={
            **pin_secrets("PIN", pin),
            "PKCS#12 password": lab.material.password,
            **pin_secrets("wrong PIN", wrong),
            **material_secrets(lab.material.client),
        }
    )
    try:
        with made_phone as made:
            with attempt(out):
                made.start()
                first = wait_prompt(made, timeout=WAIT)
                type_pin(made, first, wrong)
                second = wait_prompt(made, after=first["id"], timeout=WAIT)
                type_pin(made, second, pin)
                wait_opened(lab, "secure", Reason.START_UP, timeout=WAIT)
                wait_mode(made, "secure mode", timeout=WAIT)
                wait_status(made, lambda s: not s["running"])
                out.reached = (
                    second["attempts_left"] == first["attempts_left"] - 1
                    and [c.matched for c in lab.tan_checks] == [True]
                    and key_in_secure_store(made, lab.material)
                )
            finish(out, made, lab, state_files="all-but-secure")
            out.secrets.update(sent_material(lab))
            out.texts["the phone's documents"] = documents_but_tan_answer(lab, pin[-3:])
    finally:
        lab.stop()
    return out


def documents_but_tan_answer(lab: LabServer, tan: str) -> bytes:
    """The phone's documents, its answer to `ReadItems bootstrapping-tan` without the TAN:
    the one place the TAN must go, to the server that asked for it (spec §7.3 step 4)."""
    answer = emit_item(Item(name=TAN_ITEM, value=tan)).encode()
    hidden = emit_item(Item(name=TAN_ITEM, value="[the TAN, sent by design]")).encode()
    return b"\n".join(r.body.replace(answer, hidden) for r in lab.transcript if r.from_phone)


def nopin_bootstrap(ctx: Context) -> Outcome:
    """(4) A no-PIN bootstrap: the client certificate and key written in the clear archive."""
    read_mac = {"action": "ReadItems", "items": ["mac-addr"]}
    script = bootstrap_scenario(
        nopin_write(), pin=keypad_pin(ctx.rng), secure_steps=(read_mac, CLEAN_UP)
    )
    lab, made_phone = started(ctx, script, SECURE_SETTINGS)
    out = Outcome(secrets=material_secrets(lab.material.client))
    try:
        with made_phone as made:
            with attempt(out):
                made.start()
                wait_opened(lab, "secure", Reason.START_UP, timeout=WAIT)
                wait_mode(made, "secure mode", timeout=WAIT)
                wait_status(made, lambda s: not s["running"])
                out.reached = lab.client_subjects == [
                    lab.material.client_subject
                ] and key_in_secure_store(made, lab.material)
            finish(out, made, lab, state_files="all-but-secure")
            out.secrets.update(sent_material(lab))
    finally:
        lab.stop()
    return out


RING = bytes(range(256)) * 64  # 16 kB


def ftp_deployment(ctx: Context) -> Outcome:
    """(5) A file deployed from an FTP server that asks for a user and password."""
    secret = password(ctx.rng, "Ftp-")
    out = Outcome(secrets={"FTP password": secret})
    served = ctx.workdir / "served"
    (served / "media").mkdir(parents=True)
    (served / "media" / "proof-ring.wav").write_bytes(RING)
    # pyftpdlib configures its own stderr logging (at INFO, on every serve loop) unless its
    # logger has a handler: the lab server's requests are not the proof's output.
    logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
    with FtpFileServer(served, user="provd-proof", password=secret) as ftp:
        values = {**ftp.values("proof-ring.wav", path="/media"), "file-type": "RINGTONE"}
        deploy = {
            "action": "FileDeployment",
            "items": [{"name": k, "value": v} for k, v in values.items()],
        }
        script = {
            "interaction": [
                {"reason": "start-up", "step": [deploy, CLEAN_UP]},
                {"step": [CLEAN_UP]},
            ]
        }
        lab, made_phone = started(ctx, script, SETTINGS)
        try:
            with made_phone as made:
                target = made.state_dir / "files" / "RINGTONE" / "proof-ring.wav"
                with attempt(out):
                    made.start()
                    wait_until(target.exists)
                    wait_status(made, idle_after_ok)
                    reports = [
                        item_values(r.items)
                        for r in lab.transcript
                        if r.from_phone and r.reason is Reason.STATUS
                    ]
                    out.reached = target.read_bytes() == RING and [
                        r.get("file-deployment-status") for r in reports
                    ] == ["ok"]
                finish(out, made, lab)
        finally:
            lab.stop()
    return out


SCENARIOS: tuple[Spec, ...] = (
    Spec("passwords", "server writes admin-pwd, user-pwd, file-pwd", passwords_written),
    Spec("local", "local password change reported", password_changed_locally),
    Spec("pin", "PIN bootstrap, a wrong PIN first", pin_bootstrap),
    Spec("nopin", "no-PIN bootstrap", nopin_bootstrap),
    Spec("ftp", "file deployment from FTP with a password", ftp_deployment),
)
