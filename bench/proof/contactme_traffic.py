"""What suite 5 sends to the contact-me port, and what it watches while it does.

The wire side of `bench.proof.contactme`: raw HTTP exchanges over loopback sockets (no
client library that would tidy a malformed request up), the flood workers (run in child
processes so they do not share the suite's interpreter lock), the slowloris sockets, the
traps that stand where a redirect would lead, and the daemon's resident memory read
from `/proc/<pid>/status`.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.bench_daemon import rss_kib
from provd.wpi.contactme import CONTACT_PATH
from tests.integration.daemon.lab import ConnectionRecorder

PATH = CONTACT_PATH.encode("ascii")
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


# --------------------------------------------------------------------------- one exchange


@dataclass(frozen=True)
class Exchange:
    """How one connection ended: the status answered (None: none) and how it closed."""

    status: int | None
    ending: str  # "closed" (EOF), "reset", "timeout", "refused"
    seconds: float


def status_line(answer: bytes) -> int | None:
    """The status code of an HTTP answer, or None if `answer` is not one."""
    if not answer.startswith(b"HTTP/"):
        return None
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 10.0) -> Exchange:
    """Send `data` as is on a new connection, read until the daemon closes; how it went.

    A send the daemon cuts short (it answered and closed before reading it all) is not
    an error: what matters is its answer and that it closed."""
    started = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return Exchange(None, "refused", time.monotonic() - started)
    answer = b""
    ending = "closed"
    with sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        deadline = started + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                ending = "timeout"
                break
            except OSError:
                ending = "reset"
                break
            if not chunk:
                break
            answer += chunk
    return Exchange(status_line(answer), ending, time.monotonic() - started)


# --------------------------------------------------------------------------- the flood


def flood_request(kind: int, trap_port: int) -> bytes:
    """One contact-me of the flood's mix: POST, GET, a redirect to the trap, ContactMe=false."""
    if kind == 0:
        body = b"ContactMe=true"
        return b"POST " + PATH + b" HTTP/1.1\r\nHost: phone\r\n" + FORM + _length(body) + body
    if kind == 1:
        return b"GET " + PATH + b"?ContactMe=true HTTP/1.1\r\nHost: phone\r\n\r\n"
    if kind == 2:
        body = f"ContactMe=true&dls_ip_addr=127.0.0.1&dls_ip_port={trap_port}".encode()
        return b"POST " + PATH + b" HTTP/1.1\r\nHost: phone\r\n" + FORM + _length(body) + body
    body = b"ContactMe=false"
    return b"POST " + PATH + b" HTTP/1.1\r\nHost: phone\r\n" + FORM + _length(body) + body


def _length(body: bytes) -> bytes:
    return f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")


def flood_worker(port: int, count: int, first: int, trap_port: int) -> dict[str, int]:
    """Send `count` flood requests (kinds by number from `first`), one connection each.

    Runs in a child process. Returns counts: ``status <n>``, ``ending <e>``, ``sent``,
    ``max_ms`` (the slowest exchange), ``began_ms`` and ``ended_ms`` (wall clock)."""
    counts: Counter[str] = Counter()
    slowest = 0.0
    began = time.time()
    for number in range(first, first + count):
        result = exchange(port, flood_request(number % 4, trap_port), half_close=False)
        counts["sent"] += 1
        counts[f"status {result.status}"] += 1
        counts[f"ending {result.ending}"] += 1
        slowest = max(slowest, result.seconds)
    counts["max_ms"] = round(slowest * 1000)
    counts["began_ms"] = round(began * 1000)
    counts["ended_ms"] = round(time.time() * 1000)
    return dict(counts)


# --------------------------------------------------------------------------- slowloris


@dataclass
class Slowloris:
    """`size` connections that never finish their request: half of them send nothing,
    half send a contact-me head one byte every `pace` seconds. A connection the daemon
    closes is opened again (at most every `pace` seconds per slot), so the pressure
    holds until `stop()`."""

    port: int
    size: int
    pace: float = 0.2
    opened: int = 0
    closed_by_daemon: int = 0
    bytes_sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    HEAD = b"GET " + PATH + b"?ContactMe=true HTTP/1.1\r\nHost: phone\r\nX-Slow: " + b"a" * 64

    def start(self) -> Slowloris:
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _open(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            return None
        self.opened += 1
        return sock

    def _run(self) -> None:
        slots: list[tuple[socket.socket | None, int, float]] = [(None, 0, 0.0)] * self.size
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                live = {s.fileno(): i for i, (s, _, _) in enumerate(slots) if s is not None}
                readable: list[int] = []
                if live:
                    readable, _, _ = select.select(list(live), [], [], self.pace / 4)
                else:
                    time.sleep(self.pace / 4)
                for fd in readable:
                    index = live[fd]
                    sock, _sent, _last = slots[index]
                    assert sock is not None
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:  # the daemon closed it (timeout, eviction) or answered
                        self.closed_by_daemon += 1
                        sock.close()
                        slots[index] = (None, 0, now)
                for index, (sock, sent, last) in enumerate(slots):
                    if now - last < self.pace:
                        continue
                    if sock is None:
                        slots[index] = (self._open(), 0, now)
                    elif index % 2 and sent < len(self.HEAD):
                        with contextlib.suppress(OSError):
                            sock.send(self.HEAD[sent : sent + 1])
                            self.bytes_sent += 1
                            slots[index] = (sock, sent + 1, now)
        finally:
            for sock, _, _ in slots:
                if sock is not None:
                    sock.close()


# --------------------------------------------------------------------------- traps


#: Where a followed redirect would arrive: counts connections (`accepted`), answers none.
Trap = ConnectionRecorder


# --------------------------------------------------------------------------- memory


class RssWatch:
    """Samples a process's VmRSS every `period` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, period: float = 0.02) -> None:
        self.pid = pid
        self.period = period
        self.peak = rss_kib(pid)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def start(self) -> RssWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, RuntimeError):
                return  # the process is gone: the suite's liveness figure says so
            self.samples += 1

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2.0)
        return self.peak


def seeded_junk(seed: int, size: int) -> bytes:
    """`size` bytes from a seeded generator (the malformed corpus is the same every run)."""
    return random.Random(seed).randbytes(size)
