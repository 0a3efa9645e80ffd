"""Power cut, the real daemon: SIGKILL `provd run` in the middle of a WriteItems.

Part of proof suite 1 (bench/proof/powercut.py). In each round the lab server writes a
round's values in one WriteItems and the daemon is killed within a few milliseconds after
the document left the server; it must come back (READY=1) with every item from one side.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.proof.common import Report
from bench.proof.daemons import phone, phone_texts
from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from provd.lab.transcript import Record

#: The WriteItems of round n: strings and host names up to their catalog limits, and
#: one write-only password (a test secret: the scan looks for every round's).
DAEMON_STRINGS = ("realm", "sip-user-id", "ldap-user", "cfu-ext-address", "voice-mail-e164")
DAEMON_HOSTS = ("sntp-addr", "reg-addr", "default-domain")
DAEMON_SECRET_ITEM = "sip-pwd"


def daemon_values(generation: int, token: str) -> dict[str, str]:
    """Every item the lab writes in round `generation`."""
    values = {name: f"{name}-round-{generation}-" + "v" * 180 for name in DAEMON_STRINGS}
    values |= {name: f"round-{generation}.{name}.example.com" for name in DAEMON_HOSTS}
    values[DAEMON_SECRET_ITEM] = f"Pw{token}r{generation}"
    return values


def daemon_round(values: dict[str, str]) -> int | None:
    """The one round every value belongs to, or None for a mix or a missing item."""
    rounds = set()
    for name, value in values.items():
        if name == DAEMON_SECRET_ITEM:
            rounds.add(value.rsplit("r", 1)[-1])
        elif name in DAEMON_STRINGS:
            rounds.add(value.split("-round-")[-1].split("-")[0])
        else:
            rounds.add(value.split(".")[0].removeprefix("round-"))
    (found,) = rounds if len(rounds) == 1 else ("",)
    return int(found) if found.isdigit() else None


def stored_daemon_items(state_dir: Path) -> dict[str, str]:
    """The lab's items as the daemon's store holds them, read from the file (daemon dead)."""
    names = (*DAEMON_STRINGS, *DAEMON_HOSTS, DAEMON_SECRET_ITEM)
    conn = sqlite3.connect(f"file:{quote(str(state_dir / 'items.db'))}?mode=ro", uri=True)
    try:
        if conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
            return {}
        marks = ",".join("?" * len(names))
        rows = conn.execute(f"SELECT name, value FROM items WHERE name IN ({marks})", names)
        return {str(n): str(v) for n, v in rows.fetchall()}
    finally:
        conn.close()


@dataclass
class Lab:
    """One round's lab server: writes round n's items in every interaction."""

    server: LabServer
    sent: threading.Event  # the WriteItems left the server
    replied: threading.Event  # the phone's answer to it arrived

    @classmethod
    def start(cls, values: dict[str, str], port: int, pki: LabPKI) -> Lab:
        sent, replied = threading.Event(), threading.Event()

        def seen(record: Record) -> None:
            if record.action == "WriteItems":
                (replied if record.from_phone else sent).set()

        steps: list[dict[str, Any]] = [
            {"action": "WriteItems", "items": values},
            {"action": "CleanUp"},
        ]
        scenario = Scenario.from_dict({"name": "powercut", "interaction": [{"step": steps}]})
        server = LabServer(scenario, port=port, pki=pki, secure_port=None, on_record=seen)
        return cls(server.start(), sent, replied)


def daemon_kills(report: Report, rounds: int, rng: random.Random, workdir: Path) -> None:
    """Kill the real daemon mid-WriteItems `rounds` times; restart it and look."""
    token = f"{rng.getrandbits(40):010x}"
    pki = LabPKI.create()
    lab = Lab.start(daemon_values(0, token), 0, pki)
    port, documents = lab.server.port, []
    consistent = inside = delivered = 0
    sides = {"old": 0, "new": 0}
    previous = 0  # the round the store holds (round 0 completed)
    trouble: list[str] = []
    settings = {"retry.m": 0.3, "retry.k": 2000.0, "retry.cap": 1.2}
    with phone(workdir / "daemon", lab.server, settings=settings) as made:
        made.start()
        made.wait_interaction("start-up")  # round 0 completes: its time sets the window
        if not lab.replied.is_set():
            raise RuntimeError(f"round 0 wrote nothing; daemon log:\n{made.logtext()}")
        times = [r.time for r in lab.server.transcript if r.action == "WriteItems"]
        window = max(0.005, 1.5 * (times[-1] - times[0]))
        for n in range(1, rounds + 1):
            documents += [r.body for r in lab.server.transcript if r.from_phone]
            lab.server.stop()
            lab = Lab.start(daemon_values(n, token), port, pki)
            made.ctl("contact")
            if not lab.sent.wait(30):
                trouble.append(f"round {n}: no WriteItems was sent")
                continue
            time.sleep(rng.uniform(0.0, window))
            reply_arrived = lab.replied.is_set()
            made.kill()
            delivered += 1
            inside += not reply_arrived
            lab.server.stop()  # down while the daemon restarts: nothing writes meanwhile
            allowed = {n} if reply_arrived else {previous, n}
            stored = stored_daemon_items(made.state_dir)
            on_disk = daemon_round(stored) if len(stored) == 9 else None
            try:
                made.start()
                shown = made.get(*DAEMON_STRINGS, *DAEMON_HOSTS)
            except (AssertionError, OSError, RuntimeError) as exc:
                trouble.append(f"round {n}: the daemon did not come back: {exc}")
                continue
            seen = daemon_round({**shown, DAEMON_SECRET_ITEM: stored.get(DAEMON_SECRET_ITEM, "")})
            if on_disk in allowed and seen == on_disk:
                consistent += 1
                sides["new" if on_disk == n else "old"] += 1
            else:
                trouble.append(
                    f"round {n}: store holds round {on_disk}, daemon {seen}, not {allowed}"
                )
            previous = on_disk if on_disk is not None else previous
        documents += [r.body for r in lab.server.transcript if r.from_phone]
        texts = phone_texts(made, lab.server)
        texts["the phone's documents, every round"] = b"\n".join(documents)
        secrets = {
            f"{DAEMON_SECRET_ITEM} of round {n}": daemon_values(n, token)[DAEMON_SECRET_ITEM]
            for n in range(rounds + 1)
        }
        report.scan("daemon killed mid-WriteItems", secrets, texts)
    lab.server.stop()
    for line in trouble:
        print(f"  {line}", flush=True)
    report.figure(
        "daemon SIGKILLs mid-WriteItems interaction", delivered, f"≥ {rounds}", delivered >= rounds
    )
    report.figure(
        "daemon restarts after a kill that came up (READY=1) with every item of one side",
        f"{consistent} of {delivered}",
        f"{rounds} of {rounds}",
        consistent == rounds == delivered,
    )
    report.figure(
        "of those kills, before the phone's WriteItems reply reached the server",
        inside,
        "≥ 1",
        inside >= 1,
    )
    report.note(
        f"Real daemon: {rounds} rounds; in each the lab server writes {len(DAEMON_STRINGS)}"
        f" strings, {len(DAEMON_HOSTS)} host names and a write-only password of that round"
        f" in one WriteItems, and the daemon is SIGKILLed uniformly within {window * 1000:.0f}"
        " ms (1.5 times round 0's WriteItems-to-reply time, at least 5 ms) after the"
        " WriteItems left the server. The item store is read from the file, then the daemon"
        " restarts with the server down (nothing writes meanwhile), must notify READY=1, and"
        " `provctl get` must show the round the file holds: the previous one or this one (only"
        f" this one once the reply had reached the server). Found after the kills: the new"
        f" round {sides['new']} times, the previous one {sides['old']} times."
    )
