"""Network faults: no crash, correct back-off and no pending change lost, through a fault proxy.

The real daemon (`bench.proof.daemons.phone`) talks to the lab server through
`bench.proof.faultproxy.FaultProxy`, which terminates TLS with the lab's own server
credential (the phone pins the lab's key on first use, so it cannot tell) and cuts or
rewrites the lab's answers. For each fault a fresh phone starts against a proxy that
fails its first N connections, then relays again:

- server down (connection refused: nothing listens on the port; lifted from the log),
- reset mid-response (head and half the body, then a TCP RST),
- truncated body (head and half the body, then close_notify and FIN),
- one byte per second (each byte its own TLS record; `timeouts.response` is 3 s),
- HTTP 500 and an empty 200 (answered by the proxy, the lab is not asked).

Per fault: the daemon still runs and answers `provctl status` during the fault and after,
each faulted interaction is counted as failed and retried (an empty 200 is a CleanUp,
spec §2.3: completed, not retried), the waits between the phone's attempts, measured at
the proxy (end of one faulted connection to the next accept; for a refused connection,
the daemon's own log time stamps), lie in the spec §3.1 bands computed here from the
settings, and the attempt after the fault is lifted completes.

Then restarts: with the server down the phone gets local changes (`ctl set`), is stopped
with SIGTERM or killed with SIGKILL (alternating; sometimes right after the set,
sometimes after the local-changes attempt failed), started again, and the fault lifted:
the lab must receive the local-changes report carrying every item with its value.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.proof.common import Report, main
from bench.proof.daemons import phone, phone_texts
from bench.proof.faultproxy import Connection, Fault, FaultProxy
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from provd.wpi.model import Reason
from tests.integration.daemon.harness import Phone
from tests.integration.daemon.lab import first_message, item_values, opened

SEED = 20240808

#: Small retry values so the suite runs fast: bands 0.3-0.6, 0.6-1.2, then 0.6-1.2 s.
RETRY_M, RETRY_K, RETRY_CAP = 0.3, 2000.0, 1.2
RESPONSE_TIMEOUT = 3.0
SETTINGS = {
    "retry.m": RETRY_M,
    "retry.k": RETRY_K,
    "retry.cap": RETRY_CAP,
    "timeouts.connect": 3.0,
    "timeouts.response": RESPONSE_TIMEOUT,
    "timeouts.interaction": 20.0,
    "changes.debounce": 0.2,
}
#: An interval may come this much sooner (clock granularity, the proxy records the end of
#: a connection a moment after the phone saw it) or later (the daemon's loop turn, the
#: fsync of the failure count, building the next first message, a busy 2-CPU machine).
EARLY, LATE = 0.05, 0.5
#: The drip fault gives up after this long if the phone has not (then it resets).
DRIP_LIMIT = 10.0
#: The phone must end a drip within its response timeout, plus this much.
DRIP_SLACK = 1.0
WAIT = 30.0

SCENARIO = {"interaction": [{"step": [{"action": "CleanUp"}]}]}
DOWN = "server down (refused)"
FAULT_NAMES = {
    Fault.RESET: "reset mid-response",
    Fault.TRUNCATE: "truncated body",
    Fault.DRIP: "one byte per second",
    Fault.HTTP_500: "HTTP 500",
    Fault.EMPTY_200: "empty 200",
}


def band(failures: int) -> tuple[float, float]:
    """spec §3.1 [B]: after n failures, between m·r^(n−1) and m·r^n, r = k/1000, n growing
    only while m·r^n stays within the cap (computed here, independently of provd)."""
    ratio = RETRY_K / 1000.0
    last = max(1, math.floor(math.log(RETRY_CAP / RETRY_M) / math.log(ratio) + 1e-9))
    n = min(failures, last)
    return RETRY_M * ratio ** (n - 1), min(RETRY_M * ratio**n, RETRY_CAP)


def logged_at(line: str) -> float:
    """The daemon's own time stamp of a log line (`2025-01-01 12:03:04,123 INFO ...`)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class Outcome:
    """What one fault did to one phone."""

    name: str
    faulted: int  # connections (or refused attempts) that met the fault
    alive: bool = True
    failed_counted: int = 0  # interactions logged as failed
    retries: list[int] = field(default_factory=list)  # failures= of each retry line
    recovered: bool = False
    intervals: list[tuple[float, float, float]] = field(default_factory=list)  # value, lo, hi
    drip_ends: list[float] = field(default_factory=list)  # seconds until the phone gave up
    status_ok: bool = True  # during the fault: start-up pending, the last error shown
    notes: list[str] = field(default_factory=list)

    @property
    def intervals_ok(self) -> int:
        return sum(lo - EARLY <= v <= hi + LATE for v, lo, hi in self.intervals)


class Suite:
    """Shared state: the lab, the work directory, the crash count."""

    def __init__(self, report: Report, workdir: Path) -> None:
        self.report = report
        self.workdir = workdir
        self.rng = random.Random(SEED)
        pin = "".join(self.rng.choice("0123456789") for _ in range(10))
        self.lab = LabServer(Scenario.from_dict(SCENARIO), secure_port=None, pin=pin).start()
        self.secrets: dict[str, str | bytes] = {
            "lab bootstrap PIN": pin,
            "lab server key": self.lab.pki.server.key_pem,
            "lab client key": self.lab.material.client.key_pem,
        }
        self.crashes = 0
        self.phones = 0

    def close(self) -> None:
        self.lab.stop()

    def proxy(self) -> FaultProxy:
        return FaultProxy(
            ("127.0.0.1", self.lab.port), self.lab.pki, drip_interval=1.0, drip_limit=DRIP_LIMIT
        ).start()

    def checked_alive(self, made: Phone, where: str, outcome: Outcome | None = None) -> bool:
        """The process runs and the real `provctl status` answers."""
        ok = made.running and made.provctl("status").returncode == 0
        if not ok:
            self.crashes += 1
            text = f"daemon not answering {where}"
            if outcome is not None:
                outcome.notes.append(text)
            self.report.note(text)
        return ok

    def after_phone(self, made: Phone, scenario: str) -> None:
        """Scan what the phone left (while it runs), stop it, count unclean ends."""
        self.report.scan(scenario, self.secrets, phone_texts(made, self.lab))
        code = made.stop() if made.running else -1
        log = made.logtext()
        bad = len(re.findall(r"Traceback|internal error", log)) + (code != 0)
        self.crashes += bad


def connection_intervals(conns: list[Connection], faulted: int) -> list[tuple[float, float, float]]:
    """From the end of faulted connection n to the accept of connection n+1, with band(n)."""
    found = []
    for n in range(1, min(faulted, len(conns) - 1) + 1):
        ended = conns[n - 1].ended
        if ended is None:
            continue
        lo, hi = band(n)
        found.append((conns[n].accepted - ended, lo, hi))
    return found


def log_intervals(made: Phone, faulted: int) -> list[tuple[float, float, float]]:
    """From each retry line to the next start-up start, by the daemon's time stamps."""
    assert made.log is not None
    events = [
        (logged_at(line), "retry" if "next attempt in" in line else "start")
        for line in made.log.lines
        if "next attempt in" in line or "start-up interaction started" in line
    ]
    found = []
    failures = 0
    for (at, kind), (later, next_kind) in itertools.pairwise(events):
        if kind == "retry" and next_kind == "start":
            failures += 1
            if failures <= faulted:
                lo, hi = band(failures)
                found.append((later - at, lo, hi))
    return found


def retry_lines(made: Phone) -> list[int]:
    return [int(m.group(1)) for m in made.matching_log(r"next attempt in.*\bfailures=(\d+)")]


def run_fault(
    suite: Suite, fault: Fault | None, faulted: int, mixed: list[Fault] | None = None
) -> Outcome:
    """One phone, its first `faulted` start-up attempts meeting `fault` (None: refused),
    or with `mixed`, meeting those faults in that order."""
    name = DOWN if fault is None else FAULT_NAMES.get(fault, fault.value)
    if mixed:
        name = f"mixed reset/truncated/500 ({len(mixed)}, seeded order)"
        outcome_note = f"order: {', '.join(FAULT_NAMES[f] for f in mixed)}"
        faulted = len(mixed)
    outcome = Outcome(name, faulted)
    if mixed:
        outcome.notes.append(outcome_note)
    refused = fault is None and not mixed
    suite.phones += 1
    proxy = suite.proxy()
    if mixed:
        proxy.schedule(*mixed)
    elif fault is None:
        proxy.down()
    else:
        proxy.schedule(*[fault] * faulted)
    workdir = suite.workdir / f"phone{suite.phones}"
    try:
        with phone(workdir, proxy.url(suite.lab.path), settings=SETTINGS) as made:
            try:
                made.start()
                if fault is Fault.EMPTY_200:
                    watch_empty_200(suite, made, outcome)
                else:
                    watch_fault(suite, made, proxy, outcome, refused=refused)
            except AssertionError as exc:  # a wait that timed out: recorded, not raised
                outcome.notes.append(f"gave up waiting: {str(exc).splitlines()[0]}")
            finally:
                if made.process is not None:
                    suite.after_phone(made, f"netfaults: {name}")
    finally:
        proxy.stop()
    if fault is Fault.DRIP:
        for conn in proxy.connections[:faulted]:
            if conn.ended_by == "phone" and conn.ended and conn.answered:
                outcome.drip_ends.append(conn.ended - conn.answered)
            else:
                outcome.drip_ends.append(math.inf)
                outcome.notes.append(
                    f"drip {conn.number}: {conn.sent} bytes sent in"
                    f" {(conn.ended or 0) - (conn.answered or 0):.1f} s, ended by {conn.ended_by}"
                )
    return outcome


def watch_empty_200(suite: Suite, made: Phone, outcome: Outcome) -> None:
    """spec §2.3 [F]: an empty 200 ends the interaction like CleanUp: completed, no retry."""
    result = made.wait_interaction(Reason.START_UP, timeout=WAIT)
    outcome.recovered = result == "completed"
    outcome.alive = suite.checked_alive(made, f"after {outcome.name}", outcome)
    time.sleep(2 * band(1)[1])  # a retry, if any, would have come by now
    outcome.retries = retry_lines(made)
    outcome.failed_counted = len(made.matching_log(r"start-up interaction failed"))
    outcome.alive &= suite.checked_alive(made, f"after {outcome.name}", outcome)


def watch_fault(
    suite: Suite, made: Phone, proxy: FaultProxy, outcome: Outcome, *, refused: bool
) -> None:
    """Wait out the faulted attempts, lift a refusal, wait for the completed start-up."""
    name, faulted = outcome.name, outcome.faulted
    made.wait_log(r"next attempt in", timeout=WAIT)
    # During the fault: alive, the failure counted, the start-up still pending.
    outcome.alive = suite.checked_alive(made, f"during {name}", outcome)
    status = made.status()
    outcome.status_ok = status.get("pending") == ["start-up"] and bool(status.get("last_error"))
    if not outcome.status_ok:
        outcome.notes.append(f"status during the fault: {status}")
    made.wait_log(r"next attempt in", timeout=WAIT + DRIP_LIMIT * faulted, count=faulted)
    if refused:
        proxy.up()  # the server is back
    made.wait_log(r"start-up interaction completed", timeout=WAIT)
    outcome.recovered = True
    outcome.alive &= suite.checked_alive(made, f"after {name}", outcome)
    outcome.retries = retry_lines(made)
    outcome.failed_counted = len(made.matching_log(r"start-up interaction failed"))
    conns = proxy.connections
    if refused:
        outcome.intervals = log_intervals(made, faulted)
        return
    outcome.intervals = connection_intervals(conns, faulted)
    passed = [c for c in conns[faulted:] if c.statuses == [200]]
    if len(conns) != faulted + 1 or not passed:
        outcome.notes.append(
            f"{len(conns)} connections, {len(passed)} relayed with 200 after the fault"
        )


def report_fault(report: Report, outcome: Outcome) -> None:
    name = outcome.name
    report.figure(
        f"{name}: daemon alive (running, `provctl status` answers)",
        "yes" if outcome.alive else "no",
        "yes",
        outcome.alive,
    )
    report.figure(
        f"{name}: recovered (next attempt completes)",
        "yes" if outcome.recovered else "no",
        "yes",
        outcome.recovered,
    )
    if outcome.name == FAULT_NAMES[Fault.EMPTY_200]:
        ok = outcome.failed_counted == 0 and not outcome.retries
        report.figure(
            f"{name}: interactions failed / retried (spec §2.3: a CleanUp)",
            f"{outcome.failed_counted} / {len(outcome.retries)}",
            "0 / 0",
            ok,
        )
        return
    expected = list(range(1, outcome.faulted + 1))
    counted = outcome.failed_counted == outcome.faulted and outcome.retries == expected
    report.figure(
        f"{name}: faulted attempts counted failed and retried (failures=1..n,"
        " status: start-up pending, last error)",
        f"{outcome.failed_counted} of {outcome.faulted}"
        + ("" if outcome.status_ok else ", status wrong"),
        f"{outcome.faulted} of {outcome.faulted}",
        counted and outcome.status_ok,
    )
    shown = ", ".join(f"{v:.2f} in {lo:.1f}-{hi:.1f}" for v, lo, hi in outcome.intervals)
    report.figure(
        f"{name}: back-off intervals within band (s)",
        f"{outcome.intervals_ok} of {len(outcome.intervals)} ({shown})",
        f"{outcome.faulted} of {outcome.faulted}",
        outcome.intervals_ok == outcome.faulted == len(outcome.intervals),
    )
    if outcome.drip_ends:
        limit = RESPONSE_TIMEOUT + DRIP_SLACK
        within = sum(end <= limit for end in outcome.drip_ends)
        shown = ", ".join("never" if math.isinf(e) else f"{e:.1f} s" for e in outcome.drip_ends)
        report.figure(
            f"{name}: dripped answers ended by the phone within"
            f" {RESPONSE_TIMEOUT:.0f} s (+{DRIP_SLACK:.0f} s)",
            f"{within} of {len(outcome.drip_ends)} ({shown})",
            f"{len(outcome.drip_ends)} of {len(outcome.drip_ends)}",
            within == len(outcome.drip_ends),
        )
    for note in outcome.notes:
        report.note(f"{name}: {note}")


@dataclass
class RestartTally:
    rounds: int = 0
    sigterm: int = 0
    sigkill: int = 0
    made: int = 0  # item changes made while the server was down
    lost: int = 0  # of those, not in the local-changes report the lab received
    pending_after_restart: int = 0  # the daemon's own count after each restart, summed
    notes: list[str] = field(default_factory=list)


def round_values(rnd: int, token: str) -> dict[str, str]:
    """Three distinct local changes for round `rnd` (host, indexed host, string items)."""
    return {
        "sntp-addr": f"r{rnd}-{token}.example.com",
        f"ldap-server-address[{rnd % 9 + 1}]": f"ldap-r{rnd}-{token}.example.com",
        "ldap-user": f"user-r{rnd}-{token}",
    }


def run_restarts(suite: Suite, rounds: int, tally: RestartTally) -> None:
    """With the server down: set, stop or kill, start, lift, check the lab's report."""
    suite.phones += 1
    proxy = suite.proxy()
    proxy.down()
    workdir = suite.workdir / f"phone{suite.phones}"
    try:
        with phone(workdir, proxy.url(suite.lab.path), settings=SETTINGS) as made:
            made.start()
            made.wait_interaction(Reason.START_UP, timeout=WAIT)
            for rnd in range(rounds):
                values = round_values(rnd, secrets.token_hex(3))
                mark = made.mark()
                answer = made.ctl("set", items=values)
                if not answer.get("ok") or answer.get("changed") != len(values):
                    tally.notes.append(f"round {rnd}: set answered {answer}")
                tally.made += len(values)
                if suite.rng.random() < 0.5:
                    made.wait_interaction(Reason.LOCAL_CHANGES, after=mark, timeout=WAIT)
                else:
                    time.sleep(suite.rng.uniform(0.0, 0.15))  # within the debounce, or not
                if rnd % 2 == 0:
                    code = made.stop()
                    tally.sigterm += 1
                    if code != 0:
                        suite.crashes += 1
                        tally.notes.append(f"round {rnd}: exit status {code} after SIGTERM")
                else:
                    made.kill()
                    tally.sigkill += 1
                made.start()
                tally.pending_after_restart += int(made.status()["local_changes_pending"])
                before = set(opened(suite.lab, Reason.LOCAL_CHANGES))
                mark = made.mark()
                proxy.up()
                made.wait_log(r"local-changes interaction completed", after=mark, timeout=WAIT)
                proxy.down()
                new = [n for n in opened(suite.lab, Reason.LOCAL_CHANGES) if n not in before]
                received: dict[str, str] = {}
                for number in new:
                    received.update(item_values(first_message(suite.lab, number).items))
                lost = [k for k, v in values.items() if received.get(k) != v]
                tally.lost += len(lost)
                if lost:
                    tally.notes.append(f"round {rnd}: lost {lost}")
                if not suite.checked_alive(made, f"after restart round {rnd}"):
                    break
                tally.rounds += 1
            suite.after_phone(made, "netfaults: restarts with pending changes")
    except AssertionError as exc:
        tally.notes.append(f"gave up waiting: {str(exc).splitlines()[0]}")
    finally:
        proxy.stop()


def run(report: Report) -> None:
    faulted = 3 if report.short else 8
    drips = 2 if report.short else 3
    rounds = 4 if report.short else 24
    report.note(
        f"seed {SEED}; retry m={RETRY_M} s, k={RETRY_K:.0f}, cap={RETRY_CAP} s (bands"
        f" {', '.join(f'{lo:.1f}-{hi:.1f}' for lo, hi in (band(1), band(2), band(3)))} s);"
        f" timeouts.response {RESPONSE_TIMEOUT:.0f} s; each fault on the first {faulted}"
        f" start-up attempts of a fresh phone ({drips} for the drip), then lifted"
    )
    report.note(
        "proxy: bench/proof/faultproxy.py terminates TLS with the lab's own server key (the"
        " phone's pin holds), forwards each request to the lab over TLS, and cuts the answer"
        " at the HTTP byte it chooses; 'down' closes its listening socket (kernel refuses)"
    )
    report.note(
        f"back-off: the wait from the end of a faulted connection to the next accept, at the"
        f" proxy (refused attempts: the daemon's log time stamps), must lie in"
        f" [low - {EARLY} s, high + {LATE} s] of the band computed from the settings"
    )
    with tempfile.TemporaryDirectory(prefix="provd-netfaults-") as tmp:
        suite = Suite(report, Path(tmp))
        try:
            outcomes = []
            for fault in (
                None,
                Fault.RESET,
                Fault.TRUNCATE,
                Fault.DRIP,
                Fault.HTTP_500,
                Fault.EMPTY_200,
            ):
                started = time.monotonic()
                count = drips if fault is Fault.DRIP else faulted
                outcome = run_fault(suite, fault, count)
                report_fault(report, outcome)
                outcomes.append(outcome)
                print(f"  ({outcome.name}: {time.monotonic() - started:.1f} s)", flush=True)
            kinds = [Fault.RESET, Fault.TRUNCATE, Fault.HTTP_500]
            mixed = [suite.rng.choice(kinds) for _ in range(faulted + 1)]
            started = time.monotonic()
            outcome = run_fault(suite, Fault.PASS, 0, mixed=mixed)
            report_fault(report, outcome)
            outcomes.append(outcome)
            print(f"  (mixed: {time.monotonic() - started:.1f} s)", flush=True)
            tally = RestartTally()
            run_restarts(suite, rounds, tally)
        finally:
            suite.close()
    exercised = sum(o.faulted for o in outcomes)
    want = 4 * faulted + drips + 1 + faulted + 1
    report.figure("faulted attempts exercised", exercised, f"≥ {want}", exercised >= want)
    report.figure(
        "daemon crashes (unasked exits, unclean stops, tracebacks)",
        suite.crashes,
        "0",
        suite.crashes == 0,
    )
    report.figure(
        "restart rounds with the server down (SIGTERM + SIGKILL)",
        f"{tally.rounds} ({tally.sigterm} + {tally.sigkill})",
        f"≥ {rounds}",
        tally.rounds >= rounds,
    )
    report.figure(
        f"pending changes lost across daemon restarts (of {tally.made} made)",
        tally.lost,
        "0",
        tally.lost == 0 and tally.made > 0,
    )
    report.figure(
        "pending changes the restarted daemon still counted (`local_changes_pending`)",
        f"{tally.pending_after_restart} of {tally.made}",
        f"{tally.made} of {tally.made}",
        tally.pending_after_restart == tally.made and tally.made > 0,
    )
    report.note(
        f"restarts: {rounds} rounds of 3 local changes (`ctl set`) with the server refused;"
        " SIGTERM and SIGKILL alternate; half the rounds stop right after the set (within the"
        f" {SETTINGS['changes.debounce']} s debounce or just past it), half after the"
        " local-changes attempt failed; the lab's local-changes report must carry each value"
    )
    if any(o.drip_ends for o in outcomes):
        report.note(
            "drip: the proxy sends the answer a byte per TLS record, each well within the"
            " per-read timeout; the phone bounds a POST's whole answer by"
            " `timeouts.response` (provd/transport/https.py, `TlsSocket.set_deadline`), so"
            " it gives up at that time however steadily bytes arrive (spec §3.1). This suite"
            " found the phone waiting for as many seconds as the answer had bytes before"
            " that bound existed"
        )
    for note in tally.notes:
        report.note(f"restarts: {note}")


if __name__ == "__main__":
    main(run, __doc__, "netfaults")
