"""The server's side of the daemon tests: what the lab saw, and peers that record contact."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable

from provd.lab.server import LabServer
from provd.lab.transcript import Record
from provd.wpi.model import Item, Reason


def opened(lab: LabServer, reason: Reason | None = None) -> list[int]:
    """Numbers of the interactions the lab saw opened (with `reason`), in order."""
    return [
        i.number
        for i in lab.conductor.interactions
        if i.number > 0 and (reason is None or i.reason is reason)
    ]


def phone_records(lab: LabServer, interaction: int) -> list[Record]:
    return [r for r in lab.transcript if r.interaction == interaction and r.from_phone]


def server_records(lab: LabServer, interaction: int) -> list[Record]:
    return [r for r in lab.transcript if r.interaction == interaction and not r.from_phone]


def first_message(lab: LabServer, interaction: int) -> Record:
    return phone_records(lab, interaction)[0]


def item_values(items: Iterable[Item]) -> dict[str, str]:
    """name (or name[index]) → value of the items that carry a value (no status)."""
    return {
        (i.name if i.index is None else f"{i.name}[{i.index}]"): i.value
        for i in items
        if i.status is None
    }


def item_statuses(items: Iterable[Item]) -> dict[str, str]:
    return {
        (i.name if i.index is None else f"{i.name}[{i.index}]"): str(i.status)
        for i in items
        if i.status is not None
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ConnectionRecorder:
    """A plain TCP listener that records every connection made to it (and answers nothing):
    where a redirect the phone must not follow would arrive. `host` may be IPv6."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.host = host
        self.peers: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def accepted(self) -> int:
        """How many connections arrived."""
        return len(self.peers)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()
