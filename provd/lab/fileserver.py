"""The lab's file servers: FTP and HTTPS, for FileDeployment and SoftwareDeployment.

Spec §6.1 and §6.2 have the phone fetch files from a server the provisioning server
names: plain FTP (`file-server`, `file-port`, `file-username`, `file-pwd`,
`file-path`, `file-name` [G p.53]) or HTTPS (`file-https-base-url`). The lab plays
both, on loopback, and can misbehave the way networks and servers do:

    with FtpFileServer(root, user="dls", password="dlsftp5") as ftp, \\
            HttpsFileServer(pki=lab.pki) as https:
        https.put("/media/logo.png", data)
        ftp.values("ringtone.wav", path="/media")   # the file-* items, by name
        https.values("/media/logo.png")             # {"file-https-base-url": ...}
        ftp.misbehave("/media/ringtone.wav", FileBehaviour(cut_after=1000))

`FtpFileServer` is a real FTP server (pyftpdlib, Debian's python3-pyftpdlib) with
one user and one served directory, read only. `HttpsFileServer` is the standard
library's `http.server` over `ssl` with a certificate from the lab's PKI
(`provd.lab.pki`), serving files put into it or read from a directory. Both run in
a background thread, are context managers, and record what the phone asked for
(`commands`, `requests`) so tests can assert on it.

Misbehaviour per file (`FileBehaviour`): a transfer cut after some bytes (some
times, or always), a size announced that is not the real one (FTP ``SIZE``, HTTPS
``Content-Length``/``Content-Range``), a ``Range`` ignored, an HTTP status instead
of the file. A file the server does not have is FTP 550 and HTTP 404.

`placeholders()` gives the values a deployment scenario needs to name these servers
(``{ftp-server}``, ``{ftp-port}``, ``{https-base-url}``, ...; see
`provd/lab/scenarios/deploy-*.toml`).
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import io
import logging
import posixpath
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from provd.lab.pki import Credential, LabPKI
from provd.lab.tlsserver import TlsHttpServer

logger = logging.getLogger(__name__)

#: [G p.53] the guide's example FTP account.
DEFAULT_USER = "dls"
DEFAULT_PASSWORD = "dlsftp5"  # noqa: S105 - the guide's example, a lab account
IDLE_TIMEOUT = 10.0
#: The placeholders deployment scenarios use (`placeholders()`), with what each stands for.
PLACEHOLDERS: Mapping[str, str] = {
    "ftp-server": "the FTP server's address (file-server)",
    "ftp-port": "the FTP server's port (file-port)",
    "ftp-username": "the FTP account (file-username)",
    "ftp-pwd": "the FTP password (file-pwd)",
    "https-base-url": "https://host:port of the HTTPS file server, no trailing slash",
}


@dataclass(slots=True)
class FileBehaviour:
    """How a file server misbehaves for one file.

    - `cut_after`: the transfer breaks after this many bytes of this response (FTP:
      the data connection fails, ``426``; HTTPS: the connection is closed).
      `cuts` says how many transfers break (None: all of them); later ones are whole.
    - `announce`: the whole file's size as the server states it (FTP ``SIZE``,
      HTTPS ``Content-Length`` or the total of ``Content-Range``) instead of the
      real one. HTTPS sends the real bytes and, when they are fewer, closes the
      connection (the phone sees a transfer that ended early).
    - `ignore_range`: HTTPS answers ``200`` with the whole file to a ``Range``.
    - `status`: HTTPS answers this status (403, 500, ...) instead of the file.
    """

    cut_after: int | None = None
    cuts: int | None = None
    announce: int | None = None
    ignore_range: bool = False
    status: int | None = None

    def take_cut(self) -> int | None:
        """The byte count after which this transfer breaks, or None (counts `cuts` down)."""
        if self.cut_after is None:
            return None
        if self.cuts is None:
            return self.cut_after
        if self.cuts <= 0:
            return None
        self.cuts -= 1
        return self.cut_after


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One GET the HTTPS file server received: the path (unquoted) and its ``Range``."""

    path: str
    range: str | None
    status: int


class _Behaviours:
    """Thread-safe per-path behaviours and counters, shared by both servers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, FileBehaviour] = {}
        self.fetches: dict[str, int] = {}

    def set(self, path: str, behaviour: FileBehaviour | None) -> None:
        with self._lock:
            if behaviour is None:
                self._by_path.pop(path, None)
            else:
                self._by_path[path] = behaviour

    def get(self, path: str) -> FileBehaviour | None:
        with self._lock:
            return self._by_path.get(path)

    def cut_for(self, path: str) -> int | None:
        with self._lock:
            self.fetches[path] = self.fetches.get(path, 0) + 1
            behaviour = self._by_path.get(path)
            return behaviour.take_cut() if behaviour is not None else None


# --------------------------------------------------------------------------- FTP


class _CutFile(io.RawIOBase):
    """A served file whose reads fail after `limit` bytes (a broken transfer)."""

    def __init__(self, inner: Any, limit: int) -> None:
        super().__init__()
        self._inner = inner
        self._left = limit
        self.name = inner.name

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise OSError(errno.EIO, "transfer cut by the lab")
        want = self._left if size < 0 else min(size, self._left)
        data: bytes = self._inner.read(want)
        self._left -= len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._inner.seek(offset, whence))

    def tell(self) -> int:
        return int(self._inner.tell())

    def close(self) -> None:
        self._inner.close()
        super().close()


class FtpFileServer:
    """A real FTP server on `host` (port 0: any free one) serving `root` read only.

    One account, `user`/`password` (the guide's example by default). Passive and
    active mode, binary and ASCII, ``SIZE`` and ``REST`` as pyftpdlib has them.
    `commands` records every command as (verb, argument), the password left out.
    """

    def __init__(
        self,
        root: Path,
        *,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.root = root
        self.user = user
        self.password = password
        self.host = host
        self._behaviours = _Behaviours()
        self._lock = threading.Lock()
        self._commands: list[tuple[str, str]] = []
        behaviours = self._behaviours
        owner = self

        class Filesystem(AbstractedFS):  # type: ignore[misc]
            def open(self, filename: str, mode: str) -> Any:
                inner = super().open(filename, mode)
                limit = behaviours.cut_for(self.fs2ftp(filename))
                return inner if limit is None else _CutFile(inner, limit)

            def getsize(self, path: str) -> int:
                behaviour = behaviours.get(self.fs2ftp(path))
                if behaviour is not None and behaviour.announce is not None:
                    return behaviour.announce
                return int(super().getsize(path))

        class Handler(FTPHandler):  # type: ignore[misc]
            def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
                owner._record(cmd, "" if cmd == "PASS" else arg)
                return super().pre_process_command(line, cmd, arg)

        authorizer = DummyAuthorizer()
        authorizer.add_user(user, password, str(root), perm="elr")
        Handler.authorizer = authorizer
        Handler.abstracted_fs = Filesystem
        Handler.use_sendfile = False  # every byte goes through Filesystem.open's file
        Handler.timeout = IDLE_TIMEOUT
        Handler.auth_failed_timeout = 0.01  # pyftpdlib waits 3 s after a wrong password
        Handler.banner = "provd lab FTP server ready."
        self._server = FTPServer((host, port), Handler)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> FtpFileServer:
        """Serve in a background thread."""
        if self._thread is None:
            # pyftpdlib logs every client and transfer; a cut transfer is the lab's own doing.
            # A handler of its own, too: serve_forever() calls pyftpdlib's config_logging()
            # when neither its logger nor the root has one, which resets the level to INFO
            # and prints a line every poll to stderr.
            ftp_log = logging.getLogger("pyftpdlib")
            ftp_log.setLevel(logging.ERROR)
            if not ftp_log.handlers:
                ftp_log.addHandler(logging.NullHandler())
            self._thread = threading.Thread(target=self._serve, name="lab-ftp", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        else:
            self._server.close_all()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        finally:
            self._server.close_all()

    def __enter__(self) -> FtpFileServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ what tests use

    @property
    def port(self) -> int:
        return int(self._server.address[1])

    @property
    def url(self) -> str:
        """``ftp://user@host:port/`` (the password is not in it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ftp://{quote(self.user, safe='')}@{host}:{self.port}/"

    @property
    def commands(self) -> list[tuple[str, str]]:
        """Every command received so far, in order, as (verb, argument); PASS without one."""
        with self._lock:
            return list(self._commands)

    def retrieved(self, path: str) -> int:
        """How many times `path` (``/media/a.wav``) was opened for a transfer."""
        return self._behaviours.fetches.get(path, 0)

    def misbehave(self, path: str, behaviour: FileBehaviour | None) -> None:
        """Make transfers of `path` (``/media/a.wav``) misbehave; None: behave again."""
        self._behaviours.set(path, behaviour)

    def values(self, name: str, *, path: str = "/") -> dict[str, str]:
        """The `file-*` items naming `path`/`name` on this server [G p.53], by item name."""
        return {
            "file-server": self.host,
            "file-port": str(self.port),
            "file-username": self.user,
            "file-pwd": self.password,
            "file-path": path,
            "file-name": name,
        }

    def placeholders(self) -> dict[str, str]:
        """The values deployment scenarios name as ``{ftp-...}``."""
        return {
            "ftp-server": self.host,
            "ftp-port": str(self.port),
            "ftp-username": self.user,
            "ftp-pwd": self.password,
        }

    def _record(self, cmd: str, arg: str) -> None:
        with self._lock:
            self._commands.append((cmd, arg))


# --------------------------------------------------------------------------- HTTPS


class _HttpsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provd-lab-files"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: _HttpsServer

    def do_GET(self) -> None:
        self.server.owner._get(self, head=False)

    def do_HEAD(self) -> None:
        self.server.owner._get(self, head=True)

    def log_message(self, format: str, *args: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("lab files %s: %s", self.client_address[0], format % args)


class _HttpsServer(TlsHttpServer):
    def __init__(
        self, address: tuple[str, int], owner: HttpsFileServer, context: ssl.SSLContext
    ) -> None:
        self.owner = owner
        super().__init__(address, _HttpsHandler, context, name="files")

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Called inside socketserver's except clause: a phone hanging up mid-file.
        logger.debug("lab files: error serving %s: %s", client_address[0], sys.exc_info()[1])


class HttpsFileServer:
    """Files over HTTPS on `host` (port 0: any free one), with `Range` support.

    Files come from `put` (URL path → bytes) and, failing that, from `root` (a
    directory; paths that would leave it are 404). The certificate is
    `credential`, by default the server certificate of `pki` (a fresh `LabPKI`
    when none is given), so a phone that trusts the lab's CA trusts this server.
    """

    def __init__(
        self,
        *,
        pki: LabPKI | None = None,
        credential: Credential | None = None,
        root: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.pki = pki or LabPKI.create()
        self.credential = credential or self.pki.server
        self.root = root
        self.host = host
        self._files: dict[str, bytes] = {}
        self._behaviours = _Behaviours()
        self._lock = threading.Lock()
        self._requests: list[HttpRequest] = []
        self._httpd = _HttpsServer((host, port), self, self._context())

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # spec §7.4
        # ssl reads a certificate chain from files only; they live while the call does.
        with tempfile.TemporaryDirectory(prefix="provd-lab-files-") as tmp:
            cert = Path(tmp) / "server.pem"
            key = Path(tmp) / "server.key"
            cert.write_bytes(self.credential.chain_pem)
            key.touch(mode=0o600)
            key.write_bytes(self.credential.key_pem)
            context.load_cert_chain(cert, key)
        return context

    # ------------------------------------------------------------------ life cycle

    def start(self) -> HttpsFileServer:
        """Serve in a background thread."""
        self._httpd.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; idempotent."""
        self._httpd.stop()

    def __enter__(self) -> HttpsFileServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ what tests use

    @property
    def port(self) -> int:
        return self._httpd.port

    @property
    def context(self) -> ssl.SSLContext:
        """The server's TLS context (replace it to present another certificate)."""
        return self._httpd.context

    @context.setter
    def context(self, context: ssl.SSLContext) -> None:
        self._httpd.context = context

    @property
    def handshake_errors(self) -> list[str]:
        """The TLS handshakes that failed, as ``"<client>: <reason>"``."""
        return self._httpd.handshake_errors

    @property
    def url(self) -> str:
        """The base URL, ``https://host:port`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The URL of `path` (``/media/a b.wav`` → ``https://...:port/media/a%20b.wav``)."""
        return self.url + quote(path, safe="/%")

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate a phone must trust for this server (PEM)."""
        return self.pki.ca.cert_pem

    @property
    def requests(self) -> list[HttpRequest]:
        """Every GET so far, in order."""
        with self._lock:
            return list(self._requests)

    def put(self, path: str, data: bytes) -> str:
        """Serve `data` at `path` (``/media/logo.png``); its URL."""
        with self._lock:
            self._files[path] = bytes(data)
        return self.url_for(path)

    def remove(self, path: str) -> None:
        """Stop serving `path` (a 404 from now on, unless `root` has it)."""
        with self._lock:
            self._files.pop(path, None)

    def misbehave(self, path: str, behaviour: FileBehaviour | None) -> None:
        """Make answers for `path` misbehave; None: behave again."""
        self._behaviours.set(path, behaviour)

    def retrieved(self, path: str) -> int:
        """How many GETs of `path` were answered with (part of) the file."""
        return self._behaviours.fetches.get(path, 0)

    def values(self, path: str, *, name: str | None = None, base: bool = False) -> dict[str, str]:
        """The `file-*` items for `path` (spec §6.1 [B]).

        By default the whole URL and no `file-name` (the phone names the file after
        the URL's last segment, as in [G p.53]); with `name`, that `file-name`; with
        `base`, the URL of `path`'s directory (ending in ``/``) plus `file-name`.
        """
        if base:
            directory, _, last = path.rpartition("/")
            values = {"file-https-base-url": self.url_for(directory + "/")}
            values["file-name"] = name if name is not None else unquote(last)
            return values
        values = {"file-https-base-url": self.url_for(path)}
        if name is not None:
            values["file-name"] = name
        return values

    def placeholders(self) -> dict[str, str]:
        """The values deployment scenarios name as ``{https-...}``."""
        return {"https-base-url": self.url}

    # ------------------------------------------------------------------ serving

    def _content(self, path: str) -> bytes | None:
        with self._lock:
            data = self._files.get(path)
        if data is not None or self.root is None:
            return data
        clean = posixpath.normpath("/" + path.lstrip("/"))
        if clean != path or "\x00" in path:
            return None
        candidate = self.root.joinpath(*[p for p in clean.split("/") if p])
        try:
            root = self.root.resolve(strict=True)
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(root) or not real.is_file():
            return None
        try:
            return real.read_bytes()
        except OSError:
            return None

    def _get(self, handler: _HttpsHandler, *, head: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        data = self._content(path)
        behaviour = self._behaviours.get(path)
        refusal = 404 if data is None else behaviour.status if behaviour is not None else None
        if data is None or refusal is not None:
            status = refusal or 404
            self._log(path, handler, status)
            body = f"{status} {http.HTTPStatus(status).phrase}\n".encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if not head:
                handler.wfile.write(body)
            return
        announced = len(data)
        if behaviour is not None and behaviour.announce is not None:
            announced = behaviour.announce
        start, end = 0, announced - 1
        requested = handler.headers.get("Range")
        ranged = requested is not None and not (behaviour and behaviour.ignore_range)
        if ranged:
            parsed = _parse_range(requested or "", announced)
            if parsed is None:
                self._log(path, handler, 416)
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{announced}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            start, end = parsed
        status = 206 if ranged else 200
        self._log(path, handler, status)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Accept-Ranges", "bytes")
        if ranged:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{announced}")
        handler.send_header("Content-Length", str(end - start + 1))
        handler.end_headers()
        if head:
            return
        body = data[start : end + 1]
        cut = self._behaviours.cut_for(path)
        if cut is not None and cut < len(body):
            body = body[:cut]
        handler.wfile.write(body)
        handler.wfile.flush()
        if len(body) != end - start + 1:
            # Fewer bytes than announced: end the connection, as a network cut does.
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)

    def _log(self, path: str, handler: _HttpsHandler, status: int) -> None:
        with self._lock:
            self._requests.append(HttpRequest(path, handler.headers.get("Range"), status))


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range within `size`; None: unsatisfiable."""
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if not first_text:  # a suffix: the last N bytes
            length = int(last_text)
            return (max(0, size - length), size - 1) if length > 0 and size > 0 else None
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first < 0 or first >= size or last < first:
        return None
    return first, min(last, size - 1)
