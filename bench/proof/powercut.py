"""Power cut: SIGKILLs during WriteItems commits, secure-store updates and file deployments.

Each kill stops a writer process (`bench/proof/powercut_child.py`) at a random moment
of its loop of durable updates; the suite then reopens the store as the next daemon
would and checks, from the files themselves, that every record holds exactly the
state before or after the update the kill interrupted (spec §8.2 [B], issue 3). A
SIGKILL stops the writer at any instruction; what the page cache already holds
survives it, so the kills prove atomicity and crash recovery. The fsync half of a
power cut (the disk's cache) is the fsyncs' job: SQLite `synchronous=FULL` for the
item store, `provd.store.fsutil` (fsync of the file, rename, fsync of the directory)
for the secure store and the deployed files.

Last, the real daemon (`provd run`) is killed in the middle of WriteItems
interactions with the lab server, restarted, and must come up (READY=1) holding
every item of that WriteItems from one side of the kill.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bench.proof import powercut_child as child
from bench.proof.common import Report, main
from bench.proof.powercut_daemon import daemon_kills
from provd.store.errors import StoreError
from provd.store.fsutil import is_temporary
from provd.store.items import ItemStore
from provd.store.secure import (
    CLIENT_CREDENTIALS,
    PENDING_BOOTSTRAP,
    PIN_ATTEMPTS,
    SERVER_CAS,
    TRUST_PIN,
    SecureStore,
)

SEED = 20261130
CHILD = Path(child.__file__).resolve()
#: Kills per kind: 1,000 in all at full scale, 150 at short scale.
KILLS = {
    "full": {"items": 400, "secure": 300, "files": 300},
    "short": {"items": 60, "secure": 45, "files": 45},
}
DAEMON_KILLS = {"full": 30, "short": 10}
KINDS = {
    "items": "WriteItems commits (ItemStore)",
    "secure": "secure-store updates (SecureStore)",
    "files": "file deployments (FileStore, Staging)",
}
#: How long after the child says "open" the kill may come (uniformly): many updates
#: of each kind fit in it (~0.25 ms per item commit, ~0.5 ms per secure-store write,
#: ~2 ms per file deployment on this machine's disk).
WINDOW = {"items": 0.03, "secure": 0.03, "files": 0.06}
#: A fifth of the kills are blind: anywhere from interpreter start through the
#: store's open (its checks, recovery from the previous child's kill) on.
BLIND_SHARE, BLIND_WINDOW = 0.2, 0.12
SECURE_FILES = {CLIENT_CREDENTIALS, SERVER_CAS, TRUST_PIN, PENDING_BOOTSTRAP, PIN_ATTEMPTS}
CHAIN = ("client-leaf", "client-issuer")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----\n.*?-----END \1-----\n", re.DOTALL)

State = dict[int, int]  # record (item set, secure record, file target) -> generation
Flight = tuple[int, int, int]  # the update a kill interrupted: record, old, new generation


@dataclass
class Tally:
    """What the kills of one kind showed."""

    kind: str
    kills: int = 0
    inside: int = 0  # kills inside an update (begun, not finished)
    updates: int = 0  # updates the children finished
    bad: int = 0  # kills after which the state was corrupt or mixed
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    index_temps: set[str] = field(default_factory=set)  # files: kept in the root

    seen: set[str] = field(default_factory=set)  # what the previous check found wrong
    found: set[str] = field(default_factory=set)  # what this check found wrong

    def problem(self, kill: int, what: str) -> None:
        """One thing wrong after `kill`; a state that stays wrong is reported once."""
        self.found.add(what)
        if what not in self.seen:
            self.problems.append(f"{self.kind} kill {kill}: {what}")

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


# --------------------------------------------------------------------------- one kill


def kill_child(kind: str, directory: Path, first: int, rng: random.Random) -> tuple[list[str], str]:
    """Start a writer of `kind`, SIGKILL it at a random moment; its lines, and a failure."""
    proc = subprocess.Popen(
        [sys.executable, "-S", str(CHILD), kind, str(directory), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: readline takes exactly one line, communicate the rest
    )
    assert proc.stdout is not None
    lines: list[str] = []
    if rng.random() < BLIND_SHARE:
        time.sleep(rng.uniform(0.0, BLIND_WINDOW))
    else:
        ready = proc.stdout.readline().decode().strip()
        lines = [ready] if ready else []
        time.sleep(rng.uniform(0.0, WINDOW[kind]))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    failure = ""
    if proc.returncode != -signal.SIGKILL:
        tail = err.decode(errors="replace").strip().splitlines()[-1:]
        failure = f"the writer died by itself ({proc.returncode}): {' '.join(tail)}"
    return lines + out.decode().splitlines(), failure


def replay(kind: str, lines: list[str], state: State) -> tuple[State, Flight | None, int]:
    """The state after every update the lines say finished, the one in flight when the
    kill came (None between updates), and how many finished."""
    after = dict(state)
    flight: Flight | None = None
    done = 0
    for line in lines:
        word, *args = line.split()
        if word == "B":
            generation = int(args[0])
            record = {"items": 0, "secure": int(args[-1]), "files": generation % 3}[kind]
            flight = (record, after[record], generation)
        elif word == "A" and flight is not None:
            after[flight[0]] = flight[2]
            flight, done = None, done + 1
    if kind == "files" and flight is not None and lines[-1].startswith("B"):
        flight = (flight[0], flight[1], flight[1])  # still staging: nothing renamed yet
    return after, flight, done


# --------------------------------------------------------------------------- the checks

Want = dict[int, set[int]]


def fallback(want: Want) -> State:
    """Where a check cannot tell: assume the newest allowed, and let the next check see."""
    return {record: max(generations) for record, generations in want.items()}


def check_items(state_dir: Path, want: Want, tally: Tally, kill: int) -> State:
    """Every other kill through a plain read-only SQLite connection (which leaves the
    WAL hot for the next child to recover), the others through `ItemStore.open`."""
    try:
        if kill % 2 == 0:
            conn = sqlite3.connect(f"file:{quote(str(state_dir / 'items.db'))}?mode=ro", uri=True)
            try:
                if conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                    tally.problem(kill, "integrity_check failed")
                rows = conn.execute("SELECT name, idx, value FROM items").fetchall()
            finally:
                conn.close()
            found = [(n, None if i == -1 else i, v) for n, i, v in rows]
        else:
            with ItemStore.open(state_dir) as store:
                if store.recovered_from is not None:
                    tally.problem(kill, "the store was unusable and moved aside")
                pending = {(p.name, p.index) for p in store.pending_local_changes()}
                if pending != set(child.ITEM_KEYS):
                    tally.problem(kill, f"local-changes queue holds {len(pending)} keys")
                if not store.configuration_changed():
                    tally.problem(kill, "configuration-changed flag lost")
                found = [(r.name, r.index, r.value) for r in store.rows()]
    except (sqlite3.Error, StoreError, OSError) as exc:
        tally.problem(kill, f"store unreadable: {exc}")
        return fallback(want)
    if sorted((n, i or 0) for n, i, _ in found) != sorted((n, i or 0) for n, i in child.ITEM_KEYS):
        tally.problem(kill, f"{len(found)} items stored, not the {len(child.ITEM_KEYS)} written")
    generations = {child.item_generation(v) for _, _, v in found}
    (generation,) = generations if len(generations) == 1 else (None,)
    if generation is None or generation not in want[0]:
        tally.problem(kill, f"items hold generations {generations}, allowed {want[0]}")
        return fallback(want)
    return {0: generation}


def check_secure(directory: Path, want: Want, tally: Tally, kill: int) -> State:
    """Reopen the store as the daemon does; every record whole and of an allowed
    generation, the key and its chain of the same one, no temporary file left."""
    if any(is_temporary(name) for name in os.listdir(directory)):
        tally.add("kills that left a temporary file")
    try:
        store = SecureStore(directory)
        left = sorted(set(os.listdir(directory)) - SECURE_FILES)
        if left:
            tally.problem(kill, f"files the next open left in place: {left}")
        creds = store.read_client_credentials()
        blocks = [m.group(0) for m in _PEM.finditer(creds.chain_pem)] if creds else []
        key_and_chain: set[int | None] = {
            child.pem_generation(creds.key_pem, "client-key") if creds else None,
            *(child.pem_generation(b, k) for b, k in zip(blocks, CHAIN, strict=False)),
        }
        if len(blocks) != len(CHAIN):
            key_and_chain.add(None)
        cas_found = store.read_server_cas()
        cas: set[int | None] = {
            child.pem_generation(ca, f"server-ca{i}") for i, ca in enumerate(cas_found)
        }
        if len(cas_found) != 3:
            cas.add(None)
        pin = store.read_trust_pin()
        pins: set[int | None] = {g for g in want[2] if child.trust_pin(g) == pin} or {None}
        raw = store.read_pending_bootstrap() or b""
        tag = raw.partition(b"\0")[0].decode("ascii", "replace").rsplit(" ", 1)[-1]
        whole = tag.isdigit() and raw == child.pending_bootstrap(int(tag))
        pending: set[int | None] = {int(tag) if whole else None}
        attempts: set[int | None] = {store.pin_attempts()}
    except (StoreError, OSError, ValueError) as exc:
        tally.problem(kill, f"store unreadable after the kill: {type(exc).__name__} {exc}")
        return fallback(want)
    found = fallback(want)
    records: tuple[set[int | None], ...] = (key_and_chain, cas, pins, pending, attempts)
    for record, generations in enumerate(records):
        name = child.SECURE_RECORDS[record]
        generation = next(iter(generations)) if len(generations) == 1 else None
        if generation is None or generation not in want[record]:
            tally.problem(kill, f"{name}: generations {generations}, allowed {want[record]}")
        else:
            found[record] = generation
    return found


def _staged(root: Path) -> list[Path]:
    return [p for t, _, _ in child.FILE_TARGETS for p in (root / t).glob(".deploy-*.tmp")]


def check_files(root: Path, want: Want, tally: Tally, kill: int) -> State:
    """Reopen the file store; each file wholly one deployment's content, of an allowed
    one, its index entry naming that same deployment; a killed staging cleaned up."""
    staged = _staged(root)
    index_temps = {n for n in os.listdir(root) if is_temporary(n)}
    tally.add("kills that left a staged temporary", bool(staged))
    try:
        store = child.file_store(root, lambda: child.EPOCH)
        listed = {(e.type, e.name): e for e in store.list()}
    except (StoreError, OSError) as exc:
        tally.problem(kill, f"store unusable after the kill: {exc}")
        return fallback(want)
    if _staged(root):
        tally.add("staged temporaries the next open left", len(_staged(root)))
        tally.problem(kill, f"staged temporaries the next open left: {_staged(root)}")
    elif staged:
        tally.add("staged temporaries removed at the next open", len(staged))
    kept = {n for n in os.listdir(root) if is_temporary(n)}
    tally.add("kills that left an index temporary", bool(index_temps - tally.index_temps))
    tally.index_temps = kept  # the next open does not remove them: see the figure
    found = fallback(want)
    for record, (type_, name, _) in enumerate(child.FILE_TARGETS):
        generation = child.file_generation((root / type_ / name).read_bytes())
        if generation is None or generation not in want[record]:
            tally.problem(kill, f"{type_}/{name}: deployment {generation}, allowed {want[record]}")
            continue
        found[record] = generation
        entry = listed.pop((type_, name), None)
        stamp = child.stamped_deployment(entry.date, entry.time) if entry else None
        if entry is None or (entry.status, entry.present, stamp) != ("ok", True, generation):
            shown = f"{entry.status} deployment {stamp}" if entry else "nothing"
            what = f"{type_}/{name} is deployment {generation}, the index says {shown}"
            if what not in tally.seen:
                tally.add("index entries that disagree with the file")
            tally.problem(kill, what)
    if listed:
        tally.problem(kill, f"the index lists files that are not there: {sorted(listed)}")
    return found


def initial(kind: str, directory: Path) -> State:
    """Generation 0 of every record, written in process before the first kill."""
    if kind == "items":
        with ItemStore.open(directory) as items:
            child.items_commit(items, 0)
        return {0: 0}
    if kind == "secure":
        store = SecureStore(directory)
        for record in child.SECURE_RECORDS:
            child.secure_update(store, record, 0)
        return dict.fromkeys(range(len(child.SECURE_RECORDS)), 0)
    now = [0]
    files = child.file_store(directory, lambda: child.deployment_time(now[0]))
    for deployment in range(3):
        now[0] = deployment
        type_, name = child.file_target(deployment)
        with files.begin(type_, name) as staging:
            staging.file.write(child.file_content(deployment))
            staging.commit()
    return {0: 0, 1: 1, 2: 2}


CHECKS: dict[str, Callable[[Path, Want, Tally, int], State]] = {
    "items": check_items,
    "secure": check_secure,
    "files": check_files,
}


def kill_kind(kind: str, kills: int, rng: random.Random, workdir: Path) -> Tally:
    """`kills` SIGKILLs of writers of `kind`, each followed by a check of the store."""
    directory = workdir / kind
    state = initial(kind, directory)
    tally = Tally(kind)
    next_generation = 3 if kind == "files" else 1
    for kill in range(1, kills + 1):
        lines, failure = kill_child(kind, directory, next_generation, rng)
        tally.kills += 1
        reported = len(tally.problems)
        if failure:
            tally.problem(kill, failure)
        after, flight, done = replay(kind, lines, state)
        tally.updates += done
        begun = [int(line.split()[1]) for line in lines if line.startswith("B ")]
        next_generation = max(begun, default=next_generation - 1) + 1
        if flight is not None:
            tally.inside += 1
            if kind == "files" and lines[-1].startswith("C "):
                tally.add("kills inside Staging.commit()")
        want = {record: {generation} for record, generation in after.items()}
        if flight is not None:
            want[flight[0]] = {flight[1], flight[2]}
        state = CHECKS[kind](directory, want, tally, kill)
        if len(tally.problems) > reported:
            tally.bad += 1  # something newly wrong (a state that stays wrong counts once)
        tally.seen, tally.found = tally.found, set()
    return tally


# --------------------------------------------------------------------------- the suite


def run(report: Report) -> None:
    scale = "short" if report.short else "full"
    seed = int(os.environ.get("PROVD_PROOF_SEED", SEED))
    rng = random.Random(seed)
    print(f"  seed {seed} (PROVD_PROOF_SEED overrides)", flush=True)
    total = 0
    with tempfile.TemporaryDirectory(prefix="provd-powercut-") as tmp:
        for kind, title in KINDS.items():
            want = KILLS[scale][kind]
            started = time.monotonic()
            tally = kill_kind(kind, want, random.Random(rng.getrandbits(64)), Path(tmp))
            seconds = time.monotonic() - started
            total += tally.kills
            for line in tally.problems[:12]:
                print(f"  {line}", flush=True)
            figures(report, tally, title, want)
            extra = ", ".join(f"{k}: {v}" for k, v in sorted(tally.counts.items()))
            report.note(
                f"{kind}: {tally.kills} kills in {seconds:.1f} s, {tally.updates:,} updates"
                f" finished between them{'; ' + extra if extra else ''}."
            )
        want = sum(KILLS[scale].values())
        report.figure("SIGKILLs delivered in all", total, f"≥ {want:,}", total >= want)
        daemon_kills(report, DAEMON_KILLS[scale], random.Random(rng.getrandbits(64)), Path(tmp))
    notes(report, seed)


def figures(report: Report, tally: Tally, title: str, want: int) -> None:
    """One kind's figures: kills, bad states, kills that landed inside an update."""
    kind, counts = tally.kind, tally.counts
    report.figure(f"SIGKILLs during {title}", tally.kills, f"≥ {want}", tally.kills >= want)
    report.figure(f"corrupt or mixed states after them ({kind})", tally.bad, "0", tally.bad == 0)
    tenth = tally.kills // 10
    report.figure(
        f"kills inside an update, begun and not finished ({kind})",
        tally.inside,
        f"≥ {tenth} (10%)",
        tally.inside >= tenth,
    )
    if kind == "secure":
        left = counts.get("kills that left a temporary file", 0)
        report.figure(
            "kills that left a temporary file in the secure store (each removed at the next"
            " open, else counted as a mixed state)",
            left,
            "≥ 1",
            left >= 1,
        )
    if kind == "files":
        report.figure(
            "of those, kills inside Staging.commit() (file staged, rename and index pending)",
            counts.get("kills inside Staging.commit()", 0),
            "≥ 1",
            counts.get("kills inside Staging.commit()", 0) >= 1,
        )
        report.figure(
            "index entries naming another deployment than the file holds (in the mixed states)",
            counts.get("index entries that disagree with the file", 0),
            "0",
            not counts.get("index entries that disagree with the file", 0),
        )
        report.figure(
            "staged temporaries of killed deployments left after the next open",
            counts.get("staged temporaries the next open left", 0),
            "0",
            not counts.get("staged temporaries the next open left", 0),
        )
        report.figure(
            "index temporaries (..index.json.<pid>.tmp) kills left, kept by the next open",
            len(tally.index_temps),
            "0",
            not tally.index_temps,
        )


def notes(report: Report, seed: int) -> None:
    report.note(
        f"Seed {seed}. Each kill starts a writer (`python -S powercut_child.py KIND`) that"
        " opens its store and loops over updates, saying `B`egin/`A`fter of each on an"
        " unbuffered pipe; the kill comes uniformly within 30-60 ms of the store being open"
        " (a fifth of them blind, 0-120 ms after the process starts: inside the open and the"
        " recovery of the previous kill). From the lines the suite knows the state before"
        " the kill and the one update in flight; the check allows that update's old or new"
        " generation and nothing else, for every record."
    )
    report.note(
        "Checks: items (20 items, 700-byte values, one transaction, as a local change) alternately"
        " through a read-only SQLite connection (PRAGMA integrity_check; the WAL stays hot"
        " for the next writer to recover) and through `ItemStore.open` (no recovery needed,"
        " the local-changes queue and the configuration-changed flag of the same transaction);"
        " secure store (client key + 2-certificate chain, 3 server CAs, trust pin, 6 kB"
        " pending bootstrap, PIN attempts, written in turn) reopened with `SecureStore`, every"
        " record read through its typed accessor and decoded whole, the key and every"
        " certificate of its chain of one generation (`write_client_credentials` writes them as"
        " one PEM bundle in one atomic replace, so they cannot mix), no file but the five"
        " left; files (3 targets of 2-400 kB, staged in 16 kB chunks) reopened with"
        " `FileStore`: each file wholly one deployment's bytes, its `list()` entry status ok and"
        " dated (by the store's clock, set to name the deployment) as that same deployment,"
        " no staged `.deploy-*.tmp` left."
    )
    report.note(
        "SIGKILL proves atomicity and crash recovery: what the kernel holds survives it. The"
        " other half of a power cut, the disk's own cache, is the fsyncs': the item store runs"
        " SQLite WAL with synchronous=FULL (a commit fdatasyncs the WAL before it returns);"
        " the secure store and the index of deployed files use `provd.store.fsutil.atomic_write`"
        " (a `.<name>.<pid>.tmp` in the same directory, created with its final mode, written,"
        " fsynced, renamed over the target, then the directory fsynced so the rename lasts);"
        " `Staging.commit` does the same for a deployed file (fsync, rename, directory fsync)"
        " before writing the index. This suite does not cut power to a disk."
    )


if __name__ == "__main__":
    main(run, __doc__, "powercut")
