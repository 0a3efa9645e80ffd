"""Bad TLS servers: each refused, logged, nothing changed.

The matrix of issue 8: wrong CA, expired, not yet valid, another key after pinning, TLS
1.0/1.1 only, and in Secure Mode a server that requests no client certificate or refuses
the phone's; plus Secure Mode variants of the certificate cases and the refusal on TLS 1.2.

Three real daemons (`provd run`, the tests' harness) against the lab server: one trusting
a CA file (`tls.default-trust = ca`), one trusting on first use (`pin`, the default), and
one bootstrapped into Secure Mode with a PIN (spec §7.2, §7.3), as tests/integration/secure
does. Each phone first completes an interaction with the good server (the control that it
can talk to it). Then, for each case, the lab's listener keeps its address, port and
scenario but serves TLS from a bad `ssl` context (`bench/proof/tls_servers.py`); the
scenario answers every interaction after the first with a `WriteItems` of `sntp-addr` and
`admin-pwd`, and the phone is told to call (`provctl contact`), several times per case.

Per case: *refused* — every interaction ended failed, the bad server saw connections but
not one document of the phone (its transcript); *logged* — a WARNING or ERROR line of the
daemon names the cause (the console log shows no MESSAGE_ID: the event is named from the
message provd logs it with); *nothing changed* — every item (`provctl get`), the trust
pin, the mode, the secure store's files, whether the written password is in the item
store, and (Secure Mode) no fallback to the default port. Last, the good server again: the
same write is applied (the control that the scenario can change things at all).
"""

from __future__ import annotations

import random
import re
import string
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from bench.proof.common import Report, main
from bench.proof.daemons import phone_texts
from bench.proof.tls_rigs import (
    Rig,
    control,
    default_rig,
    differences,
    good_again,
    secrets_of,
    secure_rig,
    state,
)
from bench.proof.tls_servers import (
    BadServer,
    expired,
    foreign,
    legacy_handshake,
    not_yet_valid,
    other_key,
)
from provd.lab.pki import make_ca
from provd.service.journal import MessageId
from provd.wpi.model import Reason

SEED = 3
#: Calls per case: a refusal that depends on timing (an alert racing a reset) shows up.
ATTEMPTS = 10

LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ([\w.]+): (.*?)(?: \[[^\]]*\])?$")
#: The events provd.service.reports logs these lines with (`log_event`).
EVENTS = (
    (re.compile(r"not the pinned one"), MessageId.TRUST_PIN_MISMATCH),
    (re.compile(r"^TLS with "), MessageId.TLS_FAILURE),
    (re.compile(r"interaction failed"), MessageId.INTERACTION_FAILED),
)


@dataclass(frozen=True)
class Case:
    """One bad server: `cause` is what a log line must say for it to count as logged."""

    key: str
    title: str
    rig: str
    server: Callable[[Rig], BadServer]
    cause: str
    core: bool = True


@dataclass
class Outcome:
    case: Case
    calls: int = 0  # calls that ended (failed or completed)
    failed: int = 0
    connections: int = 0
    documents: int = 0  # documents of the phone that reached the bad server
    write_replies: int = 0
    logged: str = ""  # the first line naming the cause, if every call logged one
    logged_calls: int = 0
    unnamed: list[str] = field(default_factory=list)  # calls' lines that did not name it
    changed: list[str] = field(default_factory=list)
    server_saw: str = ""

    @property
    def refused(self) -> bool:
        return (
            self.failed == self.calls == ATTEMPTS
            and self.documents == 0
            and self.connections >= ATTEMPTS
        )

    @property
    def ok(self) -> bool:
        return self.refused and bool(self.logged) and not self.changed


# --------------------------------------------------------------------------- the cases


def lab_clients(rig: Rig) -> bytes:
    """The client CA that issued the phone's certificate: a Secure Mode port's trust."""
    return rig.lab.material.client_ca_pem


def other_clients() -> bytes:
    """A client CA that did not issue the phone's certificate: its certificate is refused."""
    return make_ca("a client CA that did not issue the phone's certificate").cert_pem


CERT = r"not accepted: .*(trusted|issuer)"
EXPIRED = r"expired"
NOT_YET = r"not yet valid"
OLD_TLS = r"protocol version|unsupported protocol|wrong version|no protocols|version too low"
REFUSED = (
    r"alert (unknown ca|bad certificate|certificate required|certificate unknown|handshake)"
    r"|client certificate"
)

#: In the order they run; on each phone the case that may change things runs last.
CASES = (
    Case("1", "wrong CA (trust: a CA file)", "ca",
         lambda r: BadServer("c1", foreign()), CERT),
    Case("2", "expired server certificate (trust: a CA file)", "ca",
         lambda r: BadServer("c2", expired(r.lab.pki.ca)), EXPIRED),
    Case("3", "server certificate not yet valid (trust: a CA file)", "ca",
         lambda r: BadServer("c3", not_yet_valid(r.lab.pki.ca)), NOT_YET),
    Case("5", "TLS 1.0/1.1 only", "ca",
         lambda r: BadServer("c5", r.lab.pki.server, legacy=True), OLD_TLS),
    Case("4", "different key after pinning (trust: pin)", "pin",
         lambda r: BadServer("c4", other_key(r.lab.pki.ca)), r"not the pinned one"),
    Case("7", "Secure Mode: client certificate refused (TLS 1.3)", "secure",
         lambda r: BadServer("c7", r.lab.pki.server, client_cas=other_clients()), REFUSED),
    Case("7b", "Secure Mode: client certificate refused (TLS 1.2)", "secure",
         lambda r: BadServer("c7b", r.lab.pki.server, client_cas=other_clients(),
                             max_tls12=True), REFUSED, core=False),
    Case("S1", "Secure Mode: server certificate not from dls-server-ca", "secure",
         lambda r: BadServer("s1", foreign(), client_cas=lab_clients(r)), CERT, core=False),
    Case("S2", "Secure Mode: expired server certificate", "secure",
         lambda r: BadServer("s2", expired(r.lab.pki.ca), client_cas=lab_clients(r)), EXPIRED,
         core=False),
    Case("S3", "Secure Mode: server certificate not yet valid", "secure",
         lambda r: BadServer("s3", not_yet_valid(r.lab.pki.ca), client_cas=lab_clients(r)),
         NOT_YET, core=False),
    Case("6", "Secure Mode: no client certificate requested", "secure",
         lambda r: BadServer("c6", r.lab.pki.server), r"client certificate"),
)  # fmt: skip
ORDER = ("1", "2", "3", "4", "5", "6", "7", "7b", "S1", "S2", "S3")


# --------------------------------------------------------------------------- one case


def shown(message: str, rig: Rig) -> str:
    """A log message for docs/proof.md: ports, URLs and key hashes made stable."""
    text = message.replace(rig.lab.url, "<server>")
    if rig.lab.secure_listener is not None:
        text = text.replace(rig.lab.secure_url, "<secure server>")
    text = re.sub(r"(127\.0\.0\.1):\d+", r"\1:<port>", text)
    return re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", text)


def described(match: re.Match[str], rig: Rig) -> str:
    level, message = match.group(1), match.group(3)
    event = next((e for pattern, e in EVENTS if pattern.search(message)), None)
    name = f" {event.name} ({event.value[:8]}…)" if event is not None else ""
    return f"{level}{name}: {shown(message, rig)}"


def run_case(rig: Rig, case: Case) -> Outcome:
    """Serve `case`'s bad TLS on the rig's port, have the phone call, observe."""
    out = Outcome(case)
    server = case.server(rig)
    listener = rig.listener
    before = state(rig)
    records = len(rig.lab.transcript)
    errors = len(listener.handshake_errors)
    subjects = len(rig.lab.client_subjects)
    good = listener.context
    listener.context = server.context(rig.workdir / "certs" / case.key)
    try:
        connections = listener.connections
        if server.legacy:
            # The control: a TLS 1.1 client gets TLS 1.1 from it; the phone's refusal is its own.
            spoken = legacy_handshake(listener.port)
            out.server_saw = f"a TLS 1.0/1.1 client negotiated {spoken or 'nothing'}; "
            connections += 1
        for _ in range(ATTEMPTS):
            mark = rig.phone.mark()
            if not rig.phone.ctl("contact").get("ok"):
                continue
            try:
                ended = rig.phone.wait_interaction(Reason.SOLICITED, after=mark)
            except TimeoutError:
                out.unnamed.append("a call that did not end in time")
                continue
            out.calls += 1
            out.failed += ended == "failed"
            lines = rig.phone.matching_log(LINE.pattern, after=mark)
            naming = [m for m in lines if re.search(case.cause, m.group(3), re.IGNORECASE)]
            if naming:
                out.logged_calls += 1
                out.logged = out.logged or described(naming[0], rig)
            else:
                out.unnamed += [described(m, rig) for m in lines]
        if out.logged_calls < ATTEMPTS:
            out.logged = ""
    finally:
        listener.context = good
    new = rig.lab.transcript[records:]
    out.documents = sum(1 for r in new if r.from_phone)
    out.write_replies = sum(1 for r in new if r.from_phone and r.action == "WriteItems")
    out.connections = listener.connections - connections
    seen = listener.handshake_errors[errors:]
    out.server_saw += (
        f"{len(seen)} failed handshakes ({shown(seen[0].split(': ', 1)[-1], rig)})"
        if seen
        else "no failed handshake"
    )
    if rig.channel == "secure":
        verified = len(rig.lab.client_subjects) - subjects
        out.server_saw += f", {verified} client certificates verified"
    out.changed = differences(before, state(rig))
    return out


def row(out: Outcome) -> str:
    parts = []
    if out.refused:
        parts.append(f"refused {out.failed}/{ATTEMPTS}, no document reached the server")
    else:
        parts.append(
            f"NOT refused: {out.failed}/{ATTEMPTS} failed ({out.calls} ended),"
            f" {out.connections} connections,"
            f" {out.documents} documents reached the server"
            f" ({out.write_replies} replies to its WriteItems)"
        )
    if out.logged:
        parts.append(f"logged ({out.logged})")
    else:
        seen = "; ".join(dict.fromkeys(out.unnamed)) or "no WARNING or ERROR line"
        parts.append(
            f"NOT logged with its cause in {ATTEMPTS - out.logged_calls}/{ATTEMPTS} calls"
            f" (the log said: {seen})"
        )
    parts.append("nothing changed" if not out.changed else f"CHANGED: {', '.join(out.changed)}")
    parts.append(f"server side: {out.server_saw}")
    return "; ".join(parts)


def scan(report: Report, rig: Rig) -> None:
    """Suite 6's evidence for one phone (while it runs, for `provctl status`)."""
    secrets = secrets_of(rig)
    texts = phone_texts(rig.phone, rig.lab)
    documents = texts.pop("the phone's documents", b"")
    report.scan(f"TLS: the {rig.name} phone and its bad servers", secrets, texts)
    # spec §7.3 step 4: the phone answers `bootstrapping-tan` to the server, by design.
    sent = {k: v for k, v in secrets.items() if not k.startswith("TAN of")}
    but = " (all but the TAN: it answers it to the server)" if len(sent) < len(secrets) else ""
    report.scan(
        f"TLS: the {rig.name} phone's documents{but}", sent, {"the phone's documents": documents}
    )


# --------------------------------------------------------------------------- the suite


def run(report: Report) -> None:
    rng = random.Random(SEED)
    password = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(20))
    report.note(
        f"seed {SEED} (the written admin-pwd); {ATTEMPTS} calls per case; certificates and"
        " keys (EC P-256) are made fresh by each run with `cryptography`"
    )
    outcomes: dict[str, Outcome] = {}
    controls: list[str] = []
    checked = 0
    with tempfile.TemporaryDirectory(prefix="provd-proof-tls-") as tmp:
        workdir = Path(tmp)
        rigs: dict[str, Callable[[], AbstractContextManager[Rig]]] = {
            "ca": lambda: default_rig("ca", workdir, password, trust="ca"),
            "pin": lambda: default_rig("pin", workdir, password, trust="pin"),
            "secure": lambda: secure_rig(workdir, password),
        }
        for name, make in rigs.items():
            started = time.monotonic()
            with make() as rig:
                checked += 1
                if problem := control(rig):
                    controls.append(f"{name} phone before the cases: {problem}")
                for case in CASES:
                    if case.rig == name:
                        outcomes[case.key] = run_case(rig, case)
                checked += 1
                if problem := good_again(rig):
                    controls.append(f"{name} phone, the good server after the cases: {problem}")
                scan(report, rig)
            report.note(
                f"the {name} phone: start, control, {sum(c.rig == name for c in CASES)} cases,"
                f" control again: {time.monotonic() - started:.1f} s"
            )
    legacy = outcomes["5"].server_saw
    checked += 1
    if "negotiated TLSv1" not in legacy:
        controls.append(f"the TLS 1.0/1.1 server: {legacy}")

    core = [outcomes[k] for k in ORDER if outcomes[k].case.core]
    more = [outcomes[k] for k in ORDER if not outcomes[k].case.core]
    refused = sum(o.refused for o in core)
    logged = sum(bool(o.logged) for o in core)
    changed = sum(bool(o.changed) for o in outcomes.values())
    report.figure(
        f"bad servers refused (the {len(core)} cases of issue 8)",
        f"{refused}/{len(core)}",
        f"{len(core)}/{len(core)}",
        refused == len(core),
    )
    report.figure(
        f"bad servers logged at WARNING or ERROR naming the cause (the {len(core)} cases)",
        f"{logged}/{len(core)}",
        f"{len(core)}/{len(core)}",
        logged == len(core),
    )
    report.figure(f"cases after which anything had changed (of {len(outcomes)})", changed, "0",
                  changed == 0)  # fmt: skip
    ok = sum(o.ok for o in more)
    report.figure(
        "more variants refused, logged, nothing changed (Secure Mode server certificates,"
        " refusal on TLS 1.2)",
        f"{ok}/{len(more)}",
        f"{len(more)}/{len(more)}",
        ok == len(more),
    )
    for key in ORDER:
        out = outcomes[key]
        report.figure(f"case {key}: {out.case.title}", row(out),
                      "refused, logged, nothing changed", out.ok)  # fmt: skip
    calls = sum(o.calls for o in outcomes.values())
    report.figure("calls to bad servers", calls, f"≥ {len(CASES) * ATTEMPTS}",
                  calls >= len(CASES) * ATTEMPTS)  # fmt: skip
    report.figure(
        "controls passed (each phone completes with the good server before and after; the"
        " TLS 1.0/1.1 server speaks TLS 1.1)",
        f"{checked - len(controls)}/{checked}",
        f"{checked}/{checked}",
        not controls,
    )
    for problem in controls:
        report.note(f"control failed: {problem}")
    report.note(
        "refused: every call ended failed, the bad server accepted the connections and its"
        " transcript holds no document of the phone; nothing changed: `provctl get` of every"
        " item, the trust pin, the mode, the secure store's files, the written password"
        " nowhere in the state directory, and no call to the default port in Secure Mode"
    )
    report.note(
        "the daemon's console log carries no MESSAGE_ID; the event in each row is the one"
        " provd.service.reports logs that message with (systemd/provd.catalog)"
    )


if __name__ == "__main__":
    main(run, __doc__, "tls")
