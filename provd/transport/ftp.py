"""FTP downloads for FileDeployment and SoftwareDeployment (spec §6.1, §6.2).

The guide's FTP [G p.53, p.57]: plain FTP (no TLS), `file-server`, `file-port`
(21), `file-username`, `file-pwd`, `file-path`, `file-name`. provd uses the
standard library's `ftplib` in passive mode (the data connection goes to the
control connection's address, whatever the server's PASV reply names), binary
(``TYPE I``), streaming into the caller's sink under a byte cap.

``SIZE`` is asked for when the server has it: a file larger than allowed is
refused before its first byte, more bytes than announced are refused (``protocol``),
and fewer bytes than announced mean the transfer was cut even if the server says 226.
``REST`` resumes a cut download where the sink stops; a server that refuses
``REST`` gets the whole file again.

Failures: the network's as `TransportError` (``connect``, ``timeout``, ``closed``,
``too-large``); the server's "no" (a 4xx or 5xx reply) as `FtpRefused` with the
reply code. The password never reaches a log or an error message.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import re
import socket
from dataclasses import dataclass
from typing import BinaryIO, Literal

from provd.transport.errors import TransportError

log = logging.getLogger(__name__)

DEFAULT_PORT = 21
_READ_SIZE = 65536
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

FtpRefusalKind = Literal["not-found", "denied", "refused", "protocol"]
"""- ``not-found``: 550 to RETR (no such file, or not readable);
- ``denied``: 530, the login was refused;
- ``refused``: any other 4xx/5xx reply;
- ``protocol``: a reply ftplib could not read, or more bytes than ``SIZE`` announced."""


class _SinkFailed(Exception):
    """The caller's sink failed (a full disk): its OSError goes back unchanged."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class FtpRefused(Exception):
    """The FTP server said no; `code` is its reply code, `message` is safe to log."""

    def __init__(self, kind: FtpRefusalKind, code: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: FtpRefusalKind = kind
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class FtpDownload:
    """What `ftp_get` received: `received` bytes written by this call, `size` the
    whole file's size as the server announced it (None without ``SIZE``),
    `resumed` True when the bytes were appended after `offset`."""

    received: int
    size: int | None
    resumed: bool


def remote_path(path: str, name: str) -> str:
    """`file-path` and `file-name` as one server path (``/media`` + ``a.wav``)."""
    if not path:
        return name
    return path.rstrip("/") + "/" + name


def ftp_get(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    user: str,
    password: str,
    path: str,
    name: str,
    sink: BinaryIO,
    max_bytes: int,
    offset: int = 0,
    connect_timeout: float = 10.0,
    timeout: float = 30.0,
) -> FtpDownload:
    """Download `path`/`name` from `host`:`port` into `sink`.

    With `offset` > 0, the bytes from `offset` on are asked for (``REST``) and
    appended; when the server cannot resume, `sink` is rewound and truncated (it
    must be seekable then) and the whole file is written. More than `max_bytes`
    in all raises `TransportError` ``too-large``. `user` empty means anonymous.
    Raises `ValueError` for a control character in any argument (an FTP command
    injection), `TransportError` and `FtpRefused` as the module says; an `OSError`
    of `sink` itself propagates unchanged.
    """
    for what, value in (("host", host), ("user", user), ("path", path), ("file name", name)):
        if _CONTROL.search(value):
            raise ValueError(f"control character in the FTP {what}")
    if _CONTROL.search(password):
        raise ValueError("control character in the FTP password")
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    remote = remote_path(path, name)
    ftp = ftplib.FTP()  # noqa: S321 - the guide's file servers speak plain FTP [G p.53]
    try:
        try:
            ftp.connect(host, port, timeout=connect_timeout)
            ftp.login(user or "anonymous", password if user else (password or "anonymous@"))
        except ftplib.error_perm as exc:
            if _code(exc) == "530":
                raise FtpRefused("denied", "530", f"{where} refused the login") from None
            raise _login_refused(exc, where) from None
        except (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto) as exc:
            raise _login_refused(exc, where) from None
        except (OSError, EOFError) as exc:
            raise _network(exc, where, connecting=True) from None
        # Passive: the phone opens the data connection (and ftplib connects it to the
        # control connection's address, not to whatever the PASV reply names).
        ftp.set_pasv(True)
        # The rest of the exchange, data connections included, uses `timeout`.
        ftp.timeout = timeout
        if ftp.sock is not None:
            ftp.sock.settimeout(timeout)
        try:
            return _retrieve(ftp, where, remote, sink=sink, max_bytes=max_bytes, offset=offset)
        except _SinkFailed as exc:
            raise exc.error from None
        except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply) as exc:
            raise _refusal(exc, where, retrieving=True) from None
        except ftplib.error_proto as exc:
            raise _refusal(exc, where) from None
        except (OSError, EOFError) as exc:
            raise _network(exc, where, connecting=False) from None
    finally:
        with contextlib.suppress(OSError, EOFError, ftplib.Error):
            ftp.close()


def _retrieve(
    ftp: ftplib.FTP, where: str, remote: str, *, sink: BinaryIO, max_bytes: int, offset: int
) -> FtpDownload:
    ftp.voidcmd("TYPE I")  # binary: SIZE counts bytes, RETR sends them unchanged
    size = _size(ftp, remote)
    if size is not None and size > max_bytes:
        raise TransportError("too-large", f"{where} announces {size} bytes, {max_bytes} allowed")
    if offset and size is not None and offset > size:
        offset = _restart(sink)  # the file changed under us: start over
    if offset and size is not None and offset == size:
        return FtpDownload(0, size, True)
    log.debug("FTP %s: RETR %s from byte %d", where, remote, offset)
    try:
        conn = ftp.transfercmd(f"RETR {remote}", rest=offset or None)
    except ftplib.error_perm as exc:
        if not offset or _code(exc) == "550":
            raise
        # A server without REST: take the whole file (spec §6.2: restart cleanly).
        log.info("FTP %s cannot resume (%s); restarting the download", where, _code(exc))
        offset = _restart(sink)
        conn = ftp.transfercmd(f"RETR {remote}")
    received = 0
    with conn:
        while chunk := conn.recv(_READ_SIZE):
            total = offset + received + len(chunk)
            if total > max_bytes:
                raise TransportError("too-large", f"{where} sends over {max_bytes} bytes")
            if size is not None and total > size:
                # The server contradicts its own SIZE: nothing it sends can be trusted.
                raise FtpRefused("protocol", "", f"{where} sends more than the {size} announced")
            try:
                sink.write(chunk)
            except OSError as exc:
                raise _SinkFailed(exc) from exc
            received += len(chunk)
    ftp.voidresp()  # 226; a 426 or 451 here means the transfer was cut
    if size is not None and offset + received != size:
        raise TransportError(
            "closed", f"{where} ended the transfer at {offset + received} of {size} bytes"
        )
    return FtpDownload(received, size, offset > 0)


def _size(ftp: ftplib.FTP, remote: str) -> int | None:
    # SIZE is RFC 3659, not RFC 959: a server without it (or refusing it) is fine.
    try:
        return ftp.size(remote)
    except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply, ValueError):
        return None


def _restart(sink: BinaryIO) -> int:
    try:
        sink.seek(0)
        sink.truncate()
    except OSError as exc:
        raise _SinkFailed(exc) from exc
    return 0


def _code(exc: ftplib.Error) -> str:
    text = str(exc.args[0]) if exc.args else ""
    return text[:3]


def _login_refused(exc: ftplib.Error, where: str) -> FtpRefused:
    # Never the reply's text: a server may echo the PASS command it refused, and the
    # message reaches the journal.
    if isinstance(exc, ftplib.error_proto):
        return FtpRefused("protocol", "", f"unreadable FTP reply from {where} to the login")
    code = _code(exc)
    return FtpRefused("refused", code, f"{where} refused the login ({code})")


def _refusal(exc: ftplib.Error, where: str, *, retrieving: bool = False) -> Exception:
    if isinstance(exc, ftplib.error_proto):
        return FtpRefused("protocol", "", f"unreadable FTP reply from {where}")
    code = _code(exc)
    text = _CONTROL.sub(" ", str(exc.args[0]) if exc.args else "")[:120]
    if code == "426":
        return TransportError("closed", f"{where} aborted the transfer: {text}")
    if code == "425":
        return TransportError("connect", f"{where} opened no data connection: {text}")
    if code == "550" and retrieving:
        return FtpRefused("not-found", code, f"{where}: {text}")
    return FtpRefused("refused", code, f"{where}: {text}")


def _network(exc: OSError | EOFError, where: str, *, connecting: bool) -> TransportError:
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        if connecting:
            return TransportError("connect", f"connecting to {where} timed out")
        return TransportError("timeout", f"{where} did not answer in time")
    if isinstance(exc, EOFError):
        return TransportError("closed", f"{where} closed the control connection")
    if isinstance(exc, socket.gaierror):
        return TransportError("connect", f"cannot resolve {where}: {exc.strerror}")
    reason = exc.strerror or type(exc).__name__
    if connecting:
        return TransportError("connect", f"cannot connect to {where}: {reason}")
    return TransportError("closed", f"connection to {where} failed: {reason}")
