"""Storage cost of one committed 10-item WriteItems: bytes written and fsync calls.

issue 3 "Done when" (b): aim for at most 2 fsyncs per commit. SQLite's fsyncs
happen in C, so they are counted honestly from outside with strace (Debian
package `strace`): a child process commits N transactions under
`strace -f -e trace=fsync,fdatasync,sync_file_range,msync,getppid`, calling
getppid() between transactions as a marker, so every commit's sync calls are
counted separately (a commit that runs a WAL checkpoint shows up as such).
Bytes are the child's `/proc/self/io` `write_bytes` (sent to the storage
layer, counted when pages are dirtied) and `wchar` (passed to write calls).

Besides provd's `ItemStore` (WAL, synchronous=FULL) it measures raw SQLite
with the other journal modes on the same table, for comparison.

Usage: bench_store_io.py [--dir DIR] [--commits N]   (DIR: on the flash to measure)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provd.store.items import Change, ItemStore

ITEMS_PER_COMMIT = 10
SYNCS = ("fsync", "fdatasync", "sync_file_range", "msync")
CONFIGS = {
    "ItemStore WAL+FULL (provd)": ("store", False),
    "ItemStore WAL+FULL, local change (+queue, flag)": ("store", True),
    "raw SQLite WAL+NORMAL (not durable per commit)": ("raw:WAL:NORMAL", False),
    "raw SQLite DELETE+FULL": ("raw:DELETE:FULL", False),
    "raw SQLite TRUNCATE+FULL": ("raw:TRUNCATE:FULL", False),
}


def io_counters() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def changes(generation: int) -> list[Change]:
    names = ["sntp-addr", "sntp-tz-offset", "e164", "display-id", "reg-addr", "reg-port"]
    names += ["registrar-addr", "registrar-port", "ldap-server-address", "ldap-port"]
    return [Change(n, None, f"{n}-value-{generation}") for n in names[:ITEMS_PER_COMMIT]]


def child(kind: str, directory: Path, commits: int, local: bool) -> None:
    """Commit `commits` transactions, a getppid() marker before each and after the last."""
    if kind == "store":
        store = ItemStore.open(directory)

        def commit(g: int) -> None:
            store.commit(changes(g), local=local)

        close = store.close
    else:
        _, journal, sync = kind.split(":")
        conn = sqlite3.connect(directory / "raw.db", isolation_level=None)
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute(
            "CREATE TABLE items (name TEXT NOT NULL, idx INTEGER NOT NULL,"
            " value TEXT NOT NULL, PRIMARY KEY (name, idx)) WITHOUT ROWID"
        )

        def commit(g: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO items VALUES (?, ?, ?) ON CONFLICT (name, idx)"
                " DO UPDATE SET value = excluded.value",
                [(c.name, -1, c.value) for c in changes(g)],
            )
            conn.execute("COMMIT")

        close = conn.close
    commit(0)  # first write: creates the WAL / journal; not counted
    before = io_counters()
    for g in range(1, commits + 1):
        os.getppid()
        commit(g)
    os.getppid()
    after = io_counters()
    close()
    print(json.dumps({k: after[k] - before[k] for k in ("write_bytes", "wchar")}))


def syncs_per_commit(trace: Path) -> list[int]:
    """Sync calls between consecutive markers: one count per commit."""
    counts: list[int] = []
    for line in trace.read_text().splitlines():
        call = line.split(None, 1)[1] if " " in line else line
        if call.startswith("getppid("):
            counts.append(0)
        elif counts and call.startswith(SYNCS):
            counts[-1] += 1
    return counts[:-1]  # after the last marker: close and checkpoint, not a commit


def measure_io(kind: str, local: bool, base: Path, commits: int) -> dict[str, object]:
    """Commit `commits` transactions of `kind` in a child process: its `write_bytes` and
    `wchar` (totals) and, under strace, the sync calls of each commit (`syncs`, else None)."""
    directory = Path(tempfile.mkdtemp(prefix="bench-store-", dir=base))
    trace = directory / "strace.log"
    cmd = [sys.executable, __file__, "--child", kind, str(directory), str(commits)]
    cmd += ["--local"] if local else []
    strace = shutil.which("strace")
    if strace:
        traced = [strace, "-f", "-qq", "-o", str(trace), "-e", f"trace={','.join(SYNCS)},getppid"]
        cmd = [*traced, *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    io: dict[str, object] = json.loads(out.splitlines()[-1])
    io["syncs"] = syncs_per_commit(trace) if strace else None
    shutil.rmtree(directory)
    return io


def measure(name: str, kind: str, local: bool, base: Path, commits: int) -> None:
    io: dict[str, Any] = measure_io(kind, local, base, commits)
    print(f"{name}:")
    print(
        f"  write_bytes {io['write_bytes'] / commits:8.0f} B/commit"
        f"   wchar {io['wchar'] / commits:8.0f} B/commit"
    )
    counts = io["syncs"]
    if counts is not None:
        histogram = ", ".join(
            f"{k} sync(s): {v} commits" for k, v in sorted(collections.Counter(counts).items())
        )
        print(f"  fsync+fdatasync {sum(counts) / len(counts):.3f}/commit   ({histogram})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to put the test stores")
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "DIR", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--local", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, directory, n = args.child
        child(kind, Path(directory), int(n), args.local)
        return
    base = args.dir or Path(tempfile.gettempdir())
    print(
        f"bench_store_io: {args.commits} committed WriteItems of {ITEMS_PER_COMMIT} items each,"
        f" SQLite {sqlite3.sqlite_version}, in {base}"
    )
    if not shutil.which("strace"):
        print("  (strace not installed: sync calls not counted; apt-get install strace)")
    for name, (kind, local) in CONFIGS.items():
        measure(name, kind, local, base, args.commits)


if __name__ == "__main__":
    main()
