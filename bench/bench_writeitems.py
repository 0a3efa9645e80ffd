"""WriteItems cost against its floor (issue 3, "Done when", figure a).

Ours: parse a 1,000-item WriteItems (provd.wpi.codec.parse_dls), validate every item
against the shipped catalog, commit the valid ones in one durable transaction
(CatalogBook over the real ItemStore: WAL, synchronous=FULL) and emit the reply
(provd.wpi.codec.emit_workpoint).

Floor: what no implementation can avoid: lxml parsing the same document, plus one
sqlite3 transaction inserting the same rows into a table of the same shape, WAL with
synchronous=FULL, in a temporary directory on the same filesystem.

Every repetition writes new values, so each one really commits 1,000 changes. Prints
the median of each and their ratio (target: under 3).

Run: `make bench`, or `PYTHONPATH=. .venv/bin/python bench/bench_writeitems.py`.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from lxml import etree

from provd.store.book import CatalogBook
from provd.store.catalog import load_catalog
from provd.store.items import ItemStore
from provd.wpi.codec import emit_dls, emit_workpoint, parse_dls
from provd.wpi.model import (
    DLSMessage,
    Fragment,
    Item,
    Reason,
    ReplyStatus,
    WorkpointMessage,
)

ROOT = Path(__file__).resolve().parents[1]
NONCE = "9A6439F4E323CDB19283E40459828B56"


def build_items(count: int, rep: int) -> tuple[Item, ...]:
    """`count` valid items of three kinds (text, int, bounded int), all indexed keys,
    with values that differ from one repetition to the next."""
    items: list[Item] = [Item(name="sntp-addr", value=f"time{rep}.example.org")]
    key = 1
    while len(items) < count:
        items.append(Item(name="key-label-unicode", value=f"Key {key} r{rep}", index=key))
        if len(items) < count:
            items.append(Item(name="function-key-def", value=str((key + rep) % 100), index=key))
        if len(items) < count:
            items.append(Item(name="forwarding-type", value=str(1 + (key + rep) % 8), index=key))
        key += 1
    return tuple(items)


def ours(book: CatalogBook, body: bytes) -> float:
    start = time.perf_counter()
    message = parse_dls(body)
    outcome = book.write(message.items)
    reply = emit_workpoint(
        WorkpointMessage(
            nonce=message.nonce,
            reason=Reason.REPLY_TO,
            items=outcome.rejected,
            action=message.action,
            status=ReplyStatus.FAILED if outcome.failed else ReplyStatus.ACCEPTED,
            fragment=Fragment.FINAL,
        )
    )
    elapsed = time.perf_counter() - start
    # Every value differs from the stored one and from the default: all are changes.
    assert not outcome.rejected, "items rejected"
    assert len(outcome.changed) == len(message.items), "not every item changed"
    assert b"<ItemList/>" in reply
    return elapsed


def floor_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS items (name TEXT NOT NULL, idx INTEGER NOT NULL,"
        " value TEXT NOT NULL, PRIMARY KEY (name, idx)) WITHOUT ROWID"
    )
    return conn


def floor(conn: sqlite3.Connection, body: bytes, items: tuple[Item, ...]) -> float:
    start = time.perf_counter()
    root = etree.fromstring(body)
    rows = [(i.name, -1 if i.index is None else i.index, i.value) for i in items]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO items (name, idx, value) VALUES (?, ?, ?)"
        " ON CONFLICT (name, idx) DO UPDATE SET value = excluded.value",
        rows,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    assert root is not None
    return elapsed


def run(tmp: Path, items: int, reps: int) -> tuple[list[float], list[float]]:
    """Interleaved repetitions of ours and the floor; the first one warms up, uncounted."""
    catalog = load_catalog(ROOT / "config" / "items.toml")
    ours_times: list[float] = []
    floor_times: list[float] = []
    conn = floor_connection(tmp / "floor.db")
    try:
        with ItemStore.open(tmp / "state") as store:
            book = CatalogBook(catalog, store)
            for rep in range(reps + 1):
                batch = build_items(items, rep)
                body = emit_dls(DLSMessage(nonce=NONCE, action="WriteItems", items=batch))
                ours_time = ours(book, body)
                floor_time = floor(conn, body, batch)
                if rep:
                    ours_times.append(ours_time)
                    floor_times.append(floor_time)
    finally:
        conn.close()
    return ours_times, floor_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=41)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="provd-bench-") as tmp:
        ours_times, floor_times = run(Path(tmp), args.items, args.reps)

    ours_median = statistics.median(ours_times)
    floor_median = statistics.median(floor_times)
    # Both sides fsync the same filesystem: pairing each repetition's two figures cancels
    # what other load on the machine adds to both.
    paired = statistics.median(o / f for o, f in zip(ours_times, floor_times, strict=True))
    print(f"WriteItems of {args.items} items, {args.reps} repetitions, medians:")
    print(f"  provd (parse + validate + commit + reply): {ours_median * 1000:8.2f} ms")
    print(f"  floor (lxml parse + one sqlite3 txn):     {floor_median * 1000:8.2f} ms")
    print(f"  ratio of medians: {ours_median / floor_median:.2f} (target < 3)")
    print(f"  median of paired ratios: {paired:.2f}")


if __name__ == "__main__":
    main()
