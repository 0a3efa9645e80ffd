"""Power cut: SIGKILL a process committing WriteItems transactions at random moments.

spec §8.2 [B] and issue 3 "Done when": after each kill the store opens, passes its
integrity check and holds exactly the state before or after the interrupted
transaction. A SIGKILL stops the writer at any instruction, mid-write included;
what the page cache already holds survives it, so this proves atomicity and
crash recovery (the fsync half of durability is SQLite's synchronous=FULL,
counted by bench/bench_store_io.py).

Every other check reads the files through a plain read-only SQLite connection,
which leaves a hot WAL in place, so the next child recovers a store that was
itself killed (and possibly never checkpointed); the other checks go through
`ItemStore.open`, which also checkpoints on close.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from provd.store.items import Change, ItemStore

CHILD = Path(__file__).with_name("powercut_child.py")
KILLS = 220
SEED = 20261129
#: One WriteItems: 20 items, scalar and indexed, each value large enough that a
#: transaction spans several pages and WAL checkpoints come often.
KEYS: list[tuple[str, int | None]] = [
    ("line-name", i) if i % 2 else (f"setting-{i}", None) for i in range(20)
]
PAD = 700


def value_for(generation: int) -> str:
    return f"generation-{generation}-" + "x" * PAD  # as powercut_child.py writes it


def items_for(generation: int) -> list[Change]:
    return [Change(name, index, value_for(generation)) for name, index in KEYS]


def expected_keys() -> set[tuple[str, int | None]]:
    return set(KEYS)


def generation_of(rows: list[tuple[str, int | None, str]]) -> int:
    """The one generation every item holds; fails on a mix or a missing item."""
    assert {(name, index) for name, index, _ in rows} == expected_keys(), "items missing"
    values = {value for _, _, value in rows}
    assert len(values) == 1, f"a mix of generations: {sorted(v[:16] for v in values)}"
    (value,) = values
    generation = int(value.split("-")[1])
    assert value == value_for(generation)
    return generation


def check_raw(state: Path) -> int:
    """Integrity and content through a read-only connection (leaves the WAL hot)."""
    uri = f"file:{quote(str(state / 'items.db'))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute("SELECT name, idx, value FROM items").fetchall()
    finally:
        conn.close()
    return generation_of([(n, None if i == -1 else i, v) for n, i, v in rows])


def check_store(state: Path) -> int:
    """Through the store itself: no recovery needed, queue and flag intact."""
    with ItemStore.open(state) as store:
        assert store.recovered_from is None
        pending = store.pending_local_changes()
        assert {(p.name, p.index) for p in pending} == expected_keys()
        assert store.configuration_changed()
        return generation_of([(r.name, r.index, r.value) for r in store.rows()])


def run_child_and_kill(state: Path, first: int, rng: random.Random) -> list[str]:
    """Start a writer, SIGKILL it at a random moment; the lines it wrote."""
    proc = subprocess.Popen(
        [sys.executable, "-S", str(CHILD), str(state), str(first), json.dumps(KEYS), str(PAD)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: readline takes exactly one line, communicate gets the rest
    )
    assert proc.stdout is not None
    if rng.random() < 0.2:
        # Blind: anywhere from interpreter start through open (check, migration,
        # recovery of the previous child's WAL) into the first commits.
        time.sleep(rng.uniform(0.0, 0.12))
        lines = []
    else:
        ready = proc.stdout.readline().decode()
        lines = [ready.strip()] if ready else []
        time.sleep(rng.uniform(0.0, 0.03))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"writer died by itself: {err.decode()}"
    return lines + out.decode().splitlines()


@pytest.mark.slow
def test_store_holds_a_whole_transaction_after_each_of_220_kills(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    state = tmp_path / "state"
    with ItemStore.open(state) as store:
        store.commit(items_for(0), local=True)
    current = 0
    kills = checked = mid_commit = commits = 0
    for n in range(KILLS):
        lines = run_child_and_kill(state, current + 1, rng)
        kills += 1
        assert all(line == "R None" for line in lines if line.startswith("R")), lines
        begun = [int(line[2:]) for line in lines if line.startswith("B ")]
        after = [int(line[2:]) for line in lines if line.startswith("A ")]
        commits += len(after)
        if not begun:
            allowed = {current}  # killed before its first commit began
        elif after and after[-1] == begun[-1]:
            allowed = {begun[-1]}  # killed between transactions
        else:
            allowed = {begun[-1] - 1, begun[-1]}  # killed inside a transaction
            mid_commit += 1
        found = check_raw(state) if n % 2 == 0 else check_store(state)
        checked += 1
        assert found in allowed, f"kill {kills}: store holds generation {found}, not {allowed}"
        current = found
    summary = (
        f"power cut: {kills} kills, {checked} states checked, {mid_commit} kills inside a"
        f" transaction, {commits} transactions of {len(KEYS)} items committed"
    )
    print(summary)
    assert kills >= 200, summary
    assert checked == kills, summary
    assert mid_commit >= 20, summary  # the kills did land inside transactions
    assert check_store(state) == current, summary
