"""The four classic attacks on an XML parser, each measured in a fresh process.

`python -m bench.proof.fuzz_attacks CASE VIA` builds one hostile document, hands it to
`parse_dls` (VIA=codec) or to a `PhoneSession` awaiting the server's response
(VIA=session), and prints one JSON line: refused or not, milliseconds, extra memory.

Memory is measured honestly for a parser that allocates in C (lxml: tracemalloc does not
see it): the kernel's peak resident set of this process (VmHWM in /proc/self/status) is
reset after the document is built (`/proc/self/clear_refs` with 5), read, the document is
parsed, and the peak is read again; the difference is what the parse added. Before that,
one valid document goes through the same path, so lxml's one-time set-up is not counted
against an attack. Time is `time.perf_counter` around the one call.

An XXE case also checks the entity went nowhere: the local file holds a canary that must
not appear in what comes back, and the URL points at a listening socket on 127.0.0.1
that must see no connection.
"""

from __future__ import annotations

import gc
import json
import select
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.proof.fuzz_harness import NONCE
from provd.wpi.codec import DocumentError, parse_dls
from provd.wpi.events import DocumentRefused
from provd.wpi.model import Reason
from provd.wpi.session import PhoneSession

_HEAD = f'<DLSMessage xmlns="http://www.siemens.com/DLS"><Message nonce="{NONCE}">'
_TAIL = "</Message></DLSMessage>"
CANARY = "provd-fuzz-canary-7d1f"


def _document(action: str, items: str = "", doctype: str = "") -> bytes:
    return f"{doctype}{_HEAD}<Action>{action}</Action><ItemList>{items}</ItemList>{_TAIL}".encode()


def xxe(system_id: str) -> bytes:
    """An external entity read into an item value and the action (XXE)."""
    doctype = f'<!DOCTYPE DLSMessage [<!ENTITY xxe SYSTEM "{system_id}">]>\n'
    return _document("ReadAllItems&xxe;", '<Item name="e164">&xxe;</Item>', doctype)


def xxe_parameter(system_id: str) -> bytes:
    """An external parameter entity (the out-of-band XXE): read while the DTD is read."""
    doctype = f'<!DOCTYPE DLSMessage [<!ENTITY % ext SYSTEM "{system_id}"> %ext;]>\n'
    return _document("ReadAllItems", "", doctype)


def xinclude(href: str) -> bytes:
    """XInclude of a local file as text: an XXE without a DTD."""
    include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{href}" parse="text"/>'
    return _document("WriteItems", f'<Item name="e164">{include}</Item>')


def billion_laughs(levels: int = 10) -> bytes:
    """Ten levels of ten references: 10**9 copies of "lol" if expanded."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, levels):
        refs = f"&lol{level - 1};" * 10
        entities.append(f'<!ENTITY lol{level} "{refs}">')
    doctype = f"<!DOCTYPE DLSMessage [{''.join(entities)}]>\n"
    return _document("WriteItems", f'<Item name="e164">&lol{levels - 1};</Item>', doctype)


def quadratic(entity_size: int = 100_000, references: int = 200_000) -> bytes:
    """One large entity referenced many times (quadratic blowup): about 20 GB expanded."""
    doctype = f'<!DOCTYPE DLSMessage [<!ENTITY a "{"a" * entity_size}">]>\n'
    return _document("WriteItems", f'<Item name="e164">{"&a;" * references}</Item>', doctype)


def deep(levels: int = 100_000) -> bytes:
    """An item nested `levels` deep."""
    return _document(
        "WriteItems", "<Item name='e164'>" + "<x>" * levels + "</x>" * levels + "</Item>"
    )


def oversize(size: int = 50 * 1024 * 1024) -> bytes:
    """A well-formed WriteItems whose one value makes the body `size` bytes."""
    empty = len(_document("WriteItems", '<Item name="e164"></Item>'))
    return _document("WriteItems", f'<Item name="e164">{"9" * (size - empty)}</Item>')


#: case name -> (the attack it belongs to, what it is)
CASES: dict[str, tuple[str, str]] = {
    "xxe-file": ("XXE", "external entity to a local file"),
    "xxe-url": ("XXE", "external entity to a URL on 127.0.0.1"),
    "xxe-parameter-url": ("XXE", "external parameter entity to a URL (out of band)"),
    "xinclude-file": ("XXE", "XInclude of a local file (no DTD)"),
    "billion-laughs": ("entity expansion", "billion laughs (10 levels x 10)"),
    "quadratic": ("entity expansion", "quadratic blowup (100 kB entity x 200,000)"),
    "deep-100000": ("deep nesting", "100,000 levels"),
    "deep-300": ("deep nesting", "300 levels (past libxml2's cap of 256)"),
    "deep-200": ("deep nesting", "200 levels (under libxml2's cap; provd's own cap)"),
    "oversize-50MiB": ("oversize", "50 MiB body"),
    "oversize-1MiB+1": ("oversize", "1 MiB + 1 byte body"),
}


def small_forms() -> dict[str, bytes]:
    """Each attack at a size fit for a fuzz seed (nothing outside is named)."""
    return {
        "xxe-file": xxe("file:///nonexistent/canary"),
        "xxe-url": xxe("http://127.0.0.1:9/canary"),
        "xxe-parameter-url": xxe_parameter("http://127.0.0.1:9/dtd"),
        "xinclude-file": xinclude("file:///nonexistent/canary"),
        "billion-laughs": billion_laughs(),
        "quadratic": quadratic(50, 100),
        "deep": deep(300),
    }


# --------------------------------------------------------------------------- the child


def _status() -> dict[str, int]:
    """VmHWM and VmRSS of this process, in bytes."""
    fields: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def _attack(case: str, workdir: Path, listener: socket.socket) -> bytes:
    port = listener.getsockname()[1]
    canary_file = workdir / "canary.txt"
    canary_file.write_text(CANARY, encoding="ascii")
    builders: dict[str, Callable[[], bytes]] = {
        "xxe-file": lambda: xxe(canary_file.as_uri()),
        "xxe-url": lambda: xxe(f"http://127.0.0.1:{port}/canary"),
        "xxe-parameter-url": lambda: xxe_parameter(f"http://127.0.0.1:{port}/dtd"),
        "xinclude-file": lambda: xinclude(canary_file.as_uri()),
        "billion-laughs": billion_laughs,
        "quadratic": quadratic,
        "deep-100000": lambda: deep(100_000),
        "deep-300": lambda: deep(300),
        "deep-200": lambda: deep(200),
        "oversize-50MiB": lambda: oversize(50 * 1024 * 1024),
        "oversize-1MiB+1": lambda: oversize(1024 * 1024 + 1),
    }
    return builders[case]()


def measure_here(case: str, via: str) -> dict[str, object]:
    """Build the case, parse it once, and say what it cost (run in a fresh process)."""

    def through_session(body: bytes) -> tuple[bool, str, bytes]:
        session = PhoneSession(reason=Reason.SOLICITED, nonce=NONCE, items=())
        session.start()
        event = session.receive(body)
        if isinstance(event, DocumentRefused):
            return True, event.reason, event.answer
        return False, type(event).__name__, repr(event).encode()

    def through_codec(body: bytes) -> tuple[bool, str, bytes]:
        try:
            message = parse_dls(body)
        except DocumentError as refusal:
            return True, refusal.reason, b""
        return False, "parsed", repr(message).encode()

    call = through_session if via == "session" else through_codec
    with tempfile.TemporaryDirectory(prefix="provd-fuzz-") as tmp:
        listener = socket.create_server(("127.0.0.1", 0))
        call(_document("ReadAllItems"))  # lxml's one-time set-up is not the attack's cost
        body = _attack(case, Path(tmp), listener)
        gc.collect()
        reset = _reset_peak()
        before = _status()
        started = time.perf_counter()
        refused, reason, output = call(body)
        seconds = time.perf_counter() - started
        after = _status()
        connected = bool(select.select([listener], [], [], 0)[0])
        listener.close()
    return {
        "case": case,
        "via": via,
        "refused": refused and CANARY.encode() not in output and not connected,
        "reason": reason[:120],
        "ms": seconds * 1000,
        "extra_bytes": max(0, after["VmHWM"] - before["VmHWM"]),
        "peak_reset": reset,
        "body_bytes": len(body),
        "canary_leaked": CANARY.encode() in output,
        "url_contacted": connected,
    }


if __name__ == "__main__":
    print(json.dumps(measure_here(sys.argv[1], sys.argv[2])), flush=True)
