"""Child process of the power-cut proof: one kind of durable update, in a loop, until killed.

Usage: powercut_child.py KIND DIR FIRST

KIND is `items` (WriteItems commits through `ItemStore`), `secure` (the secure store's
updates through `SecureStore`) or `files` (file deployments through `FileStore` and
`Staging`). The child opens its store in DIR, writes `R` once it is open, then for
g = FIRST, FIRST+1, ... performs generation g and reports each step on fd 1 with
`os.write` (unbuffered: a line is in the pipe before the next step starts):

- items:  `B g` (begin), one transaction of every key of `ITEM_KEYS` with `item_value(g)`
          as a local change (queue and flag in the same transaction), `A g` (after);
- secure: for each record k of `SECURE_RECORDS` in turn, `B g k`, that record's update
          with generation g's content, `A g k`;
- files:  deployment g goes to `FILE_TARGETS[g % 3]`: `B g`, stage `file_content`
          in 16 kB chunks (as a download writes), `C g` (staged, commit begins),
          `Staging.commit()`, `A g`. The store's clock says `deployment_time(g)`, so
          the index entry names the deployment it belongs to.

The content of every generation is a pure function here, shared with the parent
(`bench/proof/powercut.py`), which decodes what survived a kill. It imports only the
standard library and `provd.store`, so it runs with `python -S` and starts fast.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # as a script (-S): the tree

from provd.store.files import FileStore
from provd.store.items import Change, ItemStore
from provd.store.secure import SecureStore

# --------------------------------------------------------------------------- items

#: One WriteItems: 20 items, scalar and indexed, each value large enough that a
#: transaction spans several pages and WAL checkpoints come often.
ITEM_KEYS: tuple[tuple[str, int | None], ...] = tuple(
    ("line-name", i) if i % 2 else (f"setting-{i}", None) for i in range(20)
)
ITEM_PAD = 700


def item_value(generation: int) -> str:
    """The value every item holds after generation `generation`."""
    return f"generation-{generation}-" + "x" * ITEM_PAD


def item_generation(value: str) -> int | None:
    """The generation `value` belongs to wholly, or None if it is no generation's value."""
    parts = value.split("-", 2)
    if len(parts) != 3 or parts[0] != "generation" or not parts[1].isdigit():
        return None
    generation = int(parts[1])
    return generation if value == item_value(generation) else None


def items_commit(store: ItemStore, generation: int) -> None:
    """Generation `generation` of the items, one local WriteItems-like transaction."""
    value = item_value(generation)
    store.commit([Change(name, index, value) for name, index in ITEM_KEYS], local=True)


# --------------------------------------------------------------------------- secure store

#: The records the secure store's updates replace, in the order a generation writes them.
SECURE_RECORDS = ("client-credentials", "server-cas", "trust-pin", "pending-bootstrap", "pin")


def _blob(tag: str, size: int) -> bytes:
    """`size` bytes that begin with `tag` and a NUL, then a stream derived from the tag."""
    head = tag.encode() + b"\0"
    stream = b""
    counter = 0
    while len(head) + len(stream) < size:
        stream += hashlib.sha256(f"{tag}/{counter}".encode()).digest()
        counter += 1
    return (head + stream)[:size]


def _pem(label: str, der: bytes) -> bytes:
    text = base64.b64encode(der)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return b"".join([f"-----BEGIN {label}-----\n".encode(), *(x + b"\n" for x in lines)]) + (
        f"-----END {label}-----\n".encode()
    )


def client_key(generation: int) -> bytes:
    """Generation `generation`'s client private key (PEM framing; the store never parses DER)."""
    return _pem("PRIVATE KEY", _blob(f"client-key {generation}", 1218))


def client_chain(generation: int) -> bytes:
    """Its certificate chain, leaf first: two certificates of the same generation."""
    return _pem("CERTIFICATE", _blob(f"client-leaf {generation}", 900)) + _pem(
        "CERTIFICATE", _blob(f"client-issuer {generation}", 850)
    )


def server_cas(generation: int) -> list[bytes]:
    """Generation `generation`'s three server CA certificates, in index order."""
    return [_pem("CERTIFICATE", _blob(f"server-ca{i} {generation}", 800)) for i in range(3)]


def trust_pin(generation: int) -> str:
    """Generation `generation`'s pinned SPKI hash (64 hex digits)."""
    return hashlib.sha256(f"trust-pin {generation}".encode()).hexdigest()


def pending_bootstrap(generation: int) -> bytes:
    """Generation `generation`'s pending bootstrap material (binary, as received)."""
    return _blob(f"pending-bootstrap {generation}", 6000)


def pem_generation(block: bytes, kind: str) -> int | None:
    """The generation a PEM block made by `_pem` belongs to wholly, or None."""
    lines = block.strip().splitlines()
    try:
        der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except ValueError:
        return None
    tag = der.partition(b"\0")[0].decode("ascii", "replace")
    parts = tag.split(" ")
    if len(parts) != 2 or parts[0] != kind or not parts[1].isdigit():
        return None
    return int(parts[1]) if der == _blob(tag, len(der)) else None


def secure_update(store: SecureStore, record: str, generation: int) -> None:
    """Replace one record of the secure store with generation `generation`'s content."""
    if record == "client-credentials":
        store.write_client_credentials(client_key(generation), client_chain(generation))
    elif record == "server-cas":
        store.write_server_cas(server_cas(generation))
    elif record == "trust-pin":
        store.write_trust_pin(trust_pin(generation))
    elif record == "pending-bootstrap":
        store.write_pending_bootstrap(pending_bootstrap(generation))
    elif record == "pin":
        store.set_pin_attempts(generation)
    else:
        raise ValueError(record)


# --------------------------------------------------------------------------- files

#: (type, name, largest content): deployment g replaces FILE_TARGETS[g % 3].
FILE_TARGETS: tuple[tuple[str, str, int], ...] = (
    ("PIC", "photo.png", 280 * 1024),  # [G p.178] pictures up to 300 kB
    ("RINGTONE", "ring.wav", 400 * 1024),
    ("LOGO", "logo.bmp", 120 * 1024),
)
FILE_QUOTA = 8 * 1024 * 1024
CHUNK = 16 * 1024
#: The clock of the child's store: deployment g is stamped `EPOCH + g seconds`.
EPOCH = datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC)


def file_target(deployment: int) -> tuple[str, str]:
    """The (type, name) deployment `deployment` replaces."""
    type_, name, _ = FILE_TARGETS[deployment % len(FILE_TARGETS)]
    return type_, name


def file_content(deployment: int) -> bytes:
    """The file deployment `deployment` stages: a header naming it, then seeded bytes."""
    type_, name, largest = FILE_TARGETS[deployment % len(FILE_TARGETS)]
    rng = random.Random(deployment)
    head = f"{type_}/{name} deployment {deployment}\n".encode()
    return head + rng.randbytes(rng.randint(2048, largest - len(head)))


def file_generation(data: bytes) -> int | None:
    """The deployment `data` is wholly the content of, or None."""
    head, sep, _ = data.partition(b"\n")
    word = head.rsplit(b" ", 1)[-1]
    if not sep or not word.isdigit():
        return None
    deployment = int(word)
    return deployment if data == file_content(deployment) else None


def deployment_time(deployment: int) -> datetime.datetime:
    """The time the child's store stamps on deployment `deployment`."""
    return EPOCH + datetime.timedelta(seconds=deployment)


def stamped_deployment(date: str, time: str) -> int | None:
    """Which deployment an index entry's `DD:MM:YYYY` and `HH:MM:SS` [G p.54] stamp names."""
    try:
        when = datetime.datetime.strptime(f"{date} {time}", "%d:%m:%Y %H:%M:%S")
    except ValueError:
        return None
    return int((when.replace(tzinfo=datetime.UTC) - EPOCH).total_seconds())


def file_store(root: Path, clock: Callable[[], datetime.datetime]) -> FileStore:
    """The store the child writes and the parent checks (same types, limits and quota)."""
    limits = {type_: largest for type_, _, largest in FILE_TARGETS}
    return FileStore(root, limits=limits, quota=FILE_QUOTA, clock=clock)


# --------------------------------------------------------------------------- the loop


def _say(line: str) -> None:
    os.write(1, f"{line}\n".encode())


def main() -> None:
    kind, directory, generation = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if kind == "items":
        items = ItemStore.open(directory)
        _say(f"R {items.recovered_from}")
        while True:
            _say(f"B {generation}")
            items_commit(items, generation)
            _say(f"A {generation}")
            generation += 1
    elif kind == "secure":
        secure = SecureStore(directory)
        _say("R")
        while True:
            for k, record in enumerate(SECURE_RECORDS):
                _say(f"B {generation} {k}")
                secure_update(secure, record, generation)
                _say(f"A {generation} {k}")
            generation += 1
    elif kind == "files":
        now = [generation]
        files = file_store(directory, lambda: deployment_time(now[0]))
        _say("R")
        while True:
            now[0] = generation
            type_, name = file_target(generation)
            data = file_content(generation)
            _say(f"B {generation}")
            with files.begin(type_, name, len(data)) as staging:
                for at in range(0, len(data), CHUNK):
                    staging.file.write(data[at : at + CHUNK])
                _say(f"C {generation}")
                staging.commit()
            _say(f"A {generation}")
            generation += 1
    else:
        raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main()
