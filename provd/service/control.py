"""The local control interface: JSON lines on an `AF_UNIX` stream socket.

The phone's other components (telephony stack, menu, web UI, GUI) and
`provctl` talk to provd here. Access is the socket file's permission: owner
and group `provd` (mode 0660 in the runtime directory), nobody else.

Protocol, one JSON object per line each way::

    → {"cmd": "status"}
    ← {"ok": true, "mode": "default mode", "status": "default mode, idle, ...", ...}
    → {"cmd": "set", "items": {"e164": "4989722", "ldap-server-address[1]": "ldap.example"}}
    ← {"ok": false, "error": "...", "rejected": {"x": "unknown item"}}

Commands are listed in `docs/control-protocol.md`. A request line is at most
64 KiB; a client may send several requests on one connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provd.service.loop import EventLoop

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
MAX_CLIENTS = 16

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """Serve JSON-lines requests on `path`, answering with `handler` on the loop's thread."""

    def __init__(self, path: Path, handler: Handler, loop: EventLoop, *, mode: int = 0o660) -> None:
        self.path = path
        self._handler = handler
        self._loop = loop
        self._clients: dict[int, _Client] = {}
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()  # a stale socket of an earlier run
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o777 & ~mode)
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old_umask)
        path.chmod(mode)
        self._sock.listen(8)
        self._sock.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except BlockingIOError:
            return
        if len(self._clients) >= MAX_CLIENTS:
            conn.close()
            return
        conn.setblocking(False)
        client = _Client(conn)
        self._clients[conn.fileno()] = client
        self._loop.add_reader(conn.fileno(), lambda: self._read(client))

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        self._loop.remove_reader(fd)
        self._clients.pop(fd, None)
        client.sock.close()

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        if not data:
            self._drop(client)
            return
        client.buffer += data
        while b"\n" in client.buffer:
            line, _, client.buffer = client.buffer.partition(b"\n")
            if not self._answer(client, line):
                return
        if len(client.buffer) > MAX_LINE:
            self._send(client, {"ok": False, "error": "request line too long"})
            self._drop(client)

    def _answer(self, client: _Client, line: bytes) -> bool:
        if not line.strip():
            return True
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ValueError("a request is an object with a string 'cmd'")
        except ValueError as exc:
            return self._send(client, {"ok": False, "error": f"bad request: {exc}"})
        try:
            response = self._handler(request)
        except Exception:  # a handler bug must not take the daemon down
            log.exception("control command %s failed", request.get("cmd"))
            response = {"ok": False, "error": "internal error (see the journal)"}
        return self._send(client, response)

    def _send(self, client: _Client, response: dict[str, Any]) -> bool:
        payload = json.dumps(response, sort_keys=True).encode() + b"\n"
        try:
            # Answers are small; a client that does not read them is dropped.
            client.sock.setblocking(True)
            client.sock.settimeout(1.0)
            client.sock.sendall(payload)
            client.sock.setblocking(False)
        except OSError:
            self._drop(client)
            return False
        return True

    def close(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client)
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Client:
    __slots__ = ("buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""


def request(path: Path, command: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the control socket at `path` and return the answer
    (the client side, used by `provctl`). Raises OSError when provd is not there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(command).encode() + b"\n")
        buffer = b""
        while b"\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("provd closed the control connection")
            buffer += chunk
    answer = json.loads(buffer.partition(b"\n")[0])
    if not isinstance(answer, dict):
        raise ValueError("provd sent a malformed answer")
    return answer
