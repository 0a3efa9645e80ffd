"""The socket `http.client` talks to: a pyOpenSSL connection over a non-blocking TCP socket.

`provd.transport.tls.handshake` makes one; `provd.transport.https` hands it to
`http.client`, which writes with `sendall` and reads through `makefile`. OpenSSL's
want-read/want-write retries become `poll` waits bounded by the timeout, so a stalled
server costs at most the timeout per operation (spec §7.4 [B]: pyOpenSSL makes the
connections).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from OpenSSL import SSL

from provd.transport.errors import is_unexpected_eof

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

_T = TypeVar("_T")
_WRITE_CHUNK = 16384


def deadline_after(timeout: float | None) -> float | None:
    """The `time.monotonic()` instant `timeout` seconds from now (None: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout


class TlsSocket:
    """A pyOpenSSL connection dressed as the socket `http.client` expects.

    The TCP socket is non-blocking; waits are `select` calls bounded by the
    timeout (per operation, like a socket timeout), raising `TimeoutError`.
    A peer that closes (with or without close_notify) reads as end of file;
    other OpenSSL errors propagate as `OpenSSL.SSL.Error` for the caller to translate.
    """

    def __init__(self, conn: SSL.Connection, raw: socket.socket, *, timeout: float | None):
        self._conn = conn
        self._raw = raw
        self._timeout = timeout
        self._closing = False
        self._closed = False
        # Like socket.socket: readers from makefile() keep the connection open
        # after close() until they are closed too (http.client relies on it).
        self._io_refs = 0
        self._deadline: float | None = None
        self.peer_spki_sha256 = ""

    def settimeout(self, timeout: float | None) -> None:
        """Timeout of each later read or write, in seconds (None: wait for ever)."""
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        """The current per-operation timeout."""
        return self._timeout

    def set_deadline(self, deadline: float | None) -> None:
        """Bound every later operation together, on top of each one's timeout: past the
        `time.monotonic()` value `deadline`, reads and writes raise `TimeoutError`. A
        server dripping one byte per TLS record never trips a per-read timeout; this
        bounds the whole answer (spec §3.1). None lifts the bound."""
        self._deadline = deadline

    def fileno(self) -> int:
        """The TCP socket's descriptor."""
        return self._raw.fileno()

    def run(self, op: Callable[[], _T], *, deadline: float | None) -> _T:
        """Call the pyOpenSSL operation `op`, waiting on the socket while it wants I/O."""
        while True:
            try:
                return op()
            except SSL.WantReadError:
                self._wait(select.POLLIN, deadline)
            except SSL.WantWriteError:
                self._wait(select.POLLOUT, deadline)

    def _wait(self, event: int, deadline: float | None) -> None:
        # poll, not select: the daemon may hold more than FD_SETSIZE descriptors.
        poller = select.poll()
        poller.register(self._raw, event)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not poller.poll(None if remaining is None else remaining * 1000):
            raise TimeoutError("timed out")

    def sendall(self, data: ReadableBuffer) -> None:
        """Send all of `data` (http.client's way of writing)."""
        view = memoryview(data).cast("B")
        while view:
            try:
                sent = self._call(functools.partial(self._conn.send, view[:_WRITE_CHUNK]))
            except SSL.ZeroReturnError:
                # The server's close_notify came first: it closed the kept-alive connection.
                raise BrokenPipeError("peer closed the TLS connection") from None
            except ConnectionError:
                alert = self._alert_before_reset()
                if alert is not None:
                    raise alert from None
                raise
            view = view[sent:]

    def _alert_before_reset(self) -> SSL.Error | None:
        """The TLS alert the peer sent before it reset the connection, if one is waiting.

        In TLS 1.3 the server checks the client certificate after the client's handshake
        has finished, so a refusal ("unknown ca") arrives as an alert followed by a reset,
        and the phone's first write may meet the reset first. The alert, not
        ECONNRESET, is what a field engineer needs to read in the journal.
        """
        try:
            self._conn.recv(1)
        except (SSL.WantReadError, SSL.WantWriteError, SSL.SysCallError, SSL.ZeroReturnError):
            return None
        except SSL.Error as exc:
            return exc
        return None

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes; ``b""`` at end of file."""
        try:
            return self._call(functools.partial(self._conn.recv, size))
        except SSL.ZeroReturnError:
            return b""
        except SSL.Error as exc:
            if is_unexpected_eof(exc):
                # No close_notify: many servers just close. HTTP framing
                # (Content-Length, chunking) still tells a short body.
                return b""
            raise

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0) -> int:
        """Read into `buffer`; 0 at end of file."""
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def _call(self, op: Callable[[], _T]) -> _T:
        deadline = deadline_after(self._timeout)
        if self._deadline is not None:
            if time.monotonic() >= self._deadline:
                raise TimeoutError("timed out")
            deadline = self._deadline if deadline is None else min(deadline, self._deadline)
        try:
            return self.run(op, deadline=deadline)
        except SSL.SysCallError as exc:
            code = exc.args[0] if exc.args else -1
            if isinstance(code, int) and code > 0:
                # As a socket would: ECONNRESET becomes ConnectionResetError, and so on.
                raise OSError(code, os.strerror(code)) from None
            raise

    def makefile(
        self, mode: str = "rb", buffering: int = io.DEFAULT_BUFFER_SIZE
    ) -> io.BufferedReader:
        """A buffered binary reader over this connection (`http.client` reads responses so)."""
        if mode != "rb":
            raise ValueError("only 'rb' is supported")
        self._io_refs += 1
        return io.BufferedReader(_TlsRawIO(self), max(buffering, io.DEFAULT_BUFFER_SIZE))

    def interrupt(self) -> None:
        """Wake a thread blocked on this connection (from another thread): shut the
        TCP socket down, so its recv() returns at once; closing alone would not."""
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close once no reader from `makefile` is open any more."""
        self._closing = True
        if self._io_refs <= 0:
            self._close_now()

    def _reader_closed(self) -> None:
        self._io_refs -= 1
        if self._closing and self._io_refs <= 0:
            self._close_now()

    def _close_now(self) -> None:
        # Send close_notify if the socket takes it at once, then close TCP.
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(SSL.Error, OSError):  # the peer may be gone already
            self._conn.shutdown()
        self._raw.close()


class _TlsRawIO(io.RawIOBase):
    """The raw stream under `TlsSocket.makefile`; closing it leaves the connection open."""

    def __init__(self, tls: TlsSocket) -> None:
        super().__init__()
        self._tls = tls

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._tls.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._tls._reader_closed()
        super().close()
