"""Abuse of contact-me: floods, redirects not allowed, malformed requests, the published attack.

Suite 5 of issue 8, against the real daemon (`provd run`, the integration tests' harness)
with a legitimate lab server configured. Contact-me is plain, unauthenticated HTTP
(spec §4.1, [G p.14-15]): anyone on the network can send one, so it must

1. survive floods — tens of thousands of contact-mes from several processes plus a few
   hundred slowloris connections — answering real ones, starting no more interactions
   than the contact gap allows, with bounded memory (VmRSS sampled from /proc);
2. never follow a redirect (`dls_ip_addr`/`dls_ip_port`) to an address
   `contact-me.allow-redirect` does not list, however it is spelled;
3. answer malformed requests with a 4xx or a close, never a crash, never an interaction;
4. refuse the published attack on real phones (Pentagrid 2023, Unify OBSO-2312-01):
   nothing changed, no factory reset — while the same attack from a server the phone is
   configured to trust does go through (the control that shows the figures can fail).

Run: python3 -m bench.proof.contactme [--scale short|full]
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bench_daemon import rss_kib
from bench.proof.common import Report, main
from bench.proof.contactme_corpus import corpus
from bench.proof.contactme_redirects import (
    alive,
    attack,
    handler_errors,
    redirects,
    solicited,
    started,
)
from bench.proof.contactme_traffic import (
    RssWatch,
    Slowloris,
    Trap,
    exchange,
    flood_worker,
)
from provd.lab.contactme import ContactMeError, send_contact_me
from provd.lab.server import LabServer
from provd.wpi.model import Reason

SEED = 5
MB = 1024  # KiB per MiB (VmRSS is in KiB)


@dataclass(frozen=True)
class Scale:
    requests: int  # flood contact-mes, spread over `processes` client processes
    processes: int
    slowloris: int  # connections held half-open during the flood
    hold: float  # seconds the slowloris sockets stay (past the daemon's 5 s timeout)


FULL = Scale(requests=20_000, processes=4, slowloris=300, hold=12.0)
SHORT = Scale(requests=3_000, processes=3, slowloris=150, hold=7.0)


@dataclass
class Prober:
    """A legitimate server's contact-me every `period` seconds, timed, until `stop()`.

    It runs in a process of its own, as a real server would: in this process its
    threads would wait for the GIL behind the slowloris and sampler threads between
    connecting and sending, and a connection that says nothing for that long is, to
    the daemon, one more slowloris."""

    url: str
    period: float = 0.25
    results: list[tuple[int | None, float]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    _process: multiprocessing.process.BaseProcess | None = None
    _stop: Any = None
    _out: Any = None

    def start(self) -> Prober:
        context = multiprocessing.get_context("fork")
        self._stop = context.Event()
        self._out, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_probe, args=(self.url, self.period, self._stop, child_end), daemon=True
        )
        self._process.start()
        child_end.close()
        return self

    def stop(self) -> None:
        assert self._process is not None
        self._stop.set()
        if self._out.poll(15):
            self.results, errors = self._out.recv()
            self.errors.update(errors)
        self._process.join(5)


def _probe(url: str, period: float, stop: Any, out: Any) -> None:
    results: list[tuple[int | None, float]] = []
    errors: Counter[str] = Counter()
    while True:
        began = time.monotonic()
        try:
            status: int | None = send_contact_me(url, timeout=10)
        except ContactMeError as exc:
            status = None
            errors[str(exc).rsplit(": ", 1)[-1]] += 1
        results.append((status, time.monotonic() - began))
        if stop.wait(period):
            break
    out.send((results, errors))


def _mb(kib: int) -> str:
    return f"{kib / MB:.1f} MB"


def flood(report: Report, workdir: Path, scale: Scale) -> None:
    """Contact-mes from several processes plus slowloris sockets, while a legitimate
    server keeps sending contact-mes; memory sampled all along."""
    with LabServer("basic") as lab:
        trap = Trap()
        try:
            with started(workdir, lab) as made:
                port, pid = made.contact_me_port, made.pid
                time.sleep(0.5)
                before = rss_kib(pid)
                watch = RssWatch(pid).start()
                slow = Slowloris(port, scale.slowloris).start()
                prober = Prober(made.contact_me_url).start()
                began = time.monotonic()
                share = scale.requests // scale.processes
                jobs = [(port, share, i * share, trap.port) for i in range(scale.processes)]
                with multiprocessing.get_context("spawn").Pool(scale.processes) as pool:
                    results = pool.starmap(flood_worker, jobs)
                while time.monotonic() - began < scale.hold:
                    time.sleep(0.1)
                slow.stop()
                prober.stop()
                peak = watch.stop()
                after_flood = send_contact_me(made.contact_me_url, timeout=10)
                made.wait_interaction(Reason.SOLICITED, timeout=30)
                time.sleep(2.0)
                after = rss_kib(pid)
                interactions = solicited(lab)
                logged = len(made.matching_log(r"contact-me from "))
                pending = made.status()["pending"].count("solicited")
                healthy, errors = alive(made), handler_errors(made)
        finally:
            trap.close()
    counts: Counter[str] = Counter()
    for result in results:
        counts.update({k: v for k, v in result.items() if not k.endswith("_ms")})
    worst = max(result["max_ms"] for result in results)
    span = (max(r["ended_ms"] for r in results) - min(r["began_ms"] for r in results)) / 1000
    sent = counts["sent"]
    answered = counts["status 204"]
    probes = len(prober.results)
    probes_ok = sum(status == 204 for status, _ in prober.results)
    slowest = max((s for status, s in prober.results if status == 204), default=0.0)
    target = "≥ 3,000" if report.short else "≥ 20,000"
    report.note(
        f"Flood: {scale.processes} client processes, one connection per request, a mix of"
        " POST, GET, a redirect to a trap and ContactMe=false (a quarter each);"
        f" {scale.slowloris} slowloris sockets (half silent, half sending a head one byte"
        f" per 0.2 s, reopened when the daemon drops them) for {scale.hold:.0f} s; a"
        " legitimate contact-me every 0.25 s meanwhile. VmRSS from /proc/<pid>/status every"
        f" 20 ms ({watch.samples} samples). Endings: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k.startswith("ending"))
    )
    report.figure(
        "contact-mes sent in the flood", sent, target, sent >= (3000 if report.short else 20000)
    )
    report.figure("flood contact-mes answered (204)", f"{answered:,} of {sent:,}", "(figure)", True)
    report.figure(
        "slowloris connections opened",
        slow.opened,
        f"≥ {scale.slowloris}",
        slow.opened >= scale.slowloris,
    )
    report.figure(
        "slowloris connections the daemon closed (timeout, eviction)",
        slow.closed_by_daemon,
        f"≥ {scale.slowloris}",
        slow.closed_by_daemon >= scale.slowloris,
    )
    report.figure(
        "legitimate contact-mes answered 204 during the flood",
        f"{probes_ok} of {probes}",
        "all (≥ 10)",
        probes_ok == probes and probes >= 10,
    )
    report.figure("legitimate contact-me after the flood", after_flood, "204", after_flood == 204)
    report.figure(
        "slowest legitimate answer during the flood", f"{slowest:.2f} s", "(figure)", True
    )
    report.figure("answers per second during the flood", f"{sent / span:,.0f}", "(figure)", True)
    report.figure("slowest flood answer", f"{worst / 1000:.2f} s", "(figure)", True)
    report.figure(
        "solicited interactions started by the flood",
        interactions,
        "≤ 1 (one per 300 s contact gap)",
        interactions <= 1,
    )
    report.figure("solicited interactions left pending", pending, "≤ 1", pending <= 1)
    report.figure(
        "flood redirects followed (connections to the trap)", trap.accepted, "0", trap.accepted == 0
    )
    report.figure(
        "RSS growth at the flood's peak", _mb(peak - before), "≤ 10 MB", peak - before <= 10 * MB
    )
    report.figure(
        "RSS growth 2 s after the flood", _mb(after - before), "≤ 3 MB", after - before <= 3 * MB
    )
    report.note(f"RSS before {_mb(before)}, peak {_mb(peak)}, after {_mb(after)}.")
    if prober.errors:
        report.note(
            "Legitimate contact-mes not answered: "
            + ", ".join(f"{e} × {n}" for e, n in prober.errors.most_common())
        )
    report.figure(
        "daemon log lines per contact-me received (flood and legitimate)",
        f"{logged / (sent + probes + 1):.2f}",
        "(figure)",
        True,
    )
    report.figure(
        "daemon crashes during the flood, handler errors logged",
        f"{0 if healthy else 1}, {errors}",
        "0, 0",
        healthy and errors == 0,
    )


def malformed(report: Report, workdir: Path) -> None:
    """The malformed corpus, 16 connections at a time, against a daemon that has had no
    contact-me yet: any interaction it then starts was started by garbage."""
    cases = corpus()
    with LabServer("basic") as lab, started(workdir, lab) as made:
        port = made.contact_me_port
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(
                pool.map(lambda c: exchange(port, c.data, half_close=c.half_close), cases)
            )
        time.sleep(1.0)
        by_garbage = solicited(lab)
        pending = made.status()["pending"]
        healthy_after, errors = alive(made), handler_errors(made)
        control = send_contact_me(made.contact_me_url, timeout=10)
        made.wait_interaction(Reason.SOLICITED, timeout=30)
        control_started = solicited(lab) - by_garbage
    statuses: Counter[str] = Counter()
    wrong: list[str] = []
    for case, result in zip(cases, results, strict=True):
        shown = str(result.status) if result.status is not None else result.ending
        statuses[shown] += 1
        ok_status = result.status is None or 400 <= result.status < 500
        if result.status == 501 and b"Transfer-Encoding: gzip" in case.data:
            ok_status = True  # RFC 9112 §6.1: an unknown transfer coding is answered 501
        if not case.refuse:
            ok_status = result.status is None or result.status < 500
        if not ok_status or result.ending in ("timeout", "refused"):
            wrong.append(f"{case.name}: {shown}")
    server_errors = sum(n for s, n in statuses.items() if s.startswith("5"))
    report.note(
        "Malformed: "
        + ", ".join(f"{k} × {v}" for k, v in sorted(statuses.items()))
        + " (closed/reset: no answer, the daemon closed the connection)."
        + (f" Unexpected: {'; '.join(wrong)}." if wrong else "")
    )
    report.figure("malformed requests sent", len(cases), "≥ 50", len(cases) >= 50)
    report.figure(
        "answered otherwise than 4xx or a close (inert ones: non-5xx)", len(wrong), "0", not wrong
    )
    report.figure(
        "5xx answers",
        server_errors,
        "only 501 to Transfer-Encoding gzip",
        server_errors == statuses["501"] and statuses["501"] <= 1,
    )
    report.figure(
        "interactions started by malformed requests",
        by_garbage + len(pending),
        "0",
        by_garbage == 0 and not pending,
    )
    report.figure(
        "daemon crashes, handler errors logged",
        f"{0 if healthy_after else 1}, {errors}",
        "0, 0",
        healthy_after and errors == 0,
    )
    report.figure(
        "control: a well-formed contact-me afterwards",
        f"{control}, {control_started} interaction",
        "204, 1 interaction",
        control == 204 and control_started == 1,
    )


def run(report: Report) -> None:
    scale = SHORT if report.short else FULL
    report.note(f"Seed {SEED} (malformed junk bytes, attack passwords).")
    with tempfile.TemporaryDirectory(prefix="provd-proof-contactme-") as tmp:
        root = Path(tmp)
        flood(report, root / "flood", scale)
        redirects(report, root / "redirects")
        malformed(report, root / "malformed")
        attack(report, root / "attack", SEED)


if __name__ == "__main__":
    main(run, __doc__, "contactme")
